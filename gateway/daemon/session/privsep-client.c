/*
 * privsep-client.c: the session process's end of the channel to the parent
 * (privsep.h): one typed request at a time, the reply and a TUN fd back.
 * The parent's end, which re-checks every request, is parent/privsep.c.
 */
#include "privsep.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "log.h"

static int client_fd = -1;
static pthread_mutex_t client_lock = PTHREAD_MUTEX_INITIALIZER;

void ps_client_init(int fd)
{
    client_fd = fd;
}

bool ps_client_ready(void)
{
    return client_fd >= 0;
}

/* The parent is gone: nothing can close a gate opening or take down a
 * tunnel any more, so the session process ends rather than report success
 * it cannot have (fail closed; the supervisor starts a new daemon, whose
 * parent installs the table with nothing trusted). */
static _Noreturn void parent_gone(const char *why)
{
    log_err("session process: %s: the privileged parent is gone, exiting", why);
    _exit(1);
}

int ps_request(const struct ps_msg *m, int *fd_out, char *err, size_t errlen)
{
    struct ps_reply rep;
    char cbuf[CMSG_SPACE(sizeof(int))];
    struct iovec iov = {.iov_base = &rep, .iov_len = sizeof(rep)};
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
                        .msg_controllen = sizeof(cbuf)};
    struct cmsghdr *cm;
    ssize_t n;
    int rc;

    if (fd_out)
        *fd_out = -1;
    if (client_fd < 0) {
        snprintf(err, errlen, "no privileged parent (CAP_NET_ADMIN) to ask");
        return -ENOTCONN;
    }
    pthread_mutex_lock(&client_lock);
    do {
        n = send(client_fd, m, sizeof(*m), MSG_NOSIGNAL);
    } while (n < 0 && errno == EINTR);
    if (n != (ssize_t)sizeof(*m)) {
        rc = n < 0 ? -errno : -EIO;
        snprintf(err, errlen, "cannot reach the parent process: %s", strerror(-rc));
        if (rc == -EPIPE || rc == -ECONNRESET)
            parent_gone(err);
        goto out;
    }
    do {
        n = recvmsg(client_fd, &mh, MSG_CMSG_CLOEXEC);
    } while (n < 0 && errno == EINTR);
    if (n != (ssize_t)sizeof(rep) || rep.type != PS_REPLY) {
        rc = n < 0 ? -errno : -EPROTO;
        snprintf(err, errlen, "no answer from the parent process");
        if (n <= 0)
            parent_gone(err);
        goto out;
    }
    for (cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm)) {
        if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS) {
            int fd;
            memcpy(&fd, CMSG_DATA(cm), sizeof(fd));
            if (fd_out && *fd_out < 0)
                *fd_out = fd;
            else
                close(fd);
        }
    }
    rep.err[PS_ERRLEN - 1] = '\0';
    rc = rep.rc;
    if (rc < 0)
        snprintf(err, errlen, "%s", rep.err);
out:
    pthread_mutex_unlock(&client_lock);
    return rc;
}
