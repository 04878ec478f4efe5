/*
 * fuzz-csr: CSRs as `mtlsgw enroll`, POST /api/v1/peers and EST hand them
 * to p11_csr_parse() (pkcs11/p11.h): PEM or DER PKCS#10, then proof of
 * possession. A CSR that passes is read further the way the enrollment
 * does: its public key, its key id, its subject.
 */
#include <string.h>

#include <gnutls/abstract.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

#include "fuzz.h"
#include "p11.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    gnutls_datum_t d = {(unsigned char *)data, (unsigned)size};
    gnutls_x509_crq_t crq = NULL;
    gnutls_pubkey_t pub = NULL;
    char err[256], dn[512];
    size_t dn_len = sizeof(dn);
    char *id = NULL;

    if (size > 65536) /* max-body */
        return 0;
    err[0] = '\0';
    if (p11_csr_parse(&d, &crq, err, sizeof(err)) < 0) {
        FUZZ_CHECK(crq == NULL);
        FUZZ_CHECK(err[0] != '\0' && memchr(err, '\0', sizeof(err)) != NULL);
        return 0;
    }
    FUZZ_CHECK(crq != NULL);
    (void)gnutls_x509_crq_get_dn(crq, dn, &dn_len);
    if (gnutls_pubkey_init(&pub) == 0) {
        if (gnutls_pubkey_import_x509_crq(pub, crq, 0) == 0 && p11_pubkey_id_hex(pub, &id) == 0) {
            FUZZ_CHECK(strlen(id) == 64);
            free(id);
        }
        gnutls_pubkey_deinit(pub);
    }
    gnutls_x509_crq_deinit(crq);
    return 0;
}
