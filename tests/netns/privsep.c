/*
 * The parent-request harness: the privileged parent's own request handler
 * (gateway/daemon/parent/privsep.c, linked from the daemon's mtlsgwd-parent library)
 * driven over a socketpair, as a compromised session process would, with a
 * hostile value in every request type and field. Each request must be
 * refused with its errno and leave nothing in the kernel: no link, address,
 * route, trusted interface, allowed, source or gate element (read back
 * with nc_owned_list on a handle of our own, `ip -j` and `nft -j`). Valid
 * requests go through and their teardown removes everything.
 *
 * Every test runs in a network namespace of its own (tests/netns/nsutil.c),
 * with the config and registry.json in a temp dir:
 *
 *     namespace (the hub and the spoke at once)
 *     +--------------------------------------------------------------+
 *     | lan0  10.10.0.1/24 fd00:10::1/64   the hub's LAN ([tunnel]   |
 *     |                                    routes)                   |
 *     | lan1  10.50.0.1/24                 the spoke's own LAN       |
 *     | mtg1, mtgu0 ...                    made by the parent        |
 *     | table inet mtlsgw                  installed by the parent   |
 *     +--------------------------------------------------------------+
 *
 *   [tunnel] pool 10.99.0.0/24, routes 10.10.0.0/24 fd00:10::/64,
 *            peer-networks unset (RFC 1918, RFC 6598, ULA)
 *   [uplink hub]  server 198.51.100.1:4433, accept-routes 10.40.0.0/16
 *                 fd00:40::/48
 *   [uplink wide] server 10.40.0.10:4433, accept-routes 10.40.0.0/16
 *   registry: spoke1 (tunnel, 10.20.0.0/24 fd00:20::/64 10.10.0.0/25),
 *             raw1 (tunnel, revoked), admin1 (admin), wide1 (tunnel,
 *             0.0.0.0/1 128.0.0.0/1: what a rewritten registry grants),
 *             spoke2 (tunnel, 10.20.0.0/16: over spoke1's network)
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <CUnit/Basic.h>

#include "config.h"
#include "netconfig.h"
#include "nsutil.h"
#include "privsep.h"
#include "registry.h"

/* One test's world: config, parent, channel, our own view of the kernel. */
struct world {
    char dir[64];
    struct config *cfg;
    struct ps_server *ps;
    struct nc *view;
    int client, server;
    int links0; /* ip link count before the parent made anything */
};

static int write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");

    if (!f)
        return -errno;
    fputs(text, f);
    return fclose(f) == 0 ? 0 : -errno;
}

static int add_peer(struct registry *reg, const char *name, enum peer_role role,
                    const char *serial, char **nets, size_t n)
{
    struct peer p = {0};
    char key[80];

    snprintf(key, sizeof(key), "%064x", (unsigned)serial[0] * 7919u + (unsigned)strlen(name));
    p.name = (char *)name;
    p.role = role;
    p.status = PEER_ACTIVE;
    p.serial = (char *)serial;
    p.key_id = key;
    p.not_before = 1700000000;
    p.not_after = 4100000000;
    p.enrolled_at = 1700000000;
    p.networks = nets;
    p.n_networks = n;
    return registry_add(reg, &p);
}

/* registry.json as the session process would write it; extra_nets, when
 * given, is what a rewritten registry grants spoke1. */
static int write_registry(const char *dir, char **extra_nets, size_t n_extra)
{
    char *spoke_nets[] = {"10.20.0.0/24", "fd00:20::/64", "10.10.0.0/25"};
    char *raw_nets[] = {"10.30.0.0/24"};
    char *wide_nets[] = {"0.0.0.0/1", "128.0.0.0/1"};
    char *spoke2_nets[] = {"10.20.0.0/16"};
    struct registry *reg = NULL;
    char path[128];
    int rc;

    snprintf(path, sizeof(path), "%s/pki/registry.json", dir);
    if ((rc = registry_new(&reg)) < 0)
        return rc;
    if ((rc = add_peer(reg, "spoke1", ROLE_TUNNEL, "0a01", extra_nets ? extra_nets : spoke_nets,
                       extra_nets ? n_extra : 3)) < 0 ||
        (rc = add_peer(reg, "raw1", ROLE_TUNNEL, "0a02", raw_nets, 1)) < 0 ||
        (rc = registry_revoke(reg, "raw1", PEER_REVOKED, "keyCompromise", 1700000001)) < 0 ||
        (rc = add_peer(reg, "admin1", ROLE_ADMIN, "0a03", NULL, 0)) < 0 ||
        (rc = add_peer(reg, "wide1", ROLE_TUNNEL, "0a04", wide_nets, 2)) < 0 ||
        (rc = add_peer(reg, "spoke2", ROLE_TUNNEL, "0a05", spoke2_nets, 1)) < 0)
        goto out;
    rc = registry_save(reg, path);
out:
    registry_free(reg);
    return rc;
}

static void world_up(struct world *w)
{
    char path[128], conf[1024], *errors = NULL;
    char pserr[PS_ERRLEN] = "";
    int sp[2];

    memset(w, 0, sizeof(*w));
    w->client = w->server = -1;
    /* veth pairs (their other ends unaddressed): no dummy module needed. */
    CHECK_INT(0, ns_sh("ip link add lan0 type veth peer name lan0p && "
                       "ip addr add 10.10.0.1/24 dev lan0 && "
                       "ip addr add fd00:10::1/64 dev lan0 nodad && "
                       "ip link add lan1 type veth peer name lan1p && "
                       "ip addr add 10.50.0.1/24 dev lan1 && "
                       "ip link set lan0 up && ip link set lan0p up && "
                       "ip link set lan1 up && ip link set lan1p up"));
    snprintf(w->dir, sizeof(w->dir), "/tmp/mtlsgw-ps-XXXXXX");
    CHECK(mkdtemp(w->dir) != NULL);
    snprintf(path, sizeof(path), "%s/pki", w->dir);
    CHECK_INT(0, mkdir(path, 0700));
    snprintf(conf, sizeof(conf),
             "[pki]\ndir = %s/pki\n"
             "[tunnel]\nlisten = 192.0.2.1:4433\npool = 10.99.0.0/24\n"
             "routes = 10.10.0.0/24 fd00:10::/64\n"
             "[firewall]\ngate = tcp/2222\n"
             "[uplink hub]\nserver = 198.51.100.1:4433\n"
             "accept-routes = 10.40.0.0/16 fd00:40::/48\n"
             "[uplink wide]\nserver = 10.40.0.10:4433\naccept-routes = 10.40.0.0/16\n",
             w->dir);
    snprintf(path, sizeof(path), "%s/mtlsgwd.conf", w->dir);
    CHECK_INT(0, write_file(path, conf));
    CHECK_INT(0, write_registry(w->dir, NULL, 0));
    CHECK_INT(0, config_load(path, &w->cfg, &errors));
    if (errors)
        fprintf(stderr, "    config: %s", errors);
    free(errors);
    CHECK_INT(0, nc_new(NULL, &w->view));
    ns_nc = w->view;
    w->links0 = ip_link_count();
    if (w->cfg)
        CHECK_INT(0, ps_server_new(w->cfg, &w->ps, pserr, sizeof(pserr)));
    if (pserr[0])
        fprintf(stderr, "    ps_server_new: %s\n", pserr);
    CHECK_INT(0, socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp));
    w->client = sp[0];
    w->server = sp[1];
}

static void world_down(struct world *w)
{
    ps_server_free(w->ps);
    config_free(w->cfg);
    nc_free(w->view);
    ns_nc = NULL;
    close(w->client);
    close(w->server);
    if (w->dir[0])
        ns_sh("rm -rf '%s'", w->dir);
}

/*
 * Sends len bytes of msg as the session process would, lets the parent
 * handle them, reads its reply. Returns the reply's rc (the request's
 * errno), or 1 when no reply came; *fd_out gets a TUN fd if one came.
 */
static int ask(struct world *w, const void *msg, size_t len, int *fd_out, char *err,
               size_t errlen)
{
    struct ps_reply rep;
    char cbuf[CMSG_SPACE(sizeof(int))];
    struct iovec iov = {.iov_base = &rep, .iov_len = sizeof(rep)};
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
                        .msg_controllen = sizeof(cbuf)};
    int fd = -1;

    if (fd_out)
        *fd_out = -1;
    if (!w->ps || send(w->client, msg, len, 0) != (ssize_t)len)
        return 1;
    if (ps_server_handle(w->ps, w->server) < 0)
        return 1;
    if (recvmsg(w->client, &mh, 0) != (ssize_t)sizeof(rep) || rep.type != PS_REPLY)
        return 1;
    for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm))
        if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS)
            memcpy(&fd, CMSG_DATA(cm), sizeof(fd));
    if (fd_out)
        *fd_out = fd;
    else if (fd >= 0)
        close(fd);
    rep.err[PS_ERRLEN - 1] = '\0';
    snprintf(err, errlen, "%s", rep.err);
    return rep.rc;
}

/* Nothing of ours in the kernel: no owned link, address or route, no
 * element in the firewall's sets; the link count as before. */
static void check_clean(const struct world *w, const char *after)
{
    struct nc_state *st = NULL;

    if (nc_owned_list(w->view, &st) < 0 || !st) {
        ns_fail(__FILE__, __LINE__, "after %s: cannot list the owned state: %s", after,
                nc_error(w->view));
        return;
    }
    if (st->n_links || st->n_addrs || st->n_routes || st->n_trusted || st->n_allowed ||
        st->n_sources || !st->fw_installed)
        ns_fail(__FILE__, __LINE__,
                "after %s: left %zu links, %zu addresses, %zu routes, %zu trusted, "
                "%zu allowed, %zu sources (table installed: %d)",
                after, st->n_links, st->n_addrs, st->n_routes, st->n_trusted, st->n_allowed,
                st->n_sources, st->fw_installed);
    nc_state_free(st);
    if (nft_set_count("gate4") != 0 || nft_set_count("gate6") != 0)
        ns_fail(__FILE__, __LINE__, "after %s: gate elements left", after);
    if (ip_link_count() != w->links0)
        ns_fail(__FILE__, __LINE__, "after %s: %d links, %d before", after, ip_link_count(),
                w->links0);
}

/* ---- PS_TUN_UP ---------------------------------------------------------- */

enum unterm { U_NONE, U_IFNAME, U_PEER, U_LOCAL, U_REMOTE, U_ROUTE0, U_ALLOWED0 };

/* A request built from a valid one with some fields replaced. */
struct up_case {
    const char *name;
    int want;
    const char *ifname, *peer, *local, *remote;
    int uplink;         /* -1: keep */
    uint32_t mtu;       /* 0: keep */
    const char *routes[4], *allowed[4]; /* { NULL }: keep; { "" }: none */
    uint32_t n_routes_raw, n_allowed_raw; /* 0: from the lists */
    enum unterm unterm;
    const char *err_has; /* part of the parent's message */
};

static void fill_list(char (*dst)[PS_ADDRLEN], uint32_t *n, const char *const *src)
{
    *n = 0;
    for (size_t i = 0; i < 4 && src[i]; i++)
        if (src[i][0])
            snprintf(dst[(*n)++], PS_ADDRLEN, "%s", src[i]);
}

static const struct up_case hub_valid = {
    "valid hub peer", 0, "mtg1", "spoke1", "10.99.0.1", "10.99.0.2", 0, 1400,
    {"10.20.0.0/24", "fd00:20::/64"}, {"10.10.0.0/24", "fd00:10::/64"}, 0, 0, U_NONE, NULL,
};

static const struct up_case uplink_valid = {
    "valid uplink", 0, "mtgu0", "hub", "10.98.0.2", "10.98.0.1", 1, 1400,
    {"10.40.0.0/16", "fd00:40::/48"}, {"10.50.0.0/24"}, 0, 0, U_NONE, NULL,
};

static void build_up(struct ps_msg *m, const struct up_case *base, const struct up_case *c)
{
    struct ps_tun_up *u = &m->u.up;

    memset(m, 0, sizeof(*m));
    m->type = PS_TUN_UP;
    snprintf(u->ifname, sizeof(u->ifname), "%s", c->ifname ? c->ifname : base->ifname);
    snprintf(u->peer_name, sizeof(u->peer_name), "%s", c->peer ? c->peer : base->peer);
    snprintf(u->local, sizeof(u->local), "%s", c->local ? c->local : base->local);
    snprintf(u->remote, sizeof(u->remote), "%s", c->remote ? c->remote : base->remote);
    u->uplink = (uint8_t)(c->uplink >= 0 ? c->uplink : base->uplink);
    u->mtu = c->mtu ? c->mtu : base->mtu;
    fill_list(u->routes, &u->n_routes, c->routes[0] ? c->routes : base->routes);
    fill_list(u->allowed, &u->n_allowed, c->allowed[0] ? c->allowed : base->allowed);
    if (c->n_routes_raw)
        u->n_routes = c->n_routes_raw;
    if (c->n_allowed_raw)
        u->n_allowed = c->n_allowed_raw;
    switch (c->unterm) {
    case U_IFNAME:
        memset(u->ifname, 'g', sizeof(u->ifname));
        memcpy(u->ifname, "mtg", 3);
        break;
    case U_PEER:
        memset(u->peer_name, 'p', sizeof(u->peer_name));
        break;
    case U_LOCAL:
        memset(u->local, '1', sizeof(u->local));
        break;
    case U_REMOTE:
        memset(u->remote, '2', sizeof(u->remote));
        break;
    case U_ROUTE0:
        memset(u->routes[0], '3', PS_ADDRLEN);
        break;
    case U_ALLOWED0:
        memset(u->allowed[0], '4', PS_ADDRLEN);
        break;
    case U_NONE:
        break;
    }
}

/* Each case refused with its errno, the parent's message naming why, and
 * nothing left behind. */
static void run_up_cases(struct world *w, const struct up_case *base, const struct up_case *cs,
                         size_t n)
{
    for (size_t i = 0; i < n; i++) {
        struct ps_msg m;
        char err[PS_ERRLEN] = "";
        int fd = -1, rc;

        build_up(&m, base, &cs[i]);
        rc = ask(w, &m, sizeof(m), &fd, err, sizeof(err));
        if (rc != cs[i].want)
            ns_fail(__FILE__, __LINE__, "%s: expected %d (%s), got %d (%s)", cs[i].name,
                    cs[i].want, strerror(-cs[i].want), rc, err);
        else if (cs[i].err_has && !strstr(err, cs[i].err_has))
            ns_fail(__FILE__, __LINE__, "%s: message \"%s\" lacks \"%s\"", cs[i].name, err,
                    cs[i].err_has);
        if (fd >= 0) {
            ns_fail(__FILE__, __LINE__, "%s: the parent handed out a TUN fd", cs[i].name);
            close(fd);
        }
        check_clean(w, cs[i].name);
        if (rc == 0) {
            /* Wrongly granted: taken down, so that the next case starts
             * from nothing and fails (or passes) on its own. */
            struct ps_msg down = {.type = PS_TUN_DOWN};

            memcpy(down.u.down.ifname, m.u.up.ifname, sizeof(down.u.down.ifname));
            down.u.down.ifname[PS_IFNAMSIZ - 1] = '\0';
            ask(w, &down, sizeof(down), NULL, err, sizeof(err));
        }
    }
}

#define N(a) (sizeof(a) / sizeof((a)[0]))
#define KEEP -1

/* Hostile hub-peer requests: every field of PS_TUN_UP. */
static const struct up_case hub_hostile[] = {
    {"ifname eth0", -EPERM, "eth0", NULL, NULL, NULL, KEEP, 0, {NULL}, {NULL}, 0, 0, U_NONE,
     "owned prefix"},
    {"ifname lan0 (not ours)", -EPERM, "lan0", NULL, NULL, NULL, KEEP, 0, {NULL}, {NULL}, 0, 0,
     U_NONE, "owned prefix"},
    {"ifname the bare prefix", -EPERM, "mtg", NULL, NULL, NULL, KEEP, 0, {NULL}, {NULL}, 0, 0,
     U_NONE, NULL},
    {"ifname mtg/1", -EPERM, "mtg/1", NULL, NULL, NULL, KEEP, 0, {NULL}, {NULL}, 0, 0, U_NONE,
     NULL},
    {"ifname unterminated", -EPERM, NULL, NULL, NULL, NULL, KEEP, 0, {NULL}, {NULL}, 0, 0,
     U_IFNAME, NULL},
    {"peer name unterminated", -EINVAL, NULL, NULL, NULL, NULL, KEEP, 0, {NULL}, {NULL}, 0, 0,
     U_PEER, "malformed"},
    {"local unterminated", -EINVAL, NULL, NULL, NULL, NULL, KEEP, 0, {NULL}, {NULL}, 0, 0,
     U_LOCAL, "malformed"},
    {"remote unterminated", -EINVAL, NULL, NULL, NULL, NULL, KEEP, 0, {NULL}, {NULL}, 0, 0,
     U_REMOTE, "malformed"},
    {"remote not an address", -EINVAL, NULL, NULL, NULL, "10.99.0.x", KEEP, 0, {NULL}, {NULL},
     0, 0, U_NONE, "malformed"},
    {"local IPv6", -EINVAL, NULL, NULL, "fd00:99::1", NULL, KEEP, 0, {NULL}, {NULL}, 0, 0,
     U_NONE, "malformed"},
    {"uplink flag 2", -EINVAL, NULL, NULL, NULL, NULL, 2, 0, {NULL}, {NULL}, 0, 0, U_NONE,
     "malformed"},
    {"mtu 100", -EINVAL, NULL, NULL, NULL, NULL, KEEP, 100, {NULL}, {NULL}, 0, 0, U_NONE,
     "malformed"},
    {"mtu 65536", -EINVAL, NULL, NULL, NULL, NULL, KEEP, 65536, {NULL}, {NULL}, 0, 0, U_NONE,
     "malformed"},
    {"65 routes", -EINVAL, NULL, NULL, NULL, NULL, KEEP, 0, {NULL}, {NULL}, 65, 0, U_NONE,
     "too many routes"},
    {"4294967295 routes", -EINVAL, NULL, NULL, NULL, NULL, KEEP, 0, {NULL}, {NULL},
     0xffffffffu, 0, U_NONE, "too many routes"},
    {"65 allowed", -EINVAL, NULL, NULL, NULL, NULL, KEEP, 0, {NULL}, {NULL}, 0, 65, U_NONE,
     "too many allowed"},
    {"route unterminated", -EINVAL, NULL, NULL, NULL, NULL, KEEP, 0, {NULL}, {NULL}, 0, 0,
     U_ROUTE0, "not a prefix"},
    {"allowed unterminated", -EINVAL, NULL, NULL, NULL, NULL, KEEP, 0, {NULL}, {NULL}, 0, 0,
     U_ALLOWED0, "not a prefix"},
    {"route with host bits", -EINVAL, NULL, NULL, NULL, NULL, KEEP, 0, {"10.20.0.1/24"},
     {NULL}, 0, 0, U_NONE, "not a prefix"},
    {"local outside the pool", -EPERM, NULL, NULL, "10.98.0.1", NULL, KEEP, 0, {NULL}, {NULL},
     0, 0, U_NONE, "pool"},
    {"remote outside the pool", -EPERM, NULL, NULL, NULL, "10.98.0.2", KEEP, 0, {NULL},
     {NULL}, 0, 0, U_NONE, "pool"},
    {"local not the pool's .1", -EPERM, NULL, NULL, "10.99.0.5", NULL, KEEP, 0, {NULL},
     {NULL}, 0, 0, U_NONE, "pool"},
    {"remote equal to local", -EPERM, NULL, NULL, NULL, "10.99.0.1", KEEP, 0, {NULL}, {NULL},
     0, 0, U_NONE, NULL},
    {"remote the pool's network address", -EPERM, NULL, NULL, NULL, "10.99.0.0", KEEP, 0,
     {NULL}, {NULL}, 0, 0, U_NONE, "pool"},
    {"remote the pool's broadcast", -EPERM, NULL, NULL, NULL, "10.99.0.255", KEEP, 0, {NULL},
     {NULL}, 0, 0, U_NONE, "pool"},
    {"remote loopback", -EPERM, NULL, NULL, NULL, "127.0.0.1", KEEP, 0, {NULL}, {NULL}, 0, 0,
     U_NONE, "unicast"},
    {"route 0.0.0.0/0", -EPERM, NULL, NULL, NULL, NULL, KEEP, 0, {"0.0.0.0/0"}, {NULL}, 0, 0,
     U_NONE, "peer-networks"},
    {"route 0.0.0.0/1", -EPERM, NULL, NULL, NULL, NULL, KEEP, 0, {"0.0.0.0/1"}, {NULL}, 0, 0,
     U_NONE, "peer-networks"},
    {"route 128.0.0.0/1", -EPERM, NULL, NULL, NULL, NULL, KEEP, 0, {"128.0.0.0/1"}, {NULL}, 0,
     0, U_NONE, "peer-networks"},
    {"route ::/0", -EPERM, NULL, NULL, NULL, NULL, KEEP, 0, {"::/0"}, {NULL}, 0, 0, U_NONE,
     "peer-networks"},
    {"route 10.0.0.0/7", -EPERM, NULL, NULL, NULL, NULL, KEEP, 0, {"10.0.0.0/7"}, {NULL}, 0, 0,
     U_NONE, "peer-networks"},
    {"route 8.8.8.0/24 (public)", -EPERM, NULL, NULL, NULL, NULL, KEEP, 0,
     {"10.20.0.0/24", "8.8.8.0/24"}, {NULL}, 0, 0, U_NONE, "peer-networks"},
    {"route 2001:db8::/32 (not ULA)", -EPERM, NULL, NULL, NULL, NULL, KEEP, 0,
     {"2001:db8::/32"}, {NULL}, 0, 0, U_NONE, "peer-networks"},
    {"route inside the hub's LAN (registry grants it)", -EPERM, NULL, NULL, NULL, NULL, KEEP,
     0, {"10.10.0.0/25"}, {NULL}, 0, 0, U_NONE, "directly connected on lan0"},
    {"route equal to the hub's IPv6 LAN", -EPERM, NULL, NULL, NULL, NULL, KEEP, 0,
     {"fd00:10::/64"}, {NULL}, 0, 0, U_NONE, "directly connected"},
    {"route not a network of the peer", -EPERM, NULL, NULL, NULL, NULL, KEEP, 0,
     {"10.21.0.0/24"}, {NULL}, 0, 0, U_NONE, "not a network of peer spoke1"},
    {"route wider than the peer's network", -EPERM, NULL, NULL, NULL, NULL, KEEP, 0,
     {"10.20.0.0/23"}, {NULL}, 0, 0, U_NONE, "not a network of peer spoke1"},
    {"allowed outside [tunnel] routes", -EPERM, NULL, NULL, NULL, NULL, KEEP, 0, {NULL},
     {"192.168.1.0/24"}, 0, 0, U_NONE, "[tunnel] routes"},
    {"allowed 0.0.0.0/0", -EPERM, NULL, NULL, NULL, NULL, KEEP, 0, {NULL}, {"0.0.0.0/0"}, 0, 0,
     U_NONE, "[tunnel] routes"},
    {"revoked peer", -EPERM, NULL, "raw1", NULL, NULL, KEEP, 0, {"10.30.0.0/24"}, {NULL}, 0, 0,
     U_NONE, "not an active tunnel peer"},
    {"admin peer", -EPERM, NULL, "admin1", NULL, NULL, KEEP, 0, {""}, {NULL}, 0, 0, U_NONE,
     "not an active tunnel peer"},
    {"unknown peer", -EPERM, NULL, "nobody", NULL, NULL, KEEP, 0, {""}, {NULL}, 0, 0, U_NONE,
     "not an active tunnel peer"},
    /* What a rewritten registry grants is not enough: root's bound holds. */
    {"registry grants 0.0.0.0/1 and 128.0.0.0/1", -EPERM, NULL, "wide1", NULL, NULL, KEEP, 0,
     {"0.0.0.0/1", "128.0.0.0/1"}, {NULL}, 0, 0, U_NONE, "peer-networks"},
};

static void t_tun_up_hostile(void)
{
    struct world w;

    world_up(&w);
    check_clean(&w, "ps_server_new");
    run_up_cases(&w, &hub_valid, hub_hostile, N(hub_hostile));
    world_down(&w);
}

/* Hostile uplink requests: what a malicious hub's CONFIG could make the
 * session process ask for. */
static const struct up_case uplink_hostile[] = {
    {"unknown uplink", -EPERM, NULL, "nohub", NULL, NULL, KEEP, 0, {NULL}, {NULL}, 0, 0, U_NONE,
     "no [uplink nohub]"},
    {"route 0.0.0.0/0", -EPERM, NULL, NULL, NULL, NULL, KEEP, 0, {"0.0.0.0/0"}, {NULL}, 0, 0,
     U_NONE, "accept-routes"},
    {"routes 0.0.0.0/1 128.0.0.0/1", -EPERM, NULL, NULL, NULL, NULL, KEEP, 0,
     {"0.0.0.0/1", "128.0.0.0/1"}, {NULL}, 0, 0, U_NONE, "accept-routes"},
    {"route ::/0", -EPERM, NULL, NULL, NULL, NULL, KEEP, 0, {"::/0"}, {NULL}, 0, 0, U_NONE,
     "accept-routes"},
    {"route wider than accepted", -EPERM, NULL, NULL, NULL, NULL, KEEP, 0, {"10.40.0.0/15"},
     {NULL}, 0, 0, U_NONE, "[uplink hub] accept-routes"},
    {"route beside what is accepted", -EPERM, NULL, NULL, NULL, NULL, KEEP, 0,
     {"10.40.0.0/16", "10.41.0.0/16"}, {NULL}, 0, 0, U_NONE, "accept-routes"},
    {"route over the spoke's own LAN", -EPERM, NULL, NULL, NULL, NULL, KEEP, 0,
     {"10.50.0.0/25"}, {NULL}, 0, 0, U_NONE, "accept-routes"},
    {"forwarding opened to 0.0.0.0/0", -EPERM, NULL, NULL, NULL, NULL, KEEP, 0, {NULL},
     {"0.0.0.0/0"}, 0, 0, U_NONE, "peer-networks"},
    {"forwarding opened to a public network", -EPERM, NULL, NULL, NULL, NULL, KEEP, 0, {NULL},
     {"10.50.0.0/24", "8.8.8.0/24"}, 0, 0, U_NONE, "peer-networks"},
    {"hub's tunnel address a LAN host", -EPERM, NULL, NULL, NULL, "10.50.0.7", KEEP, 0, {NULL},
     {NULL}, 0, 0, U_NONE, "directly connected on lan1"},
    {"our tunnel address the LAN's own", -EPERM, NULL, NULL, "10.50.0.1", NULL, KEEP, 0,
     {NULL}, {NULL}, 0, 0, U_NONE, "directly connected"},
    {"hub's tunnel address multicast", -EPERM, NULL, NULL, NULL, "224.0.0.1", KEEP, 0, {NULL},
     {NULL}, 0, 0, U_NONE, "unicast"},
    {"tunnel addresses equal", -EPERM, NULL, NULL, "10.98.0.1", NULL, KEEP, 0, {NULL}, {NULL},
     0, 0, U_NONE, NULL},
    {"route covering the hub's own address", -EPERM, NULL, "wide", NULL, NULL, KEEP, 0,
     {"10.40.0.0/16"}, {NULL}, 0, 0, U_NONE, "into itself"},
    {"ifname outside the prefix", -EPERM, "wan0", NULL, NULL, NULL, KEEP, 0, {NULL}, {NULL}, 0,
     0, U_NONE, "owned prefix"},
    /* The tunnel ends a malicious hub's CONFIG picks: each would be a /32
     * route into mtgu0 and a source admitted from it. */
    {"hub's tunnel address public (198.18.0.53)", -EPERM, NULL, NULL, NULL, "198.18.0.53", KEEP,
     0, {NULL}, {NULL}, 0, 0, U_NONE, "peer-networks"},
    {"our tunnel address 8.8.4.4", -EPERM, NULL, NULL, "8.8.4.4", NULL, KEEP, 0, {NULL},
     {NULL}, 0, 0, U_NONE, "peer-networks"},
    {"hub's tunnel address its own server address", -EPERM, NULL, "wide", NULL, "10.40.0.10",
     KEEP, 0, {""}, {NULL}, 0, 0, U_NONE, "into itself"},
    {"hub's tunnel address inside our own pool", -EPERM, NULL, NULL, NULL, "10.99.0.5", KEEP, 0,
     {NULL}, {NULL}, 0, 0, U_NONE, "[tunnel] pool"},
    {"our tunnel address inside our own pool", -EPERM, NULL, NULL, "10.99.0.1", NULL, KEEP, 0,
     {NULL}, {NULL}, 0, 0, U_NONE, "[tunnel] pool"},
};

static void t_uplink_hostile(void)
{
    struct world w;

    world_up(&w);
    run_up_cases(&w, &uplink_valid, uplink_hostile, N(uplink_hostile));
    world_down(&w);
}

/* The registry-rewrite attack as such: the session process rewrites
 * registry.json (it may: it is its file) so that spoke1 owns the whole
 * IPv4 space, and asks for it. */
static void t_registry_rewrite(void)
{
    char *all[] = {"0.0.0.0/1", "128.0.0.0/1", "::/0"};
    static const struct up_case cs[] = {
        {"rewritten registry: 0.0.0.0/1", -EPERM, NULL, NULL, NULL, NULL, KEEP, 0,
         {"0.0.0.0/1"}, {NULL}, 0, 0, U_NONE, "[tunnel] peer-networks"},
        {"rewritten registry: 128.0.0.0/1", -EPERM, NULL, NULL, NULL, NULL, KEEP, 0,
         {"128.0.0.0/1"}, {NULL}, 0, 0, U_NONE, "[tunnel] peer-networks"},
        {"rewritten registry: ::/0", -EPERM, NULL, NULL, NULL, NULL, KEEP, 0, {"::/0"}, {NULL},
         0, 0, U_NONE, "[tunnel] peer-networks"},
    };
    struct world w;

    world_up(&w);
    CHECK_INT(0, write_registry(w.dir, all, 3));
    run_up_cases(&w, &hub_valid, cs, N(cs));
    world_down(&w);
}

/* A hub peer's routes never over the tunnel pool (it would send from other
 * peers' tunnel addresses), even when the registry grants them, nor over
 * the routes of another live tunnel. */
static void t_pool_overlap(void)
{
    char *nets[] = {"10.20.0.0/24", "10.99.0.0/25", "10.96.0.0/12"};
    static const struct up_case cs[] = {
        {"route inside the pool", -EPERM, NULL, NULL, NULL, NULL, KEEP, 0, {"10.99.0.0/25"},
         {NULL}, 0, 0, U_NONE, "[tunnel] pool"},
        {"route covering the pool", -EPERM, NULL, NULL, NULL, NULL, KEEP, 0, {"10.96.0.0/12"},
         {NULL}, 0, 0, U_NONE, "[tunnel] pool"},
    };
    static const struct up_case over = {
        "spoke2 over spoke1's live route", -EADDRINUSE, "mtg2", "spoke2", NULL, "10.99.0.3",
        KEEP, 0, {"10.20.0.0/16"}, {NULL}, 0, 0, U_NONE, "mtg1",
    };
    struct ps_msg m;
    char err[PS_ERRLEN] = "";
    int fd = -1, fd2 = -1, rc;
    struct world w;

    world_up(&w);
    CHECK_INT(0, write_registry(w.dir, nets, 3));
    run_up_cases(&w, &hub_valid, cs, N(cs));
    CHECK_INT(0, write_registry(w.dir, NULL, 0));
    build_up(&m, &hub_valid, &hub_valid);
    CHECK_INT(0, ask(&w, &m, sizeof(m), &fd, err, sizeof(err)));
    build_up(&m, &hub_valid, &over);
    rc = ask(&w, &m, sizeof(m), &fd2, err, sizeof(err));
    if (rc != over.want || !strstr(err, over.err_has))
        ns_fail(__FILE__, __LINE__, "%s: expected %d, got %d (%s)", over.name, over.want, rc,
                err);
    CHECK(fd2 < 0);
    CHECK(!ip_link_exists("mtg2"));
    CHECK(!nft_set_has("sources4", "mtg2 . 10.20.0.0/16"));
    CHECK(ip_route_present(4, 254, "10.20.0.0/24", "mtg1", 0));
    if (fd2 >= 0)
        close(fd2);
    ps_server_teardown_all(w.ps);
    if (fd >= 0)
        close(fd);
    check_clean(&w, "pool_overlap");
    world_down(&w);
}

/* Valid requests go through, with exactly the kernel state they ask for;
 * teardown removes all of it. */
static void t_tun_up_valid_and_teardown(void)
{
    struct ps_msg m;
    struct ps_tun_down *d = &m.u.down;
    char err[PS_ERRLEN] = "";
    int fd = -1, fd2 = -1, rc;
    struct world w;

    world_up(&w);
    build_up(&m, &hub_valid, &hub_valid);
    rc = ask(&w, &m, sizeof(m), &fd, err, sizeof(err));
    CHECK_INT(0, rc);
    if (rc)
        fprintf(stderr, "    valid hub peer: %s\n", err);
    CHECK(fd >= 0);
    CHECK(ip_link_exists("mtg1") && ip_link_has_flag("mtg1", "UP"));
    CHECK_INT(1400, ip_link_mtu("mtg1"));
    CHECK(ip_addr_present("mtg1", "10.99.0.1", 32, "10.99.0.2"));
    CHECK(ip_route_present(4, 254, "10.20.0.0/24", "mtg1", 0));
    CHECK(ip_route_present(6, 254, "fd00:20::/64", "mtg1", 1024) ||
          ip_route_present(6, 254, "fd00:20::/64", "mtg1", 0));
    CHECK(nft_set_has("trusted_ifaces", "mtg1"));
    CHECK(nft_set_has("allowed4", "mtg1 . 10.10.0.0/24"));
    CHECK(nft_set_has("allowed6", "mtg1 . fd00:10::/64"));
    CHECK(nft_set_has("sources4", "mtg1 . 10.99.0.2"));
    CHECK(nft_set_has("sources4", "mtg1 . 10.20.0.0/24"));
    CHECK(nft_set_has("sources6", "mtg1 . fd00:20::/64"));
    CHECK_INT(2, nft_set_count("sources4"));
    CHECK_INT(1, nft_set_count("sources6"));
    /* The same name again, or another tunnel with spoke1's address:
     * refused, and what is there stays as it was. */
    snprintf(m.u.up.remote, sizeof(m.u.up.remote), "10.99.0.3");
    CHECK_INT(-EEXIST, ask(&w, &m, sizeof(m), &fd2, err, sizeof(err)));
    CHECK(fd2 < 0);
    CHECK(nft_set_has("trusted_ifaces", "mtg1") && ip_link_exists("mtg1"));
    {
        struct up_case dup = hub_valid;

        dup.ifname = "mtg2";
        build_up(&m, &hub_valid, &dup);
        CHECK_INT(-EADDRINUSE, ask(&w, &m, sizeof(m), &fd2, err, sizeof(err)));
        CHECK(fd2 < 0);
        CHECK(!ip_link_exists("mtg2"));
    }
    /* An uplink beside it. */
    build_up(&m, &uplink_valid, &uplink_valid);
    rc = ask(&w, &m, sizeof(m), &fd2, err, sizeof(err));
    CHECK_INT(0, rc);
    if (rc)
        fprintf(stderr, "    valid uplink: %s\n", err);
    CHECK(ip_route_present(4, 254, "10.40.0.0/16", "mtgu0", 0));
    CHECK(nft_set_has("sources4", "mtgu0 . 10.98.0.1"));
    CHECK(nft_set_has("sources4", "mtgu0 . 10.40.0.0/16"));
    CHECK(nft_set_has("sources6", "mtgu0 . fd00:40::/48"));
    CHECK(nft_set_has("allowed4", "mtgu0 . 10.50.0.0/24"));
    /* A second TUN for the same uplink, under another name: refused, the
     * first stays as it was. */
    {
        struct up_case dup = uplink_valid;
        int fd3 = -1;

        dup.ifname = "mtgu1";
        dup.local = "10.97.0.2";
        dup.remote = "10.97.0.1";
        build_up(&m, &uplink_valid, &dup);
        CHECK_INT(-EEXIST, ask(&w, &m, sizeof(m), &fd3, err, sizeof(err)));
        CHECK(fd3 < 0);
        CHECK(!ip_link_exists("mtgu1"));
        CHECK(!nft_set_has("sources4", "mtgu1 . 10.97.0.1"));
        CHECK(nft_set_has("trusted_ifaces", "mtgu0") && ip_link_exists("mtgu0"));
    }
    /* PS_TUN_DOWN of each: everything goes, the other's stays until its
     * turn. */
    memset(&m, 0, sizeof(m));
    m.type = PS_TUN_DOWN;
    snprintf(d->ifname, sizeof(d->ifname), "mtg1");
    CHECK_INT(0, ask(&w, &m, sizeof(m), NULL, err, sizeof(err)));
    CHECK(!nft_set_has("trusted_ifaces", "mtg1"));
    CHECK(!nft_set_has("sources4", "mtg1 . 10.20.0.0/24"));
    CHECK(nft_set_has("sources4", "mtgu0 . 10.40.0.0/16"));
    CHECK_INT(-ENOENT, ask(&w, &m, sizeof(m), NULL, err, sizeof(err)));
    snprintf(d->ifname, sizeof(d->ifname), "mtgu0");
    CHECK_INT(0, ask(&w, &m, sizeof(m), NULL, err, sizeof(err)));
    close(fd);
    close(fd2);
    check_clean(&w, "both torn down");
    /* Torn down by the parent, the address can be given again. */
    build_up(&m, &hub_valid, &hub_valid);
    CHECK_INT(0, ask(&w, &m, sizeof(m), &fd, err, sizeof(err)));
    /* The session process dies: the parent tears down what it had. */
    ps_server_teardown_all(w.ps);
    close(fd);
    check_clean(&w, "ps_server_teardown_all");
    world_down(&w);
}

/* ---- PS_TUN_DOWN, gate requests, the message itself ------------------------ */

static void t_down_gate_message(void)
{
    struct ps_msg m;
    char err[PS_ERRLEN] = "", big[sizeof(struct ps_msg) + 16];
    struct world w;

    world_up(&w);
    /* PS_TUN_DOWN: only interfaces the parent made. */
    memset(&m, 0, sizeof(m));
    m.type = PS_TUN_DOWN;
    memset(m.u.down.ifname, 'm', sizeof(m.u.down.ifname));
    CHECK_INT(-EINVAL, ask(&w, &m, sizeof(m), NULL, err, sizeof(err)));
    snprintf(m.u.down.ifname, sizeof(m.u.down.ifname), "lan0");
    CHECK_INT(-ENOENT, ask(&w, &m, sizeof(m), NULL, err, sizeof(err)));
    CHECK(ip_link_exists("lan0"));
    snprintf(m.u.down.ifname, sizeof(m.u.down.ifname), "mtg9");
    CHECK_INT(-ENOENT, ask(&w, &m, sizeof(m), NULL, err, sizeof(err)));
    check_clean(&w, "PS_TUN_DOWN refused");

    /* Gate requests: one host address, a bounded timeout. */
    {
        static const struct {
            uint32_t type;
            const char *addr;
            uint32_t timeout_ms;
            bool unterminated;
        } bad[] = {
            {PS_GATE_OPEN, "not-an-address", 1000, false},
            {PS_GATE_OPEN, "10.0.0.0/8", 1000, false},
            {PS_GATE_OPEN, "fd00::/64", 1000, false},
            {PS_GATE_OPEN, "", 1000, false},
            {PS_GATE_OPEN, NULL, 1000, true},
            {PS_GATE_OPEN, "192.0.2.9", 0, false},
            {PS_GATE_OPEN, "192.0.2.9", 86400001u, false},
            {PS_GATE_OPEN, "192.0.2.9", 0xffffffffu, false},
            {PS_GATE_CLOSE, "host.example", 0, false},
            {PS_GATE_CLOSE, NULL, 0, true},
        };
        for (size_t i = 0; i < N(bad); i++) {
            char what[96];
            int rc;

            memset(&m, 0, sizeof(m));
            m.type = bad[i].type;
            if (bad[i].unterminated)
                memset(m.u.gate.addr, '1', sizeof(m.u.gate.addr));
            else
                snprintf(m.u.gate.addr, sizeof(m.u.gate.addr), "%s", bad[i].addr);
            m.u.gate.timeout_ms = bad[i].timeout_ms;
            rc = ask(&w, &m, sizeof(m), NULL, err, sizeof(err));
            snprintf(what, sizeof(what), "gate %s \"%.40s\" timeout %u",
                     bad[i].type == PS_GATE_OPEN ? "open" : "close",
                     bad[i].unterminated ? "(unterminated)" : bad[i].addr, bad[i].timeout_ms);
            if (rc != -EINVAL)
                ns_fail(__FILE__, __LINE__, "%s: expected -EINVAL, got %d (%s)", what, rc, err);
            check_clean(&w, what);
        }
    }
    /* Link-scoped sources: the same address on every link, and the gate
     * keys on the address alone. */
    {
        static const char *const scoped[] = {"fe80::a", "febf::1", "fec0::1", "169.254.7.7",
                                             "::ffff:169.254.7.7"};
        for (size_t i = 0; i < N(scoped); i++) {
            int rc;

            memset(&m, 0, sizeof(m));
            m.type = PS_GATE_OPEN;
            snprintf(m.u.gate.addr, sizeof(m.u.gate.addr), "%s", scoped[i]);
            m.u.gate.timeout_ms = 60000;
            rc = ask(&w, &m, sizeof(m), NULL, err, sizeof(err));
            if (rc != -EPERM)
                ns_fail(__FILE__, __LINE__, "gate open %s: expected -EPERM, got %d (%s)",
                        scoped[i], rc, err);
            check_clean(&w, scoped[i]);
        }
    }
    /* A valid opening, then its close. */
    memset(&m, 0, sizeof(m));
    m.type = PS_GATE_OPEN;
    snprintf(m.u.gate.addr, sizeof(m.u.gate.addr), "192.0.2.9");
    m.u.gate.timeout_ms = 60000;
    CHECK_INT(0, ask(&w, &m, sizeof(m), NULL, err, sizeof(err)));
    CHECK(nft_set_has("gate4", "192.0.2.9"));
    m.type = PS_GATE_CLOSE;
    CHECK_INT(0, ask(&w, &m, sizeof(m), NULL, err, sizeof(err)));
    CHECK(!nft_set_has("gate4", "192.0.2.9"));

    /* The message itself: wrong sizes and unknown types. A valid TUN_UP
     * that is one byte short or long is no request. */
    build_up(&m, &hub_valid, &hub_valid);
    memset(big, 0, sizeof(big));
    memcpy(big, &m, sizeof(m));
    CHECK_INT(-EINVAL, ask(&w, big, sizeof(m) - 1, NULL, err, sizeof(err)));
    CHECK(strstr(err, "bytes refused") != NULL);
    CHECK_INT(-EINVAL, ask(&w, big, sizeof(m) + 1, NULL, err, sizeof(err)));
    CHECK_INT(-EINVAL, ask(&w, big, sizeof(big), NULL, err, sizeof(err)));
    CHECK_INT(-EINVAL, ask(&w, big, 4, NULL, err, sizeof(err)));
    CHECK_INT(-EINVAL, ask(&w, big, 1, NULL, err, sizeof(err)));
    check_clean(&w, "requests of the wrong size");
    {
        static const uint32_t types[] = {0, PS_REPLY, 99, 0xffffffffu};

        for (size_t i = 0; i < N(types); i++) {
            m.type = types[i];
            CHECK_INT(-EINVAL, ask(&w, &m, sizeof(m), NULL, err, sizeof(err)));
            CHECK(strstr(err, "unknown request type") != NULL);
        }
    }
    check_clean(&w, "unknown request types");
    world_down(&w);
}

/* ---- the runner ------------------------------------------------------------ */

static const struct {
    const char *name;
    void (*body)(void);
} tests[] = {
    {"tun_up_hostile", t_tun_up_hostile},
    {"uplink_hostile", t_uplink_hostile},
    {"registry_rewrite", t_registry_rewrite},
    {"tun_up_valid_and_teardown", t_tun_up_valid_and_teardown},
    {"down_gate_message", t_down_gate_message},
    {"pool_overlap", t_pool_overlap},
};

static size_t current;

static void run_current(void)
{
    CU_ASSERT_EQUAL(ns_run(tests[current].body, tests[current].name), 0);
}

#define TRAMPOLINE(i)                                                                        \
    static void tramp_##i(void)                                                              \
    {                                                                                        \
        current = i;                                                                         \
        run_current();                                                                       \
    }
TRAMPOLINE(0) TRAMPOLINE(1) TRAMPOLINE(2) TRAMPOLINE(3) TRAMPOLINE(4) TRAMPOLINE(5)

static void (*const tramps[])(void) = {tramp_0, tramp_1, tramp_2, tramp_3, tramp_4, tramp_5};

_Static_assert(sizeof(tramps) / sizeof(tramps[0]) == sizeof(tests) / sizeof(tests[0]),
               "one trampoline per test");

int main(int argc, char **argv)
{
    const char *only = argc > 1 ? argv[1] : NULL;
    CU_pSuite suite;
    unsigned failed;
    int err;

    err = ns_probe();
    if (err == -EPERM) {
        fprintf(stderr, "privsep: cannot create network namespaces here: skipped\n");
        return 77;
    }
    if (err < 0) {
        fprintf(stderr, "privsep: ip or nft missing (iproute2, nftables): skipped\n");
        return 77;
    }
    if (CU_initialize_registry() != CUE_SUCCESS)
        return 1;
    suite = CU_add_suite("privsep", NULL, NULL);
    for (size_t i = 0; suite && i < sizeof(tests) / sizeof(tests[0]); i++)
        if (!only || strcmp(only, tests[i].name) == 0)
            CU_add_test(suite, tests[i].name, tramps[i]);
    CU_basic_set_mode(CU_BRM_VERBOSE);
    CU_basic_run_tests();
    failed = CU_get_number_of_tests_failed();
    CU_cleanup_registry();
    return failed ? 1 : 0;
}
