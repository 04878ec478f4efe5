/*
 * tunnel.c: the data path of a tunnel session (docs/tunnel-protocol.md), on
 * the hub and on our uplinks, and its life cycle (tunnel.h). A session has
 * two threads: one moves packets from the TUN into TLS records (several
 * frames a record), one from TLS to the TUN. GnuTLS allows one sender and
 * one receiver on a session at once; the sender side is serialised by
 * send_lock (packets, keepalives, CLOSE). Setting a tunnel up is the hub's
 * (tunnel-hub.c) or the uplink's (uplink.c).
 */
#include "tunnel.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <linux/if_tun.h>
#include <linux/virtio_net.h>

#include <json-c/json.h>

#include "daemon.h"
#include "fault.h"
#include "log.h"
#include "pool.h"
#include "udp.h"

#define T_PACKET FRAME_PACKET
#define T_KEEPALIVE FRAME_KEEPALIVE
#define T_CLOSE FRAME_CLOSE
#define CLOSE_MAX FRAME_CLOSE_MAX
#define CONFIG_MAX FRAME_CONFIG_MAX
/* The largest packet a TUN read gives with TCP segmentation on (IPv6: a
 * 64 KiB payload and its header), and the room one read needs. */
#define READ_MAX (65535 + 40)
#define FRAME_ROOM (FRAME_HDR + FRAME_OFFHDR + READ_MAX)
/* TUN -> TLS: two reads' room (many MTU-sized packets, or one or two
 * segment trains) go out in one batch of records. */
#define TXBUF (2 * FRAME_ROOM)
#define RBUF TUNNEL_RBUF
#define VNET_HDR sizeof(struct virtio_net_hdr)

void tunnel_end(struct conn *c, const char *fmt, ...)
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
    atomic_store(&t->last_tx, tunnel_now_s());
    return 0;
}

int tunnel_send_frame(struct conn *c, int type, const void *payload, size_t len)
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
        unsigned char rk[FRAME_REKEY_LEN];
        size_t len = 0;
        int r = 1;

        if (drained) {
            struct pollfd p[2] = {{.fd = t->tun_fd, .events = POLLIN},
                                  {.fd = t->wake_fd, .events = POLLIN}};
            long long idle = tunnel_now_s() - atomic_load(&t->last_tx);
            int timeout;
            if (idle < 0) /* the wall clock stepped back: one keepalive */
                idle = 0;
            timeout =
                idle >= (long long)t->keepalive ? 0 : (int)((long long)t->keepalive - idle) * 1000;
            if (poll(p, 2, udp_tx_timeout(c, timeout)) < 0 && errno != EINTR) {
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
        /* The UDP channel's rekey, when due (udp.c). */
        if (udp_rekey_start(c, rk) > 0 && tunnel_send_frame(c, FRAME_REKEY, rk, sizeof(rk)) < 0) {
            tunnel_end(c, "send failed");
            break;
        }
        if (udp_tx_ready(c)) { /* the UDP data channel (udp.c) answers */
            r = udp_tx_batch(c);
            if (r < 0)
                tunnel_end(c, "TUN %s: %s", t->ifname, strerror(-r));
        } else
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
        } else if (tunnel_now_s() - atomic_load(&t->last_tx) >= (long long)t->keepalive) {
            if (tunnel_send_frame(c, T_KEEPALIVE, NULL, 0) < 0) {
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
                         (atomic_load(&t->seg_rx) ? FRAME_ALLOW_SEGMENTS : 0) |
                         (t->udp ? FRAME_ALLOW_REKEY : 0);
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
        } else if (f.type == FRAME_REKEY) {
            char bad[120];
            int rc = udp_rekey_frame(c, f.payload, f.len, bad, sizeof(bad));
            if (rc < 0) {
                tunnel_end(c, "malformed frame: %s", bad);
                return -EPROTO;
            }
            if (rc > 0) { /* the peer's rekey: our answer */
                rc = tunnel_send_frame(c, FRAME_REKEY, f.payload, f.len);
                udp_rekey_answered(c);
                if (rc < 0) {
                    tunnel_end(c, "send failed");
                    return -EIO;
                }
            }
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
                long long quiet = tunnel_now_s() - atomic_load(&t->last_rx);
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
        atomic_store(&t->last_rx, tunnel_now_s());
        atomic_fetch_add(&c->bytes_in, (unsigned long long)n);
        atomic_fetch_add(&c->l->bytes_in, (unsigned long long)n);
        if (parse_frames(c) < 0)
            break;
    }
    return NULL;
}

/* ---- life cycle ------------------------------------------------------------ */

void tunnel_finish(struct conn *c)
{
    struct tunnel *t = c->tun;
    struct daemon *d = c->d;
    struct ps_msg m = {.type = PS_TUN_DOWN};
    char err[PS_ERRLEN], reason[220];

    /* Between the kill and the teardown (tests/netns/udp.sh widens it:
     * nothing may cross the UDP channel meanwhile). */
    fault_point("tunnel-finish");
    snprintf(reason, sizeof(reason), "%s", t->reason[0] ? t->reason : "closed");
    if (!atomic_load(&t->peer_said_close)) {
        size_t rl = strlen(reason) < CLOSE_MAX ? strlen(reason) : CLOSE_MAX;
        tunnel_send_frame(c, T_CLOSE, reason, rl);
    }
    /* The UDP channel leaves the hub's table before the TUN closes, and its
     * keys are wiped: the kill ends both channels (udp.c). */
    udp_detach(c);
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
    pool_give(d->pool, t->pool_index);
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
void tunnel_hand_over(struct conn *c)
{
    struct tunnel *t = c->tun;

    if (conn_hand_to_tunnel(c, tunnel_wake) != KILL_NONE) {
        tunnel_wake(c);
        tunnel_finish(c);
        return;
    }
    /* Our own hold on `threads` while we start them: a thread that ends at
     * once (a kill right after the hand-off) must not take the tunnel down
     * while we still start the other. */
    atomic_store(&t->threads, 1);
    if (spawn(c, rx_main) < 0 || spawn(c, tx_main) < 0 ||
        (t->udp && t->uplink && spawn(c, udp_spoke_rx_main) < 0))
        tunnel_end(c, "cannot start");
    if (atomic_fetch_sub(&t->threads, 1) == 1)
        tunnel_finish(c);
}

struct tunnel *tunnel_new(unsigned mtu, unsigned keepalive, bool uplink)
{
    struct tunnel *t = calloc(1, sizeof(*t));

    if (!t)
        return NULL;
    /* Its own mapping, not the heap: a malloc'ed 98 KiB lands in a thread
     * arena whose pages earlier handshakes dirtied, so an idle tunnel kept
     * them all (tests/bench/run footprint: 71.6 -> 59.5 KiB a tunnel). */
    t->rbuf = mmap(NULL, RBUF, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (t->rbuf == MAP_FAILED)
        t->rbuf = NULL;
    t->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    t->done_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (!t->rbuf || t->wake_fd < 0 || t->done_fd < 0) {
        if (t->rbuf)
            munmap(t->rbuf, RBUF);
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
    atomic_store(&t->last_rx, tunnel_now_s());
    atomic_store(&t->last_tx, tunnel_now_s());
    return t;
}

void tunnel_free(struct tunnel *t)
{
    if (!t)
        return;
    udp_tunnel_free(t);
    if (t->tun_fd >= 0)
        close(t->tun_fd);
    close(t->wake_fd);
    close(t->done_fd);
    for (unsigned i = 0; i < t->n_networks; i++)
        free(t->networks[i]);
    pthread_mutex_destroy(&t->send_lock);
    pthread_mutex_destroy(&t->reason_lock);
    if (t->rbuf)
        munmap(t->rbuf, RBUF);
    free(t);
}

int tunnel_tun_up(struct conn *c, const struct ps_tun_up *u, char *err, size_t errlen)
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
    json_object_object_add(o, "packets_in",
                           json_object_new_int64((int64_t)atomic_load(&t->pkts_in)));
    json_object_object_add(o, "packets_out",
                           json_object_new_int64((int64_t)atomic_load(&t->pkts_out)));
    json_object_object_add(o, "offload", json_object_new_boolean(atomic_load(&t->offloading)));
    udp_describe(c, o);
}
