/*
 * daemon.h: the session process of mtlsgwd (private to the daemon).
 *
 * Threads: the main thread runs the epoll loop (accept, signals, a 1 s tick)
 * and hands each ready connection to a pool: `slow` for handshakes and token
 * work, `io` for established sessions. A connection belongs to exactly one
 * owner at a time (`owner`, under its lock; docs/mtlsgwd.md "Kills and
 * ownership"): the loop, the thread running it, or its two tunnel threads.
 */
#ifndef MTLSGW_DAEMON_H
#define MTLSGW_DAEMON_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <time.h>

#include <gnutls/gnutls.h>

#include "verify.h"
#include "workers.h"

struct config;
struct pki;
struct tls_server;
struct trustdb;
struct http_reader;
struct json_object;

enum { VERDICT_COUNT = VERDICT_ISSUER_STALE + 1 };

struct service;

struct listener {
    const char *name; /* "management" */
    const struct service *svc; /* what its connections get (service.h) */
    int fd;
    unsigned allowed_roles; /* VERIFY_ROLE() bits */
    struct tls_server *tls;
    unsigned handshake_timeout, idle_timeout, max_sessions, max_per_source, max_body;
    atomic_uint sessions;    /* established */
    atomic_uint handshaking;
    atomic_ullong handshakes[VERDICT_COUNT];
    atomic_ullong handshake_errors; /* failed before a verdict (no cert, TLS error) */
    atomic_ullong bytes_in, bytes_out;
    /* main thread only */
    bool paused;                  /* out of fds: not accepting until the next tick */
    unsigned refused;             /* refusals not logged yet */
    long long refused_logged_ms;  /* when the last refusal line went out */
};

enum conn_state { CONN_HANDSHAKE = 0, CONN_OPEN, CONN_CLOSED };

/* Why a connection is being ended by someone other than its owner. */
enum kill_reason {
    KILL_NONE = 0,
    KILL_TIMEOUT,    /* handshake not done in time */
    KILL_IDLE,       /* idle keep-alive */
    KILL_REVOKED,    /* trust ended */
    KILL_KICKED,     /* DELETE /sessions/{id}, mtlsgw kick */
    KILL_SHUTDOWN,   /* SIGTERM */
    KILL_SUPERSEDED, /* a newer tunnel of the same peer (conn_supersede) */
};

/*
 * Who acts on a connection now. Every hand-off from one owner to the next
 * happens under c->lock, and so does every kill: a kill either reaches the
 * current owner (the loop: re-armed writable, so a worker takes it at once;
 * the tunnel threads: woken) or stays pending in c->kill for a thread that
 * runs it, which checks c->kill at its next hand-off under the same lock
 * (conn_rearm, conn_hand_to_tunnel) and ends c instead of handing it on.
 */
enum conn_owner {
    OWNER_THREAD = 0, /* a pool worker, or the uplink thread that made it */
    OWNER_LOOP,       /* registered in epoll, waiting for an event */
    OWNER_TUNNEL,     /* its two tunnel threads (c->tun) */
    OWNER_NONE,       /* closed */
};

struct conn {
    struct job job; /* first: the pools hand back this */
    struct daemon *d;
    struct listener *l;
    atomic_int refs;
    atomic_int kill;         /* enum kill_reason; written under lock, read anywhere */
    pthread_mutex_t lock;
    int owner;               /* enum conn_owner, under lock */
    uint64_t superseded_by;  /* KILL_SUPERSEDED: the newer session, under lock */
    void (*forget)(struct conn *c); /* out of the books that hold c (sessions.c) */
    void (*wake)(struct conn *c);   /* OWNER_TUNNEL: wake its threads (tunnel.c) */
    _Atomic int state;       /* enum conn_state */
    int fd;
    uint64_t id;
    gnutls_session_t tls;
    struct sockaddr_storage addr;
    char remote[64];
    time_t since;
    _Atomic long long deadline; /* handshake or idle deadline, mono_ms() */
    bool verdict_logged;
    /* identity, set once during the handshake */
    char peer[64];
    char serial[64];
    int role;
    char issuer[32];  /* "" : our CA; else the [trust NAME] that vouched (verify.h) */
    time_t not_after; /* of its certificate */
    /* HTTP */
    struct http_reader *http;
    char *in;
    size_t in_len;
    char *out;
    size_t out_len, out_off;
    bool close_after_write;
    bool slow_pending; /* the request waiting needs the slow pool */
    atomic_ullong bytes_in, bytes_out;
    struct tunnel *tun;       /* tunnel sessions: owned by their two threads */
    int verdict;              /* enum verdict_code of the client certificate; -1: none */
    struct conn *next, *prev; /* daemon's list, under conns_lock */
};

struct source_count;
struct crl_dp;
struct trust_fetch;
struct bans;
struct pool;
struct tunnel;
struct udp_hub;
struct uplink;

struct daemon {
    struct config *cfg;
    struct pki *pki;
    pthread_mutex_t pki_lock; /* token-signing admin operations, one at a time */
    time_t started;
    int epfd;
    int wake_fd;
    int signal_fd;
    int timer_fd;
    volatile bool stopping;
    bool reload_requested;
    struct workers *slow, *io;
    struct listener mgmt;
    struct listener tunl;   /* [tunnel] listen: the hub */
    struct listener upl;    /* our uplinks (counters only, no socket) */
    struct listener estl;   /* [enroll] listen: EST, client certificate optional */
    struct listener crll;   /* [crl] listen: the CRL distribution point, plain HTTP */
    struct crl_dp *crl_dp;  /* what crll serves (crl-http.c) */
    struct trust_fetch *tf; /* [trust NAME] issuers' CRLs (trust-fetch.c); NULL: none */
    struct pool *pool;      /* [tunnel] pool (pool.h); NULL: none */
    struct udp_hub *udp;    /* [tunnel] udp (udp.h); NULL: none */
    struct uplink *uplinks;
    unsigned n_uplinks;
    pthread_mutex_t conns_lock;
    struct conn *conns;
    uint64_t next_id;
    struct source_count *sources[256]; /* under conns_lock */
    struct conn *graveyard;             /* under conns_lock; freed by the loop */
    struct bans *bans;                  /* bans.h: its own lock */
    atomic_ullong banned_total;
    pthread_mutex_t trust_lock;
    struct trustdb *trust;
    atomic_bool token_healthy;
    /* Readers: every use of a token key (handshakes, signing). Writer: the
     * recovery that starts PKCS#11 over when the token comes back. */
    pthread_rwlock_t token_lock;
    void *retired[64]; /* TLS credentials replaced by a recovery, freed at exit */
    unsigned n_retired;
    int control_fd;
    pthread_t control_thread;
    bool control_running;
    int warned_days[64]; /* expiry warnings already given, by slot */
};

/* ---- the session process (server.c) ---------------------------------- */
/* Sockets the parent made: listeners (or -1) and its end of the channel. */
struct daemon_fds {
    int mgmt, tunnel, enroll, crl, parent;
};
/* The CRL distribution point's bounds: connections, and seconds a client
 * has to send its request (docs/pki.md). */
#define CRL_MAX_SESSIONS 64
#define CRL_MAX_PER_SOURCE 8
#define CRL_IDLE_TIMEOUT 10
int daemon_run(struct config *cfg, const struct daemon_fds *fds);


/* ---- connections (conn.c) --------------------------------------------- */
void conn_run(struct job *job);
void conn_ref(struct conn *c);
void conn_unref(struct conn *c);
/* Ask the owner to end c (any thread). True when this call made c end or
 * raised the reason of a pending kill (revoked over kicked, shutdown over
 * all): the owner is then bound to act on it. False when c is closed or
 * already ending for that reason or a stronger one. */
bool conn_kill(struct conn *c, enum kill_reason why);
/* conn_kill(c, KILL_SUPERSEDED), naming the newer session. */
bool conn_supersede(struct conn *c, uint64_t by);
/* The words for a kill in logs and CLOSE frames ("superseded by session 7"). */
void conn_kill_text(struct conn *c, int kill, char *buf, size_t len);
/* Owner only: give c back to the loop, waiting for `events`. */
void conn_rearm(struct conn *c, uint32_t events);
/* The loop: take c from epoll for a worker (false: a stale event). */
bool conn_take(struct conn *c);
/* Owner only: hand c to its tunnel threads (c->tun set, threads not yet
 * started). Returns the kill pending, c staying with the caller to end it;
 * KILL_NONE: the tunnel threads own c, and a later kill wakes them. */
int conn_hand_to_tunnel(struct conn *c, void (*wake)(struct conn *c));
/* A client at c's address failed to authenticate: raise its ban score. */
void conn_auth_failed(struct conn *c);
/* Owner only: end c now (close_notify when open and polite). */
void conn_close(struct conn *c, const char *why);
/* The handshake verification callback (tls_server_opts.verify). */
int conn_verify(gnutls_session_t s);

/* ---- tunnels (tunnel.c, tunnel-hub.c; uplinks: uplink.h) ----------------- */
/* A tunnel peer passed the handshake (slow pool): plumbing, CONFIG, threads
 * (tunnel-hub.c). */
void tunnel_start_hub(struct conn *c);
/* Wake a tunnel's threads (kill, shutdown). */
void tunnel_wake(struct conn *c);
/* Add interface, address, networks and packet counts to a session object. */
void tunnel_describe(struct conn *c, struct json_object *o);
/* The address of c without the port. (The gate: gate.h.) */
void conn_ip(const struct conn *c, char *buf, size_t len);
/* Called from bury() (server.c) when the connection is freed. */
void tunnel_free(struct tunnel *t);

/* ---- API (api.c) -------------------------------------------------------- */
struct http_request;
struct api_reply {
    int status;
    char *body; /* malloc'ed */
    size_t body_len;
    const char *content_type;
    const char *extra_headers;
};
/* The routes and their handler: api.h. */

/* ---- control socket (control.c) ---------------------------------------- */
int control_start(struct daemon *d, char *err, size_t errlen);
void control_stop(struct daemon *d);

#endif
