/*
 * uplink.h: our uplinks ([uplink NAME] sections), the spoke side of a
 * tunnel (uplink.c): a thread per uplink dials its hub with our key on the
 * token, applies the hub's CONFIG inside what our config accepts, and hands
 * the session to the data path (tunnel.h); it dials again with backoff.
 */
#ifndef MTLSGW_UPLINK_H
#define MTLSGW_UPLINK_H


#include <stddef.h>

struct daemon;

/* One thread (and renewal thread, uplink-renew.h) per [uplink] section. */
int uplinks_start(struct daemon *d, char *err, size_t errlen);
/* After a token recovery: new TLS clients with the keys loaded again. */
int uplinks_reload_keys(struct daemon *d, char *err, size_t errlen);
/* Stop and join every uplink thread; the open tunnels are told to end. */
void uplinks_stop(struct daemon *d);
/* Build the uplink's TLS client again from its files and key; the next
 * connection uses it, open sessions keep the old one. */
int uplink_reload_tls(struct daemon *d, unsigned index, char *err, size_t errlen);

#endif
