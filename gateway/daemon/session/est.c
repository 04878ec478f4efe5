/*
 * est.c: the EST handlers (RFC 7030) of the [enroll] listener.
 *
 *   GET  cacerts          the CA certificates, certs-only PKCS#7 in base64
 *   POST simpleenroll     a new device with an invite (HTTP Basic: peer name
 *                         and one-time code) sends its CSR
 *   POST simplereenroll   an enrolled peer, authenticated by its current
 *                         certificate in the handshake, renews
 *   GET  csrattrs         204: no attributes wanted
 *
 * The listener asks for a client certificate but never fails the handshake
 * on one (conn.c); c->verdict says what it was worth, and only
 * simplereenroll needs it. Errors are 4xx with a text/plain reason.
 */
#include "est.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gnutls/abstract.h>
#include <gnutls/x509.h>

#include "api-codec.h"
#include "config.h"
#include "daemon.h"
#include "est-codec.h"
#include "fsutil.h"
#include "http.h"
#include "fault.h"
#include "invite.h"
#include "log.h"
#include "pki-rollover.h"
#include "pki.h"
#include "pki-chain.h"
#include "registry.h"
#include "sessions.h"
#include "tls.h"
#include "verify.h"

#define CA_MAX_SIZE (1024 * 1024)
#define CRED_MAX 128

#define HDR_B64 "Content-Transfer-Encoding: base64\r\n"
#define HDR_CHALLENGE "WWW-Authenticate: Basic realm=\"mtlsgw enroll\"\r\n"

enum est_op { OP_NONE = 0, OP_CACERTS, OP_SIMPLEENROLL, OP_SIMPLEREENROLL, OP_CSRATTRS };

static enum est_op est_op(const char *path)
{
    static const struct {
        const char *name;
        enum est_op op;
    } ops[] = {
        {"cacerts", OP_CACERTS},
        {"simpleenroll", OP_SIMPLEENROLL},
        {"simplereenroll", OP_SIMPLEREENROLL},
        {"csrattrs", OP_CSRATTRS},
    };
    size_t n = strlen(EST_PREFIX);

    if (!path || strncmp(path, EST_PREFIX, n) != 0)
        return OP_NONE;
    for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++)
        if (strcmp(path + n, ops[i].name) == 0)
            return ops[i].op;
    return OP_NONE;
}

bool est_is_slow(const struct http_request *req)
{
    enum est_op op = est_op(req->path);

    return req->method == HTTP_M_POST && (op == OP_SIMPLEENROLL || op == OP_SIMPLEREENROLL);
}

__attribute__((format(printf, 3, 4))) static void text(struct api_reply *rep, int status,
                                                       const char *fmt, ...)
{
    char buf[768];
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(buf, sizeof(buf) - 1, fmt, ap);
    va_end(ap);
    if (n < 0)
        n = 0;
    if ((size_t)n > sizeof(buf) - 2)
        n = (int)sizeof(buf) - 2;
    buf[n++] = '\n';
    buf[n] = '\0';
    rep->status = status;
    rep->content_type = "text/plain; charset=utf-8";
    rep->body = strdup(buf);
    rep->body_len = rep->body ? (size_t)n : 0;
}

static void certs_reply(struct api_reply *rep, const gnutls_x509_crt_t *certs, size_t n)
{
    char *b64 = NULL;
    size_t len = 0;

    if (est_certs_encode(certs, n, &b64, &len) < 0) {
        text(rep, 500, "cannot encode the PKCS#7 answer");
        return;
    }
    rep->status = 200;
    rep->content_type = EST_CT_PKCS7;
    rep->extra_headers = HDR_B64;
    rep->body = b64;
    rep->body_len = len;
}

/* A failed proof of an invite: count it against the address (the listener
 * refuses it for ban-time once it reaches ban-threshold, logged once per
 * ban) and end the connection, so every guess pays for a new handshake. */
static void strike(struct conn *c)
{
    conn_auth_failed(c);
    c->close_after_write = true;
}

/* The root and the intermediates (RFC 7030 4.1.3: "the current root CA
 * certificate" and the chain to it): a device then pins the root alone.
 * During a CA rollover both anchors and the cross certificates too. */
static void get_cacerts(struct daemon *d, struct api_reply *rep)
{
    gnutls_x509_crt_t *certs = NULL;
    size_t n = 0;
    char err[512] = "";

    if (pki_cacerts_bundle(d->pki, &certs, &n, err, sizeof(err)) < 0) {
        log_err("enroll: cacerts: %s", err);
        text(rep, 500, "the CA certificate cannot be read");
    } else {
        certs_reply(rep, certs, (unsigned)n);
    }
    pki_free_certs(certs, n);
}

/* The CSR of a POST, or a 4xx answer in rep. */
static int read_csr(const struct http_request *req, gnutls_x509_crq_t *crq,
                    gnutls_pubkey_t *pub, struct api_reply *rep)
{
    char err[256] = "";

    if (req->content_type && !est_media_is(req->content_type, EST_CT_PKCS10)) {
        text(rep, 415, "Content-Type must be application/pkcs10 (got %.80s)",
             req->content_type);
        return -EINVAL;
    }
    if (est_csr_decode(req->body, req->body_len, crq, err, sizeof(err)) < 0) {
        text(rep, 400, "CSR: %s", err);
        return -EBADMSG;
    }
    if (gnutls_pubkey_init(pub) < 0 || gnutls_pubkey_import_x509_crq(*pub, *crq, 0) < 0) {
        text(rep, 400, "CSR: its public key cannot be read");
        return -EBADMSG;
    }
    return 0;
}

struct consume_ctx {
    const char *dir, *name, *code, *from;
};

/* Under the pki dir lock, between issuing and recording: the invite is
 * spent in the same critical section that records the peer. */
static int consume(void *ctx, gnutls_x509_crt_t crt, char *err, size_t errlen)
{
    struct consume_ctx *cc = ctx;
    char serial[64];

    verify_serial_hex(crt, serial, sizeof(serial));
    return invite_consume_locked(cc->dir, cc->name, cc->code, time(NULL), cc->from, serial,
                                 err, errlen);
}

static void simpleenroll(struct daemon *d, struct conn *c, const struct http_request *req,
                         struct api_reply *rep)
{
    char user[CRED_MAX], code[CRED_MAX], ip[64], err[512] = "", actor[160], serial[64];
    struct invite *inv = NULL;
    gnutls_x509_crq_t crq = NULL;
    gnutls_pubkey_t pub = NULL;
    gnutls_x509_crt_t crt = NULL;
    struct pki_enroll_req er = {0};
    struct consume_ctx cc;
    int rc;

    conn_ip(c, ip, sizeof(ip));
    if (!req->authorization) {
        rep->extra_headers = HDR_CHALLENGE;
        text(rep, 401,
             "simpleenroll needs an invite: HTTP Basic with the peer name as user and the "
             "invite code as password");
        return;
    }
    if (est_basic_parse(req->authorization, user, sizeof(user), code, sizeof(code)) < 0) {
        rep->extra_headers = HDR_CHALLENGE;
        text(rep, 401, "Authorization is not HTTP Basic with a peer name and an invite code");
        strike(c);
        log_warn("enroll: from %s: simpleenroll refused: malformed Authorization", ip);
        return;
    }
    rc = invite_check(d->pki->dir, user, code, time(NULL), &inv, err, sizeof(err));
    if (rc < 0) {
        /* Wrong, spent and expired codes all count: only the right code
         * learns which of the last two it is. */
        text(rep, rc == -EACCES ? 401 : 403, "%s", err);
        if (rc == -EACCES)
            rep->extra_headers = HDR_CHALLENGE;
        if (rc == -EACCES || rc == -EALREADY || rc == -ETIMEDOUT)
            strike(c);
        log_warn("enroll: from %s: simpleenroll for '%.63s' refused: %s", ip, user, err);
        goto out;
    }
    if (read_csr(req, &crq, &pub, rep) < 0) {
        log_info("enroll: from %s: simpleenroll for '%s': %.*s", ip, user,
                 (int)(rep->body_len ? rep->body_len - 1 : 0), rep->body ? rep->body : "");
        goto out;
    }
    snprintf(actor, sizeof(actor), "est invite from=%s", ip);
    cc.dir = d->pki->dir;
    cc.name = inv->name;
    cc.code = code;
    cc.from = ip;
    er.name = inv->name;
    er.role = inv->role;
    er.key = pub;
    er.networks = inv->networks;
    er.n_networks = inv->n_networks;
    /* The administrator said --allow-default, or not, when making the
     * invite (mtlsgw invite checks the networks then); overlaps with the
     * peers enrolled since are still refused. */
    er.allow_default = true;
    er.days = inv->days ? inv->days : d->cfg->pki.peer_days;
    er.actor = actor;
    er.before_commit = consume;
    er.ctx = &cc;
    pthread_mutex_lock(&d->pki_lock);
    pthread_rwlock_rdlock(&d->token_lock);
    rc = pki_enroll(d->pki, &er, &crt, err, sizeof(err));
    pthread_rwlock_unlock(&d->token_lock);
    pthread_mutex_unlock(&d->pki_lock);
    if (rc < 0) {
        log_warn("enroll: from %s: simpleenroll for '%s' refused: %s", ip, inv->name, err);
        text(rep, api_errno_status(API_OP_EST, rc), "%s", err);
        goto out;
    }
    if (daemon_reload_trust(d, err, sizeof(err)) < 0)
        log_err("enroll: reload after enrolling %s: %s", inv->name, err);
    verify_serial_hex(crt, serial, sizeof(serial));
    log_info("enroll: from %s: enrolled %s as %s with an invite, serial %s", ip, inv->name,
             role_name((enum peer_role)inv->role), serial);
    certs_reply(rep, &crt, 1);
out:
    gnutls_memset(code, 0, sizeof(code));
    if (crt)
        gnutls_x509_crt_deinit(crt);
    if (pub)
        gnutls_pubkey_deinit(pub);
    if (crq)
        gnutls_x509_crq_deinit(crq);
    invite_free(inv);
}

/* The subject of the CSR must be the certificate's (RFC 7030 4.2.2). */
static bool same_subject(gnutls_session_t s, gnutls_x509_crq_t crq, char *have, size_t hlen,
                         char *want, size_t wlen)
{
    gnutls_x509_crt_t *chain = NULL;
    unsigned n = 0;
    gnutls_datum_t a = {0}, b = {0};
    bool same = false;

    snprintf(have, hlen, "?");
    snprintf(want, wlen, "?");
    if (tls_peer_chain(s, &chain, &n) < 0 || n == 0)
        goto out;
    if (gnutls_x509_crt_get_dn3(chain[0], &a, 0) < 0)
        goto out;
    snprintf(want, wlen, "%s", (const char *)a.data);
    if (gnutls_x509_crq_get_dn3(crq, &b, 0) < 0)
        goto out;
    snprintf(have, hlen, "%s", (const char *)b.data);
    same = a.size == b.size && memcmp(a.data, b.data, a.size) == 0;
out:
    gnutls_free(a.data);
    gnutls_free(b.data);
    verify_free_chain(chain, n);
    return same;
}

static void simplereenroll(struct daemon *d, struct conn *c, const struct http_request *req,
                           struct api_reply *rep)
{
    char ip[64], err[512] = "", actor[320], serial[64], have[256], want[256];
    gnutls_x509_crq_t crq = NULL;
    gnutls_pubkey_t pub = NULL;
    gnutls_x509_crt_t crt = NULL;
    int rc;

    conn_ip(c, ip, sizeof(ip));
    if (c->verdict < 0) {
        text(rep, 403, "simplereenroll needs the current certificate of an enrolled peer in "
                       "the TLS handshake");
        log_info("enroll: from %s: simplereenroll refused: no client certificate", ip);
        return;
    }
    if (c->verdict != VERDICT_OK) {
        text(rep, 403, "your certificate (serial %s) is not accepted: %s", c->serial,
             verdict_name((enum verdict_code)c->verdict));
        log_warn("enroll: from %s: simplereenroll with serial %s refused: %s", ip, c->serial,
                 verdict_name((enum verdict_code)c->verdict));
        strike(c);
        return;
    }
    if (read_csr(req, &crq, &pub, rep) < 0) {
        log_info("enroll peer %s serial %s from %s: simplereenroll: %.*s", c->peer, c->serial,
                 ip, (int)(rep->body_len ? rep->body_len - 1 : 0), rep->body ? rep->body : "");
        goto out;
    }
    if (!same_subject(c->tls, crq, have, sizeof(have), want, sizeof(want))) {
        text(rep, 400, "CSR subject '%.200s' is not the certificate's '%.200s' (RFC 7030 4.2.2)",
             have, want);
        log_info("enroll peer %s serial %s from %s: simplereenroll refused: CSR subject %s",
                 c->peer, c->serial, ip, have);
        goto out;
    }
    snprintf(actor, sizeof(actor), "est reenroll peer=%s serial=%s from=%s", c->peer,
             c->serial, ip);
    /* The handshake's verdict is old by now: pki_renew judges the serial
     * again under the pki lock (a revocation in between wins). */
    fault_point("est-reenroll");
    pthread_mutex_lock(&d->pki_lock);
    pthread_rwlock_rdlock(&d->token_lock);
    rc = pki_renew(d->pki, c->serial, pub, actor, &crt, err, sizeof(err));
    pthread_rwlock_unlock(&d->token_lock);
    pthread_mutex_unlock(&d->pki_lock);
    if (rc < 0) {
        log_warn("enroll peer %s serial %s from %s: simplereenroll refused: %s", c->peer,
                 c->serial, ip, err);
        text(rep, api_errno_status(API_OP_EST, rc), "%s", err);
        goto out;
    }
    verify_serial_hex(crt, serial, sizeof(serial));
    log_info("enroll peer %s serial %s from %s: renewed, new serial %s", c->peer, c->serial, ip,
             serial);
    if (daemon_reload_trust(d, err, sizeof(err)) < 0)
        log_err("enroll: reload after renewing %s: %s", c->peer, err);
    certs_reply(rep, &crt, 1);
out:
    if (crt)
        gnutls_x509_crt_deinit(crt);
    if (pub)
        gnutls_pubkey_deinit(pub);
    if (crq)
        gnutls_x509_crq_deinit(crq);
}

void est_handle(struct daemon *d, struct conn *c, const struct http_request *req,
                struct api_reply *rep)
{
    enum est_op op = est_op(req->path);
    bool post = op == OP_SIMPLEENROLL || op == OP_SIMPLEREENROLL;
    bool ok_method = req->method == (post ? HTTP_M_POST : HTTP_M_GET);

    if (op == OP_NONE) {
        text(rep, 404, "no such EST resource; try " EST_PREFIX "cacerts, simpleenroll, "
                       "simplereenroll or csrattrs");
        return;
    }
    if (!ok_method) {
        rep->extra_headers = post ? "Allow: POST\r\n" : "Allow: GET\r\n";
        text(rep, 405, "%s needs %s", req->path, post ? "POST" : "GET");
        return;
    }
    switch (op) {
    case OP_CACERTS:
        get_cacerts(d, rep);
        break;
    case OP_CSRATTRS:
        /* RFC 7030 4.5.2: no attributes wanted. */
        rep->status = 204;
        break;
    case OP_SIMPLEENROLL:
        simpleenroll(d, c, req, rep);
        break;
    case OP_SIMPLEREENROLL:
        simplereenroll(d, c, req, rep);
        break;
    case OP_NONE:
        break;
    }
}
