/* cidr.h: IPv4/IPv6 prefixes as administrators write them. */
#ifndef MTLSGW_CIDR_H
#define MTLSGW_CIDR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct cidr {
    int family; /* AF_INET or AF_INET6 */
    uint8_t addr[16];
    unsigned plen;
};

/*
 * "10.1.0.0/24", "fd00::/64"; a bare address is a host prefix. Host bits
 * must be zero. On failure why (if not NULL) says what is wrong.
 */
int cidr_parse(const char *s, struct cidr *out, const char **why);
/* A peer's network as an administrator gives it (--network, "networks"):
 * as cidr_parse(), but the prefix length must be written. */
int cidr_parse_network(const char *s, struct cidr *out, const char **why);
/* Canonical text form into buf (at least 50 bytes). */
void cidr_format(const struct cidr *c, char *buf, size_t len);
/* True when addr (of family) lies inside c. */
bool cidr_contains(const struct cidr *c, int family, const void *addr);

/* The most networks one peer may be given (--network, "networks"). */
#define CIDR_LIST_MAX 64

/* A peer's networks in canonical text form, as pki_enroll_req takes them. */
struct cidr_list {
    char *nets[CIDR_LIST_MAX];
    size_t n;
};

/*
 * Parse s and append its canonical form to l. -E2BIG when l already holds
 * CIDR_LIST_MAX, -EINVAL with why set (as cidr_parse(), or a bare address:
 * here the length must be written), -ENOMEM.
 */
int cidr_list_add(struct cidr_list *l, const char *s, const char **why);
/* Free the strings l holds and empty it (l itself is the caller's). */
void cidr_list_clear(struct cidr_list *l);

#endif
