/*
 * gate.h: the gate (session process): which trusted peer opened which
 * address of [firewall] gate, so that an opening ends with the trust that
 * made it, session or not (docs/netconfig.md, docs/security.md "The gate").
 *
 * An opening is held by one or more peers (registry name and serial): two
 * admins behind one NAT share the address, and it stays open while either
 * is trusted. Only admins open the gate. Each holder lasts gate-timeout from
 * its last handshake, longer while a management session of it lives; the
 * kernel element carries the same timeout, so a daemon that dies leaves
 * nothing open for longer than that. Openings are asked of the privileged
 * parent (PS_GATE_OPEN/PS_GATE_CLOSE), which keeps its own record of them.
 */
#ifndef MTLSGW_GATE_H
#define MTLSGW_GATE_H

struct conn;
struct daemon;
struct trustdb;

/* A management peer passed its handshake: open (or renew) the gate for its
 * address on its behalf when its role opens the gate (admin) and the
 * current trust snapshot still trusts it. */
void gate_open(struct conn *c);
/* After a new trust snapshot t is installed: holders t no longer trusts
 * (revoked, expired, superseded, role changed, gone) let go at once; an
 * address no trusted holder is left on is closed. */
void gate_sweep(struct daemon *d, struct trustdb *t);
/* Once a second, on the slow pool: holders with a live management session
 * are renewed, holders past gate-timeout let go, trust is checked again
 * (certificates that ran out), and the kernel's timeouts follow the book. */
void gate_refresh(struct daemon *d);
/* Shutdown: close every opening; none is made after this. */
void gate_close_all(struct daemon *d);

#endif
