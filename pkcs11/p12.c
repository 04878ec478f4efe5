/*
 * p12.c: PKCS#12 bundles for devices that have no token of their own.
 */
#include <errno.h>
#include <string.h>

#include <gnutls/gnutls.h>
#include <gnutls/pkcs12.h>
#include <gnutls/x509.h>

#include "p11-private.h"

/*
 * PBES2 with AES-256-CBC for both the shrouded key and the certificate bag,
 * and an HMAC-SHA256 integrity MAC: OpenSSL 1.1+ and Java 8u301+/11.0.12+
 * read this; the legacy RC2/3DES bags are what newer OpenSSL refuses.
 */
#define P12_CIPHER GNUTLS_PKCS_PBES2_AES_256

static int add_certs(gnutls_pkcs12_t p12, gnutls_x509_crt_t crt, const gnutls_x509_crt_t *cas,
                     size_t n_cas, const char *name, const gnutls_datum_t *key_id,
                     const char *password)
{
    gnutls_pkcs12_bag_t bag = NULL;
    int idx, grc;

    grc = gnutls_pkcs12_bag_init(&bag);
    if (grc < 0)
        goto out;
    idx = grc = gnutls_pkcs12_bag_set_crt(bag, crt);
    if (grc < 0)
        goto out;
    grc = gnutls_pkcs12_bag_set_friendly_name(bag, idx, name);
    if (grc < 0)
        goto out;
    grc = gnutls_pkcs12_bag_set_key_id(bag, idx, key_id);
    if (grc < 0)
        goto out;
    /* The chain up to the root: keytool builds the key entry's chain from
     * these, and a browser shows the path without fetching anything. */
    for (size_t i = 0; i < n_cas; i++) {
        if (cas[i] == NULL)
            continue;
        grc = gnutls_pkcs12_bag_set_crt(bag, cas[i]);
        if (grc < 0)
            goto out;
    }
    grc = gnutls_pkcs12_bag_encrypt(bag, password, P12_CIPHER);
    if (grc < 0)
        goto out;
    grc = gnutls_pkcs12_set_bag(p12, bag);
out:
    gnutls_pkcs12_bag_deinit(bag);
    return grc < 0 ? grc : 0;
}

static int add_key(gnutls_pkcs12_t p12, gnutls_x509_privkey_t key, const char *name,
                   const gnutls_datum_t *key_id, const char *password)
{
    gnutls_pkcs12_bag_t bag = NULL;
    gnutls_datum_t der = { NULL, 0 };
    int idx, grc;

    grc = gnutls_x509_privkey_export2_pkcs8(key, GNUTLS_X509_FMT_DER, password, P12_CIPHER,
                                            &der);
    if (grc < 0)
        goto out;
    grc = gnutls_pkcs12_bag_init(&bag);
    if (grc < 0)
        goto out;
    idx = grc = gnutls_pkcs12_bag_set_data(bag, GNUTLS_BAG_PKCS8_ENCRYPTED_KEY, &der);
    if (grc < 0)
        goto out;
    grc = gnutls_pkcs12_bag_set_friendly_name(bag, idx, name);
    if (grc < 0)
        goto out;
    grc = gnutls_pkcs12_bag_set_key_id(bag, idx, key_id);
    if (grc < 0)
        goto out;
    grc = gnutls_pkcs12_set_bag(p12, bag);
out:
    gnutls_pkcs12_bag_deinit(bag);
    if (der.data != NULL) {
        gnutls_memset(der.data, 0, der.size);
        gnutls_free(der.data);
    }
    return grc < 0 ? grc : 0;
}

int p11_p12_export(gnutls_x509_privkey_t key, gnutls_x509_crt_t crt, gnutls_x509_crt_t ca,
                   const char *name, const char *password, gnutls_datum_t *out)
{
    return p11_p12_export_chain(key, crt, &ca, ca != NULL ? 1 : 0, name, password, out);
}

int p11_p12_export_chain(gnutls_x509_privkey_t key, gnutls_x509_crt_t crt,
                         const gnutls_x509_crt_t *cas, size_t n_cas, const char *name,
                         const char *password, gnutls_datum_t *out)
{
    gnutls_pkcs12_t p12 = NULL;
    unsigned char kid[20], cid[20];
    size_t kid_size = sizeof(kid), cid_size = sizeof(cid);
    gnutls_datum_t key_id;
    int rc = 0, grc = 0;

    if (key == NULL || crt == NULL || name == NULL || name[0] == '\0' || password == NULL
        || password[0] == '\0' || out == NULL || (n_cas > 0 && cas == NULL))
        return -EINVAL;
    /* The localKeyId pairs key and certificate (PKCS#12 and keytool use it
     * to build the key entry); refuse a certificate for another key. */
    grc = gnutls_x509_privkey_get_key_id(key, GNUTLS_KEYID_USE_SHA1, kid, &kid_size);
    if (grc < 0)
        goto out;
    grc = gnutls_x509_crt_get_key_id(crt, GNUTLS_KEYID_USE_SHA1, cid, &cid_size);
    if (grc < 0)
        goto out;
    if (kid_size != cid_size || memcmp(kid, cid, kid_size) != 0) {
        rc = -EINVAL;
        goto out;
    }
    key_id.data = kid;
    key_id.size = (unsigned)kid_size;

    grc = gnutls_pkcs12_init(&p12);
    if (grc < 0)
        goto out;
    grc = add_certs(p12, crt, cas, n_cas, name, &key_id, password);
    if (grc < 0)
        goto out;
    grc = add_key(p12, key, name, &key_id, password);
    if (grc < 0)
        goto out;
#ifdef HAVE_GNUTLS_PKCS12_GENERATE_MAC2
    grc = gnutls_pkcs12_generate_mac2(p12, GNUTLS_MAC_SHA256, password);
#else
    grc = gnutls_pkcs12_generate_mac(p12, password);
#endif
    if (grc < 0)
        goto out;
    grc = gnutls_pkcs12_export2(p12, GNUTLS_X509_FMT_DER, out);
out:
    if (grc < 0)
        rc = p11_errno(grc);
    gnutls_pkcs12_deinit(p12);
    return rc;
}
