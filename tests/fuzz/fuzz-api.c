/*
 * fuzz-api: the request bytes of the management API (docs/mtlsgwd.md),
 * through the very functions api.c calls (api-codec.h):
 *
 *   POST /api/v1/peers           api_peer_req_parse: json-c, "name",
 *                                "role" (role_parse), "csr", "days",
 *                                "networks" (cidr_parse, then the
 *                                canonical form cidr_format writes)
 *   POST /api/v1/peers/N/revoke  api_revoke_req_parse ("reason")
 *   DELETE /api/v1/sessions/ID   api_session_id_parse
 *   the path of any request      api_path_match against the route patterns
 *
 * The handlers themselves need a daemon and a token; everything they do
 * with the peer's bytes before pki_enroll/pki_revoke is here. The raw
 * input also goes, as one string, to cidr_parse, role_parse,
 * peer_name_valid and time_parse_utc: the console and the registry reach
 * them with text json-c never saw.
 */
#include <arpa/inet.h>
#include <string.h>

#include <json-c/json.h>

#include "api-codec.h"
#include "cidr.h"
#include "fuzz.h"
#include "pki.h"
#include "registry.h"

/* A prefix that parsed must format, parse again to itself and contain its
 * own address. */
static void check_cidr(const char *s)
{
    struct cidr c, again;
    const char *why = NULL;
    char canon[64];

    if (cidr_parse(s, &c, &why) < 0) {
        FUZZ_CHECK(why != NULL);
        (void)strlen(why);
        return;
    }
    FUZZ_CHECK(c.family == AF_INET || c.family == AF_INET6);
    FUZZ_CHECK(c.plen <= (c.family == AF_INET ? 32u : 128u));
    memset(canon, 0x5a, sizeof(canon));
    cidr_format(&c, canon, 50); /* the documented minimum */
    FUZZ_CHECK(memchr(canon, '\0', 50) != NULL);
    FUZZ_CHECK(cidr_parse(canon, &again, &why) == 0);
    FUZZ_CHECK(again.family == c.family && again.plen == c.plen);
    FUZZ_CHECK(memcmp(again.addr, c.addr, c.family == AF_INET ? 4 : 16) == 0);
    FUZZ_CHECK(cidr_contains(&c, c.family, c.addr));
}

static void check_string(const char *s)
{
    enum peer_role role;
    int64_t t;
    char buf[32];

    check_cidr(s);
    if (role_parse(s, &role) == 0)
        FUZZ_CHECK(strcmp(role_name(role), s) == 0);
    if (peer_name_valid(s))
        FUZZ_CHECK(strlen(s) >= 1 && strlen(s) <= 63);
    (void)pki_reason_valid(s);
    if (time_parse_utc(s, &t) == 0) {
        /* What the registry writes it must read back (regress/api/leap-end). */
        int64_t again;
        time_format_utc(t, buf, sizeof(buf));
        FUZZ_CHECK(time_parse_utc(buf, &again) == 0 && again == t);
    }
}

/* What the handler gets from a body that parsed: a valid role, days in
 * range, and networks in the canonical form that parses back to itself. */
static void post_peer(const char *body)
{
    struct api_peer_req pr;
    char err[512];
    enum peer_role role;

    if (api_peer_req_parse(body, &pr, err, sizeof(err)) == 0) {
        FUZZ_CHECK(pr.name && pr.csr && pr.role_name);
        FUZZ_CHECK(role_parse(pr.role_name, &role) == 0 && (int)role == pr.role);
        FUZZ_CHECK(pr.days <= 3650);
        FUZZ_CHECK(pr.n_networks <= API_MAX_NETWORKS);
        check_string(pr.name);
        for (size_t i = 0; i < pr.n_networks; i++) {
            check_cidr(pr.networks[i]);
            FUZZ_CHECK(strlen(pr.networks[i]) < 64);
        }
    } else {
        FUZZ_CHECK(memchr(err, '\0', sizeof(err)) != NULL && err[0]);
    }
    api_peer_req_free(&pr);
}

static void post_revoke(const char *body, size_t len)
{
    char reason[32], err[256];

    if (api_revoke_req_parse(body, len, reason, sizeof(reason), err, sizeof(err)) == 0)
        FUZZ_CHECK(pki_reason_valid(reason));
}

/* A path: a segment matched is one whole, non-empty segment that fits. */
static void check_path(const char *path)
{
    static const char *const patterns[] = {"/api/v1/peers", "/api/v1/peers/*",
                                           "/api/v1/peers/*/revoke", "/api/v1/sessions/*",
                                           "/api/v1/bans/*"};
    char seg[64];
    uint64_t id;

    for (size_t i = 0; i < sizeof(patterns) / sizeof(patterns[0]); i++) {
        memset(seg, 0x5a, sizeof(seg));
        if (api_path_match(patterns[i], path, seg, sizeof(seg)) && strchr(patterns[i], '*')) {
            FUZZ_CHECK(memchr(seg, '\0', sizeof(seg)) != NULL);
            FUZZ_CHECK(seg[0] && !strchr(seg, '/') && strstr(path, seg));
        }
    }
    (void)api_session_id_parse(path, &id);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* The HTTP reader hands the handlers a NUL-terminated body. */
    char *body = malloc(size + 1);
    struct json_object *root;
    enum json_tokener_error jerr;

    if (!body)
        return 0;
    memcpy(body, data, size);
    body[size] = '\0';

    post_peer(body);
    post_revoke(body, size);
    /* The error answer and the listing re-serialise what was read. */
    root = json_tokener_parse_verbose(body, &jerr);
    if (!root)
        (void)json_tokener_error_desc(jerr);
    else
        (void)json_object_to_json_string_ext(root, JSON_C_TO_STRING_PLAIN |
                                                       JSON_C_TO_STRING_NOSLASHESCAPE);
    json_object_put(root);

    if (size <= 256) {
        check_string(body);
        check_path(body);
    }
    free(body);
    return 0;
}
