/*
 * mtlsgw root: an organization's root CA on a PKCS#11 token of its own
 * (a USB HSM; SoftHSM in tests), kept offline, that signs each appliance's
 * intermediate and revokes it (docs/pki.md).
 *
 * It takes a config of its own (mtlsgw -c root.conf root ...): [token] names
 * the root's token, [pki] dir its state:
 *
 *   root.crt       the root certificate (what every peer and hub trusts)
 *   root-crl.pem   its CRL: the intermediates it revoked
 *   issued.json    every intermediate it signed (serial, name, key, status)
 *   audit.log      one JSON line per change
 *
 * Everything runs as the invoking user: the root belongs to its
 * administrator, not to a daemon.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <gnutls/gnutls.h>
#include <gnutls/abstract.h>
#include <gnutls/x509.h>
#include <json-c/json.h>

#include "config.h"
#include "console.h"
#include "fsutil.h"
#include "p11.h"
#include "pki.h"
#include "pki-chain.h"
#include "registry.h"
#include "verify.h"

#define ROOT_LABEL "mtlsgw-root"
#define CSR_MAX_SIZE (64 * 1024)
#define ISSUED_MAX_SIZE (16 * 1024 * 1024)

struct root {
    struct console *con;
    const struct config *cfg;
    char *dir, *crt_path, *crl_path, *issued_path, *audit_path;
    struct p11_token *tok;
    gnutls_x509_crt_t crt;
    gnutls_privkey_t key;
    struct json_object *issued; /* {"crl_number": N, "issued": [...]} */
    int lock;
};

static void root_free(struct root *r)
{
    if (r->key)
        gnutls_privkey_deinit(r->key);
    if (r->crt)
        gnutls_x509_crt_deinit(r->crt);
    p11_token_free(r->tok);
    json_object_put(r->issued);
    free(r->dir);
    free(r->crt_path);
    free(r->crl_path);
    free(r->issued_path);
    free(r->audit_path);
    if (r->lock >= 0)
        close(r->lock);
}

static int root_open(struct console *con, struct root *r, bool create)
{
    int rc;

    memset(r, 0, sizeof(*r));
    r->lock = -1;
    r->con = con;
    if (con_load_config(con) != EXIT_OK)
        return -EINVAL;
    r->cfg = con->cfg;
    r->dir = strdup(con->cfg->pki.dir);
    r->crt_path = fs_join(r->dir ? r->dir : "", "root.crt");
    r->crl_path = fs_join(r->dir ? r->dir : "", "root-crl.pem");
    r->issued_path = fs_join(r->dir ? r->dir : "", "issued.json");
    r->audit_path = fs_join(r->dir ? r->dir : "", "audit.log");
    if (!r->dir || !r->crt_path || !r->crl_path || !r->issued_path || !r->audit_path)
        return -ENOMEM;
    if (create && (rc = fs_mkdir(r->dir, 0700)) < 0) {
        con_err("root", "cannot create the root's dir %s: %s", r->dir, strerror(-rc));
        return rc;
    }
    rc = fs_lock_dir(r->dir, &r->lock);
    if (rc < 0) {
        con_err("root", "cannot lock %s: %s%s", r->dir, fs_strerror(rc),
                rc == -ENOENT ? " (run 'mtlsgw -c ROOT.conf root init' first)" : "");
        return rc;
    }
    return 0;
}

static int root_token(struct root *r)
{
    char err[512] = "";
    int rc;

    if (r->tok)
        return 0;
    rc = p11_token_open(r->cfg->token.module, r->cfg->token.uri, r->cfg->token.pin_file,
                        &r->tok, err, sizeof(err));
    if (rc < 0)
        con_err("root", "%s", err);
    return rc;
}

/* root.crt, the root key on the token and issued.json. */
static int root_load(struct root *r)
{
    char err[512] = "", *text = NULL;
    size_t len = 0;
    int rc;

    if (access(r->crt_path, F_OK) < 0) {
        con_err("root", "no root in %s: run 'mtlsgw -c ROOT.conf root init --cn NAME' first",
                r->dir);
        return -ENOENT;
    }
    if ((rc = pki_read_cert(r->crt_path, &r->crt, err, sizeof(err))) < 0) {
        con_err("root", "%s", err);
        return rc;
    }
    if ((rc = root_token(r)) < 0)
        return rc;
    if ((rc = p11_key_load(r->tok, ROOT_LABEL, &r->key)) < 0) {
        con_err("root", "token %s: root key '%s' not usable: %s", r->cfg->token.uri,
                ROOT_LABEL, p11_token_error(r->tok));
        return rc;
    }
    rc = fs_read_file(r->issued_path, ISSUED_MAX_SIZE, &text, &len);
    if (rc < 0) {
        con_err("root", "cannot read %s: %s", r->issued_path, fs_strerror(rc));
        return rc;
    }
    r->issued = json_tokener_parse(text);
    free(text);
    if (!r->issued || !json_object_is_type(r->issued, json_type_object)) {
        con_err("root", "%s is not a JSON object: restore it from a backup", r->issued_path);
        return -EBADMSG;
    }
    return 0;
}

static struct json_object *issued_list(struct root *r)
{
    struct json_object *a;

    if (!json_object_object_get_ex(r->issued, "issued", &a)) {
        a = json_object_new_array();
        json_object_object_add(r->issued, "issued", a);
    }
    return a;
}

static const char *jstr(struct json_object *o, const char *key)
{
    struct json_object *v;

    return json_object_object_get_ex(o, key, &v) ? json_object_get_string(v) : NULL;
}

static int save_issued(struct root *r)
{
    const char *text = json_object_to_json_string_ext(r->issued, JSON_C_TO_STRING_PRETTY);
    int rc = fs_write_atomic(r->issued_path, text, strlen(text), 0600);

    if (rc < 0)
        con_err("root", "cannot write %s: %s", r->issued_path, fs_strerror(rc));
    return rc;
}

static void audit(struct root *r, const char *event, struct json_object *f)
{
    char when[32];

    time_format_utc(time(NULL), when, sizeof(when));
    json_object_object_add(f, "time", json_object_new_string(when));
    json_object_object_add(f, "event", json_object_new_string(event));
    json_object_object_add(f, "actor", json_object_new_string(r->con->actor));
    fs_append_line(r->audit_path,
                   json_object_to_json_string_ext(f, JSON_C_TO_STRING_PLAIN |
                                                         JSON_C_TO_STRING_NOSLASHESCAPE),
                   0600);
    json_object_put(f);
}

/* Sign root-crl.pem from issued.json; the CRL number goes up by one. */
static int write_crl(struct root *r)
{
    struct json_object *list = issued_list(r), *num;
    struct p11_revoked *rev = NULL;
    gnutls_x509_crl_t crl = NULL;
    gnutls_datum_t pem = {0};
    size_t n = 0, total = json_object_array_length(list);
    int64_t number = 1;
    int rc;

    if (json_object_object_get_ex(r->issued, "crl_number", &num))
        number = json_object_get_int64(num) + 1;
    rev = calloc(total + 1, sizeof(*rev));
    if (!rev)
        return -ENOMEM;
    for (size_t i = 0; i < total; i++) {
        struct json_object *e = json_object_array_get_idx(list, i), *v;
        const char *st = jstr(e, "status");
        if (!st || strcmp(st, "revoked") != 0)
            continue;
        rev[n].serial_hex = jstr(e, "serial");
        rev[n].when = json_object_object_get_ex(e, "revoked_at", &v)
                          ? (time_t)json_object_get_int64(v) : time(NULL);
        n++;
    }
    rc = p11_crl_sign(r->crt, r->key, rev, n, (uint64_t)number, r->cfg->pki.crl_days, &crl);
    if (rc < 0) {
        con_err("root", "cannot sign the CRL with the root key on %s: %s", r->cfg->token.uri,
                p11_token_error(r->tok)[0] ? p11_token_error(r->tok) : strerror(-rc));
        goto out;
    }
    if (gnutls_x509_crl_export2(crl, GNUTLS_X509_FMT_PEM, &pem) < 0) {
        rc = -EINVAL;
        goto out;
    }
    rc = fs_write_atomic(r->crl_path, pem.data, pem.size, 0644);
    if (rc < 0) {
        con_err("root", "cannot write %s: %s", r->crl_path, fs_strerror(rc));
        goto out;
    }
    json_object_object_add(r->issued, "crl_number", json_object_new_int64(number));
out:
    gnutls_free(pem.data);
    if (crl)
        gnutls_x509_crl_deinit(crl);
    free(rev);
    return rc;
}

static void print_fp(FILE *f, gnutls_x509_crt_t crt)
{
    unsigned char fp[32];
    size_t fplen = sizeof(fp);

    if (gnutls_x509_crt_get_fingerprint(crt, GNUTLS_DIG_SHA256, fp, &fplen) < 0)
        return;
    for (size_t i = 0; i < fplen; i++)
        fprintf(f, "%02X%s", fp[i], i + 1 < fplen ? ":" : "\n");
}

/* ---- root init ----------------------------------------------------------- */

static int root_init(struct console *con, int argc, char **argv)
{
    static const struct option opts[] = {
        {"cn", required_argument, NULL, 'n'},
        {"key-type", required_argument, NULL, 'k'},
        {"days", required_argument, NULL, 'd'},
        {NULL, 0, NULL, 0},
    };
    const char *cn = NULL;
    enum p11_key_type kt = P11_KEY_EC_P384;
    unsigned days = 7300;
    struct p11_issue req = {0};
    struct root r = {.lock = -1};
    gnutls_pubkey_t pub = NULL;
    int c, rc = EXIT_FAIL;

    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (c == 'n')
            cn = optarg;
        else if (c == 'k' && p11_key_type_parse(optarg, &kt) == 0)
            continue;
        else if (c == 'd' && con_parse_uint(optarg, 1, 36500, &days))
            continue;
        else {
            if (c == 'k')
                con_err("root", "--key-type %s: not one of ec-p256, ec-p384, rsa-3072", optarg);
            else if (c == 'd')
                con_err("root", "--days %s: not a number of days from 1 to 36500", optarg);
            return con_usage("root");
        }
    }
    if (!cn || optind != argc || !cn[0] || strlen(cn) > 64) {
        con_err("root", "init needs --cn NAME (1 to 64 characters)");
        return con_usage("root");
    }
    if (root_open(con, &r, true) < 0)
        goto out;
    if (access(r.crt_path, F_OK) == 0) {
        con_err("root", "a root already exists in %s (%s): a root is made once; keep it",
                r.dir, r.crt_path);
        goto out;
    }
    if (root_token(&r) < 0)
        goto out;
    if (p11_key_exists(r.tok, ROOT_LABEL) == 1) {
        con_err("root", "token %s already holds a key labelled '%s' (a root made before?): "
                        "use another token", con->cfg->token.uri, ROOT_LABEL);
        goto out;
    }
    if (p11_token_supports(r.tok, kt) < 0 || p11_key_generate(r.tok, ROOT_LABEL, kt) < 0 ||
        p11_key_load(r.tok, ROOT_LABEL, &r.key) < 0 ||
        p11_pubkey_load(r.tok, ROOT_LABEL, &pub) < 0) {
        con_err("root", "token %s: cannot make the %s root key: %s", con->cfg->token.uri,
                p11_key_type_name(kt), p11_token_error(r.tok));
        goto out;
    }
    req.profile = P11_PROFILE_CA;
    req.cn = cn;
    req.days = days;
    if (p11_cert_issue(NULL, r.key, pub, &req, &r.crt) < 0) {
        con_err("root", "cannot sign the root certificate: %s", p11_token_error(r.tok));
        goto out;
    }
    r.issued = json_object_new_object();
    if (!r.issued || write_crl(&r) < 0 || save_issued(&r) < 0)
        goto out;
    {
        gnutls_datum_t pem = {0};
        if (pki_cert_pem(r.crt, &pem) < 0 ||
            fs_write_atomic(r.crt_path, pem.data, pem.size, 0644) < 0) {
            con_err("root", "cannot write %s", r.crt_path);
            gnutls_free(pem.data);
            goto out;
        }
        gnutls_free(pem.data);
    }
    {
        struct json_object *f = json_object_new_object();
        json_object_object_add(f, "cn", json_object_new_string(cn));
        json_object_object_add(f, "key_type", json_object_new_string(p11_key_type_name(kt)));
        audit(&r, "root-init", f);
    }
    printf("root '%s' made on %s (%s, not extractable), %u days\n", cn, con->cfg->token.uri,
           p11_key_type_name(kt), days);
    printf("  root certificate  %s\n  CRL               %s\n  SHA-256           ",
           r.crt_path, r.crl_path);
    print_fp(stdout, r.crt);
    printf("next: on each appliance 'mtlsgw init --intermediate --cn NAME --csr-out FILE',\n"
           "  here 'mtlsgw -c %s root sign --csr FILE --out NAME.crt'\n",
           con->conf_path);
    rc = EXIT_OK;
out:
    if (pub)
        gnutls_pubkey_deinit(pub);
    root_free(&r);
    return rc;
}

/* ---- root sign ----------------------------------------------------------- */

/* The CSR's CN (what the intermediate is called). */
static int csr_cn(gnutls_x509_crq_t crq, char *cn, size_t len)
{
    size_t l = len;

    if (gnutls_x509_crq_get_dn_by_oid(crq, GNUTLS_OID_X520_COMMON_NAME, 0, 0, cn, &l) < 0 ||
        !cn[0])
        return -EINVAL;
    return 0;
}

/* A key the root revoked is never certified again: the appliance makes a
 * new CA key. True after a message. */
static bool key_was_revoked(struct json_object *list, const char *key_id, const char *csr_path)
{
    for (size_t i = 0; i < json_object_array_length(list); i++) {
        struct json_object *e = json_object_array_get_idx(list, i);
        const char *k = jstr(e, "key_id"), *st = jstr(e, "status");
        if (k && strcmp(k, key_id) == 0 && st && strcmp(st, "revoked") == 0) {
            con_err("root", "CSR in %s: this key belonged to intermediate '%s' (serial %s), "
                            "revoked: the appliance must make a new CA key (init "
                            "--intermediate --force)", csr_path, jstr(e, "cn"),
                    jstr(e, "serial"));
            return true;
        }
    }
    return false;
}

/* One name, one key: an intermediate's subject is its CN alone, and a
 * leaf names its issuer by subject, so a second active intermediate with
 * the CN of one signed for another key could pass for it wherever a name is
 * matched (docs/pki.md). True after a message. */
static bool name_taken(struct json_object *list, const char *cn, const char *key_id,
                       const char *csr_path)
{
    for (size_t i = 0; i < json_object_array_length(list); i++) {
        struct json_object *e = json_object_array_get_idx(list, i);
        const char *c = jstr(e, "cn"), *k = jstr(e, "key_id"), *st = jstr(e, "status");
        if (!c || strcasecmp(c, cn) != 0 || (k && strcmp(k, key_id) == 0) ||
            (st && strcmp(st, "revoked") == 0))
            continue;
        con_err("root", "CSR in %s: subject 'CN=%s' was already issued by this root to "
                        "another key (intermediate serial %s, not revoked): refused. Use a "
                        "CN of its own, or to re-issue that name to a new key revoke the old "
                        "one first (mtlsgw root revoke %s)",
                csr_path, c, jstr(e, "serial") ? jstr(e, "serial") : "?",
                jstr(e, "serial") ? jstr(e, "serial") : "SERIAL");
        return true;
    }
    return false;
}

static struct json_object *issued_entry(gnutls_x509_crt_t crt, const char *serial,
                                        const char *cn, const char *key_id, unsigned path_len)
{
    struct json_object *e = json_object_new_object();

    json_object_object_add(e, "serial", json_object_new_string(serial));
    json_object_object_add(e, "cn", json_object_new_string(cn));
    json_object_object_add(e, "key_id", json_object_new_string(key_id));
    json_object_object_add(e, "path_len", json_object_new_int((int)path_len));
    json_object_object_add(e, "not_before",
                           json_object_new_int64(gnutls_x509_crt_get_activation_time(crt)));
    json_object_object_add(e, "not_after",
                           json_object_new_int64(gnutls_x509_crt_get_expiration_time(crt)));
    json_object_object_add(e, "status", json_object_new_string("active"));
    return e;
}

/* An intermediate named like the root itself would be taken for it by
 * anyone who matches issuers by name: refused. */
static bool roots_own_name(const struct root *r, const char *cn, const char *csr_path)
{
    char rcn[256] = "";
    size_t rl = sizeof(rcn);

    if (gnutls_x509_crt_get_dn_by_oid(r->crt, GNUTLS_OID_X520_COMMON_NAME, 0, 0, rcn, &rl) < 0 ||
        strcasecmp(rcn, cn) != 0)
        return false;
    con_err("root", "CSR in %s: subject 'CN=%s' is the root's own name: refused "
                    "(an intermediate needs a CN of its own)", csr_path, cn);
    return true;
}

static int root_sign(struct console *con, int argc, char **argv)
{
    static const struct option opts[] = {
        {"csr", required_argument, NULL, 'C'},  {"out", required_argument, NULL, 'o'},
        {"path-len", required_argument, NULL, 'p'}, {"days", required_argument, NULL, 'd'},
        {"force", no_argument, NULL, 'f'},      {NULL, 0, NULL, 0},
    };
    const char *csr_path = NULL, *out = NULL;
    unsigned path_len = 0, days = 1825;
    bool force = false;
    struct root r = {.lock = -1};
    char *csr_text = NULL, *key_id = NULL, *serial = NULL, err[512] = "", cn[256] = "";
    size_t csr_len = 0;
    gnutls_x509_crq_t crq = NULL;
    gnutls_pubkey_t pub = NULL;
    gnutls_x509_crt_t crt = NULL;
    gnutls_datum_t pem = {0};
    struct p11_issue req = {0};
    struct json_object *list, *e;
    int c, rc = EXIT_FAIL;

    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'C': csr_path = optarg; break;
        case 'o': out = optarg; break;
        case 'f': force = true; break;
        case 'p':
            if (!con_parse_uint(optarg, 0, 8, &path_len)) {
                con_err("root", "--path-len %s: a number from 0 to 8 (0: the intermediate "
                                "issues end entities only)", optarg);
                return EXIT_FAIL;
            }
            break;
        case 'd':
            if (!con_parse_uint(optarg, 1, 36500, &days)) {
                con_err("root", "--days %s: not a number of days from 1 to 36500", optarg);
                return EXIT_FAIL;
            }
            break;
        default:
            return con_usage("root");
        }
    }
    if (!csr_path || !out || optind != argc) {
        con_err("root", "sign needs --csr FILE and --out FILE");
        return con_usage("root");
    }
    if (con_out_check("root", "--out", out, force) != EXIT_OK)
        return EXIT_FAIL;
    if (con_read_file("root", "--csr", csr_path, CSR_MAX_SIZE, &csr_text, &csr_len) < 0)
        goto out;
    {
        gnutls_datum_t d = {(unsigned char *)csr_text, (unsigned)csr_len};
        if (p11_csr_parse(&d, &crq, err, sizeof(err)) < 0) {
            con_err("root", "CSR in %s: %s", csr_path, err);
            goto out;
        }
    }
    if (csr_cn(crq, cn, sizeof(cn)) < 0) {
        con_err("root", "CSR in %s has no subject CN to name the intermediate", csr_path);
        goto out;
    }
    if (gnutls_pubkey_init(&pub) < 0 || gnutls_pubkey_import_x509_crq(pub, crq, 0) < 0 ||
        p11_pubkey_id_hex(pub, &key_id) < 0) {
        con_err("root", "CSR in %s: its public key cannot be read", csr_path);
        goto out;
    }
    if (root_open(con, &r, false) < 0 || root_load(&r) < 0)
        goto out;
    list = issued_list(&r);
    if (key_was_revoked(list, key_id, csr_path) || name_taken(list, cn, key_id, csr_path) ||
        roots_own_name(&r, cn, csr_path))
        goto out;
    req.profile = P11_PROFILE_CA;
    req.cn = cn;
    req.days = days;
    req.has_path_len = true;
    req.path_len = path_len;
    /* The root's CRL DP ([pki] crl-url of root.conf): hubs that trust this
     * intermediate fetch the root's CRL there (docs/pki.md). */
    req.crl_url = con->cfg->pki.crl_url;
    if (p11_cert_issue(r.crt, r.key, pub, &req, &crt) < 0) {
        con_err("root", "cannot sign the intermediate with the root key on %s: %s",
                con->cfg->token.uri, p11_token_error(r.tok));
        goto out;
    }
    if (p11_cert_serial_hex(crt, &serial) < 0 || pki_cert_pem(crt, &pem) < 0)
        goto out;
    /* The file first: a record without the certificate is worth nothing. */
    if (con_write_file("root", "--out", out, pem.data, pem.size, 0644, force) < 0)
        goto out;
    e = issued_entry(crt, serial, cn, key_id, path_len);
    json_object_array_add(list, e);
    if (save_issued(&r) < 0)
        goto out;
    audit(&r, "root-sign", json_object_get(e));
    {
        char when[32];
        time_format_utc(gnutls_x509_crt_get_expiration_time(crt), when, sizeof(when));
        fprintf(con_note_stream(out),
                "signed intermediate '%s' (path length %u), serial %s, valid until %s, "
                "written to %s\nnext, on the appliance: mtlsgw init --import-ca %s --chain %s\n",
                cn, path_len, serial, when, out, out, r.crt_path);
    }
    rc = EXIT_OK;
out:
    free(csr_text);
    free(key_id);
    free(serial);
    gnutls_free(pem.data);
    if (crt)
        gnutls_x509_crt_deinit(crt);
    if (crq)
        gnutls_x509_crq_deinit(crq);
    if (pub)
        gnutls_pubkey_deinit(pub);
    root_free(&r);
    return rc;
}

/* ---- root revoke, crl, list ---------------------------------------------- */

/* SERIAL (hex, colons allowed) or a certificate file, as a serial. */
static int target_serial(const char *arg, char *serial, size_t len)
{
    gnutls_x509_crt_t crt = NULL;
    char err[256];
    size_t o = 0;

    if (access(arg, F_OK) == 0) {
        if (pki_read_cert(arg, &crt, err, sizeof(err)) < 0) {
            con_err("root", "%s", err);
            return -EINVAL;
        }
        verify_serial_hex(crt, serial, len);
        gnutls_x509_crt_deinit(crt);
        return 0;
    }
    for (const char *p = arg; *p; p++) {
        char ch = *p >= 'A' && *p <= 'F' ? (char)(*p - 'A' + 'a') : *p;
        if (ch == ':')
            continue;
        if (!((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f')) || o + 1 >= len) {
            con_err("root", "%s: neither a certificate file nor a serial in hex", arg);
            return -EINVAL;
        }
        serial[o++] = ch;
    }
    serial[o] = '\0';
    /* As verify_serial_hex writes it: no leading zero octets. */
    while (o > 2 && serial[0] == '0' && serial[1] == '0') {
        memmove(serial, serial + 2, o - 1);
        o -= 2;
    }
    return o ? 0 : -EINVAL;
}

static int root_revoke(struct console *con, int argc, char **argv)
{
    static const struct option opts[] = {
        {"reason", required_argument, NULL, 'r'},
        {NULL, 0, NULL, 0},
    };
    const char *reason = "keyCompromise";
    struct root r = {.lock = -1};
    struct json_object *list, *hit = NULL;
    char serial[130];
    int c, rc = EXIT_FAIL;

    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (c != 'r')
            return con_usage("root");
        reason = optarg;
    }
    if (optind + 1 != argc) {
        con_err("root", "revoke needs one SERIAL or certificate FILE");
        return con_usage("root");
    }
    if (!pki_reason_valid(reason)) {
        con_err("root", "--reason %s: not one of unspecified, keyCompromise, superseded, "
                        "cessationOfOperation", reason);
        return EXIT_FAIL;
    }
    if (target_serial(argv[optind], serial, sizeof(serial)) < 0)
        return EXIT_FAIL;
    if (root_open(con, &r, false) < 0 || root_load(&r) < 0)
        goto out;
    list = issued_list(&r);
    for (size_t i = 0; i < json_object_array_length(list) && !hit; i++) {
        struct json_object *e = json_object_array_get_idx(list, i);
        const char *s = jstr(e, "serial");
        if (s && strcmp(s, serial) == 0)
            hit = e;
    }
    if (!hit) {
        con_err("root", "revoke: this root signed no intermediate with serial %s (see 'root "
                        "list')", serial);
        goto out;
    }
    if (strcmp(jstr(hit, "status"), "revoked") == 0) {
        con_err("root", "revoke: intermediate '%s' (serial %s) is already revoked",
                jstr(hit, "cn"), serial);
        goto out;
    }
    json_object_object_add(hit, "status", json_object_new_string("revoked"));
    json_object_object_add(hit, "revoked_at", json_object_new_int64(time(NULL)));
    json_object_object_add(hit, "reason", json_object_new_string(reason));
    /* CRL first: a failure after it leaves the intermediate refused. */
    if (write_crl(&r) < 0 || save_issued(&r) < 0)
        goto out;
    audit(&r, "root-revoke", json_object_get(hit));
    printf("revoked intermediate '%s' (serial %s, %s); CRL re-signed: %s\n"
           "publish it where the hubs and verifiers fetch it (its distribution point)\n",
           jstr(hit, "cn"), serial, reason, r.crl_path);
    rc = EXIT_OK;
out:
    root_free(&r);
    return rc;
}

static int root_crl(struct console *con, int argc, char **argv)
{
    static const struct option opts[] = {
        {"out", required_argument, NULL, 'o'},
        {"force", no_argument, NULL, 'f'},
        {NULL, 0, NULL, 0},
    };
    const char *out = NULL;
    bool force = false;
    struct root r = {.lock = -1};
    char *text = NULL;
    size_t len = 0;
    int c, rc = EXIT_FAIL;

    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (c == 'o')
            out = optarg;
        else if (c == 'f')
            force = true;
        else
            return con_usage("root");
    }
    if (optind != argc)
        return con_usage("root");
    if (out && con_out_check("root", "--out", out, force) != EXIT_OK)
        return EXIT_FAIL;
    /* Re-signed each time: a fresh nextUpdate, and this is how it is kept
     * from lapsing (the root is offline: run it before crl-days pass). */
    if (root_open(con, &r, false) < 0 || root_load(&r) < 0 || write_crl(&r) < 0 ||
        save_issued(&r) < 0)
        goto out;
    audit(&r, "root-crl", json_object_new_object());
    if (fs_read_file(r.crl_path, ISSUED_MAX_SIZE, &text, &len) < 0) {
        con_err("root", "cannot read back %s", r.crl_path);
        goto out;
    }
    if (out) {
        if (con_write_file("root", "--out", out, text, len, 0644, force) < 0)
            goto out;
        fprintf(con_note_stream(out), "root CRL re-signed (valid %u days): %s, written to %s\n",
                con->cfg->pki.crl_days, r.crl_path, out);
    } else {
        fwrite(text, 1, len, stdout);
    }
    rc = EXIT_OK;
out:
    free(text);
    root_free(&r);
    return rc;
}

static int root_list(struct console *con, int argc, char **argv)
{
    struct root r = {.lock = -1};
    struct json_object *list;
    bool json = argc == 2 && strcmp(argv[1], "--json") == 0;
    int rc = EXIT_FAIL;

    if (argc > 2 || (argc == 2 && !json))
        return con_usage("root");
    if (root_open(con, &r, false) < 0 || root_load(&r) < 0)
        goto out;
    list = issued_list(&r);
    if (json) {
        printf("%s\n", json_object_to_json_string_ext(list, JSON_C_TO_STRING_PRETTY));
    } else {
        printf("%-24s %-34s %-8s %s\n", "NAME", "SERIAL", "STATUS", "NOT AFTER");
        for (size_t i = 0; i < json_object_array_length(list); i++) {
            struct json_object *e = json_object_array_get_idx(list, i), *v;
            char when[32] = "?";
            if (json_object_object_get_ex(e, "not_after", &v))
                time_format_utc((time_t)json_object_get_int64(v), when, sizeof(when));
            printf("%-24s %-34s %-8s %s\n", jstr(e, "cn"), jstr(e, "serial"),
                   jstr(e, "status"), when);
        }
    }
    rc = EXIT_OK;
out:
    root_free(&r);
    return rc;
}

int cmd_root(struct console *con, int argc, char **argv)
{
    static const struct {
        const char *name;
        int (*run)(struct console *, int, char **);
    } subs[] = {
        {"init", root_init}, {"sign", root_sign}, {"revoke", root_revoke},
        {"crl", root_crl},   {"list", root_list},
    };

    if (argc < 2)
        return con_usage("root");
    for (size_t i = 0; i < sizeof(subs) / sizeof(subs[0]); i++)
        if (strcmp(argv[1], subs[i].name) == 0)
            return subs[i].run(con, argc - 1, argv + 1);
    con_err("root", "unknown subcommand '%s' (init, sign, revoke, crl, list)", argv[1]);
    return con_usage("root");
}
