/* Links: TUN creation, up/down, MTU, deletion, listing of owned links. */
#include <errno.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <netlink/cache.h>
#include <netlink/netlink.h>
#include <netlink/route/link.h>

#include "nc-private.h"

int nc_tun_create(struct nc *nc, const char *name, int *fd_out)
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
    ifr.ifr_flags = IFF_TUN | IFF_NO_PI;
    memcpy(ifr.ifr_name, name, strlen(name));
    if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
        err = nc_fail(nc, -errno, "tun %s: TUNSETIFF", name);
        goto out;
    }
    err = 0;
out:
    if (err < 0) {
        if (fd >= 0)
            close(fd);
    } else {
        *fd_out = fd;
    }
    return err;
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
