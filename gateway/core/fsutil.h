/* fsutil.h: whole-file reads, atomic writes, the state lock. */
#ifndef MTLSGW_FSUTIL_H
#define MTLSGW_FSUTIL_H

#include <stddef.h>
#include <sys/types.h>

/* Read a whole file (at most max bytes; -EFBIG beyond). NUL-terminated;
 * *len excludes the NUL. */
int fs_read_file(const char *path, size_t max, char **out, size_t *len);

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
 */
int fs_write_out(const char *path, const void *data, size_t len, mode_t mode, unsigned flags);

/* The descriptor that "-", /dev/stdout, /dev/stderr name, or -1. */
int fs_out_fd(const char *path);

/* strerror(-rc), naming fsutil's refusals (-ELOOP, -EEXIST) for what they are. */
const char *fs_strerror(int rc);

/* Append one line (newline added) with O_APPEND and fsync; like
 * fs_write_atomic(), only to a regular file (-ELOOP, -EEXIST otherwise). */
int fs_append_line(const char *path, const char *line, mode_t mode);

/* Exclusive advisory lock on <dir>/lock (a regular file, not followed),
 * waiting; returns an fd to close. The lock is the one of the dir the path
 * names once it is taken (a dir replaced meanwhile, as restore does, is
 * locked again: -EAGAIN after 16 tries). */
int fs_lock_dir(const char *dir, int *fd_out);

/* mkdir -p for the last component only, with mode; ok if it exists. */
int fs_mkdir(const char *path, mode_t mode);

/* "<dir>/<name>", owned. */
char *fs_join(const char *dir, const char *name);

#endif
