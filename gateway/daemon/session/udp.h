/*
 * udp.h: the UDP data channel wired into a tunnel (docs/tunnel-protocol.md,
 * "UDP data channel"; the record layer is dchan.c). The TLS connection stays
 * the control channel; IP packets go over UDP while it answers.
 *
 * Hub: one socket ([tunnel] udp = PORT on the tunnel listener's address),
 * held by the session process, one receive thread, and a table from channel
 * id to tunnel. Spoke: one connected socket per uplink session and a third
 * tunnel thread receiving on it; the TX thread probes and falls back.
 *
 * Keys are derived by the setup thread right after the handshake, before
 * the tunnel threads start: nothing else uses the TLS session then
 * (gnutls_prf_rfc5705 is not safe beside a sender and a receiver).
 */
#ifndef MTLSGW_UDP_H
#define MTLSGW_UDP_H

#include <stdbool.h>
#include <stddef.h>

struct conn;
struct daemon;
struct json_object;
struct tunnel;

/* The hub's socket and receive thread, when [tunnel] udp is a port and
 * [tunnel] listen is set: 0, or -errno with err filled. */
int udp_hub_start(struct daemon *d, char *err, size_t errlen);
void udp_hub_stop(struct daemon *d);

/* Hub set-up thread, before CONFIG: derive c's channel and enter it in
 * the table. The UDP port to offer, or 0 (no socket, TLS 1.2 without EMS,
 * a duplicate channel id: the tunnel stays on TLS). */
unsigned udp_hub_attach(struct conn *c);

/* Spoke, after the hub's CONFIG offered `port`: derive the channel and
 * open a socket to the hub's address at that port. 0 or -errno (logged
 * by the caller; the tunnel stays on TLS). */
int udp_spoke_attach(struct conn *c, unsigned port);

/* Owner, before the TUN closes (tunnel_finish): out of the table, socket
 * closed, keys wiped. Safe without a channel, and twice. */
void udp_detach(struct conn *c);
/* tunnel_free: a channel whose tunnel never started (not in the table). */
void udp_tunnel_free(struct tunnel *t);

/* The TX thread: whether packets go over UDP now (the spoke also probes
 * and falls back here, at most every call). */
bool udp_tx_ready(struct conn *c);
/* The TX thread: read what the TUN has (up to a batch), seal and send it
 * over UDP. 1: sent some; 0: the TUN is empty; -errno: reading the TUN
 * failed (the caller ends the tunnel). */
int udp_tx_batch(struct conn *c);
/*
 * The rekey (docs/tunnel-protocol.md, REKEY). The TX thread calls
 * udp_rekey_start each round: 1 when a rekey starts now (the next epoch is
 * installed for receiving), and the caller sends REKEY with the
 * FRAME_REKEY_LEN bytes written to p; 0: nothing to do. The TLS receiving
 * thread calls udp_rekey_frame on a REKEY: 0 (done: the answer to ours, or
 * a failed rekey that left the data on TLS), 1 (the peer's: switched; the
 * caller sends REKEY with the same payload back, then calls
 * udp_rekey_answered), or -EPROTO with why filled (an epoch out of turn:
 * a malformed frame, the caller ends the tunnel).
 */
int udp_rekey_start(struct conn *c, unsigned char *p);
int udp_rekey_frame(struct conn *c, const unsigned char *p, size_t len, char *why,
                    size_t whylen);
void udp_rekey_answered(struct conn *c);
/* How long the TX thread may sleep in poll (ms): a spoke wakes for its next
 * probe or for its last answer going stale, and at least once a second. */
int udp_tx_timeout(struct conn *c, int timeout);

/* The spoke's third tunnel thread: datagrams from the hub to the TUN. */
void *udp_spoke_rx_main(void *arg);

/* "channel", and the "udp" and "tcp" counters of a session object (packets:
 * data only; bytes: all records, TLS's with its control frames). */
void udp_describe(struct conn *c, struct json_object *o);

/* The per-tunnel channel, packet and drop metrics (Prometheus text),
 * malloc'ed; NULL when out of memory. */
char *udp_metrics(struct daemon *d);

#endif
