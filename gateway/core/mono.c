/* mono.c: the monotonic clock (mono.h). */
#include "mono.h"

#include <time.h>

long long mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

long long days_until(time_t t, time_t now)
{
    long long s = (long long)t - (long long)now;

    return s >= 0 ? s / 86400 : -((-s + 86399) / 86400);
}
