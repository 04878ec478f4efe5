/*
 * The trust snapshot's verdicts, full and resumed, and its cache of
 * certificate facts: a remembered certificate is still judged on time, CRL,
 * registry and role every time, and one that failed is never remembered.
 * Everything is made in memory: two CAs with the same name (ours and a
 * forger's), one with another name, peer certificates, CRLs, registries.
 */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

#include "cunit-main.h"
#include "config.h"
#include "pki.h"
#include "pki-rollover.h"
#include "registry.h"
#include "trustdb.h"
#include "verify.h"

#define T_FROM 1700000000L  /* activation of every peer certificate */
#define T_UNTIL 1900000000L /* and its expiration */
#define T_NOW 1750000000L
#define ADMIN VERIFY_ROLE(ROLE_ADMIN)
#define CA_NAME "mtlsgw test CA"

struct ca {
    gnutls_x509_privkey_t key;
    gnutls_x509_crt_t crt;
};

/* A peer certificate and how the registry knows it. */
struct leaf {
    const char *name;
    const char *serial;  /* DER octets of the serial */
    size_t serial_len;
    const char *hex;     /* the registry's spelling of it */
    const char *role;    /* URI SAN, NULL: none */
    const char *purpose; /* EKU, NULL: none */
    enum peer_role reg_role;
    struct ca *issuer;
    bool enrolled;
    gnutls_datum_t der;
};

/* brief: a CA that ends before the peers it issued would (T_CA_END). */
#define T_CA_END (T_NOW + 1000)
static struct ca ours, forger, stranger, brief;
static gnutls_x509_privkey_t leaf_key;
static gnutls_datum_t ca_der;

/* 0xa1 has its top bit set, so a positive serial needs a zero octet before
 * it (GnuTLS does not add it), which the registry's spelling leaves out. */
static struct leaf admin1 = {"admin1", "\x00\xa1\xb2", 3, "a1b2", "urn:mtlsgw:role:admin",
                             GNUTLS_KP_TLS_WWW_CLIENT, ROLE_ADMIN, &ours, true, {0}};
static struct leaf mon1 = {"mon1", "\x0c\x02", 2, "0c02", "urn:mtlsgw:role:monitor",
                           GNUTLS_KP_TLS_WWW_CLIENT, ROLE_MONITOR, &ours, true, {0}};
static struct leaf noeku = {"noeku1", "\x0d\x03", 2, "0d03", "urn:mtlsgw:role:admin", NULL,
                            ROLE_ADMIN, &ours, true, {0}};
static struct leaf server = {"web1", "\x0e\x04", 2, "0e04", "urn:mtlsgw:role:admin",
                             GNUTLS_KP_TLS_WWW_SERVER, ROLE_ADMIN, &ours, true, {0}};
static struct leaf norole = {"bare1", "\x0f\x05", 2, "0f05", NULL, GNUTLS_KP_TLS_WWW_CLIENT,
                             ROLE_ADMIN, &ours, true, {0}};
/* admin1 in every byte it shows, signed by a key that is not our CA's. */
static struct leaf forged = {"admin1", "\x00\xa1\xb2", 3, "a1b2", "urn:mtlsgw:role:admin",
                             GNUTLS_KP_TLS_WWW_CLIENT, ROLE_ADMIN, &forger, false, {0}};
static struct leaf alien = {"alien1", "\x10\x06", 2, "1006", "urn:mtlsgw:role:admin",
                            GNUTLS_KP_TLS_WWW_CLIENT, ROLE_ADMIN, &stranger, true, {0}};

static struct leaf late1 = {"late1", "\x11\x07", 2, "1107", "urn:mtlsgw:role:admin",
                            GNUTLS_KP_TLS_WWW_CLIENT, ROLE_ADMIN, &brief, true, {0}};

static struct leaf *const leaves[] = {&admin1, &mon1,   &noeku, &server,
                                      &norole, &forged, &alien, &late1};

static int ca_make_until(struct ca *ca, const char *name, time_t until)
{
    gnutls_datum_t der = {NULL, 0};
    int rc;

    if ((rc = gnutls_x509_privkey_init(&ca->key)) < 0 ||
        (rc = gnutls_x509_privkey_generate(ca->key, GNUTLS_PK_ECDSA,
                                           GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1), 0)) < 0 ||
        (rc = gnutls_x509_crt_init(&ca->crt)) < 0)
        return rc;
    if ((rc = gnutls_x509_crt_set_version(ca->crt, 3)) < 0 ||
        (rc = gnutls_x509_crt_set_serial(ca->crt, "\x01", 1)) < 0 ||
        (rc = gnutls_x509_crt_set_dn_by_oid(ca->crt, GNUTLS_OID_X520_COMMON_NAME, 0, name,
                                            (unsigned)strlen(name))) < 0 ||
        (rc = gnutls_x509_crt_set_activation_time(ca->crt, T_FROM - 86400)) < 0 ||
        (rc = gnutls_x509_crt_set_expiration_time(ca->crt, until)) < 0 ||
        (rc = gnutls_x509_crt_set_basic_constraints(ca->crt, 1, -1)) < 0 ||
        (rc = gnutls_x509_crt_set_key_usage(ca->crt, GNUTLS_KEY_KEY_CERT_SIGN |
                                                         GNUTLS_KEY_CRL_SIGN)) < 0 ||
        (rc = gnutls_x509_crt_set_key(ca->crt, ca->key)) < 0 ||
        (rc = gnutls_x509_crt_sign2(ca->crt, ca->crt, ca->key, GNUTLS_DIG_SHA256, 0)) < 0 ||
        (rc = gnutls_x509_crt_export2(ca->crt, GNUTLS_X509_FMT_DER, &der)) < 0)
        return rc;
    /* Read back as from a file: GnuTLS matches issuers by the DER bytes a
     * certificate was imported from, and one only made in memory has none. */
    gnutls_x509_crt_deinit(ca->crt);
    ca->crt = NULL;
    if ((rc = gnutls_x509_crt_init(&ca->crt)) == 0)
        rc = gnutls_x509_crt_import(ca->crt, &der, GNUTLS_X509_FMT_DER);
    gnutls_free(der.data);
    return rc;
}

static int ca_make(struct ca *ca, const char *name)
{
    return ca_make_until(ca, name, T_UNTIL + 86400);
}

static void ca_free(struct ca *ca)
{
    if (ca->crt)
        gnutls_x509_crt_deinit(ca->crt);
    if (ca->key)
        gnutls_x509_privkey_deinit(ca->key);
}

static int leaf_make(struct leaf *l)
{
    gnutls_x509_crt_t crt = NULL;
    int rc;

    if ((rc = gnutls_x509_crt_init(&crt)) < 0)
        return rc;
    if ((rc = gnutls_x509_crt_set_version(crt, 3)) < 0 ||
        (rc = gnutls_x509_crt_set_serial(crt, l->serial, l->serial_len)) < 0 ||
        (rc = gnutls_x509_crt_set_dn_by_oid(crt, GNUTLS_OID_X520_COMMON_NAME, 0, l->name,
                                            (unsigned)strlen(l->name))) < 0 ||
        (rc = gnutls_x509_crt_set_activation_time(crt, T_FROM)) < 0 ||
        (rc = gnutls_x509_crt_set_expiration_time(crt, T_UNTIL)) < 0 ||
        (rc = gnutls_x509_crt_set_basic_constraints(crt, 0, -1)) < 0 ||
        (rc = gnutls_x509_crt_set_key_usage(crt, GNUTLS_KEY_DIGITAL_SIGNATURE)) < 0 ||
        (rc = gnutls_x509_crt_set_key(crt, leaf_key)) < 0)
        goto out;
    if (l->purpose && (rc = gnutls_x509_crt_set_key_purpose_oid(crt, l->purpose, 0)) < 0)
        goto out;
    if (l->role && (rc = gnutls_x509_crt_set_subject_alt_name(crt, GNUTLS_SAN_URI, l->role,
                                                              (unsigned)strlen(l->role),
                                                              GNUTLS_FSAN_SET)) < 0)
        goto out;
    if ((rc = gnutls_x509_crt_sign2(crt, l->issuer->crt, l->issuer->key, GNUTLS_DIG_SHA256, 0)) <
        0)
        goto out;
    rc = gnutls_x509_crt_export2(crt, GNUTLS_X509_FMT_DER, &l->der);
out:
    gnutls_x509_crt_deinit(crt);
    return rc;
}

/* Every enrolled leaf but `except` (NULL: all), active. */
static struct registry *registry_of(const struct leaf *except)
{
    struct registry *reg = NULL;

    CU_ASSERT_EQUAL_FATAL(registry_new(&reg), 0);
    for (size_t i = 0; i < sizeof(leaves) / sizeof(leaves[0]); i++) {
        const struct leaf *l = leaves[i];
        struct peer p = {
            .name = (char *)l->name,
            .role = l->reg_role,
            .status = PEER_ACTIVE,
            .serial = (char *)l->hex,
            .key_id = "ab01",
            .not_before = T_FROM,
            .not_after = T_UNTIL,
            .enrolled_at = T_FROM,
        };
        if (l->enrolled && l != except)
            EXPECT_INT(registry_add(reg, &p), 0);
    }
    return reg;
}

/* A CRL signed by our CA listing `revoked` (NULL: none), as trustdb_load
 * would accept it. */
static gnutls_x509_crl_t crl_of(const struct leaf *revoked)
{
    gnutls_x509_crl_t crl = NULL, back = NULL;
    gnutls_x509_crt_t crt = NULL;
    gnutls_datum_t der = {NULL, 0};
    unsigned status = 1;

    CU_ASSERT_EQUAL_FATAL(gnutls_x509_crl_init(&crl), 0);
    EXPECT_INT(gnutls_x509_crl_set_version(crl, 2), 0);
    EXPECT_INT(gnutls_x509_crl_set_this_update(crl, T_FROM + 3600), 0);
    EXPECT_INT(gnutls_x509_crl_set_next_update(crl, T_UNTIL), 0);
    if (revoked) {
        /* The serial as the certificate carries it, zero padding and all. */
        CU_ASSERT_EQUAL_FATAL(gnutls_x509_crt_init(&crt), 0);
        EXPECT_INT(gnutls_x509_crt_import(crt, &revoked->der, GNUTLS_X509_FMT_DER), 0);
        EXPECT_INT(gnutls_x509_crl_set_crt(crl, crt, T_FROM + 1800), 0);
        gnutls_x509_crt_deinit(crt);
    }
    EXPECT_INT(gnutls_x509_crl_sign2(crl, ours.crt, ours.key, GNUTLS_DIG_SHA256, 0), 0);
    /* Read back as from a file, for the same reason as the CA. */
    EXPECT_INT(gnutls_x509_crl_export2(crl, GNUTLS_X509_FMT_DER, &der), 0);
    gnutls_x509_crl_deinit(crl);
    CU_ASSERT_EQUAL_FATAL(gnutls_x509_crl_init(&back), 0);
    EXPECT_INT(gnutls_x509_crl_import(back, &der, GNUTLS_X509_FMT_DER), 0);
    gnutls_free(der.data);
    EXPECT_INT(gnutls_x509_crl_verify(back, &ours.crt, 1, 0, &status), 0);
    EXPECT_INT(status, 0);
    EXPECT_INT(gnutls_x509_crl_get_crt_count(back), revoked ? 1 : 0);
    return back;
}

/* A snapshot of our CA (a copy: the snapshot takes it), crl and reg. */
static struct trustdb *snapshot(gnutls_x509_crl_t crl, struct registry *reg)
{
    gnutls_x509_crt_t ca = NULL;
    struct trustdb *db = NULL;

    CU_ASSERT_EQUAL_FATAL(gnutls_x509_crt_init(&ca), 0);
    CU_ASSERT_EQUAL_FATAL(gnutls_x509_crt_import(ca, &ca_der, GNUTLS_X509_FMT_DER), 0);
    CU_ASSERT_EQUAL_FATAL(trustdb_from(ca, crl, reg, &db), 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(db);
    return db;
}

/* A snapshot whose CA is brief's. */
static struct trustdb *snapshot_brief(void)
{
    gnutls_datum_t der = {NULL, 0};
    gnutls_x509_crt_t ca = NULL;
    struct trustdb *db = NULL;

    CU_ASSERT_EQUAL_FATAL(gnutls_x509_crt_export2(brief.crt, GNUTLS_X509_FMT_DER, &der), 0);
    CU_ASSERT_EQUAL_FATAL(gnutls_x509_crt_init(&ca), 0);
    CU_ASSERT_EQUAL_FATAL(gnutls_x509_crt_import(ca, &der, GNUTLS_X509_FMT_DER), 0);
    gnutls_free(der.data);
    CU_ASSERT_EQUAL_FATAL(trustdb_from(ca, NULL, registry_of(NULL), &db), 0);
    return db;
}

static struct trustdb *snapshot_default(void)
{
    return snapshot(crl_of(NULL), registry_of(NULL));
}

static void expect_verdict(int line, const char *what, int rc, const struct verdict *v,
                           enum verdict_code want)
{
    bool ok = rc == 0 && v->code == want;

    if (!ok)
        fprintf(stderr, "test-trustdb.c:%d: %s: expected 0/%s, got %d/%s (%s)\n", line, what,
                verdict_name(want), rc, rc == 0 ? verdict_name(v->code) : "-",
                rc == 0 ? v->reason : "");
    CU_ASSERT_TRUE(ok);
}

#define FULL(db, l, now, roles, v, want)                                                          \
    expect_verdict(__LINE__, "full " #l, trustdb_verify_peer(db, &(l).der, 1, now, roles, v), v, \
                   want)
#define RESUMED(db, l, now, roles, v, want)                                                       \
    expect_verdict(__LINE__, "resumed " #l, trustdb_verify_resumed(db, &(l).der, now, roles, v), \
                   v, want)

/* A chain that is not our CA's: the name matches, the key does not. */
static bool foreign_verdict(int line, int rc, const struct verdict *v)
{
    bool ok = rc == 0 && (v->code == VERDICT_BAD_SIGNATURE || v->code == VERDICT_UNKNOWN_ISSUER);

    if (!ok)
        fprintf(stderr, "test-trustdb.c:%d: expected bad-signature or unknown-issuer, got %d/%s\n",
                line, rc, rc == 0 ? verdict_name(v->code) : "-");
    return ok;
}

static void expect_peer(const struct verdict *v, const struct leaf *l)
{
    CU_ASSERT_PTR_NOT_NULL_FATAL(v->peer);
    EXPECT_STR(v->peer->name, l->name);
    EXPECT_STR(v->serial, l->hex);
}

static void test_ok_twice(void)
{
    struct trustdb *db = snapshot_default();
    struct verdict v1, v2;
    gnutls_datum_t chain[2] = {admin1.der, ca_der};
    char subject[64];

    FULL(db, admin1, T_NOW, ADMIN, &v1, VERDICT_OK);
    expect_peer(&v1, &admin1);
    EXPECT_STR(v1.reason, "");
    snprintf(subject, sizeof(subject), "CN=%s", admin1.name);
    EXPECT_STR(v1.subject, subject);
    /* From the cache: the same verdict, to the registry entry. */
    FULL(db, admin1, T_NOW, ADMIN, &v2, VERDICT_OK);
    expect_peer(&v2, &admin1);
    CU_ASSERT_PTR_EQUAL(v2.peer, v1.peer);
    EXPECT_STR(v2.subject, v1.subject);
    EXPECT_STR(v2.reason, "");
    /* With the CA sent along (not cached), the same again. */
    expect_verdict(__LINE__, "leaf+CA", trustdb_verify_peer(db, chain, 2, T_NOW, ADMIN, &v1),
                   &v1, VERDICT_OK);
    CU_ASSERT_PTR_EQUAL(v1.peer, v2.peer);
    trustdb_unref(db);
}

static void test_cache_keeps_time(void)
{
    struct trustdb *db = snapshot_default();
    struct verdict v;

    FULL(db, admin1, T_NOW, ADMIN, &v, VERDICT_OK);
    FULL(db, admin1, T_UNTIL + 1, ADMIN, &v, VERDICT_EXPIRED);
    EXPECT_STR(v.serial, admin1.hex);
    FULL(db, admin1, T_FROM - 1, ADMIN, &v, VERDICT_NOT_YET_VALID);
    /* Both bounds are inside the period (RFC 5280). */
    FULL(db, admin1, T_UNTIL, ADMIN, &v, VERDICT_OK);
    FULL(db, admin1, T_FROM, ADMIN, &v, VERDICT_OK);
    RESUMED(db, admin1, T_UNTIL + 1, ADMIN, &v, VERDICT_EXPIRED);
    RESUMED(db, admin1, T_FROM - 1, ADMIN, &v, VERDICT_NOT_YET_VALID);
    FULL(db, admin1, T_NOW, ADMIN, &v, VERDICT_OK);
    trustdb_unref(db);

    /* A first sight out of its period is not remembered as anything. */
    db = snapshot_default();
    FULL(db, mon1, T_UNTIL + 1, VERIFY_ROLE(ROLE_MONITOR), &v, VERDICT_EXPIRED);
    FULL(db, mon1, T_NOW, VERIFY_ROLE(ROLE_MONITOR), &v, VERDICT_OK);
    expect_peer(&v, &mon1);
    trustdb_unref(db);
}

static void test_cache_keeps_roles(void)
{
    struct trustdb *db = snapshot_default();
    struct peer tunnel = {.name = "admin1", .role = ROLE_TUNNEL, .serial = (char *)admin1.hex};
    struct registry *reg;
    struct verdict v;

    FULL(db, admin1, T_NOW, ADMIN, &v, VERDICT_OK);
    FULL(db, admin1, T_NOW, VERIFY_ROLE(ROLE_TUNNEL), &v, VERDICT_ROLE_NOT_ALLOWED);
    expect_peer(&v, &admin1);
    FULL(db, admin1, T_NOW, 0, &v, VERDICT_ROLE_NOT_ALLOWED);
    FULL(db, admin1, T_NOW, VERIFY_ROLE(ROLE_MONITOR) | ADMIN, &v, VERDICT_OK);
    RESUMED(db, admin1, T_NOW, VERIFY_ROLE(ROLE_MONITOR), &v, VERDICT_ROLE_NOT_ALLOWED);
    /* What the certificate says must be what the registry says. */
    FULL(db, norole, T_NOW, ADMIN, &v, VERDICT_ROLE_MISMATCH);
    FULL(db, norole, T_NOW, ADMIN, &v, VERDICT_ROLE_MISMATCH);
    trustdb_unref(db);

    /* admin1's serial enrolled as a tunnel: the certificate says admin. */
    reg = registry_of(&admin1);
    EXPECT_INT(registry_add(reg, &tunnel), 0);
    db = snapshot(crl_of(NULL), reg);
    FULL(db, admin1, T_NOW, ADMIN | VERIFY_ROLE(ROLE_TUNNEL), &v, VERDICT_ROLE_MISMATCH);
    FULL(db, admin1, T_NOW, ADMIN | VERIFY_ROLE(ROLE_TUNNEL), &v, VERDICT_ROLE_MISMATCH);
    trustdb_unref(db);
}

static void test_foreign_ca(void)
{
    struct trustdb *db = snapshot_default();
    struct verdict v;
    int rc;

    FULL(db, admin1, T_NOW, ADMIN, &v, VERDICT_OK);
    for (int i = 0; i < 2; i++) {
        rc = trustdb_verify_peer(db, &forged.der, 1, T_NOW, ADMIN, &v);
        CU_ASSERT_TRUE(foreign_verdict(__LINE__, rc, &v));
    }
    /* A CA of another name is unknown, plainly. */
    for (int i = 0; i < 2; i++) {
        rc = trustdb_verify_peer(db, &alien.der, 1, T_NOW, ADMIN, &v);
        expect_verdict(__LINE__, "full alien", rc, &v, VERDICT_UNKNOWN_ISSUER);
    }
    FULL(db, admin1, T_NOW, ADMIN, &v, VERDICT_OK);
    trustdb_unref(db);

    /* A resumption keeps the facts of what it saw, the chain unverified;
     * but its issuer is the CA whose key signed it (docs/pki.md), so even
     * there a foreign CA with our CA's name is no issuer of ours. A full
     * handshake with those bytes checks the signature too. */
    db = snapshot_default();
    RESUMED(db, forged, T_NOW, ADMIN, &v, VERDICT_UNKNOWN_ISSUER);
    for (int i = 0; i < 2; i++) {
        rc = trustdb_verify_peer(db, &forged.der, 1, T_NOW, ADMIN, &v);
        CU_ASSERT_TRUE(foreign_verdict(__LINE__, rc, &v));
    }
    trustdb_unref(db);
}

/* A sibling issuer ([trust NAME], trustdb_add_issuer): stranger's peers
 * are judged by its roles, freshness and CRL, and our registry when it
 * lists them; our own peers are not affected. */
static void test_sibling_issuer(void)
{
    gnutls_datum_t der = {NULL, 0};
    char revoked[1][64] = {"1006"}; /* alien1's serial */
    struct trustdb *db;
    struct verdict v;

    CU_ASSERT_EQUAL_FATAL(gnutls_x509_crt_export2(stranger.crt, GNUTLS_X509_FMT_DER, &der), 0);
    db = snapshot_default();
    EXPECT_INT(trustdb_add_issuer(db, "sib", &der, true, NULL, 0, VERIFY_ROLE(ROLE_MONITOR)), 0);
    FULL(db, alien, T_NOW, ADMIN, &v, VERDICT_ROLE_NOT_ALLOWED);
    FULL(db, admin1, T_NOW, ADMIN, &v, VERDICT_OK);
    EXPECT_STR(v.issuer, "");
    trustdb_unref(db);

    db = snapshot_default();
    EXPECT_INT(trustdb_add_issuer(db, "sib", &der, true, NULL, 0, ADMIN), 0);
    FULL(db, alien, T_NOW, ADMIN, &v, VERDICT_OK);
    EXPECT_STR(v.issuer, "sib");
    RESUMED(db, alien, T_NOW, ADMIN, &v, VERDICT_OK);
    FULL(db, alien, T_NOW, VERIFY_ROLE(ROLE_TUNNEL), &v, VERDICT_ROLE_NOT_ALLOWED);
    CU_ASSERT_PTR_NULL(trustdb_issuer_untrusted(db, "sib", "1006"));
    trustdb_unref(db);

    /* Stale past max-stale: refused, open sessions told so. */
    db = snapshot_default();
    EXPECT_INT(trustdb_add_issuer(db, "sib", &der, false, NULL, 0, ADMIN), 0);
    FULL(db, alien, T_NOW, ADMIN, &v, VERDICT_ISSUER_STALE);
    RESUMED(db, alien, T_NOW, ADMIN, &v, VERDICT_ISSUER_STALE);
    CU_ASSERT_PTR_NOT_NULL(trustdb_issuer_untrusted(db, "sib", "1006"));
    FULL(db, admin1, T_NOW, ADMIN, &v, VERDICT_OK);
    trustdb_unref(db);

    /* On its issuer's CRL. */
    db = snapshot_default();
    EXPECT_INT(trustdb_add_issuer(db, "sib", &der, true, revoked, 1, ADMIN), 0);
    FULL(db, alien, T_NOW, ADMIN, &v, VERDICT_REVOKED);
    RESUMED(db, alien, T_NOW, ADMIN, &v, VERDICT_REVOKED);
    CU_ASSERT_PTR_NOT_NULL(trustdb_issuer_untrusted(db, "sib", "1006"));
    CU_ASSERT_PTR_NULL(trustdb_issuer_untrusted(db, "sib", "1007"));
    CU_ASSERT_PTR_NOT_NULL(trustdb_issuer_untrusted(db, "gone", "1007"));
    trustdb_unref(db);

    /* Not in our registry: roaming, named by its certificate. */
    db = snapshot(crl_of(NULL), registry_of(&alien));
    EXPECT_INT(trustdb_add_issuer(db, "sib", &der, true, NULL, 0, ADMIN), 0);
    FULL(db, alien, T_NOW, ADMIN, &v, VERDICT_OK);
    CU_ASSERT_PTR_NULL(v.peer);
    EXPECT_STR(v.name, "alien1");
    EXPECT_INT(v.role, ROLE_ADMIN);
    trustdb_unref(db);
    gnutls_free(der.data);
}

static void test_registry(void)
{
    struct trustdb *good = snapshot_default(), *db;
    struct registry *reg;
    struct verdict v;

    FULL(good, admin1, T_NOW, ADMIN, &v, VERDICT_OK);

    /* Each snapshot its own cache: what `good` knows does not leak here. */
    reg = registry_of(NULL);
    EXPECT_INT(registry_revoke(reg, "admin1", PEER_REVOKED, "keyCompromise", T_NOW - 60), 0);
    db = snapshot(crl_of(NULL), reg);
    FULL(db, admin1, T_NOW, ADMIN, &v, VERDICT_REVOKED);
    CU_ASSERT_PTR_NOT_NULL_FATAL(v.peer);
    EXPECT_STR(v.peer->name, "admin1");
    EXPECT_CONTAINS(v.reason, "keyCompromise");
    FULL(db, admin1, T_NOW, ADMIN, &v, VERDICT_REVOKED);
    RESUMED(db, admin1, T_NOW, ADMIN, &v, VERDICT_REVOKED);
    FULL(db, mon1, T_NOW, VERIFY_ROLE(ROLE_MONITOR), &v, VERDICT_OK);
    trustdb_unref(db);

    reg = registry_of(NULL);
    EXPECT_INT(registry_revoke(reg, "admin1", PEER_SUPERSEDED, NULL, T_NOW - 60), 0);
    db = snapshot(crl_of(NULL), reg);
    FULL(db, admin1, T_NOW, ADMIN, &v, VERDICT_REVOKED);
    EXPECT_CONTAINS(v.reason, "superseded");
    RESUMED(db, admin1, T_NOW, ADMIN, &v, VERDICT_REVOKED);
    trustdb_unref(db);

    db = snapshot(crl_of(NULL), registry_of(&admin1));
    for (int i = 0; i < 2; i++) {
        FULL(db, admin1, T_NOW, ADMIN, &v, VERDICT_NOT_ENROLLED);
        CU_ASSERT_PTR_NULL(v.peer);
        EXPECT_STR(v.serial, admin1.hex);
        RESUMED(db, admin1, T_NOW, ADMIN, &v, VERDICT_NOT_ENROLLED);
    }
    trustdb_unref(db);

    /* The old snapshot is as it was. */
    FULL(good, admin1, T_NOW, ADMIN, &v, VERDICT_OK);
    trustdb_unref(good);
}

static void test_crl(void)
{
    struct trustdb *db = snapshot(crl_of(&admin1), registry_of(NULL));
    struct verdict v;

    for (int i = 0; i < 2; i++) {
        FULL(db, admin1, T_NOW, ADMIN, &v, VERDICT_REVOKED);
        EXPECT_STR(v.serial, admin1.hex);
        EXPECT_CONTAINS(v.reason, "CRL");
        RESUMED(db, admin1, T_NOW, ADMIN, &v, VERDICT_REVOKED);
    }
    /* Only the serial listed. */
    FULL(db, mon1, T_NOW, VERIFY_ROLE(ROLE_MONITOR), &v, VERDICT_OK);
    RESUMED(db, mon1, T_NOW, VERIFY_ROLE(ROLE_MONITOR), &v, VERDICT_OK);
    trustdb_unref(db);

    /* No CRL at all is allowed by trustdb_from. */
    db = snapshot(NULL, registry_of(NULL));
    FULL(db, admin1, T_NOW, ADMIN, &v, VERDICT_OK);
    RESUMED(db, admin1, T_NOW, ADMIN, &v, VERDICT_OK);
    trustdb_unref(db);
}

static void test_resumed(void)
{
    struct trustdb *db = snapshot_default();
    struct verdict v;

    for (int i = 0; i < 2; i++) {
        RESUMED(db, admin1, T_NOW, ADMIN, &v, VERDICT_OK);
        expect_peer(&v, &admin1);
        RESUMED(db, noeku, T_NOW, ADMIN, &v, VERDICT_NO_CLIENTAUTH);
        EXPECT_STR(v.serial, noeku.hex);
        RESUMED(db, server, T_NOW, ADMIN, &v, VERDICT_NO_CLIENTAUTH);
    }
    /* A resumption's facts do not make a full handshake pass. */
    FULL(db, noeku, T_NOW, ADMIN, &v, VERDICT_NO_CLIENTAUTH);
    FULL(db, server, T_NOW, ADMIN, &v, VERDICT_NO_CLIENTAUTH);
    FULL(db, admin1, T_NOW, ADMIN, &v, VERDICT_OK);
    RESUMED(db, admin1, T_NOW, ADMIN, &v, VERDICT_OK);
    trustdb_unref(db);
}

static void test_garbage(void)
{
    struct trustdb *db = snapshot_default();
    unsigned char junk[20] = {0x30, 0x82, 0x01, 0x00, 0x30, 0x82};
    gnutls_datum_t bad = {junk, sizeof(junk)};
    gnutls_datum_t cut = {admin1.der.data, admin1.der.size / 2};
    gnutls_datum_t empty = {NULL, 0};
    gnutls_datum_t chain[2] = {admin1.der, bad};
    struct verdict v;

    memset(junk + 6, 0x30, sizeof(junk) - 6);
    for (int i = 0; i < 2; i++) {
        EXPECT_INT(trustdb_verify_peer(db, &bad, 1, T_NOW, ADMIN, &v), -EBADMSG);
        EXPECT_INT(trustdb_verify_resumed(db, &bad, T_NOW, ADMIN, &v), -EBADMSG);
        EXPECT_INT(trustdb_verify_peer(db, &cut, 1, T_NOW, ADMIN, &v), -EBADMSG);
        EXPECT_INT(trustdb_verify_resumed(db, &cut, T_NOW, ADMIN, &v), -EBADMSG);
        EXPECT_INT(trustdb_verify_peer(db, &empty, 1, T_NOW, ADMIN, &v), -EBADMSG);
    }
    /* A known good leaf does not carry a bad rest of the chain. */
    FULL(db, admin1, T_NOW, ADMIN, &v, VERDICT_OK);
    EXPECT_INT(trustdb_verify_peer(db, chain, 2, T_NOW, ADMIN, &v), -EBADMSG);

    expect_verdict(__LINE__, "full none", trustdb_verify_peer(db, NULL, 0, T_NOW, ADMIN, &v), &v,
                   VERDICT_NO_CERT);
    CU_ASSERT_PTR_NULL(v.peer);
    expect_verdict(__LINE__, "resumed none", trustdb_verify_resumed(db, NULL, T_NOW, ADMIN, &v),
                   &v, VERDICT_NO_CERT);
    expect_verdict(__LINE__, "resumed empty",
                   trustdb_verify_resumed(db, &empty, T_NOW, ADMIN, &v), &v, VERDICT_NO_CERT);
    trustdb_unref(db);
}

#define WORKERS 4
/* Calls per worker. Under ASan each parse GnuTLS does for the forgery costs
 * ten times as much: fewer rounds there keep the test under a second. */
#if defined(__SANITIZE_ADDRESS__)
#define ROUNDS 500
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define ROUNDS 500
#endif
#endif
#ifndef ROUNDS
#define ROUNDS 2000
#endif

struct worker {
    pthread_t tid;
    struct trustdb *db;
    unsigned id;
    unsigned wrong;
    char first[200]; /* the first wrong verdict, for the failure message */
};

static void *worker_run(void *arg)
{
    struct worker *w = arg;
    const struct leaf *const cycle[] = {&admin1, &mon1, &forged};

    for (unsigned i = 0; i < ROUNDS; i++) {
        const struct leaf *l = cycle[(i + w->id) % 3];
        bool resumed = (i / 3 + w->id) % 2 == 1;
        unsigned roles = ADMIN | VERIFY_ROLE(ROLE_MONITOR);
        struct verdict v;
        bool ok;
        int rc = resumed ? trustdb_verify_resumed(w->db, &l->der, T_NOW, roles, &v)
                         : trustdb_verify_peer(w->db, &l->der, 1, T_NOW, roles, &v);

        /* Resumption checks no chain, but the issuer is chosen by
         * signature: the forgery passes neither way. */
        if (l == &forged)
            ok = rc == 0 && (v.code == VERDICT_BAD_SIGNATURE || v.code == VERDICT_UNKNOWN_ISSUER);
        else
            ok = rc == 0 && v.code == VERDICT_OK && v.peer && strcmp(v.peer->name, l->name) == 0 &&
                 strcmp(v.serial, l->hex) == 0;
        if (!ok && w->wrong++ == 0)
            snprintf(w->first, sizeof(w->first), "round %u, %s %s%s: rc %d, %s", i,
                     resumed ? "resumed" : "full", l->name, l == &forged ? " (forged)" : "", rc,
                     rc == 0 ? verdict_name(v.code) : "-");
    }
    return NULL;
}

static void test_threads(void)
{
    struct trustdb *db = snapshot_default();
    struct worker w[WORKERS];

    memset(w, 0, sizeof(w));
    for (unsigned i = 0; i < WORKERS; i++) {
        w[i].db = db;
        w[i].id = i;
        CU_ASSERT_EQUAL_FATAL(pthread_create(&w[i].tid, NULL, worker_run, &w[i]), 0);
    }
    for (unsigned i = 0; i < WORKERS; i++) {
        pthread_join(w[i].tid, NULL);
        if (w[i].wrong)
            fprintf(stderr, "worker %u: %u wrong verdicts, first: %s\n", i, w[i].wrong,
                    w[i].first);
        EXPECT_INT(w[i].wrong, 0);
    }
    trustdb_unref(db);
}

/* More peers than the cache's 128 slots (trustdb.c FACTS_SLOTS): slots are
 * shared and replaced, and every verdict stays what it was. */
#define MANY 300

static void test_more_peers_than_slots(void)
{
    static struct leaf many[MANY];
    static char names[MANY][16], hexes[MANY][8], serials[MANY][2];
    struct registry *reg = NULL;
    struct trustdb *db;
    struct verdict v;
    unsigned wrong = 0;
    int rc;

    CU_ASSERT_EQUAL_FATAL(registry_new(&reg), 0);
    for (unsigned i = 0; i < MANY; i++) {
        struct peer p;
        snprintf(names[i], sizeof(names[i]), "many%u", i);
        serials[i][0] = (char)(0x20 + i / 256); /* top bit clear: no zero octet */
        serials[i][1] = (char)(i % 256);
        snprintf(hexes[i], sizeof(hexes[i]), "%02x%02x", 0x20 + i / 256, i % 256);
        many[i] = (struct leaf){names[i], serials[i], 2, hexes[i], "urn:mtlsgw:role:admin",
                                GNUTLS_KP_TLS_WWW_CLIENT, ROLE_ADMIN, &ours, true, {0}};
        CU_ASSERT_EQUAL_FATAL(leaf_make(&many[i]), 0);
        p = (struct peer){.name = names[i], .role = ROLE_ADMIN, .status = PEER_ACTIVE,
                          .serial = hexes[i], .key_id = "ab01", .not_before = T_FROM,
                          .not_after = T_UNTIL, .enrolled_at = T_FROM};
        EXPECT_INT(registry_add(reg, &p), 0);
    }
    db = snapshot(crl_of(NULL), reg);
    /* Forward, backward, then resumed: each peer comes back after the
     * others have taken its slot or shared it. */
    for (int round = 0; round < 3; round++) {
        for (unsigned k = 0; k < MANY; k++) {
            unsigned i = round == 1 ? MANY - 1 - k : k;
            rc = round == 2 ? trustdb_verify_resumed(db, &many[i].der, T_NOW, ADMIN, &v)
                            : trustdb_verify_peer(db, &many[i].der, 1, T_NOW, ADMIN, &v);
            if (rc != 0 || v.code != VERDICT_OK || !v.peer ||
                strcmp(v.peer->name, names[i]) != 0 || strcmp(v.serial, hexes[i]) != 0) {
                if (!wrong)
                    fprintf(stderr, "round %d peer %u: %d/%s\n", round, i, rc,
                            rc == 0 ? verdict_name(v.code) : "-");
                wrong++;
            }
            /* Something else in between, refused every time. */
            if (k % 50 == 0) {
                rc = trustdb_verify_peer(db, &forged.der, 1, T_NOW, ADMIN, &v);
                CU_ASSERT_TRUE(foreign_verdict(__LINE__, rc, &v));
            }
        }
    }
    EXPECT_INT(wrong, 0);
    /* Time and roles are still judged for whichever peers the slots hold. */
    FULL(db, many[0], T_UNTIL + 1, ADMIN, &v, VERDICT_EXPIRED);
    FULL(db, many[MANY - 1], T_NOW, VERIFY_ROLE(ROLE_TUNNEL), &v, VERDICT_ROLE_NOT_ALLOWED);
    trustdb_unref(db);
    for (unsigned i = 0; i < MANY; i++)
        gnutls_free(many[i].der.data);
}

/*
 * The chain is verified without GnuTLS' time checks (verify.c judges time
 * against its own `now`): the CA's period must be judged too. A peer whose
 * certificate outlasts its CA is refused from the CA's end on, full,
 * cached and resumed.
 */
static void test_ca_expired(void)
{
    struct trustdb *db = snapshot_brief();
    struct verdict v;

    FULL(db, late1, T_NOW, ADMIN, &v, VERDICT_OK);
    RESUMED(db, late1, T_NOW, ADMIN, &v, VERDICT_OK);
    FULL(db, late1, T_CA_END, ADMIN, &v, VERDICT_OK); /* its last second */
    FULL(db, late1, T_CA_END + 1, ADMIN, &v, VERDICT_EXPIRED);
    EXPECT_CONTAINS(v.reason, "the CA 'CN=mtlsgw short CA' expired on");
    EXPECT_STR(v.serial, late1.hex);
    RESUMED(db, late1, T_CA_END + 1, ADMIN, &v, VERDICT_EXPIRED);
    EXPECT_CONTAINS(v.reason, "the CA 'CN=mtlsgw short CA' expired on");
    trustdb_unref(db);

    /* First sight after the end: the full path, no cache. */
    db = snapshot_brief();
    FULL(db, late1, T_CA_END + 86400, ADMIN, &v, VERDICT_EXPIRED);
    FULL(db, late1, T_NOW, ADMIN, &v, VERDICT_OK);
    /* Before the CA's start. */
    FULL(db, late1, T_FROM - 2 * 86400, ADMIN, &v, VERDICT_NOT_YET_VALID);
    EXPECT_CONTAINS(v.reason, "the CA 'CN=mtlsgw short CA' is not valid before");
    trustdb_unref(db);

    /* Our CA lives past its peers: their own end is what they hit. */
    db = snapshot_default();
    FULL(db, admin1, T_UNTIL + 1, ADMIN, &v, VERDICT_EXPIRED);
    EXPECT_CONTAINS(v.reason, "expired on");
    CU_ASSERT_PTR_NULL(strstr(v.reason, "CA"));
    trustdb_unref(db);
}

/* ---- ca.crt as trustdb_load reads it ----------------------------------- */

static void write_datum(const char *dir, const char *name, const gnutls_datum_t *d)
{
    char path[512];
    FILE *f;

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    f = fopen(path, "w");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    CU_ASSERT_EQUAL(fwrite(d->data, 1, d->size, f), d->size);
    fclose(f);
}

static void append_pem(gnutls_datum_t *all, gnutls_x509_crt_t crt)
{
    gnutls_datum_t pem = {NULL, 0};
    unsigned char *grown;

    CU_ASSERT_EQUAL_FATAL(gnutls_x509_crt_export2(crt, GNUTLS_X509_FMT_PEM, &pem), 0);
    grown = realloc(all->data, all->size + pem.size);
    CU_ASSERT_PTR_NOT_NULL_FATAL(grown);
    memcpy(grown + all->size, pem.data, pem.size);
    all->data = grown;
    all->size += pem.size;
    gnutls_free(pem.data);
}

/* A certificate for subject's name and key signed by issuer: a cross
 * certificate as `mtlsgw ca rollover` writes into cross/ (as_ca), or an
 * end-entity one as a peer's in issued/ (!as_ca). Its SHA-256 into fp. */
static void cert_for_key(const char *dir, const char *name, const struct ca *subject,
                         const struct ca *issuer, bool as_ca, char fp[65])
{
    gnutls_x509_crt_t crt = NULL;
    gnutls_datum_t pem = {NULL, 0};
    char cn[128];
    size_t cn_len = sizeof(cn);

    CU_ASSERT_EQUAL_FATAL(gnutls_x509_crt_init(&crt), 0);
    EXPECT_INT(gnutls_x509_crt_get_dn_by_oid(subject->crt, GNUTLS_OID_X520_COMMON_NAME, 0, 0, cn,
                                             &cn_len), 0);
    EXPECT_INT(gnutls_x509_crt_set_version(crt, 3), 0);
    EXPECT_INT(gnutls_x509_crt_set_serial(crt, "\x02", 1), 0);
    EXPECT_INT(gnutls_x509_crt_set_dn_by_oid(crt, GNUTLS_OID_X520_COMMON_NAME, 0, cn,
                                             (unsigned)cn_len), 0);
    EXPECT_INT(gnutls_x509_crt_set_activation_time(crt, T_FROM - 86400), 0);
    EXPECT_INT(gnutls_x509_crt_set_expiration_time(crt, T_UNTIL), 0);
    EXPECT_INT(gnutls_x509_crt_set_basic_constraints(crt, as_ca, -1), 0);
    EXPECT_INT(gnutls_x509_crt_set_key_usage(crt, as_ca ? GNUTLS_KEY_KEY_CERT_SIGN |
                                                              GNUTLS_KEY_CRL_SIGN
                                                        : GNUTLS_KEY_DIGITAL_SIGNATURE), 0);
    EXPECT_INT(gnutls_x509_crt_set_key(crt, subject->key), 0);
    EXPECT_INT(gnutls_x509_crt_sign2(crt, issuer->crt, issuer->key, GNUTLS_DIG_SHA256, 0), 0);
    EXPECT_INT(gnutls_x509_crt_export2(crt, GNUTLS_X509_FMT_PEM, &pem), 0);
    write_datum(dir, name, &pem);
    EXPECT_INT(pki_cert_fp_hex(crt, fp), 0);
    gnutls_free(pem.data);
    gnutls_x509_crt_deinit(crt);
}

static void cross_make(const char *dir, const char *name, const struct ca *subject,
                       const struct ca *issuer, char fp[65])
{
    cert_for_key(dir, name, subject, issuer, true, fp);
}

/* rollover.json as `mtlsgw ca rollover` writes it, recording fps. */
static void rollover_json(const char *dir, const char *fp1, const char *fp2)
{
    char text[600];
    gnutls_datum_t d;

    snprintf(text, sizeof(text),
             "{\"started\": \"2026-01-01T00:00:00Z\", \"old_label\": \"mtlsgw-ca\", "
             "\"new_label\": \"mtlsgw-ca-2\", \"old_ca\": \"a\", \"new_ca\": \"b\", "
             "\"cross\": [\"%s\", \"%s\"], \"old_serials\": []}\n", fp1, fp2);
    d.data = (unsigned char *)text;
    d.size = (unsigned)strlen(text);
    write_datum(dir, "rollover.json", &d);
}

static struct trustdb *load_dir(const char *dir)
{
    struct config cfg;
    struct pki *pki = NULL;
    struct trustdb *db = NULL;
    char err[512] = "";

    memset(&cfg, 0, sizeof(cfg));
    cfg.pki.dir = (char *)dir;
    CU_ASSERT_EQUAL_FATAL(pki_new(&cfg, &pki), 0);
    if (trustdb_load(pki, &db, err, sizeof(err)) < 0)
        fprintf(stderr, "test-trustdb.c: trustdb_load: %s\n", err);
    pki_free(pki);
    CU_ASSERT_PTR_NOT_NULL_FATAL(db);
    return db;
}

/*
 * The attack of a crafted backup (issue #15): a CA of one's own appended to
 * ca.crt and an admin it issued in the registry. The appended CA is ignored
 * (and said to be) until cross/ holds a certificate for its key signed by
 * our CA; one signed the other way (by the appended CA, over our CA's key,
 * which anyone can make) vouches for nothing.
 */
static void test_appended_anchor(void)
{
    char dir[] = "/tmp/test-trustdb.XXXXXX", path[600], fp_wrong[65], fp_peer[65], fp_good[65];
    gnutls_datum_t cas = {NULL, 0}, pem = {NULL, 0};
    gnutls_x509_crl_t crl = crl_of(NULL);
    struct registry *reg = registry_of(NULL); /* alien1: an admin of stranger's */
    struct trustdb *db;
    struct verdict v;
    int rc;

    CU_ASSERT_PTR_NOT_NULL_FATAL(mkdtemp(dir));
    append_pem(&cas, ours.crt);
    append_pem(&cas, stranger.crt);
    write_datum(dir, "ca.crt", &cas);
    free(cas.data);
    EXPECT_INT(gnutls_x509_crl_export2(crl, GNUTLS_X509_FMT_PEM, &pem), 0);
    write_datum(dir, "crl.pem", &pem);
    gnutls_free(pem.data);
    gnutls_x509_crl_deinit(crl);
    snprintf(path, sizeof(path), "%s/registry.json", dir);
    EXPECT_INT(registry_save(reg, path), 0);
    registry_free(reg);

    db = load_dir(dir);
    rc = trustdb_verify_peer(db, &alien.der, 1, T_NOW, ADMIN, &v);
    expect_verdict(__LINE__, "full alien, appended CA", rc, &v, VERDICT_UNKNOWN_ISSUER);
    FULL(db, admin1, T_NOW, ADMIN, &v, VERDICT_OK);
    EXPECT_INT((int)trustdb_n_ignored(db), 1);
    if (trustdb_n_ignored(db) == 1) {
        EXPECT_CONTAINS(trustdb_ignored(db, 0), "CN=some other CA");
        EXPECT_CONTAINS(trustdb_ignored(db, 0), "is ignored");
    }
    CU_ASSERT_PTR_NULL(trustdb_ignored(db, 1));
    trustdb_unref(db);

    /* Our CA's key certified by the appended CA: proves nothing, even
     * recorded. */
    snprintf(path, sizeof(path), "%s/cross", dir);
    EXPECT_INT(mkdir(path, 0755), 0);
    cross_make(path, "new-by-old.crt", &ours, &stranger, fp_wrong);
    rollover_json(dir, fp_wrong, fp_wrong);
    db = load_dir(dir);
    rc = trustdb_verify_peer(db, &alien.der, 1, T_NOW, ADMIN, &v);
    expect_verdict(__LINE__, "full alien, cross the wrong way", rc, &v,
                   VERDICT_UNKNOWN_ISSUER);
    EXPECT_INT((int)trustdb_n_ignored(db), 1);
    trustdb_unref(db);

    /* A peer's certificate for the appended CA's key, signed by our CA (as
     * issued/ holds every peer's), copied into cross/ and even recorded:
     * not a CA, so it vouches for nothing. */
    cert_for_key(path, "peer.crt", &stranger, &ours, false, fp_peer);
    rollover_json(dir, fp_wrong, fp_peer);
    db = load_dir(dir);
    rc = trustdb_verify_peer(db, &alien.der, 1, T_NOW, ADMIN, &v);
    expect_verdict(__LINE__, "full alien, a peer's certificate in cross/", rc, &v,
                   VERDICT_UNKNOWN_ISSUER);
    EXPECT_INT((int)trustdb_n_ignored(db), 1);
    trustdb_unref(db);

    /* Its key certified by our CA as a CA (a rollover's old-by-new), but not
     * the one rollover.json records: nothing. */
    cross_make(path, "old-by-new.crt", &stranger, &ours, fp_good);
    db = load_dir(dir);
    rc = trustdb_verify_peer(db, &alien.der, 1, T_NOW, ADMIN, &v);
    expect_verdict(__LINE__, "full alien, a cross certificate not recorded", rc, &v,
                   VERDICT_UNKNOWN_ISSUER);
    trustdb_unref(db);

    /* ... recorded by the rollover: trusted. */
    rollover_json(dir, fp_wrong, fp_good);
    db = load_dir(dir);
    FULL(db, alien, T_NOW, ADMIN, &v, VERDICT_OK);
    FULL(db, admin1, T_NOW, ADMIN, &v, VERDICT_OK);
    EXPECT_INT((int)trustdb_n_ignored(db), 0);
    trustdb_unref(db);

    static const char *const files[] = {"cross/new-by-old.crt", "cross/old-by-new.crt",
                                        "cross/peer.crt", "cross", "rollover.json",
                                        "ca.crt", "crl.pem", "registry.json"};
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        snprintf(path, sizeof(path), "%s/%s", dir, files[i]);
        if (remove(path) < 0)
            perror(path);
    }
    rmdir(dir);
}

/* A CA named name signed by issuer (an intermediate), read back as from a
 * file. */
static void ca_make_under(struct ca *ca, const char *name, const struct ca *issuer)
{
    gnutls_datum_t der = {NULL, 0};

    CU_ASSERT_EQUAL_FATAL(gnutls_x509_privkey_init(&ca->key), 0);
    CU_ASSERT_EQUAL_FATAL(gnutls_x509_privkey_generate(
                              ca->key, GNUTLS_PK_ECDSA,
                              GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1), 0), 0);
    CU_ASSERT_EQUAL_FATAL(gnutls_x509_crt_init(&ca->crt), 0);
    EXPECT_INT(gnutls_x509_crt_set_version(ca->crt, 3), 0);
    EXPECT_INT(gnutls_x509_crt_set_serial(ca->crt, "\x03", 1), 0);
    EXPECT_INT(gnutls_x509_crt_set_dn_by_oid(ca->crt, GNUTLS_OID_X520_COMMON_NAME, 0, name,
                                             (unsigned)strlen(name)), 0);
    EXPECT_INT(gnutls_x509_crt_set_activation_time(ca->crt, T_FROM - 86400), 0);
    EXPECT_INT(gnutls_x509_crt_set_expiration_time(ca->crt, T_UNTIL + 86400), 0);
    EXPECT_INT(gnutls_x509_crt_set_basic_constraints(ca->crt, 1, 0), 0);
    EXPECT_INT(gnutls_x509_crt_set_key_usage(ca->crt, GNUTLS_KEY_KEY_CERT_SIGN |
                                                          GNUTLS_KEY_CRL_SIGN), 0);
    EXPECT_INT(gnutls_x509_crt_set_key(ca->crt, ca->key), 0);
    EXPECT_INT(gnutls_x509_crt_sign2(ca->crt, issuer->crt, issuer->key, GNUTLS_DIG_SHA256, 0),
               0);
    EXPECT_INT(gnutls_x509_crt_export2(ca->crt, GNUTLS_X509_FMT_DER, &der), 0);
    gnutls_x509_crt_deinit(ca->crt);
    CU_ASSERT_EQUAL_FATAL(gnutls_x509_crt_init(&ca->crt), 0);
    EXPECT_INT(gnutls_x509_crt_import(ca->crt, &der, GNUTLS_X509_FMT_DER), 0);
    gnutls_free(der.data);
}

/* A pki dir under an organization's root: chain.pem holds inter (signed by
 * stranger), ca.crt first then second; an empty CRL of inter's and a
 * registry with l. */
static void org_dir(const char *dir, const struct ca *first, const struct ca *second,
                    const struct ca *inter, const struct leaf *l)
{
    gnutls_datum_t cas = {NULL, 0}, pem = {NULL, 0};
    gnutls_x509_crl_t crl = NULL;
    struct registry *reg = NULL;
    struct peer p = {.name = (char *)l->name, .role = l->reg_role, .status = PEER_ACTIVE,
                     .serial = (char *)l->hex, .key_id = "ab02", .not_before = T_FROM,
                     .not_after = T_UNTIL, .enrolled_at = T_FROM};
    char path[600];

    append_pem(&cas, first->crt);
    append_pem(&cas, second->crt);
    write_datum(dir, "ca.crt", &cas);
    free(cas.data);
    cas.data = NULL;
    cas.size = 0;
    append_pem(&cas, inter->crt);
    write_datum(dir, "chain.pem", &cas);
    free(cas.data);
    CU_ASSERT_EQUAL_FATAL(gnutls_x509_crl_init(&crl), 0);
    EXPECT_INT(gnutls_x509_crl_set_version(crl, 2), 0);
    EXPECT_INT(gnutls_x509_crl_set_this_update(crl, T_FROM + 3600), 0);
    EXPECT_INT(gnutls_x509_crl_set_next_update(crl, T_UNTIL), 0);
    EXPECT_INT(gnutls_x509_crl_sign2(crl, inter->crt, inter->key, GNUTLS_DIG_SHA256, 0), 0);
    EXPECT_INT(gnutls_x509_crl_export2(crl, GNUTLS_X509_FMT_PEM, &pem), 0);
    write_datum(dir, "crl.pem", &pem);
    gnutls_free(pem.data);
    gnutls_x509_crl_deinit(crl);
    CU_ASSERT_EQUAL_FATAL(registry_new(&reg), 0);
    EXPECT_INT(registry_add(reg, &p), 0);
    snprintf(path, sizeof(path), "%s/registry.json", dir);
    EXPECT_INT(registry_save(reg, path), 0);
    registry_free(reg);
}

/* Under an organization's root, an extra root of ca.crt is trusted when
 * chain.pem verifies to it, and ignored when it does not. */
static void test_appended_root(void)
{
    char dir[] = "/tmp/test-trustdb.XXXXXX", path[600];
    struct ca inter = {NULL, NULL};
    struct leaf il = {"ileaf1", "\x12\x08", 2, "1208", "urn:mtlsgw:role:admin",
                      GNUTLS_KP_TLS_WWW_CLIENT, ROLE_ADMIN, &inter, true, {0}};
    struct trustdb *db;
    struct verdict v;

    CU_ASSERT_PTR_NOT_NULL_FATAL(mkdtemp(dir));
    ca_make_under(&inter, "mtlsgw test intermediate", &stranger);
    CU_ASSERT_EQUAL_FATAL(leaf_make(&il), 0);

    /* The chain's root second: vouched for by chain.pem. */
    org_dir(dir, &ours, &stranger, &inter, &il);
    db = load_dir(dir);
    FULL(db, il, T_NOW, ADMIN, &v, VERDICT_OK);
    EXPECT_INT((int)trustdb_n_ignored(db), 0);
    trustdb_unref(db);

    /* A root the chain does not lead to, second: ignored, and said. */
    org_dir(dir, &stranger, &forger, &inter, &il);
    db = load_dir(dir);
    FULL(db, il, T_NOW, ADMIN, &v, VERDICT_OK);
    EXPECT_INT((int)trustdb_n_ignored(db), 1);
    if (trustdb_n_ignored(db) == 1)
        EXPECT_CONTAINS(trustdb_ignored(db, 0), "chain.pem does not verify to it");
    trustdb_unref(db);

    static const char *const files[] = {"ca.crt", "chain.pem", "crl.pem", "registry.json"};
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        snprintf(path, sizeof(path), "%s/%s", dir, files[i]);
        if (remove(path) < 0)
            perror(path);
    }
    rmdir(dir);
    gnutls_free(il.der.data);
    ca_free(&inter);
}

static const struct cu_test tests[] = {
    {"a CA that expired refuses its peers", test_ca_expired},
    {"good certificate, twice (cached)", test_ok_twice},
    {"cache does not freeze time", test_cache_keeps_time},
    {"cache does not freeze roles", test_cache_keeps_roles},
    {"foreign CA with our CA's name, never cached", test_foreign_ca},
    {"registry: revoked, superseded, not enrolled", test_registry},
    {"CRL revokes, full and resumed", test_crl},
    {"resumed: ok, no clientAuth", test_resumed},
    {"garbage DER and no certificate", test_garbage},
    {"threads share one snapshot", test_threads},
    {"more peers than the cache has slots", test_more_peers_than_slots},
    {"a sibling issuer ([trust NAME])", test_sibling_issuer},
    {"a CA appended to ca.crt: ignored unless cross/ vouches", test_appended_anchor},
    {"a root appended under an organization's root: chain.pem vouches", test_appended_root},
};

static void fixtures_free(void)
{
    for (size_t i = 0; i < sizeof(leaves) / sizeof(leaves[0]); i++)
        gnutls_free(leaves[i]->der.data);
    gnutls_free(ca_der.data);
    if (leaf_key)
        gnutls_x509_privkey_deinit(leaf_key);
    ca_free(&ours);
    ca_free(&forger);
    ca_free(&stranger);
    ca_free(&brief);
}

static int fixtures_make(void)
{
    int rc;

    /* The forger copies our CA's name; only the key differs. */
    if ((rc = ca_make(&ours, CA_NAME)) < 0 || (rc = ca_make(&forger, CA_NAME)) < 0 ||
        (rc = ca_make(&stranger, "some other CA")) < 0 ||
        (rc = ca_make_until(&brief, "mtlsgw short CA", T_CA_END)) < 0 ||
        (rc = gnutls_x509_crt_export2(ours.crt, GNUTLS_X509_FMT_DER, &ca_der)) < 0 ||
        (rc = gnutls_x509_privkey_init(&leaf_key)) < 0 ||
        (rc = gnutls_x509_privkey_generate(leaf_key, GNUTLS_PK_ECDSA,
                                           GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1), 0)) <
            0)
        return rc;
    for (size_t i = 0; i < sizeof(leaves) / sizeof(leaves[0]); i++)
        if ((rc = leaf_make(leaves[i])) < 0)
            return rc;
    return 0;
}

int main(void)
{
    int rc = fixtures_make();

    if (rc < 0) {
        fprintf(stderr, "test-trustdb: cannot make the test PKI: %s\n", gnutls_strerror(rc));
        fixtures_free();
        return 1;
    }
    rc = cu_run("trustdb", tests, sizeof(tests) / sizeof(tests[0]));
    fixtures_free();
    return rc;
}
