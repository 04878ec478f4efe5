/* api-pki.h: the CA and the CRL over the management API (docs/mtlsgwd.md). */
#ifndef MTLSGW_API_PKI_H
#define MTLSGW_API_PKI_H

struct api_reply;
struct conn;
struct daemon;
struct http_request;

/* GET /api/v1/ca: ca.crt (PEM) as the pki dir holds it. */
void api_get_ca(struct daemon *d, struct conn *c, const struct http_request *req,
                const char *param, struct api_reply *r);
/* GET /api/v1/crl: crl.pem (PEM), the CRL the daemon serves and judges by. */
void api_get_crl(struct daemon *d, struct conn *c, const struct http_request *req,
                 const char *param, struct api_reply *r);

#endif
