/*
 * pool.h: the hub's tunnel addresses ([tunnel] pool, an IPv4 prefix /8 to
 * /30 that config.c has checked, outside every peer network). Index 0 is
 * the network, 1 the hub's own end of every tunnel, the last the broadcast
 * address; a peer gets one of the others for the life of its tunnel. The
 * parent checks the address again (privsep.h, PS_TUN_UP). Thread-safe.
 */
#ifndef MTLSGW_POOL_H
#define MTLSGW_POOL_H

#include <stddef.h>
#include <stdint.h>

struct pool;

/* A pool for cidr ("10.99.0.0/24"); -EINVAL when it is not an IPv4 prefix
 * of /1 to /32, -ENOMEM. */
int pool_new(const char *cidr, struct pool **out);
/* NULL is a no-op. */
void pool_free(struct pool *p);
/* The lowest free peer index, now taken; 0 when none is free (or p is
 * NULL: no pool). */
uint32_t pool_take(struct pool *p);
/* Give index back; 0 (nothing taken) is a no-op. */
void pool_give(struct pool *p, uint32_t index);
/* The address at index, in dotted form. */
void pool_addr(const struct pool *p, uint32_t index, char *buf, size_t len);
/* The prefix length (24 for a /24), for the peer's CONFIG. */
unsigned pool_prefix_len(const struct pool *p);

#endif
