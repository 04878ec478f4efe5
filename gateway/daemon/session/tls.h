/*
 * tls.h: the one TLS module every listener uses.
 *
 * Server credentials are the certificate chain from a file and a private key
 * on the token; the client certificate is required and judged by a callback
 * during the handshake (gateway/verify.c through the daemon), so a peer
 * failing any check never reaches a handler.
 */
#ifndef MTLSGW_TLS_H
#define MTLSGW_TLS_H

/* The tunnel protocol's ALPN (docs/tunnel-protocol.md), hub and uplink alike. */
#define MTLSGW_ALPN "mtlsgw/1"

#include <stdbool.h>
#include <stddef.h>

#include <gnutls/abstract.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

struct tls_server;

struct tls_server_opts {
    const char *cert_path;     /* server certificate, then intermediates (PEM) */
    const char *chain_path;    /* intermediates to send after them when cert_path
                                * lacks them (chain.pem), or NULL */
    gnutls_privkey_t key;      /* ownership passes to the server */
    gnutls_x509_crt_t *cas;    /* named in CertificateRequest; copied */
    size_t n_cas;
    unsigned tls_min;          /* 12 or 13 */
    const char *alpn;          /* protocol to require, or NULL */
    bool cert_optional;        /* request, not require, a client certificate (EST) */
    /* Runs during the handshake with the session; 0 accepts. */
    int (*verify)(gnutls_session_t session);
};

int tls_server_new(const struct tls_server_opts *o, struct tls_server **out, char *err,
                   size_t errlen);
void tls_server_free(struct tls_server *srv);

/*
 * New handshakes present the chain in cert_path with key (taken, also on
 * failure); sessions already open keep the credentials they started with,
 * which live until tls_server_free(). The caller keeps tls_session_new()
 * out while this runs (the daemon's token_lock).
 */
int tls_server_set_cert(struct tls_server *srv, const char *cert_path, gnutls_privkey_t key,
                        char *err, size_t errlen);

/* A server session on a non-blocking socket; ptr is for the verify callback. */
int tls_session_new(struct tls_server *srv, int fd, void *ptr, gnutls_session_t *out);

/* The peer's certificate chain, imported (caller deinits each and frees the
 * array); 0 certificates when none. */
int tls_peer_chain(gnutls_session_t s, gnutls_x509_crt_t **chain, unsigned *n);

/* "TLS1.3 / AES-256-GCM" for logs. */
void tls_describe(gnutls_session_t s, char *buf, size_t len);

/* ---- client (uplinks) ---------------------------------------------------- */

struct tls_client;

struct tls_client_opts {
    const char *cert_path; /* our certificate (then intermediates) */
    gnutls_privkey_t key;  /* ownership passes to the client */
    const char *ca_path;   /* the hub's CA */
    unsigned tls_min;
    const char *alpn;
};

int tls_client_new(const struct tls_client_opts *o, struct tls_client **out, char *err,
                   size_t errlen);
void tls_client_free(struct tls_client *cli);
/* A client session on fd that verifies the server's chain and its name
 * (server_name: DNS name or IP address) during the handshake. */
int tls_client_session(struct tls_client *cli, int fd, const char *server_name,
                       gnutls_session_t *out);

#endif
