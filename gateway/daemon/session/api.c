/*
 * api.c: the management API's routes (docs/mtlsgwd.md). monitor reads,
 * admin writes; the caller's role was fixed during the handshake.
 */
#include "api.h"

#include "daemon.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "api-codec.h"
#include "api-pki.h"
#include "api-invites.h"
#include "bans.h"
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

static struct json_object *peer_json(struct daemon *d, const struct peer *p)
{
    struct json_object *o = registry_peer_json(p, time(NULL));

    if (o) {
        bool online = p->status == PEER_ACTIVE && daemon_peer_online(d, p->name);

        json_object_object_del(o, "key_id");
        json_object_object_add(o, "online", json_object_new_boolean(online));
    }
    return o;
}

static void get_status(struct daemon *d, struct conn *c, const struct http_request *req,
                       const char *param, struct api_reply *r)
{
    api_reply_json(r, 200, daemon_status_json(d));
}

static void get_peers(struct daemon *d, struct conn *c, const struct http_request *req,
                      const char *param, struct api_reply *r)
{
    struct trustdb *t = daemon_trust(d);
    const struct registry *reg = trustdb_registry(t);
    struct json_object *arr = json_object_new_array();

    for (size_t i = 0; i < registry_count(reg); i++)
        json_object_array_add(arr, peer_json(d, registry_at(reg, i)));
    trustdb_unref(t);
    api_reply_json(r, 200, arr);
}

static void get_peer(struct daemon *d, struct conn *c, const struct http_request *req,
                     const char *name, struct api_reply *r)
{
    struct trustdb *t = daemon_trust(d);
    const struct peer *p = registry_find_name(trustdb_registry(t), name);

    if (p)
        api_reply_json(r, 200, peer_json(d, p));
    else
        api_reply_error(r, 404, "no peer named '%s'", name);
    trustdb_unref(t);
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


/* Sign the CSR for the request's peer, under the locks every token
 * signing takes; the reply is an error, or left for the caller. */
static int issue(struct daemon *d, struct conn *c, const struct api_peer_req *pr,
                 gnutls_x509_crt_t *crt, struct api_reply *r)
{
    gnutls_x509_crq_t crq = NULL;
    gnutls_pubkey_t pub = NULL;
    gnutls_datum_t data;
    struct pki_enroll_req er = {0};
    char err[512] = "", actor[256];
    int rc;

    data.data = (unsigned char *)pr->csr;
    data.size = (unsigned)strlen(pr->csr);
    rc = p11_csr_parse(&data, &crq, err, sizeof(err));
    if (rc < 0) {
        api_reply_error(r, 400, "csr: %s", err);
        goto out;
    }
    if (gnutls_pubkey_init(&pub) < 0 || gnutls_pubkey_import_x509_crq(pub, crq, 0) < 0) {
        api_reply_error(r, 400, "csr: its public key cannot be read");
        rc = -EBADMSG;
        goto out;
    }
    snprintf(actor, sizeof(actor), "api peer=%s serial=%s from=%s", c->peer, c->serial,
             c->remote);
    er.name = pr->name;
    er.role = pr->role;
    er.key = pub;
    er.networks = pr->networks;
    er.n_networks = pr->n_networks;
    er.allow_default = pr->allow_default;
    er.days = pr->days ? pr->days : d->cfg->pki.peer_days;
    er.actor = actor;
    pthread_mutex_lock(&d->pki_lock);
    pthread_rwlock_rdlock(&d->token_lock);
    rc = pki_enroll(d->pki, &er, crt, err, sizeof(err));
    pthread_rwlock_unlock(&d->token_lock);
    pthread_mutex_unlock(&d->pki_lock);
    if (rc < 0)
        api_reply_error(r, api_errno_status(API_OP_ENROLL, rc), "%s", err);
out:
    if (pub)
        gnutls_pubkey_deinit(pub);
    if (crq)
        gnutls_x509_crq_deinit(crq);
    return rc;
}

/* POST /api/v1/peers: enroll a peer by its CSR. */
static void post_peer(struct daemon *d, struct conn *c, const struct http_request *req,
                      const char *param, struct api_reply *r)
{
    struct api_peer_req pr;
    gnutls_x509_crt_t crt = NULL;
    gnutls_datum_t pem = {0};
    char err[512] = "", serial[64], when[32];
    struct json_object *o;
    int rc;

    rc = api_peer_req_parse(req->body, &pr, err, sizeof(err));
    if (rc < 0) {
        api_reply_error(r, rc == -ENOMEM ? 500 : 400, "%s", err);
        goto out;
    }
    if (issue(d, c, &pr, &crt, r) < 0)
        goto out;
    reload(d);
    log_info("management peer %s serial %s from %s: enrolled %s as %s", c->peer, c->serial,
             c->remote, pr.name, pr.role_name);
    verify_serial_hex(crt, serial, sizeof(serial));
    time_format_utc(gnutls_x509_crt_get_expiration_time(crt), when, sizeof(when));
    pki_cert_pem(crt, &pem);
    o = json_object_new_object();
    json_object_object_add(o, "name", json_object_new_string(pr.name));
    json_object_object_add(o, "role", json_object_new_string(pr.role_name));
    json_object_object_add(o, "serial", json_object_new_string(serial));
    json_object_object_add(o, "not_after", json_object_new_string(when));
    json_object_object_add(o, "certificate",
                           json_object_new_string_len((const char *)pem.data, (int)pem.size));
    api_reply_json(r, 201, o);
out:
    gnutls_free(pem.data);
    if (crt)
        gnutls_x509_crt_deinit(crt);
    api_peer_req_free(&pr);
}

/* POST /api/v1/peers/NAME/revoke */
static void post_revoke(struct daemon *d, struct conn *c, const struct http_request *req,
                        const char *name, struct api_reply *r)
{
    struct json_object *o;
    char err[512] = "", actor[256], reason[32];
    int rc, ended;

    if (api_revoke_req_parse(req->body, req->body_len, reason, sizeof(reason), err,
                             sizeof(err)) < 0) {
        api_reply_error(r, 400, "%s", err);
        return;
    }
    snprintf(actor, sizeof(actor), "api peer=%s serial=%s from=%s", c->peer, c->serial,
             c->remote);
    pthread_mutex_lock(&d->pki_lock);
    pthread_rwlock_rdlock(&d->token_lock);
    rc = pki_revoke(d->pki, name, reason, actor, err, sizeof(err));
    pthread_rwlock_unlock(&d->token_lock);
    pthread_mutex_unlock(&d->pki_lock);
    if (rc < 0) {
        api_reply_error(r, api_errno_status(API_OP_REVOKE, rc), "%s", err);
        return;
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
    api_reply_json(r, 200, o);
}

static void get_sessions(struct daemon *d, struct conn *c, const struct http_request *req,
                         const char *param, struct api_reply *r)
{
    api_reply_json(r, 200, daemon_sessions_json(d));
}

/* DELETE /api/v1/sessions/ID: kick. */
static void delete_session(struct daemon *d, struct conn *c, const struct http_request *req,
                           const char *id_s, struct api_reply *r)
{
    uint64_t id = 0;
    struct json_object *o;
    int rc = -ENOENT;

    if (api_session_id_parse(id_s, &id) < 0 || (rc = daemon_kick_id(d, id)) < 0) {
        api_reply_error(r, 404, "no session %s", id_s);
        return;
    }
    o = json_object_new_object();
    json_object_object_add(o, "id", json_object_new_int64((int64_t)id));
    json_object_object_add(o, "closed", json_object_new_boolean(1));
    /* Closed by someone else's kill already under way (a revocation, the
     * daemon stopping): it ends all the same, but not because of this call. */
    if (rc == 0)
        json_object_object_add(o, "already_ending", json_object_new_boolean(1));
    api_reply_json(r, 200, o);
}

static void get_metrics(struct daemon *d, struct conn *c, const struct http_request *req,
                        const char *param, struct api_reply *r)
{
    r->status = 200;
    r->content_type = "text/plain; version=0.0.4";
    r->body = daemon_metrics(d);
    r->body_len = r->body ? strlen(r->body) : 0;
}

static void get_bans(struct daemon *d, struct conn *c, const struct http_request *req,
                     const char *param, struct api_reply *r)
{
    api_reply_json(r, 200, bans_json(d->bans, mono_ms()));
}

/* DELETE /api/v1/bans/ADDR: lift a ban. */
static void delete_ban(struct daemon *d, struct conn *c, const struct http_request *req,
                       const char *addr, struct api_reply *r)
{
    char canon[64] = "";
    struct json_object *o;
    int rc = bans_lift(d->bans, addr, mono_ms(), canon, sizeof(canon));

    if (rc == -EINVAL) {
        api_reply_error(r, 400, "'%s' is not an IPv4 or IPv6 address", addr);
        return;
    }
    if (rc < 0) {
        api_reply_error(r, 404, "%s is not banned", canon);
        return;
    }
    log_info("management peer %s serial %s from %s: lifted the ban of %s", c->peer, c->serial,
             c->remote, canon);
    o = json_object_new_object();
    json_object_object_add(o, "address", json_object_new_string(canon));
    json_object_object_add(o, "unbanned", json_object_new_boolean(1));
    api_reply_json(r, 200, o);
}

/*
 * The routes. A path's methods are its lines; a method it has no line for
 * is 405 with Allow listing them. seg_max bounds the '*' segment (a peer
 * name, a session id, an address): longer is no such resource.
 */
static const struct api_route routes[] = {
    /* method      path                      seg_max role         slow   handler */
    {HTTP_M_GET,    API "/status",           0,   ROLE_MONITOR, false, get_status},
    {HTTP_M_GET,    API "/peers",            0,   ROLE_MONITOR, false, get_peers},
    {HTTP_M_POST,   API "/peers",            0,   ROLE_ADMIN,   true,  post_peer},
    {HTTP_M_GET,    API "/peers/*",          128, ROLE_MONITOR, false, get_peer},
    {HTTP_M_POST,   API "/peers/*/revoke",   128, ROLE_ADMIN,   true,  post_revoke},
    {HTTP_M_GET,    API "/sessions",         0,   ROLE_MONITOR, false, get_sessions},
    {HTTP_M_DELETE, API "/sessions/*",       32,  ROLE_ADMIN,   false, delete_session},
    {HTTP_M_GET,    "/metrics",              0,   ROLE_MONITOR, false, get_metrics},
    {HTTP_M_GET,    API "/bans",             0,   ROLE_MONITOR, false, get_bans},
    {HTTP_M_DELETE, API "/bans/*",           64,  ROLE_ADMIN,   false, delete_ban},
    {HTTP_M_GET,    API "/ca",               0,   ROLE_MONITOR, false, api_get_ca},
    {HTTP_M_GET,    API "/crl",              0,   ROLE_MONITOR, false, api_get_crl},
    {HTTP_M_GET,    API "/invites",          0,   ROLE_MONITOR, false, api_get_invites},
    {HTTP_M_POST,   API "/invites",          0,   ROLE_ADMIN,   false, api_post_invite},
    {HTTP_M_DELETE, API "/invites/*",        64,  ROLE_ADMIN,   false, api_delete_invite},
    {HTTP_M_GET,    API "/audit",            0,   ROLE_MONITOR, false, api_get_audit},
    {HTTP_M_GET,    API "/refusals",         0,   ROLE_MONITOR, false, api_get_refusals},
    {HTTP_M_GET,    API "/whoami",           0,   ROLE_MONITOR, false, web_get_whoami},
    /* The page (web.c): the management listener's only. */
    {HTTP_M_GET,    "/",                     0,   ROLE_MONITOR, false, web_get_page},
    {HTTP_M_GET,    "/ui",                   0,   ROLE_MONITOR, false, web_get_page},
    {HTTP_M_GET,    "/ui/*",                 64,  ROLE_MONITOR, false, web_get_page},
};

const struct api_route *api_routes(size_t *n)
{
    *n = sizeof(routes) / sizeof(routes[0]);
    return routes;
}

/* Allow headers by the methods a path takes (bit 1 << method). */
static const char *allow_header(unsigned methods)
{
    switch (methods) {
    case 1u << HTTP_M_GET: return "Allow: GET\r\n";
    case 1u << HTTP_M_POST: return "Allow: POST\r\n";
    case 1u << HTTP_M_DELETE: return "Allow: DELETE\r\n";
    case 1u << HTTP_M_GET | 1u << HTTP_M_POST: return "Allow: GET, POST\r\n";
    case 1u << HTTP_M_GET | 1u << HTTP_M_DELETE: return "Allow: GET, DELETE\r\n";
    case 1u << HTTP_M_POST | 1u << HTTP_M_DELETE: return "Allow: POST, DELETE\r\n";
    default: return "Allow: GET, POST, DELETE\r\n";
    }
}

int api_route_find(int method, const char *path, const struct api_route **rt, char *param,
                   size_t plen, const char **allow)
{
    unsigned methods = 0;
    char seg[API_PARAM_MAX];

    /* HEAD is the GET of the same path without its body (conn.c cuts it). */
    if (method == HTTP_M_HEAD)
        method = HTTP_M_GET;
    for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
        size_t max = routes[i].seg_max < sizeof(seg) ? routes[i].seg_max : sizeof(seg);

        if (!api_path_match(routes[i].path, path, seg, max))
            continue;
        if (routes[i].method != method) {
            methods |= 1u << routes[i].method;
            continue;
        }
        if (!strchr(routes[i].path, '*'))
            seg[0] = '\0';
        else if (api_param_decode(seg) < 0)
            return -EINVAL;
        if (strlen(seg) >= plen)
            return -ENOBUFS;
        memcpy(param, seg, strlen(seg) + 1);
        *rt = &routes[i];
        return 0;
    }
    if (!methods)
        return -ENOENT;
    *allow = allow_header(methods);
    return -EOPNOTSUPP;
}

bool api_route_permits(const struct api_route *rt, int role)
{
    /* Reads are for monitor and admin (the listener admits no one else). */
    return rt->role != ROLE_ADMIN || role == ROLE_ADMIN;
}

bool api_is_slow(const struct http_request *req)
{
    const struct api_route *rt;
    const char *allow;
    char param[API_PARAM_MAX];

    return api_route_find((int)req->method, req->path, &rt, param, sizeof(param), &allow) == 0 &&
           rt->slow;
}

void api_handle(struct daemon *d, struct conn *c, const struct http_request *req,
                struct api_reply *r)
{
    const struct api_route *rt = NULL;
    const char *allow = NULL;
    char param[API_PARAM_MAX], err[512];
    int rc = api_route_find((int)req->method, req->path, &rt, param, sizeof(param), &allow);

    /* A change a browser was tricked into asking from another site is
     * refused whatever its path (web.c); so is a read another site's page
     * makes (not even a status to learn a peer name from). Other methods go
     * on to the 405. */
    if (req->method == HTTP_M_POST || req->method == HTTP_M_DELETE
            ? web_write_allowed(req, err, sizeof(err)) < 0
            : web_read_allowed(req, err, sizeof(err)) < 0) {
        api_reply_error(r, 403, "%s", err);
        return;
    }
    if (rc == -EINVAL) {
        api_reply_error(r, 400,
                    "%s: a name in the path has a bad percent-escape (%%XX with two hex "
                    "digits, not %%00 or %%2F)",
                    req->path);
        return;
    }
    if (rc == -EOPNOTSUPP) {
        api_reply_error(r, 405, "%s does not take %s", req->path, req->method_name);
        r->extra_headers = allow;
        return;
    }
    if (rc < 0) {
        api_reply_error(r, 404, "no such resource: %s", req->path);
        return;
    }
    if (!api_route_permits(rt, c->role)) {
        api_reply_error(r, 403, "role %s may only read; this needs admin",
                    role_name((enum peer_role)c->role));
        return;
    }
    rt->handler(d, c, req, param, r);
}
