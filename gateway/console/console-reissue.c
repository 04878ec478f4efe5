/* mtlsgw reissue, show --pem: peers' certificates kept under issued/. */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

#include "config.h"
#include "console.h"
#include "fsutil.h"
#include "invite.h"
#include "issued.h"
#include "pki.h"
#include "registry.h"
#include "verify.h"

#define CHAIN_FILE "chain.pem"
#define PEM_MAX (1024 * 1024)

bool con_show_wants_pem(int argc, char **argv)
{
    for (int i = 1; i < argc && strcmp(argv[i], "--") != 0; i++)
        if (strcmp(argv[i], "--pem") == 0 || strcmp(argv[i], "--chain") == 0)
            return true;
    return false;
}

/* A PEM file's certificates, re-encoded (only well-formed ones go out). */
static int print_pem_file(const char *path, bool optional)
{
    gnutls_x509_crt_t *crts = NULL;
    unsigned n = 0;
    char *text = NULL;
    size_t len = 0;
    gnutls_datum_t d;
    int rc = fs_read_file(path, PEM_MAX, &text, &len);

    if (rc == -ENOENT && optional)
        return 0;
    if (rc < 0) {
        con_err("show", "cannot read %s: %s", path, strerror(-rc));
        return rc;
    }
    d.data = (unsigned char *)text;
    d.size = (unsigned)len;
    if (gnutls_x509_crt_list_import2(&crts, &n, &d, GNUTLS_X509_FMT_PEM, 0) < 0 || n == 0) {
        con_err("show", "%s holds no PEM certificate", path);
        free(text);
        return -EBADMSG;
    }
    for (unsigned i = 0; i < n; i++) {
        gnutls_datum_t pem = {0};
        if (pki_cert_pem(crts[i], &pem) == 0)
            fwrite(pem.data, 1, pem.size, stdout);
        gnutls_free(pem.data);
        gnutls_x509_crt_deinit(crts[i]);
    }
    gnutls_free(crts);
    free(text);
    return 0;
}

int con_show_pem(struct console *con, int argc, char **argv)
{
    static const struct option opts[] = {
        {"pem", no_argument, NULL, 'p'},
        {"chain", no_argument, NULL, 'c'},
        {NULL, 0, NULL, 0},
    };
    struct pki *pki = NULL;
    struct registry *reg = NULL;
    const struct peer *p;
    gnutls_x509_crt_t crt = NULL;
    gnutls_datum_t pem = {0};
    char err[512] = "", *chain = NULL;
    bool want_pem = false, want_chain = false;
    int c, rc = EXIT_FAIL;

    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (c == 'p')
            want_pem = true;
        else if (c == 'c')
            want_chain = true;
        else
            return con_usage("show");
    }
    if (optind + 1 != argc || !want_pem) {
        if (!want_pem)
            con_err("show", "--chain goes with --pem");
        return con_usage("show");
    }
    if (con_load_config(con) != EXIT_OK || pki_new(con->cfg, &pki) < 0)
        return EXIT_FAIL;
    if (con_as_daemon() < 0)
        goto out;
    if (pki_load_registry(pki, &reg, err, sizeof(err)) < 0) {
        con_as_invoker();
        con_err("show", "%s", err);
        goto out;
    }
    p = registry_find_name(reg, argv[optind]);
    if (!p) {
        con_as_invoker();
        con_err("show", "no peer named '%s' (see 'mtlsgw peers')", argv[optind]);
        goto out;
    }
    rc = issued_load(pki->dir, p->serial, &crt);
    if (rc < 0) {
        con_as_invoker();
        if (rc == -ENOENT)
            con_err("show", "%s: no copy of certificate %s in %s/issued (issued before "
                    "mtlsgw kept them); the device holds it", p->name, p->serial, pki->dir);
        else
            con_err("show", "%s/issued/%s.crt: %s", pki->dir, p->serial, strerror(-rc));
        rc = EXIT_FAIL;
        goto out;
    }
    rc = EXIT_FAIL;
    if (pki_cert_pem(crt, &pem) < 0) {
        con_as_invoker();
        con_err("show", "cannot encode the certificate of %s", p->name);
        goto out;
    }
    fwrite(pem.data, 1, pem.size, stdout);
    chain = fs_join(pki->dir, CHAIN_FILE);
    if (want_chain && (!chain || print_pem_file(pki->ca_path, false) < 0 ||
                       print_pem_file(chain, true) < 0)) {
        con_as_invoker();
        goto out;
    }
    con_as_invoker();
    rc = EXIT_OK;
out:
    free(chain);
    gnutls_free(pem.data);
    if (crt)
        gnutls_x509_crt_deinit(crt);
    registry_free(reg);
    pki_free(pki);
    return rc;
}

struct reissue_out {
    const char *path; /* --out, NULL: printed after the commit */
    bool force;
    const char *name;
};

/* Before the registry is written: a failure here records nothing. */
static int reissue_write(void *ctx, gnutls_x509_crt_t crt, char *err, size_t errlen)
{
    struct reissue_out *ro = ctx;
    gnutls_datum_t pem = {0};
    char msg[PATH_MAX + 200];
    int rc;

    if (!ro->path)
        return 0;
    if (pki_cert_pem(crt, &pem) < 0) {
        snprintf(err, errlen, "reissue %s: cannot encode the certificate", ro->name);
        return -EINVAL;
    }
    if (con_as_invoker() < 0) {
        gnutls_free(pem.data);
        return -EPERM;
    }
    rc = con_write_out("--out", ro->path, pem.data, pem.size, 0644, ro->force, msg,
                       sizeof(msg));
    if (rc < 0)
        snprintf(err, errlen, "reissue %s: %s (nothing was recorded)", ro->name, msg);
    gnutls_free(pem.data);
    if (con_as_daemon() < 0 && rc == 0) {
        snprintf(err, errlen, "reissue %s: cannot switch back to the daemon's user", ro->name);
        rc = -EPERM;
    }
    return rc;
}

int cmd_reissue(struct console *con, int argc, char **argv)
{
    static const struct option opts[] = {
        {"days", required_argument, NULL, 'd'},
        {"overlap", required_argument, NULL, 'O'},
        {"out", required_argument, NULL, 'o'},
        {"force", no_argument, NULL, 'f'},
        {NULL, 0, NULL, 0},
    };
    struct pki_reissue_req req = {0};
    struct reissue_out ro = {0};
    struct pki *pki = NULL;
    gnutls_x509_crt_t crt = NULL;
    char err[768] = "", serial[64], until[32], from[32];
    int c, rc = EXIT_FAIL;

    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'd':
            if (!con_parse_uint(optarg, 1, 3650, &req.days)) {
                con_err("reissue", "--days %s: not a number of days from 1 to 3650", optarg);
                return EXIT_USAGE;
            }
            break;
        case 'O':
            if (invite_parse_duration(optarg, &req.overlap) < 0) {
                con_err("reissue", "--overlap %s: not a duration from 1s to 365d (e.g. 7d, "
                        "12h)", optarg);
                return EXIT_USAGE;
            }
            break;
        case 'o':
            ro.path = optarg;
            break;
        case 'f':
            ro.force = true;
            break;
        default:
            return con_usage("reissue");
        }
    }
    if (optind + 1 != argc) {
        con_err("reissue", "give exactly one peer NAME");
        return con_usage("reissue");
    }
    if (ro.path && con_out_check("reissue", "--out", ro.path, ro.force) != EXIT_OK)
        return EXIT_FAIL;
    req.name = ro.name = argv[optind];
    req.actor = con->actor;
    req.before_commit = reissue_write;
    req.ctx = &ro;
    if (con_load_config(con) != EXIT_OK || pki_new(con->cfg, &pki) < 0)
        return EXIT_FAIL;
    if (con_as_daemon() < 0)
        goto out;
    if (pki_reissue(pki, &req, &crt, err, sizeof(err)) < 0) {
        con_as_invoker();
        con_err("reissue", "%s", err);
        goto out;
    }
    con_as_invoker();
    if (!ro.path) {
        gnutls_datum_t pem = {0};
        if (pki_cert_pem(crt, &pem) == 0)
            fwrite(pem.data, 1, pem.size, stdout);
        gnutls_free(pem.data);
    }
    verify_serial_hex(crt, serial, sizeof(serial));
    time_format_utc(gnutls_x509_crt_get_expiration_time(crt), until, sizeof(until));
    time_format_utc(time(NULL) + req.overlap, from, sizeof(from));
    fprintf(ro.path ? con_note_stream(ro.path) : stderr,
            "reissued %s: serial %s, valid until %s%s%s; the old serial is refused %s%s\n",
            req.name, serial, until, ro.path ? ", written to " : "", ro.path ? ro.path : "",
            req.overlap ? "from " : "at handshake from now on", req.overlap ? from : "");
    rc = con_notify_daemon(con, pki, "reissue");
out:
    if (crt)
        gnutls_x509_crt_deinit(crt);
    pki_free(pki);
    return rc;
}
