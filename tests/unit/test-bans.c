/* The ban book (gateway/daemon/session/bans.c): thresholds, expiry, lifting, and IPv6
 * counted by its /64 so that rotating addresses inside one prefix is banned
 * like one address. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>

#include <json-c/json.h>

#include "bans.h"
#include "cunit-main.h"

static struct sockaddr_storage v4(const char *a)
{
    struct sockaddr_storage ss = {0};
    struct sockaddr_in *s = (struct sockaddr_in *)&ss;

    s->sin_family = AF_INET;
    s->sin_port = htons(4433);
    inet_pton(AF_INET, a, &s->sin_addr);
    return ss;
}

static struct sockaddr_storage v6(const char *a)
{
    struct sockaddr_storage ss = {0};
    struct sockaddr_in6 *s = (struct sockaddr_in6 *)&ss;

    s->sin6_family = AF_INET6;
    s->sin6_port = htons(4433);
    inet_pton(AF_INET6, a, &s->sin6_addr);
    return ss;
}

static void test_threshold_and_expiry(void)
{
    struct bans *b = NULL;
    struct sockaddr_storage a = v4("192.0.2.7"), other = v4("192.0.2.8");

    CU_ASSERT_EQUAL_FATAL(bans_new(&b), 0);
    EXPECT_INT(bans_fail(b, &a, 3, 30, 1000), 0);
    EXPECT_INT(bans_fail(b, &a, 3, 30, 2000), 0);
    CU_ASSERT_FALSE(bans_check(b, &a, 2000));
    EXPECT_INT(bans_fail(b, &a, 3, 30, 3000), 3);
    CU_ASSERT_TRUE(bans_check(b, &a, 3000));
    CU_ASSERT_FALSE(bans_check(b, &other, 3000));
    EXPECT_INT(bans_count(b, 3000), 1);
    CU_ASSERT_TRUE(bans_check(b, &a, 32999));
    CU_ASSERT_FALSE(bans_check(b, &a, 33000));
    bans_free(b);
}

static void test_ipv6_by_prefix(void)
{
    struct bans *b = NULL;
    struct sockaddr_storage a;
    char name[64];
    unsigned started = 0;

    CU_ASSERT_EQUAL_FATAL(bans_new(&b), 0);
    /* Five different addresses of one /64, one failure each. */
    for (int i = 1; i <= 5; i++) {
        snprintf(name, sizeof(name), "2001:db8:1:2::%x:%x", i * 7919, i);
        a = v6(name);
        started |= bans_fail(b, &a, 5, 30, 1000 + i);
    }
    EXPECT_INT(started, 5);
    a = v6("2001:db8:1:2:ffff:ffff:ffff:ffff");
    CU_ASSERT_TRUE(bans_check(b, &a, 2000));
    a = v6("2001:db8:1:3::1"); /* the next /64 */
    CU_ASSERT_FALSE(bans_check(b, &a, 2000));
    {
        struct json_object *j = bans_json(b, 2000);
        EXPECT_INT(json_object_array_length(j), 1);
        EXPECT_STR(json_object_get_string(
                       json_object_object_get(json_object_array_get_idx(j, 0), "address")),
                   "2001:db8:1:2::/64");
        json_object_put(j);
    }
    /* Lifted by any address inside it, or by the prefix as listed. */
    EXPECT_INT(bans_lift(b, "2001:db8:1:2::99", 2000, name, sizeof(name)), 0);
    EXPECT_STR(name, "2001:db8:1:2::/64");
    a = v6("2001:db8:1:2::1");
    CU_ASSERT_FALSE(bans_check(b, &a, 2000));
    EXPECT_INT(bans_lift(b, "2001:db8:1:2::/64", 2000, NULL, 0), -ENOENT);
    EXPECT_INT(bans_lift(b, "2001:db8:1:2::/48", 2000, NULL, 0), -EINVAL);
    EXPECT_INT(bans_lift(b, "192.0.2.1/64", 2000, NULL, 0), -EINVAL);
    EXPECT_INT(bans_lift(b, "not an address", 2000, NULL, 0), -EINVAL);
    bans_free(b);
}

static const struct cu_test tests[] = {
    {"threshold, ban time, other addresses", test_threshold_and_expiry},
    {"IPv6 counted and banned by its /64", test_ipv6_by_prefix},
};

CU_MAIN("bans", tests)
