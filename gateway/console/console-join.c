/* mtlsgw join, renew: the device side of enrollment over the network
 * (gateway/est-client.c, docs/est.md). */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <gnutls/gnutls.h>
#include <gnutls/abstract.h>
#include <gnutls/x509.h>

#include "config.h"
#include "console.h"
#include "est-client.h"
#include "est-codec.h"
#include "fsutil.h"
#include "p11.h"
#include "pki.h"
#include "pki-chain.h"
#include "privs.h"
#include "registry.h"
#include "verify.h"

#define CODE_MAX 128

/* The device's pki dir may not exist yet: make it as init does (as root,
 * then handed to the daemon's user, who writes inside it). */
static int ensure_dir(const char *dir)
{
    return con_make_pki_dir("join", dir);
}

/* An invite is used once: know first that what it brings can be stored. */
static int state_writable(const char *path)
{
    int rc = fs_state_check(path);

    if (rc < 0)
        con_err("join", "cannot write %s: %s (the invite was not used)", path, fs_strerror(rc));
    return rc;
}

static int certs_pem(gnutls_x509_crt_t *certs, size_t n, gnutls_datum_t *out)
{
    size_t total = 0;
    gnutls_datum_t *parts = calloc(n, sizeof(*parts));
    int rc = 0;

    if (!parts)
        return -ENOMEM;
    for (size_t i = 0; i < n && rc == 0; i++) {
        if (pki_cert_pem(certs[i], &parts[i]) < 0)
            rc = -EINVAL;
        total += parts[i].size;
    }
    if (rc == 0 && !(out->data = gnutls_malloc(total + 1)))
        rc = -ENOMEM;
    if (rc == 0) {
        out->size = 0;
        for (size_t i = 0; i < n; i++) {
            memcpy(out->data + out->size, parts[i].data, parts[i].size);
            out->size += parts[i].size;
        }
    }
    for (size_t i = 0; i < n; i++)
        gnutls_free(parts[i].data);
    free(parts);
    return rc;
}

/* "HOST" of https://HOST[:PORT]/..., for the [uplink] lines. */
static void url_host(const char *url, char *host, size_t len)
{
    const char *p = strstr(url, "://"), *e;

    p = p ? p + 3 : url;
    if (*p == '[') {
        e = strchr(p, ']');
        e = e ? e + 1 : p + strlen(p);
    } else {
        e = p + strcspn(p, ":/");
    }
    snprintf(host, len, "%.*s", (int)(e - p), p);
}

/* mtlsgw join's command line. */
struct join_args {
    const char *url, *code, *name, *ca, *fp_s;
    char hostname[256];
    unsigned char pin[32]; /* --fingerprint, parsed */
    bool new_key;          /* --new-key: replace the device key first */
};

/* Options into a; EXIT_OK, or the exit code after a message. */
static int join_parse(int argc, char **argv, struct join_args *a)
{
    static const struct option opts[] = {
        {"code", required_argument, NULL, 'C'},
        {"name", required_argument, NULL, 'n'},
        {"ca", required_argument, NULL, 'a'},
        {"fingerprint", required_argument, NULL, 'f'},
        {"new-key", no_argument, NULL, 'N'},
        {NULL, 0, NULL, 0},
    };
    int c;

    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'C': a->code = optarg; break;
        case 'n': a->name = optarg; break;
        case 'a': a->ca = optarg; break;
        case 'f': a->fp_s = optarg; break;
        case 'N': a->new_key = true; break;
        default: return con_usage("join");
        }
    }
    if (optind + 1 != argc || !a->code || !a->ca == !a->fp_s) {
        if (optind + 1 != argc)
            con_err("join", "give the hub's enrollment URL (https://HUB:PORT)");
        else if (!a->code)
            con_err("join", "--code CODE is required (from 'mtlsgw invite' on the hub)");
        else
            con_err("join", "give either --ca FILE or --fingerprint SHA256 to trust the hub");
        return con_usage("join");
    }
    a->url = argv[optind];
    if (strncmp(a->url, "https://", 8) != 0) {
        con_err("join", "%s: the URL must start with https://", a->url);
        return EXIT_USAGE;
    }
    if (strlen(a->code) >= CODE_MAX) {
        con_err("join", "--code: too long for an invite code");
        return EXIT_USAGE;
    }
    if (a->fp_s && est_fingerprint_parse(a->fp_s, a->pin) < 0) {
        con_err("join", "--fingerprint %s: not a SHA-256 (64 hex digits, colons allowed)",
                a->fp_s);
        return EXIT_USAGE;
    }
    if (!a->name) {
        if (gethostname(a->hostname, sizeof(a->hostname)) < 0 || !a->hostname[0]) {
            con_err("join", "cannot read this machine's hostname: give --name NAME");
            return EXIT_FAIL;
        }
        a->hostname[sizeof(a->hostname) - 1] = '\0';
        a->name = a->hostname;
    }
    if (!peer_name_valid(a->name)) {
        con_err("join", "%s '%s' is not a valid peer name (1-63 of A-Z a-z 0-9 . _ -): give "
                        "the name of the invite", a->name == a->hostname ? "hostname" : "--name",
                a->name);
        return EXIT_FAIL;
    }
    return EXIT_OK;
}

/* As the daemon's user: the device key (made when missing) and a CSR for
 * name signed with it. *made: whether the key was there before (1) or not
 * (0). 0, or -1 as the invoker after a message. */
static int join_device_csr(struct console *con, struct pki *pki, const char *name,
                           bool new_key, int *made, gnutls_privkey_t *key,
                           gnutls_x509_crq_t *crq)
{
    char err[512] = "";

    if (pki_open_token(pki, err, sizeof(err)) < 0) {
        con_as_invoker();
        con_err("join", "%s", err);
        return -1;
    }
    *made = p11_key_exists(pki->tok, PKI_LABEL_DEVICE);
    /* A revoked key is never enrolled again: a device re-joining after a
     * revocation needs a fresh one (as csr --new-key). */
    if (*made == 1 && new_key) {
        if (p11_key_delete(pki->tok, PKI_LABEL_DEVICE) < 0) {
            con_as_invoker();
            con_err("join", "token %s: cannot delete the old device key: %s",
                    con->cfg->token.uri, p11_token_error(pki->tok));
            return -1;
        }
        *made = 0;
    }
    if (*made == 0 && p11_key_generate(pki->tok, PKI_LABEL_DEVICE, P11_KEY_EC_P256) < 0) {
        con_as_invoker();
        con_err("join", "token %s: cannot generate the device key: %s", con->cfg->token.uri,
                p11_token_error(pki->tok));
        return -1;
    }
    if (*made < 0 || p11_key_load(pki->tok, PKI_LABEL_DEVICE, key) < 0 ||
        p11_csr_make(*key, name, crq) < 0) {
        con_as_invoker();
        con_err("join", "token %s: cannot use the device key: %s", con->cfg->token.uri,
                p11_token_error(pki->tok));
        return -1;
    }
    return 0;
}

/* As the daemon's user: the hub's CA certificates and the device's. The
 * roots among the CAs go to hub-ca.crt (what the uplink trusts), the
 * intermediates after the device's certificate (what it sends), so that
 * a hub under the same root that never issued it can build its path. 0, or
 * -1 as the invoker after a message. */
static int join_write(const char *ca_path, const char *dev_path, gnutls_x509_crt_t crt,
                      gnutls_x509_crt_t *cas, size_t n_cas)
{
    gnutls_datum_t pem = {0}, ca_pem = {0};
    gnutls_x509_crt_t *roots = calloc(n_cas + 1, sizeof(*roots));
    gnutls_x509_crt_t *mine = calloc(n_cas + 1, sizeof(*mine));
    size_t n_roots = 0, n_mine = 1;
    const char *failed;
    int rc = -1;

    if (!roots || !mine)
        goto out;
    mine[0] = crt;
    for (size_t i = 0; i < n_cas; i++) {
        if (pki_cert_is_root(cas[i]))
            roots[n_roots++] = cas[i];
        else
            mine[n_mine++] = cas[i];
    }
    if (n_roots == 0) { /* no root sent: trust what was, as before */
        memcpy(roots, cas, n_cas * sizeof(*roots));
        n_roots = n_cas;
        n_mine = 1;
    }
    if (pki_certs_pem(mine, n_mine, &pem) < 0 || certs_pem(roots, n_roots, &ca_pem) < 0) {
        con_as_invoker();
        con_err("join", "cannot encode the certificates");
        goto out;
    }
    /* The CA first: a device.crt without its CA is of no use to the uplink. */
    failed = ca_path;
    rc = fs_write_atomic(ca_path, ca_pem.data, ca_pem.size, 0644);
    if (rc == 0) {
        failed = dev_path;
        rc = fs_write_atomic(dev_path, pem.data, pem.size, 0644);
    }
    if (rc < 0) {
        con_as_invoker();
        con_err("join", "enrolled, but cannot write %s: %s (run 'mtlsgw join' again with a "
                        "new invite)", failed, fs_strerror(rc));
        rc = -1;
    }
out:
    free(roots);
    free(mine);
    gnutls_free(pem.data);
    gnutls_free(ca_pem.data);
    return rc;
}

/* The CA certificate of cas whose SHA-256 is pin (a pinned root), or NULL
 * when the pin was the hub's own certificate's. */
static gnutls_x509_crt_t pinned_ca(gnutls_x509_crt_t *cas, size_t n_cas, const unsigned char *pin)
{
    for (size_t i = 0; i < n_cas; i++) {
        unsigned char fp[32];
        size_t len = sizeof(fp);
        if (gnutls_x509_crt_get_fingerprint(cas[i], GNUTLS_DIG_SHA256, fp, &len) == 0 &&
            len == sizeof(fp) && memcmp(fp, pin, sizeof(fp)) == 0)
            return cas[i];
    }
    return NULL;
}

int cmd_join(struct console *con, int argc, char **argv)
{
    struct join_args a = {0};
    char err[512] = "", host[260], serial[64], when[32], fp[96] = "";
    struct est_client_opts o = {0};
    struct pki *pki = NULL;
    gnutls_privkey_t key = NULL;
    gnutls_x509_crq_t crq = NULL;
    gnutls_x509_crt_t crt = NULL, *cas = NULL, anchor = NULL;
    char *dev_path = NULL, *ca_path = NULL;
    size_t n_cas = 0;
    unsigned status = 0;
    int made = 0, rc;

    if ((rc = join_parse(argc, argv, &a)) != EXIT_OK)
        goto out;
    rc = EXIT_FAIL;
    if (con_load_config(con) != EXIT_OK || pki_new(con->cfg, &pki) < 0)
        goto out;
    dev_path = fs_join(pki->dir, "device.crt");
    ca_path = fs_join(pki->dir, "hub-ca.crt");
    if (!dev_path || !ca_path || ensure_dir(pki->dir) < 0)
        goto out;
    if (state_writable(ca_path) < 0 || state_writable(dev_path) < 0)
        goto out;
    if (con_as_daemon() < 0)
        goto out;
    if (a.ca && access(a.ca, R_OK) < 0) {
        rc = -errno;
        con_as_invoker();
        con_err("join", "--ca %s: cannot read it as the daemon's user: %s", a.ca,
                strerror(-rc));
        rc = EXIT_FAIL;
        goto out;
    }
    if (join_device_csr(con, pki, a.name, a.new_key, &made, &key, &crq) < 0)
        goto out;
    o.url = a.url;
    o.ca_path = a.ca;
    o.pin = a.fp_s ? a.pin : NULL;
    o.tls_min = con->cfg->mgmt.tls_min;
    o.timeout = 30;
    rc = est_get_cacerts(&o, &cas, &n_cas, err, sizeof(err));
    if (rc == 0 && o.pin && (anchor = pinned_ca(cas, n_cas, o.pin))) {
        /* The root was pinned and cacerts proved the hub chains to it: the
         * code goes only to a hub whose chain and name verify to that root. */
        o.pin = NULL;
        o.anchors = &anchor;
        o.n_anchors = 1;
    }
    rc = EXIT_FAIL;
    if (!cas || est_simpleenroll(&o, a.name, a.code, crq, &crt, err, sizeof(err)) < 0) {
        con_as_invoker();
        con_err("join", "%s: %s", a.url, err);
        goto out;
    }
    if (gnutls_x509_crt_list_verify(&crt, 1, cas, (unsigned)n_cas, NULL, 0, 0, &status) < 0 ||
        status != 0) {
        con_as_invoker();
        con_err("join", "%s: the certificate issued does not chain to the hub's CA certificates",
                a.url);
        goto out;
    }
    if (join_write(ca_path, dev_path, crt, cas, n_cas) < 0)
        goto out;
    con_as_invoker();
    verify_serial_hex(crt, serial, sizeof(serial));
    time_format_utc(gnutls_x509_crt_get_expiration_time(crt), when, sizeof(when));
    est_cert_fingerprint(cas[0], true, fp, sizeof(fp));
    url_host(a.url, host, sizeof(host));
    printf("enrolled as %s at %s: serial %s, valid until %s\n", a.name, a.url, serial, when);
    printf("  device key   %s on %s (%s)\n", PKI_LABEL_DEVICE, con->cfg->token.uri,
           made ? "existing" : "made now, not extractable");
    printf("  certificate  %s\n", dev_path);
    printf("  hub CA       %s (SHA-256 %s)\n", ca_path, fp);
    printf("add to %s (TUNNEL-PORT: the hub's [tunnel] listen port):\n",
           con->cfg->path ? con->cfg->path : con->conf_path);
    printf("[uplink hub]\nserver = %s:TUNNEL-PORT\nenroll = %s\n", host, a.url);
    rc = EXIT_OK;
out:
    gnutls_memset(a.pin, 0, sizeof(a.pin));
    for (size_t i = 0; i < n_cas; i++)
        gnutls_x509_crt_deinit(cas[i]);
    free(cas);
    if (crt)
        gnutls_x509_crt_deinit(crt);
    if (crq)
        gnutls_x509_crq_deinit(crq);
    if (key)
        gnutls_privkey_deinit(key);
    free(dev_path);
    free(ca_path);
    pki_free(pki);
    return rc;
}

static void print_cert_line(const char *uplink, const char *path, const char *old_serial)
{
    gnutls_x509_crt_t crt = NULL;
    char err[256], serial[64], when[32];

    if (pki_read_cert(path, &crt, err, sizeof(err)) < 0) {
        printf("renewed uplink %s (%s)\n", uplink, path);
        return;
    }
    verify_serial_hex(crt, serial, sizeof(serial));
    time_format_utc(gnutls_x509_crt_get_expiration_time(crt), when, sizeof(when));
    printf("renewed uplink %s: serial %s replaces %s, valid until %s, in %s\n", uplink, serial,
           old_serial, when, path);
    gnutls_x509_crt_deinit(crt);
}

int cmd_renew(struct console *con, int argc, char **argv)
{
    static const struct option opts[] = {{NULL, 0, NULL, 0}};
    struct pki *pki = NULL;
    const char *only = NULL;
    char err[768] = "";
    unsigned done = 0, failed = 0, candidates = 0;
    int c;

    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1)
        return con_usage("renew");
    if (optind + 1 < argc)
        return con_usage("renew");
    if (optind < argc)
        only = argv[optind];
    if (con_load_config(con) != EXIT_OK || pki_new(con->cfg, &pki) < 0)
        return EXIT_FAIL;
    for (unsigned i = 0; i < con->cfg->n_uplinks; i++) {
        const struct cfg_uplink *up = &con->cfg->uplinks[i];
        if (only ? strcmp(up->name, only) == 0 : up->enroll != NULL)
            candidates++;
    }
    if (!candidates) {
        if (only)
            con_err("renew", "no [uplink %s] in %s", only,
                    con->cfg->path ? con->cfg->path : con->conf_path);
        else
            con_err("renew", "no [uplink] in %s has an enroll URL (enroll = https://HUB:PORT)",
                    con->cfg->path ? con->cfg->path : con->conf_path);
        pki_free(pki);
        return EXIT_FAIL;
    }
    if (con_as_daemon() < 0) {
        pki_free(pki);
        return EXIT_FAIL;
    }
    if (pki_open_token(pki, err, sizeof(err)) < 0) {
        con_as_invoker();
        con_err("renew", "%s", err);
        pki_free(pki);
        return EXIT_FAIL;
    }
    for (unsigned i = 0; i < con->cfg->n_uplinks; i++) {
        const struct cfg_uplink *up = &con->cfg->uplinks[i];
        char *cert = NULL, *ca = NULL, old[64] = "?";
        gnutls_x509_crt_t cur = NULL;

        if (only ? strcmp(up->name, only) != 0 : up->enroll == NULL)
            continue;
        if (est_uplink_paths(con->cfg, up, &cert, &ca) < 0) {
            failed++;
            continue;
        }
        if (pki_read_cert(cert, &cur, err, sizeof(err)) == 0) {
            verify_serial_hex(cur, old, sizeof(old));
            gnutls_x509_crt_deinit(cur);
        }
        if (est_renew_uplink(con->cfg, pki->tok, up, err, sizeof(err)) < 0) {
            con_as_invoker();
            con_err("renew", "%s", err);
            failed++;
        } else {
            con_as_invoker();
            print_cert_line(up->name, cert, old);
            done++;
        }
        free(cert);
        free(ca);
        if (con_as_daemon() < 0) {
            failed++;
            break;
        }
    }
    con_as_invoker();
    if (done)
        printf("a running mtlsgwd uses the new certificate for its next connection; the open "
               "tunnel stays up\n");
    pki_free(pki);
    return failed ? EXIT_FAIL : EXIT_OK;
}
