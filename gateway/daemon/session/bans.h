/*
 * bans.h: the ban book. An address that keeps failing authentication
 * ([daemon] ban-threshold failures, each within ban-time of the last) is
 * refused for ban-time seconds on every listener. An IPv6 address counts
 * as its /64 (one customer's prefix). Thread-safe; times are milliseconds on
 * CLOCK_MONOTONIC (mono_ms()).
 */
#ifndef MTLSGW_BANS_H
#define MTLSGW_BANS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

struct bans;
struct json_object;

int bans_new(struct bans **out);
void bans_free(struct bans *b);

/*
 * One failed authentication from addr (the port is ignored). Returns the
 * score when this failure starts a ban (log it once), 0 otherwise.
 */
unsigned bans_fail(struct bans *b, const struct sockaddr_storage *addr, unsigned threshold,
                   unsigned ban_secs, long long now_ms);
/* Whether addr is banned now. */
bool bans_check(struct bans *b, const struct sockaddr_storage *addr, long long now_ms);
/* Forget scores and bans that have run out (ban_secs as given to fail). */
void bans_expire(struct bans *b, unsigned ban_secs, long long now_ms);
/* Addresses banned now. */
unsigned bans_count(struct bans *b, long long now_ms);
/*
 * Lift the ban of addr (an IPv4 address, an IPv6 address or its /64, as
 * text) and forget its score. 0 when it was banned, -ENOENT when it was not,
 * -EINVAL when addr is not one. canon (at least 50 bytes, may be NULL) gets
 * the ban's canonical spelling ("2001:db8::/64" for IPv6).
 */
int bans_lift(struct bans *b, const char *addr, long long now_ms, char *canon, size_t len);
/*
 * The addresses banned now, as a JSON array of {"address", "failures",
 * "seconds_left"} (owned by the caller).
 */
struct json_object *bans_json(struct bans *b, long long now_ms);

#endif
