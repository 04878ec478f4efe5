/*
 * trustdb-file.c: a [trust NAME] issuer as the daemon last took it, from
 * files alone (trustdb.h): its CA (root's `ca = FILE`) and the CRL the
 * daemon keeps for it in the pki dir. `mtlsgw explain` judges a sibling's
 * peer with it, as the daemon would; the parent (parent/roam.c) reads the
 * same CRL file.
 */
#include "trustdb.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "config.h"
#include "fsutil.h"
#include "verify.h"

#define CRL_FILE_MAX (2u * 1024 * 1024 + 16384)
#define CERT_FILE_MAX (1u * 1024 * 1024)

void trustdb_issuer_crl_path(const char *pki_dir, const char *name, char *out, size_t outlen)
{
    snprintf(out, outlen, "%s/trust-%s.crl", pki_dir, name);
}

void trustdb_issuer_root_crl_path(const char *pki_dir, const char *name, char *out,
                                  size_t outlen)
{
    snprintf(out, outlen, "%s/rootcrl-%s.crl", pki_dir, name);
}

static int import_file(const char *path, gnutls_datum_t *d)
{
    char *buf = NULL;
    size_t len = 0;
    int rc = fs_read_file(path, CERT_FILE_MAX, &buf, &len);

    d->data = (unsigned char *)buf;
    d->size = (unsigned)len;
    return rc;
}

/* The session process writes these files: a regular file only (a FIFO
 * would hang explain), as big as the fetcher takes, and signed by signer
 * (checked over the raw DER before GnuTLS's quadratic import). */
static int import_crl_file(const char *path, gnutls_x509_crt_t signer, gnutls_x509_crl_t crl,
                           gnutls_datum_t *d)
{
    char *buf = NULL;
    size_t len = 0;
    int rc = fs_read_regular(path, CRL_FILE_MAX, &buf, &len);

    d->data = (unsigned char *)buf;
    d->size = (unsigned)len;
    if (rc < 0)
        return rc;
    if ((rc = verify_crl_precheck(buf, len, signer)) < 0)
        return rc;
    return verify_crl_import(crl, buf, len);
}

/* The CRL in path, signed by ca and fresh by its own times under
 * max_stale (verify_crl_fresh, as the fetcher and the parent judge it):
 * its serials into *out (malloc'ed), its thisUpdate into *this_update. */
static int crl_read(const char *path, gnutls_x509_crt_t ca, time_t now, unsigned max_stale,
                    char (**out)[64], size_t *n, uint64_t *number, time_t *this_update,
                    char *why, size_t whylen)
{
    gnutls_x509_crl_t crl = NULL;
    gnutls_x509_crl_iter_t it = NULL;
    gnutls_datum_t d = {0};
    unsigned status = 0;
    int rc = -EBADMSG, count;

    *out = NULL;
    *n = 0;
    *number = 0;
    if (gnutls_x509_crl_init(&crl) < 0 || import_crl_file(path, ca, crl, &d) < 0) {
        snprintf(why, whylen, "%s is not a CRL that can be read (or not one signed by the "
                 "issuer's CA)", path);
        goto out;
    }
    if (gnutls_x509_crl_verify(crl, &ca, 1, GNUTLS_VERIFY_DISABLE_TIME_CHECKS, &status) < 0 ||
        (status & ~(unsigned)(GNUTLS_CERT_INVALID | GNUTLS_CERT_REVOCATION_DATA_SUPERSEDED |
                              GNUTLS_CERT_REVOCATION_DATA_ISSUED_IN_FUTURE)) ||
        ((status & GNUTLS_CERT_INVALID) &&
         !(status & (GNUTLS_CERT_REVOCATION_DATA_SUPERSEDED |
                     GNUTLS_CERT_REVOCATION_DATA_ISSUED_IN_FUTURE)))) {
        snprintf(why, whylen, "the CRL in %s is not signed by the issuer's CA", path);
        goto out;
    }
    *this_update = gnutls_x509_crl_get_this_update(crl);
    if (!verify_crl_fresh(*this_update, gnutls_x509_crl_get_next_update(crl), max_stale, now,
                          why, whylen)) {
        rc = -ESTALE;
        goto out;
    }
    *number = verify_crl_number(crl);
    count = gnutls_x509_crl_get_crt_count(crl);
    if (count > 0 && !(*out = calloc((size_t)count, sizeof(**out)))) {
        rc = -ENOMEM;
        goto out;
    }
    while (count > 0 && *n < (size_t)count) {
        unsigned char s[64];
        size_t sl = sizeof(s);
        time_t when;
        if (gnutls_x509_crl_iter_crt_serial(crl, &it, s, &sl, &when) < 0)
            break;
        verify_serial_bytes_hex(s, sl, (*out)[(*n)++], sizeof((*out)[0]));
    }
    rc = 0;
out:
    if (it)
        gnutls_x509_crl_iter_deinit(it);
    if (crl)
        gnutls_x509_crl_deinit(crl);
    free(d.data);
    return rc;
}

/*
 * The root's CRL for [trust NAME] t as the daemon last took it: true when
 * one signed by the anchor of db that issued ca is kept and before its
 * nextUpdate (the root is offline: not max-stale), *ca_revoked when it
 * lists ca. why says what is not.
 */
static bool root_crl_file(struct trustdb *db, const struct cfg_trust *t, gnutls_x509_crt_t ca,
                          const char *pki_dir, time_t now, bool *ca_revoked, char *why,
                          size_t whylen)
{
    const struct trust *tr = trustdb_trust(db);
    gnutls_x509_crt_t root = verify_issuer_among(ca, tr->cas, tr->n_cas);
    gnutls_x509_crl_t crl = NULL;
    gnutls_datum_t d = {0};
    char path[4096];
    unsigned status = 1;
    time_t next;
    bool ok = false;

    *ca_revoked = false;
    trustdb_issuer_root_crl_path(pki_dir, t->name, path, sizeof(path));
    if (!root) {
        snprintf(why, whylen, "no certificate in ca.crt issued its CA: the root's CRL cannot "
                 "be checked");
        return false;
    }
    if (gnutls_x509_crl_init(&crl) < 0 || import_crl_file(path, root, crl, &d) < 0) {
        snprintf(why, whylen, "the daemon has no root CRL of it yet (%.300s)", path);
        goto out;
    }
    if (gnutls_x509_crl_verify(crl, &root, 1, GNUTLS_VERIFY_DISABLE_TIME_CHECKS, &status) < 0 ||
        (status & ~(unsigned)(GNUTLS_CERT_INVALID | GNUTLS_CERT_REVOCATION_DATA_SUPERSEDED |
                              GNUTLS_CERT_REVOCATION_DATA_ISSUED_IN_FUTURE)) ||
        ((status & GNUTLS_CERT_INVALID) &&
         !(status & (GNUTLS_CERT_REVOCATION_DATA_SUPERSEDED |
                     GNUTLS_CERT_REVOCATION_DATA_ISSUED_IN_FUTURE)))) {
        snprintf(why, whylen, "the root's CRL in %.300s is not signed by the root", path);
        goto out;
    }
    *ca_revoked = verify_crl_lists(crl, ca);
    next = gnutls_x509_crl_get_next_update(crl);
    if (next <= 0 || now > next)
        snprintf(why, whylen, "the root's CRL in %.300s is past its nextUpdate (the root re-signs "
                 "it by hand: mtlsgw root crl)", path);
    else
        ok = true;
out:
    if (crl)
        gnutls_x509_crl_deinit(crl);
    free(d.data);
    return ok;
}

int trustdb_add_issuer_file(struct trustdb *db, const struct cfg_trust *t, const char *pki_dir,
                            time_t now, uint64_t *crl_number, char *why, size_t whylen,
                            char *warn, size_t warnlen)
{
    gnutls_x509_crt_t ca = NULL;
    gnutls_datum_t d = {0}, der = {0};
    char path[4096], (*revoked)[64] = NULL;
    size_t n = 0;
    struct stat st;
    time_t this_update = 0;
    bool fresh = false, ca_revoked = false;
    char *root_url = NULL;
    int rc;

    why[0] = '\0';
    warn[0] = '\0';
    *crl_number = 0;
    if ((rc = import_file(t->ca, &d)) < 0 || (rc = gnutls_x509_crt_init(&ca)) < 0 ||
        (gnutls_x509_crt_import(ca, &d, GNUTLS_X509_FMT_PEM) < 0 &&
         gnutls_x509_crt_import(ca, &d, GNUTLS_X509_FMT_DER) < 0) ||
        gnutls_x509_crt_export2(ca, GNUTLS_X509_FMT_DER, &der) < 0) {
        snprintf(why, whylen, "[trust %s] ca = %s is not a certificate that can be read",
                 t->name, t->ca);
        rc = -EINVAL;
        goto out;
    }
    trustdb_issuer_crl_path(pki_dir, t->name, path, sizeof(path));
    /* The file's mtime says nothing: freshness is the CRL's signed
     * thisUpdate (a touch, or a 304 on the path, cannot extend it). */
    if (stat(path, &st) < 0)
        snprintf(why, whylen, "the daemon has no CRL of it yet (%s)", path);
    else
        fresh = crl_read(path, ca, now, t->max_stale, &revoked, &n, crl_number, &this_update,
                         why, whylen) == 0;
    if (fresh)
        verify_crl_aging(this_update, t->max_stale, now, warn, warnlen);
    /* The root's CRL, where one is known (root-crl-url, or the DP in ca). */
    root_url = t->root_crl_url ? NULL : verify_crl_dp_http(ca);
    if (t->root_crl_url || root_url) {
        char rwhy[512];
        bool root_ok = root_crl_file(db, t, ca, pki_dir, now, &ca_revoked, rwhy, sizeof(rwhy));
        if (fresh && !root_ok)
            snprintf(why, whylen, "%s", rwhy);
        fresh = fresh && root_ok;
    }
    rc = trustdb_add_issuer(db, t->name, &der, fresh, revoked, n, t->roles);
    if (rc == 0 && ca_revoked)
        rc = trustdb_issuer_ca_revoked(db, t->name);
out:
    free(root_url);
    free(revoked);
    free(d.data);
    gnutls_free(der.data);
    if (ca)
        gnutls_x509_crt_deinit(ca);
    return rc;
}
