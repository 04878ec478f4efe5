/* The handle: options, error text, address parsing, lazily opened sockets. */
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <linux/netlink.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <libmnl/libmnl.h>
#include <netlink/errno.h>
#include <netlink/msg.h>
#include <netlink/netfilter/nfnl.h>
#include <netlink/netlink.h>
#include <netlink/socket.h>

#include "build-config.h"
#include "nc-private.h"

#ifndef SOL_NETLINK
#define SOL_NETLINK 270
#endif

int nc_new(const struct nc_options *opts, struct nc **out)
{
    const char *prefix = MTLSGW_DEFAULT_IFPREFIX;
    struct nc *nc = NULL;

    if (opts && opts->ifprefix)
        prefix = opts->ifprefix;
    /* The prefix must leave room for at least one more character and must
     * be a valid start of an interface name. */
    if (!prefix[0] || strlen(prefix) >= NC_IFNAMSIZ - 1 || !nc_ifname_valid(prefix))
        return -EINVAL;
    if (opts && opts->backend != NC_BACKEND_LINUX && opts->backend != NC_BACKEND_RECORD)
        return -EINVAL;
    nc = calloc(1, sizeof(*nc));
    if (!nc)
        return -ENOMEM;
    snprintf(nc->prefix, sizeof(nc->prefix), "%s", prefix);
    nc->backend = opts ? opts->backend : NC_BACKEND_LINUX;
    nc->nft_seq = (uint32_t)time(NULL);
    *out = nc;
    return 0;
}

void nc_free(struct nc *nc)
{
    if (!nc)
        return;
    if (nc->rt)
        nl_socket_free(nc->rt);
    if (nc->ct)
        nl_socket_free(nc->ct);
    if (nc->mon)
        nl_socket_free(nc->mon);
    if (nc->nft)
        mnl_socket_close(nc->nft);
    free(nc->ifc);
    free(nc->rec);
    free(nc);
}

const char *nc_error(const struct nc *nc)
{
    return nc ? nc->err : "";
}

const char *nc_ifprefix(const struct nc *nc)
{
    return nc->prefix;
}

const char *nc_record_text(const struct nc *nc)
{
    return nc->rec ? nc->rec : "";
}

void nc_record_clear(struct nc *nc)
{
    nc->rec_len = 0;
    if (nc->rec)
        nc->rec[0] = '\0';
}

int nc_record(struct nc *nc, const char *fmt, ...)
{
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return -EINVAL;
    if (nc->rec_len + (size_t)n + 2 > nc->rec_cap) {
        size_t cap = (nc->rec_cap + (size_t)n + 2) * 2;
        char *p = realloc(nc->rec, cap);

        if (!p)
            return -ENOMEM;
        nc->rec = p;
        nc->rec_cap = cap;
    }
    va_start(ap, fmt);
    vsnprintf(nc->rec + nc->rec_len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    nc->rec_len += (size_t)n;
    nc->rec[nc->rec_len++] = '\n';
    nc->rec[nc->rec_len] = '\0';
    return 0;
}

int nc_fail(struct nc *nc, int err, const char *fmt, ...)
{
    va_list ap;
    size_t n;

    va_start(ap, fmt);
    vsnprintf(nc->err, sizeof(nc->err), fmt, ap);
    va_end(ap);
    n = strlen(nc->err);
    snprintf(nc->err + n, sizeof(nc->err) - n, ": %s", strerror(-err));
    n = strlen(nc->err);
    if (nc->kmsg[0])
        snprintf(nc->err + n, sizeof(nc->err) - n, " (kernel: %s)", nc->kmsg);
    return err;
}

void nc_kerr_reset(struct nc *nc)
{
    nc->kerr = 0;
    nc->kmsg[0] = '\0';
}

int nc_nlerr(struct nc *nc, int nlerr)
{
    if (nc->kerr < 0)
        return nc->kerr;
    switch (nlerr < 0 ? -nlerr : nlerr) {
    case NLE_NOMEM: return -ENOMEM;
    case NLE_EXIST: return -EEXIST;
    case NLE_OBJ_NOTFOUND: return -ENOENT;
    case NLE_NODEV: return -ENODEV;
    case NLE_PERM: return -EPERM;
    case NLE_INVAL: return -EINVAL;
    case NLE_AGAIN: return -EAGAIN;
    case NLE_BUSY: return -EBUSY;
    case NLE_RANGE: return -ERANGE;
    case NLE_NOADDR: return -EADDRNOTAVAIL;
    case NLE_AF_NOSUPPORT: return -EAFNOSUPPORT;
    case NLE_OPNOTSUPP: return -EOPNOTSUPP;
    default: return -EIO;
    }
}

/* Keeps the kernel's errno and its extended-ack text: libnl maps errno to
 * its own codes and drops the message, which is what the caller needs. */
static int nl_err_cb(struct sockaddr_nl *nla, struct nlmsgerr *e, void *arg)
{
    struct nc *nc = arg;
    const struct nlmsghdr *nlh = (const struct nlmsghdr *)((const char *)e - NLMSG_HDRLEN);
    size_t off, end;

    nc->kerr = e->error;
    if (!(nlh->nlmsg_flags & NLM_F_ACK_TLVS))
        return NL_STOP;
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
            break;
        }
        off += NLA_ALIGN(a->nla_len);
    }
    return NL_STOP;
}

int nc_nl_setup(struct nc *nc, struct nl_sock *sk)
{
    int one = 1;
    int fd = nl_socket_get_fd(sk);

    /* Both are best effort: old kernels lack them and still work. */
    (void)setsockopt(fd, SOL_NETLINK, NETLINK_EXT_ACK, &one, sizeof(one));
    (void)setsockopt(fd, SOL_NETLINK, NETLINK_CAP_ACK, &one, sizeof(one));
    if (nl_socket_modify_err_cb(sk, NL_CB_CUSTOM, nl_err_cb, nc) < 0)
        return -ENOMEM;
    return 0;
}

int nc_rt_sock(struct nc *nc, struct nl_sock **out)
{
    struct nl_sock *sk = NULL;
    int err;

    if (nc->rt) {
        *out = nc->rt;
        return 0;
    }
    sk = nl_socket_alloc();
    if (!sk)
        return nc_fail(nc, -ENOMEM, "rtnetlink socket");
    err = nl_connect(sk, NETLINK_ROUTE);
    if (err < 0) {
        err = nc_fail(nc, nc_nlerr(nc, err), "rtnetlink socket");
        goto out;
    }
    err = nc_nl_setup(nc, sk);
    if (err < 0)
        goto out;
    nc->rt = sk;
    sk = NULL;
    *out = nc->rt;
out:
    if (sk)
        nl_socket_free(sk);
    return err;
}

int nc_ct_sock(struct nc *nc, struct nl_sock **out)
{
    struct nl_sock *sk = NULL;
    int err;

    if (nc->ct) {
        *out = nc->ct;
        return 0;
    }
    sk = nl_socket_alloc();
    if (!sk)
        return nc_fail(nc, -ENOMEM, "conntrack socket");
    err = nfnl_connect(sk);
    if (err < 0) {
        err = nc_fail(nc, nc_nlerr(nc, err), "conntrack socket");
        goto out;
    }
    err = nc_nl_setup(nc, sk);
    if (err < 0)
        goto out;
    nc->ct = sk;
    sk = NULL;
    *out = nc->ct;
out:
    if (sk)
        nl_socket_free(sk);
    return err;
}

bool nc_ifname_valid(const char *name)
{
    size_t len = strnlen(name, NC_IFNAMSIZ);

    /* The kernel's dev_valid_name(): not empty, fits, no '/', ':' or
     * whitespace, not "." or "..". */
    if (len == 0 || len >= NC_IFNAMSIZ)
        return false;
    if (!strcmp(name, ".") || !strcmp(name, ".."))
        return false;
    for (const char *p = name; *p; p++) {
        if (*p == '/' || *p == ':' || *p <= ' ' || *p == 0x7f)
            return false;
    }
    return true;
}

bool nc_name_owned(const struct nc *nc, const char *name)
{
    size_t plen = strlen(nc->prefix);

    return name && nc_ifname_valid(name) && strncmp(name, nc->prefix, plen) == 0 &&
           strlen(name) > plen;
}

int nc_check_owned(struct nc *nc, const char *name)
{
    nc_kerr_reset(nc);
    if (!name)
        return nc_fail(nc, -EINVAL, "interface name missing");
    if (strnlen(name, NC_IFNAMSIZ) >= NC_IFNAMSIZ)
        return nc_fail(nc, -EINVAL, "interface name %.16s...: longer than %d characters",
                       name, NC_IFNAMSIZ - 1);
    if (!nc_ifname_valid(name))
        return nc_fail(nc, -EINVAL, "interface name \"%s\" is not valid", name);
    if (!nc_name_owned(nc, name))
        return nc_fail(nc, -EINVAL, "interface %s: not under the owned prefix \"%s\"", name,
                       nc->prefix);
    return 0;
}

int nc_ifindex(struct nc *nc, const char *name, int *out)
{
    unsigned idx = if_nametoindex(name);

    if (!idx)
        return nc_fail(nc, -ENODEV, "interface %s", name);
    *out = (int)idx;
    return 0;
}

int nc_prefix_parse(const char *s, struct nc_prefix *p)
{
    char buf[INET6_ADDRSTRLEN + 8];
    const char *slash;
    size_t alen;
    unsigned max;

    if (!s)
        return -EINVAL;
    memset(p, 0, sizeof(*p));
    slash = strchr(s, '/');
    alen = slash ? (size_t)(slash - s) : strlen(s);
    if (alen == 0 || alen >= INET6_ADDRSTRLEN)
        return -EINVAL;
    memcpy(buf, s, alen);
    buf[alen] = '\0';
    if (inet_pton(AF_INET, buf, p->addr) == 1) {
        p->family = AF_INET;
        max = 32;
    } else if (inet_pton(AF_INET6, buf, p->addr) == 1) {
        p->family = AF_INET6;
        max = 128;
    } else {
        return -EINVAL;
    }
    p->len = max;
    if (slash) {
        const char *d = slash + 1;
        unsigned v = 0;

        if (!*d || strlen(d) > 3)
            return -EINVAL;
        for (; *d; d++) {
            if (*d < '0' || *d > '9')
                return -EINVAL;
            v = v * 10 + (unsigned)(*d - '0');
        }
        if (v > max)
            return -EINVAL;
        p->len = v;
        p->has_len = true;
    }
    return 0;
}

void nc_prefix_mask(struct nc_prefix *p)
{
    unsigned bytes = p->family == AF_INET ? 4 : 16;

    for (unsigned i = 0; i < bytes; i++) {
        unsigned bit = i * 8;

        if (bit >= p->len)
            p->addr[i] = 0;
        else if (bit + 8 > p->len)
            p->addr[i] &= (uint8_t)(0xff << (8 - (p->len - bit)));
    }
}

void nc_prefix_last(const struct nc_prefix *p, uint8_t *out)
{
    unsigned bytes = p->family == AF_INET ? 4 : 16;

    memcpy(out, p->addr, bytes);
    for (unsigned i = 0; i < bytes; i++) {
        unsigned bit = i * 8;

        if (bit >= p->len)
            out[i] = 0xff;
        else if (bit + 8 > p->len)
            out[i] |= (uint8_t)(0xff >> (p->len - bit));
    }
}

bool nc_prefix_contains(const struct nc_prefix *net, int family, const void *addr)
{
    struct nc_prefix a, n;

    if (family != net->family)
        return false;
    n = *net;
    nc_prefix_mask(&n);
    a = n;
    memcpy(a.addr, addr, family == AF_INET ? 4 : 16);
    nc_prefix_mask(&a);
    return memcmp(a.addr, n.addr, family == AF_INET ? 4 : 16) == 0;
}

void nc_prefix_format(const struct nc_prefix *p, bool with_len, char *buf, size_t len)
{
    char a[INET6_ADDRSTRLEN];

    if (!inet_ntop(p->family, p->addr, a, sizeof(a)))
        a[0] = '\0';
    if (with_len)
        snprintf(buf, len, "%s/%u", a, p->len);
    else
        snprintf(buf, len, "%s", a);
}
