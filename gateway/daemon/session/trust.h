/*
 * trust.h: the trust in force (trust.c). Reloading it, which ends the
 * sessions it no longer trusts, is the books' (sessions.h).
 */
#ifndef MTLSGW_TRUST_H
#define MTLSGW_TRUST_H

#include <time.h>

struct conn;
struct daemon;
struct trustdb;

/* The trust in force: a reference; unref it (NULL: no listener judges). */
struct trustdb *daemon_trust(struct daemon *d);
/* Why t no longer trusts the session c at now (NULL: it does). */
const char *trust_judge(const struct trustdb *t, const struct conn *c, time_t now);
/* The same by the trust in force now. */
const char *daemon_untrusted(struct daemon *d, const struct conn *c);

#endif
