/*
 * http.h: HTTP/1.1 request framing for the management and enrollment
 * listeners, on the http-parser library (no hand-written parser), and
 * response formatting.
 */
#ifndef MTLSGW_HTTP_H
#define MTLSGW_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

enum http_method_id { HTTP_M_OTHER = 0, HTTP_M_GET, HTTP_M_POST, HTTP_M_DELETE, HTTP_M_HEAD };

struct http_request {
    enum http_method_id method;
    const char *method_name;
    char *path;  /* without the query */
    char *query; /* after '?', or NULL */
    char *body;  /* NUL-terminated */
    size_t body_len;
    char *content_type;
    char *authorization;
    char *transfer_encoding_hdr; /* Content-Transfer-Encoding, EST */
    /* What the management page needs (web.c): cache, gzip, cross-site check. */
    char *host;
    char *origin;
    char *sec_fetch_site;
    char *accept_encoding;
    char *if_none_match;
    char *if_modified_since;     /* conditional GET (the CRL distribution point) */
    bool keep_alive;
};

struct http_reader;

/* max_body: larger bodies end the request with 413. */
int http_reader_new(size_t max_body, struct http_reader **out);
void http_reader_free(struct http_reader *r);

/*
 * Feed bytes. Returns how many were consumed (the rest belong to the next
 * request: feed them again after http_reader_next()). *status is 0 while
 * reading, 200 when a whole request is ready, or a 4xx code when the input
 * is not acceptable HTTP (the connection must answer and close).
 */
size_t http_reader_feed(struct http_reader *r, const char *data, size_t len, int *status);
const struct http_request *http_reader_request(const struct http_reader *r);
/* Forget the request; ready for the next one. */
void http_reader_next(struct http_reader *r);
/* True while a request has started but is not complete. */
bool http_reader_busy(const struct http_reader *r);

/*
 * An HTTP/1.1 answer, as a client reads it (EST, the CRL fetcher), framed by
 * the http-parser library: chunked bodies are decoded, a body ends at its
 * Content-Length, at its last chunk or at the end of the stream; 1xx interim
 * answers are skipped; 1xx, 204 and 304 have no body. The body is
 * refused past max bytes (not a byte more is kept); the values of up to
 * HTTP_ANSWER_HEADERS header names asked for are kept (512 bytes each).
 */
#define HTTP_ANSWER_HEADERS 2
struct http_answer {
    int status;  /* from the status line, once the head is in */
    char *body;  /* malloc'ed, NUL-terminated; NULL while empty */
    size_t len, cap;
    char *header[HTTP_ANSWER_HEADERS]; /* the value for names[i], or NULL */
    bool complete;                     /* the whole answer is in */
    bool too_big;                      /* the body passed max */
    /* the reader's own */
    const char *const *names;
    size_t n_names, max;
    char field[64];
    size_t field_len;
    bool in_value;
    int cur; /* the index in names of the value being read, or -1 */
    void *parser;
};

/* names: lowercase or not (compared without case); 0 or -ENOMEM. */
int http_answer_init(struct http_answer *a, size_t max, const char *const *names,
                     size_t n_names);
/*
 * What the stream gave; len 0 when it ended. 0 (a->complete once the whole
 * answer is in), -EFBIG (the body passed max), or -EPROTO: not HTTP, *why
 * says how. Bytes after a complete answer are not looked at.
 */
int http_answer_feed(struct http_answer *a, const char *data, size_t len, const char **why);
void http_answer_clear(struct http_answer *a);

/*
 * Format a whole response into a malloc'ed buffer. extra_headers is
 * "Name: value\r\n..." or NULL.
 */
int http_response(int status, const char *content_type, const char *body, size_t body_len,
                  bool keep_alive, const char *extra_headers, char **out, size_t *out_len);
const char *http_reason(int status);

#endif
