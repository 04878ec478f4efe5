/*
 * tunnel-hub.c: the hub's side of a tunnel's set-up (daemon.h,
 * tunnel_start_hub): a tunnel peer passed the handshake; it gets a pool
 * address, an interface from the parent and the CONFIG frame, then the
 * data path (tunnel.c) takes the connection.
 */
#include "tunnel.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include <json-c/json.h>

#include "build-config.h"
#include "config.h"
#include "daemon.h"
#include "fault.h"
#include "log.h"
#include "pool.h"
#include "registry.h"
#include "sessions.h"
#include "trustdb.h"
#include "udp.h"
#include "verify.h"


/* The setup thread ends c before the hand-off: a CLOSE with the reason (the
 * kill's when one is pending: why is NULL only then, and a kill is never
 * taken back), the interface and pool address given back. */
static void setup_abort(struct conn *c, const char *why)
{
    if (atomic_load(&c->kill) != KILL_NONE || !why)
        tunnel_wake(c);
    else
        tunnel_end(c, "%s", why);
    tunnel_finish(c);
}

/*
 * Whether the peer has closed the connection (an end of file or an error
 * waits on the socket). A spoke whose dial deadline passed while this hub
 * was busy (a ramp of many spokes at once) gives up and dials again: its
 * interface, routes and firewall openings would be made for nothing, and
 * its older tunnel superseded by a dead one.
 */
static bool peer_hung_up(int fd)
{
    char b;
    ssize_t n = recv(fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);

    return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
}

/* The CONFIG frame's JSON (docs/tunnel-protocol.md), malloc'ed. */
static char *hub_config(struct daemon *d, const struct tunnel *t)
{
    const struct config *cfg = d->cfg;
    struct json_object *o = json_object_new_object(), *arr;
    char *js;

    json_object_object_add(o, "version", json_object_new_int(1));
    json_object_object_add(o, "address", json_object_new_string(t->remote));
    json_object_object_add(o, "peer", json_object_new_string(t->local));
    json_object_object_add(o, "prefix",
                           json_object_new_int((int)pool_prefix_len(d->pool)));
    json_object_object_add(o, "mtu", json_object_new_int((int)t->mtu));
    json_object_object_add(o, "keepalive", json_object_new_int((int)t->keepalive));
    if (t->offer)
        json_object_object_add(o, "offload", json_object_new_boolean(1));
    if (t->udp_port)
        json_object_object_add(o, "udp", json_object_new_int((int)t->udp_port));
    arr = json_object_new_array();
    for (unsigned i = 0; i < cfg->tunnel.n_routes; i++)
        json_object_array_add(arr, json_object_new_string(cfg->tunnel.routes[i]));
    json_object_object_add(o, "routes", arr);
    arr = json_object_new_array();
    for (unsigned i = 0; i < t->n_networks; i++)
        json_object_array_add(arr, json_object_new_string(t->networks[i]));
    json_object_object_add(o, "networks", arr);
    js = strdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN |
                                                      JSON_C_TO_STRING_NOSLASHESCAPE));
    json_object_put(o);
    return js;
}

/*
 * A roaming tunnel peer: a [trust NAME] issuer's peer with no entry in our
 * registry (docs/pki.md, "Roaming tunnel peers"). It gets a pool address and
 * our routes; of the networks its certificate carries (VERIFY_NETWORK_URI),
 * only those inside [trust NAME] networks are routed to it, the others are
 * logged and left out. Its certificate goes to the parent, which checks it
 * against that issuer's CA and CRL itself before it routes anything.
 */
static int roam_request(struct conn *c, struct ps_tun_up *u, struct tunnel *t)
{
    const struct config *cfg = c->d->cfg;
    const struct cfg_trust *tr = NULL;
    const gnutls_datum_t *raw;
    gnutls_x509_crt_t crt = NULL;
    char nets[PS_MAX_PREFIXES][64];
    unsigned n = 0;
    size_t nn = 0;

    for (unsigned i = 0; i < cfg->n_trusts && !tr; i++)
        if (strcmp(cfg->trusts[i].name, c->issuer) == 0)
            tr = &cfg->trusts[i];
    raw = gnutls_certificate_get_peers(c->tls, &n);
    if (!tr || !raw || n == 0 || raw[0].size > PS_CERT_MAX || gnutls_x509_crt_init(&crt) < 0)
        return -EINVAL;
    if (gnutls_x509_crt_import(crt, &raw[0], GNUTLS_X509_FMT_DER) == 0)
        nn = verify_cert_networks(crt, nets, PS_MAX_PREFIXES);
    gnutls_x509_crt_deinit(crt);
    snprintf(u->trust, sizeof(u->trust), "%s", tr->name);
    memcpy(u->cert, raw[0].data, raw[0].size);
    u->cert_len = raw[0].size;
    for (size_t i = 0; i < nn; i++) {
        if (!config_prefix_inside(tr->networks, tr->n_networks, nets[i])) {
            log_warn("tunnel peer %s serial %s of issuer %s: network %s is outside [trust %s] "
                     "networks: refused, not routed",
                     c->peer, c->serial, tr->name, nets[i], tr->name);
            continue;
        }
        snprintf(u->routes[u->n_routes++], PS_ADDRLEN, "%s", nets[i]);
        t->networks[t->n_networks++] = strdup(nets[i]);
    }
    return 0;
}

/*
 * A tunnel peer passed the handshake; this slow-pool worker owns c (the loop
 * gave it up) until tunnel_hand_over gives it to the tunnel threads. A kill
 * meanwhile stays pending on c: it is looked at before the pool address and
 * the interface are taken, and acted on at the hand-off at the latest.
 */
void tunnel_start_hub(struct conn *c)
{
    struct daemon *d = c->d;
    const struct config *cfg = d->cfg;
    struct trustdb *db = daemon_trust(d);
    /* Peers are (issuer, serial): a sibling issuer's peer is never one of
     * the registry's, which holds only what this hub's CA issued. */
    const struct peer *p =
        c->issuer[0] ? NULL : registry_find_serial(trustdb_registry(db), c->serial);
    struct ps_tun_up *u = calloc(1, sizeof(*u));
    struct tunnel *t;
    char err[PS_ERRLEN] = "";
    char *js = NULL;
    uint32_t idx;

    t = tunnel_new(cfg->tunnel.mtu, cfg->tunnel.keepalive, false);
    if (!u || !t || (!p && !c->issuer[0]) || (!p && roam_request(c, u, t) < 0)) {
        trustdb_unref(db);
        free(u);
        tunnel_free(t);
        /* A roaming peer whose [trust] section or certificate cannot be
         * read into a request (docs/pki.md, "Roaming tunnel peers"). */
        conn_close(c, u && t && !p && c->issuer[0] ? "roaming peer: its certificate is unusable"
                      : u && t && !p             ? "peer vanished from the registry"
                                                 : "out of memory");
        return;
    }
    for (size_t i = 0; p && i < p->n_networks && i < PS_MAX_PREFIXES; i++) {
        snprintf(u->routes[i], PS_ADDRLEN, "%s", p->networks[i]);
        t->networks[t->n_networks++] = strdup(p->networks[i]);
        u->n_routes++;
    }
    trustdb_unref(db);
    t->offer = cfg->tunnel.offload;
    /* Whole TLS records go out at once; Nagle would only delay small ones
     * (a ping, a keepalive) behind an unacknowledged segment. */
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &(int){1}, sizeof(int));
    /* The event loop has given the socket up for good: this worker, then
     * the two tunnel threads own it. */
    pthread_mutex_lock(&c->lock);
    epoll_ctl(d->epfd, EPOLL_CTL_DEL, c->fd, NULL);
    c->tun = t;
    pthread_mutex_unlock(&c->lock);
    /* The window between the handshake's end and the tunnel threads owning
     * the connection (tests/adversarial/kill-race.sh widens it). */
    fault_point("tunnel-setup");
    if (atomic_load(&c->kill) != KILL_NONE) {
        free(u);
        setup_abort(c, NULL);
        return;
    }
    if (peer_hung_up(c->fd)) {
        free(u);
        log_info("tunnel peer %s serial %s from %s: hung up before its tunnel was made",
                 c->peer, c->serial, c->remote);
        setup_abort(c, "hung up");
        return;
    }
    /* One tunnel per peer: a peer's older tunnels end before this one takes
     * a pool address and its routes (which the older ones would still hold). */
    daemon_supersede(d, c);
    idx = pool_take(d->pool);
    if (!idx) {
        free(u);
        log_err("tunnel peer %s: [tunnel] pool %s is exhausted", c->peer, cfg->tunnel.pool);
        setup_abort(c, "pool exhausted");
        return;
    }
    t->pool_index = idx;
    pool_addr(d->pool, 1, t->local, sizeof(t->local));
    pool_addr(d->pool, idx, t->remote, sizeof(t->remote));
    snprintf(u->ifname, sizeof(u->ifname), "%s%llu", MTLSGW_DEFAULT_IFPREFIX,
             (unsigned long long)c->id);
    snprintf(u->peer_name, sizeof(u->peer_name), "%s", c->peer);
    snprintf(u->local, sizeof(u->local), "%s", t->local);
    snprintf(u->remote, sizeof(u->remote), "%s", t->remote);
    u->mtu = t->mtu;
    for (unsigned i = 0; i < cfg->tunnel.n_routes; i++)
        snprintf(u->allowed[u->n_allowed++], PS_ADDRLEN, "%s", cfg->tunnel.routes[i]);
    /* Nothing is made in the kernel for a connection already ending. */
    if (atomic_load(&c->kill) != KILL_NONE) {
        free(u);
        setup_abort(c, NULL);
        return;
    }
    if (tunnel_tun_up(c, u, err, sizeof(err)) < 0) {
        free(u);
        log_err("tunnel peer %s serial %s from %s: no interface: %s", c->peer, c->serial,
                c->remote, err);
        setup_abort(c, "no interface");
        return;
    }
    free(u);
    /* The UDP channel's keys come from the session now, while this thread
     * is its only user (udp.h); a peer that does not know "udp" ignores it. */
    t->udp_port = udp_hub_attach(c);
    js = hub_config(d, t);
    if (!js || tunnel_send_frame(c, FRAME_CONFIG, js, strlen(js)) < 0) {
        free(js);
        setup_abort(c, "cannot start");
        return;
    }
    free(js);
    log_info("tunnel peer %s serial %s from %s: %s up, %s <-> %s", c->peer, c->serial, c->remote,
             t->ifname, t->local, t->remote);
    tunnel_hand_over(c); /* c may be gone once this returns */
}
