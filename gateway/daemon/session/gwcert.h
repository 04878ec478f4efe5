/*
 * gwcert.h: the gateway's own certificate in the running daemon: the token
 * key that goes with it, a new certificate taken for new handshakes without
 * dropping a session (SIGHUP, the pki dir's watch, the control socket's
 * "gateway-reload"), and the renewal at two thirds of its lifetime
 * ([pki] auto-renew).
 */
#ifndef MTLSGW_GWCERT_H
#define MTLSGW_GWCERT_H

#include <stddef.h>
#include <time.h>

#include <gnutls/abstract.h>

struct daemon;

/* The certificate the listeners present ([management] cert, or gateway.crt). */
const char *gwcert_path(const struct daemon *d);

/* The token key of that certificate (pki-gateway.h: the configured label
 * or its "-next" twin). Caller holds token use as for any key load. */
int gwcert_key_load(struct daemon *d, gnutls_privkey_t *key, char *err, size_t errlen);

/*
 * Read the certificate again and give every listener credentials with it
 * for its next handshakes; open sessions keep theirs. serial (may be NULL)
 * gets the serial now served. Takes pki_lock and token_lock itself.
 */
int gwcert_reload(struct daemon *d, char *serial, size_t len, char *err, size_t errlen);

/* The same on the slow pool, for the loop (SIGHUP, the watch): a token
 * that is slow, or handshakes holding token_lock, must not stall it. */
void gwcert_reload_later(struct daemon *d);

/*
 * Days left on each uplink's own certificate and on the hub CA it trusts
 * (a spoke has no CA of its own): an array of {"name", "server",
 * "certificate", "hub_ca"} for status, and the same as Prometheus lines
 * (malloc'ed) for /metrics. -1: the file cannot be read.
 */
struct json_object;
struct json_object *gwcert_uplinks_json(struct daemon *d, time_t now);
char *gwcert_uplinks_metrics(struct daemon *d, time_t now);

/* Once a minute from the tick: renew (slow pool) when two thirds of the
 * certificate's lifetime have passed and [pki] auto-renew is on. */
void gwcert_tick(struct daemon *d);

#endif
