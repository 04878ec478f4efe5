/*
 * netconfig: the only way mtlsgw changes the kernel's network state.
 *
 * Links, addresses and routes over rtnetlink, the firewall table
 * `inet mtlsgw` over nftables netlink, conntrack flushes, and
 * reconciliation of desired against actual state. The library knows nothing
 * of TLS or peers and never prints: every function returns 0 or a negative
 * errno, and nc_error() tells what failed with the kernel's own message where
 * it sent one. See docs/netconfig.md.
 */
#ifndef MTLSGW_NETCONFIG_H
#define MTLSGW_NETCONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* IFNAMSIZ, without pulling <net/if.h> into every caller. */
#define NC_IFNAMSIZ 16
/* Longest "addr/len" or "addr" text the library hands back. */
#define NC_ADDRSTRLEN 56

struct nc;

enum nc_backend {
    NC_BACKEND_LINUX = 0, /* real netlink */
    NC_BACKEND_RECORD,    /* records each call as a line of text; no kernel */
};

struct nc_options {
    /* Prefix of the interfaces the library owns; NULL: the build default. */
    const char *ifprefix;
    enum nc_backend backend;
};

int nc_new(const struct nc_options *opts, struct nc **out);
void nc_free(struct nc *nc);
/* Message of the last failure on this handle ("" when none). */
const char *nc_error(const struct nc *nc);
const char *nc_ifprefix(const struct nc *nc);
/* True when name fits IFNAMSIZ, starts with the owned prefix and is longer. */
bool nc_name_owned(const struct nc *nc, const char *name);
/* NC_BACKEND_RECORD only: the calls so far, one per line (owned by nc). */
const char *nc_record_text(const struct nc *nc);
void nc_record_clear(struct nc *nc);

/* --- links ------------------------------------------------------------- */

/* A TUN device (IFF_TUN | IFF_NO_PI, not persistent: it disappears when the
 * last copy of *fd_out is closed). *fd_out is O_CLOEXEC. */
int nc_tun_create(struct nc *nc, const char *name, int *fd_out);
/* The same with IFF_VNET_HDR: every read and write on *fd_out starts with a
 * struct virtio_net_hdr (10 bytes, host order), so that the holder can turn
 * on the TUN's offloads (TUNSETOFFLOAD: checksums, TCP segmentation) and
 * move up to 64 KiB of TCP segments per read and write. */
int nc_tun_create_vnet(struct nc *nc, const char *name, int *fd_out);
/* Both make the device's queue (txqueuelen: packets, or with offloads
 * segment trains, waiting for the holder to read them) this short instead
 * of the kernel's 500: what waits there delays every packet behind it, a
 * ping behind a bulk transfer (docs/performance.md, "WAN"); a full queue
 * drops, which TCP takes as a link's loss. */
#define NC_TUN_TXQLEN 32
int nc_link_set_up(struct nc *nc, const char *name);
int nc_link_set_down(struct nc *nc, const char *name);
int nc_link_set_mtu(struct nc *nc, const char *name, unsigned mtu);
/* Delete an owned link (a TUN of a dead process that was made persistent,
 * or one found by reconciliation). */
int nc_link_del(struct nc *nc, const char *name);
/* Delete many owned links in one kernel operation. Each link deletion waits
 * for an RCU grace period (about 15-20 ms); a group deletion waits once for
 * all of them, so tearing down many peers costs far less per peer. The
 * links are moved to a device group no other link uses, then that group is
 * deleted. Missing links are skipped. */
int nc_links_del(struct nc *nc, const char *const *names, size_t n);

/* --- addresses and routes ------------------------------------------------ */

/* local is "addr/len" (len defaults to the full length); peer, when not NULL,
 * makes a point-to-point address ("addr" or "addr/len"). */
int nc_addr_add(struct nc *nc, const char *ifname, const char *local, const char *peer);
int nc_addr_del(struct nc *nc, const char *ifname, const char *local, const char *peer);

/* dst "addr/len" via an owned interface; table 0 means main (254). */
int nc_route_add(struct nc *nc, const char *dst, const char *ifname, uint32_t metric,
                 uint32_t table);
int nc_route_del(struct nc *nc, const char *dst, const char *ifname, uint32_t metric,
                 uint32_t table);

/* --- state: what the library owns, or what the caller wants --------------- */

struct nc_link_info {
    char name[NC_IFNAMSIZ];
    int ifindex; /* 0 in a desired state */
    unsigned mtu; /* 0: any */
    bool up;
};

struct nc_addr_info {
    char ifname[NC_IFNAMSIZ];
    char local[NC_ADDRSTRLEN]; /* "addr/len" */
    char peer[NC_ADDRSTRLEN];  /* "" unless point-to-point */
};

struct nc_route_info {
    char dst[NC_ADDRSTRLEN]; /* "addr/len" */
    char ifname[NC_IFNAMSIZ];
    uint32_t metric;
    uint32_t table;
};

struct nc_allow_info {
    char ifname[NC_IFNAMSIZ];
    char prefix[NC_ADDRSTRLEN]; /* "addr/len" */
};

struct nc_state {
    struct nc_link_info *links;
    size_t n_links;
    struct nc_addr_info *addrs;
    size_t n_addrs;
    struct nc_route_info *routes;
    size_t n_routes;
    /* Firewall contents (nc_owned_list fills them when the table exists). */
    char (*trusted)[NC_IFNAMSIZ];
    size_t n_trusted;
    struct nc_allow_info *allowed;
    size_t n_allowed;
    struct nc_allow_info *sources; /* sources4/sources6: anti-spoofing */
    size_t n_sources;
    bool fw_installed;
};

int nc_state_new(struct nc_state **out);
void nc_state_free(struct nc_state *st);
/* Builders for a desired state; they copy their arguments, normalise
 * addresses ("10.1.2.3/16" becomes "10.1.0.0/16" for routes and prefixes)
 * and refuse what does not parse or is too long (-EINVAL). */
int nc_state_add_link(struct nc_state *st, const char *name, unsigned mtu, bool up);
int nc_state_add_addr(struct nc_state *st, const char *ifname, const char *local,
                      const char *peer);
int nc_state_add_route(struct nc_state *st, const char *dst, const char *ifname,
                       uint32_t metric, uint32_t table);
int nc_state_add_trusted(struct nc_state *st, const char *ifname);
int nc_state_add_allowed(struct nc_state *st, const char *ifname, const char *prefix);
int nc_state_add_source(struct nc_state *st, const char *ifname, const char *prefix);

/* Links named with the owned prefix, their addresses, routes (any table)
 * via them, and the firewall sets trusted_ifaces, allowed4/6, sources4/6. */
int nc_owned_list(struct nc *nc, struct nc_state **out);

/* --- firewall: table inet mtlsgw ----------------------------------------- */

struct nc_service {
    uint8_t proto; /* IPPROTO_TCP, IPPROTO_UDP, IPPROTO_SCTP */
    uint16_t port; /* host byte order */
};

struct nc_fw_config {
    const struct nc_service *gated; /* local services behind the gate */
    size_t n_gated;
};

/* Replace the whole table in one transaction, with nothing trusted, nothing
 * allowed and the gate shut. Other tables are never read or changed. */
int nc_fw_install(struct nc *nc, const struct nc_fw_config *cfg);
/* Remove the table (and with it every opening). Absent is not an error. */
int nc_fw_uninstall(struct nc *nc);

/* timeout_ms 0: no timeout. Trusting again refreshes the timeout. */
int nc_fw_trust_iface(struct nc *nc, const char *ifname, uint32_t timeout_ms);
int nc_fw_untrust_iface(struct nc *nc, const char *ifname);
/* Let traffic that enters on ifname reach prefixes[] (IPv4 and IPv6 mixed,
 * "addr/len"); adding what is there is a no-op. A prefix that starts or
 * ends inside another one of the same interface is refused by the kernel
 * (-ENOTEMPTY) and then nothing changes; one that encloses others is
 * accepted. */
int nc_fw_allow_prefixes(struct nc *nc, const char *ifname, const char *const *prefixes,
                         size_t n);
/* Take prefixes[] back; removing what is absent is a no-op. n == 0 removes
 * every prefix of ifname (it reads the sets: use it on revocation, not on a
 * hot path). */
int nc_fw_disallow_prefixes(struct nc *nc, const char *ifname, const char *const *prefixes,
                            size_t n);
/* Anti-spoofing: a packet that enters on an owned interface is dropped on
 * input and forward unless its source lies inside one of the prefixes
 * given for that interface (the peer's tunnel address and its networks;
 * IPv4 and IPv6 mixed). With none given, every packet from it is dropped.
 * Within one call a prefix enclosed by another is folded into it (also in
 * nc_fw_allow_prefixes); overlaps with an earlier call behave as there. */
int nc_fw_allow_sources(struct nc *nc, const char *ifname, const char *const *prefixes,
                        size_t n);
/* Take them back, as nc_fw_disallow_prefixes (n == 0: all of ifname). */
int nc_fw_disallow_sources(struct nc *nc, const char *ifname, const char *const *prefixes,
                           size_t n);
/* Open the gate to the gated services for one source address; timeout_ms
 * must be > 0. Opening again refreshes the timeout. */
int nc_fw_gate_open(struct nc *nc, const char *addr, uint32_t timeout_ms);
int nc_fw_gate_close(struct nc *nc, const char *addr);

/* --- conntrack ---------------------------------------------------------- */

/* Delete every conntrack entry whose original or reply source or destination
 * lies inside one of prefixes[] ("addr" or "addr/len"). *n_deleted, when not
 * NULL, receives the count. */
int nc_conntrack_flush(struct nc *nc, const char *const *prefixes, size_t n,
                       unsigned *n_deleted);

/* --- reconciliation ----------------------------------------------------- */

enum nc_change_op { NC_CHANGE_ADD, NC_CHANGE_DEL, NC_CHANGE_FIX };
enum nc_change_kind {
    NC_KIND_FW_TABLE, /* the table is missing (apply: nc_fw_install(NULL)) */
    NC_KIND_LINK,     /* ADD: missing TUN (apply cannot create it: the caller
                       * holds TUN fds); DEL: owned link not desired;
                       * FIX: up/down or MTU differs */
    NC_KIND_ADDR,
    NC_KIND_ROUTE,
    NC_KIND_TRUSTED,
    NC_KIND_ALLOWED,
    NC_KIND_SOURCE,
};

struct nc_change {
    enum nc_change_op op;
    enum nc_change_kind kind;
    struct nc_link_info link;   /* NC_KIND_LINK */
    struct nc_addr_info addr;   /* NC_KIND_ADDR */
    struct nc_route_info route; /* NC_KIND_ROUTE */
    struct nc_allow_info allow; /* NC_KIND_ALLOWED, NC_KIND_SOURCE; NC_KIND_TRUSTED: ifname */
};

struct nc_diff {
    struct nc_change *changes;
    size_t n;
};

int nc_reconcile_diff(struct nc *nc, const struct nc_state *desired, struct nc_diff **out);
/* Applies every change it can; returns the first error (others go on). */
int nc_reconcile_apply(struct nc *nc, const struct nc_diff *diff);
void nc_diff_free(struct nc_diff *diff);
/* "+route 10.9.0.0/16 dev mtg0 metric 0 table 254" and the like. */
int nc_change_format(const struct nc_change *c, char *buf, size_t len);

/* --- notifications ------------------------------------------------------ */

enum nc_event_type {
    NC_EVENT_LINK_NEW,
    NC_EVENT_LINK_DEL,
    NC_EVENT_ADDR_NEW,
    NC_EVENT_ADDR_DEL,
    NC_EVENT_ROUTE_NEW,
    NC_EVENT_ROUTE_DEL,
};

struct nc_event {
    enum nc_event_type type;
    struct nc_link_info link;
    struct nc_addr_info addr;
    struct nc_route_info route;
};

typedef void nc_event_fn(const struct nc_event *ev, void *arg);

/* A non-blocking fd subscribed to link, address and route notifications;
 * poll it for POLLIN and call nc_monitor_dispatch(). Owned by nc. */
int nc_monitor_fd(struct nc *nc, int *fd_out);
/* Reads what is pending and calls fn for each change on an owned link.
 * -ENOBUFS means notifications were lost: run a reconciliation. */
int nc_monitor_dispatch(struct nc *nc, nc_event_fn *fn, void *arg);

#endif
