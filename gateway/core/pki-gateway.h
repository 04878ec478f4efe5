/*
 * pki-gateway.h: the gateway's own certificate over the appliance's life:
 * renewed from the CA on the token (same key, or a new one), with its names
 * kept or replaced, and the token key that goes with gateway.crt found.
 *
 * The gateway key lives under [management] key (default "mtlsgw-gateway")
 * or, after a renewal with a new key, under that label + "-next"; each
 * renewal with a new key moves to the other label, so the key in use is
 * never deleted before the daemon has switched.
 */
#ifndef MTLSGW_PKI_GATEWAY_H
#define MTLSGW_PKI_GATEWAY_H

#include <stdbool.h>
#include <stddef.h>

#include <gnutls/abstract.h>
#include <gnutls/x509.h>

struct pki;

#define PKI_GATEWAY_LABEL_MAX 256

struct pki_gateway_renew {
    const char *const *hosts; /* new SAN list; n_hosts 0: keep the current names */
    size_t n_hosts;
    unsigned days;            /* 0: the current certificate's lifetime (at most 397) */
    bool new_key;             /* a new key on the token, on the other label */
    const char *actor;        /* for the audit log */
};

struct pki_gateway_result {
    char old_serial[64], serial[64];
    char old_label[PKI_GATEWAY_LABEL_MAX]; /* the key of the old certificate */
    char label[PKI_GATEWAY_LABEL_MAX];     /* the key of the new one */
};

/*
 * Issue a new gateway certificate and write gateway.crt atomically (its copy
 * kept under issued/), under the pki dir's lock; audit line
 * "gateway-renew". With new_key the old key stays on the token: drop it
 * (pki_gateway_drop_key) once the daemon has switched.
 */
int pki_gateway_renew(struct pki *pki, const struct pki_gateway_renew *o,
                      struct pki_gateway_result *res, char *err, size_t errlen);

/* The token label ([management] key or its "-next" twin) of the key that
 * goes with crt. -ENOENT with a message when neither does. */
int pki_gateway_key_label(struct pki *pki, gnutls_x509_crt_t crt, char *label, size_t len,
                          char *err, size_t errlen);

/* Delete the gateway key under label (one of the two), never the one that
 * goes with gateway.crt now. */
int pki_gateway_drop_key(struct pki *pki, const char *label, char *err, size_t errlen);

/* The names (DNS names and IP addresses) in crt's subjectAltName, as text,
 * each malloc'ed; *n of them. */
int pki_cert_hosts(gnutls_x509_crt_t crt, char ***hosts, size_t *n);
void pki_hosts_free(char **hosts, size_t n);

/*
 * Seen from a spoke: when a client handshake failed only because the hub's
 * certificate does not carry want (the name or address dialled, or
 * server-name), a message saying so, listing the names it has and the two
 * fixes (on the hub: mtlsgw gateway renew --host; here: server-name = in
 * [uplink NAME]). False (buf untouched) for any other failure.
 */
bool pki_hub_lacks_name(gnutls_session_t s, const char *want, const char *uplink, char *buf,
                        size_t len);

#endif
