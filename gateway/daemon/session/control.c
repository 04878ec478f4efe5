/*
 * control.c: the daemon's end of the control socket, on a thread of its
 * own so that a slow console client never holds up the event loop.
 */
/* accept4, SO_PEERCRED/struct ucred: Linux interfaces musl and glibc both
 * declare only under _GNU_SOURCE. */
#define _GNU_SOURCE
#include "daemon.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <json-c/json.h>

#include "bans.h"
#include "config.h"
#include "gwcert.h"
#include "log.h"
#include "sessions.h"
#include "mono.h"

#define REQUEST_MAX 4096

static int stop_pipe[2] = {-1, -1};
/* The socket this process bound: only that one is removed at the end. */
static dev_t sock_dev;
static ino_t sock_ino;

/* {"cmd": "unban", "address": ADDR}: lift a ban (mtlsgw unban). */
static struct json_object *unban(struct daemon *d, struct json_object *req)
{
    struct json_object *ans = json_object_new_object(), *v;
    const char *addr = NULL;
    char canon[64] = "", msg[160];
    int rc = -EINVAL;

    if (json_object_object_get_ex(req, "address", &v) && json_object_is_type(v, json_type_string))
        addr = json_object_get_string(v);
    if (addr)
        rc = bans_lift(d->bans, addr, mono_ms(), canon, sizeof(canon));
    if (rc == 0) {
        log_info("control socket: ban of %s lifted", canon);
        json_object_object_add(ans, "unbanned", json_object_new_string(canon));
        return ans;
    }
    if (rc == -ENOENT)
        snprintf(msg, sizeof(msg), "%s is not banned (see mtlsgw bans)", canon);
    else
        snprintf(msg, sizeof(msg), "'%.64s' is not an IPv4 or IPv6 address", addr ? addr : "");
    json_object_object_add(ans, "error", json_object_new_string(msg));
    return ans;
}

static char *handle(struct daemon *d, const char *line)
{
    struct json_object *req = json_tokener_parse(line), *v, *ans = NULL;
    const char *cmd = NULL;
    char err[512] = "";
    char *out;

    if (req && json_object_object_get_ex(req, "cmd", &v))
        cmd = json_object_get_string(v);
    if (!cmd) {
        ans = json_object_new_object();
        json_object_object_add(ans, "error", json_object_new_string("want {\"cmd\": ...}"));
    } else if (strcmp(cmd, "status") == 0) {
        ans = daemon_status_json(d);
        json_object_object_add(ans, "sessions_list", daemon_sessions_json(d));
    } else if (strcmp(cmd, "reload") == 0) {
        int rc = daemon_reload_trust(d, err, sizeof(err));
        /* "crl_number": the console's change; count what any reload of it
         * ended (the daemon's own watch may have acted first). */
        if (rc >= 0 && json_object_object_get_ex(req, "crl_number", &v))
            rc = daemon_trust_ended_since((uint64_t)json_object_get_int64(v));
        ans = json_object_new_object();
        if (rc < 0)
            json_object_object_add(ans, "error", json_object_new_string(err));
        else
            json_object_object_add(ans, "ended", json_object_new_int(rc));
    } else if (strcmp(cmd, "gateway-reload") == 0) {
        /* mtlsgw gateway renew: serve the new certificate, say which. */
        char serial[64] = "";
        ans = json_object_new_object();
        if (gwcert_reload(d, serial, sizeof(serial), err, sizeof(err)) < 0)
            json_object_object_add(ans, "error", json_object_new_string(err));
        else
            json_object_object_add(ans, "serial", json_object_new_string(serial));
    } else if (strcmp(cmd, "kick") == 0) {
        int rc = -ENOENT;
        if (json_object_object_get_ex(req, "id", &v))
            rc = daemon_kick_id(d, (uint64_t)json_object_get_int64(v));
        else if (json_object_object_get_ex(req, "peer", &v))
            rc = daemon_kick_peer(d, json_object_get_string(v));
        ans = json_object_new_object();
        if (rc < 0) {
            json_object_object_add(ans, "error", json_object_new_string("no such session"));
        } else {
            /* ended: sessions this kick ended; 0 when they were ending already. */
            json_object_object_add(ans, "kicked", json_object_new_boolean(1));
            json_object_object_add(ans, "ended", json_object_new_int(rc));
        }
    } else if (strcmp(cmd, "bans") == 0) {
        ans = json_object_new_object();
        json_object_object_add(ans, "bans", bans_json(d->bans, mono_ms()));
    } else if (strcmp(cmd, "unban") == 0) {
        ans = unban(d, req);
    } else {
        ans = json_object_new_object();
        json_object_object_add(ans, "error", json_object_new_string("unknown cmd"));
    }
    out = strdup(json_object_to_json_string_ext(ans, JSON_C_TO_STRING_PLAIN |
                                                         JSON_C_TO_STRING_NOSLASHESCAPE));
    json_object_put(ans);
    json_object_put(req);
    return out;
}

static void serve_client(struct daemon *d, int fd)
{
    char buf[REQUEST_MAX + 1];
    size_t len = 0;
    struct ucred cred;
    socklen_t cl = sizeof(cred);
    char *answer;

    /* Root and the daemon's own user only (the socket is 0600 as well). */
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &cl) < 0 ||
        (cred.uid != 0 && cred.uid != geteuid())) {
        log_warn("control socket: refused uid %u", (unsigned)cred.uid);
        return;
    }
    while (len < REQUEST_MAX) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        ssize_t n;
        if (poll(&p, 1, 2000) <= 0)
            return;
        n = read(fd, buf + len, REQUEST_MAX - len);
        if (n <= 0)
            return;
        len += (size_t)n;
        buf[len] = '\0';
        if (strchr(buf, '\n'))
            break;
    }
    buf[len] = '\0';
    answer = handle(d, buf);
    if (answer) {
        if (write(fd, answer, strlen(answer)) < 0 || write(fd, "\n", 1) < 0)
            log_debug("control socket: client went away");
        free(answer);
    }
}

static void *control_main(void *arg)
{
    struct daemon *d = arg;

    for (;;) {
        struct pollfd p[2] = {{.fd = d->control_fd, .events = POLLIN},
                              {.fd = stop_pipe[0], .events = POLLIN}};
        int fd;
        if (poll(p, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        if (p[1].revents)
            break;
        fd = accept4(d->control_fd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0)
            continue;
        serve_client(d, fd);
        close(fd);
    }
    return NULL;
}

/*
 * The daemon's user may not create the socket: the directory exists and is
 * not the daemon's (mtlsgwd gives its user only a directory it made itself).
 */
static void socket_dir_error(const struct daemon *d, const char *path, char *err,
                             size_t errlen)
{
    const char *slash = strrchr(path, '/');
    int dl = slash && slash != path ? (int)(slash - path) : 1;

    snprintf(err, errlen,
             "the daemon's user %s may not create it in %.*s, and mtlsgwd takes over only a "
             "directory it makes itself: set [daemon] control-socket to a path in a directory "
             "that does not exist yet (mtlsgwd makes it, e.g. /run/mtlsgw/control.sock) or "
             "in one of %s's own, never in a directory that holds anything else",
             d->cfg->daemon.user, dl, slash ? path : ".", d->cfg->daemon.user);
}

/*
 * What is at path before we bind: nothing, or a socket our user left
 * behind that nobody listens on any more (removed). Anything else is not
 * ours to remove: another daemon's live socket (a second daemon with the
 * same control-socket), a file, a socket of another user.
 */
static int clear_stale(const char *path, const struct sockaddr_un *sa, char *err, size_t errlen)
{
    struct stat st;
    int fd, rc;

    if (lstat(path, &st) < 0)
        return errno == ENOENT ? 0 : -errno;
    if (!S_ISSOCK(st.st_mode)) {
        snprintf(err, errlen, "%s is there and is not a socket: not removed (move it away, or "
                 "set [daemon] control-socket to another path)", path);
        return -EEXIST;
    }
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    rc = connect(fd, (const struct sockaddr *)sa, sizeof(*sa)) == 0 ? -EADDRINUSE : 0;
    close(fd);
    if (rc < 0) {
        snprintf(err, errlen, "another daemon listens on it: not removed (give each daemon "
                 "its own [daemon] control-socket)");
        return rc;
    }
    if (st.st_uid != geteuid()) {
        snprintf(err, errlen, "a socket of uid %u is there: not removed (remove it if no "
                 "daemon of that user runs)", (unsigned)st.st_uid);
        return -EEXIST;
    }
    return unlink(path) < 0 && errno != ENOENT ? -errno : 0;
}

int control_start(struct daemon *d, char *err, size_t errlen)
{
    struct stat st;
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    const char *path = d->cfg->daemon.control_socket;
    sigset_t all, old;
    int rc;

    err[0] = '\0';
    if (strlen(path) >= sizeof(sa.sun_path)) {
        snprintf(err, errlen, "path too long");
        return -ENAMETOOLONG;
    }
    strcpy(sa.sun_path, path);
    d->control_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (d->control_fd < 0 || pipe(stop_pipe) < 0) {
        snprintf(err, errlen, "socket: %s", strerror(errno));
        return -errno;
    }
    if ((rc = clear_stale(path, &sa, err, errlen)) < 0) {
        if (!err[0])
            snprintf(err, errlen, "%s", strerror(-rc));
        return rc;
    }
    if (bind(d->control_fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
        lstat(path, &st) < 0 || chmod(path, 0600) < 0 || listen(d->control_fd, 16) < 0) {
        rc = -errno;
        if (rc == -EACCES || rc == -EPERM)
            socket_dir_error(d, path, err, errlen);
        else
            snprintf(err, errlen, "cannot listen: %s", strerror(-rc));
        return rc;
    }
    sock_dev = st.st_dev;
    sock_ino = st.st_ino;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    rc = -pthread_create(&d->control_thread, NULL, control_main, d);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc < 0) {
        snprintf(err, errlen, "cannot start its thread");
        return rc;
    }
    d->control_running = true;
    return 0;
}

void control_stop(struct daemon *d)
{
    if (d->control_running) {
        if (write(stop_pipe[1], "x", 1) < 0)
            log_debug("control: stop pipe: %s", strerror(errno));
        pthread_join(d->control_thread, NULL);
        d->control_running = false;
    }
    if (d->control_fd >= 0) {
        const char *path = d->cfg->daemon.control_socket;
        struct stat st;
        if (lstat(path, &st) == 0 && st.st_dev == sock_dev && st.st_ino == sock_ino)
            unlink(path);
        else
            log_warn("control socket %s is no longer the one this daemon made: left as it is",
                     path);
        close(d->control_fd);
        d->control_fd = -1;
    }
    for (int i = 0; i < 2; i++) {
        if (stop_pipe[i] >= 0)
            close(stop_pipe[i]);
        stop_pipe[i] = -1;
    }
}
