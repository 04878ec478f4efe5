/*
 * fuzz-http: HTTP/1.1 request framing (gateway/core/http.h) as gateway/daemon/session/conn.c
 * drives it: bytes arrive in chunks of any size, several requests may be
 * pipelined in one read, and whatever the reader did not consume is fed
 * again after the request is answered.
 *
 * Input: 2 bytes choose max-body and the chunking, the rest is the stream.
 */
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
out:
    free(in);
    http_reader_free(r);
    return 0;
}
