/*
 * roam.c: the parent's check of a roaming tunnel peer (roam.h).
 */
#include "roam.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

#include "config.h"
#include "fsutil.h"
#include "privsep.h"
#include "registry.h"
#include "trustdb.h"
#include "verify.h"

/* As trust-fetch.c's FETCH_MAX: a bigger CRL would stall this loop in
 * GnuTLS's quadratic import; it is refused and its issuer is stale. */
#define ROAM_CRL_MAX (2u * 1024 * 1024)

struct roam_issuer {
    const struct cfg_trust *cfg;
    gnutls_x509_crt_t ca;     /* read from root's [trust NAME] ca = FILE */
    gnutls_x509_crl_t crl;    /* as last parsed, and the stat() taken before */
    struct stat crl_st;
    struct verify_crl_num max_number; /* the highest cRLNumber seen: never go back */
};

struct roam {
    const struct config *cfg;
    struct roam_issuer *is;
    size_t n;
};

int roam_new(const struct config *cfg, struct roam **out)
{
    struct roam *r = calloc(1, sizeof(*r));

    if (!r || (cfg->n_trusts && !(r->is = calloc(cfg->n_trusts, sizeof(*r->is))))) {
        free(r);
        return -ENOMEM;
    }
    r->cfg = cfg;
    r->n = cfg->n_trusts;
    for (size_t i = 0; i < r->n; i++)
        r->is[i].cfg = &cfg->trusts[i];
    *out = r;
    return 0;
}

void roam_free(struct roam *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->n; i++) {
        if (r->is[i].ca)
            gnutls_x509_crt_deinit(r->is[i].ca);
        if (r->is[i].crl)
            gnutls_x509_crl_deinit(r->is[i].crl);
    }
    free(r->is);
    free(r);
}

/* regular: a file the session process writes (fs_read_regular: no FIFO to
 * block this loop, no symlink to read another file through). */
static int read_file(const char *path, size_t max, gnutls_datum_t *d, bool regular)
{
    char *buf = NULL;
    size_t len = 0;
    int rc = regular ? fs_read_regular(path, max, &buf, &len)
                     : fs_read_file(path, max, &buf, &len);

    if (rc < 0)
        return rc;
    d->data = (unsigned char *)buf;
    d->size = (unsigned)len;
    return 0;
}

/* The issuer's CA, read once from the file root's config names. */
static int issuer_ca(struct roam_issuer *is, char *err, size_t errlen)
{
    gnutls_datum_t d = {0};
    int rc;

    if (is->ca)
        return 0;
    if ((rc = read_file(is->cfg->ca, 1024 * 1024, &d, false)) < 0) {
        snprintf(err, errlen, "[trust %s] ca = %s: %s", is->cfg->name, is->cfg->ca,
                 strerror(-rc));
        return -EPERM;
    }
    rc = gnutls_x509_crt_init(&is->ca);
    if (rc == 0 && gnutls_x509_crt_import(is->ca, &d, GNUTLS_X509_FMT_PEM) < 0 &&
        gnutls_x509_crt_import(is->ca, &d, GNUTLS_X509_FMT_DER) < 0)
        rc = -1;
    free(d.data);
    if (rc < 0) {
        if (is->ca)
            gnutls_x509_crt_deinit(is->ca);
        is->ca = NULL;
        snprintf(err, errlen, "[trust %s] ca = %s is not a certificate", is->cfg->name,
                 is->cfg->ca);
        return -EPERM;
    }
    return 0;
}

static bool same_file(const struct stat *a, const struct stat *b)
{
    return a->st_dev == b->st_dev && a->st_ino == b->st_ino && a->st_size == b->st_size &&
           a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec;
}

/*
 * The issuer's CRL as the session process keeps it, taken only when signed
 * by the issuer's CA, not older (cRLNumber) than one taken before, and
 * fresh by its own signed times (verify_crl_fresh: thisUpdate within
 * max-stale, nextUpdate ahead), never by the file's mtime: a compromised
 * session process can withhold a newer CRL, but only until the one it
 * holds back was signed max-stale ago.
 */
static int issuer_crl(const struct config *cfg, struct roam_issuer *is, char *err,
                      size_t errlen)
{
    char path[4096];
    gnutls_x509_crl_t crl = NULL;
    gnutls_datum_t d = {0};
    unsigned status = 1;
    struct verify_crl_num number;
    time_t now = time(NULL);
    char why[256];
    struct stat st;
    int rc = -EPERM;

    trustdb_issuer_crl_path(cfg->pki.dir, is->cfg->name, path, sizeof(path));
    if (stat(path, &st) < 0) {
        snprintf(err, errlen, "issuer %s: no CRL fetched yet (%s)", is->cfg->name, path);
        return -EPERM;
    }
    if (!(is->crl && same_file(&st, &is->crl_st))) {
        int rd = read_file(path, ROAM_CRL_MAX, &d, true);
        if (rd == -EFBIG) {
            snprintf(err, errlen, "issuer %s: %s is larger than %u bytes: refused (stale)",
                     is->cfg->name, path, ROAM_CRL_MAX);
            goto out;
        }
        if (rd == -EPERM) {
            snprintf(err, errlen, "issuer %s: %s is not a regular file: refused (stale)",
                     is->cfg->name, path);
            goto out;
        }
        if (rd < 0)
            goto bad;
        /* The signature over the raw DER first (verify_crl_precheck): an
         * unsigned blob never reaches GnuTLS's quadratic import, which
         * would stall this loop, and every tunnel with it. */
        rd = verify_crl_precheck(d.data, d.size, is->ca);
        if (rd == -EPERM || rd == -EFBIG || rd == -ENOTSUP) {
            snprintf(err, errlen, "issuer %s: the CRL in %s is %s", is->cfg->name, path,
                     rd == -EPERM    ? "not signed by its CA"
                     : rd == -EFBIG ? "too big to import unchecked"
                                    : "signed with an algorithm GnuTLS does not know");
            goto out;
        }
        if (rd < 0 || gnutls_x509_crl_init(&crl) < 0)
            goto bad;
        if (verify_crl_import(crl, d.data, d.size) < 0)
            goto bad;
        /* The times are checked below, with messages of their own (GnuTLS
         * flags a lapsed nextUpdate as INVALID | SUPERSEDED). */
        if (gnutls_x509_crl_verify(crl, &is->ca, 1, GNUTLS_VERIFY_DISABLE_TIME_CHECKS,
                                   &status) < 0 ||
            (status & ~(unsigned)(GNUTLS_CERT_INVALID | GNUTLS_CERT_REVOCATION_DATA_SUPERSEDED |
                                  GNUTLS_CERT_REVOCATION_DATA_ISSUED_IN_FUTURE)) != 0 ||
            ((status & GNUTLS_CERT_INVALID) &&
             !(status & (GNUTLS_CERT_REVOCATION_DATA_SUPERSEDED |
                         GNUTLS_CERT_REVOCATION_DATA_ISSUED_IN_FUTURE)))) {
            snprintf(err, errlen, "issuer %s: the CRL in %s is not signed by %s",
                     is->cfg->name, path, is->cfg->ca);
            goto out;
        }
        verify_crl_num(crl, &number);
        if (verify_crl_num_cmp(&number, &is->max_number) < 0) {
            snprintf(err, errlen, "issuer %s: CRL number %llu%s is older than one seen",
                     is->cfg->name, (unsigned long long)verify_crl_number(crl),
                     number.len > 8 ? "..." : "");
            goto out;
        }
        is->max_number = number;
        if (is->crl)
            gnutls_x509_crl_deinit(is->crl);
        is->crl = crl;
        is->crl_st = st;
        crl = NULL;
    }
    if (!verify_crl_fresh(gnutls_x509_crl_get_this_update(is->crl),
                          gnutls_x509_crl_get_next_update(is->crl), is->cfg->max_stale, now,
                          why, sizeof(why))) {
        snprintf(err, errlen, "issuer %s: %s", is->cfg->name, why);
        goto out;
    }
    rc = 0;
    goto out;
bad:
    snprintf(err, errlen, "issuer %s: %s is not a CRL that can be read", is->cfg->name, path);
out:
    free(d.data);
    if (crl)
        gnutls_x509_crl_deinit(crl);
    return rc;
}

/* The certificate: signed by the issuer's CA, valid now, tunnel role, the
 * name the request gives, not in the CRL nor revoked in our registry. */
static int check_cert(struct roam_issuer *is, const struct ps_tun_up *u, gnutls_x509_crt_t crt,
                      const struct registry *reg, char *err, size_t errlen)
{
    char cn[64] = "", serial[64];
    size_t cl = sizeof(cn);
    unsigned status = 1;
    const struct peer *p;

    if (gnutls_x509_crt_verify(crt, &is->ca, 1, 0, &status) < 0 || status != 0) {
        snprintf(err, errlen, "roaming peer %s: its certificate is not signed by [trust %s] "
                 "ca or not valid now", u->peer_name, is->cfg->name);
        return -EPERM;
    }
    if (verify_cert_role(crt) != ROLE_TUNNEL || !(is->cfg->roles & CFG_ROLE(ROLE_TUNNEL))) {
        snprintf(err, errlen, "roaming peer %s: not a tunnel peer [trust %s] admits",
                 u->peer_name, is->cfg->name);
        return -EPERM;
    }
    if (gnutls_x509_crt_get_dn_by_oid(crt, GNUTLS_OID_X520_COMMON_NAME, 0, 0, cn, &cl) < 0 ||
        strcmp(cn, u->peer_name) != 0) {
        snprintf(err, errlen, "roaming peer %s: its certificate names '%s'", u->peer_name, cn);
        return -EPERM;
    }
    if (gnutls_x509_crt_check_revocation(crt, &is->crl, 1) != 0) {
        snprintf(err, errlen, "roaming peer %s: revoked by issuer %s's CRL", u->peer_name,
                 is->cfg->name);
        return -EPERM;
    }
    verify_serial_hex(crt, serial, sizeof(serial));
    p = reg ? registry_find_serial(reg, serial) : NULL;
    if (p && (p->status != PEER_ACTIVE || p->role != ROLE_TUNNEL)) {
        snprintf(err, errlen, "roaming peer %s: serial %s is not an active tunnel peer in our "
                 "registry", u->peer_name, serial);
        return -EPERM;
    }
    return 0;
}

int roam_check(struct roam *r, const struct ps_tun_up *u, const struct registry *reg,
               char *err, size_t errlen)
{
    struct roam_issuer *is = NULL;
    gnutls_x509_crt_t crt = NULL;
    gnutls_datum_t d = {(unsigned char *)u->cert, u->cert_len};
    char nets[PS_MAX_PREFIXES][64];
    char *netp[PS_MAX_PREFIXES];
    size_t nn;
    int rc;

    if (!memchr(u->trust, '\0', sizeof(u->trust)) || u->cert_len == 0 ||
        u->cert_len > PS_CERT_MAX) {
        snprintf(err, errlen, "malformed roaming request");
        return -EINVAL;
    }
    for (size_t i = 0; i < r->n && !is; i++)
        if (strcmp(r->is[i].cfg->name, u->trust) == 0)
            is = &r->is[i];
    if (!is) {
        snprintf(err, errlen, "no [trust %s] in the config", u->trust);
        return -EPERM;
    }
    if ((rc = issuer_ca(is, err, errlen)) < 0 || (rc = issuer_crl(r->cfg, is, err, errlen)) < 0)
        return rc;
    if (gnutls_x509_crt_init(&crt) < 0)
        return -ENOMEM;
    if (gnutls_x509_crt_import(crt, &d, GNUTLS_X509_FMT_DER) < 0) {
        snprintf(err, errlen, "roaming peer %s: its certificate is not DER", u->peer_name);
        rc = -EINVAL;
        goto out;
    }
    if ((rc = check_cert(is, u, crt, reg, err, errlen)) < 0)
        goto out;
    /* Every route: a network the issuer put in the certificate, inside
     * root's [trust NAME] networks (none: no route at all). */
    nn = verify_cert_networks(crt, nets, PS_MAX_PREFIXES);
    for (size_t i = 0; i < nn; i++)
        netp[i] = nets[i];
    for (uint32_t i = 0; i < u->n_routes && rc == 0; i++) {
        if (!config_prefix_inside(is->cfg->networks, is->cfg->n_networks, u->routes[i])) {
            snprintf(err, errlen, "route %s of roaming peer %s is outside [trust %s] networks",
                     u->routes[i], u->peer_name, is->cfg->name);
            rc = -EPERM;
        } else if (!config_prefix_inside(netp, (unsigned)nn, u->routes[i])) {
            snprintf(err, errlen, "route %s is not a network in roaming peer %s's certificate",
                     u->routes[i], u->peer_name);
            rc = -EPERM;
        }
    }
out:
    gnutls_x509_crt_deinit(crt);
    return rc;
}
