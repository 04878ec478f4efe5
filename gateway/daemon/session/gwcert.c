/*
 * gwcert.c: the gateway certificate in the running daemon (gwcert.h).
 *
 * A renewal (mtlsgw gateway renew, or ours at two thirds of the lifetime)
 * writes gateway.crt atomically; each listener then gets new credentials
 * for its next handshakes while open sessions keep theirs (tls.h), so
 * nothing is dropped: not a management session, not a tunnel.
 */
#include "gwcert.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <json-c/json.h>

#include "config.h"
#include "est-client.h"
#include "daemon.h"
#include "log.h"
#include "mono.h"
#include "p11.h"
#include "pki-gateway.h"
#include "pki.h"
#include "registry.h"
#include "tls.h"

/* After a failed automatic renewal, the next try (a token away, a full disk). */
#define RETRY_AFTER (60 * 60)

const char *gwcert_path(const struct daemon *d)
{
    return d->cfg->mgmt.cert ? d->cfg->mgmt.cert : d->pki->gw_path;
}

int gwcert_key_load(struct daemon *d, gnutls_privkey_t *key, char *err, size_t errlen)
{
    gnutls_x509_crt_t crt = NULL;
    char label[PKI_GATEWAY_LABEL_MAX];
    int rc = pki_open_token(d->pki, err, errlen);

    if (rc < 0)
        return rc;
    snprintf(label, sizeof(label), "%s", d->cfg->mgmt.key);
    /* gateway.crt may go with the "-next" key after a renewal with a new
     * key; a certificate of the administrator's ([management] cert) goes
     * with the configured key. */
    if (!d->cfg->mgmt.cert && pki_read_cert(d->pki->gw_path, &crt, err, errlen) == 0) {
        rc = pki_gateway_key_label(d->pki, crt, label, sizeof(label), err, errlen);
        gnutls_x509_crt_deinit(crt);
        if (rc < 0)
            return rc;
    }
    rc = p11_key_load(d->pki->tok, label, key);
    if (rc < 0)
        snprintf(err, errlen, "token %s: server key '%s' not usable: %s (run 'mtlsgw init'?)",
                 d->cfg->token.uri, label, p11_token_error(d->pki->tok));
    return rc;
}

/* "serial S, names a, b, valid until T" of the certificate at path. */
static int describe(const char *path, char *serial, size_t slen, char *buf, size_t len,
                    char *err, size_t errlen)
{
    gnutls_x509_crt_t crt = NULL;
    char **hosts = NULL, when[32];
    size_t n = 0, off;
    int rc = pki_read_cert(path, &crt, err, errlen);

    if (rc < 0)
        return rc;
    verify_serial_hex(crt, serial, slen);
    time_format_utc(gnutls_x509_crt_get_expiration_time(crt), when, sizeof(when));
    off = (size_t)snprintf(buf, len, "serial %s, valid until %s, names", serial, when);
    if (pki_cert_hosts(crt, &hosts, &n) == 0) {
        for (size_t i = 0; i < n && off < len; i++)
            off += (size_t)snprintf(buf + off, len - off, "%s%s", i ? ", " : " ", hosts[i]);
        pki_hosts_free(hosts, n);
    }
    gnutls_x509_crt_deinit(crt);
    return 0;
}

int gwcert_reload(struct daemon *d, char *serial, size_t slen, char *err, size_t errlen)
{
    struct listener *ls[] = {&d->mgmt, &d->tunl, &d->estl};
    char what[512] = "", sn[64] = "", names[96] = "";
    int rc = 0, done = 0;

    pthread_mutex_lock(&d->pki_lock);
    /* Held off: handshakes starting (tls_session_new) and token use. */
    pthread_rwlock_wrlock(&d->token_lock);
    rc = describe(gwcert_path(d), sn, sizeof(sn), what, sizeof(what), err, errlen);
    for (size_t i = 0; rc == 0 && i < sizeof(ls) / sizeof(ls[0]); i++) {
        gnutls_privkey_t key = NULL;
        if (!ls[i]->tls)
            continue;
        rc = gwcert_key_load(d, &key, err, errlen);
        if (rc == 0)
            rc = tls_server_set_cert(ls[i]->tls, gwcert_path(d), key, err, errlen);
        if (rc == 0) {
            snprintf(names + strlen(names), sizeof(names) - strlen(names), "%s%s",
                     done ? ", " : "", ls[i]->name);
            done++;
        }
    }
    pthread_rwlock_unlock(&d->token_lock);
    pthread_mutex_unlock(&d->pki_lock);
    if (rc < 0) {
        log_err("gateway certificate %s: not taken, the listeners keep the previous one: %s",
                gwcert_path(d), err);
        return rc;
    }
    d->warned_days[1] = 0; /* expiry warnings start again for this one */
    if (done)
        log_info("gateway certificate %s (%s) served to new handshakes on %s; open sessions "
                 "keep theirs",
                 gwcert_path(d), what, names);
    if (serial)
        snprintf(serial, slen, "%s", sn);
    return 0;
}

struct reload_job {
    struct job job;
    struct daemon *d;
};

static void reload_run(struct job *job)
{
    struct reload_job *j = (struct reload_job *)job;
    char err[512] = "";

    gwcert_reload(j->d, NULL, 0, err, sizeof(err)); /* logs either way */
    free(j);
}

void gwcert_reload_later(struct daemon *d)
{
    struct reload_job *j = calloc(1, sizeof(*j));

    if (!j) {
        log_err("gateway certificate: not taken again: out of memory");
        return;
    }
    j->job.run = reload_run;
    j->d = d;
    workers_submit(d->slow, &j->job);
}

/* ---- automatic renewal ------------------------------------------------------ */

struct renew_job {
    struct job job;
    struct daemon *d;
};

static atomic_bool renewing;
static time_t last_failure;

static void renew_run(struct job *job)
{
    struct renew_job *j = (struct renew_job *)job;
    struct daemon *d = j->d;
    struct pki_gateway_renew o = {.actor = "mtlsgwd auto-renew"};
    struct pki_gateway_result res;
    char err[768] = "";
    int rc;

    pthread_mutex_lock(&d->pki_lock);
    pthread_rwlock_rdlock(&d->token_lock);
    rc = pki_gateway_renew(d->pki, &o, &res, err, sizeof(err));
    pthread_rwlock_unlock(&d->token_lock);
    pthread_mutex_unlock(&d->pki_lock);
    if (rc < 0) {
        last_failure = time(NULL);
        log_err("gateway certificate %s: automatic renewal failed, next try in an hour "
                "(mtlsgw gateway renew does it by hand): %s",
                d->pki->gw_path, err);
    } else {
        log_info("gateway certificate %s renewed at two thirds of its lifetime ([pki] "
                 "auto-renew): serial %s, was %s",
                 d->pki->gw_path, res.serial, res.old_serial);
        gwcert_reload(d, NULL, 0, err, sizeof(err));
    }
    free(j);
    atomic_store(&renewing, false);
}

/* Two thirds of the lifetime gone (as uplinks renew theirs, docs/est.md). */
static bool renew_due(const struct daemon *d, time_t now)
{
    gnutls_x509_crt_t crt = NULL;
    char err[256];
    time_t nb, na;

    if (pki_read_cert(d->pki->gw_path, &crt, err, sizeof(err)) < 0)
        return false;
    nb = gnutls_x509_crt_get_activation_time(crt);
    na = gnutls_x509_crt_get_expiration_time(crt);
    gnutls_x509_crt_deinit(crt);
    return nb != (time_t)-1 && na != (time_t)-1 && na > nb && now >= nb + (na - nb) / 3 * 2;
}

void gwcert_tick(struct daemon *d)
{
    struct renew_job *j;
    time_t now = time(NULL);

    /* Only the pki dir's own certificate, only where this daemon has a CA. */
    if (!d->cfg->pki.auto_renew || d->cfg->mgmt.cert || !d->trust ||
        (last_failure && now - last_failure < RETRY_AFTER) || !renew_due(d, now))
        return;
    if (atomic_exchange(&renewing, true))
        return;
    j = calloc(1, sizeof(*j));
    if (!j) {
        atomic_store(&renewing, false);
        return;
    }
    j->job.run = renew_run;
    j->d = d;
    workers_submit(d->slow, &j->job);
}

/* ---- uplinks: our own certificates ---------------------------------------------- */

/* Days left on the first certificate in path; -1 when it cannot be read. */
static long long file_days_left(const char *path, time_t now)
{
    gnutls_x509_crt_t crt = NULL;
    char err[256];
    long long left;

    if (pki_read_cert(path, &crt, err, sizeof(err)) < 0)
        return -1;
    left = days_until(gnutls_x509_crt_get_expiration_time(crt), now);
    gnutls_x509_crt_deinit(crt);
    return left;
}

static void uplink_days(const struct config *cfg, unsigned i, time_t now, long long *cert,
                        long long *ca)
{
    char *cp = NULL, *ap = NULL;

    *cert = *ca = -1;
    if (est_uplink_paths(cfg, &cfg->uplinks[i], &cp, &ap) < 0)
        return;
    *cert = file_days_left(cp, now);
    *ca = file_days_left(ap, now);
    free(cp);
    free(ap);
}

struct json_object *gwcert_uplinks_json(struct daemon *d, time_t now)
{
    struct json_object *arr = json_object_new_array();

    for (unsigned i = 0; arr && i < d->cfg->n_uplinks; i++) {
        struct json_object *o = json_object_new_object();
        long long cert, ca;
        if (!o)
            break;
        uplink_days(d->cfg, i, now, &cert, &ca);
        json_object_object_add(o, "name", json_object_new_string(d->cfg->uplinks[i].name));
        json_object_object_add(o, "server", json_object_new_string(d->cfg->uplinks[i].servers[0]));
        json_object_object_add(o, "certificate", json_object_new_int64(cert));
        json_object_object_add(o, "hub_ca", json_object_new_int64(ca));
        json_object_array_add(arr, o);
    }
    return arr;
}

char *gwcert_uplinks_metrics(struct daemon *d, time_t now)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);

    if (!f)
        return NULL;
    for (unsigned i = 0; i < d->cfg->n_uplinks; i++) {
        long long cert, ca;
        uplink_days(d->cfg, i, now, &cert, &ca);
        fprintf(f, "mtlsgw_cert_days_left{cert=\"uplink:%s\"} %lld\n"
                   "mtlsgw_cert_days_left{cert=\"uplink-ca:%s\"} %lld\n",
                d->cfg->uplinks[i].name, cert, d->cfg->uplinks[i].name, ca);
    }
    fclose(f);
    return buf;
}
