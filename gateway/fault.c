/* fault.c: see fault.h. Only built with -Dfault_injection=true. */
#include "fault.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"

void fault_point(const char *name)
{
    const char *spec = getenv("MTLSGW_FAULT");
    size_t nl = strlen(name);

    /* "a:100,b:2000": the delay of the entry named exactly `name`. */
    while (spec && *spec) {
        const char *end = strchr(spec, ',');
        size_t len = end ? (size_t)(end - spec) : strlen(spec);
        if (len > nl + 1 && memcmp(spec, name, nl) == 0 && spec[nl] == ':') {
            long ms = strtol(spec + nl + 1, NULL, 10);
            if (ms > 0 && ms <= 60000) {
                struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
                log_info("fault injection: %s: waiting %ld ms", name, ms);
                while (nanosleep(&ts, &ts) < 0)
                    ;
            }
            return;
        }
        spec = end ? end + 1 : NULL;
    }
}
