/*
 * invite.h: one-time invite codes for enrollment over the network (EST).
 *
 * An administrator invites NAME with a role and networks; the device proves
 * it holds the code once, over the [enroll] listener. <pki dir>/invites.json
 * keeps only a salted HMAC-SHA-256 of each code: reading the file gives no
 * code away. Every writer holds the pki dir lock (fsutil.h).
 */
#ifndef MTLSGW_INVITE_H
#define MTLSGW_INVITE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct json_object;

/* 20 Crockford base32 characters (100 bits) in five groups of four. */
#define INVITE_CODE_CHARS 20
#define INVITE_CODE_LEN (INVITE_CODE_CHARS + 4 + 1) /* with dashes and NUL */

struct invite {
    char *name;
    int role; /* enum peer_role */
    char **networks;
    size_t n_networks;
    unsigned days;       /* certificate lifetime; 0: [pki] peer-days */
    int64_t created, expires;
    int64_t used_at;     /* 0 while unused */
    char *used_by;       /* "ADDR" the device enrolled from, or NULL */
    char *serial;        /* the certificate issued, or NULL */
    char *actor;         /* who made it */
    char salt[33];       /* 16 random bytes, hex */
    char hash[65];       /* HMAC-SHA-256(salt, normalized code), hex */
};

struct invites;

enum invite_state { INVITE_PENDING = 0, INVITE_USED, INVITE_EXPIRED };
enum invite_state invite_state(const struct invite *inv, int64_t now);
const char *invite_state_name(enum invite_state st);

/* A fresh code "ABCD-EFGH-JKMN-PQRS-TVWX" from the GnuTLS key RNG. */
int invite_code_generate(char code[INVITE_CODE_LEN]);
/* Upper-case, drop dashes and spaces, read O as 0 and I/L as 1: what a person
 * types from a screen. false when it is not 20 code characters. */
bool invite_code_normalize(const char *in, char out[INVITE_CODE_CHARS + 1]);

/* Salt and hash code into inv (the only trace of the code kept). */
int invite_set_code(struct invite *inv, const char *code);
/* Constant-time check of code against inv's hash. */
bool invite_code_matches(const struct invite *inv, const char *code);

int invites_new(struct invites **out);
/* An absent file is an empty set; -EBADMSG with err filled when malformed. */
int invites_load(const char *path, struct invites **out, char *err, size_t errlen);
int invites_parse(const char *text, size_t len, struct invites **out, char *err,
                  size_t errlen);
int invites_save(const struct invites *set, const char *path);
void invites_free(struct invites *set);

size_t invites_count(const struct invites *set);
struct invite *invites_at(struct invites *set, size_t i);
struct invite *invites_find(struct invites *set, const char *name);
/* Deep copy; replaces a used or expired invite of that name; -EEXIST when a
 * pending one exists. */
int invites_add(struct invites *set, const struct invite *inv, int64_t now);
int invites_remove(struct invites *set, const char *name);

/* ---- on the pki dir, under its lock -------------------------------------- */

/* "<pki dir>/invites.json", owned. */
char *invite_path(const char *pki_dir);

/* Record a new invite (inv without salt/hash) and fill code. */
int invite_create(const char *pki_dir, struct invite *inv, char code[INVITE_CODE_LEN],
                  char *err, size_t errlen);
/* Forget the invite of name (withdrawn); -ENOENT when there is none. */
int invite_withdraw(const char *pki_dir, const char *name, char *err, size_t errlen);

/*
 * Whether code opens name's invite at now. 0 with *out (a copy, owned) when
 * it is pending and the code matches. Otherwise err says why:
 * -EACCES no invite of that name or a wrong code (one message for both, so a
 * guesser learns nothing); -EALREADY used and -ETIMEDOUT expired (said only
 * to the holder of the right code).
 */
int invite_check(const char *pki_dir, const char *name, const char *code, int64_t now,
                 struct invite **out, char *err, size_t errlen);
/* invite_check again and mark it used. The caller holds the pki dir lock
 * (pki_enroll()'s before_commit), so two devices cannot both use one code. */
int invite_consume_locked(const char *pki_dir, const char *name, const char *code,
                          int64_t now, const char *from, const char *serial, char *err,
                          size_t errlen);
void invite_free(struct invite *inv);

/* "24h", "30m", "90s", "7d", "1d12h" or plain seconds; 1 s to 365 days. */
int invite_parse_duration(const char *s, int64_t *seconds);

/* ---- what an administrator is shown (console and management page) ------ */

/* An invite as `mtlsgw invites --json` and GET /api/v1/invites list it:
 * name, role, state, networks, created, expires (UTC), used_at, used_by,
 * serial, actor. Never the salt or the hash. */
struct json_object *invite_public_json(const struct invite *inv, int64_t now);

/* The URL a device dials for [enroll] listen (enroll_listen, may be NULL):
 * "https://HOST:PORT", this host's name when it listens on every address,
 * "https://HUB:PORT" when it is not set. */
void invite_join_url(const char *enroll_listen, char *buf, size_t len);

/* "mtlsgw join URL --name NAME --code CODE --fingerprint FP": the line the
 * device runs, and what the QR code carries. -ENOSPC when len is short. */
int invite_join_line(const char *url, const char *name, const char *code, const char *fp,
                     char *buf, size_t len);

#endif
