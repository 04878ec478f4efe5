/*
 * server.c: the session process's main loop: listeners, signals, the tick,
 * handing ready connections to the pools, and daemon-wide state that the
 * API and the control socket read.
 */
/* accept4, SO_PEERCRED/struct ucred: Linux interfaces musl and glibc both
 * declare only under _GNU_SOURCE. */
#define _GNU_SOURCE
#include "daemon.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stddef.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>
#include <syslog.h>
#include <unistd.h>

#ifdef __GLIBC__
#include <malloc.h> /* malloc_trim, mallopt */
#endif

#include <json-c/json.h>

#include "bans.h"
#include "build-config.h"
#include "privsep.h"
#include "config.h"
#include "crl-http.h"
#include "config-diff.h"
#include "gate.h"
#include "gwcert.h"
#include "addr.h"
#include "log.h"
#include "mono.h"
#include "p11.h"
#include "pki.h"
#include "pool.h"
#include "registry.h"
#include "sessions.h"
#include "service.h"
#include "tls.h"
#include "trust-fetch.h"
#include "trustdb.h"
#include "udp.h"
#include "uplink.h"
#include "verify.h"
#include "watch.h"

/* epoll data for the fds that are not connections */
static char tag_wake, tag_signal, tag_timer, tag_watch;
#define WATCH_GATEWAY_CRT (1u << 2)

#define SLOW_THREADS 4

/* Where a listener's limits come from in the config. */
enum listener_section {
    SECTION_MANAGEMENT, /* [management] */
    SECTION_TUNNEL,     /* [tunnel]: no body limit, keepalives instead of idle */
    SECTION_ENROLL,     /* [management]'s limits, 60 s idle ([enroll] has none) */
    SECTION_CRL,        /* fixed small bounds (daemon.h: CRL_*) */
};

/*
 * The listeners the session process serves, one row each: where the
 * listener lives in struct daemon, the socket the parent made for it, the
 * roles it admits, its config section, its ALPN and what its connections
 * get (service.h). Every listener presents the gateway's certificate
 * ([management] cert, or the pki dir's); the row's service says whether a
 * client certificate is required. Our uplinks (d->upl) are no listener:
 * they have no socket and are set up by tunnel.c.
 */
static const struct listener_row {
    const char *name;
    size_t at;    /* offsetof(struct daemon, the listener) */
    size_t fd_at; /* offsetof(struct daemon_fds, its socket) */
    unsigned roles;
    enum listener_section section;
    const char *alpn;
    const struct service *svc;
} listeners[] = {
    {"management", offsetof(struct daemon, mgmt), offsetof(struct daemon_fds, mgmt),
     VERIFY_ROLE(ROLE_ADMIN) | VERIFY_ROLE(ROLE_MONITOR), SECTION_MANAGEMENT, NULL,
     &service_management},
    {"tunnel", offsetof(struct daemon, tunl), offsetof(struct daemon_fds, tunnel),
     VERIFY_ROLE(ROLE_TUNNEL), SECTION_TUNNEL, MTLSGW_ALPN, &service_tunnel},
    {"enroll", offsetof(struct daemon, estl), offsetof(struct daemon_fds, enroll),
     VERIFY_ROLE(ROLE_ADMIN) | VERIFY_ROLE(ROLE_MONITOR) | VERIFY_ROLE(ROLE_TUNNEL),
     SECTION_ENROLL, NULL, &service_enroll},
    {"crl", offsetof(struct daemon, crll), offsetof(struct daemon_fds, crl), 0, SECTION_CRL,
     NULL, &service_crl},
};
#define N_LISTENERS (sizeof(listeners) / sizeof(listeners[0]))

static struct listener *listener_at(struct daemon *d, size_t i)
{
    return (struct listener *)((char *)d + listeners[i].at);
}

static int listener_fd(const struct daemon_fds *fds, size_t i)
{
    return *(const int *)((const char *)fds + listeners[i].fd_at);
}

/* True when p (an epoll tag) is one of the listeners. */
static bool is_listener(struct daemon *d, const void *p)
{
    for (size_t i = 0; i < N_LISTENERS; i++)
        if (p == listener_at(d, i))
            return true;
    return false;
}

/* EST takes a client certificate when there is one; the others require it. */
static bool cert_optional(size_t i)
{
    return listeners[i].svc->verify == SVC_CERT_FOR_HANDLER;
}

static void listener_init(struct daemon *d, size_t i, const struct config *cfg)
{
    const struct listener_row *r = &listeners[i];
    struct listener *l = listener_at(d, i);

    l->name = r->name;
    l->svc = r->svc;
    l->allowed_roles = r->roles;
    l->fd = -1;
    switch (r->section) {
    case SECTION_TUNNEL:
        l->handshake_timeout = cfg->tunnel.handshake_timeout;
        l->idle_timeout = 0; /* tunnels have keepalives instead */
        l->max_sessions = cfg->tunnel.max_sessions;
        l->max_per_source = cfg->tunnel.max_per_source;
        break;
    case SECTION_MANAGEMENT:
    case SECTION_ENROLL:
        l->handshake_timeout = cfg->mgmt.handshake_timeout;
        l->idle_timeout = r->section == SECTION_ENROLL ? 60 : cfg->mgmt.idle_timeout;
        l->max_sessions = cfg->mgmt.max_sessions;
        l->max_per_source = cfg->mgmt.max_per_source;
        l->max_body = cfg->mgmt.max_body;
        break;
    case SECTION_CRL: /* GET and HEAD: a request is its head (16 KiB at most, conn.c) */
        l->handshake_timeout = l->idle_timeout = CRL_IDLE_TIMEOUT;
        l->max_sessions = CRL_MAX_SESSIONS;
        l->max_per_source = CRL_MAX_PER_SOURCE;
        l->max_body = 256;
        break;
    }
}

/*
 * A connection refused at accept: read what the client already sent (its
 * ClientHello, so that close() sends a FIN and not a reset), answer with a
 * plaintext fatal TLS alert (allowed before the handshake: no keys yet; a
 * TLS 1.3 client takes it as it takes a ServerHello's record version,
 * 0x0303), close. Over a limit (max-sessions, max-per-source):
 * internal_error, as a server out of resources. Banned: access_denied
 * (RFC 8446 6.2: "when access control was applied, the sender decided not
 * to proceed"), which clients print as such.
 */
static void refuse(int fd, unsigned char alert_desc)
{
    unsigned char alert[] = {0x15, 0x03, 0x03, 0x00, 0x02, 0x02, alert_desc};
    char junk[2048];
    ssize_t n;

    for (int i = 0; i < 8 && (n = recv(fd, junk, sizeof(junk), MSG_DONTWAIT)) > 0; i++)
        ;
    n = send(fd, alert, sizeof(alert), MSG_DONTWAIT | MSG_NOSIGNAL);
    (void)n;
    shutdown(fd, SHUT_WR);
    close(fd);
}

/* Refusals are logged at most once a second per listener, with a count:
 * a flood must not become a flood of log lines. Main thread only. */
static void log_refusal(struct listener *l, const char *remote, const char *why)
{
    long long now = mono_ms();

    l->refused++;
    if (now - l->refused_logged_ms < 1000)
        return;
    if (l->refused > 1)
        log_warn("%s: %s refused: %s (%u refused since the last such line)", l->name, remote,
                 why, l->refused);
    else
        log_warn("%s: %s refused: %s", l->name, remote, why);
    l->refused = 0;
    l->refused_logged_ms = now;
}

/* Out of file descriptors: stop accepting until the next tick instead of
 * spinning on a listener that stays readable. Main thread only. */
static void pause_listener(struct daemon *d, struct listener *l, int err)
{
    struct epoll_event ev = {.events = 0, .data.ptr = l};

    if (l->paused)
        return;
    if (epoll_ctl(d->epfd, EPOLL_CTL_MOD, l->fd, &ev) == 0)
        l->paused = true;
    log_warn("%s: accept: %s: not accepting for a second (raise the open files limit, or "
             "lower max-sessions)",
             l->name, strerror(err));
}

static void resume_listeners(struct daemon *d)
{
    for (size_t i = 0; i < N_LISTENERS; i++) {
        struct listener *l = listener_at(d, i);
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = l};
        if (l->paused && epoll_ctl(d->epfd, EPOLL_CTL_MOD, l->fd, &ev) == 0)
            l->paused = false;
    }
}

/* Accepts one connection; false when there is none left to take now. */
static bool accept_one(struct daemon *d, struct listener *l)
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    struct conn *c = NULL;
    char remote[64];
    unsigned total;
    int fd, rc;
    struct epoll_event ev = {0};

    if (l->paused)
        return false;
    fd = accept4(l->fd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
        if (errno == EINTR || errno == ECONNABORTED)
            return true; /* that one is gone; there may be more */
        if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)
            pause_listener(d, l, errno);
        else if (errno != EAGAIN)
            log_warn("%s: accept: %s", l->name, strerror(errno));
        return false;
    }
    addr_format(&ss, remote, sizeof(remote));
    total = atomic_load(&l->sessions) + atomic_load(&l->handshaking);
    if (total >= l->max_sessions) {
        char why[64];
        snprintf(why, sizeof(why), "%u connections (max-sessions)", total);
        log_refusal(l, remote, why);
        refuse(fd, GNUTLS_A_INTERNAL_ERROR);
        return true;
    }
    if (bans_check(d->bans, &ss, mono_ms())) {
        /* The ban itself is logged once when it starts (sessions_auth_failed). */
        atomic_fetch_add(&d->banned_total, 1);
        log_debug("%s: %s refused: banned", l->name, remote);
        refuse(fd, GNUTLS_A_ACCESS_DENIED);
        return true;
    }
    c = sessions_conn_new(d, l, fd, &ss, true);
    if (!c) {
        log_debug("%s: %s refused: max-per-source (%u) reached", l->name, remote,
                  l->max_per_source);
        refuse(fd, GNUTLS_A_INTERNAL_ERROR);
        return true;
    }
    pthread_rwlock_rdlock(&d->token_lock);
    rc = l->tls ? tls_session_new(l->tls, fd, c, &c->tls) : 0; /* no TLS: plain HTTP */
    pthread_rwlock_unlock(&d->token_lock);
    if (rc < 0) {
        log_err("%s: %s: cannot make a TLS session", l->name, remote);
        atomic_fetch_sub(&l->handshaking, 1);
        atomic_store(&c->state, CONN_CLOSED);
        sessions_forget(c);
        conn_unref(c);
        return true;
    }
    /* On the list already, so a kill (shutdown) may have come: then come
     * back at once (daemon.h, enum conn_owner). */
    pthread_mutex_lock(&c->lock);
    c->owner = OWNER_LOOP;
    ev.events = EPOLLIN | EPOLLONESHOT | EPOLLRDHUP |
                (atomic_load(&c->kill) != KILL_NONE ? EPOLLOUT : 0);
    ev.data.ptr = c;
    rc = epoll_ctl(d->epfd, EPOLL_CTL_ADD, fd, &ev);
    if (rc < 0)
        c->owner = OWNER_THREAD;
    pthread_mutex_unlock(&c->lock);
    if (rc < 0) {
        log_err("%s: epoll: %s", l->name, strerror(errno));
        atomic_fetch_sub(&l->handshaking, 1);
        atomic_store(&c->state, CONN_CLOSED);
        sessions_forget(c);
        conn_unref(c);
    }
    return true;
}

static void dispatch(struct daemon *d, struct conn *c)
{
    if (!conn_take(c))
        return; /* stale: someone else owns it, or it is gone */
    if (atomic_load(&c->state) == CONN_HANDSHAKE || c->slow_pending)
        workers_submit(d->slow, &c->job);
    else
        workers_submit(d->io, &c->job);
}

/*
 * A change to the registry or the CRL seen by the watch (docs/mtlsgwd.md,
 * "Watching the registry and the CRL"), whoever wrote it; a writer that
 * holds the pki dir's lock (mtlsgw, here or at the console) is waited for,
 * so its CRL and registry are read together. The reload runs
 * here, on the loop, as SIGHUP's does: trustdb_load reads and parses three
 * files and checks the CRL's signature with the CA's public key, no token
 * involved (json-c: 1 ms for 100 peers, 20 ms for 1,000, 115 ms for 5,000
 * on the test VM); tunnels move packets on threads of their own and open
 * sessions work on the io pool, so only accepting waits that long.
 */
static void watch_apply(struct daemon *d, struct watch *w, const char *const *names)
{
    unsigned which = watch_changed(w);
    char what[96] = "", err[512] = "";
    int rc;

    if (!which)
        return;
    for (size_t i = 0; names[i]; i++)
        if (which & 1u << i)
            snprintf(what + strlen(what), sizeof(what) - strlen(what), "%s%s",
                     what[0] ? " and " : "", names[i]);
    rc = daemon_reload_trust(d, err, sizeof(err));
    watch_release(w); /* the pki dir's writers wait for it while we read */
    if (rc < 0)
        log_err("%s changed: reload failed, keeping the previous state: %s", what, err);
    else
        log_info("%s changed: reloaded trust, %d session(s) ended", what, rc);
    /* On the slow pool: the reload takes pki_lock and token_lock, which
     * an enrollment or a slow token may hold for long. */
    if (which & WATCH_GATEWAY_CRT)
        gwcert_reload_later(d);
}

/* ---- the tick: timeouts, CRL, expiry warnings --------------------------- */

static int load_server_key(struct daemon *d, gnutls_privkey_t *key, char *err, size_t errlen);
static int listener_tls(struct daemon *d, struct listener *l, const char *alpn,
                        bool cert_optional, struct tls_server **out, char *err, size_t errlen);

/*
 * The token went away and may be back: start PKCS#11 over and load every key
 * again, with all token use held off (the write side of token_lock). Sessions
 * and tunnels already open do not use the token and go on. Under pki_lock.
 */
static bool token_recover(struct daemon *d)
{
    char err[512] = "";
    bool ok = true;

    pthread_rwlock_wrlock(&d->token_lock);
    if (p11_token_reinit(d->pki->tok) < 0) {
        log_debug("token %s: still away: %s", d->cfg->token.uri, p11_token_error(d->pki->tok));
        ok = false;
        goto out;
    }
    /* The CA key is loaded again on its next use. */
    if (d->pki->ca_key) {
        gnutls_privkey_deinit(d->pki->ca_key);
        d->pki->ca_key = NULL;
        gnutls_x509_crt_deinit(d->pki->ca);
        d->pki->ca = NULL;
    }
    for (size_t i = 0; i < N_LISTENERS; i++) {
        struct listener *l = listener_at(d, i);
        struct tls_server *fresh = NULL;
        if (!l->tls)
            continue;
        if (listener_tls(d, l, listeners[i].alpn, cert_optional(i), &fresh, err,
                         sizeof(err)) < 0) {
            log_err("token %s is back, but the %s listener's key is not: %s",
                    d->cfg->token.uri, l->name, err);
            ok = false;
            continue;
        }
        /* Open sessions still point at the old credentials: keep them. */
        if (d->n_retired < 64)
            d->retired[d->n_retired++] = l->tls;
        l->tls = fresh;
    }
    if (uplinks_reload_keys(d, err, sizeof(err)) < 0) {
        log_err("token %s is back, but an uplink's key is not: %s", d->cfg->token.uri, err);
        ok = false;
    }
out:
    pthread_rwlock_unlock(&d->token_lock);
    return ok;
}

struct slow_task {
    struct job job;
    struct daemon *d;
    int kind;
};

enum { TASK_CRL = 1, TASK_TOKEN_CHECK, TASK_GATE, TASK_KINDS };
/*
 * One task of each kind at a time, each kind on its own: a token check that
 * hangs on a slow or vanished token must not hold back the gate's refresh
 * (the firewall would shut an administrator out mid-session) or the CRL.
 */
static atomic_bool task_busy[TASK_KINDS];

static void slow_task_run(struct job *job)
{
    struct slow_task *t = (struct slow_task *)job;
    struct daemon *d = t->d;
    int kind = t->kind;
    char err[512] = "";
    int rc;

    if (t->kind == TASK_CRL) {
        pthread_mutex_lock(&d->pki_lock);
        pthread_rwlock_rdlock(&d->token_lock);
        rc = pki_crl_resign(d->pki, err, sizeof(err));
        pthread_rwlock_unlock(&d->token_lock);
        if (rc < 0)
            log_err("CRL %s: re-signing failed: %s", d->pki->crl_path, err);
        else
            log_info("CRL %s re-signed", d->pki->crl_path);
        pthread_mutex_unlock(&d->pki_lock);
        if (daemon_reload_trust(d, err, sizeof(err)) < 0)
            log_err("reload after CRL re-sign: %s", err);
    } else if (t->kind == TASK_GATE) {
        gate_refresh(d);
    } else if (t->kind == TASK_TOKEN_CHECK) {
        bool ok, was = atomic_load(&d->token_healthy);
        pthread_mutex_lock(&d->pki_lock);
        pthread_rwlock_rdlock(&d->token_lock);
        ok = was && p11_token_healthy(d->pki->tok);
        pthread_rwlock_unlock(&d->token_lock);
        if (!ok)
            ok = token_recover(d);
        pthread_mutex_unlock(&d->pki_lock);
        if (ok != was)
            (ok ? log_info : log_err)("token %s: %s", d->cfg->token.uri,
                                      ok ? "answers again; keys loaded again"
                                         : "does not answer: new handshakes fail, open "
                                           "sessions and tunnels go on");
        atomic_store(&d->token_healthy, ok);
    }
    free(t);
    atomic_store(&task_busy[kind], false);
}

static void submit_task(struct daemon *d, int kind)
{
    struct slow_task *t;

    if (atomic_exchange(&task_busy[kind], true))
        return; /* the last one of this kind is still running */
    t = calloc(1, sizeof(*t));
    if (!t) {
        atomic_store(&task_busy[kind], false);
        return;
    }
    t->job.run = slow_task_run;
    t->d = d;
    t->kind = kind;
    workers_submit(d->slow, &t->job);
}

/* Warn once per threshold crossed (30, 7, 1 days) per certificate slot. */
static void warn_expiry(struct daemon *d, int slot, const char *what, time_t not_after,
                        time_t now)
{
    /* The CA from 180 days on: its successor (mtlsgw ca rollover) needs
     * the time for every peer to renew before the old one ends. */
    static const int marks[] = {30, 7, 1}, ca_marks[] = {180, 90, 30, 7, 1};
    const int *m = slot == 0 ? ca_marks : marks;
    int n = slot == 0 ? 5 : 3;
    long long left = days_until(not_after, now);

    for (int i = n - 1; i >= 0; i--) {
        if (left < m[i] && (d->warned_days[slot] == 0 || d->warned_days[slot] > m[i])) {
            if (left < 0 && slot == 0)
                log_err("%s expired %lld days ago: every peer it issued is refused; make a "
                        "new CA (mtlsgw init --force) and enroll the peers again",
                        what, -left);
            else if (left < 0)
                log_err("%s expired %lld days ago", what, -left);
            else
                log_warn("%s expires in %lld days (%s)", what, left,
                         slot == 0 ? "every peer is refused from then on: make its "
                                     "successor now, without a flag day: mtlsgw ca rollover"
                         : slot == 1 ? "renew it: mtlsgw gateway renew, or [pki] auto-renew "
                                       "= yes"
                                     : "renew it");
            d->warned_days[slot] = m[i];
            return;
        }
    }
}

/*
 * After a load has gone (256 or more connections fewer than at the last
 * high-water mark, and the count steady for a tick), hand freed memory back
 * to the kernel. glibc keeps freed
 * chunks in each thread's arena and trims only the top of a heap, so without
 * this a flood of connections would leave its peak RSS behind for good
 * (tests/interop/load.sh). musl's allocator returns memory by itself.
 * Main thread only.
 */
static void trim_after_load(struct daemon *d)
{
    static unsigned high, last;
    unsigned now = 0;

    for (size_t i = 0; i < N_LISTENERS; i++)
        now += atomic_load(&listener_at(d, i)->sessions) +
               atomic_load(&listener_at(d, i)->handshaking);

    unsigned prev = last;

    last = now;
    if (now > high)
        high = now;
    /* Once the count has settled (no change for a tick): trimming halfway
     * through a drop would leave the rest behind. */
    if (high - now < 256 || now != prev)
        return;
    high = now;
#ifdef __GLIBC__
    malloc_trim(0);
#endif
}

/*
 * glibc trims a thread's heap whenever a free leaves more than 128 KiB free at
 * its top: an madvise() and a TLB shootdown across the CPUs, many times a
 * second under a handshake load (perf: 5 to 10 % of the CPU of a resumed
 * handshake, docs/performance.md). With a higher threshold the pools reuse
 * that memory, and what a load leaves behind goes back in one malloc_trim()
 * once it is over (trim_after_load). musl has no such knob and needs none.
 */
static void malloc_tune(void)
{
#ifdef __GLIBC__
    mallopt(M_TRIM_THRESHOLD, 4 << 20);
#endif
}

/* A superseded serial whose overlap (mtlsgw reissue --overlap) ended
 * after the CRL's thisUpdate: the CRL does not list it yet. */
static bool overlap_ended(const struct registry *reg, time_t crl_this_update, time_t now)
{
    for (size_t i = 0; i < registry_count(reg); i++) {
        const struct peer *p = registry_at(reg, i);
        if (p->status == PEER_SUPERSEDED && p->revoked_at > (int64_t)crl_this_update &&
            p->revoked_at <= (int64_t)now)
            return true;
    }
    return false;
}

/*
 * A hub that publishes its CRL ([crl] listen or [pki] crl-url) re-signs it
 * every [crl] resign seconds: the hubs that trust it count freshness from
 * its thisUpdate, so that a path attacker replaying it, or answering 304,
 * holds a revocation back for their max-stale at most (docs/pki.md). One
 * small atomic write each time (crl.pem, the number in registry.json, an
 * audit line). Checked every second, tried at most once per min(resign,
 * 60) s while it fails (a token that is away).
 */
static void crl_resign_due(struct daemon *d, struct trustdb *t, time_t now, long long mnow)
{
    static long long next_try_ms;
    time_t tu = trustdb_crl_this_update(t);
    unsigned every = d->cfg->crl.resign;

    if (!(d->cfg->crl.listen || d->cfg->pki.crl_url) || !every || tu <= 0 ||
        now - tu < (time_t)every || mnow < next_try_ms)
        return;
    next_try_ms = mnow + 1000LL * (every < 60 ? every : 60);
    submit_task(d, TASK_CRL);
}

static void tick(struct daemon *d, unsigned long long n)
{
    time_t now = time(NULL);
    long long mnow = mono_ms();
    struct trustdb *t;

    pthread_mutex_lock(&d->conns_lock);
    for (struct conn *c = d->conns; c; c = c->next) {
        int st = atomic_load(&c->state);
        /* Tunnels have keepalives, not an idle deadline (their listener's
         * idle timeout is 0, so the deadline would be "now"): an open tunnel
         * connection is never idle, also not while its tunnel is being set
         * up. Their handshakes keep the handshake deadline. */
        if (st == CONN_CLOSED ||
            (st == CONN_OPEN && (c->l == &d->tunl || c->l == &d->upl)) ||
            mnow < atomic_load(&c->deadline))
            continue;
        conn_kill(c, st == CONN_HANDSHAKE ? KILL_TIMEOUT : KILL_IDLE);
    }
    pthread_mutex_unlock(&d->conns_lock);

    resume_listeners(d);
    trim_after_load(d);
    if (n % 30 == 0)
        bans_expire(d->bans, d->cfg->daemon.ban_time, mnow);
    if (n % 5 == 0)
        submit_task(d, TASK_TOKEN_CHECK);
    /* The gate's book every second: openings past gate-timeout or of peers
     * whose certificate ran out close; the kernel's elements are refreshed
     * three times per gate-timeout (gate.c). */
    if (d->cfg->fw.n_gate)
        submit_task(d, TASK_GATE);
    /* Every second: sessions whose certificate (or CA) ran out end within a
     * second of its notAfter. Cheap: one walk of the open connections with
     * a binary-search lookup of each serial in the registry's index. */
    t = daemon_trust(d);
    if (!t)
        return;
    sessions_sweep(d, t);
    crl_resign_due(d, t, now, mnow);
    if (n % 60 != 1) {
        trustdb_unref(t);
        return;
    }
    /* Once a minute: the CRL, warnings. */
    {
        time_t tu = trustdb_crl_this_update(t), nu = trustdb_crl_next_update(t);
        /* Re-sign when a third of the CRL's validity is left, or when a
         * reissue's overlap ended since it was signed (the old serial goes
         * on it now: relying parties that read only the CRL). */
        if ((nu > 0 && now >= nu - (nu - tu) / 3) ||
            (tu > 0 && overlap_ended(trustdb_registry(t), tu, now)))
            submit_task(d, TASK_CRL);
        warn_expiry(d, 0, "CA certificate", gnutls_x509_crt_get_expiration_time(trustdb_ca(t)),
                    now);
        warn_expiry(d, 1, "gateway certificate", sessions_gateway_not_after(d), now);
        gwcert_tick(d);
        /* The CRL is re-signed above long before it runs out; a failure to
         * do so is logged by the re-sign task itself. */
    }
    {
        const struct registry *reg = trustdb_registry(t);
        int slot = 3;
        for (size_t i = 0; i < registry_count(reg) && slot < 64; i++) {
            const struct peer *p = registry_at(reg, i);
            char what[96];
            if (p->status != PEER_ACTIVE)
                continue;
            snprintf(what, sizeof(what), "certificate of peer %s", p->name);
            warn_expiry(d, slot++, what, (time_t)p->not_after, now);
        }
    }
    trustdb_unref(t);
}

/*
 * SIGHUP: parse into a new config, keep the running one when it has errors,
 * apply what can change in place (limits, timeouts, log level, lifetimes),
 * and say which changes need a restart (sockets, token, uplinks).
 */
static void reload_config(struct daemon *d)
{
    struct config *n = NULL, *o = d->cfg;
    char *errors = NULL, changed[1024];

    if (config_load(o->path, &n, &errors) < 0) {
        char head[512];
        snprintf(head, sizeof(head), "%s has errors; keeping the running config:", o->path);
        log_lines(LOG_ERR, head, errors ? errors : "out of memory");
        free(errors);
        return;
    }
    /* Each key by name: the admin must know which edit waits for a restart. */
    if (config_restart_diff(o, n, changed, sizeof(changed)) > 0)
        log_warn("%s: reloaded, but %s changed, which take effect only with a restart of "
                 "mtlsgwd (the running values stay until then); the other changes apply now",
                 o->path, changed);
    else
        log_info("%s: reloaded", o->path);
    /* Plain numbers: written whole, read by the workers without a lock. */
    o->mgmt.max_body = d->mgmt.max_body = n->mgmt.max_body;
    o->mgmt.max_sessions = d->mgmt.max_sessions = n->mgmt.max_sessions;
    o->mgmt.max_per_source = d->mgmt.max_per_source = n->mgmt.max_per_source;
    o->mgmt.handshake_timeout = d->mgmt.handshake_timeout = n->mgmt.handshake_timeout;
    o->mgmt.idle_timeout = d->mgmt.idle_timeout = n->mgmt.idle_timeout;
    o->tunnel.max_sessions = d->tunl.max_sessions = n->tunnel.max_sessions;
    o->tunnel.max_per_source = d->tunl.max_per_source = n->tunnel.max_per_source;
    o->tunnel.handshake_timeout = d->tunl.handshake_timeout = n->tunnel.handshake_timeout;
    o->pki.crl_days = n->pki.crl_days;
    o->pki.peer_days = n->pki.peer_days;
    o->fw.gate_timeout = n->fw.gate_timeout;
    o->daemon.log_level = n->daemon.log_level;
    log_set_level(n->daemon.log_level);
    config_free(n);
}

/* ---- setup --------------------------------------------------------------- */

static int load_server_key(struct daemon *d, gnutls_privkey_t *key, char *err, size_t errlen)
{
    return gwcert_key_load(d, key, err, errlen);
}

static int listener_tls(struct daemon *d, struct listener *l, const char *alpn,
                        bool cert_optional, struct tls_server **out, char *err, size_t errlen)
{
    gnutls_privkey_t key = NULL;
    struct tls_server_opts o = {0};
    struct trustdb *t = daemon_trust(d);
    const struct trust *tr = trustdb_trust(t);
    gnutls_x509_crt_t cas[4 + 16];
    size_t n_own;
    int rc;

    rc = load_server_key(d, &key, err, errlen);
    if (rc < 0)
        goto out;
    o.cert_path = d->cfg->mgmt.cert ? d->cfg->mgmt.cert : d->pki->gw_path;
    o.chain_path = d->pki->chain_path;
    o.key = key;
    /* Our anchors (both CAs during a rollover), then each [trust NAME]
     * issuer's: the names the CertificateRequest offers, so that their
     * peers send their certificate. */
    n_own = tr->n_cas < 4 ? tr->n_cas : 4;
    for (size_t i = 0; i < n_own; i++)
        cas[i] = tr->cas[i];
    o.cas = cas;
    o.n_cas = n_own + trust_fetch_cas(d->tf, cas + n_own, 16);
    /* EST has its own floor (default 1.2: field EST clients, docs/est.md);
     * the management and tunnel listeners keep [management]'s. */
    o.tls_min = l == &d->estl ? d->cfg->enroll.tls_min : d->cfg->mgmt.tls_min;
    o.alpn = alpn;
    o.cert_optional = cert_optional;
    o.verify = conn_verify;
    rc = tls_server_new(&o, out, err, errlen);
    if (rc < 0)
        gnutls_privkey_deinit(key);
out:
    trustdb_unref(t);
    return rc;
}

static int listener_setup(struct daemon *d, struct listener *l, int fd, const char *alpn,
                          bool cert_optional, char *err, size_t errlen)
{
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = l};
    int rc;

    l->fd = fd;
    if (l->svc->verify != SVC_PLAIN) /* the CRL DP has no TLS */
        rc = listener_tls(d, l, alpn, cert_optional, &l->tls, err, errlen);
    else
        rc = 0;
    if (rc == 0 && epoll_ctl(d->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
        rc = -errno;
        snprintf(err, errlen, "epoll: %s", strerror(errno));
    }
    return rc;
}

static int add_fd(struct daemon *d, int fd, void *tag)
{
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = tag};

    return epoll_ctl(d->epfd, EPOLL_CTL_ADD, fd, &ev) < 0 ? -errno : 0;
}

static void shutdown_all(struct daemon *d)
{
    int waited = 0;

    pthread_mutex_lock(&d->conns_lock);
    for (struct conn *c = d->conns; c; c = c->next)
        conn_kill(c, KILL_SHUTDOWN);
    pthread_mutex_unlock(&d->conns_lock);
    /* Let the owners send close_notify; give up after 2 s. */
    while (waited++ < 200) {
        struct epoll_event evs[64];
        int n;
        bool empty;
        pthread_mutex_lock(&d->conns_lock);
        empty = d->conns == NULL;
        pthread_mutex_unlock(&d->conns_lock);
        if (empty)
            break;
        n = epoll_wait(d->epfd, evs, 64, 10);
        for (int i = 0; i < n; i++) {
            void *p = evs[i].data.ptr;
            if (!is_listener(d, p) && p != &tag_wake && p != &tag_signal && p != &tag_timer)
                dispatch(d, p);
        }
        sessions_bury(d);
    }
}

/* The files whose changes reload trust (the watch on the pki dir);
 * WATCH_GATEWAY_CRT: the bit of gateway.crt, the third name. */
static const char *const watched[] = {"registry.json", "crl.pem", "gateway.crt", NULL};

/* The state before anything is opened: locks, listeners, the address pool,
 * the channel to the parent. */
static void daemon_init(struct daemon *d, struct config *cfg, const struct daemon_fds *fds)
{
    d->cfg = cfg;
    d->started = time(NULL);
    d->epfd = d->wake_fd = d->signal_fd = d->timer_fd = d->control_fd = -1;
    pthread_mutex_init(&d->pki_lock, NULL);
    pthread_mutex_init(&d->conns_lock, NULL);
    pthread_mutex_init(&d->trust_lock, NULL);
    pthread_rwlock_init(&d->token_lock, NULL);
    atomic_init(&d->token_healthy, true);
    for (size_t i = 0; i < N_LISTENERS; i++)
        listener_init(d, i, cfg);
    d->upl.name = "uplink";
    d->upl.svc = &service_uplink;
    d->upl.fd = -1;
    d->upl.handshake_timeout = 10;
    if (cfg->tunnel.pool && pool_new(cfg->tunnel.pool, &d->pool) < 0)
        d->pool = NULL; /* config.c checked it: out of memory; no peer gets an address */
    ps_client_init(fds->parent);
}

/* The loop's own fds: wake-up, signals (mask, blocked by the caller), the
 * 1 s tick. */
static int loop_open(struct daemon *d, const sigset_t *mask)
{
    struct itimerspec its = {.it_interval = {1, 0}, .it_value = {1, 0}};

    d->epfd = epoll_create1(EPOLL_CLOEXEC);
    d->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    d->signal_fd = signalfd(-1, mask, SFD_NONBLOCK | SFD_CLOEXEC);
    d->timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (d->epfd < 0 || d->wake_fd < 0 || d->signal_fd < 0 || d->timer_fd < 0 ||
        timerfd_settime(d->timer_fd, 0, &its, NULL) < 0 || add_fd(d, d->wake_fd, &tag_wake) < 0 ||
        add_fd(d, d->signal_fd, &tag_signal) < 0 || add_fd(d, d->timer_fd, &tag_timer) < 0) {
        log_err("cannot set up the event loop: %s", strerror(errno));
        return -1;
    }
    return 0;
}

/* Revocation must not depend on the control socket: the files decide. */
static int watch_start(struct daemon *d, struct watch *watch)
{
    if (!watch)
        return 0;
    if (watch_fd(watch) >= 0 && add_fd(d, watch_fd(watch), &tag_watch) < 0) {
        log_err("cannot watch %s for changes: epoll: %s", d->pki->dir, strerror(errno));
        return -1;
    }
    if (!watch_uses_inotify(watch))
        log_warn("%s: inotify unavailable: registry and CRL are checked every second",
                 d->pki->dir);
    else
        log_info("%s: watching registry.json and crl.pem, and gateway.crt", d->pki->dir);
    return 0;
}

/* A [trust NAME] issuer's CRL or freshness changed (the fetcher's thread):
 * reload trust as the watch does, ending the sessions it no longer admits. */
static void trust_changed(void *arg)
{
    struct daemon *d = arg;
    char err[512] = "";
    int rc = daemon_reload_trust(d, err, sizeof(err));

    if (rc < 0)
        log_err("[trust] issuers changed: reload failed, keeping the previous state: %s", err);
    else if (rc > 0)
        log_info("[trust] issuers changed: reloaded trust, %d session(s) ended", rc);
}

/* Everything the session process serves with, in order: the token, the
 * watch and the trust, the loop, the pools, the listeners, the uplinks, the
 * control socket. Returns 0 or -1 (logged). */
static int daemon_open(struct daemon *d, const struct daemon_fds *fds, const sigset_t *mask,
                       struct watch **watch)
{
    const struct config *cfg = d->cfg;
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    bool judges = fds->mgmt >= 0 || fds->tunnel >= 0 || fds->enroll >= 0;
    char err[512] = "";

    if (pki_new(cfg, &d->pki) < 0 || bans_new(&d->bans) < 0) {
        log_err("out of memory");
        return -1;
    }
    /* The token first: p11-kit must not be initialised by anything else. */
    if (pki_open_token(d->pki, err, sizeof(err)) < 0) {
        log_err("%s", err);
        return -1;
    }
    /* A device with uplinks only has no CA of its own to judge peers by.
     * The watch starts before the first load: no change falls between. */
    if (judges && watch_new(d->pki->dir, watched, "lock", watch) < 0) {
        log_err("cannot watch %s for changes: out of memory", d->pki->dir);
        return -1;
    }
    if (judges && trust_fetch_new(d, &d->tf, err, sizeof(err)) < 0) {
        log_err("%s", err);
        return -1;
    }
    if (judges && trustdb_load(d->pki, &d->trust, err, sizeof(err)) < 0) {
        log_err("%s", err);
        return -1;
    }
    for (size_t i = 0; judges && i < trustdb_n_ignored(d->trust); i++)
        log_warn("%s", trustdb_ignored(d->trust, i));
    /* Until their first fetch the sibling issuers are stale: refused. */
    if (judges && trust_fetch_apply(d->tf, d->trust) < 0) {
        log_err("out of memory");
        return -1;
    }
    if (cfg->crl.listen && crl_dp_new(d->pki->dir, cfg->pki.crl_url, &d->crl_dp) < 0) {
        log_err("out of memory");
        return -1;
    }
    if (loop_open(d, mask) < 0)
        return -1;
    if (workers_new("slow", SLOW_THREADS, &d->slow) < 0 ||
        workers_new("io", ncpu > 1 ? (unsigned)ncpu : 2, &d->io) < 0) {
        log_err("cannot start worker threads");
        return -1;
    }
    for (size_t i = 0; i < N_LISTENERS; i++) {
        int fd = listener_fd(fds, i);
        if (fd >= 0 && listener_setup(d, listener_at(d, i), fd, listeners[i].alpn,
                                      cert_optional(i), err, sizeof(err)) < 0) {
            log_err("%s listener: %s", listeners[i].name, err);
            return -1;
        }
    }
    if (trust_fetch_start(d->tf, trust_changed, d, err, sizeof(err)) < 0) {
        log_err("%s", err);
        return -1;
    }
    if (udp_hub_start(d, err, sizeof(err)) < 0 || uplinks_start(d, err, sizeof(err)) < 0) {
        log_err("%s", err);
        return -1;
    }
    if (control_start(d, err, sizeof(err)) < 0) {
        log_err("control socket %s: %s", cfg->daemon.control_socket, err);
        return -1;
    }
    return watch_start(d, *watch);
}

/* What the signal fd holds: SIGHUP reloads, the others stop. */
static void on_signals(struct daemon *d)
{
    struct signalfd_siginfo si;
    char err[512] = "";

    while (read(d->signal_fd, &si, sizeof(si)) == sizeof(si)) {
        if (si.ssi_signo == SIGHUP) {
            log_info("SIGHUP: re-reading %s, registry and CRL", d->cfg->path);
            reload_config(d);
            if (daemon_reload_trust(d, err, sizeof(err)) < 0)
                log_err("reload failed, keeping the previous state: %s", err);
            gwcert_reload_later(d);
        } else {
            log_info("%s: ending sessions", strsignal((int)si.ssi_signo));
            d->stopping = true;
        }
    }
}

/* The loop: accept, tick, watch, signals, ready connections. */
static void daemon_loop(struct daemon *d, struct watch *watch)
{
    unsigned long long ticks = 0;

    while (!d->stopping) {
        struct epoll_event evs[64];
        int n = epoll_wait(d->epfd, evs, 64, -1);

        if (n < 0 && errno != EINTR) {
            log_err("epoll_wait: %s", strerror(errno));
            break;
        }
        for (int i = 0; i < n; i++) {
            void *p = evs[i].data.ptr;
            if (is_listener(d, p)) {
                /* Up to 64 a round, so that open sessions get their turn. */
                for (int k = 0; k < 64 && accept_one(d, p); k++)
                    ;
            } else if (p == &tag_timer) {
                uint64_t x;
                if (read(d->timer_fd, &x, sizeof(x)) > 0)
                    tick(d, ++ticks);
                if (watch) /* the backstop of inotify */
                    watch_apply(d, watch, watched);
            } else if (p == &tag_watch) {
                watch_apply(d, watch, watched);
            } else if (p == &tag_wake) {
                uint64_t x;
                if (read(d->wake_fd, &x, sizeof(x)) < 0)
                    continue;
            } else if (p == &tag_signal) {
                on_signals(d);
            } else {
                dispatch(d, p);
            }
        }
        sessions_bury(d);
    }
}

/* Whatever daemon_open got as far as opening, in reverse. */
static void daemon_close(struct daemon *d)
{
    d->stopping = true;
    uplinks_stop(d);
    control_stop(d);
    workers_free(d->io);
    workers_free(d->slow);
    trust_fetch_free(d->tf); /* its thread reloads trust: before trust goes */
    d->tf = NULL;
    sessions_bury(d);
    udp_hub_stop(d);
    if (d->mgmt.tls)
        tls_server_free(d->mgmt.tls);
    if (d->tunl.tls)
        tls_server_free(d->tunl.tls);
    if (d->estl.tls)
        tls_server_free(d->estl.tls);
    for (unsigned i = 0; i < d->n_retired; i++)
        tls_server_free(d->retired[i]);
    pool_free(d->pool);
    crl_dp_free(d->crl_dp);
    trustdb_unref(d->trust);
    pki_free(d->pki);
    bans_free(d->bans);
    sessions_free_books(d);
    if (d->epfd >= 0)
        close(d->epfd);
    if (d->wake_fd >= 0)
        close(d->wake_fd);
    if (d->signal_fd >= 0)
        close(d->signal_fd);
    if (d->timer_fd >= 0)
        close(d->timer_fd);
}

int daemon_run(struct config *cfg, const struct daemon_fds *fds)
{
    struct daemon dd = {0}, *d = &dd;
    sigset_t mask;
    int rc = 1;
    struct watch *watch = NULL;

    malloc_tune();
    daemon_init(d, cfg, fds);
    sigemptyset(&mask);
    sigaddset(&mask, SIGHUP);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    sigprocmask(SIG_BLOCK, &mask, NULL);
    signal(SIGPIPE, SIG_IGN);

    if (daemon_open(d, fds, &mask, &watch) < 0)
        goto out;
    /* Logged in: no PIN in memory from here on (a later login reads the
     * PIN file again; docs/architecture.md). */
    p11_token_forget_pin(d->pki->tok);
    log_info("mtlsgwd %s: session process ready%s%s%s%s", MTLSGW_VERSION,
             cfg->mgmt.listen ? ", management on " : "", cfg->mgmt.listen ? cfg->mgmt.listen : "",
             cfg->tunnel.listen ? ", tunnels on " : "",
             cfg->tunnel.listen ? cfg->tunnel.listen : "");
    daemon_loop(d, watch);
    rc = 0;
    watch_free(watch); /* out of the loop before shutdown_all polls it */
    watch = NULL;
    uplinks_stop(d);
    shutdown_all(d);
    /* What mtlsgwd(8) promises for SIGTERM: no opening outlives the daemon. */
    gate_close_all(d);
out:
    watch_free(watch);
    daemon_close(d);
    return rc;
}
