/* pki-gateway.c: see pki-gateway.h. */
#include "pki-gateway.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "config.h"
#include "fsutil.h"
#include "issued.h"
#include "p11.h"
#include "pki.h"
#include "registry.h"
#include "verify.h"

#define GATEWAY_MAX_DAYS 397
#define NEXT_SUFFIX "-next"

void pki_hosts_free(char **hosts, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(hosts[i]);
    free(hosts);
}

int pki_cert_hosts(gnutls_x509_crt_t crt, char ***hosts, size_t *n)
{
    char **out = NULL;
    size_t k = 0;
    int rc = 0;

    for (unsigned i = 0;; i++) {
        unsigned char buf[512];
        char text[INET6_ADDRSTRLEN + 1];
        size_t len = sizeof(buf) - 1;
        unsigned crit;
        char **grown;
        int type = gnutls_x509_crt_get_subject_alt_name(crt, i, buf, &len, &crit);

        if (type == GNUTLS_E_REQUESTED_DATA_NOT_AVAILABLE)
            break;
        if (type < 0)
            continue; /* too long for a name we would have written: skip */
        if (type == GNUTLS_SAN_DNSNAME) {
            buf[len] = '\0';
            snprintf(text, sizeof(text), "%.*s", (int)(sizeof(text) - 1), (char *)buf);
            if (len >= sizeof(text))
                continue;
        } else if (type == GNUTLS_SAN_IPADDRESS && (len == 4 || len == 16)) {
            inet_ntop(len == 4 ? AF_INET : AF_INET6, buf, text, sizeof(text));
        } else {
            continue;
        }
        grown = realloc(out, (k + 1) * sizeof(*out));
        if (!grown || !(grown[k] = strdup(text))) {
            out = grown ? grown : out;
            rc = -ENOMEM;
            break;
        }
        out = grown;
        k++;
    }
    if (rc < 0) {
        pki_hosts_free(out, k);
        return rc;
    }
    *hosts = out;
    *n = k;
    return 0;
}

static const char *base_label(const struct pki *pki)
{
    return pki->cfg->mgmt.key;
}

static void next_label(const struct pki *pki, char *buf, size_t len)
{
    snprintf(buf, len, "%s%s", base_label(pki), NEXT_SUFFIX);
}

/* 1 when the public key on the token under label is crt's, 0 when not (or
 * there is none), <0 on error. */
static int label_matches(struct pki *pki, const char *label, const char *want_id)
{
    gnutls_pubkey_t pub = NULL;
    char *id = NULL;
    int rc;

    if (p11_key_exists(pki->tok, label) != 1)
        return 0;
    rc = p11_pubkey_load(pki->tok, label, &pub);
    if (rc < 0)
        return 0;
    rc = p11_pubkey_id_hex(pub, &id);
    if (rc == 0)
        rc = strcmp(id, want_id) == 0;
    free(id);
    gnutls_pubkey_deinit(pub);
    return rc;
}

int pki_gateway_key_label(struct pki *pki, gnutls_x509_crt_t crt, char *label, size_t len,
                          char *err, size_t errlen)
{
    gnutls_pubkey_t pub = NULL;
    char *want = NULL, next[PKI_GATEWAY_LABEL_MAX];
    int rc;

    rc = pki_open_token(pki, err, errlen);
    if (rc < 0)
        return rc;
    /* A URI names one object: nothing to choose between. */
    if (strncmp(base_label(pki), "pkcs11:", 7) == 0) {
        snprintf(label, len, "%s", base_label(pki));
        return 0;
    }
    if (gnutls_pubkey_init(&pub) < 0)
        return -ENOMEM;
    if (gnutls_pubkey_import_x509(pub, crt, 0) < 0 || p11_pubkey_id_hex(pub, &want) < 0) {
        snprintf(err, errlen, "cannot read the public key of the gateway certificate");
        rc = -EBADMSG;
        goto out;
    }
    next_label(pki, next, sizeof(next));
    if ((rc = label_matches(pki, base_label(pki), want)) == 1) {
        snprintf(label, len, "%s", base_label(pki));
    } else if ((rc = label_matches(pki, next, want)) == 1) {
        snprintf(label, len, "%s", next);
    } else {
        snprintf(err, errlen,
                 "token %s holds no key for the gateway certificate (labels '%s' and '%s' "
                 "tried): renew it with a new key (mtlsgw gateway renew --new-key)",
                 pki->cfg->token.uri, base_label(pki), next);
        rc = -ENOENT;
        goto out;
    }
    rc = 0;
out:
    free(want);
    gnutls_pubkey_deinit(pub);
    return rc;
}

/* The key type of the key in crt, for a new key of the same kind. */
static enum p11_key_type cert_key_type(gnutls_x509_crt_t crt)
{
    unsigned bits = 0;
    int algo = gnutls_x509_crt_get_pk_algorithm(crt, &bits);

    if (algo == GNUTLS_PK_RSA || algo == GNUTLS_PK_RSA_PSS)
        return P11_KEY_RSA_3072;
    return bits > 256 ? P11_KEY_EC_P384 : P11_KEY_EC_P256;
}

static int cert_cn(gnutls_x509_crt_t crt, char *cn, size_t len)
{
    size_t n = len;

    if (gnutls_x509_crt_get_dn_by_oid(crt, GNUTLS_OID_X520_COMMON_NAME, 0, 0, cn, &n) < 0)
        return -EBADMSG;
    return 0;
}

/* What the renewal checks before it touches the token's keys. */
static int renew_check(struct pki *pki, char *err, size_t errlen)
{
    time_t end;
    char when[32];

    if (pki->cfg->mgmt.cert) {
        snprintf(err, errlen,
                 "[management] cert = %s is set in %s: that certificate is yours to renew "
                 "(remove the line to use the pki dir's gateway.crt)",
                 pki->cfg->mgmt.cert, pki->cfg->path ? pki->cfg->path : "the config");
        return -EINVAL;
    }
    end = gnutls_x509_crt_get_expiration_time(pki->ca);
    if (end != (time_t)-1 && time(NULL) >= end) {
        time_format_utc(end, when, sizeof(when));
        snprintf(err, errlen,
                 "the CA in %s expired on %s: a gateway certificate it issues would not be "
                 "trusted",
                 pki->ca_path, when);
        return -EKEYEXPIRED;
    }
    return 0;
}

/* With new_key: a fresh key on the label the current one is not on. */
static int renew_key(struct pki *pki, const struct pki_gateway_renew *o,
                     gnutls_x509_crt_t old, struct pki_gateway_result *res, char *err,
                     size_t errlen)
{
    enum p11_key_type kt = cert_key_type(old);
    int rc;

    if (!o->new_key) {
        snprintf(res->label, sizeof(res->label), "%s", res->old_label);
        return 0;
    }
    if (strncmp(base_label(pki), "pkcs11:", 7) == 0) {
        snprintf(err, errlen,
                 "[management] key is a pkcs11: URI: --new-key needs a label there (the "
                 "default mtlsgw-gateway)");
        return -EINVAL;
    }
    if (strcmp(res->old_label, base_label(pki)) == 0)
        next_label(pki, res->label, sizeof(res->label));
    else
        snprintf(res->label, sizeof(res->label), "%s", base_label(pki));
    /* A leftover there goes with no certificate in use (the one in use is
     * under the other label): a renewal whose daemon never switched. */
    if (p11_key_exists(pki->tok, res->label) == 1 &&
        (rc = p11_key_delete(pki->tok, res->label)) < 0) {
        snprintf(err, errlen, "token %s: cannot delete the unused key '%s': %s",
                 pki->cfg->token.uri, res->label, p11_token_error(pki->tok));
        return rc;
    }
    rc = p11_key_generate(pki->tok, res->label, kt);
    if (rc < 0)
        snprintf(err, errlen, "token %s: cannot generate %s key '%s': %s", pki->cfg->token.uri,
                 p11_key_type_name(kt), res->label, p11_token_error(pki->tok));
    return rc;
}

static void renew_audit(struct pki *pki, const struct pki_gateway_renew *o,
                        gnutls_x509_crt_t crt, const struct pki_gateway_result *res,
                        const char *const *hosts, size_t n_hosts)
{
    struct json_object *f = json_object_new_object(), *h = json_object_new_array();
    char when[32];

    if (!f || !h) {
        json_object_put(f);
        json_object_put(h);
        return;
    }
    for (size_t i = 0; i < n_hosts; i++)
        json_object_array_add(h, json_object_new_string(hosts[i]));
    time_format_utc(gnutls_x509_crt_get_expiration_time(crt), when, sizeof(when));
    json_object_object_add(f, "serial", json_object_new_string(res->serial));
    json_object_object_add(f, "old_serial", json_object_new_string(res->old_serial));
    json_object_object_add(f, "hosts", h);
    json_object_object_add(f, "not_after", json_object_new_string(when));
    json_object_object_add(f, "key", json_object_new_string(res->label));
    json_object_object_add(f, "new_key", json_object_new_boolean(o->new_key));
    json_object_object_add(f, "actor", json_object_new_string(o->actor ? o->actor : "?"));
    pki_audit(pki, "gateway-renew", f);
}

int pki_gateway_renew(struct pki *pki, const struct pki_gateway_renew *o,
                      struct pki_gateway_result *res, char *err, size_t errlen)
{
    gnutls_x509_crt_t old = NULL, crt = NULL;
    gnutls_pubkey_t pub = NULL;
    struct p11_issue iss = {0};
    char **old_hosts = NULL, cn[256];
    size_t n_old = 0;
    gnutls_datum_t pem = {0};
    int lock = -1, rc;
    int64_t life;

    memset(res, 0, sizeof(*res));
    rc = fs_lock_dir(pki->dir, &lock);
    if (rc < 0) {
        snprintf(err, errlen, "cannot lock the pki dir %s: %s", pki->dir, fs_strerror(rc));
        return rc;
    }
    if ((rc = pki_load_ca(pki, err, errlen)) < 0 || (rc = renew_check(pki, err, errlen)) < 0 ||
        (rc = pki_read_cert(pki->gw_path, &old, err, errlen)) < 0)
        goto out;
    if (cert_cn(old, cn, sizeof(cn)) < 0 || pki_cert_hosts(old, &old_hosts, &n_old) < 0) {
        snprintf(err, errlen, "%s: cannot read its name", pki->gw_path);
        rc = -EBADMSG;
        goto out;
    }
    verify_serial_hex(old, res->old_serial, sizeof(res->old_serial));
    if ((rc = pki_gateway_key_label(pki, old, res->old_label, sizeof(res->old_label), err,
                                    errlen)) < 0 && !o->new_key)
        goto out;
    if (rc < 0) /* its key is gone: the new one takes the configured label */
        snprintf(res->old_label, sizeof(res->old_label), "%s" NEXT_SUFFIX, base_label(pki));
    if ((rc = renew_key(pki, o, old, res, err, errlen)) < 0)
        goto out;
    rc = p11_pubkey_load(pki->tok, res->label, &pub);
    if (rc < 0) {
        snprintf(err, errlen, "token %s: cannot read the public key '%s': %s",
                 pki->cfg->token.uri, res->label, p11_token_error(pki->tok));
        goto out;
    }
    /* The same lifetime as the one it replaces by default, to the nearest
     * day (the issuer backdates notBefore a little). */
    life = (gnutls_x509_crt_get_expiration_time(old) -
            gnutls_x509_crt_get_activation_time(old) + 43200) / 86400;
    iss.profile = P11_PROFILE_SERVER;
    iss.cn = cn;
    iss.hosts = o->n_hosts ? o->hosts : (const char *const *)old_hosts;
    iss.n_hosts = o->n_hosts ? o->n_hosts : n_old;
    iss.days = o->days ? o->days
                       : life < 1 ? 1 : life > GATEWAY_MAX_DAYS ? GATEWAY_MAX_DAYS : (unsigned)life;
    rc = p11_cert_issue(pki->ca, pki->ca_key, pub, &iss, &crt);
    if (rc < 0) {
        snprintf(err, errlen, "cannot issue the gateway certificate: %s",
                 p11_token_error(pki->tok)[0] ? p11_token_error(pki->tok) : strerror(-rc));
        goto out;
    }
    verify_serial_hex(crt, res->serial, sizeof(res->serial));
    rc = issued_store(pki->dir, crt);
    if (rc < 0) {
        snprintf(err, errlen, "cannot keep a copy in %s/issued: %s", pki->dir,
                 fs_strerror(rc));
        goto out;
    }
    if (pki_cert_pem(crt, &pem) < 0) {
        rc = -EINVAL;
        snprintf(err, errlen, "cannot encode the gateway certificate");
        goto out;
    }
    rc = fs_write_atomic(pki->gw_path, pem.data, pem.size, 0644);
    if (rc < 0) {
        snprintf(err, errlen, "cannot write %s: %s", pki->gw_path, fs_strerror(rc));
        goto out;
    }
    renew_audit(pki, o, crt, res, iss.hosts, iss.n_hosts);
out:
    gnutls_free(pem.data);
    pki_hosts_free(old_hosts, n_old);
    if (pub)
        gnutls_pubkey_deinit(pub);
    if (crt)
        gnutls_x509_crt_deinit(crt);
    if (old)
        gnutls_x509_crt_deinit(old);
    if (lock >= 0)
        close(lock);
    return rc;
}

int pki_gateway_drop_key(struct pki *pki, const char *label, char *err, size_t errlen)
{
    gnutls_x509_crt_t cur = NULL;
    char in_use[PKI_GATEWAY_LABEL_MAX] = "";
    int lock = -1, rc;

    rc = fs_lock_dir(pki->dir, &lock);
    if (rc < 0) {
        snprintf(err, errlen, "cannot lock the pki dir %s: %s", pki->dir, fs_strerror(rc));
        return rc;
    }
    rc = pki_read_cert(pki->gw_path, &cur, err, errlen);
    if (rc == 0)
        rc = pki_gateway_key_label(pki, cur, in_use, sizeof(in_use), err, errlen);
    if (rc < 0)
        goto out;
    if (strcmp(in_use, label) == 0) {
        snprintf(err, errlen, "key '%s' goes with %s: kept", label, pki->gw_path);
        rc = -EBUSY;
        goto out;
    }
    if (p11_key_exists(pki->tok, label) == 1 && (rc = p11_key_delete(pki->tok, label)) < 0)
        snprintf(err, errlen, "token %s: cannot delete the old gateway key '%s': %s",
                 pki->cfg->token.uri, label, p11_token_error(pki->tok));
out:
    if (cur)
        gnutls_x509_crt_deinit(cur);
    if (lock >= 0)
        close(lock);
    return rc;
}

bool pki_hub_lacks_name(gnutls_session_t s, const char *want, const char *uplink, char *buf,
                        size_t len)
{
    unsigned status = gnutls_session_get_verify_cert_status(s), n_raw = 0;
    const gnutls_datum_t *raw = gnutls_certificate_get_peers(s, &n_raw);
    gnutls_x509_crt_t crt = NULL;
    char **hosts = NULL, names[512] = "";
    size_t n = 0, off = 0;

    /* The name alone: a chain that is not trusted is another matter. */
    if ((status & ~(unsigned)GNUTLS_CERT_INVALID) != GNUTLS_CERT_UNEXPECTED_OWNER || !raw ||
        !n_raw || gnutls_x509_crt_init(&crt) < 0)
        return false;
    if (gnutls_x509_crt_import(crt, &raw[0], GNUTLS_X509_FMT_DER) == 0 &&
        pki_cert_hosts(crt, &hosts, &n) == 0) {
        for (size_t i = 0; i < n && off < sizeof(names); i++)
            off += (size_t)snprintf(names + off, sizeof(names) - off, "%s%s", i ? ", " : "",
                                    hosts[i]);
    }
    snprintf(buf, len,
             "the hub's certificate lacks the name %s that this spoke dialled (the names it "
             "has: %s); fix it on the hub (mtlsgw gateway renew --host %s, with --host for "
             "each name to keep) or here (server-name = %s in [uplink %s])",
             want, n ? names : "none", want, n ? hosts[0] : "NAME", uplink ? uplink : "NAME");
    pki_hosts_free(hosts, n);
    gnutls_x509_crt_deinit(crt);
    return true;
}
