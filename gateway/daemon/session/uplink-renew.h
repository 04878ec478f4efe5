/*
 * uplink-renew.h: an uplink renews its own certificate (EST simplereenroll
 * to [uplink] enroll) once two thirds of its lifetime have passed, with
 * jitter, on a thread of its own that may block; the new certificate is
 * used from the next connection and the open tunnel stays up. The thread
 * also notices a certificate file replaced by someone else (`mtlsgw renew`)
 * and loads it the same way.
 */
#ifndef MTLSGW_UPLINK_RENEW_H
#define MTLSGW_UPLINK_RENEW_H

/* The stack of an uplink's thread and of its renewer: a handshake with the
 * key on the token, an EST exchange; measured use is ~13 KiB. */
#define UPLINK_STACK (256 * 1024)

#include <stddef.h>
#include <stdint.h>

struct daemon;
struct cfg_uplink;
struct renewer;

/* Loads uplink index's new certificate for its next connection (the
 * uplink's uplink_reload_tls): given, so the renewer calls no uplink code. */
typedef int (*renewer_reload_fn)(struct daemon *d, unsigned index, char *err, size_t errlen);

/* The renewal thread of uplink index (uc its config); it ends once stop_fd
 * is readable. */
int renewer_start(struct daemon *d, unsigned index, const struct cfg_uplink *uc, int stop_fd,
                  renewer_reload_fn reload, struct renewer **out);
/* Join and free (stop_fd must have been made readable); NULL is a no-op. */
void renewer_free(struct renewer *r);

#endif
