/*
 * privsep.c: the privileged parent's end of privsep.h. It alone holds
 * CAP_NET_ADMIN and calls netconfig/; every request is re-checked here.
 */
#include "privsep.h"

#include <arpa/inet.h>
#include <errno.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "cidr.h"
#include "config.h"
#include "fsutil.h"
#include "log.h"
#include "netconfig.h"
#include "registry.h"
#include "roam.h"

struct ps_entry {
    char ifname[PS_IFNAMSIZ];
    char remote[PS_ADDRLEN];          /* the other end's tunnel address */
    char peer_name[64];               /* the hub peer, or our [uplink NAME] */
    bool uplink;
    char *flush[PS_MAX_PREFIXES + 1]; /* the remote end and its routes */
    size_t n_flush;
    struct ps_entry *next;
};

/* A gate opening the parent made, in its own memory: when the session
 * process dies, these are closed without asking it (fail closed). */
struct ps_gate_rec {
    int family;
    uint8_t addr[16];
    long long until_ms; /* CLOCK_MONOTONIC; the kernel drops it then anyway */
    struct ps_gate_rec *next;
};

/* More openings than this are refused: a session process gone wrong cannot
 * grow the parent's memory without bound. */
#define PS_MAX_GATES 4096

struct ps_server {
    const struct config *cfg;
    struct nc *nc;
    struct cidr pool;
    bool have_pool;
    struct ps_entry *entries;
    struct ps_gate_rec *gates;
    size_t n_gates;
    /* registry.json as last parsed, and the stat() taken before that parse:
     * re-read only when the file changed (every writer renames a new file
     * over it), not for every tunnel: at 1,000 peers a parse is 10 ms. */
    struct registry *reg;
    struct stat reg_st;
    struct roam *roam; /* [trust NAME] issuers: roaming tunnel peers */
};

static void entry_free(struct ps_entry *e)
{
    for (size_t i = 0; i < e->n_flush; i++)
        free(e->flush[i]);
    free(e);
}

static bool same_file(const struct stat *a, const struct stat *b)
{
    return a->st_dev == b->st_dev && a->st_ino == b->st_ino && a->st_size == b->st_size &&
           a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec;
}

/* The registry as it is on disk now: the parsed copy while the file is the
 * one it was parsed from. The stat() comes first, so a file replaced during
 * the parse is parsed again next time rather than taken for the old one. */
static int parent_registry(struct ps_server *ps, const struct registry **out)
{
    char *path = fs_join(ps->cfg->pki.dir, "registry.json"), why[256];
    struct registry *reg = NULL;
    struct stat st;
    int rc;

    if (!path)
        return -ENOMEM;
    if (stat(path, &st) < 0) {
        rc = -errno;
        goto out;
    }
    if (ps->reg && same_file(&st, &ps->reg_st)) {
        rc = 0;
        goto out;
    }
    rc = registry_load(path, &reg, why, sizeof(why));
    if (rc < 0)
        goto out;
    registry_free(ps->reg);
    ps->reg = reg;
    ps->reg_st = st;
out:
    free(path);
    *out = ps->reg;
    return rc;
}

static int server_new(const struct config *cfg, enum nc_backend backend,
                      struct ps_server **out, char *err, size_t errlen)
{
    struct ps_server *ps = calloc(1, sizeof(*ps));
    struct nc_options o = {.ifprefix = NULL, .backend = backend};
    struct nc_service gated[CFG_MAX_LIST];
    struct nc_fw_config fw = {.gated = gated, .n_gated = cfg->fw.n_gate};
    struct nc_state *st = NULL;
    int rc;

    if (!ps)
        return -ENOMEM;
    ps->cfg = cfg;
    if (cfg->tunnel.pool && cidr_parse(cfg->tunnel.pool, &ps->pool, NULL) == 0)
        ps->have_pool = true;
    rc = roam_new(cfg, &ps->roam);
    if (rc < 0) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    rc = nc_new(&o, &ps->nc);
    if (rc < 0) {
        snprintf(err, errlen, "netlink: %s", strerror(-rc));
        goto fail;
    }
    for (unsigned i = 0; i < cfg->fw.n_gate; i++) {
        gated[i].proto = cfg->fw.gate[i].proto;
        gated[i].port = cfg->fw.gate[i].port;
    }
    /* Fail closed: the table, replaced whole, with nothing trusted. */
    rc = nc_fw_install(ps->nc, &fw);
    if (rc < 0) {
        snprintf(err, errlen, "cannot install the nftables table inet mtlsgw: %s",
                 nc_error(ps->nc));
        goto fail;
    }
    /* Interfaces (and their routes) left by a previous run. */
    if (nc_owned_list(ps->nc, &st) == 0 && st->n_links) {
        const char *names[256];
        size_t n = 0;
        for (size_t i = 0; i < st->n_links && n < 256; i++)
            names[n++] = st->links[i].name;
        if (nc_links_del(ps->nc, names, n) < 0) {
            snprintf(err, errlen, "cannot remove interfaces left behind: %s", nc_error(ps->nc));
            rc = -EIO;
            nc_state_free(st);
            goto fail;
        }
    }
    nc_state_free(st);
    *out = ps;
    return 0;
fail:
    ps_server_free(ps);
    return rc < 0 ? rc : -EIO;
}

int ps_server_new(const struct config *cfg, struct ps_server **out, char *err, size_t errlen)
{
    return server_new(cfg, NC_BACKEND_LINUX, out, err, errlen);
}

int ps_server_new_record(const struct config *cfg, struct ps_server **out, char *err,
                         size_t errlen)
{
    return server_new(cfg, NC_BACKEND_RECORD, out, err, errlen);
}

const char *ps_server_record(const struct ps_server *ps)
{
    return nc_record_text(ps->nc);
}

static bool str_ok(const char *s, size_t cap)
{
    return memchr(s, '\0', cap) != NULL;
}

static bool addr4(const char *s, uint8_t out[4])
{
    return inet_pton(AF_INET, s, out) == 1;
}

/* A unicast address a tunnel end may carry: not 0/8, loopback, link-local,
 * multicast, reserved or broadcast. */
static bool addr4_unicast(const uint8_t a[4])
{
    return a[0] != 0 && a[0] != 127 && !(a[0] == 169 && a[1] == 254) && a[0] < 224;
}

static int check_prefixes(char (*list)[PS_ADDRLEN], uint32_t n, const char *what, char *err,
                          size_t errlen)
{
    if (n > PS_MAX_PREFIXES) {
        snprintf(err, errlen, "too many %s (%u, at most %d)", what, n, PS_MAX_PREFIXES);
        return -EINVAL;
    }
    for (uint32_t i = 0; i < n; i++) {
        struct cidr c;
        if (!str_ok(list[i], PS_ADDRLEN) || cidr_parse(list[i], &c, NULL) < 0) {
            snprintf(err, errlen, "%s[%u] is not a prefix", what, i);
            return -EINVAL;
        }
    }
    return 0;
}

/* Every prefix of list inside one of bounds[]; else -EPERM naming it. */
static int check_inside(const char (*list)[PS_ADDRLEN], uint32_t n, char *const *bounds,
                        unsigned n_bounds, const char *what, const char *bound, char *err,
                        size_t errlen)
{
    for (uint32_t i = 0; i < n; i++) {
        if (!config_prefix_inside(bounds, n_bounds, list[i])) {
            snprintf(err, errlen, "%s %s is outside %s", what, list[i], bound);
            return -EPERM;
        }
    }
    return 0;
}

static bool cidr_overlap(const struct cidr *a, const struct cidr *b)
{
    const struct cidr *wide = a->plen <= b->plen ? a : b, *narrow = wide == a ? b : a;

    return a->family == b->family && cidr_contains(wide, narrow->family, narrow->addr);
}

static void mask_to_cidr(const struct sockaddr *addr, const struct sockaddr *mask,
                         struct cidr *out)
{
    const uint8_t *a, *m;
    size_t len;

    memset(out, 0, sizeof(*out));
    out->family = addr->sa_family;
    if (addr->sa_family == AF_INET) {
        a = (const uint8_t *)&((const struct sockaddr_in *)addr)->sin_addr;
        m = mask ? (const uint8_t *)&((const struct sockaddr_in *)mask)->sin_addr : NULL;
        len = 4;
    } else {
        a = (const uint8_t *)&((const struct sockaddr_in6 *)addr)->sin6_addr;
        m = mask ? (const uint8_t *)&((const struct sockaddr_in6 *)mask)->sin6_addr : NULL;
        len = 16;
    }
    for (size_t i = 0; i < len; i++) {
        uint8_t mb = m ? m[i] : 0xff;
        out->addr[i] = a[i] & mb;
        for (; mb & 0x80; mb = (uint8_t)(mb << 1))
            out->plen++;
    }
}

/*
 * A tunnel must not take over a network this host reaches directly: a
 * prefix equal to or inside the subnet of an address on an interface we do
 * not own (the LAN, the WAN, loopback) would steal some or all of its hosts
 * by being more specific, and a tunnel address there would steal one.
 * Wider prefixes are fine: the connected network stays more specific. One
 * address dump for all of a request's prefixes (n of them, then the
 * tunnel addresses in addrs, for an uplink).
 */
static int check_not_connected(const struct ps_server *ps, const char (*routes)[PS_ADDRLEN],
                               uint32_t n, const char *const *addrs, size_t n_addrs,
                               char *err, size_t errlen)
{
    struct ifaddrs *ifa = NULL;
    int rc = 0;

    if (n + n_addrs == 0)
        return 0;
    if (getifaddrs(&ifa) < 0) {
        rc = -errno;
        snprintf(err, errlen, "cannot list this host's addresses: %s", strerror(-rc));
        return rc;
    }
    for (size_t k = 0; k < n + n_addrs && rc == 0; k++) {
        const char *prefix = k < n ? routes[k] : addrs[k - n];
        struct cidr p;
        if (cidr_parse(prefix, &p, NULL) < 0) {
            rc = -EINVAL;
            snprintf(err, errlen, "%s is not a prefix", prefix);
            break;
        }
        for (struct ifaddrs *i = ifa; i && rc == 0; i = i->ifa_next) {
            struct cidr net;
            char text[64];
            if (!i->ifa_addr || (i->ifa_addr->sa_family != AF_INET &&
                                 i->ifa_addr->sa_family != AF_INET6) ||
                nc_name_owned(ps->nc, i->ifa_name))
                continue;
            mask_to_cidr(i->ifa_addr, i->ifa_netmask, &net);
            if (net.family != p.family || p.plen < net.plen || !cidr_overlap(&net, &p))
                continue;
            cidr_format(&net, text, sizeof(text));
            snprintf(err, errlen, "%s %s lies in %s, directly connected on %s",
                     k < n ? "route" : "tunnel address", prefix, text, i->ifa_name);
            rc = -EPERM;
        }
    }
    freeifaddrs(ifa);
    return rc;
}

/* A hub peer: its addresses come from [tunnel] pool (.1 is ours), its
 * routes from root's [tunnel] peer-networks (and, as defence in depth, the
 * registry), its reachable destinations from [tunnel] routes. */
static int check_hub_peer(struct ps_server *ps, const struct ps_tun_up *u, const uint8_t l[4],
                          const uint8_t r[4], char *err, size_t errlen)
{
    const struct config *cfg = ps->cfg;
    const struct registry *reg = NULL;
    const struct peer *p;
    uint8_t first[4], last[4];
    int rc;

    if (!ps->have_pool) {
        snprintf(err, errlen, "no [tunnel] pool: this daemon is not a hub");
        return -EPERM;
    }
    memcpy(first, ps->pool.addr, 4);
    memcpy(last, ps->pool.addr, 4);
    for (unsigned b = ps->pool.plen; b < 32; b++)
        last[b / 8] |= (uint8_t)(0x80u >> (b % 8));
    first[3]++; /* .1: the hub's end; a pool is at most a /30 */
    if (memcmp(l, first, 4) != 0 || !cidr_contains(&ps->pool, AF_INET, r) ||
        memcmp(r, ps->pool.addr, 4) == 0 || memcmp(r, last, 4) == 0 || memcmp(l, r, 4) == 0) {
        snprintf(err, errlen, "tunnel addresses %s <-> %s: want the first address of [tunnel] "
                 "pool %s and another one inside it", u->local, u->remote, cfg->tunnel.pool);
        return -EPERM;
    }
    for (struct ps_entry *e = ps->entries; e; e = e->next) {
        if (strcmp(e->remote, u->remote) == 0) {
            snprintf(err, errlen, "tunnel address %s is in use on %s", u->remote, e->ifname);
            return -EADDRINUSE;
        }
    }
    if ((rc = check_inside(u->allowed, u->n_allowed, cfg->tunnel.routes, cfg->tunnel.n_routes,
                           "allowed", "[tunnel] routes", err, errlen)) < 0)
        return rc;
    /* The boundary: root's own policy, never a file the session writes. */
    if ((rc = check_inside(u->routes, u->n_routes, cfg->tunnel.peer_networks,
                           cfg->tunnel.n_peer_networks, "route",
                           "[tunnel] peer-networks", err, errlen)) < 0)
        return rc;
    if ((rc = check_not_connected(ps, u->routes, u->n_routes, NULL, 0, err, errlen)) < 0)
        return rc;
    /* No route over the pool (the peer would send from other peers' tunnel
     * addresses) or over another live tunnel's routes. */
    for (uint32_t i = 0; i < u->n_routes; i++) {
        struct cidr c, o;
        if (cidr_parse(u->routes[i], &c, NULL) < 0)
            continue;
        if (cidr_overlap(&c, &ps->pool)) {
            snprintf(err, errlen, "route %s overlaps [tunnel] pool %s", u->routes[i],
                     cfg->tunnel.pool);
            return -EPERM;
        }
        for (struct ps_entry *e = ps->entries; e; e = e->next) {
            if (strcmp(e->ifname, u->ifname) == 0)
                continue; /* the same name: refused as such (-EEXIST) */
            for (size_t k = 1; k < e->n_flush; k++) { /* flush[0]: its remote end */
                if (e->flush[k] && cidr_parse(e->flush[k], &o, NULL) == 0 &&
                    cidr_overlap(&c, &o)) {
                    snprintf(err, errlen, "route %s overlaps %s of %s on %s", u->routes[i],
                             e->flush[k], e->peer_name, e->ifname);
                    return -EADDRINUSE;
                }
            }
        }
    }
    /* Defence in depth only: the session process writes registry.json, so
     * this catches its mistakes, not its compromise; it can only refuse
     * more than the checks above. */
    rc = parent_registry(ps, &reg);
    if (rc < 0 && !(u->trust[0] && rc == -ENOENT)) {
        snprintf(err, errlen, "cannot re-check against the registry");
        return rc;
    }
    /* A roaming peer has no entry here: the parent judges its certificate
     * itself (roam.c), not what the session process says of it. */
    if (u->trust[0])
        return roam_check(ps->roam, u, rc < 0 ? NULL : reg, err, errlen);
    p = registry_find_name(reg, u->peer_name);
    if (!p || p->status != PEER_ACTIVE || p->role != ROLE_TUNNEL) {
        snprintf(err, errlen, "peer %s is not an active tunnel peer", u->peer_name);
        rc = -EPERM;
    }
    for (uint32_t i = 0; rc == 0 && i < u->n_routes; i++) {
        if (!config_prefix_inside(p->networks, (unsigned)p->n_networks, u->routes[i])) {
            snprintf(err, errlen, "route %s is not a network of peer %s", u->routes[i],
                     u->peer_name);
            rc = -EPERM;
        }
    }
    return rc;
}

/* Our own uplink: a configured one with no live TUN yet, routes inside its
 * accept-routes and never over the hub's own address (the connection would
 * loop), forward openings inside [tunnel] peer-networks, tunnel addresses
 * inside [tunnel] peer-networks, outside our own [tunnel] pool, never a
 * hub's server address (any of the list), taking no directly connected
 * host. */
static int check_uplink(struct ps_server *ps, const struct ps_tun_up *u, char *err,
                        size_t errlen)
{
    const struct cfg_uplink *up = NULL;
    char host[64], bound[96];
    const char *colon;
    size_t hl;
    uint8_t a[16];
    int rc;

    for (unsigned i = 0; i < ps->cfg->n_uplinks && !up; i++)
        if (strcmp(ps->cfg->uplinks[i].name, u->peer_name) == 0)
            up = &ps->cfg->uplinks[i];
    if (!up) {
        snprintf(err, errlen, "no [uplink %s] in the config", u->peer_name);
        return -EPERM;
    }
    for (struct ps_entry *e = ps->entries; e; e = e->next) {
        if (e->uplink && strcmp(e->peer_name, u->peer_name) == 0) {
            snprintf(err, errlen, "uplink %s is up already on %s", u->peer_name, e->ifname);
            return -EEXIST;
        }
    }
    for (int k = 0; k < 2; k++) {
        const char *end = k ? u->remote : u->local;
        uint8_t ea[4];
        if (!config_prefix_inside(ps->cfg->tunnel.peer_networks,
                                  ps->cfg->tunnel.n_peer_networks, end)) {
            snprintf(err, errlen, "tunnel address %s is outside [tunnel] peer-networks", end);
            return -EPERM;
        }
        if (ps->have_pool && addr4(end, ea) && cidr_contains(&ps->pool, AF_INET, ea)) {
            snprintf(err, errlen, "tunnel address %s lies in our own [tunnel] pool %s", end,
                     ps->cfg->tunnel.pool);
            return -EPERM;
        }
    }
    snprintf(bound, sizeof(bound), "[uplink %s] accept-routes", up->name);
    if ((rc = check_inside(u->routes, u->n_routes, up->accept_routes, up->n_accept_routes,
                           "route", bound, err, errlen)) < 0 ||
        (rc = check_inside(u->allowed, u->n_allowed, ps->cfg->tunnel.peer_networks,
                           ps->cfg->tunnel.n_peer_networks, "allowed",
                           "[tunnel] peer-networks", err, errlen)) < 0)
        return rc;
    {
        const char *ends[] = {u->local, u->remote};
        if ((rc = check_not_connected(ps, u->routes, u->n_routes, ends, 2, err, errlen)) < 0)
            return rc;
    }
    /* Over none of the hubs' addresses: the uplink may fail over to any. */
    for (unsigned sv = 0; sv < up->n_servers; sv++) {
        const char *server = up->servers[sv];
        colon = strrchr(server, ':');
        hl = colon ? (size_t)(colon - server) : 0;
        if (server[0] == '[' && hl >= 2)
            snprintf(host, sizeof(host), "%.*s", (int)(hl - 2), server + 1);
        else
            snprintf(host, sizeof(host), "%.*s", (int)hl, server);
        /* The routes, then the two tunnel ends (each a /32 route into the
         * tunnel: the hub's end as the peer route, ours as a local address). */
        for (uint32_t k = 0; k < u->n_routes + 2; k++) {
            const char *pre = k < u->n_routes ? u->routes[k]
                              : k == u->n_routes ? u->remote
                                                 : u->local;
            struct cidr c;
            if (cidr_parse(pre, &c, NULL) < 0)
                continue;
            if ((inet_pton(AF_INET, host, a) == 1 && cidr_contains(&c, AF_INET, a)) ||
                (inet_pton(AF_INET6, host, a) == 1 && cidr_contains(&c, AF_INET6, a))) {
                snprintf(err, errlen, "%s %s would carry the tunnel to %s into itself",
                         k < u->n_routes ? "route" : "tunnel address", pre, host);
                return -EPERM;
            }
        }
    }
    return 0;
}

/* The re-check of a TUN request: nothing here trusts the session process. */
static int check_tun_up(struct ps_server *ps, const struct ps_tun_up *u, char *err,
                        size_t errlen)
{
    uint8_t l[4], r[4];
    int rc;

    if (!str_ok(u->ifname, sizeof(u->ifname)) || !nc_name_owned(ps->nc, u->ifname)) {
        snprintf(err, errlen, "interface name outside the owned prefix");
        return -EPERM;
    }
    if (!str_ok(u->peer_name, sizeof(u->peer_name)) || !str_ok(u->local, PS_ADDRLEN) ||
        !str_ok(u->remote, PS_ADDRLEN) || !addr4(u->local, l) || !addr4(u->remote, r) ||
        u->uplink > 1 || u->mtu < 576 || u->mtu > 9000) {
        snprintf(err, errlen, "malformed request");
        return -EINVAL;
    }
    if (!addr4_unicast(l) || !addr4_unicast(r) || memcmp(l, r, 4) == 0) {
        snprintf(err, errlen, "tunnel addresses %s <-> %s: want two different unicast "
                 "addresses", u->local, u->remote);
        return -EPERM;
    }
    if ((rc = check_prefixes((char (*)[PS_ADDRLEN])u->routes, u->n_routes, "routes", err,
                             errlen)) < 0 ||
        (rc = check_prefixes((char (*)[PS_ADDRLEN])u->allowed, u->n_allowed, "allowed", err,
                             errlen)) < 0)
        return rc;
    return u->uplink ? check_uplink(ps, u, err, errlen)
                     : check_hub_peer(ps, u, l, r, err, errlen);
}

static struct ps_entry **find_entry(struct ps_server *ps, const char *ifname)
{
    struct ps_entry **pp = &ps->entries;

    while (*pp && strcmp((*pp)->ifname, ifname) != 0)
        pp = &(*pp)->next;
    return pp;
}

static void teardown(struct ps_server *ps, struct ps_entry *e)
{
    const char *name = e->ifname;

    /* Untrust first: from here the firewall drops its traffic. */
    nc_fw_untrust_iface(ps->nc, e->ifname);
    nc_fw_disallow_prefixes(ps->nc, e->ifname, NULL, 0);
    nc_fw_disallow_sources(ps->nc, e->ifname, NULL, 0);
    nc_links_del(ps->nc, &name, 1);
    nc_conntrack_flush(ps->nc, (const char *const *)e->flush, e->n_flush, NULL);
}

static int do_tun_up(struct ps_server *ps, const struct ps_tun_up *u, int *fd_out, char *err,
                     size_t errlen)
{
    const char *routes[PS_MAX_PREFIXES], *allowed[PS_MAX_PREFIXES];
    const char *sources[PS_MAX_PREFIXES + 1];
    char local[PS_ADDRLEN + 4];
    struct ps_entry *e = NULL;
    int fd = -1, rc;

    rc = check_tun_up(ps, u, err, errlen);
    if (rc < 0)
        return rc;
    if (*find_entry(ps, u->ifname)) {
        snprintf(err, errlen, "%s exists already", u->ifname);
        return -EEXIST;
    }
    e = calloc(1, sizeof(*e));
    if (!e)
        return -ENOMEM;
    snprintf(e->ifname, sizeof(e->ifname), "%s", u->ifname);
    snprintf(e->remote, sizeof(e->remote), "%s", u->remote);
    snprintf(e->peer_name, sizeof(e->peer_name), "%s", u->peer_name);
    e->uplink = u->uplink == 1;
    e->flush[e->n_flush++] = strdup(u->remote);
    /* What the other end may send from: its tunnel address and the
     * networks routed to it (a hub peer's networks; on an uplink the
     * routes the hub pushed that accept-routes let in). */
    sources[0] = u->remote;
    for (uint32_t i = 0; i < u->n_routes; i++) {
        routes[i] = u->routes[i];
        sources[i + 1] = u->routes[i];
        e->flush[e->n_flush++] = strdup(u->routes[i]);
    }
    for (uint32_t i = 0; i < u->n_allowed; i++)
        allowed[i] = u->allowed[i];
    snprintf(local, sizeof(local), "%s/32", u->local);
    if ((rc = nc_tun_create_vnet(ps->nc, u->ifname, &fd)) < 0 ||
        (rc = nc_link_set_mtu(ps->nc, u->ifname, u->mtu)) < 0 ||
        (rc = nc_addr_add(ps->nc, u->ifname, local, u->remote)) < 0 ||
        (rc = nc_link_set_up(ps->nc, u->ifname)) < 0)
        goto fail;
    for (uint32_t i = 0; i < u->n_routes; i++)
        if ((rc = nc_route_add(ps->nc, routes[i], u->ifname, 0, 0)) < 0)
            goto fail;
    /* Sources before trust: a trusted interface is never without its
     * anti-spoofing elements. */
    if ((rc = nc_fw_allow_sources(ps->nc, u->ifname, sources, u->n_routes + 1)) < 0 ||
        (rc = nc_fw_trust_iface(ps->nc, u->ifname, PS_TRUST_TIMEOUT_MS)) < 0 ||
        (u->n_allowed && (rc = nc_fw_allow_prefixes(ps->nc, u->ifname, allowed, u->n_allowed)) < 0))
        goto fail;
    e->next = ps->entries;
    ps->entries = e;
    *fd_out = fd;
    return 0;
fail:
    snprintf(err, errlen, "%s", nc_error(ps->nc));
    teardown(ps, e);
    if (fd >= 0)
        close(fd);
    entry_free(e);
    return rc;
}

static int do_tun_down(struct ps_server *ps, const struct ps_tun_down *d, char *err,
                       size_t errlen)
{
    struct ps_entry **pp, *e;

    if (!str_ok(d->ifname, sizeof(d->ifname))) {
        snprintf(err, errlen, "malformed request");
        return -EINVAL;
    }
    pp = find_entry(ps, d->ifname);
    if (!*pp) {
        snprintf(err, errlen, "%s is not ours", d->ifname);
        return -ENOENT;
    }
    e = *pp;
    *pp = e->next;
    teardown(ps, e);
    entry_free(e);
    return 0;
}

static long long ps_mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static struct ps_gate_rec **find_gate(struct ps_server *ps, int family, const uint8_t *a)
{
    struct ps_gate_rec **pp = &ps->gates;

    while (*pp && ((*pp)->family != family ||
                   memcmp((*pp)->addr, a, family == AF_INET ? 4 : 16) != 0))
        pp = &(*pp)->next;
    return pp;
}

/* Records whose kernel element has timed out by itself. */
static void gates_prune(struct ps_server *ps, long long now)
{
    for (struct ps_gate_rec **pp = &ps->gates; *pp;) {
        struct ps_gate_rec *r = *pp;
        if (r->until_ms <= now) {
            *pp = r->next;
            ps->n_gates--;
            free(r);
        } else {
            pp = &r->next;
        }
    }
}

bool ps_addr_scoped(int family, const uint8_t *a)
{
    static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

    if (family == AF_INET6 && memcmp(a, mapped, sizeof(mapped)) == 0)
        return ps_addr_scoped(AF_INET, a + 12);
    if (family == AF_INET6)
        return a[0] == 0xfe && (a[1] & 0x80) == 0x80; /* fe80::/10 and fec0::/10 */
    return a[0] == 169 && a[1] == 254;
}

static int do_gate(struct ps_server *ps, uint32_t type, const struct ps_gate *g, char *err,
                   size_t errlen)
{
    uint8_t a[16] = {0};
    int family = -1, rc;
    long long now = ps_mono_ms();
    struct ps_gate_rec **pp, *r;

    if (str_ok(g->addr, sizeof(g->addr)))
        family = inet_pton(AF_INET, g->addr, a) == 1    ? AF_INET
                 : inet_pton(AF_INET6, g->addr, a) == 1 ? AF_INET6
                                                        : -1;
    if (family < 0 ||
        (type == PS_GATE_OPEN && (g->timeout_ms == 0 || g->timeout_ms > 86400000u))) {
        snprintf(err, errlen, "malformed gate request");
        return -EINVAL;
    }
    if (type == PS_GATE_OPEN && ps_addr_scoped(family, a)) {
        snprintf(err, errlen, "%s is link-scoped (the same address on every link): the gate "
                 "never opens for it", g->addr);
        return -EPERM;
    }
    gates_prune(ps, now);
    pp = find_gate(ps, family, a);
    if (type == PS_GATE_OPEN && !*pp && ps->n_gates >= PS_MAX_GATES) {
        snprintf(err, errlen, "%d gate openings already: refused", PS_MAX_GATES);
        return -ENOSPC;
    }
    rc = type == PS_GATE_OPEN ? nc_fw_gate_open(ps->nc, g->addr, g->timeout_ms)
                              : nc_fw_gate_close(ps->nc, g->addr);
    if (rc < 0) {
        snprintf(err, errlen, "%s", nc_error(ps->nc));
        return rc;
    }
    if (type == PS_GATE_CLOSE) {
        if ((r = *pp)) {
            *pp = r->next;
            ps->n_gates--;
            free(r);
        }
        return 0;
    }
    if (!*pp) {
        /* Without a record the opening would outlive a crash of the session
         * process: take it back rather than keep it unrecorded. */
        if (!(*pp = calloc(1, sizeof(**pp)))) {
            nc_fw_gate_close(ps->nc, g->addr);
            snprintf(err, errlen, "out of memory");
            return -ENOMEM;
        }
        (*pp)->family = family;
        memcpy((*pp)->addr, a, sizeof((*pp)->addr));
        ps->n_gates++;
    }
    (*pp)->until_ms = now + g->timeout_ms;
    return 0;
}

/* Close every gate opening still in force; returns how many. */
static size_t gates_close_all(struct ps_server *ps)
{
    long long now = ps_mono_ms();
    size_t n = 0;

    while (ps->gates) {
        struct ps_gate_rec *r = ps->gates;
        char s[INET6_ADDRSTRLEN];
        ps->gates = r->next;
        if (r->until_ms > now && inet_ntop(r->family, r->addr, s, sizeof(s)) &&
            nc_fw_gate_close(ps->nc, s) == 0)
            n++;
        free(r);
    }
    ps->n_gates = 0;
    return n;
}

int ps_server_handle(struct ps_server *ps, int fd)
{
    struct ps_msg m;
    struct ps_reply rep = {.type = PS_REPLY};
    char cbuf[CMSG_SPACE(sizeof(int))];
    struct iovec iov = {.iov_base = &rep, .iov_len = sizeof(rep)};
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
    int tun_fd = -1;
    ssize_t n;

    /* MSG_TRUNC: the real length of a longer message, which a sequenced
     * packet socket would otherwise cut to sizeof(m) without a word. */
    n = recv(fd, &m, sizeof(m), MSG_TRUNC);
    if (n == 0)
        return -ECONNRESET;
    if (n < 0)
        return errno == EINTR || errno == EAGAIN ? 0 : -errno;
    if (n != (ssize_t)sizeof(m)) {
        rep.rc = -EINVAL;
        snprintf(rep.err, sizeof(rep.err), "request of %zd bytes refused", n);
    } else {
        switch (m.type) {
        case PS_TUN_UP:
            rep.rc = do_tun_up(ps, &m.u.up, &tun_fd, rep.err, sizeof(rep.err));
            break;
        case PS_TUN_DOWN:
            rep.rc = do_tun_down(ps, &m.u.down, rep.err, sizeof(rep.err));
            break;
        case PS_GATE_OPEN:
        case PS_GATE_CLOSE:
            rep.rc = do_gate(ps, m.type, &m.u.gate, rep.err, sizeof(rep.err));
            break;
        default:
            rep.rc = -EINVAL;
            snprintf(rep.err, sizeof(rep.err), "unknown request type %u", m.type);
        }
    }
    if (tun_fd >= 0) {
        struct cmsghdr *cm;
        memset(cbuf, 0, sizeof(cbuf));
        mh.msg_control = cbuf;
        mh.msg_controllen = sizeof(cbuf);
        cm = CMSG_FIRSTHDR(&mh);
        cm->cmsg_level = SOL_SOCKET;
        cm->cmsg_type = SCM_RIGHTS;
        cm->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(cm), &tun_fd, sizeof(int));
    }
    n = sendmsg(fd, &mh, MSG_NOSIGNAL);
    /* The session process holds the TUN now; when it closes (or dies) the
     * kernel removes the interface. */
    if (tun_fd >= 0)
        close(tun_fd);
    return n < 0 ? -errno : 0;
}

void ps_server_teardown_all(struct ps_server *ps)
{
    /* The gate first: it is the door to the appliance itself. */
    gates_close_all(ps);
    while (ps->entries) {
        struct ps_entry *e = ps->entries;
        ps->entries = e->next;
        teardown(ps, e);
        entry_free(e);
    }
}

void ps_server_refresh(struct ps_server *ps)
{
    for (struct ps_entry *e = ps->entries; e; e = e->next)
        nc_fw_trust_iface(ps->nc, e->ifname, PS_TRUST_TIMEOUT_MS);
}

void ps_server_free(struct ps_server *ps)
{
    if (!ps)
        return;
    ps_server_teardown_all(ps);
    nc_free(ps->nc);
    registry_free(ps->reg);
    roam_free(ps->roam);
    free(ps);
}
