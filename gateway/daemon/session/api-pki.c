/*
 * api-pki.c: GET /api/v1/ca and /api/v1/crl, for any authenticated role: a
 * controller that trusts this appliance fetches its CA and CRL over the
 * channel it already authenticated, instead of copying files by hand.
 */
#include "api-pki.h"

#include "daemon.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fsutil.h"
#include "http.h"
#include "log.h"
#include "pki.h"

#define PEM_MAX (1024 * 1024)

static void plain(struct api_reply *r, int status, const char *msg)
{
    r->status = status;
    r->content_type = "text/plain";
    r->body = strdup(msg);
    r->body_len = r->body ? strlen(r->body) : 0;
}

/* The file at path when it holds a PEM block named label, else a 500 and
 * the reason in the log (the client learns no path). */
static void serve_pem(struct api_reply *r, const char *path, const char *label)
{
    char *text = NULL;
    size_t len = 0;
    int rc = fs_read_file(path, PEM_MAX, &text, &len);

    if (rc < 0) {
        log_err("management API: cannot read %s: %s", path, fs_strerror(rc));
        plain(r, 500, "cannot read it now; see the daemon's log\n");
        return;
    }
    if (!strstr(text, label)) {
        log_err("management API: %s holds no %s", path, label);
        free(text);
        plain(r, 500, "cannot read it now; see the daemon's log\n");
        return;
    }
    r->status = 200;
    r->content_type = "application/x-pem-file";
    r->body = text;
    r->body_len = len;
}

void api_get_ca(struct daemon *d, struct conn *c, const struct http_request *req,
                const char *param, struct api_reply *r)
{
    serve_pem(r, d->pki->ca_path, "-----BEGIN CERTIFICATE-----");
}

void api_get_crl(struct daemon *d, struct conn *c, const struct http_request *req,
                 const char *param, struct api_reply *r)
{
    serve_pem(r, d->pki->crl_path, "-----BEGIN X509 CRL-----");
}
