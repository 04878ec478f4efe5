/*
 * fault.h: fault-injection points for the tests (docs/testing.md).
 *
 * A build with -Dfault_injection=true reads MTLSGW_FAULT once, a list of
 * "point:milliseconds" separated by commas, and fault_point("point") then
 * sleeps that long each time it is reached: a test widens a race window to
 * seconds and lands its attack inside it, instead of hoping to hit it. A
 * build without the option compiles every point to nothing.
 */
#ifndef MTLSGW_FAULT_H
#define MTLSGW_FAULT_H

#include "build-config.h"

#if MTLSGW_FAULT_INJECTION
void fault_point(const char *name);
#else
static inline void fault_point(const char *name)
{
    (void)name;
}
#endif

#endif
