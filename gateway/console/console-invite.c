/* mtlsgw invite, invites, uninvite: one-time codes for enrollment over the
 * network ([enroll] listen, docs/est.md). */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <json-c/json.h>

#include "cidr.h"
#include "config.h"
#include "console.h"
#include "est-codec.h"
#include "invite.h"
#include "pki-chain.h"
#include "pki.h"
#include "peernet.h"
#include "qr.h"
#include "registry.h"


/* --qr: the join line as a QR code for a phone to carry to the device. */
static void print_join_qr(const char *url, const char *name, const char *code, const char *fp)
{
    char line[512], *text = NULL;

    if (invite_join_line(url, name, code, fp, line, sizeof(line)) < 0 || qr_text(line, &text) < 0)
        con_err("invite", "the QR code could not be made; type the line above instead");
    else
        printf("the same line as a QR code:\n%s", text);
    gnutls_memset(line, 0, sizeof(line));
    if (text)
        gnutls_memset(text, 0, strlen(text));
    free(text);
}

/* mtlsgw invite's command line. */
struct invite_args {
    const char *name;
    enum peer_role role;
    int64_t ttl;
    struct cidr_list nets;
    bool allow_default;
    bool qr; /* --qr */
};

/* Options into a; EXIT_OK, or the exit code after a message. */
static int invite_args_parse(int argc, char **argv, struct invite_args *a)
{
    static const struct option opts[] = {
        {"role", required_argument, NULL, 'r'},
        {"network", required_argument, NULL, 'N'},
        {"ttl", required_argument, NULL, 't'},
        {"allow-default", no_argument, NULL, 'A'},
        {"qr", no_argument, NULL, 'q'},
        {NULL, 0, NULL, 0},
    };
    const char *role_s = NULL, *ttl_s = "24h";
    int c, rc;

    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'r':
            role_s = optarg;
            break;
        case 't':
            ttl_s = optarg;
            break;
        case 'q':
            a->qr = true;
            break;
        case 'N':
            if ((rc = con_add_network("invite", &a->nets, optarg)) != EXIT_OK)
                return rc;
            break;
        case 'A':
            a->allow_default = true;
            break;
        default:
            return con_usage("invite");
        }
    }
    if (optind + 1 != argc || !role_s) {
        con_err("invite", optind + 1 != argc ? "give exactly one peer NAME"
                                             : "--role is required");
        return con_usage("invite");
    }
    a->name = argv[optind];
    if (role_parse(role_s, &a->role) < 0) {
        con_err("invite", "--role %s: unknown role (admin, monitor or tunnel)", role_s);
        return EXIT_USAGE;
    }
    if (!peer_name_valid(a->name)) {
        con_err("invite",
                "'%s' is not a valid peer name (1-63 of A-Z a-z 0-9 . _ -, starting with a "
                "letter or digit)",
                a->name);
        return EXIT_USAGE;
    }
    if (a->nets.n && a->role != ROLE_TUNNEL) {
        con_err("invite", "--network is for tunnel peers; %s would be %s", a->name,
                role_name(a->role));
        return EXIT_USAGE;
    }
    if (invite_parse_duration(ttl_s, &a->ttl) < 0) {
        con_err("invite", "--ttl %s: not a duration from 1s to 365d (e.g. 24h, 30m, 7d)",
                ttl_s);
        return EXIT_USAGE;
    }
    return EXIT_OK;
}

/* As the daemon's user: the name is free, and the fingerprint of the
 * certificate the device will see. 0, or -1 as the invoker after a message. */
static int invite_precheck(struct console *con, struct pki *pki, const struct invite_args *a,
                           char *fp, size_t fplen, char *root_fp, size_t root_fplen)
{
    struct registry *reg = NULL;
    const struct peer *p;
    char err[512] = "";
    const char *gw_path;
    int rc = -1;

    /* An invite for a name that is taken could only fail at the device. */
    if (pki_load_registry(pki, &reg, err, sizeof(err)) < 0) {
        con_as_invoker();
        con_err("invite", "%s", err);
        goto out;
    }
    p = registry_find_active_ci(reg, a->name);
    if (p) {
        con_as_invoker();
        con_err("invite", "peer '%s' is already enrolled (serial %s); revoke it first or choose "
                          "another name (names are compared ignoring case)", p->name, p->serial);
        goto out;
    }
    if (peernet_check(reg, a->name, a->nets.nets, a->nets.n, a->allow_default, err,
                      sizeof(err)) < 0) {
        con_as_invoker();
        con_err("invite", "%s", err);
        goto out;
    }
    /* Under an organization's root (chain.pem, docs/pki.md) the device
     * pins the root: pki_pin_fingerprints. */
    gw_path = con->cfg->mgmt.cert ? con->cfg->mgmt.cert : pki->gw_path;
    if (pki_pin_fingerprints(pki, gw_path, fp, fplen, root_fp, root_fplen, err,
                             sizeof(err)) < 0) {
        con_as_invoker();
        con_err("invite", "the certificate to pin: %s", err);
        goto out;
    }
    rc = 0;
out:
    registry_free(reg);
    return rc;
}

/* What the administrator hands to the device. */
static void invite_print(const struct console *con, const struct invite_args *a,
                          const char *code, const char *fp, const char *root_fp,
                          int64_t expires)
{
    char when[32], url[300];

    time_format_utc(expires, when, sizeof(when));
    invite_join_url(con->cfg->enroll.listen, url, sizeof(url));
    printf("invite for %s (%s", a->name, role_name(a->role));
    for (size_t i = 0; i < a->nets.n; i++)
        printf("%s%s", i ? "," : ", networks ", a->nets.nets[i]);
    printf("), one use, valid until %s\n", when);
    printf("  code                  %s\n", code);
    printf("  gateway SHA-256       %s\n", fp);
    if (root_fp[0]) {
        printf("  root SHA-256          %s\n", root_fp);
        printf("                        (the organization's root above this hub's intermediate "
               "CA: the one to pin)\n");
        fp = root_fp;
    }
    printf("on the device:\n  mtlsgw join %s --name %s --code %s --fingerprint %s\n", url,
           a->name, code, fp);
    if (a->qr)
        print_join_qr(url, a->name, code, fp);
    if (!con->cfg->enroll.listen)
        printf("note: [enroll] listen is not set in %s: the daemon does not serve enrollment "
               "yet\n", con->cfg->path ? con->cfg->path : con->conf_path);
}

int cmd_invite(struct console *con, int argc, char **argv)
{
    struct invite_args a = {0};
    struct invite inv = {0};
    struct pki *pki = NULL;
    char code[INVITE_CODE_LEN] = "", err[512] = "", fp[96] = "", root_fp[96] = "";
    int rc;

    if ((rc = invite_args_parse(argc, argv, &a)) != EXIT_OK)
        goto out;
    rc = EXIT_FAIL;
    if (con_load_config(con) != EXIT_OK)
        goto out;
    /* The enrollment this invite leads to would be refused: say so now. */
    if (peernet_check(NULL, a.name, a.nets.nets, a.nets.n, a.allow_default, err,
                      sizeof(err)) == -EDOM ||
        config_check_peer_networks(con->cfg, a.nets.nets, a.nets.n, err, sizeof(err)) < 0) {
        con_err("invite", "%s", err);
        goto out;
    }
    if (pki_new(con->cfg, &pki) < 0)
        goto out;
    if (con_as_daemon() < 0)
        goto out;
    if (invite_precheck(con, pki, &a, fp, sizeof(fp), root_fp, sizeof(root_fp)) < 0)
        goto out;
    inv.name = (char *)a.name;
    inv.role = (int)a.role;
    inv.networks = a.nets.nets;
    inv.n_networks = a.nets.n;
    inv.created = (int64_t)time(NULL);
    inv.expires = inv.created + a.ttl;
    inv.actor = con->actor;
    rc = invite_create(pki->dir, &inv, code, err, sizeof(err));
    con_as_invoker();
    if (rc < 0) {
        con_err("invite", "%s", err);
        rc = EXIT_FAIL;
        goto out;
    }
    invite_print(con, &a, code, fp, root_fp, inv.expires);
    rc = EXIT_OK;
out:
    gnutls_memset(code, 0, sizeof(code));
    cidr_list_clear(&a.nets);
    pki_free(pki);
    return rc;
}

int cmd_invites(struct console *con, int argc, char **argv)
{
    static const struct option opts[] = {
        {"json", no_argument, NULL, 'j'},
        {NULL, 0, NULL, 0},
    };
    struct invites *set = NULL;
    struct pki *pki = NULL;
    char *path = NULL, err[512] = "";
    bool json = false;
    int64_t now = (int64_t)time(NULL);
    int c, rc = EXIT_FAIL;

    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (c != 'j')
            return con_usage("invites");
        json = true;
    }
    if (optind != argc)
        return con_usage("invites");
    if (con_load_config(con) != EXIT_OK || pki_new(con->cfg, &pki) < 0)
        return EXIT_FAIL;
    path = invite_path(pki->dir);
    if (!path || con_as_daemon() < 0)
        goto out;
    rc = invites_load(path, &set, err, sizeof(err));
    con_as_invoker();
    if (rc < 0) {
        con_err("invites", "%s: %s", path, err[0] ? err : strerror(-rc));
        rc = EXIT_FAIL;
        goto out;
    }
    if (json) {
        struct json_object *arr = json_object_new_array();
        for (size_t i = 0; i < invites_count(set); i++)
            json_object_array_add(arr, invite_public_json(invites_at(set, i), now));
        puts(json_object_to_json_string_ext(arr, JSON_C_TO_STRING_PRETTY |
                                                     JSON_C_TO_STRING_NOSLASHESCAPE));
        json_object_put(arr);
    } else {
        printf("%-20s %-8s %-8s %-20s %-20s %s\n", "NAME", "ROLE", "STATE", "EXPIRES", "USED",
               "NETWORKS");
        for (size_t i = 0; i < invites_count(set); i++) {
            const struct invite *inv = invites_at(set, i);
            char exp[32], used[64] = "-";
            time_format_utc(inv->expires, exp, sizeof(exp));
            if (inv->used_at)
                time_format_utc(inv->used_at, used, sizeof(used));
            printf("%-20s %-8s %-8s %-20s %-20s ", inv->name, role_name(inv->role),
                   invite_state_name(invite_state(inv, now)), exp, used);
            if (!inv->n_networks)
                fputs("-", stdout);
            for (size_t k = 0; k < inv->n_networks; k++)
                printf("%s%s", k ? "," : "", inv->networks[k]);
            putchar('\n');
        }
        if (invites_count(set) == 0)
            printf("(no invites: see 'mtlsgw invite --help')\n");
    }
    rc = EXIT_OK;
out:
    invites_free(set);
    free(path);
    pki_free(pki);
    return rc;
}

int cmd_uninvite(struct console *con, int argc, char **argv)
{
    static const struct option opts[] = {{NULL, 0, NULL, 0}};
    struct pki *pki = NULL;
    char err[512] = "";
    int c, rc;

    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1)
        return con_usage("uninvite");
    if (optind + 1 != argc)
        return con_usage("uninvite");
    if (con_load_config(con) != EXIT_OK || pki_new(con->cfg, &pki) < 0)
        return EXIT_FAIL;
    if (con_as_daemon() < 0) {
        pki_free(pki);
        return EXIT_FAIL;
    }
    rc = invite_withdraw(pki->dir, argv[optind], err, sizeof(err));
    con_as_invoker();
    if (rc < 0)
        con_err("uninvite", "%s", err);
    else
        printf("withdrew the invite for %s; its code opens nothing now\n", argv[optind]);
    pki_free(pki);
    return rc < 0 ? EXIT_FAIL : EXIT_OK;
}
