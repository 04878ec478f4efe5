/*
 * api.c: the management API's routes (docs/mtlsgwd.md). monitor reads,
 * admin writes; the caller's role was fixed during the handshake.
 */
#include "daemon.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "bans.h"
#include "cidr.h"
#include "config.h"
#include "http.h"
#include "log.h"
#include "mono.h"
#include "p11.h"
#include "pki.h"
#include "registry.h"
#include "sessions.h"
#include "trustdb.h"
#include "web.h"

#define API "/api/v1"
#define MAX_NETWORKS 64

static void reply_json(struct api_reply *r, int status, struct json_object *o)
{
    const char *s = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN |
                                                          JSON_C_TO_STRING_NOSLASHESCAPE);
    size_t n = strlen(s);

    r->status = status;
    r->content_type = "application/json";
    r->body = malloc(n + 2);
    if (r->body) {
        memcpy(r->body, s, n);
        r->body[n] = '\n';
        r->body[n + 1] = '\0';
        r->body_len = n + 1;
    }
    json_object_put(o);
}

static void reply_error(struct api_reply *r, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void reply_error(struct api_reply *r, int status, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    struct json_object *o = json_object_new_object();

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    json_object_object_add(o, "error", json_object_new_string(msg));
    reply_json(r, status, o);
}

/* "/api/v1/peers/NAME[/rest]": NAME into buf; *rest points after it. */
static bool path_segment(const char *path, const char *prefix, char *buf, size_t len,
                         const char **rest)
{
    size_t pl = strlen(prefix);
    const char *s, *e;

    if (strncmp(path, prefix, pl) != 0 || path[pl] != '/')
        return false;
    s = path + pl + 1;
    e = strchr(s, '/');
    if (!e)
        e = s + strlen(s);
    if (e == s || (size_t)(e - s) >= len)
        return false;
    memcpy(buf, s, (size_t)(e - s));
    buf[e - s] = '\0';
    *rest = e;
    return true;
}

bool api_is_slow(const struct http_request *req)
{
    char name[128];
    const char *rest;

    if (req->method != HTTP_M_POST)
        return false;
    return strcmp(req->path, API "/peers") == 0 ||
           (path_segment(req->path, API "/peers", name, sizeof(name), &rest) &&
            strcmp(rest, "/revoke") == 0);
}

static struct json_object *peer_json(struct daemon *d, const struct peer *p)
{
    struct json_object *o = registry_peer_json(p, time(NULL));

    if (o) {
        json_object_object_del(o, "key_id");
        json_object_object_add(o, "online", json_object_new_boolean(
                                                p->status == PEER_ACTIVE && daemon_peer_online(d, p->name)));
    }
    return o;
}

static void get_peers(struct daemon *d, struct api_reply *r)
{
    struct trustdb *t = daemon_trust(d);
    const struct registry *reg = trustdb_registry(t);
    struct json_object *arr = json_object_new_array();

    for (size_t i = 0; i < registry_count(reg); i++)
        json_object_array_add(arr, peer_json(d, registry_at(reg, i)));
    trustdb_unref(t);
    reply_json(r, 200, arr);
}

static void get_peer(struct daemon *d, const char *name, struct api_reply *r)
{
    struct trustdb *t = daemon_trust(d);
    const struct peer *p = registry_find_name(trustdb_registry(t), name);

    if (p)
        reply_json(r, 200, peer_json(d, p));
    else
        reply_error(r, 404, "no peer named '%s'", name);
    trustdb_unref(t);
}

static int enroll_status(int rc)
{
    switch (rc) {
    case -EEXIST:
        return 409;
    case -EINVAL:
    case -EBADMSG:
        return 400;
    default:
        return 500;
    }
}

/* Finish an admin change: the running trust follows the files at once.
 * Returns how many sessions that ended (0 when the reload failed). */
static int reload(struct daemon *d)
{
    char err[512];
    int rc = daemon_reload_trust(d, err, sizeof(err));

    if (rc < 0)
        log_err("reload after an API change failed: %s", err);
    return rc < 0 ? 0 : rc;
}

static void post_peer(struct daemon *d, struct conn *c, const struct http_request *req,
                      struct api_reply *r)
{
    struct json_object *root = NULL, *v, *o;
    const char *name, *role_s, *csr;
    enum peer_role role;
    char *nets[MAX_NETWORKS] = {0};
    size_t n_nets = 0;
    unsigned days = d->cfg->pki.peer_days;
    gnutls_x509_crq_t crq = NULL;
    gnutls_pubkey_t pub = NULL;
    gnutls_x509_crt_t crt = NULL;
    gnutls_datum_t data, pem = {0};
    struct pki_enroll_req er = {0};
    char err[512] = "", actor[256], serial[64], when[32];
    enum json_tokener_error jerr;
    int rc;

    root = json_tokener_parse_verbose(req->body, &jerr);
    if (!root || !json_object_is_type(root, json_type_object)) {
        reply_error(r, 400, "body is not a JSON object%s%s", root ? "" : ": ",
                    root ? "" : json_tokener_error_desc(jerr));
        goto out;
    }
    if (!json_object_object_get_ex(root, "name", &v) || !json_object_is_type(v, json_type_string) ||
        !(name = json_object_get_string(v))) {
        reply_error(r, 400, "\"name\" (string) is required");
        goto out;
    }
    if (!json_object_object_get_ex(root, "role", &v) || !json_object_is_type(v, json_type_string) ||
        role_parse((role_s = json_object_get_string(v)), &role) < 0) {
        reply_error(r, 400, "\"role\" must be admin, monitor or tunnel");
        goto out;
    }
    if (!json_object_object_get_ex(root, "csr", &v) || !json_object_is_type(v, json_type_string)) {
        reply_error(r, 400, "\"csr\" (PEM string) is required");
        goto out;
    }
    csr = json_object_get_string(v);
    if (json_object_object_get_ex(root, "days", &v)) {
        int64_t dd = json_object_get_int64(v);
        if (!json_object_is_type(v, json_type_int) || dd < 1 || dd > 3650) {
            reply_error(r, 400, "\"days\" must be a whole number from 1 to 3650");
            goto out;
        }
        days = (unsigned)dd;
    }
    if (json_object_object_get_ex(root, "networks", &v)) {
        if (!json_object_is_type(v, json_type_array) ||
            json_object_array_length(v) > MAX_NETWORKS) {
            reply_error(r, 400, "\"networks\" must be an array of at most %d prefixes",
                        MAX_NETWORKS);
            goto out;
        }
        for (size_t i = 0; i < json_object_array_length(v); i++) {
            struct json_object *e = json_object_array_get_idx(v, i);
            struct cidr cidr;
            const char *why = "not a string";
            char canon[64];
            if (!json_object_is_type(e, json_type_string) ||
                cidr_parse(json_object_get_string(e), &cidr, &why) < 0) {
                reply_error(r, 400, "networks[%zu]: %s", i, why);
                goto out;
            }
            cidr_format(&cidr, canon, sizeof(canon));
            if (!(nets[n_nets++] = strdup(canon))) {
                reply_error(r, 500, "out of memory");
                goto out;
            }
        }
    }
    data.data = (unsigned char *)csr;
    data.size = (unsigned)strlen(csr);
    if (p11_csr_parse(&data, &crq, err, sizeof(err)) < 0) {
        reply_error(r, 400, "csr: %s", err);
        goto out;
    }
    if (gnutls_pubkey_init(&pub) < 0 || gnutls_pubkey_import_x509_crq(pub, crq, 0) < 0) {
        reply_error(r, 400, "csr: its public key cannot be read");
        goto out;
    }
    snprintf(actor, sizeof(actor), "api peer=%s serial=%s from=%s", c->peer, c->serial,
             c->remote);
    er.name = name;
    er.role = (int)role;
    er.key = pub;
    er.networks = nets;
    er.n_networks = n_nets;
    er.days = days;
    er.actor = actor;
    pthread_mutex_lock(&d->pki_lock);
    pthread_rwlock_rdlock(&d->token_lock);
    rc = pki_enroll(d->pki, &er, &crt, err, sizeof(err));
    pthread_rwlock_unlock(&d->token_lock);
    pthread_mutex_unlock(&d->pki_lock);
    if (rc < 0) {
        reply_error(r, enroll_status(rc), "%s", err);
        goto out;
    }
    reload(d);
    log_info("management peer %s serial %s from %s: enrolled %s as %s", c->peer, c->serial,
             c->remote, name, role_s);
    verify_serial_hex(crt, serial, sizeof(serial));
    time_format_utc(gnutls_x509_crt_get_expiration_time(crt), when, sizeof(when));
    pki_cert_pem(crt, &pem);
    o = json_object_new_object();
    json_object_object_add(o, "name", json_object_new_string(name));
    json_object_object_add(o, "role", json_object_new_string(role_s));
    json_object_object_add(o, "serial", json_object_new_string(serial));
    json_object_object_add(o, "not_after", json_object_new_string(when));
    json_object_object_add(o, "certificate",
                           json_object_new_string_len((const char *)pem.data, (int)pem.size));
    reply_json(r, 201, o);
out:
    gnutls_free(pem.data);
    for (size_t i = 0; i < n_nets; i++)
        free(nets[i]);
    if (crt)
        gnutls_x509_crt_deinit(crt);
    if (pub)
        gnutls_pubkey_deinit(pub);
    if (crq)
        gnutls_x509_crq_deinit(crq);
    json_object_put(root);
}

static void post_revoke(struct daemon *d, struct conn *c, const char *name,
                        const struct http_request *req, struct api_reply *r)
{
    struct json_object *root = NULL, *v, *o;
    const char *reason = "unspecified";
    char err[512] = "", actor[256];
    int rc, ended;

    if (req->body_len) {
        root = json_tokener_parse(req->body);
        if (!root || !json_object_is_type(root, json_type_object)) {
            reply_error(r, 400, "body is not a JSON object");
            goto out;
        }
        if (json_object_object_get_ex(root, "reason", &v))
            reason = json_object_get_string(v);
    }
    if (!reason || !pki_reason_valid(reason)) {
        reply_error(r, 400, "\"reason\" must be unspecified, keyCompromise, superseded or "
                            "cessationOfOperation");
        goto out;
    }
    snprintf(actor, sizeof(actor), "api peer=%s serial=%s from=%s", c->peer, c->serial,
             c->remote);
    pthread_mutex_lock(&d->pki_lock);
    pthread_rwlock_rdlock(&d->token_lock);
    rc = pki_revoke(d->pki, name, reason, actor, err, sizeof(err));
    pthread_rwlock_unlock(&d->token_lock);
    pthread_mutex_unlock(&d->pki_lock);
    if (rc < 0) {
        reply_error(r, rc == -ENOENT ? 404 : rc == -EALREADY ? 409 : 500, "%s", err);
        goto out;
    }
    /* Re-reading the registry ends the revoked peer's sessions at once. */
    ended = reload(d);
    log_info("management peer %s serial %s from %s: revoked %s (%s)", c->peer, c->serial,
             c->remote, name, reason);
    o = json_object_new_object();
    json_object_object_add(o, "name", json_object_new_string(name));
    json_object_object_add(o, "status", json_object_new_string("revoked"));
    json_object_object_add(o, "reason", json_object_new_string(reason));
    json_object_object_add(o, "sessions_ended", json_object_new_int(ended));
    reply_json(r, 200, o);
out:
    json_object_put(root);
}

static void delete_session(struct daemon *d, const char *id_s, struct api_reply *r)
{
    char *end;
    unsigned long long id;
    struct json_object *o;
    int rc = -ENOENT;

    id = strtoull(id_s, &end, 10);
    if (*end || !id_s[0] || (rc = daemon_kick_id(d, id)) < 0) {
        reply_error(r, 404, "no session %s", id_s);
        return;
    }
    o = json_object_new_object();
    json_object_object_add(o, "id", json_object_new_int64((int64_t)id));
    json_object_object_add(o, "closed", json_object_new_boolean(1));
    /* Closed by someone else's kill already under way (a revocation, the
     * daemon stopping): it ends all the same, but not because of this call. */
    if (rc == 0)
        json_object_object_add(o, "already_ending", json_object_new_boolean(1));
    reply_json(r, 200, o);
}

/* DELETE /api/v1/bans/ADDR: lift a ban. */
static void delete_ban(struct daemon *d, struct conn *c, const char *addr, struct api_reply *r)
{
    char canon[64] = "";
    struct json_object *o;
    int rc = bans_lift(d->bans, addr, mono_ms(), canon, sizeof(canon));

    if (rc == -EINVAL) {
        reply_error(r, 400, "'%s' is not an IPv4 or IPv6 address", addr);
        return;
    }
    if (rc < 0) {
        reply_error(r, 404, "%s is not banned", canon);
        return;
    }
    log_info("management peer %s serial %s from %s: lifted the ban of %s", c->peer, c->serial,
             c->remote, canon);
    o = json_object_new_object();
    json_object_object_add(o, "address", json_object_new_string(canon));
    json_object_object_add(o, "unbanned", json_object_new_boolean(1));
    reply_json(r, 200, o);
}

/* What a path takes: methods, and the Allow header for a 405. */
struct route {
    const char *allow_hdr;
    bool get_ok, post_ok, delete_ok;
};

void api_handle(struct daemon *d, struct conn *c, const struct http_request *req,
                struct api_reply *r)
{
    static const struct route get_only = {"Allow: GET\r\n", true, false, false};
    static const struct route get_post = {"Allow: GET, POST\r\n", true, true, false};
    static const struct route post_only = {"Allow: POST\r\n", false, true, false};
    static const struct route delete_only = {"Allow: DELETE\r\n", false, false, true};
    char peer[128], sid[32], ban[64];
    const char *prest = NULL, *srest = NULL, *brest = NULL;
    bool is_peer = path_segment(req->path, API "/peers", peer, sizeof(peer), &prest);
    bool is_session = path_segment(req->path, API "/sessions", sid, sizeof(sid), &srest);
    bool is_ban = path_segment(req->path, API "/bans", ban, sizeof(ban), &brest);
    const struct route *rt = NULL;
    enum {
        R_NONE,
        R_STATUS,
        R_PEERS,
        R_PEER,
        R_REVOKE,
        R_SESSIONS,
        R_SESSION,
        R_METRICS,
        R_BANS,
        R_BAN
    } which = R_NONE;

    /* The page, whoami, and the cross-site check of writes (web.c). */
    if (web_intercept(c, req, r))
        return;
    if (strcmp(req->path, API "/status") == 0) {
        which = R_STATUS;
        rt = &get_only;
    } else if (strcmp(req->path, API "/peers") == 0) {
        which = R_PEERS;
        rt = &get_post;
    } else if (is_peer && !*prest) {
        which = R_PEER;
        rt = &get_only;
    } else if (is_peer && strcmp(prest, "/revoke") == 0) {
        which = R_REVOKE;
        rt = &post_only;
    } else if (strcmp(req->path, API "/sessions") == 0) {
        which = R_SESSIONS;
        rt = &get_only;
    } else if (is_session && !*srest) {
        which = R_SESSION;
        rt = &delete_only;
    } else if (strcmp(req->path, "/metrics") == 0) {
        which = R_METRICS;
        rt = &get_only;
    } else if (strcmp(req->path, API "/bans") == 0) {
        which = R_BANS;
        rt = &get_only;
    } else if (is_ban && !*brest) {
        which = R_BAN;
        rt = &delete_only;
    }
    if (!rt) {
        reply_error(r, 404, "no such resource: %s", req->path);
        return;
    }
    if (!((req->method == HTTP_M_GET && rt->get_ok) ||
          (req->method == HTTP_M_POST && rt->post_ok) ||
          (req->method == HTTP_M_DELETE && rt->delete_ok))) {
        reply_error(r, 405, "%s does not take %s", req->path, req->method_name);
        r->extra_headers = rt->allow_hdr;
        return;
    }
    /* Reads are for monitor and admin (the listener admits no one else). */
    if (req->method != HTTP_M_GET && c->role != ROLE_ADMIN) {
        reply_error(r, 403, "role %s may only read; this needs admin",
                    role_name((enum peer_role)c->role));
        return;
    }
    switch (which) {
    case R_STATUS:
        reply_json(r, 200, daemon_status_json(d));
        break;
    case R_PEERS:
        if (req->method == HTTP_M_GET)
            get_peers(d, r);
        else
            post_peer(d, c, req, r);
        break;
    case R_PEER:
        get_peer(d, peer, r);
        break;
    case R_REVOKE:
        post_revoke(d, c, peer, req, r);
        break;
    case R_SESSIONS:
        reply_json(r, 200, daemon_sessions_json(d));
        break;
    case R_SESSION:
        delete_session(d, sid, r);
        break;
    case R_METRICS:
        r->status = 200;
        r->content_type = "text/plain; version=0.0.4";
        r->body = daemon_metrics(d);
        r->body_len = r->body ? strlen(r->body) : 0;
        break;
    case R_BANS:
        reply_json(r, 200, bans_json(d->bans, mono_ms()));
        break;
    case R_BAN:
        delete_ban(d, c, ban, r);
        break;
    case R_NONE:
        break;
    }
}
