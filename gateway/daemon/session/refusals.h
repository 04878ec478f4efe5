/*
 * refusals.h: handshake refusals by reason over the last hour, in
 * per-minute buckets, for the management page's chart (docs/web.md,
 * GET /api/v1/refusals). One book per session process; thread-safe.
 */
#ifndef MTLSGW_REFUSALS_H
#define MTLSGW_REFUSALS_H

#include <stdint.h>

struct json_object;

/* The minutes the book keeps (the chart's width). */
#define REFUSALS_MINUTES 60

/* A handshake refused with verdict code (enum verdict_code, not ok) at now
 * (seconds since the epoch); a code out of range counts as "other". */
void refusals_note(int code, int64_t now);

/*
 * {"minutes": 60, "until": "UTC time of the last bucket's end",
 *  "reasons": {"unknown-issuer": [60 counts, oldest minute first], ...},
 *  "total": N} at now. Only reasons with a refusal in the hour are listed.
 */
struct json_object *refusals_json(int64_t now);

/* Forget every count (the unit suite). */
void refusals_reset(void);

#endif
