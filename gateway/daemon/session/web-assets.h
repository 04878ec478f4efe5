/*
 * web-assets.h: the management page's files as compiled into the daemon
 * by gateway/web/embed.py (docs/web.md).
 */
#ifndef MTLSGW_WEB_ASSETS_H
#define MTLSGW_WEB_ASSETS_H

#include <stddef.h>

/* Sent with every file of the page: no inline script or style, no framing,
 * no form posting anywhere, nothing fetched from elsewhere (docs/web.md). */
#define WEB_SECURITY_HEADERS                                                                      \
    "Content-Security-Policy: default-src 'self'; frame-ancestors 'none'; "                       \
    "base-uri 'none'; form-action 'none'\r\n"                                                     \
    "Referrer-Policy: no-referrer\r\n"                                                            \
    "X-Frame-Options: DENY\r\n"
/* A file's headers: revalidated every time (If-None-Match -> 304). */
#define WEB_ASSET_HEADERS(etag)                                                                   \
    WEB_SECURITY_HEADERS "Cache-Control: no-cache\r\nVary: Accept-Encoding\r\n"                   \
                         "Content-Encoding: gzip\r\nETag: " etag "\r\n"

struct web_asset {
    const char *path; /* "/" or "/ui/app.js" */
    const char *content_type;
    const char *etag;        /* strong, quoted */
    const char *headers;     /* WEB_ASSET_HEADERS(etag) */
    const unsigned char *gz; /* gzip -9n of the file */
    size_t gz_len;
    size_t len; /* uncompressed */
};

extern const struct web_asset web_assets[];
extern const size_t web_n_assets;
extern const size_t web_assets_gzip_total;

#endif
