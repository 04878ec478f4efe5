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

static const struct cu_test tests[] = {
    {"whole and partial frames", test_whole_and_partial},
    {"malformed frames refused", test_refused},
    {"IPv4 and IPv6 packet lengths", test_packets},
};
CU_MAIN("frame", tests)
