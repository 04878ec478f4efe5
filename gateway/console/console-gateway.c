/* mtlsgw gateway renew: the gateway's own certificate, renewed from the CA. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gnutls/x509.h>
#include <json-c/json.h>

#include "config.h"
#include "console.h"
#include "control.h"
#include "pki-gateway.h"
#include "pki.h"
#include "registry.h"

#define MAX_HOSTS 32

struct gw_args {
    const char *hosts[MAX_HOSTS];
    size_t n_hosts;
    unsigned days;
    bool new_key;
};

static int gw_parse(int argc, char **argv, struct gw_args *a)
{
    static const struct option opts[] = {
        {"host", required_argument, NULL, 'H'},
        {"days", required_argument, NULL, 'd'},
        {"new-key", no_argument, NULL, 'N'},
        {NULL, 0, NULL, 0},
    };
    int c;

    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'H':
            if (a->n_hosts == MAX_HOSTS) {
                con_err("gateway renew", "at most %d --host", MAX_HOSTS);
                return EXIT_USAGE;
            }
            a->hosts[a->n_hosts++] = optarg;
            break;
        case 'd':
            if (!con_parse_uint(optarg, 1, 397, &a->days)) {
                con_err("gateway renew", "--days %s: not a number of days from 1 to 397",
                        optarg);
                return EXIT_USAGE;
            }
            break;
        case 'N':
            a->new_key = true;
            break;
        default:
            return con_usage("gateway");
        }
    }
    if (optind != argc) {
        con_err("gateway renew", "unexpected argument '%s'", argv[optind]);
        return con_usage("gateway");
    }
    return EXIT_OK;
}

/*
 * Ask the running daemon to load the new certificate for its next
 * handshakes. 1: it serves serial now; 0: no daemon runs (or none serves
 * the gateway certificate); -1: it is there and did not switch (said why).
 */
static int gw_tell_daemon(struct console *con, const char *serial)
{
    const struct config *cfg = con->cfg;
    char *answer = NULL, err[512] = "";
    struct json_object *o = NULL, *v;
    int rc;

    if (!cfg->mgmt.listen && !cfg->tunnel.listen && !cfg->enroll.listen)
        return 0;
    rc = control_request(cfg->daemon.control_socket, "{\"cmd\":\"gateway-reload\"}", &answer,
                         err, sizeof(err));
    if (rc == -ENOENT || rc == -ECONNREFUSED) {
        printf("no daemon at %s: mtlsgwd uses the new certificate when it starts\n",
               cfg->daemon.control_socket);
        return 0;
    }
    if (rc == 0) {
        o = json_tokener_parse(answer);
        if (!o)
            snprintf(err, sizeof(err), "its answer is not JSON");
        else if (json_object_object_get_ex(o, "error", &v))
            snprintf(err, sizeof(err), "%s", json_object_get_string(v));
        else if (!json_object_object_get_ex(o, "serial", &v) ||
                 strcmp(json_object_get_string(v), serial) != 0)
            snprintf(err, sizeof(err), "it serves serial %s",
                     o && v ? json_object_get_string(v) : "?");
        else
            rc = 1;
    }
    free(answer);
    json_object_put(o);
    if (rc == 1) {
        printf("mtlsgwd at %s serves it to new handshakes; open sessions stay up\n",
               cfg->daemon.control_socket);
        return 1;
    }
    con_err("gateway renew", "the running daemon (%s) did not switch: %s", cfg->daemon.control_socket,
            err);
    con_err("gateway renew", "its watch of %s tries again within a second; see its log",
            con->cfg->pki.dir);
    return -1;
}

/* Names the renewal dropped: a spoke dialling one fails its next handshake. */
static void gw_dropped(char *const *old, size_t n_old, char *const *now, size_t n_now)
{
    bool any = false;

    for (size_t i = 0; i < n_old; i++) {
        bool kept = false;
        for (size_t j = 0; j < n_now && !kept; j++)
            kept = strcmp(old[i], now[j]) == 0;
        if (kept)
            continue;
        printf("%s%s", any ? ", " : "  dropped      ", old[i]);
        any = true;
    }
    if (any)
        printf(" (a peer that dials it is refused at its next connection: give --host "
               "for every name to keep)\n");
}

static void gw_report(const struct pki *pki, const struct pki_gateway_result *res,
                      const struct gw_args *a, char *const *old_hosts, size_t n_old)
{
    gnutls_x509_crt_t crt = NULL;
    char **hosts = NULL, when[32], err[256];
    size_t n = 0;

    printf("gateway certificate renewed: serial %s (was %s)\n", res->serial, res->old_serial);
    if (pki_read_cert(pki->gw_path, &crt, err, sizeof(err)) == 0) {
        time_format_utc(gnutls_x509_crt_get_expiration_time(crt), when, sizeof(when));
        printf("  valid until  %s\n", when);
        if (pki_cert_hosts(crt, &hosts, &n) == 0) {
            printf("  names        ");
            for (size_t i = 0; i < n; i++)
                printf("%s%s", i ? ", " : "", hosts[i]);
            printf("%s\n", a->n_hosts ? "" : " (kept)");
            gw_dropped(old_hosts, n_old, hosts, n);
            pki_hosts_free(hosts, n);
        }
        gnutls_x509_crt_deinit(crt);
    }
    printf("  key          '%s' on %s (%s)\n", res->label, pki->cfg->token.uri,
           a->new_key ? "new" : "the same");
    printf("  written to   %s\n", pki->gw_path);
}

static int gw_renew(struct console *con, int argc, char **argv)
{
    struct gw_args a = {0};
    struct pki_gateway_renew o = {0};
    struct pki_gateway_result res;
    struct pki *pki = NULL;
    gnutls_x509_crt_t old = NULL;
    char err[768] = "", **old_hosts = NULL;
    size_t n_old = 0;
    int rc, told;

    if ((rc = gw_parse(argc, argv, &a)) != EXIT_OK)
        return rc;
    if (con_load_config(con) != EXIT_OK)
        return EXIT_FAIL;
    if (pki_new(con->cfg, &pki) < 0) {
        con_err("gateway renew", "out of memory");
        return EXIT_FAIL;
    }
    rc = EXIT_FAIL;
    o.hosts = a.hosts;
    o.n_hosts = a.n_hosts;
    o.days = a.days;
    o.new_key = a.new_key;
    o.actor = con->actor;
    if (con_as_daemon() < 0)
        goto out;
    if (pki_read_cert(pki->gw_path, &old, err, sizeof(err)) == 0)
        pki_cert_hosts(old, &old_hosts, &n_old);
    if (pki_gateway_renew(pki, &o, &res, err, sizeof(err)) < 0) {
        con_as_invoker();
        con_err("gateway renew", "%s", err);
        goto out;
    }
    con_as_invoker();
    gw_report(pki, &res, &a, old_hosts, n_old);
    told = gw_tell_daemon(con, res.serial);
    rc = told < 0 ? EXIT_UNACKED : EXIT_OK;
    if (!a.new_key || strcmp(res.old_label, res.label) == 0)
        goto out;
    /* The old key is in use until the daemon has switched. */
    if (told < 0) {
        printf("old key '%s' kept on the token for the daemon; the next 'mtlsgw gateway renew "
               "--new-key' deletes it\n", res.old_label);
        goto out;
    }
    if (con_as_daemon() < 0)
        goto out;
    if (pki_gateway_drop_key(pki, res.old_label, err, sizeof(err)) < 0) {
        con_as_invoker();
        con_err("gateway renew", "%s", err);
        rc = EXIT_FAIL;
        goto out;
    }
    con_as_invoker();
    printf("old key '%s' deleted from the token\n", res.old_label);
out:
    pki_hosts_free(old_hosts, n_old);
    if (old)
        gnutls_x509_crt_deinit(old);
    pki_free(pki);
    return rc;
}

int cmd_gateway(struct console *con, int argc, char **argv)
{
    if (argc < 2) {
        con_err("gateway", "give a subcommand: renew");
        return con_usage("gateway");
    }
    if (strcmp(argv[1], "renew") == 0)
        return gw_renew(con, argc - 1, argv + 1);
    con_err("gateway", "unknown subcommand '%s' (renew)", argv[1]);
    return con_usage("gateway");
}
