/*
 * tunnel.c: tunnel sessions (docs/tunnel-protocol.md), on the hub and on our
 * uplinks. A session has two threads: one moves packets from the TUN into
 * TLS records (several frames a record), one from TLS to the TUN. GnuTLS
 * allows one sender and one receiver on a session at once; the sender side
 * is serialised by send_lock (packets, keepalives, CLOSE).
 */
/* SOCK_NONBLOCK/SOCK_CLOEXEC on socket(): musl and glibc declare them under
 * _GNU_SOURCE. */
#define _GNU_SOURCE
#include "daemon.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <linux/if_tun.h>
#include <linux/virtio_net.h>

#include <json-c/json.h>

#include "build-config.h"
#include "config.h"
#include "fault.h"
#include "frame.h"
#include "fsutil.h"
#include "log.h"
#include "p11.h"
#include "pki.h"
#include "privsep.h"
#include "registry.h"
#include "sessions.h"
#include "tls.h"
#include "trustdb.h"
#include "uplink-renew.h"

#define T_CONFIG FRAME_CONFIG
#define T_PACKET FRAME_PACKET
#define T_KEEPALIVE FRAME_KEEPALIVE
#define T_CLOSE FRAME_CLOSE
#define T_OFFLOAD FRAME_OFFLOAD
#define CONFIG_MAX FRAME_CONFIG_MAX
#define CLOSE_MAX FRAME_CLOSE_MAX
#define REC_MAX 16384
/* The largest packet a TUN read gives with TCP segmentation on (IPv6: a
 * 64 KiB payload and its header), and the room one read needs. */
#define READ_MAX (65535 + 40)
#define FRAME_ROOM (FRAME_HDR + FRAME_OFFHDR + READ_MAX)
/* TUN -> TLS: two reads' room (many MTU-sized packets, or one or two
 * segment trains) go out in one batch of records. */
#define TXBUF (2 * FRAME_ROOM)
/* TLS -> TUN: the largest frame and a record behind it. */
#define RBUF (2 * REC_MAX + FRAME_HDR + FRAME_OFFHDR + FRAME_SEGMENTS_MAX)
#define VNET_HDR sizeof(struct virtio_net_hdr)

struct tunnel {
    int tun_fd, wake_fd, done_fd;
    char ifname[PS_IFNAMSIZ];
    char local[PS_ADDRLEN], remote[PS_ADDRLEN];
    uint32_t pool_index; /* 0: not from the pool */
    unsigned mtu, keepalive;
    bool uplink;
    pthread_mutex_t send_lock;
    atomic_int threads;
    atomic_bool stop;
    atomic_bool peer_said_close;
    _Atomic long long last_rx, last_tx;
    atomic_ullong pkts_in, pkts_out;
    /* Offloads (docs/tunnel-protocol.md, OFFLOAD): the hub offers them in
     * its CONFIG; a peer that takes them sends OFFLOAD; from then on both
     * sides may send SEGMENTS, and each turns its TUN's offloads on. */
    bool offer;          /* hub: the CONFIG offered them */
    bool got_offload;    /* hub: OFFLOAD came */
    atomic_bool seg_rx;  /* SEGMENTS may arrive */
    atomic_bool seg_tx;  /* we may send SEGMENTS (the TX thread turns the offloads on) */
    atomic_bool offloading; /* the TUN's offloads are on: status shows it */
    pthread_mutex_t reason_lock;
    char reason[200];
    char *networks[PS_MAX_PREFIXES];
    unsigned n_networks;
    unsigned char *rbuf;
    size_t rlen;
};

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

static long long now_s(void)
{
    return (long long)time(NULL);
}

static void tunnel_end(struct conn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void tunnel_end(struct conn *c, const char *fmt, ...)
{
    struct tunnel *t = c->tun;
    va_list ap;

    pthread_mutex_lock(&t->reason_lock);
    if (!t->reason[0]) {
        va_start(ap, fmt);
        vsnprintf(t->reason, sizeof(t->reason), fmt, ap);
        va_end(ap);
    }
    pthread_mutex_unlock(&t->reason_lock);
    atomic_store(&t->stop, true);
    if (eventfd_write(t->wake_fd, 1) < 0)
        log_debug("tunnel: wake: %s", strerror(errno));
}

void tunnel_wake(struct conn *c)
{
    char why[64];

    conn_kill_text(c, atomic_load(&c->kill), why, sizeof(why));
    tunnel_end(c, "%s", why);
}

/* Send a whole buffer of frames; the caller holds send_lock. */
static int send_locked(struct conn *c, const unsigned char *buf, size_t len)
{
    struct tunnel *t = c->tun;
    size_t off = 0;

    while (off < len) {
        ssize_t n = gnutls_record_send(c->tls, buf + off, len - off);
        if (n == GNUTLS_E_AGAIN || n == GNUTLS_E_INTERRUPTED) {
            struct pollfd p[2] = {{.fd = c->fd, .events = POLLOUT},
                                  {.fd = t->wake_fd, .events = POLLIN}};
            /* GnuTLS wants the same data again after EAGAIN. */
            if (poll(p, 2, 1000) > 0 && (p[1].revents & POLLIN) && atomic_load(&t->stop))
                return -ECANCELED;
            continue;
        }
        if (n < 0)
            return -EIO;
        off += (size_t)n;
    }
    atomic_fetch_add(&c->bytes_out, len);
    atomic_fetch_add(&c->l->bytes_out, len);
    atomic_store(&t->last_tx, now_s());
    return 0;
}

static int send_frame(struct conn *c, int type, const void *payload, size_t len)
{
    unsigned char buf[FRAME_HDR + CONFIG_MAX];
    int rc;

    if (len > CONFIG_MAX)
        return -EMSGSIZE;
    frame_header(buf, type, len);
    if (len)
        memcpy(buf + FRAME_HDR, payload, len);
    pthread_mutex_lock(&c->tun->send_lock);
    rc = send_locked(c, buf, FRAME_HDR + len);
    pthread_mutex_unlock(&c->tun->send_lock);
    return rc;
}

/* ---- TUN -> TLS ----------------------------------------------------------- */

/* Let the TUN hand us checksums to complete and up to 64 KiB of TCP
 * segments per read. Only the TX thread calls it: its reads then expect
 * them. False when the kernel refuses (one MTU-sized packet per frame). */
static bool offloads_on(struct conn *c)
{
    struct tunnel *t = c->tun;
    unsigned long f = TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_TSO_ECN;

    if (ioctl(t->tun_fd, TUNSETOFFLOAD, f) < 0) {
        log_info("tunnel %s: the TUN refused offloads (%s): one packet per frame", t->ifname,
                 strerror(errno));
        return false;
    }
    log_debug("tunnel %s: offloads on", t->ifname);
    return true;
}

/* Read one packet into the batch at buf + *len as a frame. 1: added (or
 * dropped: too long for its frame); 0: the TUN is empty; -1: it failed. */
static int read_packet(struct conn *c, unsigned char *buf, size_t *len, bool seg)
{
    struct tunnel *t = c->tun;
    struct virtio_net_hdr vh;
    unsigned char *pkt = buf + *len + FRAME_HDR + (seg ? FRAME_OFFHDR : 0);
    struct iovec iov[2] = {{.iov_base = &vh, .iov_len = VNET_HDR},
                           {.iov_base = pkt, .iov_len = READ_MAX}};
    struct frame f = {.type = FRAME_SEGMENTS, .payload = pkt};
    ssize_t r = readv(t->tun_fd, iov, 2);
    size_t n;

    if (r < 0 && errno != EAGAIN && errno != EINTR) {
        tunnel_end(c, "TUN %s: %s", t->ifname, strerror(errno));
        return -1;
    }
    if (r <= (ssize_t)VNET_HDR)
        return 0;
    n = (size_t)r - VNET_HDR;
    f.len = n;
    f.off.flags = vh.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM;
    f.off.gso_type = vh.gso_type;
    f.off.gso_size = vh.gso_size;
    f.off.csum_start = vh.csum_start;
    f.off.csum_offset = vh.csum_offset;
    /* hdr_len stays 0 for the checks (the kernel's is its linear part, not
     * the headers); set from the checked headers below. What the other
     * side would refuse as malformed (a packet over the MTU or over 64 KiB,
     * or offload fields it cannot take) is dropped here, as a link drops
     * what it cannot carry. */
    if (n > FRAME_SEGMENTS_MAX ||
        (!seg && (f.off.flags || f.off.gso_type || n > t->mtu || !frame_packet_ok(pkt, n))) ||
        (seg && frame_segments_bad(&f.off, pkt, n, t->mtu))) {
        log_debug("tunnel %s: dropped a %zu-byte packet (offload %u/%u)", t->ifname, n,
                  f.off.flags, f.off.gso_type);
        return 1;
    }
    if (seg) {
        f.off.hdr_len = (unsigned short)frame_segments_headers(&f.off, pkt);
        frame_segments_header(buf + *len, &f.off, n);
        *len += FRAME_HDR + FRAME_OFFHDR + n;
        atomic_fetch_add(&t->pkts_out, frame_segment_count(&f));
    } else {
        frame_header(buf + *len, T_PACKET, n);
        *len += FRAME_HDR + n;
        atomic_fetch_add(&t->pkts_out, 1);
    }
    return 1;
}

static void *tx_main(void *arg)
{
    struct conn *c = arg;
    struct tunnel *t = c->tun;
    unsigned char *buf = malloc(TXBUF);
    bool drained = true; /* the last read found the TUN empty: sleep in poll */
    bool seg = false, tried = false;

    if (!buf) {
        tunnel_end(c, "out of memory");
        return NULL;
    }
    while (!atomic_load(&t->stop)) {
        size_t len = 0;
        int r = 1;

        if (drained) {
            struct pollfd p[2] = {{.fd = t->tun_fd, .events = POLLIN},
                                  {.fd = t->wake_fd, .events = POLLIN}};
            long long idle = now_s() - atomic_load(&t->last_tx);
            int timeout = idle >= (long long)t->keepalive
                              ? 0
                              : (int)((long long)t->keepalive - idle) * 1000;
            if (poll(p, 2, timeout) < 0 && errno != EINTR) {
                tunnel_end(c, "poll: %s", strerror(errno));
                break;
            }
            if (atomic_load(&t->stop))
                break;
        }
        if (!tried && atomic_load(&t->seg_tx)) {
            tried = true;
            seg = offloads_on(c);
            atomic_store(&t->offloading, seg);
        }
        /* As many packets as two of the largest reads leave room for, read
         * straight into their frames; poll only once the TUN is empty (a
         * busy tunnel never sleeps in poll). */
        while (len + FRAME_ROOM <= TXBUF && (r = read_packet(c, buf, &len, seg)) > 0)
            ;
        drained = r <= 0;
        if (r < 0)
            break;
        if (len) {
            int rc;
            pthread_mutex_lock(&t->send_lock);
            rc = send_locked(c, buf, len);
            pthread_mutex_unlock(&t->send_lock);
            if (rc < 0) {
                tunnel_end(c, "send failed");
                break;
            }
        } else if (now_s() - atomic_load(&t->last_tx) >= (long long)t->keepalive) {
            if (send_frame(c, T_KEEPALIVE, NULL, 0) < 0) {
                tunnel_end(c, "send failed");
                break;
            }
        }
    }
    free(buf);
    return NULL;
}

/* ---- TLS -> TUN ----------------------------------------------------------- */

/* One packet to the TUN, with the offload header the kernel reads first. A
 * full TUN queue drops the packet, as a full link would. */
static void write_packet(struct conn *c, const struct frame *f)
{
    struct tunnel *t = c->tun;
    struct virtio_net_hdr vh = {0};
    struct iovec iov[2] = {{.iov_base = &vh, .iov_len = VNET_HDR},
                           {.iov_base = (void *)f->payload, .iov_len = f->len}};

    if (f->type == FRAME_SEGMENTS) {
        /* Checked by frame_next. DATA_VALID is not taken on trust: the
         * kernel checks what the peer sent. */
        vh.flags = f->off.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM;
        vh.gso_type = f->off.gso_type;
        vh.hdr_len = f->off.hdr_len;
        vh.gso_size = f->off.gso_size;
        vh.csum_start = f->off.csum_start;
        vh.csum_offset = f->off.csum_offset;
    }
    if (writev(t->tun_fd, iov, 2) < 0 && errno != EAGAIN && errno != ENOBUFS)
        log_debug("TUN %s: write: %s", t->ifname, strerror(errno));
    atomic_fetch_add(&t->pkts_in, frame_segment_count(f));
}

/* Parse what is buffered. 1: consumed what was whole; <0: the session ended. */
static int parse_frames(struct conn *c)
{
    struct tunnel *t = c->tun;
    size_t off = 0;

    for (;;) {
        struct frame f;
        const char *why = "?";
        unsigned allow = (t->offer && !t->got_offload ? FRAME_ALLOW_OFFLOAD : 0) |
                         (atomic_load(&t->seg_rx) ? FRAME_ALLOW_SEGMENTS : 0);
        long n = frame_next(t->rbuf + off, t->rlen - off, t->mtu, allow, &f, &why);
        if (n == 0)
            break;
        if (n < 0) {
            tunnel_end(c, "malformed frame: %s (type %d, %zu bytes)", why, t->rbuf[off],
                       t->rlen - off >= FRAME_HDR
                           ? ((size_t)t->rbuf[off + 2] << 8 | t->rbuf[off + 3])
                           : 0);
            return -EPROTO;
        }
        if (f.type == FRAME_PACKET || f.type == FRAME_SEGMENTS) {
            write_packet(c, &f);
        } else if (f.type == FRAME_OFFLOAD) {
            t->got_offload = true;
            atomic_store(&t->seg_rx, true);
            atomic_store(&t->seg_tx, true);
            log_debug("tunnel %s: the peer takes offloads", t->ifname);
        } else if (f.type == FRAME_CLOSE) {
            atomic_store(&t->peer_said_close, true);
            tunnel_end(c, "closed by peer: %.*s", (int)f.len, (const char *)f.payload);
            return -ECONNRESET;
        }
        off += (size_t)n;
    }
    if (off) {
        memmove(t->rbuf, t->rbuf + off, t->rlen - off);
        t->rlen -= off;
    }
    return 1;
}

static void *rx_main(void *arg)
{
    struct conn *c = arg;
    struct tunnel *t = c->tun;

    if (t->rlen && parse_frames(c) < 0)
        return NULL;
    while (!atomic_load(&t->stop)) {
        /* Read first; sleep in poll only when nothing is there. */
        ssize_t n = gnutls_record_recv(c->tls, t->rbuf + t->rlen, RBUF - t->rlen);
        if (n == GNUTLS_E_AGAIN || n == GNUTLS_E_INTERRUPTED) {
            struct pollfd p[2] = {{.fd = c->fd, .events = POLLIN},
                                  {.fd = t->wake_fd, .events = POLLIN}};
            int r = poll(p, 2, 1000);
            if (atomic_load(&t->stop))
                break;
            if (r == 0 || (r < 0 && errno == EINTR)) {
                long long quiet = now_s() - atomic_load(&t->last_rx);
                if (quiet > 3 * (long long)t->keepalive) {
                    tunnel_end(c, "peer dead: nothing heard for %lld s", quiet);
                    break;
                }
            }
            continue;
        }
        if (n == 0) {
            tunnel_end(c, "closed by peer");
            break;
        }
        if (n < 0) {
            tunnel_end(c, "TLS: %s", gnutls_strerror((int)n));
            break;
        }
        t->rlen += (size_t)n;
        atomic_store(&t->last_rx, now_s());
        atomic_fetch_add(&c->bytes_in, (unsigned long long)n);
        atomic_fetch_add(&c->l->bytes_in, (unsigned long long)n);
        if (parse_frames(c) < 0)
            break;
    }
    return NULL;
}

/* ---- life cycle ------------------------------------------------------------ */

static void pool_release(struct daemon *d, uint32_t index)
{
    if (!index)
        return;
    pthread_mutex_lock(&d->pool_lock);
    d->pool_used[index / 8] &= (uint8_t) ~(1u << (index % 8));
    pthread_mutex_unlock(&d->pool_lock);
}

static uint32_t pool_take(struct daemon *d)
{
    uint32_t found = 0;

    pthread_mutex_lock(&d->pool_lock);
    /* .0 is the network, .1 the hub, the last the broadcast address. */
    for (uint32_t i = 2; d->pool_used && i + 1 < d->pool_size; i++) {
        if (!(d->pool_used[i / 8] & (1u << (i % 8)))) {
            d->pool_used[i / 8] |= (uint8_t)(1u << (i % 8));
            found = i;
            break;
        }
    }
    pthread_mutex_unlock(&d->pool_lock);
    return found;
}

static void tunnel_finish(struct conn *c)
{
    struct tunnel *t = c->tun;
    struct daemon *d = c->d;
    struct ps_msg m = {.type = PS_TUN_DOWN};
    char err[PS_ERRLEN], reason[220];

    snprintf(reason, sizeof(reason), "%s", t->reason[0] ? t->reason : "closed");
    if (!atomic_load(&t->peer_said_close)) {
        size_t rl = strlen(reason) < CLOSE_MAX ? strlen(reason) : CLOSE_MAX;
        send_frame(c, T_CLOSE, reason, rl);
    }
    /* Our TUN fd goes first: the kernel then detaches the queue at once, and
     * the parent's link deletion does not wait for packets still queued on
     * it (seconds under traffic). Both threads are out; nothing reads it. */
    if (t->tun_fd >= 0) {
        close(t->tun_fd);
        t->tun_fd = -1;
    }
    snprintf(m.u.down.ifname, sizeof(m.u.down.ifname), "%s", t->ifname);
    if (t->ifname[0] && ps_request(&m, NULL, err, sizeof(err)) < 0)
        log_err("tunnel %s: teardown: %s", t->ifname, err);
    pool_release(d, t->pool_index);
    t->pool_index = 0;
    if (t->ifname[0])
        log_info("%s peer %s serial %s from %s: tunnel %s down (in %llu, out %llu packets)",
                 c->l->name, c->peer[0] ? c->peer : "?", c->serial[0] ? c->serial : "?",
                 c->remote, t->ifname, atomic_load(&t->pkts_in), atomic_load(&t->pkts_out));
    conn_close(c, reason);
    if (t->done_fd >= 0 && eventfd_write(t->done_fd, 1) < 0)
        log_debug("tunnel: done: %s", strerror(errno));
}

static void *thread_entry(void *arg)
{
    void **a = arg;
    void *(*fn)(void *) = (void *(*)(void *))a[0];
    struct conn *c = a[1];

    free(arg);
    fn(c);
    atomic_store(&c->tun->stop, true);
    if (eventfd_write(c->tun->wake_fd, 1) < 0)
        log_debug("tunnel: wake: %s", strerror(errno));
    /* The last of the two threads out takes everything down. */
    if (atomic_fetch_sub(&c->tun->threads, 1) == 1)
        tunnel_finish(c);
    conn_unref(c);
    return NULL;
}

static int spawn(struct conn *c, void *(*fn)(void *))
{
    pthread_t th;
    pthread_attr_t attr;
    void **a = malloc(2 * sizeof(void *));
    sigset_t all, old;
    int rc;

    if (!a)
        return -ENOMEM;
    a[0] = (void *)fn;
    a[1] = c;
    conn_ref(c);
    atomic_fetch_add(&c->tun->threads, 1);
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&attr, 128 * 1024);
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    rc = -pthread_create(&th, &attr, thread_entry, a);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    pthread_attr_destroy(&attr);
    if (rc < 0) {
        atomic_fetch_sub(&c->tun->threads, 1);
        conn_unref(c);
        free(a);
    }
    return rc;
}

/*
 * The thread that set the tunnel up (a slow-pool worker on the hub, the
 * uplink thread) gives c to the two tunnel threads. A kill pending from the
 * setup is acted on here and the threads never start; after the hand-off a
 * kill wakes them (conn_kill). The caller must not touch c afterwards unless
 * it holds a reference of its own.
 */
static void tunnel_hand_over(struct conn *c)
{
    struct tunnel *t = c->tun;

    if (conn_hand_to_tunnel(c) != KILL_NONE) {
        tunnel_wake(c);
        tunnel_finish(c);
        return;
    }
    /* Our own hold on `threads` while we start them: a thread that ends at
     * once (a kill right after the hand-off) must not take the tunnel down
     * while we still start the other. */
    atomic_store(&t->threads, 1);
    if (spawn(c, rx_main) < 0 || spawn(c, tx_main) < 0)
        tunnel_end(c, "cannot start");
    if (atomic_fetch_sub(&t->threads, 1) == 1)
        tunnel_finish(c);
}

static struct tunnel *tunnel_new(unsigned mtu, unsigned keepalive, bool uplink)
{
    struct tunnel *t = calloc(1, sizeof(*t));

    if (!t)
        return NULL;
    t->rbuf = malloc(RBUF);
    t->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    t->done_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (!t->rbuf || t->wake_fd < 0 || t->done_fd < 0) {
        free(t->rbuf);
        if (t->wake_fd >= 0)
            close(t->wake_fd);
        if (t->done_fd >= 0)
            close(t->done_fd);
        free(t);
        return NULL;
    }
    t->tun_fd = -1;
    t->mtu = mtu;
    t->keepalive = keepalive;
    t->uplink = uplink;
    pthread_mutex_init(&t->send_lock, NULL);
    pthread_mutex_init(&t->reason_lock, NULL);
    atomic_store(&t->last_rx, now_s());
    atomic_store(&t->last_tx, now_s());
    return t;
}

void tunnel_free(struct tunnel *t)
{
    if (!t)
        return;
    if (t->tun_fd >= 0)
        close(t->tun_fd);
    close(t->wake_fd);
    close(t->done_fd);
    for (unsigned i = 0; i < t->n_networks; i++)
        free(t->networks[i]);
    pthread_mutex_destroy(&t->send_lock);
    pthread_mutex_destroy(&t->reason_lock);
    free(t->rbuf);
    free(t);
}

static int tun_up(struct conn *c, struct ps_tun_up *u, char *err, size_t errlen)
{
    struct ps_msg *m = calloc(1, sizeof(*m));
    int fd = -1, rc;

    if (!m)
        return -ENOMEM;
    m->type = PS_TUN_UP;
    m->u.up = *u;
    rc = ps_request(m, &fd, err, errlen);
    free(m);
    if (rc < 0)
        return rc;
    if (fd < 0) {
        snprintf(err, errlen, "no TUN descriptor from the parent");
        return -EPROTO;
    }
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    c->tun->tun_fd = fd;
    snprintf(c->tun->ifname, sizeof(c->tun->ifname), "%s", u->ifname);
    return 0;
}

static void ip4(uint32_t a, char *buf, size_t len)
{
    struct in_addr in = {.s_addr = htonl(a)};

    inet_ntop(AF_INET, &in, buf, (socklen_t)len);
}

/* The setup thread ends c before the hand-off: a CLOSE with the reason (the
 * kill's when one is pending), the interface and pool address given back. */
static void setup_abort(struct conn *c, const char *why)
{
    if (atomic_load(&c->kill) != KILL_NONE)
        tunnel_wake(c);
    else
        tunnel_end(c, "%s", why);
    tunnel_finish(c);
}

/* The CONFIG frame's JSON (docs/tunnel-protocol.md), malloc'ed. */
static char *hub_config(struct daemon *d, const struct tunnel *t)
{
    const struct config *cfg = d->cfg;
    struct json_object *o = json_object_new_object(), *arr;
    char *js;

    json_object_object_add(o, "version", json_object_new_int(1));
    json_object_object_add(o, "address", json_object_new_string(t->remote));
    json_object_object_add(o, "peer", json_object_new_string(t->local));
    json_object_object_add(o, "prefix",
                           json_object_new_int((int)(32 - __builtin_ctz(d->pool_size))));
    json_object_object_add(o, "mtu", json_object_new_int((int)t->mtu));
    json_object_object_add(o, "keepalive", json_object_new_int((int)t->keepalive));
    if (t->offer)
        json_object_object_add(o, "offload", json_object_new_boolean(1));
    arr = json_object_new_array();
    for (unsigned i = 0; i < cfg->tunnel.n_routes; i++)
        json_object_array_add(arr, json_object_new_string(cfg->tunnel.routes[i]));
    json_object_object_add(o, "routes", arr);
    arr = json_object_new_array();
    for (unsigned i = 0; i < t->n_networks; i++)
        json_object_array_add(arr, json_object_new_string(t->networks[i]));
    json_object_object_add(o, "networks", arr);
    js = strdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN |
                                                      JSON_C_TO_STRING_NOSLASHESCAPE));
    json_object_put(o);
    return js;
}

/*
 * A tunnel peer passed the handshake; this slow-pool worker owns c (the loop
 * gave it up) until tunnel_hand_over gives it to the tunnel threads. A kill
 * meanwhile stays pending on c: it is looked at before the pool address and
 * the interface are taken, and acted on at the hand-off at the latest.
 */
void tunnel_start_hub(struct conn *c)
{
    struct daemon *d = c->d;
    const struct config *cfg = d->cfg;
    struct trustdb *db = daemon_trust(d);
    const struct peer *p = registry_find_serial(trustdb_registry(db), c->serial);
    struct ps_tun_up *u = calloc(1, sizeof(*u));
    struct tunnel *t;
    char err[PS_ERRLEN] = "";
    char *js = NULL;
    uint32_t idx;

    t = tunnel_new(cfg->tunnel.mtu, cfg->tunnel.keepalive, false);
    if (!u || !t || !p) {
        trustdb_unref(db);
        free(u);
        tunnel_free(t);
        conn_close(c, p ? "out of memory" : "peer vanished from the registry");
        return;
    }
    for (size_t i = 0; i < p->n_networks && i < PS_MAX_PREFIXES; i++) {
        snprintf(u->routes[i], PS_ADDRLEN, "%s", p->networks[i]);
        t->networks[t->n_networks++] = strdup(p->networks[i]);
        u->n_routes++;
    }
    trustdb_unref(db);
    t->offer = cfg->tunnel.offload;
    /* Whole TLS records go out at once; Nagle would only delay small ones
     * (a ping, a keepalive) behind an unacknowledged segment. */
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &(int){1}, sizeof(int));
    /* The event loop has given the socket up for good: this worker, then
     * the two tunnel threads own it. */
    pthread_mutex_lock(&c->lock);
    epoll_ctl(d->epfd, EPOLL_CTL_DEL, c->fd, NULL);
    c->tun = t;
    pthread_mutex_unlock(&c->lock);
    /* The window between the handshake's end and the tunnel threads owning
     * the connection (tests/adversarial/kill-race.sh widens it). */
    fault_point("tunnel-setup");
    if (atomic_load(&c->kill) != KILL_NONE) {
        free(u);
        setup_abort(c, NULL);
        return;
    }
    /* One tunnel per peer: a peer's older tunnels end before this one takes
     * a pool address and its routes (which the older ones would still hold). */
    daemon_supersede(d, c);
    idx = pool_take(d);
    if (!idx) {
        free(u);
        log_err("tunnel peer %s: [tunnel] pool %s is exhausted", c->peer, cfg->tunnel.pool);
        setup_abort(c, "pool exhausted");
        return;
    }
    t->pool_index = idx;
    ip4(d->pool_base + 1, t->local, sizeof(t->local));
    ip4(d->pool_base + idx, t->remote, sizeof(t->remote));
    snprintf(u->ifname, sizeof(u->ifname), "%s%llu", MTLSGW_DEFAULT_IFPREFIX,
             (unsigned long long)c->id);
    snprintf(u->peer_name, sizeof(u->peer_name), "%s", c->peer);
    snprintf(u->local, sizeof(u->local), "%s", t->local);
    snprintf(u->remote, sizeof(u->remote), "%s", t->remote);
    u->mtu = t->mtu;
    for (unsigned i = 0; i < cfg->tunnel.n_routes; i++)
        snprintf(u->allowed[u->n_allowed++], PS_ADDRLEN, "%s", cfg->tunnel.routes[i]);
    /* Nothing is made in the kernel for a connection already ending. */
    if (atomic_load(&c->kill) != KILL_NONE) {
        free(u);
        setup_abort(c, NULL);
        return;
    }
    if (tun_up(c, u, err, sizeof(err)) < 0) {
        free(u);
        log_err("tunnel peer %s serial %s from %s: no interface: %s", c->peer, c->serial,
                c->remote, err);
        setup_abort(c, "no interface");
        return;
    }
    free(u);
    js = hub_config(d, t);
    if (!js || send_frame(c, T_CONFIG, js, strlen(js)) < 0) {
        free(js);
        setup_abort(c, "cannot start");
        return;
    }
    free(js);
    log_info("tunnel peer %s serial %s from %s: %s up, %s <-> %s", c->peer, c->serial, c->remote,
             t->ifname, t->local, t->remote);
    tunnel_hand_over(c); /* c may be gone once this returns */
}

void tunnel_describe(struct conn *c, struct json_object *o)
{
    struct tunnel *t = c->tun;
    struct json_object *arr;

    if (!t)
        return;
    json_object_object_add(o, "interface", json_object_new_string(t->ifname));
    json_object_object_add(o, "address", json_object_new_string(t->uplink ? t->local : t->remote));
    arr = json_object_new_array();
    for (unsigned i = 0; i < t->n_networks; i++)
        json_object_array_add(arr, json_object_new_string(t->networks[i]));
    json_object_object_add(o, "networks", arr);
    json_object_object_add(o, "packets_in", json_object_new_int64((int64_t)atomic_load(&t->pkts_in)));
    json_object_object_add(o, "packets_out", json_object_new_int64((int64_t)atomic_load(&t->pkts_out)));
    json_object_object_add(o, "offload", json_object_new_boolean(atomic_load(&t->offloading)));
}

/* ---- addresses (the gate itself: gate.c) ----------------------------------------- */

void conn_ip(const struct conn *c, char *buf, size_t len)
{
    if (c->addr.ss_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)&c->addr)->sin_addr, buf, (socklen_t)len);
    else
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)&c->addr)->sin6_addr, buf,
                  (socklen_t)len);
}

/* ---- uplinks ------------------------------------------------------------------- */

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
            (t->rbuf[1] != 0 || (t->rbuf[0] == T_CLOSE ? flen > CLOSE_MAX
                                                       : t->rbuf[0] != T_CONFIG || flen > CONFIG_MAX)))
            return -EPROTO;
        if (t->rlen >= FRAME_HDR && t->rbuf[0] == T_CONFIG && t->rlen >= FRAME_HDR + flen)
            return 0;
        if (gnutls_record_check_pending(c->tls) == 0) {
            struct pollfd p = {.fd = c->fd, .events = POLLIN};
            if (now_s() > deadline || poll(&p, 1, 1000) < 0)
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
    rc = tun_up(c, u, err, errlen);
    if (rc == 0 && fc->offload && up->d->cfg->tunnel.offload) {
        /* SEGMENTS may come once the hub has read OFFLOAD: take them first. */
        atomic_store(&t->seg_rx, true);
        if (send_frame(c, T_OFFLOAD, NULL, 0) < 0) {
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

/* One connection to the hub, until it ends. */
static void uplink_once(struct uplink *up)
{
    struct daemon *d = up->d;
    struct sockaddr_storage ss = {0};
    gnutls_session_t tls = NULL;
    struct conn *c = NULL;
    char err[512] = "";
    long long deadline = now_s() + 10;
    size_t flen;
    int fd, rc;

    fd = connect_to(up, &ss, err, sizeof(err));
    if (fd < 0) {
        log_info("uplink %s: %s", up->cfg->name, err);
        return;
    }
    /* Our signature happens in the handshake: the token must stay put. */
    pthread_rwlock_rdlock(&d->token_lock);
    rc = tls_client_session(up->tls, fd, up->server_name, &tls);
    if (rc < 0) {
        pthread_rwlock_unlock(&d->token_lock);
        close(fd);
        return;
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
                gnutls_certificate_verification_status_print(status, GNUTLS_CRT_X509, &txt, 0) == 0) {
                log_err("uplink %s: hub %s refused: %s", up->cfg->name, up->cfg->server, txt.data);
                gnutls_free(txt.data);
            } else {
                log_info("uplink %s: handshake with %s failed: %s", up->cfg->name,
                         up->cfg->server, gnutls_strerror(rc));
            }
            pthread_rwlock_unlock(&d->token_lock);
            gnutls_deinit(tls);
            close(fd);
            return;
        }
        p.events = gnutls_record_get_direction(tls) ? POLLOUT : POLLIN;
        if (now_s() > deadline || poll(&p, 1, 1000) < 0) {
            log_info("uplink %s: handshake with %s timed out", up->cfg->name, up->cfg->server);
            pthread_rwlock_unlock(&d->token_lock);
            gnutls_deinit(tls);
            close(fd);
            return;
        }
    }
    pthread_rwlock_unlock(&d->token_lock);
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
    rc = read_first_frame(c, deadline + 5, err, sizeof(err));
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
        return;
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
            return;
        }
    }
    log_info("uplink %s: connected to %s, %s up, %s <-> %s", up->cfg->name, up->cfg->server,
             c->tun->ifname, c->tun->local, c->tun->remote);
    conn_ref(c);
    tunnel_hand_over(c);
    /* Wait for the session to end, or for the daemon to stop. */
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
    conn_unref(c);
}

static void *uplink_main(void *arg)
{
    struct uplink *up = arg;
    unsigned backoff = 1;
    unsigned seed = (unsigned)time(NULL) ^ (unsigned)(uintptr_t)up;

    while (!up->d->stopping) {
        long long t0 = now_s();
        unsigned ms;
        uplink_once(up);
        if (up->d->stopping)
            break;
        if (now_s() - t0 > 60)
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
        rc = -pthread_create(&up->thread, NULL, uplink_main, up);
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        if (rc < 0) {
            snprintf(err, errlen, "cannot start the uplink thread");
            return rc;
        }
        up->running = true;
        rc = renewer_start(d, i, uc, up->stop_fd, &up->renewer);
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
