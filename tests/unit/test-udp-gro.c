/*
 * test-udp-gro: the UDP channel's segment trains (gateway/daemon/session/
 * udp-gro.c). A TSO train is cut into packets whose headers and checksums
 * are checked here independently; joined again on the receiving side, the
 * packets make the very train (byte for byte, with the offload header the
 * kernel needs); a gap, a foreign packet or a stopping tunnel end a train.
 * The "TUN" is a SOCK_SEQPACKET socketpair: one message a write.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <linux/virtio_net.h>

#include "cunit-main.h"
#include "udp-gro.h"

#define MSS 1348
#define PAYLOAD (40 * MSS + 501) /* an odd last segment: its checksum pads */

static unsigned sum16(const unsigned char *p, size_t len, unsigned sum)
{
    for (size_t i = 0; i < len; i += 2)
        sum += (unsigned)p[i] << 8 | (i + 1 < len ? p[i + 1] : 0);
    while (sum >> 16)
        sum = (sum & 0xffff) + (sum >> 16);
    return sum;
}

static void put16(unsigned char *p, unsigned v)
{
    p[0] = (unsigned char)(v >> 8);
    p[1] = (unsigned char)v;
}

/* The pseudo-header sum of a TCP segment of tcplen bytes. */
static unsigned pseudo(const unsigned char *p, size_t tcplen)
{
    return (p[0] >> 4) == 4 ? sum16(p + 12, 8, 6 + (unsigned)tcplen)
                            : sum16(p + 8, 32, 6 + (unsigned)tcplen);
}

/* A train as a TSO sender's TUN hands it over: IPv4 or IPv6, TCP with the
 * timestamp option, ACK|PSH, the checksum field holding the pseudo-header
 * sum; its offload header in *o. Returns its length. */
static size_t make_train(unsigned char *p, bool v6, size_t payload, struct frame_offload *o)
{
    size_t iphl = v6 ? 40 : 20, hl = iphl + 32, len = hl + payload;
    unsigned char *th = p + iphl;

    memset(p, 0, hl);
    if (v6) {
        p[0] = 0x60;
        put16(p + 4, (unsigned)(len - 40));
        p[6] = 6;
        p[7] = 64;
        p[8] = 0xfd;
        p[23] = 2;
        p[24] = 0xfd;
        p[39] = 1;
    } else {
        p[0] = 0x45;
        put16(p + 2, (unsigned)len);
        put16(p + 4, 0x1234);
        p[6] = 0x40;
        p[8] = 64;
        p[9] = 6;
        memcpy(p + 12, "\x0a\x14\x00\x02\x0a\x0a\x00\x02", 8);
        put16(p + 10, ~sum16(p, 20, 0) & 0xffff);
    }
    put16(th, 40000);
    put16(th + 2, 5201);
    memcpy(th + 4, "\x00\x00\x03\xe8\x00\x00\x13\x88", 8); /* seq 1000, ack 5000 */
    th[12] = 8 << 4;
    th[13] = 0x18; /* ACK|PSH */
    put16(th + 14, 500);
    memcpy(th + 20, "\x01\x01\x08\x0a\x00\x01\x02\x03\x04\x05\x06\x07", 12);
    for (size_t i = 0; i < payload; i++)
        p[hl + i] = (unsigned char)(i * 7 + i / 251);
    put16(th + 16, pseudo(p, len - iphl));
    *o = (struct frame_offload){.flags = FRAME_OFF_NEEDS_CSUM,
                                .gso_type = v6 ? FRAME_OFF_GSO_TCPV6 : FRAME_OFF_GSO_TCPV4,
                                .gso_size = MSS, .csum_start = (unsigned short)iphl,
                                .csum_offset = 16};
    return len;
}

static unsigned char *g_train, *g_out;
static unsigned char (*g_pkts)[1500];
static size_t g_lens[64];

/* Cut the train; check every packet; return how many. */
static size_t cut(const unsigned char *p, size_t len, const struct frame_offload *o, bool v6)
{
    /* The MTU the segment size was chosen for: headers and a segment. */
    size_t iphl = v6 ? 40 : 20, hl = iphl + 32, n = gso_count(o, p, len, (unsigned)(hl + MSS));

    EXPECT_INT(n, (PAYLOAD + MSS - 1) / MSS);
    for (size_t i = 0; i < n && i < 64; i++) {
        unsigned char *s = g_pkts[i];
        size_t want = i + 1 < n ? MSS : PAYLOAD - (n - 1) * MSS;
        size_t sl = gso_packet(o, p, len, i, s);
        unsigned seq = (unsigned)(s[iphl + 4] << 24 | s[iphl + 5] << 16 | s[iphl + 6] << 8 |
                                  s[iphl + 7]);
        g_lens[i] = sl;
        EXPECT_INT(sl, hl + want);
        if (v6) {
            EXPECT_INT(s[4] << 8 | s[5], sl - 40);
        } else {
            EXPECT_INT(s[2] << 8 | s[3], sl);
            EXPECT_INT(s[4] << 8 | s[5], 0x1234 + i);
            EXPECT_INT(sum16(s, 20, 0), 0xffff); /* the IP header's checksum */
        }
        EXPECT_INT(seq, 1000 + i * MSS);
        EXPECT_INT(s[iphl + 13], i + 1 < n ? 0x10 : 0x18); /* PSH on the last only */
        /* The TCP checksum, complete: pseudo-header + segment sum to 0xffff. */
        EXPECT_INT(sum16(s + iphl, sl - iphl, pseudo(s, sl - iphl)), 0xffff);
        CU_ASSERT(memcmp(s + hl, p + hl + i * MSS, want) == 0);
    }
    return n;
}

static int g_sv[2];

static void tun_pair(void)
{
    int big = 4 << 20;

    CU_ASSERT_FATAL(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, g_sv) == 0);
    setsockopt(g_sv[0], SOL_SOCKET, SO_SNDBUF, &big, sizeof(big));
    setsockopt(g_sv[1], SOL_SOCKET, SO_RCVBUF, &big, sizeof(big));
}

/* The next write to the "TUN": its offload header and packet. */
static ssize_t tun_read(struct virtio_net_hdr *vh)
{
    ssize_t n = recv(g_sv[1], g_out, 70000, MSG_DONTWAIT);

    if (n < (ssize_t)sizeof(*vh))
        return -1;
    memcpy(vh, g_out, sizeof(*vh));
    return n - (ssize_t)sizeof(*vh);
}

static void roundtrip(bool v6)
{
    struct frame_offload o;
    struct virtio_net_hdr vh;
    size_t len = make_train(g_train, v6, PAYLOAD, &o), n = cut(g_train, len, &o, v6);
    struct gro *g = gro_new();
    atomic_bool stop = false;
    ssize_t got;

    tun_pair();
    for (size_t i = 0; i < n; i++)
        gro_add(g, g_sv[0], &stop, g_pkts[i], g_lens[i]);
    gro_flush(g);
    got = tun_read(&vh);
    EXPECT_INT(got, len);
    EXPECT_INT(vh.gso_type, v6 ? VIRTIO_NET_HDR_GSO_TCPV6 : VIRTIO_NET_HDR_GSO_TCPV4);
    EXPECT_INT(vh.flags, VIRTIO_NET_HDR_F_NEEDS_CSUM);
    EXPECT_INT(vh.gso_size, MSS);
    EXPECT_INT(vh.hdr_len, (v6 ? 40 : 20) + 32);
    EXPECT_INT(vh.csum_start, v6 ? 40 : 20);
    EXPECT_INT(vh.csum_offset, 16);
    /* The very train the sender's TUN gave. */
    CU_ASSERT(got == (ssize_t)len && memcmp(g_out + sizeof(vh), g_train, len) == 0);
    EXPECT_INT(tun_read(&vh), -1); /* one write */
    gro_free(g);
    close(g_sv[0]);
    close(g_sv[1]);
}

static void test_roundtrip_v4(void)
{
    roundtrip(false);
}

static void test_roundtrip_v6(void)
{
    roundtrip(true);
}

/* A lost packet (a gap in the sequence), a packet of another kind, and a
 * stopping tunnel each end a train. */
static void test_train_ends(void)
{
    struct frame_offload o;
    struct virtio_net_hdr vh;
    size_t len = make_train(g_train, false, PAYLOAD, &o);
    struct gro *g = gro_new();
    atomic_bool stop = false;
    unsigned char udp[28] = {0x45, 0, 0, 28, 0, 0, 0x40, 0, 64, 17};
    unsigned long long w, p, bad;

    CU_ASSERT_FATAL(cut(g_train, len, &o, false) >= 9);
    tun_pair();
    for (size_t i = 0; i < 5; i++)
        if (i != 3)
            gro_add(g, g_sv[0], &stop, g_pkts[i], g_lens[i]);
    gro_add(g, g_sv[0], &stop, udp, sizeof(udp)); /* alone */
    for (size_t i = 5; i < 8; i++)
        gro_add(g, g_sv[0], &stop, g_pkts[i], g_lens[i]);
    atomic_store(&stop, true); /* the tunnel stops: what waits is dropped */
    gro_flush(g);
    gro_add(g, g_sv[0], &stop, g_pkts[8], g_lens[8]);
    gro_flush(g);
    EXPECT_INT(tun_read(&vh), 20 + 32 + 3 * MSS); /* 0, 1, 2 */
    EXPECT_INT(vh.gso_size, MSS);
    EXPECT_INT(tun_read(&vh), 20 + 32 + MSS); /* 4 alone: not written as a train */
    EXPECT_INT(vh.gso_type, VIRTIO_NET_HDR_GSO_NONE);
    EXPECT_INT(tun_read(&vh), 28); /* the UDP packet */
    EXPECT_INT(tun_read(&vh), -1); /* 5..8: the tunnel stopped */
    gro_counts(g, &w, &p, &bad);
    EXPECT_INT(w, 3);
    EXPECT_INT(p, 5);
    EXPECT_INT(bad, 0);
    gro_free(g);
    close(g_sv[0]);
    close(g_sv[1]);
}

/* A segment whose TCP or IPv4 header checksum is wrong (corrupted before
 * the tunnel: the channel's AEAD covers only the way through it) joins no
 * train: a train goes with NEEDS_CSUM, so the kernel would write a fresh,
 * valid checksum over the bad bytes and the receiving host would take
 * them. Alone, it goes as it came, and the host drops it. */
static void test_bad_checksum_alone(void)
{
    struct frame_offload o;
    struct virtio_net_hdr vh;
    size_t len = make_train(g_train, false, PAYLOAD, &o);
    struct gro *g = gro_new();
    atomic_bool stop = false;

    CU_ASSERT_FATAL(cut(g_train, len, &o, false) >= 6);
    tun_pair();
    g_pkts[2][20 + 32 + 100] ^= 0x40; /* a flipped payload bit */
    g_pkts[4][8] ^= 1;                /* the TTL: a bad IPv4 header checksum */
    for (size_t i = 0; i < 6; i++)
        gro_add(g, g_sv[0], &stop, g_pkts[i], g_lens[i]);
    gro_flush(g);
    EXPECT_INT(tun_read(&vh), 20 + 32 + 2 * MSS); /* 0, 1 */
    EXPECT_INT(vh.gso_type, VIRTIO_NET_HDR_GSO_TCPV4);
    EXPECT_INT(tun_read(&vh), 20 + 32 + MSS); /* 2: alone, as it came */
    EXPECT_INT(vh.gso_type, VIRTIO_NET_HDR_GSO_NONE);
    CU_ASSERT(memcmp(g_out + sizeof(vh), g_pkts[2], g_lens[2]) == 0);
    EXPECT_INT(tun_read(&vh), 20 + 32 + MSS); /* 3 */
    EXPECT_INT(tun_read(&vh), 20 + 32 + MSS); /* 4: alone */
    EXPECT_INT(vh.gso_type, VIRTIO_NET_HDR_GSO_NONE);
    CU_ASSERT(memcmp(g_out + sizeof(vh), g_pkts[4], g_lens[4]) == 0);
    EXPECT_INT(tun_read(&vh), 20 + 32 + MSS); /* 5 */
    EXPECT_INT(tun_read(&vh), -1);
    gro_free(g);
    close(g_sv[0]);
    close(g_sv[1]);
}

/* A segment that differs from the train's first in what the tunnel's
 * anti-spoofing or a rule may look at (the source address, a port, the
 * TTL) joins no train: the kernel would give it the first's headers. Each
 * such segment carries valid checksums, so only the header keeps it out. */
static void test_other_headers_alone(void)
{
    static const size_t at[] = {12 + 3, 20 + 1, 8}; /* source, source port, TTL */
    struct frame_offload o;
    struct virtio_net_hdr vh;
    size_t len = make_train(g_train, false, PAYLOAD, &o);

    CU_ASSERT_FATAL(cut(g_train, len, &o, false) >= 3);
    for (size_t k = 0; k < 3; k++) {
        struct gro *g = gro_new();
        atomic_bool stop = false;
        unsigned char p[1500];

        tun_pair();
        memcpy(p, g_pkts[1], g_lens[1]);
        p[at[k]] ^= 1;
        p[10] = p[11] = 0; /* both checksums made right again */
        put16(p + 10, ~sum16(p, 20, 0) & 0xffff);
        p[36] = p[37] = 0;
        put16(p + 36, ~sum16(p + 20, g_lens[1] - 20, pseudo(p, g_lens[1] - 20)) & 0xffff);
        gro_add(g, g_sv[0], &stop, g_pkts[0], g_lens[0]);
        gro_add(g, g_sv[0], &stop, p, g_lens[1]);
        gro_flush(g);
        EXPECT_INT(tun_read(&vh), 20 + 32 + MSS); /* 0 alone */
        EXPECT_INT(vh.gso_type, VIRTIO_NET_HDR_GSO_NONE);
        EXPECT_INT(tun_read(&vh), 20 + 32 + MSS); /* 1 alone, as it came */
        EXPECT_INT(vh.gso_type, VIRTIO_NET_HDR_GSO_NONE);
        CU_ASSERT(memcmp(g_out + sizeof(vh), p, g_lens[1]) == 0);
        gro_free(g);
        close(g_sv[0]);
        close(g_sv[1]);
    }
}

/* A train the SEGMENTS rules refuse is not cut: a segment size under 48,
 * or over the MTU; nor one whose packets (headers and a segment) would be. */
static void test_cut_refuses(void)
{
    struct frame_offload o;
    size_t len = make_train(g_train, false, PAYLOAD, &o);

    o.gso_size = 40;
    EXPECT_INT(gso_count(&o, g_train, len, 1400), 0);
    o.gso_size = 1401;
    EXPECT_INT(gso_count(&o, g_train, len, 1400), 0);
    o.gso_size = MSS;
    o.csum_offset = 6;
    EXPECT_INT(gso_count(&o, g_train, len, 1400), 0);
    /* Headers and a segment over the MTU: gso_packet's out would overflow
     * (found by fuzz-udp-gro, regress/udp-gro/cut-segment-over-mtu). */
    o.csum_offset = 16;
    EXPECT_INT(gso_count(&o, g_train, len, 20 + 32 + MSS - 1), 0);
    EXPECT_INT(gso_count(&o, g_train, len, 20 + 32 + MSS), (PAYLOAD + MSS - 1) / MSS);
}

/* A single packet whose checksum the tunnel completes (NEEDS_CSUM, no
 * GSO), for every length of its last 16 bytes and every byte alignment
 * of the buffer: the sum runs 16 bytes a step and pads the tail. All-0xff
 * payloads make every addition carry. */
static void test_checksum_every_tail(void)
{
    struct frame_offload o = {.flags = FRAME_OFF_NEEDS_CSUM, .gso_type = FRAME_OFF_GSO_NONE,
                              .csum_start = 20, .csum_offset = 16};
    unsigned seed = 1;

    for (int ff = 0; ff < 2; ff++)
        for (size_t payload = 0; payload <= 48; payload++)
            for (size_t align = 0; align < 8; align++) {
                unsigned char *p = g_train + align;
                size_t len = 52 + payload, sl;
                unsigned c;
                make_train(p, false, payload, &o);
                o.gso_type = FRAME_OFF_GSO_NONE;
                for (size_t i = 52; i < len; i++) {
                    seed = seed * 1103515245 + 12345;
                    p[i] = ff ? 0xff : (unsigned char)(seed >> 16);
                }
                c = pseudo(p, len - 20);
                p[36] = (unsigned char)(c >> 8);
                p[37] = (unsigned char)c;
                sl = gso_packet(&o, p, len, 0, g_out + 1);
                EXPECT_INT(sl, len);
                EXPECT_INT(sum16(g_out + 1 + 20, len - 20, pseudo(g_out + 1, len - 20)),
                           0xffff);
            }
}

static void test_setup(void)
{
    g_train = malloc(70000);
    g_out = malloc(70000);
    g_pkts = malloc(64 * sizeof(*g_pkts));
    CU_ASSERT_FATAL(g_train && g_out && g_pkts);
}

static const struct cu_test tests[] = {
    {"setup", test_setup},
    {"a v4 train cut and joined again", test_roundtrip_v4},
    {"a v6 train cut and joined again", test_roundtrip_v6},
    {"gaps, other packets, a stop end a train", test_train_ends},
    {"a segment with a bad checksum goes alone", test_bad_checksum_alone},
    {"another source, port or TTL goes alone", test_other_headers_alone},
    {"trains the SEGMENTS rules refuse are not cut", test_cut_refuses},
    {"checksums right for every tail length and alignment", test_checksum_every_tail},
};

CU_MAIN("udp-gro", tests)
