#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

/*
 * Length of the well-formed UTF-8 sequence at p (1 to 4), or 0 when it is
 * not one (RFC 3629: no overlong forms, no surrogates, nothing past
 * U+10FFFF).
 */
static size_t utf8_len(const unsigned char *p, size_t left)
{
    size_t n;
    unsigned cp;

    if (p[0] < 0x80)
        return 1;
    if (p[0] >= 0xc2 && p[0] <= 0xdf)
        n = 2, cp = p[0] & 0x1f;
    else if (p[0] >= 0xe0 && p[0] <= 0xef)
        n = 3, cp = p[0] & 0x0f;
    else if (p[0] >= 0xf0 && p[0] <= 0xf4)
        n = 4, cp = p[0] & 0x07;
    else
        return 0;
    if (left < n)
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((p[i] & 0xc0) != 0x80)
            return 0;
        cp = cp << 6 | (p[i] & 0x3f);
    }
    if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
        (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return n;
}

/* Code points a terminal or log viewer may take as a line break or as a
 * reordering of what follows: C1 controls (U+0085 is NEL), the line and
 * paragraph separators and the bidirectional overrides and isolates. */
static bool utf8_unsafe(const unsigned char *p, size_t n)
{
    if (n == 2)
        return p[0] == 0xc2 && p[1] < 0xa0;
    if (n == 3 && p[0] == 0xe2 && p[1] == 0x80)
        return p[2] >= 0xa8 && p[2] <= 0xae;
    if (n == 3 && p[0] == 0xe2 && p[1] == 0x81)
        return p[2] >= 0xa6 && p[2] <= 0xa9;
    return false;
}

size_t log_escape(const char *in, size_t len, char *out, size_t outlen)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *p = (const unsigned char *)in;
    size_t o = 0, i = 0;

#define PUT(ch)                                                                                   \
    do {                                                                                          \
        if (o + 1 < outlen)                                                                       \
            out[o] = (char)(ch);                                                                  \
        o++;                                                                                      \
    } while (0)
    while (i < len) {
        size_t n = utf8_len(p + i, len - i);

        if (n == 1 && p[i] == '\\') {
            PUT('\\');
            PUT('\\');
        } else if (n == 1 && p[i] >= 0x20 && p[i] != 0x7f) {
            PUT(p[i]);
        } else if (n > 1 && !utf8_unsafe(p + i, n)) {
            for (size_t k = 0; k < n; k++)
                PUT(p[i + k]);
        } else {
            /* A control byte, a byte that starts no UTF-8 sequence, or an
             * unsafe code point: each of its bytes as \xNN. */
            if (n == 0)
                n = 1;
            for (size_t k = 0; k < n; k++) {
                PUT('\\');
                PUT('x');
                PUT(hex[p[i + k] >> 4]);
                PUT(hex[p[i + k] & 15]);
            }
        }
        i += n;
    }
#undef PUT
    if (outlen)
        out[o < outlen ? o : outlen - 1] = '\0';
    return o;
}

static void log_emit(int prio, const char *prefix, const char *msg)
{
    if (log_to == LOG_TO_SYSLOG) {
        syslog(prio, "%s", msg);
        return;
    }
    /* One line at a time: threads log concurrently (POSIX stream lock). */
    flockfile(stderr);
    fprintf(stderr, "%s: %s%s\n", log_ident, prefix, msg);
    funlockfile(stderr);
}

static void log_v(int prio, const char *prefix, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));

static void log_v(int prio, const char *prefix, const char *fmt, va_list ap)
{
    char raw[1024], esc[4096], *big = NULL, *ebig = NULL;
    const char *msg = raw, *line = esc;
    va_list aq;
    size_t need;
    int n;

    if (prio > log_level && prio != LOG_DEBUG)
        return;
    va_copy(aq, ap);
    n = vsnprintf(raw, sizeof(raw), fmt, ap);
    if (n < 0) {
        va_end(aq);
        return;
    }
    if ((size_t)n >= sizeof(raw) && (big = malloc((size_t)n + 1))) {
        vsnprintf(big, (size_t)n + 1, fmt, aq);
        msg = big;
    }
    va_end(aq);
    if (msg == raw && (size_t)n >= sizeof(raw))
        n = (int)sizeof(raw) - 1; /* no memory for the rest: the start of it */
    need = log_escape(msg, (size_t)n, esc, sizeof(esc));
    if (need >= sizeof(esc) && (ebig = malloc(need + 1))) {
        log_escape(msg, (size_t)n, ebig, need + 1);
        line = ebig;
    }
    log_emit(prio, prefix, line);
    free(ebig);
    free(big);
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

static void log_one(int prio, const char *fmt, ...) LOG_PRINTF(2, 3);
static void log_one(int prio, const char *fmt, ...)
{
    static const char *const prefixes[] = {"", "", "", "", "warning: ", "", "", "debug: "};
    va_list ap;

    if (prio == LOG_DEBUG && !log_debug_on)
        return;
    va_start(ap, fmt);
    log_v(prio, prio >= 0 && prio <= LOG_DEBUG ? prefixes[prio] : "", fmt, ap);
    va_end(ap);
}

void log_lines(int prio, const char *head, const char *text)
{
    const char *s = text, *e;

    log_one(prio, "%s", head);
    while (s && *s) {
        e = strchr(s, '\n');
        if (!e)
            e = s + strlen(s);
        if (e > s)
            log_one(prio, "  %.*s", (int)(e - s), s);
        s = *e ? e + 1 : e;
    }
}
