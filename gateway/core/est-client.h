/*
 * est-client.h: the device side of enrollment (RFC 7030 EST) over HTTPS on
 * GnuTLS: `mtlsgw join`, `mtlsgw renew` and the uplinks' own renewal.
 *
 * The hub is trusted either by a CA file or, before the device has one, by
 * the SHA-256 fingerprint of its certificate read from the invite (pinning:
 * nothing else about that certificate is believed). Blocking, with a
 * timeout: run it where waiting is allowed (the console, a slow worker).
 */
#ifndef MTLSGW_EST_CLIENT_H
#define MTLSGW_EST_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <gnutls/abstract.h>
#include <gnutls/x509.h>

struct config;
struct cfg_uplink;
struct p11_token;

struct est_client_opts {
    const char *url;          /* https://HOST[:PORT][/path]; /.well-known/est added */
    const char *ca_path;      /* trust the hub's chain to these CAs (and its name) */
    const unsigned char *pin; /* or: SHA-256 of the hub's certificate, 32 bytes, or
                               * (cacerts only) of the root it chains to */
    const gnutls_x509_crt_t *anchors; /* or: trust these CAs (chain and name) */
    size_t n_anchors;
    const char *cert_path;    /* our certificate (then intermediates), or NULL */
    gnutls_privkey_t key;     /* its key, borrowed; NULL without cert_path */
    unsigned tls_min;         /* 12 or 13 */
    unsigned timeout;         /* seconds for connect, handshake and answer; 0: 30 */
    const char *server_name;  /* the name the hub's certificate must carry; NULL: the
                               * URL's host ([uplink] server-name) */
    const char *uplink;       /* [uplink NAME], for messages; may be NULL */
};

/*
 * https://HOST[:PORT][/path] (HOST a name, an IPv4 address or [IPv6]; PORT
 * 443 by default). base is the EST root: path + /.well-known/est, unless the
 * path already names it. -EINVAL with err filled otherwise.
 */
struct est_url {
    char host[256];
    char port[8];
    char base[512]; /* ".../.well-known/est", no trailing slash */
};
int est_url_parse(const char *url, struct est_url *out, char *err, size_t errlen);

/* GET cacerts. With a pin, the hub's own certificate must chain to what it
 * sends, and the pin must be its certificate's or that of a CA of the
 * answer its certificate chains to (the organization's root: docs/pki.md),
 * its name then checked as with a CA file. The caller deinits each
 * certificate and frees the array. */
int est_get_cacerts(const struct est_client_opts *o, gnutls_x509_crt_t **certs, size_t *n,
                    char *err, size_t errlen);

/* POST simpleenroll with HTTP Basic user:code. */
int est_simpleenroll(const struct est_client_opts *o, const char *user, const char *code,
                     gnutls_x509_crq_t crq, gnutls_x509_crt_t *out, char *err, size_t errlen);

/* POST simplereenroll over mutual TLS (o->cert_path and o->key). */
int est_simplereenroll(const struct est_client_opts *o, gnutls_x509_crq_t crq,
                       gnutls_x509_crt_t *out, char *err, size_t errlen);

/*
 * Renew an uplink's certificate now: simplereenroll to up->enroll with the
 * current certificate (up->cert or <pki dir>/device.crt) and key (up->key or
 * label mtlsgw-device, on tok), the hub trusted by up->ca or
 * <pki dir>/hub-ca.crt. The new certificate (same key) replaces the old file
 * atomically, after it was checked to carry our key and chain to the CA.
 */
int est_renew_uplink(const struct config *cfg, struct p11_token *tok,
                     const struct cfg_uplink *up, char *err, size_t errlen);

/* When a certificate valid from nb to na renews: two thirds of the way, plus
 * up to a tenth of its lifetime drawn from rnd (docs/est.md). */
int64_t est_renew_due(int64_t nb, int64_t na, uint32_t rnd);

/* The paths an uplink uses, defaults applied (owned strings). */
int est_uplink_paths(const struct config *cfg, const struct cfg_uplink *up, char **cert,
                     char **ca);

#endif
