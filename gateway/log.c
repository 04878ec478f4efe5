#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <syslog.h>

static const char *log_ident = "mtlsgw";
static enum log_target log_to = LOG_TO_STDERR;
static bool log_debug_on;
static int log_level = LOG_INFO;

void log_open(const char *ident, enum log_target target, bool debug)
{
    log_ident = ident;
    log_to = target;
    log_debug_on = debug;
    if (target == LOG_TO_SYSLOG)
        openlog(ident, LOG_PID | LOG_NDELAY, LOG_DAEMON);
}

void log_set_debug(bool debug)
{
    log_debug_on = debug;
}

void log_set_level(int level)
{
    log_level = level;
    log_debug_on = level >= LOG_DEBUG;
}

static void log_v(int prio, const char *prefix, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));

static void log_v(int prio, const char *prefix, const char *fmt, va_list ap)
{
    if (prio > log_level && prio != LOG_DEBUG)
        return;
    if (log_to == LOG_TO_SYSLOG) {
        vsyslog(prio, fmt, ap);
        return;
    }
    /* One line at a time: threads log concurrently (POSIX stream lock). */
    flockfile(stderr);
    fprintf(stderr, "%s: %s", log_ident, prefix);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    funlockfile(stderr);
}

#define LOG_FN(name, prio, prefix, cond)                                                          \
    void name(const char *fmt, ...)                                                               \
    {                                                                                             \
        va_list ap;                                                                               \
        if (!(cond))                                                                              \
            return;                                                                               \
        va_start(ap, fmt);                                                                        \
        log_v(prio, prefix, fmt, ap);                                                             \
        va_end(ap);                                                                               \
    }

LOG_FN(log_err, LOG_ERR, "", 1)
LOG_FN(log_warn, LOG_WARNING, "warning: ", 1)
LOG_FN(log_info, LOG_INFO, "", 1)
LOG_FN(log_debug, LOG_DEBUG, "debug: ", log_debug_on)
