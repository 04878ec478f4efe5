/*
 * Issuing never outlasts the CA: p11_cert_issue (what pki_enroll, pki_renew
 * and EST simpleenroll/simplereenroll all issue through) caps a
 * certificate's notAfter at its issuer's. Keys are made in memory: the
 * token is not what is tested here.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <gnutls/abstract.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

#include "cunit-main.h"
#include "p11.h"

static gnutls_privkey_t new_key(void)
{
    gnutls_x509_privkey_t x = NULL;
    gnutls_privkey_t k = NULL;

    CU_ASSERT_EQUAL_FATAL(gnutls_x509_privkey_init(&x), 0);
    CU_ASSERT_EQUAL_FATAL(gnutls_x509_privkey_generate(
                              x, GNUTLS_PK_ECDSA,
                              GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1), 0),
                          0);
    CU_ASSERT_EQUAL_FATAL(gnutls_privkey_init(&k), 0);
    CU_ASSERT_EQUAL_FATAL(gnutls_privkey_import_x509(k, x, GNUTLS_PRIVKEY_IMPORT_AUTO_RELEASE), 0);
    return k;
}

static gnutls_pubkey_t pub_of(gnutls_privkey_t k)
{
    gnutls_pubkey_t p = NULL;

    CU_ASSERT_EQUAL_FATAL(gnutls_pubkey_init(&p), 0);
    CU_ASSERT_EQUAL_FATAL(gnutls_pubkey_import_privkey(p, k, 0, 0), 0);
    return p;
}

/* A CA of `days`, and a client certificate of `peer_days` issued by it:
 * how many seconds the client's notAfter lies past the CA's. */
static long long overhang(unsigned ca_days, unsigned peer_days, time_t *peer_end)
{
    gnutls_privkey_t ca_key = new_key(), peer_key = new_key();
    gnutls_pubkey_t peer_pub = pub_of(peer_key);
    gnutls_x509_crt_t ca = NULL, crt = NULL;
    struct p11_issue ca_req = {.profile = P11_PROFILE_CA, .cn = "test CA", .days = ca_days};
    struct p11_issue req = {.profile = P11_PROFILE_CLIENT,
                            .cn = "peer1",
                            .uri_san = "urn:mtlsgw:role:tunnel",
                            .days = peer_days};
    long long d;

    CU_ASSERT_EQUAL_FATAL(p11_cert_issue(NULL, ca_key, NULL, &ca_req, &ca), 0);
    CU_ASSERT_EQUAL_FATAL(p11_cert_issue(ca, ca_key, peer_pub, &req, &crt), 0);
    *peer_end = gnutls_x509_crt_get_expiration_time(crt);
    d = (long long)*peer_end - (long long)gnutls_x509_crt_get_expiration_time(ca);
    gnutls_x509_crt_deinit(crt);
    gnutls_x509_crt_deinit(ca);
    gnutls_pubkey_deinit(peer_pub);
    gnutls_privkey_deinit(peer_key);
    gnutls_privkey_deinit(ca_key);
    return d;
}

static void test_capped(void)
{
    time_t end;

    /* 397 days asked of a CA with 30 left: it ends with the CA. */
    EXPECT_INT(overhang(30, 397, &end), 0);
    EXPECT_INT(overhang(1, 3650, &end), 0);
}

static void test_shorter_kept(void)
{
    time_t before = time(NULL), end;

    /* Shorter than the CA: as asked. */
    CU_ASSERT_TRUE(overhang(30, 7, &end) < 0);
    CU_ASSERT_TRUE(end >= before + 7 * 86400 && end <= time(NULL) + 7 * 86400);
}

static const struct cu_test tests[] = {
    {"a peer's notAfter is capped at the CA's", test_capped},
    {"a lifetime inside the CA's is kept", test_shorter_kept},
};

CU_MAIN("issue", tests)
