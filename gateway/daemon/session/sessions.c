/*
 * sessions.c: the daemon's books of connections (the list, per-source
 * counts, the graveyard the loop empties), bans on failed authentication,
 * the trust in force (reload, the sweep of sessions it no longer trusts),
 * kicks and superseding, and the status, sessions and metrics the API and
 * the control socket read. server.c runs the loop and calls in here;
 * nothing here calls server.c.
 */
#include "sessions.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <json-c/json.h>

#include "bans.h"
#include "build-config.h"
#include "config.h"
#include "daemon.h"
#include "gate.h"
#include "gwcert.h"
#include "addr.h"
#include "log.h"
#include "mono.h"
#include "p11.h"
#include "pki.h"
#include "registry.h"
#include "tls.h"
#include "trust-fetch.h"
#include "trustdb.h"
#include "udp.h"

struct source_count {
    struct sockaddr_storage addr;
    unsigned n;
    struct source_count *next;
};

/* ---- per-source counting (under conns_lock) ---------------------------- */

static unsigned addr_hash(const struct sockaddr_storage *ss)
{
    const unsigned char *p;
    size_t n;
    unsigned h = 2166136261u;

    if (ss->ss_family == AF_INET) {
        p = (const unsigned char *)&((const struct sockaddr_in *)ss)->sin_addr;
        n = 4;
    } else {
        p = (const unsigned char *)&((const struct sockaddr_in6 *)ss)->sin6_addr;
        n = 16;
    }
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 16777619u;
    return h & 255;
}

static bool addr_equal(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
    if (a->ss_family != b->ss_family)
        return false;
    if (a->ss_family == AF_INET)
        return memcmp(&((const struct sockaddr_in *)a)->sin_addr,
                      &((const struct sockaddr_in *)b)->sin_addr, 4) == 0;
    return memcmp(&((const struct sockaddr_in6 *)a)->sin6_addr,
                  &((const struct sockaddr_in6 *)b)->sin6_addr, 16) == 0;
}

static struct source_count **source_slot(struct daemon *d, const struct sockaddr_storage *ss)
{
    struct source_count **pp = &d->sources[addr_hash(ss)];

    while (*pp && !addr_equal(&(*pp)->addr, ss))
        pp = &(*pp)->next;
    return pp;
}

/* ---- connections list ---------------------------------------------------- */

void sessions_forget(struct conn *c)
{
    struct daemon *d = c->d;
    struct source_count **pp;

    pthread_mutex_lock(&d->conns_lock);
    if (c->prev)
        c->prev->next = c->next;
    else if (d->conns == c)
        d->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->next = c->prev = NULL;
    pp = source_slot(d, &c->addr);
    if (*pp && --(*pp)->n == 0) {
        struct source_count *dead = *pp;
        *pp = dead->next;
        free(dead);
    }
    pthread_mutex_unlock(&d->conns_lock);
}

void sessions_bury(struct daemon *d)
{
    struct conn *c, *next;

    pthread_mutex_lock(&d->conns_lock);
    c = d->graveyard;
    d->graveyard = NULL;
    pthread_mutex_unlock(&d->conns_lock);
    for (; c; c = next) {
        next = c->next;
        tunnel_free(c->tun);
        if (c->tls)
            gnutls_deinit(c->tls);
        if (c->fd >= 0)
            close(c->fd);
        pthread_mutex_destroy(&c->lock);
        free(c->in);
        free(c->out);
        free(c);
    }
}

struct conn *sessions_conn_new(struct daemon *d, struct listener *l, int fd,
                             const struct sockaddr_storage *ss, bool count_source)
{
    struct source_count **pp;
    struct conn *c;

    pthread_mutex_lock(&d->conns_lock);
    pp = source_slot(d, ss);
    if (count_source && *pp && (*pp)->n >= l->max_per_source) {
        pthread_mutex_unlock(&d->conns_lock);
        return NULL;
    }
    if (!*pp) {
        *pp = calloc(1, sizeof(**pp));
        if (!*pp) {
            pthread_mutex_unlock(&d->conns_lock);
            return NULL;
        }
        (*pp)->addr = *ss;
    }
    c = calloc(1, sizeof(*c));
    if (!c) {
        pthread_mutex_unlock(&d->conns_lock);
        return NULL;
    }
    (*pp)->n++;
    c->id = ++d->next_id;
    c->next = d->conns;
    if (d->conns)
        d->conns->prev = c;
    d->conns = c;
    pthread_mutex_unlock(&d->conns_lock);

    c->d = d;
    c->forget = sessions_forget;
    c->l = l;
    c->fd = fd;
    c->addr = *ss;
    c->job.run = conn_run;
    c->role = -1;
    c->verdict = -1;
    atomic_init(&c->refs, 1);
    atomic_init(&c->kill, KILL_NONE);
    c->owner = OWNER_THREAD; /* the thread making it, until it hands c on */
    atomic_init(&c->state, CONN_HANDSHAKE);
    pthread_mutex_init(&c->lock, NULL);
    addr_format(ss, c->remote, sizeof(c->remote));
    c->since = time(NULL);
    atomic_init(&c->deadline, mono_ms() + 1000LL * l->handshake_timeout);
    atomic_fetch_add(&l->handshaking, 1);
    return c;
}

/*
 * Counts the sessions this sweep ended: a kill delivered, or one that raised
 * the reason of a kill already pending (an idle or kicked session that turns
 * out revoked). A session already ending as revoked is not counted again.
 * Our own uplinks are judged by the hub, not by our registry.
 */
int sessions_sweep(struct daemon *d, struct trustdb *t)
{
    time_t now = time(NULL);
    const char *why;
    int ended = 0;

    pthread_mutex_lock(&d->conns_lock);
    for (struct conn *c = d->conns; c; c = c->next) {
        /* Plain HTTP (the CRL distribution point) has no peer to judge. */
        if (atomic_load(&c->state) != CONN_OPEN || c->l == &d->upl || !c->tls)
            continue;
        /* No client certificate (EST with an invite code): nothing to
         * sweep; its handler judges the code. Without this, a simpleenroll
         * open across a tick was ended as "no longer enrolled". */
        if (!c->serial[0])
            continue;
        why = trust_judge(t, c, now);
        /* conn_kill is true only when this call ended it (or made its reason
         * revoked): one already being ended is neither logged nor counted. */
        if (why && conn_kill(c, KILL_REVOKED)) {
            log_info("peer %s serial %s from %s: session %llu ended: no longer trusted (%s)",
                     c->peer, c->serial, c->remote, (unsigned long long)c->id, why);
            ended++;
        }
    }
    pthread_mutex_unlock(&d->conns_lock);
    return ended;
}

/*
 * One reload at a time (the control socket's thread, the loop's watch and
 * SIGHUP, a slow task after a re-sign, the API): two loads racing could
 * install the older files last, and no change would come to undo that.
 * The last reloads are remembered with the CRL number each loaded, so that a
 * console that wrote CRL number N learns how many sessions its change ended,
 * whichever reload ended them (the watch's often comes before its request).
 */
#define RELOADS_KEPT 32
static pthread_mutex_t reload_lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
    uint64_t crl_number;
    int ended;
} reloads[RELOADS_KEPT];
static unsigned n_reloads;

int daemon_reload_trust(struct daemon *d, char *err, size_t errlen)
{
    struct trustdb *t = NULL, *old;
    int rc;

    if (!d->trust)
        return 0; /* no listeners: nothing judged here */
    pthread_mutex_lock(&reload_lock);
    rc = trustdb_load(d->pki, &t, err, errlen);
    /* Sibling issuers as their CRLs stand now (trust-fetch.c). */
    if (rc == 0 && (rc = trust_fetch_apply(d->tf, t)) < 0) {
        snprintf(err, errlen, "[trust] issuers: %s", strerror(-rc));
        trustdb_unref(t);
    }
    if (rc < 0)
        goto out;
    for (size_t i = 0; i < trustdb_n_ignored(t); i++)
        log_warn("%s", trustdb_ignored(t, i));
    /* Swapped before the sweep: a handshake that ends after the swap judges
     * itself by the new trust (daemon_untrusted), one that ended before it
     * is open and swept. */
    pthread_mutex_lock(&d->trust_lock);
    old = d->trust;
    d->trust = t;
    pthread_mutex_unlock(&d->trust_lock);
    trustdb_unref(old);
    /* The gate first: an opening of a peer no longer trusted, with or
     * without a session left, shuts now. */
    gate_sweep(d, t);
    rc = sessions_sweep(d, t);
    reloads[n_reloads % RELOADS_KEPT].crl_number = trustdb_crl_number(t);
    reloads[n_reloads % RELOADS_KEPT].ended = rc;
    n_reloads++;
out:
    pthread_mutex_unlock(&reload_lock);
    return rc;
}

int daemon_trust_ended_since(uint64_t crl_number)
{
    int ended = 0;

    pthread_mutex_lock(&reload_lock);
    for (unsigned i = 0; i < RELOADS_KEPT && i < n_reloads; i++)
        if (reloads[i].crl_number >= crl_number)
            ended += reloads[i].ended;
    pthread_mutex_unlock(&reload_lock);
    return ended;
}

int daemon_kick_id(struct daemon *d, uint64_t id)
{
    int rc = -ENOENT;

    pthread_mutex_lock(&d->conns_lock);
    for (struct conn *c = d->conns; c; c = c->next) {
        if (c->id == id && atomic_load(&c->state) != CONN_CLOSED)
            rc = conn_kill(c, KILL_KICKED) ? 1 : 0;
    }
    pthread_mutex_unlock(&d->conns_lock);
    return rc;
}

/*
 * Whether c is the peer `name`: a local peer's bare name, or ISSUER/NAME for
 * a [trust] issuer's peer. A sibling's bob is not this hub's bob. Under
 * conns_lock.
 */
static bool conn_is_peer(const struct conn *c, const char *name)
{
    const char *slash = strchr(name, '/');

    if (!slash)
        return !c->issuer[0] && strcmp(c->peer, name) == 0;
    return strlen(c->issuer) == (size_t)(slash - name) &&
           strncmp(c->issuer, name, (size_t)(slash - name)) == 0 &&
           strcmp(c->peer, slash + 1) == 0;
}

int daemon_kick_peer(struct daemon *d, const char *name)
{
    int rc = -ENOENT;

    pthread_mutex_lock(&d->conns_lock);
    for (struct conn *c = d->conns; c; c = c->next) {
        if (atomic_load(&c->state) == CONN_OPEN && conn_is_peer(c, name)) {
            if (rc < 0)
                rc = 0;
            if (conn_kill(c, KILL_KICKED))
                rc++;
        }
    }
    pthread_mutex_unlock(&d->conns_lock);
    return rc;
}

/* How long a new tunnel waits for the one it supersedes to be torn down: its
 * threads wake at once, and the parent removes its interface, routes and
 * firewall elements in one request; the new tunnel's routes would collide
 * with the old one's while it lives. */
#define SUPERSEDE_WAIT_MS 3000

int daemon_supersede(struct daemon *d, struct conn *c)
{
    struct conn *old[16];
    size_t n = 0;
    long long until = mono_ms() + SUPERSEDE_WAIT_MS;
    bool gone;

    pthread_mutex_lock(&d->conns_lock);
    for (struct conn *o = d->conns; o; o = o->next) {
        /* The same peer is the same (issuer, name): a roaming bob of hubA
         * does not end this hub's bob, nor the other way round. */
        if (o == c || o->l != c->l || o->id > c->id || atomic_load(&o->state) != CONN_OPEN ||
            strcmp(o->peer, c->peer) != 0 || strcmp(o->issuer, c->issuer) != 0)
            continue;
        if (conn_supersede(o, c->id))
            log_info("%s peer %s serial %s from %s: session %llu ended: superseded by "
                     "session %llu from %s",
                     o->l->name, o->peer, o->serial, o->remote, (unsigned long long)o->id,
                     (unsigned long long)c->id, c->remote);
        if (n < sizeof(old) / sizeof(old[0])) {
            conn_ref(o);
            old[n++] = o;
        }
    }
    pthread_mutex_unlock(&d->conns_lock);
    do {
        gone = true;
        for (size_t i = 0; i < n; i++)
            gone = gone && atomic_load(&old[i]->state) == CONN_CLOSED;
        if (!gone)
            nanosleep(&(struct timespec){.tv_nsec = 10 * 1000000L}, NULL);
    } while (!gone && mono_ms() < until);
    if (!gone)
        log_warn("%s peer %s: session %llu goes on while a superseded session of the peer "
                 "is still being torn down",
                 c->l->name, c->peer, (unsigned long long)c->id);
    for (size_t i = 0; i < n; i++)
        conn_unref(old[i]);
    return (int)n;
}

bool daemon_peer_online(struct daemon *d, const char *name)
{
    bool on = false;

    pthread_mutex_lock(&d->conns_lock);
    for (struct conn *c = d->conns; c && !on; c = c->next)
        on = atomic_load(&c->state) == CONN_OPEN && conn_is_peer(c, name);
    pthread_mutex_unlock(&d->conns_lock);
    return on;
}

/* ---- status, sessions, metrics ------------------------------------------ */

time_t sessions_gateway_not_after(struct daemon *d)
{
    gnutls_x509_crt_t crt = NULL;
    char err[256];
    time_t t = 0;
    const char *path = d->cfg->mgmt.cert ? d->cfg->mgmt.cert : d->pki->gw_path;

    if (pki_read_cert(path, &crt, err, sizeof(err)) == 0) {
        t = gnutls_x509_crt_get_expiration_time(crt);
        gnutls_x509_crt_deinit(crt);
    }
    return t;
}

/* Our uplinks (gwcert.c's array, one object per uplink): "server" the hub
 * each is on (HOST:PORT as configured), from the open sessions (uplink.c
 * names them after the uplink), null while none is up; "connected". */
static struct json_object *uplinks_json(struct daemon *d, struct json_object *arr)
{
    for (unsigned i = 0; arr && i < d->cfg->n_uplinks; i++) {
        const char *name = d->cfg->uplinks[i].name;
        struct json_object *o = json_object_array_get_idx(arr, i), *srv = NULL;
        if (!o)
            break;
        pthread_mutex_lock(&d->conns_lock);
        for (struct conn *c = d->conns; c && !srv; c = c->next)
            if (c->l == &d->upl && atomic_load(&c->state) == CONN_OPEN &&
                atomic_load(&c->kill) == KILL_NONE && strcmp(c->peer, name) == 0)
                srv = json_object_new_string(c->remote);
        pthread_mutex_unlock(&d->conns_lock);
        json_object_object_add(o, "connected", json_object_new_boolean(srv != NULL));
        json_object_object_add(o, "server", srv);
    }
    return arr;
}

struct json_object *daemon_status_json(struct daemon *d)
{
    struct json_object *o = json_object_new_object(), *tok, *ses, *days, *bans;
    struct trustdb *t = daemon_trust(d);
    time_t now = time(NULL);

    tok = json_object_new_object();
    json_object_object_add(tok, "uri", json_object_new_string(d->cfg->token.uri));
    json_object_object_add(tok, "healthy", json_object_new_boolean(atomic_load(&d->token_healthy)));
    ses = json_object_new_object();
    json_object_object_add(ses, "management", json_object_new_int((int)atomic_load(&d->mgmt.sessions)));
    json_object_object_add(ses, "tunnel", json_object_new_int((int)(atomic_load(&d->tunl.sessions) +
                                                                    atomic_load(&d->upl.sessions))));
    json_object_object_add(ses, "handshaking",
                           json_object_new_int((int)atomic_load(&d->mgmt.handshaking)));
    days = json_object_new_object();
    if (t) {
        json_object_object_add(days, "ca", json_object_new_int64(days_until(
                                               gnutls_x509_crt_get_expiration_time(trustdb_ca(t)), now)));
        json_object_object_add(days, "gateway",
                               json_object_new_int64(days_until(sessions_gateway_not_after(d), now)));
        json_object_object_add(days, "crl",
                               json_object_new_int64(days_until(trustdb_crl_next_update(t), now)));
    }
    json_object_object_add(o, "version", json_object_new_string(MTLSGW_VERSION));
    json_object_object_add(o, "uptime", json_object_new_int64((int64_t)(now - d->started)));
    json_object_object_add(o, "token", tok);
    json_object_object_add(o, "sessions", ses);
    json_object_object_add(o, "days_left", days);
    /* [trust NAME] issuers: whether each one's CRL is fresh (trust-fetch.c). */
    if (d->tf)
        json_object_object_add(o, "trust", trust_fetch_json(d->tf));
    /* A spoke: its own certificate and its hub's CA, per uplink. */
    if (d->cfg->n_uplinks)
        json_object_object_add(o, "uplinks", uplinks_json(d, gwcert_uplinks_json(d, now)));
    bans = json_object_new_object();
    json_object_object_add(bans, "banned", json_object_new_int64(bans_count(d->bans, mono_ms())));
    json_object_object_add(bans, "refused_total",
                           json_object_new_int64((int64_t)atomic_load(&d->banned_total)));
    json_object_object_add(o, "bans", bans);
    trustdb_unref(t);
    return o;
}

struct json_object *daemon_sessions_json(struct daemon *d)
{
    struct json_object *arr = json_object_new_array();
    char since[32];

    pthread_mutex_lock(&d->conns_lock);
    for (struct conn *c = d->conns; c; c = c->next) {
        struct json_object *o;
        if (atomic_load(&c->state) != CONN_OPEN || !c->tls) /* plain: no peer's session */
            continue;
        o = json_object_new_object();
        time_format_utc(c->since, since, sizeof(since));
        json_object_object_add(o, "id", json_object_new_int64((int64_t)c->id));
        json_object_object_add(o, "peer", json_object_new_string(c->peer));
        json_object_object_add(o, "role", json_object_new_string(role_name((enum peer_role)c->role)));
        json_object_object_add(o, "serial", json_object_new_string(c->serial));
        /* Who vouched: our own CA ("") or a [trust NAME] issuer. */
        if (c->issuer[0])
            json_object_object_add(o, "issuer", json_object_new_string(c->issuer));
        json_object_object_add(o, "remote", json_object_new_string(c->remote));
        json_object_object_add(o, "listener", json_object_new_string(c->l->name));
        json_object_object_add(o, "since", json_object_new_string(since));
        json_object_object_add(o, "bytes_in", json_object_new_int64((int64_t)atomic_load(&c->bytes_in)));
        json_object_object_add(o, "bytes_out", json_object_new_int64((int64_t)atomic_load(&c->bytes_out)));
        tunnel_describe(c, o);
        json_object_array_add(arr, o);
    }
    pthread_mutex_unlock(&d->conns_lock);
    return arr;
}

struct strbuf {
    char *p;
    size_t len, cap;
};

static void sb_printf(struct strbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(struct strbuf *b, const char *fmt, ...)
{
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if (b->len + (size_t)n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        char *np;
        while (cap < b->len + (size_t)n + 1)
            cap *= 2;
        np = realloc(b->p, cap);
        if (!np)
            return;
        b->p = np;
        b->cap = cap;
    }
    va_start(ap, fmt);
    vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

char *daemon_metrics(struct daemon *d)
{
    struct strbuf b = {0};
    struct listener *ls[] = {&d->mgmt, &d->tunl, &d->upl};
    struct trustdb *t = daemon_trust(d);
    const struct registry *reg = t ? trustdb_registry(t) : NULL;
    time_t now = time(NULL);

    sb_printf(&b, "# HELP mtlsgw_uptime_seconds Seconds since the daemon started.\n"
                  "# TYPE mtlsgw_uptime_seconds gauge\nmtlsgw_uptime_seconds %lld\n",
              (long long)(now - d->started));
    sb_printf(&b, "# HELP mtlsgw_token_healthy Whether the token answers.\n"
                  "# TYPE mtlsgw_token_healthy gauge\nmtlsgw_token_healthy %d\n",
              atomic_load(&d->token_healthy) ? 1 : 0);
    sb_printf(&b, "# HELP mtlsgw_sessions Established sessions.\n# TYPE mtlsgw_sessions gauge\n");
    for (size_t i = 0; i < 3; i++)
        sb_printf(&b, "mtlsgw_sessions{listener=\"%s\"} %u\n", ls[i]->name,
                  atomic_load(&ls[i]->sessions));
    sb_printf(&b, "# HELP mtlsgw_handshaking Connections in the TLS handshake.\n"
                  "# TYPE mtlsgw_handshaking gauge\n");
    for (size_t i = 0; i < 2; i++)
        sb_printf(&b, "mtlsgw_handshaking{listener=\"%s\"} %u\n", ls[i]->name,
                  atomic_load(&ls[i]->handshaking));
    sb_printf(&b, "# HELP mtlsgw_handshakes_total Handshakes by verdict.\n"
                  "# TYPE mtlsgw_handshakes_total counter\n");
    for (size_t i = 0; i < 2; i++) {
        for (int v = 0; v < VERDICT_COUNT; v++)
            sb_printf(&b, "mtlsgw_handshakes_total{listener=\"%s\",verdict=\"%s\"} %llu\n",
                      ls[i]->name, verdict_name((enum verdict_code)v),
                      atomic_load(&ls[i]->handshakes[v]));
        sb_printf(&b, "mtlsgw_handshakes_total{listener=\"%s\",verdict=\"tls-error\"} %llu\n",
                  ls[i]->name, atomic_load(&ls[i]->handshake_errors));
    }
    sb_printf(&b, "# HELP mtlsgw_banned_total Connections refused from banned addresses.\n"
                  "# TYPE mtlsgw_banned_total counter\nmtlsgw_banned_total %llu\n",
              atomic_load(&d->banned_total));
    sb_printf(&b, "# HELP mtlsgw_banned_addresses Addresses banned now (mtlsgw bans).\n"
                  "# TYPE mtlsgw_banned_addresses gauge\nmtlsgw_banned_addresses %u\n",
              bans_count(d->bans, mono_ms()));
    sb_printf(&b, "# HELP mtlsgw_bytes_total Application bytes.\n# TYPE mtlsgw_bytes_total counter\n");
    for (size_t i = 0; i < 3; i++)
        sb_printf(&b, "mtlsgw_bytes_total{listener=\"%s\",direction=\"in\"} %llu\n"
                      "mtlsgw_bytes_total{listener=\"%s\",direction=\"out\"} %llu\n",
                  ls[i]->name, atomic_load(&ls[i]->bytes_in), ls[i]->name,
                  atomic_load(&ls[i]->bytes_out));
    {
        char *u = udp_metrics(d); /* udp.c: per tunnel, which channel and its counters */
        if (u)
            sb_printf(&b, "%s", u);
        free(u);
    }
    sb_printf(&b, "# HELP mtlsgw_cert_days_left Days until a certificate or the CRL expires.\n"
                  "# TYPE mtlsgw_cert_days_left gauge\n");
    if (d->cfg->n_uplinks) {
        char *up = gwcert_uplinks_metrics(d, now);
        if (up)
            sb_printf(&b, "%s", up);
        free(up);
    }
    if (!t) {
        char *out = b.p;
        return out;
    }
    sb_printf(&b, "mtlsgw_cert_days_left{cert=\"ca\"} %lld\n",
              days_until(gnutls_x509_crt_get_expiration_time(trustdb_ca(t)), now));
    sb_printf(&b, "mtlsgw_cert_days_left{cert=\"gateway\"} %lld\n",
              days_until(sessions_gateway_not_after(d), now));
    sb_printf(&b, "mtlsgw_cert_days_left{cert=\"crl\"} %lld\n",
              days_until(trustdb_crl_next_update(t), now));
    for (size_t i = 0; i < registry_count(reg); i++) {
        const struct peer *p = registry_at(reg, i);
        if (p->status == PEER_ACTIVE)
            sb_printf(&b, "mtlsgw_cert_days_left{cert=\"peer:%s\"} %lld\n", p->name,
                      days_until((time_t)p->not_after, now));
    }
    /* One gauge each as well (after the family above: a family's samples
     * stay together), for alert rules that name the metric. */
    sb_printf(&b, "# HELP mtlsgw_ca_cert_days_left Days until the CA certificate expires.\n"
                  "# TYPE mtlsgw_ca_cert_days_left gauge\nmtlsgw_ca_cert_days_left %lld\n",
              days_until(gnutls_x509_crt_get_expiration_time(trustdb_ca(t)), now));
    sb_printf(&b, "# HELP mtlsgw_gateway_cert_days_left Days until the gateway certificate "
                  "expires.\n# TYPE mtlsgw_gateway_cert_days_left gauge\n"
                  "mtlsgw_gateway_cert_days_left %lld\n",
              days_until(sessions_gateway_not_after(d), now));
    sb_printf(&b, "# HELP mtlsgw_crl_days_left Days until the CRL's nextUpdate.\n"
                  "# TYPE mtlsgw_crl_days_left gauge\nmtlsgw_crl_days_left %lld\n",
              days_until(trustdb_crl_next_update(t), now));
    trustdb_unref(t);
    return b.p;
}

void sessions_free_books(struct daemon *d)
{
    for (int i = 0; i < 256; i++) {
        while (d->sources[i]) {
            struct source_count *s = d->sources[i];
            d->sources[i] = s->next;
            free(s);
        }
    }
}
