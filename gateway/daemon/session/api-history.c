/*
 * api-history.c: what happened, for the management page (api-invites.h):
 * the pki dir's audit log newest first, and handshake refusals by reason
 * and minute (refusals.c). Both bounded: the log is read from its end.
 */
#include "api-invites.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "api-codec.h"
#include "daemon.h"
#include "http.h"
#include "pki.h"
#include "refusals.h"

#define AUDIT_TAIL (256 * 1024)
#define AUDIT_DEFAULT 100
#define AUDIT_MAX 500

/* limit=N in the query (other parameters are ignored): 0, or -EINVAL. */
static int audit_limit(const char *query, long *limit)
{
    *limit = AUDIT_DEFAULT;
    for (const char *q = query; q && *q;) {
        const char *amp = strchr(q, '&');
        size_t n = amp ? (size_t)(amp - q) : strlen(q);

        if (n > 6 && strncmp(q, "limit=", 6) == 0) {
            char buf[16], *end;
            if (n - 6 >= sizeof(buf))
                return -EINVAL;
            memcpy(buf, q + 6, n - 6);
            buf[n - 6] = '\0';
            *limit = strtol(buf, &end, 10);
            if (*end || *limit < 1 || *limit > AUDIT_MAX)
                return -EINVAL;
        }
        q = amp ? amp + 1 : q + n;
    }
    return 0;
}

/* The last AUDIT_TAIL bytes of path into *buf (NUL-terminated); *partial
 * when the file is longer, so that its first line is cut. Only a regular
 * file is read: a FIFO or a device put in its place must not hold an API
 * worker (-EINVAL), nor a symbolic link send it elsewhere (-ELOOP). */
static int read_tail(const char *path, char **buf, size_t *len, bool *partial)
{
    struct stat st;
    off_t from;
    ssize_t n;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK), rc = 0;

    *buf = NULL;
    if (fd < 0)
        return -errno;
    if (fstat(fd, &st) < 0) {
        rc = -errno;
        goto out;
    }
    if (!S_ISREG(st.st_mode)) {
        rc = -EINVAL;
        goto out;
    }
    from = st.st_size > AUDIT_TAIL ? st.st_size - AUDIT_TAIL : 0;
    *partial = from > 0;
    *buf = malloc(AUDIT_TAIL + 1);
    if (!*buf) {
        rc = -ENOMEM;
        goto out;
    }
    n = pread(fd, *buf, AUDIT_TAIL, from);
    if (n < 0) {
        rc = -errno;
        free(*buf);
        *buf = NULL;
        goto out;
    }
    (*buf)[n] = '\0';
    *len = (size_t)n;
out:
    close(fd);
    return rc;
}

void api_get_audit(struct daemon *d, struct conn *c, const struct http_request *req,
                   const char *param, struct api_reply *r)
{
    struct json_object *arr;
    char *buf = NULL, *start;
    size_t len = 0;
    bool partial = false;
    long limit, n = 0;
    int rc;

    if (audit_limit(req->query, &limit) < 0) {
        api_reply_error(r, 400, "limit must be a whole number from 1 to %d", AUDIT_MAX);
        return;
    }
    arr = json_object_new_array();
    rc = read_tail(d->pki->audit_path, &buf, &len, &partial);
    if (rc == -ENOENT) {
        api_reply_json(r, 200, arr); /* nothing happened yet */
        return;
    }
    if (rc < 0) {
        json_object_put(arr);
        api_reply_error(r, 500, "%s: %s", d->pki->audit_path,
                        rc == -EINVAL ? "not a regular file" : strerror(-rc));
        return;
    }
    start = buf;
    if (partial) {
        char *nl = strchr(buf, '\n');
        start = nl ? nl + 1 : buf + len;
    }
    /* Walk back from the end, one line at a time: end is the '\n' (or the
     * NUL) after the line, line its first byte. */
    for (char *end = buf + len; end > start && n < limit;) {
        char *line = end;
        struct json_object *o;

        while (line > start && line[-1] != '\n')
            line--;
        *end = '\0';
        if (line < end) {
            o = json_tokener_parse(line);
            if (!o || !json_object_is_type(o, json_type_object)) {
                json_object_put(o);
                o = json_object_new_object();
                json_object_object_add(o, "unreadable", json_object_new_string(line));
            }
            json_object_array_add(arr, o);
            n++;
        }
        end = line > start ? line - 1 : start;
    }
    free(buf);
    api_reply_json(r, 200, arr);
}

void api_get_refusals(struct daemon *d, struct conn *c, const struct http_request *req,
                      const char *param, struct api_reply *r)
{
    api_reply_json(r, 200, refusals_json((int64_t)time(NULL)));
}
