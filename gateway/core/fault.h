/*
 * fault.h: fault-injection points for the tests (docs/testing.md).
 *
 * A build with -Dfault_injection=true reads MTLSGW_FAULT once, a list of
 * "point:milliseconds" separated by commas, and fault_point("point") then
 * sleeps that long each time it is reached: a test widens a race window to
 * seconds and lands its attack inside it, instead of hoping to hit it.
 * "point:fail" makes fault_fail("point") true instead: a failure the test
 * cannot cause from outside (a token that refuses one signature). A build
 * without the option compiles every point to nothing.
 */
#ifndef MTLSGW_FAULT_H
#define MTLSGW_FAULT_H

#include <stdbool.h>

#include "build-config.h"

#if MTLSGW_FAULT_INJECTION
void fault_point(const char *name);
bool fault_fail(const char *name);
#else
static inline void fault_point(const char *name)
{
    (void)name;
}
static inline bool fault_fail(const char *name)
{
    (void)name;
    return false;
}
#endif

#endif
