/*
 * The hub's tunnel address pool (gateway/daemon/session/pool.c): the first
 * peer address is .2 (.0 the network, .1 the hub, the last the broadcast
 * address are never handed out), a given-back address is taken again, an
 * exhausted pool says so with 0, and two threads never get one address.
 * The pool is IPv4 only (config.c refuses anything else for [tunnel] pool);
 * that it stays clear of peer networks is config.c's check and the
 * parent's (test-config, tests/netns/privsep.c), not the pool's.
 */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>

#include "cunit-main.h"
#include "pool.h"

static void test_refuses_what_is_not_an_ipv4_prefix(void)
{
    struct pool *p = (struct pool *)&p;

    EXPECT_INT(pool_new("fd00:99::/64", &p), -EINVAL);
    EXPECT_INT(pool_new("10.99.0.1/24", &p), -EINVAL); /* host bits set */
    EXPECT_INT(pool_new("not a prefix", &p), -EINVAL);
    /* Left untouched on failure. */
    CU_ASSERT_PTR_EQUAL(p, (struct pool *)&p);
    /* No pool: nothing to take, nothing to give back. */
    EXPECT_INT(pool_take(NULL), 0);
    pool_give(NULL, 2);
    pool_free(NULL);
}

static void test_take_in_order(void)
{
    struct pool *p = NULL;
    char a[64];

    CU_ASSERT_EQUAL_FATAL(pool_new("10.99.0.0/24", &p), 0);
    EXPECT_INT(pool_prefix_len(p), 24);
    pool_addr(p, 1, a, sizeof(a));
    EXPECT_STR(a, "10.99.0.1");
    EXPECT_INT(pool_take(p), 2);
    EXPECT_INT(pool_take(p), 3);
    pool_addr(p, 3, a, sizeof(a));
    EXPECT_STR(a, "10.99.0.3");
    pool_free(p);
}

/* A /29 holds eight addresses: .2 to .6 are the peers'. */
static void test_exhaust_and_reuse(void)
{
    struct pool *p = NULL;
    char a[64];

    CU_ASSERT_EQUAL_FATAL(pool_new("192.0.2.8/29", &p), 0);
    for (uint32_t want = 2; want <= 6; want++)
        EXPECT_INT(pool_take(p), want);
    EXPECT_INT(pool_take(p), 0); /* never .7, the broadcast address */
    EXPECT_INT(pool_take(p), 0);
    pool_give(p, 4);
    EXPECT_INT(pool_take(p), 4);
    EXPECT_INT(pool_take(p), 0);
    /* The lowest free one first. */
    pool_give(p, 5);
    pool_give(p, 3);
    EXPECT_INT(pool_take(p), 3);
    EXPECT_INT(pool_take(p), 5);
    /* Giving back what was never handed out, or 0, changes nothing. */
    pool_give(p, 0);
    pool_give(p, 7);
    pool_give(p, 1000);
    EXPECT_INT(pool_take(p), 0);
    pool_addr(p, 6, a, sizeof(a));
    EXPECT_STR(a, "192.0.2.14");
    pool_free(p);
}

/* A /30: the hub and one peer. */
static void test_smallest(void)
{
    struct pool *p = NULL;

    CU_ASSERT_EQUAL_FATAL(pool_new("198.51.100.4/30", &p), 0);
    EXPECT_INT(pool_prefix_len(p), 30);
    EXPECT_INT(pool_take(p), 2);
    EXPECT_INT(pool_take(p), 0);
    pool_free(p);
}

#define THREADS 4
#define EACH 60

struct taker {
    struct pool *p;
    uint32_t got[EACH];
};

static void *take_many(void *arg)
{
    struct taker *t = arg;

    for (int i = 0; i < EACH; i++)
        t->got[i] = pool_take(t->p);
    return NULL;
}

/* Slow-pool workers set up tunnels at once: 240 takes from a /24 (253
 * peer addresses) on four threads hand out 240 different addresses. */
static void test_threads_never_share(void)
{
    struct taker t[THREADS];
    pthread_t th[THREADS];
    uint8_t seen[256] = {0};
    struct pool *p = NULL;

    CU_ASSERT_EQUAL_FATAL(pool_new("10.7.0.0/24", &p), 0);
    for (int i = 0; i < THREADS; i++) {
        t[i].p = p;
        CU_ASSERT_EQUAL_FATAL(pthread_create(&th[i], NULL, take_many, &t[i]), 0);
    }
    for (int i = 0; i < THREADS; i++)
        pthread_join(th[i], NULL);
    for (int i = 0; i < THREADS; i++) {
        for (int k = 0; k < EACH; k++) {
            uint32_t g = t[i].got[k];
            CU_ASSERT(g >= 2 && g <= 254);
            if (g < 256) {
                if (seen[g])
                    fprintf(stderr, "address index %u handed out twice\n", (unsigned)g);
                CU_ASSERT_EQUAL(seen[g], 0);
                seen[g] = 1;
            }
        }
    }
    pool_free(p);
}

static const struct cu_test tests[] = {
    {"refuses what is not an IPv4 prefix", test_refuses_what_is_not_an_ipv4_prefix},
    {"takes .2 up, the hub is .1", test_take_in_order},
    {"exhausts and reuses", test_exhaust_and_reuse},
    {"a /30 has one peer address", test_smallest},
    {"threads never share an address", test_threads_never_share},
};

CU_MAIN("pool", tests)
