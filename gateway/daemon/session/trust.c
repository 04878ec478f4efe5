/*
 * trust.c: the trust in force (registry + CRL + CA as the last reload left
 * them, struct daemon's `trust`) and the one judgement of an open session by
 * it. A leaf of the session process: the gate, conn.c, the API and the
 * books (sessions.c) ask it; it calls none of them.
 */
#include <gnutls/x509.h>
#include <pthread.h>
#include <time.h>

#include "daemon.h"
#include "registry.h"
#include "trust.h"
#include "trustdb.h"

struct trustdb *daemon_trust(struct daemon *d)
{
    struct trustdb *t;

    pthread_mutex_lock(&d->trust_lock);
    t = trustdb_ref(d->trust);
    pthread_mutex_unlock(&d->trust_lock);
    return t;
}

/*
 * Why an open session's certificate is no longer trusted (NULL: it is). A superseded
 * certificate was renewed, not distrusted: its session (an uplink's tunnel
 * that renewed itself) goes on while the peer's newer certificate is active
 * and the old one has not expired; new handshakes must show the new one. A
 * revocation of the peer ends it with the rest.
 */
const char *trust_judge(const struct trustdb *t, const struct conn *c, time_t now)
{
    const struct registry *reg = trustdb_registry(t);
    const struct peer *p = registry_find_serial(reg, c->serial), *cur;

    /* A sibling issuer's peer (verify.c, sibling_policy): its issuer's CRL
     * and freshness, then what our registry says of it, if anything. */
    if (c->issuer[0]) {
        const char *why = trustdb_issuer_untrusted(t, c->issuer, c->serial);
        if (why)
            return why;
        if (p && p->status == PEER_REVOKED)
            return "revoked here";
        return c->not_after && c->not_after <= now ? "certificate expired" : NULL;
    }
    if (!p)
        return "no longer enrolled";
    if (p->status == PEER_REVOKED)
        return "revoked";
    if (p->not_after <= now)
        return "certificate expired";
    {
        time_t ca_end = gnutls_x509_crt_get_expiration_time(trustdb_ca(t));
        if (ca_end != (time_t)-1 && ca_end <= now)
            return "CA certificate expired";
    }
    if ((int)p->role != c->role)
        return "role changed";
    /* The CRL is checked for an active entry only: it also lists the
     * superseded serials, whose sessions the registry keeps (above). A CRL
     * that lists an active peer was written first by a revocation whose
     * registry write is still to come, or by a writer other than mtlsgw:
     * the handshake refuses that certificate, so its sessions end too. */
    if (p->status == PEER_ACTIVE)
        return trustdb_serial_in_crl(t, c->serial) ? "revoked in the CRL" : NULL;
    cur = p->status == PEER_SUPERSEDED ? registry_find_name(reg, p->name) : NULL;
    if (cur && cur->status == PEER_ACTIVE && cur->role == p->role)
        return NULL;
    return cur && cur->status == PEER_REVOKED ? "revoked" : "superseded";
}

const char *daemon_untrusted(struct daemon *d, const struct conn *c)
{
    struct trustdb *t = daemon_trust(d);
    const char *why;

    if (!t)
        return NULL; /* no listener judges anyone here */
    why = trust_judge(t, c, time(NULL));
    trustdb_unref(t);
    return why;
}
