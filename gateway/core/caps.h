/*
 * caps.h: capabilities without libcap (raw capset/prctl, as musl and glibc
 * both have them), for the two processes of the daemon.
 */
#ifndef MTLSGW_CAPS_H
#define MTLSGW_CAPS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/*
 * Become uid/gid (when running as root and uid != 0) keeping only
 * CAP_NET_ADMIN (keep_net_admin) or nothing in the effective and permitted
 * sets; inheritable, ambient and bounding sets empty; no new privileges; not
 * dumpable (the session process holds token keys and, while it logs in, the
 * PIN).
 */
int caps_drop_to(uid_t uid, gid_t gid, bool keep_net_admin, char *err, size_t errlen);

/* Whether the effective set holds CAP_NET_ADMIN. */
bool caps_have_net_admin(void);

#endif
