/*
 * pki-rollover.h: a new CA without a flag day (docs/console.md, "CA
 * rollover"). During the overlap the pki dir holds both CAs:
 *
 *   ca.crt          the anchors peers must trust: the new CA, then the old
 *   ca-new.crt      the new CA alone; ca-old.crt the old CA alone
 *   cross/new-by-old.crt  the new CA's key and name signed by the old CA
 *   cross/old-by-new.crt  the old CA's key and name signed by the new CA
 *   crl.pem         the new CA's CRL; crl-old.pem the old CA's (same list)
 *   ca.label        the token label of the CA key that issues (the new one)
 *   rollover.json   the overlap: when, both CAs, the serials still on the old
 *
 * gateway.crt is reissued by the new CA and carries new-by-old after it, so
 * a client that holds only the old anchor still verifies the gateway.
 */
#ifndef MTLSGW_PKI_ROLLOVER_H
#define MTLSGW_PKI_ROLLOVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <gnutls/x509.h>

struct p11_revoked;
struct peer;
struct pki;

#define PKI_CA_LABEL_FILE "ca.label"
#define PKI_ROLLOVER_FILE "rollover.json"
#define PKI_CA_OLD_FILE "ca-old.crt"
#define PKI_CA_NEW_FILE "ca-new.crt"
#define PKI_CRL_OLD_FILE "crl-old.pem"
#define PKI_CROSS_DIR "cross"
#define PKI_FP_HEX_LEN 64

/* The token label of the CA key that issues: ca.label, else PKI_LABEL_CA. */
void pki_ca_label(const struct pki *pki, char *out, size_t outlen);
/* Whether pki->ca is still the first certificate of ca.crt (a rollover by
 * another process replaces it). */
bool pki_ca_current(const struct pki *pki);

/* The overlap as rollover.json records it. */
struct rollover {
    int64_t started;
    char old_label[128], new_label[128];
    char old_cn[128], new_cn[128];
    char **old_serials; /* active peers of the old CA when it started */
    size_t n_old_serials;
    /* SHA-256 (hex) of the cross certificates this rollover made: the only
     * ones in cross/ that vouch for an anchor (trustdb.c). */
    char cross[2][PKI_FP_HEX_LEN + 1];
    size_t n_cross;
};
/* The SHA-256 fingerprint of crt in lower-case hex. */
int pki_cert_fp_hex(gnutls_x509_crt_t crt, char out[PKI_FP_HEX_LEN + 1]);
/* -ENOENT: no overlap. */
int rollover_load(const char *pki_dir, struct rollover **out, char *err, size_t errlen);
void rollover_free(struct rollover *r);
/* Whether p's certificate was issued by the old CA. */
bool rollover_on_old(const struct rollover *r, const struct peer *p);

struct pki_rollover_opts {
    int key_type; /* enum p11_key_type */
    unsigned days;
    const char *actor;
};
/* Make the new CA (key on the token, old key kept), the cross certificates,
 * the old CA's CRL, and the gateway certificate from the new CA. -EALREADY
 * while an overlap runs. */
int pki_rollover(struct pki *pki, const struct pki_rollover_opts *o, char *err, size_t errlen);

/*
 * End the overlap: ca.crt holds the new CA alone, gateway.crt its leaf
 * alone; the old CA's files go to retired-STAMP/ (its key stays on the
 * token). Refused with -EBUSY while an active peer is still on the old CA
 * (unless force: they are then revoked, cessationOfOperation): *still lists
 * them (names, owned, NULL-terminated).
 */
int pki_retire_old(struct pki *pki, bool force, const char *actor, char ***still, char *err,
                   size_t errlen);
void pki_names_free(char **names);

/* For crl_write: during an overlap sign crl-old.pem with the old CA too. */
int pki_rollover_crl(struct pki *pki, const struct p11_revoked *rev, size_t n, uint64_t number,
                     char *err, size_t errlen);

/* What EST cacerts returns: ca.crt then the cross certificates (PEM). */
int pki_cacerts_pem(const struct pki *pki, char **out, size_t *len);
/* The same as certificates: ca.crt (both anchors during a rollover), the
 * intermediates of chain.pem, then the cross certificates. Free with
 * pki_free_certs(). */
int pki_cacerts_bundle(const struct pki *pki, gnutls_x509_crt_t **out, size_t *n, char *err,
                       size_t errlen);

/* Every certificate of a PEM file (gnutls_free the array, deinit each). */
int pki_read_pem_certs(const char *path, gnutls_x509_crt_t **out, unsigned *n);

#endif
