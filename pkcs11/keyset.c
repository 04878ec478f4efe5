/*
 * keyset.c: many private keys of one token found in one search, each
 * signing through its object handle (p11_keys_load() in p11.h).
 *
 * p11_key_load() goes through gnutls_privkey_import_pkcs11_url(), which
 * opens a session and searches the token for that one key. On SoftHSM's
 * file store a search re-reads every object file of the token (about 450
 * openat() for a token of 100 key pairs), so a spoke with 100 uplink keys
 * spent ~10 ms of CPU per key just finding it, and the cost grows with
 * the square of the keys. Here one C_FindObjects lists the private keys,
 * and each key found gets its own session (one signing operation at a time
 * per session, PKCS#11 5.6) and signs by handle through
 * gnutls_privkey_import_ext4(): nothing is searched again.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <gnutls/gnutls.h>
#include <gnutls/abstract.h>
#include <gnutls/crypto.h>
#include <gnutls/pkcs11.h>

#include "p11-private.h"

#define LABEL_BUF 129
#define SIG_MAX 160 /* r || s of P-521, the largest curve we sign with */

/* A token key signing by handle: the userdata of its gnutls_privkey_t. */
struct hkey {
    struct p11_token *tok;
    CK_FUNCTION_LIST *mod;
    CK_SLOT_ID slot;
    CK_SESSION_HANDLE sess;
    CK_OBJECT_HANDLE obj;
    unsigned gen;        /* p11_generation() when made */
    unsigned bits;       /* curve size */
    pthread_mutex_t lock; /* the session: one operation at a time */
};

/* The GnuTLS error GnuTLS's own PKCS#11 layer gives for rv (lib/pkcs11.c),
 * so that a failing signature reads as it did with p11_key_load(): a
 * token moved away says "PKCS #11 error in data" either way. */
static int rv_to_gnutls(CK_RV rv)
{
    switch (rv) {
    case CKR_HOST_MEMORY:
        return GNUTLS_E_MEMORY_ERROR;
    case CKR_SLOT_ID_INVALID:
        return GNUTLS_E_PKCS11_SLOT_ERROR;
    case CKR_ARGUMENTS_BAD:
    case CKR_MECHANISM_PARAM_INVALID:
        return GNUTLS_E_INVALID_REQUEST;
    case CKR_NEED_TO_CREATE_THREADS:
    case CKR_CANT_LOCK:
    case CKR_FUNCTION_NOT_PARALLEL:
    case CKR_MUTEX_BAD:
    case CKR_MUTEX_NOT_LOCKED:
        return GNUTLS_E_LOCKING_ERROR;
    case CKR_ATTRIBUTE_READ_ONLY:
    case CKR_ATTRIBUTE_SENSITIVE:
    case CKR_ATTRIBUTE_TYPE_INVALID:
    case CKR_ATTRIBUTE_VALUE_INVALID:
        return GNUTLS_E_PKCS11_ATTRIBUTE_ERROR;
    case CKR_DEVICE_ERROR:
    case CKR_DEVICE_MEMORY:
    case CKR_DEVICE_REMOVED:
        return GNUTLS_E_PKCS11_DEVICE_ERROR;
    case CKR_DATA_INVALID:
    case CKR_DATA_LEN_RANGE:
    case CKR_ENCRYPTED_DATA_INVALID:
    case CKR_ENCRYPTED_DATA_LEN_RANGE:
    case CKR_OBJECT_HANDLE_INVALID:
        return GNUTLS_E_PKCS11_DATA_ERROR;
    case CKR_FUNCTION_NOT_SUPPORTED:
    case CKR_MECHANISM_INVALID:
        return GNUTLS_E_PKCS11_UNSUPPORTED_FEATURE_ERROR;
    case CKR_KEY_HANDLE_INVALID:
    case CKR_KEY_SIZE_RANGE:
    case CKR_KEY_TYPE_INCONSISTENT:
    case CKR_KEY_NOT_NEEDED:
    case CKR_KEY_CHANGED:
    case CKR_KEY_NEEDED:
    case CKR_KEY_INDIGESTIBLE:
    case CKR_KEY_FUNCTION_NOT_PERMITTED:
    case CKR_KEY_NOT_WRAPPABLE:
    case CKR_KEY_UNEXTRACTABLE:
        return GNUTLS_E_PKCS11_KEY_ERROR;
    case CKR_PIN_INCORRECT:
    case CKR_PIN_INVALID:
    case CKR_PIN_LEN_RANGE:
        return GNUTLS_E_PKCS11_PIN_ERROR;
    case CKR_PIN_EXPIRED:
        return GNUTLS_E_PKCS11_PIN_EXPIRED;
    case CKR_PIN_LOCKED:
        return GNUTLS_E_PKCS11_PIN_LOCKED;
    case CKR_SESSION_CLOSED:
    case CKR_SESSION_COUNT:
    case CKR_SESSION_HANDLE_INVALID:
    case CKR_SESSION_PARALLEL_NOT_SUPPORTED:
    case CKR_SESSION_READ_ONLY:
    case CKR_SESSION_EXISTS:
    case CKR_SESSION_READ_ONLY_EXISTS:
    case CKR_SESSION_READ_WRITE_SO_EXISTS:
        return GNUTLS_E_PKCS11_SESSION_ERROR;
    case CKR_SIGNATURE_INVALID:
    case CKR_SIGNATURE_LEN_RANGE:
        return GNUTLS_E_PKCS11_SIGNATURE_ERROR;
    case CKR_TOKEN_NOT_PRESENT:
    case CKR_TOKEN_NOT_RECOGNIZED:
    case CKR_TOKEN_WRITE_PROTECTED:
        return GNUTLS_E_PKCS11_TOKEN_ERROR;
    case CKR_USER_ALREADY_LOGGED_IN:
    case CKR_USER_NOT_LOGGED_IN:
    case CKR_USER_PIN_NOT_INITIALIZED:
    case CKR_USER_TYPE_INVALID:
    case CKR_USER_ANOTHER_ALREADY_LOGGED_IN:
    case CKR_USER_TOO_MANY_TYPES:
        return GNUTLS_E_PKCS11_USER_ERROR;
    case CKR_BUFFER_TOO_SMALL:
        return GNUTLS_E_SHORT_MEMORY_BUFFER;
    default:
        return GNUTLS_E_PKCS11_ERROR;
    }
}

static CK_RV open_session(const struct hkey *k, CK_SESSION_HANDLE *s)
{
    return k->mod->C_OpenSession(k->slot, CKF_SERIAL_SESSION, NULL, NULL, s);
}

static CK_RV sign_once(struct hkey *k, const gnutls_datum_t *hash, unsigned char *sig,
                       CK_ULONG *sig_len)
{
    CK_MECHANISM mech = { CKM_ECDSA, NULL, 0 };
    CK_RV rv;

    rv = k->mod->C_SignInit(k->sess, &mech, k->obj);
    if (rv != CKR_OK)
        return rv;
    return k->mod->C_Sign(k->sess, hash->data, hash->size, sig, sig_len);
}

/*
 * TLS hands over the hash (ECDSA is not prehashed by the token); PKCS#11
 * returns r || s, TLS and X.509 want the DER SEQUENCE. A session the token
 * dropped is opened again, a login the token forgot is made again, once.
 */
static int hkey_sign_hash(gnutls_privkey_t key, gnutls_sign_algorithm_t algo, void *userdata,
                          unsigned flags, const gnutls_datum_t *hash, gnutls_datum_t *signature)
{
    struct hkey *k = userdata;
    unsigned char sig[SIG_MAX];
    CK_ULONG sig_len = sizeof(sig);
    gnutls_datum_t r, s;
    CK_RV rv;
    int rc;

    (void)key;
    (void)flags;
    if (gnutls_sign_get_pk_algorithm(algo) != GNUTLS_PK_ECDSA)
        return GNUTLS_E_UNSUPPORTED_SIGNATURE_ALGORITHM;
    /* After p11_token_reinit() the module instance we hold is gone. */
    if (k->gen != p11_generation())
        return GNUTLS_E_PKCS11_TOKEN_ERROR;
    pthread_mutex_lock(&k->lock);
    rv = sign_once(k, hash, sig, &sig_len);
    if (rv == CKR_SESSION_HANDLE_INVALID || rv == CKR_SESSION_CLOSED) {
        CK_SESSION_HANDLE fresh;
        if (open_session(k, &fresh) == CKR_OK) {
            k->sess = fresh;
            sig_len = sizeof(sig);
            rv = sign_once(k, hash, sig, &sig_len);
        }
    }
    if (rv == CKR_USER_NOT_LOGGED_IN && p11_session_login(k->tok, k->mod, k->sess) == 0) {
        sig_len = sizeof(sig);
        rv = sign_once(k, hash, sig, &sig_len);
    }
    pthread_mutex_unlock(&k->lock);
    if (rv != CKR_OK)
        return rv_to_gnutls(rv);
    if (sig_len == 0 || sig_len % 2 != 0)
        return GNUTLS_E_PK_SIGN_FAILED;
    r.data = sig;
    r.size = (unsigned)(sig_len / 2);
    s.data = sig + sig_len / 2;
    s.size = r.size;
    rc = gnutls_encode_rs_value(signature, &r, &s);
    gnutls_memset(sig, 0, sizeof(sig));
    return rc;
}

static int hkey_info(gnutls_privkey_t key, unsigned flags, void *userdata)
{
    struct hkey *k = userdata;

    (void)key;
    if (flags & GNUTLS_PRIVKEY_INFO_HAVE_SIGN_ALGO)
        return gnutls_sign_get_pk_algorithm(GNUTLS_FLAGS_TO_SIGN_ALGO(flags))
               == GNUTLS_PK_ECDSA;
    if (flags & GNUTLS_PRIVKEY_INFO_PK_ALGO)
        return GNUTLS_PK_ECDSA;
    if (flags & GNUTLS_PRIVKEY_INFO_PK_ALGO_BITS)
        return (int)k->bits;
    return -1;
}

static void hkey_free(struct hkey *k)
{
    if (k == NULL)
        return;
    /* A session of a module instance that p11_token_reinit() finalized is
     * gone with it, and so may be the function list. */
    if (k->sess != CK_INVALID_HANDLE && k->gen == p11_generation())
        k->mod->C_CloseSession(k->sess);
    pthread_mutex_destroy(&k->lock);
    free(k);
}

static void hkey_deinit(gnutls_privkey_t key, void *userdata)
{
    (void)key;
    hkey_free(userdata);
}

/* The curve from CKA_EC_PARAMS (a DER OID): its size, 0 for one we do not
 * sign with here (the key then goes the p11_key_load() way). */
static unsigned curve_bits(const unsigned char *p, CK_ULONG len)
{
    static const unsigned char p256[] = { 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01,
                                          0x07 };
    static const unsigned char p384[] = { 0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22 };
    static const unsigned char p521[] = { 0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x23 };

    if (len == sizeof(p256) && memcmp(p, p256, len) == 0)
        return 256;
    if (len == sizeof(p384) && memcmp(p, p384, len) == 0)
        return 384;
    if (len == sizeof(p521) && memcmp(p, p521, len) == 0)
        return 521;
    return 0;
}

/* Whether object obj is a key this file signs with: an EC key on a known
 * curve that does not ask for a login before each use. */
static unsigned ec_key_bits(CK_FUNCTION_LIST *mod, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE obj)
{
    CK_KEY_TYPE type = (CK_KEY_TYPE)-1;
    CK_BBOOL always = CK_FALSE;
    unsigned char params[32];
    CK_ATTRIBUTE a[] = {
        { CKA_KEY_TYPE, &type, sizeof(type) },
        { CKA_EC_PARAMS, params, sizeof(params) },
    };
    CK_ATTRIBUTE aa = { CKA_ALWAYS_AUTHENTICATE, &always, sizeof(always) };

    if (mod->C_GetAttributeValue(s, obj, a, 2) != CKR_OK || type != CKK_EC)
        return 0;
    if (mod->C_GetAttributeValue(s, obj, &aa, 1) == CKR_OK && always)
        return 0;
    return curve_bits(params, a[1].ulValueLen);
}

static int hkey_make(struct p11_token *tok, CK_FUNCTION_LIST *mod, CK_SLOT_ID slot,
                     CK_OBJECT_HANDLE obj, unsigned bits, gnutls_privkey_t *out)
{
    gnutls_privkey_t key = NULL;
    struct hkey *k;
    int rc;

    k = calloc(1, sizeof(*k));
    if (k == NULL)
        return -ENOMEM;
    k->tok = tok;
    k->mod = mod;
    k->slot = slot;
    k->obj = obj;
    k->bits = bits;
    k->gen = p11_generation();
    k->sess = CK_INVALID_HANDLE;
    pthread_mutex_init(&k->lock, NULL);
    if (open_session(k, &k->sess) != CKR_OK) {
        k->sess = CK_INVALID_HANDLE;
        rc = -EIO;
        goto out;
    }
    if (gnutls_privkey_init(&key) < 0) {
        key = NULL;
        rc = -ENOMEM;
        goto out;
    }
    rc = gnutls_privkey_import_ext4(key, k, NULL, hkey_sign_hash, NULL, hkey_deinit, hkey_info,
                                    GNUTLS_PRIVKEY_IMPORT_AUTO_RELEASE);
    if (rc < 0) {
        rc = p11_errno(rc);
        goto out;
    }
    k = NULL; /* the key's now */
    *out = key;
    key = NULL;
    rc = 0;
out:
    gnutls_privkey_deinit(key);
    hkey_free(k);
    return rc;
}

/* The first index of label in labels[0..n), or -1. */
static long label_index(const char *const *labels, size_t n, const char *label)
{
    for (size_t i = 0; i < n; i++) {
        if (labels[i] != NULL && strcmp(labels[i], label) == 0)
            return (long)i;
    }
    return -1;
}

/* Every private key of the token, in one search: *out (malloc'ed), *n. */
static int find_private_keys(struct p11_token *tok, CK_FUNCTION_LIST *mod, CK_SESSION_HANDLE s,
                             CK_OBJECT_HANDLE **out, size_t *n)
{
    CK_OBJECT_CLASS klass = CKO_PRIVATE_KEY;
    CK_ATTRIBUTE match = { CKA_CLASS, &klass, sizeof(klass) };
    CK_OBJECT_HANDLE batch[64], *found = NULL;
    size_t n_found = 0, cap = 0;
    CK_ULONG got;
    int rc;

    if (mod->C_FindObjectsInit(s, &match, 1) != CKR_OK)
        return p11_fail(tok, -EIO, "cannot search the private keys");
    for (;;) {
        got = 0;
        if (mod->C_FindObjects(s, batch, sizeof(batch) / sizeof(batch[0]), &got) != CKR_OK) {
            rc = p11_fail(tok, -EIO, "cannot search the private keys");
            goto out;
        }
        if (got == 0)
            break;
        if (n_found + got > cap) {
            size_t ncap = cap ? cap * 2 : 256;
            CK_OBJECT_HANDLE *nf;
            while (ncap < n_found + got)
                ncap *= 2;
            nf = realloc(found, ncap * sizeof(*found));
            if (nf == NULL) {
                rc = -ENOMEM;
                goto out;
            }
            found = nf;
            cap = ncap;
        }
        memcpy(found + n_found, batch, got * sizeof(*found));
        n_found += got;
    }
    *out = found;
    found = NULL;
    *n = n_found;
    rc = 0;
out:
    mod->C_FindObjectsFinal(s);
    free(found);
    return rc;
}

int p11_keys_load(struct p11_token *tok, const char *const *labels, size_t n,
                  gnutls_privkey_t *keys)
{
    CK_OBJECT_HANDLE *found = NULL;
    CK_FUNCTION_LIST *mod = NULL;
    CK_SESSION_HANDLE s = CK_INVALID_HANDLE;
    unsigned long slot = 0;
    size_t i, n_found = 0;
    unsigned char *hits = NULL;
    CK_OBJECT_HANDLE *obj_of = NULL;
    void *ptr = NULL;
    int rc, loaded = 0;

    if (tok == NULL || (labels == NULL && n > 0) || (keys == NULL && n > 0))
        return -EINVAL;
    tok->err[0] = '\0';
    for (i = 0; i < n; i++)
        keys[i] = NULL;
    if (n == 0)
        return 0;
    rc = gnutls_pkcs11_token_get_ptr(tok->uri, &ptr, &slot, 0);
    if (rc < 0)
        return p11_fail(tok, p11_errno(rc), "cannot reach the token: %s", gnutls_strerror(rc));
    mod = ptr;
    if (mod->C_OpenSession(slot, CKF_SERIAL_SESSION, NULL, NULL, &s) != CKR_OK) {
        s = CK_INVALID_HANDLE;
        rc = p11_fail(tok, -EIO, "cannot open a session");
        goto out;
    }
    rc = p11_session_login(tok, mod, s);
    if (rc < 0)
        goto out;
    rc = find_private_keys(tok, mod, s, &found, &n_found);
    if (rc < 0)
        goto out;

    /* Per label (its first place in labels[]): the object carrying it and
     * how many do. A label two keys carry is left to p11_key_load(), which
     * picks one as it always did. */
    hits = calloc(n, 1);
    obj_of = calloc(n, sizeof(*obj_of));
    if (hits == NULL || obj_of == NULL) {
        rc = -ENOMEM;
        goto out;
    }
    for (i = 0; i < n_found; i++) {
        char label[LABEL_BUF];
        CK_ATTRIBUTE a = { CKA_LABEL, label, sizeof(label) - 1 };
        long at;
        if (mod->C_GetAttributeValue(s, found[i], &a, 1) != CKR_OK)
            continue;
        label[a.ulValueLen] = '\0';
        at = label_index(labels, n, label);
        if (at < 0)
            continue;
        if (hits[at] < 2)
            hits[at]++;
        obj_of[at] = found[i];
    }
    /* Each uplink its own key and session, also where two share a label. */
    for (i = 0; i < n; i++) {
        unsigned bits;
        long at;
        if (labels[i] == NULL)
            continue;
        at = label_index(labels, n, labels[i]);
        if (at < 0 || hits[at] != 1)
            continue;
        bits = ec_key_bits(mod, s, obj_of[at]);
        if (bits == 0)
            continue;
        rc = hkey_make(tok, mod, slot, obj_of[at], bits, &keys[i]);
        if (rc < 0)
            goto out;
        loaded++;
    }
    rc = loaded;
out:
    /* Closed after the keys' own sessions are open: the token keeps the
     * login while a session of ours is. */
    if (s != CK_INVALID_HANDLE)
        mod->C_CloseSession(s);
    if (rc < 0) {
        for (i = 0; i < n; i++) {
            gnutls_privkey_deinit(keys[i]);
            keys[i] = NULL;
        }
    }
    free(hits);
    free(obj_of);
    free(found);
    return rc;
}
