/*
 * mkdevkeys: many device keys on one token, for the footprint benchmark
 * (tests/bench/run footprint). Not a test.
 *
 *   GNUTLS_PIN=... mkdevkeys MODULE TOKEN-URI PREFIX FIRST COUNT OUTDIR
 *
 * For i in FIRST .. FIRST+COUNT-1: an ECDSA P-256 key labelled PREFIX<i>
 * (4 digits) made on the token, as `mtlsgw csr` makes its one device key
 * (sensitive, private), and OUTDIR/PREFIX<i>.csr signed by it with
 * CN=PREFIX<i>. One process opens the token once: `mtlsgw csr` always uses
 * the one label mtlsgw-device, and a process per key would take minutes for
 * the 1,000 uplinks of one spoke daemon.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gnutls/abstract.h>
#include <gnutls/gnutls.h>
#include <gnutls/pkcs11.h>
#include <gnutls/x509.h>

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

static int one(const char *token, const char *label, const char *outdir)
{
    gnutls_privkey_t key = NULL;
    gnutls_pubkey_t pub = NULL;
    gnutls_x509_crq_t crq = NULL;
    gnutls_datum_t pem = {NULL, 0};
    char url[512], path[1024];
    FILE *f = NULL;
    int rc;

    rc = gnutls_pkcs11_privkey_generate3(token, GNUTLS_PK_ECDSA,
                                         GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1),
                                         label, NULL, GNUTLS_X509_FMT_DER, NULL, 0,
                                         GNUTLS_PKCS11_OBJ_FLAG_LOGIN
                                             | GNUTLS_PKCS11_OBJ_FLAG_MARK_SENSITIVE
                                             | GNUTLS_PKCS11_OBJ_FLAG_MARK_PRIVATE);
    if (rc < 0)
        goto out;
    snprintf(url, sizeof(url), "%s;object=%s;type=private", token, label);
    if ((rc = gnutls_privkey_init(&key)) < 0 ||
        (rc = gnutls_privkey_import_url(key, url, 0)) < 0 ||
        (rc = gnutls_pubkey_init(&pub)) < 0 ||
        (rc = gnutls_pubkey_import_privkey(pub, key, 0, 0)) < 0 ||
        (rc = gnutls_x509_crq_init(&crq)) < 0 ||
        (rc = gnutls_x509_crq_set_version(crq, 1)) < 0 ||
        (rc = gnutls_x509_crq_set_dn_by_oid(crq, GNUTLS_OID_X520_COMMON_NAME, 0, label,
                                            (unsigned)strlen(label))) < 0 ||
        (rc = gnutls_x509_crq_set_pubkey(crq, pub)) < 0 ||
        (rc = gnutls_x509_crq_privkey_sign(crq, key, GNUTLS_DIG_SHA256, 0)) < 0 ||
        (rc = gnutls_x509_crq_export2(crq, GNUTLS_X509_FMT_PEM, &pem)) < 0)
        goto out;
    snprintf(path, sizeof(path), "%s/%s.csr", outdir, label);
    f = fopen(path, "w");
    if (!f || fwrite(pem.data, 1, pem.size, f) != pem.size) {
        rc = GNUTLS_E_FILE_ERROR;
        goto out;
    }
out:
    if (f)
        fclose(f);
    gnutls_free(pem.data);
    if (crq)
        gnutls_x509_crq_deinit(crq);
    if (pub)
        gnutls_pubkey_deinit(pub);
    if (key)
        gnutls_privkey_deinit(key);
    return rc;
}

int main(int argc, char **argv)
{
    unsigned first, count;
    char label[64];
    int rc;

    if (argc != 7) {
        fprintf(stderr, "usage: GNUTLS_PIN=... mkdevkeys MODULE TOKEN-URI PREFIX FIRST COUNT "
                        "OUTDIR\n");
        return 2;
    }
    first = (unsigned)strtoul(argv[4], NULL, 10);
    count = (unsigned)strtoul(argv[5], NULL, 10);
    gnutls_global_init();
    if (gnutls_pkcs11_init(GNUTLS_PKCS11_FLAG_MANUAL, NULL) < 0 ||
        gnutls_pkcs11_add_provider(argv[1], NULL) < 0) {
        fprintf(stderr, "mkdevkeys: cannot load PKCS#11 module %s\n", argv[1]);
        return 1;
    }
    gnutls_pkcs11_set_pin_function(pin_cb, NULL);
    for (unsigned i = first; i < first + count; i++) {
        snprintf(label, sizeof(label), "%s%04u", argv[3], i);
        rc = one(argv[2], label, argv[6]);
        if (rc < 0) {
            fprintf(stderr, "mkdevkeys: %s: %s\n", label, gnutls_strerror(rc));
            return 1;
        }
    }
    gnutls_pkcs11_deinit();
    return 0;
}
