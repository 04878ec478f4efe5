/* Reconciliation: desired state against the kernel, and the fixes. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nc-private.h"

static int push(struct nc_diff *d, const struct nc_change *c)
{
    return nc_state_push((void **)&d->changes, &d->n, sizeof(*c), c);
}

static const struct nc_link_info *find_link(const struct nc_state *st, const char *name)
{
    for (size_t i = 0; i < st->n_links; i++) {
        if (!strcmp(st->links[i].name, name))
            return &st->links[i];
    }
    return NULL;
}

static bool addr_eq(const struct nc_addr_info *a, const struct nc_addr_info *b)
{
    return !strcmp(a->ifname, b->ifname) && !strcmp(a->local, b->local) &&
           !strcmp(a->peer, b->peer);
}

static bool route_eq(const struct nc_route_info *a, const struct nc_route_info *b)
{
    return !strcmp(a->ifname, b->ifname) && !strcmp(a->dst, b->dst) &&
           a->metric == b->metric && a->table == b->table;
}

static bool allow_eq(const struct nc_allow_info *a, const struct nc_allow_info *b)
{
    return !strcmp(a->ifname, b->ifname) && !strcmp(a->prefix, b->prefix);
}

/* Addresses and routes of a link that goes away go with it. */
static bool link_leaving(const struct nc_state *want, const char *ifname)
{
    return find_link(want, ifname) == NULL;
}

#define DIFF_LIST(arr, n_arr, EQ, KIND, FIELD)                                               \
    do {                                                                                     \
        for (size_t i = 0; !err && i < want->n_arr; i++) {                                   \
            bool found = false;                                                              \
            for (size_t j = 0; !found && j < have->n_arr; j++)                               \
                found = EQ(&want->arr[i], &have->arr[j]);                                    \
            if (!found) {                                                                    \
                struct nc_change c = { .op = NC_CHANGE_ADD, .kind = KIND };                  \
                c.FIELD = want->arr[i];                                                      \
                err = push(d, &c);                                                           \
            }                                                                                \
        }                                                                                    \
        for (size_t j = 0; !err && j < have->n_arr; j++) {                                   \
            bool found = false;                                                              \
            if (link_leaving(want, have->arr[j].ifname))                                     \
                continue;                                                                    \
            for (size_t i = 0; !found && i < want->n_arr; i++)                               \
                found = EQ(&want->arr[i], &have->arr[j]);                                    \
            if (!found) {                                                                    \
                struct nc_change c = { .op = NC_CHANGE_DEL, .kind = KIND };                  \
                c.FIELD = have->arr[j];                                                      \
                err = push(d, &c);                                                           \
            }                                                                                \
        }                                                                                    \
    } while (0)

static int diff_prefixes(const struct nc_allow_info *want, size_t n_want,
                         const struct nc_allow_info *have, size_t n_have,
                         enum nc_change_kind kind, struct nc_diff *d)
{
    int err = 0;

    for (size_t i = 0; !err && i < n_want; i++) {
        bool found = false;

        for (size_t j = 0; !found && j < n_have; j++)
            found = allow_eq(&want[i], &have[j]);
        if (!found) {
            struct nc_change c = { .op = NC_CHANGE_ADD, .kind = kind };

            c.allow = want[i];
            err = push(d, &c);
        }
    }
    for (size_t j = 0; !err && j < n_have; j++) {
        bool found = false;

        for (size_t i = 0; !found && i < n_want; i++)
            found = allow_eq(&want[i], &have[j]);
        if (!found) {
            struct nc_change c = { .op = NC_CHANGE_DEL, .kind = kind };

            c.allow = have[j];
            err = push(d, &c);
        }
    }
    return err;
}

static int diff_fw(const struct nc_state *want, const struct nc_state *have, struct nc_diff *d)
{
    int err = 0;

    if (!want->fw_installed)
        return 0;
    if (!have->fw_installed) {
        struct nc_change c = { .op = NC_CHANGE_ADD, .kind = NC_KIND_FW_TABLE };

        err = push(d, &c);
    }
    for (size_t i = 0; !err && i < want->n_trusted; i++) {
        bool found = false;

        for (size_t j = 0; !found && j < have->n_trusted; j++)
            found = !strcmp(want->trusted[i], have->trusted[j]);
        if (!found) {
            struct nc_change c = { .op = NC_CHANGE_ADD, .kind = NC_KIND_TRUSTED };

            memcpy(c.allow.ifname, want->trusted[i], NC_IFNAMSIZ);
            err = push(d, &c);
        }
    }
    for (size_t j = 0; !err && j < have->n_trusted; j++) {
        bool found = false;

        for (size_t i = 0; !found && i < want->n_trusted; i++)
            found = !strcmp(want->trusted[i], have->trusted[j]);
        if (!found) {
            struct nc_change c = { .op = NC_CHANGE_DEL, .kind = NC_KIND_TRUSTED };

            memcpy(c.allow.ifname, have->trusted[j], NC_IFNAMSIZ);
            err = push(d, &c);
        }
    }
    /* Allowed and source prefixes are compared whole, not per link. */
    if (!err)
        err = diff_prefixes(want->allowed, want->n_allowed, have->allowed, have->n_allowed,
                            NC_KIND_ALLOWED, d);
    if (!err)
        err = diff_prefixes(want->sources, want->n_sources, have->sources, have->n_sources,
                            NC_KIND_SOURCE, d);
    return err;
}

static int diff_states(const struct nc_state *want, const struct nc_state *have,
                       struct nc_diff *d)
{
    int err = 0;

    for (size_t i = 0; !err && i < want->n_links; i++) {
        const struct nc_link_info *h = find_link(have, want->links[i].name);
        struct nc_change c = { .kind = NC_KIND_LINK };

        c.link = want->links[i];
        if (!h) {
            c.op = NC_CHANGE_ADD;
            err = push(d, &c);
        } else if (h->up != want->links[i].up ||
                   (want->links[i].mtu && h->mtu != want->links[i].mtu)) {
            c.op = NC_CHANGE_FIX;
            c.link.ifindex = h->ifindex;
            err = push(d, &c);
        }
    }
    for (size_t j = 0; !err && j < have->n_links; j++) {
        if (!find_link(want, have->links[j].name)) {
            struct nc_change c = { .op = NC_CHANGE_DEL, .kind = NC_KIND_LINK };

            c.link = have->links[j];
            err = push(d, &c);
        }
    }
    DIFF_LIST(addrs, n_addrs, addr_eq, NC_KIND_ADDR, addr);
    DIFF_LIST(routes, n_routes, route_eq, NC_KIND_ROUTE, route);
    if (!err)
        err = diff_fw(want, have, d);
    return err;
}

int nc_reconcile_diff(struct nc *nc, const struct nc_state *desired, struct nc_diff **out)
{
    struct nc_state *have = NULL;
    struct nc_diff *d = NULL;
    int err;

    if (!desired)
        return nc_fail(nc, -EINVAL, "reconcile: no desired state");
    for (size_t i = 0; i < desired->n_links; i++) {
        err = nc_check_owned(nc, desired->links[i].name);
        if (err < 0)
            return err;
    }
    d = calloc(1, sizeof(*d));
    if (!d)
        return nc_fail(nc, -ENOMEM, "reconcile");
    err = nc_owned_list(nc, &have);
    if (err < 0)
        goto out;
    if (nc->backend == NC_BACKEND_RECORD)
        /* Nothing is recorded as being there: everything is to add. */
        have->fw_installed = false;
    err = diff_states(desired, have, d);
    if (err < 0)
        err = nc_fail(nc, err, "reconcile");
out:
    nc_state_free(have);
    if (err < 0)
        nc_diff_free(d);
    else
        *out = d;
    return err;
}

void nc_diff_free(struct nc_diff *diff)
{
    if (!diff)
        return;
    free(diff->changes);
    free(diff);
}

static int apply_one(struct nc *nc, const struct nc_change *c)
{
    bool add = c->op == NC_CHANGE_ADD;
    const char *peer;

    switch (c->kind) {
    case NC_KIND_FW_TABLE:
        return nc_fw_install(nc, NULL);
    case NC_KIND_LINK:
        if (c->op == NC_CHANGE_DEL)
            return nc_link_del(nc, c->link.name);
        if (add)
            /* A TUN lives by its fd, which only the caller can hold. */
            return nc_fail(nc, -ENODEV, "reconcile: link %s is missing: create it again",
                           c->link.name);
        if (c->link.mtu) {
            int err = nc_link_set_mtu(nc, c->link.name, c->link.mtu);

            if (err < 0)
                return err;
        }
        return c->link.up ? nc_link_set_up(nc, c->link.name)
                          : nc_link_set_down(nc, c->link.name);
    case NC_KIND_ADDR:
        peer = c->addr.peer[0] ? c->addr.peer : NULL;
        return add ? nc_addr_add(nc, c->addr.ifname, c->addr.local, peer)
                   : nc_addr_del(nc, c->addr.ifname, c->addr.local, peer);
    case NC_KIND_ROUTE:
        return add ? nc_route_add(nc, c->route.dst, c->route.ifname, c->route.metric,
                                  c->route.table)
                   : nc_route_del(nc, c->route.dst, c->route.ifname, c->route.metric,
                                  c->route.table);
    case NC_KIND_TRUSTED:
        /* Restored trust carries no timeout: the caller refreshes it with
         * its own when it re-trusts. */
        return add ? nc_fw_trust_iface(nc, c->allow.ifname, 0)
                   : nc_fw_untrust_iface(nc, c->allow.ifname);
    case NC_KIND_ALLOWED: {
        const char *p = c->allow.prefix;

        return add ? nc_fw_allow_prefixes(nc, c->allow.ifname, &p, 1)
                   : nc_fw_disallow_prefixes(nc, c->allow.ifname, &p, 1);
    }
    case NC_KIND_SOURCE: {
        const char *p = c->allow.prefix;

        return add ? nc_fw_allow_sources(nc, c->allow.ifname, &p, 1)
                   : nc_fw_disallow_sources(nc, c->allow.ifname, &p, 1);
    }
    }
    return -EINVAL;
}

int nc_reconcile_apply(struct nc *nc, const struct nc_diff *diff)
{
    char first[sizeof(nc->err)] = "";
    int first_err = 0;

    /* Deletions first so that a replaced prefix or route never clashes
     * with its old self; the table before its elements. */
    for (int pass = 0; pass < 3; pass++) {
        for (size_t i = 0; i < diff->n; i++) {
            const struct nc_change *c = &diff->changes[i];
            int want_pass = c->kind == NC_KIND_FW_TABLE ? 0 : c->op == NC_CHANGE_DEL ? 1 : 2;
            int err;

            if (want_pass != pass)
                continue;
            err = apply_one(nc, c);
            if (err < 0 && !first_err) {
                first_err = err;
                memcpy(first, nc->err, sizeof(first));
            }
        }
    }
    if (first_err)
        memcpy(nc->err, first, sizeof(first));
    return first_err;
}

int nc_change_format(const struct nc_change *c, char *buf, size_t len)
{
    const char op = c->op == NC_CHANGE_ADD ? '+' : c->op == NC_CHANGE_DEL ? '-' : '~';
    int n = -1;

    switch (c->kind) {
    case NC_KIND_FW_TABLE:
        n = snprintf(buf, len, "%ctable inet mtlsgw", op);
        break;
    case NC_KIND_LINK:
        n = snprintf(buf, len, "%clink %s mtu %u %s", op, c->link.name, c->link.mtu,
                     c->link.up ? "up" : "down");
        break;
    case NC_KIND_ADDR:
        n = snprintf(buf, len, "%caddr %s dev %s%s%s", op, c->addr.local, c->addr.ifname,
                     c->addr.peer[0] ? " peer " : "", c->addr.peer);
        break;
    case NC_KIND_ROUTE:
        n = snprintf(buf, len, "%croute %s dev %s metric %u table %u", op, c->route.dst,
                     c->route.ifname, c->route.metric, c->route.table);
        break;
    case NC_KIND_TRUSTED:
        n = snprintf(buf, len, "%ctrusted %s", op, c->allow.ifname);
        break;
    case NC_KIND_ALLOWED:
        n = snprintf(buf, len, "%callowed %s %s", op, c->allow.ifname, c->allow.prefix);
        break;
    case NC_KIND_SOURCE:
        n = snprintf(buf, len, "%csource %s %s", op, c->allow.ifname, c->allow.prefix);
        break;
    }
    return n < 0 ? -EINVAL : n;
}
