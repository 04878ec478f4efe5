/* instance.h: one mtlsgwd per config (docs/mtlsgwd.md, "One daemon per config"). */
#ifndef MTLSGW_INSTANCE_H
#define MTLSGW_INSTANCE_H

#include <stddef.h>
#include <sys/types.h>

/*
 * Take the lock of the daemon of pki_dir: flock on <pki_dir>/mtlsgwd.lock
 * (made 0600), holding this process's pid: whatever the config's other keys
 * (control socket, run dir), one daemon per pki dir. *fd_out is kept open
 * for the daemon's life. -EBUSY when another mtlsgwd holds it, with err
 * naming its pid and the lock; -EPERM when the file there is not our own
 * (more than one link, or owned by neither root, owner (the daemon's user)
 * nor us): it is left untouched; other -errno with err naming the file.
 */
int instance_lock(const char *pki_dir, uid_t owner, int *fd_out, char *err, size_t errlen);

#endif
