/*
 * est-codec.h: the wire formats of RFC 7030 (EST), shared by the daemon's
 * handlers (est.c) and the device side (est-client.c): certs-only PKCS#7 in
 * base64, CSRs in base64, HTTP Basic credentials and media types.
 */
#ifndef MTLSGW_EST_CODEC_H
#define MTLSGW_EST_CODEC_H

#include <stdbool.h>
#include <stddef.h>

#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

#define EST_PREFIX "/.well-known/est/"
#define EST_CT_PKCS7 "application/pkcs7-mime; smime-type=certs-only"
#define EST_CT_PKCS10 "application/pkcs10"

/*
 * A degenerate SignedData holding certs (RFC 5272 "Simple PKI Response"),
 * DER, then base64 on a single line: some EST clients read the answer with
 * a decoder that takes no line breaks. *out is malloc'ed and NUL-terminated.
 */
int est_certs_encode(const gnutls_x509_crt_t *certs, size_t n, char **out, size_t *len);

/*
 * Base64 as EST peers send it: with or without line breaks and other
 * whitespace, with or without '=' padding. *out is gnutls_malloc'ed.
 * -EBADMSG when it is not base64.
 */
int est_base64_decode(const char *in, size_t len, gnutls_datum_t *out);

/* The certificates of a certs-only PKCS#7 in base64 (or DER). The caller
 * deinits each and frees the array. */
int est_certs_decode(const char *in, size_t len, gnutls_x509_crt_t **certs, size_t *n);

/*
 * The CSR of an EST request body: base64 DER (the RFC), or PEM, or raw DER,
 * whatever Content-Transfer-Encoding said. The self-signature is checked.
 * -EBADMSG with err filled.
 */
int est_csr_decode(const char *body, size_t len, gnutls_x509_crq_t *out, char *err,
                   size_t errlen);

/* The CSR's DER in base64 on one line (what the client sends); malloc'ed. */
int est_csr_encode(gnutls_x509_crq_t crq, char **out, size_t *len);

/*
 * "Basic <base64 user:pass>" (scheme case-insensitive). user and pass are
 * NUL-terminated; -EINVAL when the header is not Basic or does not fit.
 */
int est_basic_parse(const char *hdr, char *user, size_t ulen, char *pass, size_t plen);
/* "Basic <base64 user:pass>" for a request; malloc'ed. */
int est_basic_make(const char *user, const char *pass, char **out);

/* True when the Content-Type names type (case-insensitive, parameters
 * ignored). A NULL content type is false. */
bool est_media_is(const char *content_type, const char *type);

/* SHA-256 of a certificate's DER as 64 hex digits, or with colons
 * ("AB:CD:...") when colons is set; out must hold 96 bytes. */
int est_cert_fingerprint(gnutls_x509_crt_t crt, bool colons, char *out, size_t outlen);
/* Parse a fingerprint given by a person: hex with or without colons or
 * spaces, any case, optionally prefixed "sha256:" (or "SHA256="). */
int est_fingerprint_parse(const char *s, unsigned char out[32]);

#endif
