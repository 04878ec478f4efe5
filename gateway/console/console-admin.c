/* What makes the console safe to type at: confirmations, outputs that are
 * not overwritten by accident, the nearest command for a typo. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

#include "console.h"
#include "fsutil.h"

int con_confirm(const char *cmd, const char *lost, bool yes)
{
    char line[16];

    fprintf(stderr, "mtlsgw %s: %s\n", cmd, lost);
    if (yes)
        return EXIT_OK;
    if (!isatty(STDIN_FILENO) || !isatty(STDERR_FILENO)) {
        con_err(cmd, "not confirmed: no terminal to ask on; give --yes to go ahead");
        return EXIT_USAGE;
    }
    fprintf(stderr, "Type 'yes' to go ahead: ");
    fflush(stderr);
    if (!fgets(line, sizeof(line), stdin) || strcmp(line, "yes\n") != 0) {
        con_err(cmd, "not confirmed; nothing changed");
        return EXIT_FAIL;
    }
    return EXIT_OK;
}

int con_out_check(const char *cmd, const char *opt, const char *path, bool force)
{
    struct stat st;

    /* Checked again, atomically, when written (FS_OUT_KEEP): this early look
     * only spares the token work (a key made, a certificate issued) that a
     * refusal at the end would waste. */
    if (force || fs_out_fd(path) >= 0 || lstat(path, &st) < 0 || !S_ISREG(st.st_mode))
        return EXIT_OK;
    con_err(cmd, "%s %s: file exists; not overwritten (give --force to replace it, or "
            "another FILE)", opt, path);
    return EXIT_FAIL;
}

size_t con_edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    size_t row[33];

    if (la > 32 || lb > 32)
        return (size_t)-1;
    for (size_t j = 0; j <= lb; j++)
        row[j] = j;
    for (size_t i = 1; i <= la; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t up = row[j];
            size_t best = diag + (a[i - 1] != b[j - 1]);
            if (up + 1 < best)
                best = up + 1;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[lb];
}

int con_read_stdin(size_t max, char **out, size_t *len)
{
    size_t n = 0, cap = 4096;
    char *buf = malloc(cap + 1);
    ssize_t r;

    if (!buf)
        return -ENOMEM;
    for (;;) {
        if (n == cap) {
            char *nb;
            if (cap > max) {
                explicit_bzero(buf, n);
                free(buf);
                return -EFBIG;
            }
            nb = realloc(buf, cap * 2 + 1);
            if (!nb) {
                explicit_bzero(buf, n);
                free(buf);
                return -ENOMEM;
            }
            buf = nb;
            cap *= 2;
        }
        r = read(STDIN_FILENO, buf + n, cap - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            int rc = -errno;
            explicit_bzero(buf, n);
            free(buf);
            return rc;
        }
        if (r == 0)
            break;
        n += (size_t)r;
    }
    if (n > max) {
        explicit_bzero(buf, n);
        free(buf);
        return -EFBIG;
    }
    buf[n] = '\0';
    *out = buf;
    *len = n;
    return 0;
}

const char *con_not_a_csr(const char *text, size_t len)
{
    gnutls_datum_t d = {(unsigned char *)text, (unsigned)len};
    gnutls_x509_crt_t crt = NULL;
    gnutls_x509_privkey_t key = NULL;
    bool is_crt = false, is_key = false;

    if (strstr(text, "-----BEGIN CERTIFICATE-----") ||
        strstr(text, "-----BEGIN TRUSTED CERTIFICATE-----"))
        is_crt = true;
    else if (strstr(text, "PRIVATE KEY-----"))
        is_key = true;
    else if (gnutls_x509_crt_init(&crt) == 0 &&
             gnutls_x509_crt_import(crt, &d, GNUTLS_X509_FMT_DER) == 0)
        is_crt = true;
    else if (gnutls_x509_privkey_init(&key) == 0 &&
             gnutls_x509_privkey_import(key, &d, GNUTLS_X509_FMT_DER) == 0)
        is_key = true;
    if (crt)
        gnutls_x509_crt_deinit(crt);
    if (key)
        gnutls_x509_privkey_deinit(key);
    if (is_crt)
        return "it holds a certificate, not a certificate request: give the CSR the device "
               "made ('mtlsgw csr' or 'openssl req -new'); 'mtlsgw explain' reads "
               "certificates";
    if (is_key)
        return "it holds a private key, not a certificate request: make the CSR from it "
               "('openssl req -new -key FILE'), and keep the key on the device";
    return NULL;
}
