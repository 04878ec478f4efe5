#include "trustdb.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

#include "pki.h"
#include "registry.h"
#include "verify.h"

struct trustdb {
    atomic_int refs;
    gnutls_x509_crt_t ca;
    gnutls_x509_crl_t crl;
    struct registry *reg;
    struct trust trust;
};

int trustdb_load(const struct pki *pki, struct trustdb **out, char *err, size_t errlen)
{
    struct trustdb *db = calloc(1, sizeof(*db));
    unsigned status = 0;
    int rc;

    if (!db)
        return -ENOMEM;
    atomic_init(&db->refs, 1);
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
    free(db);
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
