/*
 * fuzz-est: EST bodies (RFC 7030) through gateway/core/est-codec.h, as
 * gateway/daemon/session/est.c reads them from a client and the device side reads the
 * hub's answers:
 *
 *   est_csr_decode     the body of simpleenroll/simplereenroll: base64 DER
 *                      with or without line breaks and padding, PEM, or raw
 *                      DER; then p11_csr_parse (PKCS#10 and its
 *                      self-signature). A CSR that passes is read further as
 *                      read_csr() and same_subject() do: its public key, its
 *                      key id, its subject; and encoded again as the client
 *                      sends it.
 *   est_base64_decode  the same bytes with the whitespace taken out and with
 *                      CRLF every 64 characters put in must decode the same;
 *                      what decoded encodes and decodes back to itself.
 *   est_certs_decode   a cacerts answer (certs-only PKCS#7, base64 or DER).
 *   est_basic_parse    the Authorization header (first line of the input),
 *                      into buffers of est.c's size; the password is an
 *                      invite code: invite_code_normalize, and
 *                      invite_code_matches against an invite (gateway/core/invite.h).
 *   est_media_is       the Content-Type header (the same line).
 *
 * The whole input is the body, NUL-terminated as the HTTP reader hands it.
 */
#include <ctype.h>
#include <errno.h>
#include <string.h>

#include <gnutls/abstract.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

#include "est-codec.h"
#include "fuzz.h"
#include "invite.h"
#include "p11.h"

#define CRED_MAX 128 /* est.c */

/* Decode s; rc and, when it decoded, the bytes in *out (gnutls_malloc'ed). */
static int b64(const char *s, size_t len, gnutls_datum_t *out)
{
    out->data = NULL;
    out->size = 0;
    return est_base64_decode(s, len, out);
}

static bool same_datum(const gnutls_datum_t *a, const gnutls_datum_t *b)
{
    return a->size == b->size && (a->size == 0 || memcmp(a->data, b->data, a->size) == 0);
}

static void check_base64(const char *in, size_t len)
{
    gnutls_datum_t d, bare = {0}, lines = {0}, again = {0}, enc = {0};
    char *squeezed = malloc(len + 1), *wrapped = malloc(len + len / 32 + 3);
    size_t n = 0, w = 0, chars = 0;
    int rc, rc2;

    if (!squeezed || !wrapped)
        goto out;
    for (size_t i = 0; i < len; i++)
        if (!isspace((unsigned char)in[i]))
            squeezed[n++] = in[i];
    squeezed[n] = '\0';
    for (size_t i = 0; i < n; i++) {
        wrapped[w++] = squeezed[i];
        if (++chars % 64 == 0) {
            wrapped[w++] = '\r';
            wrapped[w++] = '\n';
        }
    }
    wrapped[w] = '\0';

    rc = b64(in, len, &d);
    FUZZ_CHECK(rc == 0 || rc == -EBADMSG || rc == -ENOMEM);
    rc2 = b64(squeezed, n, &bare);
    FUZZ_CHECK((rc == 0) == (rc2 == 0));
    if (rc == 0)
        FUZZ_CHECK(same_datum(&d, &bare));
    rc2 = b64(wrapped, w, &lines);
    FUZZ_CHECK((rc == 0) == (rc2 == 0));
    if (rc == 0) {
        FUZZ_CHECK(same_datum(&d, &lines));
        FUZZ_CHECK(d.size <= (n + 3) / 4 * 3);
        /* Encode what decoded; it must decode back to the same bytes. */
        if (d.size > 0 && gnutls_base64_encode2(&d, &enc) == 0) {
            FUZZ_CHECK(b64((const char *)enc.data, enc.size, &again) == 0);
            FUZZ_CHECK(same_datum(&d, &again));
        }
    }
    gnutls_free(d.data);
    gnutls_free(bare.data);
    gnutls_free(lines.data);
    gnutls_free(again.data);
    gnutls_free(enc.data);
out:
    free(squeezed);
    free(wrapped);
}

static void check_csr(const char *body, size_t len)
{
    gnutls_x509_crq_t crq = NULL, crq2 = NULL;
    gnutls_pubkey_t pub = NULL;
    gnutls_datum_t dn = {0};
    char err[256], err2[256], *id = NULL, *enc = NULL;
    size_t enc_len = 0;
    int rc;

    memset(err, 0x5a, sizeof(err));
    err[0] = '\0';
    rc = est_csr_decode(body, len, &crq, err, sizeof(err));
    if (rc < 0) {
        FUZZ_CHECK(crq == NULL);
        FUZZ_CHECK(memchr(err, '\0', sizeof(err)) != NULL && err[0] != '\0');
        return;
    }
    FUZZ_CHECK(rc == 0 && crq != NULL);
    /* read_csr() */
    if (gnutls_pubkey_init(&pub) == 0) {
        if (gnutls_pubkey_import_x509_crq(pub, crq, 0) == 0 && p11_pubkey_id_hex(pub, &id) == 0) {
            FUZZ_CHECK(strlen(id) == 64);
            free(id);
        }
        gnutls_pubkey_deinit(pub);
    }
    /* same_subject() */
    if (gnutls_x509_crq_get_dn3(crq, &dn, 0) == 0) {
        FUZZ_CHECK(dn.data != NULL);
        FUZZ_CHECK(strlen((const char *)dn.data) <= dn.size);
        gnutls_free(dn.data);
    }
    /* What the client sends (one line of base64) the server reads. */
    if (est_csr_encode(crq, &enc, &enc_len) == 0) {
        FUZZ_CHECK(strlen(enc) == enc_len);
        FUZZ_CHECK(strpbrk(enc, "\r\n") == NULL);
        if (est_csr_decode(enc, enc_len, &crq2, err2, sizeof(err2)) == 0)
            gnutls_x509_crq_deinit(crq2);
        free(enc);
    }
    gnutls_x509_crq_deinit(crq);
}

static void check_certs(const char *body, size_t len)
{
    gnutls_x509_crt_t *certs = NULL;
    size_t n = 0;

    if (est_certs_decode(body, len, &certs, &n) < 0)
        return;
    FUZZ_CHECK(certs != NULL && n >= 1 && n <= 16);
    for (size_t i = 0; i < n; i++) {
        char fp[96];
        FUZZ_CHECK(certs[i] != NULL);
        if (est_cert_fingerprint(certs[i], i % 2, fp, sizeof(fp)) == 0)
            FUZZ_CHECK(strlen(fp) == (i % 2 ? 95u : 64u));
        gnutls_x509_crt_deinit(certs[i]);
    }
    free(certs);
}

/* What a person types for the invite code. */
static void check_code(const char *code)
{
    static struct invite inv;
    static bool ready;
    char norm[INVITE_CODE_CHARS + 1], again[INVITE_CODE_CHARS + 1];

    if (!ready) {
        if (invite_set_code(&inv, "ABCD-EFGH-JKMN-PQRS-TVWX") < 0)
            abort();
        ready = true;
    }
    if (invite_code_normalize(code, norm)) {
        FUZZ_CHECK(strlen(norm) == INVITE_CODE_CHARS);
        FUZZ_CHECK(strspn(norm, "0123456789ABCDEFGHJKMNPQRSTVWXYZ") == INVITE_CODE_CHARS);
        FUZZ_CHECK(invite_code_normalize(norm, again) && strcmp(norm, again) == 0);
        FUZZ_CHECK(invite_code_matches(&inv, code) ==
                   (strcmp(norm, "ABCDEFGHJKMNPQRSTVWX") == 0));
    } else {
        FUZZ_CHECK(!invite_code_matches(&inv, code));
    }
}

static void check_header(const char *hdr)
{
    char user[CRED_MAX], pass[CRED_MAX];

    if (est_basic_parse(hdr, user, sizeof(user), pass, sizeof(pass)) == 0) {
        FUZZ_CHECK(strlen(user) < sizeof(user) && strlen(pass) < sizeof(pass));
        FUZZ_CHECK(strchr(user, ':') == NULL);
        check_code(pass);
    }
    (void)est_media_is(hdr, EST_CT_PKCS10);
    (void)est_media_is(hdr, EST_CT_PKCS7);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *body, *nl;

    if (size > 65536) /* max-body */
        return 0;
    body = malloc(size + 1);
    if (!body)
        return 0;
    memcpy(body, data, size);
    body[size] = '\0';

    check_csr(body, size);
    check_base64(body, size);
    check_certs(body, size);
    /* A header is one line: up to the first CR, LF or NUL. */
    nl = body + strcspn(body, "\r\n");
    *nl = '\0';
    check_header(body);

    free(body);
    return 0;
}
