/*
 * config.h: the daemon's INI configuration (mtlsgwd.conf).
 *
 * Strict: an unknown section or key, a bad number, a boolean that is not
 * yes/no/true/false/1/0 is an error naming file, line and value. Every error
 * in a file is reported, not just the first.
 */
#ifndef MTLSGW_CONFIG_H
#define MTLSGW_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

/* A gated local service: proto (IPPROTO_TCP/UDP/SCTP) and port. */
struct cfg_service {
    unsigned char proto;
    unsigned short port;
};

#define CFG_MAX_LIST 64

struct cfg_uplink {
    char *name;        /* [uplink NAME] */
    /* server: the hubs, HOST:PORT each, tried in this order (or at random
     * with server-order = random or the word "random" in the list). */
    char *servers[CFG_MAX_LIST];
    unsigned n_servers;
    unsigned server_random;  /* 1: a fresh random order each round */
    unsigned prefer_first;   /* 1 (default): probe the first while on another */
    unsigned probe_interval; /* seconds between those probes; default 10 */
    char *server_name; /* name every hub's certificate must carry; default its HOST */
    char *cert;        /* our certificate; default <pki dir>/device.crt */
    char *ca;          /* the hub's CA; default <pki dir>/hub-ca.crt */
    char *key;         /* token label or pkcs11: URI; default mtlsgw-device */
    char *enroll;      /* the hub's EST base URL, for renewal; NULL: none */
    /* accept-routes: the only prefixes the hub may route into our tunnel
     * (and send from through it); none by default: only the hub's own
     * tunnel address. Canonical CIDR. */
    char *accept_routes[CFG_MAX_LIST];
    unsigned n_accept_routes;
};

/* [trust NAME]: a sibling issuer under the same root whose peers this hub
 * accepts (docs/pki.md, "Revocation across hubs"). */
struct cfg_trust {
    char *name;        /* [trust NAME] */
    char *ca;          /* its CA certificate (the sibling's intermediate), PEM */
    char *crl_url;     /* its CRL distribution point, http:// */
    /* root-crl-url: the root's CRL DP, which lists the issuer's CA once the
     * root revoked it; NULL: the DP in the issuer's CA certificate, if any
     * (root sign writes it). Fresh until its nextUpdate. */
    char *root_crl_url;
    unsigned roles;    /* CFG_ROLE() bits: the most one of its peers may get here */
    unsigned refresh;  /* seconds between CRL fetches */
    unsigned max_stale; /* seconds without a fresh CRL before its peers are refused */
    /* networks: the only prefixes behind a roaming tunnel peer of this
     * issuer that this hub routes (none by default). Canonical CIDR. */
    char *networks[CFG_MAX_LIST];
    unsigned n_networks;
};

/* A bit per role, as in registry.h's enum peer_role (admin 0, monitor 1,
 * tunnel 2): config.h includes no other header. */
#define CFG_ROLE(r) (1u << (r))

struct config {
    char *path; /* the file it came from */
    struct {
        char *uri;      /* [token] uri */
        char *module;   /* [token] module, NULL: p11-kit's modules */
        char *pin_file; /* [token] pin-file */
    } token;
    struct {
        char *dir;          /* [pki] dir */
        unsigned crl_days;  /* [pki] crl-days: CRL nextUpdate */
        unsigned peer_days; /* [pki] peer-days: default certificate lifetime */
        char *crl_url;      /* [pki] crl-url: CRL DP written into what we issue; NULL */
        unsigned auto_renew; /* [pki] auto-renew: the daemon renews gateway.crt (1) */
    } pki;
    struct {
        char *user;           /* [daemon] user */
        char *control_socket; /* [daemon] control-socket */
        int log_level;        /* [daemon] log-level: LOG_ERR..LOG_DEBUG */
        unsigned ban_threshold; /* failed authentications before a ban */
        unsigned ban_time;      /* seconds a ban (and a score) lasts */
    } daemon;
    struct {
        char *listen;               /* [management] listen, NULL: none */
        char *key;                  /* token label or pkcs11: URI */
        char *cert;                 /* chain file; NULL: <pki dir>/gateway.crt */
        unsigned tls_min;           /* 12 or 13 */
        unsigned handshake_timeout; /* seconds */
        unsigned max_sessions;
        unsigned max_per_source;
        unsigned max_body; /* bytes */
        unsigned idle_timeout; /* seconds */
    } mgmt;
#define CFG_UDP_OFF 65536u
    struct {
        char *listen; /* [tunnel] listen, NULL: no hub */
        char *pool;   /* CIDR of tunnel addresses */
        char *routes[CFG_MAX_LIST];
        unsigned n_routes;
        /* peer-networks: the only prefixes a hub peer's networks may lie in
         * (enrollment and the parent check them); default: RFC 1918, RFC
         * 6598 and ULA. */
        char *peer_networks[CFG_MAX_LIST];
        unsigned n_peer_networks;
        unsigned mtu;
        unsigned keepalive; /* seconds; dead after 3 missed */
        unsigned offload;   /* 1: TUN offloads and SEGMENTS frames when the other side agrees */
        unsigned fec;       /* 1: parity on the UDP channel when the path loses (fec.h) */
        /* [tunnel] udp: the hub's UDP data channel port (docs/tunnel-protocol.md);
         * 0: unset (a hub offers nothing, a spoke takes what is offered);
         * CFG_UDP_OFF: "no" (neither). */
        unsigned udp;
        unsigned handshake_timeout;
        unsigned max_sessions;
        unsigned max_per_source;
    } tunnel;
    struct {
        struct cfg_service gate[CFG_MAX_LIST];
        unsigned n_gate;
        unsigned gate_timeout; /* seconds */
    } fw;
    struct {
        char *listen; /* [enroll] listen: the EST server, NULL: off */
        unsigned tls_min; /* [enroll] tls-min: 12 (default: field EST clients) or 13 */
    } enroll;
    struct {
        char *listen; /* [crl] listen: the CRL distribution point (plain HTTP), NULL: off */
        /* [crl] resign: seconds between re-signs of the CRL (a new thisUpdate,
         * the same entries, the next number) when this hub publishes it
         * ([crl] listen or [pki] crl-url): other hubs count its freshness
         * from thisUpdate ([trust] max-stale). */
        unsigned resign;
    } crl;
    struct cfg_trust *trusts;
    unsigned n_trusts;
    struct cfg_uplink *uplinks;
    unsigned n_uplinks;
};


struct sockaddr_storage;
/*
 * "ADDR:PORT" or "[IPv6]:PORT" (numeric only: a daemon should not wait on
 * DNS at boot). On failure why says what is wrong.
 */
int config_parse_listen(const char *s, struct sockaddr_storage *ss, unsigned *len,
                        const char **why);

/* A config with every default and no file behind it. */
int config_new_defaults(struct config **out);

/*
 * Parse path. On failure *out is untouched and *errors (owned) holds one
 * line per error ("FILE:LINE: ..."). Relative paths in values are taken
 * relative to the directory of the file.
 */
int config_load(const char *path, struct config **out, char **errors);
void config_free(struct config *cfg);

/* "yes/no/true/false/1/0"; -EINVAL otherwise. */
int config_parse_bool(const char *s, bool *out);

/* True when the prefix ("addr/len" or an address) lies inside one of the
 * CIDR strings list[0..n). */
bool config_prefix_inside(char *const *list, unsigned n, const char *prefix);
/*
 * Enrollment's bound: every network inside [tunnel] peer-networks and
 * clear of [tunnel] pool. On failure -EINVAL and err names the network,
 * the key and the file.
 */
int config_check_peer_networks(const struct config *cfg, char *const *nets, size_t n,
                               char *err, size_t errlen);

#endif
