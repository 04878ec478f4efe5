/* log.h: the daemon's and the console tool's only way to say something. */
#ifndef MTLSGW_LOG_H
#define MTLSGW_LOG_H

#include <stdbool.h>
#include <stddef.h>

enum log_target { LOG_TO_STDERR = 0, LOG_TO_SYSLOG };

void log_open(const char *ident, enum log_target target, bool debug);
/* Debug messages on or off (SIGHUP with a new log-level). */
void log_set_debug(bool debug);
/* Only messages at this syslog priority or more urgent (LOG_ERR..LOG_DEBUG). */
void log_set_level(int level);

/*
 * Every message is one line: after formatting, control bytes (newline
 * included), DEL, C1 controls, U+2028/U+2029 and bytes that are not UTF-8
 * are written as \xNN and a backslash as \\, so that a string a peer chose
 * (a certificate subject, a user name, a close reason) can neither end the
 * line nor fake another one. A message of several lines of the daemon's
 * own goes through log_lines.
 */
#define LOG_PRINTF(a, b) __attribute__((format(printf, a, b)))
void log_err(const char *fmt, ...) LOG_PRINTF(1, 2);
void log_warn(const char *fmt, ...) LOG_PRINTF(1, 2);
void log_info(const char *fmt, ...) LOG_PRINTF(1, 2);
void log_debug(const char *fmt, ...) LOG_PRINTF(1, 2);

/* head, then each line of text as a line of its own (indented), at prio
 * (LOG_ERR..LOG_DEBUG). */
void log_lines(int prio, const char *head, const char *text);

/*
 * The escaping above of in[0..len) into out (always NUL-terminated when
 * outlen > 0). Returns the length the whole escaped text needs (without the
 * NUL), as snprintf does; at most 4 * len.
 */
size_t log_escape(const char *in, size_t len, char *out, size_t outlen);

#endif
