/* est.c: the EST handlers. Until they land, the listener answers 503. */
#include "est.h"

#include <stdlib.h>
#include <string.h>

#include "daemon.h"
#include "http.h"

bool est_is_slow(const struct http_request *req)
{
    (void)req;
    return false;
}

void est_handle(struct daemon *d, struct conn *c, const struct http_request *req,
                struct api_reply *rep)
{
    (void)d;
    (void)c;
    (void)req;
    rep->status = 503;
    rep->content_type = "text/plain";
    rep->body = strdup("enrollment is not available in this build\n");
    rep->body_len = rep->body ? strlen(rep->body) : 0;
}
