/*
 * instance.c: one mtlsgwd per config. Two daemons on one pki dir fought over
 * everything it owns: the second removed the first one's control socket and
 * its mtgu* interfaces, and both dialled the hub with one certificate. The
 * lock is an flock, so it goes with the process, however it ends: no stale
 * lock file to remove after a crash.
 */
#include "instance.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>


int instance_lock(const char *pki_dir, uid_t owner, int *fd_out, char *err, size_t errlen)
{
    char path[PATH_MAX], pid[32] = "";
    struct stat st;
    int fd = -1, rc;
    ssize_t n;

    /* In the pki dir itself: a lock per run dir let two configs that differ
     * only in their control socket run two daemons on one pki dir. */
    if ((size_t)snprintf(path, sizeof(path), "%s/mtlsgwd.lock", pki_dir) >= sizeof(path)) {
        snprintf(err, errlen, "lock in %s: %s", pki_dir, strerror(ENAMETOOLONG));
        return -ENAMETOOLONG;
    }
    fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, 0600);
    if (fd < 0 || fstat(fd, &st) < 0) {
        rc = -errno;
        snprintf(err, errlen, "lock file %s: %s%s", path, strerror(-rc),
                 rc == -ENOENT ? " (no pki dir there: make it with mtlsgw init)" : "");
        goto fail;
    }
    if (!S_ISREG(st.st_mode)) {
        rc = -EEXIST;
        snprintf(err, errlen, "lock file %s: not a regular file; remove what is there", path);
        goto fail;
    }
    /* Opened by root in a directory the daemon's user writes: with
     * fs.protected_hardlinks=0 that user could plant a hard link there to
     * any file (O_NOFOLLOW stops symbolic links only), which the pid below
     * would overwrite. Only our own file, linked once, is taken. */
    if (st.st_nlink != 1 || (st.st_uid != 0 && st.st_uid != owner && st.st_uid != geteuid())) {
        rc = -EPERM;
        if (st.st_nlink != 1)
            snprintf(err, errlen, "lock file %s has %lu links: it is another file's hard link, "
                     "not this daemon's own; left untouched: remove it (rm %s) and look into "
                     "who made it", path, (unsigned long)st.st_nlink, path);
        else
            snprintf(err, errlen, "lock file %s belongs to uid %lu, neither root nor the "
                     "daemon's user: left untouched: remove it (rm %s)", path,
                     (unsigned long)st.st_uid, path);
        goto fail;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
        rc = errno == EWOULDBLOCK ? -EBUSY : -errno;
        if (rc == -EBUSY) {
            n = pread(fd, pid, sizeof(pid) - 1, 0);
            pid[n > 0 ? n : 0] = '\0';
            pid[strcspn(pid, "\n")] = '\0';
            snprintf(err, errlen,
                     "another mtlsgwd (pid %s) already runs with pki dir %s (it holds %s): "
                     "stop it first (kill -TERM %s); two daemons on one config would fight "
                     "over its control socket, tunnel interfaces and firewall table",
                     pid[0] ? pid : "unknown", pki_dir, path, pid[0] ? pid : "PID");
        } else {
            snprintf(err, errlen, "lock file %s: %s", path, strerror(-rc));
        }
        goto fail;
    }
    snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
    if (ftruncate(fd, 0) < 0 || pwrite(fd, pid, strlen(pid), 0) != (ssize_t)strlen(pid)) {
        rc = -errno;
        snprintf(err, errlen, "lock file %s: cannot write the pid: %s", path, strerror(-rc));
        goto fail;
    }
    *fd_out = fd;
    return 0;
fail:
    if (fd >= 0)
        close(fd);
    return rc;
}
