/*
 * frame.h: the tunnel protocol's framing (docs/tunnel-protocol.md), as pure
 * functions over bytes, so the fuzzer sees exactly what a peer's bytes meet.
 */
#ifndef MTLSGW_FRAME_H
#define MTLSGW_FRAME_H

#include <stdbool.h>
#include <stddef.h>

#define FRAME_HDR 4
#define FRAME_CONFIG 1
#define FRAME_PACKET 2
#define FRAME_KEEPALIVE 3
#define FRAME_CLOSE 4
#define FRAME_CONFIG_MAX 4096
#define FRAME_CLOSE_MAX 256

struct frame {
    int type;
    const unsigned char *payload;
    size_t len;
};

/*
 * Look at the next frame in buf. Returns FRAME_HDR + len when a whole frame
 * is there (filled into *f), 0 when more bytes are needed, or -EPROTO when
 * the bytes can never be a valid frame (why says what: for the log).
 * config_ok: whether a CONFIG may arrive now (the peer's first frame only).
 */
long frame_next(const unsigned char *buf, size_t len, unsigned mtu, bool config_ok,
                struct frame *f, const char **why);

/* Whether p is one IPv4 or IPv6 packet whose own length is len. */
bool frame_packet_ok(const unsigned char *p, size_t len);

/* Write a frame header for a payload of len bytes. */
void frame_header(unsigned char *out, int type, size_t len);

#define FRAME_ADDRLEN 64
#define FRAME_MAX_PREFIXES 64

/* The CONFIG payload as the peer reads it. */
struct frame_config {
    char address[FRAME_ADDRLEN]; /* ours */
    char peer[FRAME_ADDRLEN];    /* the hub's end */
    unsigned mtu, keepalive;     /* 0 when the hub did not say */
    char routes[FRAME_MAX_PREFIXES][FRAME_ADDRLEN];
    size_t n_routes;
    char networks[FRAME_MAX_PREFIXES][FRAME_ADDRLEN];
    size_t n_networks;
};

/*
 * Parse a CONFIG payload (JSON, NUL-terminated): "address" and "peer"
 * strings are required, "mtu" (576..9000) and "keepalive" (1..3600) are
 * optional, "routes" and "networks" are lists of strings of which the first
 * FRAME_MAX_PREFIXES are kept. -EPROTO with err filled when the hub sent
 * something else (a null or a number in a list, a string too long, ...).
 */
int frame_config_parse(const char *text, struct frame_config *out, char *err, size_t errlen);

#endif
