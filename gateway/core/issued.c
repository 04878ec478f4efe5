/* issued.c: see issued.h. */
#include "issued.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fsutil.h"
#include "verify.h"

#define ISSUED_DIR "issued"
#define CERT_MAX_SIZE (1024 * 1024)

char *issued_path(const char *pki_dir, const char *serial)
{
    char name[80], *sub, *path;
    size_t n = strlen(serial);

    /* The serial names a file: hex only, so no name can step out of the dir. */
    if (n == 0 || n > 64 || strspn(serial, "0123456789abcdef") != n)
        return NULL;
    snprintf(name, sizeof(name), "%s.crt", serial);
    sub = fs_join(pki_dir, ISSUED_DIR);
    if (!sub)
        return NULL;
    path = fs_join(sub, name);
    free(sub);
    return path;
}

int issued_store(const char *pki_dir, gnutls_x509_crt_t crt)
{
    gnutls_datum_t pem = {0};
    char serial[64], *sub = NULL, *path = NULL;
    int rc;

    verify_serial_hex(crt, serial, sizeof(serial));
    sub = fs_join(pki_dir, ISSUED_DIR);
    path = issued_path(pki_dir, serial);
    if (!sub || !path) {
        rc = -ENOMEM;
        goto out;
    }
    rc = fs_mkdir(sub, 0750);
    if (rc < 0)
        goto out;
    if (gnutls_x509_crt_export2(crt, GNUTLS_X509_FMT_PEM, &pem) < 0) {
        rc = -EINVAL;
        goto out;
    }
    rc = fs_write_atomic(path, pem.data, pem.size, 0644);
out:
    gnutls_free(pem.data);
    free(sub);
    free(path);
    return rc;
}

int issued_load(const char *pki_dir, const char *serial, gnutls_x509_crt_t *out)
{
    gnutls_x509_crt_t crt = NULL;
    char *path = issued_path(pki_dir, serial), *text = NULL;
    size_t len = 0;
    gnutls_datum_t d;
    int rc;

    if (!path)
        return -EINVAL;
    rc = fs_read_file(path, CERT_MAX_SIZE, &text, &len);
    if (rc < 0)
        goto out;
    d.data = (unsigned char *)text;
    d.size = (unsigned)len;
    if (gnutls_x509_crt_init(&crt) < 0) {
        rc = -ENOMEM;
        goto out;
    }
    if (gnutls_x509_crt_import(crt, &d, GNUTLS_X509_FMT_PEM) < 0) {
        rc = -EBADMSG;
        goto out;
    }
    *out = crt;
    crt = NULL;
out:
    if (crt)
        gnutls_x509_crt_deinit(crt);
    free(text);
    free(path);
    return rc;
}
