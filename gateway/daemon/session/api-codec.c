/*
 * api-codec.c: the request bytes of the management API and the errno map
 * (api-codec.h). The messages are the ones the client gets in
 * {"error": ...}, so they name the field and what it must be.
 */
#include "api-codec.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "cidr.h"
#include "daemon.h"
#include "invite.h"
#include "pki.h"
#include "registry.h"

static int read_networks(struct json_object *v, struct api_peer_req *out, char *err,
                         size_t errlen)
{
    if (!json_object_is_type(v, json_type_array) ||
        json_object_array_length(v) > API_MAX_NETWORKS) {
        snprintf(err, errlen, "\"networks\" must be an array of at most %d prefixes",
                 API_MAX_NETWORKS);
        return -EINVAL;
    }
    for (size_t i = 0; i < json_object_array_length(v); i++) {
        struct json_object *e = json_object_array_get_idx(v, i);
        struct cidr cidr;
        const char *why = "not a string";
        char canon[64];

        if (!json_object_is_type(e, json_type_string) ||
            cidr_parse_network(json_object_get_string(e), &cidr, &why) < 0) {
            snprintf(err, errlen, "networks[%zu]: %s", i, why);
            return -EINVAL;
        }
        cidr_format(&cidr, canon, sizeof(canon));
        if (!(out->networks[out->n_networks++] = strdup(canon))) {
            snprintf(err, errlen, "out of memory");
            return -ENOMEM;
        }
    }
    return 0;
}

/* "allow_default": a default route among the networks (peernet_check()). */
static int read_allow_default(struct json_object *root, struct api_peer_req *out, char *err,
                              size_t errlen)
{
    struct json_object *v;

    if (!json_object_object_get_ex(root, "allow_default", &v))
        return 0;
    if (!json_object_is_type(v, json_type_boolean)) {
        snprintf(err, errlen, "\"allow_default\" must be true or false");
        return -EINVAL;
    }
    out->allow_default = json_object_get_boolean(v);
    return 0;
}

static bool get_string(struct json_object *root, const char *key, const char **out)
{
    struct json_object *v;

    if (!json_object_object_get_ex(root, key, &v) || !json_object_is_type(v, json_type_string))
        return false;
    *out = json_object_get_string(v);
    return *out != NULL;
}

int api_peer_req_parse(const char *body, struct api_peer_req *out, char *err, size_t errlen)
{
    struct json_object *root, *v;
    enum json_tokener_error jerr;
    enum peer_role role;

    memset(out, 0, sizeof(*out));
    root = out->root = json_tokener_parse_verbose(body, &jerr);
    if (!root || !json_object_is_type(root, json_type_object)) {
        snprintf(err, errlen, "body is not a JSON object%s%s", root ? "" : ": ",
                 root ? "" : json_tokener_error_desc(jerr));
        return -EBADMSG;
    }
    if (!get_string(root, "name", &out->name)) {
        snprintf(err, errlen, "\"name\" (string) is required");
        return -EINVAL;
    }
    if (!get_string(root, "role", &out->role_name) || role_parse(out->role_name, &role) < 0) {
        snprintf(err, errlen, "\"role\" must be admin, monitor or tunnel");
        return -EINVAL;
    }
    out->role = (int)role;
    if (!json_object_object_get_ex(root, "csr", &v) || !json_object_is_type(v, json_type_string)) {
        snprintf(err, errlen, "\"csr\" (PEM string) is required");
        return -EINVAL;
    }
    out->csr = json_object_get_string(v);
    if (json_object_object_get_ex(root, "days", &v)) {
        int64_t dd = json_object_get_int64(v);
        if (!json_object_is_type(v, json_type_int) || dd < 1 || dd > 3650) {
            snprintf(err, errlen, "\"days\" must be a whole number from 1 to 3650");
            return -EINVAL;
        }
        out->days = (unsigned)dd;
    }
    if (read_allow_default(root, out, err, errlen) < 0)
        return -EINVAL;
    if (json_object_object_get_ex(root, "networks", &v))
        return read_networks(v, out, err, errlen);
    return 0;
}

int api_invite_req_parse(const char *body, struct api_invite_req *out, char *err,
                         size_t errlen)
{
    struct api_peer_req *p = &out->peer;
    struct json_object *root, *v;
    enum json_tokener_error jerr;
    enum peer_role role;
    const char *ttl = "24h";

    memset(out, 0, sizeof(*out));
    root = p->root = json_tokener_parse_verbose(body ? body : "", &jerr);
    if (!root || !json_object_is_type(root, json_type_object)) {
        snprintf(err, errlen, "body is not a JSON object%s%s", root ? "" : ": ",
                 root ? "" : json_tokener_error_desc(jerr));
        return -EBADMSG;
    }
    if (!get_string(root, "name", &p->name) || !peer_name_valid(p->name)) {
        snprintf(err, errlen, "\"name\" must be a peer name: 1-63 of A-Z a-z 0-9 . _ -, "
                              "starting with a letter or digit");
        return -EINVAL;
    }
    if (!get_string(root, "role", &p->role_name) || role_parse(p->role_name, &role) < 0) {
        snprintf(err, errlen, "\"role\" must be admin, monitor or tunnel");
        return -EINVAL;
    }
    p->role = (int)role;
    if (json_object_object_get_ex(root, "ttl", &v) &&
        (!json_object_is_type(v, json_type_string) || !(ttl = json_object_get_string(v)))) {
        snprintf(err, errlen, "\"ttl\" must be a duration such as \"24h\", \"30m\" or \"7d\"");
        return -EINVAL;
    }
    if (invite_parse_duration(ttl, &out->ttl) < 0) {
        snprintf(err, errlen, "\"ttl\": %.40s is not a duration from 1s to 365d (e.g. 24h, "
                              "30m, 7d)", ttl);
        return -EINVAL;
    }
    if (read_allow_default(root, p, err, errlen) < 0)
        return -EINVAL;
    if (json_object_object_get_ex(root, "networks", &v)) {
        int rc = read_networks(v, p, err, errlen);
        if (rc < 0)
            return rc;
    }
    if (p->n_networks && role != ROLE_TUNNEL) {
        snprintf(err, errlen, "\"networks\" are for tunnel peers; %s would be %s", p->name,
                 p->role_name);
        return -EINVAL;
    }
    return 0;
}

void api_peer_req_free(struct api_peer_req *r)
{
    for (size_t i = 0; i < r->n_networks; i++)
        free(r->networks[i]);
    r->n_networks = 0;
    json_object_put(r->root);
    r->root = NULL;
}

int api_revoke_req_parse(const char *body, size_t len, char *reason, size_t rlen, char *err,
                         size_t errlen)
{
    struct json_object *root = NULL, *v;
    const char *r = "unspecified";
    int rc = 0;

    if (len) {
        root = json_tokener_parse(body);
        if (!root || !json_object_is_type(root, json_type_object)) {
            snprintf(err, errlen, "body is not a JSON object");
            rc = -EBADMSG;
            goto out;
        }
        if (json_object_object_get_ex(root, "reason", &v))
            r = json_object_get_string(v);
    }
    if (!r || !pki_reason_valid(r) || strlen(r) >= rlen) {
        snprintf(err, errlen, "\"reason\" must be unspecified, keyCompromise, superseded or "
                              "cessationOfOperation");
        rc = -EINVAL;
        goto out;
    }
    memcpy(reason, r, strlen(r) + 1);
out:
    json_object_put(root);
    return rc;
}

int api_session_id_parse(const char *s, uint64_t *id)
{
    char *end;
    unsigned long long v = strtoull(s, &end, 10);

    if (*end || !s[0])
        return -EINVAL;
    *id = (uint64_t)v;
    return 0;
}

bool api_path_match(const char *pattern, const char *path, char *param, size_t plen)
{
    const char *star = strchr(pattern, '*');
    size_t pre, n;

    if (!star)
        return strcmp(pattern, path) == 0;
    pre = (size_t)(star - pattern);
    if (strncmp(pattern, path, pre) != 0)
        return false;
    path += pre;
    n = strcspn(path, "/");
    if (n == 0 || n >= plen || strcmp(star + 1, path + n) != 0)
        return false;
    memcpy(param, path, n);
    param[n] = '\0';
    return true;
}

static int hex_digit(char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

int api_param_decode(char *param)
{
    char *w = param;

    for (const char *p = param; *p; p++) {
        int hi, lo;

        if (*p != '%') {
            *w++ = *p;
            continue;
        }
        hi = hex_digit(p[1]);
        lo = hi < 0 ? -1 : hex_digit(p[2]);
        if (lo < 0 || (hi == 0 && lo == 0) || (hi << 4 | lo) == '/')
            return -EINVAL;
        *w++ = (char)(hi << 4 | lo);
        p += 2;
    }
    *w = '\0';
    return 0;
}

/*
 * The one errno-to-HTTP map. An errno from pki_* says what failed, not
 * whose fault it was; the operation knows which of them the client caused,
 * so each caller has its column. 0: not the client's, 500.
 */
static const struct {
    int rc;
    int status[3]; /* enum api_op */
} errno_map[] = {
    /*              enroll revoke EST */
    /* name or key already enrolled */
    {-EEXIST, {409, 0, 409}},
    /* a refused value (peer name, networks outside [tunnel] peer-networks) */
    {-EINVAL, {400, 0, 400}},
    /* a registry or CA file that does not parse (both callers decoded the
     * CSR before pki_*): the API has always said 400, EST 500. Kept, as
     * issue 14 changes no status; 500 would be right for both */
    {-EBADMSG, {400, 0, 0}},
    /* revoke: no peer by that name. EST renew: no peer has the
     * certificate's serial, which RFC 7030 3.3.2 answers as not
     * authorised (403) without saying whether it ever existed */
    {-ENOENT, {0, 404, 403}},
    /* EST renew: the certificate was revoked or superseded */
    {-EACCES, {0, 0, 403}},
    /* revoke: already revoked. EST: the invite was spent meanwhile */
    {-EALREADY, {0, 409, 403}},
    /* EST: the invite expired meanwhile */
    {-ETIMEDOUT, {0, 0, 403}},
};

int api_errno_status(enum api_op op, int rc)
{
    if ((unsigned)op >= 3)
        return 500;
    for (size_t i = 0; i < sizeof(errno_map) / sizeof(errno_map[0]); i++)
        if (errno_map[i].rc == rc)
            return errno_map[i].status[op] ? errno_map[i].status[op] : 500;
    return 500;
}

void api_reply_json(struct api_reply *r, int status, struct json_object *o)
{
    const char *s = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN |
                                                          JSON_C_TO_STRING_NOSLASHESCAPE);
    size_t n = s ? strlen(s) : 0;

    r->status = status;
    r->content_type = "application/json";
    r->body = s ? malloc(n + 2) : NULL;
    if (r->body) {
        memcpy(r->body, s, n);
        r->body[n] = '\n';
        r->body[n + 1] = '\0';
        r->body_len = n + 1;
    }
    json_object_put(o);
}

void api_reply_error(struct api_reply *r, int status, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    struct json_object *o = json_object_new_object();

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    json_object_object_add(o, "error", json_object_new_string(msg));
    api_reply_json(r, status, o);
}
