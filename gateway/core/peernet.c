#include "peernet.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "cidr.h"
#include "registry.h"

/* Two prefixes overlap when the shorter one holds the other's address. */
static bool overlap(const struct cidr *a, const struct cidr *b)
{
    if (a->family != b->family)
        return false;
    return a->plen <= b->plen ? cidr_contains(a, b->family, b->addr)
                              : cidr_contains(b, a->family, a->addr);
}

static int parse(const char *s, struct cidr *c, char *err, size_t errlen)
{
    const char *why = NULL;

    if (cidr_parse(s, c, &why) == 0)
        return 0;
    snprintf(err, errlen, "network %s: %s", s, why ? why : "not a prefix");
    return -EINVAL;
}

/* Against the active peers other than name. */
static int check_others(const struct registry *reg, const char *name, const struct cidr *c,
                        const char *s, char *err, size_t errlen)
{
    for (size_t i = 0; i < registry_count(reg); i++) {
        const struct peer *p = registry_at(reg, i);
        struct cidr o;
        if (p->status != PEER_ACTIVE || strcasecmp(p->name, name) == 0)
            continue;
        for (size_t k = 0; k < p->n_networks; k++) {
            if (cidr_parse(p->networks[k], &o, NULL) < 0 || !overlap(c, &o))
                continue;
            snprintf(err, errlen,
                     "network %s overlaps %s of peer %s: packets to it would go to either "
                     "(give a network outside it, or revoke %s first)",
                     s, p->networks[k], p->name, p->name);
            return -EINVAL;
        }
    }
    return 0;
}

int peernet_check(const struct registry *reg, const char *name, char *const *nets, size_t n,
                  bool allow_default, char *err, size_t errlen)
{
    struct cidr c, d;
    int rc;

    for (size_t i = 0; i < n && !allow_default; i++) {
        if ((rc = parse(nets[i], &c, err, errlen)) < 0)
            return rc;
        if (c.plen == 0) {
            snprintf(err, errlen,
                     "network %s is a default route: everything would go to %s (give "
                     "--allow-default, in the API \"allow_default\": true, if that is meant)",
                     nets[i], name);
            return -EDOM;
        }
    }
    for (size_t i = 0; i < n; i++) {
        if ((rc = parse(nets[i], &c, err, errlen)) < 0)
            return rc;
        for (size_t j = 0; j < i; j++) {
            if ((rc = parse(nets[j], &d, err, errlen)) < 0)
                return rc;
            if (!overlap(&c, &d))
                continue;
            if (c.plen == d.plen)
                snprintf(err, errlen, "network %s is given twice", nets[i]);
            else
                snprintf(err, errlen, "networks %s and %s overlap: give the larger one only",
                         nets[j], nets[i]);
            return -EINVAL;
        }
        if (reg && (rc = check_others(reg, name, &c, nets[i], err, errlen)) < 0)
            return rc;
    }
    return 0;
}
