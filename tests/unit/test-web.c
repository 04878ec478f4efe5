/* The management page's server side (gateway/daemon/session/web.c): which
 * state-changing requests pass the cross-site check, the files' security
 * headers, gzip and ETag/304. Requests are raw HTTP as a browser sends
 * them, parsed by the daemon's own reader. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cunit-main.h"
#include "api.h"
#include "daemon.h"
#include "http.h"
#include "registry.h"
#include "service.h"
#include "web.h"

static struct http_reader *rd;

/* Parse one raw request; the result lives until the next call. */
static const struct http_request *parse(const char *raw)
{
    int status = 0;

    http_reader_free(rd);
    rd = NULL;
    if (http_reader_new(4096, &rd) < 0)
        return NULL;
    http_reader_feed(rd, raw, strlen(raw), &status);
    CU_ASSERT_EQUAL(status, 200);
    return http_reader_request(rd);
}

static int allowed(const char *raw)
{
    char err[512] = "";
    const struct http_request *req = parse(raw);

    return req ? web_write_allowed(req, err, sizeof(err)) : -EINVAL;
}

#define REVOKE "POST /api/v1/peers/tun1/revoke HTTP/1.1\r\nHost: gw.example:8443\r\n"
#define JSON_BODY "Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"

static void test_same_origin_write_passes(void)
{
    /* The page's own fetch() in Chromium. */
    EXPECT_INT(
        allowed(REVOKE
                "Origin: https://gw.example:8443\r\nSec-Fetch-Site: same-origin\r\n" JSON_BODY),
        0);
    /* A browser without Fetch Metadata: Origin alone. */
    EXPECT_INT(allowed(REVOKE "Origin: https://GW.example:8443\r\n" JSON_BODY), 0);
    /* curl and the console send neither header, with or without a body. */
    EXPECT_INT(allowed(REVOKE JSON_BODY), 0);
    EXPECT_INT(allowed(REVOKE "Content-Length: 0\r\n\r\n"), 0);
    EXPECT_INT(allowed("DELETE /api/v1/sessions/3 HTTP/1.1\r\nHost: gw\r\n\r\n"), 0);
    EXPECT_INT(allowed(REVOKE "Content-Type: application/json; charset=utf-8\r\n"
                              "Content-Length: 2\r\n\r\n{}"),
               0);
}

static void test_cross_site_post_refused(void)
{
    /* What a form on https://evil.example makes the admin's browser send:
     * the certificate goes along, this check is what stops it. */
    EXPECT_INT(allowed(REVOKE "Origin: https://evil.example\r\nSec-Fetch-Site: cross-site\r\n"
                              "Content-Type: application/x-www-form-urlencoded\r\n"
                              "Content-Length: 6\r\n\r\nreason"),
               -EPERM);
    /* The same with a JSON type (fetch, no-cors cannot set it; still refused). */
    EXPECT_INT(
        allowed(REVOKE "Origin: https://evil.example\r\nSec-Fetch-Site: cross-site\r\n" JSON_BODY),
        -EPERM);
    /* Another site on the same registrable domain. */
    EXPECT_INT(
        allowed(REVOKE
                "Origin: https://x.gw.example:8443\r\nSec-Fetch-Site: same-site\r\n" JSON_BODY),
        -EPERM);
    /* No Fetch Metadata, an Origin that is not this listener. */
    EXPECT_INT(allowed(REVOKE "Origin: https://evil.example\r\n" JSON_BODY), -EPERM);
    EXPECT_INT(allowed(REVOKE "Origin: null\r\n" JSON_BODY), -EPERM);
    EXPECT_INT(allowed(REVOKE "Origin: http://gw.example:8443\r\n" JSON_BODY), -EPERM);
    /* Same origin, but a body that is not JSON (a text/plain form). */
    EXPECT_INT(allowed(REVOKE "Sec-Fetch-Site: same-origin\r\nContent-Type: text/plain\r\n"
                              "Content-Length: 2\r\n\r\n{}"),
               -EPERM);
    /* A body without any type. */
    EXPECT_INT(allowed(REVOKE "Content-Length: 2\r\n\r\n{}"), -EPERM);
    /* A change asked with another method. */
    EXPECT_INT(allowed("PUT /api/v1/peers/tun1/revoke HTTP/1.1\r\nHost: gw\r\n\r\n"), -EPERM);
}

/* What api_handle answers before any handler needs the daemon: the page
 * and whoami (lines of the route table) and the 403 of a cross-site write. */
static bool handled(struct conn *c, const struct http_request *req, struct api_reply *r)
{
    if (!req)
        return false;
    api_handle(NULL, c, req, r);
    return r->status != 0;
}

static void test_intercept(void)
{
    static struct conn c;
    struct api_reply r = {0};
    const struct http_request *req;

    strcpy(c.peer, "admin1");
    strcpy(c.serial, "01");
    c.role = ROLE_ADMIN;
    /* The cross-site POST never reaches the API's routes: 403, JSON error. */
    req = parse(REVOKE "Origin: https://evil.example\r\nSec-Fetch-Site: cross-site\r\n" JSON_BODY);
    CU_ASSERT_TRUE(handled(&c, req, &r));
    EXPECT_INT(r.status, 403);
    CU_ASSERT_TRUE(r.body && strstr(r.body, "{\"error\":\"cross-site request refused") != NULL);
    free(r.body);
    memset(&r, 0, sizeof(r));
    /* The same-origin one would go on to the API's revoke. */
    EXPECT_INT(allowed(REVOKE "Origin: https://gw.example:8443\r\nSec-Fetch-Site: same-origin\r\n"
                       JSON_BODY),
               0);
    /* The page: gzip, the security headers, a strong ETag. */
    req = parse("GET / HTTP/1.1\r\nHost: gw\r\nAccept-Encoding: gzip, deflate, br\r\n\r\n");
    CU_ASSERT_TRUE(handled(&c, req, &r));
    EXPECT_INT(r.status, 200);
    CU_ASSERT_TRUE(r.body_len > 2 && (unsigned char)r.body[0] == 0x1f &&
                   (unsigned char)r.body[1] == 0x8b);
    CU_ASSERT_PTR_NOT_NULL(strstr(r.extra_headers, "Content-Security-Policy: default-src 'self'; "
                                                   "frame-ancestors 'none'"));
    CU_ASSERT_PTR_NOT_NULL(strstr(r.extra_headers, "Referrer-Policy: no-referrer\r\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(r.extra_headers, "Content-Encoding: gzip\r\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(r.extra_headers, "ETag: \""));
    free(r.body);
    memset(&r, 0, sizeof(r));
    /* Asked again with its ETag: 304 and no body. */
    {
        char raw[512], etag[80] = "";
        const char *s = strstr(handled(&c,
                                             parse("GET /ui/app.js HTTP/1.1\r\nHost: gw\r\n"
                                                   "Accept-Encoding: gzip\r\n\r\n"),
                                             &r)
                                   ? r.extra_headers
                                   : "",
                               "ETag: ");
        CU_ASSERT_PTR_NOT_NULL_FATAL(s);
        sscanf(s, "ETag: %79s", etag);
        free(r.body);
        memset(&r, 0, sizeof(r));
        snprintf(raw, sizeof(raw),
                 "GET /ui/app.js HTTP/1.1\r\nHost: gw\r\n"
                 "Accept-Encoding: gzip\r\nIf-None-Match: \"x\", %s\r\n\r\n",
                 etag);
        CU_ASSERT_TRUE(handled(&c, parse(raw), &r));
        EXPECT_INT(r.status, 304);
        CU_ASSERT_PTR_NULL(r.body);
    }
    /* No gzip accepted: 406 with what to do. */
    memset(&r, 0, sizeof(r));
    CU_ASSERT_TRUE(handled(&c,
                                 parse("GET /ui/peers HTTP/1.1\r\nHost: gw\r\n"
                                       "Accept-Encoding: gzip;q=0, identity\r\n\r\n"),
                                 &r));
    EXPECT_INT(r.status, 406);
    free(r.body);
    /* whoami names the caller and its role. */
    memset(&r, 0, sizeof(r));
    CU_ASSERT_TRUE(
        handled(&c, parse("GET /api/v1/whoami HTTP/1.1\r\nHost: gw\r\n\r\n"), &r));
    CU_ASSERT_TRUE(r.body && strstr(r.body, "\"role\":\"admin\"") != NULL);
    free(r.body);
    http_reader_free(rd);
    rd = NULL;
}

/* The page is the management listener's: a tunnel (or uplink) listener
 * that answers the API gives its 404 for the page's paths, whoami still. */
static void test_page_only_on_management(void)
{
    static const struct service tunnel_svc = {.name = "tunnel"};
    static const struct service mgmt_svc = {.name = "management"};
    static struct listener l;
    static struct conn c;
    struct api_reply r = {0};

    strcpy(c.peer, "admin1");
    c.role = ROLE_ADMIN;
    c.l = &l;
    l.svc = &tunnel_svc;
    CU_ASSERT_TRUE(handled(&c, parse("GET / HTTP/1.1\r\nHost: gw\r\n"
                                     "Accept-Encoding: gzip\r\n\r\n"), &r));
    EXPECT_INT(r.status, 404);
    CU_ASSERT_TRUE(r.body && strstr(r.body, "no such resource: /") != NULL);
    free(r.body);
    memset(&r, 0, sizeof(r));
    CU_ASSERT_TRUE(handled(&c, parse("GET /ui/app.js HTTP/1.1\r\nHost: gw\r\n"
                                     "Accept-Encoding: gzip\r\n\r\n"), &r));
    EXPECT_INT(r.status, 404);
    free(r.body);
    memset(&r, 0, sizeof(r));
    CU_ASSERT_TRUE(handled(&c, parse("GET /api/v1/whoami HTTP/1.1\r\nHost: gw\r\n\r\n"), &r));
    EXPECT_INT(r.status, 200);
    free(r.body);
    memset(&r, 0, sizeof(r));
    l.svc = &mgmt_svc;
    CU_ASSERT_TRUE(handled(&c, parse("GET /ui/app.js HTTP/1.1\r\nHost: gw\r\n"
                                     "Accept-Encoding: gzip\r\n\r\n"), &r));
    EXPECT_INT(r.status, 200);
    free(r.body);
    http_reader_free(rd);
    rd = NULL;
}

/* A page on another site makes the browser read with the admin's
 * certificate: 403 whatever the path, so no status tells a peer name. */
static void test_cross_site_read_refused(void)
{
    static struct conn c;
    static const char *const reads[] = {
        "GET /api/v1/peers/tun1 HTTP/1.1\r\nHost: gw\r\nSec-Fetch-Site: cross-site\r\n\r\n",
        "GET /api/v1/peers/nosuch HTTP/1.1\r\nHost: gw\r\nSec-Fetch-Site: cross-site\r\n\r\n",
        "GET /api/v1/whoami HTTP/1.1\r\nHost: gw\r\nSec-Fetch-Site: same-site\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: gw\r\nAccept-Encoding: gzip\r\n"
        "Sec-Fetch-Site: cross-site\r\n\r\n",
        "HEAD /ui/app.js HTTP/1.1\r\nHost: gw\r\nAccept-Encoding: gzip\r\n"
        "Sec-Fetch-Site: cross-site\r\n\r\n",
    };
    struct api_reply r = {0};

    strcpy(c.peer, "admin1");
    c.role = ROLE_ADMIN;
    for (size_t i = 0; i < sizeof(reads) / sizeof(reads[0]); i++) {
        CU_ASSERT_TRUE(handled(&c, parse(reads[i]), &r));
        EXPECT_INT(r.status, 403);
        CU_ASSERT_TRUE(r.body && strstr(r.body, "cross-site request refused") != NULL);
        free(r.body);
        memset(&r, 0, sizeof(r));
    }
    /* Its own page, a typed address, curl: answered. */
    CU_ASSERT_TRUE(handled(&c,
                           parse("GET /api/v1/whoami HTTP/1.1\r\nHost: gw\r\n"
                                 "Sec-Fetch-Site: same-origin\r\n\r\n"),
                           &r));
    EXPECT_INT(r.status, 200);
    free(r.body);
    memset(&r, 0, sizeof(r));
    CU_ASSERT_TRUE(handled(&c,
                           parse("GET / HTTP/1.1\r\nHost: gw\r\nAccept-Encoding: gzip\r\n"
                                 "Sec-Fetch-Site: none\r\n\r\n"),
                           &r));
    EXPECT_INT(r.status, 200);
    free(r.body);
    http_reader_free(rd);
    rd = NULL;
}

/* HEAD on the page is its GET (conn.c sends the head only), not a 405. */
static void test_head_page(void)
{
    static struct conn c;
    struct api_reply r = {0};

    strcpy(c.peer, "mon1");
    c.role = ROLE_MONITOR;
    CU_ASSERT_TRUE(
        handled(&c, parse("HEAD / HTTP/1.1\r\nHost: gw\r\nAccept-Encoding: gzip\r\n\r\n"), &r));
    EXPECT_INT(r.status, 200);
    CU_ASSERT_TRUE(r.extra_headers && strstr(r.extra_headers, "ETag: \"") != NULL);
    free(r.body);
    memset(&r, 0, sizeof(r));
    CU_ASSERT_TRUE(handled(&c,
                           parse("HEAD /ui/peers HTTP/1.1\r\nHost: gw\r\n"
                                 "Accept-Encoding: gzip\r\n\r\n"),
                           &r));
    EXPECT_INT(r.status, 200);
    free(r.body);
    http_reader_free(rd);
    rd = NULL;
}

static void test_header_lists(void)
{
    CU_ASSERT_TRUE(web_accepts_gzip("gzip"));
    CU_ASSERT_TRUE(web_accepts_gzip("deflate, GZIP;q=0.5"));
    CU_ASSERT_TRUE(web_accepts_gzip("*"));
    CU_ASSERT_FALSE(web_accepts_gzip(NULL));
    CU_ASSERT_FALSE(web_accepts_gzip("identity"));
    CU_ASSERT_FALSE(web_accepts_gzip("gzip;q=0"));
    CU_ASSERT_FALSE(web_accepts_gzip("gzip; q=0.000, *"));
    CU_ASSERT_FALSE(web_accepts_gzip("gzipx"));
    CU_ASSERT_TRUE(web_etag_matches("\"a\"", "\"a\""));
    CU_ASSERT_TRUE(web_etag_matches("W/\"a\"", "\"a\""));
    CU_ASSERT_TRUE(web_etag_matches("\"b\" , \"a\"", "\"a\""));
    CU_ASSERT_TRUE(web_etag_matches("*", "\"a\""));
    CU_ASSERT_FALSE(web_etag_matches("\"ab\"", "\"a\""));
    CU_ASSERT_FALSE(web_etag_matches(NULL, "\"a\""));
}

static const struct cu_test tests[] = {
    {"same-origin and non-browser writes pass", test_same_origin_write_passes},
    {"a cross-site POST is refused", test_cross_site_post_refused},
    {"page, 304, 406, whoami, 403 before the API", test_intercept},
    {"Accept-Encoding and If-None-Match lists", test_header_lists},
    {"the page only on the management listener", test_page_only_on_management},
    {"a cross-site read is refused, same-origin and none answered",
     test_cross_site_read_refused},
    {"HEAD on the page answers as GET", test_head_page},
};

CU_MAIN("web", tests)
