/* Internal to netconfig/: the handle and the helpers its files share. */
#ifndef MTLSGW_NC_PRIVATE_H
#define MTLSGW_NC_PRIVATE_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "netconfig.h"

struct nl_sock;
struct mnl_socket;

#define NC_TABLE "mtlsgw"

struct nc_ifcache {
    int ifindex;
    char name[NC_IFNAMSIZ];
};

struct nc {
    char prefix[NC_IFNAMSIZ];
    enum nc_backend backend;
    char err[512];

    struct nl_sock *rt;  /* rtnetlink requests and dumps */
    struct nl_sock *ct;  /* nfnetlink conntrack */
    struct nl_sock *mon; /* rtnetlink notifications */
    struct mnl_socket *nft;
    uint32_t nft_seq;

    /* Filled by the error callbacks from the last NLMSG_ERROR. */
    int kerr;
    char kmsg[256];

    /* Owned links seen by the monitor, so that deletions can be named. */
    struct nc_ifcache *ifc;
    size_t n_ifc;

    /* NC_BACKEND_RECORD */
    char *rec;
    size_t rec_len, rec_cap;
};

/* A parsed "addr[/len]". */
struct nc_prefix {
    int family; /* AF_INET or AF_INET6 */
    uint8_t addr[16];
    unsigned len;
    bool has_len;
};

#if defined(__GNUC__)
#define NC_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define NC_PRINTF(a, b)
#endif

/* Sets nc->err to "what: strerror(-err)[: kernel message]" and returns err. */
int nc_fail(struct nc *nc, int err, const char *fmt, ...) NC_PRINTF(3, 4);
void nc_kerr_reset(struct nc *nc);
/* Maps a libnl error to -errno, preferring the errno the kernel sent. */
int nc_nlerr(struct nc *nc, int nlerr);
/* Appends a line to the record (NC_BACKEND_RECORD); returns 0 or -ENOMEM. */
int nc_record(struct nc *nc, const char *fmt, ...) NC_PRINTF(2, 3);

int nc_check_owned(struct nc *nc, const char *name);
int nc_prefix_parse(const char *s, struct nc_prefix *p);
/* Clear the host bits after len. */
void nc_prefix_mask(struct nc_prefix *p);
/* "addr/len" (with_len) or "addr". */
void nc_prefix_format(const struct nc_prefix *p, bool with_len, char *buf, size_t len);
bool nc_prefix_contains(const struct nc_prefix *net, int family, const void *addr);
/* Last address of the prefix, into out[16]. */
void nc_prefix_last(const struct nc_prefix *p, uint8_t *out);

/* Parses a local address and an optional peer; the prefix length is the
 * same on both. pp->family is 0 when there is no peer. */
int nc_addr_norm(const char *local, const char *peer, struct nc_prefix *lp,
                 struct nc_prefix *pp);

/* Lazily connected sockets. */
int nc_rt_sock(struct nc *nc, struct nl_sock **out);
int nc_ct_sock(struct nc *nc, struct nl_sock **out);
/* Installs the extack-reading error callback on a libnl socket. */
int nc_nl_setup(struct nc *nc, struct nl_sock *sk);
int nc_ifindex(struct nc *nc, const char *name, int *out);

/* Listing into a state, for nc_owned_list and reconciliation. Addresses
 * and routes are those of st->links, which must be listed first. */
int nc_links_list(struct nc *nc, struct nc_state *st);
int nc_addrs_list(struct nc *nc, struct nc_state *st);
int nc_routes_list(struct nc *nc, struct nc_state *st);
struct rtnl_route;
/* A route this library manages: not derived by the kernel, unicast. */
bool nc_route_ours(struct rtnl_route *r);
void nc_route_info_fill(struct rtnl_route *r, const char *ifname, struct nc_route_info *ri);
/* Which owned link has this index ("" when none). */
const char *nc_state_ifname(const struct nc_state *st, int ifindex);

/* Firewall reading, for nc_owned_list and reconciliation. */
int nc_fw_read(struct nc *nc, struct nc_state *st);

/* Internal state helpers (state.c). */
int nc_state_push(void **arr, size_t *n, size_t size, const void *item);
bool nc_ifname_valid(const char *name);

#endif
