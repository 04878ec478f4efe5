/*
 * watch.h: notice that files of one directory changed, whoever changed them
 * (docs/mtlsgwd.md, "Watching the registry and the CRL").
 *
 * inotify on the directory says at once that something happened to a
 * watched name (an atomic writer renames a temporary file into place); a
 * stat of each file (device, inode, size, mtime, ctime), compared at every
 * watch_changed(), is the backstop for when inotify is unavailable (no
 * instance left, a kernel without it) or the directory was replaced under
 * the watch. The caller polls watch_fd() and also calls watch_changed() on a
 * timer of its own.
 */
#ifndef MTLSGW_WATCH_H
#define MTLSGW_WATCH_H

#include <stdbool.h>

/* At most this many names per watch. */
#define WATCH_MAX_FILES 8
/* How long a change waits for a writer that holds the writers' lock. */
#define WATCH_WRITER_WAIT_MS 2000

struct watch;

/*
 * Watch the files dir/names[i] (names: NULL-terminated, plain file names).
 * Their current state is the reference: the first watch_changed() reports
 * only what changes after this call. Without inotify the watch still works
 * by stat alone (watch_fd() is then -1). -EINVAL for too many or bad names.
 *
 * lock (NULL: none) names dir/lock, a file that writers flock() exclusively
 * for the whole of a change that spans several files (mtlsgw writes the CRL,
 * then the registry): a change is reported once no writer holds it (its
 * closing is an event too), so a reader never sees one file new and the
 * other old, and the shared lock taken then is held until watch_release().
 */
int watch_new(const char *dir, const char *const *names, const char *lock, struct watch **out);

/* The inotify fd to poll for reading; -1 when the watch runs on stat alone. */
int watch_fd(const struct watch *w);

/*
 * Drain what inotify has queued (non-blocking), stat every file and return
 * a bit mask of the names (bit i: names[i]) that changed since the last
 * report: an event naming it, or a different stat (also: appeared or
 * vanished). A burst of events queued before the call is one answer; so is
 * every change a writer made under the lock. 0 while a writer holds it (for
 * up to WATCH_WRITER_WAIT_MS). Re-arms inotify when the directory was moved,
 * deleted or replaced. With a lock, a non-zero answer holds the shared lock:
 * read the files, then watch_release().
 */
unsigned watch_changed(struct watch *w);

/* Let writers go on (the shared lock of the last watch_changed()). */
void watch_release(struct watch *w);

/* Whether inotify is in use now (false: stat alone). */
bool watch_uses_inotify(const struct watch *w);

void watch_free(struct watch *w);

#endif
