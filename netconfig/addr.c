/* Addresses on owned links, IPv4 and IPv6, point-to-point too. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <netlink/addr.h>
#include <netlink/attr.h>
#include <netlink/cache.h>
#include <netlink/msg.h>
#include <netlink/netlink.h>
#include <netlink/route/addr.h>

#include "nc-private.h"

int nc_addr_norm(const char *local, const char *peer, struct nc_prefix *lp,
                 struct nc_prefix *pp)
{
    if (nc_prefix_parse(local, lp) < 0)
        return -EINVAL;
    if (!peer || !*peer) {
        pp->family = 0;
        return 0;
    }
    if (nc_prefix_parse(peer, pp) < 0 || pp->family != lp->family)
        return -EINVAL;
    /* On a point-to-point address the prefix length belongs to the peer
     * (ip-address(8)); take it from whichever side spelled it. */
    if (pp->has_len)
        lp->len = pp->len;
    else
        pp->len = lp->len;
    return 0;
}

static struct nl_addr *to_nl(const struct nc_prefix *p)
{
    struct nl_addr *a = nl_addr_build(p->family, p->addr, p->family == AF_INET ? 4 : 16);

    if (a)
        nl_addr_set_prefixlen(a, (int)p->len);
    return a;
}

static int addr_change(struct nc *nc, const char *ifname, const char *local, const char *peer,
                       bool add)
{
    const char *what = add ? "addr add" : "addr del";
    struct rtnl_addr *ra = NULL;
    struct nl_msg *msg = NULL;
    struct nl_addr *la = NULL, *pa = NULL;
    struct nc_prefix lp, pp;
    struct nl_sock *sk;
    int ifindex, err;

    err = nc_check_owned(nc, ifname);
    if (err < 0)
        return err;
    if (nc_addr_norm(local, peer, &lp, &pp) < 0)
        return nc_fail(nc, -EINVAL, "%s %s: \"%s\"%s%s: not an address", what, ifname,
                       local ? local : "(null)", peer ? " peer " : "", peer ? peer : "");
    if (nc->backend == NC_BACKEND_RECORD) {
        char l[NC_ADDRSTRLEN], p[NC_ADDRSTRLEN];

        nc_prefix_format(&lp, true, l, sizeof(l));
        if (pp.family)
            nc_prefix_format(&pp, true, p, sizeof(p));
        return nc_record(nc, "addr_%s %s %s%s%s", add ? "add" : "del", ifname, l,
                         pp.family ? " peer " : "", pp.family ? p : "");
    }
    err = nc_rt_sock(nc, &sk);
    if (err < 0)
        return err;
    err = nc_ifindex(nc, ifname, &ifindex);
    if (err < 0)
        return err;
    ra = rtnl_addr_alloc();
    la = to_nl(&lp);
    pa = pp.family ? to_nl(&pp) : NULL;
    if (!ra || !la || (pp.family && !pa)) {
        err = nc_fail(nc, -ENOMEM, "%s %s", what, ifname);
        goto out;
    }
    rtnl_addr_set_ifindex(ra, ifindex);
    rtnl_addr_set_family(ra, lp.family);
    rtnl_addr_set_local(ra, la);
    /* libnl takes only IPv4 peers; an IPv6 one is written in below. */
    if (pa && lp.family == AF_INET)
        rtnl_addr_set_peer(ra, pa);
    rtnl_addr_set_prefixlen(ra, (int)lp.len);
    if (lp.family == AF_INET6)
        /* Tunnel addresses come from config: no DAD on a p2p TUN. */
        rtnl_addr_set_flags(ra, IFA_F_NODAD);
    nc_kerr_reset(nc);
    err = add ? rtnl_addr_build_add_request(ra, NLM_F_CREATE, &msg)
              : rtnl_addr_build_delete_request(ra, 0, &msg);
    if (err == 0 && pa && lp.family == AF_INET6) {
        /* IFA_ADDRESS is the peer when it differs from IFA_LOCAL. */
        struct nlattr *a = nlmsg_find_attr(nlmsg_hdr(msg), sizeof(struct ifaddrmsg),
                                           IFA_ADDRESS);

        if (a && nla_len(a) == 16)
            memcpy(nla_data(a), pp.addr, 16);
        else
            err = -NLE_INVAL;
    }
    if (err == 0)
        err = nl_send_sync(sk, msg); /* frees msg */
    else
        nlmsg_free(msg);
    if (err < 0) {
        err = nc_nlerr(nc, err);
        /* Idempotent: present on add, absent on delete, is success. */
        if ((add && err == -EEXIST) || (!add && err == -EADDRNOTAVAIL))
            err = 0;
        else
            err = nc_fail(nc, err, "%s %s %s", what, ifname, local);
    }
out:
    nl_addr_put(la);
    nl_addr_put(pa);
    rtnl_addr_put(ra);
    return err;
}

int nc_addr_add(struct nc *nc, const char *ifname, const char *local, const char *peer)
{
    return addr_change(nc, ifname, local, peer, true);
}

int nc_addr_del(struct nc *nc, const char *ifname, const char *local, const char *peer)
{
    return addr_change(nc, ifname, local, peer, false);
}

static void nl_format(const struct nl_addr *a, int plen, char *buf, size_t len)
{
    struct nc_prefix p;

    memset(&p, 0, sizeof(p));
    p.family = nl_addr_get_family(a);
    memcpy(p.addr, nl_addr_get_binary_addr(a), p.family == AF_INET ? 4 : 16);
    p.len = (unsigned)plen;
    nc_prefix_format(&p, true, buf, len);
}

int nc_addrs_list(struct nc *nc, struct nc_state *st)
{
    struct nl_cache *cache = NULL;
    struct nl_object *obj;
    struct nl_sock *sk;
    int err;

    err = nc_rt_sock(nc, &sk);
    if (err < 0)
        return err;
    err = rtnl_addr_alloc_cache(sk, &cache);
    if (err < 0)
        return nc_fail(nc, nc_nlerr(nc, err), "list addresses");
    for (obj = nl_cache_get_first(cache); obj; obj = nl_cache_get_next(obj)) {
        struct rtnl_addr *a = (struct rtnl_addr *)obj;
        const char *ifname = nc_state_ifname(st, rtnl_addr_get_ifindex(a));
        struct nl_addr *local = rtnl_addr_get_local(a);
        struct nl_addr *peer = rtnl_addr_get_peer(a);
        int plen = rtnl_addr_get_prefixlen(a);
        struct nc_addr_info ai;

        if (!ifname[0] || !local)
            continue;
        /* The kernel makes IPv6 link-local addresses itself. */
        if (nl_addr_get_family(local) == AF_INET6 &&
            IN6_IS_ADDR_LINKLOCAL((const struct in6_addr *)nl_addr_get_binary_addr(local)))
            continue;
        memset(&ai, 0, sizeof(ai));
        snprintf(ai.ifname, sizeof(ai.ifname), "%s", ifname);
        nl_format(local, plen, ai.local, sizeof(ai.local));
        if (peer && nl_addr_cmp(peer, local) != 0)
            nl_format(peer, plen, ai.peer, sizeof(ai.peer));
        err = nc_state_push((void **)&st->addrs, &st->n_addrs, sizeof(ai), &ai);
        if (err < 0) {
            err = nc_fail(nc, err, "list addresses");
            goto out;
        }
    }
    err = 0;
out:
    nl_cache_free(cache);
    return err;
}
