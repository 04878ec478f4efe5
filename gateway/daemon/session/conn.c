/*
 * conn.c: one connection, driven by whichever pool thread owns it: the TLS
 * handshake (with the verdict taken in the handshake), then HTTP requests.
 */
#include "daemon.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gnutls/x509.h>

#include "http.h"
#include "config.h"
#include "fault.h"
#include "log.h"
#include "mono.h"
#include "refusals.h"
#include "registry.h"
#include "bans.h"
#include "trust.h"
#include "service.h"
#include "tls.h"
#include "trustdb.h"

#define IN_BUF 16384

/*
 * Kills and ownership (daemon.h, docs/mtlsgwd.md): c->owner and c->kill
 * change only under c->lock, so a kill and a hand-off never cross unseen.
 */

void conn_rearm(struct conn *c, uint32_t events)
{
    struct epoll_event ev = {.events = events | EPOLLONESHOT | EPOLLRDHUP, .data.ptr = c};

    pthread_mutex_lock(&c->lock);
    if (atomic_load(&c->kill) != KILL_NONE)
        ev.events |= EPOLLOUT; /* a kill arrived while we owned it: come back now */
    c->owner = OWNER_LOOP;
    if (epoll_ctl(c->d->epfd, EPOLL_CTL_MOD, c->fd, &ev) < 0)
        log_err("epoll_ctl: %s", strerror(errno));
    pthread_mutex_unlock(&c->lock);
}

bool conn_take(struct conn *c)
{
    bool mine;

    pthread_mutex_lock(&c->lock);
    mine = c->owner == OWNER_LOOP && atomic_load(&c->state) != CONN_CLOSED;
    if (mine)
        c->owner = OWNER_THREAD;
    pthread_mutex_unlock(&c->lock);
    return mine;
}

int conn_hand_to_tunnel(struct conn *c, void (*wake)(struct conn *c))
{
    int k;

    pthread_mutex_lock(&c->lock);
    k = atomic_load(&c->kill);
    if (k == KILL_NONE) {
        c->owner = OWNER_TUNNEL;
        c->wake = wake;
    }
    pthread_mutex_unlock(&c->lock);
    return k;
}

/* A stronger reason replaces a weaker pending one: a revocation over an idle
 * kill must still close the peer's gate opening and be counted. */
static int kill_rank(int k)
{
    switch (k) {
    case KILL_NONE: return 0;
    case KILL_TIMEOUT:
    case KILL_IDLE: return 1;
    case KILL_KICKED:
    case KILL_SUPERSEDED: return 2;
    case KILL_REVOKED: return 3;
    default: return 4; /* KILL_SHUTDOWN */
    }
}

/* The caller keeps c alive (conns_lock with c on the list, or a reference). */
static bool kill_as(struct conn *c, enum kill_reason why, uint64_t by)
{
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLONESHOT, .data.ptr = c};
    int owner;

    pthread_mutex_lock(&c->lock);
    if (c->owner == OWNER_NONE || atomic_load(&c->state) == CONN_CLOSED ||
        kill_rank((int)why) <= kill_rank(atomic_load(&c->kill))) {
        pthread_mutex_unlock(&c->lock);
        return false;
    }
    if (why == KILL_SUPERSEDED)
        c->superseded_by = by;
    atomic_store(&c->kill, (int)why);
    owner = c->owner;
    /* The loop owns it: writable is always ready, a worker takes it at once.
     * A thread owns it: that thread sees c->kill at its next hand-off. */
    if (owner == OWNER_LOOP && epoll_ctl(c->d->epfd, EPOLL_CTL_MOD, c->fd, &ev) < 0)
        log_err("epoll_ctl: %s", strerror(errno));
    pthread_mutex_unlock(&c->lock);
    if (owner == OWNER_TUNNEL)
        c->wake(c);
    return true;
}

bool conn_kill(struct conn *c, enum kill_reason why)
{
    return kill_as(c, why, 0);
}

bool conn_supersede(struct conn *c, uint64_t by)
{
    return kill_as(c, KILL_SUPERSEDED, by);
}

void conn_kill_text(struct conn *c, int kill, char *buf, size_t len)
{
    switch (kill) {
    case KILL_TIMEOUT: snprintf(buf, len, "handshake timeout"); break;
    case KILL_IDLE: snprintf(buf, len, "idle timeout"); break;
    case KILL_REVOKED: snprintf(buf, len, "no longer trusted"); break;
    case KILL_KICKED: snprintf(buf, len, "kicked"); break;
    case KILL_SHUTDOWN: snprintf(buf, len, "daemon stopping"); break;
    case KILL_SUPERSEDED: {
        uint64_t by;
        pthread_mutex_lock(&c->lock);
        by = c->superseded_by;
        pthread_mutex_unlock(&c->lock);
        snprintf(buf, len, "superseded by session %llu", (unsigned long long)by);
        break;
    }
    default: snprintf(buf, len, "closed"); break;
    }
}

/* A peer-scoped log line: name, serial, address on every line about a peer. */
#define PLOG(fn, c, fmt, ...)                                                                     \
    fn("%s peer %s serial %s from %s: " fmt, (c)->l->name, (c)->peer[0] ? (c)->peer : "?",     \
       (c)->serial[0] ? (c)->serial : "?", (c)->remote, ##__VA_ARGS__)

void conn_ref(struct conn *c)
{
    atomic_fetch_add(&c->refs, 1);
}

void conn_unref(struct conn *c)
{
    struct daemon *d;

    if (atomic_fetch_sub(&c->refs, 1) != 1)
        return;
    d = c->d;
    /* Freed by the loop after the current epoll batch: a stale event in that
     * batch may still point here (see daemon.h). */
    pthread_mutex_lock(&d->conns_lock);
    c->next = d->graveyard;
    d->graveyard = c;
    pthread_mutex_unlock(&d->conns_lock);
}

void conn_close(struct conn *c, const char *why)
{
    int st = atomic_load(&c->state);

    if (st == CONN_CLOSED)
        return;
    if (st == CONN_OPEN && atomic_load(&c->kill) != KILL_TIMEOUT && why && c->tls) {
        /* Best effort on a non-blocking socket: a close_notify, never a wait. */
        gnutls_bye(c->tls, GNUTLS_SHUT_WR);
    }
    pthread_mutex_lock(&c->lock);
    atomic_store(&c->state, CONN_CLOSED);
    c->owner = OWNER_NONE; /* from here no kill changes it (the gate's book closes openings) */
    epoll_ctl(c->d->epfd, EPOLL_CTL_DEL, c->fd, NULL);
    pthread_mutex_unlock(&c->lock);
    shutdown(c->fd, SHUT_RDWR);
    if (st == CONN_OPEN) {
        atomic_fetch_sub(&c->l->sessions, 1);
        if (why) /* a plain HTTP request (the CRL DP) is no peer's session */
            PLOG((c->tls ? log_info : log_debug), c,
                 "session %llu closed: %s (in %llu, out %llu bytes)", (unsigned long long)c->id,
                 why, atomic_load(&c->bytes_in), atomic_load(&c->bytes_out));
    } else {
        atomic_fetch_sub(&c->l->handshaking, 1);
    }
    http_reader_free(c->http);
    c->http = NULL;
    c->forget(c);
    conn_unref(c);
}

/* ---- the peer's address ------------------------------------------------- */

void conn_ip(const struct conn *c, char *buf, size_t len)
{
    if (c->addr.ss_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)&c->addr)->sin_addr, buf, (socklen_t)len);
    else
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)&c->addr)->sin6_addr, buf,
                  (socklen_t)len);
}

/* ---- bans (bans.c): a source that keeps failing authentication ----------- */

void conn_auth_failed(struct conn *c)
{
    struct daemon *d = c->d;
    unsigned score = bans_fail(d->bans, &c->addr, d->cfg->daemon.ban_threshold,
                               d->cfg->daemon.ban_time, mono_ms());
    char ip[64];

    if (score) {
        conn_ip(c, ip, sizeof(ip));
        /* Once per ban, not once per attempt. */
        log_warn("%s: %s banned for %u s after %u failed authentications (mtlsgw unban %s "
                 "lifts it)",
                 c->l->name, ip, d->cfg->daemon.ban_time, score, ip);
    }
}

/* ---- the verdict, during the handshake ------------------------------------ */

static void count_verdict(struct conn *c, enum verdict_code v)
{
    atomic_fetch_add(&c->l->handshakes[v], 1);
    if (v != VERDICT_OK)
        refusals_note((int)v, (int64_t)time(NULL)); /* the page's chart */
}

/* resumed: the chain was verified when the ticket was issued (verify.h). */
static int judge(struct conn *c, gnutls_session_t s, bool resumed, struct verdict *v)
{
    unsigned n = 0;
    const gnutls_datum_t *raw = gnutls_certificate_get_peers(s, &n);
    struct trustdb *t;
    int rc;

    /* The verdict when the certificate cannot even be parsed. */
    memset(v, 0, sizeof(*v));
    v->code = VERDICT_BAD_CERT;
    snprintf(v->reason, sizeof(v->reason), "its certificate is not X.509 DER that can be read");
    if (!raw)
        n = 0;
    t = daemon_trust(c->d);
    if (resumed)
        rc = trustdb_verify_resumed(t, n ? &raw[0] : NULL, time(NULL), c->l->allowed_roles, v);
    else
        rc = trustdb_verify_peer(t, raw, n, time(NULL), c->l->allowed_roles, v);
    /* A certificate that does not parse is the peer's fault, not ours: a
     * refusal with that reason (the verdict set above), not an internal error. */
    if (rc == -EBADMSG)
        rc = 0;
    if (rc == 0 && v->code == VERDICT_OK) {
        /* A sibling issuer's peer may have no registry entry (verify.h). */
        snprintf(c->peer, sizeof(c->peer), "%s", v->name);
        c->role = v->role;
        snprintf(c->issuer, sizeof(c->issuer), "%s", v->issuer);
        c->not_after = v->not_after;
    }
    trustdb_unref(t);
    if (rc == 0)
        snprintf(c->serial, sizeof(c->serial), "%s", v->serial);
    return rc;
}

int conn_verify(gnutls_session_t s)
{
    struct conn *c = gnutls_session_get_ptr(s);
    struct verdict v;

    if (c->l->svc->verify == SVC_CERT_FOR_HANDLER) {
        /* EST: a certificate is optional and never ends the handshake; the
         * handler answers a bad one with a reason (RFC 7030 3.3.2). */
        unsigned n = 0;
        if (!gnutls_certificate_get_peers(s, &n) || n == 0)
            return 0;
        if (judge(c, s, false, &v) == 0) {
            c->verdict = (int)v.code;
            if (v.code != VERDICT_OK)
                log_info("enroll peer ? serial %s from %s: certificate not accepted (%s): %s",
                         v.serial, c->remote, verdict_name(v.code), v.reason);
        }
        c->verdict_logged = true;
        return 0;
    }

    if (judge(c, s, false, &v) < 0) {
        PLOG(log_err, c, "refused: internal error while verifying");
        c->verdict_logged = true;
        return GNUTLS_E_CERTIFICATE_ERROR;
    }
    count_verdict(c, v.code);
    c->verdict_logged = true;
    c->verdict = (int)v.code; /* for the alert (refusal_alert) */
    if (v.code != VERDICT_OK) {
        conn_auth_failed(c);
        /* One line per trust decision, with the reason. */
        log_info("%s peer ? serial %s from %s: refused (%s): %s [%s]", c->l->name,
                 v.serial[0] ? v.serial : "?", c->remote, verdict_name(v.code), v.reason,
                 v.subject);
        return GNUTLS_E_CERTIFICATE_ERROR;
    }
    /* Between the verdict and the session counting as open (a revocation
     * landing here must still end it; tests/adversarial/kill-race.sh). */
    fault_point("handshake-verdict");
    return 0;
}

/* Owner only: end c for the kill pending on it. */
static void end_killed(struct conn *c, int k)
{
    char why[64];

    if (atomic_load(&c->state) == CONN_HANDSHAKE && k == KILL_TIMEOUT) {
        atomic_fetch_add(&c->l->handshake_errors, 1);
        log_info("%s peer ? from %s: dropped: no handshake within %u s", c->l->name, c->remote,
                 c->l->handshake_timeout);
        conn_close(c, NULL);
        return;
    }
    conn_kill_text(c, k, why, sizeof(why));
    conn_close(c, why);
}

/* ---- handshake ---------------------------------------------------------- */

/*
 * The alert a refused peer gets, so that its client can say why (RFC 8446
 * 6.2; curl and openssl print the alert's name). No certificate: TLS 1.3's
 * certificate_required, TLS 1.2's handshake_failure (RFC 5246 7.4.6).
 */
static gnutls_alert_description_t verdict_alert(int verdict, bool tls13)
{
    switch (verdict) {
    case VERDICT_NO_CERT:
        return tls13 ? GNUTLS_A_CERTIFICATE_REQUIRED : GNUTLS_A_HANDSHAKE_FAILURE;
    case VERDICT_UNKNOWN_ISSUER:
        return GNUTLS_A_UNKNOWN_CA;
    case VERDICT_EXPIRED:
    case VERDICT_NOT_YET_VALID: /* "expired or is not currently valid" */
        return GNUTLS_A_CERTIFICATE_EXPIRED;
    case VERDICT_REVOKED:
        return GNUTLS_A_CERTIFICATE_REVOKED;
    case VERDICT_NOT_ENROLLED:      /* a good certificate, but not one of ours to admit */
    case VERDICT_ROLE_NOT_ALLOWED:  /* a role this listener does not serve */
        return GNUTLS_A_ACCESS_DENIED;
    default: /* bad certificate, bad signature, no clientAuth, role mismatch */
        return GNUTLS_A_BAD_CERTIFICATE;
    }
}

/*
 * A handshake that failed with rc: tell the client why with a fatal alert
 * (GnuTLS sends none by itself), then read what it still sent, so that the
 * close is a FIN and not a reset that could overtake the alert. Best
 * effort: the socket is non-blocking, and an alert it has no room for is
 * dropped.
 */
static void refusal_alert(struct conn *c, int rc)
{
    bool tls13 = gnutls_protocol_get_version(c->tls) == GNUTLS_TLS1_3;
    char junk[4096];
    int r;

    if (c->verdict > VERDICT_OK && c->l->svc->verify != SVC_CERT_FOR_HANDLER) /* in HTTP */
        r = gnutls_alert_send(c->tls, GNUTLS_AL_FATAL, verdict_alert(c->verdict, tls13));
    else if (rc == GNUTLS_E_NO_CERTIFICATE_FOUND || rc == GNUTLS_E_CERTIFICATE_REQUIRED)
        r = gnutls_alert_send(c->tls, GNUTLS_AL_FATAL, verdict_alert(VERDICT_NO_CERT, tls13));
    else
        r = gnutls_alert_send_appropriate(c->tls, rc); /* none for a broken socket */
    if (r < 0)
        log_debug("%s peer ? from %s: no alert sent: %s", c->l->name, c->remote,
                  gnutls_strerror(r));
    for (int i = 0; i < 4 && recv(c->fd, junk, sizeof(junk), MSG_DONTWAIT) > 0; i++)
        ;
}

static void handshake_step(struct conn *c)
{
    int rc, k;
    char desc[96];
    const char *untrusted;

    /* The server's signature happens in here: the token must stay put. */
    pthread_rwlock_rdlock(&c->d->token_lock);
    do {
        rc = gnutls_handshake(c->tls);
    } while (rc == GNUTLS_E_INTERRUPTED);
    pthread_rwlock_unlock(&c->d->token_lock);
    if (rc == GNUTLS_E_AGAIN) {
        conn_rearm(c, gnutls_record_get_direction(c->tls) ? EPOLLOUT : EPOLLIN);
        return;
    }
    if (rc < 0) {
        if (!c->verdict_logged) {
            if (rc == GNUTLS_E_NO_CERTIFICATE_FOUND || rc == GNUTLS_E_CERTIFICATE_REQUIRED) {
                count_verdict(c, VERDICT_NO_CERT);
                conn_auth_failed(c);
            } else
                atomic_fetch_add(&c->l->handshake_errors, 1);
            log_info("%s peer ? from %s: refused: %s", c->l->name, c->remote,
                     rc == GNUTLS_E_NO_CERTIFICATE_FOUND || rc == GNUTLS_E_CERTIFICATE_REQUIRED
                         ? "no client certificate"
                         : gnutls_strerror(rc));
        }
        if (rc == GNUTLS_E_PKCS11_ERROR || rc == GNUTLS_E_PK_SIGN_FAILED ||
            rc == GNUTLS_E_PKCS11_TOKEN_ERROR || rc == GNUTLS_E_PKCS11_DEVICE_ERROR ||
            rc == GNUTLS_E_PKCS11_DATA_ERROR || rc == GNUTLS_E_PKCS11_KEY_ERROR ||
            rc == GNUTLS_E_PKCS11_SESSION_ERROR) {
            if (atomic_exchange(&c->d->token_healthy, false))
                log_err("token %s: the server key cannot sign (%s): new handshakes fail "
                        "until the token answers again; open sessions go on",
                        c->d->cfg->token.uri, gnutls_strerror(rc));
        }
        refusal_alert(c, rc);
        conn_close(c, NULL);
        return;
    }
    /* A resumed session skips the certificate callback: judge it again. */
    if (gnutls_session_is_resumed(c->tls) && c->l->svc->verify == SVC_CERT_FOR_HANDLER) {
        conn_verify(c->tls);
    } else if (gnutls_session_is_resumed(c->tls)) {
        struct verdict v;
        if (judge(c, c->tls, true, &v) < 0 || v.code != VERDICT_OK) {
            count_verdict(c, v.code);
            conn_auth_failed(c);
            log_info("%s peer ? serial %s from %s: resumption refused (%s): %s", c->l->name,
                     v.serial, c->remote, verdict_name(v.code), v.reason);
            c->verdict = (int)v.code;
            refusal_alert(c, GNUTLS_E_CERTIFICATE_ERROR);
            conn_close(c, NULL);
            return;
        }
        count_verdict(c, VERDICT_OK);
    }
    atomic_fetch_sub(&c->l->handshaking, 1);
    atomic_fetch_add(&c->l->sessions, 1);
    atomic_store(&c->state, CONN_OPEN);
    atomic_store(&c->deadline, mono_ms() + 1000LL * c->l->idle_timeout);
    /* Judged again by the trust in force now that the session counts as
     * open: a revocation after the verdict found it still handshaking, and
     * the sweep passes over those (daemon_reload_trust). Either this sees
     * the new trust, or the sweep, which swaps trust before it walks the
     * sessions, sees this one open and kills it. */
    if (c->l->svc->verify == SVC_CERT_REQUIRED && (untrusted = daemon_untrusted(c->d, c))) {
        PLOG(log_info, c, "refused: trust ended during the handshake (%s)", untrusted);
        conn_close(c, NULL);
        return;
    }
    tls_describe(c->tls, desc, sizeof(desc));
    PLOG(log_info, c, "accepted as %s, session %llu (%s)%s%s", role_name((enum peer_role)c->role),
         (unsigned long long)c->id, desc, c->issuer[0] ? ", vouched for by issuer " : "",
         c->issuer);
    /* A kill that came during the handshake (its deadline, a kick, shutdown). */
    if ((k = atomic_load(&c->kill)) != KILL_NONE) {
        end_killed(c, k);
        return;
    }
    if (c->l->svc->on_open && c->l->svc->on_open(c))
        return; /* taken over (a tunnel) */
    if (http_reader_new(c->l->max_body, &c->http) < 0) {
        conn_close(c, "out of memory");
        return;
    }
    conn_rearm(c, EPOLLIN);
}

/* ---- plain HTTP (SVC_PLAIN: the CRL distribution point) ------------------ */

/* The socket's answers in GnuTLS' terms, so that one loop serves both. */
static ssize_t plain_result(ssize_t n)
{
    if (n >= 0)
        return n;
    if (errno == EAGAIN || errno == EWOULDBLOCK)
        return GNUTLS_E_AGAIN;
    return errno == EINTR ? GNUTLS_E_INTERRUPTED : GNUTLS_E_PULL_ERROR;
}

static ssize_t io_send(struct conn *c, const void *buf, size_t len)
{
    if (c->tls)
        return gnutls_record_send(c->tls, buf, len);
    return plain_result(send(c->fd, buf, len, MSG_NOSIGNAL));
}

static ssize_t io_recv(struct conn *c, void *buf, size_t len)
{
    if (c->tls)
        return gnutls_record_recv(c->tls, buf, len);
    return plain_result(recv(c->fd, buf, len, 0));
}

static void open_step(struct conn *c);

/* No handshake and no client to judge: open at once, read the request. */
static void plain_open(struct conn *c)
{
    int k;

    atomic_fetch_sub(&c->l->handshaking, 1);
    atomic_fetch_add(&c->l->sessions, 1);
    atomic_store(&c->state, CONN_OPEN);
    if ((k = atomic_load(&c->kill)) != KILL_NONE) {
        end_killed(c, k);
        return;
    }
    if (http_reader_new(c->l->max_body, &c->http) < 0) {
        conn_close(c, "out of memory");
        return;
    }
    open_step(c);
}

/* ---- HTTP ---------------------------------------------------------------- */

/* Send what is queued; 1 when all went, 0 when the socket is full, <0 on error. */
static int flush_out(struct conn *c)
{
    while (c->out_off < c->out_len) {
        ssize_t n = io_send(c, c->out + c->out_off, c->out_len - c->out_off);
        if (n == GNUTLS_E_AGAIN)
            return 0;
        if (n == GNUTLS_E_INTERRUPTED)
            continue;
        if (n < 0)
            return -EIO;
        c->out_off += (size_t)n;
        atomic_fetch_add(&c->bytes_out, (unsigned long long)n);
        atomic_fetch_add(&c->l->bytes_out, (unsigned long long)n);
    }
    free(c->out);
    c->out = NULL;
    c->out_len = c->out_off = 0;
    return 1;
}

static void queue_reply(struct conn *c, struct api_reply *r, bool keep_alive)
{
    char *buf = NULL;
    size_t len = 0;

    if (http_response(r->status, r->content_type, r->body ? r->body : "",
                      r->body ? r->body_len : 0, keep_alive, r->extra_headers, &buf, &len) < 0) {
        c->close_after_write = true;
        free(r->body);
        return;
    }
    free(r->body);
    r->body = NULL;
    /* Requests are answered one at a time, so the queue is empty here. */
    free(c->out);
    c->out = buf;
    c->out_len = len;
    c->out_off = 0;
    if (!keep_alive)
        c->close_after_write = true;
}

static void reply_error(struct conn *c, int status, const char *msg)
{
    /* EST answers errors in text/plain (docs/est.md), the API in JSON. */
    bool est = c->l->svc->errors == SVC_ERRORS_TEXT;
    struct api_reply r = {.status = status,
                          .content_type = est ? "text/plain; charset=utf-8" : "application/json"};
    char body[256];
    int n = snprintf(body, sizeof(body), est ? "%s\n" : "{\"error\":\"%s\"}\n", msg);

    r.body = strdup(body);
    r.body_len = r.body ? (size_t)n : 0;
    queue_reply(c, &r, false);
}

/* Answer the complete request in c->http. */
static void serve_request(struct conn *c)
{
    const struct http_request *req = http_reader_request(c->http);
    struct api_reply r = {0};

    c->l->svc->handle(c->d, c, req, &r);
    PLOG(log_debug, c, "%s %s -> %d", req->method_name, req->path, r.status);
    queue_reply(c, &r, req->keep_alive);
    /* HEAD: the head of the GET answer, its Content-Length included, and
     * no body (RFC 9110 9.3.2). */
    for (size_t i = 0; req->method == HTTP_M_HEAD && c->out && i + 4 <= c->out_len; i++)
        if (memcmp(c->out + i, "\r\n\r\n", 4) == 0) {
            c->out_len = i + 4;
            break;
        }
    http_reader_next(c->http);
}

/* Parse what is buffered. Returns 1 when a request was answered, 0 when more
 * input is needed, and leaves slow requests for the slow pool. */
static int process_input(struct conn *c)
{
    int status = 0;
    size_t used;

    if (c->in_len == 0 && !http_reader_request(c->http))
        return 0;
    used = http_reader_feed(c->http, c->in, c->in_len, &status);
    memmove(c->in, c->in + used, c->in_len - used);
    c->in_len -= used;
    if (status == 0)
        return 0;
    if (status != 200) {
        PLOG(log_info, c, "bad HTTP request: %d %s", status, http_reason(status));
        reply_error(c, status,
                    status == 413 ? "request body too large (max-body)" : http_reason(status));
        return 1;
    }
    if (c->l->svc->is_slow(http_reader_request(c->http)) && !c->slow_pending) {
        c->slow_pending = true;
        return 2;
    }
    c->slow_pending = false;
    serve_request(c);
    return 1;
}

/* Send the queued answer. True when the caller may go on reading; false
 * when c was handed back to the loop (socket full) or closed. */
static bool answer_sent(struct conn *c)
{
    int rc = flush_out(c);

    if (rc < 0) {
        conn_close(c, "write failed");
        return false;
    }
    if (rc == 0) {
        conn_rearm(c, EPOLLOUT);
        return false;
    }
    if (c->close_after_write) {
        conn_close(c, "answered, connection: close");
        return false;
    }
    return true;
}

static void open_step(struct conn *c)
{
    int rc;

    atomic_store(&c->deadline, mono_ms() + 1000LL * c->l->idle_timeout);
    if (c->out && !answer_sent(c))
        return;
    if (!c->in && !(c->in = malloc(IN_BUF))) {
        conn_close(c, "out of memory");
        return;
    }
    for (;;) {
        ssize_t n;
        int k = atomic_load(&c->kill);
        if (k != KILL_NONE) {
            /* A client that keeps the socket busy never gives c back to the
             * loop: look for a kill on every round. */
            end_killed(c, k);
            return;
        }
        rc = process_input(c);
        if (rc == 2) {
            /* Token work: hand the connection to the slow pool as it is. */
            workers_submit(c->d->slow, &c->job);
            return;
        }
        if (rc == 1) {
            if (!answer_sent(c))
                return;
            continue;
        }
        if (c->in_len == IN_BUF) {
            reply_error(c, 431, "request head too large");
            continue;
        }
        n = io_recv(c, c->in + c->in_len, IN_BUF - c->in_len);
        if (n == GNUTLS_E_AGAIN)
            break;
        if (n == GNUTLS_E_INTERRUPTED)
            continue;
        if (n == GNUTLS_E_REHANDSHAKE) {
            /* Renegotiation is refused (RFC 5746 clients accept the alert). */
            gnutls_alert_send(c->tls, GNUTLS_AL_WARNING, GNUTLS_A_NO_RENEGOTIATION);
            continue;
        }
        if (n == 0) {
            conn_close(c, "closed by peer");
            return;
        }
        if (n < 0) {
            conn_close(c, gnutls_strerror((int)n));
            return;
        }
        c->in_len += (size_t)n;
        atomic_fetch_add(&c->bytes_in, (unsigned long long)n);
        atomic_fetch_add(&c->l->bytes_in, (unsigned long long)n);
    }
    /* Idle: give the input buffer back (most sessions idle most of the time). */
    if (c->in_len == 0 && !http_reader_busy(c->http)) {
        free(c->in);
        c->in = NULL;
    }
    conn_rearm(c, EPOLLIN);
}

void conn_run(struct job *job)
{
    struct conn *c = (struct conn *)job;
    int k = atomic_load(&c->kill);

    if (k != KILL_NONE) {
        end_killed(c, k);
        return;
    }
    if (atomic_load(&c->state) == CONN_HANDSHAKE && !c->tls)
        plain_open(c);
    else if (atomic_load(&c->state) == CONN_HANDSHAKE)
        handshake_step(c);
    else if (atomic_load(&c->state) == CONN_OPEN)
        open_step(c);
}
