/*
 * p11.h: token access and CA operations for mtlsgw.
 *
 * Keys live on a PKCS#11 token reached through p11-kit (by GnuTLS); they are
 * generated there, sensitive and not extractable. Certificates, CSRs and CRLs
 * are made with GnuTLS, signed by token keys through gnutls_privkey_t.
 *
 * This library does not log. Functions return 0 or a negative errno; where a
 * message helps, the handle keeps the last one (p11_token_error()), or an
 * `err` buffer is filled. No message ever contains a PIN.
 */
#ifndef MTLSGW_P11_H
#define MTLSGW_P11_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <gnutls/gnutls.h>
#include <gnutls/abstract.h>
#include <gnutls/x509.h>

struct p11_token;

enum p11_key_type {
    P11_KEY_EC_P256 = 0,
    P11_KEY_EC_P384,
    P11_KEY_RSA_3072,
};

/* "ec-p256", "ec-p384", "rsa-3072" <-> enum; parse returns -EINVAL. */
int p11_key_type_parse(const char *name, enum p11_key_type *out);
const char *p11_key_type_name(enum p11_key_type type);

/*
 * Open a token.
 *  module:    path of a PKCS#11 module to load alone (GnuTLS manual init, so
 *             other p11-kit modules stay silent), or NULL for p11-kit's
 *             configured modules.
 *  token_uri: RFC 7512 URI naming the token, e.g. "pkcs11:token=mtlsgw".
 *  pin_file:  file holding the user PIN (one line; trailing newline ignored).
 *             Refused when readable by others. May be NULL for read-only
 *             access to public objects.
 * Logs in once; a wrong PIN is reported (-EACCES) and never retried, so the
 * token's retry counter is not burnt. Missing token/module: -ENODEV/-ENOENT.
 * PIN file readable by group/others: -EPERM ("chmod 600 <file>"). A URI that
 * carries pin-value/pin-source: -EINVAL. Modules are loaded once per process
 * in one way: asking for p11-kit's modules after loading one by path, or the
 * reverse, is -EBUSY.
 * On failure *out is untouched and err (if not NULL) holds the reason as
 * "token <uri>: <reason>".
 */
int p11_token_open(const char *module, const char *token_uri, const char *pin_file,
                   struct p11_token **out, char *err, size_t errlen);
void p11_token_free(struct p11_token *tok);

/*
 * Wipe the PIN from memory after the login at open: a long-running process
 * (the daemon) then holds no PIN a core dump or a memory read could show.
 * A later login (PKCS#11 restarted after a token fault, a token that logged
 * out when its last session closed) reads the PIN file again, only for the
 * length of that login.
 */
void p11_token_forget_pin(struct p11_token *tok);

/* Why the last call on this handle failed, without the token URI (callers
 * add their own context); "" when it succeeded. */
const char *p11_token_error(const struct p11_token *tok);
/* The token URI as given to p11_token_open(). */
const char *p11_token_uri(const struct p11_token *tok);

/* True when the token is present and answers (cheap; for health checks). */
bool p11_token_healthy(struct p11_token *tok);

/*
 * Start PKCS#11 over (C_Finalize, C_Initialize, the same modules) and log in
 * again: how a process gets its token back after it went away (a TPM
 * resource manager restarted, a SoftHSM token directory moved back). Every
 * gnutls PKCS#11 object made before is dead afterwards: the caller must
 * hold off all token use during the call and import its keys again.
 */
int p11_token_reinit(struct p11_token *tok);

/*
 * Whether the token can generate and sign with this key type (mechanism
 * probe: EC key-pair gen + ECDSA; RSA key-pair gen + RSA-PKCS-PSS, which TLS
 * 1.3 needs). -ENOTSUP with a message naming the missing mechanism.
 */
int p11_token_supports(struct p11_token *tok, enum p11_key_type type);

/*
 * Private-key objects are named by label (CKA_LABEL) on the opened token.
 * p11_key_uri() returns an owned RFC 7512 URI for the label
 * ("<token uri>;object=<label>;type=private").
 */
int p11_key_uri(const struct p11_token *tok, const char *label, char **out);
/* 1 when a private key with this label exists, 0 when not, <0 on error.
 * Private keys are invisible to a handle opened without a PIN file. */
int p11_key_exists(struct p11_token *tok, const char *label);
/* Generate on the token: CKA_SENSITIVE, not extractable, private. -EEXIST when
 * the label is taken. -ENOTSUP when the token cannot serve the type. */
int p11_key_generate(struct p11_token *tok, const char *label, enum p11_key_type type);
/* Delete the key pair (private and public objects) with this label;
 * -ENOENT when there is none. */
int p11_key_delete(struct p11_token *tok, const char *label);
/* A GnuTLS private key backed by the token key with this label, or by a full
 * pkcs11: URI when `label` starts with "pkcs11:". */
int p11_key_load(struct p11_token *tok, const char *label, gnutls_privkey_t *out);
/*
 * Many keys at once (a spoke's uplinks, each with a key of its own): one
 * search over the token's private keys, then each key signs by its object
 * handle on a session of its own, where p11_key_load() searches the token
 * once per key (SoftHSM reads every object file in each search). keys[i]
 * gets the key labelled labels[i]; it stays NULL for a label no key or two
 * keys carry, a full pkcs11: URI, or a key this path does not sign with
 * (only EC P-256/384/521, without CKA_ALWAYS_AUTHENTICATE): load those with
 * p11_key_load(), which says what is wrong. The number of keys filled, or
 * <0 (nothing filled; p11_token_error() says why: a wrong PIN, no token).
 * The keys die with p11_token_reinit(): load them again after it.
 */
int p11_keys_load(struct p11_token *tok, const char *const *labels, size_t n,
                  gnutls_privkey_t *keys);
/* The matching public key (from the public object: needs no PIN). */
int p11_pubkey_load(struct p11_token *tok, const char *label, gnutls_pubkey_t *out);

/* ---- certificates ------------------------------------------------------ */

enum p11_profile {
    P11_PROFILE_CA = 0, /* CA:TRUE, keyCertSign, cRLSign */
    P11_PROFILE_SERVER, /* serverAuth, digitalSignature (+keyEncipherment for RSA) */
    P11_PROFILE_CLIENT, /* clientAuth, digitalSignature (+keyEncipherment for RSA) */
};

struct p11_issue {
    enum p11_profile profile;
    const char *cn;             /* subject CN (required) */
    const char *const *hosts;   /* SANs: each an IP address or a DNS name */
    size_t n_hosts;
    const char *uri_san;        /* e.g. "urn:mtlsgw:role:tunnel", or NULL */
    const char *const *more_uris; /* further URI SANs (a tunnel peer's networks) */
    size_t n_more_uris;
    const char *crl_url;        /* CRL distribution point (a URI), or NULL */
    unsigned days;              /* validity from now (backdated 5 minutes), never
                                 * past the issuer's notAfter */
    bool has_path_len;          /* CA only: pathLenConstraint path_len (0..16); */
    unsigned path_len;          /* without it, none */
};

/*
 * Issue a certificate for `subject` signed by (issuer, issuer_key). With
 * issuer == NULL the certificate is self-signed by issuer_key (a root CA);
 * `subject` may then be NULL (the public half of issuer_key) and must
 * otherwise be that key. -EINVAL for a bad request (no CN, days 0, a host
 * that is neither an IP address nor a DNS name).
 * Serial: 128 bits from the GnuTLS RNG, positive. SHA-256 (SHA-384 for
 * P-384 issuers). Subject/authority key identifiers set.
 */
int p11_cert_issue(gnutls_x509_crt_t issuer, gnutls_privkey_t issuer_key,
                   gnutls_pubkey_t subject, const struct p11_issue *req,
                   gnutls_x509_crt_t *out);

/*
 * Parse a CSR given as PEM or DER PKCS#10 and check its self-signature.
 * -EBADMSG with a message in err such as
 * "not PEM or DER PKCS#10" or "signature does not verify".
 */
int p11_csr_parse(const gnutls_datum_t *data, gnutls_x509_crq_t *out, char *err, size_t errlen);
/* Make a CSR with subject CN=cn signed by key (SHA-256). */
int p11_csr_make(gnutls_privkey_t key, const char *cn, gnutls_x509_crq_t *out);
/* The same for a CA key: asks for CA:TRUE, keyCertSign and cRLSign (an
 * intermediate's request to a root); SHA-384 for a P-384 key. */
int p11_csr_make_ca(gnutls_privkey_t key, const char *cn, gnutls_x509_crq_t *out);

/* Serial number as lower-case hex without separators (owned string). */
int p11_cert_serial_hex(gnutls_x509_crt_t crt, char **out);
/* SHA-256 of the subject public key (owned lower-case hex), used to tell
 * whether a key is already enrolled. */
int p11_pubkey_id_hex(gnutls_pubkey_t key, char **out);

/*
 * A detached signature of data by key (a token key: the CA's signs a
 * backup's manifest), with the digest the key's certificates use (SHA-384
 * for P-384, else SHA-256; PKCS#1 v1.5 for RSA). *sig is gnutls_malloc'ed.
 * p11_verify_data checks one against the matching public key: 0, or
 * -EBADMSG when it does not verify.
 */
int p11_sign_data(gnutls_privkey_t key, gnutls_pubkey_t pub, const gnutls_datum_t *data,
                  gnutls_datum_t *sig);
int p11_verify_data(gnutls_pubkey_t pub, const gnutls_datum_t *data, const gnutls_datum_t *sig);

struct p11_revoked {
    const char *serial_hex; /* as p11_cert_serial_hex() gives it */
    time_t when;
};

/*
 * Sign a CRL v2 with CRL number `number`, thisUpdate now, nextUpdate
 * now + days, authority key identifier of the CA.
 */
int p11_crl_sign(gnutls_x509_crt_t ca, gnutls_privkey_t ca_key, const struct p11_revoked *revoked,
                 size_t n_revoked, uint64_t number, unsigned days, gnutls_x509_crl_t *out);

/* ---- keys made off-token (devices without a token) ------------------- */

/* A software key of this type (for PKCS#12 enrollment only). */
int p11_softkey_generate(enum p11_key_type type, gnutls_x509_privkey_t *out);

/*
 * PKCS#12 (DER) with the key, its certificate and the CA, friendly name
 * `name`, encrypted with `password` (PBES2 AES-256, HMAC-SHA256), readable
 * by `openssl pkcs12` and Java keytool. *out is allocated with gnutls_malloc;
 * release with gnutls_free().
 */
int p11_p12_export(gnutls_x509_privkey_t key, gnutls_x509_crt_t crt, gnutls_x509_crt_t ca,
                   const char *name, const char *password, gnutls_datum_t *out);
/* The same with the whole chain (intermediates, then the root), so that
 * keytool and browsers build the path with the root alone trusted. */
int p11_p12_export_chain(gnutls_x509_privkey_t key, gnutls_x509_crt_t crt,
                         const gnutls_x509_crt_t *cas, size_t n_cas, const char *name,
                         const char *password, gnutls_datum_t *out);

#endif
