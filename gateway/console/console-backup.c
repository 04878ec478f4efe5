/*
 * mtlsgw backup, restore: the appliance's state as a POSIX tar (ustar),
 * readable with `tar -tvf` (docs/backup.md). Never a key, never the PIN:
 * the keys cannot leave the token, and the PIN file is not state.
 *
 * Entries: mtlsgw-backup.json (what it is, and the name, size, mode and
 * SHA-256 of every other entry), mtlsgw-backup.sig (the CA key's signature
 * of the manifest), mtlsgw.conf (the config), pki/NAME and
 * pki/{cross,issued}/NAME (the pki dir's files). restore believes nothing
 * of an archive before the token's CA key has vouched for every byte.
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
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <json-c/json.h>

#include "config.h"
#include "console.h"
#include "fault.h"
#include "fsutil.h"
#include "invite.h"
#include "p11.h"
#include "pki-gateway.h"
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
        /* Not state: the writers' lock, and mtlsgwd's (gateway/daemon/instance.c). */
        if (!name_ok(e->d_name) || strcmp(e->d_name, "lock") == 0 ||
            strcmp(e->d_name, "mtlsgwd.lock") == 0)
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
            con_err("backup", "cannot read %s: %s", path, fs_strerror(rc));
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

/* ---- the signed manifest ---------------------------------------------- */

#define MANIFEST_NAME "mtlsgw-backup.json"
#define SIGNATURE_NAME "mtlsgw-backup.sig"
#define MANIFEST_FORMAT "mtlsgw-backup 2"
#define SIGNATURE_PEM "MTLSGW BACKUP SIGNATURE"

struct entry {
    char name[101];
    const unsigned char *data;
    size_t len;
    unsigned mode;
};

static int tar_parse(const unsigned char *p, size_t len, struct entry **out, size_t *n_out,
                     char *err, size_t errlen);

static void sha256_hex(const void *data, size_t len, char out[65])
{
    unsigned char d[32];

    out[0] = '\0';
    if (gnutls_hash_fast(GNUTLS_DIG_SHA256, data, len, d) < 0)
        return;
    for (size_t i = 0; i < sizeof(d); i++)
        snprintf(out + 2 * i, 3, "%02x", d[i]);
}

/*
 * mtlsgw-backup.json: what the archive is and, for every other entry but
 * the signature, its name, size, mode and SHA-256; then mtlsgw-backup.sig,
 * the CA key's signature of the manifest's bytes (docs/backup.md). files
 * holds the other entries (already a tar stream).
 */
static int manifest(struct buf *b, struct console *con, struct pki *pki, const struct buf *files,
                    size_t n, char *err, size_t errlen)
{
    struct json_object *o = json_object_new_object(), *list = json_object_new_array();
    char when[32], label[128], fp[65], dn[512] = "?";
    size_t dnlen = sizeof(dn), n_ent = 0;
    struct entry *v = NULL;
    gnutls_pubkey_t pub = NULL;
    gnutls_datum_t der = {0}, sig = {0}, pem = {0}, text;
    int rc = -ENOMEM;

    snprintf(err, errlen, "cannot write the manifest: out of memory");
    if (!o || !list)
        goto out;
    if ((rc = tar_parse(files->p, files->len, &v, &n_ent, err, errlen)) < 0)
        goto out;
    for (size_t i = 0; i < n_ent; i++) {
        struct json_object *e = json_object_new_object();
        char hex[65], mode[8];
        sha256_hex(v[i].data, v[i].len, hex);
        snprintf(mode, sizeof(mode), "%04o", v[i].mode);
        json_object_object_add(e, "name", json_object_new_string(v[i].name));
        json_object_object_add(e, "size", json_object_new_int64((int64_t)v[i].len));
        json_object_object_add(e, "mode", json_object_new_string(mode));
        json_object_object_add(e, "sha256", json_object_new_string(hex));
        json_object_array_add(list, e);
    }
    pki_ca_label(pki, label, sizeof(label));
    if (gnutls_x509_crt_get_dn(pki->ca, dn, &dnlen) < 0)
        snprintf(dn, sizeof(dn), "?");
    if (gnutls_x509_crt_export2(pki->ca, GNUTLS_X509_FMT_DER, &der) < 0) {
        snprintf(err, errlen, "cannot encode the CA certificate");
        rc = -EINVAL;
        goto out;
    }
    sha256_hex(der.data, der.size, fp);
    time_format_utc(time(NULL), when, sizeof(when));
    json_object_object_add(o, "format", json_object_new_string(MANIFEST_FORMAT));
    json_object_object_add(o, "made", json_object_new_string(when));
    json_object_object_add(o, "pki_dir", json_object_new_string(con->cfg->pki.dir));
    json_object_object_add(o, "token", json_object_new_string(con->cfg->token.uri));
    json_object_object_add(o, "ca_key_label", json_object_new_string(label));
    json_object_object_add(o, "ca_subject", json_object_new_string(dn));
    json_object_object_add(o, "ca_sha256", json_object_new_string(fp));
    json_object_object_add(o, "files", json_object_new_int64((int64_t)n));
    json_object_object_add(o, "keys", json_object_new_string(
                                          "none: they stay on the token (docs/backup.md)"));
    json_object_object_add(o, "entries", list);
    list = NULL;
    text.data = (unsigned char *)json_object_to_json_string_ext(
        o, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE);
    text.size = (unsigned)strlen((const char *)text.data);
    if (gnutls_pubkey_init(&pub) < 0 || gnutls_pubkey_import_x509(pub, pki->ca, 0) < 0) {
        snprintf(err, errlen, "cannot read the CA certificate's public key");
        rc = -EINVAL;
        goto out;
    }
    if ((rc = p11_sign_data(pki->ca_key, pub, &text, &sig)) < 0) {
        snprintf(err, errlen, "the CA key '%s' on %s cannot sign the manifest: %s", label,
                 con->cfg->token.uri, strerror(-rc));
        goto out;
    }
    snprintf(err, errlen, "cannot write the manifest: out of memory");
    rc = gnutls_pem_base64_encode2(SIGNATURE_PEM, &sig, &pem) < 0 ? -ENOMEM : 0;
    if (rc == 0)
        rc = tar_add(b, MANIFEST_NAME, text.data, text.size, 0644);
    if (rc == 0)
        rc = tar_add(b, SIGNATURE_NAME, pem.data, pem.size, 0644);
out:
    if (pub)
        gnutls_pubkey_deinit(pub);
    gnutls_free(der.data);
    gnutls_free(sig.data);
    gnutls_free(pem.data);
    json_object_put(list);
    json_object_put(o);
    free(v);
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
    struct pki *pki = NULL;
    const char *out = NULL;
    bool force = false;
    char *conf = NULL, err[1024] = "";
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
    if (con_out_check("backup", "--out", out, force) != EXIT_OK ||
        con_load_config(con) != EXIT_OK)
        return EXIT_FAIL;
    /* The config as the invoker reads it (root's /etc/mtlsgw). */
    if (fs_read_file(con->conf_path, FILE_MAX, &conf, &conf_len) < 0)
        conf = NULL;
    if (con_as_daemon() < 0)
        goto out;
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
    if (conf && tar_add(&files, "mtlsgw.conf", conf, conf_len, 0640) < 0)
        goto invoker;
    /* Signed by the CA key: the token and its PIN, as enroll needs them. */
    if (pki_new(con->cfg, &pki) < 0 || pki_load_ca(pki, err, sizeof(err)) < 0) {
        con_as_invoker();
        con_err("backup", "%s: a backup is signed with the CA key on the token",
                err[0] ? err : "out of memory");
        goto out;
    }
    c = manifest(&all, con, pki, &files, n, err, sizeof(err));
    con_as_invoker();
    if (c < 0) {
        con_err("backup", "%s", err);
        goto out;
    }
    if (buf_put(&all, files.p, files.len) < 0 || buf_put(&all, end, sizeof(end)) < 0) {
        con_err("backup", "out of memory");
        goto out;
    }
    if (con_write_file("backup", "--out", out, all.p, all.len, 0600, force) < 0)
        goto out;
    fprintf(con_note_stream(out),
            "backup of %s (%zu files, config %s) written to %s, signed by the CA key: no "
            "key, no PIN in it\n",
            con->cfg->pki.dir, n, conf ? con->conf_path : "not readable", out);
    rc = EXIT_OK;
    goto out;
invoker:
    con_as_invoker();
out:
    pki_free(pki);
    free(conf);
    free(files.p);
    free(all.p);
    return rc;
}

/* ---- restore ---------------------------------------------------------- */

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

    if (strcmp(name, "mtlsgw.conf") == 0 || strcmp(name, MANIFEST_NAME) == 0 ||
        strcmp(name, SIGNATURE_NAME) == 0)
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

#define ALTERED "the archive was altered or is not an mtlsgw backup of this CA"

static const char *jstr(struct json_object *o, const char *key)
{
    struct json_object *v;

    return json_object_object_get_ex(o, key, &v) && json_object_is_type(v, json_type_string)
               ? json_object_get_string(v)
               : NULL;
}

struct listed {
    const char *name;
    struct json_object *e;
};

static int cmp_listed(const void *a, const void *b)
{
    return strcmp(((const struct listed *)a)->name, ((const struct listed *)b)->name);
}

static int cmp_entry_name(const void *a, const void *b)
{
    const struct entry *x = *(const struct entry *const *)a, *y = *(const struct entry *const *)b;

    return strcmp(x->name, y->name);
}

/* Why entry v differs from its line e of the manifest, or NULL. */
static const char *entry_differs(const struct entry *v, struct json_object *e)
{
    struct json_object *size;
    const char *sum = jstr(e, "sha256"), *m = jstr(e, "mode");
    char hex[65], mode[8];

    sha256_hex(v->data, v->len, hex);
    snprintf(mode, sizeof(mode), "%04o", v->mode);
    if (!json_object_object_get_ex(e, "size", &size) ||
        json_object_get_int64(size) != (int64_t)v->len)
        return "its size differs from the signed manifest's";
    if (!sum || strcmp(sum, hex) != 0)
        return "its SHA-256 differs from the signed manifest's";
    if (!m || strcmp(m, mode) != 0)
        return "its mode differs from the signed manifest's";
    return NULL;
}

static bool is_manifest(const struct entry *v)
{
    return strcmp(v->name, MANIFEST_NAME) == 0 || strcmp(v->name, SIGNATURE_NAME) == 0;
}

/* Every entry but the manifest and its signature is listed in the manifest
 * once, with its size, mode and SHA-256, and nothing else is (both sides
 * sorted by name: an appliance may keep thousands of issued certificates). */
static int entries_match(const struct entry *v, size_t n, struct json_object *list, char *err,
                         size_t errlen)
{
    size_t n_list = 0, n_files = 0;
    struct listed *l = NULL;
    const struct entry **byname = NULL;
    int rc = -EBADMSG;

    if (!json_object_is_type(list, json_type_array)) {
        snprintf(err, errlen, "its manifest lists no entries: " ALTERED);
        return rc;
    }
    n_list = json_object_array_length(list);
    l = calloc(n_list + 1, sizeof(*l));
    byname = calloc(n + 1, sizeof(*byname));
    if (!l || !byname) {
        snprintf(err, errlen, "out of memory");
        rc = -ENOMEM;
        goto out;
    }
    for (size_t j = 0; j < n_list; j++) {
        l[j].e = json_object_array_get_idx(list, j);
        if (!(l[j].name = jstr(l[j].e, "name"))) {
            snprintf(err, errlen, "its manifest has an entry without a name: " ALTERED);
            goto out;
        }
    }
    if (n_list > 1)
        qsort(l, n_list, sizeof(*l), cmp_listed);
    for (size_t j = 1; j < n_list; j++)
        if (strcmp(l[j - 1].name, l[j].name) == 0) {
            snprintf(err, errlen, "its manifest lists '%s' twice: " ALTERED, l[j].name);
            goto out;
        }
    for (size_t i = 0; i < n; i++)
        if (!is_manifest(&v[i]))
            byname[n_files++] = &v[i];
    if (n_files > 1)
        qsort(byname, n_files, sizeof(*byname), cmp_entry_name);
    for (size_t i = 1; i < n_files; i++)
        if (strcmp(byname[i - 1]->name, byname[i]->name) == 0) {
            snprintf(err, errlen, "entry '%s' is in it twice: " ALTERED, byname[i]->name);
            goto out;
        }
    /* Both sorted: one walk finds what is extra, missing or changed. */
    for (size_t i = 0, j = 0; i < n_files || j < n_list;) {
        int c = i == n_files ? 1 : j == n_list ? -1 : strcmp(byname[i]->name, l[j].name);
        const char *why;
        if (c < 0) {
            snprintf(err, errlen, "entry '%s': it is not in the signed manifest: " ALTERED,
                     byname[i]->name);
            goto out;
        }
        if (c > 0) {
            snprintf(err, errlen, "entry '%s' of the signed manifest is missing: " ALTERED,
                     l[j].name);
            goto out;
        }
        if ((why = entry_differs(byname[i], l[j].e))) {
            snprintf(err, errlen, "entry '%s': %s: " ALTERED, byname[i]->name, why);
            goto out;
        }
        i++;
        j++;
    }
    rc = 0;
out:
    free(l);
    free(byname);
    return rc;
}

/* The first certificate of a PEM entry. */
static int entry_cert(const struct entry *e, gnutls_x509_crt_t *out)
{
    gnutls_datum_t d = {(unsigned char *)e->data, (unsigned)e->len};

    if (gnutls_x509_crt_init(out) < 0)
        return -ENOMEM;
    if (gnutls_x509_crt_import(*out, &d, GNUTLS_X509_FMT_PEM) < 0) {
        gnutls_x509_crt_deinit(*out);
        *out = NULL;
        return -EBADMSG;
    }
    return 0;
}

/*
 * Whether this archive is a backup of the CA whose key is on the token,
 * before anything is written: the token holds, under the label the
 * manifest names (a CA key's: mtlsgw-ca...), the key of the backup's CA
 * certificate (chain.pem's first under an organization's root, else
 * ca.crt's); that key signed the manifest; every entry is the manifest's,
 * byte for byte (docs/backup.md).
 */
static int check_backup(struct console *con, const struct entry *v, size_t n, char *err,
                        size_t errlen)
{
    const struct entry *man = find_entry(v, n, MANIFEST_NAME),
                       *sig = find_entry(v, n, SIGNATURE_NAME),
                       *lab = find_entry(v, n, "pki/ca.label"),
                       *cae = find_entry(v, n, "pki/chain.pem");
    struct json_object *o = NULL, *list = NULL;
    struct json_tokener *tok = NULL;
    gnutls_x509_crt_t crt = NULL;
    gnutls_pubkey_t cert_pub = NULL, tok_pub = NULL;
    gnutls_datum_t sig_pem, sig_der = {0}, text;
    struct pki *pki = NULL;
    const char *label = NULL, *format;
    char *a = NULL, *b = NULL;
    int rc = -EBADMSG;

    if (!sig) {
        snprintf(err, errlen, "it carries no signature (%s): " ALTERED " (a backup made "
                 "before backups were signed is refused too: make a new one)", SIGNATURE_NAME);
        goto out;
    }
    tok = json_tokener_new();
    o = tok ? json_tokener_parse_ex(tok, (const char *)man->data, (int)man->len) : NULL;
    format = o ? jstr(o, "format") : NULL;
    if (!o || !format || strcmp(format, MANIFEST_FORMAT) != 0 ||
        !json_object_object_get_ex(o, "entries", &list) ||
        !(label = jstr(o, "ca_key_label")) || strncmp(label, PKI_LABEL_CA,
                                                      strlen(PKI_LABEL_CA)) != 0 ||
        !name_ok(label)) {
        snprintf(err, errlen, "its manifest (%s) is not one this version writes (format '%s', "
                 "a CA key label): " ALTERED, MANIFEST_NAME, format ? format : "none");
        goto out;
    }
    if (lab) {
        size_t l = 0;
        while (l < lab->len && lab->data[l] != '\r' && lab->data[l] != '\n')
            l++;
        if (l != strlen(label) || memcmp(lab->data, label, l) != 0) {
            snprintf(err, errlen, "pki/ca.label does not name the key its manifest names "
                     "('%s'): " ALTERED, label);
            goto out;
        }
    }
    if (entry_cert(cae ? cae : find_entry(v, n, "pki/ca.crt"), &crt) < 0 ||
        gnutls_pubkey_init(&cert_pub) < 0 || gnutls_pubkey_import_x509(cert_pub, crt, 0) < 0) {
        snprintf(err, errlen, "the backup's %s is not a PEM certificate: " ALTERED,
                 cae ? "chain.pem" : "ca.crt");
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
    if (rc < 0) {
        snprintf(err, errlen,
                 "the token %s does not hold the CA key of this backup (label '%s'%s): a "
                 "backup restores only onto the token its CA key lives on (docs/backup.md: a "
                 "replaced token means a new CA or re-enrollment)",
                 con->cfg->token.uri, label,
                 rc == -ENOENT ? ": no such key" : rc == -EKEYREJECTED ? ": another key" : "");
        goto out;
    }
    sig_pem.data = (unsigned char *)sig->data;
    sig_pem.size = (unsigned)sig->len;
    text.data = (unsigned char *)man->data;
    text.size = (unsigned)man->len;
    if (gnutls_pem_base64_decode2(SIGNATURE_PEM, &sig_pem, &sig_der) < 0 ||
        p11_verify_data(tok_pub, &text, &sig_der) < 0) {
        snprintf(err, errlen, "its manifest's signature does not verify with the CA key '%s' "
                 "on %s: " ALTERED, label, con->cfg->token.uri);
        rc = -EBADMSG;
        goto out;
    }
    rc = entries_match(v, n, list, err, errlen);
out:
    gnutls_free(sig_der.data);
    free(a);
    free(b);
    if (tok_pub)
        gnutls_pubkey_deinit(tok_pub);
    if (cert_pub)
        gnutls_pubkey_deinit(cert_pub);
    if (crt)
        gnutls_x509_crt_deinit(crt);
    json_object_put(o);
    if (tok)
        json_tokener_free(tok);
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

/* The invites of tmp still pending that the live dir no longer has (the
 * same name with the same code): withdrawn since the backup was made (or
 * replaced by another code), so dropped. Their names into note. */
static int drop_withdrawn(const char *live_dir, const char *tmp, char *note, size_t notelen,
                          char *err, size_t errlen)
{
    char *lpath = invite_path(live_dir), *npath = invite_path(tmp), name[128];
    struct invites *live = NULL, *set = NULL;
    int64_t now = (int64_t)time(NULL);
    size_t used = strlen(note);
    int rc = lpath && npath ? 0 : -ENOMEM, dropped = 0;

    if (rc == 0 && invites_load(lpath, &live, err, errlen) < 0) {
        /* What the live dir withdrew cannot be told: fail closed, no
         * pending invite of the backup comes back. */
        if (used < notelen)
            used += (size_t)snprintf(note + used, notelen - used, "the live invites cannot be "
                                     "read (%s), so no pending invite of the backup is kept; ",
                                     err);
        live = NULL;
        err[0] = '\0';
    }
    if (rc == 0)
        rc = invites_load(npath, &set, err, errlen);
    for (size_t i = invites_count(set); rc == 0 && i-- > 0;) {
        const struct invite *inv = invites_at(set, i), *l;
        if (invite_state(inv, now) != INVITE_PENDING)
            continue;
        l = invites_find(live, inv->name);
        if (l && strcmp(l->hash, inv->hash) == 0)
            continue;
        snprintf(name, sizeof(name), "%s", inv->name);
        if ((rc = invites_remove(set, name)) < 0)
            break;
        if (used < notelen)
            used += (size_t)snprintf(note + used, notelen - used, "%s%s",
                                     dropped++ ? ", " : "withdrawn since the backup, dropped: "
                                                        "invite ", name);
    }
    if (rc == 0 && dropped && (rc = invites_save(set, npath)) < 0)
        snprintf(err, errlen, "cannot write %s: %s", npath, fs_strerror(rc));
    if (rc == 0 && dropped && used < notelen)
        snprintf(note + used, notelen - used, "; ");
    invites_free(live);
    invites_free(set);
    free(lpath);
    free(npath);
    return rc;
}

/* The CRL number goes on from the live one: an older backup's would go
 * back, and sibling hubs refuse an "older" CRL (trust-fetch). tmp's
 * registry counts on from the live one's last number and its CRL is
 * re-signed with the next. */
static int crl_number_on(struct console *con, const char *tmp, char *note, size_t notelen,
                         char *err, size_t errlen)
{
    char *lpath = fs_join(con->cfg->pki.dir, "registry.json"), *npath = fs_join(tmp,
                                                                                "registry.json");
    struct registry *live = NULL, *reg = NULL;
    struct config cfg = *con->cfg;
    struct pki *pki = NULL;
    uint64_t live_last, cur;
    size_t used = strlen(note);
    int rc = lpath && npath ? 0 : -ENOMEM;

    if (rc == 0 && (rc = registry_load(lpath, &live, err, errlen)) == 0)
        rc = registry_load(npath, &reg, err, errlen);
    if (rc < 0)
        goto out;
    live_last = registry_next_crl_number(live) - 1;
    cur = registry_next_crl_number(reg);
    if (cur > live_last + 1)
        goto out; /* already ahead: the backup's CRL stands */
    /* cur - 1 is the backup's last number: on disk it is to be live_last. */
    while (cur < live_last)
        cur = registry_next_crl_number(reg);
    if (cur == live_last && (rc = registry_save(reg, npath)) < 0) {
        snprintf(err, errlen, "cannot write %s: %s", npath, fs_strerror(rc));
        goto out;
    }
    cur = live_last;
    cfg.pki.dir = (char *)tmp;
    if ((rc = pki_new(&cfg, &pki)) < 0 || (rc = pki_crl_resign(pki, err, errlen)) < 0)
        goto out;
    if (used < notelen)
        snprintf(note + used, notelen - used, "CRL re-signed with number %llu (the live one "
                 "was %llu); ", (unsigned long long)cur + 1, (unsigned long long)live_last);
out:
    pki_free(pki);
    registry_free(live);
    registry_free(reg);
    free(lpath);
    free(npath);
    return rc;
}

/* What the live setup moved past since the backup was made, carried into
 * the new dir (not yet visible), as the daemon's user. */
static int catch_up(struct console *con, const char *tmp, char *note, size_t notelen, char *err,
                    size_t errlen)
{
    char *reg = fs_join(con->cfg->pki.dir, "registry.json");
    int rc = reg ? 0 : -ENOMEM;

    if (rc == 0 && access(reg, F_OK) == 0 &&
        (rc = drop_withdrawn(con->cfg->pki.dir, tmp, note, notelen, err, errlen)) == 0)
        rc = crl_number_on(con, tmp, note, notelen, err, errlen);
    free(reg);
    return rc;
}

/* Build the new dir beside the live one, then swap them by rename. */
static int restore_swap(struct console *con, const struct entry *v, size_t n, char *kept,
                        size_t keptlen, char *note, size_t notelen, char *err, size_t errlen)
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
    /* A fresh name no one else can have made (mkdtemp: 0700, root's), then
     * handed to the daemon's user through a descriptor: whoever may write
     * the pki dir's parent can swap a link in by now. */
    rc = mkdtemp(tmp) ? 0 : -errno;
    if (rc < 0) {
        snprintf(err, errlen, "cannot create %s: %s", tmp, strerror(-rc));
        return rc;
    }
    fault_point("restore-after-mkdtemp");
    if ((rc = con_give_dir(tmp, 0750)) < 0) {
        snprintf(err, errlen, "cannot create %s: %s", tmp, con_give_strerror(rc));
        /* Whatever is there now is not ours to remove. */
        return rc;
    }
    if ((rc = con_as_daemon()) < 0)
        goto fail;
    rc = write_entries(tmp, v, n, err, errlen);
    if (rc == 0)
        rc = catch_up(con, tmp, note, notelen, err, errlen);
    con_as_invoker();
    if (rc < 0)
        goto fail;
    /* A restore in the same second as the last: the next free name */
    for (int i = 2; live && i < 100 && access(kept, F_OK) == 0; i++)
        snprintf(kept, keptlen, "%s.before-restore-%s-%d", dir, stamp, i);
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

/* Whether the token still holds the key of the backup's gateway.crt (a
 * gateway renew --new-key since replaced it): 0, or -ENOENT with err. */
static int gateway_key_check(struct console *con, const struct entry *v, size_t n, char *err,
                             size_t errlen)
{
    const struct entry *gw = find_entry(v, n, "pki/gateway.crt");
    gnutls_x509_crt_t crt = NULL;
    struct pki *pki = NULL;
    char label[128], why[512] = "";
    int rc;

    if (!gw)
        return 0;
    if ((rc = entry_cert(gw, &crt)) < 0) {
        snprintf(err, errlen, "its pki/gateway.crt is not a PEM certificate");
        return rc;
    }
    if ((rc = pki_new(con->cfg, &pki)) == 0)
        rc = pki_gateway_key_label(pki, crt, label, sizeof(label), why, sizeof(why));
    if (rc < 0)
        snprintf(err, errlen, "its gateway certificate's key is not on the token: %s",
                 why[0] ? why : strerror(-rc));
    pki_free(pki);
    gnutls_x509_crt_deinit(crt);
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
 * (or superseded by a reissue) in the live registry that the backup's
 * registry holds active (or not at all). An older backup must never
 * silently trust a compromised key again.
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

        /* A superseded serial (reissue) is off the table as a revoked one
         * is: the backup must not bring it back either. */
        if (p->status == PEER_ACTIVE)
            continue;
        b = registry_find_serial(backup, p->serial);
        if (b && (b->status == PEER_REVOKED || (b->status != PEER_ACTIVE &&
                                                p->status == PEER_SUPERSEDED)))
            continue;
        lost++;
        if (used < outlen)
            used += (size_t)snprintf(out + used, outlen - used, "%s%s (serial %s%s)",
                                     lost > 1 ? ", " : "", p->name, p->serial,
                                     p->status == PEER_SUPERSEDED ? ", superseded" : "");
    }
    rc = lost;
out:
    registry_free(live);
    return rc;
}

/*
 * Whether the archive may replace the live setup, before anything is
 * written: signed by the token's CA key, its registry parses, it takes no
 * revocation back (unless unrevoke), its gateway key is still on the token
 * (over a live setup; else gwerr says so and it goes on). As the daemon's
 * user.
 */
static int restore_check(struct console *con, const struct entry *v, size_t n,
                         const struct entry *e, bool unrevoke, bool live_setup, char *err,
                         size_t errlen, char *gwerr, size_t gwlen)
{
    struct registry *reg = NULL;
    char lost[1024];
    int c, rc;

    /* Nothing of the archive is believed before its signature is. */
    rc = check_backup(con, v, n, err, errlen);
    if (rc == 0 && registry_parse((const char *)e->data, e->len, &reg, err, errlen) < 0) {
        char why[512];
        snprintf(why, sizeof(why), "%.*s", (int)sizeof(why) - 1, err);
        snprintf(err, errlen, "its registry does not parse: %s", why);
        rc = -EBADMSG;
    }
    if (rc == 0 && !unrevoke && (c = lost_revocations(con, reg, lost, sizeof(lost))) != 0) {
        if (c < 0)
            snprintf(err, errlen, "the live registry in %s cannot be read (%s): it "
                     "is what says which revocations the backup would undo",
                     con->cfg->pki.dir, strerror(-c));
        else
            snprintf(err, errlen, "the backup would trust %d peer(s) revoked since it "
                     "was made: %s; revoke them again after the restore, or give "
                     "--unrevoke if that is what you want", c, lost);
        rc = -EPERM;
    }
    /* A gateway key replaced since (gateway renew --new-key): mtlsgwd would
     * not start. Refused over a live setup (back that up anew); into an
     * empty place restored, with the renewal to run next. */
    if (rc == 0 && (c = gateway_key_check(con, v, n, gwerr, gwlen)) < 0 && live_setup) {
        snprintf(err, errlen, "%s; restoring it over the live setup would leave mtlsgwd "
                 "unable to start: back the live setup up anew (mtlsgw backup --out FILE), "
                 "or restore this one into an empty place (move %s away) and then run "
                 "mtlsgw gateway renew --new-key", gwerr, con->cfg->pki.dir);
        rc = -ENOKEY;
    }
    registry_free(reg);
    return rc;
}

/* A pki dir that is a symbolic link (to another disk, say): the swap is
 * made where it points, and the link stays, as every other command reads
 * and writes through it. */
static int restore_at_target(struct console *con)
{
    struct stat st;
    char *real;

    if (lstat(con->cfg->pki.dir, &st) < 0 || !S_ISLNK(st.st_mode))
        return 0;
    if (!(real = realpath(con->cfg->pki.dir, NULL))) {
        con_err("restore", "the pki dir %s is a symbolic link that does not resolve: %s; "
                "nothing was written", con->cfg->pki.dir, strerror(errno));
        return -1;
    }
    fprintf(stderr, "mtlsgw restore: the pki dir %s is a link to %s: restoring there (the "
            "link stays)\n", con->cfg->pki.dir, real);
    free(con->cfg->pki.dir);
    con->cfg->pki.dir = real;
    return 0;
}

int cmd_restore(struct console *con, int argc, char **argv)
{
    static const struct option opts[] = {
        {"force", no_argument, NULL, 'f'},
        {"unrevoke", no_argument, NULL, 'u'},
        {NULL, 0, NULL, 0},
    };
    char note[1024] = "", gwerr[768] = "";
    struct entry *v = NULL;
    char *data = NULL, *ca = NULL, err[3 * PATH_MAX + 256] = "", kept[PATH_MAX];
    const struct entry *e;
    size_t len = 0, n = 0;
    bool force = false, unrevoke = false, live;
    int c, rc = EXIT_FAIL, lock = -1;

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
    if (con_load_config(con) != EXIT_OK || restore_at_target(con) < 0)
        return EXIT_FAIL;
    if (con_read_file("restore", "FILE", argv[optind], ARCHIVE_MAX, &data, &len) < 0)
        return EXIT_FAIL;
    if (tar_parse((unsigned char *)data, len, &v, &n, err, sizeof(err)) < 0) {
        con_err("restore", "%s: %s", argv[optind], err[0] ? err : "out of memory");
        goto out;
    }
    if (!find_entry(v, n, MANIFEST_NAME) || !find_entry(v, n, "pki/ca.crt") ||
        !(e = find_entry(v, n, "pki/registry.json"))) {
        con_err("restore", "%s: not an mtlsgw backup (it needs %s, pki/ca.crt and "
                "pki/registry.json); nothing was written", argv[optind], MANIFEST_NAME);
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
    /* The live dir's lock from the revocation check through the swap: a
     * revoke that comes meanwhile waits, then lands in the restored dir
     * (fs_lock_dir() locks the dir the path names once it has the lock). */
    live = access(con->cfg->pki.dir, F_OK) == 0;
    if (live && (c = fs_lock_dir_only(con->cfg->pki.dir, &lock)) < 0) {
        con_as_invoker();
        con_err("restore", "cannot lock the pki dir %s: %s; nothing was written",
                con->cfg->pki.dir, fs_strerror(c));
        goto out;
    }
    rc = restore_check(con, v, n, e, unrevoke, ca && access(ca, F_OK) == 0, err, sizeof(err),
                       gwerr, sizeof(gwerr));
    con_as_invoker();
    if (rc < 0) {
        rc = EXIT_FAIL;
        con_err("restore", "%s: %s; nothing was written", argv[optind], err);
        goto out;
    }
    rc = EXIT_FAIL;
    fault_point("restore-before-swap");
    if (restore_swap(con, v, n, kept, sizeof(kept), note, sizeof(note), err, sizeof(err)) < 0) {
        con_err("restore", "%s; nothing changed", err);
        goto out;
    }
    restore_config(con, find_entry(v, n, "mtlsgw.conf"));
    printf("restored %zu entries into %s; signed by the token's CA key, every entry "
           "checked\n", n, con->cfg->pki.dir);
    if (note[0]) {
        note[strlen(note) - (strlen(note) >= 2 ? 2 : 0)] = '\0';
        printf("caught up with the live setup: %s\n", note);
    }
    if (kept[0])
        printf("the setup it replaced is kept in %s\n", kept);
    if (gwerr[0])
        printf("warning: %s: mtlsgwd will not start until you run: mtlsgw gateway renew "
               "--new-key\n", gwerr);
    printf("next: restart mtlsgwd (systemctl restart mtlsgwd, or /etc/init.d/mtlsgwd restart)\n");
    rc = EXIT_OK;
out:
    if (lock >= 0)
        close(lock);
    free(ca);
    free(v);
    free(data);
    return rc;
}
