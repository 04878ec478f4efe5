/*
 * udp-gro.c: segment trains on the UDP channel's receive side (udp-gro.h).
 * A packet written to the TUN costs the whole forwarding path once; a train
 * of n segments costs it once for all n (measured in docs/performance.md,
 * "WAN": the receiving thread was the tunnel's bottleneck and its socket
 * buffer the queue a ping waited in).
 */
#include "udp-gro.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

#include <linux/virtio_net.h>

#include "frame.h"
#include "log.h"

#define TRAIN_MAX FRAME_SEGMENTS_MAX
#define TCP_PSH 0x08
#define TCP_ACK 0x10

struct gro {
    unsigned char *buf; /* TRAIN_MAX: the first packet's headers, then the payloads */
    size_t len;         /* bytes in buf; 0: no train */
    size_t iphl, hl;    /* the IP header's length; IP and TCP headers' */
    size_t seg;         /* the first segment's payload: the segment size */
    unsigned n;         /* segments in the train */
    uint32_t next_seq;  /* where the next segment must start */
    int fd;
    const atomic_bool *stop;
    unsigned long long writes, packets, refused;
};

struct gro *gro_new(void)
{
    struct gro *g = calloc(1, sizeof(*g));

    if (g && !(g->buf = malloc(TRAIN_MAX))) {
        free(g);
        g = NULL;
    }
    return g;
}

void gro_free(struct gro *g)
{
    if (!g)
        return;
    free(g->buf);
    free(g);
}

void gro_counts(const struct gro *g, unsigned long long *writes, unsigned long long *packets,
                unsigned long long *refused)
{
    *writes = g->writes;
    *packets = g->packets;
    *refused = g->refused;
}

static uint32_t get32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* The 16-bit one's complement sum of len bytes (even), added to sum. */
static uint32_t sum16(const unsigned char *p, size_t len, uint32_t sum)
{
    for (size_t i = 0; i + 1 < len; i += 2)
        sum += (uint32_t)p[i] << 8 | p[i + 1];
    return sum;
}

static uint16_t fold(uint32_t sum)
{
    while (sum >> 16)
        sum = (sum & 0xffff) + (sum >> 16);
    return (uint16_t)sum;
}

/* The IP and TCP header lengths of a TCP segment that may start or join a
 * train; false for anything else. */
static bool tcp_headers(const unsigned char *p, size_t len, size_t *iphl, size_t *thl)
{
    if ((p[0] >> 4) == 4) {
        /* No options; DF set, MF clear, offset 0: a whole datagram. */
        if ((p[0] & 15) != 5 || p[9] != 6 || p[6] != 0x40 || p[7] != 0)
            return false;
        *iphl = 20;
    } else if ((p[0] >> 4) == 6) {
        if (p[6] != 6)
            return false;
        *iphl = 40;
    } else {
        return false;
    }
    if (len < *iphl + 20)
        return false;
    *thl = (size_t)(p[*iphl + 12] >> 4) * 4;
    return *thl >= 20 && *iphl + *thl <= len;
}

/* The one's complement sum of len bytes, folded to 16 bits, in the
 * machine's byte order (RFC 1071: the sum of native words is the
 * byte-swapped sum of big-endian ones). Native 64-bit words added with
 * their end-around carry, in two chains that do not wait on each other
 * (1.7x the speed of adding 32-bit halves, in perf's top symbols on the
 * UDP channel's clean-link bench); 2^64 - 1 is a multiple of 2^16 - 1, so
 * folding keeps the sum. */
static uint16_t sum_native(const unsigned char *p, size_t len)
{
    uint64_t a = 0, b = 0, w, v;
    size_t i = 0;

    for (; i + 16 <= len; i += 16) {
        memcpy(&w, p + i, 8);
        memcpy(&v, p + i + 8, 8);
        a += w;
        a += a < w;
        b += v;
        b += b < v;
    }
    if (i < len) { /* the tail, zero-padded */
        w = v = 0;
        memcpy(&w, p + i, len - i < 8 ? len - i : 8);
        if (len - i > 8)
            memcpy(&v, p + i + 8, len - i - 8);
        a += w;
        a += a < w;
        b += v;
        b += b < v;
    }
    a += b;
    a += a < b;
    while (a >> 16)
        a = (a & 0xffff) + (a >> 16);
    return (uint16_t)a;
}

/* The same sum as sum16's over len bytes (an odd last one padded), in
 * network order, computed by sum_native. */
static uint32_t sum_net(const unsigned char *p, size_t len)
{
    static const uint16_t one = 1;
    uint32_t sum = sum_native(p, len);

    if (*(const unsigned char *)&one == 1) /* little-endian: to network order */
        sum = (sum >> 8 | sum << 8) & 0xffff;
    return sum;
}

/* Whether the IPv4 header's and the TCP checksums of a segment hold (p:
 * len bytes, the IP header iphl). A train goes with NEEDS_CSUM, so the
 * kernel writes its checksums afresh: a segment corrupted before the
 * tunnel must not join one, or its bad bytes would come out with a valid
 * checksum (the kernel's own GRO checks them too). */
static bool sums_ok(const unsigned char *p, size_t len, size_t iphl)
{
    uint32_t sum = sum_net(p + iphl, len - iphl);

    if (iphl == 20 && fold(sum16(p, 20, 0)) != 0xffff)
        return false;
    sum += 6 + (uint32_t)(len - iphl);
    sum = iphl == 20 ? sum16(p + 12, 8, sum) : sum16(p + 8, 32, sum);
    return fold(sum) == 0xffff;
}

/* Whether p continues the train: the same flow and headers, the next
 * sequence number, a segment no longer than the first. */
static bool joins(const struct gro *g, const unsigned char *p, size_t iphl, size_t thl,
                  size_t plen)
{
    const unsigned char *f = g->buf, *ft = f + iphl, *pt = p + iphl;
    unsigned flags = pt[13];

    if (iphl != g->iphl || iphl + thl != g->hl || plen == 0 || plen > g->seg ||
        g->len + plen > TRAIN_MAX || (flags != TCP_ACK && flags != (TCP_ACK | TCP_PSH)) ||
        get32(pt + 4) != g->next_seq)
        return false;
    /* IPv4: version, IHL, TOS; flags, TTL, protocol; addresses (not the
     * length, ID and checksum). IPv6: version, class, flow; next header,
     * hop limit; addresses (not the length). */
    if (iphl == 20 ? memcmp(f, p, 2) || memcmp(f + 6, p + 6, 4) || memcmp(f + 12, p + 12, 8)
                   : memcmp(f, p, 4) || memcmp(f + 6, p + 6, 34))
        return false;
    /* TCP: ports; acknowledgement, offset; window; urgent pointer and the
     * options (not the sequence number, flags, checksum). */
    return !memcmp(ft, pt, 4) && !memcmp(ft + 8, pt + 8, 5) && !memcmp(ft + 14, pt + 14, 2) &&
           !memcmp(ft + 18, pt + 18, thl - 18);
}

static void write_vnet(struct gro *g, int fd, struct virtio_net_hdr *vh, const unsigned char *p,
                       size_t len, unsigned n)
{
    struct iovec iov[2] = {{.iov_base = vh, .iov_len = sizeof(*vh)},
                           {.iov_base = (void *)p, .iov_len = len}};

    if (writev(fd, iov, 2) < 0 && errno != EAGAIN && errno != ENOBUFS)
        log_debug("UDP: TUN write: %s", strerror(errno));
    g->writes++;
    g->packets += n;
}

void gro_flush(struct gro *g)
{
    struct virtio_net_hdr vh = {0};
    struct frame_offload off = {0};
    unsigned char *p = g->buf, *th = p + g->iphl;
    size_t tcplen = g->len - g->iphl;
    unsigned n = g->n;
    uint32_t sum;
    const char *why;

    if (!g->len)
        return;
    g->len = 0;
    g->n = 0;
    if (atomic_load(g->stop))
        return;
    if (n == 1) {
        write_vnet(g, g->fd, &vh, p, g->iphl + tcplen, 1);
        return;
    }
    /* The merged packet's lengths; the TCP checksum field holds the
     * pseudo-header's sum for the kernel to complete (NEEDS_CSUM), as a
     * TSO sender's stack leaves it. */
    if (g->iphl == 20) {
        p[2] = (unsigned char)((g->iphl + tcplen) >> 8);
        p[3] = (unsigned char)(g->iphl + tcplen);
        p[10] = p[11] = 0;
        sum = (uint16_t)~fold(sum16(p, 20, 0));
        p[10] = (unsigned char)(sum >> 8);
        p[11] = (unsigned char)sum;
        sum = sum16(p + 12, 8, 6 + (uint32_t)tcplen);
    } else {
        p[4] = (unsigned char)(tcplen >> 8);
        p[5] = (unsigned char)tcplen;
        sum = sum16(p + 8, 32, 6 + (uint32_t)tcplen);
    }
    sum = fold(sum);
    th[16] = (unsigned char)(sum >> 8);
    th[17] = (unsigned char)sum;
    off.flags = FRAME_OFF_NEEDS_CSUM;
    off.gso_type = g->iphl == 20 ? FRAME_OFF_GSO_TCPV4 : FRAME_OFF_GSO_TCPV6;
    off.gso_size = (unsigned short)g->seg;
    off.hdr_len = (unsigned short)g->hl;
    off.csum_start = (unsigned short)g->iphl;
    off.csum_offset = 16;
    /* The train's own MTU is its segment size (each segment passed the
     * tunnel's MTU on its own). */
    if ((why = frame_segments_bad(&off, p, g->iphl + tcplen, (unsigned)(g->hl + g->seg))) != NULL) {
        g->refused++;
        log_debug("UDP: a train of %u segments refused (%s)", n, why);
        return;
    }
    vh.flags = VIRTIO_NET_HDR_F_NEEDS_CSUM;
    vh.gso_type = off.gso_type == FRAME_OFF_GSO_TCPV4 ? VIRTIO_NET_HDR_GSO_TCPV4
                                                      : VIRTIO_NET_HDR_GSO_TCPV6;
    vh.gso_size = off.gso_size;
    vh.hdr_len = off.hdr_len;
    vh.csum_start = off.csum_start;
    vh.csum_offset = off.csum_offset;
    write_vnet(g, g->fd, &vh, p, g->iphl + tcplen, n);
}

void gro_add(struct gro *g, int fd, const atomic_bool *stop, const unsigned char *pkt,
             size_t len)
{
    struct virtio_net_hdr vh = {0};
    size_t iphl = 0, thl = 0, plen = 0;
    bool tcp = tcp_headers(pkt, len, &iphl, &thl);

    if (tcp)
        plen = len - iphl - thl;
    if (g->len && g->fd == fd && tcp && joins(g, pkt, iphl, thl, plen) &&
        sums_ok(pkt, len, iphl)) {
        memcpy(g->buf + g->len, pkt + iphl + thl, plen);
        g->len += plen;
        g->n++;
        g->next_seq += (uint32_t)plen;
        if (pkt[iphl + 13] & TCP_PSH)
            g->buf[iphl + 13] |= TCP_PSH;
        /* A shorter segment or a PSH ends it; so does a full one. */
        if (plen < g->seg || (pkt[iphl + 13] & TCP_PSH) || g->len + g->seg > TRAIN_MAX)
            gro_flush(g);
        return;
    }
    gro_flush(g);
    if (tcp && pkt[iphl + 13] == TCP_ACK && plen >= FRAME_GSO_MIN && len + plen <= TRAIN_MAX &&
        sums_ok(pkt, len, iphl)) {
        memcpy(g->buf, pkt, len);
        g->len = len;
        g->iphl = iphl;
        g->hl = iphl + thl;
        g->seg = plen;
        g->n = 1;
        g->next_seq = get32(pkt + iphl + 4) + (uint32_t)plen;
        g->fd = fd;
        g->stop = stop;
        return;
    }
    if (!atomic_load(stop))
        write_vnet(g, fd, &vh, pkt, len, 1);
}

/* ---- sending: a train cut into packets ------------------------------------ */

size_t gso_count(const struct frame_offload *o, const unsigned char *p, size_t len, unsigned mtu)
{
    size_t hl;

    if (frame_segments_bad(o, p, len, mtu))
        return 0;
    if (o->gso_type == FRAME_OFF_GSO_NONE)
        return 1;
    hl = frame_segments_headers(o, p);
    /* Each packet is the headers and a segment: over the MTU, it would be
     * dropped anyway, and gso_packet's out has room for mtu bytes only. */
    if (hl + o->gso_size > mtu)
        return 0;
    return len > hl ? (len - hl + o->gso_size - 1) / o->gso_size : 0;
}

/* Complete the checksum at start + offset over [start, len): the field
 * holds the pseudo-header's sum (what NEEDS_CSUM means). */
static void csum_complete(unsigned char *p, size_t len, size_t start, size_t offset)
{
    uint16_t c = (uint16_t)~fold(sum_net(p + start, len - start));

    if (c == 0 && offset == 6) /* UDP: 0 means no checksum */
        c = 0xffff;
    p[start + offset] = (unsigned char)(c >> 8);
    p[start + offset + 1] = (unsigned char)c;
}

size_t gso_packet(const struct frame_offload *o, const unsigned char *p, size_t len, size_t i,
                  unsigned char *out)
{
    size_t hl, iphl = o->csum_start, off, plen, tcplen;
    unsigned char *th;
    uint32_t v, sum;

    if (o->gso_type == FRAME_OFF_GSO_NONE) {
        memcpy(out, p, len);
        if (o->flags & FRAME_OFF_NEEDS_CSUM)
            csum_complete(out, len, o->csum_start, o->csum_offset);
        return len;
    }
    hl = frame_segments_headers(o, p);
    off = i * o->gso_size;
    plen = len - hl - off < o->gso_size ? len - hl - off : o->gso_size;
    memcpy(out, p, hl);
    memcpy(out + hl, p + hl + off, plen);
    th = out + iphl;
    tcplen = hl - iphl + plen;
    if ((out[0] >> 4) == 4) {
        v = (uint32_t)(out[4] << 8 | out[5]) + (uint32_t)i; /* the ID counts up */
        out[2] = (unsigned char)((hl + plen) >> 8);
        out[3] = (unsigned char)(hl + plen);
        out[4] = (unsigned char)(v >> 8);
        out[5] = (unsigned char)v;
        out[10] = out[11] = 0;
        v = (uint16_t)~fold(sum16(out, iphl, 0));
        out[10] = (unsigned char)(v >> 8);
        out[11] = (unsigned char)v;
        sum = sum16(out + 12, 8, 6 + (uint32_t)tcplen);
    } else {
        out[4] = (unsigned char)((hl - 40 + plen) >> 8);
        out[5] = (unsigned char)(hl - 40 + plen);
        sum = sum16(out + 8, 32, 6 + (uint32_t)tcplen);
    }
    v = get32(th + 4) + (uint32_t)off;
    th[4] = (unsigned char)(v >> 24);
    th[5] = (unsigned char)(v >> 16);
    th[6] = (unsigned char)(v >> 8);
    th[7] = (unsigned char)v;
    /* FIN and PSH on the last packet only, CWR on the first only (what the
     * kernel's TCP segmentation does). */
    if (off + plen < len - hl)
        th[13] &= (unsigned char)~0x09;
    if (i > 0)
        th[13] &= (unsigned char)~0x80;
    th[16] = (unsigned char)(fold(sum) >> 8);
    th[17] = (unsigned char)fold(sum);
    csum_complete(out, hl + plen, iphl, 16);
    return hl + plen;
}
