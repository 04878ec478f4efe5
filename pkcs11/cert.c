/*
 * cert.c: issuing X.509 certificates with a (token) key.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <gnutls/gnutls.h>
#include <gnutls/abstract.h>
#include <gnutls/crypto.h>
#include <gnutls/x509.h>

#include "p11-private.h"

#define BACKDATE_SECONDS 300
#define SERIAL_BYTES 16
#define MAX_DAYS 36525u

/* Hostname SANs: letters, digits, '-', '.', '_' and a leading "*." only;
 * anything else would be a name no TLS client can match. */
static bool dns_name_ok(const char *s)
{
    size_t i, len = strlen(s);

    if (len == 0 || len > 253)
        return false;
    if (strncmp(s, "*.", 2) == 0)
        s += 2;
    for (i = 0; s[i] != '\0'; i++) {
        unsigned char c = (unsigned char)s[i];

        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
              || c == '-' || c == '.' || c == '_'))
            return false;
    }
    return i > 0;
}

static int add_host(gnutls_x509_crt_t crt, const char *host)
{
    unsigned char addr[16];

    if (host == NULL)
        return -EINVAL;
    if (inet_pton(AF_INET, host, addr) == 1)
        return gnutls_x509_crt_set_subject_alt_name(crt, GNUTLS_SAN_IPADDRESS, addr, 4,
                                                    GNUTLS_FSAN_APPEND) < 0 ? -EINVAL : 0;
    if (inet_pton(AF_INET6, host, addr) == 1)
        return gnutls_x509_crt_set_subject_alt_name(crt, GNUTLS_SAN_IPADDRESS, addr, 16,
                                                    GNUTLS_FSAN_APPEND) < 0 ? -EINVAL : 0;
    if (!dns_name_ok(host))
        return -EINVAL;
    return gnutls_x509_crt_set_subject_alt_name(crt, GNUTLS_SAN_DNSNAME, host,
                                                (unsigned)strlen(host), GNUTLS_FSAN_APPEND) < 0
               ? -EINVAL : 0;
}

/*
 * RFC 5280 4.1.2.2: positive, at most 20 octets. 16 random octets with the
 * top bit clear keep the DER encoding at exactly 16 octets (no 0x00 pad);
 * a non-zero first octet keeps it from shrinking.
 */
static int set_serial(gnutls_x509_crt_t crt)
{
    unsigned char serial[SERIAL_BYTES];
    int rc;

    rc = gnutls_rnd(GNUTLS_RND_NONCE, serial, sizeof(serial));
    if (rc < 0)
        return -EIO;
    serial[0] &= 0x7f;
    if (serial[0] == 0)
        serial[0] = 0x01;
    rc = gnutls_x509_crt_set_serial(crt, serial, sizeof(serial));
    return rc < 0 ? -EINVAL : 0;
}

static int set_profile(gnutls_x509_crt_t crt, gnutls_pubkey_t subject,
                       const struct p11_issue *req)
{
    enum p11_profile profile = req->profile;
    unsigned usage;
    const char *purpose;
    int rc;

    if (profile == P11_PROFILE_CA) {
        rc = gnutls_x509_crt_set_basic_constraints(crt, 1,
                                                   req->has_path_len ? (int)req->path_len : -1);
        if (rc < 0)
            return -EINVAL;
        rc = gnutls_x509_crt_set_key_usage(crt, GNUTLS_KEY_KEY_CERT_SIGN | GNUTLS_KEY_CRL_SIGN);
        return rc < 0 ? -EINVAL : 0;
    }
    if (profile == P11_PROFILE_SERVER)
        purpose = GNUTLS_KP_TLS_WWW_SERVER;
    else if (profile == P11_PROFILE_CLIENT)
        purpose = GNUTLS_KP_TLS_WWW_CLIENT;
    else
        return -EINVAL;
    rc = gnutls_x509_crt_set_basic_constraints(crt, 0, -1);
    if (rc < 0)
        return -EINVAL;
    usage = GNUTLS_KEY_DIGITAL_SIGNATURE;
    /* TLS 1.2 RSA key exchange encrypts to the certificate key. */
    if (gnutls_pubkey_get_pk_algorithm(subject, NULL) == GNUTLS_PK_RSA)
        usage |= GNUTLS_KEY_KEY_ENCIPHERMENT;
    rc = gnutls_x509_crt_set_key_usage(crt, usage);
    if (rc < 0)
        return -EINVAL;
    rc = gnutls_x509_crt_set_key_purpose_oid(crt, purpose, 0);
    return rc < 0 ? -EINVAL : 0;
}

static bool same_key(gnutls_pubkey_t a, gnutls_pubkey_t b)
{
    unsigned char ida[32], idb[32];
    size_t la = sizeof(ida), lb = sizeof(idb);

    if (gnutls_pubkey_get_key_id(a, GNUTLS_KEYID_USE_SHA256, ida, &la) < 0
        || gnutls_pubkey_get_key_id(b, GNUTLS_KEYID_USE_SHA256, idb, &lb) < 0)
        return false;
    return la == lb && memcmp(ida, idb, la) == 0;
}

static int reimport(gnutls_x509_crt_t crt, gnutls_x509_crt_t *out)
{
    gnutls_x509_crt_t copy = NULL;
    gnutls_datum_t der = { NULL, 0 };
    int grc;

    grc = gnutls_x509_crt_export2(crt, GNUTLS_X509_FMT_DER, &der);
    if (grc < 0)
        goto out;
    grc = gnutls_x509_crt_init(&copy);
    if (grc < 0)
        goto out;
    grc = gnutls_x509_crt_import(copy, &der, GNUTLS_X509_FMT_DER);
    if (grc < 0)
        goto out;
    *out = copy;
    copy = NULL;
out:
    gnutls_x509_crt_deinit(copy);
    gnutls_free(der.data);
    return grc < 0 ? grc : 0;
}

/*
 * subject may be NULL for a self-signed certificate (issuer NULL): it is
 * then the public half of issuer_key.
 */
int p11_cert_issue(gnutls_x509_crt_t issuer, gnutls_privkey_t issuer_key,
                   gnutls_pubkey_t subject, const struct p11_issue *req,
                   gnutls_x509_crt_t *out)
{
    gnutls_x509_crt_t crt = NULL;
    gnutls_pubkey_t signer = NULL;
    unsigned char kid[64];
    size_t kid_size;
    time_t now, not_after;
    size_t i;
    int rc = 0, grc = 0;

    if (issuer_key == NULL || req == NULL || out == NULL || req->cn == NULL
        || req->cn[0] == '\0' || req->days == 0 || req->days > MAX_DAYS
        || (req->n_hosts > 0 && req->hosts == NULL)
        || (req->has_path_len && (req->profile != P11_PROFILE_CA || req->path_len > 16)))
        return -EINVAL;
    if (req->profile != P11_PROFILE_CA && req->profile != P11_PROFILE_SERVER
        && req->profile != P11_PROFILE_CLIENT)
        return -EINVAL;

    rc = gnutls_pubkey_init(&signer);
    if (rc < 0) {
        rc = -ENOMEM;
        goto out;
    }
    rc = gnutls_pubkey_import_privkey(signer, issuer_key, 0, 0);
    if (rc < 0) {
        rc = p11_errno(rc);
        goto out;
    }
    if (subject == NULL) {
        if (issuer != NULL) {
            rc = -EINVAL;
            goto out;
        }
        subject = signer;
    } else if (issuer == NULL && !same_key(subject, signer)) {
        /* A self-signed certificate whose key differs from the signer's
         * would never verify. */
        rc = -EINVAL;
        goto out;
    }

    rc = gnutls_x509_crt_init(&crt);
    if (rc < 0) {
        rc = -ENOMEM;
        goto out;
    }
    grc = gnutls_x509_crt_set_version(crt, 3);
    if (grc < 0)
        goto out;
    grc = gnutls_x509_crt_set_pubkey(crt, subject);
    if (grc < 0)
        goto out;
    grc = gnutls_x509_crt_set_dn_by_oid(crt, GNUTLS_OID_X520_COMMON_NAME, 0, req->cn,
                                       (unsigned)strlen(req->cn));
    if (grc < 0)
        goto out;
    rc = set_serial(crt);
    if (rc < 0)
        goto out;

    /* Backdated so a peer whose clock lags a little accepts it at once. */
    now = time(NULL);
    grc = gnutls_x509_crt_set_activation_time(crt, now - BACKDATE_SECONDS);
    if (grc < 0)
        goto out;
    /* Never past the issuer's own end (RFC 5280 6.1.3 would refuse the
     * certificate from then on anyway): capped, as CAs do. */
    not_after = now + (time_t)req->days * 86400;
    if (issuer != NULL) {
        time_t cap = gnutls_x509_crt_get_expiration_time(issuer);
        if (cap != (time_t)-1 && cap < not_after)
            not_after = cap;
    }
    grc = gnutls_x509_crt_set_expiration_time(crt, not_after);
    if (grc < 0)
        goto out;

    rc = set_profile(crt, subject, req);
    if (rc < 0)
        goto out;
    for (i = 0; i < req->n_hosts; i++) {
        rc = add_host(crt, req->hosts[i]);
        if (rc < 0)
            goto out;
    }
    if (req->uri_san != NULL) {
        if (req->uri_san[0] == '\0' || strchr(req->uri_san, ':') == NULL) {
            rc = -EINVAL;
            goto out;
        }
        grc = gnutls_x509_crt_set_subject_alt_name(crt, GNUTLS_SAN_URI, req->uri_san,
                                                  (unsigned)strlen(req->uri_san),
                                                  GNUTLS_FSAN_APPEND);
        if (grc < 0)
            goto out;
    }
    for (i = 0; i < req->n_more_uris; i++) {
        const char *u = req->more_uris[i];
        if (!u || !u[0] || !strchr(u, ':')) {
            rc = -EINVAL;
            goto out;
        }
        grc = gnutls_x509_crt_set_subject_alt_name(crt, GNUTLS_SAN_URI, u, (unsigned)strlen(u),
                                                  GNUTLS_FSAN_APPEND);
        if (grc < 0)
            goto out;
    }
    if (req->crl_url != NULL) {
        /* One fullName URI, all reasons (RFC 5280 4.2.1.13). */
        grc = gnutls_x509_crt_set_crl_dist_points(crt, GNUTLS_SAN_URI, req->crl_url, 0);
        if (grc < 0)
            goto out;
    }

    kid_size = sizeof(kid);
    grc = gnutls_pubkey_get_key_id(subject, GNUTLS_KEYID_USE_SHA1, kid, &kid_size);
    if (grc < 0)
        goto out;
    grc = gnutls_x509_crt_set_subject_key_id(crt, kid, kid_size);
    if (grc < 0)
        goto out;
    /* The issuer's own subject key id, when it has one, is what chain
     * builders compare against (RFC 5280 4.2.1.1). */
    kid_size = sizeof(kid);
    if (issuer == NULL
        || gnutls_x509_crt_get_subject_key_id(issuer, kid, &kid_size, NULL) < 0) {
        kid_size = sizeof(kid);
        grc = gnutls_pubkey_get_key_id(signer, GNUTLS_KEYID_USE_SHA1, kid, &kid_size);
        if (grc < 0)
            goto out;
    }
    grc = gnutls_x509_crt_set_authority_key_id(crt, kid, kid_size);
    if (grc < 0)
        goto out;

    grc = gnutls_x509_crt_privkey_sign(crt, issuer != NULL ? issuer : crt, issuer_key,
                                      p11_sign_digest(signer), 0);
    if (grc < 0)
        goto out;

    /* GnuTLS caches extensions (SANs) when it imports a certificate, not
     * when it writes one: hand back a re-imported copy so getters work. */
    grc = reimport(crt, out);
    if (grc < 0)
        goto out;
    rc = 0;
out:
    if (grc < 0)
        rc = p11_errno(grc);
    gnutls_x509_crt_deinit(crt);
    gnutls_pubkey_deinit(signer);
    return rc;
}

int p11_cert_serial_hex(gnutls_x509_crt_t crt, char **out)
{
    unsigned char serial[64];
    size_t size = sizeof(serial), skip = 0;
    int rc;

    if (crt == NULL || out == NULL)
        return -EINVAL;
    rc = gnutls_x509_crt_get_serial(crt, serial, &size);
    if (rc < 0)
        return p11_errno(rc);
    if (size == 0)
        return -EINVAL;
    /* Canonical form: the DER sign pad (leading 0x00) is not part of the
     * number, so the same serial always prints the same way. */
    while (skip + 1 < size && serial[skip] == 0)
        skip++;
    return p11_hex(serial + skip, size - skip, out);
}
