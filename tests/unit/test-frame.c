#include <errno.h>
#include <string.h>

#include "cunit-main.h"
#include "frame.h"

static size_t packet4(unsigned char *buf, size_t len)
{
    memset(buf, 0, len);
    buf[0] = 0x45;
    buf[2] = (unsigned char)(len >> 8);
    buf[3] = (unsigned char)len;
    return len;
}

static void test_whole_and_partial(void)
{
    unsigned char buf[64];
    struct frame f;
    const char *why = NULL;

    frame_header(buf, FRAME_PACKET, 20);
    packet4(buf + FRAME_HDR, 20);
    EXPECT_INT(frame_next(buf, 24, 1400, false, &f, &why), 24);
    EXPECT_INT(f.type, FRAME_PACKET);
    EXPECT_INT(f.len, 20);
    for (size_t n = 0; n < 24; n++)
        EXPECT_INT(frame_next(buf, n, 1400, false, &f, &why), 0);
    frame_header(buf, FRAME_KEEPALIVE, 0);
    EXPECT_INT(frame_next(buf, 4, 1400, false, &f, &why), 4);
}

static void test_refused(void)
{
    unsigned char buf[64] = {0};
    struct frame f;
    const char *why = NULL;

    frame_header(buf, 9, 0);
    EXPECT_INT(frame_next(buf, 4, 1400, false, &f, &why), -EPROTO);
    EXPECT_STR(why, "unknown frame type");
    frame_header(buf, FRAME_KEEPALIVE, 0);
    buf[1] = 1;
    EXPECT_INT(frame_next(buf, 4, 1400, false, &f, &why), -EPROTO);
    EXPECT_STR(why, "flags not 0");
    frame_header(buf, FRAME_PACKET, 1401);
    EXPECT_INT(frame_next(buf, 4, 1400, false, &f, &why), -EPROTO);
    EXPECT_STR(why, "frame longer than its limit");
    frame_header(buf, FRAME_KEEPALIVE, 1);
    EXPECT_INT(frame_next(buf, 4, 1400, false, &f, &why), -EPROTO);
    frame_header(buf, FRAME_CONFIG, 2);
    EXPECT_INT(frame_next(buf, 6, 1400, false, &f, &why), -EPROTO);
    EXPECT_STR(why, "unexpected CONFIG");
    EXPECT_INT(frame_next(buf, 6, 1400, true, &f, &why), 6);
    /* The IP length must agree with the frame. */
    frame_header(buf, FRAME_PACKET, 24);
    packet4(buf + FRAME_HDR, 20);
    EXPECT_INT(frame_next(buf, 28, 1400, false, &f, &why), -EPROTO);
    EXPECT_STR(why, "PACKET is not one IP packet");
}

static void test_packets(void)
{
    unsigned char p[60] = {0};

    CU_ASSERT_TRUE(frame_packet_ok(p, packet4(p, 20)));
    CU_ASSERT_FALSE(frame_packet_ok(p, 19));
    memset(p, 0, sizeof(p));
    p[0] = 0x60;
    p[5] = 20;
    CU_ASSERT_TRUE(frame_packet_ok(p, 60));
    CU_ASSERT_FALSE(frame_packet_ok(p, 59));
    p[0] = 0x50;
    CU_ASSERT_FALSE(frame_packet_ok(p, 60));
}

/* An IPv4 header is at least 20 bytes: 4-19 byte "packets" whose length
 * field agrees with them are refused, alone and as PACKET frames (the
 * kernel would read past them). IPv6 below its 40-byte header likewise. */
static void test_short_packets(void)
{
    unsigned char p[64];
    struct frame f;
    const char *why = NULL;

    for (size_t n = 4; n < 20; n++) {
        packet4(p + FRAME_HDR, n);
        if (frame_packet_ok(p + FRAME_HDR, n))
            CU_FAIL("a short IPv4 packet passed frame_packet_ok");
        frame_header(p, FRAME_PACKET, n);
        EXPECT_INT(frame_next(p, FRAME_HDR + n, 1400, false, &f, &why), -EPROTO);
    }
    for (size_t n = 4; n < 40; n++) {
        memset(p, 0, sizeof(p));
        p[FRAME_HDR] = 0x60;
        p[FRAME_HDR + 5] = 0; /* payload length 0: claims a 40-byte packet */
        if (frame_packet_ok(p + FRAME_HDR, n))
            CU_FAIL("a short IPv6 packet passed frame_packet_ok");
        frame_header(p, FRAME_PACKET, n);
        EXPECT_INT(frame_next(p, FRAME_HDR + n, 1400, false, &f, &why), -EPROTO);
    }
}

/* A TCP segment train over IPv4 (or IPv6): headers, then payload bytes. */
static size_t train(unsigned char *p, int v, size_t payload)
{
    size_t ip = v == 4 ? 20 : 40, len = ip + 20 + payload;

    memset(p, 0, len);
    if (v == 4) {
        p[0] = 0x45;
        p[2] = (unsigned char)(len >> 8);
        p[3] = (unsigned char)len;
        p[9] = 6;
    } else {
        p[0] = 0x60;
        p[4] = (unsigned char)((len - 40) >> 8);
        p[5] = (unsigned char)(len - 40);
        p[6] = 6;
    }
    p[ip + 12] = 5 << 4; /* data offset: 20 bytes */
    return len;
}

static struct frame_offload tso(int v, unsigned mss)
{
    struct frame_offload o = {.flags = FRAME_OFF_NEEDS_CSUM,
                              .gso_type = v == 4 ? FRAME_OFF_GSO_TCPV4 : FRAME_OFF_GSO_TCPV6,
                              .hdr_len = (unsigned short)(v == 4 ? 40 : 60),
                              .gso_size = (unsigned short)mss,
                              .csum_start = (unsigned short)(v == 4 ? 20 : 40),
                              .csum_offset = 16};
    return o;
}

static unsigned char big[FRAME_HDR + FRAME_OFFHDR + 65535];

static long segments(const struct frame_offload *o, size_t len, unsigned allow, struct frame *f,
                     const char **why)
{
    frame_segments_header(big, o, len);
    return frame_next(big, FRAME_HDR + FRAME_OFFHDR + len, 1400, allow, f, why);
}

static void test_segments(void)
{
    struct frame f;
    const char *why = NULL;
    struct frame_offload o = tso(4, 1360);
    size_t len = train(big + FRAME_HDR + FRAME_OFFHDR, 4, 65000 - 40);

    /* A 65000-byte train is one frame, its offload header read back. */
    EXPECT_INT(segments(&o, len, FRAME_ALLOW_SEGMENTS, &f, &why),
               FRAME_HDR + FRAME_OFFHDR + 65000);
    EXPECT_INT(f.type, FRAME_SEGMENTS);
    EXPECT_INT(f.len, 65000);
    CU_ASSERT_PTR_EQUAL(f.payload, big + FRAME_HDR + FRAME_OFFHDR);
    EXPECT_INT(f.off.gso_size, 1360);
    EXPECT_INT(f.off.csum_start, 20);
    EXPECT_INT(f.off.csum_offset, 16);
    EXPECT_INT(frame_segment_count(&f), (65000 - 40 + 1359) / 1360);
    EXPECT_INT(frame_segments_headers(&f.off, f.payload), 40);
    /* Partial: more bytes needed, up to the last one. */
    EXPECT_INT(frame_next(big, FRAME_HDR + FRAME_OFFHDR + 64999, 1400, FRAME_ALLOW_SEGMENTS, &f,
                          &why), 0);
    /* Not before OFFLOAD. */
    EXPECT_INT(segments(&o, len, 0, &f, &why), -EPROTO);
    EXPECT_STR(why, "SEGMENTS before OFFLOAD");
    /* IPv6 too, and ECN. */
    len = train(big + FRAME_HDR + FRAME_OFFHDR, 6, 3000);
    o = tso(6, 1340);
    o.gso_type |= FRAME_OFF_GSO_ECN;
    EXPECT_INT(segments(&o, len, FRAME_ALLOW_SEGMENTS, &f, &why), FRAME_HDR + FRAME_OFFHDR + len);
    EXPECT_INT(frame_segment_count(&f), 3);
    EXPECT_INT(frame_segments_headers(&f.off, f.payload), 60);
    /* Without segmentation: a checksum to complete, at most the MTU. */
    len = train(big + FRAME_HDR + FRAME_OFFHDR, 4, 100);
    o = tso(4, 0);
    o.gso_type = FRAME_OFF_GSO_NONE;
    EXPECT_INT(segments(&o, len, FRAME_ALLOW_SEGMENTS, &f, &why), FRAME_HDR + FRAME_OFFHDR + len);
    EXPECT_INT(frame_segment_count(&f), 1);
    EXPECT_INT(frame_segments_headers(&f.off, f.payload), 0);
    len = train(big + FRAME_HDR + FRAME_OFFHDR, 4, 1401 - 40);
    EXPECT_INT(segments(&o, len, FRAME_ALLOW_SEGMENTS, &f, &why), -EPROTO);
    EXPECT_STR(why, "frame longer than its limit");
}

static void test_segments_refused(void)
{
    struct frame f;
    const char *why = NULL;
    unsigned char *p = big + FRAME_HDR + FRAME_OFFHDR;
    struct frame_offload o;
    size_t len;

#define REFUSE(v_, bend_, want_)                                                                   \
    do {                                                                                           \
        o = tso(v_, 1360);                                                                         \
        len = train(p, v_, 5000);                                                                  \
        bend_;                                                                                     \
        why = NULL;                                                                                \
        EXPECT_INT(segments(&o, len, FRAME_ALLOW_SEGMENTS, &f, &why), -EPROTO);                    \
        EXPECT_STR(why, want_);                                                                    \
    } while (0)
    REFUSE(4, o.flags = 4, "unknown offload flags");
    REFUSE(4, o.gso_type = 3, "unknown offload type");      /* UDP */
    REFUSE(4, o.gso_type = FRAME_OFF_GSO_ECN, "unknown offload type");
    REFUSE(4, p[3]--, "SEGMENTS is not one IP packet");
    REFUSE(4, o.hdr_len = 5041, "offload header length past the packet");
    REFUSE(4, o.csum_offset = 5019, "checksum position outside the packet"); /* 20 + 5019 + 2 > 5040 */
    REFUSE(4, o.csum_start = 10, "checksum position outside the packet");
    REFUSE(4, o.flags = 0, "segmentation without a checksum to complete");
    REFUSE(4, o.gso_size = 0, "segment size out of range");
    REFUSE(4, o.gso_size = 47, "segment size out of range");
    REFUSE(4, o.gso_size = 1401, "segment size out of range");
    REFUSE(4, p[9] = 17, "segmentation of something that is not TCP");
    REFUSE(6, o.gso_type = FRAME_OFF_GSO_TCPV4, "segmentation of something that is not TCP");
    REFUSE(6, p[6] = 0, "segmentation of something that is not TCP"); /* an extension header */
    REFUSE(4, o.csum_start = 24, "segmentation with a bad TCP header");
    REFUSE(4, o.csum_offset = 6, "segmentation with a bad TCP header");
    REFUSE(4, p[32] = 4 << 4, "segmentation with a bad TCP header");
    REFUSE(4, p[32] = 15 << 4; len = 60; p[2] = 0; p[3] = 60, "segmentation with a bad TCP header");
#undef REFUSE
}

static void test_offload_frame(void)
{
    unsigned char buf[8];
    struct frame f;
    const char *why = NULL;

    frame_header(buf, FRAME_OFFLOAD, 0);
    EXPECT_INT(frame_next(buf, 4, 1400, FRAME_ALLOW_OFFLOAD, &f, &why), 4);
    EXPECT_INT(f.type, FRAME_OFFLOAD);
    EXPECT_INT(frame_next(buf, 4, 1400, FRAME_ALLOW_SEGMENTS, &f, &why), -EPROTO);
    EXPECT_STR(why, "unexpected OFFLOAD");
    frame_header(buf, FRAME_OFFLOAD, 1);
    EXPECT_INT(frame_next(buf, 5, 1400, FRAME_ALLOW_OFFLOAD, &f, &why), -EPROTO);
}

/* REKEY (type 7): exactly a 4-byte epoch, only on a tunnel with a UDP
 * channel; a partial one waits for its bytes. */
static void test_rekey_frame(void)
{
    unsigned char buf[12] = {0};
    struct frame f;
    const char *why = NULL;

    frame_header(buf, FRAME_REKEY, 4);
    buf[7] = 3;
    EXPECT_INT(frame_next(buf, 8, 1400, FRAME_ALLOW_REKEY, &f, &why), 8);
    EXPECT_INT(f.type, FRAME_REKEY);
    EXPECT_INT(f.len, 4);
    EXPECT_INT(f.payload[3], 3);
    EXPECT_INT(frame_next(buf, 7, 1400, FRAME_ALLOW_REKEY, &f, &why), 0);
    EXPECT_INT(frame_next(buf, 8, 1400, FRAME_ALLOW_OFFLOAD, &f, &why), -EPROTO);
    EXPECT_STR(why, "REKEY without a UDP channel");
    for (size_t len = 0; len < 9; len++) {
        if (len == 4)
            continue;
        frame_header(buf, FRAME_REKEY, len);
        EXPECT_INT(frame_next(buf, 12, 1400, FRAME_ALLOW_REKEY, &f, &why), -EPROTO);
        EXPECT_STR(why, "REKEY not 4 bytes");
    }
}

static void test_config_offload(void)
{
    struct frame_config fc;
    char err[128];

    EXPECT_INT(frame_config_parse("{\"address\":\"10.0.0.2\",\"peer\":\"10.0.0.1\",\"offload\":true}",
                                  &fc, err, sizeof(err)), 0);
    CU_ASSERT_TRUE(fc.offload);
    EXPECT_INT(frame_config_parse("{\"address\":\"10.0.0.2\",\"peer\":\"10.0.0.1\"}", &fc, err,
                                  sizeof(err)), 0);
    CU_ASSERT_FALSE(fc.offload);
    EXPECT_INT(frame_config_parse("{\"address\":\"10.0.0.2\",\"peer\":\"10.0.0.1\",\"offload\":1}",
                                  &fc, err, sizeof(err)), -EPROTO);
    EXPECT_STR(err, "CONFIG offload is not true or false");
    /* udp: a port, or nothing offered (an older hub). */
    EXPECT_INT(frame_config_parse("{\"address\":\"10.0.0.2\",\"peer\":\"10.0.0.1\",\"udp\":4434}",
                                  &fc, err, sizeof(err)), 0);
    EXPECT_INT(fc.udp, 4434);
    EXPECT_INT(frame_config_parse("{\"address\":\"10.0.0.2\",\"peer\":\"10.0.0.1\"}", &fc, err,
                                  sizeof(err)), 0);
    EXPECT_INT(fc.udp, 0);
    EXPECT_INT(frame_config_parse("{\"address\":\"10.0.0.2\",\"peer\":\"10.0.0.1\",\"udp\":0}",
                                  &fc, err, sizeof(err)), -EPROTO);
    EXPECT_STR(err, "CONFIG udp is not a port from 1 to 65535");
    EXPECT_INT(frame_config_parse("{\"address\":\"10.0.0.2\",\"peer\":\"10.0.0.1\",\"udp\":\"1\"}",
                                  &fc, err, sizeof(err)), -EPROTO);
}

static const struct cu_test tests[] = {
    {"whole and partial frames", test_whole_and_partial},
    {"malformed frames refused", test_refused},
    {"IPv4 and IPv6 packet lengths", test_packets},
    {"IPv4 and IPv6 packets shorter than their header", test_short_packets},
    {"SEGMENTS: 64 KiB TCP trains, IPv4 and IPv6", test_segments},
    {"SEGMENTS: offload headers the kernel must not see", test_segments_refused},
    {"OFFLOAD only where allowed", test_offload_frame},
    {"REKEY: 4 bytes, only with a UDP channel", test_rekey_frame},
    {"CONFIG offload flag", test_config_offload},
};
CU_MAIN("frame", tests)
