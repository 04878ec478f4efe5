/*
 * registry.h: the peer registry, the authority on who is trusted.
 *
 * A JSON file (<pki dir>/registry.json) rewritten atomically. It keeps every
 * certificate ever issued to a peer: a name is unique among active entries;
 * revoked and superseded entries stay, because the CRL is made from them.
 */
#ifndef MTLSGW_REGISTRY_H
#define MTLSGW_REGISTRY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

struct json_object;

enum peer_role { ROLE_ADMIN = 0, ROLE_MONITOR, ROLE_TUNNEL };
enum peer_status { PEER_ACTIVE = 0, PEER_REVOKED, PEER_SUPERSEDED };

struct peer {
    char *name;
    enum peer_role role;
    enum peer_status status;
    char *serial; /* lower-case hex, no separators */
    char *key_id; /* SHA-256 of the subject public key, hex */
    int64_t not_before, not_after, enrolled_at;
    int64_t revoked_at; /* 0 unless revoked or superseded */
    char *reason;       /* revocation reason or NULL */
    char **networks;    /* canonical CIDR strings */
    size_t n_networks;
};

struct registry;

int role_parse(const char *s, enum peer_role *out);
const char *role_name(enum peer_role role);
const char *peer_status_name(enum peer_status st);
/* A peer name: 1-63 of [A-Za-z0-9._-], starting with a letter or digit. */
bool peer_name_valid(const char *name);

int registry_new(struct registry **out);
/* -ENOENT when the file does not exist; -EBADMSG with err filled when it is
 * not a registry. */
int registry_load(const char *path, struct registry **out, char *err, size_t errlen);
/* Parse from memory (the fuzz harness and the daemon's reload use this). */
int registry_parse(const char *text, size_t len, struct registry **out, char *err,
                   size_t errlen);
int registry_save(const struct registry *reg, const char *path);
void registry_free(struct registry *reg);

size_t registry_count(const struct registry *reg);
const struct peer *registry_at(const struct registry *reg, size_t i);
/* The active entry with this name, else the most recent one, else NULL. */
const struct peer *registry_find_name(const struct registry *reg, const char *name);
/* The active entry whose name equals name ignoring case ("Bob", "bob"), or
 * NULL: names are told apart case-insensitively when a peer is added. */
const struct peer *registry_find_active_ci(const struct registry *reg, const char *name);
/* The first entry with this serial. A linear scan, or a binary search once
 * registry_index has run and no peer was added since (the daemon indexes
 * each snapshot it loads: a handshake looks up its peer's serial). */
const struct peer *registry_find_serial(const struct registry *reg, const char *serial);
int registry_index(struct registry *reg);
/* An active or revoked entry whose key is key_id, or NULL: such a key must
 * not be enrolled again (superseded entries were renewed, not distrusted). */
const struct peer *registry_find_key(const struct registry *reg, const char *key_id);

/* Deep-copies p. -EEXIST when an active peer has that name. */
int registry_add(struct registry *reg, const struct peer *p);
/* Mark the active entry of name revoked (or superseded); -ENOENT if none. */
int registry_revoke(struct registry *reg, const char *name, enum peer_status st,
                    const char *reason, int64_t when);

/*
 * Mark revoked (reason, when) the entries of name superseded by a reissue
 * whose overlap has not ended at when (so the CRL does not list them yet)
 * and that have not expired: revoking a peer must take every serial of it
 * off the table at once. Returns how many, or -ENOMEM.
 */
int registry_revoke_overlap(struct registry *reg, const char *name, const char *reason,
                            int64_t when);

/* The CRL number to use next, incremented on each call. */
uint64_t registry_next_crl_number(struct registry *reg);

/* A JSON object for one peer (owned): name, role, serial, not_after (RFC
 * 3339 UTC), days_left, status, networks, enrolled_at, revoked_at, reason. */
struct json_object *registry_peer_json(const struct peer *p, time_t now);

/* RFC 3339 UTC "2027-01-02T03:04:05Z" into buf (at least 21 bytes). */
void time_format_utc(int64_t t, char *buf, size_t len);
int time_parse_utc(const char *s, int64_t *out);

#endif
