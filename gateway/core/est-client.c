/*
 * est-client.c: the device side of RFC 7030 over HTTPS, on GnuTLS, with the
 * answer framed by http-parser (http.c's http_answer, as the CRL fetcher's).
 *
 * One request per connection ("Connection: close"): enrollment is rare and
 * a fresh handshake keeps the client simple and the server's per-connection
 * accounting (a failed code ends the connection) honest.
 */
/* SOCK_NONBLOCK/SOCK_CLOEXEC on socket(): musl and glibc declare them under
 * _GNU_SOURCE. */
#define _GNU_SOURCE
#include "est-client.h"

#include <errno.h>
#include <fcntl.h>
#include <arpa/inet.h>
#include <netdb.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>

#include "config.h"
#include "est-codec.h"
#include "fsutil.h"
#include "http.h"
#include "mono.h"
#include "p11.h"
#include "pki-gateway.h"
#include "pki.h"
#include "pki-chain.h"

#define ANSWER_MAX (1024 * 1024)
#define CA_FILE_MAX (1024 * 1024)
#define WELL_KNOWN "/.well-known/est"

#define PRIO_13 "SECURE256:+SECURE128:-VERS-ALL:+VERS-TLS1.3"
#define PRIO_12 "SECURE256:+SECURE128:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2"

int est_url_parse(const char *u, struct est_url *out, char *err, size_t errlen)
{
    const char *p, *hend, *path;
    size_t hl, pl;

    if (strncasecmp(u, "https://", 8) != 0) {
        snprintf(err, errlen, "%s: the URL must start with https://", u);
        return -EINVAL;
    }
    p = u + 8;
    path = strchr(p, '/');
    if (!path)
        path = p + strlen(p);
    if (*p == '[') {
        hend = memchr(p, ']', (size_t)(path - p));
        if (!hend) {
            snprintf(err, errlen, "%s: unclosed [ in the host", u);
            return -EINVAL;
        }
        hl = (size_t)(hend - p - 1);
        if (hl == 0 || hl >= sizeof(out->host))
            goto bad_host;
        memcpy(out->host, p + 1, hl);
        out->host[hl] = '\0';
        hend++;
    } else {
        hend = memchr(p, ':', (size_t)(path - p));
        if (!hend)
            hend = path;
        hl = (size_t)(hend - p);
        if (hl == 0 || hl >= sizeof(out->host))
            goto bad_host;
        memcpy(out->host, p, hl);
        out->host[hl] = '\0';
    }
    if (*hend == ':') {
        pl = (size_t)(path - hend - 1);
        if (pl == 0 || pl >= sizeof(out->port) || strspn(hend + 1, "0123456789") < pl) {
            snprintf(err, errlen, "%s: bad port", u);
            return -EINVAL;
        }
        memcpy(out->port, hend + 1, pl);
        out->port[pl] = '\0';
    } else if (hend != path) {
        goto bad_host;
    } else {
        snprintf(out->port, sizeof(out->port), "443");
    }
    pl = strlen(path);
    while (pl && path[pl - 1] == '/')
        pl--;
    if (pl + sizeof(WELL_KNOWN) >= sizeof(out->base) || memchr(path, '?', pl) ||
        memchr(path, '#', pl)) {
        snprintf(err, errlen, "%s: the path is too long or has a query", u);
        return -EINVAL;
    }
    if (strstr(path, WELL_KNOWN "/") || (pl >= strlen(WELL_KNOWN) &&
                                         memcmp(path + pl - strlen(WELL_KNOWN), WELL_KNOWN,
                                                strlen(WELL_KNOWN)) == 0))
        snprintf(out->base, sizeof(out->base), "%.*s", (int)pl, path);
    else
        snprintf(out->base, sizeof(out->base), "%.*s" WELL_KNOWN, (int)pl, path);
    return 0;
bad_host:
    snprintf(err, errlen, "%s: no host, or a bad one", u);
    return -EINVAL;
}

/* ---- one HTTPS exchange ----------------------------------------------------- */

struct session_ctx {
    const struct est_client_opts *o;
    bool pin_later; /* cacerts: the pin may be a CA of the answer (checked then) */
    gnutls_pcert_st *pcerts;
    unsigned n_pcerts;
    bool pin_failed;
    char got_fp[96];
};

/* The server's certificate is accepted when its SHA-256 is the pin; nothing
 * else about it is believed (a fresh device has no CA yet). */
static int verify_pin(gnutls_session_t s)
{
    struct session_ctx *ctx = gnutls_session_get_ptr(s);
    const gnutls_datum_t *raw;
    unsigned n = 0;
    unsigned char fp[32];
    unsigned char diff = 0;

    raw = gnutls_certificate_get_peers(s, &n);
    if (!raw || n == 0 || gnutls_hash_fast(GNUTLS_DIG_SHA256, raw[0].data, raw[0].size, fp) < 0)
        goto bad;
    for (size_t i = 0; i < sizeof(fp); i++)
        diff |= (unsigned char)(fp[i] ^ ctx->o->pin[i]);
    if (diff == 0)
        return 0;
    /* A root's pin: the hub sends its chain without the root, which comes
     * in the cacerts answer; est_get_cacerts checks the chain to it before
     * anything of the answer is believed. No secret is sent on this one. */
    if (ctx->pin_later)
        return 0;
    for (size_t i = 0, o = 0; i < sizeof(fp); i++)
        o += (size_t)snprintf(ctx->got_fp + o, sizeof(ctx->got_fp) - o, "%s%02X", i ? ":" : "",
                              fp[i]);
bad:
    ctx->pin_failed = true;
    return GNUTLS_E_CERTIFICATE_ERROR;
}

/* Our certificate for a server that asks: the caller keeps key and chain. */
static int retrieve_cert(gnutls_session_t s, const struct gnutls_cert_retr_st *info,
                         gnutls_pcert_st **pcert, unsigned *n, gnutls_ocsp_data_st **ocsp,
                         unsigned *n_ocsp, gnutls_privkey_t *key, unsigned *flags)
{
    struct session_ctx *ctx = gnutls_session_get_ptr(s);

    (void)info;
    *ocsp = NULL;
    *n_ocsp = 0;
    *flags = 0;
    if (!ctx->pcerts || !ctx->o->key) {
        *pcert = NULL;
        *n = 0;
        *key = NULL;
        return 0;
    }
    *pcert = ctx->pcerts;
    *n = ctx->n_pcerts;
    *key = ctx->o->key;
    return 0;
}

static int load_pcerts(const char *path, gnutls_pcert_st **out, unsigned *n_out, char *err,
                       size_t errlen)
{
    gnutls_x509_crt_t *certs = NULL;
    gnutls_pcert_st *pc = NULL;
    unsigned n = 0, np = 0;
    char *text = NULL;
    size_t len = 0;
    gnutls_datum_t d;
    int rc;

    rc = fs_read_file(path, CA_FILE_MAX, &text, &len);
    if (rc < 0) {
        snprintf(err, errlen, "cannot read certificate %s: %s", path, fs_strerror(rc));
        return rc;
    }
    d.data = (unsigned char *)text;
    d.size = (unsigned)len;
    if (gnutls_x509_crt_list_import2(&certs, &n, &d, GNUTLS_X509_FMT_PEM, 0) < 0 || n == 0) {
        snprintf(err, errlen, "%s holds no PEM certificate", path);
        rc = -EBADMSG;
        goto out;
    }
    pc = calloc(n, sizeof(*pc));
    if (!pc) {
        rc = -ENOMEM;
        goto out;
    }
    np = n;
    if (gnutls_pcert_import_x509_list(pc, certs, &np, 0) < 0) {
        snprintf(err, errlen, "%s: the certificates cannot be used", path);
        free(pc);
        pc = NULL;
        rc = -EBADMSG;
        goto out;
    }
    *out = pc;
    *n_out = np;
    rc = 0;
out:
    for (unsigned i = 0; i < n; i++)
        gnutls_x509_crt_deinit(certs[i]);
    gnutls_free(certs);
    free(text);
    return rc;
}

static void free_pcerts(gnutls_pcert_st *pc, unsigned n)
{
    for (unsigned i = 0; i < n; i++)
        gnutls_pcert_deinit(&pc[i]);
    free(pc);
}

static int tcp_connect(const struct est_url *u, long long deadline, char *err, size_t errlen)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL, *ai;
    int fd = -1, rc, saved = ECONNREFUSED;

    rc = getaddrinfo(u->host, u->port, &hints, &res);
    if (rc != 0) {
        snprintf(err, errlen, "cannot resolve %s: %s", u->host, gai_strerror(rc));
        return -EHOSTUNREACH;
    }
    for (ai = res; ai; ai = ai->ai_next) {
        struct pollfd p;
        int soerr = 0, left;
        socklen_t sl = sizeof(soerr);

        fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            saved = errno;
            continue;
        }
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0 && errno != EINPROGRESS) {
            saved = errno;
            goto next;
        }
        p.fd = fd;
        p.events = POLLOUT;
        left = (int)(deadline - mono_ms());
        if (left < 1 || poll(&p, 1, left) != 1) {
            saved = ETIMEDOUT;
            goto next;
        }
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0 || soerr) {
            saved = soerr ? soerr : errno;
            goto next;
        }
        /* Blocking from here on, with the time left as socket timeouts. */
        if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK) < 0) {
            saved = errno;
            goto next;
        }
        freeaddrinfo(res);
        return fd;
next:
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    snprintf(err, errlen, "cannot connect to %s port %s: %s", u->host, u->port,
             strerror(saved));
    return -ECONNREFUSED;
}

static void set_timeouts(int fd, long long deadline)
{
    long long left = deadline - mono_ms();
    struct timeval tv;

    if (left < 1)
        left = 1;
    tv.tv_sec = (time_t)(left / 1000);
    tv.tv_usec = (suseconds_t)(left % 1000) * 1000;
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

/* The first line of a text/plain reason, for a message. */
static void reason_of(const struct http_answer *a, char *buf, size_t len)
{
    size_t n = 0;

    buf[0] = '\0';
    if (!a->body || !a->len || (a->header[0] && !est_media_is(a->header[0], "text/plain")))
        return;
    while (n < a->len && a->body[n] != '\n' && a->body[n] != '\r' && n + 1 < len)
        n++;
    for (size_t i = 0; i < n; i++)
        buf[i] = (unsigned char)a->body[i] < 0x20 ? '?' : a->body[i];
    buf[n] = '\0';
}

/*
 * One request: method op (relative to the EST root) with an optional body
 * and Authorization; the answer in *a. On success *chain (when not NULL)
 * holds the server's certificates as it sent them.
 */
/* One TLS connection to the hub: credentials, TCP, handshake (the hub
 * judged by its CA and name, or by its pinned fingerprint). */
struct est_conn {
    struct est_url u;
    struct session_ctx ctx;
    gnutls_certificate_credentials_t cred;
    gnutls_session_t s;
    int fd;
    long long deadline;
};

static void conn_free(struct est_conn *k)
{
    if (k->s)
        gnutls_deinit(k->s);
    if (k->fd >= 0)
        close(k->fd);
    if (k->cred)
        gnutls_certificate_free_credentials(k->cred);
    free_pcerts(k->ctx.pcerts, k->ctx.n_pcerts);
}

/* The name the hub's certificate must carry: server-name, else the URL's host. */
static const char *est_want_name(const struct est_conn *k)
{
    return k->ctx.o->server_name ? k->ctx.o->server_name : k->u.host;
}

static void handshake_error(struct est_conn *k, int grc, char *err, size_t errlen)
{
    unsigned st = gnutls_session_get_verify_cert_status(k->s);
    gnutls_datum_t txt = {0};
    char why[900];

    if (k->ctx.pin_failed)
        snprintf(err, errlen,
                 "%s:%s: the hub's certificate is not the one pinned (its SHA-256 is %s)",
                 k->u.host, k->u.port, k->ctx.got_fp[0] ? k->ctx.got_fp : "unreadable");
    else if (grc == GNUTLS_E_CERTIFICATE_VERIFICATION_ERROR &&
             pki_hub_lacks_name(k->s, est_want_name(k), k->ctx.o->uplink, why, sizeof(why)))
        snprintf(err, errlen, "%s:%s: %s", k->u.host, k->u.port, why);
    else if (grc == GNUTLS_E_CERTIFICATE_VERIFICATION_ERROR &&
             gnutls_certificate_verification_status_print(st, GNUTLS_CRT_X509, &txt, 0) == 0)
        snprintf(err, errlen, "%s:%s: the hub's certificate is not trusted (%s): %s", k->u.host,
                 k->u.port, k->ctx.o->ca_path, (const char *)txt.data);
    else
        snprintf(err, errlen, "%s:%s: TLS handshake failed: %s", k->u.host, k->u.port,
                 grc == GNUTLS_E_AGAIN ? "timed out" : gnutls_strerror(grc));
    gnutls_free(txt.data);
}

static int conn_open(const struct est_client_opts *o, bool pin_later, struct est_conn *k,
                     char *err, size_t errlen)
{
    unsigned char ip[16];
    int rc, grc;

    memset(k, 0, sizeof(*k));
    k->fd = -1;
    k->ctx.o = o;
    k->ctx.pin_later = pin_later;
    k->deadline = mono_ms() + 1000LL * (o->timeout ? o->timeout : 30);
    rc = est_url_parse(o->url, &k->u, err, errlen);
    if (rc < 0)
        return rc;
    if (!o->ca_path && !o->pin && !o->n_anchors) {
        snprintf(err, errlen, "no way to trust the hub: give its CA or its fingerprint");
        return -EINVAL;
    }
    if (gnutls_certificate_allocate_credentials(&k->cred) < 0)
        return -ENOMEM;
    if (o->ca_path) {
        grc = gnutls_certificate_set_x509_trust_file(k->cred, o->ca_path, GNUTLS_X509_FMT_PEM);
        if (grc <= 0) {
            snprintf(err, errlen, "%s holds no CA certificate", o->ca_path);
            return -EBADMSG;
        }
    }
    if (o->cert_path && o->key) {
        rc = load_pcerts(o->cert_path, &k->ctx.pcerts, &k->ctx.n_pcerts, err, errlen);
        if (rc < 0)
            return rc;
    }
    gnutls_certificate_set_retrieve_function3(k->cred, retrieve_cert);
    k->fd = tcp_connect(&k->u, k->deadline, err, errlen);
    if (k->fd < 0)
        return k->fd;
    if (gnutls_init(&k->s, GNUTLS_CLIENT) < 0)
        return -ENOMEM;
    gnutls_session_set_ptr(k->s, &k->ctx);
    if (gnutls_priority_set_direct(k->s, o->tls_min == 12 ? PRIO_12 : PRIO_13, NULL) < 0 ||
        gnutls_credentials_set(k->s, GNUTLS_CRD_CERTIFICATE, k->cred) < 0) {
        snprintf(err, errlen, "cannot set up a TLS session");
        return -EINVAL;
    }
    if (inet_pton(AF_INET, est_want_name(k), ip) != 1 &&
        inet_pton(AF_INET6, est_want_name(k), ip) != 1)
        gnutls_server_name_set(k->s, GNUTLS_NAME_DNS, est_want_name(k),
                               strlen(est_want_name(k)));
    if (o->n_anchors &&
        gnutls_certificate_set_x509_trust(k->cred, (gnutls_x509_crt_t *)o->anchors,
                                          (int)o->n_anchors) < 0) {
        snprintf(err, errlen, "cannot trust the hub's CA");
        return -EINVAL;
    }
    if (o->ca_path || o->n_anchors)
        gnutls_session_set_verify_cert(k->s, est_want_name(k), 0); /* chain and name */
    else
        gnutls_session_set_verify_function(k->s, verify_pin);
    gnutls_transport_set_int(k->s, k->fd);
    set_timeouts(k->fd, k->deadline);
    gnutls_handshake_set_timeout(
        k->s, (unsigned)(k->deadline - mono_ms() > 0 ? k->deadline - mono_ms() : 1));
    do {
        grc = gnutls_handshake(k->s);
    } while (grc < 0 && !gnutls_error_is_fatal(grc) && grc != GNUTLS_E_AGAIN);
    if (grc < 0) {
        handshake_error(k, grc, err, errlen);
        return grc == GNUTLS_E_AGAIN ? -ETIMEDOUT : -ECONNREFUSED;
    }
    return 0;
}

/* The hub's chain as it sent it (caller frees with free_chain). */
static int peer_chain(struct est_conn *k, gnutls_x509_crt_t **chain, unsigned *n_chain,
                      char *err, size_t errlen)
{
    unsigned cn = 0;
    const gnutls_datum_t *raw = gnutls_certificate_get_peers(k->s, &cn);

    *chain = raw && cn ? gnutls_calloc(cn, sizeof(**chain)) : NULL;
    *n_chain = 0;
    if (raw && cn && !*chain)
        return -ENOMEM;
    for (unsigned i = 0; raw && i < cn; i++) {
        *n_chain = i + 1;
        if (gnutls_x509_crt_init(&(*chain)[i]) < 0 ||
            gnutls_x509_crt_import((*chain)[i], &raw[i], GNUTLS_X509_FMT_DER) < 0) {
            snprintf(err, errlen, "%s:%s: the hub's certificate cannot be read", k->u.host,
                     k->u.port);
            return -EBADMSG;
        }
    }
    return 0;
}

static void free_chain(gnutls_x509_crt_t **chain, unsigned *n_chain)
{
    for (unsigned i = 0; *chain && i < *n_chain; i++)
        if ((*chain)[i])
            gnutls_x509_crt_deinit((*chain)[i]);
    gnutls_free(*chain);
    *chain = NULL;
    *n_chain = 0;
}

/* The request, head and body, malloc'ed into *out: one format for all. */
static int format_request(const struct est_url *u, const char *method, const char *op,
                          const char *auth, const char *body, size_t body_len, char **out,
                          size_t *out_len)
{
#define REQ_FMT                                                                                   \
    "%s %s/%s HTTP/1.1\r\nHost: %s%s%s:%s\r\nUser-Agent: mtlsgw\r\nAccept: */*\r\n"            \
    "Connection: close\r\n%s%s%s%s\r\n"
    const char *lb = strchr(u->host, ':') ? "[" : "", *rb = *lb ? "]" : "";
    char ctype[160] = "";
    char *req;
    int n;

    if (body)
        snprintf(ctype, sizeof(ctype),
                 "Content-Type: " EST_CT_PKCS10 "\r\nContent-Transfer-Encoding: base64\r\n"
                 "Content-Length: %zu\r\n",
                 body_len);
#define REQ_ARGS                                                                                  \
    method, u->base, op, lb, u->host, rb, u->port, auth ? "Authorization: " : "",               \
        auth ? auth : "", auth ? "\r\n" : "", ctype
    n = snprintf(NULL, 0, REQ_FMT, REQ_ARGS);
    if (n < 0)
        return -EINVAL;
    req = malloc((size_t)n + 1 + body_len);
    if (!req)
        return -ENOMEM;
    snprintf(req, (size_t)n + 1, REQ_FMT, REQ_ARGS);
#undef REQ_ARGS
#undef REQ_FMT
    if (body)
        memcpy(req + n, body, body_len);
    *out = req;
    *out_len = (size_t)n + (body ? body_len : 0);
    return 0;
}

static int send_all(struct est_conn *k, const char *req, size_t len, char *err, size_t errlen)
{
    size_t sent = 0;

    while (sent < len) {
        ssize_t w = gnutls_record_send(k->s, req + sent, len - sent);
        if (w == GNUTLS_E_INTERRUPTED || (w == GNUTLS_E_AGAIN && mono_ms() < k->deadline))
            continue;
        if (w < 0) {
            snprintf(err, errlen, "%s:%s: sending the request failed: %s", k->u.host,
                     k->u.port, w == GNUTLS_E_AGAIN ? "timed out" : gnutls_strerror((int)w));
            return -EIO;
        }
        sent += (size_t)w;
    }
    return 0;
}

static int read_answer(struct est_conn *k, struct http_answer *a, char *err, size_t errlen)
{
    char buf[16384];
    const char *why = "";
    bool ended = false;
    int rc = 0;

    while (!a->complete && rc == 0) {
        ssize_t r;
        /* Checked on every read: a hub that trickles a byte now and then
         * never lets a single receive time out. */
        if (mono_ms() >= k->deadline) {
            snprintf(err, errlen, "%s:%s: reading the answer failed: timed out", k->u.host,
                     k->u.port);
            return -ETIMEDOUT;
        }
        r = gnutls_record_recv(k->s, buf, sizeof(buf));
        /* GNUTLS_E_AGAIN also follows a post-handshake message (a TLS 1.3
         * session ticket) with no data yet: only the deadline ends the wait. */
        if (r == GNUTLS_E_INTERRUPTED || r == GNUTLS_E_REHANDSHAKE ||
            (r == GNUTLS_E_AGAIN && mono_ms() < k->deadline))
            continue;
        if (r < 0 && r != GNUTLS_E_PREMATURE_TERMINATION) {
            snprintf(err, errlen, "%s:%s: reading the answer failed: %s", k->u.host, k->u.port,
                     r == GNUTLS_E_AGAIN ? "timed out" : gnutls_strerror((int)r));
            return r == GNUTLS_E_AGAIN ? -ETIMEDOUT : -EIO;
        }
        /* The end of a body without a length is the end of the stream. */
        ended = r <= 0;
        rc = http_answer_feed(a, buf, ended ? 0 : (size_t)r, &why);
    }
    if (rc < 0 && ended)
        snprintf(err, errlen, "%s:%s: the connection ended before a whole answer", k->u.host,
                 k->u.port);
    else if (rc == -EFBIG)
        snprintf(err, errlen, "%s:%s: the answer is larger than 1 MiB", k->u.host, k->u.port);
    else if (rc < 0)
        snprintf(err, errlen, "%s:%s: the answer is not HTTP: %s", k->u.host, k->u.port, why);
    return rc < 0 ? -EPROTO : 0;
}

/* One request and its answer over a new connection; the hub's chain too
 * when asked for. */
static int exchange(const struct est_client_opts *o, bool pin_later, const char *method,
                    const char *op, const char *auth, const char *body, size_t body_len,
                    struct http_answer *a, gnutls_x509_crt_t **chain, unsigned *n_chain, char *err,
                    size_t errlen)
{
    static const char *const names[] = {"content-type"};
    struct est_conn k;
    char *req = NULL;
    size_t req_len = 0;
    int rc;

    if (http_answer_init(a, ANSWER_MAX, names, 1) < 0) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    rc = conn_open(o, pin_later, &k, err, errlen);
    if (rc == 0 && chain)
        rc = peer_chain(&k, chain, n_chain, err, errlen);
    if (rc == 0)
        rc = format_request(&k.u, method, op, auth, body, body_len, &req, &req_len);
    if (rc == 0)
        rc = send_all(&k, req, req_len, err, errlen);
    if (rc == 0)
        rc = read_answer(&k, a, err, errlen);
    if (rc == 0)
        gnutls_bye(k.s, GNUTLS_SHUT_WR);
    if (rc < 0 && chain && *chain)
        free_chain(chain, n_chain);
    if (rc < 0)
        http_answer_clear(a);
    free(req);
    conn_free(&k);
    return rc;
}

/* A 200 with certs-only PKCS#7, or err saying what came instead. */
static int certs_answer(const char *what, const struct http_answer *a, gnutls_x509_crt_t **certs,
                        size_t *n, char *err, size_t errlen)
{
    char reason[400];

    if (a->status != 200) {
        reason_of(a, reason, sizeof(reason));
        if (a->status == 202)
            snprintf(err, errlen, "%s: the hub answered 202 (request pending); this client "
                                  "does not wait for manual approval", what);
        else
            snprintf(err, errlen, "%s: the hub refused (HTTP %d)%s%s", what, a->status,
                     reason[0] ? ": " : "", reason);
        return a->status == 401 || a->status == 403 ? -EACCES : -EPROTO;
    }
    if (a->header[0] && !est_media_is(a->header[0], "application/pkcs7-mime")) {
        snprintf(err, errlen, "%s: the answer is %.100s, not application/pkcs7-mime", what,
                 a->header[0]);
        return -EPROTO;
    }
    if (!a->body || est_certs_decode(a->body, a->len, certs, n) < 0) {
        snprintf(err, errlen, "%s: the answer is not a certs-only PKCS#7 in base64", what);
        return -EBADMSG;
    }
    return 0;
}

static void free_certs(gnutls_x509_crt_t *certs, size_t n)
{
    for (size_t i = 0; i < n; i++)
        gnutls_x509_crt_deinit(certs[i]);
    free(certs);
}

static bool fp_is(gnutls_x509_crt_t crt, const unsigned char *pin)
{
    unsigned char fp[32];
    size_t len = sizeof(fp);
    unsigned char diff = 0;

    if (gnutls_x509_crt_get_fingerprint(crt, GNUTLS_DIG_SHA256, fp, &len) < 0 || len != 32)
        return false;
    for (size_t i = 0; i < sizeof(fp); i++)
        diff |= (unsigned char)(fp[i] ^ pin[i]);
    return diff == 0;
}

/*
 * The pin was not the hub's own certificate (verify_pin let the handshake
 * through for cacerts alone): it must be a CA of the answer, the root, and
 * the hub's chain (with the answer's intermediates) must verify to it alone,
 * for the hub's name, as with a CA file.
 */
static int pinned_root_check(const struct est_client_opts *o, gnutls_x509_crt_t *chain,
                             unsigned n_chain, gnutls_x509_crt_t *got, size_t n_got, char *err,
                             size_t errlen)
{
    gnutls_x509_trust_list_t tl = NULL;
    gnutls_x509_crt_t *path = NULL, anchor = NULL;
    struct est_url u;
    unsigned status = 0, n_path = 0;
    int rc;

    if (fp_is(chain[0], o->pin))
        return 0;
    for (size_t i = 0; i < n_got && !anchor; i++)
        if (fp_is(got[i], o->pin))
            anchor = got[i];
    rc = est_url_parse(o->url, &u, err, errlen);
    if (rc < 0)
        return rc;
    if (!anchor) {
        char fp[96];
        est_cert_fingerprint(chain[0], true, fp, sizeof(fp));
        snprintf(err, errlen,
                 "%s:%s: the hub's certificate is not the one pinned (its SHA-256 is %s), nor "
                 "is any CA certificate it sent (cacerts)",
                 u.host, u.port, fp);
        return -EBADMSG;
    }
    path = calloc(n_chain + n_got, sizeof(*path));
    if (!path || gnutls_x509_trust_list_init(&tl, 0) < 0) {
        free(path);
        return -ENOMEM;
    }
    for (unsigned i = 0; i < n_chain; i++)
        path[n_path++] = chain[i];
    for (size_t i = 0; i < n_got; i++)
        if (got[i] != anchor)
            path[n_path++] = got[i];
    rc = gnutls_x509_trust_list_add_cas(tl, &anchor, 1, 0);
    if (rc >= 0)
        rc = gnutls_x509_trust_list_verify_crt2(tl, path, n_path, NULL, 0, 0, &status, NULL);
    if (rc < 0 || status) {
        snprintf(err, errlen, "cacerts: the hub's certificate does not chain to the pinned root");
        rc = -EBADMSG;
    } else if (!gnutls_x509_crt_check_hostname(chain[0],
                                               o->server_name ? o->server_name : u.host)) {
        snprintf(err, errlen, "cacerts: the hub's certificate chains to the pinned root but "
                              "does not name %s (its --host at init)",
                 o->server_name ? o->server_name : u.host);
        rc = -EBADMSG;
    } else {
        rc = 0;
    }
    gnutls_x509_trust_list_deinit(tl, 0);
    free(path);
    return rc;
}

int est_get_cacerts(const struct est_client_opts *o, gnutls_x509_crt_t **certs, size_t *n,
                    char *err, size_t errlen)
{
    struct http_answer a = {0};
    gnutls_x509_crt_t *chain = NULL, *got = NULL;
    unsigned n_chain = 0, status = 0;
    size_t n_got = 0;
    int rc;

    rc = exchange(o, o->pin != NULL, "GET", "cacerts", NULL, NULL, 0, &a, &chain, &n_chain, err,
                  errlen);
    if (rc < 0)
        return rc;
    rc = certs_answer("cacerts", &a, &got, &n_got, err, errlen);
    if (rc < 0)
        goto out;
    /* Pinned, the hub's certificate was believed alone: what it sends as its
     * CAs must at least be what its own certificate chains to. */
    if (o->pin) {
        if (!n_chain || gnutls_x509_crt_list_verify(chain, n_chain, got, (unsigned)n_got, NULL,
                                                    0, 0, &status) < 0 || status != 0) {
            snprintf(err, errlen, "cacerts: the hub's own certificate does not chain to the CA "
                                  "certificates it sent");
            rc = -EBADMSG;
            goto out;
        }
        rc = pinned_root_check(o, chain, n_chain, got, n_got, err, errlen);
        if (rc < 0)
            goto out;
    }
    *certs = got;
    *n = n_got;
    got = NULL;
    n_got = 0;
out:
    free_certs(got, n_got);
    for (unsigned i = 0; i < n_chain; i++)
        gnutls_x509_crt_deinit(chain[i]);
    gnutls_free(chain);
    http_answer_clear(&a);
    return rc;
}

/* The certificate of the answer that carries the CSR's key. */
static int pick_ours(gnutls_x509_crq_t crq, gnutls_x509_crt_t *certs, size_t n,
                     gnutls_x509_crt_t *out, char *err, size_t errlen)
{
    unsigned char want[64], have[64];
    size_t wl = sizeof(want);

    if (gnutls_x509_crq_get_key_id(crq, 0, want, &wl) < 0) {
        snprintf(err, errlen, "the CSR's key cannot be read");
        return -EINVAL;
    }
    for (size_t i = 0; i < n; i++) {
        size_t hl = sizeof(have);
        if (gnutls_x509_crt_get_key_id(certs[i], 0, have, &hl) == 0 && hl == wl &&
            memcmp(have, want, wl) == 0) {
            *out = certs[i];
            certs[i] = NULL;
            return 0;
        }
    }
    snprintf(err, errlen, "the hub's answer holds no certificate for our key");
    return -EBADMSG;
}

static int enroll(const struct est_client_opts *o, const char *op, const char *auth,
                  gnutls_x509_crq_t crq, gnutls_x509_crt_t *out, char *err, size_t errlen)
{
    struct http_answer a = {0};
    gnutls_x509_crt_t *got = NULL;
    size_t n_got = 0;
    char *b64 = NULL;
    size_t len = 0;
    int rc;

    rc = est_csr_encode(crq, &b64, &len);
    if (rc < 0) {
        snprintf(err, errlen, "%s: cannot encode the CSR", op);
        return rc;
    }
    rc = exchange(o, false, "POST", op, auth, b64, len, &a, NULL, NULL, err, errlen);
    if (rc < 0)
        goto out;
    rc = certs_answer(op, &a, &got, &n_got, err, errlen);
    if (rc < 0)
        goto out;
    rc = pick_ours(crq, got, n_got, out, err, errlen);
out:
    if (got)
        for (size_t i = 0; i < n_got; i++)
            if (got[i])
                gnutls_x509_crt_deinit(got[i]);
    free(got);
    free(b64);
    http_answer_clear(&a);
    return rc;
}

int est_simpleenroll(const struct est_client_opts *o, const char *user, const char *code,
                     gnutls_x509_crq_t crq, gnutls_x509_crt_t *out, char *err, size_t errlen)
{
    char *auth = NULL;
    int rc;

    rc = est_basic_make(user, code, &auth);
    if (rc < 0) {
        snprintf(err, errlen, "simpleenroll: out of memory");
        return rc;
    }
    rc = enroll(o, "simpleenroll", auth, crq, out, err, errlen);
    gnutls_memset(auth, 0, strlen(auth));
    free(auth);
    return rc;
}

int est_simplereenroll(const struct est_client_opts *o, gnutls_x509_crq_t crq,
                       gnutls_x509_crt_t *out, char *err, size_t errlen)
{
    if (!o->cert_path || !o->key) {
        snprintf(err, errlen, "simplereenroll needs our current certificate and its key");
        return -EINVAL;
    }
    return enroll(o, "simplereenroll", NULL, crq, out, err, errlen);
}

/* ---- uplinks ------------------------------------------------------------------- */

int64_t est_renew_due(int64_t nb, int64_t na, uint32_t rnd)
{
    int64_t life = na > nb ? na - nb : 0;

    return nb + life * 2 / 3 + (int64_t)(rnd % (uint64_t)(life / 10 + 1));
}

int est_uplink_paths(const struct config *cfg, const struct cfg_uplink *up, char **cert,
                     char **ca)
{
    char *c = up->cert ? strdup(up->cert) : fs_join(cfg->pki.dir, "device.crt");
    char *a = up->ca ? strdup(up->ca) : fs_join(cfg->pki.dir, "hub-ca.crt");

    if (!c || !a) {
        free(c);
        free(a);
        return -ENOMEM;
    }
    *cert = c;
    *ca = a;
    return 0;
}

/* The CA certificates of a PEM file (caller frees). */
static int read_cas(const char *path, gnutls_x509_crt_t **cas, unsigned *n, char *err,
                    size_t errlen)
{
    char *text = NULL;
    size_t len = 0;
    gnutls_datum_t d;
    int rc = fs_read_file(path, CA_FILE_MAX, &text, &len);

    if (rc < 0) {
        snprintf(err, errlen, "cannot read %s: %s", path, fs_strerror(rc));
        return rc;
    }
    d.data = (unsigned char *)text;
    d.size = (unsigned)len;
    rc = gnutls_x509_crt_list_import2(cas, n, &d, GNUTLS_X509_FMT_PEM, 0);
    free(text);
    if (rc < 0 || *n == 0) {
        snprintf(err, errlen, "%s holds no PEM certificate", path);
        return -EBADMSG;
    }
    return 0;
}

/* A CSR for the same key and subject as cert (RFC 7030 4.2.2: the hub
 * checks both); *key is the uplink's key on the token. */
static int renew_csr(struct p11_token *tok, const struct cfg_uplink *up, const char *keyref,
                     const char *cert, gnutls_privkey_t *key, gnutls_x509_crq_t *crq,
                     char *err, size_t errlen)
{
    gnutls_x509_crt_t cur = NULL;
    gnutls_datum_t cn = {0};
    char why[384] = "";
    size_t sz = 0;
    int rc;

    rc = pki_read_cert(cert, &cur, why, sizeof(why));
    if (rc < 0) {
        snprintf(err, errlen, "[uplink %s] %s", up->name, why);
        goto out;
    }
    if (gnutls_x509_crt_get_dn_by_oid(cur, GNUTLS_OID_X520_COMMON_NAME, 0, 0, NULL, &sz) !=
            GNUTLS_E_SHORT_MEMORY_BUFFER ||
        !(cn.data = gnutls_malloc(sz + 1)) ||
        gnutls_x509_crt_get_dn_by_oid(cur, GNUTLS_OID_X520_COMMON_NAME, 0, 0, cn.data,
                                      &sz) < 0) {
        snprintf(err, errlen, "[uplink %s] %s has no readable common name", up->name, cert);
        rc = -EBADMSG;
        goto out;
    }
    cn.size = (unsigned)sz;
    cn.data[sz] = '\0';
    rc = p11_key_load(tok, keyref, key);
    if (rc < 0) {
        snprintf(err, errlen, "[uplink %s] key '%s': %s", up->name, keyref,
                 p11_token_error(tok));
        goto out;
    }
    rc = p11_csr_make(*key, (const char *)cn.data, crq);
    if (rc < 0)
        snprintf(err, errlen, "[uplink %s] cannot sign a CSR with key '%s': %s", up->name,
                 keyref, p11_token_error(tok));
out:
    gnutls_free(cn.data);
    if (cur)
        gnutls_x509_crt_deinit(cur);
    return rc;
}

/*
 * The hub's CA certificates now (RFC 7030 4.1.3), over a connection that
 * the ones in hub-ca.crt verified: during the hub's CA rollover they add
 * its new CA, which issues the renewed certificate, and after it they drop
 * the old one. Only for hub-ca.crt itself: a `ca = FILE` of the
 * administrator's is left to the administrator. Best effort: NULL, 0 when
 * the hub does not answer (the renewal then judges by hub-ca.crt alone).
 */
static void renew_fetch_cas(const struct est_client_opts *o, const struct cfg_uplink *up,
                            gnutls_x509_crt_t **cas, size_t *n)
{
    struct est_client_opts anon = *o;
    char why[384];

    *cas = NULL;
    *n = 0;
    if (up->ca)
        return;
    anon.cert_path = NULL;
    anon.key = NULL;
    if (est_get_cacerts(&anon, cas, n, why, sizeof(why)) < 0) {
        *cas = NULL;
        *n = 0;
    }
}

/* hub-ca.crt := the fetched CA certificates, when fresh chains to them. */
static int renew_store_cas(const struct cfg_uplink *up, const char *ca, gnutls_x509_crt_t fresh,
                           gnutls_x509_crt_t *got, size_t n_got, char *err, size_t errlen)
{
    unsigned status = 0;
    char *all = NULL, *grown;
    size_t len = 0;
    int rc = 0;

    if (!n_got || gnutls_x509_crt_list_verify(&fresh, 1, got, (unsigned)n_got, NULL, 0, 0,
                                              &status) < 0 || status != 0)
        return 0;
    for (size_t i = 0; rc == 0 && i < n_got; i++) {
        gnutls_datum_t pem = {0};
        if (pki_cert_pem(got[i], &pem) < 0 || !(grown = realloc(all, len + pem.size))) {
            rc = -ENOMEM;
        } else {
            all = grown;
            memcpy(all + len, pem.data, pem.size);
            len += pem.size;
        }
        gnutls_free(pem.data);
    }
    if (rc == 0)
        rc = fs_write_atomic(ca, all, len, 0644);
    if (rc < 0)
        snprintf(err, errlen, "[uplink %s] cannot write %s: %s", up->name, ca, fs_strerror(rc));
    free(all);
    return rc;
}

/* Whether path (leaf first) verifies against the anchors cas. */
static bool chains_to(gnutls_x509_crt_t *path, unsigned n_path, gnutls_x509_crt_t *cas,
                      unsigned n_cas)
{
    gnutls_x509_trust_list_t tl = NULL;
    unsigned status = 0;
    bool ok = false;

    if (gnutls_x509_trust_list_init(&tl, 0) < 0)
        return false;
    if (gnutls_x509_trust_list_add_cas(tl, cas, n_cas, 0) >= 0 &&
        gnutls_x509_trust_list_verify_crt2(tl, path, n_path, NULL, 0, 0, &status, NULL) >= 0 &&
        status == 0)
        ok = true;
    gnutls_x509_trust_list_deinit(tl, 0); /* 0: the CAs stay the caller's */
    return ok;
}

/* Believe nothing the answer says about itself: fresh must chain to the
 * hub's CA certificates in ca (or those its cacerts gave, got: both CAs
 * during the hub's CA rollover), through the intermediates the old
 * certificate file carried after it (a hub under an organization's root,
 * docs/pki.md), and certify key. */
static int renew_check_answer(const struct cfg_uplink *up, const char *keyref,
                              gnutls_privkey_t key, gnutls_x509_crt_t fresh,
                              gnutls_x509_crt_t *inter, unsigned n_inter, const char *ca,
                              gnutls_x509_crt_t *got, size_t n_got, char *err, size_t errlen)
{
    gnutls_x509_crt_t *path = NULL;
    gnutls_x509_crt_t *cas = NULL;
    gnutls_pubkey_t pub = NULL;
    unsigned n_cas = 0;
    unsigned char k1[64], k2[64];
    size_t l1 = sizeof(k1), l2 = sizeof(k2);
    char why[384] = "";
    int rc;

    rc = read_cas(ca, &cas, &n_cas, why, sizeof(why));
    if (rc < 0) {
        snprintf(err, errlen, "[uplink %s] %s", up->name, why);
        goto out;
    }
    path = calloc(n_inter + 1, sizeof(*path));
    if (!path) {
        rc = -ENOMEM;
        goto out;
    }
    path[0] = fresh;
    if (n_inter)
        memcpy(path + 1, inter, n_inter * sizeof(*path));
    if (!chains_to(path, n_inter + 1, cas, n_cas) &&
        (!n_got || !chains_to(path, n_inter + 1, got, (unsigned)n_got))) {
        snprintf(err, errlen, "[uplink %s] the renewed certificate does not chain to %s%s",
                 up->name, ca, n_got ? " nor to the hub's cacerts" : "");
        rc = -EBADMSG;
        goto out;
    }
    if (gnutls_pubkey_init(&pub) < 0 || gnutls_pubkey_import_privkey(pub, key, 0, 0) < 0 ||
        gnutls_pubkey_get_key_id(pub, 0, k1, &l1) < 0 ||
        gnutls_x509_crt_get_key_id(fresh, 0, k2, &l2) < 0 || l1 != l2 || memcmp(k1, k2, l1)) {
        snprintf(err, errlen, "[uplink %s] the renewed certificate is not for key '%s'",
                 up->name, keyref);
        rc = -EBADMSG;
    }
out:
    free(path);
    for (unsigned i = 0; i < n_cas; i++)
        gnutls_x509_crt_deinit(cas[i]);
    gnutls_free(cas);
    if (pub)
        gnutls_pubkey_deinit(pub);
    return rc;
}

int est_renew_uplink(const struct config *cfg, struct p11_token *tok,
                     const struct cfg_uplink *up, char *err, size_t errlen)
{
    struct est_client_opts o = {0};
    gnutls_privkey_t key = NULL;
    gnutls_x509_crt_t fresh = NULL, *got = NULL, *old = NULL;
    gnutls_x509_crq_t crq = NULL;
    gnutls_datum_t pem = {0};
    unsigned n_old = 0;
    char *cert = NULL, *ca = NULL, why[384] = "";
    size_t n_got = 0;
    const char *keyref = up->key ? up->key : PKI_LABEL_DEVICE;
    int rc;

    if (!up->enroll) {
        snprintf(err, errlen, "[uplink %s] has no enroll URL (enroll = https://HUB:PORT)",
                 up->name);
        return -EINVAL;
    }
    rc = est_uplink_paths(cfg, up, &cert, &ca);
    if (rc < 0)
        return rc;
    /* The hub supersedes the old certificate: know first that the new one,
     * and the hub's CAs that come with it, can be stored. */
    for (int i = 0; i < 2; i++) {
        const char *path = i ? ca : cert;
        if (path && (rc = fs_state_check(path)) < 0) {
            snprintf(err, errlen, "[uplink %s] cannot write %s: %s (nothing asked of %s)",
                     up->name, path, fs_strerror(rc), up->enroll);
            goto out;
        }
    }
    rc = renew_csr(tok, up, keyref, cert, &key, &crq, err, errlen);
    if (rc < 0)
        goto out;
    o.url = up->enroll;
    /* The hub's certificate names what the tunnel dials (server-name), which
     * the enroll URL's host may not be (an address, a NAT's outside). */
    o.server_name = up->server_name;
    o.uplink = up->name;
    o.ca_path = ca;
    o.cert_path = cert;
    o.key = key;
    o.tls_min = cfg->mgmt.tls_min;
    o.timeout = 30;
    /* Before the renewal: the current certificate is superseded after it. */
    renew_fetch_cas(&o, up, &got, &n_got);
    rc = est_simplereenroll(&o, crq, &fresh, why, sizeof(why));
    if (rc < 0) {
        snprintf(err, errlen, "[uplink %s] %s: %s", up->name, up->enroll, why);
        goto out;
    }
    /* The old file's intermediates stay behind the new certificate. */
    if (read_cas(cert, &old, &n_old, why, sizeof(why)) < 0)
        n_old = 0;
    rc = renew_check_answer(up, keyref, key, fresh, n_old > 1 ? old + 1 : NULL,
                            n_old > 1 ? n_old - 1 : 0, ca, got, n_got, err, errlen);
    if (rc < 0)
        goto out;
    if (n_old) {
        gnutls_x509_crt_deinit(old[0]);
        old[0] = fresh; /* borrowed for the encoding only */
    }
    rc = n_old ? pki_certs_pem(old, n_old, &pem) : pki_cert_pem(fresh, &pem);
    if (n_old)
        old[0] = NULL;
    if (rc < 0) {
        snprintf(err, errlen, "[uplink %s] cannot encode the renewed certificate", up->name);
        rc = -ENOMEM;
        goto out;
    }
    rc = fs_write_atomic(cert, pem.data, pem.size, 0644);
    if (rc < 0)
        snprintf(err, errlen, "[uplink %s] cannot write %s: %s", up->name, cert, fs_strerror(rc));
    if (rc == 0)
        rc = renew_store_cas(up, ca, fresh, got, n_got, err, errlen);
out:
    free_certs(got, n_got);
    for (unsigned i = 0; i < n_old; i++)
        if (old[i])
            gnutls_x509_crt_deinit(old[i]);
    gnutls_free(old);
    gnutls_free(pem.data);
    if (crq)
        gnutls_x509_crq_deinit(crq);
    if (fresh)
        gnutls_x509_crt_deinit(fresh);
    if (key)
        gnutls_privkey_deinit(key);
    free(cert);
    free(ca);
    return rc;
}
