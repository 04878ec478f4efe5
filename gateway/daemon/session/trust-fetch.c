/*
 * trust-fetch.c: sibling issuers' CRLs ([trust NAME], trust-fetch.h).
 *
 * One thread fetches each issuer's crl-url every `refresh` seconds (a
 * conditional GET: If-None-Match with the last ETag), with a deadline, and
 * checks what it got: a CRL (DER or PEM) signed by that issuer's CA, not
 * older than the one it has (a CRL DP is plain HTTP: someone on the path
 * could replay an old CRL, but not a new one, and not one with a lower
 * number). An issuer is fresh while the CRL it holds was signed
 * (thisUpdate) within max-stale and its nextUpdate has not passed
 * (verify_crl_fresh): from signed data, so a path attacker who answers 304
 * or replays that CRL holds a revocation back for max-stale at most; the
 * issuer re-signs its CRL more often than that ([crl] resign). Otherwise
 * its peers are refused. Each change of what the issuers revoke or of
 * their freshness reloads trust (daemon_reload_trust), which ends the
 * sessions no longer admitted, as a local revocation does.
 */
#include "trust-fetch.h"

#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <gnutls/gnutls.h>
#include <json-c/json.h>

#include "config.h"
#include "daemon.h"
#include "fsutil.h"
#include "http.h"
#include "log.h"
#include "mono.h"
#include "pki-chain.h"
#include "pki.h"
#include "trustdb.h"
#include "verify.h"

/* A sibling's CRL: GnuTLS's import is quadratic in the entries (40,000,
 * 1.5 MB: 32 s), so a bigger one is refused and the issuer goes stale (fail
 * closed). 2 MiB is ~50,000 entries; roam.c holds the parent to the same. */
#define FETCH_MAX (2u * 1024 * 1024)
#define FETCH_TIMEOUT_MS 10000

/*
 * The root's CRL for one issuer (docs/pki.md "The root's CRL at the hubs"):
 * a compromised appliance is cut off by revoking its intermediate at the
 * root, so the issuer's peers are refused while the root's CRL lists the
 * issuer's CA, and while no root CRL within its nextUpdate is held (the
 * root is offline and re-signs by hand: not max-stale).
 */
struct tf_root {
    char *url;              /* root-crl-url, or the http:// CDP of the CA; NULL: none */
    gnutls_x509_crt_t root; /* the anchor of ca.crt that issued the CA (borrowed); NULL */
    char ca_serial[64];     /* the issuer's CA's serial (verify_serial_hex) */
    /* under tf->lock */
    bool have;              /* a root CRL taken */
    bool ca_revoked;        /* it lists ca_serial */
    struct verify_crl_num num;
    uint64_t number;
    time_t next_update;
    char etag[128];
    char error[200];
};

struct tf_issuer {
    const struct cfg_trust *cfg;
    gnutls_x509_crt_t ca;
    gnutls_datum_t ca_der;
    /* under tf->lock */
    char (*revoked)[64];
    size_t n_revoked;
    uint64_t number;      /* cRLNumber of the CRL held, for display */
    struct verify_crl_num num; /* the same, compared as a big integer */
    time_t this_update, next_update; /* of the CRL held: its freshness */
    long long good_ms;    /* mono_ms of the last good fetch; 0: none yet */
    bool fresh;           /* as last published to trust */
    bool aging;           /* said: fetched older than max-stale/2 */
    char etag[128];
    char error[200];      /* the last failure, "" after a good fetch */
    long long due_ms;
    struct tf_root root;
};

struct trust_fetch {
    struct daemon *d;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    pthread_t thread;
    pthread_t judge;      /* judge_thread: freshness, once a second */
    bool running, judging, stop;
    void (*on_change)(void *arg);
    void *arg;
    struct tf_issuer *is;
    size_t n;
    gnutls_x509_crt_t *anchors; /* ca.crt: the roots that may sign a root CRL */
    size_t n_anchors;
};

/* Where the root's CRL of is comes from, and which anchor signs it. */
static int root_setup(struct trust_fetch *tf, struct tf_issuer *is)
{
    struct tf_root *r = &is->root;

    verify_serial_hex(is->ca, r->ca_serial, sizeof(r->ca_serial));
    r->url = is->cfg->root_crl_url ? strdup(is->cfg->root_crl_url)
                                   : verify_crl_dp_http(is->ca);
    if (is->cfg->root_crl_url && !r->url)
        return -ENOMEM;
    if (!r->url) {
        log_warn("[trust %s]: no root CRL to check: %s names no CRL distribution point and "
                 "there is no root-crl-url, so revoking it at the root does not cut its peers "
                 "off here",
                 is->cfg->name, is->cfg->ca);
        return 0;
    }
    r->root = verify_issuer_among(is->ca, tf->anchors, tf->n_anchors);
    if (!r->root) {
        snprintf(r->error, sizeof(r->error), "no certificate in ca.crt issued %s: the root's "
                 "CRL cannot be checked", is->cfg->ca);
        log_err("[trust %s]: %s: its peers are refused (fail closed)", is->cfg->name, r->error);
    } else {
        snprintf(r->error, sizeof(r->error), "not fetched yet");
    }
    return 0;
}

int trust_fetch_new(struct daemon *d, struct trust_fetch **out, char *err, size_t errlen)
{
    const struct config *cfg = d->cfg;
    struct trust_fetch *tf;
    int rc = 0;

    *out = NULL;
    if (cfg->n_trusts == 0)
        return 0;
    tf = calloc(1, sizeof(*tf));
    if (!tf || !(tf->is = calloc(cfg->n_trusts, sizeof(*tf->is)))) {
        free(tf);
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    tf->d = d;
    pthread_mutex_init(&tf->lock, NULL);
    pthread_cond_init(&tf->cond, NULL);
    {
        char why[256] = "";
        /* No ca.crt yet (a hub before init): no root CRL can be checked. */
        if (pki_read_certs(d->pki->ca_path, &tf->anchors, &tf->n_anchors, why,
                           sizeof(why)) < 0) {
            tf->anchors = NULL;
            tf->n_anchors = 0;
        }
    }
    for (unsigned i = 0; i < cfg->n_trusts; i++) {
        struct tf_issuer *is = &tf->is[tf->n++];
        char why[256] = "";
        is->cfg = &cfg->trusts[i];
        rc = pki_read_cert(is->cfg->ca, &is->ca, why, sizeof(why));
        if (rc == 0 && gnutls_x509_crt_export2(is->ca, GNUTLS_X509_FMT_DER, &is->ca_der) < 0)
            rc = -ENOMEM;
        if (rc == 0 && gnutls_x509_crt_get_ca_status(is->ca, NULL) != 1) {
            snprintf(why, sizeof(why), "not a CA certificate (basicConstraints CA:TRUE)");
            rc = -EINVAL;
        }
        if (rc < 0) {
            snprintf(err, errlen, "[trust %s] ca = %s: %s", is->cfg->name, is->cfg->ca,
                     why[0] ? why : strerror(-rc));
            trust_fetch_free(tf);
            return rc;
        }
        if (!verify_ca_pathlen0(is->ca))
            log_warn("[trust %s] ca = %s has no pathlen:0: it can sign sub-CAs (their peers "
                     "are refused as of an unknown issuer); ask the root for pathlen:0",
                     is->cfg->name, is->cfg->ca);
        snprintf(is->error, sizeof(is->error), "not fetched yet");
        if (root_setup(tf, is) < 0) {
            snprintf(err, errlen, "out of memory");
            trust_fetch_free(tf);
            return -ENOMEM;
        }
    }
    *out = tf;
    return 0;
}

void trust_fetch_free(struct trust_fetch *tf)
{
    if (!tf)
        return;
    if (tf->running) {
        pthread_mutex_lock(&tf->lock);
        tf->stop = true;
        pthread_cond_broadcast(&tf->cond);
        pthread_mutex_unlock(&tf->lock);
        pthread_join(tf->thread, NULL);
        if (tf->judging)
            pthread_join(tf->judge, NULL);
    }
    for (size_t i = 0; i < tf->n; i++) {
        if (tf->is[i].ca)
            gnutls_x509_crt_deinit(tf->is[i].ca);
        gnutls_free(tf->is[i].ca_der.data);
        free(tf->is[i].revoked);
        free(tf->is[i].root.url);
    }
    free(tf->is);
    pki_free_certs(tf->anchors, tf->n_anchors);
    pthread_cond_destroy(&tf->cond);
    pthread_mutex_destroy(&tf->lock);
    free(tf);
}

/* ---- HTTP ------------------------------------------------------------------ */

static int connect_deadline(const char *host, const char *port, long long deadline, char *err,
                            size_t errlen)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL, *ai;
    int fd = -1, rc;

    /* getaddrinfo has no deadline: this thread waits, no handshake does. */
    rc = getaddrinfo(host, port, &hints, &res);
    if (rc != 0) {
        snprintf(err, errlen, "cannot resolve %s: %s", host, gai_strerror(rc));
        return -EHOSTUNREACH;
    }
    for (ai = res; ai; ai = ai->ai_next) {
        struct pollfd p;
        int soerr = 0;
        socklen_t sl = sizeof(soerr);
        long long left = deadline - mono_ms();
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0)
            continue;
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
            break;
        p.fd = fd;
        p.events = POLLOUT;
        if (errno == EINPROGRESS && left > 0 && poll(&p, 1, (int)left) == 1 &&
            getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) == 0 && soerr == 0)
            break;
        snprintf(err, errlen, "cannot connect to %s port %s: %s", host, port,
                 soerr ? strerror(soerr) : left > 0 ? strerror(errno) : "timed out");
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    return fd >= 0 ? fd : -ECONNREFUSED;
}

static int io_deadline(int fd, short events, long long deadline)
{
    struct pollfd p = {.fd = fd, .events = events};
    long long left = deadline - mono_ms();

    if (left <= 0)
        return -ETIMEDOUT;
    return poll(&p, 1, (int)left) == 1 ? 0 : -ETIMEDOUT;
}

/* The answer on fd, framed by http-parser (http_answer): the body refused
 * past max bytes as they arrive, never handed on whole. */
static int recv_answer(int fd, long long deadline, struct http_answer *a, const char *url,
                       unsigned timeout_ms, size_t max, char *err, size_t errlen)
{
    char buf[16384];
    const char *why = "";
    int rc = 0;

    while (!a->complete && rc == 0) {
        ssize_t n;
        if (io_deadline(fd, POLLIN, deadline) < 0) {
            snprintf(err, errlen, "%s: no complete answer within %u ms", url, timeout_ms);
            return -ETIMEDOUT;
        }
        n = recv(fd, buf, sizeof(buf), 0);
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            continue;
        if (n < 0) {
            snprintf(err, errlen, "%s: recv: %s", url, strerror(errno));
            return -errno;
        }
        rc = http_answer_feed(a, buf, (size_t)n, &why); /* 0: the stream ended */
    }
    if (rc == -EFBIG)
        snprintf(err, errlen, "%s: larger than %zu bytes: refused", url, max);
    else if (rc < 0)
        snprintf(err, errlen, "%s: not an HTTP answer: %s", url, why);
    return rc;
}

int trust_http_get(const char *url, const char *etag, unsigned timeout_ms, size_t max,
                   int *status, char **body, size_t *len, char *etag_out, size_t etag_len,
                   char *err, size_t errlen)
{
    static const char *const names[] = {"etag"};
    char host[256], port[8] = "80", req[1024];
    const char *h = url + 7, *path, *colon;
    long long deadline = mono_ms() + timeout_ms;
    struct http_answer a;
    int fd = -1, rc;

    *body = NULL;
    *len = 0;
    if (strncmp(url, "http://", 7) != 0) {
        snprintf(err, errlen, "not an http:// URL");
        return -EINVAL;
    }
    if (http_answer_init(&a, max, names, 1) < 0) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    path = strchr(h, '/');
    if (!path)
        path = "/";
    colon = memchr(h, ':', (size_t)(path - h));
    snprintf(host, sizeof(host), "%.*s", (int)((colon ? colon : path) - h), h);
    if (colon)
        snprintf(port, sizeof(port), "%.*s", (int)(path - colon - 1), colon + 1);
    fd = connect_deadline(host, port, deadline, err, errlen);
    if (fd < 0) {
        http_answer_clear(&a);
        return fd;
    }
    /* The Host header names host[:port] as the URL does. */
    rc = snprintf(req, sizeof(req),
                  "GET %s HTTP/1.1\r\nHost: %.*s\r\nUser-Agent: mtlsgwd\r\n%s%s%s"
                  "Connection: close\r\n\r\n",
                  path, (int)(path - h), h, etag && etag[0] ? "If-None-Match: " : "",
                  etag && etag[0] ? etag : "", etag && etag[0] ? "\r\n" : "");
    if (rc < 0 || (size_t)rc >= sizeof(req)) {
        snprintf(err, errlen, "URL too long");
        rc = -EINVAL;
        goto out;
    }
    for (size_t off = 0; off < (size_t)rc;) {
        ssize_t n;
        if (io_deadline(fd, POLLOUT, deadline) < 0) {
            snprintf(err, errlen, "%s: timed out sending the request", url);
            rc = -ETIMEDOUT;
            goto out;
        }
        n = send(fd, req + off, (size_t)rc - off, MSG_NOSIGNAL);
        if (n < 0 && errno != EAGAIN && errno != EINTR) {
            snprintf(err, errlen, "%s: send: %s", url, strerror(errno));
            rc = -errno;
            goto out;
        }
        off += n > 0 ? (size_t)n : 0;
    }
    rc = recv_answer(fd, deadline, &a, url, timeout_ms, max, err, errlen);
    if (rc < 0)
        goto out;
    *status = a.status;
    snprintf(etag_out, etag_len, "%s", a.header[0] ? a.header[0] : "");
    *len = a.len;
    *body = a.body ? a.body : strdup("");
    a.body = NULL;
    rc = *body ? 0 : -ENOMEM;
out:
    http_answer_clear(&a);
    if (fd >= 0)
        close(fd);
    return rc;
}

/* ---- a CRL ------------------------------------------------------------------ */

/* What the fetch brought: parsed, checked against the issuer, its serials. */
struct tf_crl {
    char (*revoked)[64];
    size_t n;
    uint64_t number;
    struct verify_crl_num num;
    time_t this_update, next_update;
};

/* What verify_crl_precheck's rc means, for the log and status. */
static void precheck_error(int rc, const char *signer, char *err, size_t errlen)
{
    if (rc == -EFBIG)
        snprintf(err, errlen, "a CRL of more than %d entries whose signature cannot be "
                 "checked before import: refused", VERIFY_CRL_MAX_UNCHECKED);
    else if (rc == -EPERM)
        snprintf(err, errlen, "CRL not signed by %s", signer);
    else if (rc == -ENOTSUP)
        snprintf(err, errlen, "a CRL signed with an algorithm this GnuTLS does not know: "
                 "refused");
    else
        snprintf(err, errlen, "not a CRL (DER or PEM)");
}

static int crl_parse(const struct tf_issuer *is, const char *data, size_t len,
                     struct tf_crl *out, char *err, size_t errlen)
{
    gnutls_x509_crl_t crl = NULL;
    gnutls_x509_crl_iter_t it = NULL;
    int rc = -EBADMSG, count;

    memset(out, 0, sizeof(*out));
    /* The signature first: a forged CRL never reaches the quadratic import. */
    rc = verify_crl_precheck(data, len, is->ca);
    if (rc < 0) {
        precheck_error(rc, is->cfg->ca, err, errlen);
        return -EBADMSG;
    }
    rc = -EBADMSG;
    if (gnutls_x509_crl_init(&crl) < 0)
        return -ENOMEM;
    if (verify_crl_import(crl, data, len) < 0) {
        snprintf(err, errlen, "not a CRL (DER or PEM)");
        goto out;
    }
    /* Its times are is_fresh's (verify_crl_fresh, with its skew). */
    if (!verify_crl_signed_by(crl, is->ca)) {
        snprintf(err, errlen, "CRL not signed by the CA in %s", is->cfg->ca);
        goto out;
    }
    out->number = verify_crl_number(crl);
    verify_crl_num(crl, &out->num);
    out->this_update = gnutls_x509_crl_get_this_update(crl);
    out->next_update = gnutls_x509_crl_get_next_update(crl);
    count = gnutls_x509_crl_get_crt_count(crl);
    if (count > 0 && !(out->revoked = calloc((size_t)count, sizeof(*out->revoked)))) {
        rc = -ENOMEM;
        goto out;
    }
    while (count > 0 && out->n < (size_t)count) {
        unsigned char s[64];
        size_t sl = sizeof(s);
        time_t when;
        if (gnutls_x509_crl_iter_crt_serial(crl, &it, s, &sl, &when) < 0)
            break;
        verify_serial_bytes_hex(s, sl, out->revoked[out->n++], sizeof(out->revoked[0]));
    }
    rc = 0;
out:
    if (it)
        gnutls_x509_crl_iter_deinit(it);
    gnutls_x509_crl_deinit(crl);
    return rc;
}

/*
 * The highest CRL number is not only this run's: the one in the CRL kept
 * from before (trust-NAME.crl, signed by the issuer's CA) is the floor, so
 * a restart does not let an older CRL back in. Not fresh on that account.
 */
static void number_from_kept(struct trust_fetch *tf, struct tf_issuer *is)
{
    char path[4096], err[256];
    char *body = NULL;
    size_t len = 0;
    struct tf_crl c = {0};

    trustdb_issuer_crl_path(tf->d->cfg->pki.dir, is->cfg->name, path, sizeof(path));
    if (fs_read_file(path, FETCH_MAX, &body, &len) == 0 &&
        crl_parse(is, body, len, &c, err, sizeof(err)) == 0) {
        is->number = c.number;
        is->num = c.num;
    }
    free(c.revoked);
    free(body);
}

/* The CRL as fetched, for the parent (trustdb.h, trustdb_issuer_crl_path):
 * it checks a roaming tunnel peer against it on its own, so it is written
 * only once its signature checked out here. The parent and explain judge
 * its freshness from its own thisUpdate, as this thread does, never from
 * the file's mtime (a compromised session process could touch it): a 304
 * writes nothing. A failure costs only roaming tunnels. */
static void crl_keep(struct trust_fetch *tf, struct tf_issuer *is, const char *body,
                     size_t len)
{
    char path[4096];
    struct stat st;
    int rc = 0;

    trustdb_issuer_crl_path(tf->d->cfg->pki.dir, is->cfg->name, path, sizeof(path));
    if (body) {
        rc = fs_write_atomic(path, body, len, 0644);
    } else if (stat(path, &st) < 0) {
        /* Gone (removed by hand): the next fetch asks for the whole CRL. */
        pthread_mutex_lock(&tf->lock);
        is->etag[0] = '\0';
        pthread_mutex_unlock(&tf->lock);
    }
    if (rc < 0)
        log_warn("trust %s: cannot keep the CRL in %s for the parent: %s", is->cfg->name, path,
                 strerror(-rc));
}

/* One fetch of is; true when what its peers get changed (new serials). */
static bool fetch_one(struct trust_fetch *tf, struct tf_issuer *is)
{
    char etag[128], new_etag[128] = "", err[256] = "";
    struct tf_crl c = {0};
    long long t0 = mono_ms(), t1, t2;
    char *body = NULL;
    size_t len = 0;
    int status = 0, rc;
    bool changed = false;

    pthread_mutex_lock(&tf->lock);
    snprintf(etag, sizeof(etag), "%s", is->etag);
    pthread_mutex_unlock(&tf->lock);
    rc = trust_http_get(is->cfg->crl_url, etag, FETCH_TIMEOUT_MS, FETCH_MAX, &status, &body,
                        &len, new_etag, sizeof(new_etag), err, sizeof(err));
    t1 = mono_ms();
    if (rc == 0 && status == 200)
        rc = crl_parse(is, body, len, &c, err, sizeof(err));
    else if (rc == 0 && status != 304) {
        snprintf(err, sizeof(err), "%s: HTTP %d", is->cfg->crl_url, status);
        rc = -EPROTO;
    }
    t2 = mono_ms();
    pthread_mutex_lock(&tf->lock);
    if (rc == 0 && status == 200 && verify_crl_num_cmp(&c.num, &is->num) < 0) {
        snprintf(err, sizeof(err), "CRL number %llu%s is older than the one held (%llu%s): "
                 "refused", (unsigned long long)c.number, c.num.len > 8 ? "..." : "",
                 (unsigned long long)is->number, is->num.len > 8 ? "..." : "");
        rc = -ESTALE;
    }
    if (rc < 0) {
        if (strcmp(is->error, err) != 0)
            log_warn("trust %s: CRL fetch failed: %s", is->cfg->name, err);
        snprintf(is->error, sizeof(is->error), "%.*s", (int)sizeof(is->error) - 1, err);
    } else {
        if (is->error[0] && is->good_ms)
            log_info("trust %s: CRL fetched again from %s", is->cfg->name, is->cfg->crl_url);
        is->error[0] = '\0';
        is->good_ms = mono_ms();
        if (status == 200) {
            changed = c.n != is->n_revoked || c.number != is->number ||
                      (c.n && memcmp(c.revoked, is->revoked, c.n * sizeof(*c.revoked)) != 0);
            if (changed || !is->number)
                log_info("trust %s: CRL %llu from %s: %zu revoked (fetch %lld ms, parse %lld "
                         "ms, %zu bytes)",
                         is->cfg->name, (unsigned long long)c.number, is->cfg->crl_url, c.n,
                         t1 - t0, t2 - t1, len);
            free(is->revoked);
            is->revoked = c.revoked;
            c.revoked = NULL;
            is->n_revoked = c.n;
            is->number = c.number;
            is->num = c.num;
            is->this_update = c.this_update;
            is->next_update = c.next_update;
            snprintf(is->etag, sizeof(is->etag), "%s", new_etag);
        }
        /* Fetched (200 or 304) and already half-way to max-stale: said
         * once until it is not so any more. */
        {
            char warn[256];
            bool aging = verify_crl_aging(is->this_update, is->cfg->max_stale, time(NULL),
                                          warn, sizeof(warn));
            if (aging && !is->aging)
                log_warn("trust %s: %s (%s)", is->cfg->name, warn, is->cfg->crl_url);
            is->aging = aging;
        }
    }
    pthread_mutex_unlock(&tf->lock);
    /* Only what was taken: signed by the issuer, not older than held. */
    if (rc == 0)
        crl_keep(tf, is, status == 200 ? body : NULL, len);
    free(body);
    free(c.revoked);
    return changed;
}

/* The root's CRL in data: signed by r->root, and whether it lists the
 * issuer's CA ca. */
static int root_crl_parse(const struct tf_root *r, gnutls_x509_crt_t ca, const char *data,
                          size_t len, struct verify_crl_num *num, uint64_t *number,
                          time_t *next, bool *listed, char *err, size_t errlen)
{
    gnutls_x509_crl_t crl = NULL;
    int rc = -EBADMSG;

    *listed = false;
    if ((rc = verify_crl_precheck(data, len, r->root)) < 0) {
        char why[200];
        precheck_error(rc, "the root in ca.crt", why, sizeof(why));
        snprintf(err, errlen, "%s: the root's CRL: %s", r->url, why);
        return -EBADMSG;
    }
    rc = -EBADMSG;
    if (gnutls_x509_crl_init(&crl) < 0)
        return -ENOMEM;
    if (verify_crl_import(crl, data, len) < 0) {
        snprintf(err, errlen, "%s: not a CRL (DER or PEM)", r->url);
        goto out;
    }
    /* Its nextUpdate is root_fresh's; a thisUpdate ahead of this clock is
     * taken within the skew verify_crl_fresh allows a sibling's. */
    if (!verify_crl_signed_by(crl, r->root)) {
        snprintf(err, errlen, "%s: the root's CRL is not signed by the root in ca.crt",
                 r->url);
        goto out;
    }
    if (gnutls_x509_crl_get_this_update(crl) > time(NULL) + VERIFY_CRL_SKEW) {
        snprintf(err, errlen, "%s: the root's CRL's thisUpdate is more than %d s ahead of "
                 "this clock (check both clocks)", r->url, VERIFY_CRL_SKEW);
        goto out;
    }
    verify_crl_num(crl, num);
    *number = verify_crl_number(crl);
    *next = gnutls_x509_crl_get_next_update(crl);
    *listed = verify_crl_lists(crl, ca);
    rc = 0;
out:
    gnutls_x509_crl_deinit(crl);
    return rc;
}

/*
 * The root's CRL kept from before (rootcrl-NAME.crl, written only once its
 * signature checked out) is held at start, as if fetched: its number is the
 * floor, so a restart does not let an older root CRL (one from before the
 * issuer's CA was revoked, replayed on the path) back in, and a CA it lists
 * stays refused. It is judged fresh by its own nextUpdate as a fetched one.
 */
static void root_from_kept(struct trust_fetch *tf, struct tf_issuer *is)
{
    struct tf_root *r = &is->root;
    char path[4096], err[256];
    struct verify_crl_num num = {.len = 0};
    uint64_t number = 0;
    time_t next = 0;
    char *body = NULL;
    size_t len = 0;
    bool listed = false;

    if (!r->url || !r->root)
        return;
    trustdb_issuer_root_crl_path(tf->d->cfg->pki.dir, is->cfg->name, path, sizeof(path));
    if (fs_read_file(path, FETCH_MAX, &body, &len) == 0 &&
        root_crl_parse(r, is->ca, body, len, &num, &number, &next, &listed, err,
                       sizeof(err)) == 0) {
        r->have = true;
        r->ca_revoked = listed;
        r->num = num;
        r->number = number;
        r->next_update = next;
        if (listed)
            log_err("trust %s: the root's CRL %llu kept in %s revokes its CA (serial %s): its "
                    "peers are refused",
                    is->cfg->name, (unsigned long long)number, path, r->ca_serial);
    }
    free(body);
}

/* One fetch of is's root CRL; true when what its peers get changed. */
static bool fetch_root(struct trust_fetch *tf, struct tf_issuer *is)
{
    struct tf_root *r = &is->root;
    char etag[128], new_etag[128] = "", err[256] = "";
    struct verify_crl_num num = {.len = 0};
    uint64_t number = 0;
    time_t next = 0;
    char *body = NULL;
    size_t len = 0;
    int status = 0, rc;
    bool changed = false, listed = false;

    if (!r->url || !r->root)
        return false;
    pthread_mutex_lock(&tf->lock);
    snprintf(etag, sizeof(etag), "%s", r->etag);
    pthread_mutex_unlock(&tf->lock);
    rc = trust_http_get(r->url, etag, FETCH_TIMEOUT_MS, FETCH_MAX, &status, &body, &len,
                        new_etag, sizeof(new_etag), err, sizeof(err));
    if (rc == 0 && status == 200)
        rc = root_crl_parse(r, is->ca, body, len, &num, &number, &next, &listed, err,
                            sizeof(err));
    else if (rc == 0 && status != 304) {
        snprintf(err, sizeof(err), "%s: HTTP %d", r->url, status);
        rc = -EPROTO;
    }
    pthread_mutex_lock(&tf->lock);
    if (rc == 0 && status == 200 && r->have && verify_crl_num_cmp(&num, &r->num) < 0) {
        snprintf(err, sizeof(err), "the root's CRL number %llu is older than the one held "
                 "(%llu): refused", (unsigned long long)number,
                 (unsigned long long)r->number);
        rc = -ESTALE;
    }
    if (rc < 0) {
        if (strcmp(r->error, err) != 0)
            log_warn("trust %s: root CRL fetch failed: %s", is->cfg->name, err);
        snprintf(r->error, sizeof(r->error), "%.*s", (int)sizeof(r->error) - 1, err);
    } else {
        r->error[0] = '\0';
        if (status == 200) {
            changed = !r->have || listed != r->ca_revoked;
            if (listed && !r->ca_revoked)
                log_err("trust %s: the root's CRL %llu from %s revokes its CA (serial %s): its "
                        "peers are refused and their sessions end",
                        is->cfg->name, (unsigned long long)number, r->url, r->ca_serial);
            else if (changed)
                log_info("trust %s: root's CRL %llu from %s: its CA is not revoked",
                         is->cfg->name, (unsigned long long)number, r->url);
            r->have = true;
            r->ca_revoked = listed;
            r->num = num;
            r->number = number;
            r->next_update = next;
            snprintf(r->etag, sizeof(r->etag), "%s", new_etag);
        }
    }
    pthread_mutex_unlock(&tf->lock);
    /* Kept for explain (trustdb_issuer_root_crl_path): only what was taken. */
    if (rc == 0 && status == 200) {
        char path[4096];
        int wr;
        trustdb_issuer_root_crl_path(tf->d->cfg->pki.dir, is->cfg->name, path, sizeof(path));
        if ((wr = fs_write_atomic(path, body, len, 0644)) < 0)
            log_warn("trust %s: cannot keep the root's CRL in %s: %s", is->cfg->name, path,
                     strerror(-wr));
    }
    free(body);
    return changed;
}

/* Whether the root's CRL allows is's peers as far as its freshness goes
 * (until its nextUpdate: the root is offline); a CA it lists is said by
 * ca_revoked. Under lock. */
static bool root_fresh(const struct tf_issuer *is, time_t now, char *why, size_t whylen)
{
    const struct tf_root *r = &is->root;

    if (!r->url)
        return true;
    if (!r->root || !r->have)
        snprintf(why, whylen, "no root CRL from %s%s%s", r->url, r->error[0] ? ": " : "",
                 r->error);
    else if (r->next_update <= 0 || now > r->next_update)
        snprintf(why, whylen, "the root's CRL from %s is past its nextUpdate (the root "
                 "re-signs it by hand: mtlsgw root crl)", r->url);
    else
        return true;
    return false;
}

/* Fresh: a CRL held, signed within max-stale (its thisUpdate) and before
 * its nextUpdate (verify_crl_fresh; the parent and explain judge the kept
 * file the same way). Not the fetches: a 304 or a replay proves nothing
 * about when the issuer last said who is revoked. Under lock. */
static bool is_fresh(const struct tf_issuer *is, time_t now, char *why, size_t whylen)
{
    char dummy[8];

    if (!why) {
        why = dummy;
        whylen = sizeof(dummy);
    }
    if (!is->good_ms) {
        snprintf(why, whylen, "no CRL fetched yet");
        return false;
    }
    return verify_crl_fresh(is->this_update, is->next_update, is->cfg->max_stale, now, why,
                            whylen) &&
           root_fresh(is, now, why, whylen);
}

/* Whether an issuer's freshness changed since last published (the reload
 * publishes it, and says so: trust_fetch_apply). */
static bool freshness_changed(struct trust_fetch *tf)
{
    bool reload = false;

    pthread_mutex_lock(&tf->lock);
    for (size_t i = 0; i < tf->n; i++)
        reload |= is_fresh(&tf->is[i], time(NULL), NULL, 0) != tf->is[i].fresh;
    pthread_mutex_unlock(&tf->lock);
    return reload;
}

/* Waits up to a second (or until stop); true when stopping. */
static bool tick(struct trust_fetch *tf)
{
    struct timespec ts;
    bool stop;

    pthread_mutex_lock(&tf->lock);
    if (!tf->stop) {
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_sec += 1;
        pthread_cond_timedwait(&tf->cond, &tf->lock, &ts);
    }
    stop = tf->stop;
    pthread_mutex_unlock(&tf->lock);
    return stop;
}

/*
 * Freshness on its own clock: once a second, whatever the fetcher is doing
 * (a DP that drips its answer holds it for FETCH_TIMEOUT_MS per URL, a name
 * lookup has no deadline, a big CRL takes long to parse), each issuer's
 * held CRL is judged against max-stale; one that turns stale reloads trust
 * then. A revocation is held back max-stale + ~1 s at most.
 */
static void *judge_thread(void *arg)
{
    struct trust_fetch *tf = arg;

    do {
        /* The reload takes the issuers' state from trust_fetch_apply, which
         * publishes each one's freshness as it is then. */
        if (freshness_changed(tf))
            tf->on_change(tf->arg);
    } while (!tick(tf));
    return NULL;
}

static void *fetch_thread(void *arg)
{
    struct trust_fetch *tf = arg;

    do {
        bool reload = false;
        long long now_ms = mono_ms();

        for (size_t i = 0; i < tf->n; i++) {
            struct tf_issuer *is = &tf->is[i];
            if (now_ms < is->due_ms)
                continue;
            reload |= fetch_one(tf, is);
            reload |= fetch_root(tf, is);
            /* After a failure, again within 5 s (a DP not up yet at boot
             * must not keep its peers out for a whole refresh). */
            pthread_mutex_lock(&tf->lock);
            is->due_ms = now_ms + 1000LL * ((is->error[0] || is->root.error[0]) &&
                                                    is->cfg->refresh > 5
                                                ? 5
                                                : is->cfg->refresh);
            pthread_mutex_unlock(&tf->lock);
        }
        /* A good fetch that makes an issuer fresh again is published now,
         * not on the judge's next tick. */
        reload |= freshness_changed(tf);
        if (reload)
            tf->on_change(tf->arg);
    } while (!tick(tf));
    return NULL;
}

int trust_fetch_start(struct trust_fetch *tf, void (*on_change)(void *arg), void *arg,
                      char *err, size_t errlen)
{
    pthread_condattr_t ca;
    int rc;

    if (!tf)
        return 0;
    tf->on_change = on_change;
    tf->arg = arg;
    for (size_t i = 0; i < tf->n; i++) {
        number_from_kept(tf, &tf->is[i]);
        root_from_kept(tf, &tf->is[i]);
    }
    /* The wait above counts on the monotonic clock. */
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_destroy(&tf->cond);
    pthread_cond_init(&tf->cond, &ca);
    pthread_condattr_destroy(&ca);
    rc = pthread_create(&tf->thread, NULL, fetch_thread, tf);
    if (rc != 0) {
        snprintf(err, errlen, "cannot start the CRL fetcher: %s", strerror(rc));
        return -rc;
    }
    tf->running = true;
    rc = pthread_create(&tf->judge, NULL, judge_thread, tf);
    if (rc != 0) {
        snprintf(err, errlen, "cannot start the CRL freshness timer: %s", strerror(rc));
        return -rc;
    }
    tf->judging = true;
    return 0;
}

int trust_fetch_apply(struct trust_fetch *tf, struct trustdb *db)
{
    time_t now = time(NULL);
    int rc = 0;

    if (!tf)
        return 0;
    pthread_mutex_lock(&tf->lock);
    for (size_t i = 0; i < tf->n && rc == 0; i++) {
        struct tf_issuer *is = &tf->is[i];
        char why[256];
        bool fresh = is_fresh(is, now, why, sizeof(why));
        /* Said by whichever reload publishes the change (the freshness
         * timer's, a fetch's, or another: [crl] resign, a local revoke). */
        if (fresh != is->fresh && !fresh)
            log_err("trust %s: no fresh CRL from %s (max-stale %u s): %s%s%s: its peers "
                    "are refused and their sessions end",
                    is->cfg->name, is->cfg->crl_url, is->cfg->max_stale, why,
                    is->error[0] ? "; last fetch: " : "", is->error);
        else if (fresh != is->fresh)
            log_info("trust %s: CRL fresh: its peers are admitted again", is->cfg->name);
        is->fresh = fresh;
        rc = trustdb_add_issuer(db, is->cfg->name, &is->ca_der, is->fresh, is->revoked,
                                is->n_revoked, is->cfg->roles);
        if (rc == 0 && is->root.ca_revoked)
            rc = trustdb_issuer_ca_revoked(db, is->cfg->name);
    }
    pthread_mutex_unlock(&tf->lock);
    return rc;
}

size_t trust_fetch_cas(const struct trust_fetch *tf, gnutls_x509_crt_t *cas, size_t max)
{
    size_t n = 0;

    for (size_t i = 0; tf && i < tf->n && n < max; i++)
        cas[n++] = tf->is[i].ca;
    return n;
}

struct json_object *trust_fetch_json(struct trust_fetch *tf)
{
    struct json_object *o = json_object_new_object();
    long long now_ms = mono_ms();

    if (!tf)
        return o;
    pthread_mutex_lock(&tf->lock);
    for (size_t i = 0; i < tf->n; i++) {
        struct tf_issuer *is = &tf->is[i];
        struct json_object *e = json_object_new_object();
        json_object_object_add(e, "crl_url", json_object_new_string(is->cfg->crl_url));
        json_object_object_add(e, "fresh", json_object_new_boolean(is->fresh));
        json_object_object_add(e, "age", is->good_ms ? json_object_new_int64(
                                                           (now_ms - is->good_ms) / 1000)
                                                     : NULL);
        /* Seconds since the CRL held was signed: fresh while <= max-stale. */
        json_object_object_add(e, "crl_age", is->this_update > 0
                                                 ? json_object_new_int64(
                                                       (int64_t)(time(NULL) - is->this_update))
                                                 : NULL);
        json_object_object_add(e, "revoked", json_object_new_int64((int64_t)is->n_revoked));
        json_object_object_add(e, "crl_number", json_object_new_int64((int64_t)is->number));
        if (is->error[0])
            json_object_object_add(e, "error", json_object_new_string(is->error));
        if (is->root.url) {
            struct json_object *r = json_object_new_object();
            json_object_object_add(r, "url", json_object_new_string(is->root.url));
            json_object_object_add(r, "crl_number",
                                   is->root.have
                                       ? json_object_new_int64((int64_t)is->root.number)
                                       : NULL);
            json_object_object_add(r, "ca_revoked",
                                   json_object_new_boolean(is->root.ca_revoked));
            if (is->root.error[0])
                json_object_object_add(r, "error", json_object_new_string(is->root.error));
            json_object_object_add(e, "root_crl", r);
        }
        if (is->aging) {
            char warn[256];
            if (verify_crl_aging(is->this_update, is->cfg->max_stale, time(NULL), warn,
                                 sizeof(warn)))
                json_object_object_add(e, "warning", json_object_new_string(warn));
        }
        json_object_object_add(o, is->cfg->name, e);
    }
    pthread_mutex_unlock(&tf->lock);
    return o;
}
