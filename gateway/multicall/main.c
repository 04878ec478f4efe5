/*
 * multicall/main.c: one executable for both programs, as busybox and
 * OpenWrt's ubox do (docs/performance.md, "Size"). `mtlsgwd` is a link to
 * `mtlsgw`; the name it was started by picks the program, so both keep
 * their names, options and behaviour. One copy of the core code and of the
 * dynamic-linking tables instead of two is what brings the pair under
 * issue 17's 400 KB.
 */
#include <string.h>

#include "mtlsgw-main.h"
#include "mtlsgwd-main.h"

int main(int argc, char **argv)
{
    const char *name = argc > 0 && argv[0] ? argv[0] : "";
    const char *slash = strrchr(name, '/');

    if (slash)
        name = slash + 1;
    if (strcmp(name, "mtlsgwd") == 0)
        return mtlsgwd_main(argc, argv);
    return mtlsgw_main(argc, argv);
}
