/* mtlsgw status, kick, and telling the running daemon about changes. */
#include <errno.h>
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gnutls/x509.h>
#include <json-c/json.h>

#include "config.h"
#include "console.h"
#include "control.h"
#include "pki.h"

struct json_object *con_ask_daemon(struct console *con, const char *cmd, const char *request,
                                   const char *absent)
{
    char *answer = NULL, err[512] = "";
    struct json_object *o, *e;
    int rc;

    if (con_load_config(con) != EXIT_OK)
        return NULL;
    rc = control_request(con->cfg->daemon.control_socket, request, &answer, err, sizeof(err));
    if (rc < 0) {
        con_err(cmd, "%s%s", err, rc == -ENOENT || rc == -ECONNREFUSED ? absent : "");
        return NULL;
    }
    o = json_tokener_parse(answer);
    free(answer);
    if (!o) {
        con_err(cmd, "the daemon's answer is not JSON");
        return NULL;
    }
    if (json_object_object_get_ex(o, "error", &e)) {
        con_err(cmd, "the daemon says: %s", json_object_get_string(e));
        json_object_put(o);
        return NULL;
    }
    return o;
}

/* The cRLNumber of the CRL in the pki dir; 0 when it cannot be read. */
static uint64_t crl_number(const struct pki *pki)
{
    gnutls_x509_crl_t crl = NULL;
    unsigned char num[32];
    size_t len = sizeof(num);
    unsigned crit = 0;
    uint64_t n = 0;
    char err[512];

    if (pki_read_crl(pki, &crl, err, sizeof(err)) < 0)
        return 0;
    if (gnutls_x509_crl_get_number(crl, num, &len, &crit) >= 0 && len <= 8)
        for (size_t i = 0; i < len; i++)
            n = n << 8 | num[i];
    gnutls_x509_crl_deinit(crl);
    return n;
}

int con_notify_daemon(struct console *con, const struct pki *pki, const char *cmd)
{
    const struct config *cfg = con->cfg;
    const char *conf = cfg->path ? cfg->path : con->conf_path;
    char request[96], *answer = NULL, err[512] = "";
    struct json_object *o = NULL, *v;
    int rc, ended = 0;

    /* A daemon with no listener judges no peer: nothing of it to tell. */
    if (!cfg->mgmt.listen && !cfg->tunnel.listen && !cfg->enroll.listen) {
        printf("no listener in %s: no daemon sessions to end\n", conf);
        return EXIT_OK;
    }
    snprintf(request, sizeof(request), "{\"cmd\":\"reload\",\"crl_number\":%llu}",
             (unsigned long long)crl_number(pki));
    rc = control_request(cfg->daemon.control_socket, request, &answer, err, sizeof(err));
    if (rc == 0) {
        o = json_tokener_parse(answer);
        if (!o || !json_object_is_type(o, json_type_object)) {
            snprintf(err, sizeof(err), "the daemon at %s answered something else than JSON",
                     cfg->daemon.control_socket);
            rc = -EPROTO;
        } else if (json_object_object_get_ex(o, "error", &v)) {
            /* It is there but could not read the files: it keeps the trust
             * it had, and its watch will fail on them the same way. */
            snprintf(err, sizeof(err), "the daemon at %s could not reload: %s",
                     cfg->daemon.control_socket, json_object_get_string(v));
            rc = -EIO;
        } else if (json_object_object_get_ex(o, "ended", &v)) {
            ended = json_object_get_int(v);
        }
    }
    free(answer);
    json_object_put(o);
    if (rc == -EIO) {
        con_err(cmd, "mtlsgwd did not apply the change: %s", err);
        con_err(cmd,
                "the registry and CRL changes stay in %s; the daemon keeps its previous "
                "trust until it can read them (see its log)",
                pki->dir);
        return EXIT_UNACKED;
    }
    if (rc < 0) {
        con_err(cmd, "mtlsgwd did not acknowledge: %s", err);
        con_err(cmd,
                "the registry and CRL changes stay in %s: a running mtlsgwd applies them "
                "within a second by its own watch of that directory, one not running "
                "when it starts; check [daemon] control-socket in %s and 'mtlsgw status'",
                pki->dir, conf);
        return EXIT_UNACKED;
    }
    if (strcmp(cmd, "revoke") == 0)
        printf("mtlsgwd acknowledged: ended %d session(s)\n", ended);
    else
        printf("mtlsgwd acknowledged: registry and CRL reloaded\n");
    return EXIT_OK;
}

static long long get_int(struct json_object *o, const char *a, const char *b)
{
    struct json_object *x, *y;

    if (!json_object_object_get_ex(o, a, &x) || !json_object_object_get_ex(x, b, &y))
        return -1;
    return json_object_get_int64(y);
}

/* A spoke's own certificates: days left per uplink (no CA of its own). */
static void print_uplinks(struct json_object *o)
{
    struct json_object *arr, *u, *v;

    if (!json_object_object_get_ex(o, "uplinks", &arr))
        return;
    for (size_t i = 0; i < json_object_array_length(arr); i++) {
        u = json_object_array_get_idx(arr, i);
        /* server: the hub it is on; null while not connected. */
        printf("uplink     %s (%s): certificate %lld days left, hub CA %lld days left\n",
               json_object_object_get_ex(u, "name", &v) ? json_object_get_string(v) : "?",
               json_object_object_get_ex(u, "server", &v) && v
                   ? json_object_get_string(v) : "not connected",
               json_object_object_get_ex(u, "certificate", &v) ? json_object_get_int64(v)
                                                               : -1LL,
               json_object_object_get_ex(u, "hub_ca", &v) ? json_object_get_int64(v) : -1LL);
    }
}

int cmd_status(struct console *con, int argc, char **argv)
{
    static const struct option opts[] = {
        {"json", no_argument, NULL, 'j'},
        {NULL, 0, NULL, 0},
    };
    struct json_object *o, *v, *list;
    bool json = false;
    int c;

    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (c != 'j')
            return con_usage("status");
        json = true;
    }
    if (optind != argc)
        return con_usage("status");
    o = con_ask_daemon(con, "status", "{\"cmd\":\"status\"}", " (is mtlsgwd running?)");
    if (!o)
        return EXIT_FAIL;
    if (json) {
        puts(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY |
                                                   JSON_C_TO_STRING_NOSLASHESCAPE));
        json_object_put(o);
        return EXIT_OK;
    }
    printf("mtlsgwd %s, up %lld s\n",
           json_object_object_get_ex(o, "version", &v) ? json_object_get_string(v) : "?",
           json_object_object_get_ex(o, "uptime", &v) ? (long long)json_object_get_int64(v)
                                                      : -1LL);
    printf("token      %s: %s\n", con->cfg->token.uri,
           json_object_object_get_ex(o, "token", &v) &&
                   json_object_object_get_ex(v, "healthy", &v) && json_object_get_boolean(v)
               ? "healthy"
               : "NOT ANSWERING");
    if (get_int(o, "days_left", "ca") != -1 || get_int(o, "days_left", "gateway") != -1)
        printf("days left  CA %lld, gateway %lld, CRL %lld\n", get_int(o, "days_left", "ca"),
               get_int(o, "days_left", "gateway"), get_int(o, "days_left", "crl"));
    print_uplinks(o);
    if (json_object_object_get_ex(o, "days_left", &v) && json_object_object_get_ex(v, "ca", &v)) {
        long long ca = json_object_get_int64(v);
        if (ca < 0)
            printf("           THE CA HAS EXPIRED: every peer is refused (mtlsgw init --force)\n");
        else if (ca < 30)
            printf("           the CA expires in %lld days: every peer is refused from then on\n",
                   ca);
        con_ca_expiry_note(ca);
    }
    printf("sessions   management %lld, tunnel %lld, handshaking %lld\n",
           get_int(o, "sessions", "management"), get_int(o, "sessions", "tunnel"),
           get_int(o, "sessions", "handshaking"));
    printf("bans       %lld address(es) banned now (mtlsgw bans), %lld connection(s) refused\n",
           get_int(o, "bans", "banned"), get_int(o, "bans", "refused_total"));
    /* [trust NAME] issuers (docs/pki.md, "Revocation across hubs"). */
    if (json_object_object_get_ex(o, "trust", &v)) {
        json_object_object_foreach(v, name, t) {
            struct json_object *f;
            long long age = json_object_object_get_ex(t, "age", &f) && f
                                ? (long long)json_object_get_int64(f) : -1;
            char when[48] = "never fetched";
            if (age >= 0)
                snprintf(when, sizeof(when), "fetched %lld s ago", age);
            printf("trust      %s: %s, CRL %lld (%lld revoked), %s%s%s\n", name,
                   json_object_object_get_ex(t, "fresh", &f) && json_object_get_boolean(f)
                       ? "fresh"
                       : "STALE: its peers are refused",
                   (long long)(json_object_object_get_ex(t, "crl_number", &f)
                                   ? json_object_get_int64(f) : 0),
                   (long long)(json_object_object_get_ex(t, "revoked", &f)
                                   ? json_object_get_int64(f) : 0),
                   when,
                   json_object_object_get_ex(t, "error", &f) ? "; last error: " : "",
                   json_object_object_get_ex(t, "error", &f) ? json_object_get_string(f) : "");
        }
    }
    if (json_object_object_get_ex(o, "sessions_list", &list) &&
        json_object_array_length(list) > 0) {
        printf("\n%-6s %-16s %-8s %-10s %-22s %-8s %-15s %-4s %-20s %10s %10s\n", "ID",
               "PEER", "ROLE", "LISTENER", "REMOTE", "IFACE", "ADDRESS", "DATA", "SINCE", "IN",
               "OUT");
        for (size_t i = 0; i < json_object_array_length(list); i++) {
            struct json_object *s = json_object_array_get_idx(list, i), *f;
#define F(k) (json_object_object_get_ex(s, k, &f) ? json_object_get_string(f) : "-")
            char who[96];
            /* A [trust] issuer's peer: ISSUER/NAME, who vouched (as kick takes it). */
            if (json_object_object_get_ex(s, "issuer", &f))
                snprintf(who, sizeof(who), "%s/", json_object_get_string(f));
            else
                who[0] = '\0';
            snprintf(who + strlen(who), sizeof(who) - strlen(who), "%s", F("peer"));
            /* DATA: the channel carrying a tunnel's packets (udp or tcp). */
            printf("%-6s %-16s %-8s %-10s %-22s %-8s %-15s %-4s %-20s %10s %10s\n", F("id"),
                   who, F("role"), F("listener"), F("remote"), F("interface"),
                   F("address"), F("channel"), F("since"), F("bytes_in"), F("bytes_out"));
#undef F
        }
    }
    json_object_put(o);
    return EXIT_OK;
}

int cmd_kick(struct console *con, int argc, char **argv)
{
    struct json_object *req, *o;
    int rc = EXIT_FAIL;

    if (argc != 2 || argv[1][0] == '-')
        return con_usage("kick");
    req = json_object_new_object();
    json_object_object_add(req, "cmd", json_object_new_string("kick"));
    json_object_object_add(req, "peer", json_object_new_string(argv[1]));
    o = con_ask_daemon(con, "kick", json_object_to_json_string(req),
                       " (is mtlsgwd running?)");
    if (o) {
        struct json_object *v;
        int n = json_object_object_get_ex(o, "ended", &v) ? json_object_get_int(v) : -1;
        if (n == 0)
            printf("the sessions of %s were ending already\n", argv[1]);
        else if (n > 0)
            printf("ended %d session(s) of %s (not revoked: it may connect again)\n", n,
                   argv[1]);
        else
            printf("ended the sessions of %s (not revoked: it may connect again)\n", argv[1]);
        rc = EXIT_OK;
    }
    json_object_put(o);
    json_object_put(req);
    return rc;
}
