/*
 * privsep.h: the typed requests the session process sends the parent, which
 * alone holds CAP_NET_ADMIN and calls netconfig/. The parent re-checks every
 * field (lengths, NUL termination, owned interface names, addresses inside
 * the pool or the peer's registered networks) before it touches the kernel,
 * the way OpenIKED pairs vroute_setaddr() with vroute_getaddr().
 */
#ifndef MTLSGW_PRIVSEP_H
#define MTLSGW_PRIVSEP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct config;

#define PS_IFNAMSIZ 16
#define PS_ADDRLEN 64
#define PS_MAX_PREFIXES 64
#define PS_ERRLEN 256
#define PS_CERT_MAX 8192

enum ps_type {
    PS_TUN_UP = 1, /* a TUN for a hub peer or an uplink; the fd comes back */
    PS_TUN_DOWN,   /* tear it all down, flush conntrack */
    PS_GATE_OPEN,  /* open the gate for an authenticated management address */
    PS_GATE_CLOSE, /* close it (revoked) */
    PS_REPLY,
};

struct ps_tun_up {
    char ifname[PS_IFNAMSIZ];
    char peer_name[64];        /* hub side: the registry's peer; uplink: its section */
    uint8_t uplink;            /* 0: hub peer, 1: our own uplink */
    char local[PS_ADDRLEN];    /* our end, no prefix length */
    char remote[PS_ADDRLEN];   /* the other end */
    uint32_t mtu;
    uint32_t n_routes;         /* prefixes routed into the interface */
    char routes[PS_MAX_PREFIXES][PS_ADDRLEN];
    uint32_t n_allowed;        /* destinations reachable from the interface */
    char allowed[PS_MAX_PREFIXES][PS_ADDRLEN];
    /* A roaming hub peer (no entry in our registry): the [trust NAME] that
     * vouched and the peer's certificate (DER), which the parent checks on
     * its own against that issuer's CA and its CRL file before it routes
     * anything (docs/pki.md, "Roaming tunnel peers"). trust "": ours. */
    char trust[32];
    uint32_t cert_len;
    uint8_t cert[PS_CERT_MAX];
};

struct ps_tun_down {
    char ifname[PS_IFNAMSIZ];
};

struct ps_gate {
    char addr[PS_ADDRLEN];
    uint32_t timeout_ms;
};

struct ps_msg {
    uint32_t type;
    union {
        struct ps_tun_up up;
        struct ps_tun_down down;
        struct ps_gate gate;
    } u;
};

struct ps_reply {
    uint32_t type; /* PS_REPLY */
    int32_t rc;
    char err[PS_ERRLEN];
};

/* ---- session side ------------------------------------------------------- */

/* The channel (one socketpair end); requests are serialised inside. */
void ps_client_init(int fd);
bool ps_client_ready(void);
/* Send a request, wait for the reply (and a TUN fd for PS_TUN_UP). */
int ps_request(const struct ps_msg *m, int *fd_out, char *err, size_t errlen);

/* True for a source the gate must never open: a link-scoped address
 * (fe80::/10, site-local fec0::/10, 169.254.0.0/16, also IPv4-mapped) is
 * the same address on every link, and the gate keys on the address alone.
 * family AF_INET (4 bytes) or AF_INET6 (16). */
bool ps_addr_scoped(int family, const uint8_t *a);

/* ---- parent side -------------------------------------------------------- */

struct ps_server;
/* Install the firewall (nothing trusted) and remove owned leftovers. */
int ps_server_new(const struct config *cfg, struct ps_server **out, char *err, size_t errlen);
/* Handle one request from fd (returns <0 when the channel is closed). */
int ps_server_handle(struct ps_server *ps, int fd);
/* The session process is gone: tear down everything it had. */
void ps_server_teardown_all(struct ps_server *ps);
/* Refresh the timeouts of trusted interfaces (called every few seconds). */
void ps_server_refresh(struct ps_server *ps);
void ps_server_free(struct ps_server *ps);

/* Tests (tests/unit/test-parent-checks.c): the same parent and the same checks,
 * but its netconfig handle records each kernel call as a line of text
 * instead of making it, so no CAP_NET_ADMIN is needed; ps_server_record
 * returns those lines. The daemon never calls these. */
int ps_server_new_record(const struct config *cfg, struct ps_server **out, char *err,
                         size_t errlen);
const char *ps_server_record(const struct ps_server *ps);

/* Timeout on trusted-interface elements: a crashed daemon leaves none for long. */
#define PS_TRUST_TIMEOUT_MS 30000

#endif
