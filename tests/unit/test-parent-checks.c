/*
 * The privileged parent's request checks (gateway/daemon/parent/privsep.c),
 * without privileges: the parent is made by ps_server_new_record, whose
 * netconfig handle records each kernel call as a line instead of making it,
 * and driven through ps_server_handle over a socketpair, as the session
 * process (or one gone hostile) would. Every field of every request type in
 * privsep.h gets hostile values; each must be refused with its errno and
 * reach no kernel call (the record unchanged). tests/netns/privsep.c drives
 * the same handler against a real kernel in a namespace.
 *
 *   [tunnel] pool 10.99.0.0/24, routes 10.10.0.0/24 fd00:10::/64,
 *            peer-networks 10.0.0.0/8 fd00::/8 127.0.0.0/8 (127/8 so that a
 *            route inside loopback's network reaches the connected check)
 *   [uplink hub]  server 198.51.100.1:4433, accept-routes 10.40.0.0/16
 *   [uplink wide] server 10.40.0.10:4433, accept-routes 10.40.0.0/16
 *   registry: spoke1 (tunnel, 10.20.0.0/24 fd00:20::/64 127.5.0.0/16),
 *             raw1 (tunnel, revoked), admin1 (admin), spoke2 (tunnel,
 *             10.20.0.0/16: over spoke1's network)
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "cunit-main.h"
#include "privsep.h"
#include "registry.h"

static struct config *cfg;
static struct ps_server *ps;
static int chan[2] = {-1, -1};
static char dir[64];

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

    snprintf(key, sizeof(key), "%064x", (unsigned)serial[3] * 7919u + (unsigned)strlen(name));
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

static int write_registry(void)
{
    char *spoke_nets[] = {"10.20.0.0/24", "fd00:20::/64", "127.5.0.0/16"};
    char *raw_nets[] = {"10.30.0.0/24"};
    char *spoke2_nets[] = {"10.20.0.0/16"};
    struct registry *reg = NULL;
    char path[128];
    int rc;

    snprintf(path, sizeof(path), "%s/pki/registry.json", dir);
    if ((rc = registry_new(&reg)) < 0)
        return rc;
    if ((rc = add_peer(reg, "spoke1", ROLE_TUNNEL, "0a01", spoke_nets, 3)) < 0 ||
        (rc = add_peer(reg, "raw1", ROLE_TUNNEL, "0a02", raw_nets, 1)) < 0 ||
        (rc = registry_revoke(reg, "raw1", PEER_REVOKED, "keyCompromise", 1700000001)) < 0 ||
        (rc = add_peer(reg, "admin1", ROLE_ADMIN, "0a03", NULL, 0)) < 0 ||
        (rc = add_peer(reg, "spoke2", ROLE_TUNNEL, "0a05", spoke2_nets, 1)) < 0)
        goto out;
    rc = registry_save(reg, path);
out:
    registry_free(reg);
    return rc;
}

/* A fresh parent (no tunnel, no gate) over a fresh channel for each test. */
static void world_up(void)
{
    char path[128], conf[1024], *errors = NULL, err[PS_ERRLEN] = "";

    snprintf(dir, sizeof(dir), "/tmp/mtlsgw-ups-XXXXXX");
    CU_ASSERT_FATAL(mkdtemp(dir) != NULL);
    snprintf(path, sizeof(path), "%s/pki", dir);
    CU_ASSERT_FATAL(mkdir(path, 0700) == 0);
    snprintf(conf, sizeof(conf),
             "[pki]\ndir = %s/pki\n"
             "[tunnel]\nlisten = 192.0.2.1:4433\npool = 10.99.0.0/24\n"
             "routes = 10.10.0.0/24 fd00:10::/64\n"
             "peer-networks = 10.0.0.0/8 fd00::/8 127.0.0.0/8\n"
             "[firewall]\ngate = tcp/2222\n"
             "[uplink hub]\nserver = 198.51.100.1:4433\naccept-routes = 10.40.0.0/16\n"
             "[uplink wide]\nserver = 10.40.0.10:4433\naccept-routes = 10.40.0.0/16\n",
             dir);
    snprintf(path, sizeof(path), "%s/mtlsgwd.conf", dir);
    CU_ASSERT_FATAL(write_file(path, conf) == 0);
    CU_ASSERT_FATAL(write_registry() == 0);
    if (config_load(path, &cfg, &errors) < 0)
        fprintf(stderr, "config: %s", errors ? errors : "out of memory\n");
    free(errors);
    CU_ASSERT_FATAL(cfg != NULL);
    if (ps_server_new_record(cfg, &ps, err, sizeof(err)) < 0)
        fprintf(stderr, "ps_server_new_record: %s\n", err);
    CU_ASSERT_FATAL(ps != NULL);
    CU_ASSERT_FATAL(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, chan) == 0);
}

static void world_down(void)
{
    char cmd[128];

    ps_server_free(ps);
    ps = NULL;
    config_free(cfg);
    cfg = NULL;
    close(chan[0]);
    close(chan[1]);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "cannot remove %s\n", dir);
}

/* Sends len bytes of msg, lets the parent handle them, reads the reply:
 * its rc, or 1 when none came. A TUN fd that comes back is closed. */
static int ask(const void *msg, size_t len, char *err, size_t errlen)
{
    struct ps_reply rep;
    char cbuf[CMSG_SPACE(sizeof(int))];
    struct iovec iov = {.iov_base = &rep, .iov_len = sizeof(rep)};
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
                        .msg_controllen = sizeof(cbuf)};

    if (send(chan[0], msg, len, 0) != (ssize_t)len || ps_server_handle(ps, chan[1]) < 0 ||
        recvmsg(chan[0], &mh, 0) != (ssize_t)sizeof(rep) || rep.type != PS_REPLY)
        return 1;
    for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm)) {
        int fd;
        memcpy(&fd, CMSG_DATA(cm), sizeof(fd));
        close(fd);
    }
    rep.err[PS_ERRLEN - 1] = '\0';
    snprintf(err, errlen, "%s", rep.err);
    return rep.rc;
}

/* One request: its errno, a part of the parent's message, and (refused)
 * not one kernel call. */
static void expect(const char *name, const void *m, size_t len, int want,
                   const char *err_has)
{
    char *before = strdup(ps_server_record(ps)), err[PS_ERRLEN] = "";
    int rc;

    CU_ASSERT_FATAL(before != NULL);
    rc = ask(m, len, err, sizeof(err));
    if (rc != want)
        fprintf(stderr, "%s: expected %d, got %d (%s)\n", name, want, rc, err);
    CU_ASSERT_EQUAL(rc, want);
    if (err_has && !strstr(err, err_has)) {
        fprintf(stderr, "%s: message '%s' lacks '%s'\n", name, err, err_has);
        CU_FAIL("message");
    }
    if (want != 0 && strcmp(before, ps_server_record(ps)) != 0) {
        fprintf(stderr, "%s: refused, yet the kernel was asked:\n%s\n", name,
                ps_server_record(ps) + strlen(before));
        CU_FAIL("kernel touched");
    }
    free(before);
}

static bool recorded(const char *line)
{
    return strstr(ps_server_record(ps), line) != NULL;
}

/* ---- PS_TUN_UP ---------------------------------------------------------- */

enum unterm { U_NONE, U_IFNAME, U_PEER, U_LOCAL, U_REMOTE, U_ROUTE0, U_ALLOWED0 };

/* A request built from a valid one with some fields replaced. */
struct up_case {
    const char *name;
    int want;
    const char *ifname, *peer, *local, *remote;
    int uplink;                          /* 0: keep; else value + 1 */
    uint32_t mtu;                        /* 0: keep */
    const char *routes[3], *allowed[3];  /* {NULL}: keep; {""}: none */
    uint32_t n_routes_raw, n_allowed_raw; /* 0: from the lists */
    enum unterm unterm;
    const char *err_has;
};

static const struct up_case hub = {
    "valid hub peer", 0, "mtg1", "spoke1", "10.99.0.1", "10.99.0.2", 1, 1400,
    {"10.20.0.0/24", "fd00:20::/64"}, {"10.10.0.0/24", "fd00:10::/64"}, 0, 0, U_NONE, NULL,
};

static const struct up_case uplink = {
    "valid uplink", 0, "mtgu0", "hub", "10.98.0.2", "10.98.0.1", 2, 1400,
    {"10.40.0.0/16"}, {"10.50.0.0/24"}, 0, 0, U_NONE, NULL,
};

static void fill(char (*dst)[PS_ADDRLEN], uint32_t *n, const char *const *src)
{
    *n = 0;
    for (size_t i = 0; i < 3 && src[i]; i++)
        if (src[i][0])
            snprintf(dst[(*n)++], PS_ADDRLEN, "%s", src[i]);
}

static void build_up(struct ps_msg *m, const struct up_case *base, const struct up_case *c)
{
    struct ps_tun_up *u = &m->u.up;

    memset(m, 0, sizeof(*m));
    m->type = PS_TUN_UP;
    snprintf(u->ifname, sizeof(u->ifname), "%s", c->ifname ? c->ifname : base->ifname);
    snprintf(u->peer_name, sizeof(u->peer_name), "%s", c->peer ? c->peer : base->peer);
    snprintf(u->local, sizeof(u->local), "%s", c->local ? c->local : base->local);
    snprintf(u->remote, sizeof(u->remote), "%s", c->remote ? c->remote : base->remote);
    u->uplink = (uint8_t)((c->uplink ? c->uplink : base->uplink) - 1);
    u->mtu = c->mtu ? c->mtu : base->mtu;
    fill(u->routes, &u->n_routes, c->routes[0] ? c->routes : base->routes);
    fill(u->allowed, &u->n_allowed, c->allowed[0] ? c->allowed : base->allowed);
    if (c->n_routes_raw)
        u->n_routes = c->n_routes_raw;
    if (c->n_allowed_raw)
        u->n_allowed = c->n_allowed_raw;
    if (c->unterm == U_IFNAME) {
        memset(u->ifname, 'g', sizeof(u->ifname));
        memcpy(u->ifname, "mtg", 3);
    } else if (c->unterm == U_PEER) {
        memset(u->peer_name, 'p', sizeof(u->peer_name));
    } else if (c->unterm == U_LOCAL) {
        memset(u->local, '1', sizeof(u->local));
    } else if (c->unterm == U_REMOTE) {
        memset(u->remote, '2', sizeof(u->remote));
    } else if (c->unterm == U_ROUTE0) {
        memset(u->routes[0], '3', PS_ADDRLEN);
    } else if (c->unterm == U_ALLOWED0) {
        memset(u->allowed[0], '4', PS_ADDRLEN);
    }
}

static void run_up(const struct up_case *base, const struct up_case *cs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        struct ps_msg m;
        build_up(&m, base, &cs[i]);
        expect(cs[i].name, &m, sizeof(m), cs[i].want, cs[i].err_has);
    }
}

/* Fields every TUN request has, whichever side it is for. */
static const struct up_case common_cases[] = {
    {"ifname not owned", -EPERM, "eth0", .err_has = "owned prefix"},
    {"ifname the bare prefix", -EPERM, "mtg", .err_has = "owned prefix"},
    {"ifname with a slash", -EPERM, "mtg/1", .err_has = "owned prefix"},
    {"ifname with a space", -EPERM, "mtg 1", .err_has = "owned prefix"},
    {"ifname empty", -EPERM, "", .err_has = "owned prefix"},
    {"ifname unterminated", -EPERM, .unterm = U_IFNAME, .err_has = "owned prefix"},
    {"peer unterminated", -EINVAL, .unterm = U_PEER, .err_has = "malformed"},
    {"local unterminated", -EINVAL, .unterm = U_LOCAL, .err_has = "malformed"},
    {"remote unterminated", -EINVAL, .unterm = U_REMOTE, .err_has = "malformed"},
    {"local not an address", -EINVAL, .local = "10.99.0.256", .err_has = "malformed"},
    {"local with a prefix length", -EINVAL, .local = "10.99.0.1/24", .err_has = "malformed"},
    {"local IPv6 (family mismatch)", -EINVAL, .local = "fd00:99::1", .err_has = "malformed"},
    {"remote IPv6 (family mismatch)", -EINVAL, .remote = "fd00:99::2", .err_has = "malformed"},
    {"remote empty", -EINVAL, .remote = "", .err_has = "malformed"},
    {"uplink flag 2", -EINVAL, .uplink = 3, .err_has = "malformed"},
    {"uplink flag 255", -EINVAL, .uplink = 256, .err_has = "malformed"},
    {"mtu 575", -EINVAL, .mtu = 575, .err_has = "malformed"},
    {"mtu 9001", -EINVAL, .mtu = 9001, .err_has = "malformed"},
    {"mtu 2^32-1", -EINVAL, .mtu = 0xffffffffu, .err_has = "malformed"},
    {"remote loopback", -EPERM, .remote = "127.0.0.1", .err_has = "unicast"},
    {"remote 0.0.0.0", -EPERM, .remote = "0.0.0.0", .err_has = "unicast"},
    {"remote link-local", -EPERM, .remote = "169.254.0.2", .err_has = "unicast"},
    {"remote multicast", -EPERM, .remote = "224.0.0.1", .err_has = "unicast"},
    {"remote broadcast", -EPERM, .remote = "255.255.255.255", .err_has = "unicast"},
    {"local loopback", -EPERM, .local = "127.0.0.1", .err_has = "unicast"},
    {"local equals remote", -EPERM, .local = "10.99.0.2", .remote = "10.99.0.2",
     .err_has = "unicast"},
    {"65 routes", -EINVAL, .n_routes_raw = 65, .err_has = "too many routes"},
    {"2^32-1 routes", -EINVAL, .n_routes_raw = 0xffffffffu, .err_has = "too many routes"},
    {"65 allowed", -EINVAL, .n_allowed_raw = 65, .err_has = "too many allowed"},
    {"route unterminated", -EINVAL, .unterm = U_ROUTE0, .err_has = "routes[0]"},
    {"allowed unterminated", -EINVAL, .unterm = U_ALLOWED0, .err_has = "allowed[0]"},
    {"route /33", -EINVAL, .routes = {"10.20.0.0/33"}, .err_has = "routes[0]"},
    {"route /-1", -EINVAL, .routes = {"10.20.0.0/-1"}, .err_has = "routes[0]"},
    {"route /129 (IPv6)", -EINVAL, .routes = {"fd00:20::/129"}, .err_has = "routes[0]"},
    {"route not a prefix", -EINVAL, .routes = {"10.20.0.0/24", "spoke"},
     .err_has = "routes[1]"},
    {"allowed /33", -EINVAL, .allowed = {"10.10.0.0/33"}, .err_has = "allowed[0]"},
};

static void test_tun_up_common(void)
{
    world_up();
    run_up(&hub, common_cases, sizeof(common_cases) / sizeof(common_cases[0]));
    run_up(&uplink, common_cases, sizeof(common_cases) / sizeof(common_cases[0]));
    world_down();
}

static const struct up_case hub_cases[] = {
    {"local not the pool's .1", -EPERM, .local = "10.99.0.3", .err_has = "[tunnel] pool"},
    {"remote outside the pool", -EPERM, .remote = "10.98.0.2", .err_has = "[tunnel] pool"},
    {"remote the pool's network", -EPERM, .remote = "10.99.0.0", .err_has = "[tunnel] pool"},
    {"remote the pool's broadcast", -EPERM, .remote = "10.99.0.255",
     .err_has = "[tunnel] pool"},
    {"allowed outside [tunnel] routes", -EPERM, .allowed = {"10.11.0.0/24"},
     .err_has = "[tunnel] routes"},
    {"allowed wider than [tunnel] routes", -EPERM, .allowed = {"10.10.0.0/16"},
     .err_has = "[tunnel] routes"},
    {"route outside peer-networks", -EPERM, .routes = {"8.8.8.0/24"},
     .err_has = "peer-networks"},
    {"route the default", -EPERM, .routes = {"0.0.0.0/0"}, .err_has = "peer-networks"},
    {"route over the pool", -EPERM, .routes = {"10.99.0.0/25"}, .err_has = "pool"},
    {"route in loopback's network", -EPERM, .routes = {"127.5.0.0/16"},
     .err_has = "directly connected on lo"},
    {"route not the peer's network", -EPERM, .routes = {"10.21.0.0/24"},
     .err_has = "not a network of peer spoke1"},
    {"peer not registered", -EPERM, .peer = "nobody", .err_has = "not an active tunnel peer"},
    {"peer revoked", -EPERM, .peer = "raw1", .routes = {""},
     .err_has = "not an active tunnel peer"},
    {"peer an admin", -EPERM, .peer = "admin1", .routes = {""},
     .err_has = "not an active tunnel peer"},
    {"peer empty", -EPERM, .peer = "", .routes = {""}, .err_has = "not an active tunnel peer"},
};

static void test_tun_up_hub(void)
{
    world_up();
    run_up(&hub, hub_cases, sizeof(hub_cases) / sizeof(hub_cases[0]));
    world_down();
}

/* What a live tunnel takes: its name, its address, its networks. */
static void test_tun_up_owned(void)
{
    static const struct up_case taken[] = {
        {"the same interface again", -EEXIST, .remote = "10.99.0.3", .routes = {""},
         .err_has = "exists already"},
        {"its tunnel address", -EADDRINUSE, "mtg2", .routes = {""}, .err_has = "in use on mtg1"},
        {"over its network", -EADDRINUSE, "mtg2", "spoke2", .remote = "10.99.0.3",
         .routes = {"10.20.0.0/16"}, .err_has = "overlaps"},
        {"uplink twice", -EEXIST, "mtgu1", .err_has = "up already"},
    };

    world_up();
    run_up(&hub, &hub, 1);
    CU_ASSERT(recorded("tun_create mtg1"));
    run_up(&uplink, &uplink, 1);
    CU_ASSERT(recorded("tun_create mtgu0"));
    run_up(&hub, taken, 3);
    run_up(&uplink, taken + 3, 1);
    world_down();
}

static const struct up_case uplink_cases[] = {
    {"no such [uplink]", -EPERM, .peer = "nosuch", .err_has = "no [uplink nosuch]"},
    {"peer unterminated", -EINVAL, .unterm = U_PEER, .err_has = "malformed"},
    {"local outside peer-networks", -EPERM, .local = "192.0.2.77",
     .err_has = "outside [tunnel] peer-networks"},
    {"remote outside peer-networks", -EPERM, .remote = "8.8.8.8",
     .err_has = "outside [tunnel] peer-networks"},
    {"local in our own pool", -EPERM, .local = "10.99.0.9", .err_has = "our own [tunnel] pool"},
    {"route outside accept-routes", -EPERM, .routes = {"10.41.0.0/16"},
     .err_has = "accept-routes"},
    {"route the default", -EPERM, .routes = {"0.0.0.0/0"}, .err_has = "accept-routes"},
    {"allowed outside peer-networks", -EPERM, .allowed = {"8.8.8.0/24"},
     .err_has = "peer-networks"},
    {"route over the hub's address", -EPERM, .peer = "wide", .routes = {"10.40.0.0/16"},
     .err_has = "into itself"},
    {"tunnel address the hub's", -EPERM, .peer = "wide", .routes = {""},
     .remote = "10.40.0.10", .err_has = "into itself"},
};

static void test_tun_up_uplink(void)
{
    world_up();
    run_up(&uplink, uplink_cases, sizeof(uplink_cases) / sizeof(uplink_cases[0]));
    world_down();
}

/* ---- PS_TUN_DOWN -------------------------------------------------------- */

static void down(const char *name, const char *ifname, bool unterminated, int want,
                 const char *err_has)
{
    struct ps_msg m;

    memset(&m, 0, sizeof(m));
    m.type = PS_TUN_DOWN;
    snprintf(m.u.down.ifname, sizeof(m.u.down.ifname), "%s", ifname);
    if (unterminated)
        memset(m.u.down.ifname, 'g', sizeof(m.u.down.ifname));
    expect(name, &m, sizeof(m), want, err_has);
}

static void test_tun_down(void)
{
    world_up();
    down("never made", "mtg1", false, -ENOENT, "not ours");
    down("not owned", "eth0", false, -ENOENT, "not ours");
    down("loopback", "lo", false, -ENOENT, "not ours");
    down("empty", "", false, -ENOENT, "not ours");
    down("unterminated", "", true, -EINVAL, "malformed");
    run_up(&hub, &hub, 1);
    down("another one", "mtg2", false, -ENOENT, "not ours");
    down("the one made", "mtg1", false, 0, NULL);
    CU_ASSERT(recorded("link_del mtg1"));
    down("twice", "mtg1", false, -ENOENT, "not ours");
    world_down();
}

/* ---- PS_GATE_OPEN / PS_GATE_CLOSE --------------------------------------- */

static void gate(const char *name, uint32_t type, const char *addr, uint32_t timeout_ms,
                 int want, const char *err_has)
{
    struct ps_msg m;

    memset(&m, 0, sizeof(m));
    m.type = type;
    if (addr)
        snprintf(m.u.gate.addr, sizeof(m.u.gate.addr), "%s", addr);
    else
        memset(m.u.gate.addr, '1', sizeof(m.u.gate.addr));
    m.u.gate.timeout_ms = timeout_ms;
    expect(name, &m, sizeof(m), want, err_has);
}

static void test_gate(void)
{
    world_up();
    gate("open unterminated", PS_GATE_OPEN, NULL, 1000, -EINVAL, "malformed");
    gate("close unterminated", PS_GATE_CLOSE, NULL, 0, -EINVAL, "malformed");
    gate("open empty", PS_GATE_OPEN, "", 1000, -EINVAL, "malformed");
    gate("open a name", PS_GATE_OPEN, "admin1", 1000, -EINVAL, "malformed");
    gate("open a prefix", PS_GATE_OPEN, "192.0.2.9/24", 1000, -EINVAL, "malformed");
    gate("open with a port", PS_GATE_OPEN, "192.0.2.9:22", 1000, -EINVAL, "malformed");
    gate("open with a zone", PS_GATE_OPEN, "fd00::9%eth0", 1000, -EINVAL, "malformed");
    gate("close a prefix", PS_GATE_CLOSE, "192.0.2.0/24", 0, -EINVAL, "malformed");
    gate("open no timeout", PS_GATE_OPEN, "192.0.2.9", 0, -EINVAL, "malformed");
    gate("open over a day", PS_GATE_OPEN, "192.0.2.9", 86400001u, -EINVAL, "malformed");
    gate("open 2^32-1 ms", PS_GATE_OPEN, "192.0.2.9", 0xffffffffu, -EINVAL, "malformed");
    gate("open IPv4 link-local", PS_GATE_OPEN, "169.254.1.1", 1000, -EPERM, "link-scoped");
    gate("open IPv6 link-local", PS_GATE_OPEN, "fe80::1", 1000, -EPERM, "link-scoped");
    gate("open IPv6 site-local", PS_GATE_OPEN, "fec0::1", 1000, -EPERM, "link-scoped");
    gate("open mapped link-local", PS_GATE_OPEN, "::ffff:169.254.1.1", 1000, -EPERM,
         "link-scoped");
    gate("open IPv4", PS_GATE_OPEN, "192.0.2.9", 1000, 0, NULL);
    gate("open IPv6", PS_GATE_OPEN, "fd00::9", 86400000u, 0, NULL);
    CU_ASSERT(recorded("fw_gate_open 192.0.2.9 timeout 1000"));
    gate("close IPv4", PS_GATE_CLOSE, "192.0.2.9", 0, 0, NULL);
    CU_ASSERT(recorded("fw_gate_close 192.0.2.9"));
    world_down();
}

/* A session process gone wrong cannot grow the parent's memory: 4096
 * openings, then refused; a refresh of one already open still goes. */
static void test_gate_bound(void)
{
    char addr[64];
    unsigned refused = 0, first = 0;

    world_up();
    for (unsigned i = 0; i < 4097; i++) {
        struct ps_msg m;
        char err[PS_ERRLEN];
        int rc;
        memset(&m, 0, sizeof(m));
        m.type = PS_GATE_OPEN;
        snprintf(m.u.gate.addr, sizeof(m.u.gate.addr), "fd00::%x", i + 1);
        m.u.gate.timeout_ms = 600000;
        rc = ask(&m, sizeof(m), err, sizeof(err));
        if (rc == -ENOSPC && !refused++)
            first = i;
        else if (rc != 0)
            CU_FAIL("gate open");
    }
    EXPECT_INT(refused, 1);
    EXPECT_INT(first, 4096);
    snprintf(addr, sizeof(addr), "fd00::%x", 1);
    gate("refresh one open", PS_GATE_OPEN, addr, 1000, 0, NULL);
    world_down();
}

/* ---- the message itself ------------------------------------------------- */

static void test_message(void)
{
    struct ps_msg m;
    char big[sizeof(m) + 64];

    world_up();
    memset(&m, 0, sizeof(m));
    m.type = PS_GATE_OPEN;
    snprintf(m.u.gate.addr, sizeof(m.u.gate.addr), "192.0.2.9");
    m.u.gate.timeout_ms = 1000;
    expect("one byte short", &m, sizeof(m) - 1, -EINVAL, "bytes refused");
    expect("four bytes", &m, 4, -EINVAL, "bytes refused");
    memset(big, 0, sizeof(big));
    memcpy(big, &m, sizeof(m));
    expect("one byte over", big, sizeof(m) + 1, -EINVAL, "bytes refused");
    expect("64 bytes over", big, sizeof(big), -EINVAL, "bytes refused");
    m.type = 0;
    expect("type 0", &m, sizeof(m), -EINVAL, "unknown request type 0");
    m.type = PS_REPLY;
    expect("type PS_REPLY", &m, sizeof(m), -EINVAL, "unknown request type");
    m.type = 0xffffffffu;
    expect("type 2^32-1", &m, sizeof(m), -EINVAL, "unknown request type");
    world_down();
}

/* The session process is gone: everything it had goes, the gate first. */
static void test_teardown_all(void)
{
    const char *rec;

    world_up();
    run_up(&hub, &hub, 1);
    run_up(&uplink, &uplink, 1);
    gate("open", PS_GATE_OPEN, "192.0.2.9", 60000, 0, NULL);
    ps_server_teardown_all(ps);
    rec = ps_server_record(ps);
    CU_ASSERT(strstr(rec, "link_del mtg1") != NULL);
    CU_ASSERT(strstr(rec, "link_del mtgu0") != NULL);
    CU_ASSERT(strstr(rec, "fw_gate_close 192.0.2.9") != NULL);
    CU_ASSERT(strstr(rec, "fw_gate_close 192.0.2.9") < strstr(rec, "link_del mtg"));
    down("gone after teardown", "mtg1", false, -ENOENT, "not ours");
    world_down();
}

static const struct cu_test tests[] = {
    {"TUN up: fields of every request", test_tun_up_common},
    {"TUN up: a hub peer", test_tun_up_hub},
    {"TUN up: what live tunnels own", test_tun_up_owned},
    {"TUN up: an uplink", test_tun_up_uplink},
    {"TUN down", test_tun_down},
    {"gate open/close", test_gate},
    {"gate: at most 4096 openings", test_gate_bound},
    {"message size and type", test_message},
    {"teardown of everything", test_teardown_all},
};

CU_MAIN("privsep", tests)
