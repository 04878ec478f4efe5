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

struct api_reply;
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
    bool allow_default; /* "allow_default": a default route among networks */
};

/*
 * Read a POST /api/v1/peers body (NUL-terminated). 0, or -EBADMSG (not a
 * JSON object), -EINVAL (a field is missing or wrong), -ENOMEM; err says
 * which, in the words the client gets. Release with api_peer_req_free()
 * whatever the result.
 */
int api_peer_req_parse(const char *body, struct api_peer_req *out, char *err, size_t errlen);
void api_peer_req_free(struct api_peer_req *r);

/* The body of POST /api/v1/invites: name, role, networks as for a peer
 * (peer.csr NULL), ttl a duration ("24h", "7d", default 24h) in seconds. */
struct api_invite_req {
    struct api_peer_req peer;
    int64_t ttl;
};

/*
 * Read a POST /api/v1/invites body: 0, or -EBADMSG, -EINVAL, -ENOMEM with
 * err as for api_peer_req_parse(); the name must be a valid peer name and
 * networks are for tunnel peers only. Release with api_peer_req_free(&peer).
 */
int api_invite_req_parse(const char *body, struct api_invite_req *out, char *err,
                         size_t errlen);

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
 * is decoded or normalised here (api_param_decode is the next step): ".."
 * is a name like any other.
 */
bool api_path_match(const char *pattern, const char *path, char *param, size_t plen);

/*
 * Decode a path parameter's percent-escapes in place, once ("a%2Db" is
 * "a-b", "%2541" is "%41"). -EINVAL, param then unspecified, for an escape
 * that is not '%' and two hex digits, and for one that decodes to NUL or
 * '/' (a name is one segment).
 */
int api_param_decode(char *param);

/* Whose errno is being answered: the same errno means different things
 * from different operations (see the table in api-codec.c). */
enum api_op {
    API_OP_ENROLL = 0, /* POST /api/v1/peers: pki_enroll */
    API_OP_REVOKE,     /* POST /api/v1/peers/NAME/revoke: pki_revoke */
    API_OP_EST,        /* EST simpleenroll/simplereenroll: pki_enroll, pki_renew */
};

/* The HTTP status for a failed operation's -errno (500 when not listed). */
int api_errno_status(enum api_op op, int rc);

/* A JSON answer into r (o's reference passes to it; a '\n' ends the body),
 * or {"error": "..."}: for the handlers outside api.c (api-invites.c,
 * api-history.c), which then depend on this leaf, not on api.c. */
void api_reply_json(struct api_reply *r, int status, struct json_object *o);
void api_reply_error(struct api_reply *r, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
