#include "frame.h"

#include <errno.h>

bool frame_packet_ok(const unsigned char *p, size_t len)
{
    if (len >= 20 && (p[0] >> 4) == 4)
        return ((size_t)p[2] << 8 | p[3]) == len;
    if (len >= 40 && (p[0] >> 4) == 6)
        return ((size_t)p[4] << 8 | p[5]) + 40 == len;
    return false;
}

void frame_header(unsigned char *out, int type, size_t len)
{
    out[0] = (unsigned char)type;
    out[1] = 0;
    out[2] = (unsigned char)(len >> 8);
    out[3] = (unsigned char)len;
}

long frame_next(const unsigned char *buf, size_t len, unsigned mtu, bool config_ok,
                struct frame *f, const char **why)
{
    size_t plen, limit;
    int type;

    if (len < FRAME_HDR)
        return 0;
    type = buf[0];
    plen = (size_t)buf[2] << 8 | buf[3];
    if (buf[1] != 0) {
        *why = "flags not 0";
        return -EPROTO;
    }
    switch (type) {
    case FRAME_CONFIG:
        if (!config_ok) {
            *why = "unexpected CONFIG";
            return -EPROTO;
        }
        limit = FRAME_CONFIG_MAX;
        break;
    case FRAME_PACKET:
        limit = mtu;
        break;
    case FRAME_KEEPALIVE:
        limit = 0;
        break;
    case FRAME_CLOSE:
        limit = FRAME_CLOSE_MAX;
        break;
    default:
        *why = "unknown frame type";
        return -EPROTO;
    }
    if (plen > limit) {
        *why = "frame longer than its limit";
        return -EPROTO;
    }
    if (len < FRAME_HDR + plen)
        return 0;
    if (type == FRAME_PACKET && !frame_packet_ok(buf + FRAME_HDR, plen)) {
        *why = "PACKET is not one IP packet";
        return -EPROTO;
    }
    f->type = type;
    f->payload = buf + FRAME_HDR;
    f->len = plen;
    return (long)(FRAME_HDR + plen);
}
