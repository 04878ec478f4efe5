#include "cidr.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

static bool bits_zero_after(const uint8_t *a, size_t bytes, unsigned plen)
{
    for (unsigned bit = plen; bit < bytes * 8; bit++)
        if (a[bit / 8] & (0x80 >> (bit % 8)))
            return false;
    return true;
}

int cidr_parse(const char *s, struct cidr *out, const char **why)
{
    char buf[64];
    const char *slash = strchr(s, '/');
    size_t alen = slash ? (size_t)(slash - s) : strlen(s);
    struct cidr c = {0};
    unsigned maxlen;
    const char *dummy;

    if (!why)
        why = &dummy;
    if (alen == 0 || alen >= sizeof(buf)) {
        *why = "not an IPv4 or IPv6 prefix";
        return -EINVAL;
    }
    memcpy(buf, s, alen);
    buf[alen] = '\0';
    if (inet_pton(AF_INET, buf, c.addr) == 1) {
        c.family = AF_INET;
        maxlen = 32;
    } else if (inet_pton(AF_INET6, buf, c.addr) == 1) {
        c.family = AF_INET6;
        maxlen = 128;
    } else {
        *why = "not an IPv4 or IPv6 address";
        return -EINVAL;
    }
    c.plen = maxlen;
    if (slash) {
        char *end;
        unsigned long v;
        if (slash[1] < '0' || slash[1] > '9') {
            *why = "prefix length is not a number";
            return -EINVAL;
        }
        v = strtoul(slash + 1, &end, 10);
        if (*end || v > maxlen) {
            *why = c.family == AF_INET ? "prefix length must be 0 to 32"
                                       : "prefix length must be 0 to 128";
            return -EINVAL;
        }
        c.plen = (unsigned)v;
    }
    if (!bits_zero_after(c.addr, maxlen / 8, c.plen)) {
        *why = "host bits are set (write the network address)";
        return -EINVAL;
    }
    *out = c;
    return 0;
}

void cidr_format(const struct cidr *c, char *buf, size_t len)
{
    char a[INET6_ADDRSTRLEN];

    inet_ntop(c->family, c->addr, a, sizeof(a));
    snprintf(buf, len, "%s/%u", a, c->plen);
}

bool cidr_contains(const struct cidr *c, int family, const void *addr)
{
    const uint8_t *a = addr;
    unsigned full = c->plen / 8, rest = c->plen % 8;

    if (family != c->family)
        return false;
    if (memcmp(a, c->addr, full) != 0)
        return false;
    if (rest) {
        uint8_t mask = (uint8_t)(0xff << (8 - rest));
        if ((a[full] & mask) != (c->addr[full] & mask))
            return false;
    }
    return true;
}

int cidr_parse_network(const char *s, struct cidr *out, const char **why)
{
    struct cidr c;
    int rc;

    if ((rc = cidr_parse(s, &c, why)) < 0)
        return rc;
    /* A bare address silently becoming a /32 hid typos ("10.2.0.0"). */
    if (!strchr(s, '/')) {
        if (why)
            *why = c.family == AF_INET ? "no prefix length (write e.g. /24 for a network, "
                                         "/32 for one host)"
                                       : "no prefix length (write e.g. /64 for a network, "
                                         "/128 for one host)";
        return -EINVAL;
    }
    *out = c;
    return 0;
}

int cidr_list_add(struct cidr_list *l, const char *s, const char **why)
{
    struct cidr c;
    char canon[64];
    int rc;

    if (l->n == CIDR_LIST_MAX) {
        if (why)
            *why = "too many networks";
        return -E2BIG;
    }
    if ((rc = cidr_parse_network(s, &c, why)) < 0)
        return rc;
    cidr_format(&c, canon, sizeof(canon));
    l->nets[l->n] = strdup(canon);
    if (!l->nets[l->n])
        return -ENOMEM;
    l->n++;
    return 0;
}

void cidr_list_clear(struct cidr_list *l)
{
    for (size_t i = 0; i < l->n; i++) {
        free(l->nets[i]);
        l->nets[i] = NULL;
    }
    l->n = 0;
}
