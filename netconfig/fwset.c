/*
 * Elements of the table's sets: trusted interfaces, per-peer allowed
 * prefixes and source prefixes, gate openings. Each operation is one
 * transaction.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netlink.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libnftnl/set.h>

#include "nc-private.h"
#include "nft.h"

int nc_elems_new(enum nc_set_id id, struct nftnl_set **out)
{
    struct nftnl_set *s = nftnl_set_alloc();

    if (!s)
        return -ENOMEM;
    nftnl_set_set_str(s, NFTNL_SET_TABLE, NC_TABLE);
    nftnl_set_set_str(s, NFTNL_SET_NAME, nc_sets[id].name);
    nftnl_set_set_u32(s, NFTNL_SET_FAMILY, NFPROTO_INET);
    nftnl_set_set_u32(s, NFTNL_SET_KEY_LEN, nc_sets[id].key_len);
    /* Lets elements name a set created earlier in the same batch. */
    nftnl_set_set_u32(s, NFTNL_SET_ID, (uint32_t)id + 1);
    *out = s;
    return 0;
}

int nc_elems_add(struct nftnl_set *s, const void *key, const void *key_end,
                 uint32_t timeout_ms)
{
    struct nftnl_set_elem *e = nftnl_set_elem_alloc();
    uint32_t len = nftnl_set_get_u32(s, NFTNL_SET_KEY_LEN);

    if (!e)
        return -ENOMEM;
    nftnl_set_elem_set(e, NFTNL_SET_ELEM_KEY, key, len);
    if (key_end)
        nftnl_set_elem_set(e, NFTNL_SET_ELEM_KEY_END, key_end, len);
    if (timeout_ms)
        nftnl_set_elem_set_u64(e, NFTNL_SET_ELEM_TIMEOUT, timeout_ms);
    nftnl_set_elem_add(s, e);
    return 0;
}

void nc_elems_msg(struct nc_batch *b, struct nftnl_set *s, uint16_t type)
{
    struct nlmsghdr *nlh = nc_batch_msg(b, type, type == NFT_MSG_NEWSETELEM ? NLM_F_CREATE : 0);

    nftnl_set_elems_nlmsg_build_payload(nlh, s);
    nc_batch_next(b);
}

static void ifname_key(const char *ifname, uint8_t key[NC_IFNAMSIZ])
{
    memset(key, 0, NC_IFNAMSIZ);
    memcpy(key, ifname, strlen(ifname));
}

/*
 * Add (a no-op when present), delete, add again with the new timeout, or
 * add then delete: either way one transaction that succeeds whether or not
 * the element was there, and refreshes its timeout on every kernel (newer
 * ones also update it in place, older ones ignore a re-add).
 */
static int set_one(struct nc *nc, enum nc_set_id id, const void *key, bool add,
                   uint32_t timeout_ms, const char *what)
{
    struct nftnl_set *with = NULL, *without = NULL;
    struct nc_batch b = { 0 };
    int err;

    err = nc_batch_begin(nc, &b);
    if (!err)
        err = nc_elems_new(id, &with);
    if (!err)
        err = nc_elems_new(id, &without);
    if (!err)
        err = nc_elems_add(with, key, NULL, timeout_ms);
    if (!err)
        err = nc_elems_add(without, key, NULL, 0);
    if (err < 0) {
        err = nc_fail(nc, err, "%s", what);
        goto out;
    }
    nc_elems_msg(&b, add ? with : without, NFT_MSG_NEWSETELEM);
    nc_elems_msg(&b, without, NFT_MSG_DELSETELEM);
    if (add)
        nc_elems_msg(&b, with, NFT_MSG_NEWSETELEM);
    err = nc_batch_commit(&b, what);
    if (err == -ENOENT && !nc->kmsg[0])
        nc_fail(nc, err, "%s: table inet %s is not installed", what, NC_TABLE);
out:
    if (with)
        nftnl_set_free(with);
    if (without)
        nftnl_set_free(without);
    nc_batch_free(&b);
    return err;
}

int nc_fw_trust_iface(struct nc *nc, const char *ifname, uint32_t timeout_ms)
{
    uint8_t key[NC_IFNAMSIZ];
    char what[64];
    int err;

    err = nc_check_owned(nc, ifname);
    if (err < 0)
        return err;
    if (nc->backend == NC_BACKEND_RECORD)
        return nc_record(nc, "fw_trust %s timeout %u", ifname, timeout_ms);
    snprintf(what, sizeof(what), "firewall trust %s", ifname);
    ifname_key(ifname, key);
    return set_one(nc, NC_SET_TRUSTED, key, true, timeout_ms, what);
}

int nc_fw_untrust_iface(struct nc *nc, const char *ifname)
{
    uint8_t key[NC_IFNAMSIZ];
    char what[64];
    int err;

    err = nc_check_owned(nc, ifname);
    if (err < 0)
        return err;
    if (nc->backend == NC_BACKEND_RECORD)
        return nc_record(nc, "fw_untrust %s", ifname);
    snprintf(what, sizeof(what), "firewall untrust %s", ifname);
    ifname_key(ifname, key);
    return set_one(nc, NC_SET_TRUSTED, key, false, 0, what);
}

static int gate(struct nc *nc, const char *addr, uint32_t timeout_ms, bool open)
{
    const char *verb = open ? "open" : "close";
    struct nc_prefix p;
    char what[96];

    nc_kerr_reset(nc);
    if (nc_prefix_parse(addr, &p) < 0 || p.len != (p.family == AF_INET ? 32u : 128u))
        return nc_fail(nc, -EINVAL, "firewall gate %s \"%s\": not a host address", verb,
                       addr ? addr : "(null)");
    if (open && timeout_ms == 0)
        return nc_fail(nc, -EINVAL, "firewall gate open %s: an opening needs a timeout",
                       addr);
    nc_prefix_format(&p, false, what, sizeof(what));
    if (nc->backend == NC_BACKEND_RECORD)
        return open ? nc_record(nc, "fw_gate_open %s timeout %u", what, timeout_ms)
                    : nc_record(nc, "fw_gate_close %s", what);
    snprintf(what, sizeof(what), "firewall gate %s %s", verb, addr);
    return set_one(nc, p.family == AF_INET ? NC_SET_GATE4 : NC_SET_GATE6, p.addr, open,
                   timeout_ms, what);
}

int nc_fw_gate_open(struct nc *nc, const char *addr, uint32_t timeout_ms)
{
    return gate(nc, addr, timeout_ms, true);
}

int nc_fw_gate_close(struct nc *nc, const char *addr)
{
    return gate(nc, addr, 0, false);
}

/* The two sets (IPv4, IPv6) of one per-interface list of prefixes: the
 * destinations a peer may reach (allowed) or the sources it may send from
 * (sources, the anti-spoofing list). */
struct pfx_sets {
    enum nc_set_id v4, v6;
    const char *add_what, *del_what; /* "firewall allow" ... */
    const char *add_rec, *del_rec;   /* the recording backend's verbs */
};

static const struct pfx_sets allowed_sets = {
    NC_SET_ALLOWED4, NC_SET_ALLOWED6, "firewall allow", "firewall disallow",
    "fw_allow", "fw_disallow",
};
static const struct pfx_sets source_sets = {
    NC_SET_SOURCES4, NC_SET_SOURCES6, "firewall allow sources", "firewall disallow sources",
    "fw_allow_sources", "fw_disallow_sources",
};

/* ifname . start and ifname . end of a prefix, as the prefix sets key
 * them (the interface name padded to 16 bytes, then the address). */
static void allow_keys(const char *ifname, const struct nc_prefix *p, uint8_t *key,
                       uint8_t *key_end)
{
    size_t alen = p->family == AF_INET ? 4 : 16;

    ifname_key(ifname, key);
    memcpy(key_end, key, NC_IFNAMSIZ);
    memcpy(key + NC_IFNAMSIZ, p->addr, alen);
    nc_prefix_last(p, key_end + NC_IFNAMSIZ);
}

static bool prefix_encloses(const struct nc_prefix *outer, const struct nc_prefix *inner)
{
    return outer->family == inner->family && outer->len <= inner->len &&
           nc_prefix_contains(outer, inner->family, inner->addr);
}

/* Drops every prefix that another one of the list encloses (and repeats):
 * the kernel refuses a range that starts or ends inside another one of the
 * same key, and the enclosing one matches the same packets. */
static size_t fold_enclosed(struct nc_prefix *ps, size_t n)
{
    size_t out = 0;

    for (size_t i = 0; i < n; i++) {
        bool inside = false;

        for (size_t j = 0; !inside && j < n; j++) {
            if (j == i || !prefix_encloses(&ps[j], &ps[i]))
                continue;
            /* Of two equal prefixes the first stays. */
            inside = ps[j].len < ps[i].len || j < i;
        }
        if (!inside)
            ps[out++] = ps[i];
    }
    return out;
}

static int parse_prefixes(struct nc *nc, const char *what, const char *const *prefixes,
                          size_t n, struct nc_prefix **out)
{
    struct nc_prefix *ps;

    if (n && !prefixes)
        return nc_fail(nc, -EINVAL, "%s: prefixes missing", what);
    ps = calloc(n ? n : 1, sizeof(*ps));
    if (!ps)
        return nc_fail(nc, -ENOMEM, "%s", what);
    for (size_t i = 0; i < n; i++) {
        if (nc_prefix_parse(prefixes[i], &ps[i]) < 0) {
            free(ps);
            return nc_fail(nc, -EINVAL, "%s: \"%s\" is not a prefix", what,
                           prefixes[i] ? prefixes[i] : "(null)");
        }
        nc_prefix_mask(&ps[i]);
    }
    *out = ps;
    return 0;
}

/* One batch over both sets of a pair: for each of ops (NEWSETELEM or
 * DELSETELEM, in order), one message per family that has elements. */
static int prefix_batch(struct nc *nc, const struct pfx_sets *sets, const char *ifname,
                        const struct nc_prefix *ps, size_t n, const uint16_t *ops,
                        size_t n_ops, const char *what)
{
    struct nftnl_set *s4 = NULL, *s6 = NULL;
    struct nc_batch b = { 0 };
    size_t n4 = 0, n6 = 0;
    int err;

    err = nc_batch_begin(nc, &b);
    if (!err)
        err = nc_elems_new(sets->v4, &s4);
    if (!err)
        err = nc_elems_new(sets->v6, &s6);
    for (size_t i = 0; !err && i < n; i++) {
        uint8_t key[32], key_end[32];

        allow_keys(ifname, &ps[i], key, key_end);
        err = nc_elems_add(ps[i].family == AF_INET ? s4 : s6, key, key_end, 0);
        if (ps[i].family == AF_INET)
            n4++;
        else
            n6++;
    }
    if (err < 0) {
        err = nc_fail(nc, err, "%s", what);
        goto out;
    }
    for (size_t i = 0; i < n_ops; i++) {
        if (n4)
            nc_elems_msg(&b, s4, ops[i]);
        if (n6)
            nc_elems_msg(&b, s6, ops[i]);
    }
    err = nc_batch_commit(&b, what);
    if (err == -ENOENT && !nc->kmsg[0])
        nc_fail(nc, err, "%s: table inet %s is not installed", what, NC_TABLE);
out:
    if (s4)
        nftnl_set_free(s4);
    if (s6)
        nftnl_set_free(s6);
    nc_batch_free(&b);
    return err;
}

static int record_prefixes(struct nc *nc, const char *verb, const char *ifname,
                           const struct nc_prefix *ps, size_t n)
{
    char line[1024];
    size_t off;

    off = (size_t)snprintf(line, sizeof(line), "%s %s", verb, ifname);
    for (size_t i = 0; i < n && off < sizeof(line); i++) {
        char t[NC_ADDRSTRLEN];

        nc_prefix_format(&ps[i], true, t, sizeof(t));
        off += (size_t)snprintf(line + off, sizeof(line) - off, " %s", t);
    }
    return nc_record(nc, "%s", line);
}

static int prefixes_add(struct nc *nc, const struct pfx_sets *sets, const char *ifname,
                        const char *const *prefixes, size_t n)
{
    static const uint16_t ops[] = { NFT_MSG_NEWSETELEM };
    struct nc_prefix *ps = NULL;
    char what[64];
    int err;

    err = nc_check_owned(nc, ifname);
    if (err < 0)
        return err;
    snprintf(what, sizeof(what), "%s %s", sets->add_what, ifname);
    err = parse_prefixes(nc, what, prefixes, n, &ps);
    if (err < 0)
        return err;
    n = fold_enclosed(ps, n);
    if (nc->backend == NC_BACKEND_RECORD)
        err = record_prefixes(nc, sets->add_rec, ifname, ps, n);
    else if (n)
        err = prefix_batch(nc, sets, ifname, ps, n, ops, 1, what);
    free(ps);
    return err;
}

int nc_fw_allow_prefixes(struct nc *nc, const char *ifname, const char *const *prefixes,
                         size_t n)
{
    return prefixes_add(nc, &allowed_sets, ifname, prefixes, n);
}

int nc_fw_allow_sources(struct nc *nc, const char *ifname, const char *const *prefixes,
                        size_t n)
{
    return prefixes_add(nc, &source_sets, ifname, prefixes, n);
}

/* The prefixes of ifname now in one pair of sets. */
static int prefixes_of(struct nc *nc, const struct pfx_sets *sets, const char *ifname,
                       struct nc_prefix **out, size_t *n_out)
{
    struct nc_state *st = NULL;
    struct nc_prefix *ps = NULL;
    const struct nc_allow_info *have;
    size_t n = 0, n_have;
    int err;

    err = nc_state_new(&st);
    if (err < 0)
        return nc_fail(nc, err, "read prefix sets");
    err = nc_fw_read(nc, st);
    if (err < 0)
        goto out;
    have = sets == &source_sets ? st->sources : st->allowed;
    n_have = sets == &source_sets ? st->n_sources : st->n_allowed;
    ps = calloc(n_have + 1, sizeof(*ps));
    if (!ps) {
        err = nc_fail(nc, -ENOMEM, "read prefix sets");
        goto out;
    }
    for (size_t i = 0; i < n_have; i++) {
        if (strcmp(have[i].ifname, ifname) == 0 && nc_prefix_parse(have[i].prefix, &ps[n]) == 0)
            n++;
    }
    *out = ps;
    *n_out = n;
    ps = NULL;
out:
    free(ps);
    nc_state_free(st);
    return err;
}

static int prefixes_del(struct nc *nc, const struct pfx_sets *sets, const char *ifname,
                        const char *const *prefixes, size_t n)
{
    static const uint16_t add_del[] = { NFT_MSG_NEWSETELEM, NFT_MSG_DELSETELEM };
    static const uint16_t del[] = { NFT_MSG_DELSETELEM };
    struct nc_prefix *ps = NULL, *have = NULL, *gone = NULL;
    size_t n_have = 0, n_gone = 0;
    char what[64];
    int err;

    err = nc_check_owned(nc, ifname);
    if (err < 0)
        return err;
    snprintf(what, sizeof(what), "%s %s", sets->del_what, ifname);
    err = parse_prefixes(nc, what, prefixes, n, &ps);
    if (err < 0)
        return err;
    if (nc->backend == NC_BACKEND_RECORD) {
        err = record_prefixes(nc, sets->del_rec, ifname, ps, n);
        goto out;
    }
    if (n) {
        /* Add-then-delete succeeds whether or not each one was there... */
        err = prefix_batch(nc, sets, ifname, ps, n, add_del, 2, what);
        /* ...unless an absent one overlaps a present one: then delete
         * only those that are present. */
        if (err != -ENOTEMPTY && err != -EEXIST)
            goto out;
    }
    err = prefixes_of(nc, sets, ifname, &have, &n_have);
    if (err == -ENOENT)
        err = nc_fail(nc, err, "%s: table inet %s is not installed", what, NC_TABLE);
    if (err < 0)
        goto out;
    gone = calloc(n_have + 1, sizeof(*gone));
    if (!gone) {
        err = nc_fail(nc, -ENOMEM, "%s", what);
        goto out;
    }
    for (size_t i = 0; i < n_have; i++) {
        bool listed = n == 0;

        for (size_t j = 0; !listed && j < n; j++)
            listed = ps[j].family == have[i].family && ps[j].len == have[i].len &&
                     !memcmp(ps[j].addr, have[i].addr, 16);
        if (listed)
            gone[n_gone++] = have[i];
    }
    err = n_gone ? prefix_batch(nc, sets, ifname, gone, n_gone, del, 1, what) : 0;
out:
    free(ps);
    free(have);
    free(gone);
    return err;
}

int nc_fw_disallow_prefixes(struct nc *nc, const char *ifname, const char *const *prefixes,
                            size_t n)
{
    return prefixes_del(nc, &allowed_sets, ifname, prefixes, n);
}

int nc_fw_disallow_sources(struct nc *nc, const char *ifname, const char *const *prefixes,
                           size_t n)
{
    return prefixes_del(nc, &source_sets, ifname, prefixes, n);
}

/* Length of the prefix whose first and last addresses are a and z. */
static unsigned range_len(const uint8_t *a, const uint8_t *z, size_t alen)
{
    unsigned len = 0;

    for (size_t i = 0; i < alen; i++) {
        uint8_t x = a[i] ^ z[i];

        if (x == 0) {
            len += 8;
            continue;
        }
        while (!(x & 0x80)) {
            len++;
            x = (uint8_t)(x << 1);
        }
        break;
    }
    return len;
}

struct read_ctx {
    struct nc_state *st;
    enum nc_set_id id;
    int err;
};

static int read_elem(struct nftnl_set_elem *e, void *data)
{
    struct read_ctx *ctx = data;
    uint32_t klen = 0, elen = 0;
    const uint8_t *key = nftnl_set_elem_get(e, NFTNL_SET_ELEM_KEY, &klen);
    const uint8_t *end = nftnl_set_elem_get(e, NFTNL_SET_ELEM_KEY_END, &elen);

    if (!key || klen < NC_IFNAMSIZ)
        return 0;
    if (ctx->id == NC_SET_TRUSTED) {
        char name[NC_IFNAMSIZ];

        memset(name, 0, sizeof(name));
        memcpy(name, key, NC_IFNAMSIZ - 1);
        ctx->err = nc_state_push((void **)&ctx->st->trusted, &ctx->st->n_trusted,
                                 sizeof(name), name);
    } else {
        bool v4 = ctx->id == NC_SET_ALLOWED4 || ctx->id == NC_SET_SOURCES4;
        bool src = ctx->id == NC_SET_SOURCES4 || ctx->id == NC_SET_SOURCES6;
        size_t alen = v4 ? 4 : 16;
        struct nc_allow_info ai;
        struct nc_prefix p;

        if (klen < NC_IFNAMSIZ + alen)
            return 0;
        memset(&ai, 0, sizeof(ai));
        memset(&p, 0, sizeof(p));
        memcpy(ai.ifname, key, NC_IFNAMSIZ - 1);
        p.family = alen == 4 ? AF_INET : AF_INET6;
        memcpy(p.addr, key + NC_IFNAMSIZ, alen);
        p.len = (end && elen >= klen) ? range_len(key + NC_IFNAMSIZ, end + NC_IFNAMSIZ, alen)
                                      : (unsigned)alen * 8;
        nc_prefix_format(&p, true, ai.prefix, sizeof(ai.prefix));
        if (src)
            ctx->err = nc_state_push((void **)&ctx->st->sources, &ctx->st->n_sources,
                                     sizeof(ai), &ai);
        else
            ctx->err = nc_state_push((void **)&ctx->st->allowed, &ctx->st->n_allowed,
                                     sizeof(ai), &ai);
    }
    return ctx->err;
}

int nc_fw_read(struct nc *nc, struct nc_state *st)
{
    static const enum nc_set_id ids[] = { NC_SET_TRUSTED, NC_SET_ALLOWED4, NC_SET_ALLOWED6,
                                          NC_SET_SOURCES4, NC_SET_SOURCES6 };
    int err = 0;

    st->fw_installed = true;
    for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
        struct read_ctx ctx = { st, ids[i], 0 };
        struct nftnl_set *s = NULL;

        err = nc_set_dump(nc, ids[i], &s);
        if (err == -ENOENT) {
            st->fw_installed = false;
            return 0;
        }
        if (err < 0)
            return err;
        nftnl_set_elem_foreach(s, read_elem, &ctx);
        nftnl_set_free(s);
        if (ctx.err < 0)
            return nc_fail(nc, ctx.err, "read set %s", nc_sets[ids[i]].name);
    }
    return 0;
}
