/* instance.h: one mtlsgwd per config (docs/mtlsgwd.md, "One daemon per config"). */
#ifndef MTLSGW_INSTANCE_H
#define MTLSGW_INSTANCE_H

#include <stddef.h>
#include <sys/types.h>

/*
 * Take the lock of the daemon of pki_dir: flock on run_dir/mtlsgwd-HASH.lock,
 * HASH from the pki dir's real path, holding this process's pid. *fd_out is
 * kept open for the daemon's life. -EBUSY when another mtlsgwd holds it, with
 * err naming its pid and the lock; -EPERM when the file there is not our own
 * (more than one link, or owned by neither root, owner (the daemon's user)
 * nor us): it is left untouched; other -errno with err naming the file.
 */
int instance_lock(const char *run_dir, const char *pki_dir, uid_t owner, int *fd_out, char *err,
                  size_t errlen);

#endif
