/* api-codec (gateway/daemon/session/api-codec.c): the API's request bodies
 * and the one errno-to-HTTP map, with each caller's statuses as they were
 * before the map was one (tests/interop/daemon.sh and est.sh see them). */
#include <errno.h>
#include <string.h>

#include "api-codec.h"
#include "cunit-main.h"
#include "registry.h"

static void test_errno_map(void)
{
    /* POST /api/v1/peers (pki_enroll) */
    EXPECT_INT(api_errno_status(API_OP_ENROLL, -EEXIST), 409);
    EXPECT_INT(api_errno_status(API_OP_ENROLL, -EINVAL), 400);
    EXPECT_INT(api_errno_status(API_OP_ENROLL, -EBADMSG), 400);
    EXPECT_INT(api_errno_status(API_OP_ENROLL, -ENOENT), 500);
    EXPECT_INT(api_errno_status(API_OP_ENROLL, -EACCES), 500);
    EXPECT_INT(api_errno_status(API_OP_ENROLL, -EIO), 500);
    /* POST /api/v1/peers/NAME/revoke (pki_revoke) */
    EXPECT_INT(api_errno_status(API_OP_REVOKE, -ENOENT), 404);
    EXPECT_INT(api_errno_status(API_OP_REVOKE, -EALREADY), 409);
    EXPECT_INT(api_errno_status(API_OP_REVOKE, -EINVAL), 500);
    EXPECT_INT(api_errno_status(API_OP_REVOKE, -EEXIST), 500);
    EXPECT_INT(api_errno_status(API_OP_REVOKE, -EBADMSG), 500);
    /* EST simpleenroll / simplereenroll */
    EXPECT_INT(api_errno_status(API_OP_EST, -EEXIST), 409);
    EXPECT_INT(api_errno_status(API_OP_EST, -EINVAL), 400);
    EXPECT_INT(api_errno_status(API_OP_EST, -EACCES), 403);
    EXPECT_INT(api_errno_status(API_OP_EST, -ENOENT), 403);
    EXPECT_INT(api_errno_status(API_OP_EST, -EALREADY), 403);
    EXPECT_INT(api_errno_status(API_OP_EST, -ETIMEDOUT), 403);
    EXPECT_INT(api_errno_status(API_OP_EST, -EBADMSG), 500);
    EXPECT_INT(api_errno_status(API_OP_EST, -ENOMEM), 500);
    EXPECT_INT(api_errno_status((enum api_op)7, -EEXIST), 500);
}

static int peer(const char *body, struct api_peer_req *r, char *err)
{
    return api_peer_req_parse(body, r, err, 512);
}

static void test_peer_body(void)
{
    struct api_peer_req r;
    char err[512];

    EXPECT_INT(peer("{\"name\":\"s1\",\"role\":\"tunnel\",\"csr\":\"PEM\",\"days\":30,"
                    "\"networks\":[\"10.1.0.0/16\",\"2001:DB8:0::/64\"]}", &r, err), 0);
    EXPECT_STR(r.name, "s1");
    EXPECT_STR(r.role_name, "tunnel");
    EXPECT_INT(r.role, ROLE_TUNNEL);
    EXPECT_STR(r.csr, "PEM");
    EXPECT_INT(r.days, 30);
    EXPECT_INT(r.n_networks, 2);
    if (r.n_networks == 2) {
        EXPECT_STR(r.networks[0], "10.1.0.0/16");
        EXPECT_STR(r.networks[1], "2001:db8::/64");
    }
    api_peer_req_free(&r);
    EXPECT_INT(peer("{\"name\":\"a\",\"role\":\"admin\",\"csr\":\"x\"}", &r, err), 0);
    EXPECT_INT(r.days, 0);
    api_peer_req_free(&r);
}

static void test_peer_body_refused(void)
{
    static const struct {
        const char *body;
        int rc;
        const char *msg;
    } bad[] = {
        {"", -EBADMSG, "body is not a JSON object: "},
        {"[1]", -EBADMSG, "body is not a JSON object"},
        {"{\"role\":\"admin\",\"csr\":\"x\"}", -EINVAL, "\"name\" (string) is required"},
        {"{\"name\":1,\"role\":\"admin\",\"csr\":\"x\"}", -EINVAL, "\"name\" (string)"},
        {"{\"name\":\"a\",\"role\":\"root\",\"csr\":\"x\"}", -EINVAL,
         "\"role\" must be admin, monitor or tunnel"},
        {"{\"name\":\"a\",\"role\":\"admin\"}", -EINVAL, "\"csr\" (PEM string) is required"},
        {"{\"name\":\"a\",\"role\":\"admin\",\"csr\":\"x\",\"days\":0}", -EINVAL,
         "\"days\" must be a whole number from 1 to 3650"},
        {"{\"name\":\"a\",\"role\":\"admin\",\"csr\":\"x\",\"days\":\"30\"}", -EINVAL,
         "\"days\""},
        {"{\"name\":\"a\",\"role\":\"admin\",\"csr\":\"x\",\"days\":3651}", -EINVAL, "\"days\""},
        {"{\"name\":\"a\",\"role\":\"tunnel\",\"csr\":\"x\",\"networks\":\"10.0.0.0/8\"}",
         -EINVAL, "\"networks\" must be an array of at most 64 prefixes"},
        {"{\"name\":\"a\",\"role\":\"tunnel\",\"csr\":\"x\",\"networks\":[\"10.0.0.0/8\",7]}",
         -EINVAL, "networks[1]: not a string"},
        {"{\"name\":\"a\",\"role\":\"tunnel\",\"csr\":\"x\",\"networks\":[\"10.0.0.0/33\"]}",
         -EINVAL, "networks[0]: prefix length must be 0 to 32"},
        {"{\"name\":\"a\",\"role\":\"tunnel\",\"csr\":\"x\",\"networks\":[\"10.1.0.7/16\"]}",
         -EINVAL, "networks[0]: host bits are set"},
    };
    struct api_peer_req r;
    char err[512];

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        EXPECT_INT(peer(bad[i].body, &r, err), bad[i].rc);
        EXPECT_CONTAINS(err, bad[i].msg);
        api_peer_req_free(&r);
    }
}

static void test_revoke_body(void)
{
    char reason[32], err[256];

    EXPECT_INT(api_revoke_req_parse("", 0, reason, sizeof(reason), err, sizeof(err)), 0);
    EXPECT_STR(reason, "unspecified");
    EXPECT_INT(api_revoke_req_parse("{\"reason\":\"keyCompromise\"}", 26, reason,
                                    sizeof(reason), err, sizeof(err)), 0);
    EXPECT_STR(reason, "keyCompromise");
    EXPECT_INT(api_revoke_req_parse("{}", 2, reason, sizeof(reason), err, sizeof(err)), 0);
    EXPECT_STR(reason, "unspecified");
    EXPECT_INT(api_revoke_req_parse("nope", 4, reason, sizeof(reason), err, sizeof(err)),
               -EBADMSG);
    EXPECT_STR(err, "body is not a JSON object");
    EXPECT_INT(api_revoke_req_parse("{\"reason\":null}", 15, reason, sizeof(reason), err,
                                    sizeof(err)), -EINVAL);
    EXPECT_CONTAINS(err, "\"reason\" must be unspecified, keyCompromise");
    EXPECT_INT(api_revoke_req_parse("{\"reason\":\"whim\"}", 17, reason, sizeof(reason), err,
                                    sizeof(err)), -EINVAL);
}

static void test_session_id(void)
{
    uint64_t id = 0;

    EXPECT_INT(api_session_id_parse("42", &id), 0);
    EXPECT_INT(id, 42);
    EXPECT_INT(api_session_id_parse("", &id), -EINVAL);
    EXPECT_INT(api_session_id_parse("4x", &id), -EINVAL);
    EXPECT_INT(api_session_id_parse("0x10", &id), -EINVAL);
}

/* POST /api/v1/invites: what the page sends, and what it is told. */
static void test_invite_body(void)
{
    struct api_invite_req ir;
    char err[512] = "";

    EXPECT_INT(api_invite_req_parse("{\"name\":\"phone1\",\"role\":\"tunnel\",\"ttl\":\"1h\","
                                    "\"networks\":[\"10.20.0.0/24\"]}",
                                    &ir, err, sizeof(err)),
               0);
    EXPECT_STR(ir.peer.name, "phone1");
    EXPECT_INT(ir.peer.role, ROLE_TUNNEL);
    EXPECT_INT(ir.ttl, 3600);
    EXPECT_INT(ir.peer.n_networks, 1);
    if (ir.peer.n_networks == 1)
        EXPECT_STR(ir.peer.networks[0], "10.20.0.0/24");
    api_peer_req_free(&ir.peer);
    /* The default lifetime is a day. */
    EXPECT_INT(api_invite_req_parse("{\"name\":\"m1\",\"role\":\"monitor\"}", &ir, err,
                                    sizeof(err)),
               0);
    EXPECT_INT(ir.ttl, 86400);
    api_peer_req_free(&ir.peer);
    static const struct {
        const char *body, *says;
    } bad[] = {
        {"", "not a JSON object"},
        {"[]", "not a JSON object"},
        {"{\"role\":\"monitor\"}", "\"name\" must be a peer name"},
        {"{\"name\":\"../x\",\"role\":\"monitor\"}", "\"name\" must be a peer name"},
        {"{\"name\":\"p\",\"role\":\"root\"}", "\"role\" must be"},
        {"{\"name\":\"p\",\"role\":\"monitor\",\"ttl\":\"1y\"}", "not a duration"},
        {"{\"name\":\"p\",\"role\":\"monitor\",\"ttl\":3600}", "\"ttl\" must be"},
        {"{\"name\":\"p\",\"role\":\"monitor\",\"ttl\":\"400d\"}", "not a duration"},
        {"{\"name\":\"p\",\"role\":\"monitor\",\"networks\":[\"10.0.0.0/8\"]}",
         "are for tunnel peers"},
        {"{\"name\":\"p\",\"role\":\"tunnel\",\"networks\":[\"x\"]}", "networks[0]"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        CU_ASSERT_TRUE(api_invite_req_parse(bad[i].body, &ir, err, sizeof(err)) < 0);
        const char *says = bad[i].says ? bad[i].says : "";

        if (!strstr(err, says))
            fprintf(stderr, "body %s: expected '%s' in '%s'\n", bad[i].body, says, err);
        CU_ASSERT_PTR_NOT_NULL(strstr(err, says));
        api_peer_req_free(&ir.peer);
    }
}

static const struct cu_test tests[] = {
    {"POST invites body read and refused", test_invite_body},
    {"one errno map, each caller's statuses", test_errno_map},
    {"POST peers body read", test_peer_body},
    {"POST peers body refused with the field named", test_peer_body_refused},
    {"revoke body: reason", test_revoke_body},
    {"session id", test_session_id},
};

CU_MAIN("api-codec", tests)
