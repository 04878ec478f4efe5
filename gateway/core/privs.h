/*
 * privs.h: acting as the daemon's user from the console.
 *
 * The console tool runs as root, but the token objects it creates (SoftHSM
 * writes a file per object) and the pki dir must belong to the daemon's
 * user, so it switches its effective ids to that user while it touches
 * them, and back to the invoker for files named on the command line.
 */
#ifndef MTLSGW_PRIVS_H
#define MTLSGW_PRIVS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/*
 * Look the user up. 0 when switching will happen; 1 when it need not (not
 * root, or the user is root); 2 when the user does not exist (msg says what
 * follows, for a warning).
 */
int privs_init(const char *user, char *msg, size_t len);
/* Effective ids of the daemon's user (no-op when not switching). */
int privs_as_daemon(void);
/* Back to the invoking user. */
int privs_as_invoker(void);
/* uid/gid state files should have (the daemon's, or ours). */
uid_t privs_daemon_uid(void);
gid_t privs_daemon_gid(void);

#endif
