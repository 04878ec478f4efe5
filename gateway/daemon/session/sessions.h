/*
 * sessions.h: the daemon's books of connections, bans on failed
 * authentication, the trust in force, kicks, and the status, sessions and
 * metrics JSON (sessions.c). Used by the loop (server.c), conn.c, tunnel.c,
 * api.c, est.c and control.c; it calls none of server.c.
 */
#ifndef MTLSGW_SESSIONS_H
#define MTLSGW_SESSIONS_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <time.h>

#include "trust.h" /* daemon_trust: the books' callers read the trust too */

struct conn;
struct daemon;
struct json_object;
struct listener;
struct trustdb;

/* Re-read registry and CRL; end sessions that lost trust (returns how many). */
int daemon_reload_trust(struct daemon *d, char *err, size_t errlen);
/* Sessions ended by the reloads that loaded CRL number crl_number or a later
 * one (of the last 32 reloads): what a console's change ended, whichever
 * reload acted on it (control socket "reload"). */
int daemon_trust_ended_since(uint64_t crl_number);
/* Kicks: how many sessions this call ended (0: they were ending already),
 * -ENOENT when there is no such session. */
int daemon_kick_id(struct daemon *d, uint64_t id);
int daemon_kick_peer(struct daemon *d, const char *name);
/* A new tunnel session c: end the older tunnel sessions of the same peer and
 * wait (bounded) until they are gone. Returns how many there were. */
int daemon_supersede(struct daemon *d, struct conn *c);
bool daemon_peer_online(struct daemon *d, const char *name);
struct json_object *daemon_status_json(struct daemon *d);
struct json_object *daemon_sessions_json(struct daemon *d);
/* Prometheus text, malloc'ed. */
char *daemon_metrics(struct daemon *d);

/*
 * A connection in the daemon's books (list, per-source count). count_source:
 * inbound connections count against max-per-source; our uplinks do not.
 * Returns NULL (fd left open) when the limit is hit or memory runs out.
 */
struct conn *sessions_conn_new(struct daemon *d, struct listener *l, int fd,
                             const struct sockaddr_storage *ss, bool count_source);
/* Takes c out of the daemon's books; conn_close calls it through
 * c->forget, which sessions_conn_new sets (so conn.c needs no call back). */
void sessions_forget(struct conn *c);

/*
 * End the sessions t no longer trusts (certificates that ran out, revoked
 * peers); returns how many this sweep ended. Our own uplinks are judged by
 * the hub, not by our registry.
 */
int sessions_sweep(struct daemon *d, struct trustdb *t);
/* The gateway certificate's notAfter (0 when it cannot be read). */
time_t sessions_gateway_not_after(struct daemon *d);
/* Free the per-source counts (at shutdown, no connection left). */
void sessions_free_books(struct daemon *d);
/* Free the connections whose last reference went (the loop, after an epoll
 * batch: a stale event in that batch may still point at one). */
void sessions_bury(struct daemon *d);

#endif
