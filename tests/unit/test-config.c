#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "cunit-main.h"

static char dir[] = "/tmp/mtlsgw-config-XXXXXX";

/* Write text to <dir>/name and return the path (static buffer). */
static const char *write_conf(const char *name, const char *text)
{
    static char path[256];
    FILE *f;

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    f = fopen(path, "w");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    fputs(text, f);
    fclose(f);
    return path;
}

static void test_defaults(void)
{
    struct config *cfg = NULL;
    char *errors = NULL;
    const char *p = write_conf("empty.conf", "# nothing\n\n; nothing either\n");

    EXPECT_INT(config_load(p, &cfg, &errors), 0);
    CU_ASSERT_PTR_NULL(errors);
    EXPECT_STR(cfg->token.uri, "pkcs11:token=mtlsgw");
    CU_ASSERT_PTR_NULL(cfg->token.module);
    EXPECT_STR(cfg->daemon.user, "mtlsgw");
    EXPECT_INT(cfg->pki.crl_days, 30);
    EXPECT_INT(cfg->crl.resign, 900);
    EXPECT_INT(cfg->pki.peer_days, 397);
    config_free(cfg);
}

static void test_values(void)
{
    struct config *cfg = NULL;
    char *errors = NULL, want[300];
    const char *p = write_conf("full.conf", "[token]\n"
                                            "uri = pkcs11:token=gw\n"
                                            "module = /usr/lib/softhsm/libsofthsm2.so\n"
                                            "pin-file = pin\n"
                                            "[pki]\n"
                                            "  dir=/var/lib/x  \n"
                                            "crl-days = 7\r\n"
                                            "[daemon]\n"
                                            "user = root\n");

    EXPECT_INT(config_load(p, &cfg, &errors), 0);
    if (errors)
        fputs(errors, stderr);
    CU_ASSERT_PTR_NOT_NULL_FATAL(cfg);
    EXPECT_STR(cfg->token.uri, "pkcs11:token=gw");
    EXPECT_STR(cfg->token.module, "/usr/lib/softhsm/libsofthsm2.so");
    snprintf(want, sizeof(want), "%s/pin", dir); /* relative to the file */
    EXPECT_STR(cfg->token.pin_file, want);
    EXPECT_STR(cfg->pki.dir, "/var/lib/x");
    EXPECT_INT(cfg->pki.crl_days, 7);
    EXPECT_STR(cfg->daemon.user, "root");
    config_free(cfg);
}

static void test_every_error_reported(void)
{
    struct config *cfg = (struct config *)0x1;
    char *errors = NULL;
    const char *p = write_conf("bad.conf", "[token]\n"              /* 1 */
                                           "uri = token=gw\n"       /* 2: not a URI */
                                           "colour = blue\n"        /* 3: unknown key */
                                           "[pki]\n"                /* 4 */
                                           "crl-days = 12x\n"       /* 5: bad number */
                                           "crl-days = 0\n"         /* 6: out of range */
                                           "[nonsense]\n"           /* 7 */
                                           "a = b\n"                /* 8: skipped */
                                           "[daemon\n"              /* 9 */
                                           "just words\n");         /* 10 */

    EXPECT_INT(config_load(p, &cfg, &errors), -EINVAL);
    CU_ASSERT_PTR_EQUAL(cfg, (struct config *)0x1); /* untouched */
    CU_ASSERT_PTR_NOT_NULL_FATAL(errors);
    EXPECT_CONTAINS(errors, "bad.conf:2: uri = 'token=gw': not a PKCS#11 URI");
    EXPECT_CONTAINS(errors, "bad.conf:3: unknown key 'colour' in [token]");
    EXPECT_CONTAINS(errors, "bad.conf:5: crl-days = '12x'");
    EXPECT_CONTAINS(errors, "bad.conf:6: crl-days = '0'");
    EXPECT_CONTAINS(errors, "bad.conf:7: unknown section [nonsense]");
    EXPECT_CONTAINS(errors, "bad.conf:9: malformed section header");
    EXPECT_CONTAINS(errors, "bad.conf:10: expected 'key = value'");
    CU_ASSERT_PTR_NULL(strstr(errors, "bad.conf:8:"));
    free(errors);
}

static void test_missing_file(void)
{
    struct config *cfg = NULL;
    char *errors = NULL;

    CU_ASSERT_TRUE(config_load("/nonexistent/mtlsgwd.conf", &cfg, &errors) < 0);
    EXPECT_CONTAINS(errors, "/nonexistent/mtlsgwd.conf:0: cannot read");
    CU_ASSERT_PTR_NULL(cfg);
    free(errors);
}

static void test_key_outside_section(void)
{
    struct config *cfg = NULL;
    char *errors = NULL;
    const char *p = write_conf("nosec.conf", "uri = pkcs11:token=x\n");

    EXPECT_INT(config_load(p, &cfg, &errors), -EINVAL);
    EXPECT_CONTAINS(errors, "nosec.conf:1: key 'uri' outside any [section]");
    free(errors);
}

static void test_tunnel_firewall_uplink(void)
{
    struct config *cfg = NULL;
    char *errors = NULL;
    const char *p = write_conf("tun.conf", "[tunnel]\n"
                                           "listen = [::1]:8444\n"
                                           "pool = 10.99.0.0/24\n"
                                           "routes = 10.10.0.0/24, fd00:10::/64 192.168.7.0/24\n"
                                           "mtu = 1380\n"
                                           "udp = 4434\n"
                                           "[firewall]\n"
                                           "gate = tcp/22 tcp/80,udp/161\n"
                                           "gate-timeout = 60\n"
                                           "[uplink hub1]\n"
                                           "server = hub.example.net:8444\n"
                                           "key = pkcs11:token=x;object=k\n"
                                           "[uplink hub2]\n"
                                           "server = 192.0.2.1:8444 [2001:db8::1]:8444,"
                                           "hub-b.example.net:8444\n"
                                           "prefer-first = no\n"
                                           "probe-interval = 3\n"
                                           "[uplink hub3]\n"
                                           "server = random 192.0.2.7:1 192.0.2.8:2\n");

    EXPECT_INT(config_load(p, &cfg, &errors), 0);
    if (errors)
        fputs(errors, stderr);
    CU_ASSERT_PTR_NOT_NULL_FATAL(cfg);
    EXPECT_STR(cfg->tunnel.listen, "[::1]:8444");
    EXPECT_STR(cfg->tunnel.pool, "10.99.0.0/24");
    EXPECT_INT(cfg->tunnel.n_routes, 3);
    EXPECT_STR(cfg->tunnel.routes[1], "fd00:10::/64");
    EXPECT_INT(cfg->tunnel.mtu, 1380);
    EXPECT_INT(cfg->tunnel.keepalive, 10);
    EXPECT_INT(cfg->tunnel.udp, 4434);
    EXPECT_INT(cfg->fw.n_gate, 3);
    EXPECT_INT(cfg->fw.gate[2].port, 161);
    EXPECT_INT(cfg->fw.gate[2].proto, 17);
    EXPECT_INT(cfg->fw.gate_timeout, 60);
    EXPECT_INT(cfg->n_uplinks, 3);
    EXPECT_STR(cfg->uplinks[0].name, "hub1");
    EXPECT_STR(cfg->uplinks[0].key, "pkcs11:token=x;object=k");
    EXPECT_INT(cfg->uplinks[0].n_servers, 1);
    EXPECT_INT(cfg->uplinks[0].prefer_first, 1);
    EXPECT_INT(cfg->uplinks[0].probe_interval, 10);
    EXPECT_INT(cfg->uplinks[0].server_random, 0);
    EXPECT_INT(cfg->uplinks[1].n_servers, 3);
    EXPECT_STR(cfg->uplinks[1].servers[0], "192.0.2.1:8444");
    EXPECT_STR(cfg->uplinks[1].servers[1], "[2001:db8::1]:8444");
    EXPECT_STR(cfg->uplinks[1].servers[2], "hub-b.example.net:8444");
    EXPECT_INT(cfg->uplinks[1].prefer_first, 0);
    EXPECT_INT(cfg->uplinks[1].probe_interval, 3);
    EXPECT_INT(cfg->uplinks[2].n_servers, 2);
    EXPECT_INT(cfg->uplinks[2].server_random, 1);
    config_free(cfg);
}

static void test_tunnel_errors(void)
{
    struct config *cfg = NULL;
    char *errors = NULL;
    const char *p = write_conf("badtun.conf", "[tunnel]\n"                 /* 1 */
                                              "listen = 0.0.0.0:8444\n"    /* 2 */
                                              "routes = 10.0.0.1/8\n"      /* 3 */
                                              "mtu = 100000\n"             /* 4 */
                                              "udp = 70000\n"              /* 5 */
                                              "[firewall]\n"               /* 6 */
                                              "gate = ssh\n"               /* 7 */
                                              "[uplink a/b]\n"             /* 8 */
                                              "[uplink hub]\n"             /* 9 */
                                              "cert = x.crt\n"             /* 10 */
                                              "[uplink two]\n"             /* 11 */
                                              "server = a:1 b c:2\n"       /* 12 */
                                              "server-order = shuffled\n"  /* 13 */
                                              "[uplink dup]\n"             /* 14 */
                                              "server = a:1 a:1\n");       /* 15 */

    EXPECT_INT(config_load(p, &cfg, &errors), -EINVAL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(errors);
    EXPECT_CONTAINS(errors, "badtun.conf:3: routes = '10.0.0.1/8': 10.0.0.1/8: host bits");
    EXPECT_CONTAINS(errors, "badtun.conf:4: mtu = '100000'");
    EXPECT_CONTAINS(errors, "badtun.conf:5: udp = '70000': not a UDP port from 1 to 65535, or no");
    EXPECT_CONTAINS(errors, "badtun.conf:7: gate = 'ssh'");
    EXPECT_CONTAINS(errors, "badtun.conf:8: [uplink NAME]: 'a/b'");
    EXPECT_CONTAINS(errors, "[tunnel] listen needs pool");
    EXPECT_CONTAINS(errors, "[uplink hub] needs server");
    EXPECT_CONTAINS(errors, "badtun.conf:12: server = 'a:1 b c:2': 'b': want HOST:PORT");
    EXPECT_CONTAINS(errors, "badtun.conf:13: server-order = 'shuffled': not in-order or random");
    EXPECT_CONTAINS(errors, "badtun.conf:15: server = 'a:1 a:1': 'a:1' is listed twice");
    free(errors);
}

/* Issue #16: [pki] crl-url, [crl] listen, [enroll] tls-min, [trust NAME]. */
static void test_crl_trust(void)
{
    struct config *cfg = NULL;
    char *errors = NULL;
    const char *p = write_conf("org.conf", "[pki]\n"
                                           "crl-url = http://192.0.2.1:8080/crl\n"
                                           "[crl]\n"
                                           "listen = 0.0.0.0:8080\n"
                                           "resign = 600\n"
                                           "[trust hubA]\n"
                                           "ca = hubA.crt\n"
                                           "crl-url = http://a.example:8080/crl\n"
                                           "roles = monitor\n"
                                           "refresh = 30\n"
                                           "max-stale = 600\n"
                                           "networks = 10.5.0.0/16\n"
                                           "root-crl-url = http://r.example/root.crl\n"
                                           "[trust hubB]\n"
                                           "ca = /etc/b.crt\n"
                                           "crl-url = http://b/crl\n");

    EXPECT_INT(config_load(p, &cfg, &errors), 0);
    CU_ASSERT_PTR_NULL(errors);
    CU_ASSERT_PTR_NOT_NULL_FATAL(cfg);
    EXPECT_STR(cfg->pki.crl_url, "http://192.0.2.1:8080/crl");
    EXPECT_STR(cfg->crl.listen, "0.0.0.0:8080");
    EXPECT_INT(cfg->enroll.tls_min, 12); /* EST's default: field clients */
    EXPECT_INT(cfg->mgmt.tls_min, 13);
    EXPECT_INT(cfg->n_trusts, 2);
    EXPECT_STR(cfg->trusts[0].name, "hubA");
    CU_ASSERT_PTR_NOT_NULL(strstr(cfg->trusts[0].ca, "/hubA.crt"));
    EXPECT_INT(cfg->trusts[0].roles, CFG_ROLE(1));
    EXPECT_INT(cfg->trusts[0].refresh, 30);
    EXPECT_INT(cfg->trusts[0].max_stale, 600);
    EXPECT_INT(cfg->trusts[0].n_networks, 1);
    EXPECT_INT(cfg->crl.resign, 600);
    EXPECT_STR(cfg->trusts[0].root_crl_url, "http://r.example/root.crl");
    CU_ASSERT_PTR_NULL(cfg->trusts[1].root_crl_url);
    /* Defaults: monitor and tunnel, never admin; 60 s; an hour. */
    EXPECT_INT(cfg->trusts[1].roles, CFG_ROLE(1) | CFG_ROLE(2));
    EXPECT_INT(cfg->trusts[1].refresh, 60);
    EXPECT_INT(cfg->trusts[1].max_stale, 3600);
    config_free(cfg);
    cfg = NULL;

    p = write_conf("badorg.conf", "[pki]\n"                          /* 1 */
                                  "crl-url = https://x/crl\n"        /* 2 */
                                  "[enroll]\n"                       /* 3 */
                                  "tls-min = 1.1\n"                  /* 4 */
                                  "[trust a/b]\n"                    /* 5 */
                                  "[trust x]\n"                      /* 6 */
                                  "roles = root\n"                   /* 7 */
                                  "refresh = 120\n"                  /* 8 */
                                  "max-stale = 60\n"                 /* 9 */
                                  "ca = x.crt\n"                     /* 10 */
                                  "crl-url = http://x/crl\n"         /* 11 */
                                  "[trust y]\n"                      /* 12 */
                                  "ca = y.crt\n"                     /* 13 */
                                  "root-crl-url = ftp://r/crl\n"     /* 14 */
                                  "[crl]\n"                          /* 15 */
                                  "resign = 0\n");                   /* 16 */
    EXPECT_INT(config_load(p, &cfg, &errors), -EINVAL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(errors);
    EXPECT_CONTAINS(errors, "badorg.conf:2: crl-url = 'https://x/crl': want an http://");
    EXPECT_CONTAINS(errors, "badorg.conf:4: tls-min = '1.1'");
    EXPECT_CONTAINS(errors, "badorg.conf:5: [trust NAME]: 'a/b'");
    EXPECT_CONTAINS(errors, "badorg.conf:7: roles = 'root'");
    EXPECT_CONTAINS(errors, "[trust x] max-stale (60 s) is shorter than refresh (120 s)");
    EXPECT_CONTAINS(errors, "[trust y] needs ca = FILE");
    EXPECT_CONTAINS(errors, "badorg.conf:14: root-crl-url = 'ftp://r/crl': want an http://");
    EXPECT_CONTAINS(errors, "badorg.conf:16: resign = '0'");
    free(errors);
}

/* The root-owned bounds of the parent: [tunnel] peer-networks, [uplink]
 * accept-routes. */
static void test_peer_networks_accept_routes(void)
{
    struct config *cfg = NULL;
    char *errors = NULL, err[1024];
    char *inside[] = {"10.20.0.0/24", "fd00:20::/64"};
    char *outside[] = {"10.20.0.0/24", "0.0.0.0/1"};
    const char *p = write_conf("bounds.conf", "[uplink hub]\n"
                                              "server = 192.0.2.1:4433\n"
                                              "[uplink b]\n"
                                              "server = 192.0.2.2:4433\n"
                                              "accept-routes = 10.10.0.0/24 fd00:10::/64 "
                                              "0.0.0.0/0\n");

    EXPECT_INT(config_load(p, &cfg, &errors), 0);
    if (errors)
        fputs(errors, stderr);
    CU_ASSERT_PTR_NOT_NULL_FATAL(cfg);
    /* Unset: the private ranges, nothing wider. */
    EXPECT_INT(cfg->tunnel.n_peer_networks, 5);
    EXPECT_STR(cfg->tunnel.peer_networks[0], "10.0.0.0/8");
    EXPECT_STR(cfg->tunnel.peer_networks[1], "172.16.0.0/12");
    EXPECT_STR(cfg->tunnel.peer_networks[2], "192.168.0.0/16");
    EXPECT_STR(cfg->tunnel.peer_networks[3], "100.64.0.0/10");
    EXPECT_STR(cfg->tunnel.peer_networks[4], "fc00::/7");
    /* Unset accept-routes: nothing. A default route only when listed. */
    EXPECT_INT(cfg->uplinks[0].n_accept_routes, 0);
    EXPECT_INT(cfg->uplinks[1].n_accept_routes, 3);
    EXPECT_STR(cfg->uplinks[1].accept_routes[2], "0.0.0.0/0");
    CU_ASSERT_TRUE(config_prefix_inside(cfg->tunnel.peer_networks, 5, "10.20.0.0/24"));
    CU_ASSERT_TRUE(config_prefix_inside(cfg->tunnel.peer_networks, 5, "10.0.0.0/8"));
    CU_ASSERT_TRUE(config_prefix_inside(cfg->tunnel.peer_networks, 5, "fd00:20::/64"));
    CU_ASSERT_FALSE(config_prefix_inside(cfg->tunnel.peer_networks, 5, "10.0.0.0/7"));
    CU_ASSERT_FALSE(config_prefix_inside(cfg->tunnel.peer_networks, 5, "0.0.0.0/1"));
    CU_ASSERT_FALSE(config_prefix_inside(cfg->tunnel.peer_networks, 5, "::/0"));
    CU_ASSERT_FALSE(config_prefix_inside(cfg->tunnel.peer_networks, 5, "2001:db8::/32"));
    CU_ASSERT_FALSE(config_prefix_inside(cfg->tunnel.peer_networks, 5, "nonsense"));
    EXPECT_INT(config_check_peer_networks(cfg, inside, 2, err, sizeof(err)), 0);
    EXPECT_INT(config_check_peer_networks(cfg, outside, 2, err, sizeof(err)), -EINVAL);
    EXPECT_CONTAINS(err, "network 0.0.0.0/1 is outside [tunnel] peer-networks (10.0.0.0/8 "
                         "172.16.0.0/12 192.168.0.0/16 100.64.0.0/10 fc00::/7) of ");
    EXPECT_CONTAINS(err, "bounds.conf");
    config_free(cfg);

    p = write_conf("bounds2.conf", "[tunnel]\n"
                                   "peer-networks = 10.20.0.0/16, fd00:20::/48\n");
    EXPECT_INT(config_load(p, &cfg, &errors), 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(cfg);
    EXPECT_INT(cfg->tunnel.n_peer_networks, 2);
    EXPECT_STR(cfg->tunnel.peer_networks[1], "fd00:20::/48");
    config_free(cfg);

    p = write_conf("bounds3.conf", "[tunnel]\n"                               /* 1 */
                                   "peer-networks = 0.0.0.0/0\n"              /* 2 */
                                   "peer-networks = 10.0.0.0/7\n"             /* 3 */
                                   "peer-networks = ::/0\n"                   /* 4 */
                                   "peer-networks = fc00::/6\n"               /* 5 */
                                   "peer-networks = 10.0.0.1/8\n"             /* 6 */
                                   "[uplink hub]\n"                           /* 7 */
                                   "server = 192.0.2.1:4433\n"                /* 8 */
                                   "accept-routes = 10.10.0.0/33\n");         /* 9 */
    cfg = NULL;
    EXPECT_INT(config_load(p, &cfg, &errors), -EINVAL);
    CU_ASSERT_PTR_NULL(cfg);
    CU_ASSERT_PTR_NOT_NULL_FATAL(errors);
    EXPECT_CONTAINS(errors,
                    "bounds3.conf:2: peer-networks = '0.0.0.0/0': 0.0.0.0/0: wider than /8");
    EXPECT_CONTAINS(errors, "bounds3.conf:3: peer-networks = '10.0.0.0/7'");
    EXPECT_CONTAINS(errors, "bounds3.conf:4: peer-networks = '::/0': ::/0: wider than /7");
    EXPECT_CONTAINS(errors, "bounds3.conf:5: peer-networks = 'fc00::/6'");
    EXPECT_CONTAINS(errors, "bounds3.conf:6: peer-networks = '10.0.0.1/8'");
    EXPECT_CONTAINS(errors, "bounds3.conf:9: accept-routes = '10.10.0.0/33'");
    free(errors);
}

static void test_bool(void)
{
    bool b = false;

    EXPECT_INT(config_parse_bool("yes", &b), 0);
    CU_ASSERT_TRUE(b);
    EXPECT_INT(config_parse_bool("FALSE", &b), 0);
    CU_ASSERT_FALSE(b);
    EXPECT_INT(config_parse_bool("1", &b), 0);
    CU_ASSERT_TRUE(b);
    EXPECT_INT(config_parse_bool("on", &b), -EINVAL);
    EXPECT_INT(config_parse_bool("", &b), -EINVAL);
}

/* [tunnel] udp: unset, a port, or no (a spoke that never takes UDP). */
static void test_udp(void)
{
    struct config *cfg = NULL;
    char *errors = NULL;

    EXPECT_INT(config_load(write_conf("udp0.conf", "[tunnel]\nmtu = 1400\n"), &cfg, &errors), 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(cfg);
    EXPECT_INT(cfg->tunnel.udp, 0);
    config_free(cfg);
    cfg = NULL;
    EXPECT_INT(config_load(write_conf("udpno.conf", "[tunnel]\nudp = no\n"), &cfg, &errors), 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(cfg);
    EXPECT_INT(cfg->tunnel.udp, CFG_UDP_OFF);
    config_free(cfg);
    cfg = NULL;
    EXPECT_INT(config_load(write_conf("udpx.conf", "[tunnel]\nudp = fast\n"), &cfg, &errors),
               -EINVAL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(errors);
    EXPECT_CONTAINS(errors, "udpx.conf:2: udp = 'fast': not a UDP port from 1 to 65535, or no");
    free(errors);
}

static const struct cu_test tests[] = {
    {"defaults", test_defaults},
    {"[tunnel] udp", test_udp},
    {"values and relative paths", test_values},
    {"every error reported with file and line", test_every_error_reported},
    {"missing file", test_missing_file},
    {"key outside a section", test_key_outside_section},
    {"booleans", test_bool},
    {"tunnel, firewall and uplink sections", test_tunnel_firewall_uplink},
    {"tunnel, firewall and uplink errors", test_tunnel_errors},
    {"peer-networks and accept-routes", test_peer_networks_accept_routes},
    {"crl-url, [crl], [enroll] tls-min, [trust NAME]", test_crl_trust},
};

int main(void)
{
    int rc;
    char cmd[300];

    if (!mkdtemp(dir))
        return 1;
    rc = cu_run("config", tests, sizeof(tests) / sizeof(tests[0]));
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "cannot remove %s\n", dir);
    return rc;
}
