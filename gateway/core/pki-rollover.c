/*
 * pki-rollover.c: a new CA key and certificate while the old one stays
 * trusted, cross-certified both ways, until `mtlsgw ca retire-old`
 * (pki-rollover.h says which file holds what).
 */
#include "pki-rollover.h"

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
#include "p11.h"
#include "pki-chain.h"
#include "pki.h"
#include "registry.h"

#define CERT_MAX (1024 * 1024)
#define GATEWAY_MAX_DAYS 397
#define MAX_SANS 32

int pki_read_pem_certs(const char *path, gnutls_x509_crt_t **out, unsigned *n)
{
    gnutls_datum_t d;
    char *text = NULL;
    size_t len = 0;
    int rc = fs_read_file(path, CERT_MAX, &text, &len);

    *out = NULL;
    *n = 0;
    if (rc < 0)
        return rc;
    d.data = (unsigned char *)text;
    d.size = (unsigned)len;
    if (gnutls_x509_crt_list_import2(out, n, &d, GNUTLS_X509_FMT_PEM, 0) < 0 || *n == 0)
        rc = -EBADMSG;
    free(text);
    return rc;
}

static void certs_free(gnutls_x509_crt_t *c, unsigned n)
{
    for (unsigned i = 0; i < n; i++)
        gnutls_x509_crt_deinit(c[i]);
    gnutls_free(c);
}

static bool label_valid(const char *s)
{
    if (!s[0])
        return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '-' || *s == '_' || *s == '.'))
            return false;
    return true;
}

void pki_ca_label(const struct pki *pki, char *out, size_t outlen)
{
    char *path = fs_join(pki->dir, PKI_CA_LABEL_FILE), *text = NULL;
    size_t len = 0;

    snprintf(out, outlen, "%s", PKI_LABEL_CA);
    if (path && fs_read_file(path, 256, &text, &len) == 0) {
        text[strcspn(text, "\r\n")] = '\0';
        if (label_valid(text))
            snprintf(out, outlen, "%s", text);
    }
    free(text);
    free(path);
}

bool pki_ca_current(const struct pki *pki)
{
    gnutls_x509_crt_t *c = NULL;
    unsigned n = 0;
    bool same;

    if (!pki->ca || pki_read_pem_certs(pki->ca_path, &c, &n) < 0)
        return false;
    same = gnutls_x509_crt_equals(c[0], pki->ca) != 0;
    certs_free(c, n);
    return same;
}

/* ---- rollover.json ---------------------------------------------------- */

static const char *jstr(struct json_object *o, const char *k)
{
    struct json_object *v;

    return json_object_object_get_ex(o, k, &v) && json_object_is_type(v, json_type_string)
               ? json_object_get_string(v)
               : "";
}

void rollover_free(struct rollover *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->n_old_serials; i++)
        free(r->old_serials[i]);
    free(r->old_serials);
    free(r);
}

int rollover_load(const char *pki_dir, struct rollover **out, char *err, size_t errlen)
{
    char *path = fs_join(pki_dir, PKI_ROLLOVER_FILE), *text = NULL;
    struct json_object *o = NULL, *v, *arr;
    struct rollover *r = NULL;
    size_t len = 0;
    int64_t t = 0;
    int rc;

    *out = NULL;
    if (!path)
        return -ENOMEM;
    rc = fs_read_file(path, 16 * 1024 * 1024, &text, &len);
    if (rc < 0) {
        if (rc != -ENOENT)
            snprintf(err, errlen, "cannot read %s: %s", path, fs_strerror(rc));
        goto out;
    }
    o = json_tokener_parse(text);
    r = calloc(1, sizeof(*r));
    rc = -EBADMSG;
    if (!r) {
        rc = -ENOMEM;
        goto out;
    }
    if (!o || !json_object_object_get_ex(o, "old_serials", &arr) ||
        !json_object_is_type(arr, json_type_array) || !label_valid(jstr(o, "old_label")) ||
        !label_valid(jstr(o, "new_label"))) {
        snprintf(err, errlen, "%s is damaged (restore it from a backup)", path);
        goto out;
    }
    if (json_object_object_get_ex(o, "started", &v) &&
        time_parse_utc(json_object_get_string(v), &t) == 0)
        r->started = t;
    snprintf(r->old_label, sizeof(r->old_label), "%s", jstr(o, "old_label"));
    snprintf(r->new_label, sizeof(r->new_label), "%s", jstr(o, "new_label"));
    snprintf(r->old_cn, sizeof(r->old_cn), "%s", jstr(o, "old_ca"));
    snprintf(r->new_cn, sizeof(r->new_cn), "%s", jstr(o, "new_ca"));
    if (json_object_object_get_ex(o, "cross", &v) && json_object_is_type(v, json_type_array))
        for (size_t i = 0; i < json_object_array_length(v) && r->n_cross < 2; i++) {
            const char *fp = json_object_get_string(json_object_array_get_idx(v, i));
            if (fp && strlen(fp) == PKI_FP_HEX_LEN)
                snprintf(r->cross[r->n_cross++], sizeof(r->cross[0]), "%s", fp);
        }
    r->old_serials = calloc(json_object_array_length(arr) + 1, sizeof(char *));
    if (!r->old_serials) {
        rc = -ENOMEM;
        goto out;
    }
    for (size_t i = 0; i < json_object_array_length(arr); i++) {
        const char *s = json_object_get_string(json_object_array_get_idx(arr, i));
        if (s && !(r->old_serials[r->n_old_serials++] = strdup(s))) {
            rc = -ENOMEM;
            goto out;
        }
    }
    *out = r;
    r = NULL;
    rc = 0;
out:
    rollover_free(r);
    json_object_put(o);
    free(text);
    free(path);
    return rc;
}

int pki_cert_fp_hex(gnutls_x509_crt_t crt, char out[PKI_FP_HEX_LEN + 1])
{
    unsigned char fp[32];
    size_t len = sizeof(fp);

    out[0] = '\0';
    if (gnutls_x509_crt_get_fingerprint(crt, GNUTLS_DIG_SHA256, fp, &len) < 0 || len != 32)
        return -EINVAL;
    for (size_t i = 0; i < len; i++)
        snprintf(out + 2 * i, 3, "%02x", fp[i]);
    return 0;
}

bool rollover_on_old(const struct rollover *r, const struct peer *p)
{
    for (size_t i = 0; r && i < r->n_old_serials; i++)
        if (strcmp(r->old_serials[i], p->serial) == 0)
            return true;
    return false;
}

/* ---- helpers ---------------------------------------------------------- */

static int write_pem(const char *dir, const char *name, const gnutls_x509_crt_t *c, unsigned n,
                     char *err, size_t errlen)
{
    char *path = fs_join(dir, name);
    char *buf = NULL;
    size_t len = 0;
    int rc = path ? 0 : -ENOMEM;

    for (unsigned i = 0; rc == 0 && i < n; i++) {
        gnutls_datum_t pem = {0};
        char *nb;
        if (pki_cert_pem(c[i], &pem) < 0) {
            rc = -EINVAL;
            break;
        }
        nb = realloc(buf, len + pem.size + 1);
        if (!nb) {
            gnutls_free(pem.data);
            rc = -ENOMEM;
            break;
        }
        buf = nb;
        memcpy(buf + len, pem.data, pem.size);
        len += pem.size;
        gnutls_free(pem.data);
    }
    if (rc == 0)
        rc = fs_write_atomic(path, buf, len, 0644);
    if (rc < 0)
        snprintf(err, errlen, "cannot write %s/%s: %s", dir, name, fs_strerror(rc));
    free(buf);
    free(path);
    return rc;
}

static void cn_of(gnutls_x509_crt_t crt, char *out, size_t len)
{
    size_t l = len;

    if (gnutls_x509_crt_get_dn_by_oid(crt, GNUTLS_OID_X520_COMMON_NAME, 0, 0, out, &l) < 0)
        snprintf(out, len, "mtlsgw CA");
}

/* "X CA" -> "X CA G2", "X CA G2" -> "X CA G3": a new name, so no verifier
 * confuses the two CAs (issuers are matched by name first). */
static void next_cn(const char *old, char *out, size_t len)
{
    const char *g = strrchr(old, ' ');
    unsigned gen = 1;

    if (g && g[1] == 'G' && g[2] >= '1' && g[2] <= '9' && strspn(g + 2, "0123456789") ==
                                                             strlen(g + 2)) {
        gen = (unsigned)strtoul(g + 2, NULL, 10);
        snprintf(out, len, "%.*s G%u", (int)(g - old), old, gen + 1);
        return;
    }
    snprintf(out, len, "%.100s G2", old);
}

static unsigned days_between(time_t from, time_t to)
{
    long long d = ((long long)to - (long long)from + 43200) / 86400;

    return d < 1 ? 1 : d > 36500 ? 36500 : (unsigned)d;
}

static int stamp_name(const char *prefix, char *out, size_t len)
{
    time_t now = time(NULL);
    struct tm tm;
    char stamp[32];

    gmtime_r(&now, &tm);
    strftime(stamp, sizeof(stamp), "%Y%m%dT%H%M%SZ", &tm);
    return snprintf(out, len, "%s%s", prefix, stamp) < (int)len ? 0 : -ENAMETOOLONG;
}

/* The gateway certificate's names (DNS and IP SANs) as text. */
static size_t gateway_hosts(gnutls_x509_crt_t gw, char hosts[][256], size_t max)
{
    size_t n = 0;

    for (unsigned i = 0; n < max; i++) {
        unsigned char buf[256];
        size_t len = sizeof(buf) - 1;
        int type = gnutls_x509_crt_get_subject_alt_name(gw, i, buf, &len, NULL);
        if (type == GNUTLS_E_REQUESTED_DATA_NOT_AVAILABLE || (type < 0 && type !=
                                                              GNUTLS_E_SHORT_MEMORY_BUFFER))
            break;
        if (type == GNUTLS_SAN_DNSNAME) {
            buf[len] = '\0';
            snprintf(hosts[n++], 256, "%s", (char *)buf);
        } else if (type == GNUTLS_SAN_IPADDRESS && (len == 4 || len == 16)) {
            if (inet_ntop(len == 4 ? AF_INET : AF_INET6, buf, hosts[n], 256))
                n++;
        }
    }
    return n;
}

/* The gateway's certificate again, from the new CA, for the same key, name
 * and hosts and the same lifetime (at most GATEWAY_MAX_DAYS). */
static int gateway_reissue(gnutls_x509_crt_t new_ca, gnutls_privkey_t new_key,
                           gnutls_x509_crt_t old_gw, gnutls_x509_crt_t *out, char *err,
                           size_t errlen)
{
    char hosts[MAX_SANS][256], cn[256];
    const char *hp[MAX_SANS];
    struct p11_issue iss = {0};
    gnutls_pubkey_t pub = NULL;
    unsigned days;
    size_t n;
    int rc;

    n = gateway_hosts(old_gw, hosts, MAX_SANS);
    for (size_t i = 0; i < n; i++)
        hp[i] = hosts[i];
    cn_of(old_gw, cn, sizeof(cn));
    days = days_between(gnutls_x509_crt_get_activation_time(old_gw),
                        gnutls_x509_crt_get_expiration_time(old_gw));
    if (gnutls_pubkey_init(&pub) < 0 || gnutls_pubkey_import_x509(pub, old_gw, 0) < 0) {
        snprintf(err, errlen, "cannot read the gateway certificate's public key");
        rc = -EBADMSG;
        goto out;
    }
    iss.profile = P11_PROFILE_SERVER;
    iss.cn = cn;
    iss.hosts = hp;
    iss.n_hosts = n;
    iss.days = days > GATEWAY_MAX_DAYS ? GATEWAY_MAX_DAYS : days;
    rc = p11_cert_issue(new_ca, new_key, pub, &iss, out);
    if (rc < 0)
        snprintf(err, errlen, "cannot reissue the gateway certificate: %s", strerror(-rc));
out:
    if (pub)
        gnutls_pubkey_deinit(pub);
    return rc;
}

static int write_rollover_json(const struct pki *pki, const struct registry *reg,
                               const char *old_label, const char *new_label, const char *old_cn,
                               const char *new_cn, const gnutls_x509_crt_t cross[2], char *err,
                               size_t errlen)
{
    struct json_object *o = json_object_new_object(), *arr = json_object_new_array(),
                       *fps = json_object_new_array();
    char when[32], fp[PKI_FP_HEX_LEN + 1], *path = fs_join(pki->dir, PKI_ROLLOVER_FILE);
    const char *text;
    int rc;

    if (!o || !arr || !fps || !path) {
        json_object_put(o);
        json_object_put(arr);
        json_object_put(fps);
        free(path);
        return -ENOMEM;
    }
    /* What cross/ holds of this rollover's: nothing else there vouches. */
    for (int i = 0; i < 2; i++)
        if (pki_cert_fp_hex(cross[i], fp) == 0)
            json_object_array_add(fps, json_object_new_string(fp));
    json_object_object_add(o, "cross", fps);
    time_format_utc(time(NULL), when, sizeof(when));
    json_object_object_add(o, "started", json_object_new_string(when));
    json_object_object_add(o, "old_label", json_object_new_string(old_label));
    json_object_object_add(o, "new_label", json_object_new_string(new_label));
    json_object_object_add(o, "old_ca", json_object_new_string(old_cn));
    json_object_object_add(o, "new_ca", json_object_new_string(new_cn));
    for (size_t i = 0; i < registry_count(reg); i++) {
        const struct peer *p = registry_at(reg, i);
        if (p->status == PEER_ACTIVE)
            json_object_array_add(arr, json_object_new_string(p->serial));
    }
    json_object_object_add(o, "old_serials", arr);
    text = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY |
                                                 JSON_C_TO_STRING_NOSLASHESCAPE);
    rc = fs_write_atomic(path, text, strlen(text), 0640);
    if (rc < 0)
        snprintf(err, errlen, "cannot write %s: %s", path, fs_strerror(rc));
    json_object_put(o);
    free(path);
    return rc;
}

/* ---- rollover --------------------------------------------------------- */

struct roll {
    gnutls_privkey_t new_key;
    gnutls_pubkey_t new_pub, old_pub;
    gnutls_x509_crt_t new_ca, nbo, obn, gw;
    gnutls_x509_crt_t *old_gw;
    unsigned n_old_gw;
    char old_label[128], new_label[128], old_cn[128], new_cn[160];
};

static void roll_free(struct roll *r)
{
    if (r->new_key)
        gnutls_privkey_deinit(r->new_key);
    if (r->new_pub)
        gnutls_pubkey_deinit(r->new_pub);
    if (r->old_pub)
        gnutls_pubkey_deinit(r->old_pub);
    if (r->new_ca)
        gnutls_x509_crt_deinit(r->new_ca);
    if (r->nbo)
        gnutls_x509_crt_deinit(r->nbo);
    if (r->obn)
        gnutls_x509_crt_deinit(r->obn);
    if (r->gw)
        gnutls_x509_crt_deinit(r->gw);
    if (r->old_gw)
        certs_free(r->old_gw, r->n_old_gw);
}

/* The new key on the token and every certificate, in memory. */
static int roll_make(struct pki *pki, const struct pki_rollover_opts *o, struct roll *r,
                     char *err, size_t errlen)
{
    enum p11_key_type kt = (enum p11_key_type)o->key_type;
    const char *uri = pki->cfg->token.uri;
    struct p11_issue iss = {0};
    time_t old_end = gnutls_x509_crt_get_expiration_time(pki->ca);
    int rc;

    if ((rc = p11_token_supports(pki->tok, kt)) < 0) {
        snprintf(err, errlen, "token %s cannot serve %s keys: %s", uri, p11_key_type_name(kt),
                 p11_token_error(pki->tok));
        return rc;
    }
    if (p11_key_exists(pki->tok, r->new_label) == 1) {
        snprintf(err, errlen, "token %s already holds a key labelled '%s'; try again in a "
                 "second", uri, r->new_label);
        return -EEXIST;
    }
    if ((rc = p11_pubkey_load(pki->tok, r->old_label, &r->old_pub)) < 0) {
        snprintf(err, errlen, "token %s: the CA key '%s': %s", uri, r->old_label,
                 p11_token_error(pki->tok));
        return rc;
    }
    if ((rc = p11_key_generate(pki->tok, r->new_label, kt)) < 0 ||
        (rc = p11_key_load(pki->tok, r->new_label, &r->new_key)) < 0 ||
        (rc = p11_pubkey_load(pki->tok, r->new_label, &r->new_pub)) < 0) {
        snprintf(err, errlen, "token %s: cannot make the new CA key '%s': %s", uri,
                 r->new_label, p11_token_error(pki->tok));
        return rc;
    }
    iss.profile = P11_PROFILE_CA;
    iss.cn = r->new_cn;
    iss.days = o->days;
    if ((rc = p11_cert_issue(NULL, r->new_key, r->new_pub, &iss, &r->new_ca)) < 0 ||
        (rc = p11_cert_issue(pki->ca, pki->ca_key, r->new_pub, &iss, &r->nbo)) < 0) {
        snprintf(err, errlen, "cannot make the new CA certificate: %s", strerror(-rc));
        return rc;
    }
    iss.cn = r->old_cn;
    iss.days = old_end == (time_t)-1 ? o->days : days_between(time(NULL), old_end);
    if ((rc = p11_cert_issue(r->new_ca, r->new_key, r->old_pub, &iss, &r->obn)) < 0) {
        snprintf(err, errlen, "cannot cross-certify the old CA: %s", strerror(-rc));
        return rc;
    }
    /* The gateway's certificate from the new CA, when it is ours to renew. */
    if (access(pki->gw_path, F_OK) == 0) {
        rc = pki_read_pem_certs(pki->gw_path, &r->old_gw, &r->n_old_gw);
        if (rc < 0) {
            snprintf(err, errlen, "cannot read %s: %s", pki->gw_path, fs_strerror(rc));
            return rc;
        }
        rc = gateway_reissue(r->new_ca, r->new_key, r->old_gw[0], &r->gw, err, errlen);
    }
    return rc;
}

/* Write the files; ca.crt and ca.label (the switch) last. */
static int roll_write(struct pki *pki, const struct registry *reg, struct roll *r, char *err,
                      size_t errlen)
{
    char *cross = fs_join(pki->dir, PKI_CROSS_DIR), *label = NULL;
    gnutls_x509_crt_t both[2] = {r->new_ca, pki->ca}, gwc[2] = {r->gw, r->nbo};
    int rc = cross ? fs_mkdir(cross, 0755) : -ENOMEM;

    if (rc < 0) {
        snprintf(err, errlen, "cannot create %s: %s", cross ? cross : "cross", strerror(-rc));
        goto out;
    }
    if ((rc = write_pem(pki->dir, PKI_CA_OLD_FILE, &pki->ca, 1, err, errlen)) < 0 ||
        (rc = write_pem(pki->dir, PKI_CA_NEW_FILE, &r->new_ca, 1, err, errlen)) < 0 ||
        (rc = write_pem(cross, "new-by-old.crt", &r->nbo, 1, err, errlen)) < 0 ||
        (rc = write_pem(cross, "old-by-new.crt", &r->obn, 1, err, errlen)) < 0 ||
        (rc = write_rollover_json(pki, reg, r->old_label, r->new_label, r->old_cn, r->new_cn,
                                  (gnutls_x509_crt_t[2]){r->nbo, r->obn}, err, errlen)) < 0)
        goto out;
    if (r->gw && (rc = write_pem(pki->dir, "gateway.crt", gwc, 2, err, errlen)) < 0)
        goto out;
    if ((rc = write_pem(pki->dir, "ca.crt", both, 2, err, errlen)) < 0)
        goto out;
    label = fs_join(pki->dir, PKI_CA_LABEL_FILE);
    rc = label ? fs_write_atomic(label, r->new_label, strlen(r->new_label), 0644) : -ENOMEM;
    if (rc < 0)
        snprintf(err, errlen, "cannot write %s: %s", label ? label : "ca.label", fs_strerror(rc));
out:
    free(label);
    free(cross);
    return rc;
}

int pki_rollover(struct pki *pki, const struct pki_rollover_opts *o, char *err, size_t errlen)
{
    struct registry *reg = NULL;
    struct roll r = {0};
    char *rpath = fs_join(pki->dir, PKI_ROLLOVER_FILE);
    int lock = -1, rc;

    if (!rpath)
        return -ENOMEM;
    rc = fs_lock_dir(pki->dir, &lock);
    if (rc < 0) {
        snprintf(err, errlen, "cannot lock the pki dir %s: %s", pki->dir, fs_strerror(rc));
        goto out;
    }
    if (access(rpath, F_OK) == 0) {
        snprintf(err, errlen, "a rollover is already under way (%s): end it with 'mtlsgw ca "
                 "retire-old' first", rpath);
        rc = -EALREADY;
        goto out;
    }
    /* Under an organization's root the CA is the root's to sign: a new
     * self-signed CA here would replace the anchor peers trust, and chain.pem
     * would still name the old key (the CRL then fails to verify). */
    if (access(pki->chain_path, F_OK) == 0) {
        snprintf(err, errlen, "this gateway's CA is an intermediate under an organization's "
                 "root (%s): a rollover here would replace the root peers trust with a "
                 "self-signed CA. A new CA under the root is the root's to sign: 'mtlsgw init "
                 "--intermediate --force --csr-out FILE', the root signs FILE, then 'mtlsgw "
                 "init --import-ca CERT --chain ROOT' (a new CA key: peers enroll again; "
                 "docs/pki.md); nothing was changed", pki->chain_path);
        rc = -ENOTSUP;
        goto out;
    }
    if ((rc = pki_load_registry(pki, &reg, err, errlen)) < 0 ||
        (rc = pki_load_ca(pki, err, errlen)) < 0)
        goto out;
    pki_ca_label(pki, r.old_label, sizeof(r.old_label));
    if ((rc = stamp_name(PKI_LABEL_CA "-", r.new_label, sizeof(r.new_label))) < 0)
        goto out;
    cn_of(pki->ca, r.old_cn, sizeof(r.old_cn));
    next_cn(r.old_cn, r.new_cn, sizeof(r.new_cn));
    if ((rc = roll_make(pki, o, &r, err, errlen)) < 0 ||
        (rc = roll_write(pki, reg, &r, err, errlen)) < 0)
        goto out;
    {
        struct json_object *f = json_object_new_object();
        char *serial = NULL;
        json_object_object_add(f, "old_ca", json_object_new_string(r.old_cn));
        json_object_object_add(f, "new_ca", json_object_new_string(r.new_cn));
        json_object_object_add(f, "new_label", json_object_new_string(r.new_label));
        if (p11_cert_serial_hex(r.new_ca, &serial) == 0)
            json_object_object_add(f, "ca_serial", json_object_new_string(serial));
        free(serial);
        json_object_object_add(f, "actor", json_object_new_string(o->actor));
        pki_audit(pki, "ca-rollover", f);
    }
    /* From now on the new CA issues (pki_load_ca reads ca.crt again). */
    gnutls_x509_crt_deinit(pki->ca);
    gnutls_privkey_deinit(pki->ca_key);
    pki->ca = r.new_ca;
    pki->ca_key = r.new_key;
    r.new_ca = NULL;
    r.new_key = NULL;
out:
    roll_free(&r);
    registry_free(reg);
    if (lock >= 0)
        close(lock);
    free(rpath);
    /* Both CRLs signed, by their CA each (crl_write calls pki_rollover_crl). */
    if (rc == 0)
        rc = pki_crl_resign(pki, err, errlen);
    return rc;
}

int pki_rollover_crl(struct pki *pki, const struct p11_revoked *rev, size_t n, uint64_t number,
                     char *err, size_t errlen)
{
    struct rollover *ro = NULL;
    gnutls_x509_crt_t old = NULL;
    gnutls_privkey_t key = NULL;
    gnutls_x509_crl_t crl = NULL;
    gnutls_datum_t pem = {0};
    char *ca_old = fs_join(pki->dir, PKI_CA_OLD_FILE), *out = fs_join(pki->dir, PKI_CRL_OLD_FILE);
    int rc = ca_old && out ? rollover_load(pki->dir, &ro, err, errlen) : -ENOMEM;

    if (rc == -ENOENT) {
        rc = 0; /* no overlap: one CA, one CRL */
        goto done;
    }
    if (rc < 0 || (rc = pki_read_cert(ca_old, &old, err, errlen)) < 0 ||
        (rc = pki_open_token(pki, err, errlen)) < 0)
        goto done;
    rc = p11_key_load(pki->tok, ro->old_label, &key);
    if (rc == 0)
        rc = p11_crl_sign(old, key, rev, n, number, pki->cfg->pki.crl_days, &crl);
    if (rc < 0) {
        snprintf(err, errlen, "cannot sign the old CA's CRL with key '%s' on %s: %s",
                 ro->old_label, pki->cfg->token.uri, p11_token_error(pki->tok));
        goto done;
    }
    if (gnutls_x509_crl_export2(crl, GNUTLS_X509_FMT_PEM, &pem) < 0) {
        rc = -EINVAL;
        snprintf(err, errlen, "cannot encode the old CA's CRL");
        goto done;
    }
    rc = fs_write_atomic(out, pem.data, pem.size, 0644);
    if (rc < 0)
        snprintf(err, errlen, "cannot write %s: %s", out, fs_strerror(rc));
done:
    gnutls_free(pem.data);
    if (crl)
        gnutls_x509_crl_deinit(crl);
    if (key)
        gnutls_privkey_deinit(key);
    if (old)
        gnutls_x509_crt_deinit(old);
    rollover_free(ro);
    free(ca_old);
    free(out);
    return rc;
}

/* ---- retire-old ------------------------------------------------------- */

void pki_names_free(char **names)
{
    for (size_t i = 0; names && names[i]; i++)
        free(names[i]);
    free(names);
}

static int still_on_old(const struct registry *reg, const struct rollover *ro, char ***out)
{
    char **names = calloc(registry_count(reg) + 1, sizeof(char *));
    size_t n = 0;

    if (!names)
        return -ENOMEM;
    for (size_t i = 0; i < registry_count(reg); i++) {
        const struct peer *p = registry_at(reg, i);
        if (p->status != PEER_ACTIVE || !rollover_on_old(ro, p))
            continue;
        if (!(names[n++] = strdup(p->name))) {
            pki_names_free(names);
            return -ENOMEM;
        }
    }
    *out = names;
    return (int)n;
}

static int revoke_forced(struct pki *pki, struct registry *reg, char **names, char *err,
                         size_t errlen)
{
    time_t now = time(NULL);
    int rc = 0;

    for (size_t i = 0; rc == 0 && names[i]; i++)
        rc = registry_revoke(reg, names[i], PEER_REVOKED, "cessationOfOperation", now);
    if (rc == 0)
        rc = registry_save(reg, pki->reg_path);
    if (rc < 0)
        snprintf(err, errlen, "cannot revoke the peers still on the old CA in %s: %s",
                 pki->reg_path, fs_strerror(rc));
    return rc;
}

/* The old CA's files into retired-STAMP/. */
static int retire_files(const struct pki *pki, char *err, size_t errlen)
{
    static const char *const names[] = {PKI_CA_OLD_FILE, PKI_CA_NEW_FILE, PKI_CRL_OLD_FILE,
                                        PKI_CROSS_DIR, PKI_ROLLOVER_FILE};
    char sub[64];
    char *dir = NULL;
    int rc = stamp_name("retired-", sub, sizeof(sub));

    if (rc == 0 && !(dir = fs_join(pki->dir, sub)))
        rc = -ENOMEM;
    if (rc == 0 && (rc = fs_mkdir(dir, 0750)) < 0)
        snprintf(err, errlen, "cannot create %s: %s", dir, strerror(-rc));
    /* rollover.json last: until it goes, the overlap is still recorded. */
    for (size_t i = 0; rc == 0 && i < sizeof(names) / sizeof(names[0]); i++) {
        char *from = fs_join(pki->dir, names[i]), *to = fs_join(dir, names[i]);
        if (!from || !to)
            rc = -ENOMEM;
        else if (rename(from, to) < 0 && errno != ENOENT)
            rc = -errno;
        if (rc < 0)
            snprintf(err, errlen, "cannot move %s to %s: %s", from ? from : names[i], dir,
                     strerror(-rc));
        free(from);
        free(to);
    }
    free(dir);
    return rc;
}

int pki_retire_old(struct pki *pki, bool force, const char *actor, char ***still, char *err,
                   size_t errlen)
{
    struct registry *reg = NULL;
    struct rollover *ro = NULL;
    gnutls_x509_crt_t *gw = NULL, *nca = NULL;
    unsigned n_gw = 0, n_nca = 0;
    char *ca_new = fs_join(pki->dir, PKI_CA_NEW_FILE);
    int lock = -1, rc, n;

    *still = NULL;
    if (!ca_new)
        return -ENOMEM;
    rc = fs_lock_dir(pki->dir, &lock);
    if (rc < 0) {
        snprintf(err, errlen, "cannot lock the pki dir %s: %s", pki->dir, fs_strerror(rc));
        goto out;
    }
    rc = rollover_load(pki->dir, &ro, err, errlen);
    if (rc == -ENOENT)
        snprintf(err, errlen, "no rollover is under way in %s: there is no old CA to retire "
                 "(start one with 'mtlsgw ca rollover')", pki->dir);
    if (rc < 0 || (rc = pki_load_registry(pki, &reg, err, errlen)) < 0)
        goto out;
    n = still_on_old(reg, ro, still);
    if (n < 0) {
        rc = n;
        goto out;
    }
    if (n > 0 && !force) {
        snprintf(err, errlen, "%d active peer(s) still hold a certificate of the old CA '%s' "
                 "and would be refused from then on: renew them first (mtlsgw peers shows "
                 "ISSUER), revoke them, or give --force", n, ro->old_cn);
        rc = -EBUSY;
        goto out;
    }
    rc = pki_read_pem_certs(ca_new, &nca, &n_nca);
    if (rc < 0) {
        snprintf(err, errlen, "cannot read %s: %s", ca_new, fs_strerror(rc));
        goto out;
    }
    /* --force: those peers are revoked, so the registry says what the
     * handshake will do and their open sessions end as a revoke's do (the
     * CRLs follow below, re-signed from this registry). */
    if (n > 0 && (rc = revoke_forced(pki, reg, *still, err, errlen)) < 0)
        goto out;
    /* The gateway's leaf alone: the cross certificate served old anchors. */
    if (access(pki->gw_path, F_OK) == 0 &&
        ((rc = pki_read_pem_certs(pki->gw_path, &gw, &n_gw)) < 0 ||
         (rc = write_pem(pki->dir, "gateway.crt", gw, 1, err, errlen)) < 0))
        goto out;
    if ((rc = write_pem(pki->dir, "ca.crt", nca, 1, err, errlen)) < 0 ||
        (rc = retire_files(pki, err, errlen)) < 0)
        goto out;
    {
        struct json_object *f = json_object_new_object();
        json_object_object_add(f, "old_ca", json_object_new_string(ro->old_cn));
        json_object_object_add(f, "old_label", json_object_new_string(ro->old_label));
        json_object_object_add(f, "forced_peers", json_object_new_int(n));
        json_object_object_add(f, "actor", json_object_new_string(actor));
        pki_audit(pki, "ca-retire-old", f);
    }
out:
    if (gw)
        certs_free(gw, n_gw);
    if (nca)
        certs_free(nca, n_nca);
    rollover_free(ro);
    registry_free(reg);
    if (lock >= 0)
        close(lock);
    free(ca_new);
    /* A fresh crl.pem: the daemon's watch reloads the trust (ca.crt too). */
    if (rc == 0)
        rc = pki_crl_resign(pki, err, errlen);
    return rc;
}

/* ---- EST cacerts ------------------------------------------------------ */

int pki_cacerts_pem(const struct pki *pki, char **out, size_t *len)
{
    static const char *const cross[] = {PKI_CROSS_DIR "/new-by-old.crt",
                                        PKI_CROSS_DIR "/old-by-new.crt"};
    char *all = NULL;
    size_t n = 0;
    int rc = fs_read_file(pki->ca_path, CERT_MAX, &all, &n);

    for (size_t i = 0; rc == 0 && i < sizeof(cross) / sizeof(cross[0]); i++) {
        char *path = fs_join(pki->dir, cross[i]), *text = NULL, *nb;
        size_t l = 0;
        if (path && fs_read_file(path, CERT_MAX, &text, &l) == 0) {
            nb = realloc(all, n + l + 2);
            if (!nb) {
                rc = -ENOMEM;
            } else {
                all = nb;
                if (n && all[n - 1] != '\n')
                    all[n++] = '\n';
                memcpy(all + n, text, l);
                n += l;
                all[n] = '\0';
            }
        }
        free(text);
        free(path);
    }
    if (rc < 0) {
        free(all);
        return rc;
    }
    *out = all;
    *len = n;
    return 0;
}

int pki_cacerts_bundle(const struct pki *pki, gnutls_x509_crt_t **out, size_t *n, char *err,
                       size_t errlen)
{
    static const char *const cross[] = {PKI_CROSS_DIR "/new-by-old.crt",
                                        PKI_CROSS_DIR "/old-by-new.crt"};
    int rc = pki_ca_bundle(pki, out, n, err, errlen);

    for (size_t i = 0; rc == 0 && i < sizeof(cross) / sizeof(cross[0]); i++) {
        char *path = fs_join(pki->dir, cross[i]);
        gnutls_x509_crt_t *c = NULL, *all;
        unsigned k = 0;

        if (!path) {
            rc = -ENOMEM;
        } else if (access(path, F_OK) == 0 && pki_read_pem_certs(path, &c, &k) == 0) {
            all = gnutls_realloc(*out, (*n + k) * sizeof(*all));
            if (!all) {
                rc = -ENOMEM;
                certs_free(c, k);
                c = NULL;
            } else {
                memcpy(all + *n, c, k * sizeof(*all));
                *out = all;
                *n += k;
            }
            gnutls_free(c);
        }
        free(path);
    }
    return rc;
}
