#include "fsutil.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <unistd.h>

/* Links followed for one fs_write_out(FS_OUT_FOLLOW), as the kernel's limit. */
#define MAX_LINKS 40

char *fs_join(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);

    if (p)
        snprintf(p, n, "%s/%s", dir, name);
    return p;
}

/* The whole of fd (closed here) into *out, as fs_read_file. */
static int read_fd(int fd, size_t max, char **out, size_t *len)
{
    int rc = 0;
    char *buf = NULL;
    size_t have = 0, cap = 4096;
    ssize_t r;

    buf = malloc(cap + 1);
    if (!buf) {
        rc = -ENOMEM;
        goto out;
    }
    for (;;) {
        if (have == cap) {
            char *nb;
            if (cap >= max) {
                rc = -EFBIG;
                goto out;
            }
            cap *= 2;
            nb = realloc(buf, cap + 1);
            if (!nb) {
                rc = -ENOMEM;
                goto out;
            }
            buf = nb;
        }
        r = read(fd, buf + have, cap - have);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            rc = -errno;
            goto out;
        }
        if (r == 0)
            break;
        have += (size_t)r;
        if (have > max) {
            rc = -EFBIG;
            goto out;
        }
    }
    buf[have] = '\0';
    *out = buf;
    buf = NULL;
    if (len)
        *len = have;
out:
    free(buf);
    close(fd);
    return rc;
}

int fs_read_input(const char *path, size_t max, char **out, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);

    if (fd < 0)
        return -errno;
    return read_fd(fd, max, out, len);
}

int fs_read_file(const char *path, size_t max, char **out, size_t *len)
{
    struct stat st;
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC), rc = 0;

    if (fd < 0) /* a socket does not open: ENXIO */
        return errno == ENXIO ? -EEXIST : -errno;
    if (fstat(fd, &st) < 0)
        rc = -errno;
    else if (S_ISDIR(st.st_mode))
        rc = -EISDIR;
    else if (!S_ISREG(st.st_mode))
        rc = -EEXIST;
    if (rc < 0) {
        close(fd);
        return rc;
    }
    return read_fd(fd, max, out, len);
}

int fs_read_regular(const char *path, size_t max, char **out, size_t *len)
{
    struct stat st;
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);

    if (fd < 0)
        return errno == ELOOP ? -EPERM : -errno;
    if (fstat(fd, &st) < 0) {
        int rc = -errno;
        close(fd);
        return rc;
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return -EPERM;
    }
    return read_fd(fd, max, out, len);
}

/* Also for a descriptor handed to us non-blocking (a stdout someone set so). */
static int write_all(int fd, const void *data, size_t len)
{
    const char *p = data;

    while (len > 0) {
        ssize_t w = write(fd, p, len);
        if (w < 0) {
            struct pollfd pfd = {.fd = fd, .events = POLLOUT};
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                return -errno;
            if (poll(&pfd, 1, -1) < 0 && errno != EINTR)
                return -errno;
            continue;
        }
        p += w;
        len -= (size_t)w;
    }
    return 0;
}

/* The directory path's last name sits in; owned, NULL when out of memory. */
static char *parent_of(const char *path)
{
    char *dir = strdup(path);
    char *slash;

    if (!dir)
        return NULL;
    slash = strrchr(dir, '/');
    if (slash == dir)
        slash[1] = '\0';
    else if (slash)
        *slash = '\0';
    else
        strcpy(dir, ".");
    return dir;
}

static int fsync_parent(const char *path)
{
    char *dir = parent_of(path);
    int fd, rc = 0;

    if (!dir)
        return -ENOMEM;
    fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        rc = -errno;
    } else {
        if (fsync(fd) < 0 && errno != EINVAL)
            rc = -errno;
        close(fd);
    }
    free(dir);
    return rc;
}

/* Temp file in path's directory, write, fsync, rename over path, fsync the
 * directory: whatever path named is replaced, never written through. */
/* keep: link() instead of rename(), so that a file made at path since it was
 * judged absent is not replaced either (-EALREADY). */
static int put_file(const char *path, const void *data, size_t len, mode_t mode, bool keep)
{
    size_t n = strlen(path) + 16;
    char *tmp = malloc(n);
    int fd = -1, rc;

    if (!tmp)
        return -ENOMEM;
    snprintf(tmp, n, "%s.tmpXXXXXX", path);
    fd = mkstemp(tmp);
    if (fd < 0) {
        rc = -errno;
        free(tmp);
        return rc;
    }
    if (fchmod(fd, mode) < 0) {
        rc = -errno;
        goto fail;
    }
    rc = write_all(fd, data, len);
    if (rc < 0)
        goto fail;
    if (fsync(fd) < 0) {
        rc = -errno;
        goto fail;
    }
    if (close(fd) < 0) {
        fd = -1;
        rc = -errno;
        goto fail;
    }
    fd = -1;
    if (keep) {
        if (link(tmp, path) < 0) {
            rc = errno == EEXIST ? -EALREADY : -errno;
            goto fail;
        }
        unlink(tmp);
    } else if (rename(tmp, path) < 0) {
        rc = -errno;
        goto fail;
    }
    free(tmp);
    return fsync_parent(path);
fail:
    if (fd >= 0)
        close(fd);
    unlink(tmp);
    free(tmp);
    return rc;
}

static int replace_file(const char *path, const void *data, size_t len, mode_t mode)
{
    return put_file(path, data, len, mode, false);
}

/*
 * What is in a state file's place may be replaced: a regular file or nothing.
 * lstat() and rename() are two steps; whoever can swap a link or a device
 * node in between can write the directory and so could replace the file
 * anyway, and rename() never writes through what it replaces.
 */
int fs_state_check(const char *path)
{
    struct stat st;

    if (lstat(path, &st) < 0)
        return errno == ENOENT ? 0 : -errno;
    if (S_ISREG(st.st_mode))
        return 0;
    if (S_ISLNK(st.st_mode))
        return -ELOOP;
    return S_ISDIR(st.st_mode) ? -EISDIR : -EEXIST;
}

int fs_write_atomic(const char *path, const void *data, size_t len, mode_t mode)
{
    int rc = fs_state_check(path);

    return rc < 0 ? rc : replace_file(path, data, len, mode);
}

/* The standard streams by the names scripts use. /dev/stdout is a link to
 * /proc/self/fd/1: the descriptor the caller set up is written, never
 * re-opened, so a stdout redirected with '>>' keeps its offset. */
int fs_out_fd(const char *path)
{
    if (strcmp(path, "-") == 0 || strcmp(path, "/dev/stdout") == 0)
        return STDOUT_FILENO;
    if (strcmp(path, "/dev/stderr") == 0)
        return STDERR_FILENO;
    return -1;
}

/* What fs_lock_dir() found, for fs_strerror() (per thread: the daemon's
 * workers lock too). */
static _Thread_local char state_node_why[NAME_MAX + 200];

const char *fs_strerror(int rc)
{
    if (rc == -ELOOP)
        return "a symbolic link is in its place (not followed)";
    if (rc == -EEXIST)
        return "not a regular file (a device, FIFO or socket in its place is neither read nor "
               "replaced)";
    if (rc == FS_ERR_STATE_NODE)
        return state_node_why;
    if (rc == FS_ERR_LINK_NOT_OURS)
        return "a symbolic link of another user in a sticky shared directory (not followed)";
    if (rc == FS_ERR_NODE_NOT_OURS)
        return "a FIFO, socket or device of another user in a sticky shared directory";
    if (rc == FS_ERR_SECRET_NOT_OURS)
        return "a FIFO, socket or device of another user (private output not written)";
    return strerror(-rc);
}

/* A device or FIFO opened non-blocking (so that opening never hangs on a
 * modem line): written blocking, in place. */
static int write_in_place(int fd, const void *data, size_t len)
{
    int fl = fcntl(fd, F_GETFL);

    if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) < 0)
        return -errno;
    return write_all(fd, data, len);
}

/* A listening AF_UNIX socket: stream, or datagram (/dev/log) when it is one. */
static int write_socket(const char *path, const void *data, size_t len)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    const char *p = data;
    int fd = -1, rc = 0, type = SOCK_STREAM;

    if (strlen(path) >= sizeof(sa.sun_path))
        return -ENAMETOOLONG;
    memcpy(sa.sun_path, path, strlen(path) + 1);
    for (;;) {
        fd = socket(AF_UNIX, type | SOCK_CLOEXEC, 0);
        if (fd < 0)
            return -errno;
        if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0)
            break;
        rc = -errno;
        close(fd);
        if (rc != -EPROTOTYPE || type != SOCK_STREAM)
            return rc;
        type = SOCK_DGRAM;
    }
    rc = 0;
    while (len > 0) {
        ssize_t w = send(fd, p, len, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            rc = -errno;
            break;
        }
        p += w;
        len -= (size_t)w;
    }
    close(fd);
    return rc;
}

/* Where the link at path points, relative to the link's directory; owned. */
static int link_target(const char *path, char **out)
{
    char buf[PATH_MAX];
    const char *slash = strrchr(path, '/');
    size_t dirlen = slash ? (size_t)(slash - path) + 1 : 0;
    ssize_t n = readlink(path, buf, sizeof(buf));
    char *t;

    if (n < 0)
        return -errno;
    if ((size_t)n >= sizeof(buf))
        return -ENAMETOOLONG;
    buf[n] = '\0';
    if (buf[0] == '/')
        dirlen = 0;
    t = malloc(dirlen + (size_t)n + 1);
    if (!t)
        return -ENOMEM;
    memcpy(t, path, dirlen);
    memcpy(t + dirlen, buf, (size_t)n + 1);
    *out = t;
    return 0;
}

/* Sticky and writable by others than its owner: anyone may put a name there. */
static bool dir_shared(const struct stat *dir)
{
    return (dir->st_mode & S_ISVTX) && (dir->st_mode & (S_IWGRP | S_IWOTH));
}

bool fs_out_may_follow(const struct stat *lnk, const struct stat *dir, uid_t euid)
{
    return lnk->st_uid == euid || lnk->st_uid == dir->st_uid || !dir_shared(dir);
}

bool fs_out_may_write(const struct stat *node, const struct stat *dir, uid_t euid, bool secret)
{
    if (S_ISREG(node->st_mode))
        return true;
    if (node->st_uid == euid)
        return true;
    if (secret) /* /dev/null is root's: "--p12 /dev/null" as a user loses nothing */
        return S_ISCHR(node->st_mode) && node->st_rdev == makedev(1, 3);
    return node->st_uid == 0 || node->st_uid == dir->st_uid || !dir_shared(dir);
}

/* The directory path's last name sits in (followed: it is where the kernel
 * looks the name up). */
static int dir_of(const char *path, struct stat *st)
{
    char *dir = parent_of(path);
    int rc = 0;

    if (!dir)
        return -ENOMEM;
    if (stat(dir, st) < 0)
        rc = -errno;
    free(dir);
    return rc;
}

/*
 * Judged on what was opened (fstat) or, for a socket and a FIFO still without
 * a reader, on what lstat found. In a shared directory the sticky bit keeps
 * anyone but a name's owner, the directory's owner and root from replacing
 * it, so a name that passes cannot be swapped for one that would not.
 */
static int may_follow(const char *path, const struct stat *lnk)
{
    struct stat dir;
    int rc = dir_of(path, &dir);

    if (rc == 0 && !fs_out_may_follow(lnk, &dir, geteuid()))
        rc = FS_ERR_LINK_NOT_OURS;
    return rc;
}

static int may_write(const char *path, const struct stat *node, bool secret)
{
    struct stat dir;
    int rc = dir_of(path, &dir);

    if (rc == 0 && !fs_out_may_write(node, &dir, geteuid(), secret))
        rc = secret ? FS_ERR_SECRET_NOT_OURS : FS_ERR_NODE_NOT_OURS;
    return rc;
}

int fs_write_out(const char *path, const void *data, size_t len, mode_t mode, unsigned flags)
{
    const int oflags = O_WRONLY | O_NOFOLLOW | O_NOCTTY | O_CLOEXEC;
    char *hop = NULL; /* path after following links; owned */
    struct stat st;
    int fd, rc, err, links = 0;
    const bool keep = flags & FS_OUT_KEEP, secret = flags & FS_OUT_SECRET;

    fd = fs_out_fd(path);
    if (fd >= 0)
        return fstat(fd, &st) < 0 ? -errno : write_all(fd, data, len);
    for (;;) {
        /* Opened first, then judged by fstat on what was opened: no window
         * in which the name could be swapped for something else. */
        fd = open(path, oflags | O_NONBLOCK);
        if (fd < 0 && errno == ENXIO && lstat(path, &st) == 0 && S_ISFIFO(st.st_mode)) {
            /* No reader yet: wait for one, as '>' does, but not on a FIFO
             * that would be refused once open. */
            if ((rc = may_write(path, &st, secret)) < 0)
                break;
            fd = open(path, oflags);
        }
        if (fd >= 0) {
            if (fstat(fd, &st) < 0)
                rc = -errno;
            else if (S_ISCHR(st.st_mode) || S_ISFIFO(st.st_mode)) {
                rc = may_write(path, &st, secret);
                if (rc == 0)
                    rc = write_in_place(fd, data, len);
            } else if (S_ISREG(st.st_mode))
                rc = keep ? -EALREADY : replace_file(path, data, len, mode);
            else
                rc = -EEXIST; /* a block device: never a place for our output */
            if (close(fd) < 0 && rc == 0)
                rc = -errno;
            break;
        }
        err = errno;
        if (err == ENOENT) { /* a new file (or a missing directory: mkstemp says so) */
            rc = put_file(path, data, len, mode, keep);
            break;
        }
        if (lstat(path, &st) < 0) {
            rc = -err;
            break;
        }
        if (S_ISLNK(st.st_mode)) {
            char *next = NULL;
            if (!(flags & FS_OUT_FOLLOW) || ++links > MAX_LINKS) {
                rc = -ELOOP;
                break;
            }
            if ((rc = may_follow(path, &st)) < 0 || (rc = link_target(path, &next)) < 0)
                break;
            free(hop);
            path = hop = next;
            continue;
        }
        if (S_ISSOCK(st.st_mode)) {
            rc = may_write(path, &st, secret);
            if (rc == 0)
                rc = write_socket(path, data, len);
        } else if (S_ISREG(st.st_mode)) /* not writable (EACCES, ETXTBSY): replaced, as before */
            rc = keep ? -EALREADY : replace_file(path, data, len, mode);
        else
            rc = S_ISDIR(st.st_mode) ? -EISDIR : -err;
        break;
    }
    free(hop);
    return rc;
}

int fs_append_line(const char *path, const char *line, mode_t mode)
{
    size_t len = strlen(line);
    struct stat st;
    int fd, rc;

    /* Non-blocking so that a FIFO in the audit log's place cannot hang us. */
    fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, mode);
    if (fd < 0)
        return errno == ENXIO ? -EEXIST : -errno;
    rc = fstat(fd, &st) < 0 ? -errno : S_ISREG(st.st_mode) ? 0 : -EEXIST;
    if (rc == 0)
        rc = write_all(fd, line, len);
    if (rc == 0)
        rc = write_all(fd, "\n", 1);
    if (rc == 0 && fsync(fd) < 0)
        rc = -errno;
    close(fd);
    return rc;
}

/* One try: <dir>/lock opened through dir's descriptor, flocked; *dfd_out
 * is the dir it was taken in. */
static int lock_once(const char *dir, int *fd_out, int *dfd_out)
{
    struct stat st;
    int dfd, fd, rc = 0;

    dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0)
        return -errno;
    fd = openat(dfd, "lock", O_RDWR | O_CREAT | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, 0600);
    if (fd < 0) {
        rc = errno == ENXIO ? -EEXIST : -errno;
        close(dfd);
        return rc;
    }
    rc = fstat(fd, &st) < 0 ? -errno : S_ISREG(st.st_mode) ? 0 : -EEXIST;
    while (rc == 0 && flock(fd, LOCK_EX) < 0)
        if (errno != EINTR)
            rc = -errno;
    if (rc < 0) {
        close(fd);
        close(dfd);
        return rc;
    }
    *fd_out = fd;
    *dfd_out = dfd;
    return 0;
}

/* The first entry of the locked dir (dfd, not closed here) that is a
 * symbolic link, FIFO, device or socket: FS_ERR_STATE_NODE, named in
 * state_node_why. Temp files and subdirectories are regular/dirs. */
static int state_nodes(int dfd)
{
    int d = dup(dfd), rc = 0;
    DIR *dir = d >= 0 ? fdopendir(d) : NULL;
    struct dirent *e;

    if (!dir) {
        rc = -errno;
        if (d >= 0)
            close(d);
        return rc;
    }
    while (rc == 0 && (e = readdir(dir))) {
        struct stat st;
        const char *what;
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0 ||
            fstatat(dfd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
            continue;
        if (S_ISLNK(st.st_mode))
            what = "a symbolic link";
        else if (S_ISFIFO(st.st_mode))
            what = "a FIFO";
        else if (S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode))
            what = "a device";
        else if (S_ISSOCK(st.st_mode))
            what = "a socket";
        else if (S_ISDIR(st.st_mode) && strchr(e->d_name, '.'))
            what = "a directory"; /* state files are NAME.EXT; issued/, cross/ have no dot */
        else
            continue;
        snprintf(state_node_why, sizeof(state_node_why),
                 "%s in it is %s: its state files are only regular files, replaced "
                 "atomically; move it out and put the file back (nothing was done)",
                 e->d_name, what);
        rc = FS_ERR_STATE_NODE;
    }
    closedir(dir);
    return rc;
}

static int lock_dir(const char *dir, int *fd_out, bool look)
{
    struct stat held, now;
    int fd = -1, dfd = -1, rc;

    /* Whoever held the lock may have replaced the dir meanwhile (restore
     * renames a new one into its place): the lock taken must be the one of
     * the dir the path names now, else writes would land in a dir another
     * process may be writing under its own lock. */
    for (int tries = 0; tries < 16; tries++) {
        if ((rc = lock_once(dir, &fd, &dfd)) < 0)
            return rc;
        rc = fstat(dfd, &held) < 0 || stat(dir, &now) < 0 ? -errno : 0;
        if (rc == 0 && held.st_dev == now.st_dev && held.st_ino == now.st_ino) {
            rc = look ? state_nodes(dfd) : 0;
            close(dfd);
            if (rc < 0) {
                close(fd);
                return rc;
            }
            *fd_out = fd;
            return 0;
        }
        close(dfd);
        close(fd);
        if (rc < 0 && rc != -ENOENT)
            return rc;
    }
    return -EAGAIN;
}

int fs_lock_dir(const char *dir, int *fd_out)
{
    return lock_dir(dir, fd_out, true);
}

int fs_lock_dir_only(const char *dir, int *fd_out)
{
    return lock_dir(dir, fd_out, false);
}

int fs_mkdir(const char *path, mode_t mode)
{
    struct stat st;

    if (mkdir(path, mode) == 0)
        return 0;
    if (errno != EEXIST)
        return -errno;
    if (stat(path, &st) < 0)
        return -errno;
    return S_ISDIR(st.st_mode) ? 0 : -ENOTDIR;
}
