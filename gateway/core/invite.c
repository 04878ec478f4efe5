#include "invite.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <json-c/json.h>

#include "cidr.h"
#include "fsutil.h"
#include "registry.h"

#define INVITES_FILE "invites.json"
#define INVITES_MAX_SIZE (4 * 1024 * 1024)

/* Crockford's base32: no I, L, O, U, so nothing on a screen reads two ways. */
static const char alphabet[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

struct invites {
    struct invite *v;
    size_t n, cap;
};

enum invite_state invite_state(const struct invite *inv, int64_t now)
{
    if (inv->used_at)
        return INVITE_USED;
    if (now >= inv->expires)
        return INVITE_EXPIRED;
    return INVITE_PENDING;
}

const char *invite_state_name(enum invite_state st)
{
    switch (st) {
    case INVITE_PENDING: return "pending";
    case INVITE_USED: return "used";
    case INVITE_EXPIRED: return "expired";
    }
    return "?";
}

int invite_code_generate(char code[INVITE_CODE_LEN])
{
    unsigned char rnd[INVITE_CODE_CHARS];
    size_t o = 0;

    /* 32 divides 256: one byte modulo 32 is uniform. */
    if (gnutls_rnd(GNUTLS_RND_KEY, rnd, sizeof(rnd)) < 0)
        return -EIO;
    for (size_t i = 0; i < INVITE_CODE_CHARS; i++) {
        if (i && i % 4 == 0)
            code[o++] = '-';
        code[o++] = alphabet[rnd[i] & 31];
    }
    code[o] = '\0';
    gnutls_memset(rnd, 0, sizeof(rnd));
    return 0;
}

bool invite_code_normalize(const char *in, char out[INVITE_CODE_CHARS + 1])
{
    size_t n = 0;

    for (; in && *in; in++) {
        int ch = toupper((unsigned char)*in);
        if (ch == '-' || ch == ' ' || ch == '\t')
            continue;
        if (ch == 'O')
            ch = '0';
        else if (ch == 'I' || ch == 'L')
            ch = '1';
        if (!strchr(alphabet, ch) || ch == '\0' || n == INVITE_CODE_CHARS)
            return false;
        out[n++] = (char)ch;
    }
    out[n] = '\0';
    return n == INVITE_CODE_CHARS;
}

static void hex(const unsigned char *in, size_t len, char *out)
{
    for (size_t i = 0; i < len; i++)
        sprintf(out + 2 * i, "%02x", in[i]);
}

static int unhex(const char *s, unsigned char *out, size_t len)
{
    if (strlen(s) != 2 * len)
        return -EINVAL;
    for (size_t i = 0; i < len; i++) {
        unsigned v;
        if (!isxdigit((unsigned char)s[2 * i]) || !isxdigit((unsigned char)s[2 * i + 1]) ||
            sscanf(s + 2 * i, "%2x", &v) != 1)
            return -EINVAL;
        out[i] = (unsigned char)v;
    }
    return 0;
}

/* HMAC-SHA-256 keyed by the invite's salt: a stolen file is no list of
 * codes, and equal codes never hash alike. */
static int code_mac(const char *salt_hex, const char *norm, unsigned char mac[32])
{
    unsigned char salt[16];

    if (unhex(salt_hex, salt, sizeof(salt)) < 0)
        return -EINVAL;
    if (gnutls_hmac_fast(GNUTLS_MAC_SHA256, salt, sizeof(salt), norm, strlen(norm), mac) < 0)
        return -EIO;
    return 0;
}

int invite_set_code(struct invite *inv, const char *code)
{
    unsigned char salt[16], mac[32];
    char norm[INVITE_CODE_CHARS + 1];
    int rc;

    if (!invite_code_normalize(code, norm))
        return -EINVAL;
    if (gnutls_rnd(GNUTLS_RND_NONCE, salt, sizeof(salt)) < 0)
        return -EIO;
    hex(salt, sizeof(salt), inv->salt);
    rc = code_mac(inv->salt, norm, mac);
    if (rc == 0)
        hex(mac, sizeof(mac), inv->hash);
    gnutls_memset(norm, 0, sizeof(norm));
    return rc;
}

bool invite_code_matches(const struct invite *inv, const char *code)
{
    unsigned char mac[32], want[32];
    char norm[INVITE_CODE_CHARS + 1];
    unsigned char diff = 0;
    bool ok;

    ok = invite_code_normalize(code, norm) && code_mac(inv->salt, norm, mac) == 0 &&
         unhex(inv->hash, want, sizeof(want)) == 0;
    gnutls_memset(norm, 0, sizeof(norm));
    if (!ok)
        return false;
    /* No early exit: the time taken says nothing about how much matched. */
    for (size_t i = 0; i < sizeof(mac); i++)
        diff |= (unsigned char)(mac[i] ^ want[i]);
    return diff == 0;
}

/* ---- the set ------------------------------------------------------------- */

static void invite_clear(struct invite *inv)
{
    free(inv->name);
    for (size_t i = 0; i < inv->n_networks; i++)
        free(inv->networks[i]);
    free(inv->networks);
    free(inv->used_by);
    free(inv->serial);
    free(inv->actor);
    memset(inv, 0, sizeof(*inv));
}

void invite_free(struct invite *inv)
{
    if (!inv)
        return;
    invite_clear(inv);
    free(inv);
}

static char *dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

static int invite_copy(struct invite *dst, const struct invite *src)
{
    memset(dst, 0, sizeof(*dst));
    dst->role = src->role;
    dst->days = src->days;
    dst->created = src->created;
    dst->expires = src->expires;
    dst->used_at = src->used_at;
    memcpy(dst->salt, src->salt, sizeof(dst->salt));
    memcpy(dst->hash, src->hash, sizeof(dst->hash));
    dst->name = strdup(src->name);
    dst->used_by = dup_or_null(src->used_by);
    dst->serial = dup_or_null(src->serial);
    dst->actor = dup_or_null(src->actor);
    if (!dst->name || (src->used_by && !dst->used_by) || (src->serial && !dst->serial) ||
        (src->actor && !dst->actor))
        goto fail;
    if (src->n_networks) {
        dst->networks = calloc(src->n_networks, sizeof(char *));
        if (!dst->networks)
            goto fail;
        for (size_t i = 0; i < src->n_networks; i++) {
            dst->networks[i] = strdup(src->networks[i]);
            if (!dst->networks[i])
                goto fail;
            dst->n_networks++;
        }
    }
    return 0;
fail:
    invite_clear(dst);
    return -ENOMEM;
}

int invites_new(struct invites **out)
{
    struct invites *set = calloc(1, sizeof(*set));

    if (!set)
        return -ENOMEM;
    *out = set;
    return 0;
}

void invites_free(struct invites *set)
{
    if (!set)
        return;
    for (size_t i = 0; i < set->n; i++)
        invite_clear(&set->v[i]);
    free(set->v);
    free(set);
}

size_t invites_count(const struct invites *set)
{
    return set ? set->n : 0;
}

struct invite *invites_at(struct invites *set, size_t i)
{
    return i < set->n ? &set->v[i] : NULL;
}

struct invite *invites_find(struct invites *set, const char *name)
{
    for (size_t i = 0; set && i < set->n; i++)
        if (strcmp(set->v[i].name, name) == 0)
            return &set->v[i];
    return NULL;
}

int invites_remove(struct invites *set, const char *name)
{
    for (size_t i = 0; i < set->n; i++) {
        if (strcmp(set->v[i].name, name) == 0) {
            invite_clear(&set->v[i]);
            memmove(&set->v[i], &set->v[i + 1], (set->n - i - 1) * sizeof(set->v[0]));
            set->n--;
            return 0;
        }
    }
    return -ENOENT;
}

int invites_add(struct invites *set, const struct invite *inv, int64_t now)
{
    struct invite *old = invites_find(set, inv->name);
    int rc;

    if (old && invite_state(old, now) == INVITE_PENDING)
        return -EEXIST;
    if (old)
        invites_remove(set, inv->name);
    if (set->n == set->cap) {
        size_t cap = set->cap ? 2 * set->cap : 8;
        struct invite *v = realloc(set->v, cap * sizeof(*v));
        if (!v)
            return -ENOMEM;
        set->v = v;
        set->cap = cap;
    }
    rc = invite_copy(&set->v[set->n], inv);
    if (rc == 0)
        set->n++;
    return rc;
}

/* ---- JSON ---------------------------------------------------------------- */

static const char *get_str(struct json_object *o, const char *key)
{
    struct json_object *v;

    if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
        return NULL;
    return json_object_get_string(v);
}

static bool get_int(struct json_object *o, const char *key, int64_t *out)
{
    struct json_object *v;

    if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_int))
        return false;
    *out = json_object_get_int64(v);
    return true;
}

static int parse_one(struct json_object *o, struct invite *inv, char *err, size_t errlen,
                     size_t idx)
{
    const char *name = get_str(o, "name"), *role = get_str(o, "role");
    const char *salt = get_str(o, "salt"), *hash = get_str(o, "hash");
    struct json_object *nets = NULL;
    enum peer_role r;
    int64_t days = 0;

    memset(inv, 0, sizeof(*inv));
    if (!name || !peer_name_valid(name) || !role || role_parse(role, &r) < 0 || !salt ||
        strlen(salt) != 32 || !hash || strlen(hash) != 64 ||
        !get_int(o, "created", &inv->created) || !get_int(o, "expires", &inv->expires)) {
        snprintf(err, errlen, "invite %zu: name, role, salt, hash, created and expires are "
                              "required", idx);
        return -EBADMSG;
    }
    get_int(o, "used_at", &inv->used_at);
    get_int(o, "days", &days);
    if (days < 0 || days > 3650) {
        snprintf(err, errlen, "invite %s: days %lld out of range", name, (long long)days);
        return -EBADMSG;
    }
    inv->days = (unsigned)days;
    inv->role = (int)r;
    memcpy(inv->salt, salt, 33);
    memcpy(inv->hash, hash, 65);
    inv->name = strdup(name);
    inv->used_by = dup_or_null(get_str(o, "used_by"));
    inv->serial = dup_or_null(get_str(o, "serial"));
    inv->actor = dup_or_null(get_str(o, "actor"));
    if (!inv->name)
        return -ENOMEM;
    if (json_object_object_get_ex(o, "networks", &nets)) {
        size_t n;
        if (!json_object_is_type(nets, json_type_array) ||
            (n = json_object_array_length(nets)) > CIDR_LIST_MAX) {
            snprintf(err, errlen, "invite %s: networks is not a list of prefixes", name);
            return -EBADMSG;
        }
        inv->networks = n ? calloc(n, sizeof(char *)) : NULL;
        if (n && !inv->networks)
            return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
            struct json_object *e = json_object_array_get_idx(nets, i);
            if (!json_object_is_type(e, json_type_string)) {
                snprintf(err, errlen, "invite %s: networks[%zu] is not a string", name, i);
                return -EBADMSG;
            }
            inv->networks[i] = strdup(json_object_get_string(e));
            if (!inv->networks[i])
                return -ENOMEM;
            inv->n_networks++;
        }
    }
    return 0;
}

int invites_parse(const char *text, size_t len, struct invites **out, char *err,
                  size_t errlen)
{
    struct json_tokener *tok = NULL;
    struct json_object *root = NULL, *arr;
    struct invites *set = NULL;
    int rc;

    if ((rc = invites_new(&set)) < 0)
        return rc;
    tok = json_tokener_new();
    if (!tok) {
        rc = -ENOMEM;
        goto out;
    }
    root = json_tokener_parse_ex(tok, text, (int)len);
    if (!root || json_tokener_get_error(tok) != json_tokener_success ||
        !json_object_is_type(root, json_type_object) ||
        !json_object_object_get_ex(root, "invites", &arr) ||
        !json_object_is_type(arr, json_type_array)) {
        snprintf(err, errlen, "not an invites file (want {\"version\":1,\"invites\":[...]})");
        rc = -EBADMSG;
        goto out;
    }
    set->v = calloc(json_object_array_length(arr) + 1, sizeof(struct invite));
    if (!set->v) {
        rc = -ENOMEM;
        goto out;
    }
    set->cap = json_object_array_length(arr) + 1;
    for (size_t i = 0; i < json_object_array_length(arr); i++) {
        struct json_object *o = json_object_array_get_idx(arr, i);
        if (!json_object_is_type(o, json_type_object)) {
            snprintf(err, errlen, "invite %zu is not an object", i);
            rc = -EBADMSG;
            goto out;
        }
        rc = parse_one(o, &set->v[set->n], err, errlen, i);
        set->n++; /* counted even when half-filled, so invites_free() frees it */
        if (rc < 0)
            goto out;
    }
    *out = set;
    set = NULL;
    rc = 0;
out:
    invites_free(set);
    json_object_put(root);
    if (tok)
        json_tokener_free(tok);
    return rc;
}

int invites_load(const char *path, struct invites **out, char *err, size_t errlen)
{
    char *text = NULL;
    size_t len = 0;
    int rc = fs_read_file(path, INVITES_MAX_SIZE, &text, &len);

    if (rc == -ENOENT)
        return invites_new(out);
    if (rc < 0) {
        snprintf(err, errlen, "cannot read %s: %s", path, fs_strerror(rc));
        return rc;
    }
    rc = invites_parse(text, len, out, err, errlen);
    free(text);
    return rc;
}

static struct json_object *invite_json(const struct invite *inv)
{
    struct json_object *o = json_object_new_object(), *nets = json_object_new_array();

    if (!o || !nets) {
        json_object_put(o);
        json_object_put(nets);
        return NULL;
    }
    json_object_object_add(o, "name", json_object_new_string(inv->name));
    json_object_object_add(o, "role", json_object_new_string(role_name(inv->role)));
    for (size_t i = 0; i < inv->n_networks; i++)
        json_object_array_add(nets, json_object_new_string(inv->networks[i]));
    json_object_object_add(o, "networks", nets);
    if (inv->days)
        json_object_object_add(o, "days", json_object_new_int64(inv->days));
    json_object_object_add(o, "created", json_object_new_int64(inv->created));
    json_object_object_add(o, "expires", json_object_new_int64(inv->expires));
    json_object_object_add(o, "salt", json_object_new_string(inv->salt));
    json_object_object_add(o, "hash", json_object_new_string(inv->hash));
    if (inv->actor)
        json_object_object_add(o, "actor", json_object_new_string(inv->actor));
    if (inv->used_at) {
        json_object_object_add(o, "used_at", json_object_new_int64(inv->used_at));
        if (inv->used_by)
            json_object_object_add(o, "used_by", json_object_new_string(inv->used_by));
        if (inv->serial)
            json_object_object_add(o, "serial", json_object_new_string(inv->serial));
    }
    return o;
}

int invites_save(const struct invites *set, const char *path)
{
    struct json_object *root = json_object_new_object(), *arr = json_object_new_array();
    const char *text;
    int rc;

    if (!root || !arr) {
        json_object_put(root);
        json_object_put(arr);
        return -ENOMEM;
    }
    json_object_object_add(root, "version", json_object_new_int(1));
    json_object_object_add(root, "invites", arr);
    for (size_t i = 0; i < set->n; i++) {
        struct json_object *o = invite_json(&set->v[i]);
        if (!o) {
            json_object_put(root);
            return -ENOMEM;
        }
        json_object_array_add(arr, o);
    }
    text = json_object_to_json_string_ext(root, JSON_C_TO_STRING_PRETTY |
                                                    JSON_C_TO_STRING_NOSLASHESCAPE);
    /* Hashes only, but who is invited is the administrator's business. */
    rc = fs_write_atomic(path, text, strlen(text), 0640);
    json_object_put(root);
    return rc;
}

/* ---- on the pki dir -------------------------------------------------------- */

char *invite_path(const char *pki_dir)
{
    return fs_join(pki_dir, INVITES_FILE);
}

static int lock_dir(const char *dir, int *fd, char *err, size_t errlen)
{
    int rc = fs_lock_dir(dir, fd);

    if (rc < 0)
        snprintf(err, errlen, "cannot lock the pki dir %s: %s%s", dir, fs_strerror(rc),
                 rc == -ENOENT ? " (run 'mtlsgw init' first)" : "");
    return rc;
}

/* The invites file of a pki dir, loaded under the dir's lock (the lock
 * pki.c takes for the registry). */
struct txn {
    char *path;
    int lock;
    struct invites *set;
};

static void txn_end(struct txn *t)
{
    invites_free(t->set);
    t->set = NULL;
    free(t->path);
    t->path = NULL;
    if (t->lock >= 0)
        close(t->lock);
    t->lock = -1;
}

static int txn_begin(const char *pki_dir, struct txn *t, char *err, size_t errlen)
{
    int rc;

    t->set = NULL;
    t->lock = -1;
    t->path = invite_path(pki_dir);
    if (!t->path)
        return -ENOMEM;
    rc = lock_dir(pki_dir, &t->lock, err, errlen);
    if (rc == 0)
        rc = invites_load(t->path, &t->set, err, errlen);
    if (rc < 0)
        txn_end(t);
    return rc;
}

int invite_create(const char *pki_dir, struct invite *inv, char code[INVITE_CODE_LEN],
                  char *err, size_t errlen)
{
    struct txn t;
    int rc;

    rc = txn_begin(pki_dir, &t, err, errlen);
    if (rc < 0)
        goto out;
    rc = invite_code_generate(code);
    if (rc == 0)
        rc = invite_set_code(inv, code);
    if (rc < 0) {
        snprintf(err, errlen, "invite %s: cannot draw a code from the RNG", inv->name);
        goto out;
    }
    rc = invites_add(t.set, inv, inv->created);
    if (rc == -EEXIST) {
        snprintf(err, errlen,
                 "invite %s: an invite for this name is pending; withdraw it first "
                 "(mtlsgw uninvite %s)",
                 inv->name, inv->name);
        goto out;
    }
    if (rc == 0)
        rc = invites_save(t.set, t.path);
    if (rc < 0 && !err[0])
        snprintf(err, errlen, "cannot write %s: %s", t.path, fs_strerror(rc));
out:
    if (rc < 0)
        gnutls_memset(code, 0, INVITE_CODE_LEN);
    txn_end(&t);
    return rc;
}

int invite_withdraw(const char *pki_dir, const char *name, char *err, size_t errlen)
{
    struct txn t;
    int rc;

    rc = txn_begin(pki_dir, &t, err, errlen);
    if (rc < 0)
        return rc;
    rc = invites_remove(t.set, name);
    if (rc == -ENOENT) {
        snprintf(err, errlen, "no invite for '%s' (see 'mtlsgw invites')", name);
        goto out;
    }
    rc = invites_save(t.set, t.path);
    if (rc < 0)
        snprintf(err, errlen, "cannot write %s: %s", t.path, fs_strerror(rc));
out:
    txn_end(&t);
    return rc;
}

/* The judgement shared by check and consume; set is loaded. */
static int judge(struct invites *set, const char *name, const char *code, int64_t now,
                 struct invite **found, char *err, size_t errlen)
{
    struct invite *inv = invites_find(set, name);
    char when[32];

    if (!inv || !invite_code_matches(inv, code)) {
        snprintf(err, errlen, "invite name or code not accepted");
        return -EACCES;
    }
    switch (invite_state(inv, now)) {
    case INVITE_USED:
        time_format_utc(inv->used_at, when, sizeof(when));
        snprintf(err, errlen, "the invite code for '%s' was already used on %s; ask for a "
                              "new invite", name, when);
        return -EALREADY;
    case INVITE_EXPIRED:
        time_format_utc(inv->expires, when, sizeof(when));
        snprintf(err, errlen, "the invite for '%s' expired on %s; ask for a new invite", name,
                 when);
        return -ETIMEDOUT;
    case INVITE_PENDING:
        break;
    }
    *found = inv;
    return 0;
}

/* *path the invites file of pki_dir, *set its invites and *inv the one
 * name and code open (judge()); the caller frees *path and *set. */
static int load_judged(const char *pki_dir, const char *name, const char *code, int64_t now,
                       char **path, struct invites **set, struct invite **inv, char *err,
                       size_t errlen)
{
    char why[256] = "";
    int rc;

    *path = invite_path(pki_dir);
    if (!*path)
        return -ENOMEM;
    rc = invites_load(*path, set, why, sizeof(why));
    if (rc < 0) {
        snprintf(err, errlen, "invites %s: %s", *path, why);
        return rc;
    }
    return judge(*set, name, code, now, inv, err, errlen);
}

int invite_check(const char *pki_dir, const char *name, const char *code, int64_t now,
                 struct invite **out, char *err, size_t errlen)
{
    struct invites *set = NULL;
    struct invite *inv = NULL, *copy = NULL;
    char *path = NULL;
    int rc;

    /* Written by rename: a reader without the lock sees one whole file. */
    rc = load_judged(pki_dir, name, code, now, &path, &set, &inv, err, errlen);
    if (rc < 0)
        goto out;
    copy = calloc(1, sizeof(*copy));
    if (!copy || invite_copy(copy, inv) < 0) {
        free(copy);
        rc = -ENOMEM;
        goto out;
    }
    *out = copy;
out:
    invites_free(set);
    free(path);
    return rc;
}

int invite_consume_locked(const char *pki_dir, const char *name, const char *code,
                          int64_t now, const char *from, const char *serial, char *err,
                          size_t errlen)
{
    struct invites *set = NULL;
    struct invite *inv = NULL;
    char *path = NULL;
    int rc;

    rc = load_judged(pki_dir, name, code, now, &path, &set, &inv, err, errlen);
    if (rc < 0)
        goto out;
    inv->used_at = now;
    free(inv->used_by);
    free(inv->serial);
    inv->used_by = dup_or_null(from);
    inv->serial = dup_or_null(serial);
    rc = invites_save(set, path);
    if (rc < 0)
        snprintf(err, errlen, "cannot write %s: %s", path, fs_strerror(rc));
out:
    invites_free(set);
    free(path);
    return rc;
}

int invite_parse_duration(const char *s, int64_t *seconds)
{
    int64_t total = 0;
    bool any = false;

    if (!s || !*s)
        return -EINVAL;
    while (*s) {
        char *end;
        unsigned long long v;
        int64_t unit = 1;
        if (*s < '0' || *s > '9')
            return -EINVAL;
        errno = 0;
        v = strtoull(s, &end, 10);
        if (errno || v > 365ULL * 86400)
            return -EINVAL;
        switch (*end) {
        case 'd': unit = 86400; end++; break;
        case 'h': unit = 3600; end++; break;
        case 'm': unit = 60; end++; break;
        case 's': end++; break;
        case '\0': break;
        default: return -EINVAL;
        }
        total += (int64_t)v * unit;
        if (total > 365LL * 86400)
            return -EINVAL;
        any = true;
        s = end;
    }
    if (!any || total < 1)
        return -EINVAL;
    *seconds = total;
    return 0;
}

struct json_object *invite_public_json(const struct invite *inv, int64_t now)
{
    struct json_object *o = json_object_new_object(), *nets = json_object_new_array();
    char when[32];

    if (!o || !nets) {
        json_object_put(o);
        json_object_put(nets);
        return NULL;
    }
    json_object_object_add(o, "name", json_object_new_string(inv->name));
    json_object_object_add(o, "role", json_object_new_string(role_name(inv->role)));
    json_object_object_add(o, "state",
                           json_object_new_string(invite_state_name(invite_state(inv, now))));
    for (size_t i = 0; i < inv->n_networks; i++)
        json_object_array_add(nets, json_object_new_string(inv->networks[i]));
    json_object_object_add(o, "networks", nets);
    time_format_utc(inv->created, when, sizeof(when));
    json_object_object_add(o, "created", json_object_new_string(when));
    time_format_utc(inv->expires, when, sizeof(when));
    json_object_object_add(o, "expires", json_object_new_string(when));
    if (inv->used_at) {
        time_format_utc(inv->used_at, when, sizeof(when));
        json_object_object_add(o, "used_at", json_object_new_string(when));
        json_object_object_add(o, "used_by",
                               inv->used_by ? json_object_new_string(inv->used_by) : NULL);
        json_object_object_add(o, "serial",
                               inv->serial ? json_object_new_string(inv->serial) : NULL);
    }
    json_object_object_add(o, "actor", inv->actor ? json_object_new_string(inv->actor) : NULL);
    return o;
}

void invite_join_url(const char *l, char *buf, size_t len)
{
    const char *colon;
    char host[256];

    if (!l) {
        snprintf(buf, len, "https://HUB:PORT");
        return;
    }
    colon = strrchr(l, ':');
    if (!colon)
        colon = l + strlen(l);
    snprintf(host, sizeof(host), "%.*s", (int)(colon - l), l);
    if (strcmp(host, "0.0.0.0") == 0 || strcmp(host, "[::]") == 0 || !host[0]) {
        if (gethostname(host, sizeof(host)) < 0 || !host[0])
            snprintf(host, sizeof(host), "HUB");
        host[sizeof(host) - 1] = '\0';
    }
    snprintf(buf, len, "https://%s%s", host, colon);
}

int invite_join_line(const char *url, const char *name, const char *code, const char *fp,
                     char *buf, size_t len)
{
    int n = snprintf(buf, len, "mtlsgw join %s --name %s --code %s --fingerprint %s", url,
                     name, code, fp);

    return n < 0 || (size_t)n >= len ? -ENOSPC : 0;
}
