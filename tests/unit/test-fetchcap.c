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
#include <unistd.h>

#include "cunit-main.h"
#include "trust-fetch.h"

#define CAP (2u * 1024 * 1024)

struct server {
    int fd;
    size_t body;
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

/* trust_http_get of a body of size bytes with the fetcher's cap. */
static int get(size_t size, size_t *len)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof(a);
    struct server s = {.body = size};
    pthread_t t;
    char url[64], etag[64], err[256] = "", *body = NULL;
    int status = 0, rc;

    s.fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    CU_ASSERT_FATAL(s.fd >= 0);
    CU_ASSERT_FATAL(bind(s.fd, (struct sockaddr *)&a, sizeof(a)) == 0);
    CU_ASSERT_FATAL(listen(s.fd, 1) == 0);
    CU_ASSERT_FATAL(getsockname(s.fd, (struct sockaddr *)&a, &al) == 0);
    CU_ASSERT_FATAL(pthread_create(&t, NULL, serve, &s) == 0);
    snprintf(url, sizeof(url), "http://127.0.0.1:%u/crl", ntohs(a.sin_port));
    *len = 0;
    rc = trust_http_get(url, NULL, 10000, CAP, &status, &body, len, etag, sizeof(etag), err,
                        sizeof(err));
    printf("\n# %zu bytes at a %u cap: rc %d, %zu taken%s%s\n", size, CAP, rc, *len,
           err[0] ? ": " : "", err);
    free(body);
    pthread_join(t, NULL);
    close(s.fd);
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

static const struct cu_test tests[] = {
    {"trust_http_get: the cap is on the bytes received", test_cap_on_bytes},
};

CU_MAIN("fetchcap", tests)
