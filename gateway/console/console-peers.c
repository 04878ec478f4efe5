/* mtlsgw peers, show, explain: reading the registry at the console. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <json-c/json.h>

#include "config.h"
#include "console.h"
#include "pki-rollover.h"
#include "pki.h"
#include "registry.h"
#include "trustdb.h"
#include "verify.h"

#define CERT_FILE_MAX (1024 * 1024)
#define CHAIN_MAX 8

/* --json is the only option of peers and show. */
static int parse_json_flag(const char *cmd, int argc, char **argv, bool *json)
{
    static const struct option opts[] = {
        {"json", no_argument, NULL, 'j'},
        {NULL, 0, NULL, 0},
    };
    int c;

    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (c != 'j')
            return con_usage(cmd);
        *json = true;
    }
    return EXIT_OK;
}

static int load_registry(struct console *con, const char *cmd, struct registry **reg)
{
    struct pki *pki = NULL;
    char err[512] = "";
    int rc;

    if (con_load_config(con) != EXIT_OK)
        return EXIT_FAIL;
    if (pki_new(con->cfg, &pki) < 0)
        return EXIT_FAIL;
    rc = pki_load_registry(pki, reg, err, sizeof(err));
    if (rc < 0)
        con_err(cmd, "%s", err);
    pki_free(pki);
    return rc < 0 ? EXIT_FAIL : EXIT_OK;
}

static void print_networks(const struct peer *p, FILE *f)
{
    if (p->n_networks == 0)
        fputs("-", f);
    for (size_t i = 0; i < p->n_networks; i++)
        fprintf(f, "%s%s", i ? "," : "", p->networks[i]);
}

/* peers' options: --json, --status active|revoked|all (-1: all). */
static int parse_peers(int argc, char **argv, bool *json, int *status)
{
    static const struct option opts[] = {
        {"json", no_argument, NULL, 'j'},
        {"status", required_argument, NULL, 's'},
        {NULL, 0, NULL, 0},
    };
    int c;

    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (c == 'j') {
            *json = true;
        } else if (c == 's' && strcmp(optarg, "all") == 0) {
            *status = -1;
        } else if (c == 's' && strcmp(optarg, "active") == 0) {
            *status = PEER_ACTIVE;
        } else if (c == 's' && strcmp(optarg, "revoked") == 0) {
            *status = PEER_REVOKED;
        } else if (c == 's') {
            con_err("peers", "--status %s: not one of active, revoked, all", optarg);
            return EXIT_USAGE;
        } else {
            return con_usage("peers");
        }
    }
    return optind == argc ? EXIT_OK : con_usage("peers");
}

/* revoked also lists superseded: neither is trusted any more. */
static bool status_matches(const struct peer *p, int status)
{
    return status < 0 || (status == PEER_ACTIVE) == (p->status == PEER_ACTIVE);
}

int cmd_peers(struct console *con, int argc, char **argv)
{
    struct registry *reg = NULL;
    struct rollover *ro = NULL;
    struct json_object *sessions = NULL;
    bool json = false;
    time_t now = time(NULL);
    int rc, status = -1;
    size_t shown = 0;

    rc = parse_peers(argc, argv, &json, &status);
    if (rc != EXIT_OK)
        return rc;
    if (load_registry(con, "peers", &reg) != EXIT_OK)
        return EXIT_FAIL;
    sessions = con_daemon_sessions(con);
    /* During a CA rollover: which CA issued each (ISSUER, "issuer"). */
    {
        char err[512] = "";
        if (rollover_load(con->cfg->pki.dir, &ro, err, sizeof(err)) < 0 && err[0])
            con_err("peers", "%s", err);
    }
    if (json) {
        struct json_object *arr = json_object_new_array();
        for (size_t i = 0; i < registry_count(reg); i++) {
            const struct peer *p = registry_at(reg, i);
            struct json_object *o;
            if (!status_matches(p, status))
                continue;
            o = registry_peer_json(p, now);
            json_object_object_add(o, "online",
                                   sessions ? json_object_new_boolean(con_peer_online(
                                                  sessions, p->name, p->serial))
                                            : NULL);
            if (ro)
                json_object_object_add(o, "issuer",
                                       json_object_new_string(con_ca_issuer(ro, p)));
            json_object_array_add(arr, o);
        }
        puts(json_object_to_json_string_ext(arr, JSON_C_TO_STRING_PRETTY |
                                                     JSON_C_TO_STRING_NOSLASHESCAPE));
        json_object_put(arr);
    } else {
        printf("%-20s %-8s %-10s %-6s %-32s %-20s %6s  %s%s\n", "NAME", "ROLE", "STATUS",
               "ONLINE", "SERIAL", "NOT-AFTER", "DAYS", ro ? "ISSUER " : "", "NETWORKS");
        for (size_t i = 0; i < registry_count(reg); i++) {
            const struct peer *p = registry_at(reg, i);
            char when[32];
            if (!status_matches(p, status))
                continue;
            shown++;
            time_format_utc(p->not_after, when, sizeof(when));
            printf("%-20s %-8s %-10s %-6s %-32s %-20s %6lld  ", p->name, role_name(p->role),
                   peer_status_name(p->status),
                   !sessions ? "-" : con_peer_online(sessions, p->name, p->serial) ? "yes" : "no",
                   p->serial, when, (long long)((p->not_after - (int64_t)now) / 86400));
            if (ro)
                printf("%-6s ", con_ca_issuer(ro, p));
            print_networks(p, stdout);
            putchar('\n');
        }
        if (registry_count(reg) == 0)
            printf("(no peers enrolled: see 'mtlsgw enroll --help')\n");
        else if (shown == 0)
            printf("(no %s peers)\n", status == PEER_ACTIVE ? "active" : "revoked");
    }
    json_object_put(sessions);
    registry_free(reg);
    rollover_free(ro);
    return EXIT_OK;
}

int cmd_show(struct console *con, int argc, char **argv)
{
    struct registry *reg = NULL;
    const struct peer *p;
    bool json = false;
    int rc;

    if (con_show_wants_pem(argc, argv))
        return con_show_pem(con, argc, argv);
    rc = parse_json_flag("show", argc, argv, &json);
    if (rc != EXIT_OK)
        return rc;
    if (optind + 1 != argc)
        return con_usage("show");
    if (load_registry(con, "show", &reg) != EXIT_OK)
        return EXIT_FAIL;
    p = registry_find_name(reg, argv[optind]);
    if (!p) {
        con_err("show", "no peer named '%s' (see 'mtlsgw peers')", argv[optind]);
        registry_free(reg);
        return EXIT_FAIL;
    }
    if (json) {
        struct json_object *o = registry_peer_json(p, time(NULL));
        puts(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY |
                                                   JSON_C_TO_STRING_NOSLASHESCAPE));
        json_object_put(o);
    } else {
        char nb[32], na[32], en[32];
        time_format_utc(p->not_before, nb, sizeof(nb));
        time_format_utc(p->not_after, na, sizeof(na));
        time_format_utc(p->enrolled_at, en, sizeof(en));
        printf("name:       %s\nrole:       %s\nstatus:     %s\nserial:     %s\n"
               "valid:      %s .. %s (%lld days left)\nenrolled:   %s\nnetworks:   ",
               p->name, role_name(p->role), peer_status_name(p->status), p->serial, nb, na,
               (long long)((p->not_after - (int64_t)time(NULL)) / 86400), en);
        print_networks(p, stdout);
        putchar('\n');
        if (p->revoked_at) {
            char rv[32];
            time_format_utc(p->revoked_at, rv, sizeof(rv));
            printf("revoked:    %s (%s)\n", rv, p->reason ? p->reason : "unspecified");
        }
    }
    registry_free(reg);
    return EXIT_OK;
}

/* A PEM file may hold the certificate followed by its chain. */
static int read_chain(const char *path, gnutls_x509_crt_t *chain, unsigned *n)
{
    char *text = NULL;
    size_t len = 0;
    gnutls_datum_t d;
    int rc;

    if (con_read_file("explain", "CERT", path, CERT_FILE_MAX, &text, &len) < 0)
        return -EIO;
    d.data = (unsigned char *)text;
    d.size = (unsigned)len;
    *n = CHAIN_MAX;
    rc = gnutls_x509_crt_list_import(chain, n, &d, GNUTLS_X509_FMT_PEM, 0);
    if (rc < 0) {
        *n = 1;
        if (gnutls_x509_crt_init(&chain[0]) < 0 ||
            gnutls_x509_crt_import(chain[0], &d, GNUTLS_X509_FMT_DER) < 0) {
            if (chain[0])
                gnutls_x509_crt_deinit(chain[0]);
            *n = 0;
            con_err("explain", "%s is not a PEM or DER X.509 certificate", path);
            free(text);
            return -EBADMSG;
        }
    }
    free(text);
    return 0;
}

static void dn_print(const char *prefix, gnutls_x509_crt_t crt, bool issuer)
{
    gnutls_datum_t dn = {0};
    int rc = issuer ? gnutls_x509_crt_get_issuer_dn3(crt, &dn, 0)
                    : gnutls_x509_crt_get_dn3(crt, &dn, 0);

    printf("%s%s", prefix, rc == 0 ? (const char *)dn.data : "?");
    gnutls_free(dn.data);
}

static bool is_anchor(const struct trust *t, gnutls_x509_crt_t crt)
{
    for (size_t i = 0; i < t->n_cas; i++)
        if (gnutls_x509_crt_equals(crt, t->cas[i]))
            return true;
    return false;
}

/* Whether iss issued crt: by its signature (sig), else by name alone. */
static bool issued_by(gnutls_x509_crt_t crt, gnutls_x509_crt_t iss, bool sig)
{
    return sig ? verify_signed_by(crt, iss) : gnutls_x509_crt_check_issuer(crt, iss) == 1;
}

/* The issuer of crt among what the peer sent, then this gateway's
 * intermediates and roots; where it came from in *from. The one whose key
 * signed it (two CAs may share a name), else one by name, whose link then
 * fails in explain_path. */
static gnutls_x509_crt_t find_issuer_by(const struct trust *t, const gnutls_x509_crt_t *chain,
                                        unsigned n, gnutls_x509_crt_t crt, const char **from,
                                        bool sig)
{
    for (unsigned i = 1; i < n; i++)
        if (!gnutls_x509_crt_equals(chain[i], crt) && issued_by(crt, chain[i], sig)) {
            *from = is_anchor(t, chain[i]) ? "root, trusted" : "sent with the certificate";
            return chain[i];
        }
    for (size_t i = 0; i < t->n_chain; i++)
        if (issued_by(crt, t->chain[i], sig)) {
            *from = "intermediate, chain.pem";
            return t->chain[i];
        }
    for (size_t i = 0; i < t->n_cas; i++)
        if (issued_by(crt, t->cas[i], sig)) {
            *from = "root in ca.crt, trusted";
            return t->cas[i];
        }
    for (size_t i = 0; i < t->n_issuers; i++)
        if (issued_by(crt, t->issuers[i].ca, sig)) {
            *from = "a [trust] issuer's ca, trusted";
            return t->issuers[i].ca;
        }
    return NULL;
}

static gnutls_x509_crt_t find_issuer(const struct trust *t, const gnutls_x509_crt_t *chain,
                                     unsigned n, gnutls_x509_crt_t crt, const char **from)
{
    gnutls_x509_crt_t iss = find_issuer_by(t, chain, n, crt, from, true);

    return iss ? iss : find_issuer_by(t, chain, n, crt, from, false);
}

static bool is_issuer_ca(const struct trust *t, gnutls_x509_crt_t crt)
{
    for (size_t i = 0; i < t->n_issuers; i++)
        if (gnutls_x509_crt_equals(crt, t->issuers[i].ca))
            return true;
    return false;
}

/* iss, depth links above the certificate, has depth - 1 CAs between
 * them: more than its pathLenConstraint allows fails this link. */
static bool path_len_exceeded(gnutls_x509_crt_t iss, unsigned depth)
{
    unsigned critical = 0, ca = 0;
    int path_len = -1;

    if (gnutls_x509_crt_get_basic_constraints(iss, &critical, &ca, &path_len) < 0 ||
        path_len < 0 || depth <= (unsigned)path_len)
        return false;
    dn_print("\n  X ", iss, false);
    printf(" allows %d CA%s below it, the path has %u: this link fails\n", path_len,
           path_len == 1 ? "" : "s", depth);
    return true;
}

/*
 * The path from the certificate up, one line per link, and the link that
 * fails: an issuer not known here, or a signature or CA flag that does not
 * hold. The verdict (verify.c) judges the whole path; this shows where.
 */
static void explain_path(const struct trust *t, const gnutls_x509_crt_t *chain, unsigned n)
{
    gnutls_x509_crt_t cur = chain[0], iss;
    const char *from = "";

    printf("chain built:\n");
    for (unsigned depth = 0; depth < CHAIN_MAX; depth++) {
        unsigned status = 0;
        gnutls_datum_t txt = {0};

        dn_print(depth ? "  ^ " : "    ", cur, false);
        if (depth)
            printf(" (%s)", from);
        if (is_anchor(t, cur) || (depth && is_issuer_ca(t, cur))) {
            printf("\n");
            return;
        }
        iss = find_issuer(t, chain, n, cur, &from);
        if (!iss) {
            dn_print("\n  X issuer ", cur, true);
            printf(" is not known here: this link fails (the root and intermediates this "
                   "gateway trusts are ca.crt and chain.pem)\n");
            return;
        }
        if (path_len_exceeded(iss, depth))
            return;
        if (gnutls_x509_crt_verify(cur, &iss, 1,
                                   GNUTLS_VERIFY_DISABLE_TIME_CHECKS |
                                       GNUTLS_VERIFY_DISABLE_TRUSTED_TIME_CHECKS,
                                   &status) < 0 ||
            status) {
            gnutls_certificate_verification_status_print(status, GNUTLS_CRT_X509, &txt, 0);
            dn_print("\n  X not accepted as issued by ", iss, false);
            printf(": %s: this link fails\n", txt.data ? (const char *)txt.data : "?");
            gnutls_free(txt.data);
            return;
        }
        printf("\n");
        cur = iss;
    }
}

static const struct cfg_trust *sibling(const struct config *cfg, const char *name)
{
    for (unsigned i = 0; name[0] && i < cfg->n_trusts; i++)
        if (strcmp(cfg->trusts[i].name, name) == 0)
            return &cfg->trusts[i];
    return NULL;
}

/* A roaming tunnel peer's routes here: its certificate's networks inside
 * [trust NAME] networks (docs/pki.md, "Roaming tunnel peers"). */
static void roaming_networks(const struct cfg_trust *tr, gnutls_x509_crt_t crt)
{
    char nets[64][64];
    size_t nn = verify_cert_networks(crt, nets, 64), shown = 0;

    for (size_t i = 0; i < nn; i++)
        if (tr && config_prefix_inside(tr->networks, tr->n_networks, nets[i]))
            printf("%s%s", shown++ ? " " : "", nets[i]);
    if (!shown)
        printf("none routed here");
    for (size_t i = 0; i < nn; i++)
        if (!tr || !config_prefix_inside(tr->networks, tr->n_networks, nets[i]))
            printf(" (%s: outside [trust %s] networks, not routed)", nets[i],
                   tr ? tr->name : "?");
}

int cmd_explain(struct console *con, int argc, char **argv)
{
    gnutls_x509_crt_t chain[CHAIN_MAX] = {0};
    const struct cfg_trust *tr;
    char (*stale)[256] = NULL;
    uint64_t *crl_number = NULL;
    enum peer_role role;
    unsigned n = 0;
    struct pki *pki = NULL;
    struct trustdb *db = NULL;
    struct verdict v;
    char err[512] = "";
    int rc = EXIT_FAIL;

    if (argc != 2 || argv[1][0] == '-')
        return con_usage("explain");
    if (read_chain(argv[1], chain, &n) < 0)
        return EXIT_FAIL;
    if (con_load_config(con) != EXIT_OK || pki_new(con->cfg, &pki) < 0)
        goto out;
    stale = calloc(con->cfg->n_trusts + 1, sizeof(*stale));
    crl_number = calloc(con->cfg->n_trusts + 1, sizeof(*crl_number));
    if (!stale || !crl_number)
        goto out;
    /* What the daemon loads: the root, the intermediates, every anchor of
     * ca.crt (both CAs during a rollover), the CRLs checked against them,
     * the registry. */
    if (trustdb_load(pki, &db, err, sizeof(err)) < 0) {
        con_err("explain", "%s", err);
        goto out;
    }
    /* Sibling issuers as the daemon last took them (their CRL files). */
    for (unsigned i = 0; i < con->cfg->n_trusts; i++) {
        char warn[256];
        if (trustdb_add_issuer_file(db, &con->cfg->trusts[i], con->cfg->pki.dir, time(NULL),
                                    &crl_number[i], stale[i], sizeof(stale[i]), warn,
                                    sizeof(warn)) < 0) {
            con_err("explain", "%s", stale[i]);
            goto out;
        }
        if (warn[0])
            printf("warning: [trust %s]: %s\n", con->cfg->trusts[i].name, warn);
    }
    if (verify_peer(trustdb_trust(db), chain, n, time(NULL),
                    VERIFY_ROLE(ROLE_ADMIN) | VERIFY_ROLE(ROLE_MONITOR) | VERIFY_ROLE(ROLE_TUNNEL),
                    &v) < 0) {
        con_err("explain", "cannot verify %s", argv[1]);
        goto out;
    }
    printf("certificate: %s, serial %s\n", v.subject, v.serial[0] ? v.serial : "?");
    for (size_t i = 0; i < trustdb_trust(db)->n_issuers; i++)
        if (trustdb_trust(db)->issuers[i].ca &&
            !verify_ca_pathlen0(trustdb_trust(db)->issuers[i].ca))
            printf("warning: [trust %s] ca has no pathlen:0: it can sign sub-CAs "
                   "(their peers are refused as of an unknown issuer)\n",
                   trustdb_trust(db)->issuers[i].name);
    for (size_t i = 0; i < trustdb_n_ignored(db); i++)
        printf("note: %s\n", trustdb_ignored(db, i));
    explain_path(trustdb_trust(db), chain, n);
    tr = sibling(con->cfg, v.issuer);
    if (tr) {
        unsigned k = (unsigned)(tr - con->cfg->trusts);
        printf("issuer: %s ([trust %s]: roles", tr->name, tr->name);
        for (int r = ROLE_ADMIN; r <= ROLE_TUNNEL; r++)
            if (tr->roles & CFG_ROLE(r))
                printf(" %s", role_name((enum peer_role)r));
        if (stale[k][0])
            printf("; CRL not fresh: %s)\n", stale[k]);
        else
            printf("; CRL %llu, fresh)\n", (unsigned long long)crl_number[k]);
    }
    if (v.code != VERDICT_OK) {
        printf("refused: %s\n", v.reason);
        goto out;
    }
    role = v.peer ? v.peer->role : (enum peer_role)v.role;
    printf("granted: peer %s, role %s%s%s\n", v.name, role_name(role),
           v.issuer[0] ? ", vouched for by issuer " : "", v.issuer);
    switch (role) {
    case ROLE_ADMIN:
        printf("  management API: read-write\n  gated services: opened for its address\n");
        break;
    case ROLE_MONITOR:
        printf("  management API: read-only\n  gated services: not opened (admins only)\n");
        break;
    case ROLE_TUNNEL:
        printf("  tunnel: yes\n  networks: ");
        if (v.peer)
            print_networks(v.peer, stdout);
        else
            roaming_networks(tr, chain[0]);
        putchar('\n');
        break;
    }
    rc = EXIT_OK;
out:
    for (unsigned i = 0; i < n; i++)
        gnutls_x509_crt_deinit(chain[i]);
    trustdb_unref(db);
    pki_free(pki);
    free(stale);
    free(crl_number);
    return rc;
}
