/*
 * api-codec.h: what the management API and the EST handlers read from a
 * request's bytes (JSON bodies, path segments, session ids) and the one
 * errno-to-HTTP map they answer with. Pure functions: no daemon, no token,
 * no socket, so tests/fuzz/fuzz-api.c and the unit suites call the very
 * code the handlers run.
 */
#ifndef MTLSGW_API_CODEC_H
#define MTLSGW_API_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct json_object;

#define API_MAX_NETWORKS 64

/* The body of POST /api/v1/peers. The strings point into root. */
struct api_peer_req {
    struct json_object *root;
    const char *name;
    const char *role_name;
    int role;      /* enum peer_role */
    const char *csr;
    unsigned days; /* 0: absent, the config's [pki] peer-days */
    char *networks[API_MAX_NETWORKS]; /* canonical prefixes, owned */
    size_t n_networks;
};

/*
 * Read a POST /api/v1/peers body (NUL-terminated). 0, or -EBADMSG (not a
 * JSON object), -EINVAL (a field is missing or wrong), -ENOMEM; err says
 * which, in the words the client gets. Release with api_peer_req_free()
 * whatever the result.
 */
int api_peer_req_parse(const char *body, struct api_peer_req *out, char *err, size_t errlen);
void api_peer_req_free(struct api_peer_req *r);

/*
 * Read a POST /api/v1/peers/NAME/revoke body (may be empty: "unspecified")
 * and copy its reason into reason. 0, -EBADMSG or -EINVAL with err.
 */
int api_revoke_req_parse(const char *body, size_t len, char *reason, size_t rlen, char *err,
                         size_t errlen);

/* A session id in a path (DELETE /api/v1/sessions/ID): 0 or -EINVAL. */
int api_session_id_parse(const char *s, uint64_t *id);

/*
 * Match path against pattern, where one '*' stands for one non-empty
 * segment (no '/') shorter than plen; the segment goes into param. Nothing
 * is decoded or normalised: "%2e%2e" and ".." are names like any other.
 */
bool api_path_match(const char *pattern, const char *path, char *param, size_t plen);

/* Whose errno is being answered: the same errno means different things
 * from different operations (see the table in api-codec.c). */
enum api_op {
    API_OP_ENROLL = 0, /* POST /api/v1/peers: pki_enroll */
    API_OP_REVOKE,     /* POST /api/v1/peers/NAME/revoke: pki_revoke */
    API_OP_EST,        /* EST simpleenroll/simplereenroll: pki_enroll, pki_renew */
};

/* The HTTP status for a failed operation's -errno (500 when not listed). */
int api_errno_status(enum api_op op, int rc);

#endif
