/*
 * key.c: key pairs on the token (by label), and software keys.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <gnutls/gnutls.h>
#include <gnutls/abstract.h>
#include <gnutls/pkcs11.h>

#include "p11-private.h"

#define LABEL_MAX 128

static bool label_ok(const char *label)
{
    size_t len, i;

    if (label == NULL)
        return false;
    len = strlen(label);
    if (len == 0 || len > LABEL_MAX)
        return false;
    for (i = 0; i < len; i++) {
        if ((unsigned char)label[i] < 0x20 || label[i] == 0x7f)
            return false;
    }
    return true;
}

static bool unreserved(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
           || c == '-' || c == '.' || c == '_' || c == '~';
}

/*
 * "<token path>;object=<label>[;type=<type>][?<token query>]". Path
 * attributes must precede the query (RFC 7512 section 2.3), and the label is
 * percent-encoded so that ';', '?' or spaces in it cannot change the URI.
 */
static int object_uri(const char *token_uri, const char *label, const char *type, char **out)
{
    static const char hexd[] = "0123456789ABCDEF";
    const char *query;
    size_t plen, qlen, i, o = 0;
    char *s;

    query = strchr(token_uri, '?');
    plen = query != NULL ? (size_t)(query - token_uri) : strlen(token_uri);
    qlen = query != NULL ? strlen(query) : 0;
    s = malloc(plen + 1 + 7 + strlen(label) * 3 + 14 + qlen + 1);
    if (s == NULL)
        return -ENOMEM;
    memcpy(s, token_uri, plen);
    o = plen;
    if (plen > 0 && s[plen - 1] != ':' && s[plen - 1] != ';')
        s[o++] = ';';
    memcpy(s + o, "object=", 7);
    o += 7;
    for (i = 0; label[i] != '\0'; i++) {
        unsigned char c = (unsigned char)label[i];

        if (unreserved(c)) {
            s[o++] = (char)c;
        } else {
            s[o++] = '%';
            s[o++] = hexd[c >> 4];
            s[o++] = hexd[c & 0x0f];
        }
    }
    if (type != NULL) {
        memcpy(s + o, ";type=", 6);
        o += 6;
        memcpy(s + o, type, strlen(type));
        o += strlen(type);
    }
    if (qlen > 0) {
        memcpy(s + o, query, qlen);
        o += qlen;
    }
    s[o] = '\0';
    *out = s;
    return 0;
}

int p11_key_uri(const struct p11_token *tok, const char *label, char **out)
{
    if (tok == NULL || out == NULL || !label_ok(label))
        return -EINVAL;
    return object_uri(tok->uri, label, "private", out);
}

static void free_objs(gnutls_pkcs11_obj_t *objs, unsigned n)
{
    unsigned i;

    for (i = 0; i < n; i++)
        gnutls_pkcs11_obj_deinit(objs[i]);
    gnutls_free(objs);
}

/* Count objects matching a label and type ("private", "public"). */
static int count_objs(struct p11_token *tok, const char *label, const char *type)
{
    gnutls_pkcs11_obj_t *objs = NULL;
    unsigned n = 0;
    char *uri = NULL;
    int rc;

    rc = object_uri(tok->uri, label, type, &uri);
    if (rc < 0)
        goto out;
    rc = gnutls_pkcs11_obj_list_import_url4(&objs, &n, uri, p11_login_flags(tok));
    if (rc < 0) {
        rc = p11_fail(tok, p11_errno(rc), "cannot list objects labelled %s: %s", label,
                      gnutls_strerror(rc));
        goto out;
    }
    rc = (int)n;
out:
    free_objs(objs, n);
    free(uri);
    return rc;
}

int p11_key_exists(struct p11_token *tok, const char *label)
{
    int rc;

    if (tok == NULL)
        return -EINVAL;
    tok->err[0] = '\0';
    if (!label_ok(label))
        return p11_fail(tok, -EINVAL, "bad key label");
    rc = count_objs(tok, label, "private");
    if (rc < 0)
        return rc;
    return rc > 0 ? 1 : 0;
}

/*
 * GnuTLS gives a fresh key pair a random CKA_ID. Replace it on both halves
 * by the SHA-1 key identifier of the public key, the value GnuTLS and
 * OpenSC put on certificates they store, so a certificate written to the
 * token later pairs with its key. Tokens that refuse C_SetAttributeValue
 * keep the random (still shared) ID.
 */
static int set_key_id(struct p11_token *tok, const char *label, const gnutls_datum_t *pubder)
{
    gnutls_pkcs11_obj_t *objs = NULL;
    gnutls_pubkey_t pub = NULL;
    unsigned char id[20];
    size_t id_size = sizeof(id);
    unsigned n = 0, i;
    char *uri = NULL;
    int rc;

    rc = gnutls_pubkey_init(&pub);
    if (rc < 0)
        goto out;
    rc = gnutls_pubkey_import(pub, pubder, GNUTLS_X509_FMT_DER);
    if (rc < 0)
        goto out;
    rc = gnutls_pubkey_get_key_id(pub, GNUTLS_KEYID_USE_SHA1, id, &id_size);
    if (rc < 0)
        goto out;
    rc = object_uri(tok->uri, label, NULL, &uri);
    if (rc < 0)
        goto out;
    rc = gnutls_pkcs11_obj_list_import_url4(&objs, &n, uri, p11_login_flags(tok));
    if (rc < 0)
        goto out;
    for (i = 0; i < n; i++) {
        rc = gnutls_pkcs11_obj_set_info(objs[i], GNUTLS_PKCS11_OBJ_ID, id, id_size,
                                        p11_login_flags(tok));
        if (rc < 0)
            goto out;
    }
    rc = 0;
out:
    free_objs(objs, n);
    free(uri);
    gnutls_pubkey_deinit(pub);
    return rc < 0 ? p11_errno(rc) : 0;
}

int p11_key_generate(struct p11_token *tok, const char *label, enum p11_key_type type)
{
    gnutls_datum_t pubder = { NULL, 0 };
    gnutls_pk_algorithm_t pk;
    unsigned bits, usage;
    int rc;

    if (tok == NULL)
        return -EINVAL;
    tok->err[0] = '\0';
    if (!label_ok(label))
        return p11_fail(tok, -EINVAL, "bad key label (1..%d printable characters)", LABEL_MAX);
    if (p11_key_params(type, &pk, &bits) < 0)
        return p11_fail(tok, -EINVAL, "unknown key type %d", (int)type);
    if (tok->pin_file == NULL)
        return p11_fail(tok, -EACCES, "opened without a PIN file; generating keys needs "
                        "a login");
    rc = p11_token_supports(tok, type);
    if (rc < 0)
        return rc;
    rc = p11_key_exists(tok, label);
    if (rc < 0)
        return rc;
    if (rc > 0)
        return p11_fail(tok, -EEXIST, "a key labelled %s already exists; delete it first "
                        "or pick another label", label);

    /* keyEncipherment goes on RSA server/client certificates (p11.h), so the
     * token key must be able to decrypt; EC keys only sign. */
    usage = GNUTLS_KEY_DIGITAL_SIGNATURE;
    if (pk == GNUTLS_PK_RSA)
        usage |= GNUTLS_KEY_KEY_ENCIPHERMENT | GNUTLS_KEY_DECIPHER_ONLY;

    rc = gnutls_pkcs11_privkey_generate3(tok->uri, pk, bits, label, NULL, GNUTLS_X509_FMT_DER,
                                         &pubder, usage,
                                         GNUTLS_PKCS11_OBJ_FLAG_LOGIN
                                             | GNUTLS_PKCS11_OBJ_FLAG_MARK_SENSITIVE
                                             | GNUTLS_PKCS11_OBJ_FLAG_MARK_PRIVATE);
    if (rc < 0) {
        rc = p11_fail(tok, p11_errno(rc), "key generation failed: %s", gnutls_strerror(rc));
        goto out;
    }
    (void)set_key_id(tok, label, &pubder);
    rc = 0;
out:
    gnutls_free(pubder.data);
    return rc;
}

int p11_key_delete(struct p11_token *tok, const char *label)
{
    static const char *const types[] = { "private", "public" };
    char *uri = NULL;
    size_t i;
    int rc, found;

    if (tok == NULL)
        return -EINVAL;
    tok->err[0] = '\0';
    if (!label_ok(label))
        return p11_fail(tok, -EINVAL, "bad key label");
    found = p11_key_exists(tok, label);
    if (found < 0)
        return found;
    if (found == 0)
        return p11_fail(tok, -ENOENT, "no key labelled %s", label);
    for (i = 0; i < 2; i++) {
        rc = object_uri(tok->uri, label, types[i], &uri);
        if (rc < 0)
            goto out;
        if (count_objs(tok, label, types[i]) > 0) {
            rc = gnutls_pkcs11_delete_url(uri, p11_login_flags(tok));
            if (rc < 0) {
                rc = p11_fail(tok, p11_errno(rc), "cannot delete the %s key %s: %s",
                              types[i], label, gnutls_strerror(rc));
                goto out;
            }
        }
        free(uri);
        uri = NULL;
    }
    rc = 0;
out:
    free(uri);
    return rc;
}

int p11_key_load(struct p11_token *tok, const char *label, gnutls_privkey_t *out)
{
    gnutls_privkey_t key = NULL;
    char *uri = NULL;
    const char *name;
    int rc;

    if (tok == NULL || out == NULL || label == NULL)
        return -EINVAL;
    tok->err[0] = '\0';
    if (strncmp(label, "pkcs11:", 7) == 0) {
        name = label;
    } else {
        if (!label_ok(label))
            return p11_fail(tok, -EINVAL, "bad key label");
        rc = object_uri(tok->uri, label, "private", &uri);
        if (rc < 0)
            return rc;
        name = uri;
    }
    rc = gnutls_privkey_init(&key);
    if (rc < 0) {
        rc = -ENOMEM;
        goto out;
    }
    rc = gnutls_privkey_import_pkcs11_url(key, name);
    if (rc < 0) {
        int e = p11_errno(rc);

        if (e == -ENODEV)
            e = -ENOENT;
        rc = p11_fail(tok, e, "no usable private key %s: %s", label, gnutls_strerror(rc));
        goto out;
    }
    *out = key;
    key = NULL;
    rc = 0;
out:
    gnutls_privkey_deinit(key);
    free(uri);
    return rc;
}

int p11_pubkey_load(struct p11_token *tok, const char *label, gnutls_pubkey_t *out)
{
    gnutls_privkey_t key = NULL;
    gnutls_pubkey_t pub = NULL;
    char *uri = NULL;
    bool have = false;
    int rc;

    if (tok == NULL || out == NULL || label == NULL)
        return -EINVAL;
    tok->err[0] = '\0';
    rc = gnutls_pubkey_init(&pub);
    if (rc < 0)
        return -ENOMEM;
    /* The public object needs no login; by label only, a full URI names the
     * private key and goes the second way. */
    if (strncmp(label, "pkcs11:", 7) != 0) {
        if (!label_ok(label)) {
            rc = p11_fail(tok, -EINVAL, "bad key label");
            goto out;
        }
        rc = object_uri(tok->uri, label, "public", &uri);
        if (rc < 0)
            goto out;
        have = gnutls_pubkey_import_url(pub, uri, p11_login_flags(tok)) == 0;
        if (!have) {
            gnutls_pubkey_deinit(pub);
            pub = NULL;
            if (gnutls_pubkey_init(&pub) < 0) {
                pub = NULL;
                rc = -ENOMEM;
                goto out;
            }
        }
    }
    /* Tokens that keep no public object: GnuTLS reads the public part off the
     * private key (RSA) or a certificate with the same CKA_ID. */
    if (!have) {
        rc = p11_key_load(tok, label, &key);
        if (rc < 0)
            goto out;
        rc = gnutls_pubkey_import_privkey(pub, key, 0, 0);
        if (rc < 0) {
            rc = p11_fail(tok, p11_errno(rc), "cannot read public key of %s: %s", label,
                          gnutls_strerror(rc));
            goto out;
        }
    }
    *out = pub;
    pub = NULL;
    rc = 0;
out:
    gnutls_pubkey_deinit(pub);
    gnutls_privkey_deinit(key);
    free(uri);
    return rc;
}

int p11_pubkey_id_hex(gnutls_pubkey_t key, char **out)
{
    unsigned char id[32];
    size_t size = sizeof(id);
    int rc;

    if (key == NULL || out == NULL)
        return -EINVAL;
    rc = gnutls_pubkey_get_key_id(key, GNUTLS_KEYID_USE_SHA256, id, &size);
    if (rc < 0)
        return p11_errno(rc);
    return p11_hex(id, size, out);
}

gnutls_digest_algorithm_t p11_sign_digest(gnutls_pubkey_t pub)
{
    gnutls_ecc_curve_t curve = GNUTLS_ECC_CURVE_INVALID;

    if (gnutls_pubkey_get_pk_algorithm(pub, NULL) == GNUTLS_PK_ECDSA
        && gnutls_pubkey_export_ecc_raw2(pub, &curve, NULL, NULL, 0) == 0
        && curve == GNUTLS_ECC_CURVE_SECP384R1)
        return GNUTLS_DIG_SHA384;
    return GNUTLS_DIG_SHA256;
}

int p11_sign_data(gnutls_privkey_t key, gnutls_pubkey_t pub, const gnutls_datum_t *data,
                  gnutls_datum_t *sig)
{
    int rc;

    if (!key || !pub || !data || !sig)
        return -EINVAL;
    rc = gnutls_privkey_sign_data(key, p11_sign_digest(pub), 0, data, sig);
    return rc < 0 ? p11_errno(rc) : 0;
}

int p11_verify_data(gnutls_pubkey_t pub, const gnutls_datum_t *data, const gnutls_datum_t *sig)
{
    gnutls_sign_algorithm_t algo;

    if (!pub || !data || !sig)
        return -EINVAL;
    algo = gnutls_pk_to_sign(gnutls_pubkey_get_pk_algorithm(pub, NULL), p11_sign_digest(pub));
    if (algo == GNUTLS_SIGN_UNKNOWN)
        return -ENOTSUP;
    return gnutls_pubkey_verify_data2(pub, algo, 0, data, sig) < 0 ? -EBADMSG : 0;
}

int p11_softkey_generate(enum p11_key_type type, gnutls_x509_privkey_t *out)
{
    gnutls_x509_privkey_t key = NULL;
    gnutls_pk_algorithm_t pk;
    unsigned bits;
    int rc;

    if (out == NULL || p11_key_params(type, &pk, &bits) < 0)
        return -EINVAL;
    rc = gnutls_x509_privkey_init(&key);
    if (rc < 0)
        return -ENOMEM;
    rc = gnutls_x509_privkey_generate(key, pk, bits, 0);
    if (rc < 0) {
        rc = p11_errno(rc);
        goto out;
    }
    *out = key;
    key = NULL;
    rc = 0;
out:
    gnutls_x509_privkey_deinit(key);
    return rc;
}
