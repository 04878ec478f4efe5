#include "pki.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "access.h"
#include "config.h"
#include "fault.h"
#include "fsutil.h"
#include "issued.h"
#include "p11.h"
#include "peernet.h"
#include "pki-rollover.h"
#include "registry.h"
#include "verify.h"

#define CERT_MAX_SIZE (1024 * 1024)
#define GATEWAY_MAX_DAYS 397

int pki_new(const struct config *cfg, struct pki **out)
{
    struct pki *pki = calloc(1, sizeof(*pki));

    if (!pki)
        return -ENOMEM;
    pki->cfg = cfg;
    pki->dir = strdup(cfg->pki.dir);
    pki->ca_path = fs_join(cfg->pki.dir, "ca.crt");
    pki->gw_path = fs_join(cfg->pki.dir, "gateway.crt");
    pki->crl_path = fs_join(cfg->pki.dir, "crl.pem");
    pki->reg_path = fs_join(cfg->pki.dir, "registry.json");
    pki->audit_path = fs_join(cfg->pki.dir, "audit.log");
    pki->chain_path = fs_join(cfg->pki.dir, "chain.pem");
    if (!pki->dir || !pki->ca_path || !pki->gw_path || !pki->crl_path || !pki->reg_path ||
        !pki->audit_path || !pki->chain_path) {
        pki_free(pki);
        return -ENOMEM;
    }
    *out = pki;
    return 0;
}

void pki_free(struct pki *pki)
{
    if (!pki)
        return;
    if (pki->ca_key)
        gnutls_privkey_deinit(pki->ca_key);
    if (pki->ca)
        gnutls_x509_crt_deinit(pki->ca);
    p11_token_free(pki->tok);
    free(pki->dir);
    free(pki->ca_path);
    free(pki->gw_path);
    free(pki->crl_path);
    free(pki->reg_path);
    free(pki->audit_path);
    free(pki->chain_path);
    free(pki);
}

int pki_open_token(struct pki *pki, char *err, size_t errlen)
{
    char why[1024];
    int rc;

    if (pki->tok)
        return 0;
    rc = p11_token_open(pki->cfg->token.module, pki->cfg->token.uri, pki->cfg->token.pin_file,
                        &pki->tok, err, errlen);
    /* A token "not found" or a PIN "not readable" is often a file the
     * daemon's user may not read: name that instead of a module guess. */
    if (rc < 0 && access_explain_token(pki->cfg->token.pin_file, why, sizeof(why)) < 0)
        snprintf(err, errlen, "token %s: %s", pki->cfg->token.uri, why);
    return rc;
}

int pki_read_cert(const char *path, gnutls_x509_crt_t *out, char *err, size_t errlen)
{
    gnutls_x509_crt_t crt = NULL;
    gnutls_datum_t d;
    char *text = NULL;
    size_t len = 0;
    int rc;

    rc = fs_read_file(path, CERT_MAX_SIZE, &text, &len);
    if (rc < 0) {
        snprintf(err, errlen, "cannot read certificate %s: %s", path, fs_strerror(rc));
        return rc;
    }
    d.data = (unsigned char *)text;
    d.size = (unsigned)len;
    if (gnutls_x509_crt_init(&crt) < 0) {
        rc = -ENOMEM;
        goto out;
    }
    if (gnutls_x509_crt_import(crt, &d, GNUTLS_X509_FMT_PEM) < 0 &&
        gnutls_x509_crt_import(crt, &d, GNUTLS_X509_FMT_DER) < 0) {
        snprintf(err, errlen, "%s is not a PEM or DER X.509 certificate", path);
        rc = -EBADMSG;
        goto out;
    }
    *out = crt;
    crt = NULL;
out:
    if (crt)
        gnutls_x509_crt_deinit(crt);
    free(text);
    return rc;
}

int pki_read_crl(const struct pki *pki, gnutls_x509_crl_t *out, char *err, size_t errlen)
{
    gnutls_x509_crl_t crl = NULL;
    gnutls_datum_t d;
    char *text = NULL;
    size_t len = 0;
    int rc;

    rc = fs_read_file(pki->crl_path, 64 * 1024 * 1024, &text, &len);
    if (rc < 0) {
        snprintf(err, errlen, "cannot read CRL %s: %s", pki->crl_path, fs_strerror(rc));
        return rc;
    }
    d.data = (unsigned char *)text;
    d.size = (unsigned)len;
    if (gnutls_x509_crl_init(&crl) < 0) {
        rc = -ENOMEM;
        goto out;
    }
    if (gnutls_x509_crl_import(crl, &d, GNUTLS_X509_FMT_PEM) < 0) {
        snprintf(err, errlen, "%s is not a PEM CRL", pki->crl_path);
        rc = -EBADMSG;
        goto out;
    }
    *out = crl;
    crl = NULL;
out:
    if (crl)
        gnutls_x509_crl_deinit(crl);
    free(text);
    return rc;
}

int pki_load_ca(struct pki *pki, char *err, size_t errlen)
{
    char label[128];
    int rc;

    /* A rollover (another process's) replaces ca.crt and the key's label. */
    if (pki->ca && pki->ca_key && pki_ca_current(pki))
        return 0;
    if (pki->ca_key)
        gnutls_privkey_deinit(pki->ca_key);
    if (pki->ca)
        gnutls_x509_crt_deinit(pki->ca);
    pki->ca = NULL;
    pki->ca_key = NULL;
    if (access(pki->ca_path, F_OK) < 0) {
        snprintf(err, errlen, "no CA in %s: run 'mtlsgw init' first", pki->dir);
        return -ENOENT;
    }
    /* An intermediate's own certificate heads chain.pem; ca.crt is the root
     * that peers trust, whose key is elsewhere. */
    rc = pki_read_cert(access(pki->chain_path, F_OK) == 0 ? pki->chain_path : pki->ca_path,
                       &pki->ca, err, errlen);
    if (rc < 0)
        return rc;
    rc = pki_open_token(pki, err, errlen);
    if (rc < 0)
        return rc;
    pki_ca_label(pki, label, sizeof(label));
    rc = p11_key_load(pki->tok, label, &pki->ca_key);
    if (rc < 0) {
        snprintf(err, errlen, "token %s: CA key '%s' not usable: %s", pki->cfg->token.uri,
                 label, p11_token_error(pki->tok));
        return rc;
    }
    return 0;
}

int pki_load_registry(const struct pki *pki, struct registry **out, char *err, size_t errlen)
{
    char why[1024] = "";
    int rc = registry_load(pki->reg_path, out, why, sizeof(why));

    if (rc == -ENOENT)
        snprintf(err, errlen, "no registry at %s: run 'mtlsgw init' first", pki->reg_path);
    else if (rc == -EACCES && access_explain(pki->reg_path, R_OK, why, sizeof(why)) < 0)
        snprintf(err, errlen, "registry: %s", why);
    else if (rc < 0 && rc != -ENOMEM)
        snprintf(err, errlen, "registry %s: %s", pki->reg_path, why);
    return rc;
}

int pki_cert_pem(gnutls_x509_crt_t crt, gnutls_datum_t *out)
{
    return gnutls_x509_crt_export2(crt, GNUTLS_X509_FMT_PEM, out) < 0 ? -EINVAL : 0;
}

static int write_cert(const char *path, gnutls_x509_crt_t crt, char *err, size_t errlen)
{
    gnutls_datum_t pem = {0};
    int rc = pki_cert_pem(crt, &pem);

    if (rc == 0)
        rc = fs_write_atomic(path, pem.data, pem.size, 0644);
    if (rc < 0)
        snprintf(err, errlen, "cannot write %s: %s", path, fs_strerror(rc));
    gnutls_free(pem.data);
    return rc;
}

/* The copy under issued/ (issued.h), before the registry names it. */
static int keep_issued(const struct pki *pki, gnutls_x509_crt_t crt, char *err, size_t errlen)
{
    int rc = issued_store(pki->dir, crt);

    if (rc < 0)
        snprintf(err, errlen, "cannot keep a copy of the certificate in %s/issued: %s",
                 pki->dir, fs_strerror(rc));
    return rc;
}

int pki_audit(const struct pki *pki, const char *event, struct json_object *fields)
{
    char when[32];
    int rc;

    if (!fields)
        fields = json_object_new_object();
    if (!fields)
        return -ENOMEM;
    time_format_utc(time(NULL), when, sizeof(when));
    json_object_object_add(fields, "time", json_object_new_string(when));
    json_object_object_add(fields, "event", json_object_new_string(event));
    rc = fs_append_line(pki->audit_path,
                        json_object_to_json_string_ext(fields, JSON_C_TO_STRING_PLAIN |
                                                                   JSON_C_TO_STRING_NOSLASHESCAPE),
                        0640);
    json_object_put(fields);
    return rc;
}

/* Sign and write the CRL from the registry's revoked entries; bumps the
 * registry's CRL number (the caller saves the registry). */
static int crl_write(struct pki *pki, struct registry *reg, char *err, size_t errlen)
{
    struct p11_revoked *rev = NULL;
    uint64_t number;
    gnutls_x509_crl_t crl = NULL;
    gnutls_datum_t pem = {0};
    size_t n = 0;
    int rc;

    rev = calloc(registry_count(reg) + 1, sizeof(*rev));
    if (!rev)
        return -ENOMEM;
    for (size_t i = 0; i < registry_count(reg); i++) {
        const struct peer *p = registry_at(reg, i);
        /* A reissue's overlap (pki_reissue): superseded from revoked_at on. */
        if (p->status == PEER_ACTIVE ||
            (p->status == PEER_SUPERSEDED && p->revoked_at > (int64_t)time(NULL)))
            continue;
        rev[n].serial_hex = p->serial;
        rev[n].when = (time_t)p->revoked_at;
        n++;
    }
    /* A token that refuses this one signature (tests: a revoke must then
     * leave the registry as it was). */
    number = registry_next_crl_number(reg);
    rc = fault_fail("crl-sign") ? -EIO
                                : p11_crl_sign(pki->ca, pki->ca_key, rev, n, number,
                                               pki->cfg->pki.crl_days, &crl);
    if (rc < 0) {
        snprintf(err, errlen, "cannot sign the CRL with the CA key on %s: %s",
                 pki->cfg->token.uri, pki->tok ? p11_token_error(pki->tok) : strerror(-rc));
        goto out;
    }
    if (gnutls_x509_crl_export2(crl, GNUTLS_X509_FMT_PEM, &pem) < 0) {
        rc = -EINVAL;
        snprintf(err, errlen, "cannot encode the CRL");
        goto out;
    }
    rc = fs_write_atomic(pki->crl_path, pem.data, pem.size, 0644);
    if (rc < 0)
        snprintf(err, errlen, "cannot write %s: %s", pki->crl_path, fs_strerror(rc));
    /* During a CA rollover the old CA's CRL lists the same serials. */
    if (rc == 0)
        rc = pki_rollover_crl(pki, rev, n, number, err, errlen);
out:
    gnutls_free(pem.data);
    if (crl)
        gnutls_x509_crl_deinit(crl);
    free(rev);
    return rc;
}

static void lock_error(const struct pki *pki, int rc, char *err, size_t errlen)
{
    snprintf(err, errlen, "cannot lock the pki dir %s: %s%s", pki->dir, fs_strerror(rc),
             rc == -EACCES || rc == -EROFS
                 ? " (it must be writable by the daemon's user, [daemon] user)"
                 : rc == -ENOENT ? " (run 'mtlsgw init' first)" : "");
}

static int save_registry(const struct pki *pki, const struct registry *reg, char *err,
                         size_t errlen)
{
    int rc = registry_save(reg, pki->reg_path);

    if (rc < 0)
        snprintf(err, errlen, "cannot write registry %s: %s", pki->reg_path, fs_strerror(rc));
    return rc;
}

/*
 * One change to the pki dir: the dir's lock held from txn_begin() to
 * txn_end(), so two consoles (or the console and the daemon's enrollment)
 * never interleave their read-modify-write of the registry and the CRL.
 */
struct txn {
    struct pki *pki;
    struct registry *reg;
    int lock;
};

static void txn_end(struct txn *t)
{
    registry_free(t->reg);
    t->reg = NULL;
    if (t->lock >= 0)
        close(t->lock);
    t->lock = -1;
}

/* Lock the dir, load the registry and, with ca, the CA (key on the token). */
static int txn_begin(struct pki *pki, bool ca, struct txn *t, char *err, size_t errlen)
{
    int rc;

    t->pki = pki;
    t->reg = NULL;
    t->lock = -1;
    rc = fs_lock_dir(pki->dir, &t->lock);
    if (rc < 0) {
        lock_error(pki, rc, err, errlen);
        return rc;
    }
    rc = pki_load_registry(pki, &t->reg, err, errlen);
    if (rc == 0 && ca)
        rc = pki_load_ca(pki, err, errlen);
    if (rc < 0)
        txn_end(t);
    return rc;
}

/* Write the change: with crl, the CRL first, so that if the registry write
 * then fails, a revoked peer is refused by the CRL anyway (fail closed),
 * never trusted by a stale CRL. */
static int txn_commit(struct txn *t, bool crl, char *err, size_t errlen)
{
    int rc = crl ? crl_write(t->pki, t->reg, err, errlen) : 0;

    if (rc == 0)
        rc = save_registry(t->pki, t->reg, err, errlen);
    return rc;
}

/* Move the previous CA's files aside, so --force never destroys history. */
static int archive_old(struct pki *pki, char *err, size_t errlen)
{
    static const char *const names[] = {"ca.crt", "gateway.crt", "crl.pem", "registry.json",
                                        "audit.log", "issued", PKI_CA_LABEL_FILE,
                                        PKI_ROLLOVER_FILE, PKI_CA_OLD_FILE, PKI_CA_NEW_FILE,
                                        PKI_CRL_OLD_FILE, PKI_CROSS_DIR, "chain.pem",
                                        "intermediate.json"};
    char stamp[32], sub[48];
    char *dir = NULL;
    time_t now = time(NULL);
    struct tm tm;
    int rc;

    gmtime_r(&now, &tm);
    strftime(stamp, sizeof(stamp), "%Y%m%dT%H%M%SZ", &tm);
    snprintf(sub, sizeof(sub), "old-%s", stamp);
    dir = fs_join(pki->dir, sub);
    if (!dir)
        return -ENOMEM;
    rc = fs_mkdir(dir, 0750);
    if (rc < 0) {
        snprintf(err, errlen, "cannot create %s: %s", dir, strerror(-rc));
        goto out;
    }
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        char *from = fs_join(pki->dir, names[i]);
        char *to = fs_join(dir, names[i]);
        if (!from || !to)
            rc = -ENOMEM;
        else if (rename(from, to) < 0 && errno != ENOENT)
            rc = -errno;
        if (rc < 0)
            snprintf(err, errlen, "cannot move %s to %s: %s", from ? from : names[i], dir,
                     strerror(-rc));
        free(from);
        free(to);
        if (rc < 0)
            goto out;
    }
out:
    free(dir);
    return rc;
}

static const char *const init_labels[] = {PKI_LABEL_CA, PKI_LABEL_GATEWAY};

/* Refuse to replace a CA or its keys without --force. */
static int init_check(struct pki *pki, const struct pki_init_opts *o, char *err, size_t errlen)
{
    enum p11_key_type kt = (enum p11_key_type)o->key_type;
    int rc;

    if (access(pki->ca_path, F_OK) == 0 && !o->force) {
        snprintf(err, errlen,
                 "a CA already exists (%s); use --force to replace it (every enrolled peer "
                 "will then need a new certificate)",
                 pki->ca_path);
        return -EEXIST;
    }
    rc = pki_open_token(pki, err, errlen);
    if (rc < 0)
        return rc;
    rc = p11_token_supports(pki->tok, kt);
    if (rc < 0) {
        snprintf(err, errlen, "token %s cannot serve %s keys: %s", pki->cfg->token.uri,
                 p11_key_type_name(kt), p11_token_error(pki->tok));
        return rc;
    }
    for (int i = 0; i < 2; i++) {
        rc = p11_key_exists(pki->tok, init_labels[i]);
        if (rc < 0) {
            snprintf(err, errlen, "token %s: cannot list keys: %s", pki->cfg->token.uri,
                     p11_token_error(pki->tok));
            return rc;
        }
        if (rc == 1 && !o->force) {
            snprintf(err, errlen,
                     "token %s already holds a key labelled '%s'; use --force to replace it",
                     pki->cfg->token.uri, init_labels[i]);
            return -EEXIST;
        }
    }
    return 0;
}

/* With --force, archive the old files and delete the old keys; then make
 * the CA's and the gateway's keys on the token. */
static int init_keys(struct pki *pki, const struct pki_init_opts *o, char *err, size_t errlen)
{
    enum p11_key_type kt = (enum p11_key_type)o->key_type;
    int rc;

    if (o->force) {
        rc = archive_old(pki, err, errlen);
        if (rc < 0)
            return rc;
        for (int i = 0; i < 2; i++) {
            const char *label = init_labels[i];
            if (p11_key_exists(pki->tok, label) == 1 &&
                (rc = p11_key_delete(pki->tok, label)) < 0) {
                snprintf(err, errlen, "token %s: cannot delete old key '%s': %s",
                         pki->cfg->token.uri, label, p11_token_error(pki->tok));
                return rc;
            }
        }
    }
    for (int i = 0; i < 2; i++) {
        rc = p11_key_generate(pki->tok, init_labels[i], kt);
        if (rc < 0) {
            snprintf(err, errlen, "token %s: cannot generate %s key '%s': %s",
                     pki->cfg->token.uri, p11_key_type_name(kt), init_labels[i],
                     p11_token_error(pki->tok));
            return rc;
        }
    }
    return 0;
}

/* The self-signed CA certificate and the gateway's, from the new keys. On
 * success pki->ca and pki->ca_key hold the CA and *gw the gateway's. */
static int init_certs(struct pki *pki, const struct pki_init_opts *o, gnutls_x509_crt_t *gw,
                      char *err, size_t errlen)
{
    gnutls_x509_crt_t ca = NULL;
    gnutls_privkey_t ca_key = NULL;
    gnutls_pubkey_t ca_pub = NULL, gw_pub = NULL;
    struct p11_issue ca_req = {0}, gw_req = {0};
    char ca_cn[256];
    int rc;

    if ((rc = p11_key_load(pki->tok, PKI_LABEL_CA, &ca_key)) < 0 ||
        (rc = p11_pubkey_load(pki->tok, PKI_LABEL_CA, &ca_pub)) < 0 ||
        (rc = p11_pubkey_load(pki->tok, PKI_LABEL_GATEWAY, &gw_pub)) < 0) {
        snprintf(err, errlen, "token %s: cannot use the new keys: %s", pki->cfg->token.uri,
                 p11_token_error(pki->tok));
        goto out;
    }
    snprintf(ca_cn, sizeof(ca_cn), "%s CA", o->cn);
    ca_req.profile = P11_PROFILE_CA;
    ca_req.cn = ca_cn;
    ca_req.days = o->days;
    rc = p11_cert_issue(NULL, ca_key, ca_pub, &ca_req, &ca);
    if (rc < 0) {
        snprintf(err, errlen, "cannot make the CA certificate: %s", strerror(-rc));
        goto out;
    }
    gw_req.profile = P11_PROFILE_SERVER;
    gw_req.cn = o->cn;
    gw_req.hosts = o->hosts;
    gw_req.n_hosts = o->n_hosts;
    gw_req.crl_url = pki->cfg->pki.crl_url;
    gw_req.days = o->days < GATEWAY_MAX_DAYS ? o->days : GATEWAY_MAX_DAYS;
    rc = p11_cert_issue(ca, ca_key, gw_pub, &gw_req, gw);
    if (rc < 0) {
        snprintf(err, errlen, "cannot make the gateway certificate: %s", strerror(-rc));
        goto out;
    }
    pki->ca = ca;
    pki->ca_key = ca_key;
    ca = NULL;
    ca_key = NULL;
out:
    if (ca)
        gnutls_x509_crt_deinit(ca);
    if (ca_key)
        gnutls_privkey_deinit(ca_key);
    if (ca_pub)
        gnutls_pubkey_deinit(ca_pub);
    if (gw_pub)
        gnutls_pubkey_deinit(gw_pub);
    return rc;
}

int pki_init(struct pki *pki, const struct pki_init_opts *o, char *err, size_t errlen)
{
    gnutls_x509_crt_t gw = NULL;
    struct registry *reg = NULL;
    int lock = -1, rc;

    rc = fs_mkdir(pki->dir, 0750);
    if (rc < 0) {
        snprintf(err, errlen, "cannot create pki dir %s: %s", pki->dir, strerror(-rc));
        return rc;
    }
    /* Not txn_begin(): there is no registry to load yet. */
    rc = fs_lock_dir(pki->dir, &lock);
    if (rc < 0) {
        lock_error(pki, rc, err, errlen);
        return rc;
    }
    if ((rc = init_check(pki, o, err, errlen)) < 0 ||
        (rc = init_keys(pki, o, err, errlen)) < 0 ||
        (rc = init_certs(pki, o, &gw, err, errlen)) < 0 ||
        (rc = registry_new(&reg)) < 0)
        goto out;
    /* Order: everything else first, ca.crt last: its presence means "done". */
    if ((rc = keep_issued(pki, gw, err, errlen)) < 0 ||
        (rc = write_cert(pki->gw_path, gw, err, errlen)) < 0 ||
        (rc = crl_write(pki, reg, err, errlen)) < 0 ||
        (rc = save_registry(pki, reg, err, errlen)) < 0 ||
        (rc = write_cert(pki->ca_path, pki->ca, err, errlen)) < 0)
        goto out;
    {
        struct json_object *f = json_object_new_object();
        char *serial = NULL;
        json_object_object_add(f, "cn", json_object_new_string(o->cn));
        json_object_object_add(f, "key_type",
                               json_object_new_string(p11_key_type_name(
                                   (enum p11_key_type)o->key_type)));
        if (p11_cert_serial_hex(pki->ca, &serial) == 0)
            json_object_object_add(f, "ca_serial", json_object_new_string(serial));
        free(serial);
        json_object_object_add(f, "actor", json_object_new_string(o->actor));
        pki_audit(pki, "init", f);
    }
out:
    registry_free(reg);
    if (gw)
        gnutls_x509_crt_deinit(gw);
    if (lock >= 0)
        close(lock);
    return rc;
}

/*
 * A CA past its notAfter issues nothing: every certificate it made would be
 * refused (verify.c). One that is still valid issues certificates that end
 * with it at the latest (p11_cert_issue caps notAfter there).
 */
static int ca_usable(const struct pki *pki, const char *what, char *err, size_t errlen)
{
    time_t end = gnutls_x509_crt_get_expiration_time(pki->ca);
    char when[32];

    if (end == (time_t)-1 || time(NULL) < end)
        return 0;
    time_format_utc(end, when, sizeof(when));
    snprintf(err, errlen,
             "%s: the CA in %s expired on %s: nothing it issues would be trusted; make a new "
             "CA (mtlsgw init --force) and enroll the peers again",
             what, pki->ca_path, when);
    return -EKEYEXPIRED;
}

/* what ("enroll", "renew"): a key already in the registry under another
 * peer, or one that was revoked, is never certified again. */
static int key_taken(const char *what, const struct peer *other, char *err, size_t errlen)
{
    snprintf(err, errlen,
             other->status == PEER_ACTIVE
                 ? "%s: this key is already enrolled as peer '%s' (serial %s)"
                 : "%s: this key belonged to revoked peer '%s' (serial %s); make a new key",
             what, other->name, other->serial);
    return -EEXIST;
}

/* A client certificate for name with role, signed by the CA on the token. */
/* A tunnel peer's networks go in as URI SANs (VERIFY_NETWORK_URI): a hub
 * that trusts this CA as a [trust NAME] issuer routes them, within its
 * `networks =`, to the peer without an entry of its own (docs/pki.md). */
static int issue_client(struct pki *pki, const char *what, const char *name,
                        enum peer_role role, char *const *networks, size_t n_networks,
                        unsigned days, gnutls_pubkey_t key, gnutls_x509_crt_t *crt, char *err,
                        size_t errlen)
{
    struct p11_issue iss = {0};
    char role_uri[64], (*net_uri)[96] = NULL;
    const char **uris = NULL;
    int rc;

    if (n_networks) {
        net_uri = calloc(n_networks, sizeof(*net_uri));
        uris = calloc(n_networks, sizeof(*uris));
        if (!net_uri || !uris) {
            rc = -ENOMEM;
            snprintf(err, errlen, "%s %s: out of memory", what, name);
            goto out;
        }
        for (size_t i = 0; i < n_networks; i++) {
            snprintf(net_uri[i], sizeof(net_uri[i]), VERIFY_NETWORK_URI "%s", networks[i]);
            uris[i] = net_uri[i];
        }
    }
    iss.more_uris = uris;
    iss.n_more_uris = n_networks;
    snprintf(role_uri, sizeof(role_uri), "urn:mtlsgw:role:%s", role_name(role));
    iss.profile = P11_PROFILE_CLIENT;
    iss.cn = name;
    iss.uri_san = role_uri;
    iss.crl_url = pki->cfg->pki.crl_url; /* [pki] crl-url: where verifiers find our CRL */
    iss.days = days;
    rc = p11_cert_issue(pki->ca, pki->ca_key, key, &iss, crt);
    if (rc < 0)
        snprintf(err, errlen, "%s %s: cannot issue the certificate: %s", what, name,
                 p11_token_error(pki->tok)[0] ? p11_token_error(pki->tok) : strerror(-rc));
out:
    free(uris);
    free(net_uri);
    return rc;
}

/* The registry entry for p (from crt) plus the actor, as the audit line. */
static void audit_peer(const struct pki *pki, const char *event, const struct peer *p,
                       int64_t now, const char *old_serial, const char *actor)
{
    struct json_object *f = registry_peer_json(p, now);

    if (f) {
        json_object_object_del(f, "days_left");
        if (old_serial)
            json_object_object_add(f, "old_serial", json_object_new_string(old_serial));
        json_object_object_add(f, "actor", json_object_new_string(actor));
    }
    pki_audit(pki, event, f);
}

/* What can be refused before the pki dir is locked. */
static int enroll_check_req(const struct pki *pki, const struct pki_enroll_req *req, char *err,
                            size_t errlen)
{
    char why[768];
    int rc;

    if (!peer_name_valid(req->name)) {
        snprintf(err, errlen,
                 "enroll: '%s' is not a valid peer name (1-63 of A-Z a-z 0-9 . _ -, "
                 "starting with a letter or digit)",
                 req->name);
        return -EINVAL;
    }
    if (req->n_networks && req->role != ROLE_TUNNEL) {
        snprintf(err, errlen, "enroll: networks are for tunnel peers; %s is %s", req->name,
                 role_name((enum peer_role)req->role));
        return -EINVAL;
    }
    /* The list on its own: a default route says --allow-default first,
     * overlaps after peer-networks; against the other peers under the lock. */
    rc = peernet_check(NULL, req->name, req->networks, req->n_networks, req->allow_default, err,
                       errlen);
    if (rc == -EDOM)
        return -EINVAL;
    /* Root's bound on what a hub peer may be routed: the daemon's parent
     * refuses a tunnel outside it, so such a peer is refused here first. */
    if (config_check_peer_networks(pki->cfg, req->networks, req->n_networks, why,
                                   sizeof(why)) < 0) {
        snprintf(err, errlen, "enroll %s: %s", req->name, why);
        return -EINVAL;
    }
    return rc < 0 ? -EINVAL : 0;
}

/* The name is free and the key never seen; *key_id is the key's id. */
static int enroll_check_registry(const struct registry *reg, const struct pki_enroll_req *req,
                                 char **key_id, char *err, size_t errlen)
{
    const struct peer *old = registry_find_active_ci(reg, req->name);
    int rc;

    if (old) {
        snprintf(err, errlen,
                 "enroll: peer '%s' is already enrolled (serial %s); revoke it first or "
                 "choose another name (names are compared ignoring case)",
                 old->name, old->serial);
        return -EEXIST;
    }
    rc = peernet_check(reg, req->name, req->networks, req->n_networks, req->allow_default, err,
                       errlen);
    if (rc < 0)
        return rc;
    rc = p11_pubkey_id_hex(req->key, key_id);
    if (rc < 0) {
        snprintf(err, errlen, "enroll: cannot read the public key");
        return rc;
    }
    old = registry_find_key(reg, *key_id);
    if (old)
        return key_taken("enroll", old, err, errlen);
    return 0;
}

int pki_enroll(struct pki *pki, const struct pki_enroll_req *req, gnutls_x509_crt_t *out,
               char *err, size_t errlen)
{
    struct txn t;
    gnutls_x509_crt_t crt = NULL;
    char *key_id = NULL;
    char serial[64];
    struct peer p = {0};
    int rc;

    rc = enroll_check_req(pki, req, err, errlen);
    if (rc < 0)
        return rc;
    rc = txn_begin(pki, false, &t, err, errlen);
    if (rc < 0)
        return rc;
    rc = enroll_check_registry(t.reg, req, &key_id, err, errlen);
    if (rc < 0)
        goto out;
    rc = pki_load_ca(pki, err, errlen);
    if (rc == 0)
        rc = ca_usable(pki, "enroll", err, errlen);
    if (rc == 0)
        rc = issue_client(pki, "enroll", req->name, (enum peer_role)req->role,
                          (char *const *)req->networks, req->n_networks, req->days,
                          req->key, &crt, err, errlen);
    if (rc < 0)
        goto out;
    verify_serial_hex(crt, serial, sizeof(serial));
    p.name = (char *)req->name;
    p.role = (enum peer_role)req->role;
    p.status = PEER_ACTIVE;
    p.serial = serial;
    p.key_id = key_id;
    p.not_before = gnutls_x509_crt_get_activation_time(crt);
    p.not_after = gnutls_x509_crt_get_expiration_time(crt);
    p.enrolled_at = time(NULL);
    p.networks = (char **)req->networks;
    p.n_networks = req->n_networks;
    rc = registry_add(t.reg, &p);
    if (rc < 0) {
        snprintf(err, errlen, "enroll %s: %s", req->name,
                 rc == -EEXIST ? "serial collision; try again" : strerror(-rc));
        goto out;
    }
    if (req->before_commit) {
        rc = req->before_commit(req->ctx, crt, err, errlen);
        if (rc < 0)
            goto out;
    }
    rc = keep_issued(pki, crt, err, errlen);
    if (rc == 0)
        rc = txn_commit(&t, false, err, errlen);
    if (rc < 0)
        goto out;
    audit_peer(pki, "enroll", &p, p.enrolled_at, NULL, req->actor);
    if (out) {
        *out = crt;
        crt = NULL;
    }
out:
    if (crt)
        gnutls_x509_crt_deinit(crt);
    free(key_id);
    txn_end(&t);
    return rc;
}

bool pki_reason_valid(const char *reason)
{
    static const char *const reasons[] = {"unspecified", "keyCompromise", "superseded",
                                          "cessationOfOperation"};

    for (size_t i = 0; i < sizeof(reasons) / sizeof(reasons[0]); i++)
        if (strcmp(reason, reasons[i]) == 0)
            return true;
    return false;
}

int pki_revoke(struct pki *pki, const char *name, const char *reason, const char *actor,
               char *err, size_t errlen)
{
    struct txn t;
    const struct peer *p;
    int rc, overlap = 0;
    char serial[64] = "";
    time_t now = time(NULL);

    rc = txn_begin(pki, false, &t, err, errlen);
    if (rc < 0)
        return rc;
    p = registry_find_name(t.reg, name);
    if (!p) {
        snprintf(err, errlen, "revoke: no peer named '%s' (see 'mtlsgw peers')", name);
        rc = -ENOENT;
        goto out;
    }
    if (p->status != PEER_ACTIVE) {
        snprintf(err, errlen, "revoke: peer '%s' is already %s", name,
                 peer_status_name(p->status));
        rc = -EALREADY;
        goto out;
    }
    snprintf(serial, sizeof(serial), "%s", p->serial);
    rc = pki_load_ca(pki, err, errlen);
    if (rc == 0)
        rc = registry_revoke(t.reg, name, PEER_REVOKED, reason, now);
    /* A reissue's overlap keeps the old serial off the CRL until it ends
     * (pki_reissue): revoked now, it goes on the CRL with the current one. */
    if (rc == 0 && (overlap = registry_revoke_overlap(t.reg, name, reason, now)) < 0)
        rc = overlap;
    if (rc == 0)
        rc = txn_commit(&t, true, err, errlen);
    if (rc < 0)
        goto out;
    {
        struct json_object *f = json_object_new_object();
        json_object_object_add(f, "name", json_object_new_string(name));
        json_object_object_add(f, "serial", json_object_new_string(serial));
        if (overlap > 0)
            json_object_object_add(f, "overlap_serials_revoked", json_object_new_int(overlap));
        json_object_object_add(f, "reason", json_object_new_string(reason));
        json_object_object_add(f, "actor", json_object_new_string(actor));
        pki_audit(pki, "revoke", f);
    }
out:
    txn_end(&t);
    return rc;
}

int pki_crl_resign(struct pki *pki, char *err, size_t errlen)
{
    struct txn t;
    int rc;

    rc = txn_begin(pki, true, &t, err, errlen);
    if (rc < 0)
        return rc;
    rc = txn_commit(&t, true, err, errlen);
    if (rc == 0)
        pki_audit(pki, "crl", NULL);
    txn_end(&t);
    return rc;
}

/* np: the entry that follows p for the certificate crt (renew, reissue).
 * A shallow copy: the strings stay owned by the old entry, which
 * registry_revoke() only marks and registry_add() deep-copies from. */
static void successor(const struct peer *p, char *name, char *serial, char *key_id,
                      gnutls_x509_crt_t crt, int64_t now, struct peer *np)
{
    *np = *p;
    np->name = name;
    np->status = PEER_ACTIVE;
    np->serial = serial;
    np->key_id = key_id;
    np->not_before = gnutls_x509_crt_get_activation_time(crt);
    np->not_after = gnutls_x509_crt_get_expiration_time(crt);
    np->enrolled_at = now;
    np->revoked_at = 0;
    np->reason = NULL;
}

/* The peer holding old_serial, still active, and a key that is its own or
 * fresh; *key_id is the key's id. */
static int renew_check(const struct registry *reg, const char *old_serial, gnutls_pubkey_t key,
                       const struct peer **peer, char **key_id, char *err, size_t errlen)
{
    const struct peer *p = registry_find_serial(reg, old_serial), *other;
    char when[32];
    int rc;

    if (!p) {
        snprintf(err, errlen, "renew: no peer has serial %s", old_serial);
        return -ENOENT;
    }
    if (p->status != PEER_ACTIVE) {
        time_format_utc(p->revoked_at, when, sizeof(when));
        snprintf(err, errlen, "renew: certificate %s of peer '%s' was %s on %s", old_serial,
                 p->name, peer_status_name(p->status), when);
        return -EACCES;
    }
    rc = p11_pubkey_id_hex(key, key_id);
    if (rc < 0) {
        snprintf(err, errlen, "renew: cannot read the public key");
        return rc;
    }
    /* The same key (a renewal) or a fresh one (a re-key), never another
     * peer's key nor one that was revoked. */
    other = registry_find_key(reg, *key_id);
    if (other && (other->status != PEER_ACTIVE || strcmp(other->name, p->name) != 0))
        return key_taken("renew", other, err, errlen);
    *peer = p;
    return 0;
}

int pki_renew(struct pki *pki, const char *old_serial, gnutls_pubkey_t key, const char *actor,
              gnutls_x509_crt_t *out, char *err, size_t errlen)
{
    struct txn t;
    gnutls_x509_crt_t crt = NULL;
    const struct peer *p = NULL;
    struct peer np = {0};
    char *key_id = NULL, *name = NULL;
    char serial[64];
    int64_t life, now = time(NULL);
    int rc;

    rc = txn_begin(pki, false, &t, err, errlen);
    if (rc < 0)
        return rc;
    rc = renew_check(t.reg, old_serial, key, &p, &key_id, err, errlen);
    if (rc < 0)
        goto out;
    rc = pki_load_ca(pki, err, errlen);
    if (rc == 0)
        rc = ca_usable(pki, "renew", err, errlen);
    if (rc < 0)
        goto out;
    /* The new certificate lives as long as the one it replaces (never past
     * the CA's end, see ca_usable): to the
     * nearest day, as the issuer backdates notBefore a little and rounding
     * up would add a day at every renewal. */
    life = (p->not_after - p->not_before + 43200) / 86400;
    rc = issue_client(pki, "renew", p->name, p->role, p->networks, p->n_networks,
                      life < 1 ? 1 : life > 3650 ? 3650 : (unsigned)life, key, &crt, err,
                      errlen);
    if (rc < 0)
        goto out;
    verify_serial_hex(crt, serial, sizeof(serial));
    name = strdup(p->name);
    if (!name) {
        rc = -ENOMEM;
        goto out;
    }
    successor(p, name, serial, key_id, crt, now, &np);
    rc = registry_revoke(t.reg, name, PEER_SUPERSEDED, "superseded", now);
    if (rc == 0)
        rc = registry_add(t.reg, &np);
    if (rc < 0) {
        snprintf(err, errlen, "renew %s: %s", name,
                 rc == -EEXIST ? "serial collision; try again" : strerror(-rc));
        goto out;
    }
    /* CRL first, as in revoke: a failure after it leaves the old one refused. */
    rc = keep_issued(pki, crt, err, errlen);
    if (rc == 0)
        rc = txn_commit(&t, true, err, errlen);
    if (rc < 0)
        goto out;
    audit_peer(pki, "renew", &np, now, old_serial, actor);
    if (out) {
        *out = crt;
        crt = NULL;
    }
out:
    if (crt)
        gnutls_x509_crt_deinit(crt);
    free(name);
    free(key_id);
    txn_end(&t);
    return rc;
}

int pki_archive_old(struct pki *pki, char *err, size_t errlen)
{
    return archive_old(pki, err, errlen);
}

/* The peer's active entry and its public key, from the stored copy of its
 * certificate (issued/). */
static int reissue_key(const struct pki *pki, const struct registry *reg, const char *name,
                       const struct peer **peer, gnutls_pubkey_t *key, char *err,
                       size_t errlen)
{
    const struct peer *p = registry_find_name(reg, name);
    gnutls_x509_crt_t old = NULL;
    int rc;

    if (!p || p->status != PEER_ACTIVE) {
        snprintf(err, errlen,
                 p ? "reissue: peer '%s' is %s; enroll it again from a CSR"
                   : "reissue: no peer named '%s' (see 'mtlsgw peers')",
                 name, p ? peer_status_name(p->status) : "");
        return -ENOENT;
    }
    rc = issued_load(pki->dir, p->serial, &old);
    if (rc == -ENOENT) {
        snprintf(err, errlen,
                 "reissue %s: no copy of its certificate (serial %s) in %s/issued: it was "
                 "issued before mtlsgw kept them; have the device renew (mtlsgw renew) or "
                 "enroll it again from a CSR",
                 name, p->serial, pki->dir);
        return rc;
    }
    if (rc < 0) {
        snprintf(err, errlen, "reissue %s: cannot read %s/issued/%s.crt: %s", name, pki->dir,
                 p->serial, strerror(-rc));
        return rc;
    }
    if (gnutls_pubkey_init(key) < 0) {
        rc = -ENOMEM;
    } else if (gnutls_pubkey_import_x509(*key, old, 0) < 0) {
        gnutls_pubkey_deinit(*key);
        *key = NULL;
        snprintf(err, errlen, "reissue %s: the stored certificate's key cannot be read", name);
        rc = -EBADMSG;
    }
    gnutls_x509_crt_deinit(old);
    *peer = p;
    return rc;
}

int pki_reissue(struct pki *pki, const struct pki_reissue_req *req, gnutls_x509_crt_t *out,
                char *err, size_t errlen)
{
    struct txn t;
    gnutls_x509_crt_t crt = NULL;
    gnutls_pubkey_t key = NULL;
    const struct peer *p = NULL;
    struct peer np = {0};
    char *key_id = NULL, *name = NULL, old_serial[64] = "";
    char serial[64];
    int64_t life, now = time(NULL);
    int rc;

    rc = txn_begin(pki, false, &t, err, errlen);
    if (rc < 0)
        return rc;
    if ((rc = reissue_key(pki, t.reg, req->name, &p, &key, err, errlen)) < 0 ||
        (rc = p11_pubkey_id_hex(key, &key_id)) < 0 || (rc = pki_load_ca(pki, err, errlen)) < 0 ||
        (rc = ca_usable(pki, "reissue", err, errlen)) < 0)
        goto out;
    life = (p->not_after - p->not_before + 43200) / 86400;
    rc = issue_client(pki, "reissue", p->name, p->role, p->networks, p->n_networks,
                      req->days ? req->days
                                : life < 1 ? 1 : life > 3650 ? 3650 : (unsigned)life,
                      key, &crt, err, errlen);
    if (rc < 0)
        goto out;
    verify_serial_hex(crt, serial, sizeof(serial));
    snprintf(old_serial, sizeof(old_serial), "%s", p->serial);
    name = strdup(p->name);
    if (!name) {
        rc = -ENOMEM;
        goto out;
    }
    successor(p, name, serial, key_id, crt, now, &np);
    /* With an overlap the old serial is superseded from then on: the
     * handshake (verify.c) and the CRL (crl_write) take it until then. */
    rc = registry_revoke(t.reg, name, PEER_SUPERSEDED, "superseded", now + req->overlap);
    if (rc == 0)
        rc = registry_add(t.reg, &np);
    if (rc < 0) {
        snprintf(err, errlen, "reissue %s: %s", name,
                 rc == -EEXIST ? "serial collision; try again" : strerror(-rc));
        goto out;
    }
    if (req->before_commit && (rc = req->before_commit(req->ctx, crt, err, errlen)) < 0)
        goto out;
    rc = keep_issued(pki, crt, err, errlen);
    if (rc == 0)
        rc = txn_commit(&t, true, err, errlen);
    if (rc < 0)
        goto out;
    {
        struct json_object *f = registry_peer_json(&np, now);
        char when[32];
        if (f) {
            json_object_object_del(f, "days_left");
            json_object_object_add(f, "old_serial", json_object_new_string(old_serial));
            time_format_utc(now + req->overlap, when, sizeof(when));
            json_object_object_add(f, "old_refused_from", json_object_new_string(when));
            json_object_object_add(f, "actor", json_object_new_string(req->actor));
        }
        pki_audit(pki, "reissue", f);
    }
    if (out) {
        *out = crt;
        crt = NULL;
    }
out:
    if (crt)
        gnutls_x509_crt_deinit(crt);
    if (key)
        gnutls_pubkey_deinit(key);
    free(name);
    free(key_id);
    txn_end(&t);
    return rc;
}
