/* log.h: the daemon's and the console tool's only way to say something. */
#ifndef MTLSGW_LOG_H
#define MTLSGW_LOG_H

#include <stdbool.h>

enum log_target { LOG_TO_STDERR = 0, LOG_TO_SYSLOG };

void log_open(const char *ident, enum log_target target, bool debug);
/* Debug messages on or off (SIGHUP with a new log-level). */
void log_set_debug(bool debug);
/* Only messages at this syslog priority or more urgent (LOG_ERR..LOG_DEBUG). */
void log_set_level(int level);

#define LOG_PRINTF(a, b) __attribute__((format(printf, a, b)))
void log_err(const char *fmt, ...) LOG_PRINTF(1, 2);
void log_warn(const char *fmt, ...) LOG_PRINTF(1, 2);
void log_info(const char *fmt, ...) LOG_PRINTF(1, 2);
void log_debug(const char *fmt, ...) LOG_PRINTF(1, 2);

#endif
