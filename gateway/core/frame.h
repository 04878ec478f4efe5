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
#define FRAME_OFFLOAD 5
#define FRAME_SEGMENTS 6
#define FRAME_REKEY 7 /* UDP data channel: the next epoch (docs/tunnel-protocol.md) */
#define FRAME_REKEY_LEN 4
#define FRAME_CONFIG_MAX 4096
#define FRAME_CLOSE_MAX 256
/* SEGMENTS: the frame header, then this offload header, then `length`
 * bytes of one IP packet (up to 64 KiB: a TCP segment train). */
#define FRAME_OFFHDR 10
#define FRAME_SEGMENTS_MAX 65535
#define FRAME_GSO_MIN 48 /* the smallest segment size taken */

/* The offload header's values: those of the kernel's virtio_net_hdr, which
 * TUN devices with IFF_VNET_HDR read and write (in host order there; in
 * network order on the wire). */
#define FRAME_OFF_NEEDS_CSUM 1
#define FRAME_OFF_DATA_VALID 2
#define FRAME_OFF_GSO_NONE 0
#define FRAME_OFF_GSO_TCPV4 1
#define FRAME_OFF_GSO_TCPV6 4
#define FRAME_OFF_GSO_ECN 0x80

struct frame_offload {
    unsigned char flags, gso_type;
    unsigned short hdr_len, gso_size, csum_start, csum_offset;
};

struct frame {
    int type;
    const unsigned char *payload; /* SEGMENTS: the packet, after the offload header */
    size_t len;
    struct frame_offload off; /* SEGMENTS only */
};

/* What may arrive now (frame_next's allow). */
#define FRAME_ALLOW_CONFIG 1u   /* the hub's first frame only */
#define FRAME_ALLOW_OFFLOAD 2u  /* on the hub, after a CONFIG that offered it, once */
#define FRAME_ALLOW_SEGMENTS 4u /* once OFFLOAD went from the peer to the hub */
#define FRAME_ALLOW_REKEY 8u    /* a tunnel with a UDP data channel */

/*
 * Look at the next frame in buf. Returns the frame's whole size when it is
 * there (filled into *f), 0 when more bytes are needed, or -EPROTO when the
 * bytes can never be a valid frame (why says what: for the log). allow: the
 * FRAME_ALLOW_ bits of the frames that may arrive now.
 */
long frame_next(const unsigned char *buf, size_t len, unsigned mtu, unsigned allow,
                struct frame *f, const char **why);

/* Write the header of a SEGMENTS frame (frame and offload header, FRAME_HDR
 * + FRAME_OFFHDR bytes) for a packet of len bytes. */
void frame_segments_header(unsigned char *out, const struct frame_offload *off, size_t len);

/* Why a SEGMENTS frame's offload header and packet (len bytes, at most
 * FRAME_SEGMENTS_MAX) would be refused, or NULL: what frame_next checks, for
 * a sender that drops what its peer would refuse. */
const char *frame_segments_bad(const struct frame_offload *o, const unsigned char *p, size_t len,
                               unsigned mtu);

/* The length of the IP and TCP headers of a segment train that passed
 * frame_segments_bad (its hdr_len); 0 without segmentation. */
size_t frame_segments_headers(const struct frame_offload *o, const unsigned char *p);

/* How many packets a SEGMENTS packet becomes on the wire (1 without GSO);
 * only for a frame that passed the checks. */
unsigned frame_segment_count(const struct frame *f);

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
    bool offload;                /* the hub takes OFFLOAD and SEGMENTS */
    unsigned udp;                /* the hub's UDP data channel port; 0: none offered */
    char routes[FRAME_MAX_PREFIXES][FRAME_ADDRLEN];
    size_t n_routes;
    char networks[FRAME_MAX_PREFIXES][FRAME_ADDRLEN];
    size_t n_networks;
};

/*
 * Parse a CONFIG payload (JSON, NUL-terminated): "address" and "peer"
 * strings are required, "mtu" (576..9000) and "keepalive" (1..3600) are
 * optional, "offload" is an optional boolean, "udp" an optional port (1..65535), "routes" and "networks" are
 * lists of strings of which the first FRAME_MAX_PREFIXES are kept. -EPROTO with err filled when the hub sent
 * something else (a null or a number in a list, a string too long, ...).
 */
int frame_config_parse(const char *text, struct frame_config *out, char *err, size_t errlen);

#endif
