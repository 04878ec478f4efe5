/*
 * udp.c: the UDP data channel wired into a tunnel (udp.h). The record layer
 * is dchan.c; this file has the sockets, the hub's id -> tunnel table, the
 * spoke's probe and fallback, and the path from a datagram to the TUN.
 *
 * What a stranger's datagram costs the hub: the header check and one table
 * lookup (dchan_peek_id), then for a known id the window check and one AEAD
 * check (dchan_open). Nothing is ever sent for a datagram that did not
 * authenticate, and a PROBE_REPLY is never longer than its PROBE.
 */
/* SOCK_NONBLOCK/SOCK_CLOEXEC, recvmmsg/sendmmsg: _GNU_SOURCE (musl and glibc). */
#define _GNU_SOURCE
#include "udp.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <linux/if_tun.h>
#include <linux/virtio_net.h>

#include <json-c/json.h>

#include "config.h"
#include "daemon.h"
#include "dchan.h"
#include "fault.h"
#include "fec.h"
#include "log.h"
#include "mono.h"
#include "tunnel.h"
#include "udp-gro.h"

#include "build-config.h"

#define BUCKETS 256
#define BATCH 32
/* One record: the header, the largest packet a TUN with no offloads gives
 * (the MTU, at most 9000), the tag; or a PARITY over such records. */
#define SLOT (2 * DCHAN_OVERHEAD + FEC_PARITY_HDR + 9000)
/* What the receive side takes: any datagram (a longer one is not ours). */
#define RSLOT 65536
/* One TUN read with offloads on: a train of up to 64 KiB. */
#define TRAIN_ROOM (FRAME_SEGMENTS_MAX + 1)
#define VNET_HDR sizeof(struct virtio_net_hdr)
/* Linux's UDP GSO and GRO (since 4.18 and 5.0); older C libraries lack the names. */
#ifndef SOL_UDP
#define SOL_UDP 17
#endif
#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103
#endif
#ifndef UDP_GRO
#define UDP_GRO 104
#endif
#ifndef SO_RXQ_OVFL
#define SO_RXQ_OVFL 40
#endif
/* A GSO send: at most this many bytes of records, all of one size but the
 * last (the kernel's limit is 64 segments and one IP datagram's payload). */
#define GSO_BYTES 65000
/* The sockets' buffers (the kernel doubles them), short on purpose: what
 * waits in them delays every packet behind it (docs/tunnel-protocol.md,
 * "Queues"). Receive: 256 KiB, about 10 ms at 200 Mbit/s behind a thread
 * that waits for a CPU; a full buffer drops, as a link does. Send: room for
 * a few GSO trains; more only queues in front of a slow uplink. */
#define UDP_RCVBUF (128 << 10)
#define UDP_SNDBUF (256 << 10)
#define BACKOFF_MIN_MS 1000
#define BACKOFF_MAX_MS 30000
/* The hub's timed rekey comes a minute after the spoke's: the two seldom
 * start at once (which works too: each reads the other's REKEY as the
 * answer). */
#define HUB_REKEY_LAG_MS 60000
/* FEC: the receiver reports its loss this often, when at least LOSS_MIN
 * records came in the interval (docs/tunnel-protocol.md, "PARITY and LOSS"). */
#define LOSS_REPORT_MS 1000
#define LOSS_MIN 64

struct udp_hub {
    struct daemon *d;
    int fd, stop_fd;
    unsigned port;
    pthread_t thread;
    bool running;
    /* The table, and the handling of one datagram: a tunnel leaves the
     * table (udp_detach) only between two datagrams, so no datagram is
     * written to a TUN that is closing. */
    pthread_mutex_t lock;
    struct udp_chan *table[BUCKETS];
    atomic_ullong unknown; /* dropped before any crypto: malformed, no such id */
    atomic_bool stop;
};

struct udp_chan {
    struct tunnel *t;
    struct dchan *ch;
    uint32_t id;
    bool hub;
    int fd;                /* spoke: its own socket; hub: the hub's */
    struct udp_hub *h;     /* hub only */
    struct udp_chan *next; /* hub: the table's chain */
    /* The send half of ch (the TX thread's data, the hub's probe replies). */
    pthread_mutex_t tx_lock;
    unsigned char *txbuf;   /* BATCH slots of SLOT bytes: TX thread */
    unsigned char *train;   /* TRAIN_ROOM: one TUN read (a train with offloads on) */
    bool tun_off;           /* TX thread: we turned the TUN's offloads on */
    /* The peer's address (hub): learned from authenticated datagrams only. */
    pthread_mutex_t addr_lock;
    struct sockaddr_storage peer;
    socklen_t peer_len;
    _Atomic long long last_auth; /* mono_ms of the last authentic datagram; 0: none */
    atomic_bool active;          /* spoke: a probe was answered, not timed out since */
    atomic_bool dead;            /* counter limit reached: TLS from now on */
    bool no_gso;           /* TX thread: the kernel refused UDP_SEGMENT */
    /* The receive half of ch on the spoke (the hub's is h->lock). */
    pthread_mutex_t rx_lock;
    /* Rekey (docs/tunnel-protocol.md, REKEY), all under rk_lock: the keys of
     * the epoch after the current one, derived ahead while no other thread
     * uses the TLS session; the epoch this side sent REKEY for and awaits
     * (0: none); when the current epoch began to seal (mono_ms). */
    pthread_mutex_t rk_lock;
    struct dchan_keys next_keys;
    bool next_ready;
    uint32_t pending;
    bool answer_due; /* we switched on the peer's REKEY; our answer is not out yet */
    long long epoch_since;
    long long rekey_ms;  /* every this long; fault builds can shorten it */
    uint64_t rekey_left; /* fault builds: records per epoch before a rekey; 0: 2^31 */
    atomic_uint epoch;   /* the epoch this side seals with, for status */
    atomic_ullong rekeys;
    /* spoke, TX thread only */
    long long next_probe, last_probe, backoff;
    uint64_t probes;
    atomic_ullong pkts_in, pkts_out, bytes_in, bytes_out, auth_fail, replays;
    /* FEC (fec.h). fec_on: [tunnel] fec. The send half: ctl.k, set by the
     * peer's LOSS reports (0: no parity), and the group being built (under
     * tx_lock; allocated when parity first starts). The receive half: the
     * kept records (allocated at the first PARITY), the loss it measures
     * (records of epoch le: the first counter lbase, the highest lmax, lgot
     * arrived since) and reports every LOSS_REPORT_MS. */
    bool fec_on;
    struct fec_ctl ctl; /* the peer's reports decide ctl.k (receive half; the TX thread reads) */
    struct fec_tx ftx;
    struct fec_rx *frx;
    bool lvalid;
    uint16_t le;
    uint64_t lbase, lmax;
    unsigned long long lgot;
    long long loss_next;
    uint32_t ldrops;             /* the socket's counts at the interval's start */
    unsigned long long lmsgs;
    /* Records this side sealed, and of them dropped before the wire (a full
     * socket buffer): the TX thread counts, peer_loss reads. */
    atomic_ullong tx_records, tx_dropped;
    atomic_uint loss, peer_loss; /* 0.01 %: what this side saw; what the peer reported */
    atomic_ullong parity_out, parity_in, recovered;
};

/* A datagram socket's buffers. A build with -Dfault_injection=true takes
 * MTLSGW_UDP_RCVBUF and MTLSGW_UDP_SNDBUF (bytes), for tests/bench/wan.sh. */
static void buffers(int fd)
{
    int rcv = UDP_RCVBUF, snd = UDP_SNDBUF;
#if MTLSGW_FAULT_INJECTION
    const char *v = getenv("MTLSGW_UDP_RCVBUF");
    if (v && atoi(v) > 0)
        rcv = atoi(v);
    v = getenv("MTLSGW_UDP_SNDBUF");
    if (v && atoi(v) > 0)
        snd = atoi(v);
#endif
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof(rcv));
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &snd, sizeof(snd));
}

static long long ka_ms(const struct tunnel *t)
{
    return (long long)t->keepalive * 1000;
}

static void addr_text(const struct sockaddr_storage *ss, char *buf, size_t len)
{
    char ip[INET6_ADDRSTRLEN] = "?";
    unsigned port = 0;

    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *s = (const struct sockaddr_in *)ss;
        inet_ntop(AF_INET, &s->sin_addr, ip, sizeof(ip));
        port = ntohs(s->sin_port);
        snprintf(buf, len, "%s:%u", ip, port);
    } else if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *s = (const struct sockaddr_in6 *)ss;
        inet_ntop(AF_INET6, &s->sin6_addr, ip, sizeof(ip));
        port = ntohs(s->sin6_port);
        snprintf(buf, len, "[%s]:%u", ip, port);
    } else {
        snprintf(buf, len, "none");
    }
}

static void set_port(struct sockaddr_storage *ss, unsigned port)
{
    if (ss->ss_family == AF_INET)
        ((struct sockaddr_in *)ss)->sin_port = htons((uint16_t)port);
    else
        ((struct sockaddr_in6 *)ss)->sin6_port = htons((uint16_t)port);
}

static socklen_t ss_len(const struct sockaddr_storage *ss)
{
    return ss->ss_family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6);
}

static void chan_free(struct udp_chan *u)
{
    if (!u)
        return;
    dchan_free(u->ch); /* wipes the keys */
    if (!u->hub && u->fd >= 0)
        close(u->fd);
    free(u->txbuf);
    free(u->train);
    fec_tx_fini(&u->ftx);
    fec_rx_free(u->frx);
    dchan_keys_wipe(&u->next_keys);
    pthread_mutex_destroy(&u->tx_lock);
    pthread_mutex_destroy(&u->addr_lock);
    pthread_mutex_destroy(&u->rx_lock);
    pthread_mutex_destroy(&u->rk_lock);
    free(u);
}

/* The rekey's schedule: every DCHAN_REKEY_MS (the hub a minute later), or
 * at DCHAN_REKEY_AT records. A build with -Dfault_injection=true also takes
 * MTLSGW_UDP_REKEY_AFTER=N (each epoch starts its send counter N records
 * short of DCHAN_REKEY_AT: the real trigger, after N records) and
 * MTLSGW_UDP_REKEY_MS (the timer), for tests/netns/udp.sh. */
static void rekey_knobs(struct udp_chan *u)
{
    u->rekey_ms = DCHAN_REKEY_MS + (u->hub ? HUB_REKEY_LAG_MS : 0);
#if MTLSGW_FAULT_INJECTION
    const char *v = getenv("MTLSGW_UDP_REKEY_AFTER");
    if (v && strtoull(v, NULL, 10) > 0 && strtoull(v, NULL, 10) < DCHAN_REKEY_AT)
        u->rekey_left = strtoull(v, NULL, 10);
    v = getenv("MTLSGW_UDP_REKEY_MS");
    if (v && strtoll(v, NULL, 10) > 0)
        u->rekey_ms = strtoll(v, NULL, 10) + (u->hub ? strtoll(v, NULL, 10) / 2 : 0);
#endif
    if (u->rekey_left)
        dchan_tx_seek(u->ch, DCHAN_REKEY_AT - u->rekey_left);
}

/* A channel for c from its TLS session: the caller is the set-up thread,
 * the only user of the session now. */
static int chan_new(struct conn *c, enum dchan_role role, struct udp_chan **out)
{
    struct dchan_keys k;
    struct udp_chan *u = calloc(1, sizeof(*u));
    int rc;

    if (!u)
        return -ENOMEM;
    u->fd = -1;
    pthread_mutex_init(&u->tx_lock, NULL);
    pthread_mutex_init(&u->addr_lock, NULL);
    pthread_mutex_init(&u->rx_lock, NULL);
    pthread_mutex_init(&u->rk_lock, NULL);
    u->txbuf = malloc((size_t)(BATCH + 1) * SLOT); /* + 1: a group's PARITY */
    u->train = malloc(TRAIN_ROOM);
    if (!u->txbuf || !u->train) {
        chan_free(u);
        return -ENOMEM;
    }
    /* Epoch 0, and epoch 1 ahead for the first rekey. */
    rc = dchan_keys_from_session(c->tls, role, 0, &k);
    if (rc == 0) {
        rc = dchan_new(&k, &u->ch);
        u->id = k.id;
    }
    dchan_keys_wipe(&k);
    if (rc == 0)
        rc = dchan_keys_from_session(c->tls, role, 1, &u->next_keys);
    if (rc < 0) {
        chan_free(u);
        return rc;
    }
    u->next_ready = true;
    u->t = c->tun;
    u->hub = role == DCHAN_HUB;
    u->backoff = BACKOFF_MIN_MS;
    u->epoch_since = mono_ms();
    u->fec_on = c->d->cfg->tunnel.fec != 0;
    rekey_knobs(u);
    *out = u;
    return 0;
}

/* Whether the peer has answered over UDP lately enough to send there. */
static bool fresh(const struct udp_chan *u, long long now)
{
    long long last = atomic_load(&u->last_auth);

    return last && now - last <= 2 * ka_ms(u->t);
}

/* ---- receiving: a batch of datagrams, each possibly a GRO train ----------- */

struct rx_batch {
    unsigned char *bufs; /* BATCH * RSLOT */
    struct mmsghdr msgs[BATCH];
    struct iovec iov[BATCH];
    struct sockaddr_storage from[BATCH];
    char cbuf[BATCH][CMSG_SPACE(sizeof(int)) + CMSG_SPACE(sizeof(uint32_t))];
    /* The socket so far: its overflow drops (SO_RXQ_OVFL: each a message,
     * which with GRO may be a train of records), and messages read. */
    uint32_t drops;
    unsigned long long msgs_in;
    struct gro *gro; /* segments on their way to a TUN (udp-gro.h) */
};

static struct rx_batch *rx_batch_new(void)
{
    struct rx_batch *b = calloc(1, sizeof(*b));

    if (b && (!(b->bufs = malloc((size_t)BATCH * RSLOT)) || !(b->gro = gro_new()))) {
        free(b->bufs);
        free(b);
        b = NULL;
    }
    return b;
}

static void rx_batch_free(struct rx_batch *b)
{
    unsigned long long w, n, bad;

    gro_counts(b->gro, &w, &n, &bad);
    log_debug("UDP: %llu packets to the TUN in %llu writes%s", n, w,
              bad ? " (some trains refused)" : "");
    gro_free(b->gro);
    free(b->bufs);
    free(b);
}

/* Let the kernel hand over runs of same-sized datagrams of one sender as one
 * buffer (UDP_GRO): fewer system calls; each record is opened alone. */
static void gro_on(int fd)
{
    if (setsockopt(fd, SOL_UDP, UDP_GRO, &(int){1}, sizeof(int)) < 0)
        log_debug("UDP: no GRO (%s): one datagram per read", strerror(errno));
    /* Each datagram says how many the socket dropped so far: those are
     * our own overload, not the path's loss (loss_tick). */
    if (setsockopt(fd, SOL_SOCKET, SO_RXQ_OVFL, &(int){1}, sizeof(int)) < 0)
        log_debug("UDP: no SO_RXQ_OVFL (%s)", strerror(errno));
}

static int rx_recv(int fd, struct rx_batch *b)
{
    memset(b->msgs, 0, sizeof(b->msgs));
    for (int i = 0; i < BATCH; i++) {
        b->iov[i].iov_base = b->bufs + (size_t)i * RSLOT;
        b->iov[i].iov_len = RSLOT;
        b->msgs[i].msg_hdr.msg_iov = &b->iov[i];
        b->msgs[i].msg_hdr.msg_iovlen = 1;
        b->msgs[i].msg_hdr.msg_name = &b->from[i];
        b->msgs[i].msg_hdr.msg_namelen = sizeof(b->from[i]);
        b->msgs[i].msg_hdr.msg_control = b->cbuf[i];
        b->msgs[i].msg_hdr.msg_controllen = sizeof(b->cbuf[i]);
    }
    return recvmmsg(fd, b->msgs, BATCH, MSG_DONTWAIT, NULL);
}

/* The size of each datagram in message i (a GRO train: all but the last);
 * also notes the socket's overflow count the kernel attached (b->drops). */
static size_t rx_seg(struct rx_batch *b, int i)
{
    struct msghdr *m = &b->msgs[i].msg_hdr;
    size_t seg = b->msgs[i].msg_len;

    for (struct cmsghdr *cm = CMSG_FIRSTHDR(m); cm; cm = CMSG_NXTHDR(m, cm)) {
        if (cm->cmsg_level == SOL_UDP && cm->cmsg_type == UDP_GRO) {
            int v;
            memcpy(&v, CMSG_DATA(cm), sizeof(v));
            if (v > 0)
                seg = (size_t)v;
        } else if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SO_RXQ_OVFL) {
            uint32_t v;
            memcpy(&v, CMSG_DATA(cm), sizeof(v));
            if ((int32_t)(v - b->drops) > 0)
                b->drops = v;
        }
    }
    b->msgs_in++;
    return seg;
}

/* ---- the hub ------------------------------------------------------------- */

unsigned udp_hub_attach(struct conn *c)
{
    struct udp_hub *h = c->d->udp;
    struct udp_chan *u = NULL, **b;
    int rc;

    if (!h)
        return 0;
    rc = chan_new(c, DCHAN_HUB, &u);
    if (rc < 0) {
        log_info("tunnel peer %s: no UDP channel (%s): data stays on TLS", c->peer,
                 rc == -ENOTSUP ? "TLS 1.2 without the extended master secret"
                                : strerror(-rc));
        return 0;
    }
    u->h = h;
    u->fd = h->fd;
    pthread_mutex_lock(&h->lock);
    b = &h->table[u->id % BUCKETS];
    for (struct udp_chan *o = *b; o; o = o->next) {
        if (o->id == u->id) {
            pthread_mutex_unlock(&h->lock);
            log_info("tunnel peer %s: UDP channel id %08x is taken: data stays on TLS",
                     c->peer, (unsigned)u->id);
            chan_free(u);
            return 0;
        }
    }
    u->next = *b;
    *b = u;
    pthread_mutex_unlock(&h->lock);
    pthread_mutex_lock(&c->d->conns_lock);
    c->tun->udp = u;
    pthread_mutex_unlock(&c->d->conns_lock);
    return h->port;
}

void udp_detach(struct conn *c)
{
    struct tunnel *t = c->tun;
    struct udp_chan *u = t->udp;

    if (!u)
        return;
    if (u->hub) {
        pthread_mutex_lock(&u->h->lock);
        for (struct udp_chan **p = &u->h->table[u->id % BUCKETS]; *p; p = &(*p)->next) {
            if (*p == u) {
                *p = u->next;
                break;
            }
        }
        pthread_mutex_unlock(&u->h->lock);
    }
    /* status and metrics read t->udp under conns_lock. */
    pthread_mutex_lock(&c->d->conns_lock);
    t->udp = NULL;
    pthread_mutex_unlock(&c->d->conns_lock);
    chan_free(u);
}

void udp_tunnel_free(struct tunnel *t)
{
    struct udp_chan *u = t->udp;

    /* Only a tunnel whose set-up failed gets here with a channel: not in
     * the table (the hub enters it last), no thread, no list reader. */
    if (!u)
        return;
    if (u->hub)
        log_err("tunnel: a UDP channel still in the table at free");
    t->udp = NULL;
    chan_free(u);
}

/* A packet from a datagram to the TUN, with the same checks as a PACKET
 * frame's (frame_next): one IPv4/IPv6 packet of its own length, within the
 * MTU. The kernel's rules on the interface do the rest (anti-spoofing).
 * Consecutive TCP segments of a flow go as one train (udp-gro.h): the
 * caller flushes g before its lock on u ends. */
static void to_tun(struct gro *g, struct udp_chan *u, const unsigned char *pkt, size_t len)
{
    struct tunnel *t = u->t;

    if (len > t->mtu || !frame_packet_ok(pkt, len)) {
        atomic_fetch_add(&u->auth_fail, 1);
        return;
    }
    gro_add(g, t->tun_fd, &t->stop, pkt, len);
    atomic_fetch_add(&u->pkts_in, 1);
    atomic_fetch_add(&t->pkts_in, 1);
}

static void count_drop(struct udp_chan *u, int rc)
{
    if (rc == -EALREADY || rc == -ESTALE)
        atomic_fetch_add(&u->replays, 1);
    else
        atomic_fetch_add(&u->auth_fail, 1);
}

/* Send one record of type with plaintext pt from the receiving thread: the
 * hub's answer to an authentic PROBE, or a LOSS report. to: the peer's
 * authenticated address (hub), NULL on the spoke's connected socket. */
static void send_one(struct udp_chan *u, unsigned type, const unsigned char *pt, size_t len,
                     const struct sockaddr_storage *to, socklen_t tolen)
{
    unsigned char *rec = malloc(DCHAN_OVERHEAD + len);
    int n;

    if (!rec)
        return;
    memcpy(rec + DCHAN_HDR, pt, len);
    pthread_mutex_lock(&u->tx_lock);
    n = dchan_seal(u->ch, type, rec, len, DCHAN_OVERHEAD + len);
    pthread_mutex_unlock(&u->tx_lock);
    /* Bytes are counted, packets are the data's only. */
    if (n > 0 && (to ? sendto(u->fd, rec, (size_t)n, 0, (const struct sockaddr *)to, tolen)
                     : send(u->fd, rec, (size_t)n, 0)) == n)
        atomic_fetch_add(&u->bytes_out, (unsigned long long)n);
    free(rec);
}

/* ---- FEC: loss reports, parity, rebuilt records (fec.h) ------------------ */

/* dchan_open with the receive half's FEC book-keeping: an authentic
 * datagram is kept for rebuilding its group's missing record, and counted
 * for the loss this side reports. */
static int chan_open(struct udp_chan *u, unsigned char *rec, size_t len, unsigned *type)
{
    uint16_t e;
    uint64_t c;
    int n;

    if (u->frx)
        fec_rx_stage(u->frx, rec, len);
    n = dchan_open(u->ch, rec, len, type);
    if (n < 0 && u->frx)
        u->frx->staged = 0; /* nothing of a refused datagram is ever kept */
    if (n < 0 || !u->fec_on)
        return n;
    e = dchan_rec_epoch(rec);
    c = dchan_rec_counter(rec);
    if (u->frx)
        fec_rx_keep(u->frx, e, c);
    if (u->lvalid && e == u->le) {
        if (c > u->lmax)
            u->lmax = c;
        u->lgot++;
    } else if (e == (uint16_t)dchan_rx_epoch(u->ch)) {
        /* The first record, or the first of a new epoch: a new interval. */
        u->lvalid = true;
        u->le = e;
        u->lbase = u->lmax = c;
        u->lgot = 0;
    }
    return n;
}

/* Once a LOSS_REPORT_MS: tell the peer the loss of the last interval
 * (records it sealed that never came: lost, or later than the interval).
 * Receive half. */
static void loss_tick(struct udp_chan *u, long long now, const struct rx_batch *b,
                      const struct sockaddr_storage *to, socklen_t tolen)
{
    unsigned char pt[DCHAN_LOSS_LEN] = {0};
    uint64_t expected, missing, own;
    unsigned long long msgs = b->msgs_in - u->lmsgs;
    unsigned loss;

    if (!u->fec_on || now < u->loss_next || atomic_load(&u->t->stop))
        return;
    u->loss_next = now + LOSS_REPORT_MS;
    /* What our own socket dropped (overload here, where parity would only
     * add work) is not the path's loss. The socket counts drops in
     * messages (with GRO a message may hold a train of records), and on
     * the hub it is every tunnel's and takes anyone's datagrams: this
     * tunnel's share is its records per message read, times the drops
     * (one tunnel's overload is not taken off the others'). */
    own = (uint64_t)(b->drops - u->ldrops);
    own = msgs ? own * u->lgot / msgs : 0;
    u->ldrops = b->drops;
    u->lmsgs = b->msgs_in;
    expected = u->lmax - u->lbase;
    if (!u->lvalid || expected < LOSS_MIN) {
        u->lbase = u->lmax;
        u->lgot = 0;
        return;
    }
    missing = u->lgot >= expected ? 0 : expected - u->lgot;
    missing = missing > own ? missing - own : 0;
    loss = (unsigned)(missing * 10000 / expected);
    u->lbase = u->lmax;
    u->lgot = 0;
    atomic_store(&u->loss, loss);
    pt[0] = (unsigned char)(loss >> 8);
    pt[1] = (unsigned char)loss;
    send_one(u, DCHAN_LOSS, pt, sizeof(pt), to, tolen);
}

/* The peer's LOSS report: how many DATA records go per PARITY from now on,
 * with FEC_QUIET reports under FEC_LOSS_OFF before parity stops. */
static void peer_loss(struct udp_chan *u, const unsigned char *pt, long long now)
{
    unsigned was = u->ctl.k;
    int loss;

    if (!u->fec_on) /* no parity from us: only what the peer says, for status */
        loss = (int)(pt[0] << 8 | pt[1]);
    else if ((loss = fec_ctl_report(&u->ctl, (unsigned)(pt[0] << 8 | pt[1]), now,
                                    atomic_load(&u->tx_records),
                                    atomic_load(&u->tx_dropped))) < 0)
        return;
    atomic_store(&u->peer_loss, (unsigned)loss > 10000 ? 10000 : (unsigned)loss);
    if (u->ctl.k == was)
        return;
    if (!was)
        log_info("tunnel %s: the peer loses %d.%02d %% of our UDP records: a parity record "
                 "every %u", u->t->ifname, loss / 100, loss % 100, u->ctl.k);
    else if (!u->ctl.k)
        log_info("tunnel %s: the peer's UDP loss is under %u.%02u %%: parity off",
                 u->t->ifname, FEC_LOSS_OFF / 100, FEC_LOSS_OFF % 100);
}

/* After an authentic record: a LOSS report sets our parity; a PARITY may
 * rebuild the one record of its group that did not come, which then takes
 * the whole of dchan_open again (an AEAD check included) before it goes to
 * the TUN. Receive half, its lock held. */
static void fec_record(struct udp_chan *u, struct gro *g, unsigned type,
                       const unsigned char *rec, size_t n, long long now)
{
    unsigned char *r;
    uint64_t miss;
    unsigned t2;
    int len, m;

    if (type == DCHAN_LOSS) {
        peer_loss(u, rec + DCHAN_HDR, now);
        return;
    }
    if (type != DCHAN_PARITY || !u->fec_on)
        return;
    atomic_fetch_add(&u->parity_in, 1);
    if (!u->frx) { /* records are kept from now on */
        u->frx = fec_rx_new(DCHAN_OVERHEAD + u->t->mtu);
        return;
    }
    len = fec_rx_recover(u->frx, dchan_rec_epoch(rec), dchan_rec_counter(rec), rec + DCHAN_HDR,
                         n, &miss);
    if (len <= 0)
        return;
    r = u->frx->out;
    if (dchan_rec_counter(r) != miss || (m = dchan_open(u->ch, r, (size_t)len, &t2)) < 0)
        return; /* it came after all (a replay now), or not authentic */
    atomic_fetch_add(&u->recovered, 1);
    if (t2 == DCHAN_DATA)
        to_tun(g, u, r + DCHAN_HDR, (size_t)m);
}

/* Close the TX thread's group: its PARITY into slot *k. tx_lock held, so
 * the group's records and its PARITY have consecutive counters. */
static void close_group(struct udp_chan *u, struct iovec *iov, int *k)
{
    unsigned char *rec = u->txbuf + (size_t)*k * SLOT;
    size_t len = fec_tx_parity(&u->ftx, rec + DCHAN_HDR);
    int sl;

    if (!len || (sl = dchan_seal(u->ch, DCHAN_PARITY, rec, len, SLOT)) < 0)
        return;
    iov[*k].iov_base = rec;
    iov[*k].iov_len = (size_t)sl;
    (*k)++;
    atomic_fetch_add(&u->parity_out, 1);
}

/* One datagram on the hub, received at now (mono_ms, read once a batch).
 * Called with h->lock held. */
static void hub_datagram(struct udp_hub *h, struct rx_batch *b, unsigned char *rec, size_t len,
                         const struct sockaddr_storage *from, socklen_t fromlen, long long now)
{
    struct gro *g = b->gro;
    struct udp_chan *u = NULL;
    struct tunnel *t;
    unsigned type;
    uint32_t id;
    int n;

    if (dchan_peek_id(rec, len, &id) == 0)
        for (u = h->table[id % BUCKETS]; u && u->id != id; u = u->next)
            ;
    if (!u) {
        atomic_fetch_add(&h->unknown, 1);
        return;
    }
    t = u->t;
    n = chan_open(u, rec, len, &type);
    if (n < 0) {
        count_drop(u, n);
        return;
    }
    /* A kill (revocation, kick, expiry) ends the UDP side with the TLS one:
     * from the moment it is asked, nothing more goes to the TUN. */
    if (atomic_load(&t->stop))
        return;
    atomic_fetch_add(&u->bytes_in, len);
    atomic_store(&u->last_auth, now);
    dchan_expire(u->ch, (uint64_t)now);
    /* NAT rebinding: the address follows authentic datagrams only. */
    pthread_mutex_lock(&u->addr_lock);
    if (u->peer_len != fromlen || memcmp(&u->peer, from, fromlen) != 0) {
        char was[80], to[80];
        addr_text(&u->peer, was, sizeof(was));
        addr_text(from, to, sizeof(to));
        if (u->peer_len)
            log_info("tunnel %s: the peer's UDP address moved from %s to %s", t->ifname, was,
                     to);
        else
            log_info("tunnel %s: UDP from %s answers: data over UDP", t->ifname, to);
        memcpy(&u->peer, from, fromlen);
        u->peer_len = fromlen;
    }
    pthread_mutex_unlock(&u->addr_lock);
    if (type == DCHAN_DATA)
        to_tun(g, u, rec + DCHAN_HDR, (size_t)n);
    else if (type == DCHAN_PROBE)
        send_one(u, DCHAN_PROBE_REPLY, rec + DCHAN_HDR, (size_t)n, from, fromlen);
    else
        fec_record(u, g, type, rec, (size_t)n, now);
    loss_tick(u, now, b, from, fromlen);
}

static void *hub_main(void *arg)
{
    struct udp_hub *h = arg;
    struct rx_batch *b = rx_batch_new();

    if (!b) {
        log_err("UDP: out of memory: no UDP channel");
        return NULL;
    }
    while (!atomic_load(&h->stop)) {
        struct pollfd p[2] = {{.fd = h->fd, .events = POLLIN},
                              {.fd = h->stop_fd, .events = POLLIN}};
        int n = rx_recv(h->fd, b);
        if (n <= 0) {
            if (n < 0 && errno != EAGAIN && errno != EINTR)
                log_debug("UDP: receive: %s", strerror(errno));
            if (poll(p, 2, 1000) > 0 && p[1].revents)
                break;
            continue;
        }
        long long now = mono_ms();
        pthread_mutex_lock(&h->lock);
        for (int i = 0; i < n; i++) {
            unsigned char *d = b->iov[i].iov_base;
            size_t len = b->msgs[i].msg_len, seg = rx_seg(b, i);
            for (size_t off = 0; off < len; off += seg)
                hub_datagram(h, b, d + off, len - off < seg ? len - off : seg,
                             &b->from[i], b->msgs[i].msg_hdr.msg_namelen, now);
        }
        gro_flush(b->gro); /* before a tunnel can leave the table */
        pthread_mutex_unlock(&h->lock);
    }
    rx_batch_free(b);
    return NULL;
}

int udp_hub_start(struct daemon *d, char *err, size_t errlen)
{
    const struct config *cfg = d->cfg;
    struct sockaddr_storage ss;
    struct udp_hub *h;
    unsigned len;
    const char *why = "?";
    sigset_t all, old;
    int rc;

    if (!cfg->tunnel.listen || !cfg->tunnel.udp || cfg->tunnel.udp == CFG_UDP_OFF)
        return 0;
    if (config_parse_listen(cfg->tunnel.listen, &ss, &len, &why) < 0) {
        snprintf(err, errlen, "[tunnel] listen %s: %s", cfg->tunnel.listen, why);
        return -EINVAL;
    }
    set_port(&ss, cfg->tunnel.udp);
    if (!(h = calloc(1, sizeof(*h))))
        return -ENOMEM;
    h->d = d;
    h->port = cfg->tunnel.udp;
    h->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    h->fd = socket(ss.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    pthread_mutex_init(&h->lock, NULL);
    if (h->fd < 0 || h->stop_fd < 0 || bind(h->fd, (struct sockaddr *)&ss, ss_len(&ss)) < 0) {
        rc = -errno;
        snprintf(err, errlen, "[tunnel] udp = %u: cannot bind UDP on the tunnel listener's "
                 "address: %s%s", h->port, strerror(errno),
                 errno == EACCES ? " (the session process runs unprivileged: use a port "
                                   "from 1024)" : "");
        goto fail;
    }
    buffers(h->fd);
    gro_on(h->fd);
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    rc = -pthread_create(&h->thread, NULL, hub_main, h);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc < 0) {
        snprintf(err, errlen, "cannot start the UDP thread");
        goto fail;
    }
    h->running = true;
    d->udp = h;
    log_info("tunnel: UDP data channel on port %u", h->port);
    return 0;
fail:
    if (h->fd >= 0)
        close(h->fd);
    if (h->stop_fd >= 0)
        close(h->stop_fd);
    pthread_mutex_destroy(&h->lock);
    free(h);
    return rc < 0 ? rc : -EIO;
}

/* After every tunnel ended (their channels left the table). */
void udp_hub_stop(struct daemon *d)
{
    struct udp_hub *h = d->udp;

    if (!h)
        return;
    atomic_store(&h->stop, true);
    if (eventfd_write(h->stop_fd, 1) < 0)
        log_debug("UDP: stop: %s", strerror(errno));
    if (h->running)
        pthread_join(h->thread, NULL);
    h->running = false;
    /* A tunnel still ending (shutdown waits 2 s for them) keeps it. */
    pthread_mutex_lock(&h->lock);
    for (int i = 0; i < BUCKETS; i++) {
        if (h->table[i]) {
            pthread_mutex_unlock(&h->lock);
            return;
        }
    }
    pthread_mutex_unlock(&h->lock);
    d->udp = NULL;
    close(h->fd);
    close(h->stop_fd);
    pthread_mutex_destroy(&h->lock);
    free(h);
}

/* ---- the spoke ----------------------------------------------------------- */

int udp_spoke_attach(struct conn *c, unsigned port)
{
    struct sockaddr_storage ss = c->addr;
    struct udp_chan *u = NULL;
    int rc;

    if (port == 0 || port > 65535)
        return -EINVAL;
    rc = chan_new(c, DCHAN_SPOKE, &u);
    if (rc < 0)
        return rc;
    set_port(&ss, port);
    u->fd = socket(ss.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (u->fd < 0 || connect(u->fd, (struct sockaddr *)&ss, ss_len(&ss)) < 0) {
        rc = -errno;
        chan_free(u);
        return rc;
    }
    buffers(u->fd);
    gro_on(u->fd);
    u->peer = ss;
    u->peer_len = ss_len(&ss);
    pthread_mutex_lock(&c->d->conns_lock);
    c->tun->udp = u;
    pthread_mutex_unlock(&c->d->conns_lock);
    return 0;
}

/* A PROBE: an 8-byte id padded to the tunnel's MTU, so that an answer also
 * says full-sized records pass both ways. TX thread. */
static void spoke_probe(struct udp_chan *u, long long now)
{
    size_t len = u->t->mtu;
    unsigned char *rec = u->txbuf;
    int n;

    memset(rec + DCHAN_HDR, 0, len);
    memcpy(rec + DCHAN_HDR, &u->probes, DCHAN_PROBE_ID);
    u->probes++;
    pthread_mutex_lock(&u->tx_lock);
    n = dchan_seal(u->ch, DCHAN_PROBE, rec, len, SLOT);
    pthread_mutex_unlock(&u->tx_lock);
    u->last_probe = now;
    if (n == -EKEYEXPIRED)
        atomic_store(&u->dead, true);
    if (n > 0 && send(u->fd, rec, (size_t)n, 0) == n)
        atomic_fetch_add(&u->bytes_out, (unsigned long long)n);
}

/* The spoke's probe and fallback, on the TX thread. */
static bool spoke_ready(struct conn *c, struct udp_chan *u)
{
    long long now = mono_ms();

    if (atomic_load(&u->active)) {
        if (!fresh(u, now)) {
            /* The log line first: whoever sees the channel change (status)
             * finds the reason already written (tests/netns/udp.sh). */
            log_warn("uplink %s: UDP stopped answering (nothing for %lld ms): data back on "
                     "TLS, UDP again in %lld ms", c->peer, now - atomic_load(&u->last_auth),
                     u->backoff);
            atomic_store(&u->active, false);
            u->next_probe = now + u->backoff;
            u->backoff = u->backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : u->backoff * 2;
            return false;
        }
        /* One probe a keepalive keeps the answer fresh (and NAT open). */
        if (now - u->last_probe >= ka_ms(u->t))
            spoke_probe(u, now);
        return true;
    }
    if (now >= u->next_probe) {
        spoke_probe(u, now);
        u->next_probe = now + u->backoff;
        u->backoff = u->backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : u->backoff * 2;
    }
    return false;
}

void *udp_spoke_rx_main(void *arg)
{
    struct conn *c = arg;
    struct tunnel *t = c->tun;
    struct udp_chan *u = t->udp;
    struct rx_batch *b = rx_batch_new();

    if (!b) {
        log_err("uplink %s: out of memory", c->peer);
        return NULL; /* the tunnel ends with its thread (tunnel.c) */
    }
    while (!atomic_load(&t->stop)) {
        struct pollfd p[2] = {{.fd = u->fd, .events = POLLIN},
                              {.fd = t->wake_fd, .events = POLLIN}};
        int n = rx_recv(u->fd, b);
        if (n <= 0) {
            /* ECONNREFUSED: an ICMP error for an earlier send; not fatal. */
            poll(p, 2, 1000);
            continue;
        }
        long long now = mono_ms(); /* once a batch: ms are all its users need */
        pthread_mutex_lock(&u->rx_lock); /* the rekey's install waits for the batch */
        for (int i = 0; i < n && !atomic_load(&t->stop); i++) {
            unsigned char *d = b->iov[i].iov_base;
            size_t all = b->msgs[i].msg_len, seg = rx_seg(b, i);
            for (size_t off = 0; off < all; off += seg) {
                size_t rl = all - off < seg ? all - off : seg;
                unsigned type;
                int len = chan_open(u, d + off, rl, &type);
                if (len < 0) {
                    count_drop(u, len);
                    continue;
                }
                atomic_fetch_add(&u->bytes_in, rl);
                atomic_store(&u->last_auth, now);
                dchan_expire(u->ch, (uint64_t)now);
                if (type == DCHAN_PROBE_REPLY && !atomic_exchange(&u->active, true))
                    log_info("uplink %s: UDP answers: data over UDP", c->peer);
                if (type == DCHAN_DATA)
                    to_tun(b->gro, u, d + off + DCHAN_HDR, (size_t)len);
                else
                    fec_record(u, b->gro, type, d + off, (size_t)len, now);
                loss_tick(u, now, b, NULL, 0);
            }
        }
        gro_flush(b->gro);
        pthread_mutex_unlock(&u->rx_lock);
    }
    rx_batch_free(b);
    return NULL;
}

/* ---- rekey (docs/tunnel-protocol.md, REKEY) -------------------------------- */

/* The lock of ch's receive half: the hub's table lock, or the spoke's own. */
static pthread_mutex_t *rx_half(struct udp_chan *u)
{
    return u->hub ? &u->h->lock : &u->rx_lock;
}

/* Open the next epoch for receiving (it then opens two). rk_lock held. */
static int rekey_install(struct udp_chan *u)
{
    int rc;

    if (!u->next_ready)
        return -ENOKEY;
    pthread_mutex_lock(rx_half(u));
    rc = dchan_install(u->ch, &u->next_keys);
    pthread_mutex_unlock(rx_half(u));
    dchan_keys_wipe(&u->next_keys);
    u->next_ready = false;
    return rc;
}

/* Seal with the installed epoch from now on. rk_lock held. */
static void rekey_switch(struct udp_chan *u)
{
    int rc;

    pthread_mutex_lock(&u->tx_lock);
    rc = dchan_switch(u->ch);
    if (rc == 0 && u->rekey_left)
        dchan_tx_seek(u->ch, DCHAN_REKEY_AT - u->rekey_left);
    atomic_store(&u->epoch, dchan_tx_epoch(u->ch));
    pthread_mutex_unlock(&u->tx_lock);
    u->pending = 0;
    u->epoch_since = mono_ms();
    if (rc == 0)
        atomic_fetch_add(&u->rekeys, 1);
    else
        log_err("tunnel %s: UDP: no epoch to switch to (at %u)", u->t->ifname,
                atomic_load(&u->epoch));
}

/* Derive the keys of the epoch after `epoch` ahead of the next rekey: the
 * TLS receiving thread, with send_lock held, so no other thread is in the
 * TLS session (gnutls_prf_rfc5705 beside a sender is not promised safe).
 * rk_lock held. */
static void rekey_derive(struct conn *c, struct udp_chan *u, uint32_t epoch)
{
    int rc;

    pthread_mutex_lock(&c->tun->send_lock);
    rc = dchan_keys_from_session(c->tls, u->hub ? DCHAN_HUB : DCHAN_SPOKE, epoch + 1,
                                 &u->next_keys);
    pthread_mutex_unlock(&c->tun->send_lock);
    u->next_ready = rc == 0;
    if (rc < 0)
        log_warn("tunnel %s: UDP epoch %u: %s: no further rekey", c->tun->ifname, epoch + 1,
                 strerror(-rc));
}

/* Whether the peer uses the channel now (a REKEY goes only to a peer that
 * does: the hub's came over UDP at least once, the spoke's answers). */
static bool in_use(const struct udp_chan *u)
{
    return u->hub ? atomic_load(&u->last_auth) != 0 : atomic_load(&u->active);
}

/* Whether the peer has sealed with our newest receive epoch: installing the
 * next one drops the oldest, and records of it still on their way would be
 * lost (on one path datagrams nearly always keep their order). A peer has
 * something to say within a keepalive (a probe or its answer). Read without
 * the receive half's lock: the hub's is the table lock of every tunnel. */
static bool peer_switched(struct udp_chan *u)
{
    return dchan_newest_opened(u->ch);
}

int udp_rekey_start(struct conn *c, unsigned char *p)
{
    struct udp_chan *u = c->tun->udp;
    uint32_t e = 0;
    long long now;

    if (!u || atomic_load(&u->dead) || pthread_mutex_trylock(&u->rk_lock) != 0)
        return 0;
    now = mono_ms();
    if (!u->pending && !u->answer_due && u->next_ready && in_use(u) &&
        (dchan_wants_rekey(u->ch) || now - u->epoch_since >= u->rekey_ms) && peer_switched(u)) {
        e = atomic_load(&u->epoch) + 1;
        if (rekey_install(u) == 0)
            u->pending = e;
        else
            e = 0;
    }
    pthread_mutex_unlock(&u->rk_lock);
    if (!e)
        return 0;
    p[0] = (unsigned char)(e >> 24);
    p[1] = (unsigned char)(e >> 16);
    p[2] = (unsigned char)(e >> 8);
    p[3] = (unsigned char)e;
    log_debug("tunnel %s: UDP rekey to epoch %u", c->tun->ifname, e);
    return 1;
}

int udp_rekey_frame(struct conn *c, const unsigned char *p, size_t len, char *why,
                    size_t whylen)
{
    struct tunnel *t = c->tun;
    struct udp_chan *u = t->udp;
    uint32_t n, e, pending;
    const char *how = "our rekey";
    bool answer = false;
    int rc = 0;

    if (!u || len != FRAME_REKEY_LEN) {
        snprintf(why, whylen, "REKEY without a UDP channel");
        return -EPROTO;
    }
    n = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
    pthread_mutex_lock(&u->rk_lock);
    e = atomic_load(&u->epoch);
    pending = u->pending;
    if (pending && n == pending) {
        /* The answer to ours, or the peer started at the same time. */
        rekey_switch(u);
    } else if (!pending && n == e + 1) {
        how = "the peer's rekey";
        if (!u->next_ready)
            rekey_derive(c, u, e);
        rc = rekey_install(u);
        if (rc == 0) {
            rekey_switch(u);
            /* No REKEY of ours until the answer is out (udp_rekey_answered). */
            u->answer_due = answer = true;
        }
    } else {
        pthread_mutex_unlock(&u->rk_lock);
        snprintf(why, whylen, "REKEY to epoch %u at epoch %u%s", (unsigned)n, (unsigned)e,
                 pending ? " during a rekey" : "");
        return -EPROTO;
    }
    if (rc == 0 && !u->next_ready)
        rekey_derive(c, u, n);
    pthread_mutex_unlock(&u->rk_lock);
    if (rc < 0) {
        /* No keys: the channel ends, data goes over TLS. */
        atomic_store(&u->dead, true);
        log_warn("tunnel %s: UDP rekey to epoch %u failed (%s): data on TLS", t->ifname,
                 (unsigned)n, strerror(-rc));
        return 0;
    }
    log_info("tunnel %s: UDP epoch %u (%s)", t->ifname, (unsigned)n, how);
    return answer ? 1 : 0;
}

void udp_rekey_answered(struct conn *c)
{
    struct udp_chan *u = c->tun->udp;

    if (!u)
        return;
    pthread_mutex_lock(&u->rk_lock);
    u->answer_due = false;
    pthread_mutex_unlock(&u->rk_lock);
}

/* ---- the TX thread, both sides ------------------------------------------- */

/* The TUN's offloads follow the channel (TX thread): on while UDP carries
 * the data (trains are cut into records here), off when the data goes back
 * to a TLS path that did not agree to SEGMENTS (tunnel.c turns them on for
 * one that did). A train still queued at the switch is dropped there. */
static void tun_offloads(struct udp_chan *u, bool on)
{
    struct tunnel *t = u->t;
    unsigned long f = on ? TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_TSO_ECN : 0;

    if (on == u->tun_off || atomic_load(&t->seg_tx))
        return;
    if (ioctl(t->tun_fd, TUNSETOFFLOAD, f) < 0) {
        log_debug("tunnel %s: TUN offloads %s: %s", t->ifname, on ? "on" : "off",
                  strerror(errno));
        return;
    }
    u->tun_off = on;
    atomic_store(&t->offloading, on);
}

bool udp_tx_ready(struct conn *c)
{
    struct tunnel *t = c->tun;
    struct udp_chan *u = t->udp;
    bool ok;

    if (!u)
        return false;
    if (atomic_load(&u->dead)) {
        tun_offloads(u, false);
        return false;
    }
    if (!u->hub) {
        ok = spoke_ready(c, u);
        tun_offloads(u, ok);
        return ok;
    }
    /* The hub: the TUN gives segment trains once offloads are on (a peer
     * that took them); those stay on TLS. */
    if (atomic_load(&t->seg_tx) || !fresh(u, mono_ms())) {
        tun_offloads(u, false);
        return false;
    }
    pthread_mutex_lock(&u->addr_lock);
    ok = u->peer_len != 0;
    pthread_mutex_unlock(&u->addr_lock);
    tun_offloads(u, ok);
    return ok;
}

/* How long the TX thread may sleep in poll. A spoke wakes for its next
 * UDP decision (the last answer going stale, a probe due), so that a path
 * gone silent moves the data back to TLS 2 keepalives after the last
 * answer, not up to a tick later; never more than a second. */
int udp_tx_timeout(struct conn *c, int timeout)
{
    struct udp_chan *u = c->tun->udp;
    long long due, wait;

    if (!u || u->hub || atomic_load(&u->dead)) /* a dead channel decides nothing */
        return timeout;
    if (atomic_load(&u->active)) {
        due = atomic_load(&u->last_auth) + 2 * ka_ms(u->t) + 1; /* fresh() turns false */
        if (u->last_probe + ka_ms(u->t) < due)
            due = u->last_probe + ka_ms(u->t);
    } else
        due = u->next_probe;
    wait = due - mono_ms();
    wait = wait < 0 ? 0 : wait > 1000 ? 1000 : wait;
    return timeout >= 0 && timeout < wait ? timeout : (int)wait;
}

/* Send records iov[0..n) (equal sizes but the last) as one UDP GSO
 * datagram train, or one by one when the kernel does not take UDP_SEGMENT.
 * Returns how many went out. */
static int send_run(struct udp_chan *u, struct iovec *iov, int n, struct sockaddr_storage *to,
                    socklen_t tolen)
{
    struct mmsghdr msgs[BATCH + 1]; /* a batch and a PARITY */
    int sent = 0;

    if (n > 1 && !u->no_gso) {
        char cbuf[CMSG_SPACE(sizeof(uint16_t))] = {0};
        struct msghdr m = {.msg_name = tolen ? to : NULL, .msg_namelen = tolen,
                           .msg_iov = iov, .msg_iovlen = (size_t)n,
                           .msg_control = cbuf, .msg_controllen = sizeof(cbuf)};
        struct cmsghdr *cm = CMSG_FIRSTHDR(&m);
        uint16_t gs = (uint16_t)iov[0].iov_len;
        cm->cmsg_level = SOL_UDP;
        cm->cmsg_type = UDP_SEGMENT;
        cm->cmsg_len = CMSG_LEN(sizeof(gs));
        memcpy(CMSG_DATA(cm), &gs, sizeof(gs));
        for (int tries = 0; tries < 2; tries++) {
            if (sendmsg(u->fd, &m, 0) >= 0)
                return n;
            if (errno != EAGAIN)
                break;
            poll(&(struct pollfd){.fd = u->fd, .events = POLLOUT}, 1, 100);
        }
        if (errno == EAGAIN || errno == ECONNREFUSED || errno == ENOBUFS)
            return 0; /* a full or refusing path drops, as a link would */
        log_info("UDP: no GSO (%s): one datagram per send", strerror(errno));
        u->no_gso = true;
    }
    memset(msgs, 0, sizeof(msgs));
    for (int i = 0; i < n; i++) {
        msgs[i].msg_hdr.msg_iov = &iov[i];
        msgs[i].msg_hdr.msg_iovlen = 1;
        msgs[i].msg_hdr.msg_name = tolen ? to : NULL;
        msgs[i].msg_hdr.msg_namelen = tolen;
    }
    while (sent < n) {
        int k = sendmmsg(u->fd, msgs + sent, (unsigned)(n - sent), 0);
        if (k <= 0) {
            if (k < 0 && errno == EAGAIN &&
                poll(&(struct pollfd){.fd = u->fd, .events = POLLOUT}, 1, 100) > 0)
                continue;
            break;
        }
        sent += k;
    }
    return sent;
}

/* The type of the record at v (the low nibble of its first byte). */
static unsigned rec_type(const struct iovec *v)
{
    return ((const unsigned char *)v->iov_base)[0] & 0x0f;
}

/* Send records iov[0..k): runs of equal-sized records (a shorter one may
 * end a run) go as one GSO send each. */
static void send_records(struct udp_chan *u, struct iovec *iov, int k,
                         struct sockaddr_storage *to, socklen_t tolen)
{
    struct tunnel *t = u->t;
    int start = 0;
    size_t run = 0;

    for (int i = 0; i <= k; i++) {
        /* A PARITY goes alone: it is longer than the records of its group,
         * and as a GSO segment size it could pass the path's MTU (with
         * IPv6, or an MTU over 1432), which the kernel refuses. */
        bool ends = i == k || (i > start && (iov[i].iov_len > iov[start].iov_len ||
                                             iov[i - 1].iov_len != iov[start].iov_len ||
                                             rec_type(&iov[i]) == DCHAN_PARITY ||
                                             rec_type(&iov[start]) == DCHAN_PARITY ||
                                             run + iov[i].iov_len > GSO_BYTES));
        if (ends && i > start) {
            int sent = send_run(u, iov + start, i - start, to, tolen), data = 0;
            atomic_fetch_add(&u->tx_records, (unsigned long long)(i - start));
            atomic_fetch_add(&u->tx_dropped, (unsigned long long)(i - start - sent));
            for (int j = start; j < start + sent; j++) {
                atomic_fetch_add(&u->bytes_out, iov[j].iov_len);
                data += rec_type(&iov[j]) == DCHAN_DATA;
            }
            atomic_fetch_add(&u->pkts_out, (unsigned long long)data);
            atomic_fetch_add(&t->pkts_out, (unsigned long long)data);
            start = i;
            run = 0;
        }
        if (i < k)
            run += iov[i].iov_len;
    }
}

int udp_tx_batch(struct conn *c)
{
    struct tunnel *t = c->tun;
    struct udp_chan *u = t->udp;
    struct iovec iov[BATCH + 1];
    struct sockaddr_storage to;
    socklen_t tolen = 0;
    int k = 0, r = 0;
    bool dead = false;
    unsigned fk = u->fec_on ? u->ctl.k : 0;

    /* Parity lives on reports. */
    if (fk && fec_ctl_stale(&u->ctl, mono_ms())) {
        fk = 0;
        log_info("tunnel %s: no loss report for %d s: parity off", t->ifname,
                 FEC_STALE_MS / 1000);
    }

    if (u->hub) {
        pthread_mutex_lock(&u->addr_lock);
        to = u->peer;
        tolen = u->peer_len;
        pthread_mutex_unlock(&u->addr_lock);
    }
    /* With FEC, a PARITY after every fk DATA records (fec.h); the group's
     * buffer is made when parity first starts. */
    if (fk && !u->ftx.acc && fec_tx_init(&u->ftx, DCHAN_OVERHEAD + t->mtu) < 0)
        fk = 0;
    pthread_mutex_lock(&u->tx_lock);
    /* Read until a batch of records is full or the TUN is empty. A train
     * (offloads on) is cut into its packets, a record each, sending the
     * batch whenever it fills. */
    while (k < BATCH && !dead) {
        struct virtio_net_hdr vh;
        struct frame_offload off;
        struct iovec in[2] = {{.iov_base = &vh, .iov_len = VNET_HDR},
                              {.iov_base = u->train, .iov_len = TRAIN_ROOM}};
        ssize_t n = readv(t->tun_fd, in, 2);
        size_t segs;
        if (n < 0 && errno != EAGAIN && errno != EINTR) {
            int e = errno;
            pthread_mutex_unlock(&u->tx_lock);
            return -e;
        }
        if (n <= (ssize_t)VNET_HDR)
            break;
        r = 1;
        n -= (ssize_t)VNET_HDR;
        off = (struct frame_offload){.flags = vh.flags, .gso_type = vh.gso_type,
                                     .gso_size = vh.gso_size, .csum_start = vh.csum_start,
                                     .csum_offset = vh.csum_offset};
        /* What the other side would drop (docs/tunnel-protocol.md, DATA):
         * a packet over the MTU, or a train the SEGMENTS rules refuse. */
        segs = gso_count(&off, u->train, (size_t)n, t->mtu);
        for (size_t i = 0; i < segs; i++) {
            unsigned char *rec;
            size_t len;
            int sl;
            if (k >= BATCH) {
                if (fk)
                    close_group(u, iov, &k);
                pthread_mutex_unlock(&u->tx_lock);
                send_records(u, iov, k, &to, tolen);
                pthread_mutex_lock(&u->tx_lock);
                k = 0;
            }
            rec = u->txbuf + (size_t)k * SLOT;
            len = gso_packet(&off, u->train, (size_t)n, i, rec + DCHAN_HDR);
            if (len > t->mtu || !frame_packet_ok(rec + DCHAN_HDR, len))
                continue;
            sl = dchan_seal(u->ch, DCHAN_DATA, rec, len, SLOT);
            if (sl == -EKEYEXPIRED) {
                /* 2^32 records and no rekey completed since 2^31. */
                atomic_store(&u->dead, true);
                log_warn("tunnel %s: the UDP channel's epoch %u is used up and no rekey "
                         "completed: data on TLS", t->ifname, atomic_load(&u->epoch));
                dead = true;
                break;
            }
            if (sl < 0) {
                if (fk) /* its counter is gone: the group's PARITY would be wrong */
                    fec_tx_drop(&u->ftx);
                continue;
            }
            iov[k].iov_base = rec;
            iov[k].iov_len = (size_t)sl;
            k++;
            if (fk && (!fec_tx_add(&u->ftx, rec, (size_t)sl) || u->ftx.n >= fk))
                close_group(u, iov, &k);
        }
    }
    if (fk)
        close_group(u, iov, &k);
    pthread_mutex_unlock(&u->tx_lock);
    send_records(u, iov, k, &to, tolen);
    return r;
}

/* ---- status and metrics --------------------------------------------------- */

char *udp_metrics(struct daemon *d)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    static const char *const head =
        "# HELP mtlsgw_tunnel_channel Which channel carries a tunnel's data (1).\n"
        "# TYPE mtlsgw_tunnel_channel gauge\n"
        "# HELP mtlsgw_tunnel_packets_total Data packets per tunnel and channel.\n"
        "# TYPE mtlsgw_tunnel_packets_total counter\n"
        "# HELP mtlsgw_tunnel_udp_bytes_total UDP record bytes per tunnel.\n"
        "# TYPE mtlsgw_tunnel_udp_bytes_total counter\n"
        "# HELP mtlsgw_tunnel_udp_drops_total UDP records dropped per tunnel.\n"
        "# TYPE mtlsgw_tunnel_udp_drops_total counter\n"
        "# HELP mtlsgw_tunnel_udp_parity_total UDP PARITY records per tunnel (FEC).\n"
        "# TYPE mtlsgw_tunnel_udp_parity_total counter\n"
        "# HELP mtlsgw_tunnel_udp_recovered_total UDP records rebuilt from parity.\n"
        "# TYPE mtlsgw_tunnel_udp_recovered_total counter\n"
        "# HELP mtlsgw_tunnel_udp_loss_ratio UDP records lost on the way in the last "
        "second: to us (seen) and to the peer (reported).\n"
        "# TYPE mtlsgw_tunnel_udp_loss_ratio gauge\n";

    if (!f)
        return NULL;
    fputs(head, f);
    pthread_mutex_lock(&d->conns_lock);
    for (struct conn *c = d->conns; c; c = c->next) {
        struct tunnel *t = c->tun;
        struct udp_chan *u;
        unsigned long long upi = 0, upo = 0;
        bool udp;
        char lbl[160];
        if (!t || atomic_load(&c->state) != CONN_OPEN || !t->ifname[0])
            continue;
        u = t->udp;
        udp = u && !atomic_load(&u->dead) &&
              (u->hub ? fresh(u, mono_ms()) : atomic_load(&u->active));
        snprintf(lbl, sizeof(lbl), "peer=\"%s\",session=\"%llu\"", c->peer,
                 (unsigned long long)c->id);
        fprintf(f, "mtlsgw_tunnel_channel{%s,channel=\"udp\"} %d\n", lbl, udp);
        fprintf(f, "mtlsgw_tunnel_channel{%s,channel=\"tcp\"} %d\n", lbl, !udp);
        if (u) {
            upi = atomic_load(&u->pkts_in);
            upo = atomic_load(&u->pkts_out);
            fprintf(f, "mtlsgw_tunnel_udp_bytes_total{%s,direction=\"in\"} %llu\n"
                       "mtlsgw_tunnel_udp_bytes_total{%s,direction=\"out\"} %llu\n"
                       "mtlsgw_tunnel_udp_drops_total{%s,reason=\"auth\"} %llu\n"
                       "mtlsgw_tunnel_udp_drops_total{%s,reason=\"replay\"} %llu\n",
                    lbl, atomic_load(&u->bytes_in), lbl, atomic_load(&u->bytes_out), lbl,
                    atomic_load(&u->auth_fail), lbl, atomic_load(&u->replays));
            fprintf(f, "mtlsgw_tunnel_udp_parity_total{%s,direction=\"in\"} %llu\n"
                       "mtlsgw_tunnel_udp_parity_total{%s,direction=\"out\"} %llu\n"
                       "mtlsgw_tunnel_udp_recovered_total{%s} %llu\n"
                       "mtlsgw_tunnel_udp_loss_ratio{%s,side=\"seen\"} %.4f\n"
                       "mtlsgw_tunnel_udp_loss_ratio{%s,side=\"peer\"} %.4f\n",
                    lbl, atomic_load(&u->parity_in), lbl, atomic_load(&u->parity_out), lbl,
                    atomic_load(&u->recovered), lbl, atomic_load(&u->loss) / 10000.0, lbl,
                    atomic_load(&u->peer_loss) / 10000.0);
        }
        fprintf(f, "mtlsgw_tunnel_packets_total{%s,channel=\"udp\",direction=\"in\"} %llu\n"
                   "mtlsgw_tunnel_packets_total{%s,channel=\"udp\",direction=\"out\"} %llu\n"
                   "mtlsgw_tunnel_packets_total{%s,channel=\"tcp\",direction=\"in\"} %llu\n"
                   "mtlsgw_tunnel_packets_total{%s,channel=\"tcp\",direction=\"out\"} %llu\n",
                lbl, upi, lbl, upo, lbl, atomic_load(&t->pkts_in) - upi, lbl,
                atomic_load(&t->pkts_out) - upo);
    }
    pthread_mutex_unlock(&d->conns_lock);
    if (d->udp)
        fprintf(f, "# HELP mtlsgw_udp_unknown_total UDP datagrams dropped before any crypto "
                   "(malformed, no such channel).\n# TYPE mtlsgw_udp_unknown_total counter\n"
                   "mtlsgw_udp_unknown_total %llu\n", atomic_load(&d->udp->unknown));
    if (fclose(f) != 0) {
        free(text);
        return NULL;
    }
    return text;
}

/* The FEC part of a tunnel's "udp" object (docs/tunnel-protocol.md). */
static struct json_object *fec_describe(struct udp_chan *u)
{
    struct json_object *o = json_object_new_object();

    json_object_object_add(o, "enabled", json_object_new_boolean(u->fec_on));
    json_object_object_add(o, "parity_every",
                           json_object_new_int64((int64_t)u->ctl.k));
    json_object_object_add(o, "loss_percent",
                           json_object_new_double(atomic_load(&u->loss) / 100.0));
    json_object_object_add(o, "peer_loss_percent",
                           json_object_new_double(atomic_load(&u->peer_loss) / 100.0));
    json_object_object_add(o, "parity_out",
                           json_object_new_int64((int64_t)atomic_load(&u->parity_out)));
    json_object_object_add(o, "parity_in",
                           json_object_new_int64((int64_t)atomic_load(&u->parity_in)));
    json_object_object_add(o, "recovered",
                           json_object_new_int64((int64_t)atomic_load(&u->recovered)));
    return o;
}

static struct json_object *counters(unsigned long long pi, unsigned long long po,
                                    unsigned long long bi, unsigned long long bo)
{
    struct json_object *o = json_object_new_object();

    json_object_object_add(o, "packets_in", json_object_new_int64((int64_t)pi));
    json_object_object_add(o, "packets_out", json_object_new_int64((int64_t)po));
    json_object_object_add(o, "bytes_in", json_object_new_int64((int64_t)bi));
    json_object_object_add(o, "bytes_out", json_object_new_int64((int64_t)bo));
    return o;
}

void udp_describe(struct conn *c, struct json_object *o)
{
    struct tunnel *t = c->tun;
    struct udp_chan *u = t->udp;
    unsigned long long upi = 0, upo = 0, ubi = 0, ubo = 0;
    bool udp = false;

    if (u) {
        struct json_object *uo;
        char peer[80];
        upi = atomic_load(&u->pkts_in);
        upo = atomic_load(&u->pkts_out);
        ubi = atomic_load(&u->bytes_in);
        ubo = atomic_load(&u->bytes_out);
        udp = !atomic_load(&u->dead) && (u->hub ? fresh(u, mono_ms()) : atomic_load(&u->active));
        uo = counters(upi, upo, ubi, ubo);
        json_object_object_add(uo, "auth_failures",
                               json_object_new_int64((int64_t)atomic_load(&u->auth_fail)));
        json_object_object_add(uo, "replays",
                               json_object_new_int64((int64_t)atomic_load(&u->replays)));
        pthread_mutex_lock(&u->addr_lock);
        addr_text(&u->peer, peer, sizeof(peer));
        pthread_mutex_unlock(&u->addr_lock);
        json_object_object_add(uo, "peer", json_object_new_string(peer));
        json_object_object_add(uo, "epoch", json_object_new_int64(atomic_load(&u->epoch)));
        json_object_object_add(uo, "rekeys",
                               json_object_new_int64((int64_t)atomic_load(&u->rekeys)));
        json_object_object_add(uo, "fec", fec_describe(u));
        json_object_object_add(o, "udp", uo);
    }
    json_object_object_add(o, "channel", json_object_new_string(udp ? "udp" : "tcp"));
    /* TLS: the packets that did not go over UDP, and the TLS bytes. */
    json_object_object_add(o, "tcp", counters(atomic_load(&t->pkts_in) - upi,
                                              atomic_load(&t->pkts_out) - upo,
                                              atomic_load(&c->bytes_in),
                                              atomic_load(&c->bytes_out)));
}
