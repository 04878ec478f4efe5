/*
 * service.h: what a listener's connections get once TLS is up, as a table
 * that conn.c calls through instead of asking which listener it serves.
 * One `struct service` per listener kind; daemon_run points each listener
 * at its own (struct listener's svc).
 */
#ifndef MTLSGW_SERVICE_H
#define MTLSGW_SERVICE_H

#include <stdbool.h>

struct conn;
struct daemon;
struct http_request;
struct api_reply;

/* Who judges the client's certificate. */
enum svc_verify {
    /* Required: a bad or missing one ends the handshake with an alert,
     * and the session is judged again when it opens. */
    SVC_CERT_REQUIRED = 0,
    /* Optional (EST, RFC 7030 3.3.2): judged during the handshake but never
     * ends it; the handler answers a bad one in HTTP with the reason. */
    SVC_CERT_FOR_HANDLER,
    /* No TLS at all: plain HTTP with no client to judge (the CRL
     * distribution point, crl-http.c). */
    SVC_PLAIN,
};

/* How an error the connection itself answers (bad HTTP) is written. */
enum svc_errors {
    SVC_ERRORS_JSON = 0, /* {"error":"..."} (the API) */
    SVC_ERRORS_TEXT,     /* text/plain (EST, docs/est.md) */
};

struct service {
    const char *name;
    enum svc_verify verify;
    /* Once the session is open: true when the service took c over (a
     * tunnel); false to serve HTTP on it. NULL: HTTP at once. */
    bool (*on_open)(struct conn *c);
    /* Whether a request goes to the slow pool (it signs with the token). */
    bool (*is_slow)(const struct http_request *req);
    void (*handle)(struct daemon *d, struct conn *c, const struct http_request *req,
                   struct api_reply *r);
    enum svc_errors errors;
};

extern const struct service service_management; /* [management] listen: the API */
extern const struct service service_tunnel;     /* [tunnel] listen: hub tunnels */
extern const struct service service_enroll;     /* [enroll] listen: EST */
extern const struct service service_crl;        /* [crl] listen: the CRL DP, plain HTTP */
/* Our uplinks' connections (client side, run by tunnel.c): the fields say
 * what conn.c did for them before the table, which is what any listener
 * that was not EST, the hub or management got. */
extern const struct service service_uplink;

#endif
