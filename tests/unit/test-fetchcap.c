/*
 * The sibling CRL fetcher's cap (gateway/daemon/session/trust-fetch.c,
 * trust_http_get): a distribution point (or someone on its path) that
 * answers with more than max bytes is refused on the bytes received, not
 * handed to the CRL parser (GnuTLS's import is quadratic in the entries).
 * A loopback server thread answers with a body of the size asked.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "cunit-main.h"
#include "mono.h"
#include "trust-fetch.h"

#define CAP (2u * 1024 * 1024)

struct server {
    int fd;
    size_t body;
    const char *answer; /* when set: sent as is, and the connection held open */
};

/* One connection: read the request, answer 200 with body bytes, close. */
static void *serve(void *arg)
{
    struct server *s = arg;
    char req[2048], head[128];
    static char chunk[65536];
    int c = accept(s->fd, NULL, NULL);
    size_t left = s->body;

    if (c < 0)
        return NULL;
    if (recv(c, req, sizeof(req), 0) <= 0)
        goto out;
    if (s->answer) {
        /* a keep-alive server: the answer, then the connection stays open
         * until the client closes it (or 5 s pass) */
        struct timeval tv = {.tv_sec = 5};
        if (send(c, s->answer, strlen(s->answer), MSG_NOSIGNAL) < 0)
            goto out;
        setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        while (recv(c, req, sizeof(req), 0) > 0)
            ;
        goto out;
    }
    snprintf(head, sizeof(head), "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\n\r\n", s->body);
    if (send(c, head, strlen(head), MSG_NOSIGNAL) < 0)
        goto out;
    memset(chunk, 'x', sizeof(chunk));
    while (left > 0) {
        size_t n = left < sizeof(chunk) ? left : sizeof(chunk);
        ssize_t w = send(c, chunk, n, MSG_NOSIGNAL);
        if (w <= 0)
            break; /* the client gave up: what is tested */
        left -= (size_t)w;
    }
out:
    close(c);
    return NULL;
}

struct got {
    int status;
    char etag[64];
    char body[64];
    size_t len;
};

/* trust_http_get of a body of size bytes with the fetcher's cap (answer:
 * the server's answer instead, held open); what came in *g. */
static int get_from(size_t size, const char *answer, struct got *g)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof(a);
    struct server s = {.body = size, .answer = answer};
    pthread_t t;
    char url[64], err[256] = "", *body = NULL;
    size_t *len = &g->len;
    int rc;

    s.fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    CU_ASSERT_FATAL(s.fd >= 0);
    CU_ASSERT_FATAL(bind(s.fd, (struct sockaddr *)&a, sizeof(a)) == 0);
    CU_ASSERT_FATAL(listen(s.fd, 1) == 0);
    CU_ASSERT_FATAL(getsockname(s.fd, (struct sockaddr *)&a, &al) == 0);
    CU_ASSERT_FATAL(pthread_create(&t, NULL, serve, &s) == 0);
    snprintf(url, sizeof(url), "http://127.0.0.1:%u/crl", ntohs(a.sin_port));
    *len = 0;
    memset(g, 0, sizeof(*g));
    rc = trust_http_get(url, NULL, 10000, CAP, &g->status, &body, len, g->etag,
                        sizeof(g->etag), err, sizeof(err));
    printf("\n# %zu bytes at a %u cap: rc %d, %zu taken%s%s\n", answer ? 0 : size, CAP, rc,
           *len, err[0] ? ": " : "", err);
    if (body)
        snprintf(g->body, sizeof(g->body), "%s", body);
    free(body);
    pthread_join(t, NULL);
    close(s.fd);
    return rc;
}

static int get(size_t size, size_t *len)
{
    struct got g;
    int rc = get_from(size, NULL, &g);

    *len = g.len;
    return rc;
}

static void test_cap_on_bytes(void)
{
    size_t len;

    /* att16b/fetchcap: 4,128,000 bytes went through a 2 MiB cap. */
    CU_ASSERT_EQUAL(get(4128000, &len), -EFBIG);
    CU_ASSERT_EQUAL(len, 0);
    CU_ASSERT_EQUAL(get(CAP + 1, &len), -EFBIG);
    CU_ASSERT_EQUAL(get(CAP, &len), 0);
    CU_ASSERT_EQUAL(len, CAP);
    CU_ASSERT_EQUAL(get(1000, &len), 0);
    CU_ASSERT_EQUAL(len, 1000);
}

/* The answer is framed by http-parser: a chunked body is decoded, and an
 * answer with a Content-Length is whole without waiting for the server to
 * close (a hand-made reader refused the first and timed out on the second). */
static void test_framing(void)
{
    struct got g;
    long long t0;

    CU_ASSERT_EQUAL(get_from(0, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n"
                                "ETag: \"c1\"\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
                             &g), 0);
    CU_ASSERT_EQUAL(g.status, 200);
    CU_ASSERT_STRING_EQUAL(g.body, "hello world");
    CU_ASSERT_EQUAL(g.len, 11);
    CU_ASSERT_STRING_EQUAL(g.etag, "\"c1\"");

    t0 = mono_ms();
    CU_ASSERT_EQUAL(get_from(0, "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n"
                                "Connection: keep-alive\r\n\r\nabc", &g), 0);
    CU_ASSERT_STRING_EQUAL(g.body, "abc");
    CU_ASSERT(mono_ms() - t0 < 4000); /* not the server's 5 s, not the 10 s deadline */

    CU_ASSERT_EQUAL(get_from(0, "HTTP/1.1 304 Not Modified\r\nETag: \"c1\"\r\n\r\n", &g), 0);
    CU_ASSERT_EQUAL(g.status, 304);
    CU_ASSERT_EQUAL(g.len, 0);
    /* a 304 may carry the Content-Length of what it stands for: no body
     * follows (a reader that waited for one failed the fetch) */
    t0 = mono_ms();
    CU_ASSERT_EQUAL(get_from(0, "HTTP/1.1 304 Not Modified\r\nETag: \"c2\"\r\n"
                                "Content-Length: 1234\r\n\r\n", &g), 0);
    CU_ASSERT_EQUAL(g.status, 304);
    CU_ASSERT_STRING_EQUAL(g.etag, "\"c2\"");
    CU_ASSERT(mono_ms() - t0 < 4000);
    /* an interim 100 Continue before the answer is skipped */
    CU_ASSERT_EQUAL(get_from(0, "HTTP/1.1 100 Continue\r\nETag: \"no\"\r\n\r\n"
                                "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", &g), 0);
    CU_ASSERT_EQUAL(g.status, 200);
    CU_ASSERT_STRING_EQUAL(g.body, "ok");
    CU_ASSERT_STRING_EQUAL(g.etag, "");

    /* a chunked body past the cap is refused as it arrives: 40 chunks of
     * 64 KiB, 2.5 MiB against the 2 MiB cap */
    {
        const char *head = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
        size_t chunk = 65536, n = 40, hl = strlen(head), per = 7 + chunk + 2;
        char *big = malloc(hl + n * per + 6), *w = big;
        CU_ASSERT_FATAL(big != NULL);
        memcpy(w, head, hl);
        w += hl;
        for (size_t i = 0; i < n; i++) {
            memcpy(w, "10000\r\n", 7);
            memset(w + 7, 'x', chunk);
            memcpy(w + 7 + chunk, "\r\n", 2);
            w += per;
        }
        memcpy(w, "0\r\n\r\n", 6);
        w[5] = '\0';
        CU_ASSERT_EQUAL(get_from(0, big, &g), -EFBIG);
        CU_ASSERT_EQUAL(g.len, 0);
        free(big);
    }
}

static const struct cu_test tests[] = {
    {"trust_http_get: the cap is on the bytes received", test_cap_on_bytes},
    {"trust_http_get: chunked, Content-Length with keep-alive, 304", test_framing},
};

CU_MAIN("fetchcap", tests)
