/* mtlsgwd-main.h: the daemon's entry (gateway/multicall/main.c calls it when
 * the executable is started as `mtlsgwd`). */
#ifndef MTLSGW_MTLSGWD_MAIN_H
#define MTLSGW_MTLSGWD_MAIN_H

/* mtlsgwd(8): check the config, become the parent and start the session
 * process; the exit status. */
int mtlsgwd_main(int argc, char **argv);

#endif
