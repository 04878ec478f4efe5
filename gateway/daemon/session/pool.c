/*
 * pool.c: the hub's tunnel addresses (pool.h), a bitmap under one lock.
 */
#include "pool.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdlib.h>

#include "cidr.h"

struct pool {
    pthread_mutex_t lock;
    uint8_t *used; /* bitmap of indexes handed out */
    uint32_t base, size;
    unsigned plen;
};

int pool_new(const char *cidr, struct pool **out)
{
    struct cidr c;
    struct pool *p;

    if (cidr_parse(cidr, &c, NULL) < 0 || c.family != AF_INET || c.plen < 1 || c.plen > 32)
        return -EINVAL;
    p = calloc(1, sizeof(*p));
    if (!p)
        return -ENOMEM;
    p->base = (uint32_t)c.addr[0] << 24 | (uint32_t)c.addr[1] << 16 |
              (uint32_t)c.addr[2] << 8 | c.addr[3];
    p->plen = c.plen;
    p->size = 1u << (32 - c.plen);
    p->used = calloc(p->size / 8 + 1, 1);
    if (!p->used) {
        free(p);
        return -ENOMEM;
    }
    pthread_mutex_init(&p->lock, NULL);
    *out = p;
    return 0;
}

void pool_free(struct pool *p)
{
    if (!p)
        return;
    pthread_mutex_destroy(&p->lock);
    free(p->used);
    free(p);
}

uint32_t pool_take(struct pool *p)
{
    uint32_t found = 0;

    if (!p)
        return 0;
    pthread_mutex_lock(&p->lock);
    /* .0 is the network, .1 the hub, the last the broadcast address. */
    for (uint32_t i = 2; i + 1 < p->size; i++) {
        if (!(p->used[i / 8] & (1u << (i % 8)))) {
            p->used[i / 8] |= (uint8_t)(1u << (i % 8));
            found = i;
            break;
        }
    }
    pthread_mutex_unlock(&p->lock);
    return found;
}

void pool_give(struct pool *p, uint32_t index)
{
    if (!p || !index || index >= p->size)
        return;
    pthread_mutex_lock(&p->lock);
    p->used[index / 8] &= (uint8_t) ~(1u << (index % 8));
    pthread_mutex_unlock(&p->lock);
}

void pool_addr(const struct pool *p, uint32_t index, char *buf, size_t len)
{
    struct in_addr in = {.s_addr = htonl(p->base + index)};

    inet_ntop(AF_INET, &in, buf, (socklen_t)len);
}

unsigned pool_prefix_len(const struct pool *p)
{
    return p->plen;
}
