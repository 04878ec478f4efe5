/* instance.h: one mtlsgwd per config (docs/mtlsgwd.md, "One daemon per config"). */
#ifndef MTLSGW_INSTANCE_H
#define MTLSGW_INSTANCE_H

#include <stddef.h>

/*
 * Take the lock of the daemon of pki_dir: flock on run_dir/mtlsgwd-HASH.lock,
 * HASH from the pki dir's real path, holding this process's pid. *fd_out is
 * kept open for the daemon's life. -EBUSY when another mtlsgwd holds it, with
 * err naming its pid and the lock; other -errno with err naming the file.
 */
int instance_lock(const char *run_dir, const char *pki_dir, int *fd_out, char *err,
                  size_t errlen);

#endif
