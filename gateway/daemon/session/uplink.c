/*
 * uplink.c: our uplinks (uplink.h), the spoke side of a tunnel: one thread
 * per [uplink] section dials its hub, hands the session to the data path
 * (tunnel.c) once the hub's CONFIG is applied, and dials again with backoff
 * when it ends.
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
    char host[256], port[8], server_name[256];
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

static int connect_to(struct uplink *up, struct sockaddr_storage *ss, char *err, size_t errlen)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL, *ai;
    int fd = -1, rc;

    rc = getaddrinfo(up->host, up->port, &hints, &res);
    if (rc != 0) {
        snprintf(err, errlen, "cannot resolve %s: %s", up->host, gai_strerror(rc));
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
        if (poll(&p, 1, 10000) != 1 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0 ||
            soerr) {
            errno = soerr ? soerr : ETIMEDOUT;
            goto next;
        }
        memcpy(ss, ai->ai_addr, ai->ai_addrlen);
        freeaddrinfo(res);
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &(int){1}, sizeof(int));
        return fd;
next:
        snprintf(err, errlen, "cannot connect to %s: %s", up->cfg->server, strerror(errno));
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    return -ECONNREFUSED;
}

/*
 * Read the hub's first frame, within the deadline: 0 with a whole CONFIG at the start of rbuf;
 * -ECONNABORTED when it is a CLOSE (its reason in why); -EPROTO for anything
 * else; -ECONNRESET or -ETIMEDOUT when none came.
 */
static int read_first_frame(struct conn *c, long long deadline, char *why, size_t whylen)
{
    struct tunnel *t = c->tun;

    for (;;) {
        ssize_t n;
        size_t flen = t->rlen >= FRAME_HDR ? ((size_t)t->rbuf[2] << 8 | t->rbuf[3]) : 0;
        if (t->rlen >= FRAME_HDR && t->rbuf[0] == T_CLOSE && t->rbuf[1] == 0 &&
            flen <= CLOSE_MAX && t->rlen >= FRAME_HDR + flen) {
            size_t k;
            snprintf(why, whylen, "%.*s", (int)flen, (const char *)t->rbuf + FRAME_HDR);
            for (k = 0; why[k]; k++) /* the hub's words go to our log: printable only */
                if ((unsigned char)why[k] < 0x20 || (unsigned char)why[k] > 0x7e)
                    why[k] = '?';
            return -ECONNABORTED;
        }
        if (t->rlen >= FRAME_HDR &&
            (t->rbuf[1] != 0 ||
             (t->rbuf[0] == T_CLOSE ? flen > CLOSE_MAX
                                    : t->rbuf[0] != T_CONFIG || flen > CONFIG_MAX)))
            return -EPROTO;
        if (t->rlen >= FRAME_HDR && t->rbuf[0] == T_CONFIG && t->rlen >= FRAME_HDR + flen)
            return 0;
        if (gnutls_record_check_pending(c->tls) == 0) {
            struct pollfd p = {.fd = c->fd, .events = POLLIN};
            if (tunnel_now_s() > deadline || poll(&p, 1, 1000) < 0)
                return -ETIMEDOUT;
        }
        n = gnutls_record_recv(c->tls, t->rbuf + t->rlen, RBUF - t->rlen);
        if (n == GNUTLS_E_AGAIN || n == GNUTLS_E_INTERRUPTED)
            continue;
        if (n <= 0)
            return -ECONNRESET;
        t->rlen += (size_t)n;
    }
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
                     fc->routes[i], up->cfg->server, up->cfg->name);
            continue;
        }
        snprintf(u->routes[u->n_routes++], PS_ADDRLEN, "%s", fc->routes[i]);
    }
    for (size_t i = 0; i < fc->n_networks && u->n_allowed < PS_MAX_PREFIXES; i++) {
        if (!config_prefix_inside(up->d->cfg->tunnel.peer_networks,
                                  up->d->cfg->tunnel.n_peer_networks, fc->networks[i])) {
            log_warn("uplink %s: network %s from %s is outside [tunnel] peer-networks: no "
                     "forwarding to it from the tunnel", up->cfg->name, fc->networks[i],
                     up->cfg->server);
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
                     up->cfg->name, up->cfg->server, fc->udp,
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

/* Connect and handshake with the hub before the deadline: the socket, with
 * the session in *out and the hub's address in ss; -1 (logged) when not. */
static int uplink_handshake(struct uplink *up, long long deadline, struct sockaddr_storage *ss,
                            gnutls_session_t *out)
{
    struct daemon *d = up->d;
    gnutls_session_t tls = NULL;
    char err[512] = "";
    int fd, rc;

    fd = connect_to(up, ss, err, sizeof(err));
    if (fd < 0) {
        log_info("uplink %s: %s", up->cfg->name, err);
        return -1;
    }
    /* Our signature happens in the handshake: the token must stay put. */
    pthread_rwlock_rdlock(&d->token_lock);
    rc = tls_client_session(up->tls, fd, up->server_name, &tls);
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
                pki_hub_lacks_name(tls, up->server_name, up->cfg->name, err, sizeof(err))) {
                /* Our own check of the hub, not the hub refusing us. */
                log_err("uplink %s: hub %s: %s", up->cfg->name, up->cfg->server, err);
            } else if (rc == GNUTLS_E_CERTIFICATE_VERIFICATION_ERROR &&
                gnutls_certificate_verification_status_print(status, GNUTLS_CRT_X509, &txt,
                                                             0) == 0) {
                log_err("uplink %s: hub %s refused: %s", up->cfg->name, up->cfg->server, txt.data);
                gnutls_free(txt.data);
            } else {
                log_info("uplink %s: handshake with %s failed: %s", up->cfg->name,
                         up->cfg->server, gnutls_strerror(rc));
            }
            pthread_rwlock_unlock(&d->token_lock);
            gnutls_deinit(tls);
            close(fd);
            return -1;
        }
        p.events = gnutls_record_get_direction(tls) ? POLLOUT : POLLIN;
        if (tunnel_now_s() > deadline || poll(&p, 1, 1000) < 0) {
            log_info("uplink %s: handshake with %s timed out", up->cfg->name, up->cfg->server);
            pthread_rwlock_unlock(&d->token_lock);
            gnutls_deinit(tls);
            close(fd);
            return -1;
        }
    }
    pthread_rwlock_unlock(&d->token_lock);
    *out = tls;
    return fd;
}

/* The hub's first frame, applied: 0, or <0 with c ended (and logged). */
static int uplink_configure(struct uplink *up, struct conn *c, long long deadline)
{
    char err[512] = "";
    size_t flen;
    int rc;

    rc = read_first_frame(c, deadline, err, sizeof(err));
    if (rc < 0) {
        if (rc == -ECONNABORTED)
            log_err("uplink %s: %s closed the tunnel before its CONFIG: %s", up->cfg->name,
                    up->cfg->server, err[0] ? err : "no reason given");
        else if (rc == -ECONNRESET)
            log_err("uplink %s: %s closed the connection before its CONFIG: it refused our "
                    "certificate (revoked, not enrolled, not a tunnel peer? see the hub's log)",
                    up->cfg->name, up->cfg->server);
        else
            log_err("uplink %s: no CONFIG from %s (%s)", up->cfg->name, up->cfg->server,
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

/* Wait for the session to end, or for the daemon to stop. */
static void uplink_wait(struct uplink *up, struct conn *c)
{
    for (;;) {
        struct pollfd p[2] = {{.fd = c->tun->done_fd, .events = POLLIN},
                              {.fd = up->stop_fd, .events = POLLIN}};
        if (poll(p, 2, -1) < 0 && errno != EINTR)
            break;
        if (p[0].revents)
            break;
        if (p[1].revents) {
            conn_kill(c, KILL_SHUTDOWN);
            p[1].fd = -1;
            poll(p, 1, 3000);
            break;
        }
    }
}

/* One connection to the hub, until it ends. */
static void uplink_once(struct uplink *up)
{
    struct daemon *d = up->d;
    struct sockaddr_storage ss = {0};
    gnutls_session_t tls = NULL;
    struct conn *c = NULL;
    long long deadline = tunnel_now_s() + 10;
    int fd;

    fd = uplink_handshake(up, deadline, &ss, &tls);
    if (fd < 0)
        return;
    c = sessions_conn_new(d, &d->upl, fd, &ss, false);
    if (!c) {
        gnutls_deinit(tls);
        close(fd);
        return;
    }
    c->tls = tls;
    snprintf(c->peer, sizeof(c->peer), "%s", up->cfg->name);
    snprintf(c->remote, sizeof(c->remote), "%s", up->cfg->server);
    c->role = ROLE_TUNNEL;
    c->tun = tunnel_new(d->cfg->tunnel.mtu, d->cfg->tunnel.keepalive, true);
    if (!c->tun) {
        conn_close(c, "out of memory");
        return;
    }
    atomic_fetch_sub(&c->l->handshaking, 1);
    atomic_fetch_add(&c->l->sessions, 1);
    atomic_store(&c->state, CONN_OPEN);
    if (uplink_configure(up, c, deadline + 5) < 0)
        return;
    log_info("uplink %s: connected to %s, %s up, %s <-> %s", up->cfg->name, up->cfg->server,
             c->tun->ifname, c->tun->local, c->tun->remote);
    conn_ref(c);
    tunnel_hand_over(c);
    uplink_wait(up, c);
    conn_unref(c);
}

static void *uplink_main(void *arg)
{
    struct uplink *up = arg;
    unsigned backoff = 1;
    unsigned seed = (unsigned)time(NULL) ^ (unsigned)(uintptr_t)up;

    while (!up->d->stopping) {
        long long t0 = tunnel_now_s();
        unsigned ms;
        uplink_once(up);
        if (up->d->stopping)
            break;
        if (tunnel_now_s() - t0 > 60)
            backoff = 1;
        /* 1 s doubling to 60 s, +-20 % jitter so spokes do not return in step. */
        ms = backoff * 1000u;
        ms = ms * 4 / 5 + (unsigned)(rand_r(&seed) % (ms * 2 / 5 + 1));
        log_info("uplink %s: reconnecting in %u ms", up->cfg->name, ms);
        if (!nap(up, ms))
            break;
        backoff = backoff < 60 ? (backoff * 2 > 60 ? 60 : backoff * 2) : 60;
    }
    return NULL;
}

static int uplink_tls(struct daemon *d, const struct cfg_uplink *uc, struct tls_client **out,
                      char *err, size_t errlen)
{
    struct tls_client_opts o = {0};
    gnutls_privkey_t key = NULL;
    char *cert = uc->cert ? NULL : fs_join(d->cfg->pki.dir, "device.crt");
    char *ca = uc->ca ? NULL : fs_join(d->cfg->pki.dir, "hub-ca.crt");
    int rc;

    rc = p11_key_load(d->pki->tok, uc->key ? uc->key : PKI_LABEL_DEVICE, &key);
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
    int rc = 0;

    for (unsigned i = 0; i < d->n_uplinks; i++) {
        struct uplink *up = &d->uplinks[i];
        struct tls_client *fresh = NULL;
        if (uplink_tls(d, up->cfg, &fresh, err, errlen) < 0) {
            rc = -EIO;
            continue;
        }
        if (up->n_retired < 8)
            up->retired[up->n_retired++] = up->tls;
        else
            tls_client_free(up->tls);
        up->tls = fresh;
    }
    return rc;
}

int uplink_reload_tls(struct daemon *d, unsigned index, char *err, size_t errlen)
{
    struct uplink *up = &d->uplinks[index];
    struct tls_client *fresh = NULL;
    int rc;

    pthread_rwlock_rdlock(&d->token_lock);
    rc = uplink_tls(d, up->cfg, &fresh, err, errlen);
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

    if (!cfg->n_uplinks)
        return 0;
    d->uplinks = calloc(cfg->n_uplinks, sizeof(*d->uplinks));
    if (!d->uplinks)
        return -ENOMEM;
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
        split_hostport(uc->server, up->host, sizeof(up->host), up->port, sizeof(up->port));
        snprintf(up->server_name, sizeof(up->server_name), "%s",
                 uc->server_name ? uc->server_name : up->host);
        rc = uplink_tls(d, uc, &up->tls, err, errlen);
        if (rc < 0)
            return rc;
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
            return rc;
        }
        up->running = true;
        rc = renewer_start(d, i, uc, up->stop_fd, uplink_reload_tls, &up->renewer);
        if (rc < 0)
            log_err("uplink %s: cannot start its renewal thread: %s", uc->name, strerror(-rc));
    }
    return 0;
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
