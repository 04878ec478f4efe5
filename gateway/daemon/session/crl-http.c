/*
 * crl-http.c: the CRL distribution point ([crl] listen, docs/pki.md
 * "Revocation across hubs"). Plain HTTP, as RFC 5280 4.2.1.13 expects of
 * an http: DP: what it serves is signed (the CRL) or public (the CA
 * certificates), so TLS would add nothing but a chicken-and-egg problem
 * for a verifier that needs the CRL to check the server.
 *
 * Paths (anything else 404, any method but GET and HEAD 405):
 *   /crl, /crl.der      the CRL, DER, application/pkix-crl
 *   /crl.pem            the CRL, PEM
 *   the path of [pki] crl-url: DER (PEM when it ends in .pem)
 *   /ca.crt, /ca.der    ca.crt (PEM), or DER (application/pkix-cert: AIA)
 *   /chain.pem          the intermediates (404 when there are none)
 * Each answer carries a strong ETag (a digest of the bytes) and
 * Last-Modified (the file's mtime); If-None-Match, then If-Modified-Since,
 * give 304 (RFC 9110 13.1). A file is read again when its inode, size or
 * mtime changed: a revocation publishes with its own write, no signal
 * needed.
 */
#include "crl-http.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>

#include "daemon.h"
#include "fsutil.h"
#include "http.h"

/* A CRL of 10,000 entries is 400 KB of PEM; a million is far past it. */
#define DP_FILE_MAX (32u * 1024 * 1024)

enum dp_file { F_CRL, F_CA, F_CHAIN, F_COUNT };
static const char *const file_names[F_COUNT] = {"crl.pem", "ca.crt", "chain.pem"};
static const char *const pem_labels[F_COUNT] = {"X509 CRL", "CERTIFICATE", NULL};

struct dp_entry {
    dev_t dev;
    ino_t ino;
    off_t size;
    struct timespec mtime;
    bool loaded;
    char *pem;
    size_t pem_len;
    unsigned char *der; /* the first PEM block as DER (CRL, CA) */
    size_t der_len;
    char etag[40];      /* hex of the PEM's SHA-256, first 16 octets */
    char last_mod[40];  /* IMF-fixdate */
    time_t mtime_s;
};

struct crl_dp {
    char *paths[F_COUNT];
    char *url_path; /* the path of [pki] crl-url, or NULL */
    bool url_pem;
    pthread_mutex_t lock;
    struct dp_entry e[F_COUNT];
};

static void entry_clear(struct dp_entry *e)
{
    free(e->pem);
    free(e->der);
    memset(e, 0, sizeof(*e));
}

int crl_dp_new(const char *pki_dir, const char *crl_url, struct crl_dp **out)
{
    struct crl_dp *dp = calloc(1, sizeof(*dp));
    int rc = -ENOMEM;

    if (!dp)
        return -ENOMEM;
    pthread_mutex_init(&dp->lock, NULL);
    for (int i = 0; i < F_COUNT; i++)
        if (!(dp->paths[i] = fs_join(pki_dir, file_names[i])))
            goto out;
    if (crl_url && strncmp(crl_url, "http://", 7) == 0) {
        const char *p = strchr(crl_url + 7, '/');
        if (p && strlen(p) > 1) {
            if (!(dp->url_path = strdup(p)))
                goto out;
            dp->url_pem = strlen(p) > 4 && strcmp(p + strlen(p) - 4, ".pem") == 0;
        }
    }
    *out = dp;
    return 0;
out:
    crl_dp_free(dp);
    return rc;
}

void crl_dp_free(struct crl_dp *dp)
{
    if (!dp)
        return;
    for (int i = 0; i < F_COUNT; i++) {
        free(dp->paths[i]);
        entry_clear(&dp->e[i]);
    }
    free(dp->url_path);
    pthread_mutex_destroy(&dp->lock);
    free(dp);
}

/* Read file i again if it changed. Under dp->lock. 0, or -ENOENT/-errno. */
static int entry_refresh(struct crl_dp *dp, enum dp_file i)
{
    struct dp_entry *e = &dp->e[i], n = {0};
    struct stat st;
    unsigned char dig[32];
    gnutls_datum_t der = {NULL, 0};
    struct tm tm;
    int rc;

    if (stat(dp->paths[i], &st) < 0) {
        entry_clear(e);
        return -errno;
    }
    if (e->loaded && e->dev == st.st_dev && e->ino == st.st_ino && e->size == st.st_size &&
        e->mtime.tv_sec == st.st_mtim.tv_sec && e->mtime.tv_nsec == st.st_mtim.tv_nsec)
        return 0;
    rc = fs_read_file(dp->paths[i], DP_FILE_MAX, &n.pem, &n.pem_len);
    if (rc < 0)
        return rc;
    if (pem_labels[i]) {
        gnutls_datum_t pem = {(unsigned char *)n.pem, (unsigned)n.pem_len};
        if (gnutls_pem_base64_decode2(pem_labels[i], &pem, &der) < 0) {
            free(n.pem);
            return -EBADMSG; /* half-written by a writer that does not rename: next time */
        }
        n.der = der.data;
        n.der_len = der.size;
    }
    if (gnutls_hash_fast(GNUTLS_DIG_SHA256, n.pem, n.pem_len, dig) < 0) {
        free(n.pem);
        gnutls_free(n.der);
        return -EIO;
    }
    for (int k = 0; k < 16; k++)
        snprintf(n.etag + 2 * k, 3, "%02x", dig[k]);
    n.mtime_s = st.st_mtim.tv_sec;
    gmtime_r(&n.mtime_s, &tm);
    strftime(n.last_mod, sizeof(n.last_mod), "%a, %d %b %Y %H:%M:%S GMT", &tm);
    n.dev = st.st_dev;
    n.ino = st.st_ino;
    n.size = st.st_size;
    n.mtime = st.st_mtim;
    n.loaded = true;
    /* gnutls_free and free are one allocator unless GnuTLS was told
     * otherwise; copy to be sure. */
    if (n.der) {
        unsigned char *copy = malloc(n.der_len ? n.der_len : 1);
        if (!copy) {
            free(n.pem);
            gnutls_free(n.der);
            return -ENOMEM;
        }
        memcpy(copy, n.der, n.der_len);
        gnutls_free(n.der);
        n.der = copy;
    }
    entry_clear(e);
    *e = n;
    return 0;
}

/* "Sun, 06 Nov 1994 08:49:37 GMT" (IMF-fixdate, RFC 9110 5.6.7); -1: not one. */
static time_t parse_http_date(const char *s)
{
    static const char months[] = "JanFebMarAprMayJunJulAugSepOctNovDec";
    char mon[4] = "";
    struct tm tm = {0};
    const char *m;

    if (sscanf(s, "%*3s, %2d %3s %4d %2d:%2d:%2d GMT", &tm.tm_mday, mon, &tm.tm_year,
               &tm.tm_hour, &tm.tm_min, &tm.tm_sec) != 6 || strlen(mon) != 3 ||
        !(m = strstr(months, mon)) || (m - months) % 3)
        return -1;
    tm.tm_mon = (int)(m - months) / 3;
    tm.tm_year -= 1900;
    return timegm(&tm);
}

/* If-None-Match holds our tag (or "*"): RFC 9110 13.1.2, weak comparison. */
static bool etag_matches(const char *inm, const char *etag)
{
    const char *p = inm;

    while (*p) {
        size_t len;
        p += strspn(p, " \t,");
        if (strncmp(p, "W/", 2) == 0)
            p += 2;
        len = strcspn(p, " \t,");
        if ((len == 1 && *p == '*') || (len == strlen(etag) && strncmp(p, etag, len) == 0))
            return true;
        p += len;
    }
    return false;
}

/* Which file and form a path names; false: none (404). */
static bool route(const struct crl_dp *dp, const char *path, enum dp_file *f, bool *der)
{
    static const struct {
        const char *path;
        enum dp_file f;
        bool der;
    } routes[] = {
        {"/crl", F_CRL, true},       {"/crl.der", F_CRL, true}, {"/crl.pem", F_CRL, false},
        {"/ca.crt", F_CA, false},    {"/ca.der", F_CA, true},   {"/chain.pem", F_CHAIN, false},
    };

    for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++)
        if (strcmp(path, routes[i].path) == 0) {
            *f = routes[i].f;
            *der = routes[i].der;
            return true;
        }
    if (dp->url_path && strcmp(path, dp->url_path) == 0) {
        *f = F_CRL;
        *der = !dp->url_pem;
        return true;
    }
    return false;
}

static void text_reply(struct api_reply *r, int status, const char *msg)
{
    r->status = status;
    r->content_type = "text/plain; charset=utf-8";
    r->body = strdup(msg);
    r->body_len = r->body ? strlen(msg) : 0;
}

void crl_dp_answer(struct crl_dp *dp, const struct http_request *req, struct api_reply *r)
{
    /* The reply's headers live until the caller formats them, on this
     * thread (conn.c: serve_request). */
    static _Thread_local char hdrs[160];
    static const char *const types[F_COUNT][2] = {
        {"application/x-pem-file", "application/pkix-crl"},
        {"application/x-pem-file", "application/pkix-cert"},
        {"application/x-pem-file", "application/x-pem-file"},
    };
    enum dp_file f;
    char tag[48];
    bool der, not_modified = false;
    struct dp_entry *e;
    int rc;

    if (req->method != HTTP_M_GET && req->method != HTTP_M_HEAD) {
        text_reply(r, 405, "read-only: GET or HEAD\n");
        r->extra_headers = "Allow: GET, HEAD\r\n";
        return;
    }
    if (req->query || !route(dp, req->path, &f, &der)) {
        text_reply(r, 404, "not here: /crl, /crl.pem, /ca.crt, /ca.der, /chain.pem\n");
        return;
    }
    pthread_mutex_lock(&dp->lock);
    rc = entry_refresh(dp, f);
    e = &dp->e[f];
    if (rc < 0 && !e->loaded) {
        pthread_mutex_unlock(&dp->lock);
        text_reply(r, rc == -ENOENT ? 404 : 503, rc == -ENOENT ? "no such file here\n"
                                                               : "cannot read it now\n");
        return;
    }
    /* One tag per representation (RFC 9110 8.8.3): DER and PEM differ. */
    snprintf(tag, sizeof(tag), "\"%s%s\"", e->etag, der && e->der ? "-der" : "");
    if (req->if_none_match)
        not_modified = etag_matches(req->if_none_match, tag);
    else if (req->if_modified_since) {
        time_t since = parse_http_date(req->if_modified_since);
        not_modified = since != (time_t)-1 && e->mtime_s <= since;
    }
    snprintf(hdrs, sizeof(hdrs), "ETag: %s\r\nLast-Modified: %s\r\n", tag, e->last_mod);
    r->extra_headers = hdrs;
    r->content_type = types[f][der];
    if (not_modified) {
        r->status = 304;
    } else {
        const void *src = der && e->der ? (const void *)e->der : e->pem;
        size_t len = der && e->der ? e->der_len : e->pem_len;
        r->status = 200;
        r->body = malloc(len ? len : 1);
        if (r->body) {
            memcpy(r->body, src, len);
            r->body_len = len;
        } else {
            r->status = 503;
        }
    }
    pthread_mutex_unlock(&dp->lock);
}

void crl_http_handle(struct daemon *d, struct conn *c, const struct http_request *req,
                     struct api_reply *r)
{
    (void)c;
    crl_dp_answer(d->crl_dp, req, r);
}

bool crl_http_is_slow(const struct http_request *req)
{
    (void)req;
    return false; /* files only, no token */
}
