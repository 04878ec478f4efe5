/* Helpers of the netns suite: a fresh network namespace per test, checks
 * through `ip -j` and `nft -j` parsed with json-c, real traffic. */
#ifndef MTLSGW_TESTS_NSUTIL_H
#define MTLSGW_TESTS_NSUTIL_H

#include <stdbool.h>
#include <stdint.h>

#include <json-c/json.h>

struct nc;

/* Failures counted in the test's child process. */
extern int ns_failures;
/* The handle whose nc_error() a failing CHECK_OK prints. */
extern struct nc *ns_nc;

void ns_fail(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define CHECK(cond)                                                                          \
    do {                                                                                     \
        if (!(cond))                                                                         \
            ns_fail(__FILE__, __LINE__, "expected %s", #cond);                               \
    } while (0)
#define CHECK_INT(expected, got)                                                             \
    do {                                                                                     \
        long long e_ = (long long)(expected), g_ = (long long)(got);                         \
        if (e_ != g_)                                                                        \
            ns_fail(__FILE__, __LINE__, "%s: expected %lld, got %lld", #got, e_, g_);        \
    } while (0)
#define CHECK_OK(call)                                                                       \
    do {                                                                                     \
        int r_ = (call);                                                                     \
        if (r_ != 0)                                                                         \
            ns_fail(__FILE__, __LINE__, "%s: expected 0, got %d (%s)", #call, r_,            \
                    ns_nc ? nc_error(ns_nc) : "");                                           \
    } while (0)
#define CHECK_STR(expected, got)                                                             \
    do {                                                                                     \
        const char *e_ = (expected), *g_ = (got);                                            \
        if (!g_ || strcmp(e_, g_) != 0)                                                      \
            ns_fail(__FILE__, __LINE__, "%s: expected \"%s\", got \"%s\"", #got, e_,         \
                    g_ ? g_ : "(null)");                                                     \
    } while (0)

/* 0 when this process may create network namespaces. */
int ns_probe(void);
/* Runs body in a child process inside a new network namespace with lo up;
 * returns the child's failure count (or -1 when it crashed). */
int ns_run(void (*body)(void), const char *name);

/* A second namespace, "B", joined to the current one by a veth pair
 * (va here, vb there). Returns 0 and keeps B's fd for ns_b_*(). */
int ns_peer_setup(void);
/* Runs a shell command in B; returns its exit status. */
int ns_b_sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* TCP connect from src (an address in B) to dst:port with a timeout;
 * 0 when it connects, negative errno otherwise. */
int ns_b_connect(const char *src, const char *dst, uint16_t port, int timeout_ms);
/* UDP: send from B / a socket bound in B. */
int ns_b_udp_socket(const char *addr, uint16_t port);
int ns_b_udp_send(const char *src, const char *dst, uint16_t port);

/* Runs a shell command here; returns its exit status. */
int ns_sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Output of a shell command parsed as JSON (NULL when it fails). */
json_object *ns_json(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* ip -j views. */
bool ip_link_exists(const char *name);
bool ip_link_has_flag(const char *name, const char *flag);
int ip_link_mtu(const char *name);
int ip_link_count(void);
bool ip_addr_present(const char *dev, const char *local, int prefixlen, const char *peer);
bool ip_route_present(int family, unsigned table, const char *dst, const char *dev,
                      int metric);

/* nft -j views of table inet mtlsgw: elements rendered as text ("mtg0",
 * "mtg0 . 10.1.0.0/16", "192.0.2.2", "tcp . 22"). */
int nft_set_count(const char *set);
bool nft_set_has(const char *set, const char *elem);
/* Timeout in seconds of one element, -1 if none or absent. */
int nft_elem_timeout(const char *set, const char *elem);
bool nft_table_exists(void);

/* Sockets in the current namespace. */
int udp_socket(const char *addr, uint16_t port);
/* 1 when a datagram arrives within timeout_ms, 0 when none. */
int udp_wait(int fd, int timeout_ms);
int tcp_listen(const char *addr, uint16_t port);
/* An IPv4/UDP packet for a TUN device; returns its length. */
size_t ipv4_udp_packet(uint8_t *buf, const char *src, const char *dst, uint16_t dport);
/* The same for IPv6 (with its mandatory UDP checksum). */
size_t ipv6_udp_packet(uint8_t *buf, const char *src, const char *dst, uint16_t dport);
void sleep_ms(int ms);

#endif
