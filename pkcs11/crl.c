/*
 * crl.c: signing CRLs with the CA key.
 *
 * GnuTLS writes no per-entry extensions, so CRL entries carry no reason code
 * (RFC 5280 5.3.1); the registry keeps the reason instead.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <gnutls/gnutls.h>
#include <gnutls/abstract.h>
#include <gnutls/x509.h>

#include "p11-private.h"

#define SERIAL_MAX 20 /* RFC 5280 4.1.2.2 */

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/*
 * Hex serial (as p11_cert_serial_hex() prints it) to DER INTEGER content:
 * a 0x00 pad goes in front when the top bit is set, or the serial would be
 * read back as negative.
 */
static int serial_parse(const char *hex, unsigned char *buf, size_t *len)
{
    size_t n, i, o = 0;
    int hi, lo;

    if (hex == NULL)
        return -EINVAL;
    n = strlen(hex);
    /* Leading zeros would make a non-minimal DER INTEGER. */
    while (n > 1 && hex[0] == '0') {
        hex++;
        n--;
    }
    if (n == 0 || (n + 1) / 2 > SERIAL_MAX)
        return -EINVAL;
    if (n % 2 == 0 && hexval(hex[0]) >= 8)
        buf[o++] = 0;
    i = 0;
    if (n % 2 == 1) {
        lo = hexval(hex[0]);
        if (lo < 0)
            return -EINVAL;
        buf[o++] = (unsigned char)lo;
        i = 1;
    }
    for (; i < n; i += 2) {
        hi = hexval(hex[i]);
        lo = hexval(hex[i + 1]);
        if (hi < 0 || lo < 0)
            return -EINVAL;
        buf[o++] = (unsigned char)(hi << 4 | lo);
    }
    *len = o;
    return 0;
}

int p11_crl_sign(gnutls_x509_crt_t ca, gnutls_privkey_t ca_key, const struct p11_revoked *revoked,
                 size_t n_revoked, uint64_t number, unsigned days, gnutls_x509_crl_t *out)
{
    gnutls_x509_crl_t crl = NULL, copy = NULL;
    gnutls_pubkey_t signer = NULL;
    gnutls_datum_t der = { NULL, 0 };
    unsigned char serial[SERIAL_MAX + 1];
    unsigned char num[9];
    unsigned char kid[64];
    size_t serial_len, kid_size = sizeof(kid), i, nlen;
    time_t now;
    int rc = 0, grc = 0;

    if (ca == NULL || ca_key == NULL || out == NULL || days == 0 || days > 36525
        || (n_revoked > 0 && revoked == NULL))
        return -EINVAL;

    grc = gnutls_pubkey_init(&signer);
    if (grc < 0)
        goto out;
    grc = gnutls_pubkey_import_privkey(signer, ca_key, 0, 0);
    if (grc < 0)
        goto out;
    grc = gnutls_x509_crl_init(&crl);
    if (grc < 0)
        goto out;
    grc = gnutls_x509_crl_set_version(crl, 2);
    if (grc < 0)
        goto out;
    now = time(NULL);
    grc = gnutls_x509_crl_set_this_update(crl, now);
    if (grc < 0)
        goto out;
    grc = gnutls_x509_crl_set_next_update(crl, now + (time_t)days * 86400);
    if (grc < 0)
        goto out;

    for (i = 0; i < n_revoked; i++) {
        rc = serial_parse(revoked[i].serial_hex, serial, &serial_len);
        if (rc < 0)
            goto out;
        grc = gnutls_x509_crl_set_crt_serial(crl, serial, serial_len, revoked[i].when);
        if (grc < 0)
            goto out;
    }

    /* CRL number: big-endian, minimal, positive (RFC 5280 5.2.3). */
    num[0] = 0;
    for (i = 0; i < 8; i++)
        num[1 + i] = (unsigned char)(number >> (56 - 8 * i));
    i = 0;
    while (i < 8 && num[i] == 0 && !(num[i + 1] & 0x80))
        i++;
    nlen = 9 - i;
    grc = gnutls_x509_crl_set_number(crl, num + i, nlen);
    if (grc < 0)
        goto out;

    if (gnutls_x509_crt_get_subject_key_id(ca, kid, &kid_size, NULL) < 0) {
        kid_size = sizeof(kid);
        grc = gnutls_pubkey_get_key_id(signer, GNUTLS_KEYID_USE_SHA1, kid, &kid_size);
        if (grc < 0)
            goto out;
    }
    grc = gnutls_x509_crl_set_authority_key_id(crl, kid, kid_size);
    if (grc < 0)
        goto out;

    grc = gnutls_x509_crl_privkey_sign(crl, ca, ca_key, p11_sign_digest(signer), 0);
    if (grc < 0)
        goto out;
    /* GnuTLS caches the issuer DN and entries only when it imports a CRL:
     * hand back a re-imported copy so that verification and getters work. */
    grc = gnutls_x509_crl_export2(crl, GNUTLS_X509_FMT_DER, &der);
    if (grc < 0)
        goto out;
    grc = gnutls_x509_crl_init(&copy);
    if (grc < 0)
        goto out;
    grc = gnutls_x509_crl_import(copy, &der, GNUTLS_X509_FMT_DER);
    if (grc < 0)
        goto out;
    *out = copy;
    copy = NULL;
    rc = 0;
out:
    gnutls_x509_crl_deinit(copy);
    gnutls_free(der.data);
    if (grc < 0)
        rc = p11_errno(grc);
    gnutls_x509_crl_deinit(crl);
    gnutls_pubkey_deinit(signer);
    return rc;
}
