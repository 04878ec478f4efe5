/* watch.c: see watch.h. */
#include "watch.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "build-config.h"
#include "fsutil.h"

/*
 * What happens to a name in the directory that can change what it holds: an
 * atomic writer's rename (IN_MOVED_TO), an in-place writer's close
 * (IN_CLOSE_WRITE), a new file, a removal, a rename away, a chmod that makes
 * it unreadable. And what happens to the directory itself, after which the
 * watch must be set again on whatever the path names now.
 */
#define WATCH_MASK                                                                                \
    (IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_CREATE | IN_DELETE | IN_ATTRIB |           \
     IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR)

/* What a file looked like at the last look; a change in any field is a change. */
struct file_sig {
    bool exists;
    dev_t dev;
    ino_t ino;
    off_t size;
    struct timespec mtim, ctim;
};

struct watch {
    char *dir;
    size_t n;
    char *names[WATCH_MAX_FILES];
    char *paths[WATCH_MAX_FILES];
    struct file_sig sig[WATCH_MAX_FILES];
    int fd;        /* inotify instance, -1: none */
    int wd;        /* watch on dir, -1: none now (set again at the next look) */
    dev_t dir_dev; /* the directory the watch is on */
    ino_t dir_ino;
    char *lock_path;         /* the writers' lock, NULL: none */
    int lock_fd;             /* our shared lock on it, held until watch_release */
    unsigned pending;        /* changes seen while a writer held the lock */
    long long pending_since; /* ms, CLOCK_MONOTONIC */
};

static long long now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sig_read(const char *path, struct file_sig *s)
{
    struct stat st;

    memset(s, 0, sizeof(*s));
    if (stat(path, &st) < 0)
        return;
    s->exists = true;
    s->dev = st.st_dev;
    s->ino = st.st_ino;
    s->size = st.st_size;
    s->mtim = st.st_mtim;
    s->ctim = st.st_ctim;
}

static bool sig_equal(const struct file_sig *a, const struct file_sig *b)
{
    return a->exists == b->exists && a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
           a->mtim.tv_sec == b->mtim.tv_sec && a->mtim.tv_nsec == b->mtim.tv_nsec &&
           a->ctim.tv_sec == b->ctim.tv_sec && a->ctim.tv_nsec == b->ctim.tv_nsec;
}

/*
 * Put the inotify watch on what dir names now, when there is none or the
 * directory was replaced (a restore that renames a new pki dir into place
 * leaves the old watch on the old inode, which hears nothing more).
 */
static void rearm(struct watch *w)
{
    struct stat st;

    if (w->fd < 0 || stat(w->dir, &st) < 0)
        return;
    if (w->wd >= 0 && st.st_dev == w->dir_dev && st.st_ino == w->dir_ino)
        return;
    if (w->wd >= 0)
        inotify_rm_watch(w->fd, w->wd);
    w->wd = inotify_add_watch(w->fd, w->dir, WATCH_MASK);
    if (w->wd >= 0) {
        w->dir_dev = st.st_dev;
        w->dir_ino = st.st_ino;
    }
}

static bool no_inotify_wanted(void)
{
#if MTLSGW_FAULT_INJECTION
    /* Tests of the stat backstop (tests/adversarial/revoke-nosocket.sh). */
    const char *v = getenv("MTLSGW_NO_INOTIFY");
    return v && *v && strcmp(v, "0") != 0;
#else
    return false;
#endif
}

int watch_new(const char *dir, const char *const *names, const char *lock, struct watch **out)
{
    struct watch *w = calloc(1, sizeof(*w));
    int rc = -ENOMEM;

    if (!w)
        return -ENOMEM;
    w->fd = w->wd = w->lock_fd = -1;
    w->dir = strdup(dir);
    if (!w->dir || (lock && !(w->lock_path = fs_join(dir, lock))))
        goto fail;
    for (; names[w->n]; w->n++) {
        if (w->n == WATCH_MAX_FILES || !names[w->n][0] || strchr(names[w->n], '/')) {
            rc = -EINVAL;
            goto fail;
        }
        w->names[w->n] = strdup(names[w->n]);
        w->paths[w->n] = fs_join(dir, names[w->n]);
        if (!w->names[w->n] || !w->paths[w->n]) {
            w->n++;
            goto fail;
        }
    }
    /* Without inotify (no instance left under fs.inotify.max_user_instances,
     * a kernel built without it) the stat at every look still sees changes. */
    if (!no_inotify_wanted())
        w->fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    rearm(w);
    for (size_t i = 0; i < w->n; i++)
        sig_read(w->paths[i], &w->sig[i]);
    *out = w;
    return 0;
fail:
    watch_free(w);
    return rc;
}

int watch_fd(const struct watch *w)
{
    return w ? w->fd : -1;
}

bool watch_uses_inotify(const struct watch *w)
{
    return w && w->fd >= 0 && w->wd >= 0;
}

/* Read every queued event; the names they touch as a bit mask. */
static unsigned drain(struct watch *w)
{
    char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
    unsigned hit = 0;
    ssize_t len;

    if (w->fd < 0)
        return 0;
    while ((len = read(w->fd, buf, sizeof(buf))) > 0) {
        for (char *p = buf; p < buf + len;) {
            const struct inotify_event *ev = (const struct inotify_event *)p;
            p += sizeof(*ev) + ev->len;
            if (ev->mask & IN_Q_OVERFLOW) {
                hit = (1u << w->n) - 1; /* events were lost: any name may have changed */
                continue;
            }
            if (ev->wd != w->wd)
                continue;
            if (ev->mask & (IN_IGNORED | IN_DELETE_SELF | IN_MOVE_SELF)) {
                /* The directory went (or moved away): set the watch again on
                 * the path, now or at a later look. */
                if (!(ev->mask & IN_IGNORED))
                    inotify_rm_watch(w->fd, w->wd);
                w->wd = -1;
                hit = (1u << w->n) - 1;
                continue;
            }
            for (size_t i = 0; ev->len && i < w->n; i++)
                if (strcmp(ev->name, w->names[i]) == 0)
                    hit |= 1u << i;
        }
    }
    return hit;
}

/*
 * A shared lock on the writers' lock file, or false while a writer holds it
 * (for up to WATCH_WRITER_WAIT_MS from the first change seen). No lock file,
 * or one we may not open: no writer uses it, go on.
 */
static bool writers_done(struct watch *w)
{
    int fd, err;

    if (!w->lock_path)
        return true;
    fd = open(w->lock_path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return true;
    if (flock(fd, LOCK_SH | LOCK_NB) == 0) {
        w->lock_fd = fd;
        return true;
    }
    err = errno;
    close(fd);
    /* A writer stuck with the lock must not hold off a change for good. */
    return err != EWOULDBLOCK || now_ms() - w->pending_since >= WATCH_WRITER_WAIT_MS;
}

unsigned watch_changed(struct watch *w)
{
    unsigned changed;

    if (!w)
        return 0;
    watch_release(w);
    changed = drain(w);
    rearm(w);
    /* An event alone counts: an in-place rewrite of the same size within
     * the file system's timestamp granularity leaves the stat as it was. */
    for (size_t i = 0; i < w->n; i++) {
        struct file_sig now;
        sig_read(w->paths[i], &now);
        if (!sig_equal(&now, &w->sig[i]))
            changed |= 1u << i;
        w->sig[i] = now;
    }
    if (changed && !w->pending)
        w->pending_since = now_ms();
    w->pending |= changed;
    if (!w->pending || !writers_done(w))
        return 0;
    changed = w->pending;
    w->pending = 0;
    return changed;
}

void watch_release(struct watch *w)
{
    if (w && w->lock_fd >= 0) {
        close(w->lock_fd);
        w->lock_fd = -1;
    }
}

void watch_free(struct watch *w)
{
    if (!w)
        return;
    watch_release(w);
    if (w->fd >= 0)
        close(w->fd);
    for (size_t i = 0; i < w->n; i++) {
        free(w->names[i]);
        free(w->paths[i]);
    }
    free(w->dir);
    free(w->lock_path);
    free(w);
}
