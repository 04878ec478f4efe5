/*
 * Paths through an intermediate (docs/pki.md): the root is the only anchor,
 * the gateway's own intermediate completes a peer's path when the peer sends
 * its certificate alone, and the intermediate's path length is enforced.
 * All in memory:
 *
 *   root (anchor)
 *    `- inter (pathlen 0)  <- the trust's chain
 *        |- admin1 (enrolled)
 *        `- sub (a CA the path length forbids)
 *            `- sneaky (a leaf under it, in the registry too)
 *
 * and a sibling's twins of inter (docs/pki.md "How a peer's issuer is
 * chosen"): same subject "hub1 CA", other keys, under the same root, none
 * with key identifiers, so a name matches either:
 *
 *   root
 *    |- twin (another key)  `- evil (admin1's serial 04, role admin)
 *    `- twin2 (a third key)
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

#include "config.h"
#include "cunit-main.h"
#include "registry.h"
#include "trustdb.h"
#include "verify.h"

#define T_FROM 1700000000L
#define T_UNTIL 1900000000L
#define T_NOW 1750000000L
#define ADMIN VERIFY_ROLE(ROLE_ADMIN)

struct cert {
    gnutls_x509_privkey_t key;
    gnutls_x509_crt_t crt;
    gnutls_datum_t der;
};

static struct cert root, inter, sub, admin1, sneaky, twin, twin2, evil;

/* is_ca: path_len (-1: none); else a client leaf with the admin role. */
static int make(struct cert *c, const char *cn, const char *serial, struct cert *issuer,
                bool is_ca, int path_len)
{
    int rc;

    if ((rc = gnutls_x509_privkey_init(&c->key)) < 0 ||
        (rc = gnutls_x509_privkey_generate(c->key, GNUTLS_PK_ECDSA,
                                           GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1),
                                           0)) < 0 ||
        (rc = gnutls_x509_crt_init(&c->crt)) < 0 ||
        (rc = gnutls_x509_crt_set_version(c->crt, 3)) < 0 ||
        (rc = gnutls_x509_crt_set_serial(c->crt, serial, strlen(serial))) < 0 ||
        (rc = gnutls_x509_crt_set_dn_by_oid(c->crt, GNUTLS_OID_X520_COMMON_NAME, 0, cn,
                                            (unsigned)strlen(cn))) < 0 ||
        (rc = gnutls_x509_crt_set_activation_time(c->crt, T_FROM)) < 0 ||
        (rc = gnutls_x509_crt_set_expiration_time(c->crt, T_UNTIL)) < 0 ||
        (rc = gnutls_x509_crt_set_key(c->crt, c->key)) < 0)
        return rc;
    if (is_ca) {
        if ((rc = gnutls_x509_crt_set_basic_constraints(c->crt, 1, path_len)) < 0 ||
            (rc = gnutls_x509_crt_set_key_usage(c->crt, GNUTLS_KEY_KEY_CERT_SIGN |
                                                            GNUTLS_KEY_CRL_SIGN)) < 0)
            return rc;
    } else if ((rc = gnutls_x509_crt_set_basic_constraints(c->crt, 0, -1)) < 0 ||
               (rc = gnutls_x509_crt_set_key_usage(c->crt, GNUTLS_KEY_DIGITAL_SIGNATURE)) < 0 ||
               (rc = gnutls_x509_crt_set_key_purpose_oid(c->crt, GNUTLS_KP_TLS_WWW_CLIENT,
                                                         0)) < 0 ||
               (rc = gnutls_x509_crt_set_subject_alt_name(
                    c->crt, GNUTLS_SAN_URI, "urn:mtlsgw:role:admin",
                    (unsigned)strlen("urn:mtlsgw:role:admin"), GNUTLS_FSAN_SET)) < 0) {
        return rc;
    }
    if ((rc = gnutls_x509_crt_sign2(c->crt, issuer ? issuer->crt : c->crt,
                                    issuer ? issuer->key : c->key, GNUTLS_DIG_SHA256, 0)) < 0 ||
        (rc = gnutls_x509_crt_export2(c->crt, GNUTLS_X509_FMT_DER, &c->der)) < 0)
        return rc;
    /* Read back as from a file: GnuTLS matches issuers by imported bytes. */
    gnutls_x509_crt_deinit(c->crt);
    c->crt = NULL;
    if ((rc = gnutls_x509_crt_init(&c->crt)) == 0)
        rc = gnutls_x509_crt_import(c->crt, &c->der, GNUTLS_X509_FMT_DER);
    return rc;
}

static int setup(void)
{
    return make(&root, "Org Root", "\x01", NULL, true, -1) ||
           make(&inter, "hub1 CA", "\x02", &root, true, 0) ||
           make(&sub, "rogue sub CA", "\x03", &inter, true, -1) ||
           make(&admin1, "admin1", "\x04", &inter, false, -1) ||
           make(&sneaky, "sneaky", "\x05", &sub, false, -1) ||
           make(&twin, "hub1 CA", "\x06", &root, true, 0) ||
           make(&twin2, "hub1 CA", "\x07", &root, true, 0) ||
           make(&evil, "mallory", "\x04", &twin, false, -1);
}

static struct registry *registry_with(const char *name, const char *hex)
{
    struct registry *reg = NULL;
    struct peer p = {
        .name = (char *)name,
        .role = ROLE_ADMIN,
        .status = PEER_ACTIVE,
        .serial = (char *)hex,
        .key_id = "ab01",
        .not_before = T_FROM,
        .not_after = T_UNTIL,
        .enrolled_at = T_FROM,
    };

    CU_ASSERT_EQUAL_FATAL(registry_new(&reg), 0);
    EXPECT_INT(registry_add(reg, &p), 0);
    return reg;
}

static void test_leaf_alone_through_chain(void)
{
    struct registry *reg = registry_with("admin1", "04");
    struct trust t = {.cas = &root.crt, .n_cas = 1, .chain = &inter.crt, .n_chain = 1,
                      .reg = reg};
    struct verdict v;

    EXPECT_INT(verify_peer(&t, &admin1.crt, 1, T_NOW, ADMIN, &v), 0);
    EXPECT_INT(v.code, VERDICT_OK);
    /* The same trust without the intermediate: the peer's path stops. */
    t.chain = NULL;
    t.n_chain = 0;
    EXPECT_INT(verify_peer(&t, &admin1.crt, 1, T_NOW, ADMIN, &v), 0);
    EXPECT_INT(v.code, VERDICT_UNKNOWN_ISSUER);
    registry_free(reg);
}

static void test_leaf_with_chain_sent(void)
{
    struct registry *reg = registry_with("admin1", "04");
    struct trust t = {.cas = &root.crt, .n_cas = 1, .chain = &inter.crt, .n_chain = 1,
                      .reg = reg};
    gnutls_x509_crt_t sent[2] = {admin1.crt, inter.crt};
    struct verdict v;

    EXPECT_INT(verify_peer(&t, sent, 2, T_NOW, ADMIN, &v), 0);
    EXPECT_INT(v.code, VERDICT_OK);
    registry_free(reg);
}

static void test_path_length(void)
{
    struct registry *reg = registry_with("sneaky", "05");
    struct trust t = {.cas = &root.crt, .n_cas = 1, .chain = &inter.crt, .n_chain = 1,
                      .reg = reg};
    gnutls_x509_crt_t sent[2] = {sneaky.crt, sub.crt};
    struct verdict v;

    EXPECT_INT(verify_peer(&t, sent, 2, T_NOW, ADMIN, &v), 0);
    EXPECT_INT(v.code, VERDICT_BAD_CERT);
    CU_ASSERT_PTR_NOT_NULL(strstr(v.reason, "constraints"));
    registry_free(reg);
}

/* A snapshot with a chain hands the issuing CA out and keeps the root. */
static void test_trustdb_chain(void)
{
    gnutls_x509_crt_t r = NULL, *chain = gnutls_calloc(1, sizeof(*chain));
    struct trustdb *db = NULL;
    struct verdict v;

    CU_ASSERT_PTR_NOT_NULL_FATAL(chain);
    CU_ASSERT_EQUAL_FATAL(gnutls_x509_crt_init(&r), 0);
    CU_ASSERT_EQUAL_FATAL(gnutls_x509_crt_import(r, &root.der, GNUTLS_X509_FMT_DER), 0);
    CU_ASSERT_EQUAL_FATAL(gnutls_x509_crt_init(&chain[0]), 0);
    CU_ASSERT_EQUAL_FATAL(gnutls_x509_crt_import(chain[0], &inter.der, GNUTLS_X509_FMT_DER), 0);
    CU_ASSERT_EQUAL_FATAL(
        trustdb_from_chain(r, chain, 1, NULL, registry_with("admin1", "04"), &db), 0);
    CU_ASSERT_TRUE(gnutls_x509_crt_equals(trustdb_ca(db), inter.crt));
    CU_ASSERT_TRUE(gnutls_x509_crt_equals(trustdb_root(db), root.crt));
    EXPECT_INT(trustdb_verify_peer(db, &admin1.der, 1, T_NOW, ADMIN, &v), 0);
    EXPECT_INT(v.code, VERDICT_OK);
    trustdb_unref(db);
}

/* The issuer is the CA whose key signed the certificate, not its name. */
static void test_signed_by(void)
{
    CU_ASSERT_TRUE(verify_signed_by(admin1.crt, inter.crt));
    CU_ASSERT_FALSE(verify_signed_by(admin1.crt, twin.crt));
    CU_ASSERT_TRUE(verify_signed_by(evil.crt, twin.crt));
    CU_ASSERT_FALSE(verify_signed_by(evil.crt, inter.crt));
    /* The name alone would take either (no key identifiers here). */
    CU_ASSERT_TRUE(gnutls_x509_crt_check_issuer(evil.crt, inter.crt));
    CU_ASSERT_FALSE(verify_signed_by(evil.crt, NULL));
}

/* A twin of our CA's leaf with our admin's serial, sent with the twin,
 * which verifies up to our root: not ours, whatever its name says. */
static void test_twin_not_ours(void)
{
    struct registry *reg = registry_with("admin1", "04");
    struct trust t = {.cas = &root.crt, .n_cas = 1, .chain = &inter.crt, .n_chain = 1,
                      .reg = reg};
    gnutls_x509_crt_t sent[2] = {evil.crt, twin.crt};
    struct cert_facts f;
    struct verdict v;

    verify_facts(&t, evil.crt, &f);
    EXPECT_INT(f.ca, -1);
    EXPECT_INT(f.issuer, -1);
    EXPECT_INT(verify_peer(&t, sent, 2, T_NOW, ADMIN, &v), 0);
    EXPECT_INT(v.code, VERDICT_UNKNOWN_ISSUER);
    CU_ASSERT_PTR_NULL(v.peer);
    /* Our own admin1 still is ours. */
    verify_facts(&t, admin1.crt, &f);
    EXPECT_INT(f.ca, 1);
    EXPECT_INT(verify_peer(&t, &admin1.crt, 1, T_NOW, ADMIN, &v), 0);
    EXPECT_INT(v.code, VERDICT_OK);
    registry_free(reg);
}

/* Siblings named like us and like each other: each leaf goes to the
 * issuer whose key signed it, with that issuer's roles. */
static void test_twin_siblings(void)
{
    struct registry *reg = registry_with("admin1", "04");
    struct trust_issuer is[2] = {
        {.name = "hubX", .ca = twin2.crt, .fresh = true, .roles = ADMIN},
        {.name = "hubA", .ca = twin.crt, .fresh = true,
         .roles = VERIFY_ROLE(ROLE_MONITOR)},
    };
    struct trust t = {.cas = &root.crt, .n_cas = 1, .chain = &inter.crt, .n_chain = 1,
                      .reg = reg, .issuers = is, .n_issuers = 2};
    gnutls_x509_crt_t sent[2] = {evil.crt, twin.crt};
    struct cert_facts f;
    struct verdict v;

    verify_facts(&t, evil.crt, &f);
    EXPECT_INT(f.ca, -1);
    EXPECT_INT(f.issuer, 1);
    /* Three CAs of one name on offer (config load refuses such a set):
     * GnuTLS may try the wrong one and refuse the signature; never is
     * the leaf granted. */
    EXPECT_INT(verify_peer(&t, &evil.crt, 1, T_NOW, ADMIN, &v), 0);
    CU_ASSERT_NOT_EQUAL(v.code, VERDICT_OK);
    CU_ASSERT_PTR_NULL(v.peer);
    EXPECT_INT(verify_peer(&t, sent, 2, T_NOW, ADMIN, &v), 0);
    CU_ASSERT_NOT_EQUAL(v.code, VERDICT_OK);
    CU_ASSERT_PTR_NULL(v.peer);
    /* Without our intermediate in the way, the path holds: hubA's peer,
     * with hubA's roles, never hubX's. */
    t.chain = NULL;
    t.n_chain = 0;
    EXPECT_INT(verify_peer(&t, sent, 2, T_NOW, ADMIN, &v), 0);
    EXPECT_INT(v.code, VERDICT_ROLE_NOT_ALLOWED);
    CU_ASSERT_STRING_EQUAL(v.issuer, "hubA");
    EXPECT_INT(verify_peer(&t, &evil.crt, 1, T_NOW, ADMIN, &v), 0);
    EXPECT_INT(v.code, VERDICT_ROLE_NOT_ALLOWED);
    CU_ASSERT_STRING_EQUAL(v.issuer, "hubA");
    t.chain = &inter.crt;
    t.n_chain = 1;
    /* Our own admin1 is not a sibling's. */
    EXPECT_INT(verify_peer(&t, &admin1.crt, 1, T_NOW, ADMIN, &v), 0);
    EXPECT_INT(v.code, VERDICT_OK);
    CU_ASSERT_STRING_EQUAL(v.issuer, "");
    registry_free(reg);
}

static void write_pem(const char *path, const struct cert *c)
{
    gnutls_datum_t pem = {0};
    FILE *fp = fopen(path, "w");

    CU_ASSERT_PTR_NOT_NULL_FATAL(fp);
    CU_ASSERT_EQUAL_FATAL(gnutls_x509_crt_export2(c->crt, GNUTLS_X509_FMT_PEM, &pem), 0);
    fwrite(pem.data, 1, pem.size, fp);
    fclose(fp);
    gnutls_free(pem.data);
}

/* Config load refuses a [trust] ca with our CA's subject, or another's. */
static void test_config_refuses_twin(void)
{
    char dir[] = "/tmp/mtlsgw-chain-XXXXXX", p[256], conf[2048];
    struct config *cfg = NULL;
    char *errors = NULL;
    FILE *fp;

    CU_ASSERT_PTR_NOT_NULL_FATAL(mkdtemp(dir));
    snprintf(p, sizeof(p), "%s/ca.crt", dir);
    write_pem(p, &root);
    snprintf(p, sizeof(p), "%s/chain.pem", dir);
    write_pem(p, &inter);
    snprintf(p, sizeof(p), "%s/twin.crt", dir);
    write_pem(p, &twin);
    snprintf(p, sizeof(p), "%s/twin2.crt", dir);
    write_pem(p, &twin2);
    snprintf(p, sizeof(p), "%s/sub.crt", dir);
    write_pem(p, &sub);
    snprintf(p, sizeof(p), "%s/gw.conf", dir);

    /* A [trust] ca with a name of its own loads. */
    fp = fopen(p, "w");
    CU_ASSERT_PTR_NOT_NULL_FATAL(fp);
    fprintf(fp, "[pki]\ndir = %s\n[trust hubA]\nca = %s/sub.crt\n"
                "crl-url = http://127.0.0.1:9/a.crl\n", dir, dir);
    fclose(fp);
    EXPECT_INT(config_load(p, &cfg, &errors), 0);
    config_free(cfg);
    cfg = NULL;
    free(errors);
    errors = NULL;

    snprintf(conf, sizeof(conf),
             "[pki]\ndir = %s\n[trust hubA]\nca = %s/twin.crt\n"
             "crl-url = http://127.0.0.1:9/a.crl\n[trust hubX]\nca = %s/twin2.crt\n"
             "crl-url = http://127.0.0.1:9/x.crl\n", dir, dir, dir);
    fp = fopen(p, "w");
    CU_ASSERT_PTR_NOT_NULL_FATAL(fp);
    fputs(conf, fp);
    fclose(fp);
    EXPECT_INT(config_load(p, &cfg, &errors), -EINVAL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(errors);
    CU_ASSERT_PTR_NOT_NULL(strstr(errors, "[trust hubA] ca "));
    CU_ASSERT_PTR_NOT_NULL(strstr(errors, "chain.pem"));
    CU_ASSERT_PTR_NOT_NULL(strstr(errors, "of [trust hubA] ca "));
    CU_ASSERT_PTR_NOT_NULL(strstr(errors, "twin2.crt"));
    free(errors);
    static const char *const names[] = {"ca.crt", "chain.pem", "twin.crt", "twin2.crt",
                                        "sub.crt", "gw.conf"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        snprintf(p, sizeof(p), "%s/%s", dir, names[i]);
        unlink(p);
    }
    rmdir(dir);
}

static const struct cu_test tests[] = {
    {"a leaf alone: its path is built through the gateway's intermediate",
     test_leaf_alone_through_chain},
    {"a leaf with its chain", test_leaf_with_chain_sent},
    {"path length 0: a sub-CA's leaf is refused", test_path_length},
    {"trustdb_from_chain: issuing CA, root, verdict", test_trustdb_chain},
    {"the issuer is the CA whose key signed it", test_signed_by},
    {"a twin of our CA (same name, other key): its leaf is not ours", test_twin_not_ours},
    {"twin siblings: each leaf goes to the issuer that signed it", test_twin_siblings},
    {"config: a [trust] ca named like our CA or another [trust] ca is refused",
     test_config_refuses_twin},
};

int main(void)
{
    if (gnutls_global_init() < 0 || setup() != 0) {
        fprintf(stderr, "test-chain: cannot make the certificates\n");
        return 1;
    }
    return cu_run("chain", tests, sizeof(tests) / sizeof(tests[0]));
}
