/*
 * fuzz-udp-gro: the UDP channel's segment trains (gateway/daemon/session/
 * udp-gro.h). On the receive side the packets come from the peer (an
 * authenticated spoke may be an attacker): they are joined into trains the
 * hub's kernel segments again, so every train written must be one the
 * SEGMENTS rules take, and segmenting it must give back exactly the packets
 * that went in (the same addresses, ports, flags and payload bytes at the
 * same sequence numbers: nothing the tunnel's anti-spoofing would have
 * refused one by one can hide in a train), within the MTU and 64 KiB, and
 * nothing may be lost or reordered. The send side's cutter gets the trains
 * written and the input's own trains: every packet it cuts fits the MTU,
 * has valid checksums and carries its part of the payload.
 *
 * The TUN is a SOCK_SEQPACKET socketpair (one message a write), two of them
 * for two tunnels sharing the receiving thread's train.
 *
 * Input: byte 0 chooses the MTU; then operations, each an op byte (low 3
 * bits the kind, bit 3 "fix the length fields", bit 4 "fix the checksums"):
 *   0, 6, 7  a packet: 2 bytes of length, then the packet (length-prefixed)
 *   1        the next segment of the last packet: 1 byte payload length
 *            (255: the same as the last), 1 byte a header byte to change
 *            (0: none; else its index + 1) and, if so, 1 byte to xor it with
 *   2        flush
 *   3        the tunnel stops: what waits is dropped, then a new one starts
 *   4        a TUN train for the cutter: 10 bytes of offload header (as in a
 *            SEGMENTS frame), 2 bytes of length, the packet
 *   5        switch to the other tunnel
 */
#include <fcntl.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <linux/virtio_net.h>

#include "frame.h"
#include "fuzz.h"
#include "udp-gro.h"

#define TCP_ACK 0x10
#define PKT_MAX 65535

struct pending {
    unsigned char **pkt;
    size_t *len, n, cap;
};

static int g_sv[2][2] = {{-1, -1}, {-1, -1}};
static unsigned char *g_rd, *g_cut;

static unsigned get16(const unsigned char *p)
{
    return (unsigned)p[0] << 8 | p[1];
}

static uint32_t get32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void put16(unsigned char *p, unsigned v)
{
    p[0] = (unsigned char)(v >> 8);
    p[1] = (unsigned char)v;
}

static void put32(unsigned char *p, uint32_t v)
{
    put16(p, v >> 16);
    put16(p + 2, v & 0xffff);
}

/* One's complement sum, folded; an odd last byte padded. */
static unsigned csum(const unsigned char *p, size_t len, unsigned long sum)
{
    for (size_t i = 0; i < len; i += 2)
        sum += (unsigned)p[i] << 8 | (i + 1 < len ? p[i + 1] : 0);
    while (sum >> 16)
        sum = (sum & 0xffff) + (sum >> 16);
    return (unsigned)sum;
}

static unsigned pseudo(const unsigned char *p, size_t tcplen)
{
    return (p[0] >> 4) == 4 ? csum(p + 12, 8, 6 + tcplen) : csum(p + 8, 32, 6 + tcplen);
}

static size_t iph_len(const unsigned char *p)
{
    return (p[0] >> 4) == 4 ? (size_t)(p[0] & 15) * 4 : 40;
}

static void fix_lengths(unsigned char *p, size_t len)
{
    if (len >= 20 && (p[0] >> 4) == 4)
        put16(p + 2, (unsigned)len);
    else if (len >= 40 && (p[0] >> 4) == 6)
        put16(p + 4, (unsigned)(len - 40));
}

/* Valid IPv4 header and TCP checksums, when it looks like TCP. */
static void fix_sums(unsigned char *p, size_t len)
{
    size_t ihl;

    if (len < 20 || ((p[0] >> 4) != 4 && (p[0] >> 4) != 6))
        return;
    ihl = iph_len(p);
    if (ihl < 20)
        return;
    if ((p[0] >> 4) == 4 && ihl <= len) {
        p[10] = p[11] = 0;
        put16(p + 10, ~csum(p, ihl, 0) & 0xffff);
    }
    if (ihl + 20 > len || p[(p[0] >> 4) == 4 ? 9 : 6] != 6)
        return;
    p[ihl + 16] = p[ihl + 17] = 0;
    put16(p + ihl + 16, ~csum(p + ihl, len - ihl, pseudo(p, len - ihl)) & 0xffff);
}

static void setup(void)
{
    int big = 4 << 20;

    if (g_sv[0][0] >= 0)
        return;
    g_rd = malloc(PKT_MAX + 64);
    g_cut = malloc(9000 + 128);
    FUZZ_CHECK(g_rd && g_cut);
    for (int i = 0; i < 2; i++) {
        FUZZ_CHECK(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, g_sv[i]) == 0);
        setsockopt(g_sv[i][0], SOL_SOCKET, SO_SNDBUF, &big, sizeof(big));
        setsockopt(g_sv[i][1], SOL_SOCKET, SO_RCVBUF, &big, sizeof(big));
        /* A write that would block is a lost packet the model sees, not a hang. */
        fcntl(g_sv[i][0], F_SETFL, O_NONBLOCK);
    }
}

static void push(struct pending *q, const unsigned char *p, size_t len)
{
    if (q->n == q->cap) {
        q->cap = q->cap ? q->cap * 2 : 64;
        q->pkt = realloc(q->pkt, q->cap * sizeof(*q->pkt));
        q->len = realloc(q->len, q->cap * sizeof(*q->len));
        FUZZ_CHECK(q->pkt && q->len);
    }
    q->pkt[q->n] = malloc(len);
    FUZZ_CHECK(q->pkt[q->n] != NULL);
    memcpy(q->pkt[q->n], p, len);
    q->len[q->n++] = len;
}

/* Drop the first k. */
static void pop(struct pending *q, size_t k)
{
    if (k == 0)
        return;
    for (size_t i = 0; i < k; i++)
        free(q->pkt[i]);
    memmove(q->pkt, q->pkt + k, (q->n - k) * sizeof(*q->pkt));
    memmove(q->len, q->len + k, (q->n - k) * sizeof(*q->len));
    q->n -= k;
}

/* A packet the cutter made from a train: within the MTU, one IP packet,
 * valid checksums. */
static void check_cut_packet(const unsigned char *s, size_t sl, unsigned mtu, bool tcp)
{
    size_t ihl;

    FUZZ_CHECK(sl <= mtu);
    FUZZ_CHECK(frame_packet_ok(s, sl));
    if (!tcp)
        return;
    ihl = iph_len(s);
    if ((s[0] >> 4) == 4)
        FUZZ_CHECK(csum(s, ihl, 0) == 0xffff);
    FUZZ_CHECK(csum(s + ihl, sl - ihl, pseudo(s, sl - ihl)) == 0xffff);
}

/* Cut a train with the send side's cutter; its pieces must carry its
 * payload in order; with want (the packets joined into it), they must be
 * those packets but for the IPv4 ID and the checksums. */
static void cut(const struct frame_offload *o, const unsigned char *p, size_t len, unsigned mtu,
                const struct pending *want)
{
    size_t n = gso_count(o, p, len, mtu), hl, done = 0;

    if (want)
        FUZZ_CHECK(n == want->n);
    if (n == 0)
        return;
    if (o->gso_type == FRAME_OFF_GSO_NONE) {
        size_t sl = gso_packet(o, p, len, 0, g_cut);
        FUZZ_CHECK(n == 1 && sl == len && sl <= mtu && frame_packet_ok(g_cut, sl));
        for (size_t i = 0; i < len; i++)
            FUZZ_CHECK(g_cut[i] == p[i] || ((o->flags & FRAME_OFF_NEEDS_CSUM) &&
                                            i - o->csum_start - o->csum_offset < 2));
        return;
    }
    hl = frame_segments_headers(o, p);
    FUZZ_CHECK(hl >= 40 && hl < len && n == (len - hl + o->gso_size - 1) / o->gso_size);
    for (size_t i = 0; i < n; i++) {
        size_t sl = gso_packet(o, p, len, i, g_cut), plen = sl - hl, ihl = o->csum_start;
        check_cut_packet(g_cut, sl, mtu, true);
        FUZZ_CHECK(sl > hl && plen <= o->gso_size && (plen == o->gso_size || i + 1 == n));
        FUZZ_CHECK(memcmp(g_cut + hl, p + hl + done, plen) == 0);
        FUZZ_CHECK(get32(g_cut + ihl + 4) == get32(p + ihl + 4) + (uint32_t)done);
        done += plen;
        if (!want)
            continue;
        FUZZ_CHECK(want->len[i] == sl);
        for (size_t b = 0; b < sl; b++) {
            bool id = (g_cut[0] >> 4) == 4 && (b == 4 || b == 5 || b == 10 || b == 11);
            FUZZ_CHECK(g_cut[b] == want->pkt[i][b] || id || b == ihl + 16 || b == ihl + 17);
        }
    }
    FUZZ_CHECK(done == len - hl);
}

/* A train written by gro_flush: what the kernel takes, and what it
 * segments it into are the next packets waiting, exactly. */
static void check_train(const struct virtio_net_hdr *vh, const unsigned char *p, size_t len,
                        unsigned mtu, struct pending *q)
{
    struct frame_offload o = {.flags = vh->flags, .gso_type = vh->gso_type,
                              .hdr_len = vh->hdr_len, .gso_size = vh->gso_size,
                              .csum_start = vh->csum_start, .csum_offset = vh->csum_offset};
    bool v4 = len > 0 && (p[0] >> 4) == 4;
    size_t ihl, hl, k, thl;
    struct pending seg = {0};

    FUZZ_CHECK(len <= FRAME_SEGMENTS_MAX && frame_segments_bad(&o, p, len, mtu) == NULL);
    FUZZ_CHECK(vh->flags == VIRTIO_NET_HDR_F_NEEDS_CSUM);
    FUZZ_CHECK(vh->gso_type == (v4 ? VIRTIO_NET_HDR_GSO_TCPV4 : VIRTIO_NET_HDR_GSO_TCPV6));
    ihl = v4 ? 20 : 40;
    thl = (size_t)(p[ihl + 12] >> 4) * 4;
    hl = ihl + thl;
    FUZZ_CHECK(vh->csum_start == ihl && vh->csum_offset == 16 && vh->hdr_len == hl);
    FUZZ_CHECK(hl + vh->gso_size <= mtu && len > hl + vh->gso_size);
    if (v4)
        FUZZ_CHECK(csum(p, 20, 0) == 0xffff);
    /* NEEDS_CSUM: the field holds the pseudo-header's sum. */
    FUZZ_CHECK(get16(p + ihl + 16) == pseudo(p, len - ihl));
    k = (len - hl + vh->gso_size - 1) / vh->gso_size;
    FUZZ_CHECK(k >= 2 && k <= q->n);
    for (size_t j = 0; j < k; j++) {
        const unsigned char *s = q->pkt[j];
        size_t sl = q->len[j], plen = j + 1 < k ? vh->gso_size : len - hl - j * vh->gso_size;
        const unsigned char *st = s + ihl, *pt = p + ihl;

        FUZZ_CHECK(sl == hl + plen);
        /* Only segments whose checksums hold: the kernel writes the train's
         * afresh (NEEDS_CSUM), so a bad one would come out valid. */
        FUZZ_CHECK(csum(s + ihl, sl - ihl, pseudo(s, sl - ihl)) == 0xffff);
        FUZZ_CHECK(!v4 || csum(s, 20, 0) == 0xffff);
        FUZZ_CHECK(memcmp(s + hl, p + hl + j * vh->gso_size, plen) == 0);
        /* The headers the kernel copies into every segment. */
        FUZZ_CHECK(v4 ? !memcmp(s, p, 2) && !memcmp(s + 6, p + 6, 4) && !memcmp(s + 12, p + 12, 8)
                      : !memcmp(s, p, 4) && !memcmp(s + 6, p + 6, 34));
        FUZZ_CHECK(!memcmp(st, pt, 4) && !memcmp(st + 8, pt + 8, 5) &&
                   !memcmp(st + 14, pt + 14, 2) && !memcmp(st + 18, pt + 18, thl - 18));
        FUZZ_CHECK(get32(st + 4) == get32(pt + 4) + (uint32_t)(j * vh->gso_size));
        /* PSH on the last only (the kernel's segmentation). */
        FUZZ_CHECK(st[13] == (j + 1 < k ? TCP_ACK : pt[13]));
        push(&seg, s, sl);
    }
    /* The send side cuts it back into those packets. */
    {
        unsigned char *copy = malloc(len);
        FUZZ_CHECK(copy != NULL);
        memcpy(copy, p, len);
        cut(&o, copy, len, mtu, &seg);
        free(copy);
    }
    pop(&seg, seg.n);
    free(seg.pkt);
    free(seg.len);
    pop(q, k);
}

/* Read every write to tunnel i's TUN and check it against what waits. */
static void drain(int i, unsigned mtu, struct pending *q)
{
    for (;;) {
        struct virtio_net_hdr vh;
        ssize_t n = recv(g_sv[i][1], g_rd, PKT_MAX + 64, MSG_DONTWAIT);
        size_t len;

        if (n < 0)
            return;
        FUZZ_CHECK(n > (ssize_t)sizeof(vh));
        memcpy(&vh, g_rd, sizeof(vh));
        len = (size_t)n - sizeof(vh);
        if (vh.gso_type == VIRTIO_NET_HDR_GSO_NONE) {
            /* A packet alone: as it came, byte for byte. */
            FUZZ_CHECK(vh.flags == 0 && vh.gso_size == 0 && vh.hdr_len == 0);
            FUZZ_CHECK(q->n > 0 && q->len[0] == len && !memcmp(q->pkt[0], g_rd + sizeof(vh), len));
            pop(q, 1);
        } else {
            check_train(&vh, g_rd + sizeof(vh), len, mtu, q);
        }
    }
}

/* What udp.c's to_tun lets through to gro_add. */
static void feed(struct gro *g, int i, atomic_bool *stop, unsigned mtu, struct pending *q,
                 const unsigned char *p, size_t len)
{
    if (len > mtu || !frame_packet_ok(p, len))
        return;
    push(&q[i], p, len);
    gro_add(g, g_sv[i][0], &stop[i], p, len);
    drain(0, mtu, &q[0]);
    drain(1, mtu, &q[1]);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const unsigned mtus[] = {576, 1280, 1400, 1500, 9000};
    static unsigned char pkt[PKT_MAX], last[PKT_MAX];
    struct pending q[2] = {{0}};
    atomic_bool stop[2] = {false, false};
    size_t off = 1, last_len = 0;
    unsigned mtu, cur = 0;
    struct gro *g;
    unsigned long long w, n, refused;

    if (size < 1)
        return 0;
    setup();
    mtu = mtus[data[0] % 5];
    g = gro_new();
    FUZZ_CHECK(g != NULL);
    while (off < size) {
        unsigned op = data[off++], kind = op & 7;
        size_t len;

        if (kind == 2) {
            gro_flush(g);
            drain(0, mtu, &q[0]);
            drain(1, mtu, &q[1]);
        } else if (kind == 3) {
            atomic_store(&stop[cur], true);
            gro_flush(g);
            drain(cur ^ 1, mtu, &q[cur ^ 1]);
            FUZZ_CHECK(recv(g_sv[cur][1], g_rd, PKT_MAX + 64, MSG_DONTWAIT) < 0);
            pop(&q[cur], q[cur].n);
            atomic_store(&stop[cur], false);
        } else if (kind == 5) {
            cur ^= 1;
        } else if (kind == 1) {
            size_t ihl, thl, plen, hl;
            uint32_t seed = (uint32_t)off * 2654435761u + 1;
            if (off + 2 > size || last_len < 40 || ((last[0] >> 4) != 4 && (last[0] >> 4) != 6))
                break;
            ihl = iph_len(last);
            if (ihl < 20 || ihl + 20 > last_len)
                break;
            thl = (size_t)(last[ihl + 12] >> 4) * 4;
            hl = ihl + thl;
            if (thl < 20 || hl > last_len || hl >= mtu)
                break;
            plen = data[off] == 255 ? last_len - hl : (size_t)data[off] * (mtu - hl) / 254;
            memcpy(pkt, last, hl);
            put32(pkt + ihl + 4, get32(last + ihl + 4) + (uint32_t)(last_len - hl));
            for (size_t i = 0; i < plen; i++)
                pkt[hl + i] = (unsigned char)(fuzz_rand(&seed) >> 7);
            len = hl + plen;
            if (data[off + 1]) {
                if (off + 3 > size)
                    break;
                pkt[(data[off + 1] - 1u) % hl] ^= data[off + 2];
                off++;
            }
            off += 2;
            fix_lengths(pkt, len);
            if (op & 0x10)
                fix_sums(pkt, len);
            memcpy(last, pkt, len);
            last_len = len;
            feed(g, (int)cur, stop, mtu, q, pkt, len);
        } else if (kind == 4) {
            struct frame_offload o;
            if (off + 12 > size)
                break;
            o = (struct frame_offload){.flags = data[off], .gso_type = data[off + 1],
                                       .hdr_len = (unsigned short)get16(data + off + 2),
                                       .gso_size = (unsigned short)get16(data + off + 4),
                                       .csum_start = (unsigned short)get16(data + off + 6),
                                       .csum_offset = (unsigned short)get16(data + off + 8)};
            len = get16(data + off + 10);
            off += 12;
            len = len < size - off ? len : size - off;
            memcpy(pkt, data + off, len);
            off += len;
            if (op & 0x08)
                fix_lengths(pkt, len);
            if ((op & 0x10) && len >= 40 && o.csum_start + 18u <= len)
                put16(pkt + o.csum_start + 16, pseudo(pkt, len - o.csum_start));
            cut(&o, pkt, len, mtu, NULL);
        } else {
            if (off + 2 > size)
                break;
            len = get16(data + off);
            off += 2;
            len = len < size - off ? len : size - off;
            memcpy(pkt, data + off, len);
            off += len;
            if (op & 0x08)
                fix_lengths(pkt, len);
            if (op & 0x10)
                fix_sums(pkt, len);
            memcpy(last, pkt, len);
            last_len = len;
            feed(g, (int)cur, stop, mtu, q, pkt, len);
        }
    }
    /* Nothing lost: every packet that went in came out. */
    gro_flush(g);
    for (int i = 0; i < 2; i++) {
        drain(i, mtu, &q[i]);
        FUZZ_CHECK(q[i].n == 0);
        free(q[i].pkt);
        free(q[i].len);
    }
    gro_counts(g, &w, &n, &refused);
    FUZZ_CHECK(refused == 0);
    gro_free(g);
    return 0;
}
