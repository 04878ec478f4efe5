#include "trustdb.h"

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fsutil.h"
#include "pki-rollover.h"
#include "pki.h"
#include "pki-chain.h"
#include "registry.h"
#include "verify.h"

/*
 * The facts of the peers' certificates, by their DER bytes (compared whole):
 * a resumed handshake of a known peer then parses nothing (the parse was a
 * tenth of its CPU, docs/performance.md), and a full handshake with a
 * certificate whose signature by the CA has already been checked, byte for
 * byte the same, does not check it again (a pure function of those bytes
 * and the CA; the peer's proof of its key, CertificateVerify, is GnuTLS'
 * in every handshake). Validity, registry and role are judged every time.
 * Each snapshot has its own cache, so a reload (CA, CRL, registry) starts
 * empty. Direct-mapped: a collision replaces the older entry. Only a
 * certificate that passed a full verification is marked chain_ok; the
 * facts of any certificate seen in a resumption are kept (their own
 * verdict is formed from them each time).
 */
#define FACTS_SLOTS 128

struct facts_slot {
    uint64_t hash;
    unsigned char *der; /* NULL: empty */
    size_t len;
    bool chain_ok; /* der alone verified against this snapshot's CA */
    struct cert_facts f;
};

/* The anchors of ca.crt: one, or two during a CA rollover. */
#define TRUSTDB_MAX_CAS 4
/* What is said of ca.crt's certificates nothing vouches for. */
#define TRUSTDB_MAX_IGNORED 4
#define TRUSTDB_IGNORED_LEN 512

struct ignored {
    char line[TRUSTDB_MAX_IGNORED][TRUSTDB_IGNORED_LEN];
    size_t n;
};

struct trustdb {
    atomic_int refs;
    gnutls_x509_crt_t ca;
    gnutls_x509_crt_t cas[TRUSTDB_MAX_CAS]; /* cas[0] is ca */
    size_t n_cas;
    gnutls_x509_crt_t *chain; /* intermediates, this gateway's CA first */
    size_t n_chain;
    gnutls_x509_crl_t crl, crl_old;
    struct registry *reg;
    struct trust trust;
    uint64_t crl_number; /* UINT64_MAX when above 64 bits; 0 without */
    char (*revoked)[64]; /* the CRL's serials as verify_serial_hex writes them, sorted */
    size_t n_revoked;
    pthread_mutex_t facts_lock;
    struct facts_slot *facts; /* FACTS_SLOTS, made on first use */
    struct trust_issuer *issuers; /* [trust NAME] sections, trustdb_add_issuer */
    size_t n_issuers;
    struct ignored ignored; /* ca.crt's certificates not trusted */
};

/* What a snapshot is made of (each may be NULL). */
static void parts_free(gnutls_x509_crt_t ca, gnutls_x509_crl_t crl, struct registry *reg)
{
    if (ca)
        gnutls_x509_crt_deinit(ca);
    if (crl)
        gnutls_x509_crl_deinit(crl);
    registry_free(reg);
}

static int cmp_serial(const void *a, const void *b)
{
    return strcmp(a, b);
}

/* The CRL's number and its serials, sorted, for the sweep of open sessions. */
static int crl_serials(struct trustdb *db, gnutls_x509_crl_t crl);

static int crl_index(struct trustdb *db)
{
    unsigned char num[32];
    size_t len = sizeof(num);
    unsigned crit = 0;
    int rc;

    if (!db->crl)
        return 0;
    if (gnutls_x509_crl_get_number(db->crl, num, &len, &crit) >= 0) {
        for (size_t i = 0; i < len; i++)
            db->crl_number =
                db->crl_number > UINT64_MAX >> 8 ? UINT64_MAX : db->crl_number << 8 | num[i];
    }
    rc = crl_serials(db, db->crl);
    if (rc == 0 && db->crl_old)
        rc = crl_serials(db, db->crl_old);
    if (rc == 0 && db->n_revoked > 1) /* qsort takes no NULL, even for 0 entries */
        qsort(db->revoked, db->n_revoked, sizeof(db->revoked[0]), cmp_serial);
    return rc;
}

/* crl's serials appended to db->revoked. */
static int crl_serials(struct trustdb *db, gnutls_x509_crl_t crl)
{
    gnutls_x509_crl_iter_t it = NULL;
    int n = gnutls_x509_crl_get_crt_count(crl);
    size_t max;
    char (*grown)[64];

    if (n <= 0)
        return 0;
    max = db->n_revoked + (size_t)n;
    grown = realloc(db->revoked, max * sizeof(*db->revoked));
    if (!grown)
        return -ENOMEM;
    db->revoked = grown;
    for (;;) {
        unsigned char s[64];
        size_t sl = sizeof(s);
        time_t when;
        int rc = gnutls_x509_crl_iter_crt_serial(crl, &it, s, &sl, &when);
        if (rc < 0 || db->n_revoked == max)
            break;
        verify_serial_bytes_hex(s, sl, db->revoked[db->n_revoked++], sizeof(db->revoked[0]));
    }
    gnutls_x509_crl_iter_deinit(it);
    return 0;
}

int trustdb_from(gnutls_x509_crt_t ca, gnutls_x509_crl_t crl, struct registry *reg,
                 struct trustdb **out)
{
    return trustdb_from_chain(ca, NULL, 0, crl, reg, out);
}

int trustdb_from_chain(gnutls_x509_crt_t ca, gnutls_x509_crt_t *chain, size_t n_chain,
                       gnutls_x509_crl_t crl, struct registry *reg, struct trustdb **out)
{
    struct trustdb *db = calloc(1, sizeof(*db));

    if (!db) {
        parts_free(ca, crl, reg);
        pki_free_certs(chain, n_chain);
        return -ENOMEM;
    }
    db->chain = chain;
    db->n_chain = n_chain;
    db->trust.chain = chain;
    db->trust.n_chain = n_chain;
    atomic_init(&db->refs, 1);
    pthread_mutex_init(&db->facts_lock, NULL);
    /* Without memory for the index, lookups scan: slower, still right. */
    if (reg)
        registry_index(reg);
    db->ca = ca;
    db->cas[0] = ca;
    db->n_cas = 1;
    db->crl = crl;
    db->reg = reg;
    db->trust.cas = db->cas;
    db->trust.n_cas = 1;
    db->trust.crl = db->crl;
    db->trust.reg = db->reg;
    if (crl_index(db) < 0) {
        trustdb_unref(db);
        return -ENOMEM;
    }
    *out = db;
    return 0;
}

/* The CA that signed crl among cas (-1: none did). */
static int crl_signer(gnutls_x509_crl_t crl, gnutls_x509_crt_t *cas, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned status = 0;
        if (gnutls_x509_crl_verify(crl, &cas[i], 1, 0, &status) >= 0 && status == 0)
            return (int)i;
    }
    return -1;
}

/* During a CA rollover: the other anchors of ca.crt and the old CA's CRL
 * (pki-rollover.h). Taken by db; freed on failure. */
static int trustdb_add_rollover(struct trustdb *db, gnutls_x509_crt_t *extra, unsigned n_extra,
                                gnutls_x509_crl_t crl_old)
{
    for (unsigned i = 0; i < n_extra; i++) {
        if (db->n_cas < TRUSTDB_MAX_CAS)
            db->cas[db->n_cas++] = extra[i];
        else
            gnutls_x509_crt_deinit(extra[i]);
    }
    db->trust.n_cas = db->n_cas;
    db->crl_old = crl_old;
    db->trust.crl_old = crl_old;
    /* The serials again, with the old CA's CRL's. */
    free(db->revoked);
    db->revoked = NULL;
    db->n_revoked = 0;
    db->crl_number = 0;
    return crl_index(db);
}

static bool same_key(gnutls_x509_crt_t a, gnutls_x509_crt_t b)
{
    unsigned char ia[64], ib[64];
    size_t la = sizeof(ia), lb = sizeof(ib);

    return gnutls_x509_crt_get_key_id(a, GNUTLS_KEYID_USE_SHA256, ia, &la) == 0 &&
           gnutls_x509_crt_get_key_id(b, GNUTLS_KEYID_USE_SHA256, ib, &lb) == 0 && la == lb &&
           memcmp(ia, ib, la) == 0;
}

/* Validity is the peers' to be judged on: an anchor is vouched for by
 * signatures alone. */
#define VOUCH_FLAGS (GNUTLS_VERIFY_DISABLE_TIME_CHECKS | GNUTLS_VERIFY_DISABLE_TRUSTED_TIME_CHECKS)

static bool same_subject(gnutls_x509_crt_t a, gnutls_x509_crt_t b)
{
    gnutls_datum_t da = {0}, db = {0};
    bool same = gnutls_x509_crt_get_dn3(a, &da, 0) == 0 &&
                gnutls_x509_crt_get_dn3(b, &db, 0) == 0 && da.size == db.size &&
                memcmp(da.data, db.data, da.size) == 0;

    gnutls_free(da.data);
    gnutls_free(db.data);
    return same;
}

/* A CA certificate (CA:TRUE, keyCertSign) for anchor's name and key, one
 * the rollover recorded, signed by issuing. */
static bool cross_cert_ok(const struct rollover *ro, gnutls_x509_crt_t c,
                          gnutls_x509_crt_t issuing, gnutls_x509_crt_t anchor)
{
    char fp[PKI_FP_HEX_LEN + 1];
    unsigned critical = 0, usage = 0, status = 1;
    bool recorded = false;

    if (pki_cert_fp_hex(c, fp) < 0)
        return false;
    for (size_t i = 0; i < ro->n_cross; i++)
        recorded = recorded || strcmp(ro->cross[i], fp) == 0;
    return recorded && gnutls_x509_crt_get_ca_status(c, &critical) > 0 &&
           gnutls_x509_crt_get_key_usage(c, &usage, &critical) >= 0 &&
           (usage & GNUTLS_KEY_KEY_CERT_SIGN) && same_subject(c, anchor) && same_key(c, anchor) &&
           gnutls_x509_crt_verify(c, &issuing, 1, VOUCH_FLAGS, &status) >= 0 && status == 0;
}

/* Whether cross/ holds the certificate a rollover made for anchor (its name
 * and key as a CA) signed by issuing (old-by-new.crt: the CA whose key is on
 * the token vouches for the other), recorded in rollover.json. A
 * certificate signed by anchor proves nothing (anyone can sign our CA's
 * public key with a CA of their own), nor one our CA signed for a peer
 * (issued/ holds them all: a peer's key is not a CA). */
static bool cross_vouches(const struct pki *pki, gnutls_x509_crt_t issuing,
                          gnutls_x509_crt_t anchor)
{
    char *dir = fs_join(pki->dir, PKI_CROSS_DIR), err[256];
    struct rollover *ro = NULL;
    DIR *d = NULL;
    struct dirent *e;
    bool ok = false;

    if (!dir || rollover_load(pki->dir, &ro, err, sizeof(err)) < 0 || !ro->n_cross)
        goto out;
    d = opendir(dir);
    while (d && !ok && (e = readdir(d))) {
        size_t l = strlen(e->d_name), n = 0;
        gnutls_x509_crt_t *c = NULL;
        char *path;
        if (e->d_name[0] == '.' || l < 5 || strcmp(e->d_name + l - 4, ".crt") != 0)
            continue;
        path = fs_join(dir, e->d_name);
        if (path && pki_read_certs(path, &c, &n, err, sizeof(err)) == 0) {
            for (size_t i = 0; i < n && !ok; i++)
                ok = cross_cert_ok(ro, c[i], issuing, anchor);
            pki_free_certs(c, n);
        }
        free(path);
    }
out:
    if (d)
        closedir(d);
    rollover_free(ro);
    free(dir);
    return ok;
}

/* Whether the pki dir vouches for anchor, a certificate of ca.crt after the
 * first: under an organization's root, chain.pem verifies to it; else (or
 * too) cross/ certifies its key by the issuing CA. */
static bool anchor_vouched(const struct pki *pki, gnutls_x509_crt_t issuing,
                           gnutls_x509_crt_t *chain, size_t n_chain, gnutls_x509_crt_t anchor)
{
    unsigned status = 1;

    if (n_chain && gnutls_x509_crt_list_verify(chain, (unsigned)n_chain, &anchor, 1, NULL, 0,
                                               VOUCH_FLAGS, &status) >= 0 && status == 0)
        return true;
    return cross_vouches(pki, issuing, anchor);
}

static void ignore(struct ignored *ig, const struct pki *pki, unsigned at, gnutls_x509_crt_t crt,
                   bool chained)
{
    gnutls_datum_t dn = {0};

    if (ig->n == TRUSTDB_MAX_IGNORED)
        return;
    if (gnutls_x509_crt_get_dn3(crt, &dn, 0) < 0)
        dn.data = NULL;
    snprintf(ig->line[ig->n++], TRUSTDB_IGNORED_LEN,
             "%s: certificate %u ('%s') is ignored: %sno CA certificate in %s/%s for its name "
             "and key, recorded in rollover.json, is signed by this gateway's CA, so nothing "
             "vouches for it; remove it from ca.crt, or cross-certify it with 'mtlsgw ca "
             "rollover'", pki->ca_path, at + 1,
             dn.data ? (const char *)dn.data : "?",
             chained ? "chain.pem does not verify to it and " : "", pki->dir, PKI_CROSS_DIR);
    gnutls_free(dn.data);
}

/* ca.crt's anchors after the first that the pki dir vouches for (the
 * others are ignored, said in ig), and crl-old.pem when there is one. */
static int load_rollover(const struct pki *pki, gnutls_x509_crt_t ca, gnutls_x509_crt_t *chain,
                         size_t n_chain, gnutls_x509_crt_t **extra, unsigned *n_extra,
                         gnutls_x509_crl_t *crl_old, struct ignored *ig, char *err,
                         size_t errlen)
{
    gnutls_x509_crt_t *all = NULL, cas[TRUSTDB_MAX_CAS];
    gnutls_x509_crt_t issuing = n_chain ? chain[0] : ca;
    unsigned n = 0, kept = 1;
    size_t n_cas = 0;
    char *path = fs_join(pki->dir, PKI_CRL_OLD_FILE);
    int rc = path ? pki_read_pem_certs(pki->ca_path, &all, &n) : -ENOMEM;

    *extra = NULL;
    *n_extra = 0;
    *crl_old = NULL;
    if (rc < 0)
        goto out;
    /* all[0] is ca (read again): the others are anchors only when vouched
     * for (a crafted ca.crt must not add a CA that issues admins). */
    gnutls_x509_crt_deinit(all[0]);
    for (unsigned i = 1; i < n; i++) {
        if (anchor_vouched(pki, issuing, chain, n_chain, all[i])) {
            all[kept++] = all[i];
        } else {
            ignore(ig, pki, i, all[i], n_chain > 0);
            gnutls_x509_crt_deinit(all[i]);
        }
    }
    n = kept;
    cas[n_cas++] = ca;
    for (unsigned i = 1; i < n && n_cas < TRUSTDB_MAX_CAS; i++)
        cas[n_cas++] = all[i];
    if (access(path, F_OK) == 0) {
        struct pki alt = *pki;
        alt.crl_path = path;
        rc = pki_read_crl(&alt, crl_old, err, errlen);
        if (rc == 0 && crl_signer(*crl_old, cas, n_cas) < 0) {
            snprintf(err, errlen, "%s is not signed by a CA in %s", path, pki->ca_path);
            rc = -EBADMSG;
        }
    }
    if (rc < 0)
        goto out;
    memmove(all, all + 1, (n - 1) * sizeof(*all));
    *extra = all;
    *n_extra = n - 1;
    all = NULL;
out:
    if (all) {
        for (unsigned i = 1; i < n; i++)
            gnutls_x509_crt_deinit(all[i]);
        gnutls_free(all);
        if (*crl_old)
            gnutls_x509_crl_deinit(*crl_old);
        *crl_old = NULL;
    }
    free(path);
    return rc;
}

int trustdb_load(const struct pki *pki, struct trustdb **out, char *err, size_t errlen)
{
    gnutls_x509_crt_t ca = NULL, *chain = NULL;
    gnutls_x509_crl_t crl = NULL, crl_old = NULL;
    gnutls_x509_crt_t *extra = NULL, cas[TRUSTDB_MAX_CAS];
    unsigned n_extra = 0;
    size_t n_cas = 0, n_chain = 0;
    struct registry *reg = NULL;
    struct ignored ig = {.n = 0};
    int rc;

    rc = pki_read_cert(pki->ca_path, &ca, err, errlen);
    if (rc == 0)
        rc = pki_load_chain(pki, &chain, &n_chain, err, errlen);
    if (rc == 0)
        rc = pki_read_crl(pki, &crl, err, errlen);
    if (rc == 0)
        rc = pki_load_registry(pki, &reg, err, errlen);
    if (rc == 0)
        rc = load_rollover(pki, ca, chain, n_chain, &extra, &n_extra, &crl_old, &ig, err,
                           errlen);
    /* A CRL not signed by our CA would let anyone un-revoke a peer. Under
     * an organization's root that CA is the first of chain.pem; during a
     * rollover ca.crt holds both CAs, and crl.pem may still be the old
     * one's for the moment between the two writes. */
    if (rc == 0) {
        cas[n_cas++] = n_chain ? chain[0] : ca;
        for (unsigned i = 0; i < n_extra && n_cas < TRUSTDB_MAX_CAS; i++)
            cas[n_cas++] = extra[i];
        if (crl_signer(crl, cas, n_cas) < 0) {
            snprintf(err, errlen, "%s is not signed by the CA in %s", pki->crl_path,
                     n_chain ? pki->chain_path : pki->ca_path);
            rc = -EBADMSG;
        }
    }
    if (rc < 0) {
        for (unsigned i = 0; i < n_extra; i++)
            gnutls_x509_crt_deinit(extra[i]);
        gnutls_free(extra);
        if (crl_old)
            gnutls_x509_crl_deinit(crl_old);
        parts_free(ca, crl, reg);
        pki_free_certs(chain, n_chain);
        return rc;
    }
    rc = trustdb_from_chain(ca, chain, n_chain, crl, reg, out);
    if (rc == 0 && (n_extra || crl_old))
        rc = trustdb_add_rollover(*out, extra, n_extra, crl_old);
    else if (rc < 0) {
        for (unsigned i = 0; i < n_extra; i++)
            gnutls_x509_crt_deinit(extra[i]);
        if (crl_old)
            gnutls_x509_crl_deinit(crl_old);
    }
    gnutls_free(extra);
    if (rc == 0)
        (*out)->ignored = ig;
    if (rc < 0 && *out) {
        trustdb_unref(*out);
        *out = NULL;
    }
    return rc;
}

struct trustdb *trustdb_ref(struct trustdb *db)
{
    if (db)
        atomic_fetch_add(&db->refs, 1);
    return db;
}

void trustdb_unref(struct trustdb *db)
{
    if (!db || atomic_fetch_sub(&db->refs, 1) != 1)
        return;
    parts_free(db->ca, db->crl, db->reg);
    for (size_t i = 1; i < db->n_cas; i++)
        gnutls_x509_crt_deinit(db->cas[i]);
    if (db->crl_old)
        gnutls_x509_crl_deinit(db->crl_old);
    pki_free_certs(db->chain, db->n_chain);
    free(db->revoked);
    for (size_t i = 0; i < db->n_issuers; i++) {
        gnutls_x509_crt_deinit(db->issuers[i].ca);
        free(db->issuers[i].revoked);
    }
    free(db->issuers);
    if (db->facts)
        for (size_t i = 0; i < FACTS_SLOTS; i++)
            free(db->facts[i].der);
    free(db->facts);
    pthread_mutex_destroy(&db->facts_lock);
    free(db);
}

static uint64_t fnv1a(const unsigned char *p, size_t n)
{
    uint64_t h = 14695981039346656037ULL;

    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 1099511628211ULL;
    return h;
}

/* The cached facts of der into *f; false when they are not there. */
static bool facts_find(struct trustdb *db, const gnutls_datum_t *der, uint64_t h,
                       struct cert_facts *f, bool *chain_ok)
{
    struct facts_slot *s;
    bool hit = false;

    pthread_mutex_lock(&db->facts_lock);
    if (db->facts) {
        s = &db->facts[h % FACTS_SLOTS];
        if (s->der && s->hash == h && s->len == der->size && memcmp(s->der, der->data, s->len) == 0) {
            *f = s->f;
            *chain_ok = s->chain_ok;
            hit = true;
        }
    }
    pthread_mutex_unlock(&db->facts_lock);
    return hit;
}

/* Best effort: without memory the next resumption parses again. */
static void facts_keep(struct trustdb *db, const gnutls_datum_t *der, uint64_t h,
                       const struct cert_facts *f, bool chain_ok)
{
    unsigned char *copy = malloc(der->size);
    struct facts_slot *s;

    if (!copy)
        return;
    memcpy(copy, der->data, der->size);
    pthread_mutex_lock(&db->facts_lock);
    if (!db->facts)
        db->facts = calloc(FACTS_SLOTS, sizeof(*db->facts));
    if (db->facts) {
        s = &db->facts[h % FACTS_SLOTS];
        free(s->der);
        s->der = copy;
        s->len = der->size;
        s->hash = h;
        s->chain_ok = chain_ok;
        s->f = *f;
        copy = NULL;
    }
    pthread_mutex_unlock(&db->facts_lock);
    free(copy);
}

int trustdb_verify_resumed(struct trustdb *db, const gnutls_datum_t *der, time_t now,
                           unsigned allowed_roles, struct verdict *v)
{
    struct cert_facts f;
    gnutls_x509_crt_t *crt = NULL;
    bool chain_ok;
    uint64_t h;
    int rc;

    if (!der || der->size == 0)
        return verify_by_facts(&db->trust, NULL, now, allowed_roles, v);
    h = fnv1a(der->data, der->size);
    if (!facts_find(db, der, h, &f, &chain_ok)) {
        if ((rc = verify_import_chain(der, 1, &crt)) < 0)
            return rc;
        verify_facts(&db->trust, crt[0], &f);
        verify_free_chain(crt, 1);
        facts_keep(db, der, h, &f, false);
    }
    return verify_by_facts(&db->trust, &f, now, allowed_roles, v);
}

int trustdb_verify_peer(struct trustdb *db, const gnutls_datum_t *raw, unsigned n, time_t now,
                        unsigned allowed_roles, struct verdict *v)
{
    gnutls_x509_crt_t *chain = NULL;
    struct cert_facts f;
    bool chain_ok = false;
    uint64_t h = 0;
    int rc;

    if (n == 1 && raw[0].size) {
        h = fnv1a(raw[0].data, raw[0].size);
        if (facts_find(db, &raw[0], h, &f, &chain_ok) && chain_ok)
            return verify_by_facts(&db->trust, &f, now, allowed_roles, v);
    }
    rc = verify_import_chain(raw, n, &chain);
    if (rc < 0)
        return rc;
    rc = verify_peer_facts(&db->trust, chain, n, now, allowed_roles, v, &f);
    /* Passed, chain and policy: the chain is known good from now on. */
    if (rc == 0 && v->code == VERDICT_OK && n == 1)
        facts_keep(db, &raw[0], h, &f, true);
    verify_free_chain(chain, n);
    return rc;
}

size_t trustdb_n_ignored(const struct trustdb *db)
{
    return db->ignored.n;
}

const char *trustdb_ignored(const struct trustdb *db, size_t i)
{
    return i < db->ignored.n ? db->ignored.line[i] : NULL;
}

const struct trust *trustdb_trust(const struct trustdb *db)
{
    return &db->trust;
}

const struct registry *trustdb_registry(const struct trustdb *db)
{
    return db->reg;
}

gnutls_x509_crt_t trustdb_ca(const struct trustdb *db)
{
    return db->n_chain ? db->chain[0] : db->ca;
}

gnutls_x509_crt_t trustdb_root(const struct trustdb *db)
{
    return db->ca;
}

time_t trustdb_crl_this_update(const struct trustdb *db)
{
    return gnutls_x509_crl_get_this_update(db->crl);
}

time_t trustdb_crl_next_update(const struct trustdb *db)
{
    return gnutls_x509_crl_get_next_update(db->crl);
}

uint64_t trustdb_crl_number(const struct trustdb *db)
{
    return db->crl_number;
}

bool trustdb_serial_in_crl(const struct trustdb *db, const char *serial)
{
    return db->n_revoked &&
           bsearch(serial, db->revoked, db->n_revoked, sizeof(db->revoked[0]), cmp_serial);
}

int trustdb_add_issuer(struct trustdb *db, const char *name, const gnutls_datum_t *ca_der,
                       bool fresh, char (*const revoked)[64], size_t n_revoked, unsigned roles)
{
    struct trust_issuer *n, *is;

    n = realloc(db->issuers, (db->n_issuers + 1) * sizeof(*n));
    if (!n)
        return -ENOMEM;
    db->issuers = n;
    db->trust.issuers = n;
    is = &n[db->n_issuers];
    memset(is, 0, sizeof(*is));
    snprintf(is->name, sizeof(is->name), "%s", name);
    if (gnutls_x509_crt_init(&is->ca) < 0)
        return -ENOMEM;
    if (gnutls_x509_crt_import(is->ca, ca_der, GNUTLS_X509_FMT_DER) < 0) {
        gnutls_x509_crt_deinit(is->ca);
        return -EBADMSG;
    }
    if (n_revoked) {
        is->revoked = malloc(n_revoked * sizeof(*is->revoked));
        if (!is->revoked) {
            gnutls_x509_crt_deinit(is->ca);
            return -ENOMEM;
        }
        memcpy(is->revoked, revoked, n_revoked * sizeof(*is->revoked));
        qsort(is->revoked, n_revoked, sizeof(*is->revoked), cmp_serial);
    }
    is->n_revoked = n_revoked;
    is->fresh = fresh;
    is->roles = roles;
    db->trust.n_issuers = ++db->n_issuers;
    return 0;
}

int trustdb_issuer_ca_revoked(struct trustdb *db, const char *name)
{
    for (size_t i = 0; i < db->n_issuers; i++) {
        if (strcmp(db->issuers[i].name, name) == 0) {
            db->issuers[i].ca_revoked = true;
            return 0;
        }
    }
    return -ENOENT;
}

const char *trustdb_issuer_untrusted(const struct trustdb *db, const char *issuer,
                                     const char *serial)
{
    for (size_t i = 0; i < db->n_issuers; i++) {
        const struct trust_issuer *is = &db->issuers[i];
        if (strcmp(is->name, issuer) != 0)
            continue;
        if (is->ca_revoked)
            return "its issuer's CA is revoked by the root's CRL";
        if (!is->fresh)
            return "its issuer's CRL is stale past max-stale";
        if (verify_serial_listed(is->revoked, is->n_revoked, serial))
            return "revoked by its issuer";
        return NULL;
    }
    return "its issuer is no longer trusted here";
}
