/*
 * netns suite: netconfig against the real kernel. Every test runs in a
 * child process in a network namespace of its own, made with
 * unshare(CLONE_NEWNET) and gone when the child exits; results are read
 * back with `ip -j` and `nft -j`, never through the library.
 *
 * Topology of the tests that need a second host:
 *
 *     namespace A (the gateway, the test)        namespace B (a client)
 *     +------------------------------+           +---------------------+
 *     | mtg0 (TUN, fd in the test)   |           |                     |
 *     | va 192.0.2.1/24 fd00:2::1/64 |-- veth ---| vb 192.0.2.2/24     |
 *     | table inet mtlsgw            |           |    192.0.2.3/24     |
 *     +------------------------------+           |    fd00:2::2/64     |
 *                                                +---------------------+
 */
#include <arpa/inet.h>
#include <errno.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <CUnit/Basic.h>

#include "netconfig.h"
#include "nsutil.h"

#define GATED_PORT 2222

static struct nc *open_nc(void)
{
    struct nc *nc = NULL;

    CHECK_INT(0, nc_new(NULL, &nc));
    ns_nc = nc;
    return nc;
}

static const struct nc_service gated[] = { { IPPROTO_TCP, GATED_PORT }, { IPPROTO_UDP, 53 } };
static const struct nc_fw_config fwcfg = { gated, 2 };

/* B with addresses on vb; A with its own on va. */
static void two_hosts(void)
{
    CHECK_INT(0, ns_peer_setup());
    CHECK_INT(0, ns_sh("ip addr add 192.0.2.1/24 dev va && "
                       "ip addr add fd00:2::1/64 dev va nodad"));
    CHECK_INT(0, ns_b_sh("ip addr add 192.0.2.2/24 dev vb && ip addr add 192.0.2.3/24 dev vb"
                         " && ip addr add fd00:2::2/64 dev vb nodad"
                         " && ip route add default via 192.0.2.1"));
}

/* --- links --------------------------------------------------------------- */

/* A link's txqueuelen (SIOCGIFTXQLEN); -1 when it cannot be read. */
static int link_txqlen(const char *name)
{
    struct ifreq ifr;
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0), q = -1;

    memset(&ifr, 0, sizeof(ifr));
    snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", name);
    if (s >= 0 && ioctl(s, SIOCGIFTXQLEN, &ifr) == 0)
        q = ifr.ifr_qlen;
    if (s >= 0)
        close(s);
    return q;
}

static void t_tun_create(void)
{
    struct nc *nc = open_nc();
    int fd = -1, fd2 = -1;

    CHECK_OK(nc_tun_create(nc, "mtg0", &fd));
    CHECK(fd >= 0);
    CHECK(ip_link_exists("mtg0"));
    CHECK(ip_link_has_flag("mtg0", "POINTOPOINT"));
    /* A short queue: what waits there delays all behind it (netconfig.h). */
    CHECK_INT(NC_TUN_TXQLEN, link_txqlen("mtg0"));
    /* The name is taken while the first fd holds it. */
    CHECK_INT(-EBUSY, nc_tun_create(nc, "mtg0", &fd2));
    CHECK_INT(-1, fd2);
    CHECK(strstr(nc_error(nc), "mtg0") != NULL);
    /* Not persistent: the device goes with its fd. */
    close(fd);
    CHECK(!ip_link_exists("mtg0"));
    nc_free(nc);
}

static void t_link_up_down_mtu(void)
{
    struct nc *nc = open_nc();
    int fd = -1;

    CHECK_OK(nc_tun_create(nc, "mtg7", &fd));
    CHECK(!ip_link_has_flag("mtg7", "UP"));
    CHECK_OK(nc_link_set_up(nc, "mtg7"));
    CHECK(ip_link_has_flag("mtg7", "UP"));
    CHECK_OK(nc_link_set_up(nc, "mtg7"));
    CHECK_OK(nc_link_set_mtu(nc, "mtg7", 1280));
    CHECK_INT(1280, ip_link_mtu("mtg7"));
    CHECK_OK(nc_link_set_down(nc, "mtg7"));
    CHECK(!ip_link_has_flag("mtg7", "UP"));
    CHECK_INT(-ENODEV, nc_link_set_up(nc, "mtg8"));
    /* The kernel's own refusal comes back with its errno. */
    CHECK_INT(-EINVAL, nc_link_set_mtu(nc, "mtg7", 65536));
    CHECK_INT(1280, ip_link_mtu("mtg7"));
    close(fd);
    nc_free(nc);
}

static void t_link_del(void)
{
    struct nc *nc = open_nc();

    CHECK_INT(0, ns_sh("ip tuntap add mtg5 mode tun"));
    CHECK(ip_link_exists("mtg5"));
    CHECK_OK(nc_link_del(nc, "mtg5"));
    CHECK(!ip_link_exists("mtg5"));
    CHECK_OK(nc_link_del(nc, "mtg5"));
    {
        const char *many[] = { "mtg1", "mtg2", "mtg3", "mtg9" };
        const char *bad[] = { "mtg1", "vx" };
        int fd = -1;

        /* A foreign link stays, a missing one is skipped, a TUN whose fd
         * is still open goes too. */
        CHECK_INT(0, ns_sh("ip link add vx type veth peer name vy && "
                           "ip tuntap add mtg1 mode tun && ip tuntap add mtg2 mode tun"));
        CHECK_OK(nc_tun_create(nc, "mtg3", &fd));
        CHECK_INT(-EINVAL, nc_links_del(nc, bad, 2));
        CHECK(ip_link_exists("mtg1"));
        CHECK_OK(nc_links_del(nc, many, 4));
        CHECK(!ip_link_exists("mtg1") && !ip_link_exists("mtg2") && !ip_link_exists("mtg3"));
        CHECK(ip_link_exists("vx") && ip_link_exists("vy"));
        close(fd);
    }
    nc_free(nc);
}

static void t_custom_prefix(void)
{
    struct nc_options o = { .ifprefix = "tunx" };
    struct nc *nc = NULL;
    int fd = -1;

    CHECK_OK(nc_new(&o, &nc));
    ns_nc = nc;
    CHECK_STR("tunx", nc_ifprefix(nc));
    CHECK_INT(-EINVAL, nc_tun_create(nc, "mtg0", &fd));
    CHECK_OK(nc_tun_create(nc, "tunx0", &fd));
    CHECK(ip_link_exists("tunx0"));
    CHECK_OK(nc_fw_install(nc, NULL));
    CHECK_INT(0, ns_sh("nft list chain inet mtlsgw input | grep -q 'iifname \"tunx\\*\"'"));
    close(fd);
    nc_free(nc);
    o.ifprefix = "a-prefix-far-too-long";
    CHECK_INT(-EINVAL, nc_new(&o, &nc));
}

/* --- refusals: before any netlink call ------------------------------------ */

static int refusals(struct nc *nc)
{
    const char *bad_prefixes[] = { "10.0.0.0/8", "nonsense" };
    int fd = -1, n = 0;

    n += nc_tun_create(nc, "mtg0123456789abcdef", &fd) == -EINVAL;
    n += nc_tun_create(nc, "eth0", &fd) == -EINVAL;
    n += nc_tun_create(nc, "mtg", &fd) == -EINVAL;  /* the bare prefix */
    n += nc_tun_create(nc, "mtg/1", &fd) == -EINVAL; /* not a kernel name */
    n += nc_tun_create(nc, "mtg 1", &fd) == -EINVAL;
    n += nc_link_set_up(nc, "lo") == -EINVAL;
    n += nc_link_set_mtu(nc, "eth0", 1400) == -EINVAL;
    n += nc_link_del(nc, "va") == -EINVAL;
    n += nc_addr_add(nc, "mtg0", "10.0.0.300/24", NULL) == -EINVAL;
    n += nc_addr_add(nc, "mtg0", "10.0.0.1/33", NULL) == -EINVAL;
    n += nc_addr_add(nc, "mtg0", "10.0.0.1", "fd00::1") == -EINVAL;
    n += nc_addr_add(nc, "eth0", "10.0.0.1/24", NULL) == -EINVAL;
    n += nc_addr_del(nc, "mtg0", "", NULL) == -EINVAL;
    n += nc_route_add(nc, "10.1.0.0/16x", "mtg0", 0, 0) == -EINVAL;
    n += nc_route_add(nc, "10.1.0.0/16", "eth0", 0, 0) == -EINVAL;
    n += nc_route_del(nc, "fd00::/129", "mtg0", 0, 0) == -EINVAL;
    n += nc_fw_trust_iface(nc, "eth0", 0) == -EINVAL;
    n += nc_fw_untrust_iface(nc, "mtg0123456789abcdef") == -EINVAL;
    n += nc_fw_allow_prefixes(nc, "mtg0", bad_prefixes, 2) == -EINVAL;
    n += nc_fw_allow_prefixes(nc, "wg0", bad_prefixes, 1) == -EINVAL;
    n += nc_fw_disallow_prefixes(nc, "mtg0", bad_prefixes + 1, 1) == -EINVAL;
    n += nc_fw_gate_open(nc, "192.0.2.0/24", 1000) == -EINVAL;
    n += nc_fw_gate_open(nc, "192.0.2.1", 0) == -EINVAL;
    n += nc_fw_gate_close(nc, "host.example") == -EINVAL;
    n += nc_conntrack_flush(nc, bad_prefixes + 1, 1, NULL) == -EINVAL;
    CHECK_INT(-1, fd);
    return n;
}
#define N_REFUSALS 25

static void t_refusals(void)
{
    struct nc_options rec = { .backend = NC_BACKEND_RECORD };
    struct nc *nc = open_nc();
    int links = ip_link_count();

    CHECK_INT(N_REFUSALS, refusals(nc));
    CHECK(strstr(nc_error(nc), "not a prefix") != NULL || nc_error(nc)[0]);
    CHECK_INT(links, ip_link_count());
    CHECK(!nft_table_exists());
    nc_free(nc);
    /* The recording backend records each call that reaches the kernel
     * side: none of these does. */
    CHECK_OK(nc_new(&rec, &nc));
    ns_nc = nc;
    CHECK_INT(N_REFUSALS, refusals(nc));
    CHECK_STR("", nc_record_text(nc));
    nc_free(nc);
}

/* --- addresses and routes -------------------------------------------------- */

static void t_addr(void)
{
    struct nc *nc = open_nc();
    int fd = -1;

    CHECK_OK(nc_tun_create(nc, "mtg0", &fd));
    CHECK_OK(nc_link_set_up(nc, "mtg0"));
    CHECK_OK(nc_addr_add(nc, "mtg0", "10.10.0.1/24", NULL));
    CHECK_OK(nc_addr_add(nc, "mtg0", "10.10.0.1/24", NULL)); /* idempotent */
    CHECK_OK(nc_addr_add(nc, "mtg0", "10.20.0.1", "10.20.0.2"));
    CHECK_OK(nc_addr_add(nc, "mtg0", "fd00:10::1/64", NULL));
    CHECK_OK(nc_addr_add(nc, "mtg0", "fd00:20::1", "fd00:20::2/128"));
    CHECK(ip_addr_present("mtg0", "10.10.0.1", 24, NULL));
    CHECK(ip_addr_present("mtg0", "10.20.0.1", 32, "10.20.0.2"));
    CHECK(ip_addr_present("mtg0", "fd00:10::1", 64, NULL));
    CHECK(ip_addr_present("mtg0", "fd00:20::1", 128, "fd00:20::2"));
    CHECK_OK(nc_addr_del(nc, "mtg0", "10.10.0.1/24", NULL));
    CHECK_OK(nc_addr_del(nc, "mtg0", "10.10.0.1/24", NULL)); /* idempotent */
    CHECK_OK(nc_addr_del(nc, "mtg0", "10.20.0.1", "10.20.0.2"));
    CHECK_OK(nc_addr_del(nc, "mtg0", "fd00:10::1/64", NULL));
    CHECK(!ip_addr_present("mtg0", "10.10.0.1", 24, NULL));
    CHECK(!ip_addr_present("mtg0", "10.20.0.1", 32, "10.20.0.2"));
    CHECK(!ip_addr_present("mtg0", "fd00:10::1", 64, NULL));
    CHECK(ip_addr_present("mtg0", "fd00:20::1", 128, "fd00:20::2"));
    CHECK_INT(-ENODEV, nc_addr_add(nc, "mtg1", "10.10.0.1/24", NULL));
    close(fd);
    nc_free(nc);
}

static void t_route(void)
{
    struct nc *nc = open_nc();
    int fd = -1;

    CHECK_OK(nc_tun_create(nc, "mtg0", &fd));
    CHECK_OK(nc_link_set_up(nc, "mtg0"));
    CHECK_OK(nc_route_add(nc, "10.30.0.0/16", "mtg0", 50, 0));
    CHECK_OK(nc_route_add(nc, "10.30.0.0/16", "mtg0", 50, 0)); /* idempotent */
    CHECK_OK(nc_route_add(nc, "10.31.1.2/16", "mtg0", 0, 100)); /* host bits cleared */
    CHECK_OK(nc_route_add(nc, "fd00:30::/48", "mtg0", 7, 0));
    CHECK_OK(nc_route_add(nc, "fd00:31::/64", "mtg0", 0, 100));
    CHECK(ip_route_present(4, 254, "10.30.0.0/16", "mtg0", 50));
    CHECK(ip_route_present(4, 100, "10.31.0.0/16", "mtg0", 0));
    CHECK(ip_route_present(6, 254, "fd00:30::/48", "mtg0", 7));
    CHECK(ip_route_present(6, 100, "fd00:31::/64", "mtg0", 1024) ||
          ip_route_present(6, 100, "fd00:31::/64", "mtg0", 0));
    CHECK_OK(nc_route_del(nc, "10.30.0.0/16", "mtg0", 50, 0));
    CHECK_OK(nc_route_del(nc, "10.30.0.0/16", "mtg0", 50, 0)); /* idempotent */
    CHECK_OK(nc_route_del(nc, "fd00:30::/48", "mtg0", 7, 0));
    CHECK(!ip_route_present(4, 254, "10.30.0.0/16", "mtg0", 50));
    CHECK(!ip_route_present(6, 254, "fd00:30::/48", "mtg0", 7));
    CHECK(ip_route_present(4, 100, "10.31.0.0/16", "mtg0", 0));
    /* A route someone else holds is not taken over. */
    CHECK_INT(0, ns_sh("ip link add vx type veth peer name vy && ip link set vx up && "
                       "ip route add 10.40.0.0/16 dev vx metric 9"));
    CHECK_INT(-EEXIST, nc_route_add(nc, "10.40.0.0/16", "mtg0", 9, 0));
    CHECK(strstr(nc_error(nc), "10.40.0.0/16") != NULL);
    CHECK(ip_route_present(4, 254, "10.40.0.0/16", "vx", 9));
    CHECK_INT(-EINVAL, nc_route_add(nc, "10.41.0.0/16", "mtg0", 0, 255));
    close(fd);
    nc_free(nc);
}

static void t_owned_list(void)
{
    struct nc *nc = open_nc();
    struct nc_state *st = NULL;
    int fd0 = -1, fd1 = -1;

    CHECK_INT(0, ns_sh("ip link add vx type veth peer name vy && ip addr add 10.99.0.1/24 dev vx"
                       " && ip link set vx up && ip route add 10.98.0.0/16 dev vx"));
    CHECK_OK(nc_tun_create(nc, "mtg0", &fd0));
    CHECK_OK(nc_tun_create(nc, "mtg1", &fd1));
    CHECK_OK(nc_link_set_up(nc, "mtg0"));
    CHECK_OK(nc_link_set_mtu(nc, "mtg0", 1400));
    CHECK_OK(nc_addr_add(nc, "mtg0", "10.50.0.1", "10.50.0.2"));
    CHECK_OK(nc_addr_add(nc, "mtg0", "fd00:50::1/64", NULL));
    CHECK_OK(nc_addr_add(nc, "mtg0", "fd00:52::1", "fd00:52::2"));
    CHECK_OK(nc_route_add(nc, "10.51.0.0/16", "mtg0", 3, 0));
    CHECK_OK(nc_route_add(nc, "fd00:51::/48", "mtg0", 3, 77));
    CHECK_OK(nc_owned_list(nc, &st));
    if (st) {
        CHECK_INT(2, st->n_links);
        CHECK_INT(3, st->n_addrs);
        CHECK_INT(2, st->n_routes);
        CHECK(!st->fw_installed);
        for (size_t i = 0; i < st->n_links; i++) {
            if (!strcmp(st->links[i].name, "mtg0")) {
                CHECK(st->links[i].up);
                CHECK_INT(1400, st->links[i].mtu);
            } else {
                CHECK_STR("mtg1", st->links[i].name);
                CHECK(!st->links[i].up);
            }
        }
        for (size_t i = 0; i < st->n_addrs; i++) {
            CHECK_STR("mtg0", st->addrs[i].ifname);
            if (!strcmp(st->addrs[i].local, "10.50.0.1/32"))
                CHECK_STR("10.50.0.2/32", st->addrs[i].peer);
            else if (!strcmp(st->addrs[i].local, "fd00:52::1/128"))
                CHECK_STR("fd00:52::2/128", st->addrs[i].peer);
            else
                CHECK_STR("fd00:50::1/64", st->addrs[i].local);
        }
        for (size_t i = 0; i < st->n_routes; i++) {
            CHECK_STR("mtg0", st->routes[i].ifname);
            CHECK_INT(3, st->routes[i].metric);
            if (!strcmp(st->routes[i].dst, "10.51.0.0/16"))
                CHECK_INT(254, st->routes[i].table);
            else
                CHECK_INT(77, st->routes[i].table);
        }
    }
    nc_state_free(st);
    st = NULL;
    CHECK_OK(nc_fw_install(nc, NULL));
    CHECK_OK(nc_fw_trust_iface(nc, "mtg0", 0));
    CHECK_OK(nc_owned_list(nc, &st));
    if (st) {
        CHECK(st->fw_installed);
        CHECK_INT(1, st->n_trusted);
        CHECK_STR("mtg0", st->n_trusted ? st->trusted[0] : "");
    }
    nc_state_free(st);
    close(fd0);
    close(fd1);
    nc_free(nc);
}

/* --- firewall ------------------------------------------------------------- */

/* Every rule of the table ends in drop, nothing accepts, base chains
 * accept by policy and run just before fw4. */
static void check_only_drops(void)
{
    json_object *root = ns_json("nft -j list table inet mtlsgw"), *arr;
    int chains = 0, rules = 0;

    CHECK(root != NULL);
    if (!root || !json_object_object_get_ex(root, "nftables", &arr))
        goto out;
    for (size_t i = 0; i < json_object_array_length(arr); i++) {
        json_object *o = json_object_array_get_idx(arr, i), *c, *v, *expr;

        if (json_object_object_get_ex(o, "chain", &c)) {
            chains++;
            CHECK(json_object_object_get_ex(c, "policy", &v) &&
                  !strcmp(json_object_get_string(v), "accept"));
            CHECK(json_object_object_get_ex(c, "prio", &v) && json_object_get_int(v) == -1);
        }
        if (json_object_object_get_ex(o, "rule", &c) &&
            json_object_object_get_ex(c, "expr", &expr)) {
            size_t n = json_object_array_length(expr);

            rules++;
            CHECK(n > 0 && json_object_object_get_ex(json_object_array_get_idx(expr, n - 1),
                                                     "drop", &v));
            CHECK(strstr(json_object_to_json_string(expr), "accept") == NULL);
            CHECK(strstr(json_object_to_json_string(expr), "jump") == NULL);
        }
    }
    CHECK_INT(3, chains);
    CHECK_INT(12, rules);
out:
    json_object_put(root);
}

static void t_fw_install(void)
{
    struct nc *nc = open_nc();
    json_object *fw4_before, *fw4_after;

    /* A stand-in for fw4, with its own accept: never read or changed. */
    CHECK_INT(0, ns_sh("nft 'add table inet fw4; add chain inet fw4 input "
                       "{ type filter hook input priority filter; policy drop; }; "
                       "add rule inet fw4 input tcp dport 22 accept'"));
    fw4_before = ns_json("nft -j list table inet fw4");
    CHECK_OK(nc_fw_install(nc, &fwcfg));
    CHECK(nft_table_exists());
    check_only_drops();
    CHECK_INT(2, nft_set_count("gated"));
    CHECK(nft_set_has("gated", "tcp . 2222"));
    CHECK(nft_set_has("gated", "udp . 53"));
    CHECK_INT(0, nft_set_count("trusted_ifaces"));
    CHECK_INT(0, nft_set_count("gate4"));
    CHECK_INT(0, nft_set_count("gate6"));
    CHECK_INT(0, nft_set_count("allowed4"));
    CHECK_INT(0, nft_set_count("allowed6"));
    CHECK_INT(0, nft_set_count("sources4"));
    CHECK_INT(0, nft_set_count("sources6"));
    /* Anti-spoofing on input and forward, for both families. */
    CHECK_INT(0, ns_sh("nft list chain inet mtlsgw input | grep -q "
                       "'iifname \"mtg\\*\" iifname . ip saddr != @sources4 drop'"));
    CHECK_INT(0, ns_sh("nft list chain inet mtlsgw input | grep -q "
                       "'iifname \"mtg\\*\" iifname . ip6 saddr != @sources6 drop'"));
    CHECK_INT(0, ns_sh("nft list chain inet mtlsgw forward | grep -q "
                       "'iifname \"mtg\\*\" iifname . ip saddr != @sources4 drop'"));
    CHECK_INT(0, ns_sh("nft list chain inet mtlsgw forward | grep -q "
                       "'iifname \"mtg\\*\" iifname . ip6 saddr != @sources6 drop'"));
    CHECK_OK(nc_fw_install(nc, &fwcfg));
    check_only_drops();
    CHECK_OK(nc_fw_uninstall(nc));
    CHECK(!nft_table_exists());
    CHECK_OK(nc_fw_uninstall(nc));
    fw4_after = ns_json("nft -j list table inet fw4");
    CHECK(fw4_before && fw4_after);
    if (fw4_before && fw4_after)
        CHECK_STR(json_object_to_json_string(fw4_before), json_object_to_json_string(fw4_after));
    json_object_put(fw4_before);
    json_object_put(fw4_after);
    nc_free(nc);
}

static void t_fw_trust(void)
{
    struct nc *nc = open_nc();

    CHECK_INT(-ENOENT, nc_fw_trust_iface(nc, "mtg0", 0)); /* no table yet */
    CHECK(nc_error(nc)[0] != '\0');
    CHECK_OK(nc_fw_install(nc, &fwcfg));
    CHECK_OK(nc_fw_trust_iface(nc, "mtg0", 0));
    CHECK_OK(nc_fw_trust_iface(nc, "mtg0", 0));
    CHECK_OK(nc_fw_trust_iface(nc, "mtg1", 0));
    CHECK_INT(2, nft_set_count("trusted_ifaces"));
    CHECK(nft_set_has("trusted_ifaces", "mtg0"));
    CHECK_INT(-1, nft_elem_timeout("trusted_ifaces", "mtg0"));
    CHECK_OK(nc_fw_untrust_iface(nc, "mtg0"));
    CHECK_OK(nc_fw_untrust_iface(nc, "mtg0"));
    CHECK(!nft_set_has("trusted_ifaces", "mtg0"));
    CHECK(nft_set_has("trusted_ifaces", "mtg1"));
    /* A timeout, then refreshed to a longer one; then let one expire. */
    CHECK_OK(nc_fw_trust_iface(nc, "mtg2", 2000));
    CHECK_INT(2, nft_elem_timeout("trusted_ifaces", "mtg2"));
    CHECK_OK(nc_fw_trust_iface(nc, "mtg2", 60000));
    CHECK_INT(60, nft_elem_timeout("trusted_ifaces", "mtg2"));
    CHECK_OK(nc_fw_trust_iface(nc, "mtg3", 500));
    CHECK(nft_set_has("trusted_ifaces", "mtg3"));
    sleep_ms(1100);
    CHECK(!nft_set_has("trusted_ifaces", "mtg3"));
    CHECK(nft_set_has("trusted_ifaces", "mtg2"));
    nc_free(nc);
}

static void t_fw_allow(void)
{
    const char *p1[] = { "10.60.0.0/16", "fd00:60::/48", "10.61.1.0/24" };
    const char *p2[] = { "10.62.0.0/16" };
    struct nc *nc = open_nc();

    CHECK_OK(nc_fw_install(nc, &fwcfg));
    CHECK_OK(nc_fw_allow_prefixes(nc, "mtg0", p1, 3));
    CHECK_OK(nc_fw_allow_prefixes(nc, "mtg0", p1, 3)); /* idempotent */
    CHECK_OK(nc_fw_allow_prefixes(nc, "mtg1", p2, 1));
    CHECK_INT(3, nft_set_count("allowed4"));
    CHECK_INT(1, nft_set_count("allowed6"));
    CHECK(nft_set_has("allowed4", "mtg0 . 10.60.0.0/16"));
    CHECK(nft_set_has("allowed4", "mtg0 . 10.61.1.0/24"));
    CHECK(nft_set_has("allowed6", "mtg0 . fd00:60::/48"));
    CHECK(nft_set_has("allowed4", "mtg1 . 10.62.0.0/16"));
    CHECK_OK(nc_fw_disallow_prefixes(nc, "mtg0", p1 + 2, 1));
    CHECK_OK(nc_fw_disallow_prefixes(nc, "mtg0", p1 + 2, 1)); /* idempotent */
    CHECK(!nft_set_has("allowed4", "mtg0 . 10.61.1.0/24"));
    CHECK(nft_set_has("allowed4", "mtg0 . 10.60.0.0/16"));
    /* Everything of one interface, the other one's stay. */
    CHECK_OK(nc_fw_disallow_prefixes(nc, "mtg0", NULL, 0));
    CHECK_INT(1, nft_set_count("allowed4"));
    CHECK_INT(0, nft_set_count("allowed6"));
    CHECK(nft_set_has("allowed4", "mtg1 . 10.62.0.0/16"));
    nc_free(nc);
}

/* A transaction with one element the kernel refuses changes nothing. */
static void t_fw_atomic(void)
{
    const char *good[] = { "10.70.0.0/16" };
    const char *mixed[] = { "10.71.0.0/16", "fd00:71::/48", "10.70.5.0/24" };
    struct nc *nc = open_nc();
    int err;

    CHECK_OK(nc_fw_install(nc, &fwcfg));
    CHECK_OK(nc_fw_allow_prefixes(nc, "mtg0", good, 1));
    CHECK_OK(nc_fw_trust_iface(nc, "mtg0", 0));
    err = nc_fw_allow_prefixes(nc, "mtg0", mixed, 3);
    if (err == 0) {
        /* Some kernels (Debian 12's 6.1 in image/vm) accept the overlapping
         * 10.70.5.0/24: then the batch must have landed whole. */
        printf("\n  this kernel accepts overlapping elements: the whole batch landed\n");
        CHECK(nft_set_count("allowed4") >= 2);
        CHECK_INT(1, nft_set_count("allowed6"));
        CHECK(nft_set_has("allowed4", "mtg0 . 10.71.0.0/16"));
        CHECK(nft_set_has("trusted_ifaces", "mtg0"));
        nc_free(nc);
        return;
    }
    CHECK(err < 0);
    CHECK(strstr(nc_error(nc), "mtg0") != NULL);
    CHECK_INT(1, nft_set_count("allowed4"));
    CHECK_INT(0, nft_set_count("allowed6"));
    CHECK(nft_set_has("allowed4", "mtg0 . 10.70.0.0/16"));
    CHECK(!nft_set_has("allowed4", "mtg0 . 10.71.0.0/16"));
    CHECK(nft_set_has("trusted_ifaces", "mtg0"));
    nc_free(nc);
}

/* A start after a crash is a start on a fresh boot: nothing trusted. */
static void t_fw_fail_closed(void)
{
    const char *p[] = { "10.80.0.0/16" };
    struct nc *nc = open_nc();
    struct nc *again = NULL;

    CHECK_OK(nc_fw_install(nc, &fwcfg));
    CHECK_OK(nc_fw_trust_iface(nc, "mtg0", 0));
    CHECK_OK(nc_fw_allow_prefixes(nc, "mtg0", p, 1));
    CHECK_OK(nc_fw_gate_open(nc, "192.0.2.2", 600000));
    CHECK_OK(nc_fw_gate_open(nc, "fd00:2::2", 600000));
    CHECK_INT(1, nft_set_count("trusted_ifaces"));
    nc_free(nc);
    CHECK_OK(nc_new(NULL, &again));
    ns_nc = again;
    CHECK_OK(nc_fw_install(again, &fwcfg));
    CHECK_INT(0, nft_set_count("trusted_ifaces"));
    CHECK_INT(0, nft_set_count("allowed4"));
    CHECK_INT(0, nft_set_count("gate4"));
    CHECK_INT(0, nft_set_count("gate6"));
    CHECK_INT(2, nft_set_count("gated"));
    check_only_drops();
    nc_free(again);
}

static void t_fw_gate_traffic(void)
{
    struct nc *nc = open_nc();
    int l4, l6;

    two_hosts();
    l4 = tcp_listen("0.0.0.0", GATED_PORT);
    l6 = tcp_listen("::", GATED_PORT + 1);
    CHECK(l4 >= 0 && l6 >= 0);
    /* Before the table the port is open; with it, shut to everyone. */
    CHECK_INT(0, ns_b_connect("192.0.2.2", "192.0.2.1", GATED_PORT, 1000));
    CHECK_OK(nc_fw_install(nc, &fwcfg));
    CHECK_INT(-ETIMEDOUT, ns_b_connect("192.0.2.2", "192.0.2.1", GATED_PORT, 300));
    /* Open for .2 only: .3 stays outside. */
    CHECK_OK(nc_fw_gate_open(nc, "192.0.2.2", 10000));
    CHECK(nft_set_has("gate4", "192.0.2.2"));
    CHECK_INT(0, ns_b_connect("192.0.2.2", "192.0.2.1", GATED_PORT, 1000));
    CHECK_INT(-ETIMEDOUT, ns_b_connect("192.0.2.3", "192.0.2.1", GATED_PORT, 300));
    CHECK_OK(nc_fw_gate_close(nc, "192.0.2.2"));
    CHECK_OK(nc_fw_gate_close(nc, "192.0.2.2"));
    CHECK(!nft_set_has("gate4", "192.0.2.2"));
    CHECK_INT(-ETIMEDOUT, ns_b_connect("192.0.2.2", "192.0.2.1", GATED_PORT, 300));
    /* An opening that is not refreshed closes by itself. */
    CHECK_OK(nc_fw_gate_open(nc, "192.0.2.2", 600));
    CHECK_INT(0, ns_b_connect("192.0.2.2", "192.0.2.1", GATED_PORT, 300));
    sleep_ms(900);
    CHECK_INT(-ETIMEDOUT, ns_b_connect("192.0.2.2", "192.0.2.1", GATED_PORT, 300));
    /* Ports that are not gated are fw4's business. */
    CHECK_INT(0, ns_b_connect("192.0.2.3", "192.0.2.1", GATED_PORT + 1, 1000));
    /* IPv6, with the gated port on the IPv6 listener. */
    close(l4);
    close(l6);
    l6 = tcp_listen("::", GATED_PORT);
    CHECK(l6 >= 0);
    CHECK_INT(-ETIMEDOUT, ns_b_connect("fd00:2::2", "fd00:2::1", GATED_PORT, 300));
    CHECK_OK(nc_fw_gate_open(nc, "fd00:2::2", 10000));
    CHECK(nft_set_has("gate6", "fd00:2::2"));
    CHECK_INT(0, ns_b_connect("fd00:2::2", "fd00:2::1", GATED_PORT, 1000));
    CHECK_OK(nc_fw_gate_close(nc, "fd00:2::2"));
    CHECK_INT(-ETIMEDOUT, ns_b_connect("fd00:2::2", "fd00:2::1", GATED_PORT, 300));
    close(l6);
    nc_free(nc);
}

/* A daemon killed while a door is open: the door shuts by itself. */
static void t_fw_killed_daemon(void)
{
    struct nc *nc = open_nc();
    int l4, status = -1;
    pid_t pid;

    two_hosts();
    l4 = tcp_listen("0.0.0.0", GATED_PORT);
    CHECK(l4 >= 0);
    CHECK_OK(nc_fw_install(nc, &fwcfg));
    fflush(NULL);
    pid = fork();
    if (pid == 0) {
        struct nc *d = NULL;

        if (nc_new(NULL, &d) == 0 && nc_fw_gate_open(d, "192.0.2.2", 1500) == 0)
            raise(SIGKILL);
        _exit(1);
    }
    CHECK(pid > 0 && waitpid(pid, &status, 0) == pid);
    CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    CHECK_INT(0, ns_b_connect("192.0.2.2", "192.0.2.1", GATED_PORT, 500));
    sleep_ms(1700);
    CHECK(!nft_set_has("gate4", "192.0.2.2"));
    CHECK_INT(-ETIMEDOUT, ns_b_connect("192.0.2.2", "192.0.2.1", GATED_PORT, 300));
    close(l4);
    nc_free(nc);
}

/* Packets written into a TUN arrive on it as if the peer had sent them. */
static void t_fw_tunnel_traffic(void)
{
    const char *allowed[] = { "192.0.2.0/24" };
    uint8_t pkt[64], in[2048];
    struct nc *nc = open_nc();
    int fd = -1, local = -1, remote = -1, out = -1;
    struct pollfd pfd;
    size_t len;

    two_hosts();
    CHECK_INT(0, ns_sh("echo 1 > /proc/sys/net/ipv4/ip_forward"));
    CHECK_OK(nc_tun_create(nc, "mtg0", &fd));
    CHECK_OK(nc_link_set_up(nc, "mtg0"));
    CHECK_OK(nc_addr_add(nc, "mtg0", "10.50.0.1", "10.50.0.2"));
    CHECK_OK(nc_fw_install(nc, &fwcfg));
    {
        const char *src[] = { "10.50.0.2" };

        CHECK_OK(nc_fw_allow_sources(nc, "mtg0", src, 1));
    }
    local = udp_socket("10.50.0.1", 5000);
    remote = ns_b_udp_socket("192.0.2.2", 6000);
    CHECK(local >= 0 && remote >= 0);

    /* In: untrusted interface → dropped; trusted → delivered. */
    len = ipv4_udp_packet(pkt, "10.50.0.2", "10.50.0.1", 5000);
    CHECK(write(fd, pkt, len) == (ssize_t)len);
    CHECK_INT(0, udp_wait(local, 300));
    CHECK_OK(nc_fw_trust_iface(nc, "mtg0", 0));
    CHECK(write(fd, pkt, len) == (ssize_t)len);
    CHECK_INT(1, udp_wait(local, 1000));

    /* Forward: trusted, but only to the peer's allowed prefixes. */
    len = ipv4_udp_packet(pkt, "10.50.0.2", "192.0.2.2", 6000);
    CHECK(write(fd, pkt, len) == (ssize_t)len);
    CHECK_INT(0, udp_wait(remote, 300));
    CHECK_OK(nc_fw_allow_prefixes(nc, "mtg0", allowed, 1));
    CHECK(write(fd, pkt, len) == (ssize_t)len);
    CHECK_INT(1, udp_wait(remote, 1000));

    /* Out: towards an untrusted interface nothing leaves. */
    out = udp_socket("10.50.0.1", 0);
    CHECK(out >= 0);
    CHECK_OK(nc_fw_untrust_iface(nc, "mtg0"));
    CHECK_INT(0, ns_sh("true"));
    {
        struct sockaddr_in dst = { .sin_family = AF_INET, .sin_port = htons(7000) };

        inet_pton(AF_INET, "10.50.0.2", &dst.sin_addr);
        sendto(out, "x", 1, 0, (struct sockaddr *)&dst, sizeof(dst));
        pfd.fd = fd;
        pfd.events = POLLIN;
        /* A TUN may carry its own IPv6 chatter; only UDP/IPv4 counts. */
        CHECK_INT(0, poll(&pfd, 1, 300) == 1 && read(fd, in, sizeof(in)) > 0 && in[0] == 0x45);
        CHECK_OK(nc_fw_trust_iface(nc, "mtg0", 0));
        sendto(out, "x", 1, 0, (struct sockaddr *)&dst, sizeof(dst));
        CHECK_INT(1, poll(&pfd, 1, 1000) == 1 && read(fd, in, sizeof(in)) > 0 && in[0] == 0x45);
    }
    close(out);
    close(local);
    close(remote);
    close(fd);
    nc_free(nc);
}

/* The anti-spoofing sets: what a tunnel may send from, per interface. */
static void t_fw_sources(void)
{
    const char *p0[] = { "10.50.0.2", "10.20.0.0/24", "fd00:20::/64", "10.20.0.128/25",
                         "10.20.0.0/24" };
    const char *p1[] = { "10.51.0.2", "10.30.0.0/16" };
    const char *bad[] = { "10.0.0.0/8", "nonsense" };
    struct nc_options rec = { .backend = NC_BACKEND_RECORD };
    struct nc *nc = open_nc();
    struct nc_state *st = NULL;

    CHECK_INT(-ENOENT, nc_fw_allow_sources(nc, "mtg0", p0, 2)); /* no table yet */
    CHECK_OK(nc_fw_install(nc, &fwcfg));
    /* An enclosed prefix (and a repeat) is folded into its enclosing one:
     * the kernel would refuse the overlap and the whole call with it. */
    CHECK_OK(nc_fw_allow_sources(nc, "mtg0", p0, 5));
    CHECK_OK(nc_fw_allow_sources(nc, "mtg0", p0, 5)); /* idempotent */
    CHECK_OK(nc_fw_allow_sources(nc, "mtg1", p1, 2));
    CHECK_INT(4, nft_set_count("sources4"));
    CHECK_INT(1, nft_set_count("sources6"));
    CHECK(nft_set_has("sources4", "mtg0 . 10.50.0.2"));
    CHECK(nft_set_has("sources4", "mtg0 . 10.20.0.0/24"));
    CHECK(nft_set_has("sources6", "mtg0 . fd00:20::/64"));
    CHECK(nft_set_has("sources4", "mtg1 . 10.30.0.0/16"));
    /* Not the allowed sets: those are destinations. */
    CHECK_INT(0, nft_set_count("allowed4"));
    CHECK_OK(nc_owned_list(nc, &st));
    if (st)
        CHECK_INT(5, st->n_sources);
    nc_state_free(st);
    CHECK_INT(-EINVAL, nc_fw_allow_sources(nc, "mtg0", bad, 2));
    CHECK_INT(-EINVAL, nc_fw_allow_sources(nc, "va", p0, 1));
    CHECK_INT(-EINVAL, nc_fw_disallow_sources(nc, "eth0", NULL, 0));
    CHECK_OK(nc_fw_disallow_sources(nc, "mtg0", p0 + 1, 1));
    CHECK_OK(nc_fw_disallow_sources(nc, "mtg0", p0 + 1, 1)); /* idempotent */
    CHECK(!nft_set_has("sources4", "mtg0 . 10.20.0.0/24"));
    CHECK(nft_set_has("sources4", "mtg0 . 10.50.0.2"));
    /* Teardown: everything of mtg0, mtg1's stay. */
    CHECK_OK(nc_fw_disallow_sources(nc, "mtg0", NULL, 0));
    CHECK_INT(2, nft_set_count("sources4"));
    CHECK_INT(0, nft_set_count("sources6"));
    CHECK(nft_set_has("sources4", "mtg1 . 10.51.0.2"));
    nc_free(nc);
    CHECK_OK(nc_new(&rec, &nc));
    ns_nc = nc;
    CHECK_OK(nc_fw_allow_sources(nc, "mtg0", p0, 5));
    CHECK_OK(nc_fw_disallow_sources(nc, "mtg0", NULL, 0));
    CHECK_STR("fw_allow_sources mtg0 10.50.0.2/32 10.20.0.0/24 fd00:20::/64\n"
              "fw_disallow_sources mtg0\n",
              nc_record_text(nc));
    nc_free(nc);
}

/* A tunnel peer sends with addresses that are not its own: real packets
 * written into the TUN, as the peer's end would send them. */
static void t_fw_spoof_traffic(void)
{
    const char *allowed[] = { "192.0.2.0/24", "fd00:2::/64" };
    const char *sources[] = { "10.50.0.2", "10.20.0.0/24", "fd00:20::/64" };
    struct nc *nc = open_nc();
    int fd = -1, local = -1, gated_udp = -1, local6 = -1, remote = -1, remote6 = -1;
    uint8_t pkt[128];
    size_t len;

    two_hosts();
    /* Reverse-path filtering off, as on many routers (and its loose mode
     * passes any routable source): the table must not rely on it. */
    CHECK_INT(0, ns_sh("sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1"
                       " net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0"));
    /* Neighbours resolved first: a forwarded packet then goes out at once. */
    CHECK_INT(0, ns_sh("ping -c1 -W2 192.0.2.2 >/dev/null && ping -6 -c1 -W2 fd00:2::2 >/dev/null"));
    CHECK_OK(nc_tun_create(nc, "mtg0", &fd));
    CHECK_OK(nc_link_set_up(nc, "mtg0"));
    CHECK_OK(nc_addr_add(nc, "mtg0", "10.50.0.1", "10.50.0.2"));
    CHECK_OK(nc_fw_install(nc, &fwcfg));
    CHECK_OK(nc_fw_trust_iface(nc, "mtg0", 0));
    CHECK_OK(nc_fw_allow_prefixes(nc, "mtg0", allowed, 2));
    /* 192.0.2.2 authenticated as an admin: udp/53 is gated and open to it. */
    CHECK_OK(nc_fw_gate_open(nc, "192.0.2.2", 60000));
    local = udp_socket("10.50.0.1", 5000);
    gated_udp = udp_socket("0.0.0.0", 53);
    local6 = udp_socket("fd00:2::1", 5001);
    remote = ns_b_udp_socket("192.0.2.2", 6000);
    remote6 = ns_b_udp_socket("fd00:2::2", 6001);
    CHECK(local >= 0 && gated_udp >= 0 && local6 >= 0 && remote >= 0 && remote6 >= 0);

#define SEND4(src, dst, port)                                                                \
    do {                                                                                     \
        len = ipv4_udp_packet(pkt, src, dst, port);                                          \
        CHECK(write(fd, pkt, len) == (ssize_t)len);                                          \
    } while (0)
#define SEND6(src, dst, port)                                                                \
    do {                                                                                     \
        len = ipv6_udp_packet(pkt, src, dst, port);                                          \
        CHECK(write(fd, pkt, len) == (ssize_t)len);                                          \
    } while (0)
    /* No sources given yet: nothing from mtg0 passes, not even its own
     * tunnel address (fail closed). */
    SEND4("10.50.0.2", "10.50.0.1", 5000);
    CHECK_INT(0, udp_wait(local, 300));
    CHECK_OK(nc_fw_allow_sources(nc, "mtg0", sources, 3));
    /* Input: the tunnel address and a network pass... */
    SEND4("10.50.0.2", "10.50.0.1", 5000);
    CHECK_INT(1, udp_wait(local, 1000));
    SEND4("10.20.0.7", "10.50.0.1", 5000);
    CHECK_INT(1, udp_wait(local, 1000));
    SEND6("fd00:20::7", "fd00:2::1", 5001);
    CHECK_INT(1, udp_wait(local6, 1000));
    /* ...the admin's address does not reach the gated service, nor any
     * other address the gateway itself. */
    SEND4("192.0.2.2", "192.0.2.1", 53);
    CHECK_INT(0, udp_wait(gated_udp, 300));
    SEND4("10.50.0.3", "10.50.0.1", 5000);
    CHECK_INT(0, udp_wait(local, 300));
    SEND6("fd00:2::2", "fd00:2::1", 5001);
    CHECK_INT(0, udp_wait(local6, 300));
    /* The same admin address from its own LAN does pass the gate. */
    CHECK_INT(0, ns_b_udp_send("192.0.2.2", "192.0.2.1", 53));
    CHECK_INT(1, udp_wait(gated_udp, 1000));
    /* Forward: from its networks to an allowed destination, yes; from the
     * gateway's LAN (192.0.2.9), another peer's network or anywhere, no. */
    SEND4("10.20.0.7", "192.0.2.2", 6000);
    CHECK_INT(1, udp_wait(remote, 1000));
    SEND4("192.0.2.9", "192.0.2.2", 6000);
    CHECK_INT(0, udp_wait(remote, 300));
    SEND4("10.30.0.9", "192.0.2.2", 6000);
    CHECK_INT(0, udp_wait(remote, 300));
    SEND6("fd00:20::7", "fd00:2::2", 6001);
    CHECK_INT(1, udp_wait(remote6, 1000));
    SEND6("fd00:2::3", "fd00:2::2", 6001);
    CHECK_INT(0, udp_wait(remote6, 300));
    SEND6("fe80::1", "fd00:2::2", 6001);
    CHECK_INT(0, udp_wait(remote6, 300));
    /* Taken back (teardown): nothing from mtg0 again. */
    CHECK_OK(nc_fw_disallow_sources(nc, "mtg0", NULL, 0));
    SEND4("10.20.0.7", "192.0.2.2", 6000);
    CHECK_INT(0, udp_wait(remote, 300));
#undef SEND4
#undef SEND6
    close(local);
    close(gated_udp);
    close(local6);
    close(remote);
    close(remote6);
    close(fd);
    nc_free(nc);
}

/* --- conntrack ------------------------------------------------------------ */

static int ct_count(const char *needle)
{
    char cmd[256];
    FILE *f;
    int n = -1;

    snprintf(cmd, sizeof(cmd), "grep -c -- '%s' /proc/net/nf_conntrack", needle);
    f = popen(cmd, "r");
    if (f) {
        if (fscanf(f, "%d", &n) != 1)
            n = -1;
        pclose(f);
    }
    return n;
}

static void t_conntrack_flush(void)
{
    const char *revoked[] = { "192.0.2.2" };
    struct nc *nc = open_nc();
    unsigned deleted = 0;
    int s;

    two_hosts();
    /* A table of the test's own turns conntrack on in this namespace. */
    CHECK_INT(0, ns_sh("nft 'add table inet cttest; add chain inet cttest c "
                       "{ type filter hook input priority 0; }; add rule inet cttest c "
                       "ct state new counter'"));
    s = udp_socket("192.0.2.1", 7000);
    CHECK(s >= 0);
    CHECK_INT(0, ns_b_udp_send("192.0.2.2", "192.0.2.1", 7000));
    CHECK_INT(0, ns_b_udp_send("192.0.2.3", "192.0.2.1", 7000));
    CHECK_INT(1, udp_wait(s, 1000));
    CHECK_INT(1, udp_wait(s, 1000));
    CHECK_INT(1, ct_count("src=192.0.2.2 "));
    CHECK_INT(1, ct_count("src=192.0.2.3 "));
    CHECK_OK(nc_conntrack_flush(nc, revoked, 1, &deleted));
    CHECK_INT(1, deleted);
    CHECK_INT(0, ct_count("src=192.0.2.2 "));
    CHECK_INT(1, ct_count("src=192.0.2.3 "));
    CHECK_OK(nc_conntrack_flush(nc, revoked, 1, &deleted));
    CHECK_INT(0, deleted);
    close(s);
    nc_free(nc);
}

/* --- reconciliation and notifications ---------------------------------------- */

static bool diff_has(const struct nc_diff *d, const char *text)
{
    char buf[256];

    for (size_t i = 0; i < d->n; i++) {
        nc_change_format(&d->changes[i], buf, sizeof(buf));
        if (!strcmp(buf, text))
            return true;
    }
    fprintf(stderr, "    diff lacks \"%s\"; it has:\n", text);
    for (size_t i = 0; i < d->n; i++) {
        nc_change_format(&d->changes[i], buf, sizeof(buf));
        fprintf(stderr, "      %s\n", buf);
    }
    return false;
}

static void t_reconcile(void)
{
    struct nc *nc = open_nc();
    struct nc_state *want = NULL;
    struct nc_diff *d = NULL;
    int fd = -1;

    CHECK_OK(nc_fw_install(nc, &fwcfg));
    CHECK_OK(nc_tun_create(nc, "mtg0", &fd));
    CHECK_INT(0, ns_sh("ip tuntap add mtg1 mode tun && ip addr add 10.60.0.9/24 dev mtg0"));
    CHECK_OK(nc_fw_trust_iface(nc, "mtg7", 0));

    CHECK_OK(nc_state_new(&want));
    CHECK_OK(nc_state_add_link(want, "mtg0", 1400, true));
    CHECK_OK(nc_state_add_link(want, "mtg2", 0, true));
    CHECK_OK(nc_state_add_addr(want, "mtg0", "10.60.0.1/24", NULL));
    CHECK_OK(nc_state_add_route(want, "10.61.0.0/16", "mtg0", 5, 0));
    CHECK_OK(nc_state_add_trusted(want, "mtg0"));
    CHECK_OK(nc_state_add_allowed(want, "mtg0", "10.61.0.0/16"));
    CHECK_INT(-EINVAL, nc_state_add_addr(want, "mtg0", "10.60.0.1/99", NULL));

    CHECK_OK(nc_reconcile_diff(nc, want, &d));
    if (d) {
        CHECK(diff_has(d, "~link mtg0 mtu 1400 up"));
        CHECK(diff_has(d, "+link mtg2 mtu 0 up"));
        CHECK(diff_has(d, "-link mtg1 mtu 1500 down"));
        CHECK(diff_has(d, "+addr 10.60.0.1/24 dev mtg0"));
        CHECK(diff_has(d, "-addr 10.60.0.9/24 dev mtg0"));
        CHECK(diff_has(d, "+route 10.61.0.0/16 dev mtg0 metric 5 table 254"));
        CHECK(diff_has(d, "+trusted mtg0"));
        CHECK(diff_has(d, "-trusted mtg7"));
        CHECK(diff_has(d, "+allowed mtg0 10.61.0.0/16"));
        CHECK_INT(9, d->n);
        /* mtg2 cannot be made here (its fd belongs to the caller); the
         * rest is applied all the same. */
        CHECK_INT(-ENODEV, nc_reconcile_apply(nc, d));
        CHECK(strstr(nc_error(nc), "mtg2") != NULL);
    }
    nc_diff_free(d);
    d = NULL;
    CHECK(!ip_link_exists("mtg1"));
    CHECK(ip_link_has_flag("mtg0", "UP"));
    CHECK_INT(1400, ip_link_mtu("mtg0"));
    CHECK(ip_addr_present("mtg0", "10.60.0.1", 24, NULL));
    CHECK(!ip_addr_present("mtg0", "10.60.0.9", 24, NULL));
    CHECK(ip_route_present(4, 254, "10.61.0.0/16", "mtg0", 5));
    CHECK(nft_set_has("trusted_ifaces", "mtg0"));
    CHECK(!nft_set_has("trusted_ifaces", "mtg7"));
    CHECK(nft_set_has("allowed4", "mtg0 . 10.61.0.0/16"));
    CHECK_OK(nc_reconcile_diff(nc, want, &d));
    if (d) {
        CHECK_INT(1, d->n);
        CHECK(diff_has(d, "+link mtg2 mtu 0 up"));
    }
    nc_diff_free(d);
    d = NULL;
    /* A missing table is part of the difference too. */
    CHECK_INT(0, ns_sh("nft delete table inet mtlsgw"));
    CHECK_OK(nc_reconcile_diff(nc, want, &d));
    if (d) {
        CHECK(diff_has(d, "+table inet mtlsgw"));
        CHECK(diff_has(d, "+trusted mtg0"));
        nc_reconcile_apply(nc, d);
    }
    nc_diff_free(d);
    CHECK(nft_table_exists());
    CHECK(nft_set_has("trusted_ifaces", "mtg0"));
    nc_state_free(want);
    close(fd);
    nc_free(nc);
}

struct seen {
    int route_del, addr_del, link_del, route_new;
    char route[NC_ADDRSTRLEN], addr[NC_ADDRSTRLEN];
};

static void on_event(const struct nc_event *ev, void *arg)
{
    struct seen *s = arg;

    switch (ev->type) {
    case NC_EVENT_ROUTE_DEL:
        s->route_del++;
        snprintf(s->route, sizeof(s->route), "%s", ev->route.dst);
        break;
    case NC_EVENT_ROUTE_NEW:
        s->route_new++;
        break;
    case NC_EVENT_ADDR_DEL:
        s->addr_del++;
        snprintf(s->addr, sizeof(s->addr), "%s", ev->addr.local);
        break;
    case NC_EVENT_LINK_DEL:
        s->link_del++;
        break;
    default:
        break;
    }
}

static void pump(struct nc *nc, int mfd, struct seen *s, int ms)
{
    struct pollfd pfd = { mfd, POLLIN, 0 };

    while (poll(&pfd, 1, ms) == 1) {
        CHECK_OK(nc_monitor_dispatch(nc, on_event, s));
        ms = 100;
    }
}

static void t_monitor(void)
{
    struct nc *nc = open_nc();
    struct seen s;
    int fd = -1, mfd = -1;

    memset(&s, 0, sizeof(s));
    CHECK_OK(nc_tun_create(nc, "mtg0", &fd));
    CHECK_OK(nc_link_set_up(nc, "mtg0"));
    CHECK_OK(nc_addr_add(nc, "mtg0", "10.90.0.1/24", NULL));
    CHECK_OK(nc_route_add(nc, "10.91.0.0/16", "mtg0", 0, 0));
    CHECK_OK(nc_monitor_fd(nc, &mfd));
    CHECK(mfd >= 0);
    /* Someone else's changes elsewhere are not reported. */
    CHECK_INT(0, ns_sh("ip link add vx type veth peer name vy && ip link set vx up && "
                       "ip route add 10.92.0.0/16 dev vx && ip route del 10.92.0.0/16 dev vx"));
    CHECK_INT(0, ns_sh("ip route del 10.91.0.0/16 dev mtg0"));
    CHECK_INT(0, ns_sh("ip addr del 10.90.0.1/24 dev mtg0"));
    pump(nc, mfd, &s, 1000);
    CHECK_INT(1, s.route_del);
    CHECK_STR("10.91.0.0/16", s.route);
    CHECK_INT(1, s.addr_del);
    CHECK_STR("10.90.0.1/24", s.addr);
    /* The caller's choice: put it back. */
    CHECK_OK(nc_route_add(nc, "10.91.0.0/16", "mtg0", 0, 0));
    CHECK(ip_route_present(4, 254, "10.91.0.0/16", "mtg0", 0));
    pump(nc, mfd, &s, 1000);
    CHECK_INT(1, s.route_new);
    close(fd);
    pump(nc, mfd, &s, 1000);
    CHECK_INT(1, s.link_del);
    nc_free(nc);
}

/* --- the recording backend -------------------------------------------------- */

static void t_record(void)
{
    struct nc_options o = { .backend = NC_BACKEND_RECORD };
    const char *p[] = { "10.1.2.3/16", "fd00::/8" };
    struct nc *nc = NULL;
    int fd = -1, links = ip_link_count();

    CHECK_OK(nc_new(&o, &nc));
    ns_nc = nc;
    CHECK_OK(nc_fw_install(nc, &fwcfg));
    CHECK_OK(nc_tun_create(nc, "mtg0", &fd));
    CHECK(fd >= 0);
    CHECK_OK(nc_link_set_up(nc, "mtg0"));
    CHECK_OK(nc_link_set_mtu(nc, "mtg0", 1400));
    CHECK_OK(nc_addr_add(nc, "mtg0", "10.0.0.1", "10.0.0.2"));
    CHECK_OK(nc_route_add(nc, "10.9.9.9/16", "mtg0", 5, 0));
    CHECK_OK(nc_fw_trust_iface(nc, "mtg0", 30000));
    CHECK_OK(nc_fw_allow_prefixes(nc, "mtg0", p, 2));
    CHECK_OK(nc_fw_gate_open(nc, "192.0.2.2", 5000));
    CHECK_OK(nc_fw_gate_close(nc, "192.0.2.2"));
    CHECK_OK(nc_conntrack_flush(nc, p, 1, NULL));
    CHECK_OK(nc_fw_untrust_iface(nc, "mtg0"));
    CHECK_STR("fw_install gated 2\n"
              "fw_gated 6/2222\n"
              "fw_gated 17/53\n"
              "tun_create mtg0\n"
              "link_set_up mtg0\n"
              "link_set_mtu mtg0 1400\n"
              "addr_add mtg0 10.0.0.1/32 peer 10.0.0.2/32\n"
              "route_add 10.9.0.0/16 dev mtg0 metric 5 table 254\n"
              "fw_trust mtg0 timeout 30000\n"
              "fw_allow mtg0 10.1.0.0/16 fd00::/8\n"
              "fw_gate_open 192.0.2.2 timeout 5000\n"
              "fw_gate_close 192.0.2.2\n"
              "conntrack_flush 10.1.0.0/16\n"
              "fw_untrust mtg0\n",
              nc_record_text(nc));
    nc_record_clear(nc);
    CHECK_STR("", nc_record_text(nc));
    /* Nothing reached the kernel. */
    CHECK_INT(links, ip_link_count());
    CHECK(!nft_table_exists());
    close(fd);
    nc_free(nc);
}

/* --- the runner --------------------------------------------------------------- */

static const struct {
    const char *name;
    void (*body)(void);
} tests[] = {
    { "tun_create", t_tun_create },
    { "link_up_down_mtu", t_link_up_down_mtu },
    { "link_del", t_link_del },
    { "custom_prefix", t_custom_prefix },
    { "refusals_before_netlink", t_refusals },
    { "addr_v4_v6_p2p", t_addr },
    { "route_metric_table", t_route },
    { "owned_list", t_owned_list },
    { "fw_install_only_drops", t_fw_install },
    { "fw_trust_untrust_timeout", t_fw_trust },
    { "fw_allow_prefixes", t_fw_allow },
    { "fw_atomic_batch", t_fw_atomic },
    { "fw_fail_closed_start", t_fw_fail_closed },
    { "fw_gate_traffic", t_fw_gate_traffic },
    { "fw_killed_daemon_gate_shuts", t_fw_killed_daemon },
    { "fw_tunnel_traffic", t_fw_tunnel_traffic },
    { "fw_sources", t_fw_sources },
    { "fw_spoof_traffic", t_fw_spoof_traffic },
    { "conntrack_flush", t_conntrack_flush },
    { "reconcile", t_reconcile },
    { "monitor", t_monitor },
    { "record_backend", t_record },
};

static size_t current;

static void run_current(void)
{
    int failures = ns_run(tests[current].body, tests[current].name);

    CU_ASSERT_EQUAL(failures, 0);
}

/* CUnit takes plain function pointers: one trampoline per test. */
#define TRAMPOLINE(i)                                                                        \
    static void tramp_##i(void)                                                              \
    {                                                                                        \
        current = i;                                                                         \
        run_current();                                                                       \
    }
TRAMPOLINE(0) TRAMPOLINE(1) TRAMPOLINE(2) TRAMPOLINE(3) TRAMPOLINE(4) TRAMPOLINE(5)
TRAMPOLINE(6) TRAMPOLINE(7) TRAMPOLINE(8) TRAMPOLINE(9) TRAMPOLINE(10) TRAMPOLINE(11)
TRAMPOLINE(12) TRAMPOLINE(13) TRAMPOLINE(14) TRAMPOLINE(15) TRAMPOLINE(16) TRAMPOLINE(17)
TRAMPOLINE(18) TRAMPOLINE(19) TRAMPOLINE(20) TRAMPOLINE(21)

static void (*const tramps[])(void) = {
    tramp_0,  tramp_1,  tramp_2,  tramp_3,  tramp_4,  tramp_5,  tramp_6,
    tramp_7,  tramp_8,  tramp_9,  tramp_10, tramp_11, tramp_12, tramp_13,
    tramp_14, tramp_15, tramp_16, tramp_17, tramp_18, tramp_19, tramp_20,
    tramp_21,
};

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
        fprintf(stderr, "netns: cannot create network namespaces here: skipped\n");
        return 77;
    }
    if (err < 0) {
        fprintf(stderr, "netns: ip or nft missing (iproute2, nftables): skipped\n");
        return 77;
    }
    /* ns_b_sh() runs commands in the second namespace with nsenter. */
    if (system("nsenter --version >/dev/null 2>&1") != 0) {
        fprintf(stderr, "netns: nsenter missing (util-linux): skipped\n");
        return 77;
    }
    if (CU_initialize_registry() != CUE_SUCCESS)
        return 1;
    suite = CU_add_suite("netns", NULL, NULL);
    for (size_t i = 0; suite && i < sizeof(tests) / sizeof(tests[0]); i++) {
        if (!only || strcmp(only, tests[i].name) == 0)
            CU_add_test(suite, tests[i].name, tramps[i]);
    }
    CU_basic_set_mode(CU_BRM_VERBOSE);
    CU_basic_run_tests();
    failed = CU_get_number_of_tests_failed();
    CU_cleanup_registry();
    return failed ? 1 : 0;
}
