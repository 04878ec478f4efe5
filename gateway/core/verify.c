#include "verify.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <gnutls/abstract.h>
#include <gnutls/gnutls.h>

#include "cidr.h"
#include "fsutil.h"
#include "registry.h"

#define ROLE_URI_PREFIX "urn:mtlsgw:role:"

static const char *const verdict_names[] = {
    [VERDICT_OK] = "ok",
    [VERDICT_NO_CERT] = "no-certificate",
    [VERDICT_BAD_CERT] = "bad-certificate",
    [VERDICT_UNKNOWN_ISSUER] = "unknown-issuer",
    [VERDICT_BAD_SIGNATURE] = "bad-signature",
    [VERDICT_EXPIRED] = "expired",
    [VERDICT_NOT_YET_VALID] = "not-yet-valid",
    [VERDICT_NO_CLIENTAUTH] = "no-clientauth",
    [VERDICT_REVOKED] = "revoked",
    [VERDICT_NOT_ENROLLED] = "not-enrolled",
    [VERDICT_ROLE_MISMATCH] = "role-mismatch",
    [VERDICT_ROLE_NOT_ALLOWED] = "role-not-allowed",
    [VERDICT_ISSUER_STALE] = "issuer-stale",
};

const char *verdict_name(enum verdict_code code)
{
    return (unsigned)code < sizeof(verdict_names) / sizeof(verdict_names[0])
               ? verdict_names[code]
               : "?";
}

int verify_cert_role(gnutls_x509_crt_t crt)
{
    for (unsigned i = 0;; i++) {
        char buf[256];
        size_t len = sizeof(buf) - 1;
        unsigned critical;
        int type = gnutls_x509_crt_get_subject_alt_name(crt, i, buf, &len, &critical);
        enum peer_role role;

        if (type == GNUTLS_E_REQUESTED_DATA_NOT_AVAILABLE)
            return -1;
        if (type == GNUTLS_E_SHORT_MEMORY_BUFFER)
            continue;
        if (type < 0)
            return -1;
        buf[len] = '\0';
        if (type == GNUTLS_SAN_URI && strncmp(buf, ROLE_URI_PREFIX, strlen(ROLE_URI_PREFIX)) == 0 &&
            role_parse(buf + strlen(ROLE_URI_PREFIX), &role) == 0)
            return (int)role;
    }
}

size_t verify_cert_networks(gnutls_x509_crt_t crt, char (*out)[64], size_t max)
{
    const size_t pl = strlen(VERIFY_NETWORK_URI);
    size_t n = 0;

    for (unsigned i = 0; n < max; i++) {
        char buf[256];
        size_t len = sizeof(buf) - 1;
        struct cidr c;
        int type = gnutls_x509_crt_get_subject_alt_name(crt, i, buf, &len, NULL);

        if (type == GNUTLS_E_SHORT_MEMORY_BUFFER)
            continue;
        if (type < 0)
            break;
        buf[len] = '\0';
        if (type == GNUTLS_SAN_URI && strncmp(buf, VERIFY_NETWORK_URI, pl) == 0 &&
            cidr_parse_network(buf + pl, &c, NULL) == 0)
            cidr_format(&c, out[n++], sizeof(out[0]));
    }
    return n;
}

static bool has_client_auth(gnutls_x509_crt_t crt)
{
    for (unsigned i = 0;; i++) {
        char oid[128];
        size_t len = sizeof(oid);
        int rc = gnutls_x509_crt_get_key_purpose_oid(crt, i, oid, &len, NULL);
        if (rc == GNUTLS_E_SHORT_MEMORY_BUFFER)
            continue;
        if (rc < 0)
            return false;
        if (strcmp(oid, GNUTLS_KP_TLS_WWW_CLIENT) == 0)
            return true;
    }
}

void verify_serial_hex(gnutls_x509_crt_t crt, char *out, size_t outlen)
{
    unsigned char s[64];
    size_t len = sizeof(s);

    out[0] = '\0';
    if (gnutls_x509_crt_get_serial(crt, s, &len) < 0)
        return;
    verify_serial_bytes_hex(s, len, out, outlen);
}

uint64_t verify_crl_number(gnutls_x509_crl_t crl)
{
    unsigned char num[32];
    size_t nl = sizeof(num);
    uint64_t n = 0;

    if (gnutls_x509_crl_get_number(crl, num, &nl, NULL) < 0)
        return 0;
    for (size_t i = 0; i < nl; i++)
        n = n > UINT64_MAX >> 8 ? UINT64_MAX : n << 8 | num[i];
    return n;
}

void verify_crl_num(gnutls_x509_crl_t crl, struct verify_crl_num *out)
{
    unsigned char num[64];
    size_t nl = sizeof(num), i = 0;

    out->len = 0;
    if (gnutls_x509_crl_get_number(crl, num, &nl, NULL) < 0)
        return;
    while (i < nl && num[i] == 0)
        i++;
    if (nl - i > sizeof(out->b))
        return;
    memcpy(out->b, num + i, nl - i);
    out->len = nl - i;
}

int verify_crl_num_cmp(const struct verify_crl_num *a, const struct verify_crl_num *b)
{
    if (a->len != b->len)
        return a->len < b->len ? -1 : 1;
    return a->len ? memcmp(a->b, b->b, a->len) : 0;
}

bool verify_crl_fresh(time_t this_update, time_t next_update, unsigned max_stale, time_t now,
                      char *why, size_t whylen)
{
    char dummy[8];

    if (!why) {
        why = dummy;
        whylen = sizeof(dummy);
    }
    why[0] = '\0';
    if (this_update <= 0)
        snprintf(why, whylen, "its CRL has no thisUpdate");
    else if (this_update > now + VERIFY_CRL_SKEW)
        snprintf(why, whylen, "its CRL's thisUpdate is %lld s ahead of this clock (more than "
                 "the %d s of skew tolerated: check both clocks)",
                 (long long)(this_update - now), VERIFY_CRL_SKEW);
    else if (now - this_update > (time_t)max_stale)
        snprintf(why, whylen, "its CRL was signed %lld s ago, past max-stale (%u s): no "
                 "newer one was fetched (DP unreachable, or held back on the path)",
                 (long long)(now - this_update), max_stale);
    else if (next_update <= 0)
        snprintf(why, whylen, "its CRL has no nextUpdate (it would be good forever)");
    else if (now > next_update)
        snprintf(why, whylen, "its CRL's nextUpdate has passed");
    return why[0] == '\0';
}

bool verify_crl_signed_by(gnutls_x509_crl_t crl, gnutls_x509_crt_t ca)
{
    const unsigned times = GNUTLS_CERT_REVOCATION_DATA_SUPERSEDED |
                           GNUTLS_CERT_REVOCATION_DATA_ISSUED_IN_FUTURE;
    unsigned status = 0;

    if (gnutls_x509_crl_verify(crl, &ca, 1, GNUTLS_VERIFY_DISABLE_TIME_CHECKS, &status) < 0)
        return false;
    if (status & ~(GNUTLS_CERT_INVALID | times))
        return false;
    return !(status & GNUTLS_CERT_INVALID) || (status & times);
}

/* One DER TLV at p[0..len): its tag, where its contents start and how long
 * they are. Single-octet tags, definite lengths up to 4 octets. */
static int der_tlv(const unsigned char *p, size_t len, unsigned char *tag, size_t *hdr,
                   size_t *body)
{
    size_t n, l = 0, h = 2;

    if (len < 2 || (p[0] & 0x1f) == 0x1f)
        return -EBADMSG;
    *tag = p[0];
    if (p[1] < 0x80) {
        l = p[1];
    } else {
        n = p[1] & 0x7f;
        if (n == 0 || n > 4 || len < 2 + n)
            return -EBADMSG;
        for (size_t i = 0; i < n; i++)
            l = (l << 8) | p[2 + i];
        h += n;
    }
    if (l > len - h)
        return -EBADMSG;
    *hdr = h;
    *body = l;
    return 0;
}

/* An OID's contents as dotted text into out. */
static int der_oid_text(const unsigned char *p, size_t len, char *out, size_t outlen)
{
    unsigned long v = 0;
    size_t o = 0;
    bool first = true;

    if (len == 0)
        return -EBADMSG;
    for (size_t i = 0; i < len; i++) {
        int w;
        if (v > (ULONG_MAX >> 7))
            return -EBADMSG;
        v = (v << 7) | (p[i] & 0x7f);
        if (p[i] & 0x80)
            continue;
        if (first)
            w = snprintf(out + o, outlen - o, "%lu.%lu", v < 80 ? v / 40 : 2,
                         v < 80 ? v % 40 : v - 80);
        else
            w = snprintf(out + o, outlen - o, ".%lu", v);
        if (w < 0 || (size_t)w >= outlen - o)
            return -EBADMSG;
        o += (size_t)w;
        v = 0;
        first = false;
    }
    return (p[len - 1] & 0x80) ? -EBADMSG : 0;
}

/* The entries of a tbsCertList's revokedCertificates (contents at p). */
static int der_crl_entries(const unsigned char *p, size_t len, size_t *count)
{
    unsigned char tag;
    size_t hdr, body, off = 0;

    *count = 0;
    /* version INTEGER OPTIONAL, signature, issuer, thisUpdate,
     * nextUpdate OPTIONAL, revokedCertificates OPTIONAL, [0] extensions */
    for (int field = 0; off < len; field++) {
        if (der_tlv(p + off, len - off, &tag, &hdr, &body) < 0)
            return -EBADMSG;
        if (tag == 0x30 && field >= 3) {
            const unsigned char *q = p + off + hdr;
            for (size_t e = 0; e < body; (*count)++) {
                unsigned char t;
                size_t h, b;
                if (der_tlv(q + e, body - e, &t, &h, &b) < 0)
                    return -EBADMSG;
                e += h + b;
            }
            return 0;
        }
        off += hdr + body;
    }
    return 0;
}

int verify_crl_precheck(const void *data, size_t len, gnutls_x509_crt_t ca)
{
    gnutls_datum_t in = {(unsigned char *)data, (unsigned)len}, pem = {NULL, 0};
    gnutls_datum_t tbs, sig;
    gnutls_pubkey_t pub = NULL;
    const unsigned char *p;
    unsigned char tag;
    size_t hdr, body, off, h2, b2, n, entries;
    char oid[128];
    gnutls_sign_algorithm_t algo;
    int rc = -EBADMSG;

    if (len > UINT_MAX)
        return -EFBIG;
    if (len >= 11 && memcmp(data, "-----BEGIN ", 11) == 0) {
        if (gnutls_pem_base64_decode2("X509 CRL", &in, &pem) < 0)
            return -EBADMSG;
        in = pem;
    }
    p = in.data;
    /* CertificateList ::= SEQUENCE { tbsCertList, signatureAlgorithm,
     * signatureValue BIT STRING } */
    /* The outer element is the whole input, and its three parts end where
     * it ends: the bytes checked here are the bytes verify_crl_import hands
     * to GnuTLS (no CRL smuggled after a real one, no PEM block after a
     * DER one). */
    if (der_tlv(p, in.size, &tag, &hdr, &body) < 0 || tag != 0x30 || hdr + body != in.size)
        goto out;
    p += hdr;
    if (der_tlv(p, body, &tag, &hdr, &b2) < 0 || tag != 0x30)
        goto out;
    tbs.data = (unsigned char *)p;
    tbs.size = (unsigned)(hdr + b2);
    if (der_crl_entries(p + hdr, b2, &entries) < 0)
        goto out;
    off = hdr + b2;
    if (der_tlv(p + off, body - off, &tag, &hdr, &b2) < 0 || tag != 0x30 ||
        der_tlv(p + off + hdr, b2, &tag, &h2, &n) < 0 || tag != 0x06 ||
        der_oid_text(p + off + hdr + h2, n, oid, sizeof(oid)) < 0)
        goto out;
    off += hdr + b2;
    if (der_tlv(p + off, body - off, &tag, &hdr, &b2) < 0 || tag != 0x03 || b2 < 2 ||
        p[off + hdr] != 0 || off + hdr + b2 != body)
        goto out;
    sig.data = (unsigned char *)p + off + hdr + 1;
    sig.size = (unsigned)(b2 - 1);
    /* RSA-PSS names its hash in parameters this walk does not read: taken
     * on unchecked only while small (GnuTLS's import is quadratic in the
     * entries and in the issuer name's parts, so a cap on bytes bounds
     * both). Any other algorithm GnuTLS does not know is refused. */
    if (strcmp(oid, "1.2.840.113549.1.1.10") == 0) {
        rc = entries > VERIFY_CRL_MAX_UNCHECKED || in.size > VERIFY_CRL_MAX_UNCHECKED_BYTES
                 ? -EFBIG : 0;
        goto out;
    }
    algo = gnutls_oid_to_sign(oid);
    if (algo == GNUTLS_SIGN_UNKNOWN) {
        rc = -ENOTSUP;
        goto out;
    }
    rc = -EPERM;
    if (gnutls_pubkey_init(&pub) < 0) {
        rc = -ENOMEM;
        goto out;
    }
    if (gnutls_pubkey_import_x509(pub, ca, 0) == 0 &&
        gnutls_pubkey_verify_data2(pub, algo, 0, &tbs, &sig) >= 0)
        rc = 0;
out:
    if (pub)
        gnutls_pubkey_deinit(pub);
    gnutls_free(pem.data);
    return rc;
}

int verify_crl_import(gnutls_x509_crl_t crl, const void *data, size_t len)
{
    gnutls_datum_t d = {(unsigned char *)data, (unsigned)len};
    bool pem = len >= 11 && memcmp(data, "-----BEGIN ", 11) == 0;

    if (len > UINT_MAX)
        return -EFBIG;
    return gnutls_x509_crl_import(crl, &d, pem ? GNUTLS_X509_FMT_PEM : GNUTLS_X509_FMT_DER) < 0
               ? -EBADMSG : 0;
}

char *verify_crl_dp_http(gnutls_x509_crt_t crt)
{
    for (unsigned i = 0; i < 16; i++) {
        char buf[1024];
        size_t len = sizeof(buf) - 1;
        unsigned reasons = 0, critical = 0;
        int type = gnutls_x509_crt_get_crl_dist_points(crt, i, buf, &len, &reasons, &critical);
        if (type == GNUTLS_E_SHORT_MEMORY_BUFFER)
            continue;
        if (type < 0)
            return NULL;
        buf[len] = '\0';
        if (type == GNUTLS_SAN_URI && strncmp(buf, "http://", 7) == 0)
            return strdup(buf);
    }
    return NULL;
}

bool verify_signed_by(gnutls_x509_crt_t crt, gnutls_x509_crt_t ca)
{
    unsigned status = 1;

    /* The name is only a hint: two CAs under one root may carry the same
     * subject (a sibling asked the root for our CA's name), and GnuTLS
     * compares key identifiers only when both certificates have them. The
     * signature is what says which key issued crt. */
    return crt && ca && gnutls_x509_crt_check_issuer(crt, ca) == 1 &&
           gnutls_x509_crt_verify(crt, &ca, 1,
                                  GNUTLS_VERIFY_DISABLE_TIME_CHECKS |
                                      GNUTLS_VERIFY_DISABLE_TRUSTED_TIME_CHECKS,
                                  &status) >= 0 &&
           status == 0;
}

static void dn_of(gnutls_x509_crt_t crt, bool issuer, char *out, size_t len)
{
    gnutls_datum_t dn = {0};
    int rc = issuer ? gnutls_x509_crt_get_issuer_dn3(crt, &dn, 0)
                    : gnutls_x509_crt_get_dn3(crt, &dn, 0);

    snprintf(out, len, "%s", rc == 0 ? (const char *)dn.data : "?");
    gnutls_free(dn.data);
}

/* The certificates of a PEM file (or none when it cannot be read). */
static unsigned read_pem_certs(const char *path, gnutls_x509_crt_t **out)
{
    char *text = NULL;
    size_t len = 0;
    unsigned n = 0;

    *out = NULL;
    if (!path || fs_read_file(path, 1024 * 1024, &text, &len) < 0)
        return 0;
    {
        gnutls_datum_t d = {(unsigned char *)text, (unsigned)len};
        if (gnutls_x509_crt_list_import2(out, &n, &d, GNUTLS_X509_FMT_PEM, 0) < 0) {
            *out = NULL;
            n = 0;
        }
    }
    free(text);
    return n;
}

bool verify_files_share_subject(const char *a, const char *b, char *dn, size_t dnlen)
{
    gnutls_x509_crt_t *ca = NULL, *cb = NULL;
    unsigned na = read_pem_certs(a, &ca), nb = read_pem_certs(b, &cb);
    bool same = false;

    for (unsigned i = 0; i < na && !same; i++) {
        char da[256];
        dn_of(ca[i], false, da, sizeof(da));
        for (unsigned k = 0; k < nb && !same; k++) {
            char db[256];
            dn_of(cb[k], false, db, sizeof(db));
            /* Byte-equal DNs are what GnuTLS matches; case aside they
             * are one name to a reader too. */
            same = strcmp(da, "?") != 0 && strcasecmp(da, db) == 0;
            if (same)
                snprintf(dn, dnlen, "%s", da);
        }
    }
    for (unsigned i = 0; i < na; i++)
        gnutls_x509_crt_deinit(ca[i]);
    for (unsigned i = 0; i < nb; i++)
        gnutls_x509_crt_deinit(cb[i]);
    gnutls_free(ca);
    gnutls_free(cb);
    return same;
}

gnutls_x509_crt_t verify_issuer_among(gnutls_x509_crt_t crt, gnutls_x509_crt_t *anchors,
                                      size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (verify_signed_by(crt, anchors[i]))
            return anchors[i];
    return NULL;
}

bool verify_crl_lists(gnutls_x509_crl_t crl, gnutls_x509_crt_t crt)
{
    gnutls_x509_crl_iter_t it = NULL;
    char want[64], hex[64];
    bool listed = false;

    verify_serial_hex(crt, want, sizeof(want));
    for (;;) {
        unsigned char s[64];
        size_t sl = sizeof(s);
        time_t when;
        if (gnutls_x509_crl_iter_crt_serial(crl, &it, s, &sl, &when) < 0)
            break;
        verify_serial_bytes_hex(s, sl, hex, sizeof(hex));
        listed = listed || strcmp(hex, want) == 0;
    }
    if (it)
        gnutls_x509_crl_iter_deinit(it);
    return listed;
}

bool verify_crl_aging(time_t this_update, unsigned max_stale, time_t now, char *out,
                      size_t outlen)
{
    if (this_update <= 0 || now - this_update <= (time_t)(max_stale / 2))
        return false;
    snprintf(out, outlen, "its CRL is %lld s old (since its thisUpdate), more than "
             "max-stale/2 (%u s): the issuer re-signs less often than max-stale needs; lower "
             "the issuer's [crl] resign or raise max-stale",
             (long long)(now - this_update), max_stale / 2);
    return true;
}

void verify_serial_bytes_hex(const unsigned char *s, size_t len, char *out, size_t outlen)
{
    size_t i = 0, o = 0;

    out[0] = '\0';
    /* Leading zero octets are DER padding, not part of the number. */
    while (i + 1 < len && s[i] == 0)
        i++;
    for (; i < len && o + 3 <= outlen; i++, o += 2)
        snprintf(out + o, 3, "%02x", s[i]);
}


static int finish(struct verdict *v, enum verdict_code code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int finish(struct verdict *v, enum verdict_code code, const char *fmt, ...)
{
    va_list ap;

    v->code = code;
    va_start(ap, fmt);
    vsnprintf(v->reason, sizeof(v->reason), fmt, ap);
    va_end(ap);
    return 0;
}

gnutls_x509_crt_t verify_ca_at(const struct trust *t, int i)
{
    if (i < 0)
        return NULL;
    if ((size_t)i < t->n_cas)
        return t->cas[i];
    if ((size_t)i - t->n_cas < t->n_chain)
        return t->chain[(size_t)i - t->n_cas];
    return NULL;
}

/* The CA in t->cas or t->chain whose key signed crt, or -1. */
static int issuer_of(const struct trust *t, gnutls_x509_crt_t crt)
{
    for (size_t i = 0; i < t->n_cas + t->n_chain; i++)
        if (verify_signed_by(crt, verify_ca_at(t, (int)i)))
            return (int)i;
    return -1;
}

static int cmp_serial(const void *a, const void *b)
{
    return strcmp(a, b);
}

bool verify_serial_listed(char (*const list)[64], size_t n, const char *serial)
{
    return n && bsearch(serial, list, n, sizeof(list[0]), cmp_serial);
}

bool verify_ca_pathlen0(gnutls_x509_crt_t ca)
{
    unsigned critical = 0, is_ca = 0;
    int pathlen = -1;

    return gnutls_x509_crt_get_basic_constraints(ca, &critical, &is_ca, &pathlen) >= 0 &&
           is_ca && pathlen == 0;
}

/* The sibling issuer in t->issuers whose key signed crt, or -1. */
static int sibling_of(const struct trust *t, gnutls_x509_crt_t crt)
{
    for (size_t i = 0; i < t->n_issuers; i++)
        if (verify_signed_by(crt, t->issuers[i].ca))
            return (int)i;
    return -1;
}

/* f->ca and the period every CA on the way up from it is valid in. */
static void ca_path_facts(const struct trust *t, gnutls_x509_crt_t crt, struct cert_facts *f)
{
    int i = issuer_of(t, crt);

    f->ca = i;
    for (size_t hops = 0; i >= 0 && hops < t->n_cas + t->n_chain; hops++) {
        gnutls_x509_crt_t ca = verify_ca_at(t, i);
        time_t nb = gnutls_x509_crt_get_activation_time(ca);
        time_t na = gnutls_x509_crt_get_expiration_time(ca);
        if (nb != (time_t)-1 && nb > f->ca_not_before)
            f->ca_not_before = nb;
        if (na != (time_t)-1 && (!f->ca_not_after || na < f->ca_not_after))
            f->ca_not_after = na;
        if (gnutls_x509_crt_check_issuer(ca, ca))
            break; /* a root */
        i = issuer_of(t, ca);
    }
}

void verify_facts(const struct trust *t, gnutls_x509_crt_t crt, struct cert_facts *f)
{
    size_t cn_len;

    memset(f, 0, sizeof(*f));
    ca_path_facts(t, crt, f);
    f->issuer = f->ca < 0 ? sibling_of(t, crt) : -1;
    cn_len = sizeof(f->cn) - 1;
    if (gnutls_x509_crt_get_dn_by_oid(crt, GNUTLS_OID_X520_COMMON_NAME, 0, 0, f->cn, &cn_len) < 0)
        f->cn[0] = '\0';
    verify_serial_hex(crt, f->serial, sizeof(f->serial));
    dn_of(crt, false, f->subject, sizeof(f->subject));
    dn_of(crt, true, f->issuer_dn, sizeof(f->issuer_dn));
    f->not_before = gnutls_x509_crt_get_activation_time(crt);
    f->not_after = gnutls_x509_crt_get_expiration_time(crt);
    f->client_auth = has_client_auth(crt);
    if (f->issuer >= 0)
        f->crl_revoked = verify_serial_listed(t->issuers[f->issuer].revoked,
                                              t->issuers[f->issuer].n_revoked, f->serial);
    else
        f->crl_revoked =
            (t->crl && gnutls_x509_crt_check_revocation(crt, &t->crl, 1) == 1) ||
            (t->crl_old && gnutls_x509_crt_check_revocation(crt, &t->crl_old, 1) == 1);
    f->role = verify_cert_role(crt);
}

/*
 * A sibling issuer's peer, once validity and clientAuth passed: that
 * issuer's CRL must be fresh and not list it, our registry (when it has
 * the serial) must not have revoked it and must agree on the role, and
 * the role must be one the issuer may vouch for and the listener serves.
 */
static int sibling_policy(const struct trust *t, const struct cert_facts *f, time_t now,
                          unsigned allowed_roles, struct verdict *v)
{
    const struct trust_issuer *is = &t->issuers[f->issuer];
    /* Peers are (issuer, serial): every registry entry is one this hub's CA
     * issued, so none is a sibling issuer's peer, whatever its serial. */
    const struct peer *p = NULL;
    char when[32];

    snprintf(v->issuer, sizeof(v->issuer), "%s", is->name);
    snprintf(v->name, sizeof(v->name), "%s", p ? p->name : f->cn);
    v->role = f->role;
    v->peer = p;
    {
        time_t na = gnutls_x509_crt_get_expiration_time(is->ca);
        if (na != (time_t)-1 && now > na)
            return finish(v, VERDICT_EXPIRED, "its issuer %s's CA expired", is->name);
    }
    if (is->ca_revoked)
        return finish(v, VERDICT_REVOKED,
                      "its issuer %s's CA is revoked by the root (on the root's CRL): every "
                      "peer of that issuer is refused",
                      is->name);
    if (!is->fresh)
        return finish(v, VERDICT_ISSUER_STALE,
                      "issuer %s: no fresh CRL from its distribution point within max-stale: "
                      "its peers are refused until one is fetched",
                      is->name);
    if (f->crl_revoked)
        return finish(v, VERDICT_REVOKED, "revoked by its issuer %s: serial %s is on its CRL",
                      is->name, v->serial);
    if (p && p->status != PEER_ACTIVE) {
        time_format_utc(p->revoked_at, when, sizeof(when));
        return finish(v, VERDICT_REVOKED, "peer %s of issuer %s: revoked here on %s (%s)",
                      p->name, is->name, when, p->reason ? p->reason : "unspecified");
    }
    if (f->role < 0)
        return finish(v, VERDICT_ROLE_MISMATCH,
                      "peer %s of issuer %s: certificate carries no role URI (" ROLE_URI_PREFIX
                      "...)",
                      v->name, is->name);
    if (p && (enum peer_role)f->role != p->role)
        return finish(v, VERDICT_ROLE_MISMATCH,
                      "peer %s of issuer %s: role mismatch: certificate says %s, registry says %s",
                      p->name, is->name, role_name((enum peer_role)f->role), role_name(p->role));
    if (!(is->roles & VERIFY_ROLE(f->role)))
        return finish(v, VERDICT_ROLE_NOT_ALLOWED,
                      "peer %s: issuer %s may not vouch for role %s here ([trust %s] roles)",
                      v->name, is->name, role_name((enum peer_role)f->role), is->name);
    if (!(allowed_roles & VERIFY_ROLE(f->role)))
        return finish(v, VERDICT_ROLE_NOT_ALLOWED,
                      "peer %s of issuer %s: role %s is not allowed on this listener", v->name,
                      is->name, role_name((enum peer_role)f->role));
    v->code = VERDICT_OK;
    return 0;
}

/*
 * Everything but the chain: validity period, clientAuth, CRL, registry, role.
 */
static int verify_policy(const struct trust *t, const struct cert_facts *f, time_t now,
                         unsigned allowed_roles, bool purpose_mismatch, struct verdict *v)
{
    const struct peer *p;
    char when[32];

    snprintf(v->serial, sizeof(v->serial), "%s", f->serial);
    snprintf(v->subject, sizeof(v->subject), "%s", f->subject);
    v->not_after = f->not_after;
    /* Signed by neither this hub's CA or chain nor a [trust] CA (a sub-CA
     * under a sibling without pathlen:0): no registry entry is its. */
    if (f->ca < 0 && f->issuer < 0)
        return finish(v, VERDICT_UNKNOWN_ISSUER,
                      "unknown issuer '%s': neither this gateway's CA nor a [trust] issuer's "
                      "CA issued it (a sub-CA under a sibling?)",
                      f->issuer_dn);
    /* The chain is verified without time checks (verify_peer_facts): the
     * CA's period is checked here, against the same `now` as the peer's. */
    if (f->ca >= 0 && f->ca_not_after && now > f->ca_not_after) {
        char ca[256];
        dn_of(verify_ca_at(t, f->ca), false, ca, sizeof(ca));
        time_format_utc(f->ca_not_after, when, sizeof(when));
        return finish(v, VERDICT_EXPIRED,
                      "the CA '%s' expired on %s: no certificate it issued is valid any more "
                      "(a new CA must be made and its peers enrolled again)",
                      ca, when);
    }
    if (f->ca >= 0 && now < f->ca_not_before) {
        char ca[256];
        dn_of(verify_ca_at(t, f->ca), false, ca, sizeof(ca));
        time_format_utc(f->ca_not_before, when, sizeof(when));
        return finish(v, VERDICT_NOT_YET_VALID, "the CA '%s' is not valid before %s (clock?)",
                      ca, when);
    }
    if (now < f->not_before) {
        time_format_utc(f->not_before, when, sizeof(when));
        finish(v, VERDICT_NOT_YET_VALID, "not yet valid: valid from %s", when);
        return 0;
    }
    if (now > f->not_after) {
        time_format_utc(f->not_after, when, sizeof(when));
        finish(v, VERDICT_EXPIRED, "expired on %s", when);
        return 0;
    }
    /* RFC 5280 reads a missing EKU as "any purpose"; mtlsgw insists on it. */
    if (!f->client_auth || purpose_mismatch) {
        finish(v, VERDICT_NO_CLIENTAUTH, "no clientAuth extended key usage");
        return 0;
    }
    if (f->issuer >= 0 && f->issuer < (int)t->n_issuers)
        return sibling_policy(t, f, now, allowed_roles, v);
    p = t->reg ? registry_find_serial(t->reg, v->serial) : NULL;
    /* On the CRL: the registry's entry says when and why, if it has one. */
    if (f->crl_revoked && !(p && p->status != PEER_ACTIVE))
        return finish(v, VERDICT_REVOKED, "revoked: serial %s is on the CRL", v->serial);
    v->peer = p;
    /* A reissue's overlap: superseded only from revoked_at on (pki.h). */
    if (p && p->status != PEER_ACTIVE &&
        !(p->status == PEER_SUPERSEDED && p->revoked_at > (int64_t)now)) {
        time_format_utc(p->revoked_at, when, sizeof(when));
        finish(v, VERDICT_REVOKED, "peer %s: %s on %s (%s)", p->name,
               p->status == PEER_SUPERSEDED ? "superseded by a newer certificate" : "revoked",
               when, p->reason ? p->reason : "unspecified");
        return 0;
    }
    if (!p) {
        finish(v, VERDICT_NOT_ENROLLED, "not in registry: no peer has serial %s", v->serial);
        return 0;
    }
    if (f->role < 0) {
        finish(v, VERDICT_ROLE_MISMATCH,
               "peer %s: certificate carries no role URI (" ROLE_URI_PREFIX "...), registry "
               "says %s",
               p->name, role_name(p->role));
        return 0;
    }
    if ((enum peer_role)f->role != p->role) {
        finish(v, VERDICT_ROLE_MISMATCH, "peer %s: role mismatch: certificate says %s, registry says %s",
               p->name, role_name((enum peer_role)f->role), role_name(p->role));
        return 0;
    }
    if (!(allowed_roles & VERIFY_ROLE(p->role))) {
        finish(v, VERDICT_ROLE_NOT_ALLOWED, "peer %s: role %s is not allowed on this listener",
               p->name, role_name(p->role));
        return 0;
    }
    snprintf(v->name, sizeof(v->name), "%s", p->name);
    v->role = (int)p->role;
    v->code = VERDICT_OK;
    return 0;
}

int verify_peer(const struct trust *t, const gnutls_x509_crt_t *chain, size_t n, time_t now,
                unsigned allowed_roles, struct verdict *v)
{
    struct cert_facts f;

    return verify_peer_facts(t, chain, n, now, allowed_roles, v, &f);
}

/*
 * The peer's certificates, then those of t->chain it did not send: a peer
 * may send its certificate alone (curl --cert, most clients) and its path
 * still runs through this gateway's intermediates to the root. GnuTLS sorts
 * the list from chain[0] up and drops what is not on the path.
 */
static gnutls_x509_crt_t *complete_chain(const struct trust *t, const gnutls_x509_crt_t *chain,
                                         size_t n, size_t *n_out)
{
    gnutls_x509_crt_t *all = calloc(n + t->n_chain, sizeof(*all));

    if (!all)
        return NULL;
    memcpy(all, chain, n * sizeof(*all));
    *n_out = n;
    for (size_t i = 0; i < t->n_chain; i++) {
        bool sent = false;
        for (size_t k = 0; k < n && !sent; k++)
            sent = gnutls_x509_crt_equals(chain[k], t->chain[i]);
        if (!sent)
            all[(*n_out)++] = t->chain[i];
    }
    return all;
}

int verify_peer_facts(const struct trust *t, const gnutls_x509_crt_t *chain, size_t n,
                      time_t now, unsigned allowed_roles, struct verdict *v,
                      struct cert_facts *f)
{
    gnutls_x509_crt_t *full = NULL;
    size_t n_full = 0;
    gnutls_x509_trust_list_t tl = NULL;
    gnutls_x509_crt_t crt;
    unsigned status = 0;
    int rc;
    gnutls_typed_vdata_st vdata = {
        .type = GNUTLS_DT_KEY_PURPOSE_OID,
        .data = (void *)GNUTLS_KP_TLS_WWW_CLIENT,
    };

    memset(v, 0, sizeof(*v));
    if (n == 0 || !chain || !chain[0])
        return finish(v, VERDICT_NO_CERT, "no client certificate");
    crt = chain[0];
    verify_facts(t, crt, f);
    snprintf(v->serial, sizeof(v->serial), "%s", f->serial);
    snprintf(v->subject, sizeof(v->subject), "%s", f->subject);

    full = complete_chain(t, chain, n, &n_full);
    if (!full)
        return -ENOMEM;
    rc = gnutls_x509_trust_list_init(&tl, 0);
    if (rc < 0) {
        free(full);
        return -ENOMEM;
    }
    /* The list borrows the certificates: it must not free them. */
    /* No GNUTLS_TL_NO_DUPLICATES: with it GnuTLS may free entries it drops. */
    rc = gnutls_x509_trust_list_add_cas(tl, t->cas, (unsigned)t->n_cas, 0);
    if (rc < 0) {
        rc = -EINVAL;
        goto out;
    }
    /* Sibling issuers' CAs are anchors too: each is an intermediate under
     * our root, and its peers send their leaf (and perhaps that
     * intermediate, which the list then cuts the chain at). */
    for (size_t i = 0; i < t->n_issuers; i++) {
        gnutls_x509_crt_t ca = t->issuers[i].ca;
        if (ca && gnutls_x509_trust_list_add_cas(tl, &ca, 1, 0) < 0) {
            rc = -EINVAL;
            goto out;
        }
    }
    /* Time is checked below against `now`, so explain can say which bound. */
    rc = gnutls_x509_trust_list_verify_crt2(
        tl, full, (unsigned)n_full, &vdata, 1,
        GNUTLS_VERIFY_DISABLE_TIME_CHECKS | GNUTLS_VERIFY_DISABLE_TRUSTED_TIME_CHECKS, &status,
        NULL);
    if (rc < 0) {
        finish(v, VERDICT_BAD_CERT, "cannot verify: %s", gnutls_strerror(rc));
        rc = 0;
        goto out;
    }
    rc = 0;
    if (status & GNUTLS_CERT_SIGNER_NOT_FOUND) {
        char issuer[256], anchor[256] = "?";
        dn_of(crt, true, issuer, sizeof(issuer));
        if (t->n_cas)
            dn_of(t->cas[0], false, anchor, sizeof(anchor));
        finish(v, VERDICT_UNKNOWN_ISSUER, "unknown issuer '%s' (this gateway trusts '%s')",
               issuer, anchor);
        goto out;
    }
    if (status & GNUTLS_CERT_SIGNATURE_FAILURE) {
        finish(v, VERDICT_BAD_SIGNATURE,
               "signature does not verify: signed by a different key than this gateway's CA "
               "(a foreign CA with the same name?)");
        goto out;
    }
    /* A purpose mismatch alone is reported below, as "no clientAuth". */
    if (status & ~(unsigned)(GNUTLS_CERT_PURPOSE_MISMATCH | GNUTLS_CERT_INVALID) ||
        (status && !(status & GNUTLS_CERT_PURPOSE_MISMATCH))) {
        gnutls_datum_t txt = {0};
        gnutls_certificate_verification_status_print(status, GNUTLS_CRT_X509, &txt, 0);
        finish(v, VERDICT_BAD_CERT, "chain rejected: %s", txt.data ? (char *)txt.data : "?");
        gnutls_free(txt.data);
        goto out;
    }
    rc = verify_policy(t, f, now, allowed_roles, (status & GNUTLS_CERT_PURPOSE_MISMATCH) != 0, v);
out:
    /* Deinit without freeing the borrowed CAs: flag 0 leaves them alone. */
    gnutls_x509_trust_list_deinit(tl, 0);
    free(full);
    return rc;
}

int verify_by_facts(const struct trust *t, const struct cert_facts *f, time_t now,
                    unsigned allowed_roles, struct verdict *v)
{
    memset(v, 0, sizeof(*v));
    if (!f)
        return finish(v, VERDICT_NO_CERT, "no client certificate");
    return verify_policy(t, f, now, allowed_roles, false, v);
}

int verify_import_chain(const gnutls_datum_t *raw, unsigned n, gnutls_x509_crt_t **out)
{
    gnutls_x509_crt_t *c;

    *out = NULL;
    if (n == 0)
        return 0;
    c = calloc(n, sizeof(*c));
    if (!c)
        return -ENOMEM;
    for (unsigned i = 0; i < n; i++) {
        if (gnutls_x509_crt_init(&c[i]) < 0 ||
            gnutls_x509_crt_import(c[i], &raw[i], GNUTLS_X509_FMT_DER) < 0) {
            verify_free_chain(c, i + 1);
            return -EBADMSG;
        }
    }
    *out = c;
    return 0;
}

void verify_free_chain(gnutls_x509_crt_t *chain, unsigned n)
{
    for (unsigned i = 0; chain && i < n; i++)
        if (chain[i])
            gnutls_x509_crt_deinit(chain[i]);
    free(chain);
}
