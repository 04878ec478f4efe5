/*
 * rtnetlink notifications about owned links, so that a route or address of
 * ours removed by someone else is seen (and restored if the caller wants).
 */
#include <errno.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <netlink/addr.h>
#include <netlink/errno.h>
#include <netlink/msg.h>
#include <netlink/netlink.h>
#include <netlink/route/addr.h>
#include <netlink/route/link.h>
#include <netlink/route/route.h>
#include <netlink/socket.h>

#include "nc-private.h"

struct mon_ctx {
    struct nc *nc;
    nc_event_fn *fn;
    void *arg;
    int type; /* RTM_* of the message being parsed */
    int err;
};

static void cache_put(struct nc *nc, int ifindex, const char *name)
{
    struct nc_ifcache e = { .ifindex = ifindex };

    for (size_t i = 0; i < nc->n_ifc; i++) {
        if (nc->ifc[i].ifindex == ifindex) {
            snprintf(nc->ifc[i].name, sizeof(nc->ifc[i].name), "%s", name);
            return;
        }
    }
    snprintf(e.name, sizeof(e.name), "%s", name);
    /* Losing a cache entry only costs a name on a later deletion. */
    (void)nc_state_push((void **)&nc->ifc, &nc->n_ifc, sizeof(e), &e);
}

static void cache_drop(struct nc *nc, int ifindex)
{
    for (size_t i = 0; i < nc->n_ifc; i++) {
        if (nc->ifc[i].ifindex == ifindex) {
            nc->ifc[i] = nc->ifc[nc->n_ifc - 1];
            nc->n_ifc--;
            return;
        }
    }
}

/* Name of an owned link by index, "" when it is not ours. */
static void owned_name(struct nc *nc, int ifindex, char name[NC_IFNAMSIZ])
{
    char buf[IF_NAMESIZE];

    name[0] = '\0';
    for (size_t i = 0; i < nc->n_ifc; i++) {
        if (nc->ifc[i].ifindex == ifindex) {
            snprintf(name, NC_IFNAMSIZ, "%s", nc->ifc[i].name);
            return;
        }
    }
    if (if_indextoname((unsigned)ifindex, buf) && nc_name_owned(nc, buf)) {
        snprintf(name, NC_IFNAMSIZ, "%s", buf);
        cache_put(nc, ifindex, buf);
    }
}

static void on_link(struct mon_ctx *ctx, struct rtnl_link *l)
{
    const char *name = rtnl_link_get_name(l);
    struct nc_event ev;

    if (!name || !nc_name_owned(ctx->nc, name))
        return;
    memset(&ev, 0, sizeof(ev));
    ev.type = ctx->type == RTM_DELLINK ? NC_EVENT_LINK_DEL : NC_EVENT_LINK_NEW;
    snprintf(ev.link.name, sizeof(ev.link.name), "%s", name);
    ev.link.ifindex = rtnl_link_get_ifindex(l);
    ev.link.mtu = rtnl_link_get_mtu(l);
    ev.link.up = (rtnl_link_get_flags(l) & IFF_UP) != 0;
    if (ctx->type == RTM_DELLINK)
        cache_drop(ctx->nc, ev.link.ifindex);
    else
        cache_put(ctx->nc, ev.link.ifindex, name);
    ctx->fn(&ev, ctx->arg);
}

static void on_addr(struct mon_ctx *ctx, struct rtnl_addr *a)
{
    struct nl_addr *local = rtnl_addr_get_local(a);
    struct nl_addr *peer = rtnl_addr_get_peer(a);
    char name[NC_IFNAMSIZ];
    struct nc_prefix p;
    struct nc_event ev;

    if (!local)
        return;
    owned_name(ctx->nc, rtnl_addr_get_ifindex(a), name);
    if (!name[0])
        return;
    memset(&p, 0, sizeof(p));
    p.family = nl_addr_get_family(local);
    memcpy(p.addr, nl_addr_get_binary_addr(local), p.family == AF_INET ? 4 : 16);
    if (p.family == AF_INET6 && IN6_IS_ADDR_LINKLOCAL((const struct in6_addr *)p.addr))
        return;
    p.len = (unsigned)rtnl_addr_get_prefixlen(a);
    memset(&ev, 0, sizeof(ev));
    ev.type = ctx->type == RTM_DELADDR ? NC_EVENT_ADDR_DEL : NC_EVENT_ADDR_NEW;
    snprintf(ev.addr.ifname, sizeof(ev.addr.ifname), "%s", name);
    nc_prefix_format(&p, true, ev.addr.local, sizeof(ev.addr.local));
    if (peer && nl_addr_cmp(peer, local) != 0) {
        memcpy(p.addr, nl_addr_get_binary_addr(peer), p.family == AF_INET ? 4 : 16);
        nc_prefix_format(&p, true, ev.addr.peer, sizeof(ev.addr.peer));
    }
    ctx->fn(&ev, ctx->arg);
}

static void on_route(struct mon_ctx *ctx, struct rtnl_route *r)
{
    char name[NC_IFNAMSIZ];
    struct nc_event ev;

    if (!nc_route_ours(r))
        return;
    owned_name(ctx->nc, rtnl_route_nh_get_ifindex(rtnl_route_nexthop_n(r, 0)), name);
    if (!name[0])
        return;
    memset(&ev, 0, sizeof(ev));
    ev.type = ctx->type == RTM_DELROUTE ? NC_EVENT_ROUTE_DEL : NC_EVENT_ROUTE_NEW;
    nc_route_info_fill(r, name, &ev.route);
    ctx->fn(&ev, ctx->arg);
}

static void parse_obj(struct nl_object *obj, void *arg)
{
    struct mon_ctx *ctx = arg;

    switch (ctx->type) {
    case RTM_NEWLINK:
    case RTM_DELLINK:
        on_link(ctx, (struct rtnl_link *)obj);
        break;
    case RTM_NEWADDR:
    case RTM_DELADDR:
        on_addr(ctx, (struct rtnl_addr *)obj);
        break;
    case RTM_NEWROUTE:
    case RTM_DELROUTE:
        on_route(ctx, (struct rtnl_route *)obj);
        break;
    }
}

static int on_msg(struct nl_msg *msg, void *arg)
{
    struct mon_ctx *ctx = arg;

    ctx->type = nlmsg_hdr(msg)->nlmsg_type;
    /* A message libnl cannot parse is not about anything we own. */
    (void)nl_msg_parse(msg, parse_obj, ctx);
    return NL_OK;
}

int nc_monitor_fd(struct nc *nc, int *fd_out)
{
    struct nl_sock *sk = NULL;
    int err;

    nc_kerr_reset(nc);
    if (nc->backend == NC_BACKEND_RECORD)
        return nc_fail(nc, -EOPNOTSUPP, "monitor: the recording backend has no kernel");
    if (nc->mon) {
        *fd_out = nl_socket_get_fd(nc->mon);
        return 0;
    }
    sk = nl_socket_alloc();
    if (!sk)
        return nc_fail(nc, -ENOMEM, "monitor");
    nl_socket_disable_seq_check(sk);
    err = nl_connect(sk, NETLINK_ROUTE);
    if (err >= 0)
        err = nl_socket_add_memberships(sk, RTNLGRP_LINK, RTNLGRP_IPV4_IFADDR,
                                        RTNLGRP_IPV6_IFADDR, RTNLGRP_IPV4_ROUTE,
                                        RTNLGRP_IPV6_ROUTE, 0);
    if (err >= 0)
        err = nl_socket_set_nonblocking(sk);
    if (err < 0) {
        err = nc_fail(nc, nc_nlerr(nc, err), "monitor");
        goto out;
    }
    /* Room for a burst of notifications (a peer's teardown is several). */
    (void)nl_socket_set_buffer_size(sk, 1 << 20, 0);
    nc->mon = sk;
    sk = NULL;
    *fd_out = nl_socket_get_fd(nc->mon);
out:
    if (sk)
        nl_socket_free(sk);
    return err < 0 ? err : 0;
}

int nc_monitor_dispatch(struct nc *nc, nc_event_fn *fn, void *arg)
{
    struct mon_ctx ctx = { nc, fn, arg, 0, 0 };
    struct nl_cb *cb = NULL;
    int n;

    nc_kerr_reset(nc);
    if (!nc->mon || !fn)
        return nc_fail(nc, -EINVAL, "monitor dispatch: no monitor fd");
    cb = nl_cb_clone(nl_socket_get_cb(nc->mon));
    if (!cb)
        return nc_fail(nc, -ENOMEM, "monitor dispatch");
    nl_cb_set(cb, NL_CB_VALID, NL_CB_CUSTOM, on_msg, &ctx);
    while ((n = nl_recvmsgs_report(nc->mon, cb)) > 0)
        ;
    nl_cb_put(cb);
    if (n == -NLE_AGAIN) /* drained */
        n = 0;
    if (n < 0) {
        /* libnl folds ENOBUFS, the overrun the caller must act on, into
         * NLE_NOMEM. */
        int err = -n == NLE_NOMEM ? -ENOBUFS : nc_nlerr(nc, n);

        return nc_fail(nc, err, "monitor: notifications lost, reconcile");
    }
    return 0;
}
