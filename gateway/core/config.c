#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <syslog.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "build-config.h"
#include "cidr.h"
#include "fsutil.h"
#include "verify.h"

#define CONFIG_MAX_SIZE (1024 * 1024)

enum key_type {
    KEY_STRING,
    KEY_PATH,
    KEY_PKCS11_URI,
    KEY_DAYS,
    KEY_USER,
    KEY_LISTEN,
    KEY_KEYREF,
    KEY_TLS_VERSION,
    KEY_SECONDS,
    KEY_COUNT,
    KEY_BYTES,
    KEY_LOG_LEVEL,
    KEY_POOL,
    KEY_CIDR_LIST,
    KEY_PEER_NETWORKS,
    KEY_MTU,
    KEY_GATE,
    KEY_SERVERS,
    KEY_ORDER,
    KEY_URL,
    KEY_BOOL,
    KEY_UDP,
    KEY_HTTP_URL,
    KEY_ROLES,
    KEY_STALE,
};

/* Keys of [uplink NAME] sections: offsets into struct cfg_uplink. */
#define UPLINK 0x1000
/* Keys of [trust NAME] sections: offsets into struct cfg_trust. */
#define TRUST 0x2000

struct key_def {
    const char *name; /* "section.key" */
    enum key_type type;
    size_t offset;
};

/* A list of CIDR strings is an array of CFG_MAX_LIST pointers followed by
 * its unsigned count. */
#define LIST_COUNT(base, offset)                                                            \
    ((unsigned *)((char *)(base) + (offset) + sizeof(char *[CFG_MAX_LIST])))
_Static_assert(offsetof(struct config, tunnel.n_routes) ==
                   offsetof(struct config, tunnel.routes) + sizeof(char *[CFG_MAX_LIST]),
               "routes: count after the list");
_Static_assert(offsetof(struct config, tunnel.n_peer_networks) ==
                   offsetof(struct config, tunnel.peer_networks) + sizeof(char *[CFG_MAX_LIST]),
               "peer-networks: count after the list");
_Static_assert(offsetof(struct cfg_uplink, n_accept_routes) ==
                   offsetof(struct cfg_uplink, accept_routes) + sizeof(char *[CFG_MAX_LIST]),
               "accept-routes: count after the list");
_Static_assert(offsetof(struct cfg_uplink, n_servers) ==
                   offsetof(struct cfg_uplink, servers) + sizeof(char *[CFG_MAX_LIST]),
               "server: count after the list");
_Static_assert(offsetof(struct cfg_trust, n_networks) ==
                   offsetof(struct cfg_trust, networks) + sizeof(char *[CFG_MAX_LIST]),
               "networks: count after the list");

/* Sorted by name: looked up with bsearch. */
static const struct key_def key_table[] = {
    {"crl.listen", KEY_LISTEN, offsetof(struct config, crl.listen)},
    {"crl.resign", KEY_SECONDS, offsetof(struct config, crl.resign)},
    {"daemon.ban-threshold", KEY_COUNT, offsetof(struct config, daemon.ban_threshold)},
    {"daemon.ban-time", KEY_SECONDS, offsetof(struct config, daemon.ban_time)},
    {"daemon.control-socket", KEY_PATH, offsetof(struct config, daemon.control_socket)},
    {"daemon.log-level", KEY_LOG_LEVEL, offsetof(struct config, daemon.log_level)},
    {"daemon.user", KEY_USER, offsetof(struct config, daemon.user)},
    {"enroll.listen", KEY_LISTEN, offsetof(struct config, enroll.listen)},
    {"enroll.tls-min", KEY_TLS_VERSION, offsetof(struct config, enroll.tls_min)},
    {"firewall.gate", KEY_GATE, offsetof(struct config, fw.gate)},
    {"firewall.gate-timeout", KEY_SECONDS, offsetof(struct config, fw.gate_timeout)},
    {"management.cert", KEY_PATH, offsetof(struct config, mgmt.cert)},
    {"management.handshake-timeout", KEY_SECONDS, offsetof(struct config, mgmt.handshake_timeout)},
    {"management.idle-timeout", KEY_SECONDS, offsetof(struct config, mgmt.idle_timeout)},
    {"management.key", KEY_KEYREF, offsetof(struct config, mgmt.key)},
    {"management.listen", KEY_LISTEN, offsetof(struct config, mgmt.listen)},
    {"management.max-body", KEY_BYTES, offsetof(struct config, mgmt.max_body)},
    {"management.max-per-source", KEY_COUNT, offsetof(struct config, mgmt.max_per_source)},
    {"management.max-sessions", KEY_COUNT, offsetof(struct config, mgmt.max_sessions)},
    {"management.tls-min", KEY_TLS_VERSION, offsetof(struct config, mgmt.tls_min)},
    {"pki.auto-renew", KEY_BOOL, offsetof(struct config, pki.auto_renew)},
    {"pki.crl-days", KEY_DAYS, offsetof(struct config, pki.crl_days)},
    {"pki.crl-url", KEY_HTTP_URL, offsetof(struct config, pki.crl_url)},
    {"pki.dir", KEY_PATH, offsetof(struct config, pki.dir)},
    {"pki.peer-days", KEY_DAYS, offsetof(struct config, pki.peer_days)},
    {"token.module", KEY_PATH, offsetof(struct config, token.module)},
    {"token.pin-file", KEY_PATH, offsetof(struct config, token.pin_file)},
    {"token.uri", KEY_PKCS11_URI, offsetof(struct config, token.uri)},
    {"trust.ca", KEY_PATH | TRUST, offsetof(struct cfg_trust, ca)},
    {"trust.crl-url", KEY_HTTP_URL | TRUST, offsetof(struct cfg_trust, crl_url)},
    {"trust.max-stale", KEY_STALE | TRUST, offsetof(struct cfg_trust, max_stale)},
    {"trust.networks", KEY_CIDR_LIST | TRUST, offsetof(struct cfg_trust, networks)},
    {"trust.refresh", KEY_SECONDS | TRUST, offsetof(struct cfg_trust, refresh)},
    {"trust.roles", KEY_ROLES | TRUST, offsetof(struct cfg_trust, roles)},
    {"trust.root-crl-url", KEY_HTTP_URL | TRUST, offsetof(struct cfg_trust, root_crl_url)},
    {"tunnel.fec", KEY_BOOL, offsetof(struct config, tunnel.fec)},
    {"tunnel.handshake-timeout", KEY_SECONDS, offsetof(struct config, tunnel.handshake_timeout)},
    {"tunnel.keepalive", KEY_SECONDS, offsetof(struct config, tunnel.keepalive)},
    {"tunnel.listen", KEY_LISTEN, offsetof(struct config, tunnel.listen)},
    {"tunnel.max-per-source", KEY_COUNT, offsetof(struct config, tunnel.max_per_source)},
    {"tunnel.max-sessions", KEY_COUNT, offsetof(struct config, tunnel.max_sessions)},
    {"tunnel.mtu", KEY_MTU, offsetof(struct config, tunnel.mtu)},
    {"tunnel.offload", KEY_BOOL, offsetof(struct config, tunnel.offload)},
    {"tunnel.peer-networks", KEY_PEER_NETWORKS, offsetof(struct config, tunnel.peer_networks)},
    {"tunnel.pool", KEY_POOL, offsetof(struct config, tunnel.pool)},
    {"tunnel.routes", KEY_CIDR_LIST, offsetof(struct config, tunnel.routes)},
    {"tunnel.udp", KEY_UDP, offsetof(struct config, tunnel.udp)},
    {"uplink.accept-routes", KEY_CIDR_LIST | UPLINK, offsetof(struct cfg_uplink, accept_routes)},
    {"uplink.ca", KEY_PATH | UPLINK, offsetof(struct cfg_uplink, ca)},
    {"uplink.cert", KEY_PATH | UPLINK, offsetof(struct cfg_uplink, cert)},
    {"uplink.enroll", KEY_URL | UPLINK, offsetof(struct cfg_uplink, enroll)},
    {"uplink.key", KEY_KEYREF | UPLINK, offsetof(struct cfg_uplink, key)},
    {"uplink.prefer-first", KEY_BOOL | UPLINK, offsetof(struct cfg_uplink, prefer_first)},
    {"uplink.probe-interval", KEY_SECONDS | UPLINK, offsetof(struct cfg_uplink, probe_interval)},
    {"uplink.server", KEY_SERVERS | UPLINK, offsetof(struct cfg_uplink, servers)},
    {"uplink.server-name", KEY_STRING | UPLINK, offsetof(struct cfg_uplink, server_name)},
    {"uplink.server-order", KEY_ORDER | UPLINK, offsetof(struct cfg_uplink, server_random)},
};

static const char *const sections[] = {"crl",   "daemon", "enroll", "firewall", "management",
                                       "pki",   "token",  "trust",  "tunnel",   "uplink"};

struct errbuf {
    char *text;
    size_t len;
    unsigned count;
};

static void errbuf_add(struct errbuf *eb, const char *file, unsigned line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void errbuf_add(struct errbuf *eb, const char *file, unsigned line, const char *fmt, ...)
{
    char msg[512];
    int n;
    va_list ap;
    char *nt;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    eb->count++;
    n = snprintf(NULL, 0, "%s:%u: %s\n", file, line, msg);
    nt = realloc(eb->text, eb->len + (size_t)n + 1);
    if (!nt)
        return;
    eb->text = nt;
    snprintf(eb->text + eb->len, (size_t)n + 1, "%s:%u: %s\n", file, line, msg);
    eb->len += (size_t)n;
}

int config_parse_bool(const char *s, bool *out)
{
    static const char *const yes[] = {"yes", "true", "1"};
    static const char *const no[] = {"no", "false", "0"};

    for (size_t i = 0; i < 3; i++) {
        if (strcasecmp(s, yes[i]) == 0) {
            *out = true;
            return 0;
        }
        if (strcasecmp(s, no[i]) == 0) {
            *out = false;
            return 0;
        }
    }
    return -EINVAL;
}

static int key_cmp(const void *a, const void *b)
{
    return strcmp(a, ((const struct key_def *)b)->name);
}

static char *resolve_path(const char *base_dir, const char *value)
{
    if (value[0] == '/' || !base_dir)
        return strdup(value);
    return fs_join(base_dir, value);
}

static const char *parse_range(const char *value, unsigned long min, unsigned long max,
                               const char *what, unsigned *out)
{
    char *end;
    unsigned long v;

    errno = 0;
    if (!isdigit((unsigned char)value[0]))
        return what;
    v = strtoul(value, &end, 10);
    if (errno || *end || v < min || v > max)
        return what;
    *out = (unsigned)v;
    return NULL;
}

int config_parse_listen(const char *s, struct sockaddr_storage *ss, unsigned *len,
                        const char **why)
{
    char host[64];
    const char *colon, *h = s;
    size_t hlen;
    unsigned port;
    struct sockaddr_in *sin = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;

    if (s[0] == '[') {
        const char *close = strchr(s, ']');
        if (!close || close[1] != ':') {
            *why = "want [IPv6]:PORT";
            return -EINVAL;
        }
        h = s + 1;
        hlen = (size_t)(close - h);
        colon = close + 1;
    } else {
        colon = strrchr(s, ':');
        if (!colon || strchr(s, ':') != colon) {
            *why = "want ADDR:PORT (IPv6 as [ADDR]:PORT)";
            return -EINVAL;
        }
        hlen = (size_t)(colon - s);
    }
    if (hlen == 0 || hlen >= sizeof(host)) {
        *why = "no address (use 0.0.0.0 or [::] for all)";
        return -EINVAL;
    }
    memcpy(host, h, hlen);
    host[hlen] = '\0';
    if (parse_range(colon + 1, 1, 65535, "port is not a number from 1 to 65535", &port)) {
        *why = "port is not a number from 1 to 65535";
        return -EINVAL;
    }
    memset(ss, 0, sizeof(*ss));
    if (s[0] != '[' && inet_pton(AF_INET, host, &sin->sin_addr) == 1) {
        sin->sin_family = AF_INET;
        sin->sin_port = htons((uint16_t)port);
        *len = sizeof(*sin);
        return 0;
    }
    if (s[0] == '[' && inet_pton(AF_INET6, host, &sin6->sin6_addr) == 1) {
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons((uint16_t)port);
        *len = sizeof(*sin6);
        return 0;
    }
    *why = "not a numeric IPv4 address or [IPv6] address";
    return -EINVAL;
}

/* Returns NULL on success or a static description of what is wrong. */
/* Words of a list value, split on blanks and commas. */
static char *next_word(char **cursor)
{
    char *w = *cursor + strspn(*cursor, " \t,");
    char *e;

    if (!*w)
        return NULL;
    e = w + strcspn(w, " \t,");
    if (*e)
        *e++ = '\0';
    *cursor = e;
    return w;
}

static void free_list(char **list, unsigned *n)
{
    for (unsigned i = 0; i < *n; i++)
        free(list[i]);
    *n = 0;
}

/*
 * A list of CIDR prefixes, canonical, replacing what was there. For
 * peer-networks (bounds) a default route or anything wider than an IPv4
 * /8 (IPv6 /7, the ULA block) is refused: such a bound would bound nothing.
 */
static const char *set_cidrs(char **list, unsigned *n, const char *value, bool bound)
{
    char buf[2048], *cur = buf, *w;
    static char why_buf[160];

    if (strlen(value) >= sizeof(buf))
        return "list too long";
    strcpy(buf, value);
    free_list(list, n);
    while ((w = next_word(&cur))) {
        struct cidr c;
        const char *why;
        char canon[64];
        if (*n == CFG_MAX_LIST)
            return "too many prefixes (at most 64)";
        if (cidr_parse(w, &c, &why) < 0) {
            snprintf(why_buf, sizeof(why_buf), "%s: %s", w, why);
            return why_buf;
        }
        if (bound && c.plen < (c.family == AF_INET ? 8u : 7u)) {
            snprintf(why_buf, sizeof(why_buf),
                     "%s: wider than %s: a default route or a prefix that wide is never a "
                     "peer's network", w, c.family == AF_INET ? "/8" : "/7");
            return why_buf;
        }
        cidr_format(&c, canon, sizeof(canon));
        if (!(list[*n] = strdup(canon)))
            return "out of memory";
        (*n)++;
    }
    return NULL;
}

static const char *set_list(struct config *cfg, const char *value)
{
    char buf[2048], *cur = buf, *w;
    static char why_buf[160];

    if (strlen(value) >= sizeof(buf))
        return "list too long";
    strcpy(buf, value);
    cfg->fw.n_gate = 0;
    while ((w = next_word(&cur))) {
        char *slash = strchr(w, '/');
        unsigned port;
        struct cfg_service *svc;
        if (cfg->fw.n_gate == CFG_MAX_LIST)
            return "too many services (at most 64)";
        if (!slash)
            goto bad_service;
        *slash = '\0';
        svc = &cfg->fw.gate[cfg->fw.n_gate];
        if (strcmp(w, "tcp") == 0)
            svc->proto = IPPROTO_TCP;
        else if (strcmp(w, "udp") == 0)
            svc->proto = IPPROTO_UDP;
        else if (strcmp(w, "sctp") == 0)
            svc->proto = IPPROTO_SCTP;
        else
            goto bad_service;
        if (parse_range(slash + 1, 1, 65535, "x", &port))
            goto bad_service;
        svc->port = (unsigned short)port;
        cfg->fw.n_gate++;
        continue;
bad_service:
        snprintf(why_buf, sizeof(why_buf), "'%s%s%s': want tcp/PORT, udp/PORT or sctp/PORT",
                 w, slash ? "/" : "", slash ? slash + 1 : "");
        return why_buf;
    }
    return NULL;
}

/* "HOST:PORT": a name, an IPv4 address or [IPv6], and a port. */
static bool hostport_ok(const char *value)
{
    const char *colon = strrchr(value, ':');
    unsigned port;

    return colon && colon != value && !parse_range(colon + 1, 1, 65535, "x", &port);
}

/*
 * [uplink NAME] server: one or more HOST:PORT, tried in this order; the
 * word "random" among them asks for a random order (as server-order =
 * random does). Replaces what was there.
 */
static const char *set_servers(struct cfg_uplink *u, const char *value)
{
    char buf[2048], *cur = buf, *w;
    static char why_buf[160];

    if (strlen(value) >= sizeof(buf))
        return "list too long";
    strcpy(buf, value);
    free_list(u->servers, &u->n_servers);
    while ((w = next_word(&cur))) {
        if (strcmp(w, "random") == 0) {
            u->server_random = 1;
            continue;
        }
        if (u->n_servers == CFG_MAX_LIST)
            return "too many servers (at most 64)";
        if (!hostport_ok(w)) {
            snprintf(why_buf, sizeof(why_buf), "'%s': want HOST:PORT (a name, an IPv4 "
                     "address or [IPv6]), one or more, blank-separated", w);
            return why_buf;
        }
        for (unsigned i = 0; i < u->n_servers; i++) {
            if (strcmp(u->servers[i], w) == 0) {
                snprintf(why_buf, sizeof(why_buf), "'%s' is listed twice", w);
                return why_buf;
            }
        }
        if (!(u->servers[u->n_servers] = strdup(w)))
            return "out of memory";
        u->n_servers++;
    }
    if (!u->n_servers)
        return "want HOST:PORT (a name, an IPv4 address or [IPv6])";
    return NULL;
}

/* A number or a keyword, stored in place; NULL or why it is refused. */
static const char *set_scalar(enum key_type type, const char *value, unsigned *up)
{
    switch (type) {
    case KEY_MTU:
        return parse_range(value, 576, 9000, "not an MTU from 576 to 9000", up);
    case KEY_BOOL: {
        bool b;
        if (config_parse_bool(value, &b) < 0)
            return "not yes or no";
        *up = b;
        return NULL;
    }
    case KEY_UDP: {
        bool b;
        /* A port (the hub offers UDP there), or no (a spoke never takes it). */
        if (config_parse_bool(value, &b) == 0 && !b) {
            *up = CFG_UDP_OFF;
            return NULL;
        }
        return parse_range(value, 1, 65535, "not a UDP port from 1 to 65535, or no", up);
    }
    case KEY_DAYS: {
        char *end;
        unsigned long v;
        errno = 0;
        if (!isdigit((unsigned char)value[0]))
            return "not a whole number of days";
        v = strtoul(value, &end, 10);
        if (errno || *end || v == 0 || v > 36500)
            return "not a number of days from 1 to 36500";
        *up = (unsigned)v;
        return NULL;
    }
    case KEY_SECONDS:
        return parse_range(value, 1, 86400, "not a number of seconds from 1 to 86400", up);
    case KEY_STALE: /* up to 30 days: a CRL's own nextUpdate is usually further */
        return parse_range(value, 1, 30 * 86400, "not a number of seconds from 1 to 2592000",
                           up);
    case KEY_ROLES: {
        static const char *const names[] = {"admin", "monitor", "tunnel"};
        char buf[128], *cur = buf, *w;
        unsigned bits = 0;
        if (strlen(value) >= sizeof(buf))
            return "want admin, monitor and/or tunnel";
        strcpy(buf, value);
        while ((w = next_word(&cur))) {
            size_t i;
            for (i = 0; i < 3 && strcmp(w, names[i]) != 0; i++)
                ;
            if (i == 3)
                return "want admin, monitor and/or tunnel";
            bits |= CFG_ROLE(i);
        }
        if (!bits)
            return "no role: name admin, monitor and/or tunnel";
        *up = bits;
        return NULL;
    }
    case KEY_COUNT:
        return parse_range(value, 1, 1000000, "not a whole number from 1 to 1000000", up);
    case KEY_BYTES:
        return parse_range(value, 256, 64u * 1024 * 1024,
                           "not a number of bytes from 256 to 67108864", up);
    case KEY_TLS_VERSION:
        if (strcmp(value, "1.2") == 0)
            *up = 12;
        else if (strcmp(value, "1.3") == 0)
            *up = 13;
        else
            return "not 1.2 or 1.3";
        return NULL;
    case KEY_LOG_LEVEL: {
        static const char *const names[] = {"err", "warn", "info", "debug"};
        static const int levels[] = {LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG};
        for (size_t i = 0; i < 4; i++) {
            if (strcmp(value, names[i]) == 0) {
                *(int *)up = levels[i];
                return NULL;
            }
        }
        return "not err, warn, info or debug";
    }
    default:
        return "not a number key"; /* set_value() sends only the kinds above */
    }
}

/* A text value checked for its kind; *copy the string to store (NULL: out
 * of memory). NULL or why it is refused. */
static const char *text_value(enum key_type type, const char *value, const char *base_dir,
                              char **copy)
{
    *copy = NULL;
    switch (type) {
    case KEY_POOL: {
        struct cidr c;
        const char *why;
        char canon[64];
        if (cidr_parse(value, &c, &why) < 0)
            return why;
        if (c.family != AF_INET || c.plen > 30 || c.plen < 8)
            return "want an IPv4 prefix from /8 to /30";
        cidr_format(&c, canon, sizeof(canon));
        *copy = strdup(canon);
        return NULL;
    }
    case KEY_URL:
        if (strncmp(value, "https://", 8) != 0 || !value[8])
            return "want an https:// URL";
        break;
    case KEY_HTTP_URL: /* a CRL DP: plain HTTP (RFC 5280 4.2.1.13; the CRL is signed) */
        if (strncmp(value, "http://", 7) != 0 || !value[7] || value[7] == '/' ||
            strlen(value) > 512 || strpbrk(value, " \t\"<>\\"))
            return "want an http://HOST[:PORT]/PATH URL";
        break;
    case KEY_LISTEN: {
        struct sockaddr_storage ss;
        unsigned len;
        const char *why;
        if (config_parse_listen(value, &ss, &len, &why) < 0)
            return why;
        break;
    }
    case KEY_KEYREF:
        if (!value[0])
            return "empty key label";
        break;
    case KEY_PKCS11_URI:
        if (strncmp(value, "pkcs11:", 7) != 0)
            return "not a PKCS#11 URI (RFC 7512), e.g. pkcs11:token=mtlsgw";
        break;
    case KEY_USER:
        if (!value[0] || strlen(value) > 32 || strchr(value, ':') || strchr(value, '/'))
            return "not a user name";
        break;
    case KEY_PATH:
        if (!value[0])
            return "empty path";
        *copy = resolve_path(base_dir, value);
        return NULL;
    default: /* KEY_STRING */
        break;
    }
    *copy = strdup(value);
    return NULL;
}

static const char *set_value(struct config *cfg, void *base, const struct key_def *def,
                             const char *value, const char *base_dir)
{
    enum key_type type = (enum key_type)(def->type & ~(UPLINK | TRUST));
    char **sp = (char **)((char *)base + def->offset);
    unsigned *up = (unsigned *)((char *)base + def->offset);
    char *copy = NULL;
    const char *why;

    switch (type) {
    case KEY_CIDR_LIST:
    case KEY_PEER_NETWORKS:
        return set_cidrs(sp, LIST_COUNT(base, def->offset), value,
                         type == KEY_PEER_NETWORKS);
    case KEY_GATE:
        return set_list(cfg, value);
    case KEY_SERVERS:
        return set_servers(base, value);
    case KEY_ORDER:
        if (strcmp(value, "in-order") == 0)
            *up = 0;
        else if (strcmp(value, "random") == 0)
            *up = 1;
        else
            return "not in-order or random";
        return NULL;
    case KEY_MTU:
    case KEY_BOOL:
    case KEY_UDP:
    case KEY_DAYS:
    case KEY_SECONDS:
    case KEY_COUNT:
    case KEY_BYTES:
    case KEY_TLS_VERSION:
    case KEY_LOG_LEVEL:
    case KEY_ROLES:
    case KEY_STALE:
        return set_scalar(type, value, up);
    default:
        break;
    }
    why = text_value(type, value, base_dir, &copy);
    if (why)
        return why;
    if (!copy)
        return "out of memory";
    free(*sp);
    *sp = copy;
    return NULL;
}

int config_new_defaults(struct config **out)
{
    struct config *cfg = calloc(1, sizeof(*cfg));

    if (!cfg)
        return -ENOMEM;
    cfg->token.uri = strdup("pkcs11:token=mtlsgw");
    cfg->token.pin_file = strdup(MTLSGW_DEFAULT_PIN_FILE);
    cfg->pki.dir = strdup(MTLSGW_DEFAULT_PKI_DIR);
    cfg->pki.crl_days = 30;
    /* A quarter of [trust] max-stale's default (3600): a hub fetching this
     * CRL finds it fresh through three missed re-signs or fetches. */
    cfg->crl.resign = 900;
    cfg->pki.peer_days = 397;
    cfg->pki.auto_renew = 1;
    cfg->daemon.user = strdup(MTLSGW_DEFAULT_USER);
    cfg->daemon.control_socket = strdup(MTLSGW_DEFAULT_CONTROL_SOCKET);
    cfg->daemon.log_level = LOG_INFO;
    cfg->daemon.ban_threshold = 10;
    cfg->daemon.ban_time = 300;
    cfg->mgmt.key = strdup("mtlsgw-gateway");
    cfg->mgmt.tls_min = 13;
    cfg->enroll.tls_min = 12;
    cfg->mgmt.handshake_timeout = 10;
    cfg->mgmt.max_sessions = 1000;
    cfg->mgmt.max_per_source = 32;
    cfg->mgmt.max_body = 64 * 1024;
    cfg->mgmt.idle_timeout = 300;
    cfg->tunnel.mtu = 1400;
    cfg->tunnel.keepalive = 10;
    cfg->tunnel.offload = 1;
    cfg->tunnel.fec = 1;
    cfg->tunnel.handshake_timeout = 10;
    cfg->tunnel.max_sessions = 1000;
    cfg->tunnel.max_per_source = 8;
    cfg->fw.gate_timeout = 600;
    /* The private ranges: RFC 1918, RFC 6598 (shared address space) and
     * IPv6 unique local addresses (RFC 4193). */
    if (set_cidrs(cfg->tunnel.peer_networks, &cfg->tunnel.n_peer_networks,
                  "10.0.0.0/8 172.16.0.0/12 192.168.0.0/16 100.64.0.0/10 fc00::/7", true)) {
        config_free(cfg);
        return -ENOMEM;
    }
    if (!cfg->token.uri || !cfg->token.pin_file || !cfg->pki.dir || !cfg->daemon.user ||
        !cfg->daemon.control_socket || !cfg->mgmt.key) {
        config_free(cfg);
        return -ENOMEM;
    }
    *out = cfg;
    return 0;
}

static char *trim(char *s)
{
    char *e;

    while (*s == ' ' || *s == '\t')
        s++;
    e = s + strlen(s);
    while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r'))
        *--e = '\0';
    return s;
}

static bool known_section(const char *name)
{
    for (size_t i = 0; i < sizeof(sections) / sizeof(sections[0]); i++)
        if (strcmp(sections[i], name) == 0)
            return true;
    return false;
}

static int add_uplink(struct config *cfg, const char *name, struct cfg_uplink **out)
{
    struct cfg_uplink *n;
    size_t len = strlen(name);

    if (len == 0 || len > 15 || strspn(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                             "0123456789-_") != len)
        return -EINVAL;
    for (unsigned i = 0; i < cfg->n_uplinks; i++)
        if (strcmp(cfg->uplinks[i].name, name) == 0)
            return -EEXIST;
    n = realloc(cfg->uplinks, (cfg->n_uplinks + 1) * sizeof(*n));
    if (!n)
        return -ENOMEM;
    cfg->uplinks = n;
    memset(&n[cfg->n_uplinks], 0, sizeof(*n));
    n[cfg->n_uplinks].prefer_first = 1;
    n[cfg->n_uplinks].probe_interval = 10;
    n[cfg->n_uplinks].name = strdup(name);
    if (!n[cfg->n_uplinks].name)
        return -ENOMEM;
    *out = &n[cfg->n_uplinks++];
    return 0;
}

static int add_trust(struct config *cfg, const char *name, struct cfg_trust **out)
{
    struct cfg_trust *n;
    size_t len = strlen(name);

    if (len == 0 || len > 31 || strspn(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                             "0123456789-_.") != len)
        return -EINVAL;
    for (unsigned i = 0; i < cfg->n_trusts; i++)
        if (strcmp(cfg->trusts[i].name, name) == 0)
            return -EEXIST;
    n = realloc(cfg->trusts, (cfg->n_trusts + 1) * sizeof(*n));
    if (!n)
        return -ENOMEM;
    cfg->trusts = n;
    memset(&n[cfg->n_trusts], 0, sizeof(*n));
    n[cfg->n_trusts].name = strdup(name);
    if (!n[cfg->n_trusts].name)
        return -ENOMEM;
    /* Defaults: a monitor or a tunnel peer, never an admin unless listed;
     * a fetch a minute; an hour without a fresh CRL before fail-closed. */
    n[cfg->n_trusts].roles = CFG_ROLE(1) | CFG_ROLE(2);
    n[cfg->n_trusts].refresh = 60;
    n[cfg->n_trusts].max_stale = 3600;
    *out = &n[cfg->n_trusts++];
    return 0;
}

/* One pass over a config file's lines. */
struct parser {
    struct config *cfg;
    struct errbuf eb;
    const char *path, *base_dir;
    char section[64];         /* "" before the first, "?" after a refused one */
    unsigned lineno;
    struct cfg_uplink *uplink; /* the [uplink NAME] being read, or NULL */
    struct cfg_trust *trust;   /* the [trust NAME] being read, or NULL */
};

/* A "[section]" or "[uplink NAME]" line. */
static void parse_section(struct parser *ps, char *p)
{
    char *end = strchr(p, ']');

    if (!end || trim(end + 1)[0] != '\0') {
        errbuf_add(&ps->eb, ps->path, ps->lineno, "malformed section header '%s'", p);
        ps->section[0] = '\0';
        return;
    }
    *end = '\0';
    p = trim(p + 1);
    ps->uplink = NULL;
    ps->trust = NULL;
    if (strncmp(p, "trust", 5) == 0 && (p[5] == ' ' || p[5] == '\t' || !p[5])) {
        const char *name = trim(p + 5);
        snprintf(ps->section, sizeof(ps->section), "%s", "trust");
        if (add_trust(ps->cfg, name, &ps->trust) < 0) {
            errbuf_add(&ps->eb, ps->path, ps->lineno,
                       "[trust NAME]: '%s' is not a new name of 1-31 letters, digits, "
                       "'-', '_' or '.'",
                       name);
            snprintf(ps->section, sizeof(ps->section), "%s", "?");
        }
        return;
    }
    if (strncmp(p, "uplink", 6) == 0 && (p[6] == ' ' || p[6] == '\t' || !p[6])) {
        const char *name = trim(p + 6);
        snprintf(ps->section, sizeof(ps->section), "%s", "uplink");
        if (add_uplink(ps->cfg, name, &ps->uplink) < 0) {
            errbuf_add(&ps->eb, ps->path, ps->lineno,
                       "[uplink NAME]: '%s' is not a new name of 1-15 letters, digits, "
                       "'-' or '_'",
                       name);
            snprintf(ps->section, sizeof(ps->section), "%s", "?");
        }
        return;
    }
    if (!known_section(p) || strcmp(p, "uplink") == 0 || strcmp(p, "trust") == 0) {
        errbuf_add(&ps->eb, ps->path, ps->lineno, "unknown section [%s]", p);
        snprintf(ps->section, sizeof(ps->section), "%s", "?");
        return;
    }
    snprintf(ps->section, sizeof(ps->section), "%s", p);
}

/* A "key = value" line of the current section. */
static void parse_assignment(struct parser *ps, char *p)
{
    char *eq = strchr(p, '='), *key, *value;
    char full[128];
    const struct key_def *def;
    const char *why;

    if (!eq) {
        errbuf_add(&ps->eb, ps->path, ps->lineno, "expected 'key = value', got '%s'", p);
        return;
    }
    *eq = '\0';
    key = trim(p);
    value = trim(eq + 1);
    if (strcmp(ps->section, "?") == 0)
        return; /* already reported the section */
    if (!ps->section[0]) {
        errbuf_add(&ps->eb, ps->path, ps->lineno, "key '%s' outside any [section]", key);
        return;
    }
    snprintf(full, sizeof(full), "%s.%s", ps->section, key);
    def = bsearch(full, key_table, sizeof(key_table) / sizeof(key_table[0]),
                  sizeof(key_table[0]), key_cmp);
    if (!def) {
        errbuf_add(&ps->eb, ps->path, ps->lineno, "unknown key '%s' in [%s]", key,
                   ps->section);
        return;
    }
    if ((def->type & UPLINK) != 0) {
        if (!ps->uplink)
            return; /* its header was already reported */
        why = set_value(ps->cfg, ps->uplink, def, value, ps->base_dir);
    } else if ((def->type & TRUST) != 0) {
        if (!ps->trust)
            return;
        why = set_value(ps->cfg, ps->trust, def, value, ps->base_dir);
    } else {
        why = set_value(ps->cfg, ps->cfg, def, value, ps->base_dir);
    }
    if (why)
        errbuf_add(&ps->eb, ps->path, ps->lineno, "%s = '%s': %s", key, value, why);
}

/* What no single line shows: keys that need another. */
/*
 * A [trust] CA must not carry the subject of this gateway's own CA (ca.crt,
 * chain.pem) nor of another [trust] CA: a leaf names its issuer by subject
 * only, so a sibling named like us could pass for us wherever a name is
 * matched (docs/pki.md "How a peer's issuer is chosen").
 */
static void check_trust_names(struct parser *ps)
{
    struct config *cfg = ps->cfg;
    static const char *const own[] = {"ca.crt", "chain.pem"};
    char dn[256];

    for (unsigned i = 0; i < cfg->n_trusts; i++) {
        const struct cfg_trust *t = &cfg->trusts[i];
        for (size_t k = 0; t->ca && k < sizeof(own) / sizeof(own[0]); k++) {
            char *p = fs_join(cfg->pki.dir, own[k]);
            if (p && verify_files_share_subject(t->ca, p, dn, sizeof(dn)))
                errbuf_add(&ps->eb, ps->path, ps->lineno,
                           "[trust %s] ca %s has the subject '%s' of this gateway's own CA in "
                           "%s: refused (its peers could pass for ours); the issuer must get "
                           "an intermediate with a name of its own from the root",
                           t->name, t->ca, dn, p);
            free(p);
        }
        for (unsigned k = 0; t->ca && k < i; k++)
            if (cfg->trusts[k].ca &&
                verify_files_share_subject(t->ca, cfg->trusts[k].ca, dn, sizeof(dn)))
                errbuf_add(&ps->eb, ps->path, ps->lineno,
                           "[trust %s] ca %s has the subject '%s' of [trust %s] ca %s: refused "
                           "(each issuer's CA needs a name of its own)",
                           t->name, t->ca, dn, cfg->trusts[k].name, cfg->trusts[k].ca);
    }
}

static void check_whole(struct parser *ps)
{
    struct config *cfg = ps->cfg;

    if (cfg->tunnel.listen && !cfg->tunnel.pool)
        errbuf_add(&ps->eb, ps->path, ps->lineno,
                   "[tunnel] listen needs pool = CIDR (tunnel addresses)");
    for (unsigned i = 0; i < cfg->n_uplinks; i++)
        if (!cfg->uplinks[i].n_servers)
            errbuf_add(&ps->eb, ps->path, ps->lineno,
                       "[uplink %s] needs server = HOST:PORT [HOST:PORT...]",
                       cfg->uplinks[i].name);
    for (unsigned i = 0; i < cfg->n_trusts; i++) {
        const struct cfg_trust *t = &cfg->trusts[i];
        if (!t->ca || !t->crl_url)
            errbuf_add(&ps->eb, ps->path, ps->lineno,
                       "[trust %s] needs ca = FILE (the issuer's CA certificate) and crl-url = "
                       "http://... (its CRL distribution point)",
                       t->name);
        else if (t->max_stale < t->refresh)
            errbuf_add(&ps->eb, ps->path, ps->lineno,
                       "[trust %s] max-stale (%u s) is shorter than refresh (%u s): its peers "
                       "would be refused between fetches",
                       t->name, t->max_stale, t->refresh);
    }
    check_trust_names(ps);
}

int config_load(const char *path, struct config **out, char **errors)
{
    struct parser ps = {.path = path};
    char *text = NULL, *base_dir = NULL, *line, *next;
    int rc;

    *errors = NULL;
    rc = config_new_defaults(&ps.cfg);
    if (rc < 0)
        goto out;
    ps.cfg->path = strdup(path);
    base_dir = strdup(path);
    if (!ps.cfg->path || !base_dir) {
        rc = -ENOMEM;
        goto out;
    }
    {
        char *slash = strrchr(base_dir, '/');
        if (slash)
            *(slash == base_dir ? slash + 1 : slash) = '\0';
        else
            strcpy(base_dir, ".");
    }
    ps.base_dir = base_dir;
    rc = fs_read_input(path, CONFIG_MAX_SIZE, &text, NULL);
    if (rc < 0) {
        errbuf_add(&ps.eb, path, 0, "cannot read: %s", strerror(-rc));
        goto out;
    }
    for (line = text; line; line = next) {
        char *p;
        next = strchr(line, '\n');
        if (next)
            *next++ = '\0';
        ps.lineno++;
        p = trim(line);
        if (!*p || *p == '#' || *p == ';')
            continue;
        if (*p == '[')
            parse_section(&ps, p);
        else
            parse_assignment(&ps, p);
    }
    check_whole(&ps);
out:
    free(text);
    free(base_dir);
    if (rc == 0 && ps.eb.count > 0)
        rc = -EINVAL;
    if (rc < 0) {
        config_free(ps.cfg);
        if (!ps.eb.text && rc == -ENOMEM)
            ps.eb.text = strdup("out of memory\n");
        *errors = ps.eb.text;
        return rc;
    }
    free(ps.eb.text);
    *out = ps.cfg;
    return 0;
}

void config_free(struct config *cfg)
{
    if (!cfg)
        return;
    free(cfg->path);
    free(cfg->token.uri);
    free(cfg->token.module);
    free(cfg->token.pin_file);
    free(cfg->pki.dir);
    free(cfg->daemon.user);
    free(cfg->daemon.control_socket);
    free(cfg->mgmt.listen);
    free(cfg->mgmt.key);
    free(cfg->mgmt.cert);
    free(cfg->tunnel.listen);
    free(cfg->enroll.listen);
    free(cfg->tunnel.pool);
    free_list(cfg->tunnel.routes, &cfg->tunnel.n_routes);
    free_list(cfg->tunnel.peer_networks, &cfg->tunnel.n_peer_networks);
    for (unsigned i = 0; i < cfg->n_uplinks; i++) {
        struct cfg_uplink *u = &cfg->uplinks[i];
        free_list(u->accept_routes, &u->n_accept_routes);
        free_list(u->servers, &u->n_servers);
        free(u->name);
        free(u->server_name);
        free(u->cert);
        free(u->ca);
        free(u->key);
        free(u->enroll);
    }
    free(cfg->uplinks);
    for (unsigned i = 0; i < cfg->n_trusts; i++) {
        struct cfg_trust *t = &cfg->trusts[i];
        free_list(t->networks, &t->n_networks);
        free(t->name);
        free(t->ca);
        free(t->crl_url);
        free(t->root_crl_url);
    }
    free(cfg->trusts);
    free(cfg->crl.listen);
    free(cfg->pki.crl_url);
    free(cfg);
}

bool config_prefix_inside(char *const *list, unsigned n, const char *prefix)
{
    struct cidr p;

    if (!prefix || cidr_parse(prefix, &p, NULL) < 0)
        return false;
    for (unsigned i = 0; i < n; i++) {
        struct cidr c;
        if (cidr_parse(list[i], &c, NULL) == 0 && c.family == p.family && c.plen <= p.plen &&
            cidr_contains(&c, p.family, p.addr))
            return true;
    }
    return false;
}

int config_check_peer_networks(const struct config *cfg, char *const *nets, size_t n,
                               char *err, size_t errlen)
{
    for (size_t i = 0; i < n; i++) {
        char bounds[512] = "";
        size_t off = 0;
        if (config_prefix_inside(cfg->tunnel.peer_networks, cfg->tunnel.n_peer_networks,
                                 nets[i]))
            continue;
        for (unsigned k = 0; k < cfg->tunnel.n_peer_networks && off < sizeof(bounds); k++)
            off += (size_t)snprintf(bounds + off, sizeof(bounds) - off, "%s%s", k ? " " : "",
                                    cfg->tunnel.peer_networks[k]);
        snprintf(err, errlen,
                 "network %s is outside [tunnel] peer-networks (%s) of %s: choose a network "
                 "inside it, or have root widen peer-networks there",
                 nets[i], off ? bounds : "empty: no network allowed",
                 cfg->path ? cfg->path : "the built-in defaults");
        return -EINVAL;
    }
    /* Nor over the tunnel pool: the peer could send from (and be routed)
     * other peers' tunnel addresses. */
    for (size_t i = 0; cfg->tunnel.pool && i < n; i++) {
        struct cidr a, b;
        if (cidr_parse(nets[i], &a, NULL) < 0 || cidr_parse(cfg->tunnel.pool, &b, NULL) < 0 ||
            a.family != b.family)
            continue;
        if (cidr_contains(a.plen <= b.plen ? &a : &b, a.family, a.plen <= b.plen ? b.addr
                                                                                 : a.addr)) {
            snprintf(err, errlen, "network %s overlaps [tunnel] pool %s of %s (the tunnel "
                     "addresses): choose a network outside it", nets[i], cfg->tunnel.pool,
                     cfg->path ? cfg->path : "the built-in defaults");
            return -EINVAL;
        }
    }
    return 0;
}
