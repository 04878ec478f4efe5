/* mtlsgw init, csr, enroll, revoke, crl: the CA at the console. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <gnutls/gnutls.h>
#include <gnutls/abstract.h>
#include <gnutls/x509.h>

#include "cidr.h"
#include "config.h"
#include "fsutil.h"
#include "console.h"
#include "p11.h"
#include "pki.h"
#include "pki-chain.h"
#include "privs.h"
#include "registry.h"
#include "verify.h"

#define MAX_HOSTS 32
#define CSR_MAX_SIZE (64 * 1024)
#define PASSWORD_MAX_SIZE 1024

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

static void init_report(const struct console *con, const struct pki *pki,
                        const struct pki_init_opts *o)
{
    unsigned char fp[32];
    size_t fplen = sizeof(fp);

    printf("CA '%s CA' and gateway key made on %s (%s, not extractable)\n", o->cn,
           con->cfg->token.uri, p11_key_type_name((enum p11_key_type)o->key_type));
    printf("  CA certificate       %s (%u days)\n", pki->ca_path, o->days);
    printf("  gateway certificate  %s (", pki->gw_path);
    for (size_t i = 0; i < o->n_hosts; i++)
        printf("%s%s", i ? ", " : "", o->hosts[i]);
    printf(")\n  CRL                  %s\n  registry             %s\n", pki->crl_path,
           pki->reg_path);
    if (gnutls_x509_crt_get_fingerprint(pki->ca, GNUTLS_DIG_SHA256, fp, &fplen) == 0) {
        printf("  CA SHA-256           ");
        for (size_t i = 0; i < fplen; i++)
            printf("%02X%s", fp[i], i + 1 < fplen ? ":" : "\n");
    }
    printf("next: mtlsgw enroll NAME --role admin|monitor|tunnel --csr FILE\n");
}

/* init --force over an existing CA: say what is lost, and ask. */
static int init_confirm(struct pki *pki, bool yes)
{
    struct registry *reg = NULL;
    char lost[1024], err[512], dn[256] = "?";
    size_t dnlen = sizeof(dn), active = 0;
    gnutls_x509_crt_t ca = NULL;

    if (access(pki->ca_path, F_OK) < 0)
        return EXIT_OK; /* nothing to lose but keys an unfinished init left */
    if (con_as_daemon() < 0)
        return EXIT_FAIL;
    if (pki_read_cert(pki->ca_path, &ca, err, sizeof(err)) == 0 &&
        gnutls_x509_crt_get_dn(ca, dn, &dnlen) < 0)
        snprintf(dn, sizeof(dn), "?");
    if (pki_load_registry(pki, &reg, err, sizeof(err)) == 0)
        for (size_t i = 0; i < registry_count(reg); i++)
            active += registry_at(reg, i)->status == PEER_ACTIVE;
    con_as_invoker();
    snprintf(lost, sizeof(lost),
             "--force replaces the CA '%s' (%s) and deletes its key and the gateway key on "
             "the token for good: the %zu active peer(s) in %s lose their trust and must "
             "all be enrolled again, and every spoke must be given the new CA (the old "
             "files are moved to %s/old-DATE/).",
             dn, pki->ca_path, active, pki->reg_path, pki->dir);
    if (ca)
        gnutls_x509_crt_deinit(ca);
    registry_free(reg);
    return con_confirm("init", lost, yes);
}

/* long: one option loop for init's three forms (self-signed, --intermediate,
 * --import-ca), each handed on once parsed. */
int cmd_init(struct console *con, int argc, char **argv)
{
    static const struct option opts[] = {
        {"cn", required_argument, NULL, 'n'},      {"host", required_argument, NULL, 'H'},
        {"key-type", required_argument, NULL, 'k'}, {"days", required_argument, NULL, 'd'},
        {"force", no_argument, NULL, 'f'},          {"yes", no_argument, NULL, 'y'},
        {"intermediate", no_argument, NULL, 'I'},   {"csr-out", required_argument, NULL, 'O'},
        {"import-ca", required_argument, NULL, 'A'}, {"chain", required_argument, NULL, 'c'},
        {NULL, 0, NULL, 0},
    };
    const char *csr_out = NULL, *import_ca = NULL, *chain = NULL;
    bool intermediate = false;
    const char *hosts[MAX_HOSTS];
    bool yes = false;
    char hostname[256];
    struct pki_init_opts o = {.days = 3650, .key_type = P11_KEY_EC_P256};
    struct pki *pki = NULL;
    enum p11_key_type kt;
    char err[512] = "";
    int c, rc = EXIT_FAIL;

    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'n':
            o.cn = optarg;
            break;
        case 'H':
            if (o.n_hosts == MAX_HOSTS) {
                con_err("init", "at most %d --host", MAX_HOSTS);
                return EXIT_USAGE;
            }
            hosts[o.n_hosts++] = optarg;
            break;
        case 'k':
            if (p11_key_type_parse(optarg, &kt) < 0) {
                con_err("init", "--key-type %s: not one of ec-p256, ec-p384, rsa-3072", optarg);
                return EXIT_USAGE;
            }
            o.key_type = (int)kt;
            break;
        case 'd':
            if (!con_parse_uint(optarg, 1, 36500, &o.days)) {
                con_err("init", "--days %s: not a number of days from 1 to 36500", optarg);
                return EXIT_USAGE;
            }
            break;
        case 'f':
            o.force = true;
            break;
        case 'I':
            intermediate = true;
            break;
        case 'O':
            csr_out = optarg;
            break;
        case 'A':
            import_ca = optarg;
            break;
        case 'c':
            chain = optarg;
            break;
        case 'y':
            yes = true;
            break;
        default:
            return con_usage("init");
        }
    }
    if (import_ca || chain) {
        if (!import_ca || !chain || intermediate || csr_out || o.cn || o.n_hosts ||
            optind != argc) {
            con_err("init", "--import-ca FILE goes with --chain FILE (the root, then any "
                            "intermediates) and nothing else: name and hosts come from "
                            "'init --intermediate'");
            return con_usage("init");
        }
        return con_init_import(con, import_ca, chain);
    }
    if (intermediate != (csr_out != NULL)) {
        con_err("init", "--intermediate and --csr-out FILE go together");
        return con_usage("init");
    }
    if (!o.cn || optind != argc) {
        if (!o.cn)
            con_err("init", "--cn NAME is required");
        return con_usage("init");
    }
    if (!o.cn[0] || strlen(o.cn) > 60) {
        con_err("init", "--cn '%s': give 1 to 60 characters", o.cn);
        return EXIT_USAGE;
    }
    if (o.n_hosts == 0) {
        if (gethostname(hostname, sizeof(hostname)) < 0 || !hostname[0]) {
            con_err("init", "cannot read this machine's hostname: give --host NAME");
            return EXIT_FAIL;
        }
        hostname[sizeof(hostname) - 1] = '\0';
        hosts[o.n_hosts++] = hostname;
    }
    o.hosts = hosts;
    o.actor = con->actor;
    if (intermediate)
        return con_init_intermediate(con, &o, csr_out);
    if (open_pki(con, &pki) < 0)
        return EXIT_FAIL;
    if (o.force && (rc = init_confirm(pki, yes)) != EXIT_OK)
        goto out;
    rc = EXIT_FAIL;
    if (con_make_pki_dir("init", pki->dir) < 0 || con_as_daemon() < 0)
        goto out;
    if (pki_init(pki, &o, err, sizeof(err)) < 0) {
        con_as_invoker();
        con_err("init", "%s", err);
        goto out;
    }
    con_as_invoker();
    init_report(con, pki, &o);
    rc = EXIT_OK;
out:
    pki_free(pki);
    return rc;
}

int cmd_csr(struct console *con, int argc, char **argv)
{
    static const struct option opts[] = {
        {"cn", required_argument, NULL, 'n'},
        {"out", required_argument, NULL, 'o'},
        {"key-type", required_argument, NULL, 'k'},
        {"new-key", no_argument, NULL, 'N'},
        {"force", no_argument, NULL, 'f'},
        {NULL, 0, NULL, 0},
    };
    const char *cn = NULL, *out = NULL;
    bool new_key = false, force = false;
    enum p11_key_type kt = P11_KEY_EC_P256;
    struct pki *pki = NULL;
    gnutls_privkey_t key = NULL;
    gnutls_x509_crq_t crq = NULL;
    gnutls_datum_t pem = {0};
    char err[512] = "";
    int c, rc = EXIT_FAIL, made = 0;

    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'n':
            cn = optarg;
            break;
        case 'o':
            out = optarg;
            break;
        case 'k':
            if (p11_key_type_parse(optarg, &kt) < 0) {
                con_err("csr", "--key-type %s: not one of ec-p256, ec-p384, rsa-3072", optarg);
                return EXIT_USAGE;
            }
            break;
        case 'N':
            new_key = true;
            break;
        case 'f':
            force = true;
            break;
        default:
            return con_usage("csr");
        }
    }
    if (!cn || !out || optind != argc)
        return con_usage("csr");
    if (con_out_check("csr", "--out", out, force) != EXIT_OK)
        return EXIT_FAIL;
    if (!peer_name_valid(cn)) {
        con_err("csr", "--cn '%s': use 1-63 of A-Z a-z 0-9 . _ - (it becomes the peer name)",
                cn);
        return EXIT_USAGE;
    }
    if (open_pki(con, &pki) < 0)
        return EXIT_FAIL;
    if (con_as_daemon() < 0)
        goto out;
    if (pki_open_token(pki, err, sizeof(err)) < 0) {
        con_as_invoker();
        con_err("csr", "%s", err);
        goto out;
    }
    made = p11_key_exists(pki->tok, PKI_LABEL_DEVICE);
    if (made == 1 && new_key) {
        /* A revoked (perhaps compromised) key is never enrolled again. */
        if (p11_key_delete(pki->tok, PKI_LABEL_DEVICE) < 0) {
            con_as_invoker();
            con_err("csr", "token %s: cannot delete the old device key: %s",
                    con->cfg->token.uri, p11_token_error(pki->tok));
            goto out;
        }
        made = 0;
    }
    if (made == 0) {
        if (p11_key_generate(pki->tok, PKI_LABEL_DEVICE, kt) < 0) {
            con_as_invoker();
            con_err("csr", "token %s: cannot generate the device key: %s", con->cfg->token.uri,
                    p11_token_error(pki->tok));
            goto out;
        }
        made = 1;
    } else if (made == 1) {
        made = 0;
    } else {
        con_as_invoker();
        con_err("csr", "token %s: %s", con->cfg->token.uri, p11_token_error(pki->tok));
        goto out;
    }
    if (p11_key_load(pki->tok, PKI_LABEL_DEVICE, &key) < 0 ||
        p11_csr_make(key, cn, &crq) < 0 ||
        gnutls_x509_crq_export2(crq, GNUTLS_X509_FMT_PEM, &pem) < 0) {
        con_as_invoker();
        con_err("csr", "token %s: cannot sign the CSR with the device key: %s",
                con->cfg->token.uri, p11_token_error(pki->tok));
        goto out;
    }
    con_as_invoker();
    if (con_write_file("csr", "--out", out, pem.data, pem.size, 0644, force) < 0)
        goto out;
    fprintf(con_note_stream(out), "%s device key '%s' on %s; CSR for CN=%s written to %s\n",
            made ? "made" : "reused", PKI_LABEL_DEVICE, con->cfg->token.uri, cn, out);
    rc = EXIT_OK;
out:
    gnutls_free(pem.data);
    if (crq)
        gnutls_x509_crq_deinit(crq);
    if (key)
        gnutls_privkey_deinit(key);
    pki_free(pki);
    return rc;
}

struct enroll_out {
    const char *path;     /* --out or --p12, NULL: print after commit */
    bool p12;
    bool leaf_only;       /* --leaf-only: the certificate without the chain */
    bool force;           /* --force: replace a file, write through a symbolic link */
    gnutls_x509_privkey_t softkey;
    const char *password;
    const char *name;
    struct pki *pki;
};

/* Runs before the registry is written: a failure here records nothing. */
static int enroll_write(void *ctx, gnutls_x509_crt_t crt, char *err, size_t errlen)
{
    struct enroll_out *eo = ctx;
    gnutls_datum_t data = {0};
    char msg[400];
    int rc;

    if (!eo->path)
        return 0;
    if (eo->p12) {
        /* The chain up to the root: keytool and browsers build the path
         * with the root alone trusted (docs/pki.md). */
        gnutls_x509_crt_t *cas = NULL;
        size_t n_cas = 0;
        rc = pki_chain_to_root(eo->pki, &cas, &n_cas, err, errlen);
        if (rc == 0)
            rc = p11_p12_export_chain(eo->softkey, crt, cas, n_cas, eo->name, eo->password,
                                      &data);
        pki_free_certs(cas, n_cas);
        if (rc < 0) {
            snprintf(err, errlen, "enroll %s: cannot make the PKCS#12: %s", eo->name,
                     strerror(-rc));
            return rc;
        }
    } else if ((eo->leaf_only ? pki_cert_pem(crt, &data)
                              : pki_cert_chain_pem(eo->pki, crt, &data, err, errlen)) < 0) {
        snprintf(err, errlen, "enroll %s: cannot encode the certificate", eo->name);
        return -EINVAL;
    }
    if (con_as_invoker() < 0) {
        gnutls_free(data.data);
        return -EPERM;
    }
    rc = con_write_out(eo->p12 ? "--p12" : "--out", eo->path, data.data, data.size,
                       eo->p12 ? 0600 : 0644, eo->force, msg, sizeof(msg));
    if (rc < 0)
        snprintf(err, errlen, "enroll %s: %s (nothing was recorded)", eo->name, msg);
    gnutls_memset(data.data, 0, data.size);
    gnutls_free(data.data);
    if (con_as_daemon() < 0 && rc == 0) {
        snprintf(err, errlen, "enroll %s: cannot switch back to the daemon's user", eo->name);
        rc = -EPERM;
    }
    return rc;
}

/* mtlsgw enroll's command line. */
struct enroll_args {
    const char *role_s, *csr_path, *out, *p12, *pwfile, *name;
    struct cidr_list nets;
    unsigned days;
    enum p11_key_type kt;
    enum peer_role role;
    bool force, allow_default;
    bool leaf_only;
};

/* The key to certify: a CSR's public key, or (--p12) a new software key. */
struct enroll_key {
    char *csr_text, *password;
    size_t csr_len, pw_len;
    gnutls_x509_crq_t crq;
    gnutls_x509_privkey_t softkey;
    gnutls_privkey_t softpriv;
    gnutls_pubkey_t pub;
};

static void enroll_key_clear(struct enroll_key *k)
{
    if (k->password) {
        gnutls_memset(k->password, 0, k->pw_len);
        free(k->password);
    }
    free(k->csr_text);
    if (k->crq)
        gnutls_x509_crq_deinit(k->crq);
    if (k->pub)
        gnutls_pubkey_deinit(k->pub);
    if (k->softpriv)
        gnutls_privkey_deinit(k->softpriv);
    if (k->softkey)
        gnutls_x509_privkey_deinit(k->softkey);
}

/* Options into a; EXIT_OK, or the exit code after a message. */
static int enroll_parse(int argc, char **argv, struct enroll_args *a)
{
    static const struct option opts[] = {
        {"role", required_argument, NULL, 'r'},
        {"csr", required_argument, NULL, 'C'},
        {"out", required_argument, NULL, 'o'},
        {"p12", required_argument, NULL, 'p'},
        {"password-file", required_argument, NULL, 'P'},
        {"network", required_argument, NULL, 'N'},
        {"allow-default", no_argument, NULL, 'A'},
        {"days", required_argument, NULL, 'd'},
        {"key-type", required_argument, NULL, 'k'},
        {"force", no_argument, NULL, 'f'},
        {"leaf-only", no_argument, NULL, 'L'},
        {NULL, 0, NULL, 0},
    };
    int c, rc;

    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'r':
            a->role_s = optarg;
            break;
        case 'C':
            a->csr_path = optarg;
            break;
        case 'o':
            a->out = optarg;
            break;
        case 'p':
            a->p12 = optarg;
            break;
        case 'P':
            a->pwfile = optarg;
            break;
        case 'N':
            if ((rc = con_add_network("enroll", &a->nets, optarg)) != EXIT_OK)
                return rc;
            break;
        case 'd':
            if (!con_parse_uint(optarg, 1, 3650, &a->days)) {
                con_err("enroll", "--days %s: not a number of days from 1 to 3650", optarg);
                return EXIT_USAGE;
            }
            break;
        case 'k':
            if (p11_key_type_parse(optarg, &a->kt) < 0) {
                con_err("enroll", "--key-type %s: not one of ec-p256, ec-p384, rsa-3072",
                        optarg);
                return EXIT_USAGE;
            }
            break;
        case 'f':
            a->force = true;
            break;
        case 'L':
            a->leaf_only = true;
            break;
        case 'A':
            a->allow_default = true;
            break;
        default:
            return con_usage("enroll");
        }
    }
    if (optind + 1 != argc || !a->role_s || (!a->csr_path == !a->p12) ||
        (a->csr_path && a->pwfile) || (a->p12 && !a->pwfile) || (a->p12 && a->out) ||
        (a->p12 && a->leaf_only)) {
        if (optind + 1 != argc)
            con_err("enroll", "give exactly one peer NAME");
        else if (!a->role_s)
            con_err("enroll", "--role is required");
        else if (!a->csr_path == !a->p12)
            con_err("enroll", "give either --csr FILE or --p12 FILE");
        else if (a->p12 && !a->pwfile)
            con_err("enroll", "--p12 needs --password-file FILE");
        else
            con_err("enroll", "--out%s and --password-file do not go with %s",
                    a->p12 ? ", --leaf-only" : "", a->csr_path ? "--csr" : "--p12");
        return con_usage("enroll");
    }
    a->name = argv[optind];
    if (role_parse(a->role_s, &a->role) < 0) {
        con_err("enroll", "--role %s: unknown role (admin, monitor or tunnel)", a->role_s);
        return EXIT_USAGE;
    }
    if (!peer_name_valid(a->name)) {
        con_err("enroll",
                "'%s' is not a valid peer name (1-63 of A-Z a-z 0-9 . _ -, starting with a "
                "letter or digit)",
                a->name);
        return EXIT_USAGE;
    }
    return EXIT_OK;
}

/* Read the administrator's files as the invoking user: the CSR, or the
 * password for a new software key. 0 or -1 after a message. */
static int enroll_read_key(const struct enroll_args *a, struct enroll_key *k)
{
    char err[512] = "", *nl;
    gnutls_datum_t d;

    if (a->csr_path) {
        if (con_read_file("enroll", "--csr", a->csr_path, CSR_MAX_SIZE, &k->csr_text,
                          &k->csr_len) < 0)
            return -1;
        d.data = (unsigned char *)k->csr_text;
        d.size = (unsigned)k->csr_len;
        if (p11_csr_parse(&d, &k->crq, err, sizeof(err)) < 0) {
            const char *what = con_not_a_csr(k->csr_text, k->csr_len);
            con_err("enroll", "CSR in %s: %s", a->csr_path, what ? what : err);
            return -1;
        }
        if (gnutls_pubkey_init(&k->pub) < 0 ||
            gnutls_pubkey_import_x509_crq(k->pub, k->crq, 0) < 0) {
            con_err("enroll", "CSR in %s: its public key cannot be read", a->csr_path);
            return -1;
        }
        return 0;
    }
    if (con_read_file("enroll", "--password-file", a->pwfile, PASSWORD_MAX_SIZE, &k->password,
                      &k->pw_len) < 0)
        return -1;
    nl = strpbrk(k->password, "\r\n");
    if (nl)
        *nl = '\0';
    if (strlen(k->password) < 8) {
        con_err("enroll", "--password-file %s: the password must have at least 8 "
                          "characters on its first line", a->pwfile);
        return -1;
    }
    if (p11_softkey_generate(a->kt, &k->softkey) < 0 ||
        gnutls_privkey_init(&k->softpriv) < 0 ||
        gnutls_privkey_import_x509(k->softpriv, k->softkey, 0) < 0 ||
        gnutls_pubkey_init(&k->pub) < 0 ||
        gnutls_pubkey_import_privkey(k->pub, k->softpriv, 0, 0) < 0) {
        con_err("enroll", "cannot generate a %s key", p11_key_type_name(a->kt));
        return -1;
    }
    return 0;
}

/* The certificate on stdout when no file took it, and one line saying so. */
static void enroll_report(const struct enroll_out *eo, enum peer_role role,
                          gnutls_x509_crt_t crt)
{
    char serial[64], when[32];

    verify_serial_hex(crt, serial, sizeof(serial));
    time_format_utc(gnutls_x509_crt_get_expiration_time(crt), when, sizeof(when));
    if (!eo->path) {
        gnutls_datum_t pem = {0};
        char err[256];
        if ((eo->leaf_only ? pki_cert_pem(crt, &pem)
                           : pki_cert_chain_pem(eo->pki, crt, &pem, err, sizeof(err))) == 0)
            fwrite(pem.data, 1, pem.size, stdout);
        gnutls_free(pem.data);
    }
    fprintf(eo->path ? con_note_stream(eo->path) : stderr,
            "enrolled %s as %s, serial %s, valid until %s%s%s\n", eo->name, role_name(role),
            serial, when, eo->path ? ", written to " : "", eo->path ? eo->path : "");
}

int cmd_enroll(struct console *con, int argc, char **argv)
{
    struct enroll_args a = {.kt = P11_KEY_EC_P256};
    struct enroll_key k = {0};
    struct pki *pki = NULL;
    gnutls_x509_crt_t crt = NULL;
    struct pki_enroll_req req = {0};
    struct enroll_out eo = {0};
    char err[512] = "";
    int rc;

    if ((rc = enroll_parse(argc, argv, &a)) != EXIT_OK)
        goto out;
    rc = EXIT_FAIL;
    if ((a.p12 || a.out) && con_out_check("enroll", a.p12 ? "--p12" : "--out",
                                          a.p12 ? a.p12 : a.out, a.force) != EXIT_OK)
        goto out;
    if (enroll_read_key(&a, &k) < 0 || open_pki(con, &pki) < 0)
        goto out;
    eo.path = a.csr_path ? a.out : a.p12;
    eo.p12 = a.p12 != NULL;
    eo.force = a.force;
    eo.leaf_only = a.leaf_only;
    eo.softkey = k.softkey;
    eo.password = k.password;
    eo.name = a.name;
    eo.pki = pki;
    req.name = a.name;
    req.role = (int)a.role;
    req.key = k.pub;
    req.networks = a.nets.nets;
    req.n_networks = a.nets.n;
    req.allow_default = a.allow_default;
    req.days = a.days ? a.days : con->cfg->pki.peer_days;
    req.actor = con->actor;
    req.before_commit = enroll_write;
    req.ctx = &eo;
    if (con_as_daemon() < 0)
        goto out;
    if (pki_enroll(pki, &req, &crt, err, sizeof(err)) < 0) {
        con_as_invoker();
        con_err("enroll", "%s", err);
        goto out;
    }
    con_as_invoker();
    enroll_report(&eo, a.role, crt);
    /* Not acknowledged is no failure here: the peer is refused until the
     * daemon reads the registry (fail closed), its watch does within a
     * second, and the certificate is already issued (docs/console.md). */
    con_notify_daemon(con, pki, "enroll");
    rc = EXIT_OK;
out:
    cidr_list_clear(&a.nets);
    enroll_key_clear(&k);
    if (crt)
        gnutls_x509_crt_deinit(crt);
    pki_free(pki);
    return rc;
}

int cmd_revoke(struct console *con, int argc, char **argv)
{
    static const struct option opts[] = {
        {"reason", required_argument, NULL, 'r'},
        {NULL, 0, NULL, 0},
    };
    const char *reason = "unspecified";
    struct pki *pki = NULL;
    char err[512] = "";
    int c, rc = EXIT_FAIL;

    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (c != 'r')
            return con_usage("revoke");
        reason = optarg;
    }
    if (optind + 1 != argc)
        return con_usage("revoke");
    if (!pki_reason_valid(reason)) {
        con_err("revoke", "--reason %s: not one of unspecified, keyCompromise, superseded, "
                          "cessationOfOperation", reason);
        return EXIT_USAGE;
    }
    if (open_pki(con, &pki) < 0)
        return EXIT_FAIL;
    if (con_as_daemon() < 0)
        goto out;
    if (pki_revoke(pki, argv[optind], reason, con->actor, err, sizeof(err)) < 0) {
        con_as_invoker();
        con_err("revoke", "%s", err);
        goto out;
    }
    con_as_invoker();
    printf("revoked %s (%s); CRL re-signed: %s\n", argv[optind], reason, pki->crl_path);
    rc = con_notify_daemon(con, pki, "revoke");
out:
    pki_free(pki);
    return rc;
}

int cmd_crl(struct console *con, int argc, char **argv)
{
    static const struct option opts[] = {
        {"out", required_argument, NULL, 'o'},
        {"force", no_argument, NULL, 'f'},
        {NULL, 0, NULL, 0},
    };
    const char *out = NULL;
    bool force = false;
    struct pki *pki = NULL;
    gnutls_x509_crl_t crl = NULL;
    gnutls_datum_t pem = {0};
    char err[512] = "";
    int c, rc = EXIT_FAIL;

    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (c == 'f')
            force = true;
        else if (c == 'o')
            out = optarg;
        else
            return con_usage("crl");
    }
    if (optind != argc)
        return con_usage("crl");
    if (out && con_out_check("crl", "--out", out, force) != EXIT_OK)
        return EXIT_FAIL;
    if (open_pki(con, &pki) < 0)
        return EXIT_FAIL;
    /* Re-encoded from the parsed CRL, so only a well-formed CRL is handed on. */
    if (pki_read_crl(pki, &crl, err, sizeof(err)) < 0) {
        con_err("crl", "%s", err);
        goto out;
    }
    if (gnutls_x509_crl_export2(crl, GNUTLS_X509_FMT_PEM, &pem) < 0) {
        con_err("crl", "cannot encode the CRL from %s", pki->crl_path);
        goto out;
    }
    if (out) {
        if (con_write_file("crl", "--out", out, pem.data, pem.size, 0644, force) < 0)
            goto out;
    } else {
        fwrite(pem.data, 1, pem.size, stdout);
    }
    rc = EXIT_OK;
out:
    gnutls_free(pem.data);
    if (crl)
        gnutls_x509_crl_deinit(crl);
    pki_free(pki);
    return rc;
}
