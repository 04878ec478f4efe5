/*
 * bans.c: the ban book (bans.h). A table by address, under its own lock:
 * a failed handshake on a worker, the accept check on the main thread and
 * the console's or the API's lift may come at the same time.
 */
#include "bans.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#define BAN_SLOTS 256

struct ban {
    int family;
    uint8_t addr[16];
    unsigned score;
    long long last_ms, until_ms;
    struct ban *next;
};

struct bans {
    pthread_mutex_t lock;
    struct ban *slots[BAN_SLOTS];
};

int bans_new(struct bans **out)
{
    struct bans *b = calloc(1, sizeof(*b));

    if (!b)
        return -ENOMEM;
    pthread_mutex_init(&b->lock, NULL);
    *out = b;
    return 0;
}

void bans_free(struct bans *b)
{
    if (!b)
        return;
    for (int i = 0; i < BAN_SLOTS; i++) {
        while (b->slots[i]) {
            struct ban *x = b->slots[i];
            b->slots[i] = x->next;
            free(x);
        }
    }
    pthread_mutex_destroy(&b->lock);
    free(b);
}

/* The address of ss without its port: false for a family without one. */
static bool addr_of(const struct sockaddr_storage *ss, int *family, uint8_t addr[16])
{
    memset(addr, 0, 16);
    *family = ss->ss_family;
    if (ss->ss_family == AF_INET) {
        memcpy(addr, &((const struct sockaddr_in *)ss)->sin_addr, 4);
        return true;
    }
    if (ss->ss_family == AF_INET6) {
        memcpy(addr, &((const struct sockaddr_in6 *)ss)->sin6_addr, 16);
        return true;
    }
    return false;
}

static unsigned addr_hash(int family, const uint8_t addr[16])
{
    unsigned h = 2166136261u;

    for (size_t i = 0; i < (family == AF_INET ? 4u : 16u); i++)
        h = (h ^ addr[i]) * 16777619u;
    return h % BAN_SLOTS;
}

/* Under lock. */
static struct ban **slot(struct bans *b, int family, const uint8_t addr[16])
{
    struct ban **pp = &b->slots[addr_hash(family, addr)];

    while (*pp && !((*pp)->family == family && memcmp((*pp)->addr, addr, 16) == 0))
        pp = &(*pp)->next;
    return pp;
}

unsigned bans_fail(struct bans *b, const struct sockaddr_storage *ss, unsigned threshold,
                   unsigned ban_secs, long long now)
{
    long long window = 1000LL * ban_secs;
    unsigned started = 0;
    uint8_t addr[16];
    struct ban **pp, *x;
    int family;

    if (!addr_of(ss, &family, addr))
        return 0;
    pthread_mutex_lock(&b->lock);
    pp = slot(b, family, addr);
    if (!*pp && (*pp = calloc(1, sizeof(**pp)))) {
        (*pp)->family = family;
        memcpy((*pp)->addr, addr, 16);
    }
    x = *pp;
    if (x) {
        /* A score counts failures within ban-time of each other. */
        if (now - x->last_ms > window)
            x->score = 0;
        x->last_ms = now;
        if (++x->score >= threshold && x->until_ms <= now) {
            x->until_ms = now + window;
            started = x->score;
        }
    }
    pthread_mutex_unlock(&b->lock);
    return started;
}

bool bans_check(struct bans *b, const struct sockaddr_storage *ss, long long now)
{
    uint8_t addr[16];
    struct ban *x;
    bool banned = false;
    int family;

    if (!addr_of(ss, &family, addr))
        return false;
    pthread_mutex_lock(&b->lock);
    x = *slot(b, family, addr);
    banned = x && x->until_ms > now;
    pthread_mutex_unlock(&b->lock);
    return banned;
}

void bans_expire(struct bans *b, unsigned ban_secs, long long now)
{
    long long window = 1000LL * ban_secs;

    pthread_mutex_lock(&b->lock);
    for (int i = 0; i < BAN_SLOTS; i++) {
        for (struct ban **pp = &b->slots[i]; *pp;) {
            struct ban *x = *pp;
            if (x->until_ms <= now && now - x->last_ms > window) {
                *pp = x->next;
                free(x);
            } else {
                pp = &x->next;
            }
        }
    }
    pthread_mutex_unlock(&b->lock);
}

unsigned bans_count(struct bans *b, long long now)
{
    unsigned n = 0;

    pthread_mutex_lock(&b->lock);
    for (int i = 0; i < BAN_SLOTS; i++)
        for (struct ban *x = b->slots[i]; x; x = x->next)
            n += x->until_ms > now;
    pthread_mutex_unlock(&b->lock);
    return n;
}

int bans_lift(struct bans *b, const char *text, long long now, char *canon, size_t len)
{
    uint8_t addr[16] = {0};
    struct ban **pp, *x;
    int family = AF_INET, rc = -ENOENT;

    if (inet_pton(AF_INET, text, addr) != 1) {
        family = AF_INET6;
        if (inet_pton(AF_INET6, text, addr) != 1)
            return -EINVAL;
    }
    if (canon && len)
        inet_ntop(family, addr, canon, (socklen_t)len);
    pthread_mutex_lock(&b->lock);
    pp = slot(b, family, addr);
    x = *pp;
    if (x) {
        if (x->until_ms > now)
            rc = 0;
        /* Its score goes too: the next failure does not ban it again. */
        *pp = x->next;
        free(x);
    }
    pthread_mutex_unlock(&b->lock);
    return rc;
}

struct json_object *bans_json(struct bans *b, long long now)
{
    struct json_object *arr = json_object_new_array();

    pthread_mutex_lock(&b->lock);
    for (int i = 0; i < BAN_SLOTS; i++) {
        for (struct ban *x = b->slots[i]; x; x = x->next) {
            struct json_object *o;
            char a[INET6_ADDRSTRLEN] = "?";
            if (x->until_ms <= now)
                continue;
            inet_ntop(x->family, x->addr, a, sizeof(a));
            o = json_object_new_object();
            json_object_object_add(o, "address", json_object_new_string(a));
            json_object_object_add(o, "failures", json_object_new_int64(x->score));
            json_object_object_add(o, "seconds_left",
                                   json_object_new_int64((x->until_ms - now + 999) / 1000));
            json_object_array_add(arr, o);
        }
    }
    pthread_mutex_unlock(&b->lock);
    return arr;
}
