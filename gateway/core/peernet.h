/*
 * peernet.h: the networks routed to a tunnel peer, as the console, the
 * management API and enrollment by invite all accept them: one set of rules.
 */
#ifndef MTLSGW_PEERNET_H
#define MTLSGW_PEERNET_H

#include <stdbool.h>
#include <stddef.h>

struct registry;

/*
 * nets (canonical CIDR strings) for the peer name: no prefix twice, no two
 * overlapping, no default route (0.0.0.0/0, ::/0) unless allow_default, and
 * none overlapping a network of another active peer in reg (NULL: not
 * checked; names compared case-insensitively). -EDOM for a default route
 * (checked first, on every network), -EINVAL otherwise, with err naming the
 * network, the other peer and what to do.
 */
int peernet_check(const struct registry *reg, const char *name, char *const *nets, size_t n,
                  bool allow_default, char *err, size_t errlen);

#endif
