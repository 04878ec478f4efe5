/*
 * nftables over netlink: the transaction transport and the table
 * `inet mtlsgw` itself. docs/netconfig.md draws the table.
 */
#include <errno.h>
#include <netinet/in.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <libmnl/libmnl.h>
#include <libnftnl/batch.h>
#include <libnftnl/chain.h>
#include <libnftnl/common.h>
#include <libnftnl/expr.h>
#include <libnftnl/rule.h>
#include <libnftnl/set.h>
#include <libnftnl/table.h>
#include <libnftnl/udata.h>

#include "nc-private.h"
#include "nft.h"

#define RECV_SIZE 32768
/* Run x only while nothing has failed yet. */
#define TRY(x) do { if (err == 0) err = (x); } while (0)

/* nft's datatype numbers (nftables src/datatype.h), so that `nft list`
 * shows the sets with their real types; concatenations shift by 6 bits. */
enum {
    TYPE_IPADDR = 7,
    TYPE_IP6ADDR = 8,
    TYPE_INET_PROTOCOL = 12,
    TYPE_INET_SERVICE = 13,
    TYPE_IFNAME = 41,
};
/* nft's byte-order numbers, for the set's user data. */
#define BYTEORDER_HOST 1
#define CONCAT(a, b) (((uint32_t)(a) << 6) | (uint32_t)(b))

const struct nc_set_def nc_sets[NC_SET_COUNT] = {
    [NC_SET_TRUSTED] = { .name = "trusted_ifaces", .key_type = TYPE_IFNAME, .key_len = 16,
                         .flags = NFT_SET_TIMEOUT, .key_byteorder = BYTEORDER_HOST },
    [NC_SET_ALLOWED4] = { .name = "allowed4", .key_type = CONCAT(TYPE_IFNAME, TYPE_IPADDR),
                          .key_len = 20, .flags = NFT_SET_INTERVAL | NFT_SET_CONCAT,
                          .fields = { 16, 4 } },
    [NC_SET_ALLOWED6] = { .name = "allowed6", .key_type = CONCAT(TYPE_IFNAME, TYPE_IP6ADDR),
                          .key_len = 32, .flags = NFT_SET_INTERVAL | NFT_SET_CONCAT,
                          .fields = { 16, 16 } },
    [NC_SET_GATE4] = { .name = "gate4", .key_type = TYPE_IPADDR, .key_len = 4,
                       .flags = NFT_SET_TIMEOUT },
    [NC_SET_GATE6] = { .name = "gate6", .key_type = TYPE_IP6ADDR, .key_len = 16,
                       .flags = NFT_SET_TIMEOUT },
    [NC_SET_GATED] = { .name = "gated",
                       .key_type = CONCAT(TYPE_INET_PROTOCOL, TYPE_INET_SERVICE),
                       .key_len = 8 },
    [NC_SET_SOURCES4] = { .name = "sources4", .key_type = CONCAT(TYPE_IFNAME, TYPE_IPADDR),
                          .key_len = 20, .flags = NFT_SET_INTERVAL | NFT_SET_CONCAT,
                          .fields = { 16, 4 } },
    [NC_SET_SOURCES6] = { .name = "sources6", .key_type = CONCAT(TYPE_IFNAME, TYPE_IP6ADDR),
                          .key_len = 32, .flags = NFT_SET_INTERVAL | NFT_SET_CONCAT,
                          .fields = { 16, 16 } },
};

static int nft_sock(struct nc *nc, struct mnl_socket **out)
{
    struct mnl_socket *sk = NULL;
    int one = 1;
    int err;

    if (nc->nft) {
        *out = nc->nft;
        return 0;
    }
    sk = mnl_socket_open(NETLINK_NETFILTER);
    if (!sk)
        return nc_fail(nc, -errno, "nftables socket");
    if (mnl_socket_bind(sk, 0, MNL_SOCKET_AUTOPID) < 0) {
        err = nc_fail(nc, -errno, "nftables socket bind");
        mnl_socket_close(sk);
        return err;
    }
    /* Best effort, as on the rtnetlink sockets. */
    (void)mnl_socket_setsockopt(sk, NETLINK_EXT_ACK, &one, sizeof(one));
    (void)mnl_socket_setsockopt(sk, NETLINK_CAP_ACK, &one, sizeof(one));
    nc->nft = sk;
    *out = sk;
    return 0;
}

int nc_batch_begin(struct nc *nc, struct nc_batch *b)
{
    memset(b, 0, sizeof(*b));
    b->nc = nc;
    b->b = nftnl_batch_alloc(MNL_SOCKET_BUFFER_SIZE, MNL_SOCKET_BUFFER_SIZE);
    if (!b->b)
        return -ENOMEM;
    b->begin_seq = nc->nft_seq++;
    nftnl_batch_begin(nftnl_batch_buffer(b->b), b->begin_seq);
    nftnl_batch_update(b->b);
    return 0;
}

struct nlmsghdr *nc_batch_msg(struct nc_batch *b, uint16_t type, uint16_t flags)
{
    b->last_seq = b->nc->nft_seq++;
    b->n_msgs++;
    /* Every message asks for an ack: the kernel answers each one after the
     * whole batch, so the ack of the last one ends the read. */
    return nftnl_nlmsg_build_hdr(nftnl_batch_buffer(b->b), type, NFPROTO_INET,
                                 flags | NLM_F_ACK, b->last_seq);
}

void nc_batch_next(struct nc_batch *b)
{
    nftnl_batch_update(b->b);
}

void nc_batch_free(struct nc_batch *b)
{
    if (b->b)
        nftnl_batch_free(b->b);
    b->b = NULL;
}

void nc_extack(struct nc *nc, const struct nlmsghdr *nlh)
{
    const struct nlmsgerr *e = mnl_nlmsg_get_payload(nlh);
    size_t off, end;

    if (!(nlh->nlmsg_flags & NLM_F_ACK_TLVS))
        return;
    off = NLMSG_HDRLEN + sizeof(*e);
    if (!(nlh->nlmsg_flags & NLM_F_CAPPED))
        off += e->msg.nlmsg_len - NLMSG_HDRLEN;
    end = nlh->nlmsg_len;
    while (off + NLA_HDRLEN <= end) {
        const struct nlattr *a = (const struct nlattr *)((const char *)nlh + off);

        if (a->nla_len < NLA_HDRLEN || off + a->nla_len > end)
            break;
        if ((a->nla_type & NLA_TYPE_MASK) == NLMSGERR_ATTR_MSG) {
            snprintf(nc->kmsg, sizeof(nc->kmsg), "%.*s", (int)(a->nla_len - NLA_HDRLEN),
                     (const char *)a + NLA_HDRLEN);
            return;
        }
        off += NLA_ALIGN(a->nla_len);
    }
}

int nc_batch_commit(struct nc_batch *b, const char *what)
{
    struct nc *nc = b->nc;
    struct mnl_socket *sk;
    struct iovec *iov = NULL;
    struct sockaddr_nl snl = { .nl_family = AF_NETLINK };
    struct msghdr msg;
    char *buf = NULL;
    bool done = false;
    int iovlen, err;

    nc_kerr_reset(nc);
    nftnl_batch_end(nftnl_batch_buffer(b->b), nc->nft_seq++);
    nftnl_batch_update(b->b);
    if (b->n_msgs == 0)
        return 0;
    err = nft_sock(nc, &sk);
    if (err < 0)
        return err;
    iovlen = nftnl_batch_iovec_len(b->b);
    iov = calloc((size_t)iovlen, sizeof(*iov));
    buf = malloc(RECV_SIZE);
    if (!iov || !buf) {
        err = nc_fail(nc, -ENOMEM, "%s", what);
        goto out;
    }
    nftnl_batch_iovec(b->b, iov, (uint32_t)iovlen);
    memset(&msg, 0, sizeof(msg));
    msg.msg_name = &snl;
    msg.msg_namelen = sizeof(snl);
    msg.msg_iov = iov;
    msg.msg_iovlen = (size_t)iovlen;
    if (sendmsg(mnl_socket_get_fd(sk), &msg, 0) < 0) {
        err = nc_fail(nc, -errno, "%s: send", what);
        goto out;
    }
    err = 0;
    while (!done) {
        ssize_t n = mnl_socket_recvfrom(sk, buf, RECV_SIZE);
        const struct nlmsghdr *nlh = (const struct nlmsghdr *)buf;
        int len = (int)n;

        if (n < 0) {
            err = nc_fail(nc, -errno, "%s: receive", what);
            goto out;
        }
        for (; mnl_nlmsg_ok(nlh, len); nlh = mnl_nlmsg_next(nlh, &len)) {
            const struct nlmsgerr *e;

            if (nlh->nlmsg_type != NLMSG_ERROR)
                continue;
            if (nlh->nlmsg_seq < b->begin_seq || nlh->nlmsg_seq > b->last_seq)
                continue; /* a late answer to an earlier, failed batch */
            e = mnl_nlmsg_get_payload(nlh);
            if (e->error && nc->kerr == 0) {
                nc->kerr = e->error;
                nc_extack(nc, nlh);
            }
            if (nlh->nlmsg_seq == b->last_seq || nlh->nlmsg_seq == b->begin_seq)
                done = true;
        }
    }
    if (nc->kerr < 0)
        err = nc_fail(nc, nc->kerr, "%s", what);
out:
    free(iov);
    free(buf);
    return err;
}

struct dump_ctx {
    struct nftnl_set *s;
    int err;
};

static int dump_cb(const struct nlmsghdr *nlh, void *data)
{
    struct dump_ctx *ctx = data;

    if (nftnl_set_elems_nlmsg_parse(nlh, ctx->s) < 0)
        ctx->err = -EINVAL;
    return MNL_CB_OK;
}

int nc_set_dump(struct nc *nc, enum nc_set_id id, struct nftnl_set **out)
{
    struct dump_ctx ctx = { NULL, 0 };
    struct mnl_socket *sk;
    struct nlmsghdr *nlh;
    char *buf = NULL;
    uint32_t seq, portid;
    int err;

    nc_kerr_reset(nc);
    err = nft_sock(nc, &sk);
    if (err < 0)
        return err;
    buf = malloc(RECV_SIZE);
    ctx.s = nftnl_set_alloc();
    if (!buf || !ctx.s) {
        err = nc_fail(nc, -ENOMEM, "read set %s", nc_sets[id].name);
        goto out;
    }
    nftnl_set_set_str(ctx.s, NFTNL_SET_TABLE, NC_TABLE);
    nftnl_set_set_str(ctx.s, NFTNL_SET_NAME, nc_sets[id].name);
    nftnl_set_set_u32(ctx.s, NFTNL_SET_FAMILY, NFPROTO_INET);
    seq = nc->nft_seq++;
    nlh = nftnl_nlmsg_build_hdr(buf, NFT_MSG_GETSETELEM, NFPROTO_INET,
                                NLM_F_DUMP | NLM_F_ACK, seq);
    nftnl_set_elems_nlmsg_build_payload(nlh, ctx.s);
    if (mnl_socket_sendto(sk, nlh, nlh->nlmsg_len) < 0) {
        err = nc_fail(nc, -errno, "read set %s: send", nc_sets[id].name);
        goto out;
    }
    portid = mnl_socket_get_portid(sk);
    for (;;) {
        ssize_t n = mnl_socket_recvfrom(sk, buf, RECV_SIZE);

        if (n < 0) {
            err = nc_fail(nc, -errno, "read set %s: receive", nc_sets[id].name);
            goto out;
        }
        err = mnl_cb_run(buf, (size_t)n, seq, portid, dump_cb, &ctx);
        if (err == MNL_CB_STOP)
            break;
        if (err < 0) {
            err = -errno;
            /* No table or no set: not installed, the caller decides. */
            if (err != -ENOENT)
                err = nc_fail(nc, err, "read set %s", nc_sets[id].name);
            goto out;
        }
    }
    err = ctx.err;
    if (err < 0) {
        err = nc_fail(nc, err, "read set %s: cannot parse", nc_sets[id].name);
        goto out;
    }
    *out = ctx.s;
    ctx.s = NULL;
out:
    if (ctx.s)
        nftnl_set_free(ctx.s);
    free(buf);
    return err;
}

/* --- the table ----------------------------------------------------------- */

static void add_expr(struct nftnl_rule *r, struct nftnl_expr *e)
{
    nftnl_rule_add_expr(r, e);
}

static int e_meta(struct nftnl_rule *r, uint32_t key, uint32_t dreg)
{
    struct nftnl_expr *e = nftnl_expr_alloc("meta");

    if (!e)
        return -ENOMEM;
    nftnl_expr_set_u32(e, NFTNL_EXPR_META_KEY, key);
    nftnl_expr_set_u32(e, NFTNL_EXPR_META_DREG, dreg);
    add_expr(r, e);
    return 0;
}

static int e_cmp(struct nftnl_rule *r, uint32_t op, const void *data, uint32_t len)
{
    struct nftnl_expr *e = nftnl_expr_alloc("cmp");

    if (!e)
        return -ENOMEM;
    nftnl_expr_set_u32(e, NFTNL_EXPR_CMP_SREG, NFT_REG_1);
    nftnl_expr_set_u32(e, NFTNL_EXPR_CMP_OP, op);
    nftnl_expr_set(e, NFTNL_EXPR_CMP_DATA, data, len);
    add_expr(r, e);
    return 0;
}

static int e_payload(struct nftnl_rule *r, uint32_t base, uint32_t off, uint32_t len,
                     uint32_t dreg)
{
    struct nftnl_expr *e = nftnl_expr_alloc("payload");

    if (!e)
        return -ENOMEM;
    nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_BASE, base);
    nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_OFFSET, off);
    nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_LEN, len);
    nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_DREG, dreg);
    add_expr(r, e);
    return 0;
}

static int e_lookup_not(struct nftnl_rule *r, enum nc_set_id id, bool inv)
{
    struct nftnl_expr *e = nftnl_expr_alloc("lookup");

    if (!e)
        return -ENOMEM;
    nftnl_expr_set_u32(e, NFTNL_EXPR_LOOKUP_SREG, NFT_REG_1);
    nftnl_expr_set_str(e, NFTNL_EXPR_LOOKUP_SET, nc_sets[id].name);
    nftnl_expr_set_u32(e, NFTNL_EXPR_LOOKUP_SET_ID, (uint32_t)id + 1);
    if (inv)
        nftnl_expr_set_u32(e, NFTNL_EXPR_LOOKUP_FLAGS, NFT_LOOKUP_F_INV);
    add_expr(r, e);
    return 0;
}

static int e_drop(struct nftnl_rule *r)
{
    struct nftnl_expr *e = nftnl_expr_alloc("immediate");

    if (!e)
        return -ENOMEM;
    nftnl_expr_set_u32(e, NFTNL_EXPR_IMM_DREG, NFT_REG_VERDICT);
    nftnl_expr_set_u32(e, NFTNL_EXPR_IMM_VERDICT, NF_DROP);
    add_expr(r, e);
    return 0;
}

enum rule_kind {
    R_IIF_UNTRUSTED,
    R_OIF_UNTRUSTED,
    R_GATE4,
    R_GATE6,
    R_ALLOWED4,
    R_ALLOWED6,
    R_SOURCE4,
    R_SOURCE6,
};

/* Each rule ends in drop and nothing else: the table never accepts, so
 * whatever it lets pass still meets fw4's chains. */
static int rule_build(struct nc *nc, struct nftnl_rule *r, enum rule_kind k)
{
    const uint32_t lo_ifindex = 1; /* loopback is 1 in every namespace */
    uint8_t proto4 = NFPROTO_IPV4, proto6 = NFPROTO_IPV6;
    uint32_t plen = (uint32_t)strlen(nc->prefix);
    int err = 0;

    switch (k) {
    case R_IIF_UNTRUSTED:
    case R_OIF_UNTRUSTED: {
        uint32_t key = k == R_IIF_UNTRUSTED ? NFT_META_IIFNAME : NFT_META_OIFNAME;

        /* <prefix>* : a cmp over the prefix bytes only. */
        TRY(e_meta(r, key, NFT_REG_1));
        TRY(e_cmp(r, NFT_CMP_EQ, nc->prefix, plen));
        TRY(e_meta(r, key, NFT_REG_1));
        TRY(e_lookup_not(r, NC_SET_TRUSTED, true));
        break;
    }
    case R_GATE4:
    case R_GATE6:
        /* Local processes talking to themselves are not gated. */
        TRY(e_meta(r, NFT_META_IIF, NFT_REG_1));
        TRY(e_cmp(r, NFT_CMP_NEQ, &lo_ifindex, sizeof(lo_ifindex)));
        TRY(e_meta(r, NFT_META_L4PROTO, NFT_REG_1));
        TRY(e_payload(r, NFT_PAYLOAD_TRANSPORT_HEADER, 2, 2, NFT_REG32_01));
        TRY(e_lookup_not(r, NC_SET_GATED, false));
        TRY(e_meta(r, NFT_META_NFPROTO, NFT_REG_1));
        if (k == R_GATE4) {
            TRY(e_cmp(r, NFT_CMP_EQ, &proto4, 1));
            TRY(e_payload(r, NFT_PAYLOAD_NETWORK_HEADER, 12, 4, NFT_REG_1));
            TRY(e_lookup_not(r, NC_SET_GATE4, true));
        } else {
            TRY(e_cmp(r, NFT_CMP_EQ, &proto6, 1));
            TRY(e_payload(r, NFT_PAYLOAD_NETWORK_HEADER, 8, 16, NFT_REG_1));
            TRY(e_lookup_not(r, NC_SET_GATE6, true));
        }
        break;
    case R_ALLOWED4:
    case R_ALLOWED6:
    case R_SOURCE4:
    case R_SOURCE6: {
        /* iifname . ip daddr (allowed) or . ip saddr (sources): IPv4 has
         * its source at 12 and destination at 16, IPv6 at 8 and 24. */
        bool v4 = k == R_ALLOWED4 || k == R_SOURCE4, src = k == R_SOURCE4 || k == R_SOURCE6;
        enum nc_set_id set = src ? (v4 ? NC_SET_SOURCES4 : NC_SET_SOURCES6)
                                 : (v4 ? NC_SET_ALLOWED4 : NC_SET_ALLOWED6);
        uint32_t off = v4 ? (src ? 12 : 16) : (src ? 8 : 24);

        TRY(e_meta(r, NFT_META_IIFNAME, NFT_REG_1));
        TRY(e_cmp(r, NFT_CMP_EQ, nc->prefix, plen));
        TRY(e_meta(r, NFT_META_NFPROTO, NFT_REG_1));
        TRY(e_cmp(r, NFT_CMP_EQ, v4 ? &proto4 : &proto6, 1));
        TRY(e_meta(r, NFT_META_IIFNAME, NFT_REG_1));
        TRY(e_payload(r, NFT_PAYLOAD_NETWORK_HEADER, off, v4 ? 4 : 16, NFT_REG_2));
        TRY(e_lookup_not(r, set, true));
        break;
    }
    }
    TRY(e_drop(r));
    return err;
}

static const struct {
    const char *name;
    uint32_t hook;
} chains[] = {
    { "input", NF_INET_LOCAL_IN },
    { "forward", NF_INET_FORWARD },
    { "output", NF_INET_LOCAL_OUT },
};

/* Anti-spoofing (R_SOURCE*) on input and forward: a packet from a tunnel
 * carries its peer's tunnel address or one of its networks as source, or
 * it is dropped before the gate or the allowed sets look at it. */
static const struct {
    unsigned chain;
    enum rule_kind kind;
} rules[] = {
    { 0, R_IIF_UNTRUSTED }, { 0, R_SOURCE4 },   { 0, R_SOURCE6 },
    { 0, R_GATE4 },         { 0, R_GATE6 },     { 1, R_IIF_UNTRUSTED },
    { 1, R_OIF_UNTRUSTED }, { 1, R_SOURCE4 },   { 1, R_SOURCE6 },
    { 1, R_ALLOWED4 },      { 1, R_ALLOWED6 },  { 2, R_OIF_UNTRUSTED },
};

/* Chains run at filter - 1: before fw4 (filter, 0) so a drop here cannot be
 * pre-empted by an accept there; an accept there cannot undo a drop here. */
#define CHAIN_PRIO (-1)

static int add_table_msg(struct nc_batch *b, uint16_t type)
{
    struct nftnl_table *t = nftnl_table_alloc();
    struct nlmsghdr *nlh;

    if (!t)
        return -ENOMEM;
    nftnl_table_set_str(t, NFTNL_TABLE_NAME, NC_TABLE);
    nftnl_table_set_u32(t, NFTNL_TABLE_FAMILY, NFPROTO_INET);
    nlh = nc_batch_msg(b, type, type == NFT_MSG_NEWTABLE ? NLM_F_CREATE : 0);
    nftnl_table_nlmsg_build_payload(nlh, t);
    nc_batch_next(b);
    nftnl_table_free(t);
    return 0;
}

static int add_set_msg(struct nc_batch *b, enum nc_set_id id)
{
    const struct nc_set_def *d = &nc_sets[id];
    struct nftnl_set *s = nftnl_set_alloc();
    struct nlmsghdr *nlh;

    if (!s)
        return -ENOMEM;
    nftnl_set_set_str(s, NFTNL_SET_TABLE, NC_TABLE);
    nftnl_set_set_str(s, NFTNL_SET_NAME, d->name);
    nftnl_set_set_u32(s, NFTNL_SET_FAMILY, NFPROTO_INET);
    nftnl_set_set_u32(s, NFTNL_SET_ID, (uint32_t)id + 1);
    nftnl_set_set_u32(s, NFTNL_SET_KEY_TYPE, d->key_type);
    nftnl_set_set_u32(s, NFTNL_SET_KEY_LEN, d->key_len);
    nftnl_set_set_u32(s, NFTNL_SET_FLAGS, d->flags);
    if (d->fields[0])
        /* Field lengths let the kernel pick its range-concatenation type. */
        nftnl_set_set_data(s, NFTNL_SET_DESC_CONCAT, d->fields, sizeof(d->fields));
    if (d->key_byteorder) {
        /* Only for `nft list`: without it nft cannot print a host-order
         * key such as an interface name. */
        struct nftnl_udata_buf *u = nftnl_udata_buf_alloc(16);

        if (!u) {
            nftnl_set_free(s);
            return -ENOMEM;
        }
        nftnl_udata_put_u32(u, NFTNL_UDATA_SET_KEYBYTEORDER, d->key_byteorder);
        nftnl_set_set_data(s, NFTNL_SET_USERDATA, nftnl_udata_buf_data(u),
                           nftnl_udata_buf_len(u));
        nftnl_udata_buf_free(u);
    }
    nlh = nc_batch_msg(b, NFT_MSG_NEWSET, NLM_F_CREATE);
    nftnl_set_nlmsg_build_payload(nlh, s);
    nc_batch_next(b);
    nftnl_set_free(s);
    return 0;
}

static int add_chain_msg(struct nc_batch *b, unsigned i)
{
    struct nftnl_chain *c = nftnl_chain_alloc();
    struct nlmsghdr *nlh;

    if (!c)
        return -ENOMEM;
    nftnl_chain_set_str(c, NFTNL_CHAIN_TABLE, NC_TABLE);
    nftnl_chain_set_str(c, NFTNL_CHAIN_NAME, chains[i].name);
    nftnl_chain_set_u32(c, NFTNL_CHAIN_FAMILY, NFPROTO_INET);
    nftnl_chain_set_u32(c, NFTNL_CHAIN_HOOKNUM, chains[i].hook);
    nftnl_chain_set_s32(c, NFTNL_CHAIN_PRIO, CHAIN_PRIO);
    nftnl_chain_set_u32(c, NFTNL_CHAIN_POLICY, NF_ACCEPT);
    nftnl_chain_set_str(c, NFTNL_CHAIN_TYPE, "filter");
    nlh = nc_batch_msg(b, NFT_MSG_NEWCHAIN, NLM_F_CREATE);
    nftnl_chain_nlmsg_build_payload(nlh, c);
    nc_batch_next(b);
    nftnl_chain_free(c);
    return 0;
}

static int add_rule_msg(struct nc *nc, struct nc_batch *b, unsigned i)
{
    struct nftnl_rule *r = nftnl_rule_alloc();
    struct nlmsghdr *nlh;
    int err;

    if (!r)
        return -ENOMEM;
    nftnl_rule_set_str(r, NFTNL_RULE_TABLE, NC_TABLE);
    nftnl_rule_set_str(r, NFTNL_RULE_CHAIN, chains[rules[i].chain].name);
    nftnl_rule_set_u32(r, NFTNL_RULE_FAMILY, NFPROTO_INET);
    err = rule_build(nc, r, rules[i].kind);
    if (err == 0) {
        nlh = nc_batch_msg(b, NFT_MSG_NEWRULE, NLM_F_CREATE | NLM_F_APPEND);
        nftnl_rule_nlmsg_build_payload(nlh, r);
        nc_batch_next(b);
    }
    nftnl_rule_free(r);
    return err;
}

static int add_gated_msg(struct nc_batch *b, const struct nc_fw_config *cfg)
{
    struct nftnl_set *s = NULL;
    struct nlmsghdr *nlh;
    int err = 0;

    if (!cfg || cfg->n_gated == 0)
        return 0;
    err = nc_elems_new(NC_SET_GATED, &s);
    if (err < 0)
        return err;
    for (size_t i = 0; i < cfg->n_gated; i++) {
        uint8_t key[8] = { 0 };
        uint16_t port = htons(cfg->gated[i].port);

        /* l4proto in the first 32-bit register, the port in the next. */
        key[0] = cfg->gated[i].proto;
        memcpy(key + 4, &port, 2);
        err = nc_elems_add(s, key, NULL, 0);
        if (err < 0)
            goto out;
    }
    nlh = nc_batch_msg(b, NFT_MSG_NEWSETELEM, NLM_F_CREATE);
    nftnl_set_elems_nlmsg_build_payload(nlh, s);
    nc_batch_next(b);
out:
    nftnl_set_free(s);
    return err;
}

int nc_fw_install(struct nc *nc, const struct nc_fw_config *cfg)
{
    struct nc_batch b = { 0 };
    int err;

    nc_kerr_reset(nc);
    if (cfg && cfg->n_gated && !cfg->gated)
        return nc_fail(nc, -EINVAL, "firewall install: gated services missing");
    for (size_t i = 0; cfg && i < cfg->n_gated; i++) {
        uint8_t p = cfg->gated[i].proto;

        if ((p != IPPROTO_TCP && p != IPPROTO_UDP && p != IPPROTO_SCTP &&
             p != IPPROTO_DCCP && p != IPPROTO_UDPLITE) || cfg->gated[i].port == 0)
            return nc_fail(nc, -EINVAL, "firewall install: gated service %u/%u: not a port",
                           p, cfg->gated[i].port);
    }
    if (nc->backend == NC_BACKEND_RECORD) {
        err = nc_record(nc, "fw_install gated %zu", cfg ? cfg->n_gated : 0);
        for (size_t i = 0; !err && cfg && i < cfg->n_gated; i++)
            err = nc_record(nc, "fw_gated %u/%u", cfg->gated[i].proto, cfg->gated[i].port);
        return err;
    }
    err = nc_batch_begin(nc, &b);
    if (err < 0)
        return nc_fail(nc, err, "firewall install");
    /* Create-if-absent, delete, create: one transaction replaces the table
     * whole whether or not it was there, and drops every element in it. */
    TRY(add_table_msg(&b, NFT_MSG_NEWTABLE));
    TRY(add_table_msg(&b, NFT_MSG_DELTABLE));
    TRY(add_table_msg(&b, NFT_MSG_NEWTABLE));
    for (unsigned i = 0; !err && i < NC_SET_COUNT; i++)
        err = add_set_msg(&b, (enum nc_set_id)i);
    TRY(add_gated_msg(&b, cfg));
    for (unsigned i = 0; !err && i < sizeof(chains) / sizeof(chains[0]); i++)
        err = add_chain_msg(&b, i);
    for (unsigned i = 0; !err && i < sizeof(rules) / sizeof(rules[0]); i++)
        err = add_rule_msg(nc, &b, i);
    if (err < 0) {
        err = nc_fail(nc, err, "firewall install");
        goto out;
    }
    err = nc_batch_commit(&b, "firewall install table inet " NC_TABLE);
out:
    nc_batch_free(&b);
    return err;
}

int nc_fw_uninstall(struct nc *nc)
{
    struct nc_batch b = { 0 };
    int err;

    nc_kerr_reset(nc);
    if (nc->backend == NC_BACKEND_RECORD)
        return nc_record(nc, "fw_uninstall");
    err = nc_batch_begin(nc, &b);
    TRY(add_table_msg(&b, NFT_MSG_NEWTABLE));
    TRY(add_table_msg(&b, NFT_MSG_DELTABLE));
    if (err < 0)
        err = nc_fail(nc, err, "firewall uninstall");
    else
        err = nc_batch_commit(&b, "firewall uninstall table inet " NC_TABLE);
    nc_batch_free(&b);
    return err;
}
