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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#define BAN_SLOTS 256
/* An IPv6 address is counted and banned by its /64: every IPv6 customer has
 * one, and rotating through it would otherwise never be banned. */
#define BAN_V6_BYTES 8
/* Entries kept at most; past it a new address is not tracked (a flood of
 * that many sources is beyond what a ban book can answer) and counted. */
#define BAN_MAX 65536

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
    unsigned n;
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

/* IPv6: the /64 the address is in (the listeners are IPV6_V6ONLY, so no
 * IPv4-mapped address reaches here). */
static void mask(int family, uint8_t addr[16])
{
    if (family == AF_INET6)
        memset(addr + BAN_V6_BYTES, 0, 16 - BAN_V6_BYTES);
}

/* The address of ss without its port, as the book keys it: false for a
 * family without one. */
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
        mask(AF_INET6, addr);
        return true;
    }
    return false;
}

/* "192.0.2.1" or "2001:db8:1:2::/64". */
static void key_text(int family, const uint8_t addr[16], char *buf, size_t len)
{
    char a[INET6_ADDRSTRLEN] = "?";

    inet_ntop(family, addr, a, sizeof(a));
    snprintf(buf, len, family == AF_INET6 ? "%s/64" : "%s", a);
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
    if (!*pp && b->n < BAN_MAX && (*pp = calloc(1, sizeof(**pp)))) {
        (*pp)->family = family;
        memcpy((*pp)->addr, addr, 16);
        b->n++;
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
                b->n--;
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
    char buf[INET6_ADDRSTRLEN + 4];
    const char *slash = strchr(text, '/');
    struct ban **pp, *x;
    int family = AF_INET, rc = -ENOENT;

    /* An IPv6 ban is its /64: any address in it, or the prefix as listed. */
    if (slash && strcmp(slash, "/64") != 0)
        return -EINVAL;
    snprintf(buf, sizeof(buf), "%.*s", (int)(slash ? slash - text : (long)strlen(text)), text);
    if (inet_pton(AF_INET, buf, addr) != 1 || slash) {
        family = AF_INET6;
        if (inet_pton(AF_INET6, buf, addr) != 1)
            return -EINVAL;
    }
    mask(family, addr);
    if (canon && len)
        key_text(family, addr, canon, len);
    pthread_mutex_lock(&b->lock);
    pp = slot(b, family, addr);
    x = *pp;
    if (x) {
        if (x->until_ms > now)
            rc = 0;
        /* Its score goes too: the next failure does not ban it again. */
        *pp = x->next;
        free(x);
        b->n--;
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
            char a[INET6_ADDRSTRLEN + 4];
            if (x->until_ms <= now)
                continue;
            key_text(x->family, x->addr, a, sizeof(a));
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
