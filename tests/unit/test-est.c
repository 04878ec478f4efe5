/* EST wire formats (est-codec.c), invite codes (invite.c), the client's URL
 * and the renewal time (est-client.c): pure functions, no token, no network. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <gnutls/gnutls.h>
#include <gnutls/abstract.h>
#include <gnutls/x509.h>

#include "cunit-main.h"
#include "est-client.h"
#include "est-codec.h"
#include "invite.h"

static int decode(const char *in, char *out, size_t outlen)
{
    gnutls_datum_t d = {0};
    int rc = est_base64_decode(in, strlen(in), &d);

    if (rc == 0) {
        snprintf(out, outlen, "%.*s", (int)d.size, (const char *)d.data);
        gnutls_free(d.data);
    }
    return rc;
}

static void test_base64(void)
{
    char out[64];

    EXPECT_INT(decode("aGVsbG8gd29ybGQ=", out, sizeof(out)), 0);
    EXPECT_STR(out, "hello world");
    /* Line breaks (CRLF too), spaces, tabs, no padding: what EST peers send. */
    EXPECT_INT(decode("aGVs\r\nbG8g\nd29y bG\tQ", out, sizeof(out)), 0);
    EXPECT_STR(out, "hello world");
    EXPECT_INT(decode("aGVsbG8*", out, sizeof(out)), -EBADMSG);
    EXPECT_INT(decode("   \r\n", out, sizeof(out)), -EBADMSG);
}

static void test_basic(void)
{
    char user[32], pass[32], *hdr = NULL;

    CU_ASSERT_EQUAL_FATAL(est_basic_make("spoke1", "ABCD-EFGH", &hdr), 0);
    EXPECT_STR(hdr, "Basic c3Bva2UxOkFCQ0QtRUZHSA==");
    EXPECT_INT(est_basic_parse(hdr, user, sizeof(user), pass, sizeof(pass)), 0);
    EXPECT_STR(user, "spoke1");
    EXPECT_STR(pass, "ABCD-EFGH");
    free(hdr);
    /* The scheme in any case; a colon in the password is the password's. */
    EXPECT_INT(est_basic_parse("bAsIc  YTpiOmM=", user, sizeof(user), pass, sizeof(pass)), 0);
    EXPECT_STR(user, "a");
    EXPECT_STR(pass, "b:c");
    EXPECT_INT(est_basic_parse("Bearer abc", user, sizeof(user), pass, sizeof(pass)), -EINVAL);
    EXPECT_INT(est_basic_parse("Basic bm9jb2xvbg==", user, sizeof(user), pass, sizeof(pass)),
               -EINVAL); /* "nocolon" */
    EXPECT_INT(est_basic_parse("Basic YTpi", user, 1, pass, sizeof(pass)), -EINVAL);
}

static void test_media(void)
{
    CU_ASSERT_TRUE(est_media_is("application/pkcs10", EST_CT_PKCS10));
    CU_ASSERT_TRUE(est_media_is(" Application/PKCS10 ; charset=x", EST_CT_PKCS10));
    CU_ASSERT_FALSE(est_media_is("application/pkcs10x", EST_CT_PKCS10));
    CU_ASSERT_FALSE(est_media_is(NULL, EST_CT_PKCS10));
}

static void test_fingerprint_parse(void)
{
    unsigned char fp[32];
    char hex[65];

    memset(hex, 'a', 64);
    hex[64] = '\0';
    EXPECT_INT(est_fingerprint_parse(hex, fp), 0);
    EXPECT_INT(fp[0], 0xaa);
    EXPECT_INT(est_fingerprint_parse("SHA256:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:"
                                     "AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89",
                                     fp),
               0);
    EXPECT_INT(fp[31], 0x89);
    EXPECT_INT(est_fingerprint_parse("abcd", fp), -EINVAL);
    hex[63] = 'g';
    EXPECT_INT(est_fingerprint_parse(hex, fp), -EINVAL);
}

/* A self-signed certificate survives certs-only PKCS#7 in base64 on one line. */
static void test_certs_roundtrip(void)
{
    gnutls_x509_privkey_t key = NULL;
    gnutls_x509_crt_t crt = NULL, *back = NULL;
    size_t n = 0, len = 0;
    char *b64 = NULL, fp1[96], fp2[96];

    CU_ASSERT_EQUAL_FATAL(gnutls_x509_privkey_init(&key), 0);
    CU_ASSERT_EQUAL_FATAL(
        gnutls_x509_privkey_generate(key, GNUTLS_PK_ECDSA,
                                     GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1), 0),
        0);
    CU_ASSERT_EQUAL_FATAL(gnutls_x509_crt_init(&crt), 0);
    gnutls_x509_crt_set_version(crt, 3);
    gnutls_x509_crt_set_serial(crt, "\x01", 1);
    gnutls_x509_crt_set_dn_by_oid(crt, GNUTLS_OID_X520_COMMON_NAME, 0, "est-ca", 6);
    gnutls_x509_crt_set_activation_time(crt, 1700000000);
    gnutls_x509_crt_set_expiration_time(crt, 1800000000);
    gnutls_x509_crt_set_key(crt, key);
    CU_ASSERT_EQUAL_FATAL(gnutls_x509_crt_sign2(crt, crt, key, GNUTLS_DIG_SHA256, 0), 0);
    CU_ASSERT_EQUAL_FATAL(est_certs_encode(&crt, 1, &b64, &len), 0);
    EXPECT_INT(strlen(b64), len);
    CU_ASSERT_PTR_NULL(strchr(b64, '\n'));
    CU_ASSERT_EQUAL_FATAL(est_certs_decode(b64, len, &back, &n), 0);
    EXPECT_INT(n, 1);
    est_cert_fingerprint(crt, true, fp1, sizeof(fp1));
    est_cert_fingerprint(back[0], true, fp2, sizeof(fp2));
    EXPECT_STR(fp2, fp1);
    EXPECT_INT(strlen(fp1), 95);
    {
        gnutls_x509_crt_t *none = NULL;
        size_t nn = 0;
        /* base64 of "not a pkcs7" */
        EXPECT_INT(est_certs_decode("bm90IGEgcGtjczc=", 16, &none, &nn), -EBADMSG);
        CU_ASSERT_PTR_NULL(none);
    }
    gnutls_x509_crt_deinit(back[0]);
    free(back);
    free(b64);
    gnutls_x509_crt_deinit(crt);
    gnutls_x509_privkey_deinit(key);
}

static void test_invite_codes(void)
{
    char code[INVITE_CODE_LEN], norm[INVITE_CODE_CHARS + 1];
    struct invite inv = {0};

    EXPECT_INT(invite_code_generate(code), 0);
    EXPECT_INT(strlen(code), 24);
    for (int i = 4; i < 24; i += 5)
        EXPECT_INT(code[i], '-');
    CU_ASSERT_TRUE(invite_code_normalize("abcd efgh-jkmn-pqrs-tvwx", norm));
    EXPECT_STR(norm, "ABCDEFGHJKMNPQRSTVWX");
    /* What a person misreads: O for 0, I and L for 1. */
    CU_ASSERT_TRUE(invite_code_normalize("OOOO-IIII-LLLL-0000-1111", norm));
    EXPECT_STR(norm, "00001111111100001111");
    CU_ASSERT_FALSE(invite_code_normalize("ABCD-EFGH-JKMN-PQRS-TVW", norm)); /* 19 */
    CU_ASSERT_FALSE(invite_code_normalize("ABCD-EFGH-JKMN-PQRS-TVWXY", norm)); /* 21 */
    CU_ASSERT_FALSE(invite_code_normalize("UBCD-EFGH-JKMN-PQRS-TVWX", norm)); /* no U */
    EXPECT_INT(invite_set_code(&inv, code), 0);
    CU_ASSERT_PTR_NULL(strstr(inv.hash, code));
    CU_ASSERT_TRUE(invite_code_matches(&inv, code));
    code[0] = code[0] == 'A' ? 'B' : 'A';
    CU_ASSERT_FALSE(invite_code_matches(&inv, code));
}

static void test_durations(void)
{
    int64_t s = 0;

    EXPECT_INT(invite_parse_duration("24h", &s), 0);
    EXPECT_INT(s, 86400);
    EXPECT_INT(invite_parse_duration("1d12h", &s), 0);
    EXPECT_INT(s, 129600);
    EXPECT_INT(invite_parse_duration("90", &s), 0);
    EXPECT_INT(s, 90);
    EXPECT_INT(invite_parse_duration("0", &s), -EINVAL);
    EXPECT_INT(invite_parse_duration("366d", &s), -EINVAL);
    EXPECT_INT(invite_parse_duration("5w", &s), -EINVAL);
    EXPECT_INT(invite_parse_duration("", &s), -EINVAL);
}

static void test_url(void)
{
    struct est_url u;
    char err[256];

    EXPECT_INT(est_url_parse("https://hub.example.net", &u, err, sizeof(err)), 0);
    EXPECT_STR(u.host, "hub.example.net");
    EXPECT_STR(u.port, "443");
    EXPECT_STR(u.base, "/.well-known/est");
    EXPECT_INT(est_url_parse("https://192.0.2.1:8445/", &u, err, sizeof(err)), 0);
    EXPECT_STR(u.host, "192.0.2.1");
    EXPECT_STR(u.port, "8445");
    EXPECT_STR(u.base, "/.well-known/est");
    EXPECT_INT(est_url_parse("https://[2001:db8::1]:9/pki", &u, err, sizeof(err)), 0);
    EXPECT_STR(u.host, "2001:db8::1");
    EXPECT_STR(u.port, "9");
    EXPECT_STR(u.base, "/pki/.well-known/est");
    EXPECT_INT(est_url_parse("https://h/.well-known/est/", &u, err, sizeof(err)), 0);
    EXPECT_STR(u.base, "/.well-known/est");
    EXPECT_INT(est_url_parse("http://h", &u, err, sizeof(err)), -EINVAL);
    EXPECT_CONTAINS(err, "https://");
    EXPECT_INT(est_url_parse("https://h:x1/", &u, err, sizeof(err)), -EINVAL);
    EXPECT_INT(est_url_parse("https://:443", &u, err, sizeof(err)), -EINVAL);
    EXPECT_INT(est_url_parse("https://[::1/", &u, err, sizeof(err)), -EINVAL);
    EXPECT_INT(est_url_parse("https://h/p?q=1", &u, err, sizeof(err)), -EINVAL);
}

static void test_renew_due(void)
{
    const int64_t nb = 1000000, day = 86400, na = nb + 397 * day;
    int64_t lo = na, hi = 0;

    /* Two thirds, plus at most a tenth of the lifetime. */
    EXPECT_INT(est_renew_due(nb, na, 0), nb + 397 * day * 2 / 3);
    for (uint32_t r = 0; r < 200000; r += 7) {
        int64_t d = est_renew_due(nb, na, r * 2654435761u);
        lo = d < lo ? d : lo;
        hi = d > hi ? d : hi;
    }
    CU_ASSERT_TRUE(lo >= nb + 397 * day * 2 / 3);
    CU_ASSERT_TRUE(hi <= nb + 397 * day * 2 / 3 + 397 * day / 10);
    CU_ASSERT_TRUE(hi - lo > 397 * day / 20); /* the jitter is spread */
    EXPECT_INT(est_renew_due(nb, nb, 12345), nb);
}

static const struct cu_test tests[] = {
    {"base64 with and without whitespace and padding", test_base64},
    {"HTTP Basic credentials", test_basic},
    {"media types", test_media},
    {"fingerprints as people write them", test_fingerprint_parse},
    {"certs-only PKCS#7 round trip on one line", test_certs_roundtrip},
    {"invite codes: format, normalization, hash", test_invite_codes},
    {"invite durations", test_durations},
    {"EST URLs", test_url},
    {"renewal at two thirds plus jitter", test_renew_due},
};

CU_MAIN("est", tests)
