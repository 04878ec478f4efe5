/*
 * api.h: the management API (api.c, docs/mtlsgwd.md): its routes as one
 * table, the pure lookup the handler and the slow-pool choice share, and
 * the handler conn.c calls through service.h.
 */
#ifndef MTLSGW_API_H
#define MTLSGW_API_H

#include <stdbool.h>
#include <stddef.h>

struct api_reply;
struct conn;
struct daemon;
struct http_request;

/* The longest path parameter taken (peer names are at most 63). */
#define API_PARAM_MAX 128

typedef void api_handler(struct daemon *d, struct conn *c, const struct http_request *req,
                         const char *param, struct api_reply *r);

/* One line of the table: a method on a path. */
struct api_route {
    int method;       /* enum http_method_id */
    const char *path; /* exact, or one '*' for a segment (api_path_match) */
    size_t seg_max;   /* '*': longer segments are no such resource (404) */
    int role;         /* enum peer_role: ROLE_MONITOR reads, ROLE_ADMIN only admin */
    bool slow;        /* signs with the token: runs on the slow pool */
    api_handler *handler;
};

/* The table, for the unit suite. */
const struct api_route *api_routes(size_t *n);

/*
 * Find the route of a request. 0 with *rt and param (the '*' segment, or
 * ""); -ENOENT when no route has that path (404); -EOPNOTSUPP when the path
 * takes other methods (405), *allow then the Allow header listing them;
 * -EINVAL when the segment's percent-escapes do not decode to a name
 * (api_param_decode: 400); -ENOBUFS when plen is shorter than
 * API_PARAM_MAX and the segment longer. HEAD finds the GET lines.
 */
int api_route_find(int method, const char *path, const struct api_route **rt, char *param,
                   size_t plen, const char **allow);

/* Whether a peer of role (enum peer_role) may call the route. */
bool api_route_permits(const struct api_route *rt, int role);

/* True when the request needs the token (runs on the slow pool). */
bool api_is_slow(const struct http_request *req);
void api_handle(struct daemon *d, struct conn *c, const struct http_request *req,
                struct api_reply *rep);

#endif
