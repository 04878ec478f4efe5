/*
 * trust-fetch.h: the CRLs of sibling issuers ([trust NAME] sections,
 * docs/pki.md "Revocation across hubs"), fetched from their distribution
 * points by a thread of the session process, never on a handshake's way.
 * Each change (a new CRL, an issuer going stale or fresh again) reloads
 * trust, which ends the sessions it no longer admits (sessions.c).
 */
#ifndef MTLSGW_TRUST_FETCH_H
#define MTLSGW_TRUST_FETCH_H

#include <stddef.h>

#include <gnutls/x509.h>

struct daemon;
struct trust_fetch;
struct trustdb;
struct json_object;

/* Reads each [trust NAME] ca = FILE (err names the file on failure);
 * *out NULL when there is no [trust] section. Fetches nothing yet: until
 * the first fetch, every issuer is stale (fail closed). */
int trust_fetch_new(struct daemon *d, struct trust_fetch **out, char *err, size_t errlen);
/* The fetching thread; on_change(arg) runs on it after each change of
 * what an issuer revokes or of its freshness (server.c: reload trust,
 * which calls trust_fetch_apply). */
int trust_fetch_start(struct trust_fetch *tf, void (*on_change)(void *arg), void *arg,
                      char *err, size_t errlen);
void trust_fetch_free(struct trust_fetch *tf);

/* Add the issuers, as they stand now, to a snapshot not yet published
 * (daemon_reload_trust, daemon_open). tf NULL: nothing. */
int trust_fetch_apply(struct trust_fetch *tf, struct trustdb *db);

/* The issuers' CA certificates (owned by tf) into cas[0..max): the names a
 * listener's CertificateRequest carries besides our own CA. */
size_t trust_fetch_cas(const struct trust_fetch *tf, gnutls_x509_crt_t *cas, size_t max);

/* {"NAME": {"crl_url", "fresh", "age", "revoked", "error"}} for status. */
struct json_object *trust_fetch_json(struct trust_fetch *tf);

/*
 * One fetch of url (http:// only) with a deadline: the body of a 200, or
 * 304 when etag matched. For the fetcher and tests/bench. *status the HTTP
 * status; the new ETag into etag_out (may be "").
 */
int trust_http_get(const char *url, const char *etag, unsigned timeout_ms, size_t max,
                   int *status, char **body, size_t *len, char *etag_out, size_t etag_len,
                   char *err, size_t errlen);

#endif
