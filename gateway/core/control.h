/*
 * control.h: the console's channel to the running daemon (a unix socket,
 * one JSON request per line, one JSON answer per line; docs/mtlsgwd.md).
 */
#ifndef MTLSGW_CONTROL_H
#define MTLSGW_CONTROL_H

#include <stddef.h>

/*
 * Send one request, read one answer (owned, NUL-terminated). -ENOENT or
 * -ECONNREFUSED when no daemon listens there.
 */
int control_request(const char *path, const char *request, char **answer, char *err,
                    size_t errlen);

#endif
