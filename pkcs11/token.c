/*
 * token.c: module loading, the PIN registry and callback, login, probes.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gnutls/gnutls.h>
#include <gnutls/pkcs11.h>
#include <p11-kit/pkcs11.h>
#include <p11-kit/uri.h>

#include "p11-private.h"

/*
 * GnuTLS keeps one PKCS#11 state per process, so the way modules are loaded
 * is decided once: either exactly the modules named to p11_token_open()
 * (manual), or whatever p11-kit is configured with (auto). Mixing would load
 * a module twice or wake a module the caller asked to keep silent.
 */
enum init_mode { INIT_NONE = 0, INIT_MANUAL, INIT_AUTO };

#define MAX_MODULES 8

static pthread_mutex_t init_lock = PTHREAD_MUTEX_INITIALIZER;
static enum init_mode init_mode;
/* One more at each p11_token_reinit(): what keyset.c made before is dead. */
static atomic_uint init_generation;
static char *init_modules[MAX_MODULES];
static size_t n_init_modules;

/* Open handles, searched by the process-global PIN callback. */
static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static struct p11_token *registry;

static const char *const key_type_names[] = {
    [P11_KEY_EC_P256] = "ec-p256",
    [P11_KEY_EC_P384] = "ec-p384",
    [P11_KEY_RSA_3072] = "rsa-3072",
};

int p11_key_type_parse(const char *name, enum p11_key_type *out)
{
    size_t i;

    if (name == NULL || out == NULL)
        return -EINVAL;
    for (i = 0; i < sizeof(key_type_names) / sizeof(key_type_names[0]); i++) {
        if (strcmp(name, key_type_names[i]) == 0) {
            *out = (enum p11_key_type)i;
            return 0;
        }
    }
    return -EINVAL;
}

const char *p11_key_type_name(enum p11_key_type type)
{
    if ((unsigned)type >= sizeof(key_type_names) / sizeof(key_type_names[0]))
        return "unknown";
    return key_type_names[type];
}

int p11_key_params(enum p11_key_type type, gnutls_pk_algorithm_t *pk, unsigned *bits)
{
    switch (type) {
    case P11_KEY_EC_P256:
        *pk = GNUTLS_PK_ECDSA;
        *bits = GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1);
        return 0;
    case P11_KEY_EC_P384:
        *pk = GNUTLS_PK_ECDSA;
        *bits = GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP384R1);
        return 0;
    case P11_KEY_RSA_3072:
        *pk = GNUTLS_PK_RSA;
        *bits = 3072;
        return 0;
    }
    return -EINVAL;
}

static void vformat(char *buf, size_t len, const char *prefix, const char *fmt, va_list ap)
    __attribute__((format(printf, 4, 0)));

static void vformat(char *buf, size_t len, const char *prefix, const char *fmt, va_list ap)
{
    size_t used = 0;
    int n;

    if (buf == NULL || len == 0)
        return;
    buf[0] = '\0';
    if (prefix != NULL) {
        n = snprintf(buf, len, "token %s: ", prefix);
        if (n < 0)
            return;
        used = (size_t)n < len ? (size_t)n : len - 1;
    }
    vsnprintf(buf + used, len - used, fmt, ap);
}

int p11_fail(struct p11_token *tok, int rc, const char *fmt, ...)
{
    va_list ap;

    if (tok == NULL)
        return rc;
    va_start(ap, fmt);
    vformat(tok->err, sizeof(tok->err), NULL, fmt, ap);
    va_end(ap);
    return rc;
}

int p11_fail_buf(char *err, size_t errlen, int rc, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vformat(err, errlen, NULL, fmt, ap);
    va_end(ap);
    return rc;
}

int p11_errno(int rc)
{
    switch (rc) {
    case GNUTLS_E_SUCCESS:
        return 0;
    case GNUTLS_E_MEMORY_ERROR:
        return -ENOMEM;
    case GNUTLS_E_PKCS11_PIN_ERROR:
    case GNUTLS_E_PKCS11_USER_ERROR:
        return -EACCES;
    case GNUTLS_E_PKCS11_REQUESTED_OBJECT_NOT_AVAILBLE:
    case GNUTLS_E_PKCS11_TOKEN_ERROR:
    case GNUTLS_E_PKCS11_SLOT_ERROR:
    case GNUTLS_E_PKCS11_DEVICE_ERROR:
        return -ENODEV;
    case GNUTLS_E_REQUESTED_DATA_NOT_AVAILABLE:
        return -ENOENT;
    case GNUTLS_E_INVALID_REQUEST:
    case GNUTLS_E_PARSING_ERROR:
    case GNUTLS_E_ILLEGAL_PARAMETER:
        return -EINVAL;
    case GNUTLS_E_UNIMPLEMENTED_FEATURE:
    case GNUTLS_E_PKCS11_KEY_ERROR:
    case GNUTLS_E_UNKNOWN_PK_ALGORITHM:
        return -ENOTSUP;
    case GNUTLS_E_SHORT_MEMORY_BUFFER:
        return -ENOBUFS;
    default:
        return -EIO;
    }
}

int p11_hex(const unsigned char *data, size_t len, char **out)
{
    static const char digits[] = "0123456789abcdef";
    char *s;
    size_t i;

    s = malloc(len * 2 + 1);
    if (s == NULL)
        return -ENOMEM;
    for (i = 0; i < len; i++) {
        s[2 * i] = digits[data[i] >> 4];
        s[2 * i + 1] = digits[data[i] & 0x0f];
    }
    s[len * 2] = '\0';
    *out = s;
    return 0;
}

unsigned p11_login_flags(const struct p11_token *tok)
{
    return tok->pin_file != NULL ? GNUTLS_PKCS11_OBJ_FLAG_LOGIN : 0;
}

/*
 * GnuTLS asks for the PIN with the token's full URI (model, manufacturer,
 * serial, label), while callers name it with a few attributes: match with
 * p11-kit's URI rules so "pkcs11:token=gw" finds its handle.
 *
 * A PIN the token refused is never offered again (GnuTLS loops while
 * C_Login says CKR_PIN_INCORRECT and would burn the retry counter, and on a
 * TPM trigger dictionary-attack lockout).
 */
static int read_pin_buf(struct p11_token *tok, const char *path, char *buf, size_t size,
                        size_t *out_len);

static int pin_callback(void *userdata, int attempt, const char *token_url,
                        const char *token_label, unsigned flags, char *pin, size_t pin_max)
{
    P11KitUri *asked = NULL;
    CK_TOKEN_INFO *info;
    struct p11_token *t;
    int rc = -1;

    (void)userdata;
    (void)token_label;
    if (token_url == NULL || (flags & GNUTLS_PIN_SO))
        return -1;
    asked = p11_kit_uri_new();
    if (asked == NULL)
        return -1;
    if (p11_kit_uri_parse(token_url, P11_KIT_URI_FOR_TOKEN, asked) != P11_KIT_URI_OK)
        goto out;
    info = p11_kit_uri_get_token_info(asked);

    pthread_mutex_lock(&registry_lock);
    for (t = registry; t != NULL; t = t->next) {
        if (t->pin_file == NULL || t->pin_rejected)
            continue;
        if (!p11_kit_uri_match_token_info(t->match, info))
            continue;
        if (attempt > 0 || (flags & GNUTLS_PIN_WRONG)) {
            t->pin_rejected = true;
            break;
        }
        if (t->pin == NULL) {
            /* Forgotten after the first login (p11_token_forget_pin): read
             * the file again, straight into GnuTLS' buffer. */
            char buf[P11_PIN_MAX + 2];
            size_t len = 0;
            if (read_pin_buf(t, t->pin_file, buf, sizeof(buf), &len) == 0 && len + 1 <= pin_max) {
                memcpy(pin, buf, len);
                pin[len] = '\0';
                rc = 0;
            }
            gnutls_memset(buf, 0, sizeof(buf));
            break;
        }
        if (t->pin_len + 1 > pin_max)
            break;
        memcpy(pin, t->pin, t->pin_len);
        pin[t->pin_len] = '\0';
        rc = 0;
        break;
    }
    pthread_mutex_unlock(&registry_lock);
out:
    p11_kit_uri_free(asked);
    return rc;
}

static void registry_add(struct p11_token *tok)
{
    pthread_mutex_lock(&registry_lock);
    tok->next = registry;
    registry = tok;
    pthread_mutex_unlock(&registry_lock);
}

static void registry_remove(struct p11_token *tok)
{
    struct p11_token **pp;

    pthread_mutex_lock(&registry_lock);
    for (pp = &registry; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == tok) {
            *pp = tok->next;
            break;
        }
    }
    tok->next = NULL;
    pthread_mutex_unlock(&registry_lock);
}

static bool registry_pin_rejected(struct p11_token *tok)
{
    bool r;

    pthread_mutex_lock(&registry_lock);
    r = tok->pin_rejected;
    pthread_mutex_unlock(&registry_lock);
    return r;
}

static int load_module(struct p11_token *tok, const char *module)
{
    struct stat st;
    size_t i;
    char *copy = NULL;
    int rc;

    for (i = 0; i < n_init_modules; i++) {
        if (strcmp(init_modules[i], module) == 0)
            return 0;
    }
    if (n_init_modules == MAX_MODULES)
        return p11_fail(tok, -ENOSPC, "cannot load %s: more than %d modules", module,
                        MAX_MODULES);
    if (stat(module, &st) < 0)
        return p11_fail(tok, -ENOENT, "PKCS#11 module %s: %s", module, strerror(errno));
    copy = strdup(module);
    if (copy == NULL)
        return -ENOMEM;
    rc = gnutls_pkcs11_add_provider(module, NULL);
    if (rc < 0) {
        free(copy);
        return p11_fail(tok, -EIO, "cannot load PKCS#11 module %s: %s", module,
                        gnutls_strerror(rc));
    }
    init_modules[n_init_modules++] = copy;
    return 0;
}

/* Called under init_lock. */
static int init_once(struct p11_token *tok, const char *module)
{
    int rc;

    if (init_mode == INIT_NONE) {
        rc = gnutls_pkcs11_init(module != NULL ? GNUTLS_PKCS11_FLAG_MANUAL
                                               : GNUTLS_PKCS11_FLAG_AUTO,
                                NULL);
        if (rc < 0)
            return p11_fail(tok, -EIO, "cannot initialise PKCS#11: %s", gnutls_strerror(rc));
        gnutls_pkcs11_set_pin_function(pin_callback, NULL);
        init_mode = module != NULL ? INIT_MANUAL : INIT_AUTO;
    }
    if (module == NULL) {
        if (init_mode == INIT_MANUAL)
            return p11_fail(tok, -EBUSY, "this process loaded PKCS#11 modules by path; "
                            "it cannot switch to p11-kit's configured modules");
        return 0;
    }
    if (init_mode == INIT_AUTO)
        return p11_fail(tok, -EBUSY, "this process uses p11-kit's configured modules; "
                        "it cannot load %s on its own", module);
    return load_module(tok, module);
}

static int p11_init(struct p11_token *tok, const char *module)
{
    int rc;

    pthread_mutex_lock(&init_lock);
    rc = init_once(tok, module);
    pthread_mutex_unlock(&init_lock);
    return rc;
}

/*
 * The PIN file must be private to the daemon's user: the PIN unlocks the CA
 * key. Only one trailing newline (LF or CRLF) is stripped, because editors
 * add one; anything else is part of the PIN.
 */
static int read_pin_buf(struct p11_token *tok, const char *path, char *buf, size_t size,
                        size_t *out_len)
{
    struct stat st;
    size_t len = 0;
    ssize_t n;
    int fd = -1;
    int rc;

    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        rc = -errno;
        p11_fail(tok, rc, "cannot read PIN file %s: %s", path, strerror(errno));
        goto out;
    }
    if (fstat(fd, &st) < 0) {
        rc = -errno;
        p11_fail(tok, rc, "cannot stat PIN file %s: %s", path, strerror(errno));
        goto out;
    }
    if (!S_ISREG(st.st_mode)) {
        rc = p11_fail(tok, -EINVAL, "PIN file %s is not a regular file", path);
        goto out;
    }
    if (st.st_mode & (S_IRWXG | S_IRWXO)) {
        rc = p11_fail(tok, -EPERM, "PIN file %s is accessible by group or others "
                      "(mode %04o): chmod 600 %s", path, (unsigned)(st.st_mode & 07777),
                      path);
        goto out;
    }
    while (len < size) {
        n = read(fd, buf + len, size - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = -errno;
            p11_fail(tok, rc, "cannot read PIN file %s: %s", path, strerror(errno));
            goto out;
        }
        if (n == 0)
            break;
        len += (size_t)n;
    }
    if (len > 0 && buf[len - 1] == '\n') {
        len--;
        if (len > 0 && buf[len - 1] == '\r')
            len--;
    }
    if (len > P11_PIN_MAX) {
        rc = p11_fail(tok, -EINVAL, "PIN file %s: PIN longer than %d bytes", path,
                      P11_PIN_MAX);
        goto out;
    }
    if (len == 0) {
        rc = p11_fail(tok, -EINVAL, "PIN file %s is empty", path);
        goto out;
    }
    if (memchr(buf, '\0', len) != NULL || memchr(buf, '\n', len) != NULL) {
        rc = p11_fail(tok, -EINVAL, "PIN file %s: PIN must be one line of text", path);
        goto out;
    }
    *out_len = len;
    rc = 0;
out:
    if (fd >= 0)
        close(fd);
    return rc;
}

static int read_pin(struct p11_token *tok, const char *path)
{
    char buf[P11_PIN_MAX + 2];
    size_t len = 0;
    int rc = read_pin_buf(tok, path, buf, sizeof(buf), &len);

    if (rc == 0) {
        tok->pin = malloc(len + 1);
        if (tok->pin == NULL) {
            rc = -ENOMEM;
        } else {
            memcpy(tok->pin, buf, len);
            tok->pin[len] = '\0';
            tok->pin_len = len;
        }
    }
    gnutls_memset(buf, 0, sizeof(buf));
    return rc;
}

unsigned p11_generation(void)
{
    return atomic_load(&init_generation);
}

/*
 * For sessions opened outside GnuTLS (keyset.c): the same PIN, the same
 * rule that a PIN the token refused is never offered again.
 */
int p11_session_login(struct p11_token *tok, CK_FUNCTION_LIST *mod, CK_SESSION_HANDLE s)
{
    char buf[P11_PIN_MAX + 2];
    CK_SESSION_INFO info;
    size_t len = 0;
    CK_RV rv;
    int rc;

    if (mod->C_GetSessionInfo(s, &info) == CKR_OK
        && (info.state == CKS_RO_USER_FUNCTIONS || info.state == CKS_RW_USER_FUNCTIONS))
        return 0;
    if (tok->pin_file == NULL)
        return p11_fail(tok, -EACCES, "opened without a PIN file; private keys need a login");
    pthread_mutex_lock(&registry_lock);
    if (tok->pin_rejected) {
        rc = p11_fail(tok, -EACCES, "login failed: wrong PIN (from %s)", tok->pin_file);
        goto out;
    }
    if (tok->pin != NULL) {
        memcpy(buf, tok->pin, tok->pin_len);
        len = tok->pin_len;
    } else {
        rc = read_pin_buf(tok, tok->pin_file, buf, sizeof(buf), &len);
        if (rc < 0)
            goto out;
    }
    rv = mod->C_Login(s, CKU_USER, (CK_UTF8CHAR *)buf, len);
    if (rv == CKR_OK || rv == CKR_USER_ALREADY_LOGGED_IN) {
        rc = 0;
    } else if (rv == CKR_PIN_INCORRECT) {
        tok->pin_rejected = true;
        rc = p11_fail(tok, -EACCES, "login failed: wrong PIN (from %s)", tok->pin_file);
    } else if (rv == CKR_PIN_LOCKED) {
        rc = p11_fail(tok, -EACCES, "user PIN is locked; unlock it with the SO PIN");
    } else {
        rc = p11_fail(tok, -EIO, "login failed: PKCS#11 error 0x%lx (PIN from %s)",
                      (unsigned long)rv, tok->pin_file);
    }
out:
    pthread_mutex_unlock(&registry_lock);
    gnutls_memset(buf, 0, sizeof(buf));
    return rc;
}

void p11_token_forget_pin(struct p11_token *tok)
{
    if (tok == NULL)
        return;
    pthread_mutex_lock(&registry_lock);
    if (tok->pin != NULL) {
        gnutls_memset(tok->pin, 0, tok->pin_len);
        free(tok->pin);
        tok->pin = NULL;
        tok->pin_len = 0;
    }
    pthread_mutex_unlock(&registry_lock);
}

/* gnutls_pkcs11_token_get_info() answers from the URI alone; the flags come
 * from the token, so they show whether one matches. */
static int check_present(struct p11_token *tok)
{
    unsigned int flags = 0;
    int rc;

    rc = gnutls_pkcs11_token_get_flags(tok->uri, &flags);
    if (rc == GNUTLS_E_REQUESTED_DATA_NOT_AVAILABLE
        || rc == GNUTLS_E_PKCS11_REQUESTED_OBJECT_NOT_AVAILBLE
        || rc == GNUTLS_E_PKCS11_TOKEN_ERROR || rc == GNUTLS_E_PKCS11_SLOT_ERROR)
        return p11_fail(tok, -ENODEV, "not found (is the module loaded? is SOFTHSM2_CONF set?)");
    if (rc < 0)
        return p11_fail(tok, p11_errno(rc), "cannot query token: %s", gnutls_strerror(rc));
    return 0;
}

/*
 * Log in now, so that a wrong PIN is reported at open time and not at the
 * first signature. Listing private keys needs a logged-in session.
 */
static int login(struct p11_token *tok)
{
    gnutls_pkcs11_obj_t *objs = NULL;
    unsigned int n = 0, i, flags = 0;
    int rc;

    if (gnutls_pkcs11_token_get_flags(tok->uri, &flags) == 0
        && (flags & GNUTLS_PKCS11_TOKEN_USER_PIN_LOCKED))
        return p11_fail(tok, -EACCES, "user PIN is locked; unlock it with the SO PIN");

    rc = gnutls_pkcs11_obj_list_import_url4(&objs, &n, tok->uri,
                                            GNUTLS_PKCS11_OBJ_FLAG_LOGIN
                                                | GNUTLS_PKCS11_OBJ_FLAG_PRIVKEY);
    if (rc < 0) {
        if (registry_pin_rejected(tok))
            rc = p11_fail(tok, -EACCES, "login failed: wrong PIN (from %s)", tok->pin_file);
        else
            rc = p11_fail(tok, p11_errno(rc) == -EIO ? -EACCES : p11_errno(rc),
                          "login failed: %s (PIN from %s)", gnutls_strerror(rc), tok->pin_file);
        goto out;
    }
    rc = 0;
out:
    for (i = 0; i < n; i++)
        gnutls_pkcs11_obj_deinit(objs[i]);
    gnutls_free(objs);
    return rc;
}

int p11_token_open(const char *module, const char *token_uri, const char *pin_file,
                   struct p11_token **out, char *err, size_t errlen)
{
    struct p11_token *tok = NULL;
    bool registered = false, hide_uri = false;
    int rc;

    if (token_uri == NULL || out == NULL)
        return p11_fail_buf(err, errlen, -EINVAL, "no token URI given");
    if (strncmp(token_uri, "pkcs11:", 7) != 0)
        return p11_fail_buf(err, errlen, -EINVAL,
                            "token %s: not a PKCS#11 URI (RFC 7512, \"pkcs11:token=...\")",
                            token_uri);
    tok = calloc(1, sizeof(*tok));
    if (tok == NULL)
        return p11_fail_buf(err, errlen, -ENOMEM, "out of memory");
    tok->uri = strdup(token_uri);
    tok->match = p11_kit_uri_new();
    if (tok->uri == NULL || tok->match == NULL) {
        rc = p11_fail(tok, -ENOMEM, "out of memory");
        goto out;
    }
    if (p11_kit_uri_parse(token_uri, P11_KIT_URI_FOR_TOKEN, tok->match) != P11_KIT_URI_OK) {
        rc = p11_fail(tok, -EINVAL, "not a valid PKCS#11 URI (RFC 7512)");
        goto out;
    }
    /* Keep the PIN out of URIs: they end up in messages, configs and argv. */
    if (p11_kit_uri_get_pin_value(tok->match) != NULL
        || p11_kit_uri_get_pin_source(tok->match) != NULL) {
        hide_uri = true;
        rc = p11_fail(tok, -EINVAL, "carries pin-value or pin-source; give a PIN file instead");
        goto out;
    }
    if (pin_file != NULL) {
        tok->pin_file = strdup(pin_file);
        if (tok->pin_file == NULL) {
            rc = p11_fail(tok, -ENOMEM, "out of memory");
            goto out;
        }
        rc = read_pin(tok, pin_file);
        if (rc < 0)
            goto out;
    }
    rc = p11_init(tok, module);
    if (rc < 0)
        goto out;
    rc = check_present(tok);
    if (rc < 0)
        goto out;
    registry_add(tok);
    registered = true;
    if (tok->pin != NULL) {
        rc = login(tok);
        if (rc < 0)
            goto out;
    }
    tok->err[0] = '\0';
    *out = tok;
    tok = NULL;
    rc = 0;
out:
    if (tok != NULL) {
        if (registered)
            registry_remove(tok);
        if (hide_uri)
            p11_fail_buf(err, errlen, rc, "token URI %s", tok->err);
        else
            p11_fail_buf(err, errlen, rc, "token %s: %s", token_uri, tok->err);
        p11_token_free(tok);
    }
    return rc;
}

int p11_token_reinit(struct p11_token *tok)
{
    enum init_mode mode;
    int rc = 0;

    if (tok == NULL)
        return -EINVAL;
    pthread_mutex_lock(&init_lock);
    mode = init_mode;
    atomic_fetch_add(&init_generation, 1);
    gnutls_pkcs11_deinit();
    rc = gnutls_pkcs11_init(mode == INIT_MANUAL ? GNUTLS_PKCS11_FLAG_MANUAL
                                                : GNUTLS_PKCS11_FLAG_AUTO,
                            NULL);
    if (rc < 0) {
        init_mode = INIT_NONE;
        rc = p11_fail(tok, -EIO, "cannot initialise PKCS#11 again: %s", gnutls_strerror(rc));
    } else {
        gnutls_pkcs11_set_pin_function(pin_callback, NULL);
        for (size_t i = 0; i < n_init_modules && rc == 0; i++) {
            rc = gnutls_pkcs11_add_provider(init_modules[i], NULL);
            if (rc < 0)
                rc = p11_fail(tok, -EIO, "cannot load PKCS#11 module %s again: %s",
                              init_modules[i], gnutls_strerror(rc));
        }
    }
    pthread_mutex_unlock(&init_lock);
    if (rc == 0)
        rc = check_present(tok);
    if (rc == 0 && tok->pin_file != NULL)
        rc = login(tok);
    if (rc == 0)
        tok->err[0] = '\0';
    return rc;
}

void p11_token_free(struct p11_token *tok)
{
    if (tok == NULL)
        return;
    registry_remove(tok);
    if (tok->pin != NULL) {
        gnutls_memset(tok->pin, 0, tok->pin_len);
        free(tok->pin);
    }
    if (tok->match != NULL)
        p11_kit_uri_free(tok->match);
    free(tok->pin_file);
    free(tok->uri);
    free(tok);
}

const char *p11_token_error(const struct p11_token *tok)
{
    return tok != NULL ? tok->err : "";
}

const char *p11_token_uri(const struct p11_token *tok)
{
    return tok != NULL ? tok->uri : NULL;
}

bool p11_token_healthy(struct p11_token *tok)
{
    unsigned int flags = 0;
    int rc;

    if (tok == NULL)
        return false;
    tok->err[0] = '\0';
    rc = gnutls_pkcs11_token_get_flags(tok->uri, &flags);
    if (rc < 0) {
        p11_fail(tok, p11_errno(rc), "not answering: %s", gnutls_strerror(rc));
        return false;
    }
    if (flags & GNUTLS_PKCS11_TOKEN_ERROR_STATE) {
        p11_fail(tok, -EIO, "reports an error state");
        return false;
    }
    return true;
}

struct mech_need {
    unsigned long mech;
    const char *name;
    unsigned long flag;         /* CKF_ the mechanism must offer */
    unsigned long bits;         /* key size to check, 0 = any */
};

static int probe(struct p11_token *tok, enum p11_key_type type, const struct mech_need *need)
{
    CK_MECHANISM_INFO info;

    memset(&info, 0, sizeof(info));
    if (!gnutls_pkcs11_token_check_mechanism(tok->uri, need->mech, &info, sizeof(info), 0))
        return p11_fail(tok, -ENOTSUP, "the token has no %s (needed for %s keys)", need->name,
                        p11_key_type_name(type));
    if (need->flag != 0 && info.flags != 0 && !(info.flags & need->flag))
        return p11_fail(tok, -ENOTSUP, "the token's %s lacks %s (needed for %s keys)",
                        need->name,
                        need->flag == CKF_SIGN ? "CKF_SIGN" : "CKF_GENERATE_KEY_PAIR",
                        p11_key_type_name(type));
    if (need->bits != 0 && info.ulMaxKeySize != 0
        && (need->bits < info.ulMinKeySize || need->bits > info.ulMaxKeySize))
        return p11_fail(tok, -ENOTSUP, "the token's %s takes %lu..%lu bits (%s needs %lu)",
                        need->name, info.ulMinKeySize, info.ulMaxKeySize,
                        p11_key_type_name(type), need->bits);
    return 0;
}

int p11_token_supports(struct p11_token *tok, enum p11_key_type type)
{
    static const struct mech_need ec[] = {
        { CKM_EC_KEY_PAIR_GEN, "CKM_EC_KEY_PAIR_GEN", CKF_GENERATE_KEY_PAIR, 0 },
        { CKM_ECDSA, "CKM_ECDSA", CKF_SIGN, 0 },
    };
    /* TLS 1.3 signs with RSA only through PSS (RFC 8446 4.2.3). */
    static const struct mech_need rsa[] = {
        { CKM_RSA_PKCS_KEY_PAIR_GEN, "CKM_RSA_PKCS_KEY_PAIR_GEN", CKF_GENERATE_KEY_PAIR, 3072 },
        { CKM_RSA_PKCS_PSS, "CKM_RSA_PKCS_PSS", CKF_SIGN, 0 },
    };
    const struct mech_need *needs;
    size_t i;
    int rc;

    if (tok == NULL)
        return -EINVAL;
    tok->err[0] = '\0';
    switch (type) {
    case P11_KEY_EC_P256:
    case P11_KEY_EC_P384:
        needs = ec;
        break;
    case P11_KEY_RSA_3072:
        needs = rsa;
        break;
    default:
        return p11_fail(tok, -EINVAL, "unknown key type %d", (int)type);
    }
    for (i = 0; i < 2; i++) {
        rc = probe(tok, type, &needs[i]);
        if (rc < 0)
            return rc;
    }
    return 0;
}
