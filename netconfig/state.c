/* States: what the library owns in the kernel, or what a caller wants. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nc-private.h"

int nc_state_new(struct nc_state **out)
{
    struct nc_state *st = calloc(1, sizeof(*st));

    if (!st)
        return -ENOMEM;
    *out = st;
    return 0;
}

void nc_state_free(struct nc_state *st)
{
    if (!st)
        return;
    free(st->links);
    free(st->addrs);
    free(st->routes);
    free(st->trusted);
    free(st->allowed);
    free(st->sources);
    free(st);
}

int nc_state_push(void **arr, size_t *n, size_t size, const void *item)
{
    /* Grow by doubling: capacity is the next power of two above n. */
    size_t cap = 4;
    char *p;

    while (cap < *n + 1)
        cap *= 2;
    if (*n == 0 || (*n >= 4 && (*n & (*n - 1)) == 0)) {
        p = realloc(*arr, cap * size);
        if (!p)
            return -ENOMEM;
        *arr = p;
    }
    memcpy((char *)*arr + *n * size, item, size);
    (*n)++;
    return 0;
}

const char *nc_state_ifname(const struct nc_state *st, int ifindex)
{
    for (size_t i = 0; i < st->n_links; i++) {
        if (st->links[i].ifindex == ifindex)
            return st->links[i].name;
    }
    return "";
}

int nc_state_add_link(struct nc_state *st, const char *name, unsigned mtu, bool up)
{
    struct nc_link_info li;

    if (!name || !nc_ifname_valid(name))
        return -EINVAL;
    memset(&li, 0, sizeof(li));
    snprintf(li.name, sizeof(li.name), "%s", name);
    li.mtu = mtu;
    li.up = up;
    return nc_state_push((void **)&st->links, &st->n_links, sizeof(li), &li);
}

int nc_state_add_addr(struct nc_state *st, const char *ifname, const char *local,
                      const char *peer)
{
    struct nc_prefix lp, pp;
    struct nc_addr_info ai;

    if (!ifname || !nc_ifname_valid(ifname) || nc_addr_norm(local, peer, &lp, &pp) < 0)
        return -EINVAL;
    memset(&ai, 0, sizeof(ai));
    snprintf(ai.ifname, sizeof(ai.ifname), "%s", ifname);
    nc_prefix_format(&lp, true, ai.local, sizeof(ai.local));
    if (pp.family)
        nc_prefix_format(&pp, true, ai.peer, sizeof(ai.peer));
    return nc_state_push((void **)&st->addrs, &st->n_addrs, sizeof(ai), &ai);
}

int nc_state_add_route(struct nc_state *st, const char *dst, const char *ifname,
                       uint32_t metric, uint32_t table)
{
    struct nc_route_info ri;
    struct nc_prefix p;

    if (!ifname || !nc_ifname_valid(ifname) || nc_prefix_parse(dst, &p) < 0)
        return -EINVAL;
    nc_prefix_mask(&p);
    memset(&ri, 0, sizeof(ri));
    nc_prefix_format(&p, true, ri.dst, sizeof(ri.dst));
    snprintf(ri.ifname, sizeof(ri.ifname), "%s", ifname);
    ri.metric = metric;
    ri.table = table ? table : 254;
    return nc_state_push((void **)&st->routes, &st->n_routes, sizeof(ri), &ri);
}

int nc_state_add_trusted(struct nc_state *st, const char *ifname)
{
    char name[NC_IFNAMSIZ];

    if (!ifname || !nc_ifname_valid(ifname))
        return -EINVAL;
    memset(name, 0, sizeof(name));
    snprintf(name, sizeof(name), "%s", ifname);
    st->fw_installed = true;
    return nc_state_push((void **)&st->trusted, &st->n_trusted, sizeof(name), name);
}

static int add_prefix(struct nc_state *st, struct nc_allow_info **arr, size_t *n,
                      const char *ifname, const char *prefix)
{
    struct nc_allow_info ai;
    struct nc_prefix p;

    if (!ifname || !nc_ifname_valid(ifname) || nc_prefix_parse(prefix, &p) < 0)
        return -EINVAL;
    nc_prefix_mask(&p);
    memset(&ai, 0, sizeof(ai));
    snprintf(ai.ifname, sizeof(ai.ifname), "%s", ifname);
    nc_prefix_format(&p, true, ai.prefix, sizeof(ai.prefix));
    st->fw_installed = true;
    return nc_state_push((void **)arr, n, sizeof(ai), &ai);
}

int nc_state_add_allowed(struct nc_state *st, const char *ifname, const char *prefix)
{
    return add_prefix(st, &st->allowed, &st->n_allowed, ifname, prefix);
}

int nc_state_add_source(struct nc_state *st, const char *ifname, const char *prefix)
{
    return add_prefix(st, &st->sources, &st->n_sources, ifname, prefix);
}

int nc_owned_list(struct nc *nc, struct nc_state **out)
{
    struct nc_state *st = NULL;
    int err;

    nc_kerr_reset(nc);
    err = nc_state_new(&st);
    if (err < 0)
        return nc_fail(nc, err, "list owned state");
    if (nc->backend == NC_BACKEND_RECORD) {
        err = nc_record(nc, "owned_list");
        goto out;
    }
    err = nc_links_list(nc, st);
    if (err < 0)
        goto out;
    err = nc_addrs_list(nc, st);
    if (err < 0)
        goto out;
    err = nc_routes_list(nc, st);
    if (err < 0)
        goto out;
    err = nc_fw_read(nc, st);
out:
    if (err < 0)
        nc_state_free(st);
    else
        *out = st;
    return err;
}
