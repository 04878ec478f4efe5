/*
 * fuzz-http: HTTP/1.1 request framing (gateway/core/http.h) as gateway/daemon/session/conn.c
 * drives it: bytes arrive in chunks of any size, several requests may be
 * pipelined in one read, and whatever the reader did not consume is fed
 * again after the request is answered.
 *
 * The same stream is then read as an answer (http_answer, as est-client.c
 * and trust-fetch.c drive it), in reads of the same random sizes, and the
 * end of the stream told.
 *
 * Input: 2 bytes choose max-body and the chunking, the rest is the stream.
 */
#include <errno.h>
#include <string.h>

#include "fuzz.h"
#include "http.h"

static void look_at(const struct http_request *req, size_t max_body)
{
    char *resp = NULL;
    size_t resp_len = 0;

    FUZZ_CHECK(req != NULL);
    FUZZ_CHECK(req->path != NULL && req->path[0] == '/');
    FUZZ_CHECK(strchr(req->path, '?') == NULL);
    FUZZ_CHECK(req->method_name != NULL);
    FUZZ_CHECK(req->body != NULL);
    FUZZ_CHECK(req->body_len <= max_body);
    FUZZ_CHECK(req->body[req->body_len] == '\0');
    /* Touch every string the handlers read (ASan checks the bounds). */
    (void)strlen(req->path);
    if (req->query)
        (void)strlen(req->query);
    if (req->content_type)
        (void)strlen(req->content_type);
    if (req->authorization)
        (void)strlen(req->authorization);
    if (req->transfer_encoding_hdr)
        (void)strlen(req->transfer_encoding_hdr);
    /* An answer echoing the path, as a 404 does. */
    if (http_response(404, "text/plain", req->path, strlen(req->path), req->keep_alive, NULL,
                      &resp, &resp_len) == 0) {
        FUZZ_CHECK(resp_len > 0);
        free(resp);
    }
}

static void answer_pass(const uint8_t *data, size_t size, size_t max, uint32_t seed)
{
    static const char *const names[] = {"content-type", "etag"};
    struct http_answer a;
    const char *why;
    int rc = 0;

    if (http_answer_init(&a, max, names, 2) < 0)
        return;
    for (size_t off = 0; off <= size && rc == 0 && !a.complete;) {
        size_t chunk = fuzz_rand(&seed) % 8 == 0 ? size - off : 1 + fuzz_rand(&seed) % 64;
        if (chunk > size - off)
            chunk = size - off;
        rc = http_answer_feed(&a, (const char *)data + off, chunk, &why); /* 0: the end */
        FUZZ_CHECK(rc == 0 || rc == -EFBIG || rc == -EPROTO);
        FUZZ_CHECK(why != NULL);
        if (chunk == 0)
            break;
        off += chunk;
    }
    FUZZ_CHECK(a.len <= max);
    FUZZ_CHECK(!a.body || a.body[a.len] == '\0');
    FUZZ_CHECK((a.body == NULL) == (a.len == 0));
    for (size_t i = 0; i < HTTP_ANSWER_HEADERS; i++)
        FUZZ_CHECK(!a.header[i] || strlen(a.header[i]) <= 512);
    FUZZ_CHECK(a.status >= 0 && a.status <= 999); /* "HTTP/1.1 0" passes the library */
    http_answer_clear(&a);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct http_reader *r = NULL;
    char *in = NULL;
    size_t in_len = 0, off, max_body;
    uint32_t seed;
    int status = 0, requests = 0;
    bool closed = false;

    if (size < 2)
        return 0;
    max_body = (size_t)(data[0] & 0x7f) * 64; /* 0..8128: both sides of the limit */
    seed = 0x9e3779b9u ^ ((uint32_t)data[1] << 8 | data[0]);
    data += 2;
    size -= 2;
    if (http_reader_new(max_body, &r) < 0)
        return 0;
    in = malloc(size + 1);
    if (!in)
        goto out;

    for (off = 0; off < size && !closed;) {
        /* One read: 1..64 bytes, sometimes everything that is left. */
        size_t chunk = fuzz_rand(&seed) % 8 == 0 ? size - off : 1 + fuzz_rand(&seed) % 64;
        if (chunk > size - off)
            chunk = size - off;
        memcpy(in + in_len, data + off, chunk);
        in_len += chunk;
        off += chunk;
        /* process_input() until it needs more bytes. */
        for (unsigned rounds = 0;; rounds++) {
            size_t used = http_reader_feed(r, in, in_len, &status);
            FUZZ_CHECK(used <= in_len);
            FUZZ_CHECK(rounds < 100000); /* progress: each round answers one request */
            memmove(in, in + used, in_len - used);
            in_len -= used;
            if (status == 0) {
                FUZZ_CHECK(http_reader_request(r) == NULL);
                break;
            }
            if (status != 200) {
                FUZZ_CHECK(status >= 400 && status < 600);
                closed = true; /* the connection answers and closes */
                break;
            }
            look_at(http_reader_request(r), max_body);
            requests++;
            http_reader_next(r);
            FUZZ_CHECK(http_reader_request(r) == NULL);
            FUZZ_CHECK(!http_reader_busy(r));
            if (in_len == 0)
                break;
        }
    }
    (void)requests;
    answer_pass(data, size, max_body, seed);
out:
    free(in);
    http_reader_free(r);
    return 0;
}
