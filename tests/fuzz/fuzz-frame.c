/*
 * fuzz-frame: the tunnel protocol's framing (gateway/core/frame.h), looping over
 * a receive buffer the way gateway/daemon/session/tunnel.c's parse_frames() and the
 * uplink's first read do: CONFIG is allowed only as the first frame, then
 * frames follow until one is malformed or the bytes run out. A CONFIG's
 * payload is read as the uplink reads it (frame_config_parse).
 *
 * The offload frames follow the hub's rule: OFFLOAD once when offered, then
 * SEGMENTS; an accepted SEGMENTS frame must be one the kernel may take.
 *
 * Input: 2 bytes choose the MTU (576..9000, as the config allows), whether
 * the first frame may be CONFIG, whether OFFLOAD is offered and whether
 * SEGMENTS are already allowed; the rest is what the peer sent.
 */
#include <errno.h>
#include <string.h>

#include "frame.h"
#include "fuzz.h"

/* The uplink copies the payload into a NUL-terminated buffer and parses it. */
static void check_config(const unsigned char *payload, size_t len)
{
    static struct frame_config fc;
    char text[FRAME_CONFIG_MAX + 1], err[256];

    memcpy(text, payload, len);
    text[len] = '\0';
    memset(err, 0x5a, sizeof(err));
    err[0] = '\0';
    if (frame_config_parse(text, &fc, err, sizeof(err)) < 0) {
        FUZZ_CHECK(err[0] != '\0' && memchr(err, '\0', sizeof(err)) != NULL);
        return;
    }
    FUZZ_CHECK(strlen(fc.address) < FRAME_ADDRLEN && strlen(fc.peer) < FRAME_ADDRLEN);
    FUZZ_CHECK(fc.mtu == 0 || (fc.mtu >= 576 && fc.mtu <= 9000));
    FUZZ_CHECK(fc.keepalive <= 3600);
    FUZZ_CHECK(fc.n_routes <= FRAME_MAX_PREFIXES && fc.n_networks <= FRAME_MAX_PREFIXES);
    for (size_t i = 0; i < fc.n_routes; i++)
        FUZZ_CHECK(strlen(fc.routes[i]) < FRAME_ADDRLEN);
    for (size_t i = 0; i < fc.n_networks; i++)
        FUZZ_CHECK(strlen(fc.networks[i]) < FRAME_ADDRLEN);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    unsigned mtu;
    unsigned allow;
    size_t off = 0;

    if (size < 2)
        return 0;
    mtu = 576 + ((unsigned)data[0] << 8 | data[1]) % (9000 - 576 + 1);
    allow = (data[0] & 0x80 ? FRAME_ALLOW_CONFIG : 0) | (data[0] & 0x40 ? FRAME_ALLOW_OFFLOAD : 0) |
            (data[1] & 0x01 ? FRAME_ALLOW_SEGMENTS : 0);
    data += 2;
    size -= 2;

    for (;;) {
        struct frame f = {0};
        const char *why = NULL;
        long n = frame_next(data + off, size - off, mtu, allow, &f, &why);
        size_t hdr = f.type == FRAME_SEGMENTS ? FRAME_HDR + FRAME_OFFHDR : FRAME_HDR;

        if (n == 0)
            break;
        if (n < 0) {
            FUZZ_CHECK(n == -EPROTO);
            FUZZ_CHECK(why != NULL);
            (void)strlen(why);
            break;
        }
        FUZZ_CHECK((size_t)n == hdr + f.len);
        FUZZ_CHECK((size_t)n <= size - off);
        FUZZ_CHECK(f.payload == data + off + hdr);
        switch (f.type) {
        case FRAME_CONFIG:
            FUZZ_CHECK(allow & FRAME_ALLOW_CONFIG);
            FUZZ_CHECK(f.len <= FRAME_CONFIG_MAX);
            check_config(f.payload, f.len);
            break;
        case FRAME_PACKET:
            FUZZ_CHECK(f.len <= mtu);
            FUZZ_CHECK(frame_packet_ok(f.payload, f.len));
            break;
        case FRAME_KEEPALIVE:
            FUZZ_CHECK(f.len == 0);
            break;
        case FRAME_CLOSE:
            FUZZ_CHECK(f.len <= FRAME_CLOSE_MAX);
            break;
        case FRAME_OFFLOAD:
            FUZZ_CHECK((allow & FRAME_ALLOW_OFFLOAD) && f.len == 0);
            allow = (allow & ~FRAME_ALLOW_OFFLOAD) | FRAME_ALLOW_SEGMENTS;
            break;
        case FRAME_SEGMENTS: {
            const struct frame_offload *o = &f.off;
            FUZZ_CHECK(allow & FRAME_ALLOW_SEGMENTS);
            FUZZ_CHECK(f.len <= FRAME_SEGMENTS_MAX && frame_packet_ok(f.payload, f.len));
            FUZZ_CHECK(o->hdr_len <= f.len);
            FUZZ_CHECK(!(o->flags & FRAME_OFF_NEEDS_CSUM) ||
                       (size_t)o->csum_start + o->csum_offset + 2 <= f.len);
            if (o->gso_type == FRAME_OFF_GSO_NONE) {
                FUZZ_CHECK(f.len <= mtu && frame_segment_count(&f) == 1);
            } else {
                FUZZ_CHECK(o->gso_size >= FRAME_GSO_MIN && o->gso_size <= mtu);
                FUZZ_CHECK(frame_segment_count(&f) >= 1 && frame_segment_count(&f) <= f.len);
                FUZZ_CHECK(frame_segments_headers(o, f.payload) <= f.len);
            }
            break;
        }
        default:
            FUZZ_CHECK(!"frame_next accepted an unknown type");
        }
        /* Read every payload byte (ASan sees an overread). */
        {
            unsigned sum = 0;
            for (size_t i = 0; i < f.len; i++)
                sum += f.payload[i];
            (void)sum;
        }
        /* The header we would write for it reads back the same. */
        {
            unsigned char h[FRAME_HDR + FRAME_OFFHDR];
            if (f.type == FRAME_SEGMENTS)
                frame_segments_header(h, &f.off, f.len);
            else
                frame_header(h, f.type, f.len);
            FUZZ_CHECK(memcmp(h, data + off, hdr) == 0);
        }
        off += (size_t)n;
        allow &= ~FRAME_ALLOW_CONFIG; /* the hub sends CONFIG once, first */
    }
    return 0;
}
