/* mtlsgw-main.h: the console tool's entry (gateway/multicall/main.c calls it
 * when the executable is started by any name but `mtlsgwd`). */
#ifndef MTLSGW_MTLSGW_MAIN_H
#define MTLSGW_MTLSGW_MAIN_H

/* mtlsgw(8): parse the options, run one command; the exit status. */
int mtlsgw_main(int argc, char **argv);

#endif
