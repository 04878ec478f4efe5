#include "trustdb.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pki.h"
#include "registry.h"
#include "verify.h"

/*
 * The facts of the peers' certificates seen in resumptions, by their DER
 * bytes: a resumed handshake of a known peer then parses nothing (the parse
 * was a tenth of its CPU, docs/performance.md). Each snapshot has its own,
 * so a reload (new CRL, registry) starts empty. Direct-mapped: a collision
 * replaces the older entry.
 */
#define FACTS_SLOTS 128

struct facts_slot {
    uint64_t hash;
    unsigned char *der; /* NULL: empty */
    size_t len;
    struct cert_facts f;
};

struct trustdb {
    atomic_int refs;
    gnutls_x509_crt_t ca;
    gnutls_x509_crl_t crl;
    struct registry *reg;
    struct trust trust;
    pthread_mutex_t facts_lock;
    struct facts_slot *facts; /* FACTS_SLOTS, made on first use */
};

int trustdb_load(const struct pki *pki, struct trustdb **out, char *err, size_t errlen)
{
    struct trustdb *db = calloc(1, sizeof(*db));
    unsigned status = 0;
    int rc;

    if (!db)
        return -ENOMEM;
    atomic_init(&db->refs, 1);
    pthread_mutex_init(&db->facts_lock, NULL);
    rc = pki_read_cert(pki->ca_path, &db->ca, err, errlen);
    if (rc == 0)
        rc = pki_read_crl(pki, &db->crl, err, errlen);
    if (rc == 0)
        rc = pki_load_registry(pki, &db->reg, err, errlen);
    if (rc < 0)
        goto fail;
    /* A CRL not signed by our CA would let anyone un-revoke a peer. */
    if (gnutls_x509_crl_verify(db->crl, &db->ca, 1, 0, &status) < 0 || status != 0) {
        snprintf(err, errlen, "%s is not signed by the CA in %s", pki->crl_path, pki->ca_path);
        rc = -EBADMSG;
        goto fail;
    }
    db->trust.cas = &db->ca;
    db->trust.n_cas = 1;
    db->trust.crl = db->crl;
    db->trust.reg = db->reg;
    *out = db;
    return 0;
fail:
    trustdb_unref(db);
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
    if (db->ca)
        gnutls_x509_crt_deinit(db->ca);
    if (db->crl)
        gnutls_x509_crl_deinit(db->crl);
    registry_free(db->reg);
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
                       struct cert_facts *f)
{
    struct facts_slot *s;
    bool hit = false;

    pthread_mutex_lock(&db->facts_lock);
    if (db->facts) {
        s = &db->facts[h % FACTS_SLOTS];
        if (s->der && s->hash == h && s->len == der->size && memcmp(s->der, der->data, s->len) == 0) {
            *f = s->f;
            hit = true;
        }
    }
    pthread_mutex_unlock(&db->facts_lock);
    return hit;
}

/* Best effort: without memory the next resumption parses again. */
static void facts_keep(struct trustdb *db, const gnutls_datum_t *der, uint64_t h,
                       const struct cert_facts *f)
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
    gnutls_x509_crt_t crt = NULL;
    uint64_t h;

    if (!der || der->size == 0)
        return verify_peer_resumed(&db->trust, NULL, now, allowed_roles, v);
    h = fnv1a(der->data, der->size);
    if (!facts_find(db, der, h, &f)) {
        if (gnutls_x509_crt_init(&crt) < 0)
            return -ENOMEM;
        if (gnutls_x509_crt_import(crt, der, GNUTLS_X509_FMT_DER) < 0) {
            gnutls_x509_crt_deinit(crt);
            return -EBADMSG;
        }
        verify_facts(&db->trust, crt, &f);
        gnutls_x509_crt_deinit(crt);
        facts_keep(db, der, h, &f);
    }
    return verify_resumed_facts(&db->trust, &f, now, allowed_roles, v);
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
