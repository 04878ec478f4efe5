#include "control.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define ANSWER_MAX (4 * 1024 * 1024)
#define CONTROL_TIMEOUT_MS 5000

int control_request(const char *path, const char *request, char **answer, char *err,
                    size_t errlen)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    char *buf = NULL;
    size_t len = 0, cap = 0;
    int fd, rc = 0;

    if (strlen(path) >= sizeof(sa.sun_path)) {
        snprintf(err, errlen, "control socket path too long: %s", path);
        return -ENAMETOOLONG;
    }
    strcpy(sa.sun_path, path);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        rc = -errno;
        snprintf(err, errlen, "cannot reach the daemon at %s: socket: %s", path, strerror(-rc));
        return rc;
    }
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        rc = -errno;
        snprintf(err, errlen, "cannot reach the daemon at %s: %s", path, strerror(errno));
        goto out;
    }
    if (write(fd, request, strlen(request)) < 0 || write(fd, "\n", 1) < 0) {
        rc = -errno;
        snprintf(err, errlen, "cannot write to %s: %s", path, strerror(errno));
        goto out;
    }
    for (;;) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        ssize_t n;
        if (poll(&p, 1, CONTROL_TIMEOUT_MS) <= 0) {
            rc = -ETIMEDOUT;
            snprintf(err, errlen, "the daemon at %s did not answer within %d s", path,
                     CONTROL_TIMEOUT_MS / 1000);
            goto out;
        }
        if (len + 4096 + 1 > cap) {
            char *nb;
            cap = cap ? cap * 2 : 8192;
            if (cap > ANSWER_MAX) {
                rc = -EFBIG;
                snprintf(err, errlen, "answer from %s too large", path);
                goto out;
            }
            nb = realloc(buf, cap);
            if (!nb) {
                rc = -ENOMEM;
                goto out;
            }
            buf = nb;
        }
        n = read(fd, buf + len, cap - len - 1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = -errno;
            snprintf(err, errlen, "cannot read from %s: %s", path, strerror(errno));
            goto out;
        }
        len += (size_t)n;
        buf[len] = '\0';
        if (n == 0 || memchr(buf, '\n', len))
            break;
    }
    if (!buf || !len) {
        rc = -EPROTO;
        snprintf(err, errlen, "the daemon at %s closed without an answer", path);
        goto out;
    }
    *answer = buf;
    buf = NULL;
out:
    free(buf);
    close(fd);
    return rc;
}
