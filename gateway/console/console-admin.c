/* What makes the console safe to type at: confirmations, outputs that are
 * not overwritten by accident, the nearest command for a typo. */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <json-c/json.h>

#include "config.h"
#include "console.h"
#include "control.h"
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
    char err[PATH_MAX + 200];
    int rc;

    if (fs_out_fd(path) >= 0)
        return EXIT_OK;
    if (lstat(path, &st) < 0) {
        /* a new file: its directory must be there */
        char dir[PATH_MAX];
        const char *slash = strrchr(path, '/');
        if (errno == ENOTDIR) {
            rc = -ENOTDIR; /* a file on the way */
            goto refuse;
        }
        if (errno != ENOENT)
            return EXIT_OK; /* the write says what it is */
        snprintf(dir, sizeof(dir), "%.*s", slash ? (int)(slash - path) + 1 : 1,
                 slash ? path : ".");
        if (stat(dir, &st) == 0 && S_ISDIR(st.st_mode))
            return EXIT_OK;
        rc = -ENOENT;
    } else if (S_ISLNK(st.st_mode) && !force) {
        rc = -ELOOP;
    } else if (S_ISLNK(st.st_mode)) {
        /* --force: what the link leads to, judged as the path is */
        struct stat to;
        if (stat(path, &to) < 0 || (!S_ISDIR(to.st_mode) && !S_ISBLK(to.st_mode)))
            return EXIT_OK;
        rc = S_ISDIR(to.st_mode) ? -EISDIR : -EEXIST;
    } else if (S_ISREG(st.st_mode) && !force) {
        rc = -EALREADY;
    } else if (S_ISDIR(st.st_mode)) {
        rc = -EISDIR;
    } else if (S_ISBLK(st.st_mode)) {
        rc = -EEXIST;
    } else {
        return EXIT_OK; /* a character device, FIFO or socket: written in place */
    }
refuse:
    con_out_refusal(opt, path, rc, force, err, sizeof(err));
    con_err(cmd, "%s (nothing was recorded)", err);
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

struct json_object *con_daemon_sessions(struct console *con)
{
    char *answer = NULL, err[256];
    struct json_object *o, *list = NULL;

    if (con_load_config(con) != EXIT_OK)
        return NULL;
    if (control_request(con->cfg->daemon.control_socket, "{\"cmd\":\"status\"}", &answer, err,
                        sizeof(err)) < 0)
        return NULL;
    o = json_tokener_parse(answer);
    free(answer);
    if (o && json_object_object_get_ex(o, "sessions_list", &list) &&
        json_object_is_type(list, json_type_array))
        json_object_get(list);
    else
        list = NULL;
    json_object_put(o);
    return list;
}

bool con_peer_online(struct json_object *sessions, const char *name, const char *serial)
{
    for (size_t i = 0; sessions && i < json_object_array_length(sessions); i++) {
        struct json_object *s = json_object_array_get_idx(sessions, i), *p, *n;
        /* A [trust] issuer's peer of the same name is another peer. */
        if (json_object_object_get_ex(s, "peer", &p) &&
            !json_object_object_get_ex(s, "issuer", &n) &&
            strcmp(json_object_get_string(p), name) == 0 &&
            (!serial || !json_object_object_get_ex(s, "serial", &n) ||
             strcmp(json_object_get_string(n), serial) == 0))
            return true;
    }
    return false;
}

/* A byte count as people read it: 1234567 -> "1.2M". */
static void human_bytes(long long n, char *buf, size_t len)
{
    static const char units[] = "KMGTP";
    double v = (double)n;
    int u = -1;

    if (n < 1024) {
        snprintf(buf, len, "%lld", n);
        return;
    }
    while (v >= 1024 && u < 4) {
        v /= 1024;
        u++;
    }
    snprintf(buf, len, "%.1f%c", v, units[u]);
}

int cmd_sessions(struct console *con, int argc, char **argv)
{
    static const struct option opts[] = {
        {"json", no_argument, NULL, 'j'},
        {NULL, 0, NULL, 0},
    };
    struct json_object *o, *list;
    bool json = false;
    int c;

    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (c != 'j')
            return con_usage("sessions");
        json = true;
    }
    if (optind != argc)
        return con_usage("sessions");
    o = con_ask_daemon(con, "sessions", "{\"cmd\":\"status\"}", " (is mtlsgwd running?)");
    if (!o)
        return EXIT_FAIL;
    if (!json_object_object_get_ex(o, "sessions_list", &list) ||
        !json_object_is_type(list, json_type_array)) {
        con_err("sessions", "the daemon's answer has no list of sessions (an older mtlsgwd?)");
        json_object_put(o);
        return EXIT_FAIL;
    }
    if (json) {
        puts(json_object_to_json_string_ext(list, JSON_C_TO_STRING_PRETTY |
                                                      JSON_C_TO_STRING_NOSLASHESCAPE));
        json_object_put(o);
        return EXIT_OK;
    }
    printf("%-6s %-16s %-8s %-10s %-40s %-20s %8s %8s %s\n", "ID", "PEER", "ROLE", "LISTENER",
           "FROM", "SINCE", "IN", "OUT", "TUNNEL");
    for (size_t i = 0; i < json_object_array_length(list); i++) {
        struct json_object *s = json_object_array_get_idx(list, i), *f;
        char in[24], out[24], tun[96] = "-", who[160];
#define F(k) (json_object_object_get_ex(s, k, &f) ? json_object_get_string(f) : "-")
        human_bytes(json_object_object_get_ex(s, "bytes_in", &f) ? json_object_get_int64(f) : 0,
                    in, sizeof(in));
        human_bytes(json_object_object_get_ex(s, "bytes_out", &f) ? json_object_get_int64(f)
                                                                  : 0,
                    out, sizeof(out));
        if (json_object_object_get_ex(s, "interface", &f))
            snprintf(tun, sizeof(tun), "%s %s", json_object_get_string(f), F("address"));
        /* A [trust] issuer's peer: ISSUER/NAME (as kick takes it). */
        if (json_object_object_get_ex(s, "issuer", &f))
            snprintf(who, sizeof(who), "%s/", json_object_get_string(f));
        else
            who[0] = '\0';
        snprintf(who + strlen(who), sizeof(who) - strlen(who), "%s", F("peer"));
        printf("%-6s %-16s %-8s %-10s %-40s %-20s %8s %8s %s\n", F("id"), who, F("role"),
               F("listener"), F("remote"), F("since"), in, out, tun);
#undef F
    }
    if (json_object_array_length(list) == 0)
        printf("(no sessions)\n");
    json_object_put(o);
    return EXIT_OK;
}
