/*
 * trustdb.h: one consistent snapshot of what decides trust (CA, CRL,
 * registry), shared by reference between threads and swapped whole on
 * reload, so a handshake never sees half of an update.
 */
#ifndef MTLSGW_TRUSTDB_H
#define MTLSGW_TRUSTDB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <gnutls/x509.h>

struct cfg_trust;
struct pki;
struct registry;
struct trust;
struct verdict;

struct trustdb;

/* Load ca.crt, chain.pem if present, crl.pem (its signature checked
 * against this gateway's CA) and the registry. err names the file on
 * failure. ca.crt's first certificate is the anchor; the others only when
 * the pki dir vouches for them (trustdb_ignored). */
int trustdb_load(const struct pki *pki, struct trustdb **out, char *err, size_t errlen);
/* A snapshot of these (it takes all three; crl may be NULL), for tests and
 * for trustdb_load. The CRL's signature is the caller's to check. Pass a CA
 * and CRL read from DER/PEM: GnuTLS matches a CRL made in memory against
 * certificates by issuer name unreliably (check_revocation says "not
 * revoked"). */
int trustdb_from(gnutls_x509_crt_t ca, gnutls_x509_crl_t crl, struct registry *reg,
                 struct trustdb **out);
/* The same with the intermediates between ca (the root) and this CA,
 * this CA first (chain.pem); it takes the certificates and the array
 * (gnutls_free'd). */
int trustdb_from_chain(gnutls_x509_crt_t ca, gnutls_x509_crt_t *chain, size_t n_chain,
                       gnutls_x509_crl_t crl, struct registry *reg, struct trustdb **out);
struct trustdb *trustdb_ref(struct trustdb *db);
void trustdb_unref(struct trustdb *db);

/*
 * The certificates of ca.crt after the first that nothing in the pki dir
 * vouches for (a cross certificate in cross/ for its key signed by this
 * gateway's CA, or, under an organization's root, chain.pem verifying to
 * it): never trusted, each said in a line naming its subject, for the
 * daemon's log and explain. NULL past the end.
 */
size_t trustdb_n_ignored(const struct trustdb *db);
const char *trustdb_ignored(const struct trustdb *db, size_t i);

const struct trust *trustdb_trust(const struct trustdb *db);
const struct registry *trustdb_registry(const struct trustdb *db);
/* This gateway's issuing CA: the first intermediate, or the root. */
gnutls_x509_crt_t trustdb_ca(const struct trustdb *db);
/* The root peers trust (ca.crt). */
gnutls_x509_crt_t trustdb_root(const struct trustdb *db);
time_t trustdb_crl_this_update(const struct trustdb *db);
time_t trustdb_crl_next_update(const struct trustdb *db);
/* The CRL's cRLNumber (0 without one; UINT64_MAX when it does not fit). */
uint64_t trustdb_crl_number(const struct trustdb *db);
/* Whether the CRL lists serial (lowercase hex as verify_serial_hex writes
 * it): for sessions opened before the CRL changed. */
bool trustdb_serial_in_crl(const struct trustdb *db, const char *serial);

/*
 * Add a sibling issuer ([trust NAME]) to a snapshot nobody else holds yet
 * (between trustdb_load and publishing it): its CA (DER), whether its CRL
 * is fresh, the serials that CRL lists (verify_serial_hex, any order), and
 * the VERIFY_ROLE() bits it may vouch for. Everything is copied.
 */
int trustdb_add_issuer(struct trustdb *db, const char *name, const gnutls_datum_t *ca_der,
                       bool fresh, char (*const revoked)[64], size_t n_revoked, unsigned roles);
/* Where the daemon keeps the root's CRL it last took for [trust NAME]
 * (docs/pki.md "The root's CRL at the hubs"), for explain:
 * "<pki dir>/rootcrl-NAME.crl". */
void trustdb_issuer_root_crl_path(const char *pki_dir, const char *name, char *out,
                                  size_t outlen);
/* Mark [trust NAME] of a snapshot nobody else holds yet as revoked at the
 * root (its CA is on the root's CRL): its peers are refused. -ENOENT when
 * db has no such issuer. */
int trustdb_issuer_ca_revoked(struct trustdb *db, const char *name);
/* Where the daemon keeps the last CRL it took for [trust NAME] (as served,
 * DER or PEM; written once its signature checked; a 304 writes nothing):
 * "<pki dir>/trust-NAME.crl". The parent (roaming tunnel peers) and
 * `mtlsgw explain` read it. */
void trustdb_issuer_crl_path(const char *pki_dir, const char *name, char *out, size_t outlen);
/* trustdb_add_issuer for [trust NAME] t from files alone: its CA, and that
 * CRL, fresh when signed by the CA, its thisUpdate within max-stale and
 * before its nextUpdate (verify_crl_fresh; why says what is not, fresh or
 * not; crl_number its cRLNumber; warn, "" or verify_crl_aging's advice
 * when fresh but signed more than max-stale/2 ago). For explain: the
 * verdict the daemon gives now. */
int trustdb_add_issuer_file(struct trustdb *db, const struct cfg_trust *t, const char *pki_dir,
                            time_t now, uint64_t *crl_number, char *why, size_t whylen,
                            char *warn, size_t warnlen);
/* Why an open session of a sibling issuer's peer is no longer trusted by
 * db (NULL: it is): the issuer gone from the config, its CRL stale or
 * listing serial. */
const char *trustdb_issuer_untrusted(const struct trustdb *db, const char *issuer,
                                     const char *serial);

/*
 * verify_peer for the DER certificates raw[0..n) a peer sent (raw[0] its
 * own), remembering a lone certificate that passed: the next full handshake
 * with the same bytes skips the chain's signature check (not the rest).
 * Thread-safe. -EBADMSG when a certificate does not parse.
 */
int trustdb_verify_peer(struct trustdb *db, const gnutls_datum_t *raw, unsigned n, time_t now,
                        unsigned allowed_roles, struct verdict *v);

/*
 * verify_by_facts for the peer certificate der (DER) of a resumed session,
 * with its parsed facts kept in db for the next resumption. Thread-safe. der
 * NULL: no certificate. Returns as verify_by_facts; -EBADMSG when der does
 * not parse.
 */
int trustdb_verify_resumed(struct trustdb *db, const gnutls_datum_t *der, time_t now,
                           unsigned allowed_roles, struct verdict *v);

#endif
