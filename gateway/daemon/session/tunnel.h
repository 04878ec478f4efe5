/*
 * tunnel.h: one tunnel session's state and its data path (tunnel.c), shared
 * by the two places that set a tunnel up: the hub side (tunnel-hub.c, a
 * peer that passed the handshake) and our uplinks (uplink.c). Private to
 * the session process; what the rest of it calls (tunnel_start_hub,
 * tunnel_wake, tunnel_describe, tunnel_free) is in daemon.h.
 *
 * Ownership: the setup thread (a slow-pool worker on the hub, the uplink
 * thread) owns c and c->tun until tunnel_hand_over; then the two tunnel
 * threads do, and the last one out calls tunnel_finish.
 */
#ifndef MTLSGW_TUNNEL_H
#define MTLSGW_TUNNEL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "frame.h"
#include "privsep.h"

struct conn;
struct udp_chan;

#define REC_MAX 16384
/* TLS -> TUN: the largest frame and a record behind it. */
#define TUNNEL_RBUF (2 * REC_MAX + FRAME_HDR + FRAME_OFFHDR + FRAME_SEGMENTS_MAX)

struct tunnel {
    int tun_fd, wake_fd, done_fd;
    char ifname[PS_IFNAMSIZ];
    char local[PS_ADDRLEN], remote[PS_ADDRLEN];
    uint32_t pool_index; /* 0: not from the pool */
    unsigned mtu, keepalive;
    bool uplink;
    pthread_mutex_t send_lock;
    atomic_int threads;
    atomic_bool stop;
    atomic_bool peer_said_close;
    _Atomic long long last_rx, last_tx;
    atomic_ullong pkts_in, pkts_out;
    /* Offloads (docs/tunnel-protocol.md, OFFLOAD): the hub offers them in
     * its CONFIG; a peer that takes them sends OFFLOAD; from then on both
     * sides may send SEGMENTS, and each turns its TUN's offloads on. */
    bool offer;          /* hub: the CONFIG offered them */
    bool got_offload;    /* hub: OFFLOAD came */
    atomic_bool seg_rx;  /* SEGMENTS may arrive */
    atomic_bool seg_tx;  /* we may send SEGMENTS (the TX thread turns the offloads on) */
    atomic_bool offloading; /* the TUN's offloads are on: status shows it */
    pthread_mutex_t reason_lock;
    char reason[200];
    char *networks[PS_MAX_PREFIXES];
    unsigned n_networks;
    struct udp_chan *udp; /* the UDP data channel (udp.h); NULL: TLS only */
    unsigned udp_port;    /* hub: the port the CONFIG offered; 0: none */
    unsigned char *rbuf; /* TUNNEL_RBUF bytes */
    size_t rlen;
};

/* Wall-clock seconds: keepalives, dead-peer and setup deadlines. */
static inline long long tunnel_now_s(void)
{
    return (long long)time(NULL);
}

/* A tunnel with no interface yet (tun_fd -1); NULL when out of memory. */
struct tunnel *tunnel_new(unsigned mtu, unsigned keepalive, bool uplink);
/* Ask c's tunnel to end, the first reason given being the one kept (the
 * CLOSE frame's and the log's); wakes both threads. */
void tunnel_end(struct conn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Owner only: CLOSE to the peer (unless it closed), the interface down,
 * the pool address back, c closed. */
void tunnel_finish(struct conn *c);
/* The setup thread gives c to the two tunnel threads (or ends it when a
 * kill is pending). c may be gone when this returns. */
void tunnel_hand_over(struct conn *c);
/* One frame (CONFIG, OFFLOAD, CLOSE, KEEPALIVE) under the send lock. */
int tunnel_send_frame(struct conn *c, int type, const void *payload, size_t len);
/* Ask the parent for the interface u describes; its TUN fd goes to c->tun. */
int tunnel_tun_up(struct conn *c, const struct ps_tun_up *u, char *err, size_t errlen);

#endif
