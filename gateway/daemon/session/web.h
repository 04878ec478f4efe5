/*
 * web.h: the management page (docs/web.md). The page's files are compiled
 * in (web-assets.h); web.c serves them with their security headers, answers
 * GET /api/v1/whoami, and refuses a state-changing request a browser was
 * tricked into sending from another site (api_handle asks first).
 */
#ifndef MTLSGW_WEB_H
#define MTLSGW_WEB_H

#include <stdbool.h>
#include <stddef.h>

struct api_reply;
struct conn;
struct daemon;
struct http_request;

/*
 * Handlers of api.c's route table (api_handler): GET /, /ui and /ui/NAME
 * answer the page's files (index.html for a view without a dot), on the
 * management listener only; GET /api/v1/whoami the caller's peer, role,
 * serial and remote address.
 */
void web_get_page(struct daemon *d, struct conn *c, const struct http_request *req,
                  const char *param, struct api_reply *rep);
void web_get_whoami(struct daemon *d, struct conn *c, const struct http_request *req,
                    const char *param, struct api_reply *rep);

/*
 * The check for a state-changing request: 0 when req may change state,
 * -EPERM (with why in err) when it is not POST/DELETE, carries a body that
 * is not application/json, or comes from another site (Sec-Fetch-Site other
 * than same-origin/none, or an Origin other than https://HOST).
 */
int web_write_allowed(const struct http_request *req, char *err, size_t errlen);

/*
 * The check for every other request (reads): -EPERM with why in err when
 * a browser says it comes from another site (Sec-Fetch-Site other than
 * same-origin/none); 0 otherwise, also without the header (curl).
 */
int web_read_allowed(const struct http_request *req, char *err, size_t errlen);

/* Whether an Accept-Encoding value admits gzip; whether an If-None-Match
 * value names etag (weak comparison, RFC 9110 13.1.2). */
bool web_accepts_gzip(const char *accept_encoding);
bool web_etag_matches(const char *if_none_match, const char *etag);

#endif
