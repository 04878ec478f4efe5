/*
 * slowtoken: a PKCS#11 module for the slowtoken benchmark (tests/bench/run
 * slowtoken). It forwards every call to SoftHSM and sleeps in each signing
 * call, the way a TPM takes tens of milliseconds per signature. Not a test.
 *
 *   SLOWTOKEN_MODULE  the module forwarded to (default: SoftHSM's usual path)
 *   SLOWTOKEN_MS      milliseconds slept per C_Sign / C_SignFinal (default 50)
 *
 * mtlsgwd loads it with `[token] module = .../libslowtoken.so`.
 */
#include <dlfcn.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <p11-kit/pkcs11.h>

#define DEFAULT_MODULE "/usr/lib/softhsm/libsofthsm2.so"

static CK_FUNCTION_LIST *real;
static CK_FUNCTION_LIST wrapped;
static long delay_ms = 50;
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void slow(void)
{
    struct timespec ts = {delay_ms / 1000, (delay_ms % 1000) * 1000000L};

    while (nanosleep(&ts, &ts) != 0)
        ;
}

static CK_RV slow_sign_init(CK_SESSION_HANDLE s, CK_MECHANISM_PTR m, CK_OBJECT_HANDLE k)
{
    return real->C_SignInit(s, m, k);
}

static CK_RV slow_sign(CK_SESSION_HANDLE s, CK_BYTE_PTR data, CK_ULONG len, CK_BYTE_PTR sig,
                       CK_ULONG_PTR sig_len)
{
    /* A size query (sig == NULL) costs a real token nothing. */
    if (sig)
        slow();
    return real->C_Sign(s, data, len, sig, sig_len);
}

static CK_RV slow_sign_final(CK_SESSION_HANDLE s, CK_BYTE_PTR sig, CK_ULONG_PTR sig_len)
{
    if (sig)
        slow();
    return real->C_SignFinal(s, sig, sig_len);
}

static void load(void)
{
    const char *path = getenv("SLOWTOKEN_MODULE"), *ms = getenv("SLOWTOKEN_MS");
    CK_RV (*get)(CK_FUNCTION_LIST_PTR_PTR);
    void *h;

    if (ms)
        delay_ms = strtol(ms, NULL, 10);
    h = dlopen(path ? path : DEFAULT_MODULE, RTLD_NOW | RTLD_LOCAL);
    if (!h)
        return;
    get = (CK_RV(*)(CK_FUNCTION_LIST_PTR_PTR))dlsym(h, "C_GetFunctionList");
    if (!get || get(&real) != CKR_OK || !real)
        return;
    wrapped = *real;
    wrapped.C_SignInit = slow_sign_init;
    wrapped.C_Sign = slow_sign;
    wrapped.C_SignFinal = slow_sign_final;
}

CK_RV C_GetFunctionList(CK_FUNCTION_LIST_PTR_PTR list)
{
    pthread_once(&once, load);
    if (!real)
        return CKR_GENERAL_ERROR;
    if (!list)
        return CKR_ARGUMENTS_BAD;
    *list = &wrapped;
    return CKR_OK;
}
