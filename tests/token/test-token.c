/*
 * test-token.c: the `token` suite. pkcs11/ against a real SoftHSM2 token
 * made in a temporary directory, checked with GnuTLS itself and with the
 * tools peers use (p11tool, openssl, keytool).
 *
 * Another token (tests/tpm/run: swtpm and tpm2-pkcs11) is tested by setting
 *   MTLSGW_TEST_MODULE     the module to load; the caller has made the tokens
 *                          TOKEN_LABEL and PIN_TOKEN_LABEL, user PIN USER_PIN
 *   MTLSGW_TEST_KEY_TYPES  the key types the token must serve, comma-separated
 *                          (default: all); another type may be refused, and
 *                          the suite then prints the token's reason
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <CUnit/Basic.h>
#include <gnutls/gnutls.h>
#include <gnutls/abstract.h>
#include <gnutls/pkcs11.h>
#include <gnutls/x509.h>

#include "p11.h"

#define TOKEN_LABEL "mtlsgw-test"
#define TOKEN_URI "pkcs11:token=" TOKEN_LABEL
#define PIN_TOKEN_LABEL "mtlsgw-pin"
#define PIN_TOKEN_URI "pkcs11:token=" PIN_TOKEN_LABEL
/* Distinctive, so that finding it in a message cannot be a coincidence. */
#define USER_PIN "71942853"
#define WRONG_PIN "60318275"
#define SO_PIN "5544332211"

static char tmpdir[256];
static char pin_path[512];
static const char *module;
static const char *self_path;
static struct p11_token *tok;
/* Tokens made by the caller (MTLSGW_TEST_MODULE), not by softhsm2-util. */
static bool premade;
static bool required[P11_KEY_RSA_3072 + 1] = { true, true, true };
/* Key pairs the suite made on the token, and the CA's type (P-256 when the
 * token refuses P-384). */
static const char *made[4];
static size_t n_made;
static enum p11_key_type ca_type = P11_KEY_EC_P384;

/* ---- expected/got helpers -------------------------------------------- */

#define EXPECT_INT(got, want)                                                                \
    do {                                                                                     \
        long long g_ = (long long)(got), w_ = (long long)(want);                             \
        if (g_ != w_)                                                                        \
            fprintf(stderr, "\n  %s:%d: %s: expected %lld, got %lld\n", __FILE__, __LINE__,  \
                    #got, w_, g_);                                                           \
        CU_ASSERT_EQUAL(g_, w_);                                                             \
    } while (0)

#define EXPECT_TRUE(cond, ...)                                                               \
    do {                                                                                     \
        int ok_ = !!(cond);                                                                  \
        if (!ok_) {                                                                          \
            fprintf(stderr, "\n  %s:%d: expected %s: ", __FILE__, __LINE__, #cond);          \
            fprintf(stderr, __VA_ARGS__);                                                    \
            fputc('\n', stderr);                                                             \
        }                                                                                    \
        CU_ASSERT_TRUE(ok_);                                                                 \
    } while (0)

#define EXPECT_CONTAINS(hay, needle)                                                         \
    EXPECT_TRUE((hay) != NULL && strstr((hay), (needle)) != NULL, "'%s' in got '%s'",        \
                (needle), (hay) != NULL ? (hay) : "(null)")

#define EXPECT_LACKS(hay, needle)                                                            \
    EXPECT_TRUE((hay) != NULL && strstr((hay), (needle)) == NULL, "no '%s' in got '%s'",     \
                (needle), (hay) != NULL ? (hay) : "(null)")

#define REQUIRE_TOKEN()                                                                      \
    do {                                                                                     \
        if (tok == NULL) {                                                                   \
            CU_FAIL("token not open (an earlier test failed)");                              \
            return;                                                                          \
        }                                                                                    \
    } while (0)

/* ---- fixture helpers ------------------------------------------------- */

static void rm_rf(const char *path)
{
    struct dirent *de;
    struct stat st;
    char sub[1024];
    DIR *d;

    if (lstat(path, &st) < 0)
        return;
    if (S_ISDIR(st.st_mode)) {
        d = opendir(path);
        if (d != NULL) {
            while ((de = readdir(d)) != NULL) {
                if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
                    continue;
                snprintf(sub, sizeof(sub), "%s/%s", path, de->d_name);
                rm_rf(sub);
            }
            closedir(d);
        }
        rmdir(path);
    } else {
        unlink(path);
    }
}

static void cleanup(void)
{
    if (tmpdir[0] != '\0') {
        rm_rf(tmpdir);
        tmpdir[0] = '\0';
    }
}

static void on_signal(int sig)
{
    cleanup();
    signal(sig, SIG_DFL);
    raise(sig);
}

static void path_in_tmp(char *buf, size_t len, const char *name)
{
    snprintf(buf, len, "%s/%s", tmpdir, name);
}

static int write_file(const char *path, const void *data, size_t len, mode_t mode)
{
    int fd;
    ssize_t n;

    unlink(path);
    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    if (fd < 0)
        return -errno;
    n = write(fd, data, len);
    close(fd);
    if (n < 0 || (size_t)n != len)
        return -EIO;
    /* open() honours the umask; the tests need the exact mode. */
    return chmod(path, mode) < 0 ? -errno : 0;
}

/*
 * Run a program (no shell), stdout and stderr captured together into *out
 * (malloc'd, NUL-terminated; may be NULL). extra_env: "NAME=value" set in
 * the child only. Returns the exit status, or -1.
 */
static int run(char *const argv[], const char *extra_env, char **out)
{
    char *buf = NULL;
    size_t len = 0, cap = 0;
    int fds[2], status;
    pid_t pid;
    ssize_t n;

    if (pipe(fds) < 0)
        return -1;
    pid = fork();
    if (pid < 0) {
        close(fds[0]);
        close(fds[1]);
        return -1;
    }
    if (pid == 0) {
        dup2(fds[1], 1);
        dup2(fds[1], 2);
        close(fds[0]);
        close(fds[1]);
        if (extra_env != NULL)
            putenv((char *)extra_env);
        execvp(argv[0], argv);
        _exit(127);
    }
    close(fds[1]);
    for (;;) {
        if (len + 4096 + 1 > cap) {
            char *nb = realloc(buf, cap + 65536);

            if (nb == NULL)
                break;
            buf = nb;
            cap += 65536;
        }
        n = read(fds[0], buf + len, cap - len - 1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        len += (size_t)n;
    }
    close(fds[0]);
    if (buf != NULL)
        buf[len] = '\0';
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR) {
            free(buf);
            return -1;
        }
    }
    if (out != NULL)
        *out = buf;
    else
        free(buf);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static bool have_program(const char *name)
{
    const char *path = getenv("PATH");
    char buf[1024];
    const char *p, *e;

    if (path == NULL)
        path = "/usr/bin:/bin";
    for (p = path; *p != '\0'; p = *e != '\0' ? e + 1 : e) {
        e = strchr(p, ':');
        if (e == NULL)
            e = p + strlen(p);
        snprintf(buf, sizeof(buf), "%.*s/%s", (int)(e - p), p, name);
        if (access(buf, X_OK) == 0)
            return true;
    }
    return false;
}

static int init_token(const char *label)
{
    char *argv[] = { "softhsm2-util", "--init-token", "--free", "--label", (char *)label,
                     "--so-pin", SO_PIN, "--pin", USER_PIN, NULL };
    char *out = NULL;
    int rc;

    rc = run(argv, NULL, &out);
    if (rc != 0)
        fprintf(stderr, "softhsm2-util --init-token %s: exit %d: %s\n", label, rc,
                out != NULL ? out : "");
    free(out);
    return rc == 0 ? 0 : -1;
}

static int write_crt(gnutls_x509_crt_t crt, const char *name, char *path, size_t len)
{
    gnutls_datum_t pem = { NULL, 0 };
    int rc;

    path_in_tmp(path, len, name);
    if (gnutls_x509_crt_export2(crt, GNUTLS_X509_FMT_PEM, &pem) < 0)
        return -1;
    rc = write_file(path, pem.data, pem.size, 0600);
    gnutls_free(pem.data);
    return rc;
}

static int sign_verify(gnutls_privkey_t key, gnutls_pubkey_t pub, gnutls_sign_algorithm_t algo)
{
    static const char msg[] = "mtlsgw token signature test";
    gnutls_datum_t data = { (unsigned char *)msg, sizeof(msg) - 1 };
    gnutls_datum_t sig = { NULL, 0 };
    int rc;

    rc = gnutls_privkey_sign_data2(key, algo, 0, &data, &sig);
    if (rc < 0) {
        fprintf(stderr, "\n  sign (%s): %s\n", gnutls_sign_get_name(algo), gnutls_strerror(rc));
        return rc;
    }
    rc = gnutls_pubkey_verify_data2(pub, algo, 0, &data, &sig);
    if (rc < 0) {
        fprintf(stderr, "\n  verify (%s): %s\n", gnutls_sign_get_name(algo),
                gnutls_strerror(rc));
        goto out;
    }
    /* The same signature must not verify other data. */
    data.size--;
    if (gnutls_pubkey_verify_data2(pub, algo, 0, &data, &sig) >= 0) {
        fprintf(stderr, "\n  verify (%s): accepted altered data\n", gnutls_sign_get_name(algo));
        rc = -1;
    }
out:
    gnutls_free(sig.data);
    return rc;
}

/* ---- shared objects built up by the tests ----------------------------- */

static gnutls_x509_crt_t ca_crt, server_crt, client_crt;

/* ---- tests: key types ------------------------------------------------- */

static void test_key_type_names(void)
{
    enum p11_key_type t = P11_KEY_RSA_3072;

    EXPECT_INT(p11_key_type_parse("ec-p256", &t), 0);
    EXPECT_INT(t, P11_KEY_EC_P256);
    EXPECT_INT(p11_key_type_parse("ec-p384", &t), 0);
    EXPECT_INT(t, P11_KEY_EC_P384);
    EXPECT_INT(p11_key_type_parse("rsa-3072", &t), 0);
    EXPECT_INT(t, P11_KEY_RSA_3072);
    EXPECT_INT(p11_key_type_parse("rsa-1024", &t), -EINVAL);
    EXPECT_INT(t, P11_KEY_RSA_3072);
    EXPECT_INT(strcmp(p11_key_type_name(P11_KEY_EC_P384), "ec-p384"), 0);
}

/* ---- tests: open ------------------------------------------------------ */

static void test_open_missing_module(void)
{
    struct p11_token *t = NULL;
    char err[512] = "";
    char path[600];

    path_in_tmp(path, sizeof(path), "no-such-module.so");
    EXPECT_INT(p11_token_open(path, TOKEN_URI, pin_path, &t, err, sizeof(err)), -ENOENT);
    CU_ASSERT_PTR_NULL(t);
    EXPECT_CONTAINS(err, path);
}

static void test_open_with_module(void)
{
    char err[512] = "";

    EXPECT_INT(p11_token_open(module, TOKEN_URI, pin_path, &tok, err, sizeof(err)), 0);
    if (tok == NULL) {
        fprintf(stderr, "\n  open: %s\n", err);
        return;
    }
    EXPECT_INT(strcmp(p11_token_uri(tok), TOKEN_URI), 0);
    EXPECT_INT(strcmp(p11_token_error(tok), ""), 0);
    EXPECT_TRUE(p11_token_healthy(tok), "healthy token, got: %s", p11_token_error(tok));
}

static void test_open_second_handle(void)
{
    struct p11_token *t = NULL;
    char err[512] = "";

    EXPECT_INT(p11_token_open(module, TOKEN_URI, pin_path, &t, err, sizeof(err)), 0);
    EXPECT_INT(p11_key_exists(t, "no-such-key"), 0);
    p11_token_free(t);
    p11_token_free(NULL);
}

/* Whether a p11-kit .module file names this module (by its file name: p11-kit
 * resolves a bare name in its own module directory). */
static bool p11kit_registers(const char *path)
{
    static const char *const dirs[] = { "/etc/pkcs11/modules", "/usr/share/p11-kit/modules" };
    const char *base = strrchr(path, '/') != NULL ? strrchr(path, '/') + 1 : path;
    char file[1024], line[1024], *v, *slash;
    struct dirent *de;
    bool found = false;
    size_t i, n;
    DIR *d;
    FILE *f;

    for (i = 0; !found && i < sizeof(dirs) / sizeof(dirs[0]); i++) {
        d = opendir(dirs[i]);
        while (d != NULL && !found && (de = readdir(d)) != NULL) {
            n = strlen(de->d_name);
            if (n < 7 || strcmp(de->d_name + n - 7, ".module") != 0)
                continue;
            snprintf(file, sizeof(file), "%s/%s", dirs[i], de->d_name);
            f = fopen(file, "r");
            while (f != NULL && !found && fgets(line, sizeof(line), f) != NULL) {
                if (strncmp(line, "module:", 7) != 0)
                    continue;
                v = line + 7 + strspn(line + 7, " \t");
                v[strcspn(v, " \t\r\n")] = '\0';
                slash = strrchr(v, '/');
                found = strcmp(slash != NULL ? slash + 1 : v, base) == 0;
            }
            if (f != NULL)
                fclose(f);
        }
        if (d != NULL)
            closedir(d);
    }
    return found;
}

/* GnuTLS's PKCS#11 mode is per process: the p11-kit case runs in a child. */
static void test_open_p11kit_auto(void)
{
    char *argv[] = { (char *)self_path, "--auto-open", TOKEN_URI, pin_path, NULL };
    char *out = NULL;
    int rc;

    if (!p11kit_registers(module)) {
        printf("\n  skipped: %s is not registered with p11-kit (no .module file)\n", module);
        return;
    }
    rc = run(argv, NULL, &out);
    EXPECT_TRUE(rc == 0, "child open through p11-kit exit 0, got %d: %s", rc,
                out != NULL ? out : "");
    EXPECT_CONTAINS(out, "auto-open: ok");
    free(out);
}

static void test_open_auto_after_manual(void)
{
    struct p11_token *t = NULL;
    char err[512] = "";

    EXPECT_INT(p11_token_open(NULL, TOKEN_URI, pin_path, &t, err, sizeof(err)), -EBUSY);
    CU_ASSERT_PTR_NULL(t);
    EXPECT_CONTAINS(err, "p11-kit");
}

static void test_open_wrong_pin(void)
{
    struct p11_token *t = NULL;
    char err[512] = "";
    char path[600];

    path_in_tmp(path, sizeof(path), "wrong-pin");
    CU_ASSERT_EQUAL_FATAL(write_file(path, WRONG_PIN "\n", strlen(WRONG_PIN) + 1, 0600), 0);
    EXPECT_INT(p11_token_open(module, PIN_TOKEN_URI, path, &t, err, sizeof(err)), -EACCES);
    CU_ASSERT_PTR_NULL(t);
    EXPECT_CONTAINS(err, "token " PIN_TOKEN_URI ": login failed: wrong PIN (from ");
    EXPECT_CONTAINS(err, path);
    EXPECT_LACKS(err, WRONG_PIN);
    EXPECT_LACKS(err, USER_PIN);

    /* One wrong attempt only: the right PIN still opens it afterwards. */
    memset(err, 0, sizeof(err));
    EXPECT_INT(p11_token_open(module, PIN_TOKEN_URI, pin_path, &t, err, sizeof(err)), 0);
    if (t == NULL)
        fprintf(stderr, "\n  reopen with right PIN: %s\n", err);
    p11_token_free(t);
}

static void test_open_pin_mode_refused(void)
{
    struct p11_token *t = NULL;
    char err[512] = "";
    char path[600], want[700];

    path_in_tmp(path, sizeof(path), "pin-0644");
    CU_ASSERT_EQUAL_FATAL(write_file(path, USER_PIN "\n", strlen(USER_PIN) + 1, 0644), 0);
    EXPECT_INT(p11_token_open(module, TOKEN_URI, path, &t, err, sizeof(err)), -EPERM);
    CU_ASSERT_PTR_NULL(t);
    snprintf(want, sizeof(want), "chmod 600 %s", path);
    EXPECT_CONTAINS(err, want);
    EXPECT_LACKS(err, USER_PIN);
}

static void test_open_pin_file_missing(void)
{
    struct p11_token *t = NULL;
    char err[512] = "";
    char path[600];

    path_in_tmp(path, sizeof(path), "no-pin-here");
    EXPECT_INT(p11_token_open(module, TOKEN_URI, path, &t, err, sizeof(err)), -ENOENT);
    EXPECT_CONTAINS(err, path);
}

static void test_open_pin_crlf(void)
{
    struct p11_token *t = NULL;
    char err[512] = "";
    char path[600];

    path_in_tmp(path, sizeof(path), "pin-crlf");
    CU_ASSERT_EQUAL_FATAL(write_file(path, USER_PIN "\r\n", strlen(USER_PIN) + 2, 0600), 0);
    EXPECT_INT(p11_token_open(module, TOKEN_URI, path, &t, err, sizeof(err)), 0);
    if (t == NULL)
        fprintf(stderr, "\n  open: %s\n", err);
    p11_token_free(t);
}

static void test_open_missing_token(void)
{
    struct p11_token *t = NULL;
    char err[512] = "";

    EXPECT_INT(p11_token_open(module, "pkcs11:token=no-such-token", pin_path, &t, err,
                              sizeof(err)), -ENODEV);
    CU_ASSERT_PTR_NULL(t);
    EXPECT_CONTAINS(err, "token pkcs11:token=no-such-token: not found (is the module loaded? "
                         "is SOFTHSM2_CONF set?)");
}

static void test_open_pin_in_uri_refused(void)
{
    struct p11_token *t = NULL;
    char err[512] = "";

    EXPECT_INT(p11_token_open(module, TOKEN_URI "?pin-value=" USER_PIN, NULL, &t, err,
                              sizeof(err)), -EINVAL);
    EXPECT_LACKS(err, USER_PIN);
    EXPECT_INT(p11_token_open(module, "token=x", NULL, &t, err, sizeof(err)), -EINVAL);
    CU_ASSERT_PTR_NULL(t);
}

/* ---- tests: mechanisms and keys --------------------------------------- */

static void test_supports(void)
{
    enum p11_key_type t;
    int rc;

    REQUIRE_TOKEN();
    for (t = P11_KEY_EC_P256; t <= P11_KEY_RSA_3072; t++) {
        rc = p11_token_supports(tok, t);
        if (rc == -ENOTSUP && !required[t]) {
            printf("\n  token cannot serve %s keys: %s\n", p11_key_type_name(t),
                   p11_token_error(tok));
            continue;
        }
        EXPECT_TRUE(rc == 0, "%s supported, got %d: %s", p11_key_type_name(t), rc,
                    p11_token_error(tok));
    }
    EXPECT_INT(p11_token_supports(tok, (enum p11_key_type)42), -EINVAL);
}

static void test_key_uri(void)
{
    char *uri = NULL;

    REQUIRE_TOKEN();
    EXPECT_INT(p11_key_uri(tok, "gw key;1", &uri), 0);
    EXPECT_TRUE(uri != NULL && strcmp(uri, TOKEN_URI ";object=gw%20key%3B1;type=private") == 0,
                "escaped URI, got %s", uri != NULL ? uri : "(null)");
    free(uri);
    EXPECT_INT(p11_key_uri(tok, "", &uri), -EINVAL);
}

static bool keygen_and_sign(const char *label, enum p11_key_type type)
{
    gnutls_privkey_t key = NULL;
    gnutls_pubkey_t pub = NULL;
    bool ok = false;
    int rc;

    if (tok == NULL) {
        CU_FAIL("token not open (an earlier test failed)");
        return false;
    }
    rc = p11_key_generate(tok, label, type);
    if (rc < 0 && !required[type]) {
        /* A TPM may lack a curve or a key size: the refusal must say why,
         * and leave nothing behind. */
        printf("\n  token cannot serve %s keys: %s\n", p11_key_type_name(type),
               p11_token_error(tok));
        EXPECT_TRUE(p11_token_error(tok)[0] != '\0', "a reason for refusing %s",
                    p11_key_type_name(type));
        EXPECT_INT(p11_key_exists(tok, label), 0);
        return false;
    }
    EXPECT_INT(rc, 0);
    if (rc < 0) {
        fprintf(stderr, "\n  generate %s: %s\n", label, p11_token_error(tok));
        return false;
    }
    made[n_made++] = label;
    EXPECT_INT(p11_key_exists(tok, label), 1);
    EXPECT_INT(p11_key_load(tok, label, &key), 0);
    EXPECT_INT(p11_pubkey_load(tok, label, &pub), 0);
    if (key == NULL || pub == NULL) {
        fprintf(stderr, "\n  load %s: %s\n", label, p11_token_error(tok));
        goto out;
    }
    switch (type) {
    case P11_KEY_EC_P256:
        EXPECT_INT(sign_verify(key, pub, GNUTLS_SIGN_ECDSA_SHA256), 0);
        EXPECT_INT(gnutls_pubkey_get_pk_algorithm(pub, NULL), GNUTLS_PK_ECDSA);
        break;
    case P11_KEY_EC_P384:
        EXPECT_INT(sign_verify(key, pub, GNUTLS_SIGN_ECDSA_SHA384), 0);
        break;
    case P11_KEY_RSA_3072: {
        unsigned bits = 0;

        EXPECT_INT(gnutls_pubkey_get_pk_algorithm(pub, &bits), GNUTLS_PK_RSA);
        EXPECT_INT(bits, 3072);
        EXPECT_INT(sign_verify(key, pub, GNUTLS_SIGN_RSA_SHA256), 0);
        EXPECT_INT(sign_verify(key, pub, GNUTLS_SIGN_RSA_PSS_RSAE_SHA256), 0);
        break;
    }
    }
    ok = true;
out:
    gnutls_privkey_deinit(key);
    gnutls_pubkey_deinit(pub);
    return ok;
}

static void test_keygen_ec_p256(void)
{
    keygen_and_sign("gw", P11_KEY_EC_P256);
}

static void test_keygen_ec_p384(void)
{
    if (keygen_and_sign("ca", P11_KEY_EC_P384) || required[P11_KEY_EC_P384])
        return;
    ca_type = P11_KEY_EC_P256;
    keygen_and_sign("ca", P11_KEY_EC_P256);
}

static void test_keygen_rsa_3072(void)
{
    keygen_and_sign("rsa", P11_KEY_RSA_3072);
}

static void test_keys_not_extractable_p11tool(void)
{
    char provider[600], pin_env[64];
    char *argv[] = { "p11tool", provider, "--list-all-privkeys", "--login", TOKEN_URI, NULL };
    char *out = NULL, *p;
    int rc, keys = 0;

    REQUIRE_TOKEN();
    if (!have_program("p11tool")) {
        printf("\n  skipped: p11tool not installed (gnutls-bin)\n");
        return;
    }
    snprintf(provider, sizeof(provider), "--provider=%s", module);
    snprintf(pin_env, sizeof(pin_env), "GNUTLS_PIN=%s", USER_PIN);
    rc = run(argv, pin_env, &out);
    EXPECT_INT(rc, 0);
    for (p = out; p != NULL && (p = strstr(p, "Flags:")) != NULL; p++) {
        char line[512];
        size_t n = strcspn(p, "\n");

        snprintf(line, sizeof(line), "%.*s", (int)n, p);
        keys++;
        EXPECT_CONTAINS(line, "CKA_SENSITIVE");
        EXPECT_CONTAINS(line, "CKA_PRIVATE");
        EXPECT_LACKS(line, "CKA_EXTRACTABLE");
        EXPECT_CONTAINS(line, "CKA_NEVER_EXTRACTABLE");
    }
    EXPECT_TRUE(keys == (int)n_made, "%zu private keys listed, got %d in: %s", n_made, keys,
                out ? out : "");
    free(out);
}

static void test_keys_not_extractable_attrs(void)
{
    const char *const *labels = made;
    gnutls_pkcs11_obj_t obj = NULL;
    gnutls_pubkey_t pub = NULL;
    unsigned char id[64], want[20];
    size_t id_size, want_size;
    unsigned flags;
    char *uri = NULL;
    size_t i;

    REQUIRE_TOKEN();
    for (i = 0; i < n_made; i++) {
        CU_ASSERT_EQUAL_FATAL(p11_key_uri(tok, labels[i], &uri), 0);
        CU_ASSERT_EQUAL_FATAL(gnutls_pkcs11_obj_init(&obj), 0);
        EXPECT_INT(gnutls_pkcs11_obj_import_url(obj, uri, GNUTLS_PKCS11_OBJ_FLAG_LOGIN), 0);
        flags = 0;
        EXPECT_INT(gnutls_pkcs11_obj_get_flags(obj, &flags), 0);
        EXPECT_TRUE(flags & GNUTLS_PKCS11_OBJ_FLAG_MARK_SENSITIVE, "%s CKA_SENSITIVE, flags %#x",
                    labels[i], flags);
        EXPECT_TRUE(!(flags & GNUTLS_PKCS11_OBJ_FLAG_MARK_EXTRACTABLE),
                    "%s not CKA_EXTRACTABLE, flags %#x", labels[i], flags);
        EXPECT_TRUE(flags & GNUTLS_PKCS11_OBJ_FLAG_MARK_PRIVATE, "%s CKA_PRIVATE, flags %#x",
                    labels[i], flags);
        /* CKA_ID is the public key's SHA-1 key id, as on stored certs. */
        id_size = sizeof(id);
        EXPECT_INT(gnutls_pkcs11_obj_get_info(obj, GNUTLS_PKCS11_OBJ_ID, id, &id_size), 0);
        CU_ASSERT_EQUAL_FATAL(p11_pubkey_load(tok, labels[i], &pub), 0);
        want_size = sizeof(want);
        EXPECT_INT(gnutls_pubkey_get_key_id(pub, GNUTLS_KEYID_USE_SHA1, want, &want_size), 0);
        EXPECT_TRUE(id_size == want_size && memcmp(id, want, id_size) == 0,
                    "%s CKA_ID = key id (%zu bytes), got %zu bytes", labels[i], want_size,
                    id_size);
        gnutls_pubkey_deinit(pub);
        gnutls_pkcs11_obj_deinit(obj);
        free(uri);
        pub = NULL;
        obj = NULL;
        uri = NULL;
    }
}

static void test_keygen_duplicate(void)
{
    REQUIRE_TOKEN();
    EXPECT_INT(p11_key_generate(tok, "gw", P11_KEY_EC_P256), -EEXIST);
    EXPECT_CONTAINS(p11_token_error(tok), "gw");
    EXPECT_CONTAINS(p11_token_error(tok), "already exists");
    /* The message is the reason only (callers name the token), and a
     * successful call clears it. */
    EXPECT_LACKS(p11_token_error(tok), TOKEN_URI);
    EXPECT_INT(p11_key_exists(tok, "gw"), 1);
    EXPECT_INT(strcmp(p11_token_error(tok), ""), 0);
}

static void test_key_delete(void)
{
    gnutls_privkey_t key = NULL;
    gnutls_pubkey_t pub = NULL;

    REQUIRE_TOKEN();
    EXPECT_INT(p11_key_generate(tok, "to-delete", P11_KEY_EC_P256), 0);
    EXPECT_INT(p11_key_exists(tok, "to-delete"), 1);
    EXPECT_INT(p11_key_delete(tok, "to-delete"), 0);
    EXPECT_INT(p11_key_exists(tok, "to-delete"), 0);
    EXPECT_TRUE(p11_pubkey_load(tok, "to-delete", &pub) < 0, "public half deleted too%s", "");
    EXPECT_TRUE(p11_key_load(tok, "to-delete", &key) < 0, "no key after delete%s", "");
    EXPECT_INT(p11_key_delete(tok, "to-delete"), -ENOENT);
    EXPECT_CONTAINS(p11_token_error(tok), "to-delete");
    gnutls_privkey_deinit(key);
    gnutls_pubkey_deinit(pub);
}

static void test_key_load_by_uri(void)
{
    gnutls_privkey_t key = NULL;
    char *uri = NULL;

    REQUIRE_TOKEN();
    CU_ASSERT_EQUAL_FATAL(p11_key_uri(tok, "gw", &uri), 0);
    EXPECT_INT(p11_key_load(tok, uri, &key), 0);
    EXPECT_INT(gnutls_privkey_get_pk_algorithm(key, NULL), GNUTLS_PK_ECDSA);
    gnutls_privkey_deinit(key);
    free(uri);
}

static void test_public_access_without_pin(void)
{
    struct p11_token *t = NULL;
    gnutls_pubkey_t pub = NULL;
    char err[512] = "";

    REQUIRE_TOKEN();
    EXPECT_INT(p11_token_open(module, TOKEN_URI, NULL, &t, err, sizeof(err)), 0);
    if (t == NULL)
        return;
    EXPECT_INT(p11_pubkey_load(t, "gw", &pub), 0);
    EXPECT_INT(p11_key_generate(t, "nopin", P11_KEY_EC_P256), -EACCES);
    EXPECT_CONTAINS(p11_token_error(t), "without a PIN");
    gnutls_pubkey_deinit(pub);
    p11_token_free(t);
}

static void test_pubkey_id_hex(void)
{
    gnutls_pubkey_t a = NULL, b = NULL;
    char *ha = NULL, *hb = NULL, *ha2 = NULL;

    REQUIRE_TOKEN();
    CU_ASSERT_EQUAL_FATAL(p11_pubkey_load(tok, "gw", &a), 0);
    CU_ASSERT_EQUAL_FATAL(p11_pubkey_load(tok, "ca", &b), 0);
    EXPECT_INT(p11_pubkey_id_hex(a, &ha), 0);
    EXPECT_INT(p11_pubkey_id_hex(a, &ha2), 0);
    EXPECT_INT(p11_pubkey_id_hex(b, &hb), 0);
    EXPECT_INT(ha != NULL ? strlen(ha) : 0, 64);
    EXPECT_TRUE(ha && ha2 && strcmp(ha, ha2) == 0, "same id twice, got %s / %s", ha, ha2);
    EXPECT_TRUE(ha && hb && strcmp(ha, hb) != 0, "different keys differ, got %s twice", ha);
    free(ha);
    free(ha2);
    free(hb);
    gnutls_pubkey_deinit(a);
    gnutls_pubkey_deinit(b);
}

/* ---- tests: certificates ---------------------------------------------- */

static void test_ca_self_signed(void)
{
    gnutls_privkey_t key = NULL;
    char path[600];
    char *argv[] = { "openssl", "x509", "-in", path, "-noout", "-text", NULL };
    struct p11_issue req = { .profile = P11_PROFILE_CA, .cn = "mtlsgw test CA",
                             .days = 3650 };
    unsigned ca = 0, usage = 0, crit = 0, status = 99;
    char *out = NULL;
    int rc;

    REQUIRE_TOKEN();
    CU_ASSERT_EQUAL_FATAL(p11_key_load(tok, "ca", &key), 0);
    rc = p11_cert_issue(NULL, key, NULL, &req, &ca_crt);
    EXPECT_INT(rc, 0);
    if (rc < 0)
        goto out;
    EXPECT_INT(gnutls_x509_crt_get_basic_constraints(ca_crt, &crit, &ca, NULL), 1);
    EXPECT_INT(ca, 1);
    EXPECT_INT(gnutls_x509_crt_get_key_usage(ca_crt, &usage, &crit), 0);
    EXPECT_TRUE((usage & GNUTLS_KEY_KEY_CERT_SIGN) && (usage & GNUTLS_KEY_CRL_SIGN),
                "keyCertSign and cRLSign, got usage %#x", usage);
    EXPECT_INT(gnutls_x509_crt_get_signature_algorithm(ca_crt),
               ca_type == P11_KEY_EC_P384 ? GNUTLS_SIGN_ECDSA_SHA384 : GNUTLS_SIGN_ECDSA_SHA256);
    EXPECT_TRUE(gnutls_x509_crt_get_activation_time(ca_crt) <= time(NULL) - 290,
                "activation backdated 5 minutes, got %lld",
                (long long)(gnutls_x509_crt_get_activation_time(ca_crt) - time(NULL)));
    EXPECT_INT(gnutls_x509_crt_verify(ca_crt, &ca_crt, 1, 0, &status), 0);
    EXPECT_INT(status, 0);

    CU_ASSERT_EQUAL_FATAL(write_crt(ca_crt, "ca.pem", path, sizeof(path)), 0);
    EXPECT_INT(run(argv, NULL, &out), 0);
    EXPECT_CONTAINS(out, "CA:TRUE");
    EXPECT_CONTAINS(out, "X509v3 Basic Constraints: critical");
    EXPECT_CONTAINS(out, "X509v3 Key Usage: critical");
    EXPECT_CONTAINS(out, "Certificate Sign, CRL Sign");
    EXPECT_CONTAINS(out, "X509v3 Subject Key Identifier");
    EXPECT_CONTAINS(out, "X509v3 Authority Key Identifier");
    EXPECT_CONTAINS(out,
                    ca_type == P11_KEY_EC_P384 ? "ecdsa-with-SHA384" : "ecdsa-with-SHA256");
    free(out);
out:
    gnutls_privkey_deinit(key);
}

static int verify_chain(gnutls_x509_crt_t crt, unsigned *status)
{
    return gnutls_x509_crt_list_verify(&crt, 1, &ca_crt, 1, NULL, 0, 0, status);
}

static void openssl_verify(gnutls_x509_crt_t crt, const char *name, const char *purpose)
{
    char ca_path[600], path[600];
    char *argv[] = { "openssl", "verify", "-purpose", (char *)purpose, "-CAfile", ca_path,
                     path, NULL };
    char *out = NULL;
    int rc;

    path_in_tmp(ca_path, sizeof(ca_path), "ca.pem");
    CU_ASSERT_EQUAL_FATAL(write_crt(crt, name, path, sizeof(path)), 0);
    rc = run(argv, NULL, &out);
    EXPECT_TRUE(rc == 0, "openssl verify %s exit 0, got %d: %s", name, rc, out ? out : "");
    EXPECT_CONTAINS(out, ": OK");
    free(out);
}

static void test_issue_server(void)
{
    static const char *const hosts[] = { "gw.example.net", "192.0.2.1", "2001:db8::1" };
    struct p11_issue req = { .profile = P11_PROFILE_SERVER, .cn = "gw.example.net",
                             .hosts = hosts, .n_hosts = 3, .days = 365 };
    gnutls_privkey_t ca_key = NULL;
    gnutls_pubkey_t pub = NULL;
    unsigned status = 99, usage = 0, crit = 0;
    char buf[256];
    size_t size;
    int rc;

    REQUIRE_TOKEN();
    if (ca_crt == NULL) {
        CU_FAIL("no CA certificate (earlier test failed)");
        return;
    }
    CU_ASSERT_EQUAL_FATAL(p11_key_load(tok, "ca", &ca_key), 0);
    CU_ASSERT_EQUAL_FATAL(p11_pubkey_load(tok, "gw", &pub), 0);
    rc = p11_cert_issue(ca_crt, ca_key, pub, &req, &server_crt);
    EXPECT_INT(rc, 0);
    if (rc < 0)
        goto out;
    EXPECT_INT(verify_chain(server_crt, &status), 0);
    EXPECT_INT(status, 0);
    size = sizeof(buf);
    EXPECT_INT(gnutls_x509_crt_get_key_purpose_oid(server_crt, 0, buf, &size, NULL), 0);
    EXPECT_INT(strcmp(buf, GNUTLS_KP_TLS_WWW_SERVER), 0);
    EXPECT_INT(gnutls_x509_crt_get_key_usage(server_crt, &usage, &crit), 0);
    EXPECT_INT(usage, GNUTLS_KEY_DIGITAL_SIGNATURE);
    EXPECT_TRUE(gnutls_x509_crt_check_hostname(server_crt, "gw.example.net"),
                "hostname matches%s", "");
    EXPECT_TRUE(gnutls_x509_crt_check_ip(server_crt, (const unsigned char *)"\xc0\x00\x02\x01",
                                         4, 0), "IPv4 SAN 192.0.2.1%s", "");
    EXPECT_TRUE(!gnutls_x509_crt_check_hostname(server_crt, "other.example.net"),
                "other name does not match%s", "");
    openssl_verify(server_crt, "server.pem", "sslserver");
out:
    gnutls_privkey_deinit(ca_key);
    gnutls_pubkey_deinit(pub);
}

/* A client without a token: software key, CSR, certificate from the CSR. */
static gnutls_x509_privkey_t client_key;

static void test_issue_client_from_csr(void)
{
    struct p11_issue req = { .profile = P11_PROFILE_CLIENT, .cn = "spoke1",
                             .uri_san = "urn:mtlsgw:role:tunnel", .days = 365 };
    gnutls_privkey_t ca_key = NULL, key = NULL;
    gnutls_x509_crq_t crq = NULL, parsed = NULL;
    gnutls_pubkey_t pub = NULL;
    gnutls_datum_t der = { NULL, 0 };
    unsigned status = 99, usage = 0, crit = 0, type, i;
    char buf[256], err[256] = "";
    size_t size;
    bool uri_found = false;
    int rc;

    REQUIRE_TOKEN();
    if (ca_crt == NULL) {
        CU_FAIL("no CA certificate (earlier test failed)");
        return;
    }
    CU_ASSERT_EQUAL_FATAL(p11_softkey_generate(P11_KEY_RSA_3072, &client_key), 0);
    CU_ASSERT_EQUAL_FATAL(gnutls_privkey_init(&key), 0);
    CU_ASSERT_EQUAL_FATAL(gnutls_privkey_import_x509(key, client_key, 0), 0);
    EXPECT_INT(p11_csr_make(key, "spoke1", &crq), 0);
    EXPECT_INT(gnutls_x509_crq_export2(crq, GNUTLS_X509_FMT_DER, &der), 0);
    EXPECT_INT(p11_csr_parse(&der, &parsed, err, sizeof(err)), 0);
    if (parsed == NULL) {
        fprintf(stderr, "\n  parse: %s\n", err);
        goto out;
    }
    CU_ASSERT_EQUAL_FATAL(gnutls_pubkey_init(&pub), 0);
    EXPECT_INT(gnutls_pubkey_import_x509_crq(pub, parsed, 0), 0);
    CU_ASSERT_EQUAL_FATAL(p11_key_load(tok, "ca", &ca_key), 0);
    rc = p11_cert_issue(ca_crt, ca_key, pub, &req, &client_crt);
    EXPECT_INT(rc, 0);
    if (rc < 0)
        goto out;
    EXPECT_INT(verify_chain(client_crt, &status), 0);
    EXPECT_INT(status, 0);
    size = sizeof(buf);
    EXPECT_INT(gnutls_x509_crt_get_key_purpose_oid(client_crt, 0, buf, &size, NULL), 0);
    EXPECT_INT(strcmp(buf, GNUTLS_KP_TLS_WWW_CLIENT), 0);
    EXPECT_INT(gnutls_x509_crt_get_key_usage(client_crt, &usage, &crit), 0);
    EXPECT_INT(usage, GNUTLS_KEY_DIGITAL_SIGNATURE | GNUTLS_KEY_KEY_ENCIPHERMENT);
    for (i = 0;; i++) {
        size = sizeof(buf);
        rc = gnutls_x509_crt_get_subject_alt_name2(client_crt, i, buf, &size, &type, NULL);
        if (rc < 0)
            break;
        if (type == GNUTLS_SAN_URI && strcmp(buf, "urn:mtlsgw:role:tunnel") == 0)
            uri_found = true;
    }
    EXPECT_TRUE(uri_found, "URI SAN urn:mtlsgw:role:tunnel, got %u SANs", i);
    openssl_verify(client_crt, "client.pem", "sslclient");
out:
    gnutls_free(der.data);
    gnutls_x509_crq_deinit(crq);
    gnutls_x509_crq_deinit(parsed);
    gnutls_pubkey_deinit(pub);
    gnutls_privkey_deinit(key);
    gnutls_privkey_deinit(ca_key);
}

static void test_serial(void)
{
    unsigned char a[64], b[64];
    size_t sa = sizeof(a), sb = sizeof(b);
    char *hex = NULL;

    if (server_crt == NULL || client_crt == NULL) {
        CU_FAIL("no certificates (earlier test failed)");
        return;
    }
    EXPECT_INT(gnutls_x509_crt_get_serial(server_crt, a, &sa), 0);
    EXPECT_INT(gnutls_x509_crt_get_serial(client_crt, b, &sb), 0);
    EXPECT_INT(sa, 16);
    EXPECT_TRUE(a[0] != 0 && !(a[0] & 0x80), "positive 128-bit serial, first byte %#x", a[0]);
    EXPECT_TRUE(sa != sb || memcmp(a, b, sa) != 0, "serials differ%s", "");
    EXPECT_INT(p11_cert_serial_hex(server_crt, &hex), 0);
    EXPECT_INT(hex != NULL ? strlen(hex) : 0, 32);
    free(hex);
}

static void test_issue_rejects(void)
{
    static const char *const bad_hosts[] = { "bad host" };
    struct p11_issue req = { .profile = P11_PROFILE_SERVER, .cn = "x", .days = 0 };
    gnutls_privkey_t ca_key = NULL;
    gnutls_pubkey_t pub = NULL;
    gnutls_x509_crt_t crt = NULL;

    REQUIRE_TOKEN();
    CU_ASSERT_EQUAL_FATAL(p11_key_load(tok, "ca", &ca_key), 0);
    CU_ASSERT_EQUAL_FATAL(p11_pubkey_load(tok, "gw", &pub), 0);
    EXPECT_INT(p11_cert_issue(ca_crt, ca_key, pub, &req, &crt), -EINVAL);
    req.days = 30;
    req.hosts = bad_hosts;
    req.n_hosts = 1;
    EXPECT_INT(p11_cert_issue(ca_crt, ca_key, pub, &req, &crt), -EINVAL);
    req.n_hosts = 0;
    req.cn = NULL;
    EXPECT_INT(p11_cert_issue(ca_crt, ca_key, pub, &req, &crt), -EINVAL);
    /* Self-signed, but the subject key is not the signer's. */
    req.cn = "x";
    req.profile = P11_PROFILE_CA;
    EXPECT_INT(p11_cert_issue(NULL, ca_key, pub, &req, &crt), -EINVAL);
    CU_ASSERT_PTR_NULL(crt);
    gnutls_privkey_deinit(ca_key);
    gnutls_pubkey_deinit(pub);
}

static void test_issue_rsa_server(void)
{
    struct p11_issue req = { .profile = P11_PROFILE_SERVER, .cn = "rsa.example.net",
                             .days = 30 };
    gnutls_privkey_t ca_key = NULL;
    gnutls_pubkey_t pub = NULL;
    gnutls_x509_crt_t crt = NULL;
    unsigned usage = 0, status = 99;

    REQUIRE_TOKEN();
    if (p11_key_exists(tok, "rsa") == 0 && !required[P11_KEY_RSA_3072]) {
        printf("\n  skipped: the token made no rsa-3072 key\n");
        return;
    }
    CU_ASSERT_EQUAL_FATAL(p11_key_load(tok, "ca", &ca_key), 0);
    CU_ASSERT_EQUAL_FATAL(p11_pubkey_load(tok, "rsa", &pub), 0);
    EXPECT_INT(p11_cert_issue(ca_crt, ca_key, pub, &req, &crt), 0);
    if (crt != NULL) {
        EXPECT_INT(gnutls_x509_crt_get_key_usage(crt, &usage, NULL), 0);
        EXPECT_INT(usage, GNUTLS_KEY_DIGITAL_SIGNATURE | GNUTLS_KEY_KEY_ENCIPHERMENT);
        EXPECT_INT(verify_chain(crt, &status), 0);
        EXPECT_INT(status, 0);
    }
    gnutls_x509_crt_deinit(crt);
    gnutls_privkey_deinit(ca_key);
    gnutls_pubkey_deinit(pub);
}

/* ---- tests: CRL ------------------------------------------------------- */

static void test_crl(void)
{
    gnutls_privkey_t ca_key = NULL;
    gnutls_x509_crl_t crl = NULL;
    gnutls_datum_t pem = { NULL, 0 };
    struct p11_revoked rev[2];
    char *client_hex = NULL, *out = NULL;
    char crl_path[600], ca_path[600], client_path[600], upper[80];
    char *argv_crl[] = { "openssl", "crl", "-in", crl_path, "-CAfile", ca_path, "-noout", NULL };
    char *argv_text[] = { "openssl", "crl", "-in", crl_path, "-noout", "-text", NULL };
    char *argv_verify[] = { "openssl", "verify", "-crl_check", "-CAfile", ca_path,
                            "-CRLfile", crl_path, client_path, NULL };
    unsigned char serial[32], num[16];
    size_t size, i;
    unsigned status = 99, crit = 0;
    time_t when = 0;
    int rc;

    REQUIRE_TOKEN();
    if (ca_crt == NULL || client_crt == NULL) {
        CU_FAIL("no certificates (earlier test failed)");
        return;
    }
    CU_ASSERT_EQUAL_FATAL(p11_cert_serial_hex(client_crt, &client_hex), 0);
    rev[0].serial_hex = client_hex;
    rev[0].when = time(NULL) - 60;
    rev[1].serial_hex = "80ff"; /* top bit set: needs the DER sign pad */
    rev[1].when = time(NULL) - 60;
    CU_ASSERT_EQUAL_FATAL(p11_key_load(tok, "ca", &ca_key), 0);
    rc = p11_crl_sign(ca_crt, ca_key, rev, 2, 7, 7, &crl);
    EXPECT_INT(rc, 0);
    if (rc < 0)
        goto out;
    EXPECT_INT(gnutls_x509_crl_verify(crl, &ca_crt, 1, 0, &status), 0);
    EXPECT_INT(status, 0);
    EXPECT_INT(gnutls_x509_crl_get_version(crl), 2);
    EXPECT_INT(gnutls_x509_crl_get_crt_count(crl), 2);
    size = sizeof(num);
    EXPECT_INT(gnutls_x509_crl_get_number(crl, num, &size, &crit), 0);
    EXPECT_TRUE(size == 1 && num[0] == 7, "CRL number 7, got %zu bytes, first %#x", size,
                num[0]);
    EXPECT_TRUE(gnutls_x509_crl_get_next_update(crl) > time(NULL) + 6 * 86400,
                "nextUpdate in 7 days%s", "");
    size = sizeof(serial);
    EXPECT_INT(gnutls_x509_crl_get_crt_serial(crl, 1, serial, &size, &when), 0);
    EXPECT_TRUE(size == 3 && serial[0] == 0 && serial[1] == 0x80 && serial[2] == 0xff,
                "00 80 ff, got %zu bytes", size);
    size = sizeof(serial);
    EXPECT_INT(gnutls_x509_crl_get_authority_key_id(crl, serial, &size, &crit), 0);

    path_in_tmp(crl_path, sizeof(crl_path), "ca.crl");
    path_in_tmp(ca_path, sizeof(ca_path), "ca.pem");
    path_in_tmp(client_path, sizeof(client_path), "client.pem");
    CU_ASSERT_EQUAL_FATAL(gnutls_x509_crl_export2(crl, GNUTLS_X509_FMT_PEM, &pem), 0);
    CU_ASSERT_EQUAL_FATAL(write_file(crl_path, pem.data, pem.size, 0600), 0);
    rc = run(argv_crl, NULL, &out);
    EXPECT_TRUE(rc == 0, "openssl crl -CAfile exit 0, got %d: %s", rc, out ? out : "");
    EXPECT_CONTAINS(out, "verify OK");
    free(out);
    out = NULL;
    rc = run(argv_text, NULL, &out);
    EXPECT_INT(rc, 0);
    for (i = 0; client_hex[i] != '\0' && i + 1 < sizeof(upper); i++)
        upper[i] = (char)((client_hex[i] >= 'a' && client_hex[i] <= 'f') ? client_hex[i] - 32
                                                                           : client_hex[i]);
    upper[i] = '\0';
    EXPECT_CONTAINS(out, upper);
    EXPECT_CONTAINS(out, "X509v3 CRL Number");
    EXPECT_CONTAINS(out, "X509v3 Authority Key Identifier");
    free(out);
    out = NULL;
    /* The revoked client certificate must now fail verification. */
    rc = run(argv_verify, NULL, &out);
    EXPECT_TRUE(rc != 0, "openssl verify -crl_check fails for the revoked cert, got %d", rc);
    EXPECT_CONTAINS(out, "certificate revoked");
    free(out);
    out = NULL;

    rev[0].serial_hex = "xyz";
    gnutls_x509_crl_deinit(crl);
    crl = NULL;
    EXPECT_INT(p11_crl_sign(ca_crt, ca_key, rev, 1, 8, 7, &crl), -EINVAL);
out:
    gnutls_free(pem.data);
    gnutls_x509_crl_deinit(crl);
    gnutls_privkey_deinit(ca_key);
    free(client_hex);
}

/* ---- tests: CSR ------------------------------------------------------- */

static void test_csr_roundtrip_token_key(void)
{
    gnutls_privkey_t key = NULL;
    gnutls_x509_crq_t crq = NULL, parsed = NULL;
    gnutls_datum_t pem = { NULL, 0 };
    char cn[128], err[256] = "";
    size_t size = sizeof(cn);

    REQUIRE_TOKEN();
    CU_ASSERT_EQUAL_FATAL(p11_key_load(tok, "gw", &key), 0);
    EXPECT_INT(p11_csr_make(key, "gw intermediate", &crq), 0);
    if (crq == NULL)
        goto out;
    EXPECT_INT(gnutls_x509_crq_export2(crq, GNUTLS_X509_FMT_PEM, &pem), 0);
    EXPECT_INT(p11_csr_parse(&pem, &parsed, err, sizeof(err)), 0);
    if (parsed == NULL) {
        fprintf(stderr, "\n  parse: %s\n", err);
        goto out;
    }
    EXPECT_INT(gnutls_x509_crq_get_dn_by_oid(parsed, GNUTLS_OID_X520_COMMON_NAME, 0, 0, cn,
                                             &size), 0);
    EXPECT_INT(strcmp(cn, "gw intermediate"), 0);
out:
    gnutls_free(pem.data);
    gnutls_x509_crq_deinit(crq);
    gnutls_x509_crq_deinit(parsed);
    gnutls_privkey_deinit(key);
}

static void test_csr_garbage(void)
{
    static const char garbage[] = "hello, this is not a CSR\n";
    static const char bad_pem[] = "-----BEGIN CERTIFICATE REQUEST-----\n"
                                  "Zm9vYmFy\n-----END CERTIFICATE REQUEST-----\n";
    gnutls_datum_t d = { (unsigned char *)garbage, sizeof(garbage) - 1 };
    gnutls_x509_crq_t crq = NULL;
    char err[256] = "";

    EXPECT_INT(p11_csr_parse(&d, &crq, err, sizeof(err)), -EBADMSG);
    EXPECT_CONTAINS(err, "not PEM or DER PKCS#10");
    CU_ASSERT_PTR_NULL(crq);
    d.data = (unsigned char *)bad_pem;
    d.size = sizeof(bad_pem) - 1;
    err[0] = '\0';
    EXPECT_INT(p11_csr_parse(&d, &crq, err, sizeof(err)), -EBADMSG);
    EXPECT_CONTAINS(err, "not PEM or DER PKCS#10");
    d.size = 0;
    EXPECT_INT(p11_csr_parse(&d, &crq, err, sizeof(err)), -EBADMSG);
}

static void test_csr_bad_signature(void)
{
    gnutls_x509_privkey_t soft = NULL;
    gnutls_privkey_t key = NULL;
    gnutls_x509_crq_t crq = NULL, parsed = NULL;
    gnutls_datum_t der = { NULL, 0 };
    char err[256] = "";

    CU_ASSERT_EQUAL_FATAL(p11_softkey_generate(P11_KEY_EC_P256, &soft), 0);
    CU_ASSERT_EQUAL_FATAL(gnutls_privkey_init(&key), 0);
    CU_ASSERT_EQUAL_FATAL(gnutls_privkey_import_x509(key, soft, 0), 0);
    CU_ASSERT_EQUAL_FATAL(p11_csr_make(key, "tampered", &crq), 0);
    CU_ASSERT_EQUAL_FATAL(gnutls_x509_crq_export2(crq, GNUTLS_X509_FMT_DER, &der), 0);
    /* The last octet belongs to the signature (its S value). */
    der.data[der.size - 1] ^= 0x01;
    EXPECT_INT(p11_csr_parse(&der, &parsed, err, sizeof(err)), -EBADMSG);
    EXPECT_CONTAINS(err, "signature does not verify");
    CU_ASSERT_PTR_NULL(parsed);
    gnutls_free(der.data);
    gnutls_x509_crq_deinit(crq);
    gnutls_privkey_deinit(key);
    gnutls_x509_privkey_deinit(soft);
}

/* ---- tests: PKCS#12 --------------------------------------------------- */

#define P12_PASSWORD "p12-pass-4711"

static void test_p12_openssl(void)
{
    gnutls_datum_t p12 = { NULL, 0 };
    char p12_path[600], pw_path[600], pw_arg[700];
    char *argv_info[] = { "openssl", "pkcs12", "-info", "-in", p12_path, "-passin", pw_arg,
                          "-noout", NULL };
    char *argv_dump[] = { "openssl", "pkcs12", "-in", p12_path, "-passin", pw_arg, "-nodes",
                          NULL };
    char *out = NULL;
    int rc;

    if (client_key == NULL || client_crt == NULL || ca_crt == NULL) {
        CU_FAIL("no client key/certificate (earlier test failed)");
        return;
    }
    rc = p11_p12_export(client_key, client_crt, ca_crt, "spoke1", P12_PASSWORD, &p12);
    EXPECT_INT(rc, 0);
    if (rc < 0)
        return;
    path_in_tmp(p12_path, sizeof(p12_path), "spoke1.p12");
    path_in_tmp(pw_path, sizeof(pw_path), "p12-pass");
    snprintf(pw_arg, sizeof(pw_arg), "file:%s", pw_path);
    CU_ASSERT_EQUAL_FATAL(write_file(p12_path, p12.data, p12.size, 0600), 0);
    CU_ASSERT_EQUAL_FATAL(write_file(pw_path, P12_PASSWORD "\n", strlen(P12_PASSWORD) + 1,
                                     0600), 0);
    rc = run(argv_info, NULL, &out);
    EXPECT_TRUE(rc == 0, "openssl pkcs12 -info exit 0, got %d: %s", rc, out ? out : "");
    EXPECT_CONTAINS(out, "MAC: sha256");
    EXPECT_CONTAINS(out, "PBES2");
    EXPECT_CONTAINS(out, "AES-256-CBC");
    free(out);
    out = NULL;
    rc = run(argv_dump, NULL, &out);
    EXPECT_TRUE(rc == 0, "openssl pkcs12 -nodes exit 0, got %d: %s", rc, out ? out : "");
    EXPECT_CONTAINS(out, "friendlyName: spoke1");
    EXPECT_CONTAINS(out, "BEGIN PRIVATE KEY");
    EXPECT_CONTAINS(out, "subject=CN = mtlsgw test CA");
    EXPECT_CONTAINS(out, "subject=CN = spoke1");
    free(out);
    gnutls_free(p12.data);
}

static void test_p12_keytool(void)
{
    char p12_path[600];
    char *argv[] = { "keytool", "-list", "-v", "-storetype", "PKCS12", "-keystore", p12_path,
                     "-storepass", P12_PASSWORD, NULL };
    char *out = NULL;
    int rc;

    if (!have_program("keytool")) {
        printf("\n  skipped: keytool not installed (apt-get install default-jre-headless)\n");
        return;
    }
    path_in_tmp(p12_path, sizeof(p12_path), "spoke1.p12");
    if (access(p12_path, R_OK) != 0) {
        CU_FAIL("no PKCS#12 file (earlier test failed)");
        return;
    }
    rc = run(argv, NULL, &out);
    EXPECT_TRUE(rc == 0, "keytool -list exit 0, got %d: %s", rc, out ? out : "");
    EXPECT_CONTAINS(out, "Alias name: spoke1");
    EXPECT_CONTAINS(out, "PrivateKeyEntry");
    EXPECT_CONTAINS(out, "Certificate chain length: 2");
    free(out);
}

static void test_p12_mismatch(void)
{
    gnutls_x509_privkey_t other = NULL;
    gnutls_datum_t p12 = { NULL, 0 };

    if (client_crt == NULL) {
        CU_FAIL("no client certificate (earlier test failed)");
        return;
    }
    CU_ASSERT_EQUAL_FATAL(p11_softkey_generate(P11_KEY_EC_P256, &other), 0);
    EXPECT_INT(p11_p12_export(other, client_crt, ca_crt, "x", P12_PASSWORD, &p12), -EINVAL);
    EXPECT_INT(p11_p12_export(client_key, client_crt, ca_crt, "x", "", &p12), -EINVAL);
    CU_ASSERT_PTR_NULL(p12.data);
    gnutls_x509_privkey_deinit(other);
}

/* ---- main ------------------------------------------------------------- */

/* ---- tests: many keys in one search (a spoke's uplinks) ----------------- */

#define N_UP 12

/* read() calls of this process so far: SoftHSM's file store reads every
 * object file of the token in each search. */
static long long reads_so_far(void)
{
    char line[128];
    long long n = -1;
    FILE *f = fopen("/proc/self/io", "r");

    while (f != NULL && fgets(line, sizeof(line), f) != NULL) {
        if (sscanf(line, "syscr: %lld", &n) == 1)
            break;
    }
    if (f != NULL)
        fclose(f);
    return n;
}

static char up_label[N_UP][16];

static void test_keys_load_batch(void)
{
    /* N_UP keys, one label twice, one no key has, an RSA key (signs the
     * p11_key_load() way), a full URI. */
    const char *labels[N_UP + 4];
    gnutls_privkey_t keys[N_UP + 4], one = NULL;
    gnutls_pubkey_t pub = NULL;
    long long r0, r1, r2;
    char *uri = NULL;
    size_t i, n = 0;
    int rc;

    REQUIRE_TOKEN();
    for (i = 0; i < N_UP; i++) {
        snprintf(up_label[i], sizeof(up_label[i]), "up%02zu", i);
        if (p11_key_exists(tok, up_label[i]) == 0)
            EXPECT_INT(p11_key_generate(tok, up_label[i], P11_KEY_EC_P256), 0);
        labels[n++] = up_label[i];
    }
    labels[n++] = up_label[3];
    labels[n++] = "no-such-key";
    labels[n++] = "rsa";
    EXPECT_INT(p11_key_uri(tok, up_label[0], &uri), 0);
    labels[n++] = uri;

    /* The cost of one search, then of all the keys. */
    r0 = reads_so_far();
    EXPECT_INT(p11_key_load(tok, up_label[0], &one), 0);
    r1 = reads_so_far();
    rc = p11_keys_load(tok, labels, n, keys);
    r2 = reads_so_far();
    EXPECT_INT(rc, N_UP + 1);
    if (rc < 0) {
        fprintf(stderr, "\n  p11_keys_load: %s\n", p11_token_error(tok));
        goto out;
    }
    printf("\n  read() calls: one key by p11_key_load %lld, %zu keys by p11_keys_load %lld\n",
           r1 - r0, n, r2 - r1);
    /* One search and each key's attributes, not one search per key. */
    if (!premade && r0 >= 0)
        EXPECT_TRUE(r2 - r1 < 3 * (r1 - r0), "%zu keys in about one search's reads: %lld "
                    "reads, one search %lld", n, r2 - r1, r1 - r0);
    for (i = 0; i < N_UP; i++) {
        EXPECT_TRUE(keys[i] != NULL, "key %s found", labels[i]);
        if (keys[i] == NULL || p11_pubkey_load(tok, labels[i], &pub) < 0)
            continue;
        EXPECT_INT(sign_verify(keys[i], pub, GNUTLS_SIGN_ECDSA_SHA256), 0);
        EXPECT_INT(gnutls_privkey_get_pk_algorithm(keys[i], NULL), GNUTLS_PK_ECDSA);
        if (i == 3 && keys[N_UP] != NULL)
            EXPECT_INT(sign_verify(keys[N_UP], pub, GNUTLS_SIGN_ECDSA_SHA256), 0);
        gnutls_pubkey_deinit(pub);
        pub = NULL;
    }
    EXPECT_TRUE(keys[N_UP] != NULL, "a label given twice: a key each time");
    EXPECT_TRUE(keys[N_UP + 1] == NULL, "no key for a label the token lacks");
    EXPECT_TRUE(keys[N_UP + 2] == NULL, "the RSA key left to p11_key_load()");
    EXPECT_TRUE(keys[N_UP + 3] == NULL, "a full URI left to p11_key_load()");
    /* ... which says what is wrong, as it always did. */
    gnutls_privkey_deinit(one);
    one = NULL;
    EXPECT_INT(p11_key_load(tok, "no-such-key", &one), -ENOENT);
    EXPECT_TRUE(strstr(p11_token_error(tok), "no usable private key no-such-key") != NULL,
                "the missing key named, got: %s", p11_token_error(tok));
    for (i = 0; i < n; i++)
        gnutls_privkey_deinit(keys[i]);
out:
    gnutls_privkey_deinit(one);
    free(uri);
}

/* A key signing by handle after the token came back (p11_token_reinit):
 * the session it held is gone; it fails cleanly, a new load works, also
 * after the PIN was forgotten (the login is made again from the file). */
static void test_keys_load_after_reinit(void)
{
    const char *labels[2] = { up_label[0], up_label[1] };
    gnutls_privkey_t keys[2] = { NULL, NULL };
    gnutls_pubkey_t pub = NULL;
    gnutls_datum_t data = { (unsigned char *)"x", 1 }, sig = { NULL, 0 };

    REQUIRE_TOKEN();
    EXPECT_INT(p11_keys_load(tok, labels, 2, keys), 2);
    if (keys[0] == NULL || keys[1] == NULL)
        goto out;
    p11_token_forget_pin(tok);
    EXPECT_INT(p11_token_reinit(tok), 0);
    EXPECT_TRUE(gnutls_privkey_sign_data2(keys[0], GNUTLS_SIGN_ECDSA_SHA256, 0, &data, &sig) < 0,
                "a key from before the reinit does not sign");
    gnutls_free(sig.data);
    gnutls_privkey_deinit(keys[0]);
    gnutls_privkey_deinit(keys[1]);
    keys[0] = keys[1] = NULL;
    EXPECT_INT(p11_keys_load(tok, labels, 2, keys), 2);
    if (keys[1] != NULL && p11_pubkey_load(tok, labels[1], &pub) == 0)
        EXPECT_INT(sign_verify(keys[1], pub, GNUTLS_SIGN_ECDSA_SHA256), 0);
out:
    gnutls_pubkey_deinit(pub);
    gnutls_privkey_deinit(keys[0]);
    gnutls_privkey_deinit(keys[1]);
}

/* The PIN file changed to a wrong PIN while the daemon ran, the token
 * logged out: the login p11_keys_load() makes says so, once. */
static void test_keys_load_wrong_pin(void)
{
    struct p11_token *t = NULL;
    const char *labels[2] = { "pk0", "pk1" };
    gnutls_privkey_t keys[2] = { NULL, NULL };
    char err[512] = "", path[600];

    if (premade)
        return;
    path_in_tmp(path, sizeof(path), "pin-later");
    EXPECT_INT(write_file(path, USER_PIN "\n", strlen(USER_PIN) + 1, 0600), 0);
    EXPECT_INT(p11_token_open(module, PIN_TOKEN_URI, path, &t, err, sizeof(err)), 0);
    if (t == NULL) {
        fprintf(stderr, "\n  open: %s\n", err);
        return;
    }
    if (p11_key_exists(t, "pk0") == 0)
        EXPECT_INT(p11_key_generate(t, "pk0", P11_KEY_EC_P256), 0);
    p11_token_forget_pin(t);
    EXPECT_INT(write_file(path, WRONG_PIN "\n", strlen(WRONG_PIN) + 1, 0600), 0);
    EXPECT_INT(p11_keys_load(t, labels, 2, keys), -EACCES);
    EXPECT_TRUE(strstr(p11_token_error(t), "login failed: wrong PIN (from ") != NULL,
                "the wrong PIN named, got: %s", p11_token_error(t));
    EXPECT_TRUE(strstr(p11_token_error(t), WRONG_PIN) == NULL, "no PIN in the message");
    EXPECT_TRUE(keys[0] == NULL && keys[1] == NULL, "nothing filled");
    p11_token_free(t);
}

static const struct {
    const char *name;
    void (*fn)(void);
} tests[] = {
    { "key type names", test_key_type_names },
    { "open: missing module", test_open_missing_module },
    { "open: with module", test_open_with_module },
    { "open: second handle", test_open_second_handle },
    { "open: p11-kit configured modules", test_open_p11kit_auto },
    { "open: p11-kit after manual refused", test_open_auto_after_manual },
    { "open: wrong PIN", test_open_wrong_pin },
    { "open: PIN file mode 0644 refused", test_open_pin_mode_refused },
    { "open: PIN file missing", test_open_pin_file_missing },
    { "open: PIN file with CRLF", test_open_pin_crlf },
    { "open: missing token", test_open_missing_token },
    { "open: PIN in URI refused", test_open_pin_in_uri_refused },
    { "mechanism probe", test_supports },
    { "key URI escaping", test_key_uri },
    { "keygen ec-p256 + sign", test_keygen_ec_p256 },
    { "keygen ec-p384 + sign", test_keygen_ec_p384 },
    { "keygen rsa-3072 + sign (PKCS#1, PSS)", test_keygen_rsa_3072 },
    { "keys not extractable (p11tool)", test_keys_not_extractable_p11tool },
    { "keys not extractable, CKA_ID (attributes)", test_keys_not_extractable_attrs },
    { "keygen duplicate label", test_keygen_duplicate },
    { "key delete", test_key_delete },
    { "key load by URI", test_key_load_by_uri },
    { "public access without PIN", test_public_access_without_pin },
    { "public key id", test_pubkey_id_hex },
    { "CA self-signed", test_ca_self_signed },
    { "issue server certificate", test_issue_server },
    { "issue client certificate from CSR", test_issue_client_from_csr },
    { "serial 128-bit positive", test_serial },
    { "issue rejects bad requests", test_issue_rejects },
    { "issue RSA server certificate", test_issue_rsa_server },
    { "CRL signed, revoked serial", test_crl },
    { "CSR round trip (token key, PEM)", test_csr_roundtrip_token_key },
    { "CSR garbage rejected", test_csr_garbage },
    { "CSR bad signature rejected", test_csr_bad_signature },
    { "PKCS#12 read by openssl", test_p12_openssl },
    { "PKCS#12 read by keytool", test_p12_keytool },
    { "PKCS#12 key/cert mismatch", test_p12_mismatch },
    { "keys in one search, sign by handle", test_keys_load_batch },
    { "keys in one search: wrong PIN", test_keys_load_wrong_pin },
    /* Last: the reinit kills every key made before. */
    { "keys in one search: after reinit", test_keys_load_after_reinit },
};

/* Child mode for the p11-kit test: a fresh process, no manual init. */
static int auto_open(const char *uri, const char *pin)
{
    struct p11_token *t = NULL;
    gnutls_privkey_t key = NULL;
    char err[512] = "";
    int rc;

    rc = p11_token_open(NULL, uri, pin, &t, err, sizeof(err));
    if (rc < 0) {
        printf("auto-open: open failed (%d): %s\n", rc, err);
        return 1;
    }
    rc = p11_key_generate(t, "auto", P11_KEY_EC_P256);
    if (rc == 0)
        rc = p11_key_load(t, "auto", &key);
    if (rc == 0)
        rc = p11_key_delete(t, "auto");
    if (rc < 0)
        printf("auto-open: key ops failed (%d): %s\n", rc, p11_token_error(t));
    else
        printf("auto-open: ok\n");
    gnutls_privkey_deinit(key);
    p11_token_free(t);
    return rc < 0 ? 1 : 0;
}

static const char *find_module(void)
{
    static const char *const paths[] = {
        "/usr/lib/softhsm/libsofthsm2.so",
        "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
        "/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
        "/usr/lib64/pkcs11/libsofthsm2.so",
        "/usr/local/lib/softhsm/libsofthsm2.so",
    };
    const char *env = getenv("MTLSGW_TEST_MODULE");
    size_t i;

    if (env != NULL && env[0] != '\0') {
        premade = true;
        return env;
    }
    env = getenv("MTLSGW_SOFTHSM_MODULE");
    if (env != NULL && env[0] != '\0' && access(env, R_OK) == 0)
        return env;
    for (i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
        if (access(paths[i], R_OK) == 0)
            return paths[i];
    }
    return NULL;
}

/* MTLSGW_TEST_KEY_TYPES: "ec-p256,rsa-3072"; unset or empty: all. */
static int parse_key_types(const char *list)
{
    enum p11_key_type t;
    char name[32];
    size_t n;

    if (list == NULL || list[0] == '\0')
        return 0;
    memset(required, 0, sizeof(required));
    while (*list != '\0') {
        n = strcspn(list, ", ");
        /* Not snprintf("%.*s"): gcc -O2 with -fsanitize flags a null argument
         * (-Wformat-truncation) that cannot happen. Longer names are cut and
         * then match no type. */
        memcpy(name, list, n < sizeof(name) ? n : sizeof(name) - 1);
        name[n < sizeof(name) ? n : sizeof(name) - 1] = '\0';
        if (n > 0 && p11_key_type_parse(name, &t) < 0) {
            fprintf(stderr, "MTLSGW_TEST_KEY_TYPES: unknown key type '%s' "
                            "(ec-p256, ec-p384, rsa-3072)\n", name);
            return -1;
        }
        if (n > 0)
            required[t] = true;
        list += n + strspn(list + n, ", ");
    }
    return 0;
}

static int setup(void)
{
    const char *base = getenv("TMPDIR");
    char conf[600], tokens[600], text[1400];

    if (base == NULL || base[0] == '\0')
        base = "/tmp";
    snprintf(tmpdir, sizeof(tmpdir), "%s/mtlsgw-token-XXXXXX", base);
    if (mkdtemp(tmpdir) == NULL) {
        fprintf(stderr, "mkdtemp %s: %s\n", tmpdir, strerror(errno));
        tmpdir[0] = '\0';
        return -1;
    }
    atexit(cleanup);
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    signal(SIGHUP, on_signal);

    path_in_tmp(pin_path, sizeof(pin_path), "pin");
    if (premade)
        return write_file(pin_path, USER_PIN "\n", strlen(USER_PIN) + 1, 0600);
    /* The p11-kit case loads every registered module: a tpm2-pkcs11 without
     * a TPM would otherwise write its store into $HOME. */
    setenv("TPM2_PKCS11_STORE", tmpdir, 0);
    path_in_tmp(tokens, sizeof(tokens), "tokens");
    path_in_tmp(conf, sizeof(conf), "softhsm2.conf");
    if (mkdir(tokens, 0700) < 0)
        return -1;
    snprintf(text, sizeof(text),
             "directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\n",
             tokens);
    if (write_file(conf, text, strlen(text), 0600) < 0)
        return -1;
    setenv("SOFTHSM2_CONF", conf, 1);
    if (init_token(TOKEN_LABEL) < 0 || init_token(PIN_TOKEN_LABEL) < 0)
        return -1;
    return write_file(pin_path, USER_PIN "\n", strlen(USER_PIN) + 1, 0600);
}

int main(int argc, char **argv)
{
    CU_pSuite suite;
    unsigned failed;
    size_t i;
    int rc;

    if (argc == 4 && strcmp(argv[1], "--auto-open") == 0)
        return auto_open(argv[2], argv[3]);
    self_path = argv[0];
    setvbuf(stdout, NULL, _IONBF, 0);

    module = find_module();
    if (module == NULL) {
        printf("skipped: no SoftHSM2 module found (apt-get install softhsm2)\n");
        return 77;
    }
    if (premade && access(module, R_OK) != 0) {
        fprintf(stderr, "MTLSGW_TEST_MODULE=%s: %s\n", module, strerror(errno));
        return 1;
    }
    if (parse_key_types(getenv("MTLSGW_TEST_KEY_TYPES")) < 0)
        return 1;
    if ((!premade && !have_program("softhsm2-util")) || !have_program("openssl")) {
        printf("skipped: softhsm2-util or openssl missing\n");
        return 77;
    }
    if (setup() < 0) {
        fprintf(stderr, "token fixture setup failed\n");
        cleanup();
        return 1;
    }

    if (CU_initialize_registry() != CUE_SUCCESS) {
        cleanup();
        return 1;
    }
    suite = CU_add_suite("token", NULL, NULL);
    for (i = 0; suite != NULL && i < sizeof(tests) / sizeof(tests[0]); i++)
        CU_add_test(suite, tests[i].name, tests[i].fn);
    CU_basic_set_mode(CU_BRM_VERBOSE);
    CU_basic_run_tests();
    failed = CU_get_number_of_tests_failed();
    CU_cleanup_registry();

    gnutls_x509_crt_deinit(ca_crt);
    gnutls_x509_crt_deinit(server_crt);
    gnutls_x509_crt_deinit(client_crt);
    gnutls_x509_privkey_deinit(client_key);
    p11_token_free(tok);
    cleanup();
    rc = failed ? 1 : 0;
    return rc;
}
