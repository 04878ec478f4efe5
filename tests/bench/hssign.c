/*
 * hssign: the raw signing rate of a token key, for the handshake benchmark
 * (tests/bench/run handshake). Not a test.
 *
 *   GNUTLS_PIN=... hssign MODULE KEY-URI THREADS SECS
 *
 * Each thread opens the key itself (its own PKCS#11 session) and signs a
 * SHA-256 of 32 bytes with gnutls_privkey_sign_data, as a TLS 1.3
 * CertificateVerify does, for SECS seconds. Prints the total and the rate per
 * thread.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <gnutls/abstract.h>
#include <gnutls/gnutls.h>
#include <gnutls/pkcs11.h>

static const char *uri;
static unsigned secs;
static atomic_ullong total, failed;

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The PIN from the environment of this throwaway benchmark token. */
static int pin_cb(void *u, int attempt, const char *token_url, const char *token_label,
                  unsigned flags, char *pin, size_t pin_max)
{
    const char *p = getenv("GNUTLS_PIN");

    (void)u, (void)token_url, (void)token_label;
    if (!p || attempt > 0 || (flags & GNUTLS_PIN_WRONG) || strlen(p) >= pin_max)
        return -1;
    strcpy(pin, p);
    return 0;
}

static void *signer(void *arg)
{
    unsigned long long *mine = arg;
    gnutls_privkey_t key;
    unsigned char msg[32] = {1};
    gnutls_datum_t data = {msg, sizeof(msg)}, sig;
    double until;

    if (gnutls_privkey_init(&key) < 0 || gnutls_privkey_import_url(key, uri, 0) < 0) {
        fprintf(stderr, "hssign: cannot open %s\n", uri);
        atomic_fetch_add(&failed, 1);
        return NULL;
    }
    until = now_s() + secs;
    while (now_s() < until) {
        if (gnutls_privkey_sign_data(key, GNUTLS_DIG_SHA256, 0, &data, &sig) < 0) {
            atomic_fetch_add(&failed, 1);
            break;
        }
        gnutls_free(sig.data);
        msg[0]++;
        (*mine)++;
    }
    atomic_fetch_add(&total, *mine);
    gnutls_privkey_deinit(key);
    return NULL;
}

int main(int argc, char **argv)
{
    unsigned n;
    pthread_t *th;
    unsigned long long *counts;

    if (argc != 5) {
        fprintf(stderr, "usage: GNUTLS_PIN=... hssign MODULE KEY-URI THREADS SECS\n");
        return 2;
    }
    uri = argv[2];
    n = (unsigned)strtoul(argv[3], NULL, 10);
    secs = (unsigned)strtoul(argv[4], NULL, 10);
    if (n == 0 || secs == 0)
        return 2;
    gnutls_global_init();
    if (gnutls_pkcs11_init(GNUTLS_PKCS11_FLAG_MANUAL, NULL) < 0 ||
        gnutls_pkcs11_add_provider(argv[1], NULL) < 0) {
        fprintf(stderr, "hssign: cannot load PKCS#11 module %s\n", argv[1]);
        return 1;
    }
    gnutls_pkcs11_set_pin_function(pin_cb, NULL);
    th = calloc(n, sizeof(*th));
    counts = calloc(n, sizeof(*counts));
    if (!th || !counts)
        return 1;
    for (unsigned i = 0; i < n; i++)
        pthread_create(&th[i], NULL, signer, &counts[i]);
    for (unsigned i = 0; i < n; i++)
        pthread_join(th[i], NULL);
    printf("threads=%u signs=%llu rate=%.0f per_thread=%.0f failed=%llu\n", n,
           (unsigned long long)total, (double)total / secs, (double)total / secs / n,
           (unsigned long long)failed);
    free(th);
    free(counts);
    gnutls_pkcs11_deinit();
    return failed ? 1 : 0;
}
