/*
 * p11-private.h: what the files of pkcs11/ share and nobody else sees.
 */
#ifndef MTLSGW_P11_PRIVATE_H
#define MTLSGW_P11_PRIVATE_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

#include <gnutls/gnutls.h>
#include <p11-kit/pkcs11.h>

#include "p11.h"

#define P11_ERR_MAX 512
#define P11_PIN_MAX 256

struct p11_token {
    char *uri;          /* as given to p11_token_open() */
    char *pin_file;     /* NULL when opened without a PIN */
    char *pin;          /* wiped before free; read only under the registry lock;
                         * NULL after p11_token_forget_pin() */
    size_t pin_len;
    bool pin_rejected;  /* the token said CKR_PIN_INCORRECT once: never resubmit */
    void *match;        /* P11KitUri parsed from uri, for the PIN callback */
    struct p11_token *next; /* registry link */
    char err[P11_ERR_MAX];
};

/* Set tok->err ("token <uri>: " prefix added) and return `rc`. */
int p11_fail(struct p11_token *tok, int rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Fill a caller's err buffer (may be NULL) and return `rc`. */
int p11_fail_buf(char *err, size_t errlen, int rc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Map a GnuTLS error code to a negative errno. */
int p11_errno(int gnutls_rc);

/* Lower-case hex of `len` bytes into a malloc'd string. */
int p11_hex(const unsigned char *data, size_t len, char **out);

/* Key-generation parameters for a key type: GnuTLS algorithm and bits. */
int p11_key_params(enum p11_key_type type, gnutls_pk_algorithm_t *pk, unsigned *bits);

/* The digest to sign with for this key: SHA-384 for P-384, else SHA-256. */
gnutls_digest_algorithm_t p11_sign_digest(gnutls_pubkey_t pub);

/* GnuTLS object flags that make the next call log in when we hold a PIN. */
unsigned p11_login_flags(const struct p11_token *tok);

/* Counts p11_token_reinit() calls: a PKCS#11 session or handle taken at
 * another count belongs to a module instance that is gone. */
unsigned p11_generation(void);

/* Log in the token of session s with tok's PIN unless it is already (login
 * state is the token's, shared by every session of the process): 0, or
 * -EACCES with tok->err set ("wrong PIN", never resubmitted). */
int p11_session_login(struct p11_token *tok, CK_FUNCTION_LIST *mod, CK_SESSION_HANDLE s);

#endif
