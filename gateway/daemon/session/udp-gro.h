/*
 * udp-gro.h: the UDP data channel's receive side joins consecutive TCP
 * segments of one flow into one segment train and writes it to the TUN in
 * one system call, with a virtio_net_hdr asking for segmentation (what GRO
 * does in a NIC driver). One train a receiving thread; the TUN forwards it
 * as one packet, segmenting it only where it must (docs/tunnel-protocol.md,
 * "Receive trains").
 *
 * What joins a train: IPv4 (no options, DF, not a fragment) or IPv6 (TCP
 * right after the fixed header) TCP segments with the same addresses,
 * ports, TTL/hop limit, TOS/traffic class, acknowledgement, window and
 * options, the flags ACK alone (PSH on the last one), each starting where
 * the one before ended, all of the first's size but a shorter last; at most
 * 64 KiB. Anything else first writes out the train, then goes alone. The
 * train is checked with the SEGMENTS rules (frame_segments_bad) before it
 * goes to the kernel.
 *
 * The sending side does the reverse: its TUN hands over trains (offloads
 * on), and each is cut here into the MTU-sized packets it stands for, every
 * one with its own headers and checksums, so that each record stands alone
 * (a lost datagram loses one packet, not a train).
 */
#ifndef MTLSGW_UDP_GRO_H
#define MTLSGW_UDP_GRO_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

#include "frame.h"

struct gro;

/* NULL when out of memory. */
struct gro *gro_new(void);
void gro_free(struct gro *g);

/* One packet that passed the PACKET checks (frame_packet_ok, the MTU), for
 * the TUN fd; stop: the tunnel's stop flag (a train is dropped, not
 * written, once it is set). The packet may wait in the train until the
 * next gro_add or gro_flush: the caller flushes before fd or the flag can
 * go (at the end of each batch of datagrams). */
void gro_add(struct gro *g, int fd, const atomic_bool *stop, const unsigned char *pkt,
             size_t len);

/* Write out what waits. */
void gro_flush(struct gro *g);

/* Counters since gro_new: TUN writes, packets in them, trains refused by
 * the SEGMENTS checks (a bug if ever non-zero). */
void gro_counts(const struct gro *g, unsigned long long *writes, unsigned long long *packets,
                unsigned long long *refused);

/* How many packets the packet p (len bytes) read from a TUN with offloads,
 * with the offload header o, stands for; 0 when it is not one the
 * SEGMENTS rules take for this MTU (drop it). */
size_t gso_count(const struct frame_offload *o, const unsigned char *p, size_t len, unsigned mtu);

/* Packet i of those into out (room for mtu bytes): headers, lengths,
 * sequence number and checksums of its own. Returns its length. Only for
 * what gso_count took. */
size_t gso_packet(const struct frame_offload *o, const unsigned char *p, size_t len, size_t i,
                  unsigned char *out);

#endif
