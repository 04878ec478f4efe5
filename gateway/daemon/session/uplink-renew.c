#include "uplink-renew.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <gnutls/crypto.h>
#include <gnutls/x509.h>

#include "config.h"
#include "daemon.h"
#include "est-client.h"
#include "log.h"
#include "pki.h"
#include "registry.h"
#include "verify.h"

/* How often the certificate file is looked at for a change made elsewhere. */
#define CHECK_S 5
/* Failed renewals are tried again after 1 min, doubling to 1 h. */
#define RETRY_MIN_S 60
#define RETRY_MAX_S 3600

struct renewer {
    struct daemon *d;
    const struct cfg_uplink *uc;
    unsigned index;
    int stop_fd;
    pthread_t thread;
    char *cert_path, *ca_path;
    struct stat seen; /* the certificate file as last loaded */
    bool have_cert;
    char serial[64];
    int64_t nb, na, due;
    unsigned fails;
    unsigned seed;
    renewer_reload_fn reload; /* the uplink's: load the new certificate */
};

static uint32_t draw(struct renewer *r)
{
    uint32_t v = 0;

    if (gnutls_rnd(GNUTLS_RND_NONCE, &v, sizeof(v)) < 0)
        v = (uint32_t)rand_r(&r->seed);
    return v;
}

static bool same_file(const struct stat *a, const struct stat *b)
{
    return a->st_ino == b->st_ino && a->st_dev == b->st_dev && a->st_size == b->st_size &&
           a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec;
}

/* Read the certificate file; false (logged once by the caller) when it
 * cannot be read. */
static bool load(struct renewer *r, struct stat *st, char *err, size_t errlen)
{
    gnutls_x509_crt_t crt = NULL;

    if (stat(r->cert_path, st) < 0) {
        snprintf(err, errlen, "%s: %s", r->cert_path, strerror(errno));
        return false;
    }
    if (pki_read_cert(r->cert_path, &crt, err, errlen) < 0)
        return false;
    verify_serial_hex(crt, r->serial, sizeof(r->serial));
    r->nb = gnutls_x509_crt_get_activation_time(crt);
    r->na = gnutls_x509_crt_get_expiration_time(crt);
    gnutls_x509_crt_deinit(crt);
    r->seen = *st;
    r->have_cert = true;
    return true;
}

static void schedule(struct renewer *r, int64_t now)
{
    char when[32];

    r->due = est_renew_due(r->nb, r->na, draw(r));
    /* Already past two thirds (a device that was off, a short certificate):
     * soon, with a few seconds of jitter. */
    if (r->due < now)
        r->due = now + (int64_t)(draw(r) % 5);
    r->fails = 0;
    time_format_utc(r->due, when, sizeof(when));
    log_debug("uplink %s: certificate serial %s renews at %s", r->uc->name, r->serial, when);
}

static void attempt(struct renewer *r, int64_t now)
{
    struct daemon *d = r->d;
    char err[768] = "", err2[512] = "", old[64], until[32];
    struct stat st;
    unsigned delay;
    int rc;

    time_format_utc(r->na, until, sizeof(until));
    if (!r->uc->enroll) {
        log_warn("uplink %s: certificate serial %s (valid until %s) is two thirds through its "
                 "life and [uplink %s] has no enroll URL to renew it; enroll it again or add "
                 "enroll = https://HUB:PORT",
                 r->uc->name, r->serial, until, r->uc->name);
        r->due = now + 86400;
        return;
    }
    log_info("uplink %s: renewing certificate serial %s (valid until %s) at %s", r->uc->name,
             r->serial, until, r->uc->enroll);
    /* The device key signs the CSR and the handshake: the token must stay
     * put (a recovery waits for the read side). The wait for the hub is
     * bounded by the client's 30 s timeout. */
    pthread_rwlock_rdlock(&d->token_lock);
    rc = est_renew_uplink(d->cfg, d->pki->tok, r->uc, err, sizeof(err));
    pthread_rwlock_unlock(&d->token_lock);
    if (rc < 0) {
        unsigned shift = r->fails < 6 ? r->fails : 6;
        r->fails++;
        delay = RETRY_MIN_S << shift;
        if (delay > RETRY_MAX_S)
            delay = RETRY_MAX_S;
        /* +-20 %, so devices that failed together do not return together. */
        delay = delay * 4 / 5 + draw(r) % (delay * 2 / 5 + 1);
        log_err("uplink %s: renewal failed: %s; trying again in %u s", r->uc->name, err, delay);
        r->due = now + delay;
        return;
    }
    snprintf(old, sizeof(old), "%s", r->serial);
    if (!load(r, &st, err, sizeof(err))) {
        log_err("uplink %s: renewed, but the new certificate cannot be read: %s", r->uc->name,
                err);
        r->due = now + RETRY_MIN_S;
        return;
    }
    time_format_utc(r->na, until, sizeof(until));
    if (r->reload(d, r->index, err2, sizeof(err2)) < 0)
        log_err("uplink %s: renewed to serial %s, but it cannot be loaded: %s", r->uc->name,
                r->serial, err2);
    else
        log_info("uplink %s: renewed: serial %s replaces %s, valid until %s; used from the next "
                 "connection, the open tunnel stays up",
                 r->uc->name, r->serial, old, until);
    schedule(r, now);
}

/* Someone else replaced the file (mtlsgw renew, an administrator). */
static void changed(struct renewer *r, int64_t now)
{
    char err[512] = "", old[64], until[32];
    struct stat st;

    snprintf(old, sizeof(old), "%s", r->have_cert ? r->serial : "");
    if (!load(r, &st, err, sizeof(err))) {
        /* Half-written files do not happen (they are renamed into place);
         * this is a file removed or broken: keep what is loaded. */
        if (stat(r->cert_path, &st) == 0)
            r->seen = st;
        log_err("uplink %s: %s", r->uc->name, err);
        return;
    }
    if (strcmp(old, r->serial) != 0) {
        time_format_utc(r->na, until, sizeof(until));
        if (r->reload(r->d, r->index, err, sizeof(err)) < 0)
            log_err("uplink %s: %s now holds serial %s, but it cannot be loaded: %s",
                    r->uc->name, r->cert_path, r->serial, err);
        else
            log_info("uplink %s: %s now holds serial %s (valid until %s); used from the next "
                     "connection, the open tunnel stays up",
                     r->uc->name, r->cert_path, r->serial, until);
    }
    schedule(r, now);
}

static void *renewer_main(void *arg)
{
    struct renewer *r = arg;
    struct stat st;
    char err[512] = "";

    if (load(r, &st, err, sizeof(err)))
        schedule(r, (int64_t)time(NULL));
    else
        log_warn("uplink %s: %s: not renewed until it can be read", r->uc->name, err);
    while (!r->d->stopping) {
        int64_t now = (int64_t)time(NULL), wait;
        struct pollfd p = {.fd = r->stop_fd, .events = POLLIN};

        if (stat(r->cert_path, &st) == 0 && (!r->have_cert || !same_file(&st, &r->seen)))
            changed(r, now);
        if (r->have_cert && now >= r->due)
            attempt(r, now);
        now = (int64_t)time(NULL);
        wait = r->have_cert && r->due > now ? r->due - now : CHECK_S;
        if (wait > CHECK_S)
            wait = CHECK_S;
        if (wait < 1)
            wait = 1;
        if (poll(&p, 1, (int)wait * 1000) != 0)
            break;
    }
    return NULL;
}

int renewer_start(struct daemon *d, unsigned index, const struct cfg_uplink *uc, int stop_fd,
                  renewer_reload_fn reload, struct renewer **out)
{
    struct renewer *r = calloc(1, sizeof(*r));
    pthread_attr_t attr;
    sigset_t all, old;
    int rc;

    if (!r)
        return -ENOMEM;
    r->d = d;
    r->uc = uc;
    r->index = index;
    r->reload = reload;
    r->stop_fd = stop_fd;
    r->seed = (unsigned)time(NULL) ^ index;
    rc = est_uplink_paths(d->cfg, uc, &r->cert_path, &r->ca_path);
    if (rc < 0) {
        free(r);
        return rc;
    }
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, UPLINK_STACK);
    rc = -pthread_create(&r->thread, &attr, renewer_main, r);
    pthread_attr_destroy(&attr);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc < 0) {
        free(r->cert_path);
        free(r->ca_path);
        free(r);
        return rc;
    }
    *out = r;
    return 0;
}

void renewer_free(struct renewer *r)
{
    if (!r)
        return;
    pthread_join(r->thread, NULL);
    free(r->cert_path);
    free(r->ca_path);
    free(r);
}
