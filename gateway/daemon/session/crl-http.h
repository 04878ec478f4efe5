/*
 * crl-http.h: the CRL distribution point ([crl] listen): the current CRL
 * and the CA certificates over plain HTTP, read-only (RFC 5280 4.2.1.13,
 * 4.2.2.1). The files are read again whenever they change on disk, so a
 * revocation is published by the write that makes it.
 */
#ifndef MTLSGW_CRL_HTTP_H
#define MTLSGW_CRL_HTTP_H

#include <stdbool.h>

struct crl_dp;
struct conn;
struct daemon;
struct http_request;
struct api_reply;

/* pki_dir: where crl.pem, ca.crt and chain.pem live; crl_url: [pki]
 * crl-url or NULL (its path serves the CRL too). */
int crl_dp_new(const char *pki_dir, const char *crl_url, struct crl_dp **out);
void crl_dp_free(struct crl_dp *dp);

/* The service's handler (service.c, service_crl): GET and HEAD only. */
void crl_http_handle(struct daemon *d, struct conn *c, const struct http_request *req,
                     struct api_reply *r);
bool crl_http_is_slow(const struct http_request *req);

/* The answer to req from dp alone (the handler without a daemon; what
 * tests/unit could call). */
void crl_dp_answer(struct crl_dp *dp, const struct http_request *req, struct api_reply *r);

#endif
