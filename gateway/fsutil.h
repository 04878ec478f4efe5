/* fsutil.h: whole-file reads, atomic writes, the state lock. */
#ifndef MTLSGW_FSUTIL_H
#define MTLSGW_FSUTIL_H

#include <stddef.h>
#include <sys/types.h>

/* Read a whole file (at most max bytes; -EFBIG beyond). NUL-terminated;
 * *len excludes the NUL. */
int fs_read_file(const char *path, size_t max, char **out, size_t *len);

/*
 * Write atomically: temp file in the same directory, write, fsync, rename,
 * fsync the directory. The old file stays intact on any failure.
 */
int fs_write_atomic(const char *path, const void *data, size_t len, mode_t mode);

/* Append one line (newline added) with O_APPEND and fsync. */
int fs_append_line(const char *path, const char *line, mode_t mode);

/* Exclusive advisory lock on <dir>/lock, waiting; returns an fd to close. */
int fs_lock_dir(const char *dir, int *fd_out);

/* mkdir -p for the last component only, with mode; ok if it exists. */
int fs_mkdir(const char *path, mode_t mode);

/* "<dir>/<name>", owned. */
char *fs_join(const char *dir, const char *name);

#endif
