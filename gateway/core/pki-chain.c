#include "pki-chain.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <gnutls/gnutls.h>
#include <gnutls/abstract.h>
#include <json-c/json.h>

#include "config.h"
#include "est-codec.h"
#include "fsutil.h"
#include "p11.h"
#include "pki.h"
#include "registry.h"

#define CERTS_MAX_SIZE (1024 * 1024)
#define PENDING_FILE "intermediate.json"
#define GATEWAY_MAX_DAYS 397
#define MAX_HOSTS 32

int pki_read_certs(const char *path, gnutls_x509_crt_t **out, size_t *n, char *err,
                   size_t errlen)
{
    gnutls_x509_crt_t *certs = NULL;
    unsigned count = 0;
    gnutls_datum_t d;
    char *text = NULL;
    size_t len = 0;
    int rc;

    rc = fs_read_file(path, CERTS_MAX_SIZE, &text, &len);
    if (rc < 0) {
        snprintf(err, errlen, "cannot read %s: %s", path, fs_strerror(rc));
        return rc;
    }
    d.data = (unsigned char *)text;
    d.size = (unsigned)len;
    if (gnutls_x509_crt_list_import2(&certs, &count, &d, GNUTLS_X509_FMT_PEM, 0) < 0 ||
        count == 0) {
        count = 0;
        if (gnutls_x509_crt_list_import2(&certs, &count, &d, GNUTLS_X509_FMT_DER, 0) < 0 ||
            count == 0) {
            snprintf(err, errlen, "%s holds no PEM or DER X.509 certificate", path);
            rc = -EBADMSG;
            goto out;
        }
    }
    *out = certs;
    *n = count;
out:
    free(text);
    return rc;
}

void pki_free_certs(gnutls_x509_crt_t *certs, size_t n)
{
    for (size_t i = 0; certs && i < n; i++)
        if (certs[i])
            gnutls_x509_crt_deinit(certs[i]);
    gnutls_free(certs);
}

int pki_certs_pem(const gnutls_x509_crt_t *certs, size_t n, gnutls_datum_t *out)
{
    gnutls_datum_t one = {0};
    unsigned char *buf = NULL, *grown;
    size_t total = 0;

    for (size_t i = 0; i < n; i++) {
        if (gnutls_x509_crt_export2(certs[i], GNUTLS_X509_FMT_PEM, &one) < 0) {
            gnutls_free(buf);
            return -EINVAL;
        }
        grown = gnutls_realloc(buf, total + one.size + 1);
        if (!grown) {
            gnutls_free(one.data);
            gnutls_free(buf);
            return -ENOMEM;
        }
        buf = grown;
        memcpy(buf + total, one.data, one.size);
        total += one.size;
        gnutls_free(one.data);
        one.data = NULL;
    }
    out->data = buf;
    out->size = (unsigned)total;
    return 0;
}

bool pki_cert_is_root(gnutls_x509_crt_t crt)
{
    return gnutls_x509_crt_check_issuer(crt, crt) == 1;
}

int pki_load_chain(const struct pki *pki, gnutls_x509_crt_t **out, size_t *n, char *err,
                   size_t errlen)
{
    *out = NULL;
    *n = 0;
    if (access(pki->chain_path, F_OK) < 0)
        return 0;
    return pki_read_certs(pki->chain_path, out, n, err, errlen);
}

int pki_ca_bundle(const struct pki *pki, gnutls_x509_crt_t **out, size_t *n, char *err,
                  size_t errlen)
{
    gnutls_x509_crt_t *roots = NULL, *chain = NULL, *all;
    size_t n_roots = 0, n_chain = 0;
    int rc;

    rc = pki_read_certs(pki->ca_path, &roots, &n_roots, err, errlen);
    if (rc == 0)
        rc = pki_load_chain(pki, &chain, &n_chain, err, errlen);
    if (rc < 0)
        goto out;
    all = gnutls_realloc(roots, (n_roots + n_chain) * sizeof(*all));
    if (!all) {
        rc = -ENOMEM;
        goto out;
    }
    roots = all;
    memcpy(all + n_roots, chain, n_chain * sizeof(*all));
    *out = all;
    *n = n_roots + n_chain;
    roots = NULL;
    n_roots = 0;
    gnutls_free(chain);
    chain = NULL;
    n_chain = 0;
out:
    pki_free_certs(roots, n_roots);
    pki_free_certs(chain, n_chain);
    return rc;
}

int pki_chain_to_root(const struct pki *pki, gnutls_x509_crt_t **out, size_t *n, char *err,
                      size_t errlen)
{
    gnutls_x509_crt_t *roots = NULL, *chain = NULL, *all;
    size_t n_roots = 0, n_chain = 0;
    int rc;

    rc = pki_load_chain(pki, &chain, &n_chain, err, errlen);
    if (rc == 0)
        rc = pki_read_certs(pki->ca_path, &roots, &n_roots, err, errlen);
    if (rc < 0)
        goto out;
    all = gnutls_realloc(chain, (n_roots + n_chain) * sizeof(*all));
    if (!all) {
        rc = -ENOMEM;
        goto out;
    }
    memcpy(all + n_chain, roots, n_roots * sizeof(*all));
    *out = all;
    *n = n_chain + n_roots;
    gnutls_free(roots);
    roots = NULL;
    n_roots = 0;
    chain = NULL;
    n_chain = 0;
out:
    pki_free_certs(roots, n_roots);
    pki_free_certs(chain, n_chain);
    return rc;
}

int pki_cert_chain_pem(const struct pki *pki, gnutls_x509_crt_t crt, gnutls_datum_t *out,
                       char *err, size_t errlen)
{
    gnutls_x509_crt_t *chain = NULL, *all = NULL;
    size_t n_chain = 0;
    int rc;

    rc = pki_load_chain(pki, &chain, &n_chain, err, errlen);
    if (rc < 0)
        return rc;
    all = calloc(n_chain + 1, sizeof(*all));
    if (!all) {
        rc = -ENOMEM;
        goto out;
    }
    all[0] = crt;
    if (n_chain) /* no chain: chain is NULL, and memcpy wants a pointer */
        memcpy(all + 1, chain, n_chain * sizeof(*all));
    rc = pki_certs_pem(all, n_chain + 1, out);
    if (rc < 0)
        snprintf(err, errlen, "cannot encode the certificate and its chain");
out:
    free(all);
    pki_free_certs(chain, n_chain);
    return rc;
}

/* ---- the request --------------------------------------------------------- */

static int write_pending(const struct pki *pki, const struct pki_init_opts *o, char *err,
                         size_t errlen)
{
    struct json_object *j = json_object_new_object(), *hosts = json_object_new_array();
    char *path = fs_join(pki->dir, PENDING_FILE);
    const char *text;
    int rc = -ENOMEM;

    if (!j || !hosts || !path)
        goto out;
    json_object_object_add(j, "cn", json_object_new_string(o->cn));
    for (size_t i = 0; i < o->n_hosts; i++)
        json_object_array_add(hosts, json_object_new_string(o->hosts[i]));
    json_object_object_add(j, "hosts", hosts);
    hosts = NULL;
    json_object_object_add(j, "key_type",
                           json_object_new_string(p11_key_type_name(
                               (enum p11_key_type)o->key_type)));
    json_object_object_add(j, "days", json_object_new_int((int)o->days));
    text = json_object_to_json_string_ext(j, JSON_C_TO_STRING_PRETTY);
    rc = fs_write_atomic(path, text, strlen(text), 0640);
    if (rc < 0)
        snprintf(err, errlen, "cannot write %s: %s", path, fs_strerror(rc));
out:
    json_object_put(hosts);
    json_object_put(j);
    free(path);
    return rc;
}

/* The CA and gateway keys: made, or those of a pending request reused. */
static int request_keys(struct pki *pki, const struct pki_init_opts *o, bool *made, char *err,
                        size_t errlen)
{
    enum p11_key_type kt = (enum p11_key_type)o->key_type;
    const char *uri = pki->cfg->token.uri;
    char *pending = fs_join(pki->dir, PENDING_FILE);
    bool have_pending = pending && access(pending, F_OK) == 0;
    int rc;

    free(pending);
    *made = false;
    for (int i = 0; i < 2; i++) {
        const char *label = i == 0 ? PKI_LABEL_CA : PKI_LABEL_GATEWAY;
        rc = p11_key_exists(pki->tok, label);
        if (rc < 0) {
            snprintf(err, errlen, "token %s: cannot list keys: %s", uri,
                     p11_token_error(pki->tok));
            return rc;
        }
        if (rc == 1 && o->force) {
            if ((rc = p11_key_delete(pki->tok, label)) < 0) {
                snprintf(err, errlen, "token %s: cannot delete old key '%s': %s", uri, label,
                         p11_token_error(pki->tok));
                return rc;
            }
            rc = 0;
        }
        if (rc == 1 && !have_pending) {
            snprintf(err, errlen,
                     "token %s already holds a key labelled '%s'; use --force to replace it",
                     uri, label);
            return -EEXIST;
        }
        if (rc == 0) {
            rc = p11_key_generate(pki->tok, label, kt);
            if (rc < 0) {
                snprintf(err, errlen, "token %s: cannot generate %s key '%s': %s", uri,
                         p11_key_type_name(kt), label, p11_token_error(pki->tok));
                return rc;
            }
            *made = true;
        }
    }
    return 0;
}

int pki_intermediate_request(struct pki *pki, const struct pki_init_opts *o,
                             gnutls_datum_t *csr_pem, char *err, size_t errlen)
{
    enum p11_key_type kt = (enum p11_key_type)o->key_type;
    gnutls_privkey_t ca_key = NULL;
    gnutls_x509_crq_t crq = NULL;
    char ca_cn[256];
    bool made;
    int lock = -1, rc;

    rc = fs_mkdir(pki->dir, 0750);
    if (rc < 0) {
        snprintf(err, errlen, "cannot create pki dir %s: %s", pki->dir, strerror(-rc));
        return rc;
    }
    rc = fs_lock_dir(pki->dir, &lock);
    if (rc < 0) {
        snprintf(err, errlen, "cannot lock the pki dir %s: %s", pki->dir, fs_strerror(rc));
        return rc;
    }
    if (access(pki->ca_path, F_OK) == 0 && !o->force) {
        snprintf(err, errlen,
                 "a CA already exists (%s); use --force to replace it (every enrolled peer "
                 "will then need a new certificate)",
                 pki->ca_path);
        rc = -EEXIST;
        goto out;
    }
    rc = pki_open_token(pki, err, errlen);
    if (rc < 0)
        goto out;
    rc = p11_token_supports(pki->tok, kt);
    if (rc < 0) {
        snprintf(err, errlen, "token %s cannot serve %s keys: %s", pki->cfg->token.uri,
                 p11_key_type_name(kt), p11_token_error(pki->tok));
        goto out;
    }
    if (o->force && (rc = pki_archive_old(pki, err, errlen)) < 0)
        goto out;
    rc = request_keys(pki, o, &made, err, errlen);
    if (rc < 0)
        goto out;
    snprintf(ca_cn, sizeof(ca_cn), "%s CA", o->cn);
    if ((rc = p11_key_load(pki->tok, PKI_LABEL_CA, &ca_key)) < 0 ||
        (rc = p11_csr_make_ca(ca_key, ca_cn, &crq)) < 0) {
        snprintf(err, errlen, "token %s: cannot sign the CSR with the CA key: %s",
                 pki->cfg->token.uri, p11_token_error(pki->tok));
        goto out;
    }
    if (gnutls_x509_crq_export2(crq, GNUTLS_X509_FMT_PEM, csr_pem) < 0) {
        snprintf(err, errlen, "cannot encode the CSR");
        rc = -EINVAL;
        goto out;
    }
    rc = write_pending(pki, o, err, errlen);
    if (rc < 0) {
        gnutls_free(csr_pem->data);
        csr_pem->data = NULL;
        goto out;
    }
    {
        struct json_object *f = json_object_new_object();
        json_object_object_add(f, "cn", json_object_new_string(o->cn));
        json_object_object_add(f, "key_type", json_object_new_string(p11_key_type_name(kt)));
        json_object_object_add(f, "keys", json_object_new_string(made ? "made" : "reused"));
        json_object_object_add(f, "actor", json_object_new_string(o->actor));
        pki_audit(pki, "intermediate-request", f);
    }
out:
    if (crq)
        gnutls_x509_crq_deinit(crq);
    if (ca_key)
        gnutls_privkey_deinit(ca_key);
    if (lock >= 0)
        close(lock);
    return rc;
}

/* ---- the import ---------------------------------------------------------- */

struct pending {
    char *cn;
    char *hosts[MAX_HOSTS];
    size_t n_hosts;
    unsigned days;
};

static void pending_clear(struct pending *p)
{
    free(p->cn);
    for (size_t i = 0; i < p->n_hosts; i++)
        free(p->hosts[i]);
    memset(p, 0, sizeof(*p));
}

static int read_pending(const struct pki *pki, struct pending *p, char *err, size_t errlen)
{
    char *path = fs_join(pki->dir, PENDING_FILE);
    struct json_object *j = NULL, *v;
    char *text = NULL;
    size_t len = 0;
    int rc;

    if (!path)
        return -ENOMEM;
    rc = fs_read_file(path, 64 * 1024, &text, &len);
    if (rc == -ENOENT) {
        snprintf(err, errlen,
                 "no request is pending in %s: run 'mtlsgw init --intermediate --cn NAME "
                 "--csr-out FILE' first and have the root sign that CSR",
                 pki->dir);
        goto out;
    }
    if (rc < 0) {
        snprintf(err, errlen, "cannot read %s: %s", path, strerror(-rc));
        goto out;
    }
    j = json_tokener_parse(text);
    rc = -EBADMSG;
    if (!j || !json_object_object_get_ex(j, "cn", &v) || !json_object_is_type(v, json_type_string)) {
        snprintf(err, errlen, "%s is damaged: run 'mtlsgw init --intermediate' again", path);
        goto out;
    }
    p->cn = strdup(json_object_get_string(v));
    p->days = json_object_object_get_ex(j, "days", &v) ? (unsigned)json_object_get_int(v) : 0;
    if (json_object_object_get_ex(j, "hosts", &v) && json_object_is_type(v, json_type_array))
        for (size_t i = 0; i < json_object_array_length(v) && p->n_hosts < MAX_HOSTS; i++) {
            const char *h = json_object_get_string(json_object_array_get_idx(v, i));
            if (h && (p->hosts[p->n_hosts] = strdup(h)))
                p->n_hosts++;
        }
    rc = p->cn ? 0 : -ENOMEM;
out:
    json_object_put(j);
    free(text);
    free(path);
    return rc;
}

static bool same_key(gnutls_x509_crt_t crt, gnutls_pubkey_t key)
{
    unsigned char a[64], b[64];
    size_t la = sizeof(a), lb = sizeof(b);

    return gnutls_x509_crt_get_key_id(crt, GNUTLS_KEYID_USE_SHA256, a, &la) == 0 &&
           gnutls_pubkey_get_key_id(key, GNUTLS_KEYID_USE_SHA256, b, &lb) == 0 && la == lb &&
           memcmp(a, b, la) == 0;
}

/* CA:TRUE, keyCertSign and cRLSign, valid now: what the CA must be to
 * issue peers and sign its CRL (RFC 5280 4.2.1.3, 4.2.1.9). */
static int check_ca_cert(gnutls_x509_crt_t crt, const char *path, char *err, size_t errlen)
{
    unsigned critical = 0, usage = 0, ca = 0;
    int pathlen = -1, rc;
    time_t now = time(NULL);
    static const char hint[] =
        " (have the root sign it as a CA, e.g. openssl x509 -req ... -extfile with "
        "basicConstraints=critical,CA:TRUE,pathlen:0 and "
        "keyUsage=critical,keyCertSign,cRLSign, or 'mtlsgw root sign')";

    rc = gnutls_x509_crt_get_basic_constraints(crt, &critical, &ca, &pathlen);
    if (rc < 0 || !ca) {
        snprintf(err, errlen, "%s is not a CA certificate: basicConstraints CA:TRUE is %s%s",
                 path, rc < 0 ? "missing" : "false", hint);
        return -EINVAL;
    }
    /* pathlen 0 still issues end entities; a negative one means "none". */
    rc = gnutls_x509_crt_get_key_usage(crt, &usage, &critical);
    if (rc < 0 || !(usage & GNUTLS_KEY_KEY_CERT_SIGN) || !(usage & GNUTLS_KEY_CRL_SIGN)) {
        snprintf(err, errlen, "%s: keyUsage must allow keyCertSign and cRLSign (it %s)%s", path,
                 rc < 0 ? "has no keyUsage" : !(usage & GNUTLS_KEY_KEY_CERT_SIGN)
                                                  ? "lacks keyCertSign" : "lacks cRLSign",
                 hint);
        return -EINVAL;
    }
    if (gnutls_x509_crt_get_expiration_time(crt) <= now ||
        gnutls_x509_crt_get_activation_time(crt) > now + 300) {
        snprintf(err, errlen, "%s is not valid now (check its dates and this clock)", path);
        return -EKEYEXPIRED;
    }
    return 0;
}

/*
 * path[0..n) from the leaf up to the last intermediate, verified with the
 * roots as the only anchors: signatures, CA flags, path lengths, dates.
 */
static int verify_path(gnutls_x509_crt_t *path, size_t n, gnutls_x509_crt_t *roots,
                       size_t n_roots, const char *what, char *err, size_t errlen)
{
    gnutls_x509_trust_list_t tl = NULL;
    gnutls_datum_t txt = {0};
    unsigned status = 0;
    int rc;

    if (gnutls_x509_trust_list_init(&tl, 0) < 0)
        return -ENOMEM;
    rc = gnutls_x509_trust_list_add_cas(tl, roots, (unsigned)n_roots, 0);
    if (rc >= 0)
        rc = gnutls_x509_trust_list_verify_crt2(tl, path, (unsigned)n, NULL, 0, 0, &status,
                                                NULL);
    if (rc < 0) {
        snprintf(err, errlen, "%s: cannot verify: %s", what, gnutls_strerror(rc));
        rc = -EINVAL;
    } else if (status) {
        gnutls_certificate_verification_status_print(status, GNUTLS_CRT_X509, &txt, 0);
        snprintf(err, errlen, "%s: %s", what, txt.data ? (const char *)txt.data : "refused");
        rc = -EINVAL;
    }
    gnutls_free(txt.data);
    /* flag 0: the list borrowed the roots and must not free them */
    gnutls_x509_trust_list_deinit(tl, 0);
    return rc;
}

struct import {
    gnutls_x509_crt_t *got, *given, *path, *roots;
    size_t n_got, n_given, n_path, n_roots;
    gnutls_x509_crt_t gw;
    gnutls_privkey_t ca_key;
    gnutls_pubkey_t ca_pub, gw_pub;
    struct registry *reg;
    struct pending pend;
};

static void import_clear(struct import *im)
{
    pki_free_certs(im->got, im->n_got);
    pki_free_certs(im->given, im->n_given);
    free(im->path);
    free(im->roots);
    if (im->gw)
        gnutls_x509_crt_deinit(im->gw);
    if (im->ca_key)
        gnutls_privkey_deinit(im->ca_key);
    if (im->ca_pub)
        gnutls_pubkey_deinit(im->ca_pub);
    if (im->gw_pub)
        gnutls_pubkey_deinit(im->gw_pub);
    registry_free(im->reg);
    pending_clear(&im->pend);
}

/* Sort what was given: the path (this CA, then the intermediates of both
 * files, each once) and the roots (self-signed, from the --chain file). */
static int sort_given(struct import *im, const char *chain_path, char *err, size_t errlen)
{
    im->path = calloc(im->n_got + im->n_given, sizeof(*im->path));
    im->roots = calloc(im->n_given ? im->n_given : 1, sizeof(*im->roots));
    if (!im->path || !im->roots)
        return -ENOMEM;
    for (size_t i = 0; i < im->n_got; i++)
        if (!pki_cert_is_root(im->got[i]))
            im->path[im->n_path++] = im->got[i];
    for (size_t i = 0; i < im->n_given; i++) {
        bool dup = false;
        if (pki_cert_is_root(im->given[i])) {
            im->roots[im->n_roots++] = im->given[i];
            continue;
        }
        for (size_t k = 0; k < im->n_path; k++)
            dup = dup || gnutls_x509_crt_equals(im->path[k], im->given[i]);
        if (!dup)
            im->path[im->n_path++] = im->given[i];
    }
    if (im->n_roots == 0) {
        snprintf(err, errlen,
                 "--chain %s holds no root (self-signed) certificate: give the root that "
                 "peers will trust (its intermediates, if any, may follow it)",
                 chain_path);
        return -EINVAL;
    }
    return 0;
}

static int write_all(struct pki *pki, struct import *im, char *err, size_t errlen)
{
    gnutls_x509_crt_t *gw_chain = NULL;
    gnutls_datum_t pem = {0};
    gnutls_x509_crl_t crl = NULL;
    const char *failed = NULL;
    int rc;

    gw_chain = calloc(im->n_path + 1, sizeof(*gw_chain));
    if (!gw_chain)
        return -ENOMEM;
    gw_chain[0] = im->gw;
    memcpy(gw_chain + 1, im->path, im->n_path * sizeof(*gw_chain));
    /* gateway.crt carries the intermediates: every listener sends them. */
    failed = pki->gw_path;
    rc = pki_certs_pem(gw_chain, im->n_path + 1, &pem);
    if (rc == 0)
        rc = fs_write_atomic(pki->gw_path, pem.data, pem.size, 0644);
    gnutls_free(pem.data);
    pem.data = NULL;
    if (rc == 0) {
        failed = pki->chain_path;
        rc = pki_certs_pem(im->path, im->n_path, &pem);
        if (rc == 0)
            rc = fs_write_atomic(pki->chain_path, pem.data, pem.size, 0644);
        gnutls_free(pem.data);
        pem.data = NULL;
    }
    if (rc == 0) {
        failed = pki->crl_path;
        rc = p11_crl_sign(im->path[0], im->ca_key, NULL, 0, registry_next_crl_number(im->reg),
                          pki->cfg->pki.crl_days, &crl);
        if (rc == 0 && gnutls_x509_crl_export2(crl, GNUTLS_X509_FMT_PEM, &pem) < 0)
            rc = -EINVAL;
        if (rc == 0)
            rc = fs_write_atomic(pki->crl_path, pem.data, pem.size, 0644);
        gnutls_free(pem.data);
        pem.data = NULL;
    }
    if (rc == 0) {
        failed = pki->reg_path;
        rc = registry_save(im->reg, pki->reg_path);
    }
    /* ca.crt last: its presence means "done". */
    if (rc == 0) {
        failed = pki->ca_path;
        rc = pki_certs_pem(im->roots, im->n_roots, &pem);
        if (rc == 0)
            rc = fs_write_atomic(pki->ca_path, pem.data, pem.size, 0644);
        gnutls_free(pem.data);
    }
    if (rc < 0)
        snprintf(err, errlen, "cannot write %s: %s", failed, fs_strerror(rc));
    if (crl)
        gnutls_x509_crl_deinit(crl);
    free(gw_chain);
    return rc;
}

static int import_checks(struct pki *pki, struct import *im, const char *cert_path,
                         const char *chain_path, char *err, size_t errlen)
{
    gnutls_x509_crt_t *full = NULL;
    struct p11_issue gw_req = {0};
    char why[400];
    int rc;

    if ((rc = read_pending(pki, &im->pend, err, errlen)) < 0 ||
        (rc = pki_read_certs(cert_path, &im->got, &im->n_got, err, errlen)) < 0 ||
        (rc = pki_read_certs(chain_path, &im->given, &im->n_given, err, errlen)) < 0 ||
        (rc = sort_given(im, chain_path, err, errlen)) < 0)
        return rc;
    if (im->n_path == 0) {
        snprintf(err, errlen, "%s holds only a self-signed certificate, not one the root "
                              "issued for this CA's CSR", cert_path);
        return -EINVAL;
    }
    rc = pki_open_token(pki, err, errlen);
    if (rc < 0)
        return rc;
    if ((rc = p11_key_load(pki->tok, PKI_LABEL_CA, &im->ca_key)) < 0 ||
        (rc = p11_pubkey_load(pki->tok, PKI_LABEL_CA, &im->ca_pub)) < 0 ||
        (rc = p11_pubkey_load(pki->tok, PKI_LABEL_GATEWAY, &im->gw_pub)) < 0) {
        snprintf(err, errlen, "token %s: the keys of 'init --intermediate' are not usable: %s",
                 pki->cfg->token.uri, p11_token_error(pki->tok));
        return rc;
    }
    if (!same_key(im->path[0], im->ca_pub)) {
        snprintf(err, errlen,
                 "%s: its key is not the CA key '%s' on %s (was it issued for another CSR?)",
                 cert_path, PKI_LABEL_CA, pki->cfg->token.uri);
        return -EKEYREJECTED;
    }
    rc = check_ca_cert(im->path[0], cert_path, err, errlen);
    if (rc < 0)
        return rc;
    snprintf(why, sizeof(why), "%s does not chain to the root in %s", cert_path, chain_path);
    rc = verify_path(im->path, im->n_path, im->roots, im->n_roots, why, err, errlen);
    if (rc < 0)
        return rc;
    /* The gateway certificate at the end of the path: a root or an
     * intermediate whose path length forbids this CA fails here. */
    gw_req.profile = P11_PROFILE_SERVER;
    gw_req.cn = im->pend.cn;
    gw_req.hosts = (const char *const *)im->pend.hosts;
    gw_req.n_hosts = im->pend.n_hosts;
    gw_req.days = im->pend.days && im->pend.days < GATEWAY_MAX_DAYS ? im->pend.days
                                                                     : GATEWAY_MAX_DAYS;
    rc = p11_cert_issue(im->path[0], im->ca_key, im->gw_pub, &gw_req, &im->gw);
    if (rc < 0) {
        snprintf(err, errlen, "cannot make the gateway certificate with the CA key: %s",
                 p11_token_error(pki->tok)[0] ? p11_token_error(pki->tok) : strerror(-rc));
        return rc;
    }
    full = calloc(im->n_path + 1, sizeof(*full));
    if (!full)
        return -ENOMEM;
    full[0] = im->gw;
    memcpy(full + 1, im->path, im->n_path * sizeof(*full));
    snprintf(why, sizeof(why),
             "a certificate issued by %s would not verify to the root (a path length of the "
             "root or an intermediate that forbids this CA?)",
             cert_path);
    rc = verify_path(full, im->n_path + 1, im->roots, im->n_roots, why, err, errlen);
    free(full);
    return rc;
}

int pki_import_ca(struct pki *pki, const char *cert_path, const char *chain_path,
                  const char *actor, char *err, size_t errlen)
{
    struct import im = {0};
    char *pending = NULL;
    int lock = -1, rc;

    rc = fs_lock_dir(pki->dir, &lock);
    if (rc < 0) {
        snprintf(err, errlen, "cannot lock the pki dir %s: %s%s", pki->dir, fs_strerror(rc),
                 rc == -ENOENT ? " (run 'mtlsgw init --intermediate' first)" : "");
        return rc;
    }
    if (access(pki->ca_path, F_OK) == 0) {
        snprintf(err, errlen, "a CA already exists (%s): start over with 'mtlsgw init "
                              "--intermediate --force'", pki->ca_path);
        rc = -EEXIST;
        goto out;
    }
    rc = import_checks(pki, &im, cert_path, chain_path, err, errlen);
    if (rc < 0)
        goto out;
    rc = registry_new(&im.reg);
    if (rc < 0)
        goto out;
    rc = write_all(pki, &im, err, errlen);
    if (rc < 0)
        goto out;
    pending = fs_join(pki->dir, PENDING_FILE);
    if (pending)
        unlink(pending);
    {
        struct json_object *f = json_object_new_object();
        char *serial = NULL;
        gnutls_datum_t dn = {0};
        json_object_object_add(f, "cn", json_object_new_string(im.pend.cn));
        if (p11_cert_serial_hex(im.path[0], &serial) == 0)
            json_object_object_add(f, "ca_serial", json_object_new_string(serial));
        free(serial);
        if (gnutls_x509_crt_get_dn3(im.roots[0], &dn, 0) == 0)
            json_object_object_add(f, "root", json_object_new_string((const char *)dn.data));
        gnutls_free(dn.data);
        json_object_object_add(f, "actor", json_object_new_string(actor));
        pki_audit(pki, "import-ca", f);
    }
out:
    free(pending);
    import_clear(&im);
    if (lock >= 0)
        close(lock);
    return rc;
}

int pki_pin_fingerprints(const struct pki *pki, const char *gw_path, char *fp, size_t fplen,
                         char *root_fp, size_t root_fplen, char *err, size_t errlen)
{
    gnutls_x509_crt_t crt = NULL;
    int rc;

    root_fp[0] = '\0';
    rc = pki_read_cert(gw_path, &crt, err, errlen);
    if (rc == 0 && (rc = est_cert_fingerprint(crt, true, fp, fplen)) < 0)
        snprintf(err, errlen, "%s: no fingerprint", gw_path);
    if (crt)
        gnutls_x509_crt_deinit(crt);
    crt = NULL;
    if (rc < 0 || !pki->chain_path || access(pki->chain_path, F_OK) != 0)
        return rc;
    rc = pki_read_cert(pki->ca_path, &crt, err, errlen);
    if (rc == 0 && (rc = est_cert_fingerprint(crt, true, root_fp, root_fplen)) < 0)
        snprintf(err, errlen, "the root in %s: no fingerprint", pki->ca_path);
    if (crt)
        gnutls_x509_crt_deinit(crt);
    return rc;
}
