#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "cidr.h"
#include "cunit-main.h"

static void test_parse_ok(void)
{
    struct cidr c;
    char buf[64];

    EXPECT_INT(cidr_parse("10.1.0.0/24", &c, NULL), 0);
    cidr_format(&c, buf, sizeof(buf));
    EXPECT_STR(buf, "10.1.0.0/24");
    EXPECT_INT(cidr_parse("fd00:0::/64", &c, NULL), 0);
    cidr_format(&c, buf, sizeof(buf));
    EXPECT_STR(buf, "fd00::/64");
    EXPECT_INT(c.family, AF_INET6);
    EXPECT_INT(cidr_parse("192.0.2.7", &c, NULL), 0);
    EXPECT_INT(c.plen, 32);
    EXPECT_INT(cidr_parse("0.0.0.0/0", &c, NULL), 0);
}

static void test_parse_bad(void)
{
    struct cidr c = {.plen = 99};
    const char *why = NULL;

    EXPECT_INT(cidr_parse("10.1.0.1/24", &c, &why), -EINVAL);
    EXPECT_CONTAINS(why, "host bits");
    EXPECT_INT(c.plen, 99); /* untouched on failure */
    EXPECT_INT(cidr_parse("10.1.0.0/33", &c, &why), -EINVAL);
    EXPECT_CONTAINS(why, "0 to 32");
    EXPECT_INT(cidr_parse("fd00::/129", &c, &why), -EINVAL);
    EXPECT_INT(cidr_parse("10.1.0.0/", &c, &why), -EINVAL);
    EXPECT_INT(cidr_parse("10.1.0.0/2x", &c, &why), -EINVAL);
    EXPECT_INT(cidr_parse("example.net/24", &c, &why), -EINVAL);
    EXPECT_CONTAINS(why, "not an IPv4 or IPv6");
    EXPECT_INT(cidr_parse("", &c, &why), -EINVAL);
    EXPECT_INT(cidr_parse("/24", &c, &why), -EINVAL);
}

static void test_contains(void)
{
    struct cidr c;
    uint8_t a[16];

    cidr_parse("10.1.0.0/23", &c, NULL);
    inet_pton(AF_INET, "10.1.1.200", a);
    CU_ASSERT_TRUE(cidr_contains(&c, AF_INET, a));
    inet_pton(AF_INET, "10.1.2.1", a);
    CU_ASSERT_FALSE(cidr_contains(&c, AF_INET, a));
    inet_pton(AF_INET6, "::1", a);
    CU_ASSERT_FALSE(cidr_contains(&c, AF_INET6, a));
}

static void test_list_add(void)
{
    struct cidr_list l = {0};
    const char *why = NULL;
    char s[32];

    EXPECT_INT(cidr_list_add(&l, "10.1.0.0/24", &why), 0);
    EXPECT_INT(cidr_list_add(&l, "FD00:0::/64", &why), 0);
    EXPECT_INT((int)l.n, 2);
    EXPECT_STR(l.nets[0], "10.1.0.0/24");
    EXPECT_STR(l.nets[1], "fd00::/64"); /* canonical form */
    EXPECT_INT(cidr_list_add(&l, "10.1.0.1/24", &why), -EINVAL);
    EXPECT_CONTAINS(why, "host bits");
    EXPECT_INT((int)l.n, 2); /* a refused prefix is not added */
    while (l.n < CIDR_LIST_MAX) {
        snprintf(s, sizeof(s), "10.2.%zu.0/24", l.n);
        if (cidr_list_add(&l, s, &why) < 0)
            break;
    }
    EXPECT_INT((int)l.n, CIDR_LIST_MAX);
    EXPECT_INT(cidr_list_add(&l, "10.3.0.0/24", &why), -E2BIG);
    EXPECT_INT((int)l.n, CIDR_LIST_MAX);
    cidr_list_clear(&l);
    EXPECT_INT((int)l.n, 0);
    CU_ASSERT_PTR_NULL(l.nets[0]);
    cidr_list_clear(&l); /* twice is harmless */
}

static const struct cu_test tests[] = {
    {"parse valid prefixes", test_parse_ok},
    {"refuse bad prefixes", test_parse_bad},
    {"containment", test_contains},
    {"network lists: canonical, bounded", test_list_add},
};
CU_MAIN("cidr", tests)
