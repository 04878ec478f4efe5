/*
 * gate.c: the gate's book (gate.h). One book per session process, under one
 * lock that is also held across the parent's answer, so the kernel sees the
 * openings in the order the book made them. Lock order: conns_lock and
 * trust_lock are never held when the book's lock is taken, except
 * trust_lock briefly inside it (daemon_trust).
 */
#include "gate.h"

#include <arpa/inet.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "daemon.h"
#include "config.h"
#include "log.h"
#include "mono.h"
#include "privsep.h"
#include "registry.h"
#include "trust.h"
#include "trustdb.h"

/* Roles whose handshake opens the gate (docs/netconfig.md, "Who opens the
 * gate"): admins only. A monitor is a read-only NMS; SSH or a web UI behind
 * the gate is an administrator's door. */
#define GATE_ROLES VERIFY_ROLE(ROLE_ADMIN)

/* Addresses in the book: beyond this a new one is refused (and logged), not
 * an old one dropped. The parent has its own, larger cap. */
#define GATE_MAX_OPENINGS 1024
#define GATE_MAX_LIVE 4096

struct hold {
    char peer[64];
    char serial[64];
    long long until_ms; /* mono_ms(): gate-timeout after its last handshake */
    struct hold *next;
};

struct opening {
    char addr[INET6_ADDRSTRLEN];
    struct hold *holds;
    long long kernel_until_ms; /* when the kernel's element times out; 0: not there */
    struct opening *next;
};

static struct {
    pthread_mutex_t lock;
    struct opening *list;
    unsigned n;
    bool closed; /* gate_close_all ran */
} book = {.lock = PTHREAD_MUTEX_INITIALIZER};

static long long timeout_ms(const struct daemon *d)
{
    return 1000LL * d->cfg->fw.gate_timeout;
}

/* Three refreshes per gate-timeout (every second below 6 s), so that one
 * late or lost still leaves the element in place. */
static long long refresh_every_ms(const struct daemon *d)
{
    unsigned t = d->cfg->fw.gate_timeout;

    return 1000LL * (t >= 6 ? t / 3 : 1);
}

/* Why the holder with this serial may not hold the gate now (NULL: it may).
 * A superseded certificate lets go too: the renewed one opens again at its
 * next handshake. */
static const char *distrust(const struct trustdb *t, const char *serial, time_t now)
{
    const struct peer *p = t ? registry_find_serial(trustdb_registry(t), serial) : NULL;

    if (!p)
        return "no longer enrolled";
    if (p->status == PEER_REVOKED)
        return "revoked";
    if (p->status == PEER_SUPERSEDED)
        return "superseded";
    if (p->not_after <= now)
        return "certificate expired";
    if (!(GATE_ROLES & VERIFY_ROLE(p->role)))
        return "role changed";
    return NULL;
}

/* Ask the parent; under the book's lock. */
static int kernel(struct daemon *d, struct opening *o, uint32_t type, long long ms)
{
    struct ps_msg m = {.type = type};
    char err[PS_ERRLEN];
    int rc;

    snprintf(m.u.gate.addr, sizeof(m.u.gate.addr), "%s", o->addr);
    if (type == PS_GATE_OPEN) {
        if (ms < 1000)
            ms = 1000;
        if (ms > 86400000LL)
            ms = 86400000LL;
        m.u.gate.timeout_ms = (uint32_t)ms;
    }
    rc = ps_request(&m, NULL, err, sizeof(err));
    if (rc < 0) {
        log_err("gate %s for %s: %s", type == PS_GATE_OPEN ? "open" : "close", o->addr, err);
        return rc;
    }
    o->kernel_until_ms = type == PS_GATE_OPEN ? mono_ms() + ms : 0;
    return 0;
}

static void hold_drop(struct opening *o, struct hold **pp, const char *why)
{
    struct hold *h = *pp;

    log_info("management peer %s serial %s from %s: gate opening ended (%s)", h->peer,
             h->serial, o->addr, why);
    *pp = h->next;
    free(h);
}

/* Holders t no longer trusts let go (t NULL: no snapshot, nobody is trusted). */
static void drop_untrusted(struct opening *o, const struct trustdb *t, time_t now)
{
    const char *why;

    for (struct hold **pp = &o->holds; *pp;) {
        if ((why = distrust(t, (*pp)->serial, now)))
            hold_drop(o, pp, why);
        else
            pp = &(*pp)->next;
    }
}

/*
 * Make the kernel follow the book for o: expired holders go; no holder left:
 * close (o is freed, *pp moves on); a shorter time than the kernel has (the
 * longest holder let go): the element is set again with what is left; a
 * refresh due: set again with what the holders want.
 */
static void settle(struct daemon *d, struct opening **pp, long long now)
{
    struct opening *o = *pp;
    long long want = 0;

    for (struct hold **hp = &o->holds; *hp;) {
        if ((*hp)->until_ms <= now) {
            hold_drop(o, hp, "gate-timeout passed without a handshake");
            continue;
        }
        if ((*hp)->until_ms > want)
            want = (*hp)->until_ms;
        hp = &(*hp)->next;
    }
    if (!o->holds) {
        /* A close that fails stays in the book and is tried again next second. */
        if (kernel(d, o, PS_GATE_CLOSE, 0) == 0) {
            log_info("gate closed for %s", o->addr);
            *pp = o->next;
            book.n--;
            free(o);
        }
        return;
    }
    if (o->kernel_until_ms == 0 || want < o->kernel_until_ms - 1000 ||
        (want > o->kernel_until_ms &&
         o->kernel_until_ms - now <= timeout_ms(d) - refresh_every_ms(d)))
        kernel(d, o, PS_GATE_OPEN, want - now);
}

static void settle_all(struct daemon *d, const struct trustdb *t, bool check_trust,
                       long long now)
{
    time_t wall = time(NULL);

    for (struct opening **pp = &book.list; *pp;) {
        struct opening *o = *pp;
        if (check_trust)
            drop_untrusted(o, t, wall);
        settle(d, pp, now);
        if (*pp == o)
            pp = &o->next;
    }
}

static struct opening **find_opening(const char *addr)
{
    struct opening **pp = &book.list;

    while (*pp && strcmp((*pp)->addr, addr) != 0)
        pp = &(*pp)->next;
    return pp;
}

void gate_open(struct conn *c)
{
    struct daemon *d = c->d;
    struct opening **pp, *o;
    struct hold *h;
    struct trustdb *t = NULL;
    const char *why = NULL;
    char addr[INET6_ADDRSTRLEN];
    long long now;

    if (d->cfg->fw.n_gate == 0 || !ps_client_ready() || c->l != &d->mgmt)
        return;
    if (c->role < 0 || !(GATE_ROLES & VERIFY_ROLE((unsigned)c->role))) {
        log_debug("management peer %s serial %s from %s: role %s does not open the gate",
                  c->peer, c->serial, c->remote, role_name((enum peer_role)c->role));
        return;
    }
    conn_ip(c, addr, sizeof(addr));
    {
        uint8_t a[16];
        int fam = strchr(addr, ':') ? AF_INET6 : AF_INET;
        /* gate4/gate6 key on the address alone: a link-scoped one would
         * open the service to its namesake on every other link. */
        if (inet_pton(fam, addr, a) != 1 || ps_addr_scoped(fam, a)) {
            log_warn("management peer %s serial %s from %s: gate not opened (link-scoped "
                     "address; connect over a global or unique-local one)", c->peer,
                     c->serial, addr);
            return;
        }
    }
    pthread_mutex_lock(&book.lock);
    /* Judged again under the lock: a revocation whose sweep ran between the
     * handshake's verdict and here must not be undone. */
    t = daemon_trust(d);
    if (book.closed || (why = distrust(t, c->serial, time(NULL)))) {
        if (!book.closed)
            log_info("management peer %s serial %s from %s: gate not opened (%s)", c->peer,
                     c->serial, addr, why);
        goto out;
    }
    now = mono_ms();
    pp = find_opening(addr);
    if (!*pp) {
        if (book.n >= GATE_MAX_OPENINGS) {
            log_warn("management peer %s from %s: gate not opened: %u addresses open already",
                     c->peer, addr, book.n);
            goto out;
        }
        if (!(*pp = calloc(1, sizeof(**pp))))
            goto out;
        snprintf((*pp)->addr, sizeof((*pp)->addr), "%s", addr);
        book.n++;
    }
    o = *pp;
    for (h = o->holds; h && strcmp(h->serial, c->serial) != 0; h = h->next)
        ;
    if (!h) {
        if (!(h = calloc(1, sizeof(*h)))) {
            settle(d, pp, now);
            goto out;
        }
        snprintf(h->peer, sizeof(h->peer), "%s", c->peer);
        snprintf(h->serial, sizeof(h->serial), "%s", c->serial);
        h->next = o->holds;
        o->holds = h;
        log_info("management peer %s serial %s from %s: gate opened for %u s", c->peer,
                 c->serial, addr, d->cfg->fw.gate_timeout);
    }
    h->until_ms = now + timeout_ms(d);
    /* Every handshake renews the element, unless one did within the second. */
    if (o->kernel_until_ms < h->until_ms - 1000)
        kernel(d, o, PS_GATE_OPEN, timeout_ms(d));
out:
    pthread_mutex_unlock(&book.lock);
    trustdb_unref(t);
}

void gate_sweep(struct daemon *d, struct trustdb *t)
{
    pthread_mutex_lock(&book.lock);
    settle_all(d, t, true, mono_ms());
    pthread_mutex_unlock(&book.lock);
}

struct live {
    char serial[64];
    char addr[INET6_ADDRSTRLEN];
};

void gate_refresh(struct daemon *d)
{
    struct live *live = NULL;
    struct trustdb *t;
    size_t n = 0, cap = 0;
    bool empty;
    long long now;

    pthread_mutex_lock(&book.lock);
    empty = book.list == NULL;
    pthread_mutex_unlock(&book.lock);
    if (empty)
        return;
    /* The live admin sessions, copied out: the book's lock is never taken
     * under conns_lock. */
    pthread_mutex_lock(&d->conns_lock);
    for (struct conn *c = d->conns; c && n < GATE_MAX_LIVE; c = c->next) {
        if (c->l != &d->mgmt || atomic_load(&c->state) != CONN_OPEN ||
            atomic_load(&c->kill) != KILL_NONE || c->role < 0 ||
            !(GATE_ROLES & VERIFY_ROLE((unsigned)c->role)))
            continue;
        if (n == cap) {
            size_t ncap = cap ? 2 * cap : 16;
            struct live *nl = realloc(live, ncap * sizeof(*nl));
            if (!nl)
                break;
            live = nl;
            cap = ncap;
        }
        snprintf(live[n].serial, sizeof(live[n].serial), "%s", c->serial);
        conn_ip(c, live[n].addr, sizeof(live[n].addr));
        n++;
    }
    pthread_mutex_unlock(&d->conns_lock);

    t = daemon_trust(d);
    pthread_mutex_lock(&book.lock);
    now = mono_ms();
    for (size_t i = 0; i < n; i++) {
        struct opening *o = *find_opening(live[i].addr);
        for (struct hold *h = o ? o->holds : NULL; h; h = h->next)
            if (strcmp(h->serial, live[i].serial) == 0)
                h->until_ms = now + timeout_ms(d);
    }
    /* Untrusted holders go (a live session of a revoked peer renews nothing:
     * its kill may still be on its way); with the same now, a renewed
     * holder's element is set to gate-timeout exactly. */
    settle_all(d, t, true, now);
    pthread_mutex_unlock(&book.lock);
    trustdb_unref(t);
    free(live);
}

void gate_close_all(struct daemon *d)
{
    unsigned n = 0;

    pthread_mutex_lock(&book.lock);
    book.closed = true;
    for (struct opening *o = book.list; o; o = o->next) {
        while (o->holds)
            hold_drop(o, &o->holds, "daemon stopping");
        n++;
    }
    settle_all(d, NULL, false, mono_ms());
    if (book.list)
        log_err("gate: %u of %u opening(s) could not be closed; the parent removes them",
                book.n, n);
    pthread_mutex_unlock(&book.lock);
}
