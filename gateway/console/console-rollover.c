/* mtlsgw ca rollover, ca retire-old: a new CA without a flag day. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

#include "config.h"
#include "console.h"
#include "p11.h"
#include "pki-rollover.h"
#include "pki.h"
#include "registry.h"

const char *con_ca_issuer(const struct rollover *ro, const struct peer *p)
{
    if (!ro)
        return "-";
    return rollover_on_old(ro, p) ? "old" : "new";
}

static int open_pki(struct console *con, struct pki **pki)
{
    if (con_load_config(con) != EXIT_OK)
        return -EINVAL;
    if (pki_new(con->cfg, pki) < 0) {
        fprintf(stderr, "mtlsgw: out of memory\n");
        return -ENOMEM;
    }
    return 0;
}

static void print_fp(const char *label, gnutls_x509_crt_t crt)
{
    unsigned char fp[32];
    size_t len = sizeof(fp);

    if (gnutls_x509_crt_get_fingerprint(crt, GNUTLS_DIG_SHA256, fp, &len) < 0)
        return;
    printf("  %-20s ", label);
    for (size_t i = 0; i < len; i++)
        printf("%02X%s", fp[i], i + 1 < len ? ":" : "\n");
}

static int ca_rollover(struct console *con, int argc, char **argv)
{
    static const struct option opts[] = {
        {"key-type", required_argument, NULL, 'k'},
        {"days", required_argument, NULL, 'd'},
        {"yes", no_argument, NULL, 'y'},
        {NULL, 0, NULL, 0},
    };
    struct pki_rollover_opts o = {.days = 3650, .key_type = P11_KEY_EC_P256};
    struct pki *pki = NULL;
    enum p11_key_type kt;
    bool yes = false;
    char err[768] = "";
    int c, rc = EXIT_FAIL;

    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'k':
            if (p11_key_type_parse(optarg, &kt) < 0) {
                con_err("ca rollover", "--key-type %s: not one of ec-p256, ec-p384, rsa-3072",
                        optarg);
                return EXIT_USAGE;
            }
            o.key_type = (int)kt;
            break;
        case 'd':
            if (!con_parse_uint(optarg, 1, 36500, &o.days)) {
                con_err("ca rollover", "--days %s: not a number of days from 1 to 36500",
                        optarg);
                return EXIT_USAGE;
            }
            break;
        case 'y':
            yes = true;
            break;
        default:
            return con_usage("ca");
        }
    }
    if (optind != argc)
        return con_usage("ca");
    if (open_pki(con, &pki) < 0)
        return EXIT_FAIL;
    rc = con_confirm("ca rollover",
                     "this makes a new CA key on the token and a new CA certificate; ca.crt "
                     "will hold both CAs, gateway.crt is reissued by the new CA, and new "
                     "certificates come from the new CA. The old CA stays trusted until "
                     "'mtlsgw ca retire-old'; nothing is deleted",
                     yes);
    if (rc != EXIT_OK)
        goto out;
    rc = EXIT_FAIL;
    o.actor = con->actor;
    if (con_as_daemon() < 0)
        goto out;
    if (pki_rollover(pki, &o, err, sizeof(err)) < 0) {
        con_as_invoker();
        con_err("ca rollover", "%s", err);
        goto out;
    }
    con_as_invoker();
    printf("new CA made on %s (%s, not extractable); the old CA stays trusted\n",
           con->cfg->token.uri, p11_key_type_name((enum p11_key_type)o.key_type));
    printf("  ca.crt               %s (both CAs: give it to peers)\n", pki->ca_path);
    printf("  new CA               %s/%s\n", pki->dir, PKI_CA_NEW_FILE);
    printf("  old CA               %s/%s\n", pki->dir, PKI_CA_OLD_FILE);
    printf("  cross certificates   %s/%s/ (new-by-old.crt, old-by-new.crt)\n", pki->dir,
           PKI_CROSS_DIR);
    printf("  gateway certificate  %s (from the new CA, with new-by-old)\n", pki->gw_path);
    printf("  CRLs                 %s, %s/%s\n", pki->crl_path, pki->dir, PKI_CRL_OLD_FILE);
    print_fp("new CA SHA-256", pki->ca);
    printf("next: restart mtlsgwd (it then serves the new gateway certificate), renew each\n"
           "peer (mtlsgw renew on spokes, EST simplereenroll), watch 'mtlsgw peers' ISSUER,\n"
           "then 'mtlsgw ca retire-old'\n");
    rc = con_notify_daemon(con, pki, "ca rollover");
out:
    pki_free(pki);
    return rc;
}

static int ca_retire_old(struct console *con, int argc, char **argv)
{
    static const struct option opts[] = {
        {"force", no_argument, NULL, 'f'},
        {"yes", no_argument, NULL, 'y'},
        {NULL, 0, NULL, 0},
    };
    struct pki *pki = NULL;
    char **still = NULL;
    bool yes = false, force = false;
    char err[768] = "";
    int c, rc = EXIT_FAIL;

    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (c == 'f')
            force = true;
        else if (c == 'y')
            yes = true;
        else
            return con_usage("ca");
    }
    if (optind != argc)
        return con_usage("ca");
    if (open_pki(con, &pki) < 0)
        return EXIT_FAIL;
    rc = con_confirm("ca retire-old",
                     "this ends the CA rollover: the old CA is no longer trusted, and every "
                     "peer still holding a certificate of it is refused from then on (with "
                     "--force they are revoked)",
                     yes);
    if (rc != EXIT_OK)
        goto out;
    rc = EXIT_FAIL;
    if (con_as_daemon() < 0)
        goto out;
    if (pki_retire_old(pki, force, con->actor, &still, err, sizeof(err)) < 0) {
        con_as_invoker();
        con_err("ca retire-old", "%s", err);
        for (size_t i = 0; still && still[i]; i++)
            fprintf(stderr, "  still on the old CA: %s\n", still[i]);
        goto out;
    }
    con_as_invoker();
    for (size_t i = 0; force && still && still[i]; i++)
        printf("  revoked (--force, cessationOfOperation): %s\n", still[i]);
    printf("old CA retired: %s holds the new CA alone; its files are in %s/retired-*/\n"
           "(its key stays on the token)\n",
           pki->ca_path, pki->dir);
    rc = con_notify_daemon(con, pki, "ca retire-old");
out:
    pki_names_free(still);
    pki_free(pki);
    return rc;
}

int cmd_ca(struct console *con, int argc, char **argv)
{
    if (argc < 2)
        return con_usage("ca");
    optind = 1;
    if (strcmp(argv[1], "rollover") == 0)
        return ca_rollover(con, argc - 1, argv + 1);
    if (strcmp(argv[1], "retire-old") == 0)
        return ca_retire_old(con, argc - 1, argv + 1);
    con_err("ca", "unknown subcommand '%s' (rollover, retire-old)", argv[1]);
    return con_usage("ca");
}

void con_ca_expiry_note(long long days)
{
    static const int marks[] = {30, 90, 180};

    if (days < 0)
        return;
    for (size_t i = 0; i < sizeof(marks) / sizeof(marks[0]); i++) {
        if (days <= marks[i]) {
            printf("warning    the CA expires in %lld days (under %d): make the next one now, "
                   "without a flag day: mtlsgw ca rollover\n",
                   days, marks[i]);
            return;
        }
    }
}
