/* The service table (gateway/daemon/session/service.c): what conn.c does for
 * each listener kind, read from the table instead of from which listener a
 * connection came in on. */
#include <string.h>

#include "api.h"
#include "cunit-main.h"
#include "est.h"
#include "http.h"
#include "service.h"

static bool slow(const struct service *s, int method, const char *path)
{
    struct http_request req = {0};

    req.method = (enum http_method_id)method;
    req.path = (char *)path;
    return s->is_slow(&req);
}

/* The API: a certificate required in the handshake, JSON errors, the
 * handshake's session serves HTTP after the gate opens. */
static void test_management(void)
{
    const struct service *s = &service_management;

    EXPECT_STR(s->name, "management");
    EXPECT_INT(s->verify, SVC_CERT_REQUIRED);
    EXPECT_INT(s->errors, SVC_ERRORS_JSON);
    CU_ASSERT_PTR_NOT_NULL(s->on_open);
    CU_ASSERT_PTR_EQUAL(s->handle, api_handle);
    CU_ASSERT_PTR_EQUAL(s->is_slow, api_is_slow);
    CU_ASSERT_TRUE(slow(s, HTTP_M_POST, "/api/v1/peers"));
    CU_ASSERT_TRUE(slow(s, HTTP_M_POST, "/api/v1/peers/a/revoke"));
    CU_ASSERT_FALSE(slow(s, HTTP_M_GET, "/api/v1/peers"));
    CU_ASSERT_FALSE(slow(s, HTTP_M_POST, "/.well-known/est/simpleenroll"));
}

/* EST (RFC 7030 3.3.2): the certificate is optional in the handshake and
 * judged by the handler; errors are text/plain; signing requests are slow. */
static void test_enroll(void)
{
    const struct service *s = &service_enroll;

    EXPECT_STR(s->name, "enroll");
    EXPECT_INT(s->verify, SVC_CERT_FOR_HANDLER);
    EXPECT_INT(s->errors, SVC_ERRORS_TEXT);
    CU_ASSERT_PTR_NULL(s->on_open);
    CU_ASSERT_PTR_EQUAL(s->handle, est_handle);
    CU_ASSERT_TRUE(slow(s, HTTP_M_POST, "/.well-known/est/simpleenroll"));
    CU_ASSERT_TRUE(slow(s, HTTP_M_POST, "/.well-known/est/simplereenroll"));
    CU_ASSERT_FALSE(slow(s, HTTP_M_GET, "/.well-known/est/cacerts"));
    CU_ASSERT_FALSE(slow(s, HTTP_M_GET, "/.well-known/est/simpleenroll"));
    CU_ASSERT_FALSE(slow(s, HTTP_M_HEAD, "/.well-known/est/simpleenroll"));
    CU_ASSERT_FALSE(slow(s, HTTP_M_DELETE, "/.well-known/est/simplereenroll"));
    CU_ASSERT_FALSE(slow(s, HTTP_M_GET, "/.well-known/est/csrattrs"));
    CU_ASSERT_FALSE(slow(s, HTTP_M_POST, "/.well-known/est/simpleenroll/"));
    CU_ASSERT_FALSE(slow(s, HTTP_M_POST, "/api/v1/peers"));
}

/* The hub's tunnel listener takes the connection over once it is open. */
static void test_tunnel(void)
{
    const struct service *s = &service_tunnel;

    EXPECT_STR(s->name, "tunnel");
    EXPECT_INT(s->verify, SVC_CERT_REQUIRED);
    EXPECT_INT(s->errors, SVC_ERRORS_JSON);
    CU_ASSERT_PTR_NOT_NULL(s->on_open);
    CU_ASSERT_PTR_NOT_NULL(s->handle);
    CU_ASSERT_PTR_NOT_NULL(s->is_slow);
}

/* Our uplinks: a required certificate, nothing on open (tunnel.c drives
 * them), JSON errors. */
static void test_uplink(void)
{
    const struct service *s = &service_uplink;

    EXPECT_STR(s->name, "uplink");
    EXPECT_INT(s->verify, SVC_CERT_REQUIRED);
    EXPECT_INT(s->errors, SVC_ERRORS_JSON);
    CU_ASSERT_PTR_NULL(s->on_open);
    CU_ASSERT_PTR_NOT_NULL(s->handle);
    CU_ASSERT_PTR_NOT_NULL(s->is_slow);
}

/* Only EST lets a session with a refused certificate reach a handler. */
static void test_only_est_defers(void)
{
    const struct service *all[] = {&service_management, &service_tunnel, &service_enroll,
                                   &service_uplink};

    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
        if (all[i] != &service_enroll)
            EXPECT_INT(all[i]->verify, SVC_CERT_REQUIRED);
}

static const struct cu_test tests[] = {
    {"management: required certificate, JSON, API", test_management},
    {"enroll: certificate for the handler, text, EST", test_enroll},
    {"tunnel: required certificate, taken over on open", test_tunnel},
    {"uplink: required certificate, no on-open", test_uplink},
    {"only EST defers the certificate to the handler", test_only_est_defers},
};

CU_MAIN("service", tests)
