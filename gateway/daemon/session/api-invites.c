/*
 * api-invites.c: invites over the management API (api-invites.h), the
 * same core/invite.c calls `mtlsgw invite`, `invites` and `uninvite` make.
 * The code is shown once, in the answer to the POST; the pki dir keeps
 * only its salted hash.
 */
#include "api-invites.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <json-c/json.h>

#include "api-codec.h"
#include "config.h"
#include "daemon.h"
#include "est-codec.h"
#include "http.h"
#include "invite.h"
#include "log.h"
#include "pki-chain.h"
#include "pki.h"
#include "peernet.h"
#include "qr.h"
#include "registry.h"
#include "sessions.h"
#include "trustdb.h"

void api_get_invites(struct daemon *d, struct conn *c, const struct http_request *req,
                     const char *param, struct api_reply *r)
{
    struct invites *set = NULL;
    struct json_object *arr;
    char *path = invite_path(d->pki->dir), err[512] = "";
    int64_t now = (int64_t)time(NULL);
    int rc;

    if (!path) {
        api_reply_error(r, 500, "out of memory");
        return;
    }
    rc = invites_load(path, &set, err, sizeof(err));
    if (rc < 0) {
        api_reply_error(r, 500, "%s: %s", path, err[0] ? err : strerror(-rc));
        free(path);
        return;
    }
    arr = json_object_new_array();
    for (size_t i = 0; i < invites_count(set); i++)
        json_object_array_add(arr, invite_public_json(invites_at(set, i), now));
    api_reply_json(r, 200, arr);
    invites_free(set);
    free(path);
}

/* The answer to a new invite: what `mtlsgw invite --qr` prints, as JSON.
 * fp is the certificate the device sees on [enroll]; root_fp, when set, the
 * organization's root, which the join line pins (pki_pin_fingerprints). */
static struct json_object *created_json(struct daemon *d, const struct invite *inv,
                                        const char *code, const char *fp, const char *root_fp)
{
    struct json_object *o = invite_public_json(inv, inv->created);
    char url[300], line[600], *svg = NULL;

    if (!o)
        return NULL;
    invite_join_url(d->cfg->enroll.listen, url, sizeof(url));
    json_object_object_add(o, "code", json_object_new_string(code));
    json_object_object_add(o, "fingerprint", json_object_new_string(fp));
    if (root_fp[0]) {
        json_object_object_add(o, "root_fingerprint", json_object_new_string(root_fp));
        fp = root_fp;
    }
    json_object_object_add(o, "url", json_object_new_string(url));
    if (invite_join_line(url, inv->name, code, fp, line, sizeof(line)) == 0) {
        json_object_object_add(o, "join", json_object_new_string(line));
        if (qr_svg(line, &svg) == 0)
            json_object_object_add(o, "qr_svg", json_object_new_string(svg));
    }
    if (!d->cfg->enroll.listen)
        json_object_object_add(o, "note", json_object_new_string(
                                              "[enroll] listen is not set: the daemon does not "
                                              "serve enrollment yet"));
    gnutls_memset(line, 0, sizeof(line));
    if (svg)
        gnutls_memset(svg, 0, strlen(svg));
    free(svg);
    return o;
}

void api_post_invite(struct daemon *d, struct conn *c, const struct http_request *req,
                     const char *param, struct api_reply *r)
{
    struct api_invite_req ir;
    struct invite inv = {0};
    struct trustdb *t = NULL;
    const struct peer *p;
    char code[INVITE_CODE_LEN] = "", err[512] = "", fp[128] = "", root_fp[128] = "";
    char actor[256];
    int rc;

    rc = api_invite_req_parse(req->body, &ir, err, sizeof(err));
    if (rc < 0) {
        api_reply_error(r, rc == -ENOMEM ? 500 : 400, "%s", err);
        goto out;
    }
    /* The enrollment this invite leads to would be refused: say so now
     * (the rules of mtlsgw invite: peernet_check(), a default route first). */
    if (peernet_check(NULL, ir.peer.name, ir.peer.networks, ir.peer.n_networks,
                      ir.peer.allow_default, err, sizeof(err)) == -EDOM ||
        config_check_peer_networks(d->cfg, ir.peer.networks, ir.peer.n_networks, err,
                                   sizeof(err)) < 0) {
        api_reply_error(r, 400, "%s", err);
        goto out;
    }
    t = daemon_trust(d);
    if (t && peernet_check(trustdb_registry(t), ir.peer.name, ir.peer.networks,
                           ir.peer.n_networks, ir.peer.allow_default, err, sizeof(err)) < 0) {
        api_reply_error(r, 400, "%s", err);
        goto out;
    }
    p = t ? registry_find_active_ci(trustdb_registry(t), ir.peer.name) : NULL;
    if (p) {
        api_reply_error(r, 409, "peer '%s' is already enrolled (serial %s); revoke it first or "
                                "choose another name", p->name, p->serial);
        goto out;
    }
    if (pki_pin_fingerprints(d->pki, d->cfg->mgmt.cert ? d->cfg->mgmt.cert : d->pki->gw_path,
                             fp, sizeof(fp), root_fp, sizeof(root_fp), err, sizeof(err)) < 0) {
        api_reply_error(r, 500, "the certificate to pin: %s", err);
        goto out;
    }
    snprintf(actor, sizeof(actor), "api peer=%s serial=%s from=%s", c->peer, c->serial,
             c->remote);
    inv.name = (char *)ir.peer.name;
    inv.role = ir.peer.role;
    inv.networks = ir.peer.networks;
    inv.n_networks = ir.peer.n_networks;
    inv.created = (int64_t)time(NULL);
    inv.expires = inv.created + ir.ttl;
    inv.actor = actor;
    pthread_mutex_lock(&d->pki_lock);
    rc = invite_create(d->pki->dir, &inv, code, err, sizeof(err));
    pthread_mutex_unlock(&d->pki_lock);
    if (rc < 0) {
        api_reply_error(r, rc == -EEXIST ? 409 : 500, "%s", err);
        goto out;
    }
    log_info("management peer %s serial %s from %s: invited %s as %s", c->peer, c->serial,
             c->remote, inv.name, ir.peer.role_name);
    api_reply_json(r, 201, created_json(d, &inv, code, fp, root_fp));
out:
    gnutls_memset(code, 0, sizeof(code));
    trustdb_unref(t);
    api_peer_req_free(&ir.peer);
}

void api_delete_invite(struct daemon *d, struct conn *c, const struct http_request *req,
                       const char *name, struct api_reply *r)
{
    struct json_object *o;
    char err[512] = "";
    int rc;

    pthread_mutex_lock(&d->pki_lock);
    rc = invite_withdraw(d->pki->dir, name, err, sizeof(err));
    pthread_mutex_unlock(&d->pki_lock);
    if (rc < 0) {
        api_reply_error(r, rc == -ENOENT ? 404 : 500, "%s", err);
        return;
    }
    log_info("management peer %s serial %s from %s: withdrew the invite for %s", c->peer,
             c->serial, c->remote, name);
    o = json_object_new_object();
    json_object_object_add(o, "name", json_object_new_string(name));
    json_object_object_add(o, "withdrawn", json_object_new_boolean(1));
    api_reply_json(r, 200, o);
}
