#include "registry.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <json-c/json.h>

#include "fsutil.h"

#define REGISTRY_VERSION 1
#define REGISTRY_MAX_SIZE (64u * 1024 * 1024)

struct serial_ix {
    const char *serial; /* peers[i].serial */
    size_t i;
};

struct registry {
    struct peer *peers;
    size_t n, cap;
    uint64_t crl_number; /* the last number used */
    struct serial_ix *ix; /* by serial, then position; valid while n_ix == n */
    size_t n_ix;
};

static const char *const role_names[] = {"admin", "monitor", "tunnel"};
static const char *const status_names[] = {"active", "revoked", "superseded"};

int role_parse(const char *s, enum peer_role *out)
{
    for (size_t i = 0; i < 3; i++) {
        if (strcmp(s, role_names[i]) == 0) {
            *out = (enum peer_role)i;
            return 0;
        }
    }
    return -EINVAL;
}

const char *role_name(enum peer_role role)
{
    return (unsigned)role < 3 ? role_names[role] : "?";
}

const char *peer_status_name(enum peer_status st)
{
    return (unsigned)st < 3 ? status_names[st] : "?";
}

static int status_parse(const char *s, enum peer_status *out)
{
    for (size_t i = 0; i < 3; i++) {
        if (strcmp(s, status_names[i]) == 0) {
            *out = (enum peer_status)i;
            return 0;
        }
    }
    return -EINVAL;
}

bool peer_name_valid(const char *name)
{
    size_t n = strlen(name);

    if (n == 0 || n > 63 || !isalnum((unsigned char)name[0]))
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)name[i];
        if (!isalnum(c) && c != '.' && c != '_' && c != '-')
            return false;
    }
    return true;
}

void time_format_utc(int64_t t, char *buf, size_t len)
{
    time_t tt = (time_t)t;
    struct tm tm;

    if (!gmtime_r(&tt, &tm) || strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        snprintf(buf, len, "%lld", (long long)t);
}

#define TIME_UTC_MAX INT64_C(253402300799) /* 9999-12-31T23:59:59Z */

/* Days from the civil date (proleptic Gregorian), so no timegm() needed. */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    int64_t era;
    unsigned yoe, doy, doe;

    y -= m <= 2;
    era = (y >= 0 ? y : y - 399) / 400;
    yoe = (unsigned)(y - era * 400);
    doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

int time_parse_utc(const char *s, int64_t *out)
{
    int y, mo, d, h, mi, se;
    char z;

    if (sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d%c", &y, &mo, &d, &h, &mi, &se, &z) != 7 || z != 'Z')
        return -EINVAL;
    if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || se > 60 || h < 0 ||
        mi < 0 || se < 0)
        return -EINVAL;
    *out = days_from_civil(y, (unsigned)mo, (unsigned)d) * 86400 + h * 3600 + mi * 60 + se;
    /* A leap second on 9999-12-31 would be year 10000, which time_format_utc
     * writes with five digits and this parser cannot read back: clamp to the
     * last second of 9999 (X.509's "no expiry"). */
    if (*out > TIME_UTC_MAX)
        *out = TIME_UTC_MAX;
    return 0;
}

int registry_new(struct registry **out)
{
    struct registry *reg = calloc(1, sizeof(*reg));

    if (!reg)
        return -ENOMEM;
    *out = reg;
    return 0;
}

static void peer_clear(struct peer *p)
{
    free(p->name);
    free(p->serial);
    free(p->key_id);
    free(p->reason);
    for (size_t i = 0; i < p->n_networks; i++)
        free(p->networks[i]);
    free(p->networks);
    memset(p, 0, sizeof(*p));
}

void registry_free(struct registry *reg)
{
    if (!reg)
        return;
    for (size_t i = 0; i < reg->n; i++)
        peer_clear(&reg->peers[i]);
    free(reg->peers);
    free(reg->ix);
    free(reg);
}

static int ix_cmp(const void *a, const void *b)
{
    const struct serial_ix *x = a, *y = b;
    int c = strcmp(x->serial, y->serial);

    return c ? c : (x->i > y->i) - (x->i < y->i);
}

int registry_index(struct registry *reg)
{
    struct serial_ix *ix = reg->n ? malloc(reg->n * sizeof(*ix)) : NULL;

    if (reg->n && !ix)
        return -ENOMEM;
    for (size_t i = 0; i < reg->n; i++)
        ix[i] = (struct serial_ix){reg->peers[i].serial, i};
    if (reg->n)
        qsort(ix, reg->n, sizeof(*ix), ix_cmp);
    free(reg->ix);
    reg->ix = ix;
    reg->n_ix = reg->n;
    return 0;
}

static int peer_copy(struct peer *dst, const struct peer *src)
{
    struct peer p = *src;

    p.name = strdup(src->name);
    p.serial = strdup(src->serial);
    p.key_id = src->key_id ? strdup(src->key_id) : NULL;
    p.reason = src->reason ? strdup(src->reason) : NULL;
    p.networks = src->n_networks ? calloc(src->n_networks, sizeof(char *)) : NULL;
    p.n_networks = 0;
    if (!p.name || !p.serial || (src->key_id && !p.key_id) || (src->reason && !p.reason) ||
        (src->n_networks && !p.networks))
        goto fail;
    for (size_t i = 0; i < src->n_networks; i++) {
        p.networks[i] = strdup(src->networks[i]);
        if (!p.networks[i])
            goto fail;
        p.n_networks++;
    }
    *dst = p;
    return 0;
fail:
    peer_clear(&p);
    return -ENOMEM;
}

static int registry_push(struct registry *reg, const struct peer *p)
{
    if (reg->n == reg->cap) {
        size_t cap = reg->cap ? reg->cap * 2 : 16;
        struct peer *np = realloc(reg->peers, cap * sizeof(*np));
        if (!np)
            return -ENOMEM;
        reg->peers = np;
        reg->cap = cap;
    }
    return peer_copy(&reg->peers[reg->n++], p) < 0 ? (reg->n--, -ENOMEM) : 0;
}

size_t registry_count(const struct registry *reg)
{
    return reg->n;
}

const struct peer *registry_at(const struct registry *reg, size_t i)
{
    return i < reg->n ? &reg->peers[i] : NULL;
}

const struct peer *registry_find_name(const struct registry *reg, const char *name)
{
    const struct peer *latest = NULL;

    for (size_t i = 0; i < reg->n; i++) {
        const struct peer *p = &reg->peers[i];
        if (strcmp(p->name, name) != 0)
            continue;
        if (p->status == PEER_ACTIVE)
            return p;
        if (!latest || p->enrolled_at >= latest->enrolled_at)
            latest = p;
    }
    return latest;
}

const struct peer *registry_find_active_ci(const struct registry *reg, const char *name)
{
    for (size_t i = 0; i < reg->n; i++)
        if (reg->peers[i].status == PEER_ACTIVE && strcasecmp(reg->peers[i].name, name) == 0)
            return &reg->peers[i];
    return NULL;
}

const struct peer *registry_find_serial(const struct registry *reg, const char *serial)
{
    if (reg->ix && reg->n_ix == reg->n) {
        /* The first entry with this serial, as the scan below finds it. */
        size_t lo = 0, hi = reg->n;
        while (lo < hi) {
            size_t mid = lo + (hi - lo) / 2;
            if (strcmp(reg->ix[mid].serial, serial) < 0)
                lo = mid + 1;
            else
                hi = mid;
        }
        return lo < reg->n && strcmp(reg->ix[lo].serial, serial) == 0 ? &reg->peers[reg->ix[lo].i]
                                                                      : NULL;
    }
    for (size_t i = 0; i < reg->n; i++)
        if (strcmp(reg->peers[i].serial, serial) == 0)
            return &reg->peers[i];
    return NULL;
}

const struct peer *registry_find_key(const struct registry *reg, const char *key_id)
{
    for (size_t i = 0; i < reg->n; i++) {
        const struct peer *p = &reg->peers[i];
        if (p->status != PEER_SUPERSEDED && p->key_id && strcmp(p->key_id, key_id) == 0)
            return p;
    }
    return NULL;
}

int registry_add(struct registry *reg, const struct peer *p)
{
    const struct peer *old = registry_find_name(reg, p->name);

    if (old && old->status == PEER_ACTIVE)
        return -EEXIST;
    if (registry_find_serial(reg, p->serial))
        return -EEXIST;
    return registry_push(reg, p);
}

/* p ends with status st at when, for reason (NULL: none). */
static int mark_ended(struct peer *p, enum peer_status st, const char *reason, int64_t when)
{
    char *r = reason ? strdup(reason) : NULL;

    if (reason && !r)
        return -ENOMEM;
    free(p->reason);
    p->reason = r;
    p->status = st;
    p->revoked_at = when;
    return 0;
}

int registry_revoke(struct registry *reg, const char *name, enum peer_status st,
                    const char *reason, int64_t when)
{
    for (size_t i = 0; i < reg->n; i++) {
        struct peer *p = &reg->peers[i];
        if (p->status != PEER_ACTIVE || strcmp(p->name, name) != 0)
            continue;
        return mark_ended(p, st, reason, when);
    }
    return -ENOENT;
}

int registry_revoke_overlap(struct registry *reg, const char *name, const char *reason,
                            int64_t when)
{
    int n = 0;

    for (size_t i = 0; i < reg->n; i++) {
        struct peer *p = &reg->peers[i];
        if (p->status != PEER_SUPERSEDED || p->revoked_at <= when || p->not_after <= when ||
            strcmp(p->name, name) != 0)
            continue;
        if (mark_ended(p, PEER_REVOKED, reason, when) < 0)
            return -ENOMEM;
        n++;
    }
    return n;
}

uint64_t registry_next_crl_number(struct registry *reg)
{
    return ++reg->crl_number;
}

/* ---- JSON ------------------------------------------------------------- */

static int add_time(struct json_object *o, const char *key, int64_t t)
{
    char buf[32];

    time_format_utc(t, buf, sizeof(buf));
    return json_object_object_add(o, key, json_object_new_string(buf));
}

struct json_object *registry_peer_json(const struct peer *p, time_t now)
{
    struct json_object *o = json_object_new_object();
    struct json_object *nets = json_object_new_array();
    int64_t left = p->not_after - (int64_t)now;

    if (!o || !nets) {
        json_object_put(o);
        json_object_put(nets);
        return NULL;
    }
    json_object_object_add(o, "name", json_object_new_string(p->name));
    json_object_object_add(o, "role", json_object_new_string(role_name(p->role)));
    json_object_object_add(o, "serial", json_object_new_string(p->serial));
    add_time(o, "not_before", p->not_before);
    add_time(o, "not_after", p->not_after);
    /* Whole days, rounded down; negative once expired. */
    json_object_object_add(o, "days_left",
                           json_object_new_int64(left >= 0 ? left / 86400 : -((-left + 86399) / 86400)));
    json_object_object_add(o, "status", json_object_new_string(peer_status_name(p->status)));
    for (size_t i = 0; i < p->n_networks; i++)
        json_object_array_add(nets, json_object_new_string(p->networks[i]));
    json_object_object_add(o, "networks", nets);
    add_time(o, "enrolled_at", p->enrolled_at);
    if (p->key_id)
        json_object_object_add(o, "key_id", json_object_new_string(p->key_id));
    if (p->revoked_at) {
        add_time(o, "revoked_at", p->revoked_at);
        json_object_object_add(o, "reason",
                               json_object_new_string(p->reason ? p->reason : "unspecified"));
    }
    return o;
}

int registry_save(const struct registry *reg, const char *path)
{
    struct json_object *root = json_object_new_object();
    struct json_object *arr = json_object_new_array();
    const char *text;
    int rc;

    if (!root || !arr) {
        json_object_put(root);
        json_object_put(arr);
        return -ENOMEM;
    }
    json_object_object_add(root, "version", json_object_new_int(REGISTRY_VERSION));
    json_object_object_add(root, "crl_number", json_object_new_int64((int64_t)reg->crl_number));
    for (size_t i = 0; i < reg->n; i++) {
        const struct peer *p = &reg->peers[i];
        struct json_object *o = registry_peer_json(p, 0);
        if (!o) {
            json_object_put(root);
            json_object_put(arr);
            return -ENOMEM;
        }
        /* Derived, not stored: days_left depends on when it is read. */
        json_object_object_del(o, "days_left");
        json_object_array_add(arr, o);
    }
    json_object_object_add(root, "peers", arr);
    text = json_object_to_json_string_ext(root, JSON_C_TO_STRING_PRETTY |
                                                    JSON_C_TO_STRING_NOSLASHESCAPE);
    rc = text ? fs_write_atomic(path, text, strlen(text), 0640) : -ENOMEM;
    json_object_put(root);
    return rc;
}

static const char *get_str(struct json_object *o, const char *key, bool required, bool *bad)
{
    struct json_object *v;

    if (!json_object_object_get_ex(o, key, &v) || json_object_is_type(v, json_type_null)) {
        if (required)
            *bad = true;
        return NULL;
    }
    if (!json_object_is_type(v, json_type_string)) {
        *bad = true;
        return NULL;
    }
    return json_object_get_string(v);
}

static int get_time(struct json_object *o, const char *key, bool required, int64_t *out)
{
    bool bad = false;
    const char *s = get_str(o, key, required, &bad);

    if (bad)
        return -EINVAL;
    if (!s) {
        *out = 0;
        return 0;
    }
    return time_parse_utc(s, out);
}

static int parse_peer(struct json_object *o, struct peer *p, const char **what)
{
    bool bad = false;
    const char *name = get_str(o, "name", true, &bad);
    const char *role = get_str(o, "role", true, &bad);
    const char *status = get_str(o, "status", true, &bad);
    const char *serial = get_str(o, "serial", true, &bad);
    const char *key_id = get_str(o, "key_id", false, &bad);
    const char *reason = get_str(o, "reason", false, &bad);
    struct json_object *nets;
    struct peer tmp = {0};
    char **netv = NULL;
    size_t n = 0;
    int rc;

    if (bad) {
        *what = "missing or non-string name, role, status or serial";
        return -EINVAL;
    }
    if (!peer_name_valid(name)) {
        *what = "invalid peer name";
        return -EINVAL;
    }
    if (role_parse(role, &tmp.role) < 0 || status_parse(status, &tmp.status) < 0) {
        *what = "unknown role or status";
        return -EINVAL;
    }
    if (!serial[0] || strspn(serial, "0123456789abcdef") != strlen(serial)) {
        *what = "serial is not lower-case hex";
        return -EINVAL;
    }
    if (get_time(o, "not_before", true, &tmp.not_before) < 0 ||
        get_time(o, "not_after", true, &tmp.not_after) < 0 ||
        get_time(o, "enrolled_at", true, &tmp.enrolled_at) < 0 ||
        get_time(o, "revoked_at", false, &tmp.revoked_at) < 0) {
        *what = "bad time (want YYYY-MM-DDTHH:MM:SSZ)";
        return -EINVAL;
    }
    if (!json_object_object_get_ex(o, "networks", &nets) ||
        !json_object_is_type(nets, json_type_array)) {
        *what = "networks is not an array";
        return -EINVAL;
    }
    n = json_object_array_length(nets);
    for (size_t i = 0; i < n; i++) {
        if (!json_object_is_type(json_object_array_get_idx(nets, i), json_type_string)) {
            *what = "networks holds a non-string";
            return -EINVAL;
        }
    }
    netv = n ? calloc(n, sizeof(char *)) : NULL;
    if (n && !netv)
        return -ENOMEM;
    for (size_t i = 0; i < n; i++)
        netv[i] = (char *)json_object_get_string(json_object_array_get_idx(nets, i));
    tmp.name = (char *)name;
    tmp.serial = (char *)serial;
    tmp.key_id = (char *)key_id;
    tmp.reason = (char *)reason;
    tmp.networks = netv;
    tmp.n_networks = n;
    rc = peer_copy(p, &tmp);
    free(netv);
    return rc;
}

int registry_parse(const char *text, size_t len, struct registry **out, char *err,
                   size_t errlen)
{
    struct json_tokener *tok = NULL;
    struct json_object *root = NULL, *v, *peers;
    struct registry *reg = NULL;
    int rc = -EBADMSG;

    tok = json_tokener_new();
    if (!tok)
        return -ENOMEM;
    root = json_tokener_parse_ex(tok, text, (int)len);
    if (!root || json_tokener_get_error(tok) != json_tokener_success) {
        snprintf(err, errlen, "not JSON: %s",
                 json_tokener_error_desc(json_tokener_get_error(tok)));
        goto out;
    }
    if (!json_object_is_type(root, json_type_object) ||
        !json_object_object_get_ex(root, "version", &v) ||
        json_object_get_int(v) != REGISTRY_VERSION) {
        snprintf(err, errlen, "not a version %d registry", REGISTRY_VERSION);
        goto out;
    }
    rc = registry_new(&reg);
    if (rc < 0)
        goto out;
    rc = -EBADMSG;
    if (json_object_object_get_ex(root, "crl_number", &v))
        reg->crl_number = (uint64_t)json_object_get_int64(v);
    if (!json_object_object_get_ex(root, "peers", &peers) ||
        !json_object_is_type(peers, json_type_array)) {
        snprintf(err, errlen, "no peers array");
        goto out;
    }
    for (size_t i = 0; i < json_object_array_length(peers); i++) {
        struct json_object *po = json_object_array_get_idx(peers, i);
        struct peer p;
        const char *what = "not an object";
        int prc = json_object_is_type(po, json_type_object) ? parse_peer(po, &p, &what)
                                                             : -EINVAL;
        if (prc == -ENOMEM) {
            rc = prc;
            goto out;
        }
        if (prc < 0) {
            snprintf(err, errlen, "peer entry %zu: %s", i + 1, what);
            goto out;
        }
        if (reg->n == reg->cap) {
            size_t cap = reg->cap ? reg->cap * 2 : 16;
            struct peer *np = realloc(reg->peers, cap * sizeof(*np));
            if (!np) {
                peer_clear(&p);
                rc = -ENOMEM;
                goto out;
            }
            reg->peers = np;
            reg->cap = cap;
        }
        reg->peers[reg->n++] = p;
    }
    *out = reg;
    reg = NULL;
    rc = 0;
out:
    registry_free(reg);
    json_object_put(root);
    json_tokener_free(tok);
    return rc;
}

int registry_load(const char *path, struct registry **out, char *err, size_t errlen)
{
    char *text = NULL;
    size_t len = 0;
    int rc;

    rc = fs_read_file(path, REGISTRY_MAX_SIZE, &text, &len);
    if (rc < 0) {
        snprintf(err, errlen, "cannot read %s: %s", path, fs_strerror(rc));
        return rc;
    }
    rc = registry_parse(text, len, out, err, errlen);
    free(text);
    return rc;
}
