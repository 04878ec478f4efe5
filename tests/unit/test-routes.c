/* The management API's route table (gateway/daemon/session/api.c): every
 * route's method, role and slow flag, 404 against 405 with its Allow
 * header, and path parameters, hostile ones included. The lookup is pure,
 * so no socket and no daemon are needed. */
#include <errno.h>
#include <string.h>

#include "api.h"
#include "cunit-main.h"
#include "http.h"
#include "registry.h"

struct want {
    int method;
    const char *path;
    const char *pattern; /* the route's path in the table */
    int role;
    bool slow;
    const char *param;
};

/* Every route, with a path that reaches it. */
static const struct want every[] = {
    {HTTP_M_GET, "/api/v1/status", "/api/v1/status", ROLE_MONITOR, false, ""},
    {HTTP_M_GET, "/api/v1/peers", "/api/v1/peers", ROLE_MONITOR, false, ""},
    {HTTP_M_POST, "/api/v1/peers", "/api/v1/peers", ROLE_ADMIN, true, ""},
    {HTTP_M_GET, "/api/v1/peers/spoke1", "/api/v1/peers/*", ROLE_MONITOR, false, "spoke1"},
    {HTTP_M_POST, "/api/v1/peers/spoke1/revoke", "/api/v1/peers/*/revoke", ROLE_ADMIN, true,
     "spoke1"},
    {HTTP_M_GET, "/api/v1/sessions", "/api/v1/sessions", ROLE_MONITOR, false, ""},
    {HTTP_M_DELETE, "/api/v1/sessions/42", "/api/v1/sessions/*", ROLE_ADMIN, false, "42"},
    {HTTP_M_GET, "/metrics", "/metrics", ROLE_MONITOR, false, ""},
    {HTTP_M_GET, "/api/v1/bans", "/api/v1/bans", ROLE_MONITOR, false, ""},
    {HTTP_M_DELETE, "/api/v1/bans/2001:db8::1", "/api/v1/bans/*", ROLE_ADMIN, false,
     "2001:db8::1"},
    {HTTP_M_GET, "/api/v1/ca", "/api/v1/ca", ROLE_MONITOR, false, ""},
    {HTTP_M_GET, "/api/v1/crl", "/api/v1/crl", ROLE_MONITOR, false, ""},
    {HTTP_M_GET, "/api/v1/invites", "/api/v1/invites", ROLE_MONITOR, false, ""},
    {HTTP_M_POST, "/api/v1/invites", "/api/v1/invites", ROLE_ADMIN, false, ""},
    {HTTP_M_DELETE, "/api/v1/invites/phone1", "/api/v1/invites/*", ROLE_ADMIN, false, "phone1"},
    {HTTP_M_GET, "/api/v1/audit", "/api/v1/audit", ROLE_MONITOR, false, ""},
    {HTTP_M_GET, "/api/v1/refusals", "/api/v1/refusals", ROLE_MONITOR, false, ""},
    {HTTP_M_GET, "/api/v1/whoami", "/api/v1/whoami", ROLE_MONITOR, false, ""},
    {HTTP_M_GET, "/", "/", ROLE_MONITOR, false, ""},
    {HTTP_M_GET, "/ui", "/ui", ROLE_MONITOR, false, ""},
    {HTTP_M_GET, "/ui/app.js", "/ui/*", ROLE_MONITOR, false, "app.js"},
};

static int find(int method, const char *path, const struct api_route **rt, char *param,
                const char **allow)
{
    *rt = NULL;
    *allow = NULL;
    param[0] = '\0';
    return api_route_find(method, path, rt, param, API_PARAM_MAX, allow);
}

static void test_every_route(void)
{
    const struct api_route *rt;
    const char *allow;
    char param[API_PARAM_MAX];
    size_t n;

    api_routes(&n);
    EXPECT_INT(n, sizeof(every) / sizeof(every[0]));
    for (size_t i = 0; i < sizeof(every) / sizeof(every[0]); i++) {
        const struct want *w = &every[i];

        EXPECT_INT(find(w->method, w->path, &rt, param, &allow), 0);
        if (!rt)
            continue;
        EXPECT_STR(rt->path, w->pattern);
        EXPECT_INT(rt->method, w->method);
        EXPECT_INT(rt->role, w->role);
        EXPECT_INT(rt->slow, w->slow);
        EXPECT_STR(param, w->param);
        CU_ASSERT_PTR_NOT_NULL(rt->handler);
    }
}

/* Admin may call everything; monitor only reads (GET); the table says so
 * for each line, and no write is open to monitor. */
static void test_roles(void)
{
    const struct api_route *rt;
    size_t n;

    rt = api_routes(&n);
    for (size_t i = 0; i < n; i++) {
        CU_ASSERT_TRUE(api_route_permits(&rt[i], ROLE_ADMIN));
        if (rt[i].method == HTTP_M_GET) {
            CU_ASSERT_TRUE(api_route_permits(&rt[i], ROLE_MONITOR));
        } else if (api_route_permits(&rt[i], ROLE_MONITOR)) {
            fprintf(stderr, "monitor may %d %s\n", rt[i].method, rt[i].path);
            CU_FAIL("monitor may write");
        }
        /* The slow pool is for the token's signatures: admin only. */
        if (rt[i].slow)
            EXPECT_INT(rt[i].role, ROLE_ADMIN);
    }
}

static void expect_405(int method, const char *path, const char *allow_want)
{
    const struct api_route *rt;
    const char *allow;
    char param[API_PARAM_MAX];

    if (find(method, path, &rt, param, &allow) != -EOPNOTSUPP)
        fprintf(stderr, "%d %.60s: expected 405\n", method, path);
    EXPECT_INT(find(method, path, &rt, param, &allow), -EOPNOTSUPP);
    CU_ASSERT_PTR_NULL(rt);
    EXPECT_STR(allow, allow_want);
}

static void expect_404(int method, const char *path)
{
    const struct api_route *rt;
    const char *allow;
    char param[API_PARAM_MAX];

    if (find(method, path, &rt, param, &allow) != -ENOENT)
        fprintf(stderr, "%d %.60s: expected 404\n", method, path);
    EXPECT_INT(find(method, path, &rt, param, &allow), -ENOENT);
    CU_ASSERT_PTR_NULL(rt);
}

/* The Allow headers tests/interop/daemon.sh and curl users see. */
static void test_405_allow(void)
{
    expect_405(HTTP_M_POST, "/api/v1/status", "Allow: GET\r\n");
    expect_405(HTTP_M_DELETE, "/api/v1/peers", "Allow: GET, POST\r\n");
    expect_405(HTTP_M_HEAD, "/api/v1/peers/spoke1/revoke", "Allow: POST\r\n");
    expect_405(HTTP_M_OTHER, "/api/v1/peers", "Allow: GET, POST\r\n");
    expect_405(HTTP_M_DELETE, "/api/v1/peers/spoke1", "Allow: GET\r\n");
    expect_405(HTTP_M_GET, "/api/v1/peers/spoke1/revoke", "Allow: POST\r\n");
    expect_405(HTTP_M_POST, "/api/v1/sessions", "Allow: GET\r\n");
    expect_405(HTTP_M_GET, "/api/v1/sessions/42", "Allow: DELETE\r\n");
    expect_405(HTTP_M_POST, "/metrics", "Allow: GET\r\n");
    expect_405(HTTP_M_DELETE, "/api/v1/bans", "Allow: GET\r\n");
    expect_405(HTTP_M_GET, "/api/v1/bans/192.0.2.7", "Allow: DELETE\r\n");
    expect_405(HTTP_M_DELETE, "/api/v1/invites", "Allow: GET, POST\r\n");
    expect_405(HTTP_M_GET, "/api/v1/invites/phone1", "Allow: DELETE\r\n");
    expect_405(HTTP_M_POST, "/api/v1/audit", "Allow: GET\r\n");
    expect_405(HTTP_M_DELETE, "/api/v1/refusals", "Allow: GET\r\n");
    expect_405(HTTP_M_POST, "/api/v1/whoami", "Allow: GET\r\n");
    /* The page is read, never written to. */
    expect_405(HTTP_M_POST, "/", "Allow: GET\r\n");
    expect_405(HTTP_M_DELETE, "/ui/app.js", "Allow: GET\r\n");
}

static void test_404(void)
{
    expect_404(HTTP_M_GET, "");
    expect_404(HTTP_M_GET, "//");
    expect_404(HTTP_M_GET, "/ui/");
    expect_404(HTTP_M_GET, "/ui/a/b.js");
    expect_404(HTTP_M_GET, "/ui/../etc/passwd");
    expect_404(HTTP_M_GET, "/api/v1/invites/");
    expect_404(HTTP_M_GET, "/api/v1/audit/1");
    expect_404(HTTP_M_GET, "/api/v1");
    expect_404(HTTP_M_GET, "/api/v1/");
    expect_404(HTTP_M_GET, "/api/v2/status");
    expect_404(HTTP_M_GET, "/api/v1/statusx");
    expect_404(HTTP_M_GET, "/api/v1/status/");
    expect_404(HTTP_M_GET, "/API/V1/STATUS");
    expect_404(HTTP_M_GET, "/metrics/");
    expect_404(HTTP_M_GET, "/api/v1/metrics");
    expect_404(HTTP_M_POST, "/api/v1/peers/spoke1/revoke/now");
    expect_404(HTTP_M_POST, "/api/v1/peers/spoke1/kick");
    expect_404(HTTP_M_POST, "/api/v1/peers//revoke");
    expect_404(HTTP_M_GET, "/.well-known/est/cacerts");
}

/* A parameter is one whole segment: never empty, never a '/', never
 * normalised, never longer than its route takes; decoded once. */
static void test_hostile_params(void)
{
    const struct api_route *rt;
    const char *allow;
    char param[API_PARAM_MAX], name[200];

    /* Trailing slash: an empty segment, or one too many. */
    expect_404(HTTP_M_GET, "/api/v1/peers/");
    expect_404(HTTP_M_GET, "/api/v1/peers/spoke1/");
    expect_404(HTTP_M_DELETE, "/api/v1/sessions/");
    expect_404(HTTP_M_DELETE, "/api/v1/bans/");
    expect_404(HTTP_M_DELETE, "/api/v1/bans/192.0.2.7/");
    /* ".." is a name the registry does not hold, not a way up. */
    EXPECT_INT(find(HTTP_M_GET, "/api/v1/peers/..", &rt, param, &allow), 0);
    EXPECT_STR(param, "..");
    expect_404(HTTP_M_GET, "/api/v1/peers/../status");
    expect_404(HTTP_M_POST, "/api/v1/peers/../peers/x/revoke");
    expect_404(HTTP_M_GET, "/api/v1/peers/../../metrics");
    /* Percent escapes are decoded once; NUL, '/' and a bad escape are no
     * name at all (400). */
    EXPECT_INT(find(HTTP_M_GET, "/api/v1/peers/a%00b", &rt, param, &allow), -EINVAL);
    EXPECT_INT(find(HTTP_M_POST, "/api/v1/peers/%2e%2e%2fx/revoke", &rt, param, &allow),
               -EINVAL);
    EXPECT_INT(find(HTTP_M_POST, "/api/v1/peers/%2e%2e%2Fx/revoke", &rt, param, &allow),
               -EINVAL);
    EXPECT_INT(find(HTTP_M_POST, "/api/v1/peers/%2e%2e/revoke", &rt, param, &allow), 0);
    EXPECT_STR(param, "..");
    /* Overlong: each route takes its own length, longer is no resource. */
    memset(name, 'a', sizeof(name));
    memcpy(name, "/api/v1/peers/", 14);
    name[14 + 127] = '\0';
    EXPECT_INT(find(HTTP_M_GET, name, &rt, param, &allow), 0);
    EXPECT_INT(strlen(param), 127);
    name[14 + 127] = 'a';
    name[14 + 128] = '\0';
    expect_404(HTTP_M_GET, name);
    expect_404(HTTP_M_DELETE, "/api/v1/sessions/123456789012345678901234567890123");
    EXPECT_INT(find(HTTP_M_DELETE, "/api/v1/sessions/1234567890123456789012345678901", &rt,
                    param, &allow), 0);
    memset(name, '1', sizeof(name));
    memcpy(name, "/api/v1/bans/", 13);
    name[13 + 64] = '\0';
    expect_404(HTTP_M_DELETE, name);
    name[13 + 63] = '\0';
    EXPECT_INT(find(HTTP_M_DELETE, name, &rt, param, &allow), 0);
    /* A caller's buffer shorter than the segment is refused, not cut. */
    EXPECT_INT(api_route_find(HTTP_M_GET, "/api/v1/peers/spoke1", &rt, param, 4, &allow),
               -ENOBUFS);
}

/* GET /api/v1/peers/a%2Db is the peer a-b: each escape decoded once. */
static void test_percent_escapes(void)
{
    static const struct {
        const char *path, *param; /* param NULL: refused (-EINVAL, 400) */
    } cases[] = {
        {"/api/v1/peers/a%2Db", "a-b"},
        {"/api/v1/peers/a%2db", "a-b"},
        {"/api/v1/peers/%73poke1", "spoke1"},
        {"/api/v1/peers/a%2541", "a%41"},
        {"/api/v1/peers/%25", "%"},
        {"/api/v1/peers/plain-name", "plain-name"},
        {"/api/v1/peers/a%00", NULL},
        {"/api/v1/peers/a%2fb", NULL},
        {"/api/v1/peers/a%2Fb", NULL},
        {"/api/v1/peers/a%", NULL},
        {"/api/v1/peers/a%2", NULL},
        {"/api/v1/peers/a%zz", NULL},
        {"/api/v1/peers/a%g0", NULL},
        {"/api/v1/peers/a%%41", NULL},
    };
    const struct api_route *rt;
    const char *allow;
    char param[API_PARAM_MAX];

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int rc = find(HTTP_M_GET, cases[i].path, &rt, param, &allow);

        if (rc != (cases[i].param ? 0 : -EINVAL))
            fprintf(stderr, "%s: expected %s, got %d\n", cases[i].path,
                    cases[i].param ? cases[i].param : "-EINVAL", rc);
        EXPECT_INT(rc, cases[i].param ? 0 : -EINVAL);
        if (cases[i].param)
            EXPECT_STR(param, cases[i].param);
    }
    /* The same decoding for every named segment. */
    EXPECT_INT(find(HTTP_M_DELETE, "/api/v1/invites/ph%6Fne1", &rt, param, &allow), 0);
    EXPECT_STR(param, "phone1");
    EXPECT_INT(find(HTTP_M_DELETE, "/api/v1/bans/2001%3Adb8%3A%3A1", &rt, param, &allow), 0);
    EXPECT_STR(param, "2001:db8::1");
}

/* HEAD finds the GET line of a path (the answer's body is cut by conn.c). */
static void test_head(void)
{
    const struct api_route *rt;
    const char *allow;
    char param[API_PARAM_MAX];

    EXPECT_INT(find(HTTP_M_HEAD, "/", &rt, param, &allow), 0);
    CU_ASSERT_TRUE(rt && rt->method == HTTP_M_GET && strcmp(rt->path, "/") == 0);
    EXPECT_INT(find(HTTP_M_HEAD, "/ui/app.js", &rt, param, &allow), 0);
    EXPECT_STR(param, "app.js");
    EXPECT_INT(find(HTTP_M_HEAD, "/api/v1/peers", &rt, param, &allow), 0);
    CU_ASSERT_TRUE(rt && rt->method == HTTP_M_GET);
}

/* api_is_slow reads the same table: only the two signing writes. */
static void test_slow(void)
{
    struct http_request req = {0};
    static const struct {
        int method;
        const char *path;
        bool slow;
    } cases[] = {
        {HTTP_M_POST, "/api/v1/peers", true},
        {HTTP_M_POST, "/api/v1/peers/spoke1/revoke", true},
        {HTTP_M_GET, "/api/v1/peers", false},
        {HTTP_M_GET, "/api/v1/peers/spoke1", false},
        {HTTP_M_GET, "/api/v1/peers/spoke1/revoke", false},
        {HTTP_M_POST, "/api/v1/peers/spoke1", false},
        {HTTP_M_POST, "/api/v1/peers/", false},
        {HTTP_M_DELETE, "/api/v1/sessions/1", false},
        {HTTP_M_GET, "/metrics", false},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        req.method = (enum http_method_id)cases[i].method;
        req.path = (char *)cases[i].path;
        if (api_is_slow(&req) != cases[i].slow)
            fprintf(stderr, "slow(%d %s): expected %d\n", cases[i].method, cases[i].path,
                    cases[i].slow);
        CU_ASSERT_EQUAL(api_is_slow(&req), cases[i].slow);
    }
}

static const struct cu_test tests[] = {
    {"every route: method, role, slow, parameter", test_every_route},
    {"monitor reads, admin writes", test_roles},
    {"405 with the Allow header of the path", test_405_allow},
    {"404 for a path no route has", test_404},
    {"hostile parameters: .., %00, overlong, trailing slash", test_hostile_params},
    {"api_is_slow reads the table", test_slow},
    {"percent-escapes in a name: decoded once, NUL and '/' refused", test_percent_escapes},
    {"HEAD finds the GET line", test_head},
};

CU_MAIN("routes", tests)
