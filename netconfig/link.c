/* Links: TUN creation, up/down, MTU, deletion, listing of owned links. */
#include <errno.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <netlink/attr.h>
#include <netlink/cache.h>
#include <netlink/msg.h>
#include <netlink/netlink.h>
#include <netlink/route/link.h>
#include <netlink/route/link/inet6.h>

#include "nc-private.h"

/*
 * A TUN carries IP for one peer whose addresses come over TLS: it needs no
 * IPv6 link-local address. Without one the device also adds no fe80::/64
 * route, and every such route of every tunnel shares one fib6 node, which
 * makes bringing up the 1000th tunnel slower than the first. Set while the
 * device is still down, before addrconf runs. The same message shortens
 * the device's queue to NC_TUN_TXQLEN (netconfig.h; a kernel without IPv6
 * gets the queue alone).
 */
static int no_linklocal(struct nc *nc, const char *name)
{
    struct rtnl_link *orig = NULL, *chg = NULL;
    struct nl_sock *sk;
    int ifindex, err;

    err = nc_rt_sock(nc, &sk);
    if (err < 0)
        return err;
    err = nc_ifindex(nc, name, &ifindex);
    if (err < 0)
        return err;
    orig = rtnl_link_alloc();
    chg = rtnl_link_alloc();
    if (!orig || !chg) {
        err = nc_fail(nc, -ENOMEM, "tun %s", name);
        goto out;
    }
    rtnl_link_set_ifindex(orig, ifindex);
    rtnl_link_set_name(orig, name);
    rtnl_link_set_txqlen(chg, NC_TUN_TXQLEN);
    err = rtnl_link_inet6_set_addr_gen_mode(chg, IN6_ADDR_GEN_MODE_NONE);
    if (err == 0) {
        nc_kerr_reset(nc);
        err = rtnl_link_change(sk, orig, chg, 0);
    }
    /* A kernel without IPv6 refuses it; that is fine: the queue alone. */
    if (err < 0 && (nc_nlerr(nc, err) == -EAFNOSUPPORT || nc_nlerr(nc, err) == -EOPNOTSUPP)) {
        rtnl_link_put(chg);
        if ((chg = rtnl_link_alloc()) == NULL) {
            err = nc_fail(nc, -ENOMEM, "tun %s", name);
            goto out;
        }
        rtnl_link_set_txqlen(chg, NC_TUN_TXQLEN);
        nc_kerr_reset(nc);
        err = rtnl_link_change(sk, orig, chg, 0);
        if (err < 0)
            err = nc_fail(nc, nc_nlerr(nc, err), "tun %s: txqueuelen", name);
        goto out;
    }
    if (err < 0)
        err = nc_fail(nc, nc_nlerr(nc, err), "tun %s: IPv6 address generation off", name);
out:
    rtnl_link_put(orig);
    rtnl_link_put(chg);
    return err;
}

static int tun_create(struct nc *nc, const char *name, short flags, int *fd_out)
{
    struct ifreq ifr;
    int fd = -1;
    int err;

    err = nc_check_owned(nc, name);
    if (err < 0)
        return err;
    if (nc->backend == NC_BACKEND_RECORD) {
        /* Callers get a real descriptor to hold and close. */
        fd = open("/dev/null", O_RDWR | O_CLOEXEC);
        if (fd < 0)
            return nc_fail(nc, -errno, "tun %s", name);
        err = nc_record(nc, "tun_create %s", name);
        goto out;
    }
    fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
    if (fd < 0) {
        err = nc_fail(nc, -errno, "tun %s: open /dev/net/tun", name);
        goto out;
    }
    memset(&ifr, 0, sizeof(ifr));
    /* No packet-info header; single queue; not TUNSETPERSIST: the device
     * dies with its last fd, so a crashed daemon leaves no tunnel behind. */
    ifr.ifr_flags = (short)(IFF_TUN | IFF_NO_PI | flags);
    memcpy(ifr.ifr_name, name, strlen(name));
    if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
        err = nc_fail(nc, -errno, "tun %s: TUNSETIFF", name);
        goto out;
    }
    err = no_linklocal(nc, name);
out:
    if (err < 0) {
        if (fd >= 0)
            close(fd);
    } else {
        *fd_out = fd;
    }
    return err;
}

int nc_tun_create(struct nc *nc, const char *name, int *fd_out)
{
    return tun_create(nc, name, 0, fd_out);
}

int nc_tun_create_vnet(struct nc *nc, const char *name, int *fd_out)
{
    return tun_create(nc, name, IFF_VNET_HDR, fd_out);
}

/* One RTM_NEWLINK on the link's index with only the changed fields. */
static int link_change(struct nc *nc, const char *name, int up, unsigned mtu, const char *what)
{
    struct rtnl_link *orig = NULL, *chg = NULL;
    struct nl_sock *sk;
    int ifindex, err;

    err = nc_check_owned(nc, name);
    if (err < 0)
        return err;
    if (nc->backend == NC_BACKEND_RECORD) {
        if (mtu)
            return nc_record(nc, "link_set_mtu %s %u", name, mtu);
        return nc_record(nc, "link_set_%s %s", up ? "up" : "down", name);
    }
    if (mtu && (mtu < 68 || mtu > 65535))
        return nc_fail(nc, -EINVAL, "%s %s: MTU %u out of range", what, name, mtu);
    err = nc_rt_sock(nc, &sk);
    if (err < 0)
        return err;
    err = nc_ifindex(nc, name, &ifindex);
    if (err < 0)
        return err;
    orig = rtnl_link_alloc();
    chg = rtnl_link_alloc();
    if (!orig || !chg) {
        err = nc_fail(nc, -ENOMEM, "%s %s", what, name);
        goto out;
    }
    rtnl_link_set_ifindex(orig, ifindex);
    rtnl_link_set_name(orig, name);
    if (mtu)
        rtnl_link_set_mtu(chg, mtu);
    else if (up)
        rtnl_link_set_flags(chg, IFF_UP);
    else
        rtnl_link_unset_flags(chg, IFF_UP);
    err = rtnl_link_change(sk, orig, chg, 0);
    if (err < 0)
        err = nc_fail(nc, nc_nlerr(nc, err), "%s %s", what, name);
out:
    rtnl_link_put(orig);
    rtnl_link_put(chg);
    return err;
}

int nc_link_set_up(struct nc *nc, const char *name)
{
    return link_change(nc, name, 1, 0, "link up");
}

int nc_link_set_down(struct nc *nc, const char *name)
{
    return link_change(nc, name, 0, 0, "link down");
}

int nc_link_set_mtu(struct nc *nc, const char *name, unsigned mtu)
{
    if (mtu == 0) {
        nc_kerr_reset(nc);
        return nc_fail(nc, -EINVAL, "link mtu %s: MTU 0", name ? name : "?");
    }
    return link_change(nc, name, 0, mtu, "link mtu");
}

int nc_link_del(struct nc *nc, const char *name)
{
    struct rtnl_link *link = NULL;
    struct nl_sock *sk;
    int err;

    err = nc_check_owned(nc, name);
    if (err < 0)
        return err;
    if (nc->backend == NC_BACKEND_RECORD)
        return nc_record(nc, "link_del %s", name);
    err = nc_rt_sock(nc, &sk);
    if (err < 0)
        return err;
    link = rtnl_link_alloc();
    if (!link)
        return nc_fail(nc, -ENOMEM, "link del %s", name);
    rtnl_link_set_name(link, name);
    err = rtnl_link_delete(sk, link);
    if (err < 0) {
        err = nc_nlerr(nc, err);
        /* Already gone is what the caller asked for. */
        if (err == -ENODEV)
            err = 0;
        else
            err = nc_fail(nc, err, "link del %s", name);
    }
    rtnl_link_put(link);
    return err;
}

/* Device groups tried for nc_links_del(); any that no other link uses. */
#define DOOMED_GROUP_BASE 0x6d746700u
#define DOOMED_GROUP_TRIES 64

/* 1 when a link outside names[] is in group g, 0 when none is. */
static int group_in_use(struct nc *nc, struct nl_sock *sk, uint32_t g, const char *const *names,
                        size_t n)
{
    struct nl_cache *cache = NULL;
    struct nl_object *obj;
    int used = 0, err;

    err = rtnl_link_alloc_cache(sk, AF_UNSPEC, &cache);
    if (err < 0)
        return nc_fail(nc, nc_nlerr(nc, err), "links del: list links");
    for (obj = nl_cache_get_first(cache); obj && !used; obj = nl_cache_get_next(obj)) {
        struct rtnl_link *l = (struct rtnl_link *)obj;
        const char *name = rtnl_link_get_name(l);
        bool listed = false;

        if (rtnl_link_get_group(l) != g)
            continue;
        for (size_t i = 0; i < n && !listed; i++)
            listed = name && !strcmp(name, names[i]);
        used = !listed;
    }
    nl_cache_free(cache);
    return used;
}

int nc_links_del(struct nc *nc, const char *const *names, size_t n)
{
    struct rtnl_link *orig = NULL, *chg = NULL;
    struct ifinfomsg ifi = { .ifi_family = AF_UNSPEC };
    struct nl_msg *msg = NULL;
    struct nl_sock *sk;
    uint32_t g = 0;
    size_t moved = 0;
    int err;

    nc_kerr_reset(nc);
    if (n && !names)
        return nc_fail(nc, -EINVAL, "links del: names missing");
    for (size_t i = 0; i < n; i++) {
        err = nc_check_owned(nc, names[i]);
        if (err < 0)
            return err;
    }
    if (nc->backend == NC_BACKEND_RECORD) {
        err = 0;
        for (size_t i = 0; !err && i < n; i++)
            err = nc_record(nc, "link_del %s", names[i]);
        return err;
    }
    if (n == 0)
        return 0;
    err = nc_rt_sock(nc, &sk);
    if (err < 0)
        return err;
    /* A group nobody else is in, so that deleting it deletes only ours. */
    for (unsigned t = 0; t < DOOMED_GROUP_TRIES; t++) {
        g = DOOMED_GROUP_BASE + ((uint32_t)getpid() + t) % 256u;
        err = group_in_use(nc, sk, g, names, n);
        if (err <= 0)
            break;
    }
    if (err != 0) {
        if (err > 0)
            err = nc_fail(nc, -EBUSY, "links del: no free device group");
        return err;
    }
    orig = rtnl_link_alloc();
    chg = rtnl_link_alloc();
    if (!orig || !chg) {
        err = nc_fail(nc, -ENOMEM, "links del");
        goto out;
    }
    rtnl_link_set_group(chg, g);
    for (size_t i = 0; i < n; i++) {
        unsigned idx = if_nametoindex(names[i]);

        if (!idx)
            continue; /* gone already */
        rtnl_link_set_ifindex(orig, (int)idx);
        rtnl_link_set_name(orig, names[i]);
        nc_kerr_reset(nc);
        err = rtnl_link_change(sk, orig, chg, 0);
        if (err < 0) {
            err = nc_nlerr(nc, err);
            if (err == -ENODEV)
                continue;
            err = nc_fail(nc, err, "links del %s: set group", names[i]);
            goto out;
        }
        moved++;
    }
    err = 0;
    if (moved == 0)
        goto out;
    msg = nlmsg_alloc_simple(RTM_DELLINK, 0);
    if (!msg || nlmsg_append(msg, &ifi, sizeof(ifi), NLMSG_ALIGNTO) < 0 ||
        nla_put_u32(msg, IFLA_GROUP, g) < 0) {
        err = nc_fail(nc, -ENOMEM, "links del");
        goto out;
    }
    nc_kerr_reset(nc);
    err = nl_send_sync(sk, msg); /* frees msg */
    msg = NULL;
    if (err < 0)
        err = nc_fail(nc, nc_nlerr(nc, err), "links del: delete group %u", g);
out:
    nlmsg_free(msg);
    rtnl_link_put(orig);
    rtnl_link_put(chg);
    return err;
}

int nc_links_list(struct nc *nc, struct nc_state *st)
{
    struct nl_cache *cache = NULL;
    struct nl_object *obj;
    struct nl_sock *sk;
    int err;

    err = nc_rt_sock(nc, &sk);
    if (err < 0)
        return err;
    err = rtnl_link_alloc_cache(sk, AF_UNSPEC, &cache);
    if (err < 0)
        return nc_fail(nc, nc_nlerr(nc, err), "list links");
    for (obj = nl_cache_get_first(cache); obj; obj = nl_cache_get_next(obj)) {
        struct rtnl_link *l = (struct rtnl_link *)obj;
        const char *name = rtnl_link_get_name(l);
        struct nc_link_info li;

        if (!name || !nc_name_owned(nc, name))
            continue;
        memset(&li, 0, sizeof(li));
        snprintf(li.name, sizeof(li.name), "%s", name);
        li.ifindex = rtnl_link_get_ifindex(l);
        li.mtu = rtnl_link_get_mtu(l);
        li.up = (rtnl_link_get_flags(l) & IFF_UP) != 0;
        err = nc_state_push((void **)&st->links, &st->n_links, sizeof(li), &li);
        if (err < 0) {
            err = nc_fail(nc, err, "list links");
            goto out;
        }
    }
    err = 0;
out:
    nl_cache_free(cache);
    return err;
}
