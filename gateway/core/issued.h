/*
 * issued.h: every certificate the CA issued, kept by serial under the pki
 * dir (<pki dir>/issued/SERIAL.crt, PEM): enroll, renew, reissue, EST and
 * the gateway's own. The registry says which one is current; these files
 * let `mtlsgw show NAME --pem` print it and `mtlsgw reissue` find its key.
 */
#ifndef MTLSGW_ISSUED_H
#define MTLSGW_ISSUED_H

#include <stddef.h>

#include <gnutls/x509.h>

/* "<dir>/issued/<serial>.crt", owned; NULL when out of memory or the serial
 * is not lower-case hex. */
char *issued_path(const char *pki_dir, const char *serial);

/* Write crt's PEM there atomically (the issued/ dir made when missing). */
int issued_store(const char *pki_dir, gnutls_x509_crt_t crt);

/* Read the stored certificate of serial: -ENOENT when none was kept (it
 * was issued before mtlsgw kept them). */
int issued_load(const char *pki_dir, const char *serial, gnutls_x509_crt_t *out);

#endif
