/*
 * csr.c: PKCS#10 requests, parsed from peers and made for our own keys.
 */
#include <errno.h>
#include <string.h>

#include <gnutls/gnutls.h>
#include <gnutls/abstract.h>
#include <gnutls/x509.h>

#include "p11-private.h"

static bool looks_pem(const gnutls_datum_t *data)
{
    static const char marker[] = "-----BEGIN ";
    size_t i;

    if (data->size < sizeof(marker) - 1)
        return false;
    for (i = 0; i + sizeof(marker) - 1 <= data->size; i++) {
        if (memcmp(data->data + i, marker, sizeof(marker) - 1) == 0)
            return true;
    }
    return false;
}

int p11_csr_parse(const gnutls_datum_t *data, gnutls_x509_crq_t *out, char *err, size_t errlen)
{
    gnutls_x509_crq_t crq = NULL;
    int rc, grc;

    if (data == NULL || out == NULL)
        return p11_fail_buf(err, errlen, -EINVAL, "no CSR given");
    if (data->data == NULL || data->size == 0)
        return p11_fail_buf(err, errlen, -EBADMSG, "not PEM or DER PKCS#10 (empty)");
    grc = gnutls_x509_crq_init(&crq);
    if (grc < 0)
        return p11_fail_buf(err, errlen, -ENOMEM, "out of memory");
    grc = gnutls_x509_crq_import(crq, data,
                                 looks_pem(data) ? GNUTLS_X509_FMT_PEM : GNUTLS_X509_FMT_DER);
    if (grc < 0) {
        rc = p11_fail_buf(err, errlen, -EBADMSG, "not PEM or DER PKCS#10 (%s)",
                          gnutls_strerror(grc));
        goto out;
    }
    /* Proof of possession: the requester holds the key it asks us to
     * certify (RFC 2986 section 3). */
    grc = gnutls_x509_crq_verify(crq, 0);
    if (grc < 0) {
        rc = p11_fail_buf(err, errlen, -EBADMSG, "signature does not verify (%s)",
                          gnutls_strerror(grc));
        goto out;
    }
    *out = crq;
    crq = NULL;
    rc = 0;
out:
    gnutls_x509_crq_deinit(crq);
    return rc;
}

/* ca: ask for basicConstraints CA:TRUE and keyCertSign|cRLSign (PKCS#9
 * extensionRequest); a root copies them only if told to, so the checks on
 * import never trust them. */
static int csr_make(gnutls_privkey_t key, const char *cn, bool ca, gnutls_x509_crq_t *out)
{
    gnutls_x509_crq_t crq = NULL, copy = NULL;
    gnutls_pubkey_t pub = NULL;
    gnutls_datum_t der = { NULL, 0 };
    int rc = 0, grc = 0;

    if (key == NULL || cn == NULL || cn[0] == '\0' || out == NULL)
        return -EINVAL;
    grc = gnutls_pubkey_init(&pub);
    if (grc < 0)
        goto out;
    grc = gnutls_pubkey_import_privkey(pub, key, 0, 0);
    if (grc < 0)
        goto out;
    grc = gnutls_x509_crq_init(&crq);
    if (grc < 0)
        goto out;
    grc = gnutls_x509_crq_set_version(crq, 1);
    if (grc < 0)
        goto out;
    grc = gnutls_x509_crq_set_dn_by_oid(crq, GNUTLS_OID_X520_COMMON_NAME, 0, cn,
                                        (unsigned)strlen(cn));
    if (grc < 0)
        goto out;
    grc = gnutls_x509_crq_set_pubkey(crq, pub);
    if (grc < 0)
        goto out;
    if (ca) {
        grc = gnutls_x509_crq_set_basic_constraints(crq, 1, -1);
        if (grc < 0)
            goto out;
        grc = gnutls_x509_crq_set_key_usage(crq, GNUTLS_KEY_KEY_CERT_SIGN | GNUTLS_KEY_CRL_SIGN);
        if (grc < 0)
            goto out;
    }
    grc = gnutls_x509_crq_privkey_sign(crq, key, ca ? p11_sign_digest(pub) : GNUTLS_DIG_SHA256,
                                       0);
    if (grc < 0)
        goto out;
    /* As for certificates: a re-imported copy has its parsed caches. */
    grc = gnutls_x509_crq_export2(crq, GNUTLS_X509_FMT_DER, &der);
    if (grc < 0)
        goto out;
    grc = gnutls_x509_crq_init(&copy);
    if (grc < 0)
        goto out;
    grc = gnutls_x509_crq_import(copy, &der, GNUTLS_X509_FMT_DER);
    if (grc < 0)
        goto out;
    *out = copy;
    copy = NULL;
out:
    gnutls_x509_crq_deinit(copy);
    gnutls_free(der.data);
    if (grc < 0)
        rc = p11_errno(grc);
    gnutls_x509_crq_deinit(crq);
    gnutls_pubkey_deinit(pub);
    return rc;
}

int p11_csr_make(gnutls_privkey_t key, const char *cn, gnutls_x509_crq_t *out)
{
    return csr_make(key, cn, false, out);
}

int p11_csr_make_ca(gnutls_privkey_t key, const char *cn, gnutls_x509_crq_t *out)
{
    return csr_make(key, cn, true, out);
}
