/* Routes to a prefix via an owned link, with a metric and a table. */
#include <errno.h>
#include <linux/rtnetlink.h>
#include <stdio.h>
#include <string.h>

#include <netlink/addr.h>
#include <netlink/cache.h>
#include <netlink/netlink.h>
#include <netlink/route/route.h>

#include "nc-private.h"

static int route_build(const struct nc_prefix *p, int ifindex, uint32_t metric, uint32_t table,
                       struct rtnl_route **out)
{
    struct rtnl_route *r = rtnl_route_alloc();
    struct rtnl_nexthop *nh = rtnl_route_nh_alloc();
    struct nl_addr *dst = nl_addr_build(p->family, p->addr, p->family == AF_INET ? 4 : 16);

    if (!r || !nh || !dst) {
        rtnl_route_put(r);
        rtnl_route_nh_free(nh);
        nl_addr_put(dst);
        return -ENOMEM;
    }
    nl_addr_set_prefixlen(dst, (int)p->len);
    rtnl_route_set_family(r, (uint8_t)p->family);
    rtnl_route_set_dst(r, dst);
    nl_addr_put(dst);
    rtnl_route_set_table(r, table);
    rtnl_route_set_priority(r, metric);
    rtnl_route_set_scope(r, RT_SCOPE_LINK);
    rtnl_route_set_type(r, RTN_UNICAST);
    rtnl_route_set_protocol(r, RTPROT_STATIC);
    rtnl_route_nh_set_ifindex(nh, ifindex);
    rtnl_route_add_nexthop(r, nh);
    *out = r;
    return 0;
}

/* 1 when the route to d in table with metric goes via ifindex, 0 when not. */
static int route_exists(struct nc *nc, const char *d, const char *ifname, int ifindex,
                        uint32_t metric, uint32_t table)
{
    struct nc_link_info li = { .ifindex = ifindex };
    struct nc_state *st = NULL;
    int err;

    err = nc_state_new(&st);
    if (err < 0)
        return err;
    snprintf(li.name, sizeof(li.name), "%s", ifname);
    err = nc_state_push((void **)&st->links, &st->n_links, sizeof(li), &li);
    if (err < 0)
        goto out;
    err = nc_routes_list(nc, st);
    if (err < 0)
        goto out;
    for (size_t i = 0; i < st->n_routes; i++) {
        const struct nc_route_info *ri = &st->routes[i];

        if (!strcmp(ri->dst, d) && ri->metric == metric && ri->table == table) {
            err = 1;
            goto out;
        }
    }
    err = 0;
out:
    nc_state_free(st);
    return err;
}

static int route_change(struct nc *nc, const char *dst, const char *ifname, uint32_t metric,
                        uint32_t table, bool add)
{
    const char *what = add ? "route add" : "route del";
    struct rtnl_route *r = NULL;
    struct nc_prefix p;
    struct nl_sock *sk;
    char d[NC_ADDRSTRLEN];
    int ifindex, err;

    err = nc_check_owned(nc, ifname);
    if (err < 0)
        return err;
    if (nc_prefix_parse(dst, &p) < 0)
        return nc_fail(nc, -EINVAL, "%s \"%s\" dev %s: not a prefix", what,
                       dst ? dst : "(null)", ifname);
    if (table == 0)
        table = RT_TABLE_MAIN;
    if (table == RT_TABLE_LOCAL)
        return nc_fail(nc, -EINVAL, "%s %s: table %u belongs to the kernel", what, dst, table);
    nc_prefix_mask(&p);
    nc_prefix_format(&p, true, d, sizeof(d));
    if (nc->backend == NC_BACKEND_RECORD)
        return nc_record(nc, "route_%s %s dev %s metric %u table %u", add ? "add" : "del", d,
                         ifname, metric, table);
    err = nc_rt_sock(nc, &sk);
    if (err < 0)
        return err;
    err = nc_ifindex(nc, ifname, &ifindex);
    if (err < 0)
        return err;
    if (route_build(&p, ifindex, metric, table, &r) < 0)
        return nc_fail(nc, -ENOMEM, "%s %s", what, d);
    nc_kerr_reset(nc);
    err = add ? rtnl_route_add(sk, r, NLM_F_EXCL) : rtnl_route_delete(sk, r, 0);
    if (err < 0) {
        err = nc_nlerr(nc, err);
        /* Deleting what is gone is success; so is adding what is there,
         * but only when it goes our way: EEXIST may be another interface's
         * route to the same prefix (IPv4), which must stay an error. */
        if (!add && err == -ESRCH) {
            err = 0;
        } else if (add && err == -EEXIST) {
            err = route_exists(nc, d, ifname, ifindex, metric, table);
            if (err == 0)
                err = -EEXIST;
            if (err < 0)
                err = nc_fail(nc, err, "%s %s dev %s: another route holds it", what, d,
                              ifname);
            else
                err = 0;
        } else {
            err = nc_fail(nc, err, "%s %s dev %s", what, d, ifname);
        }
    }
    rtnl_route_put(r);
    return err;
}

int nc_route_add(struct nc *nc, const char *dst, const char *ifname, uint32_t metric,
                 uint32_t table)
{
    return route_change(nc, dst, ifname, metric, table, true);
}

int nc_route_del(struct nc *nc, const char *dst, const char *ifname, uint32_t metric,
                 uint32_t table)
{
    return route_change(nc, dst, ifname, metric, table, false);
}

bool nc_route_ours(struct rtnl_route *r)
{
    uint8_t proto = rtnl_route_get_protocol(r);

    /* Routes the kernel derives from addresses and router advertisements,
     * and the local table, follow the addresses: not ours to manage. */
    return proto != RTPROT_KERNEL && proto != RTPROT_RA &&
           rtnl_route_get_table(r) != RT_TABLE_LOCAL && rtnl_route_get_type(r) == RTN_UNICAST &&
           rtnl_route_get_nnexthops(r) == 1;
}

void nc_route_info_fill(struct rtnl_route *r, const char *ifname, struct nc_route_info *ri)
{
    struct nl_addr *dst = rtnl_route_get_dst(r);
    struct nc_prefix p;

    memset(ri, 0, sizeof(*ri));
    memset(&p, 0, sizeof(p));
    p.family = rtnl_route_get_family(r);
    if (dst && nl_addr_get_len(dst))
        memcpy(p.addr, nl_addr_get_binary_addr(dst), p.family == AF_INET ? 4 : 16);
    p.len = dst ? (unsigned)nl_addr_get_prefixlen(dst) : 0;
    nc_prefix_format(&p, true, ri->dst, sizeof(ri->dst));
    snprintf(ri->ifname, sizeof(ri->ifname), "%s", ifname);
    ri->metric = rtnl_route_get_priority(r);
    ri->table = rtnl_route_get_table(r);
}

int nc_routes_list(struct nc *nc, struct nc_state *st)
{
    struct nl_cache *cache = NULL;
    struct nl_object *obj;
    struct nl_sock *sk;
    int err;

    err = nc_rt_sock(nc, &sk);
    if (err < 0)
        return err;
    err = rtnl_route_alloc_cache(sk, AF_UNSPEC, 0, &cache);
    if (err < 0)
        return nc_fail(nc, nc_nlerr(nc, err), "list routes");
    for (obj = nl_cache_get_first(cache); obj; obj = nl_cache_get_next(obj)) {
        struct rtnl_route *r = (struct rtnl_route *)obj;
        struct rtnl_nexthop *nh;
        struct nc_route_info ri;
        const char *ifname;

        if (!nc_route_ours(r))
            continue;
        nh = rtnl_route_nexthop_n(r, 0);
        ifname = nc_state_ifname(st, rtnl_route_nh_get_ifindex(nh));
        if (!ifname[0])
            continue;
        nc_route_info_fill(r, ifname, &ri);
        err = nc_state_push((void **)&st->routes, &st->n_routes, sizeof(ri), &ri);
        if (err < 0) {
            err = nc_fail(nc, err, "list routes");
            goto out;
        }
    }
    err = 0;
out:
    nl_cache_free(cache);
    return err;
}
