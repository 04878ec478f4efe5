/* mono.h: the monotonic clock in milliseconds, and whole days to a time. */
#ifndef MTLSGW_MONO_H
#define MTLSGW_MONO_H

#include <time.h>

/* Milliseconds on CLOCK_MONOTONIC: deadlines survive clock changes and are
 * never cut short by whole-second rounding. */
long long mono_ms(void);
/* Whole days from now to t, rounded toward the past (-1 once t has gone). */
long long days_until(time_t t, time_t now);

#endif
