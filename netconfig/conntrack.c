/* Conntrack flush: the flows of a revoked peer die with its trust. */
#include <errno.h>
#include <stdlib.h>

#include <netlink/addr.h>
#include <netlink/cache.h>
#include <netlink/netfilter/ct.h>
#include <netlink/netlink.h>

#include "nc-private.h"

static bool ct_matches(struct nfnl_ct *ct, const struct nc_prefix *ps, size_t n)
{
    for (int repl = 0; repl <= 1; repl++) {
        struct nl_addr *ends[2] = { nfnl_ct_get_src(ct, repl), nfnl_ct_get_dst(ct, repl) };

        for (int e = 0; e < 2; e++) {
            if (!ends[e])
                continue;
            for (size_t i = 0; i < n; i++) {
                if (nc_prefix_contains(&ps[i], nl_addr_get_family(ends[e]),
                                       nl_addr_get_binary_addr(ends[e])))
                    return true;
            }
        }
    }
    return false;
}

int nc_conntrack_flush(struct nc *nc, const char *const *prefixes, size_t n,
                       unsigned *n_deleted)
{
    struct nl_cache *cache = NULL;
    struct nc_prefix *ps = NULL;
    struct nl_object *obj;
    struct nl_sock *sk;
    unsigned count = 0;
    int err;

    nc_kerr_reset(nc);
    if (n == 0 || !prefixes)
        return nc_fail(nc, -EINVAL, "conntrack flush: no prefixes");
    ps = calloc(n, sizeof(*ps));
    if (!ps)
        return nc_fail(nc, -ENOMEM, "conntrack flush");
    for (size_t i = 0; i < n; i++) {
        if (nc_prefix_parse(prefixes[i], &ps[i]) < 0) {
            err = nc_fail(nc, -EINVAL, "conntrack flush: \"%s\" is not a prefix",
                          prefixes[i] ? prefixes[i] : "(null)");
            goto out;
        }
        nc_prefix_mask(&ps[i]);
    }
    if (nc->backend == NC_BACKEND_RECORD) {
        err = 0;
        for (size_t i = 0; !err && i < n; i++) {
            char t[NC_ADDRSTRLEN];

            nc_prefix_format(&ps[i], true, t, sizeof(t));
            err = nc_record(nc, "conntrack_flush %s", t);
        }
        goto out;
    }
    err = nc_ct_sock(nc, &sk);
    if (err < 0)
        goto out;
    /* The kernel cannot filter a conntrack dump by prefix on every version
     * we support, so read it all and delete the matches one by one. */
    err = nfnl_ct_alloc_cache(sk, &cache);
    if (err < 0) {
        err = nc_nlerr(nc, err);
        /* No conntrack in this namespace: nothing to flush. */
        if (err == -ENOENT || err == -EOPNOTSUPP || err == -EPROTONOSUPPORT)
            err = 0;
        else
            err = nc_fail(nc, err, "conntrack flush: dump");
        goto out;
    }
    for (obj = nl_cache_get_first(cache); obj; obj = nl_cache_get_next(obj)) {
        struct nfnl_ct *ct = (struct nfnl_ct *)obj;

        if (!ct_matches(ct, ps, n))
            continue;
        nc_kerr_reset(nc);
        err = nfnl_ct_del(sk, ct, 0);
        if (err < 0) {
            err = nc_nlerr(nc, err);
            if (err == -ENOENT) { /* it timed out meanwhile */
                err = 0;
                continue;
            }
            err = nc_fail(nc, err, "conntrack flush: delete");
            goto out;
        }
        count++;
    }
    err = 0;
out:
    if (err == 0 && n_deleted)
        *n_deleted = count;
    if (cache)
        nl_cache_free(cache);
    free(ps);
    return err;
}
