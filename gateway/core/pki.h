/*
 * pki.h: the appliance's CA as a whole: files in the pki dir, keys on the
 * token, the registry, the CRL and the audit log, changed under one lock.
 *
 * Shared by the console tool and the daemon, so that an enrollment or a
 * revocation means the same thing wherever it is asked for.
 */
#ifndef MTLSGW_PKI_H
#define MTLSGW_PKI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <gnutls/abstract.h>
#include <gnutls/x509.h>

struct config;
struct p11_token;
struct registry;

#define PKI_LABEL_CA "mtlsgw-ca"
#define PKI_LABEL_GATEWAY "mtlsgw-gateway"
#define PKI_LABEL_DEVICE "mtlsgw-device"

struct pki {
    const struct config *cfg;
    char *dir, *ca_path, *gw_path, *crl_path, *reg_path, *audit_path;
    /* chain.pem: the intermediates between this CA and the root in ca.crt,
     * this CA first; absent for a self-signed CA (docs/pki.md) */
    char *chain_path;
    struct p11_token *tok;
    gnutls_x509_crt_t ca;
    gnutls_privkey_t ca_key;
};

int pki_new(const struct config *cfg, struct pki **out);
void pki_free(struct pki *pki);

/* Open the configured token (PIN from the pin file). */
int pki_open_token(struct pki *pki, char *err, size_t errlen);
/* Read this CA's certificate (the first of chain.pem when the CA is an
 * intermediate, else ca.crt) and bind the CA key on the token (opens the
 * token). */
int pki_load_ca(struct pki *pki, char *err, size_t errlen);
/* Read registry.json; err names the file on failure. */
int pki_load_registry(const struct pki *pki, struct registry **out, char *err, size_t errlen);
/* Read one PEM (or DER) certificate file. */
int pki_read_cert(const char *path, gnutls_x509_crt_t *out, char *err, size_t errlen);
/* Read crl.pem. */
int pki_read_crl(const struct pki *pki, gnutls_x509_crl_t *out, char *err, size_t errlen);

struct pki_init_opts {
    const char *cn;
    const char *const *hosts;
    size_t n_hosts;
    int key_type; /* enum p11_key_type */
    unsigned days;
    bool force;
    const char *actor;
};
int pki_init(struct pki *pki, const struct pki_init_opts *o, char *err, size_t errlen);

struct pki_enroll_req {
    const char *name;
    int role; /* enum peer_role */
    gnutls_pubkey_t key;
    char *const *networks; /* canonical CIDR strings */
    size_t n_networks;
    unsigned days;
    bool allow_default; /* networks may hold 0.0.0.0/0 or ::/0 (peernet_check()) */
    const char *actor;
    /*
     * Called with the new certificate after it is issued and before the
     * registry is written; when it fails nothing is recorded. Used to write
     * the administrator's output file first, so a failure there loses nothing.
     */
    int (*before_commit)(void *ctx, gnutls_x509_crt_t crt, char *err, size_t errlen);
    void *ctx;
};
/* Issue and record. -EEXIST (name taken or key already enrolled). */
int pki_enroll(struct pki *pki, const struct pki_enroll_req *req, gnutls_x509_crt_t *out,
               char *err, size_t errlen);

/*
 * Renew the active certificate with serial old_serial: a new certificate
 * for key (the same key or a new one, never another peer's or a revoked
 * one) with the same name, role, networks and lifetime; the old entry is
 * marked superseded, the CRL re-signed, the audit log told. -ENOENT: no such
 * serial; -EACCES: it is not active; -EEXIST: the key is taken.
 */
int pki_renew(struct pki *pki, const char *old_serial, gnutls_pubkey_t key, const char *actor,
              gnutls_x509_crt_t *out, char *err, size_t errlen);

/*
 * Reissue: a new certificate for the active peer name with the key of its
 * current one (from issued/SERIAL.crt), the same role and networks, days
 * (0: the current lifetime); the old serial is superseded overlap seconds
 * from now (0: at once), the CRL re-signed, the audit log told.
 * before_commit as for pki_enroll. -ENOENT: no such active peer, or no
 * stored copy of its certificate.
 */
struct pki_reissue_req {
    const char *name;
    unsigned days;
    int64_t overlap;
    const char *actor;
    int (*before_commit)(void *ctx, gnutls_x509_crt_t crt, char *err, size_t errlen);
    void *ctx;
};
int pki_reissue(struct pki *pki, const struct pki_reissue_req *req, gnutls_x509_crt_t *out,
                char *err, size_t errlen);

/* Revoke the active certificate of name, re-sign the CRL. */
int pki_revoke(struct pki *pki, const char *name, const char *reason, const char *actor,
               char *err, size_t errlen);

/* The revocation reasons mtlsgw records (RFC 5280 names). */
bool pki_reason_valid(const char *reason);

/* Re-sign the CRL with the registry's revoked serials (under the lock). */
int pki_crl_resign(struct pki *pki, char *err, size_t errlen);

/* One audit line; fields is a JSON object whose ownership passes here. */
struct json_object;
int pki_audit(const struct pki *pki, const char *event, struct json_object *fields);

/* Move the current CA's files to old-TIMESTAMP/ (init --force). */
int pki_archive_old(struct pki *pki, char *err, size_t errlen);

/* PEM of a certificate; *out is gnutls_malloc'ed. */
int pki_cert_pem(gnutls_x509_crt_t crt, gnutls_datum_t *out);

#endif
