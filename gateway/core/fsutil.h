/* fsutil.h: whole-file reads, atomic writes, the state lock. */
#ifndef MTLSGW_FSUTIL_H
#define MTLSGW_FSUTIL_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct stat;

/* Read a whole file (at most max bytes; -EFBIG beyond). NUL-terminated;
 * *len excludes the NUL. A state or config-named file: it is followed
 * through links but must be a regular file (opened O_NONBLOCK, then
 * fstat): a FIFO, device or socket is refused with -EEXIST, a directory
 * with -EISDIR, so that a FIFO in a state file's place cannot hang a
 * command or the daemon. */
int fs_read_file(const char *path, size_t max, char **out, size_t *len);
/* The same for a file the user names on the command line (--csr, a
 * password file, the config): whatever opens, a pipe such as bash's
 * <(...) included; a FIFO waits for its writer, as cat does. */
int fs_read_input(const char *path, size_t max, char **out, size_t *len);
/* The same for a file someone less trusted writes (the privileged parent
 * reading what the session process keeps): a symlink (O_NOFOLLOW) or
 * anything but a regular file (a FIFO would block the reader; opened
 * O_NONBLOCK, then fstat) is refused with -EPERM. */
int fs_read_regular(const char *path, size_t max, char **out, size_t *len);

/*
 * State files (registry, CRL, certificates, invites): write atomically (temp
 * file in the same directory, write, fsync, rename, fsync the directory). The
 * old file stays intact on any failure. Only a regular file, or none, is
 * replaced: a symbolic link in its place is refused with -ELOOP, a device,
 * FIFO or socket with -EEXIST, a directory with -EISDIR; fs_strerror() names
 * them.
 */
int fs_write_atomic(const char *path, const void *data, size_t len, mode_t mode);

/* 0 when fs_write_atomic() would replace what is at path, else its refusal:
 * checked before asking a hub for a certificate that could not be stored. */
int fs_state_check(const char *path);

/* fs_write_out() flags */
#define FS_OUT_FOLLOW 1u /* a symbolic link: write what it points to (--force) */
#define FS_OUT_KEEP 2u   /* an existing regular file: refused with -EALREADY */
#define FS_OUT_SECRET 4u /* private bytes (a key): only to a file or a node of the caller's */

/* fs_write_out()'s refusals of what another user may have put in the way
 * (errnos no file operation returns; fs_strerror() names them). */
#define FS_ERR_LINK_NOT_OURS (-ENOLINK) /* a link not followed: fs_out_may_follow() */
#define FS_ERR_NODE_NOT_OURS (-EOWNERDEAD) /* FIFO, socket, device: fs_out_may_write() */
#define FS_ERR_SECRET_NOT_OURS (-EKEYREJECTED) /* the same, FS_OUT_SECRET */
/* fs_lock_dir(): a state file's place holds a link, FIFO, device or socket */
#define FS_ERR_STATE_NODE (-ENOTUNIQ)

/*
 * A file the user named (--out, --p12). "-", /dev/stdout and /dev/stderr are
 * those descriptors. A character device or a FIFO (waiting for its reader) is
 * opened without following a link, checked with fstat and written in place; a
 * socket is connected to and written; a regular file, or none, is replaced as
 * fs_write_atomic() does. A symbolic link is refused with -ELOOP unless
 * FS_OUT_FOLLOW: then each link is resolved, the same rules apply to what it
 * points to, and the link stays. A block device (or a directory) is refused
 * with -EEXIST (-EISDIR). With FS_OUT_KEEP an existing regular file (also one
 * made while this runs) is refused with -EALREADY and left as it was.
 * What another user may have put in the way is judged by the two predicates
 * below: a link they fail is not followed (FS_ERR_LINK_NOT_OURS), a device,
 * FIFO or socket they fail is not written (FS_ERR_NODE_NOT_OURS, or
 * FS_ERR_SECRET_NOT_OURS with FS_OUT_SECRET).
 */
int fs_write_out(const char *path, const void *data, size_t len, mode_t mode, unsigned flags);

/*
 * The kernel's fs.protected_symlinks, fs.protected_fifos rules, applied
 * whatever the sysctls say (they are off on many systems, and do not cover
 * a link this code resolves itself, an open without O_CREAT, or a socket).
 * A directory is shared when it is sticky and writable by group or others
 * (/tmp). A link (lnk, in directory dir) may be followed by euid when it is
 * euid's, or the directory's owner's, or the directory is not shared.
 */
bool fs_out_may_follow(const struct stat *lnk, const struct stat *dir, uid_t euid);

/*
 * May euid write what it opened or found (node, in directory dir)? A regular
 * file always (it is replaced by rename(), never written through). A device,
 * FIFO or socket when it is euid's or root's or the directory owner's, or the
 * directory is not shared; with secret, only when it is euid's (or is the
 * null device): the bytes must not reach another user.
 */
bool fs_out_may_write(const struct stat *node, const struct stat *dir, uid_t euid, bool secret);

/* The descriptor that "-", /dev/stdout, /dev/stderr name, or -1. */
int fs_out_fd(const char *path);

/* strerror(-rc), naming fsutil's refusals (-ELOOP, -EEXIST, FS_ERR_*) for what they are. */
const char *fs_strerror(int rc);

/* Append one line (newline added) with O_APPEND and fsync; like
 * fs_write_atomic(), only to a regular file (-ELOOP, -EEXIST otherwise). */
int fs_append_line(const char *path, const char *line, mode_t mode);

/* Exclusive advisory lock on <dir>/lock (a regular file, not followed),
 * waiting; returns an fd to close. The lock is the one of the dir the path
 * names once it is taken (a dir replaced meanwhile, as restore does, is
 * locked again: -EAGAIN after 16 tries). Then, before any work is done
 * under it, the dir's entries are looked at: a state file is only ever
 * replaced when it is a regular file, so a symbolic link, FIFO, device or
 * socket among them (or a directory named NAME.EXT, as state files are)
 * refuses the lock (FS_ERR_STATE_NODE; fs_strerror()
 * names it and says what to do), and a command that would have signed
 * something first and failed at the write does nothing at all. */
int fs_lock_dir(const char *dir, int *fd_out);
/* The lock alone, without that look (restore, which replaces the whole dir
 * and may be what repairs it). */
int fs_lock_dir_only(const char *dir, int *fd_out);

/* mkdir -p for the last component only, with mode; ok if it exists. */
int fs_mkdir(const char *path, mode_t mode);

/* "<dir>/<name>", owned. */
char *fs_join(const char *dir, const char *name);

#endif
