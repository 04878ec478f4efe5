/*
 * fuzz-api: the JSON bodies of the management API (docs/mtlsgwd.md), read
 * the way gateway/daemon/session/api.c reads them, through the pure functions it calls:
 *
 *   POST /api/v1/peers           json-c, "name" (peer_name_valid, as
 *                                pki_enroll checks it), "role" (role_parse),
 *                                "days", "networks" (cidr_parse, then the
 *                                canonical form cidr_format writes)
 *   POST /api/v1/peers/N/revoke  "reason" (pki_reason_valid)
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

static void post_peer(struct json_object *root)
{
    struct json_object *v;
    enum peer_role role;

    if (!json_object_is_type(root, json_type_object))
        return;
    if (json_object_object_get_ex(root, "name", &v) && json_object_is_type(v, json_type_string))
        check_string(json_object_get_string(v));
    if (json_object_object_get_ex(root, "role", &v) && json_object_is_type(v, json_type_string))
        (void)role_parse(json_object_get_string(v), &role);
    if (json_object_object_get_ex(root, "csr", &v) && json_object_is_type(v, json_type_string))
        (void)strlen(json_object_get_string(v));
    if (json_object_object_get_ex(root, "days", &v))
        (void)json_object_get_int64(v);
    if (json_object_object_get_ex(root, "networks", &v) &&
        json_object_is_type(v, json_type_array) && json_object_array_length(v) <= 64) {
        for (size_t i = 0; i < json_object_array_length(v); i++) {
            struct json_object *e = json_object_array_get_idx(v, i);
            if (json_object_is_type(e, json_type_string))
                check_cidr(json_object_get_string(e));
        }
    }
}

static void post_revoke(struct json_object *root)
{
    struct json_object *v;
    const char *reason = "unspecified";

    if (!json_object_is_type(root, json_type_object))
        return;
    if (json_object_object_get_ex(root, "reason", &v))
        reason = json_object_get_string(v);
    if (reason)
        (void)pki_reason_valid(reason);
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

    root = json_tokener_parse_verbose(body, &jerr);
    if (!root)
        (void)json_tokener_error_desc(jerr);
    else {
        post_peer(root);
        post_revoke(root);
        /* The error answer and the listing re-serialise what was read. */
        (void)json_object_to_json_string_ext(root, JSON_C_TO_STRING_PLAIN |
                                                       JSON_C_TO_STRING_NOSLASHESCAPE);
    }
    json_object_put(root);

    if (size <= 256)
        check_string(body);
    free(body);
    return 0;
}
