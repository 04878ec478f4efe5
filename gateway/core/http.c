#include "http.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <limits.h>

#include <http_parser.h>

#define URL_MAX 2048
#define HEADER_VALUE_MAX 4096
#define HEADERS_MAX 64

enum hdr {
    HDR_NONE,
    HDR_CONTENT_TYPE,
    HDR_AUTHORIZATION,
    HDR_CTE,
    HDR_HOST,
    HDR_ORIGIN,
    HDR_SEC_FETCH_SITE,
    HDR_ACCEPT_ENCODING,
    HDR_IF_NONE_MATCH,
    HDR_IF_MODIFIED_SINCE,
};

struct http_reader {
    http_parser parser;
    http_parser_settings settings;
    size_t max_body;
    struct http_request req;
    char *url;
    size_t url_len;
    char field[64];
    size_t field_len;
    bool field_done;
    enum hdr cur;
    size_t body_cap;
    unsigned n_headers;
    int error;     /* 4xx decided in a callback */
    bool complete;
    bool started;
};

static void reset_request(struct http_reader *r)
{
    free(r->req.path);
    free(r->req.query);
    free(r->req.body);
    free(r->req.content_type);
    free(r->req.authorization);
    free(r->req.transfer_encoding_hdr);
    free(r->req.host);
    free(r->req.origin);
    free(r->req.sec_fetch_site);
    free(r->req.accept_encoding);
    free(r->req.if_none_match);
    free(r->req.if_modified_since);
    free(r->url);
    memset(&r->req, 0, sizeof(r->req));
    r->url = NULL;
    r->url_len = 0;
    r->field_len = 0;
    r->field_done = false;
    r->cur = HDR_NONE;
    r->body_cap = 0;
    r->n_headers = 0;
    r->error = 0;
    r->complete = false;
    r->started = false;
}

static struct http_reader *R(http_parser *p)
{
    return p->data;
}

static int on_message_begin(http_parser *p)
{
    R(p)->started = true;
    return 0;
}

static int on_url(http_parser *p, const char *at, size_t len)
{
    struct http_reader *r = R(p);
    char *n;

    if (r->url_len + len > URL_MAX) {
        r->error = 414;
        return -1;
    }
    n = realloc(r->url, r->url_len + len + 1);
    if (!n) {
        r->error = 500;
        return -1;
    }
    memcpy(n + r->url_len, at, len);
    r->url_len += len;
    n[r->url_len] = '\0';
    r->url = n;
    return 0;
}

static enum hdr classify(const char *name)
{
    if (strcasecmp(name, "content-type") == 0)
        return HDR_CONTENT_TYPE;
    if (strcasecmp(name, "authorization") == 0)
        return HDR_AUTHORIZATION;
    if (strcasecmp(name, "content-transfer-encoding") == 0)
        return HDR_CTE;
    if (strcasecmp(name, "host") == 0)
        return HDR_HOST;
    if (strcasecmp(name, "origin") == 0)
        return HDR_ORIGIN;
    if (strcasecmp(name, "sec-fetch-site") == 0)
        return HDR_SEC_FETCH_SITE;
    if (strcasecmp(name, "accept-encoding") == 0)
        return HDR_ACCEPT_ENCODING;
    if (strcasecmp(name, "if-none-match") == 0)
        return HDR_IF_NONE_MATCH;
    if (strcasecmp(name, "if-modified-since") == 0)
        return HDR_IF_MODIFIED_SINCE;
    return HDR_NONE;
}

static int on_header_field(http_parser *p, const char *at, size_t len)
{
    struct http_reader *r = R(p);

    if (r->field_done) { /* a new header begins */
        r->field_len = 0;
        r->field_done = false;
    }
    if (r->field_len == 0 && ++r->n_headers > HEADERS_MAX) {
        r->error = 431;
        return -1;
    }
    if (r->field_len + len >= sizeof(r->field)) {
        /* Longer than any header we read: keep a prefix, it will not match. */
        len = sizeof(r->field) - 1 - r->field_len;
    }
    memcpy(r->field + r->field_len, at, len);
    r->field_len += len;
    r->field[r->field_len] = '\0';
    return 0;
}

static char **slot(struct http_reader *r)
{
    switch (r->cur) {
    case HDR_CONTENT_TYPE:
        return &r->req.content_type;
    case HDR_AUTHORIZATION:
        return &r->req.authorization;
    case HDR_CTE:
        return &r->req.transfer_encoding_hdr;
    case HDR_HOST:
        return &r->req.host;
    case HDR_ORIGIN:
        return &r->req.origin;
    case HDR_SEC_FETCH_SITE:
        return &r->req.sec_fetch_site;
    case HDR_ACCEPT_ENCODING:
        return &r->req.accept_encoding;
    case HDR_IF_NONE_MATCH:
        return &r->req.if_none_match;
    case HDR_IF_MODIFIED_SINCE:
        return &r->req.if_modified_since;
    case HDR_NONE:
        break;
    }
    return NULL;
}

static int on_header_value(http_parser *p, const char *at, size_t len)
{
    struct http_reader *r = R(p);
    char **dst;
    size_t have;
    char *n;

    if (!r->field_done) {
        r->field_done = true;
        r->cur = classify(r->field);
        dst = slot(r);
        if (dst && *dst) { /* a repeated header we read: refuse the ambiguity */
            r->error = 400;
            return -1;
        }
    }
    dst = slot(r);
    if (!dst)
        return 0;
    have = *dst ? strlen(*dst) : 0;
    if (have + len > HEADER_VALUE_MAX) {
        r->error = 431;
        return -1;
    }
    n = realloc(*dst, have + len + 1);
    if (!n) {
        r->error = 500;
        return -1;
    }
    memcpy(n + have, at, len);
    n[have + len] = '\0';
    *dst = n;
    return 0;
}

static int on_headers_complete(http_parser *p)
{
    struct http_reader *r = R(p);
    struct http_parser_url u;
    char *q;

    if (!r->url || r->url[0] != '/') {
        r->error = 400;
        return -1;
    }
    http_parser_url_init(&u);
    if (http_parser_parse_url(r->url, r->url_len, 0, &u) != 0) {
        r->error = 400;
        return -1;
    }
    q = strchr(r->url, '?');
    if (q)
        *q++ = '\0';
    r->req.path = strdup(r->url);
    r->req.query = q ? strdup(q) : NULL;
    if (!r->req.path || (q && !r->req.query)) {
        r->error = 500;
        return -1;
    }
    if (p->content_length != ULLONG_MAX && p->content_length > r->max_body) {
        r->error = 413;
        return -1;
    }
    switch (p->method) {
    case HTTP_GET:
        r->req.method = HTTP_M_GET;
        break;
    case HTTP_POST:
        r->req.method = HTTP_M_POST;
        break;
    case HTTP_DELETE:
        r->req.method = HTTP_M_DELETE;
        break;
    case HTTP_HEAD:
        r->req.method = HTTP_M_HEAD;
        break;
    default:
        r->req.method = HTTP_M_OTHER;
        break;
    }
    r->req.method_name = http_method_str((enum http_method)p->method);
    return 0;
}

static int on_body(http_parser *p, const char *at, size_t len)
{
    struct http_reader *r = R(p);
    char *n;

    if (r->req.body_len + len > r->max_body) {
        r->error = 413;
        return -1;
    }
    if (r->req.body_len + len + 1 > r->body_cap) {
        size_t cap = r->body_cap ? r->body_cap : 1024;
        while (cap < r->req.body_len + len + 1)
            cap *= 2;
        n = realloc(r->req.body, cap);
        if (!n) {
            r->error = 500;
            return -1;
        }
        r->req.body = n;
        r->body_cap = cap;
    }
    memcpy(r->req.body + r->req.body_len, at, len);
    r->req.body_len += len;
    r->req.body[r->req.body_len] = '\0';
    return 0;
}

static int on_message_complete(http_parser *p)
{
    struct http_reader *r = R(p);

    r->req.keep_alive = http_should_keep_alive(p) != 0;
    if (!r->req.body) {
        r->req.body = strdup("");
        if (!r->req.body) {
            r->error = 500;
            return -1;
        }
    }
    r->complete = true;
    /* One request at a time: the rest waits until this one is answered. */
    http_parser_pause(p, 1);
    return 0;
}

int http_reader_new(size_t max_body, struct http_reader **out)
{
    struct http_reader *r = calloc(1, sizeof(*r));

    if (!r)
        return -ENOMEM;
    r->max_body = max_body;
    http_parser_init(&r->parser, HTTP_REQUEST);
    r->parser.data = r;
    http_parser_settings_init(&r->settings);
    r->settings.on_message_begin = on_message_begin;
    r->settings.on_url = on_url;
    r->settings.on_header_field = on_header_field;
    r->settings.on_header_value = on_header_value;
    r->settings.on_headers_complete = on_headers_complete;
    r->settings.on_body = on_body;
    r->settings.on_message_complete = on_message_complete;
    *out = r;
    return 0;
}

void http_reader_free(struct http_reader *r)
{
    if (!r)
        return;
    reset_request(r);
    free(r);
}

size_t http_reader_feed(struct http_reader *r, const char *data, size_t len, int *status)
{
    size_t n;
    enum http_errno e;

    *status = 0;
    if (r->complete) {
        *status = 200;
        return 0;
    }
    n = http_parser_execute(&r->parser, &r->settings, data, len);
    e = HTTP_PARSER_ERRNO(&r->parser);
    if (r->complete) {
        *status = 200;
        return n;
    }
    if (r->error) {
        *status = r->error;
        return n;
    }
    if (e != HPE_OK && e != HPE_PAUSED) {
        *status = 400;
        return n;
    }
    return n;
}

const struct http_request *http_reader_request(const struct http_reader *r)
{
    return r->complete ? &r->req : NULL;
}

void http_reader_next(struct http_reader *r)
{
    reset_request(r);
    http_parser_pause(&r->parser, 0);
}

bool http_reader_busy(const struct http_reader *r)
{
    return r->started && !r->complete;
}

const char *http_reason(int status)
{
    switch (status) {
    case 200: return "OK";
    case 201: return "Created";
    case 204: return "No Content";
    case 304: return "Not Modified";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 406: return "Not Acceptable";
    case 409: return "Conflict";
    case 413: return "Payload Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 503: return "Service Unavailable";
    default: return "Status";
    }
}

int http_response(int status, const char *content_type, const char *body, size_t body_len,
                  bool keep_alive, const char *extra_headers, char **out, size_t *out_len)
{
    char head[1024];
    int h;
    char *buf;
    /* API answers are never stored; the page's files say their own policy. */
    bool own_cache = extra_headers && strstr(extra_headers, "Cache-Control:");

    /* Every answer: no other site's page may embed or load it, whatever
     * the browser sent along (docs/web.md). */

    h = snprintf(head, sizeof(head),
                 "HTTP/1.1 %d %s\r\nContent-Length: %zu\r\n%s%s%s%sConnection: %s\r\n"
                 "%sX-Content-Type-Options: nosniff\r\n"
                 "Cross-Origin-Resource-Policy: same-origin\r\n\r\n",
                 status, http_reason(status), body_len, content_type ? "Content-Type: " : "",
                 content_type ? content_type : "", content_type ? "\r\n" : "",
                 extra_headers ? extra_headers : "", keep_alive ? "keep-alive" : "close",
                 own_cache ? "" : "Cache-Control: no-store\r\n");
    if (h < 0 || (size_t)h >= sizeof(head))
        return -EINVAL;
    buf = malloc((size_t)h + body_len);
    if (!buf)
        return -ENOMEM;
    memcpy(buf, head, (size_t)h);
    if (body_len)
        memcpy(buf + h, body, body_len);
    *out = buf;
    *out_len = (size_t)h + body_len;
    return 0;
}

/* ---- answers (the clients) -------------------------------------------------- */

#define ANSWER_VALUE_MAX 512

static struct http_answer *A(http_parser *p)
{
    return p->data;
}

static int ans_header_field(http_parser *p, const char *at, size_t len)
{
    struct http_answer *a = A(p);

    if (a->in_value) { /* a new field starts */
        a->field_len = 0;
        a->in_value = false;
    }
    if (a->field_len + len >= sizeof(a->field))
        len = sizeof(a->field) - 1 - a->field_len;
    memcpy(a->field + a->field_len, at, len);
    a->field_len += len;
    a->field[a->field_len] = '\0';
    return 0;
}

static int ans_header_value(http_parser *p, const char *at, size_t len)
{
    struct http_answer *a = A(p);
    size_t have;
    char *n;

    if (!a->in_value) {
        a->in_value = true;
        a->cur = -1;
        for (size_t i = 0; i < a->n_names; i++)
            if (strcasecmp(a->field, a->names[i]) == 0)
                a->cur = (int)i;
        if (a->cur < 0)
            return 0;
        free(a->header[a->cur]); /* the last of a repeated header counts */
        a->header[a->cur] = NULL;
    }
    if (a->cur < 0)
        return 0;
    have = a->header[a->cur] ? strlen(a->header[a->cur]) : 0;
    if (have + len > ANSWER_VALUE_MAX)
        return 0;
    if (!(n = realloc(a->header[a->cur], have + len + 1)))
        return -1;
    memcpy(n + have, at, len);
    n[have + len] = '\0';
    a->header[a->cur] = n;
    return 0;
}

static int ans_headers_complete(http_parser *p)
{
    unsigned st = p->status_code;

    A(p)->status = (int)st;
    /* No body, whatever Content-Length says (RFC 9110 6.4.1): the parser
     * does not know what was asked, so a 304 with the length of the
     * entity it stands for would be waited for. */
    return st / 100 == 1 || st == 204 || st == 304 ? 1 : 0;
}

static int ans_body(http_parser *p, const char *at, size_t len)
{
    struct http_answer *a = A(p);

    if (len > a->max - a->len) {
        a->too_big = true;
        return -1;
    }
    if (a->len + len + 1 > a->cap) { /* doubling: many small chunks stay linear */
        size_t cap = a->cap ? a->cap : 4096;
        char *n;
        while (cap < a->len + len + 1)
            cap *= 2;
        if (cap > a->max + 1)
            cap = a->max + 1;
        if (!(n = realloc(a->body, cap)))
            return -1;
        a->body = n;
        a->cap = cap;
    }
    memcpy(a->body + a->len, at, len);
    a->len += len;
    a->body[a->len] = '\0';
    return 0;
}

static int ans_message_complete(http_parser *p)
{
    struct http_answer *a = A(p);

    /* An interim answer (100 Continue, 103 Early Hints): the real one
     * follows on the same stream (RFC 9110 15.2); 101 is an answer. */
    if (a->status / 100 == 1 && a->status != 101) {
        for (size_t i = 0; i < HTTP_ANSWER_HEADERS; i++) {
            free(a->header[i]);
            a->header[i] = NULL;
        }
        a->status = 0;
        return 0;
    }
    a->complete = true;
    http_parser_pause(p, 1); /* what follows is not this answer */
    return 0;
}

static const http_parser_settings answer_settings = {
    .on_header_field = ans_header_field,
    .on_header_value = ans_header_value,
    .on_headers_complete = ans_headers_complete,
    .on_body = ans_body,
    .on_message_complete = ans_message_complete,
};

int http_answer_init(struct http_answer *a, size_t max, const char *const *names,
                     size_t n_names)
{
    http_parser *p = malloc(sizeof(*p));

    memset(a, 0, sizeof(*a));
    if (!p)
        return -ENOMEM;
    http_parser_init(p, HTTP_RESPONSE);
    p->data = a;
    a->parser = p;
    a->names = names;
    a->n_names = n_names < HTTP_ANSWER_HEADERS ? n_names : HTTP_ANSWER_HEADERS;
    a->max = max;
    a->cur = -1;
    return 0;
}

int http_answer_feed(struct http_answer *a, const char *data, size_t len, const char **why)
{
    http_parser *p = a->parser;
    enum http_errno e;

    *why = "";
    if (a->complete)
        return 0;
    http_parser_execute(p, &answer_settings, data, len);
    e = HTTP_PARSER_ERRNO(p);
    if (a->complete)
        return 0;
    if (a->too_big)
        return -EFBIG;
    if (e != HPE_OK) {
        *why = http_errno_description(e);
        return -EPROTO;
    }
    if (len == 0) {
        *why = "the connection ended before a whole answer";
        return -EPROTO;
    }
    return 0;
}

void http_answer_clear(struct http_answer *a)
{
    free(a->parser);
    free(a->body);
    for (size_t i = 0; i < HTTP_ANSWER_HEADERS; i++)
        free(a->header[i]);
    memset(a, 0, sizeof(*a));
    a->cur = -1;
}
