/* est.h: RFC 7030 enrollment over the network (the [enroll] listener). */
#ifndef MTLSGW_EST_H
#define MTLSGW_EST_H

#include <stdbool.h>

struct daemon;
struct conn;
struct http_request;
struct api_reply;

/* true when the request needs the token (runs on the slow pool) */
bool est_is_slow(const struct http_request *req);
/* Answer one EST request. c->verdict (enum verdict_code from verify.h, or -1
 * when the client sent no certificate), and when c->verdict == VERDICT_OK:
 * c->peer, c->serial, c->role say who the client is. */
void est_handle(struct daemon *d, struct conn *c, const struct http_request *req,
                struct api_reply *rep);

#endif
