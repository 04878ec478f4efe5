/* fault.c: see fault.h. Only built with -Dfault_injection=true. */
#include "fault.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"

/* The value of the entry named exactly `name` in MTLSGW_FAULT ("a:100,b:fail"),
 * copied into val; false when there is none. */
static bool fault_value(const char *name, char *val, size_t cap)
{
    const char *spec = getenv("MTLSGW_FAULT");
    size_t nl = strlen(name);

    while (spec && *spec) {
        const char *end = strchr(spec, ',');
        size_t len = end ? (size_t)(end - spec) : strlen(spec);
        if (len > nl + 1 && memcmp(spec, name, nl) == 0 && spec[nl] == ':') {
            snprintf(val, cap, "%.*s", (int)(len - nl - 1), spec + nl + 1);
            return true;
        }
        spec = end ? end + 1 : NULL;
    }
    return false;
}

void fault_point(const char *name)
{
    char val[32];
    long ms;

    if (!fault_value(name, val, sizeof(val)))
        return;
    ms = strtol(val, NULL, 10);
    if (ms > 0 && ms <= 60000) {
        struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
        log_info("fault injection: %s: waiting %ld ms", name, ms);
        while (nanosleep(&ts, &ts) < 0)
            ;
    }
}

bool fault_fail(const char *name)
{
    char val[32];

    if (!fault_value(name, val, sizeof(val)) || strcmp(val, "fail") != 0)
        return false;
    log_info("fault injection: %s: failing", name);
    return true;
}
