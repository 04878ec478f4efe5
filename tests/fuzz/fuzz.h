/*
 * fuzz.h: what the harnesses share. Each fuzz-NAME.c defines
 * LLVMFuzzerTestOneInput; libFuzzer drives it in the fuzz build and
 * replay.c drives it over the seed corpus and the regression inputs in
 * every build.
 */
#ifndef MTLSGW_FUZZ_H
#define MTLSGW_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* An invariant the parser promised and broke: abort so both libFuzzer and
 * the replay test see a crash with the reason on stderr. */
#define FUZZ_CHECK(cond)                                                                      \
    do {                                                                                      \
        if (!(cond)) {                                                                        \
            fprintf(stderr, "%s:%d: invariant broken: %s\n", __FILE__, __LINE__, #cond);      \
            abort();                                                                          \
        }                                                                                     \
    } while (0)

/* A tiny deterministic PRNG: the input decides chunk sizes, so a crash
 * reproduces from the file alone. */
static inline uint32_t fuzz_rand(uint32_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 17;
    *s ^= *s << 5;
    return *s;
}

#endif
