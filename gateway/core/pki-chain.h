/*
 * pki-chain.h: the appliance's CA as an intermediate under an
 * organization's root (docs/pki.md).
 *
 *   ca.crt     the root: what peers and other hubs trust
 *   chain.pem  the intermediates, this appliance's CA first
 *
 * `init --intermediate` makes the CA key on the token and a CSR for the
 * root to sign; `init --import-ca` checks the answer and finishes the set-up
 * as `init` does for a self-signed CA.
 */
#ifndef MTLSGW_PKI_CHAIN_H
#define MTLSGW_PKI_CHAIN_H

#include <stdbool.h>
#include <stddef.h>

#include <gnutls/x509.h>

struct pki;
struct pki_init_opts;

/* Every certificate in a PEM file (or the one of a DER file). -ENOENT,
 * -EBADMSG with err naming the file. Free with pki_free_certs(). */
int pki_read_certs(const char *path, gnutls_x509_crt_t **out, size_t *n, char *err,
                   size_t errlen);
void pki_free_certs(gnutls_x509_crt_t *certs, size_t n);
/* The certificates in PEM, one after the other; *out gnutls_malloc'ed. */
int pki_certs_pem(const gnutls_x509_crt_t *certs, size_t n, gnutls_datum_t *out);

/* chain.pem's certificates (*n 0 and 0 returned when there is none). */
int pki_load_chain(const struct pki *pki, gnutls_x509_crt_t **out, size_t *n, char *err,
                   size_t errlen);
/* What a peer needs to trust this CA and build its path: the root(s) of
 * ca.crt, then chain.pem (EST cacerts, RFC 7030 4.1.3). */
int pki_ca_bundle(const struct pki *pki, gnutls_x509_crt_t **out, size_t *n, char *err,
                  size_t errlen);
/* chain.pem then ca.crt: what a PKCS#12 carries after the peer's own. */
int pki_chain_to_root(const struct pki *pki, gnutls_x509_crt_t **out, size_t *n, char *err,
                      size_t errlen);
/* crt's PEM followed by chain.pem's (never the root): what a peer sends. */
int pki_cert_chain_pem(const struct pki *pki, gnutls_x509_crt_t crt, gnutls_datum_t *out,
                       char *err, size_t errlen);
/* True for a self-signed certificate (a root). */
bool pki_cert_is_root(gnutls_x509_crt_t crt);

/*
 * init --intermediate: make the CA and gateway keys on the token (or reuse
 * those of a pending request), remember o's name and hosts in
 * intermediate.json and hand back the PEM CSR of the CA key (CN "NAME CA",
 * asking for CA:TRUE, keyCertSign, cRLSign). -EEXIST when a CA exists and
 * o->force is not set.
 */
int pki_intermediate_request(struct pki *pki, const struct pki_init_opts *o,
                             gnutls_datum_t *csr_pem, char *err, size_t errlen);

/*
 * init --import-ca: cert_path holds the CA certificate the root issued
 * for the pending request (then, optionally, intermediates); chain_path the
 * root (self-signed) and any intermediates between. Checked: the key is the
 * token's CA key; CA:TRUE with keyCertSign and cRLSign; a path length that
 * lets it issue end entities; valid now; the whole path, with a gateway
 * certificate at its end, verifies to the root (GnuTLS, path lengths
 * enforced). Then writes gateway.crt (leaf + intermediates), chain.pem,
 * an empty CRL, an empty registry and ca.crt (the root) last.
 */
int pki_import_ca(struct pki *pki, const char *cert_path, const char *chain_path,
                  const char *actor, char *err, size_t errlen);

/*
 * What a device pins at join (SHA-256, colon-separated): fp, the
 * certificate it will see on [enroll] (gw_path); root_fp, when this CA is an
 * intermediate (chain.pem), the organization's root in ca.crt, which
 * outlives this hub's certificates and vouches for every hub under it
 * ("" otherwise). 0, or -errno with err set. Used by `mtlsgw invite` and
 * POST /api/v1/invites alike.
 */
int pki_pin_fingerprints(const struct pki *pki, const char *gw_path, char *fp, size_t fplen,
                         char *root_fp, size_t root_fplen, char *err, size_t errlen);

#endif
