/* mtlsgw init --intermediate, init --import-ca: this appliance's CA under an
 * organization's root (gateway/core/pki-chain.c, docs/pki.md). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

#include "config.h"
#include "console.h"
#include "fault.h"
#include "fsutil.h"
#include "p11.h"
#include "pki.h"
#include "pki-chain.h"
#include "privs.h"
#include "verify.h"

int con_give_dir(const char *dir, mode_t mode)
{
    struct stat st;
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC), rc = 0;

    /* By path, chmod and chown follow whatever whoever may write the parent
     * has put there meanwhile (a link to a root file, which would be given
     * away): only the directory this command just made is handed over. */
    if (fd < 0)
        return errno == ENOTDIR ? -ELOOP : -errno;
    if (fstat(fd, &st) < 0)
        rc = -errno;
    else if (!S_ISDIR(st.st_mode) || st.st_uid != geteuid() || (st.st_mode & 022))
        rc = -EPERM;
    else if (fchmod(fd, mode) < 0 || fchown(fd, privs_daemon_uid(), privs_daemon_gid()) < 0)
        rc = -errno;
    close(fd);
    return rc;
}

const char *con_give_strerror(int rc)
{
    if (rc == -ELOOP)
        return "it was replaced by a link or a file while this command ran (someone who may "
               "write its parent directory?); nothing was handed over";
    if (rc == -EPERM)
        return "it was replaced by another directory while this command ran (someone who may "
               "write its parent directory?); nothing was handed over";
    return strerror(-rc);
}

int con_make_pki_dir(const char *cmd, const char *dir)
{
    int rc;

    /* The parent (/etc/mtlsgw) belongs to root: make the pki dir as root and
     * hand it to the daemon's user, who writes everything inside it. */
    if (access(dir, F_OK) == 0)
        return 0;
    rc = fs_mkdir(dir, 0700);
    fault_point("pki-dir-after-mkdir");
    if (rc == 0)
        rc = con_give_dir(dir, 0750);
    if (rc < 0)
        con_err(cmd, "cannot create pki dir %s: %s", dir, con_give_strerror(rc));
    return rc;
}

static void print_fingerprint(const char *label, gnutls_x509_crt_t crt)
{
    unsigned char fp[32];
    size_t fplen = sizeof(fp);

    if (gnutls_x509_crt_get_fingerprint(crt, GNUTLS_DIG_SHA256, fp, &fplen) < 0)
        return;
    printf("  %-20s ", label);
    for (size_t i = 0; i < fplen; i++)
        printf("%02X%s", fp[i], i + 1 < fplen ? ":" : "\n");
}

static void print_dn(const char *label, gnutls_x509_crt_t crt)
{
    gnutls_datum_t dn = {0};

    if (gnutls_x509_crt_get_dn3(crt, &dn, 0) == 0)
        printf("  %-20s %s\n", label, (const char *)dn.data);
    gnutls_free(dn.data);
}

int con_init_intermediate(struct console *con, const struct pki_init_opts *o,
                          const char *csr_out)
{
    struct pki *pki = NULL;
    gnutls_datum_t csr = {0};
    char err[512] = "";
    int rc = EXIT_FAIL;

    if (con_out_check("init", "--csr-out", csr_out, o->force) != EXIT_OK ||
        con_load_config(con) != EXIT_OK)
        return EXIT_FAIL;
    if (pki_new(con->cfg, &pki) < 0) {
        fprintf(stderr, "mtlsgw: out of memory\n");
        return EXIT_FAIL;
    }
    if (con_make_pki_dir("init", pki->dir) < 0 || con_as_daemon() < 0)
        goto out;
    if (pki_intermediate_request(pki, o, &csr, err, sizeof(err)) < 0) {
        con_as_invoker();
        con_err("init", "%s", err);
        goto out;
    }
    con_as_invoker();
    /* The keys stay and the request is remembered: a failed write here is
     * mended by running the same command again (the keys are reused). */
    if (con_write_file("init", "--csr-out", csr_out, csr.data, csr.size, 0644, o->force) < 0)
        goto out;
    fprintf(con_note_stream(csr_out),
            "CA key '%s' and gateway key made on %s (%s, not extractable)\n"
            "  CSR for CN=%s CA written to %s\n"
            "next: have the organization's root sign it as a CA (CA:TRUE, pathlen:0,\n"
            "  keyCertSign, cRLSign), e.g. 'mtlsgw -c root.conf root sign --csr %s --out "
            "%s.crt',\n"
            "  then: mtlsgw init --import-ca CERT --chain ROOT.crt\n",
            PKI_LABEL_CA, con->cfg->token.uri,
            p11_key_type_name((enum p11_key_type)o->key_type), o->cn, csr_out, csr_out,
            o->cn);
    rc = EXIT_OK;
out:
    gnutls_free(csr.data);
    pki_free(pki);
    return rc;
}

int con_init_import(struct console *con, const char *cert, const char *chain)
{
    struct pki *pki = NULL;
    gnutls_x509_crt_t *path = NULL, *roots = NULL;
    size_t n_path = 0, n_roots = 0;
    char err[768] = "";
    int rc = EXIT_FAIL;

    if (con_load_config(con) != EXIT_OK)
        return EXIT_FAIL;
    if (pki_new(con->cfg, &pki) < 0) {
        fprintf(stderr, "mtlsgw: out of memory\n");
        return EXIT_FAIL;
    }
    if (con_as_daemon() < 0)
        goto out;
    for (int i = 0; i < 2; i++) {
        const char *f = i ? chain : cert;
        if (access(f, R_OK) < 0) {
            int e = errno;
            con_as_invoker();
            con_err("init", "%s %s: cannot read it as the daemon's user: %s",
                    i ? "--chain" : "--import-ca", f, strerror(e));
            goto out;
        }
    }
    if (pki_import_ca(pki, cert, chain, con->actor, err, sizeof(err)) < 0) {
        con_as_invoker();
        con_err("init", "--import-ca %s: %s", cert, err);
        goto out;
    }
    if (pki_read_certs(pki->ca_path, &roots, &n_roots, err, sizeof(err)) < 0 ||
        pki_load_chain(pki, &path, &n_path, err, sizeof(err)) < 0 || !n_path || !n_roots) {
        con_as_invoker();
        con_err("init", "imported, but cannot read it back: %s", err);
        goto out;
    }
    con_as_invoker();
    printf("CA imported: an intermediate under the organization's root\n");
    print_dn("this CA", path[0]);
    print_dn("root", roots[0]);
    printf("  root (peers trust)   %s\n  chain                %s (%zu intermediate%s)\n",
           pki->ca_path, pki->chain_path, n_path, n_path == 1 ? "" : "s");
    printf("  gateway certificate  %s (with the chain)\n  CRL                  %s\n"
           "  registry             %s\n",
           pki->gw_path, pki->crl_path, pki->reg_path);
    print_fingerprint("root SHA-256", roots[0]);
    /* Sibling hubs that list this CA in [trust] warn about it too: without
     * pathlen:0 a sub-CA under it would verify (docs/pki.md). */
    if (!verify_ca_pathlen0(path[0]))
        fprintf(stderr, "mtlsgw: init: warning: this CA's certificate has no pathlen:0, so a "
                        "CA it signed would verify under the root too; have the root sign "
                        "it with a path length of 0 (mtlsgw root sign --path-len 0, openssl: "
                        "basicConstraints=critical,CA:TRUE,pathlen:0)\n");
    printf("next: mtlsgw enroll NAME --role admin|monitor|tunnel --csr FILE\n");
    rc = EXIT_OK;
out:
    pki_free_certs(path, n_path);
    pki_free_certs(roots, n_roots);
    pki_free(pki);
    return rc;
}
