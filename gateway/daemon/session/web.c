/*
 * web.c: the management page on the API listeners (docs/web.md). The same
 * handshake verdict as every request lets a browser this far; here it gets
 * the compiled-in files (gzip, strong ETag, 304), its own identity
 * (GET /api/v1/whoami), both lines of api.c's route table, and no state
 * change it did not mean to ask for (web_write_allowed, before the table),
 * nor any answer to another site's page (web_read_allowed).
 */
#include "web.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <json-c/json.h>

#include "daemon.h"
#include "http.h"
#include "registry.h"
#include "service.h"
#include "web-assets.h"

static void reply_text(struct api_reply *r, int status, const char *type, const char *body)
{
    r->status = status;
    r->content_type = type;
    r->body = strdup(body);
    r->body_len = r->body ? strlen(body) : 0;
}

static void reply_json(struct api_reply *r, int status, struct json_object *o)
{
    const char *s =
        json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
    size_t n = strlen(s);

    r->status = status;
    r->content_type = "application/json";
    r->body = malloc(n + 2);
    if (r->body) {
        memcpy(r->body, s, n);
        memcpy(r->body + n, "\n", 2);
        r->body_len = n + 1;
    }
    json_object_put(o);
}

static void reply_error(struct api_reply *r, int status, const char *msg)
{
    struct json_object *o = json_object_new_object();

    json_object_object_add(o, "error", json_object_new_string(msg));
    reply_json(r, status, o);
}

/* The next comma-separated element of a header list: [*s, return) trimmed. */
static const char *list_next(const char **s, size_t *len)
{
    const char *p = *s, *e;

    while (*p == ' ' || *p == '\t' || *p == ',')
        p++;
    if (!*p)
        return NULL;
    e = strchr(p, ',');
    if (!e)
        e = p + strlen(p);
    *s = e;
    while (e > p && (e[-1] == ' ' || e[-1] == '\t'))
        e--;
    *len = (size_t)(e - p);
    return p;
}

/* True when a coding's parameters say q=0 ("gzip;q=0", "gzip; q=0.000"). */
static bool q_zero(const char *params, size_t len)
{
    const char *q = NULL;

    for (size_t i = 0; i + 1 < len; i++) {
        if ((params[i] == 'q' || params[i] == 'Q') && params[i + 1] == '=') {
            q = params + i + 2;
            break;
        }
    }
    if (!q)
        return false;
    if (*q != '0')
        return false;
    for (q++; q < params + len && *q != ';'; q++) {
        if (*q != '.' && *q != '0' && *q != ' ')
            return false;
    }
    return true;
}

bool web_accepts_gzip(const char *ae)
{
    const char *el;
    size_t len;
    bool star = false;

    if (!ae)
        return false;
    while ((el = list_next(&ae, &len))) {
        size_t tok = 0;
        while (tok < len && el[tok] != ';' && el[tok] != ' ' && el[tok] != '\t')
            tok++;
        bool zero = q_zero(el + tok, len - tok);
        if ((tok == 4 && strncasecmp(el, "gzip", 4) == 0) ||
            (tok == 6 && strncasecmp(el, "x-gzip", 6) == 0))
            return !zero;
        if (tok == 1 && el[0] == '*')
            star = !zero;
    }
    return star;
}

bool web_etag_matches(const char *inm, const char *etag)
{
    const char *el;
    size_t len, elen = strlen(etag);

    if (!inm)
        return false;
    while ((el = list_next(&inm, &len))) {
        if (len == 1 && el[0] == '*')
            return true;
        if (len > 2 && el[0] == 'W' && el[1] == '/') {
            el += 2;
            len -= 2;
        }
        if (len == elen && memcmp(el, etag, len) == 0)
            return true;
    }
    return false;
}

/* "application/json" with optional parameters ("; charset=utf-8"). */
static bool is_json_type(const char *ct)
{
    size_t n = strlen("application/json");

    while (*ct == ' ')
        ct++;
    if (strncasecmp(ct, "application/json", n) != 0)
        return false;
    ct += n;
    while (*ct == ' ' || *ct == '\t')
        ct++;
    return *ct == '\0' || *ct == ';';
}

int web_write_allowed(const struct http_request *req, char *err, size_t errlen)
{
    const char *site = req->sec_fetch_site, *origin = req->origin;

    if (req->method != HTTP_M_POST && req->method != HTTP_M_DELETE) {
        snprintf(err, errlen, "a change is asked with POST or DELETE, not %s",
                 req->method_name ? req->method_name : "this method");
        return -EPERM;
    }
    /* The browser says where the request comes from; a non-browser client
     * (curl, the console) sends neither header. */
    if (site && strcmp(site, "same-origin") != 0 && strcmp(site, "none") != 0) {
        snprintf(err, errlen,
                 "cross-site request refused (Sec-Fetch-Site: %s): changes are "
                 "made from this gateway's own page",
                 site);
        return -EPERM;
    }
    if (origin) {
        const char *host = req->host;
        size_t pl = strlen("https://");
        if (!host || strncasecmp(origin, "https://", pl) != 0 ||
            strcasecmp(origin + pl, host) != 0) {
            snprintf(err, errlen,
                     "cross-site request refused (Origin: %s is not https://%s): "
                     "changes are made from this gateway's own page",
                     origin, host ? host : "(no Host)");
            return -EPERM;
        }
    }
    /* An HTML form always sends a Content-Type of its own (urlencoded,
     * multipart, text/plain); JSON from another origin needs a CORS
     * preflight this server never grants. A body-less call (curl -X DELETE)
     * has nothing to mistype. */
    if (req->content_type ? !is_json_type(req->content_type) : req->body_len > 0) {
        snprintf(err, errlen, "a change is sent as Content-Type: application/json%s%s",
                 req->content_type ? ", not " : " (none given)",
                 req->content_type ? req->content_type : "");
        return -EPERM;
    }
    return 0;
}

int web_read_allowed(const struct http_request *req, char *err, size_t errlen)
{
    const char *site = req->sec_fetch_site;

    /* A page on another site can make the browser fetch with the admin's
     * certificate; unreadable to it, but its status (200 or 404) would
     * still say whether a peer name exists. A non-browser client sends no
     * Sec-Fetch-Site, a typed address or bookmark "none". */
    if (site && strcmp(site, "same-origin") != 0 && strcmp(site, "none") != 0) {
        snprintf(err, errlen,
                 "cross-site request refused (Sec-Fetch-Site: %s): open this gateway's "
                 "page at its own address",
                 site);
        return -EPERM;
    }
    return 0;
}

static const struct web_asset *find_asset(const char *path)
{
    /* Every /ui/ path that is not a file is a view of the page. */
    bool view = strcmp(path, "/") == 0 || strcmp(path, "/ui") == 0 ||
                (strncmp(path, "/ui/", 4) == 0 && !strchr(path + 4, '.'));

    for (size_t i = 0; i < web_n_assets; i++) {
        if (strcmp(web_assets[i].path, view ? "/" : path) == 0)
            return &web_assets[i];
    }
    return NULL;
}

static void serve_asset(const struct http_request *req, struct api_reply *r)
{
    const struct web_asset *a = find_asset(req->path);

    if (!a) {
        reply_error(r, 404, "no such page");
        return;
    }
    if (req->method != HTTP_M_GET && req->method != HTTP_M_HEAD) {
        reply_error(r, 405, "the page is read with GET");
        r->extra_headers = "Allow: GET\r\n";
        return;
    }
    r->extra_headers = a->headers;
    if (web_etag_matches(req->if_none_match, a->etag)) {
        r->status = 304;
        return;
    }
    if (!web_accepts_gzip(req->accept_encoding)) {
        /* Decision (docs/web.md): the files exist only compressed. */
        r->extra_headers = WEB_SECURITY_HEADERS "Vary: Accept-Encoding\r\n";
        reply_text(r, 406, "text/plain; charset=utf-8",
                   "the management page is served gzip-compressed only: send "
                   "Accept-Encoding: gzip (curl --compressed; every browser does)\n");
        return;
    }
    r->body = malloc(a->gz_len);
    if (!r->body) {
        reply_error(r, 500, "out of memory");
        return;
    }
    memcpy(r->body, a->gz, a->gz_len);
    r->body_len = a->gz_len;
    r->status = 200;
    r->content_type = a->content_type;
}

void web_get_page(struct daemon *d, struct conn *c, const struct http_request *req,
                  const char *param, struct api_reply *r)
{
    char msg[300];

    /* The page is the management listener's: a tunnel or uplink listener
     * answers the API's 404. Known by its service's name, so web.c does not
     * link service.c's table; a conn without a listener is the unit test's. */
    if (c->l && strcmp(c->l->svc->name, "management") != 0) {
        snprintf(msg, sizeof(msg), "no such resource: %.200s", req->path);
        reply_error(r, 404, msg);
        return;
    }
    serve_asset(req, r);
}

void web_get_whoami(struct daemon *d, struct conn *c, const struct http_request *req,
                    const char *param, struct api_reply *r)
{
    struct json_object *o = json_object_new_object();

    json_object_object_add(o, "peer", json_object_new_string(c->peer));
    json_object_object_add(o, "role", json_object_new_string(role_name((enum peer_role)c->role)));
    json_object_object_add(o, "serial", json_object_new_string(c->serial));
    json_object_object_add(o, "remote", json_object_new_string(c->remote));
    reply_json(r, 200, o);
}
