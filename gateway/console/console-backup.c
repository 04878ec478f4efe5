/*
 * mtlsgw backup, restore: the appliance's state as a POSIX tar (ustar),
 * readable with `tar -tvf` (docs/backup.md). Never a key, never the PIN:
 * the keys cannot leave the token, and the PIN file is not state.
 *
 * Entries: mtlsgw-backup.json (what it is), mtlsgw.conf (the config),
 * pki/NAME and pki/{cross,issued}/NAME (the pki dir's files).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <gnutls/abstract.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <json-c/json.h>

#include "config.h"
#include "console.h"
#include "fsutil.h"
#include "p11.h"
#include "pki-rollover.h"
#include "pki.h"
#include "privs.h"
#include "registry.h"

#define FILE_MAX (64u * 1024 * 1024)
#define ARCHIVE_MAX (512u * 1024 * 1024)
#define BLOCK 512

/* The pki dir's subdirectories that are state (one level, files only). */
static const char *const state_dirs[] = {PKI_CROSS_DIR, "issued"};

struct buf {
    unsigned char *p;
    size_t len, cap;
};

static int buf_put(struct buf *b, const void *data, size_t len)
{
    if (b->len + len > b->cap) {
        size_t cap = b->cap ? b->cap : 65536;
        unsigned char *np;
        while (cap < b->len + len)
            cap *= 2;
        np = realloc(b->p, cap);
        if (!np)
            return -ENOMEM;
        b->p = np;
        b->cap = cap;
    }
    memcpy(b->p + b->len, data, len);
    b->len += len;
    return 0;
}

static void octal(char *field, size_t width, unsigned long long v)
{
    snprintf(field, width, "%0*llo", (int)width - 1, v);
}

/* One regular file entry (ustar). */
static int tar_add(struct buf *b, const char *name, const void *data, size_t len, unsigned mode)
{
    unsigned char h[BLOCK] = {0};
    static const unsigned char zeros[BLOCK] = {0};
    unsigned sum = 0;
    int rc;

    if (strlen(name) >= 100)
        return -ENAMETOOLONG;
    memcpy(h, name, strlen(name));
    octal((char *)h + 100, 8, mode & 0777);
    octal((char *)h + 108, 8, 0);
    octal((char *)h + 116, 8, 0);
    octal((char *)h + 124, 12, len);
    octal((char *)h + 136, 12, (unsigned long long)time(NULL));
    memset(h + 148, ' ', 8);
    h[156] = '0';
    memcpy(h + 257, "ustar", 6);
    memcpy(h + 263, "00", 2);
    for (size_t i = 0; i < BLOCK; i++)
        sum += h[i];
    snprintf((char *)h + 148, 8, "%06o", sum);
    h[155] = ' ';
    if ((rc = buf_put(b, h, BLOCK)) < 0 || (rc = buf_put(b, data, len)) < 0)
        return rc;
    return len % BLOCK ? buf_put(b, zeros, BLOCK - len % BLOCK) : 0;
}

static bool name_ok(const char *s)
{
    if (!s[0] || s[0] == '.')
        return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '-' || *s == '_' || *s == '.'))
            return false;
    return true;
}

/* Whether text holds a private key (never put one in a backup). */
static bool holds_key(const char *text, size_t len)
{
    static const char mark[] = "PRIVATE KEY-----";

    for (size_t i = 0; i + sizeof(mark) - 1 <= len; i++)
        if (text[i] == 'P' && memcmp(text + i, mark, sizeof(mark) - 1) == 0)
            return true;
    return false;
}

static bool same_file(const char *a, const char *b)
{
    struct stat sa, sb;

    return a && b && stat(a, &sa) == 0 && stat(b, &sb) == 0 && sa.st_dev == sb.st_dev &&
           sa.st_ino == sb.st_ino;
}

/* The regular files of dir (sub "" or a state dir) into the archive. */
static int add_dir(struct buf *b, const struct config *cfg, const char *sub, size_t *count)
{
    char *dir = sub[0] ? fs_join(cfg->pki.dir, sub) : strdup(cfg->pki.dir);
    DIR *d = dir ? opendir(dir) : NULL;
    struct dirent *e;
    int rc = 0;

    if (!d) {
        rc = dir && errno == ENOENT && sub[0] ? 0 : dir ? -errno : -ENOMEM;
        if (rc < 0)
            con_err("backup", "cannot read %s: %s", dir ? dir : cfg->pki.dir, strerror(-rc));
        free(dir);
        return rc;
    }
    while (rc == 0 && (e = readdir(d))) {
        char *path, *text = NULL, name[PATH_MAX];
        struct stat st;
        size_t len = 0;
        if (!name_ok(e->d_name) || strcmp(e->d_name, "lock") == 0)
            continue;
        path = fs_join(dir, e->d_name);
        if (!path) {
            rc = -ENOMEM;
            break;
        }
        /* Regular files only (not followed), never the PIN file. */
        if (lstat(path, &st) < 0 || !S_ISREG(st.st_mode) || same_file(path, cfg->token.pin_file)) {
            free(path);
            continue;
        }
        rc = fs_read_file(path, FILE_MAX, &text, &len);
        if (rc < 0) {
            con_err("backup", "cannot read %s: %s", path, strerror(-rc));
        } else if (holds_key(text, len)) {
            fprintf(stderr, "mtlsgw backup: %s holds a private key: left out\n", path);
        } else {
            snprintf(name, sizeof(name), "pki/%s%s%s", sub, sub[0] ? "/" : "", e->d_name);
            rc = tar_add(b, name, text, len, st.st_mode);
            if (rc == -ENAMETOOLONG) {
                fprintf(stderr, "mtlsgw backup: %s: name too long, left out\n", path);
                rc = 0;
            } else if (rc == 0) {
                (*count)++;
            }
        }
        free(text);
        free(path);
    }
    closedir(d);
    free(dir);
    return rc;
}

static int manifest(struct buf *b, struct console *con, size_t n)
{
    struct json_object *o = json_object_new_object();
    char when[32], label[128] = PKI_LABEL_CA;
    struct pki *pki = NULL;
    const char *text;
    int rc;

    if (!o)
        return -ENOMEM;
    if (pki_new(con->cfg, &pki) == 0)
        pki_ca_label(pki, label, sizeof(label));
    pki_free(pki);
    time_format_utc(time(NULL), when, sizeof(when));
    json_object_object_add(o, "format", json_object_new_string("mtlsgw-backup 1"));
    json_object_object_add(o, "made", json_object_new_string(when));
    json_object_object_add(o, "pki_dir", json_object_new_string(con->cfg->pki.dir));
    json_object_object_add(o, "token", json_object_new_string(con->cfg->token.uri));
    json_object_object_add(o, "ca_key_label", json_object_new_string(label));
    json_object_object_add(o, "files", json_object_new_int64((int64_t)n));
    json_object_object_add(o, "keys", json_object_new_string(
                                          "none: they stay on the token (docs/backup.md)"));
    text = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY |
                                                 JSON_C_TO_STRING_NOSLASHESCAPE);
    rc = tar_add(b, "mtlsgw-backup.json", text, strlen(text), 0644);
    json_object_put(o);
    return rc;
}

int cmd_backup(struct console *con, int argc, char **argv)
{
    static const struct option opts[] = {
        {"out", required_argument, NULL, 'o'},
        {"force", no_argument, NULL, 'f'},
        {NULL, 0, NULL, 0},
    };
    static const unsigned char end[2 * BLOCK] = {0};
    struct buf files = {0}, all = {0};
    const char *out = NULL;
    bool force = false;
    char *conf = NULL;
    size_t conf_len = 0, n = 0;
    int c, rc = EXIT_FAIL;

    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (c == 'o')
            out = optarg;
        else if (c == 'f')
            force = true;
        else
            return con_usage("backup");
    }
    if (!out || optind != argc)
        return con_usage("backup");
    if (con_load_config(con) != EXIT_OK)
        return EXIT_FAIL;
    if (!force && fs_out_fd(out) < 0 && access(out, F_OK) == 0) {
        con_err("backup", "--out %s: exists; give --force to replace it", out);
        return EXIT_FAIL;
    }
    if (con_as_daemon() < 0)
        return EXIT_FAIL;
    {
        char *pki_ca = fs_join(con->cfg->pki.dir, "ca.crt");
        if (!pki_ca || access(pki_ca, F_OK) < 0) {
            con_as_invoker();
            con_err("backup", "no CA in %s: nothing to back up", con->cfg->pki.dir);
            free(pki_ca);
            goto out;
        }
        free(pki_ca);
    }
    if (add_dir(&files, con->cfg, "", &n) < 0)
        goto invoker;
    for (size_t i = 0; i < sizeof(state_dirs) / sizeof(state_dirs[0]); i++)
        if (add_dir(&files, con->cfg, state_dirs[i], &n) < 0)
            goto invoker;
    con_as_invoker();
    /* The config as the invoker reads it (root's /etc/mtlsgw). */
    if (fs_read_file(con->conf_path, FILE_MAX, &conf, &conf_len) == 0 &&
        tar_add(&files, "mtlsgw.conf", conf, conf_len, 0640) < 0)
        goto out;
    if (manifest(&all, con, n) < 0 || buf_put(&all, files.p, files.len) < 0 ||
        buf_put(&all, end, sizeof(end)) < 0) {
        con_err("backup", "out of memory");
        goto out;
    }
    if (con_write_file("backup", "--out", out, all.p, all.len, 0600, force) < 0)
        goto out;
    fprintf(con_note_stream(out),
            "backup of %s (%zu files, config %s) written to %s: no key, no PIN in it\n",
            con->cfg->pki.dir, n, conf ? con->conf_path : "not readable", out);
    rc = EXIT_OK;
    goto out;
invoker:
    con_as_invoker();
out:
    free(conf);
    free(files.p);
    free(all.p);
    return rc;
}

/* ---- restore ---------------------------------------------------------- */

struct entry {
    char name[101];
    const unsigned char *data;
    size_t len;
    unsigned mode;
};

static unsigned long long parse_octal(const unsigned char *f, size_t n)
{
    unsigned long long v = 0;

    for (size_t i = 0; i < n && f[i] >= '0' && f[i] <= '7'; i++)
        v = v * 8 + (unsigned)(f[i] - '0');
    return v;
}

/* pki/NAME or pki/SUB/NAME with SUB a state dir; mtlsgw.conf and the
 * manifest; anything else (absolute, .., links, devices) is refused. */
static bool entry_name_ok(const char *name)
{
    char copy[101], *slash, *rest;

    if (strcmp(name, "mtlsgw.conf") == 0 || strcmp(name, "mtlsgw-backup.json") == 0)
        return true;
    if (strncmp(name, "pki/", 4) != 0)
        return false;
    snprintf(copy, sizeof(copy), "%s", name + 4);
    slash = strchr(copy, '/');
    if (!slash)
        return name_ok(copy);
    *slash = '\0';
    rest = slash + 1;
    for (size_t i = 0; i < sizeof(state_dirs) / sizeof(state_dirs[0]); i++)
        if (strcmp(copy, state_dirs[i]) == 0)
            return name_ok(rest) && !strchr(rest, '/');
    return false;
}

static int tar_parse(const unsigned char *p, size_t len, struct entry **out, size_t *n_out,
                     char *err, size_t errlen)
{
    struct entry *v = NULL;
    size_t n = 0, off = 0;

    while (off + BLOCK <= len) {
        const unsigned char *h = p + off;
        unsigned sum = 0, want;
        unsigned long long size;
        struct entry *nv;
        bool zero = true;
        for (size_t i = 0; i < BLOCK; i++)
            zero = zero && h[i] == 0;
        if (zero)
            break;
        for (size_t i = 0; i < BLOCK; i++)
            sum += i >= 148 && i < 156 ? ' ' : h[i];
        want = (unsigned)parse_octal(h + 148, 8);
        size = parse_octal(h + 124, 12);
        if (sum != want || memcmp(h + 257, "ustar", 5) != 0 || size > len - off - BLOCK) {
            snprintf(err, errlen, "not an mtlsgw backup: a damaged or foreign tar header at "
                     "byte %zu", off);
            free(v);
            return -EBADMSG;
        }
        off += BLOCK;
        if (h[156] == '5') /* a directory: made as needed */
            continue;
        nv = realloc(v, (n + 1) * sizeof(*v));
        if (!nv) {
            free(v);
            return -ENOMEM;
        }
        v = nv;
        memcpy(v[n].name, h, 100);
        v[n].name[100] = '\0';
        if ((h[156] != '0' && h[156] != '\0') || !entry_name_ok(v[n].name)) {
            snprintf(err, errlen, "refusing entry '%s': only the state's regular files belong "
                     "in an mtlsgw backup", v[n].name);
            free(v);
            return -EBADMSG;
        }
        v[n].data = p + off;
        v[n].len = (size_t)size;
        v[n].mode = (unsigned)parse_octal(h + 100, 8) & 0644;
        n++;
        off += (size_t)((size + BLOCK - 1) / BLOCK * BLOCK);
    }
    *out = v;
    *n_out = n;
    return 0;
}

static const struct entry *find_entry(const struct entry *v, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(v[i].name, name) == 0)
            return &v[i];
    return NULL;
}

/* The token holds the private key, under the label the backup names, whose
 * public half is in the backup's ca.crt. */
static int check_token(struct console *con, const struct entry *v, size_t n, char *err,
                       size_t errlen)
{
    const struct entry *ca = find_entry(v, n, "pki/ca.crt"), *lab = find_entry(v, n,
                                                                             "pki/ca.label");
    gnutls_x509_crt_t crt = NULL;
    gnutls_pubkey_t cert_pub = NULL, tok_pub = NULL;
    struct pki *pki = NULL;
    char label[128] = PKI_LABEL_CA, *a = NULL, *b = NULL;
    gnutls_datum_t d;
    int rc;

    if (lab && lab->len && lab->len < sizeof(label)) {
        memcpy(label, lab->data, lab->len);
        label[lab->len] = '\0';
        label[strcspn(label, "\r\n")] = '\0';
    }
    d.data = (unsigned char *)ca->data;
    d.size = (unsigned)ca->len;
    if (gnutls_x509_crt_init(&crt) < 0 ||
        gnutls_x509_crt_import(crt, &d, GNUTLS_X509_FMT_PEM) < 0 ||
        gnutls_pubkey_init(&cert_pub) < 0 || gnutls_pubkey_import_x509(cert_pub, crt, 0) < 0) {
        snprintf(err, errlen, "the backup's ca.crt is not a PEM certificate");
        rc = -EBADMSG;
        goto out;
    }
    if ((rc = pki_new(con->cfg, &pki)) < 0 || (rc = pki_open_token(pki, err, errlen)) < 0)
        goto out;
    rc = p11_key_exists(pki->tok, label);
    if (rc == 1)
        rc = p11_pubkey_load(pki->tok, label, &tok_pub);
    else if (rc == 0)
        rc = -ENOENT;
    if (rc == 0 && (p11_pubkey_id_hex(cert_pub, &a) < 0 || p11_pubkey_id_hex(tok_pub, &b) < 0))
        rc = -ENOMEM;
    if (rc == 0 && strcmp(a, b) != 0)
        rc = -EKEYREJECTED;
    if (rc < 0)
        snprintf(err, errlen,
                 "the token %s does not hold the CA key of this backup (label '%s'%s): a "
                 "backup restores only onto the token its CA key lives on (docs/backup.md: a "
                 "replaced token means a new CA or re-enrollment)",
                 con->cfg->token.uri, label,
                 rc == -ENOENT ? ": no such key" : rc == -EKEYREJECTED ? ": another key" : "");
out:
    free(a);
    free(b);
    if (tok_pub)
        gnutls_pubkey_deinit(tok_pub);
    if (cert_pub)
        gnutls_pubkey_deinit(cert_pub);
    if (crt)
        gnutls_x509_crt_deinit(crt);
    pki_free(pki);
    return rc;
}

/* Every pki/ entry into dir (made by the caller), as the daemon's user. */
static int write_entries(const char *dir, const struct entry *v, size_t n, char *err,
                         size_t errlen)
{
    for (size_t i = 0; i < sizeof(state_dirs) / sizeof(state_dirs[0]); i++) {
        char *sub = fs_join(dir, state_dirs[i]);
        int rc = sub ? 0 : -ENOMEM;
        for (size_t j = 0; rc == 0 && j < n; j++) {
            size_t l = strlen(state_dirs[i]);
            if (strncmp(v[j].name + 4, state_dirs[i], l) == 0 && v[j].name[4 + l] == '/')
                rc = fs_mkdir(sub, 0755);
        }
        free(sub);
        if (rc < 0) {
            snprintf(err, errlen, "cannot create %s/%s: %s", dir, state_dirs[i],
                     strerror(-rc));
            return rc;
        }
    }
    for (size_t i = 0; i < n; i++) {
        char *path;
        int rc;
        if (strncmp(v[i].name, "pki/", 4) != 0)
            continue;
        path = fs_join(dir, v[i].name + 4);
        rc = path ? fs_write_atomic(path, v[i].data, v[i].len, v[i].mode ? v[i].mode : 0640)
                  : -ENOMEM;
        if (rc < 0)
            snprintf(err, errlen, "cannot write %s: %s", path ? path : v[i].name,
                     fs_strerror(rc));
        free(path);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* rm -r of a directory this command made, never following a link: a
 * link planted inside (by whoever can write there) is removed, not
 * followed. */
static int remove_at(int parent, const char *name)
{
    int fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    DIR *d;
    struct dirent *e;

    if (fd < 0)
        return unlinkat(parent, name, 0) < 0 ? -errno : 0;
    d = fdopendir(fd);
    if (!d) {
        close(fd);
        return -errno;
    }
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
            remove_at(dirfd(d), e->d_name);
    closedir(d);
    return unlinkat(parent, name, AT_REMOVEDIR) < 0 ? -errno : 0;
}

static void remove_tree(const char *dir)
{
    remove_at(AT_FDCWD, dir);
}

/* Build the new dir beside the live one, then swap them by rename. */
static int restore_swap(struct console *con, const struct entry *v, size_t n, char *kept,
                        size_t keptlen, char *err, size_t errlen)
{
    const char *dir = con->cfg->pki.dir;
    char tmp[PATH_MAX], stamp[32];
    time_t now = time(NULL);
    struct tm tm;
    bool live = access(dir, F_OK) == 0;
    int rc;

    gmtime_r(&now, &tm);
    strftime(stamp, sizeof(stamp), "%Y%m%dT%H%M%SZ", &tm);
    snprintf(tmp, sizeof(tmp), "%s.restore-XXXXXX", dir);
    snprintf(kept, keptlen, "%s.before-restore-%s", dir, stamp);
    /* A fresh name no one else can have made (mkdtemp: 0700, then opened
     * to the daemon's user). */
    rc = mkdtemp(tmp) ? 0 : -errno;
    if (rc == 0 && (chmod(tmp, 0750) < 0 || chown(tmp, privs_daemon_uid(),
                                                  privs_daemon_gid()) < 0))
        rc = -errno;
    if (rc < 0) {
        snprintf(err, errlen, "cannot create %s: %s", tmp, strerror(-rc));
        if (rc != -EEXIST && access(tmp, F_OK) == 0 && strstr(tmp, "XXXXXX") == NULL)
            remove_tree(tmp);
        return rc;
    }
    if ((rc = con_as_daemon()) < 0)
        goto fail;
    rc = write_entries(tmp, v, n, err, errlen);
    con_as_invoker();
    if (rc < 0)
        goto fail;
    if (live && rename(dir, kept) < 0) {
        rc = -errno;
        snprintf(err, errlen, "cannot move %s to %s: %s", dir, kept, strerror(errno));
        goto fail;
    }
    if (rename(tmp, dir) < 0) {
        rc = -errno;
        snprintf(err, errlen, "cannot move %s to %s: %s", tmp, dir, strerror(errno));
        if (live)
            rename(kept, dir);
        goto fail;
    }
    if (!live)
        kept[0] = '\0';
    return 0;
fail:
    remove_tree(tmp);
    return rc;
}

static void restore_config(struct console *con, const struct entry *conf)
{
    char *cur = NULL;
    size_t len = 0;

    if (!conf)
        return;
    if (fs_read_file(con->conf_path, FILE_MAX, &cur, &len) == 0) {
        if (len != conf->len || memcmp(cur, conf->data, len) != 0)
            printf("note: the backup's config differs from %s, which is kept; see it with\n"
                   "      tar -xOf FILE mtlsgw.conf\n",
                   con->conf_path);
        free(cur);
    }
}

/*
 * The live setup's revocations the backup would take back: serials revoked
 * in the live registry that the backup's registry holds active (or not at
 * all). An older backup must never silently trust a compromised key again.
 * Returns how many, their names listed in out; -errno when the live
 * registry cannot be read.
 */
static int lost_revocations(const struct console *con, struct registry *backup, char *out,
                            size_t outlen)
{
    char *path = fs_join(con->cfg->pki.dir, "registry.json"), err[256];
    struct registry *live = NULL;
    size_t used = 0;
    int rc, lost = 0;

    out[0] = '\0';
    if (!path)
        return -ENOMEM;
    rc = access(path, F_OK) == 0 ? registry_load(path, &live, err, sizeof(err)) : 0;
    free(path);
    if (rc < 0 || !live)
        return rc;
    if ((rc = registry_index(backup)) < 0)
        goto out;
    for (size_t i = 0; i < registry_count(live); i++) {
        const struct peer *p = registry_at(live, i), *b;

        if (p->status != PEER_REVOKED)
            continue;
        b = registry_find_serial(backup, p->serial);
        if (b && b->status == PEER_REVOKED)
            continue;
        lost++;
        if (used < outlen)
            used += (size_t)snprintf(out + used, outlen - used, "%s%s (serial %s)",
                                     lost > 1 ? ", " : "", p->name, p->serial);
    }
    rc = lost;
out:
    registry_free(live);
    return rc;
}

int cmd_restore(struct console *con, int argc, char **argv)
{
    static const struct option opts[] = {
        {"force", no_argument, NULL, 'f'},
        {"unrevoke", no_argument, NULL, 'u'},
        {NULL, 0, NULL, 0},
    };
    char lost[1024];
    struct entry *v = NULL;
    struct registry *reg = NULL;
    char *data = NULL, *ca = NULL, err[3 * PATH_MAX + 256] = "", kept[PATH_MAX];
    const struct entry *e;
    size_t len = 0, n = 0;
    bool force = false, unrevoke = false;
    int c, rc = EXIT_FAIL;

    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (c == 'f')
            force = true;
        else if (c == 'u')
            unrevoke = true;
        else
            return con_usage("restore");
    }
    if (optind + 1 != argc)
        return con_usage("restore");
    if (con_load_config(con) != EXIT_OK)
        return EXIT_FAIL;
    if (con_read_file("restore", "FILE", argv[optind], ARCHIVE_MAX, &data, &len) < 0)
        return EXIT_FAIL;
    if (tar_parse((unsigned char *)data, len, &v, &n, err, sizeof(err)) < 0) {
        con_err("restore", "%s: %s", argv[optind], err[0] ? err : "out of memory");
        goto out;
    }
    if (!find_entry(v, n, "mtlsgw-backup.json") || !find_entry(v, n, "pki/ca.crt") ||
        !(e = find_entry(v, n, "pki/registry.json"))) {
        con_err("restore", "%s: not an mtlsgw backup (it needs mtlsgw-backup.json, "
                "pki/ca.crt and pki/registry.json)", argv[optind]);
        goto out;
    }
    if (registry_parse((const char *)e->data, e->len, &reg, err, sizeof(err)) < 0) {
        con_err("restore", "%s: its registry does not parse: %s", argv[optind], err);
        goto out;
    }
    ca = fs_join(con->cfg->pki.dir, "ca.crt");
    if (ca && access(ca, F_OK) == 0 && !force) {
        con_err("restore", "%s holds a live setup (%s): give --force to replace it (it is "
                "kept as %s.before-restore-STAMP)", con->cfg->pki.dir, ca, con->cfg->pki.dir);
        goto out;
    }
    if (con_as_daemon() < 0)
        goto out;
    rc = check_token(con, v, n, err, sizeof(err));
    if (rc == 0 && !unrevoke && (c = lost_revocations(con, reg, lost, sizeof(lost))) != 0) {
        if (c < 0)
            snprintf(err, sizeof(err), "the live registry in %s cannot be read (%s): it "
                     "is what says which revocations the backup would undo",
                     con->cfg->pki.dir, strerror(-c));
        else
            snprintf(err, sizeof(err), "the backup would trust %d peer(s) revoked since it "
                     "was made: %s; revoke them again after the restore, or give "
                     "--unrevoke if that is what you want", c, lost);
        rc = -EPERM;
    }
    con_as_invoker();
    if (rc < 0) {
        rc = EXIT_FAIL;
        con_err("restore", "%s", err);
        goto out;
    }
    rc = EXIT_FAIL;
    if (restore_swap(con, v, n, kept, sizeof(kept), err, sizeof(err)) < 0) {
        con_err("restore", "%s; nothing changed", err);
        goto out;
    }
    restore_config(con, find_entry(v, n, "mtlsgw.conf"));
    printf("restored %zu entries into %s; the token's CA key matches\n", n, con->cfg->pki.dir);
    if (kept[0])
        printf("the setup it replaced is kept in %s\n", kept);
    printf("next: restart mtlsgwd (systemctl restart mtlsgwd, or /etc/init.d/mtlsgwd restart)\n");
    rc = EXIT_OK;
out:
    registry_free(reg);
    free(ca);
    free(v);
    free(data);
    return rc;
}
