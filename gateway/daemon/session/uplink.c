/*
 * uplink.c: our uplinks (uplink.h), the spoke side of a tunnel: one thread
 * per [uplink] section dials its hub, hands the session to the data path
 * (tunnel.c) once the hub's CONFIG is applied, and dials again with backoff
 * when it ends. With several hubs (server = A B ...) it moves to the next
 * after a failed try, and, on another than the first with prefer-first,
 * probes the first every probe-interval and moves back once it answers.
 */
/* SOCK_NONBLOCK/SOCK_CLOEXEC on socket(): musl and glibc declare them under
 * _GNU_SOURCE. */
#define _GNU_SOURCE
#include "uplink.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "build-config.h"
#include "config.h"
#include "daemon.h"
#include "fsutil.h"
#include "log.h"
#include "mono.h"
#include "p11.h"
#include "pki-gateway.h"
#include "pki.h"
#include "registry.h"
#include "sessions.h"
#include "tls.h"
#include "tunnel.h"
#include "udp.h"
#include "uplink-renew.h"

#define T_CONFIG FRAME_CONFIG
#define T_CLOSE FRAME_CLOSE
#define T_OFFLOAD FRAME_OFFLOAD
#define CONFIG_MAX FRAME_CONFIG_MAX
#define CLOSE_MAX FRAME_CLOSE_MAX
#define RBUF TUNNEL_RBUF

struct uplink {
    struct daemon *d;
    const struct cfg_uplink *cfg;
    unsigned index;
    const char *server; /* the hub we are on or trying: one of cfg->servers */
    unsigned order[CFG_MAX_LIST]; /* indices into cfg->servers, this round's order */
    struct tls_client *tls;
    struct tls_client *retired[8]; /* replaced after a token recovery */
    unsigned n_retired;
    pthread_t thread;
    bool running;
    int stop_fd;
    struct renewer *renewer; /* uplink-renew.c */
};

static int split_hostport(const char *s, char *host, size_t hl, char *port, size_t pl)
{
    const char *colon = strrchr(s, ':');
    size_t n;

    if (!colon)
        return -EINVAL;
    if (s[0] == '[') {
        n = (size_t)(colon - s);
        if (n < 3 || s[n - 1] != ']')
            return -EINVAL;
        snprintf(host, hl, "%.*s", (int)(n - 2), s + 1);
    } else {
        snprintf(host, hl, "%.*s", (int)(colon - s), s);
    }
    snprintf(port, pl, "%s", colon + 1);
    return 0;
}

/* Interruptible sleep; false when we are stopping. */
static bool nap(struct uplink *up, unsigned ms)
{
    struct pollfd p = {.fd = up->stop_fd, .events = POLLIN};

    return poll(&p, 1, (int)ms) == 0 && !up->d->stopping;
}

/* A hub reached (TLS handshake done), not yet a session: fd < 0 for none.
 * After a probe, first holds what the hub sent: its CONFIG first. */
struct dialed {
    int fd;
    gnutls_session_t tls;
    struct sockaddr_storage ss;
    const char *server;
    unsigned char *first; /* RBUF bytes, or NULL */
    size_t first_len;
};

static void dialed_drop(struct dialed *dl)
{
    if (dl->fd >= 0) {
        gnutls_deinit(dl->tls);
        close(dl->fd);
    }
    free(dl->first);
    dl->first = NULL;
    dl->first_len = 0;
    dl->fd = -1;
}

static int connect_to(const char *server, const char *host, const char *port, int timeout_ms,
                      struct sockaddr_storage *ss, char *err, size_t errlen)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL, *ai;
    int fd = -1, rc;

    rc = getaddrinfo(host, port, &hints, &res);
    if (rc != 0) {
        snprintf(err, errlen, "cannot resolve %s: %s", host, gai_strerror(rc));
        return -EHOSTUNREACH;
    }
    for (ai = res; ai; ai = ai->ai_next) {
        struct pollfd p;
        int soerr = 0;
        socklen_t sl = sizeof(soerr);
        fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0)
            continue;
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0 && errno != EINPROGRESS)
            goto next;
        p.fd = fd;
        p.events = POLLOUT;
        if (poll(&p, 1, timeout_ms) != 1 ||
            getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0 || soerr) {
            errno = soerr ? soerr : ETIMEDOUT;
            goto next;
        }
        memcpy(ss, ai->ai_addr, ai->ai_addrlen);
        freeaddrinfo(res);
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &(int){1}, sizeof(int));
        return fd;
next:
        snprintf(err, errlen, "cannot connect to %s: %s", server, strerror(errno));
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    return -ECONNREFUSED;
}

/*
 * Read the hub's first frame into rbuf (RBUF bytes, *rlen of them used),
 * within the deadline: 0 with a whole CONFIG at the start of rbuf;
 * -ECONNABORTED when it is a CLOSE (its reason in why); -EPROTO for anything
 * else; -ECONNRESET or -ETIMEDOUT when none came.
 */
static int read_first_frame(gnutls_session_t tls, int fd, unsigned char *rbuf, size_t *rlen,
                            long long deadline, char *why, size_t whylen)
{
    size_t len = *rlen;
    int rc;

    for (;;) {
        ssize_t n;
        size_t flen = len >= FRAME_HDR ? ((size_t)rbuf[2] << 8 | rbuf[3]) : 0;
        if (len >= FRAME_HDR && rbuf[0] == T_CLOSE && rbuf[1] == 0 &&
            flen <= CLOSE_MAX && len >= FRAME_HDR + flen) {
            size_t k;
            snprintf(why, whylen, "%.*s", (int)flen, (const char *)rbuf + FRAME_HDR);
            for (k = 0; why[k]; k++) /* the hub's words go to our log: printable only */
                if ((unsigned char)why[k] < 0x20 || (unsigned char)why[k] > 0x7e)
                    why[k] = '?';
            rc = -ECONNABORTED;
            goto out;
        }
        if (len >= FRAME_HDR &&
            (rbuf[1] != 0 ||
             (rbuf[0] == T_CLOSE ? flen > CLOSE_MAX
                                 : rbuf[0] != T_CONFIG || flen > CONFIG_MAX))) {
            rc = -EPROTO;
            goto out;
        }
        if (len >= FRAME_HDR && rbuf[0] == T_CONFIG && len >= FRAME_HDR + flen) {
            rc = 0;
            goto out;
        }
        if (gnutls_record_check_pending(tls) == 0) {
            struct pollfd p = {.fd = fd, .events = POLLIN};
            if (tunnel_now_s() > deadline || poll(&p, 1, 1000) < 0) {
                rc = -ETIMEDOUT;
                goto out;
            }
        }
        n = gnutls_record_recv(tls, rbuf + len, RBUF - len);
        if (n == GNUTLS_E_AGAIN || n == GNUTLS_E_INTERRUPTED)
            continue;
        if (n <= 0) {
            rc = -ECONNRESET;
            goto out;
        }
        len += (size_t)n;
    }
out:
    *rlen = len;
    return rc;
}

static int apply_config(struct uplink *up, struct conn *c, const char *text, size_t len,
                        char *err, size_t errlen)
{
    struct tunnel *t = c->tun;
    struct frame_config *fc = calloc(1, sizeof(*fc)); /* frame.h: the hub's bytes, checked */
    struct ps_tun_up *u = calloc(1, sizeof(*u));
    int rc = -EPROTO;

    (void)len;
    if (!u || !fc || frame_config_parse(text, fc, err, errlen) < 0)
        goto out;
    snprintf(u->local, sizeof(u->local), "%s", fc->address);
    snprintf(u->remote, sizeof(u->remote), "%s", fc->peer);
    /* The tunnel ends the hub picks are bounded like its networks (the
     * parent refuses them anyway): the caller logs this one line. */
    for (int k = 0; k < 2; k++) {
        const char *end = k ? u->remote : u->local;
        const struct config *dc = up->d->cfg;
        if (!config_prefix_inside(dc->tunnel.peer_networks, dc->tunnel.n_peer_networks, end) ||
            (dc->tunnel.pool && config_prefix_inside(&dc->tunnel.pool, 1, end))) {
            snprintf(err, errlen, "tunnel address %s (%s) is outside [tunnel] peer-networks "
                     "or inside our own [tunnel] pool: refused", end,
                     k ? "the hub's" : "ours");
            rc = -EPERM;
            goto out;
        }
    }
    if (fc->mtu)
        t->mtu = fc->mtu;
    if (fc->keepalive)
        t->keepalive = fc->keepalive;
    /* What the hub may push is ours to bound (the parent checks it again):
     * a route outside accept-routes, or a network outside peer-networks,
     * is left out with a line that says so. */
    for (size_t i = 0; i < fc->n_routes && u->n_routes < PS_MAX_PREFIXES; i++) {
        if (!config_prefix_inside(up->cfg->accept_routes, up->cfg->n_accept_routes,
                                  fc->routes[i])) {
            log_warn("uplink %s: route %s from %s is outside [uplink %s] accept-routes: "
                     "not installed (list it there to accept it)", up->cfg->name,
                     fc->routes[i], up->server, up->cfg->name);
            continue;
        }
        snprintf(u->routes[u->n_routes++], PS_ADDRLEN, "%s", fc->routes[i]);
    }
    for (size_t i = 0; i < fc->n_networks && u->n_allowed < PS_MAX_PREFIXES; i++) {
        if (!config_prefix_inside(up->d->cfg->tunnel.peer_networks,
                                  up->d->cfg->tunnel.n_peer_networks, fc->networks[i])) {
            log_warn("uplink %s: network %s from %s is outside [tunnel] peer-networks: no "
                     "forwarding to it from the tunnel", up->cfg->name, fc->networks[i],
                     up->server);
            continue;
        }
        snprintf(u->allowed[u->n_allowed++], PS_ADDRLEN, "%s", fc->networks[i]);
        if (t->n_networks < PS_MAX_PREFIXES)
            t->networks[t->n_networks++] = strdup(fc->networks[i]);
    }
    snprintf(u->ifname, sizeof(u->ifname), "%su%u", MTLSGW_DEFAULT_IFPREFIX, up->index);
    snprintf(u->peer_name, sizeof(u->peer_name), "%s", up->cfg->name);
    u->uplink = 1;
    u->mtu = t->mtu;
    snprintf(t->local, sizeof(t->local), "%s", u->local);
    snprintf(t->remote, sizeof(t->remote), "%s", u->remote);
    rc = tunnel_tun_up(c, u, err, errlen);
    /* UDP: the keys now, while this thread is the session's only user. A
     * channel that cannot be made leaves the tunnel on TLS. With UDP, the
     * TUN hands over MTU-sized packets (no OFFLOAD), one record each. */
    if (rc == 0 && fc->udp && up->d->cfg->tunnel.udp != CFG_UDP_OFF) {
        int urc = udp_spoke_attach(c, fc->udp);
        if (urc < 0)
            log_info("uplink %s: no UDP channel to %s port %u (%s): data stays on TLS",
                     up->cfg->name, up->server, fc->udp,
                     urc == -ENOTSUP ? "TLS 1.2 without the extended master secret"
                                     : strerror(-urc));
    }
    if (rc == 0 && fc->offload && up->d->cfg->tunnel.offload && !t->udp) {
        /* SEGMENTS may come once the hub has read OFFLOAD: take them first. */
        atomic_store(&t->seg_rx, true);
        if (tunnel_send_frame(c, T_OFFLOAD, NULL, 0) < 0) {
            snprintf(err, errlen, "cannot send OFFLOAD");
            rc = -EIO;
        }
        atomic_store(&t->seg_tx, true);
    }
out:
    free(fc);
    free(u);
    return rc;
}

/* Connect and handshake with hub server (HOST:PORT) before the deadline,
 * checking that its certificate names server-name or else HOST: 0 with
 * dl filled, -1 (logged; at debug for a probe) when not. */
static int uplink_handshake(struct uplink *up, const char *server, long long deadline,
                            bool probe, struct dialed *dl)
{
    struct daemon *d = up->d;
    void (*note)(const char *, ...) = probe ? log_debug : log_info;
    gnutls_session_t tls = NULL;
    char err[512] = "", host[256], port[8];
    const char *name;
    int fd, rc;

    if (split_hostport(server, host, sizeof(host), port, sizeof(port)) < 0) {
        log_err("uplink %s: server %s: want HOST:PORT", up->cfg->name, server);
        return -1;
    }
    name = up->cfg->server_name ? up->cfg->server_name : host;
    fd = connect_to(server, host, port, (int)up->d->cfg->tunnel.handshake_timeout * 1000,
                    &dl->ss, err, sizeof(err));
    if (fd < 0) {
        note("uplink %s: %s", up->cfg->name, err);
        return -1;
    }
    /* Our signature happens in the handshake: the token must stay put. */
    pthread_rwlock_rdlock(&d->token_lock);
    rc = tls_client_session(up->tls, fd, name, &tls);
    if (rc < 0) {
        pthread_rwlock_unlock(&d->token_lock);
        close(fd);
        return -1;
    }
    for (;;) {
        struct pollfd p = {.fd = fd};
        rc = gnutls_handshake(tls);
        if (rc == 0)
            break;
        if (rc != GNUTLS_E_AGAIN && rc != GNUTLS_E_INTERRUPTED) {
            unsigned status = gnutls_session_get_verify_cert_status(tls);
            gnutls_datum_t txt = {0};
            if (rc == GNUTLS_E_CERTIFICATE_VERIFICATION_ERROR &&
                pki_hub_lacks_name(tls, name, up->cfg->name, err, sizeof(err))) {
                /* Our own check of the hub, not the hub refusing us. */
                log_err("uplink %s: hub %s: %s", up->cfg->name, server, err);
            } else if (rc == GNUTLS_E_CERTIFICATE_VERIFICATION_ERROR &&
                gnutls_certificate_verification_status_print(status, GNUTLS_CRT_X509, &txt,
                                                             0) == 0) {
                log_err("uplink %s: hub %s refused (name %s): %s", up->cfg->name, server,
                        name, txt.data);
                gnutls_free(txt.data);
            } else {
                note("uplink %s: handshake with %s failed: %s", up->cfg->name, server,
                     gnutls_strerror(rc));
            }
            pthread_rwlock_unlock(&d->token_lock);
            gnutls_deinit(tls);
            close(fd);
            return -1;
        }
        p.events = gnutls_record_get_direction(tls) ? POLLOUT : POLLIN;
        if (tunnel_now_s() > deadline || poll(&p, 1, 1000) < 0) {
            note("uplink %s: handshake with %s timed out", up->cfg->name, server);
            pthread_rwlock_unlock(&d->token_lock);
            gnutls_deinit(tls);
            close(fd);
            return -1;
        }
    }
    pthread_rwlock_unlock(&d->token_lock);
    dl->fd = fd;
    dl->tls = tls;
    dl->server = server;
    return 0;
}

/* The hub's first frame, applied: 0, or <0 with c ended (and logged). */
static int uplink_configure(struct uplink *up, struct conn *c, long long deadline)
{
    char err[512] = "";
    size_t flen;
    int rc;

    rc = read_first_frame(c->tls, c->fd, c->tun->rbuf, &c->tun->rlen, deadline, err,
                          sizeof(err));
    if (rc < 0) {
        if (rc == -ECONNABORTED)
            log_err("uplink %s: %s closed the tunnel before its CONFIG: %s", up->cfg->name,
                    up->server, err[0] ? err : "no reason given");
        else if (rc == -ECONNRESET)
            log_err("uplink %s: %s closed the connection before its CONFIG: it refused our "
                    "certificate (revoked, not enrolled, not a tunnel peer? see the hub's log)",
                    up->cfg->name, up->server);
        else
            log_err("uplink %s: no CONFIG from %s (%s)", up->cfg->name, up->server,
                    rc == -EPROTO ? "malformed first frame" : strerror(-rc));
        conn_close(c, "no CONFIG");
        return rc;
    }
    flen = (size_t)c->tun->rbuf[2] << 8 | c->tun->rbuf[3];
    {
        char text[CONFIG_MAX + 1];
        memcpy(text, c->tun->rbuf + FRAME_HDR, flen);
        text[flen] = '\0';
        memmove(c->tun->rbuf, c->tun->rbuf + FRAME_HDR + flen, c->tun->rlen - FRAME_HDR - flen);
        c->tun->rlen -= FRAME_HDR + flen;
        if (apply_config(up, c, text, flen, err, sizeof(err)) < 0) {
            log_err("uplink %s: cannot apply the hub's CONFIG: %s", up->cfg->name, err);
            tunnel_end(c, "bad CONFIG");
            tunnel_finish(c);
            return -EPROTO;
        }
    }
    return 0;
}

/*
 * The end of a dial: connect and handshake within [tunnel]
 * handshake-timeout, as the hub gives us (the CONFIG may take 5 s more).
 * A hub busy with many spokes at once may take longer than the old fixed
 * 10 s, and a spoke that gives up throws its signature away and comes
 * back later to queue again.
 */
static long long uplink_deadline(const struct uplink *up)
{
    return tunnel_now_s() + (long long)up->d->cfg->tunnel.handshake_timeout;
}

/* Whether we are on another hub than the first and should probe it. */
static bool uplink_probing(const struct uplink *up)
{
    const struct cfg_uplink *uc = up->cfg;

    return uc->prefer_first && !uc->server_random && uc->n_servers > 1 &&
           up->server != uc->servers[0];
}

/*
 * Dial the first hub while on another: 0 once it took our handshake and
 * sent its CONFIG (kept in dl->first for the session), -1 when not. A hub
 * that completes the handshake and then refuses us (revoked there, say)
 * is no reason to leave the hub we are on.
 */
static int uplink_probe(struct uplink *up, struct dialed *dl)
{
    long long deadline = uplink_deadline(up);
    char why[256] = "";
    int rc;

    if (uplink_handshake(up, up->cfg->servers[0], deadline, true, dl) < 0)
        return -1;
    dl->first = malloc(RBUF);
    if (!dl->first) {
        dialed_drop(dl);
        return -1;
    }
    rc = read_first_frame(dl->tls, dl->fd, dl->first, &dl->first_len, deadline, why,
                          sizeof(why));
    if (rc < 0) {
        log_info("uplink %s: %s answers but sent no CONFIG (%s): staying on %s",
                 up->cfg->name, dl->server,
                 rc == -ECONNABORTED ? why : rc == -ECONNRESET ? "it refused us, see its log"
                                                               : strerror(-rc),
                 up->server);
        dialed_drop(dl);
        return -1;
    }
    return 0;
}

/*
 * Wait for the session to end, or for the daemon to stop. On another hub
 * than the first with prefer-first, dial the first every probe-interval:
 * true once its handshake succeeded (in *probe), c still up for the caller
 * to leave.
 */
static bool uplink_wait(struct uplink *up, struct conn *c, struct dialed *probe)
{
    long long next = mono_ms() + (long long)up->cfg->probe_interval * 1000;

    for (;;) {
        struct pollfd p[2] = {{.fd = c->tun->done_fd, .events = POLLIN},
                              {.fd = up->stop_fd, .events = POLLIN}};
        long long now = mono_ms();
        int timeout = -1, n;
        if (uplink_probing(up))
            timeout = next > now ? (int)(next - now) : 0;
        n = poll(p, 2, timeout);
        if (n < 0 && errno != EINTR)
            break;
        if (n > 0 && p[0].revents)
            break;
        if (n > 0 && p[1].revents) {
            conn_kill(c, KILL_SHUTDOWN);
            p[1].fd = -1;
            poll(p, 1, 3000);
            break;
        }
        if (n == 0 && uplink_probing(up)) {
            if (uplink_probe(up, probe) == 0) {
                log_info("uplink %s: %s answers again: leaving %s for it", up->cfg->name,
                         probe->server, up->server);
                return true;
            }
            next = mono_ms() + (long long)up->cfg->probe_interval * 1000;
        }
    }
    return false;
}

/* End the session we leave for another hub and wait (3 s at most) for its
 * tunnel to be down: the parent gives an uplink one interface at a time. */
static void uplink_leave(struct conn *prev, uint64_t by)
{
    struct pollfd p = {.fd = prev->tun->done_fd, .events = POLLIN};

    if (by)
        conn_supersede(prev, by);
    else
        conn_kill(prev, KILL_SHUTDOWN);
    poll(&p, 1, 3000);
    conn_unref(prev);
}

/*
 * One connection to up->server (dl: already dialed by a probe, else fd < 0),
 * until it ends: true when its CONFIG was applied (a session was up). prev
 * (a reference, or NULL) is the session on another hub we leave for this
 * one; *next, when this one is left for the first hub the same way, holds
 * that hub's dialed connection and *keep this session, referenced.
 */
static bool uplink_once(struct uplink *up, struct dialed *dl, struct conn *prev,
                        struct dialed *next, struct conn **keep)
{
    struct daemon *d = up->d;
    struct conn *c = NULL;
    long long deadline = uplink_deadline(up);

    if (dl->fd < 0 && uplink_handshake(up, up->server, deadline, false, dl) < 0)
        goto fail;
    c = sessions_conn_new(d, &d->upl, dl->fd, &dl->ss, false);
    if (!c) {
        dialed_drop(dl);
        goto fail;
    }
    c->tls = dl->tls;
    dl->fd = -1;
    snprintf(c->peer, sizeof(c->peer), "%s", up->cfg->name);
    snprintf(c->remote, sizeof(c->remote), "%s", up->server);
    c->role = ROLE_TUNNEL;
    if (prev) {
        uplink_leave(prev, c->id);
        prev = NULL;
    }
    c->tun = tunnel_new(d->cfg->tunnel.mtu, d->cfg->tunnel.keepalive, true);
    if (!c->tun) {
        dialed_drop(dl);
        conn_close(c, "out of memory");
        return false;
    }
    if (dl->first) { /* the probe read the hub's CONFIG: the session reads it now */
        memcpy(c->tun->rbuf, dl->first, dl->first_len);
        c->tun->rlen = dl->first_len;
        dialed_drop(dl);
    }
    atomic_fetch_sub(&c->l->handshaking, 1);
    atomic_fetch_add(&c->l->sessions, 1);
    atomic_store(&c->state, CONN_OPEN);
    if (uplink_configure(up, c, deadline + 5) < 0)
        return false;
    log_info("uplink %s: connected to %s, %s up, %s <-> %s", up->cfg->name, up->server,
             c->tun->ifname, c->tun->local, c->tun->remote);
    conn_ref(c);
    tunnel_hand_over(c);
    if (uplink_wait(up, c, next))
        *keep = c;
    else
        conn_unref(c);
    return true;
fail:
    if (prev)
        uplink_leave(prev, 0);
    return false;
}

/* This round's order of the servers: as listed, or shuffled. */
static void uplink_shuffle(struct uplink *up, unsigned *seed)
{
    unsigned n = up->cfg->n_servers;

    for (unsigned i = 0; i < n; i++)
        up->order[i] = i;
    for (unsigned i = n; up->cfg->server_random && i > 1; i--) {
        unsigned j = (unsigned)rand_r(seed) % i, t = up->order[i - 1];
        up->order[i - 1] = up->order[j];
        up->order[j] = t;
    }
}

static void *uplink_main(void *arg)
{
    struct uplink *up = arg;
    const struct cfg_uplink *uc = up->cfg;
    unsigned backoff = 1, pos = 0;
    unsigned seed = (unsigned)time(NULL) ^ (unsigned)(uintptr_t)up;
    struct dialed dl = {.fd = -1}, next = {.fd = -1};
    struct conn *prev = NULL;

    uplink_shuffle(up, &seed);
    up->server = uc->servers[up->order[0]];
    while (!up->d->stopping) {
        long long t0 = tunnel_now_s();
        unsigned ms, wait_s = 1;
        struct conn *old = prev;
        bool was_up;
        prev = NULL;
        was_up = uplink_once(up, &dl, old, &next, &prev);
        if (next.fd >= 0) { /* back to the first hub, at once */
            dl = next;
            next = (struct dialed){.fd = -1};
            pos = 0;
            up->server = dl.server;
            backoff = 1;
            continue;
        }
        if (up->d->stopping)
            break;
        if (tunnel_now_s() - t0 > 60)
            backoff = 1;
        /* A hub that had us is tried again first, after the backoff; one
         * that did not answer passes the turn to the next in 1 s, and after
         * a whole round in vain the backoff applies. It doubles each time:
         * 1 s to 60 s, +-20 % jitter so spokes do not return in step; a
         * session of more than a minute starts it again at 1 s. */
        if (!was_up && ++pos < uc->n_servers) {
            wait_s = 1;
        } else {
            if (!was_up) {
                pos = 0;
                uplink_shuffle(up, &seed);
            }
            wait_s = backoff;
            backoff = backoff * 2 > 60 ? 60 : backoff * 2;
        }
        ms = wait_s * 1000u;
        ms = ms * 4 / 5 + (unsigned)(rand_r(&seed) % (ms * 2 / 5 + 1));
        up->server = uc->servers[up->order[pos]];
        log_info("uplink %s: reconnecting in %u ms (to %s)", uc->name, ms, up->server);
        if (!nap(up, ms))
            break;
    }
    if (prev)
        uplink_leave(prev, 0);
    dialed_drop(&dl);
    dialed_drop(&next);
    return NULL;
}

static const char *uplink_key_label(const struct cfg_uplink *uc)
{
    return uc->key ? uc->key : PKI_LABEL_DEVICE;
}

/*
 * Every uplink's key in one search of the token (p11_keys_load): keys[i]
 * for d->cfg->uplinks[i], NULL where uplink_tls() is to load it alone (and
 * say what is wrong with it). With one uplink there is nothing to share.
 */
static gnutls_privkey_t *uplink_keys(struct daemon *d)
{
    const struct config *cfg = d->cfg;
    const char **labels = NULL;
    gnutls_privkey_t *keys = NULL;
    int rc;

    if (cfg->n_uplinks < 2)
        return NULL;
    labels = calloc(cfg->n_uplinks, sizeof(*labels));
    keys = calloc(cfg->n_uplinks, sizeof(*keys));
    if (!labels || !keys)
        goto fail;
    for (unsigned i = 0; i < cfg->n_uplinks; i++)
        labels[i] = uplink_key_label(&cfg->uplinks[i]);
    rc = p11_keys_load(d->pki->tok, labels, cfg->n_uplinks, keys);
    if (rc < 0) {
        log_debug("uplinks: keys not found in one search (%s): loading each alone",
                  p11_token_error(d->pki->tok));
        goto fail;
    }
    free(labels);
    return keys;
fail:
    free(labels);
    free(keys);
    return NULL;
}

/* What uplink_keys() gave and uplink_tls() did not take. */
static void uplink_keys_free(gnutls_privkey_t *keys, unsigned n)
{
    for (unsigned i = 0; keys && i < n; i++)
        gnutls_privkey_deinit(keys[i]);
    free(keys);
}

/* The uplink's credentials; *pre, when not NULL, is its key already loaded
 * (taken: set to NULL). */
static int uplink_tls(struct daemon *d, const struct cfg_uplink *uc, gnutls_privkey_t *pre,
                      struct tls_client **out, char *err, size_t errlen)
{
    struct tls_client_opts o = {0};
    gnutls_privkey_t key = NULL;
    char *cert = uc->cert ? NULL : fs_join(d->cfg->pki.dir, "device.crt");
    char *ca = uc->ca ? NULL : fs_join(d->cfg->pki.dir, "hub-ca.crt");
    int rc = 0;

    if (pre && *pre) {
        key = *pre;
        *pre = NULL;
    } else {
        rc = p11_key_load(d->pki->tok, uplink_key_label(uc), &key);
    }
    if (rc < 0) {
        snprintf(err, errlen, "[uplink %s] key '%s' on %s: %s", uc->name,
                 uc->key ? uc->key : PKI_LABEL_DEVICE, d->cfg->token.uri,
                 p11_token_error(d->pki->tok));
        goto out;
    }
    o.cert_path = uc->cert ? uc->cert : cert;
    o.ca_path = uc->ca ? uc->ca : ca;
    o.key = key;
    o.tls_min = d->cfg->mgmt.tls_min;
    o.alpn = MTLSGW_ALPN;
    rc = tls_client_new(&o, out, err, errlen);
    if (rc < 0)
        gnutls_privkey_deinit(key);
out:
    free(cert);
    free(ca);
    return rc;
}

int uplinks_reload_keys(struct daemon *d, char *err, size_t errlen)
{
    gnutls_privkey_t *keys = d->n_uplinks ? uplink_keys(d) : NULL;
    int rc = 0;

    for (unsigned i = 0; i < d->n_uplinks; i++) {
        struct uplink *up = &d->uplinks[i];
        struct tls_client *fresh = NULL;
        if (uplink_tls(d, up->cfg, keys ? &keys[i] : NULL, &fresh, err, errlen) < 0) {
            rc = -EIO;
            continue;
        }
        if (up->n_retired < 8)
            up->retired[up->n_retired++] = up->tls;
        else
            tls_client_free(up->tls);
        up->tls = fresh;
    }
    uplink_keys_free(keys, d->cfg->n_uplinks);
    return rc;
}

int uplink_reload_tls(struct daemon *d, unsigned index, char *err, size_t errlen)
{
    struct uplink *up = &d->uplinks[index];
    struct tls_client *fresh = NULL;
    int rc;

    pthread_rwlock_rdlock(&d->token_lock);
    rc = uplink_tls(d, up->cfg, NULL, &fresh, err, errlen);
    pthread_rwlock_unlock(&d->token_lock);
    if (rc < 0)
        return rc;
    /* The write side: no handshake of ours reads up->tls meanwhile. The open
     * tunnel's session still points at the old credentials: keep them. */
    pthread_rwlock_wrlock(&d->token_lock);
    if (up->n_retired == 8) {
        tls_client_free(up->retired[0]);
        memmove(up->retired, up->retired + 1, 7 * sizeof(up->retired[0]));
        up->n_retired--;
    }
    up->retired[up->n_retired++] = up->tls;
    up->tls = fresh;
    pthread_rwlock_unlock(&d->token_lock);
    return 0;
}

int uplinks_start(struct daemon *d, char *err, size_t errlen)
{
    const struct config *cfg = d->cfg;
    gnutls_privkey_t *keys;
    int ret = 0;

    if (!cfg->n_uplinks)
        return 0;
    d->uplinks = calloc(cfg->n_uplinks, sizeof(*d->uplinks));
    if (!d->uplinks)
        return -ENOMEM;
    keys = uplink_keys(d);
    for (unsigned i = 0; i < cfg->n_uplinks; i++) {
        struct uplink *up = &d->uplinks[i];
        const struct cfg_uplink *uc = &cfg->uplinks[i];
        sigset_t all, old;
        pthread_attr_t attr;
        int rc;

        up->d = d;
        up->cfg = uc;
        up->index = i;
        up->stop_fd = eventfd(0, EFD_CLOEXEC);
        d->n_uplinks++;
        rc = uplink_tls(d, uc, keys ? &keys[i] : NULL, &up->tls, err, errlen);
        if (rc < 0) {
            ret = rc;
            goto out;
        }
        sigfillset(&all);
        pthread_sigmask(SIG_BLOCK, &all, &old);
        /* UPLINK_STACK, not the 8 MiB default: a spoke with 1,000 uplinks
         * reserved 8 GB for threads that touch ~13 KiB (the handshake's
         * signing on the token included). */
        pthread_attr_init(&attr);
        pthread_attr_setstacksize(&attr, UPLINK_STACK);
        rc = -pthread_create(&up->thread, &attr, uplink_main, up);
        pthread_attr_destroy(&attr);
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        if (rc < 0) {
            snprintf(err, errlen, "cannot start the uplink thread");
            ret = rc;
            goto out;
        }
        up->running = true;
        rc = renewer_start(d, i, uc, up->stop_fd, uplink_reload_tls, &up->renewer);
        if (rc < 0)
            log_err("uplink %s: cannot start its renewal thread: %s", uc->name, strerror(-rc));
    }
out:
    uplink_keys_free(keys, cfg->n_uplinks);
    return ret;
}

void uplinks_stop(struct daemon *d)
{
    for (unsigned i = 0; i < d->n_uplinks; i++) {
        struct uplink *up = &d->uplinks[i];
        if (up->stop_fd >= 0 && eventfd_write(up->stop_fd, 1) < 0)
            log_debug("uplink: stop: %s", strerror(errno));
        if (up->running)
            pthread_join(up->thread, NULL);
        renewer_free(up->renewer);
        tls_client_free(up->tls);
        for (unsigned k = 0; k < up->n_retired; k++)
            tls_client_free(up->retired[k]);
        if (up->stop_fd >= 0)
            close(up->stop_fd);
    }
    free(d->uplinks);
    d->uplinks = NULL;
    d->n_uplinks = 0;
}
