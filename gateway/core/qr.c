/*
 * qr.c: QR codes with libqrencode (OpenWrt ships it as libqrencode), drawn
 * as SVG and as terminal text (qr.h).
 */
#include "qr.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <qrencode.h>

#define QUIET 4 /* modules of white around the code (ISO/IEC 18004) */

/* A growing string. */
struct buf {
    char *s;
    size_t len, cap;
    bool failed;
};

static void put(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(struct buf *b, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (b->failed)
        return;
    for (;;) {
        va_start(ap, fmt);
        n = vsnprintf(b->s ? b->s + b->len : NULL, b->s ? b->cap - b->len : 0, fmt, ap);
        va_end(ap);
        if (n < 0) {
            b->failed = true;
            return;
        }
        if (b->s && b->len + (size_t)n < b->cap) {
            b->len += (size_t)n;
            return;
        }
        size_t cap = b->cap ? b->cap * 2 : 4096;
        while (cap <= b->len + (size_t)n)
            cap *= 2;
        char *ns = realloc(b->s, cap);
        if (!ns) {
            b->failed = true;
            return;
        }
        b->s = ns;
        b->cap = cap;
    }
}

static int encode(const char *text, QRcode **out)
{
    QRcode *q;

    if (!text || !*text)
        return -EINVAL;
    q = QRcode_encodeString8bit(text, 0, QR_ECLEVEL_M);
    if (!q)
        return errno == ENOMEM ? -ENOMEM : -EINVAL; /* ERANGE: too long */
    *out = q;
    return 0;
}

static bool dark(const QRcode *q, int x, int y)
{
    if (x < 0 || y < 0 || x >= q->width || y >= q->width)
        return false;
    return q->data[(size_t)y * (size_t)q->width + (size_t)x] & 1;
}

static int finish(struct buf *b, char **out)
{
    if (b->failed) {
        free(b->s);
        return -ENOMEM;
    }
    *out = b->s;
    return 0;
}

int qr_svg(const char *text, char **out)
{
    QRcode *q = NULL;
    struct buf b = {0};
    int rc, n;

    if ((rc = encode(text, &q)) < 0)
        return rc;
    n = q->width + 2 * QUIET;
    put(&b,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 %d %d\" width=\"%d\" "
        "height=\"%d\" shape-rendering=\"crispEdges\">"
        "<rect width=\"%d\" height=\"%d\" fill=\"#fff\"/><path fill=\"#000\" d=\"",
        n, n, n * 6, n * 6, n, n);
    for (int y = 0; y < q->width; y++) {
        for (int x = 0; x < q->width;) {
            int run = 0;
            while (dark(q, x + run, y))
                run++;
            if (run)
                put(&b, "M%d %dh%dv1h-%dz", x + QUIET, y + QUIET, run, run);
            x += run ? run : 1;
        }
    }
    put(&b, "\"/></svg>\n");
    QRcode_free(q);
    return finish(&b, out);
}

int qr_text(const char *text, char **out)
{
    /* Indexed by (top light) | (bottom light) << 1. */
    static const char *const cell[4] = {" ", "\xe2\x96\x80", "\xe2\x96\x84", "\xe2\x96\x88"};
    QRcode *q = NULL;
    struct buf b = {0};
    int rc;

    if ((rc = encode(text, &q)) < 0)
        return rc;
    for (int y = -QUIET; y < q->width + QUIET; y += 2) {
        for (int x = -QUIET; x < q->width + QUIET; x++) {
            bool top = !dark(q, x, y);
            bool bottom = y + 1 < q->width + QUIET && !dark(q, x, y + 1);
            put(&b, "%s", cell[top | bottom << 1]);
        }
        put(&b, "\n");
    }
    QRcode_free(q);
    return finish(&b, out);
}
