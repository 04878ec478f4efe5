#include "est-codec.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <gnutls/pkcs7.h>

#include "p11.h"

#define EST_MAX_CERTS 16

/* A malloc'ed copy without whitespace, padded to a multiple of four. */
static char *squeeze(const char *in, size_t len, size_t *outlen)
{
    char *s = malloc(len + 4);
    size_t n = 0;

    if (!s)
        return NULL;
    for (size_t i = 0; i < len; i++)
        if (!isspace((unsigned char)in[i]))
            s[n++] = in[i];
    while (n % 4)
        s[n++] = '=';
    s[n] = '\0';
    *outlen = n;
    return s;
}

int est_base64_decode(const char *in, size_t len, gnutls_datum_t *out)
{
    gnutls_datum_t d;
    size_t n = 0;
    char *s = squeeze(in, len, &n);
    int rc;

    if (!s)
        return -ENOMEM;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (!isalnum(ch) && ch != '+' && ch != '/' && ch != '=') {
            free(s);
            return -EBADMSG;
        }
    }
    d.data = (unsigned char *)s;
    d.size = (unsigned)n;
    rc = n ? gnutls_base64_decode2(&d, out) : -1;
    free(s);
    return rc < 0 ? -EBADMSG : 0;
}

/* Base64 on one line, whatever the GnuTLS version does about line length. */
static int b64_line(const gnutls_datum_t *der, char **out, size_t *len)
{
    gnutls_datum_t b = {0};
    char *s;
    size_t n = 0;

    if (gnutls_base64_encode2(der, &b) < 0)
        return -ENOMEM;
    s = malloc(b.size + 1);
    if (!s) {
        gnutls_free(b.data);
        return -ENOMEM;
    }
    for (unsigned i = 0; i < b.size; i++)
        if (b.data[i] != '\n' && b.data[i] != '\r')
            s[n++] = (char)b.data[i];
    s[n] = '\0';
    gnutls_free(b.data);
    *out = s;
    *len = n;
    return 0;
}

int est_certs_encode(const gnutls_x509_crt_t *certs, size_t n, char **out, size_t *len)
{
    gnutls_pkcs7_t p7 = NULL;
    gnutls_datum_t der = {0};
    int rc;

    if (gnutls_pkcs7_init(&p7) < 0)
        return -ENOMEM;
    for (size_t i = 0; i < n; i++) {
        if (gnutls_pkcs7_set_crt(p7, certs[i]) < 0) {
            rc = -EINVAL;
            goto out;
        }
    }
    if (gnutls_pkcs7_export2(p7, GNUTLS_X509_FMT_DER, &der) < 0) {
        rc = -EINVAL;
        goto out;
    }
    rc = b64_line(&der, out, len);
out:
    gnutls_free(der.data);
    gnutls_pkcs7_deinit(p7);
    return rc;
}

int est_certs_decode(const char *in, size_t len, gnutls_x509_crt_t **certs, size_t *n)
{
    gnutls_pkcs7_t p7 = NULL;
    gnutls_datum_t der = {0};
    gnutls_x509_crt_t *v = NULL;
    int count = 0, rc;

    if (len && (unsigned char)in[0] == 0x30) {
        der.data = gnutls_malloc(len);
        if (!der.data)
            return -ENOMEM;
        memcpy(der.data, in, len);
        der.size = (unsigned)len;
    } else if ((rc = est_base64_decode(in, len, &der)) < 0) {
        return rc;
    }
    if (gnutls_pkcs7_init(&p7) < 0) {
        rc = -ENOMEM;
        goto out;
    }
    if (gnutls_pkcs7_import(p7, &der, GNUTLS_X509_FMT_DER) < 0 ||
        (count = gnutls_pkcs7_get_crt_count(p7)) <= 0 || count > EST_MAX_CERTS) {
        rc = -EBADMSG;
        goto out;
    }
    v = calloc((size_t)count, sizeof(*v));
    if (!v) {
        rc = -ENOMEM;
        goto out;
    }
    for (int i = 0; i < count; i++) {
        gnutls_datum_t raw = {0};
        if (gnutls_pkcs7_get_crt_raw2(p7, (unsigned)i, &raw) < 0 ||
            gnutls_x509_crt_init(&v[i]) < 0 ||
            gnutls_x509_crt_import(v[i], &raw, GNUTLS_X509_FMT_DER) < 0) {
            gnutls_free(raw.data);
            rc = -EBADMSG;
            goto out;
        }
        gnutls_free(raw.data);
    }
    *certs = v;
    *n = (size_t)count;
    v = NULL;
    rc = 0;
out:
    if (v) {
        for (int i = 0; i < count; i++)
            if (v[i])
                gnutls_x509_crt_deinit(v[i]);
        free(v);
    }
    if (p7)
        gnutls_pkcs7_deinit(p7);
    gnutls_free(der.data);
    return rc;
}

static bool has_pem_header(const char *s, size_t len)
{
    for (size_t i = 0; i + 10 <= len; i++)
        if (memcmp(s + i, "-----BEGIN", 10) == 0)
            return true;
    return false;
}

int est_csr_decode(const char *body, size_t len, gnutls_x509_crq_t *out, char *err,
                   size_t errlen)
{
    gnutls_datum_t der = {0}, d;
    int rc;

    if (len == 0) {
        snprintf(err, errlen, "the body is empty; send a base64 PKCS#10 CSR");
        return -EBADMSG;
    }
    if (has_pem_header(body, len) || (unsigned char)body[0] == 0x30) {
        d.data = (unsigned char *)body;
        d.size = (unsigned)len;
        return p11_csr_parse(&d, out, err, errlen);
    }
    if (est_base64_decode(body, len, &der) < 0) {
        snprintf(err, errlen, "the body is not base64 (RFC 7030 4.2.1: a base64 PKCS#10)");
        return -EBADMSG;
    }
    rc = p11_csr_parse(&der, out, err, errlen);
    gnutls_free(der.data);
    return rc;
}

int est_csr_encode(gnutls_x509_crq_t crq, char **out, size_t *len)
{
    gnutls_datum_t der = {0};
    int rc;

    if (gnutls_x509_crq_export2(crq, GNUTLS_X509_FMT_DER, &der) < 0)
        return -EINVAL;
    rc = b64_line(&der, out, len);
    gnutls_free(der.data);
    return rc;
}

int est_basic_parse(const char *hdr, char *user, size_t ulen, char *pass, size_t plen)
{
    gnutls_datum_t dec = {0};
    const char *p;
    char *colon;
    size_t ul, pl;
    int rc = -EINVAL;

    if (!hdr)
        return -EINVAL;
    while (*hdr == ' ' || *hdr == '\t')
        hdr++;
    if (strncasecmp(hdr, "Basic", 5) != 0 || (hdr[5] != ' ' && hdr[5] != '\t'))
        return -EINVAL;
    for (p = hdr + 5; *p == ' ' || *p == '\t'; p++)
        ;
    if (est_base64_decode(p, strlen(p), &dec) < 0)
        return -EINVAL;
    colon = dec.size ? memchr(dec.data, ':', dec.size) : NULL;
    if (!colon || memchr(dec.data, '\0', dec.size))
        goto out;
    ul = (size_t)(colon - (char *)dec.data);
    pl = dec.size - ul - 1;
    if (ul >= ulen || pl >= plen)
        goto out;
    memcpy(user, dec.data, ul);
    user[ul] = '\0';
    memcpy(pass, colon + 1, pl);
    pass[pl] = '\0';
    rc = 0;
out:
    if (dec.data) {
        gnutls_memset(dec.data, 0, dec.size);
        gnutls_free(dec.data);
    }
    return rc;
}

int est_basic_make(const char *user, const char *pass, char **out)
{
    size_t ul = strlen(user), pl = strlen(pass), n = 0;
    gnutls_datum_t d;
    char *plain = malloc(ul + pl + 2), *b64 = NULL, *hdr;
    int rc;

    if (!plain)
        return -ENOMEM;
    memcpy(plain, user, ul);
    plain[ul] = ':';
    memcpy(plain + ul + 1, pass, pl + 1);
    d.data = (unsigned char *)plain;
    d.size = (unsigned)(ul + pl + 1);
    rc = b64_line(&d, &b64, &n);
    gnutls_memset(plain, 0, ul + pl + 1);
    free(plain);
    if (rc < 0)
        return rc;
    hdr = malloc(n + 7);
    if (hdr)
        snprintf(hdr, n + 7, "Basic %s", b64);
    gnutls_memset(b64, 0, n);
    free(b64);
    if (!hdr)
        return -ENOMEM;
    *out = hdr;
    return 0;
}

bool est_media_is(const char *ct, const char *type)
{
    size_t n = strlen(type);

    if (!ct)
        return false;
    while (*ct == ' ' || *ct == '\t')
        ct++;
    if (strncasecmp(ct, type, n) != 0)
        return false;
    ct += n;
    while (*ct == ' ' || *ct == '\t')
        ct++;
    return *ct == '\0' || *ct == ';';
}

int est_cert_fingerprint(gnutls_x509_crt_t crt, bool colons, char *out, size_t outlen)
{
    unsigned char fp[32];
    size_t n = sizeof(fp), o = 0;

    if (outlen < 96 || gnutls_x509_crt_get_fingerprint(crt, GNUTLS_DIG_SHA256, fp, &n) < 0 ||
        n != sizeof(fp))
        return -EINVAL;
    for (size_t i = 0; i < n; i++)
        o += (size_t)snprintf(out + o, outlen - o, colons ? "%s%02X" : "%s%02x",
                              colons && i ? ":" : "", fp[i]);
    return 0;
}

int est_fingerprint_parse(const char *s, unsigned char out[32])
{
    size_t n = 0;
    int hi = -1;

    if (strncasecmp(s, "sha256:", 7) == 0 || strncasecmp(s, "sha256=", 7) == 0)
        s += 7;
    for (; *s; s++) {
        int v;
        if (*s == ':' || *s == ' ' || *s == '-')
            continue;
        if (!isxdigit((unsigned char)*s))
            return -EINVAL;
        v = isdigit((unsigned char)*s) ? *s - '0' : tolower((unsigned char)*s) - 'a' + 10;
        if (hi < 0) {
            hi = v;
            continue;
        }
        if (n == 32)
            return -EINVAL;
        out[n++] = (unsigned char)(hi << 4 | v);
        hi = -1;
    }
    return n == 32 && hi < 0 ? 0 : -EINVAL;
}
