/*
 * refusals.c: handshake refusals by reason, one bucket a minute for the
 * last hour (refusals.h). A bucket carries the minute it counts, so a
 * stale one (the daemon idle for an hour) reads as zero and is reused.
 */
#include "refusals.h"

#include <pthread.h>
#include <string.h>

#include <json-c/json.h>

#include "daemon.h"
#include "registry.h"
#include "verify.h"

/* The verdicts, then "other" for a code this book does not know. */
#define REASONS (VERDICT_COUNT + 1)

struct bucket {
    int64_t minute; /* seconds since the epoch / 60 */
    uint32_t count[REASONS];
};

static struct {
    pthread_mutex_t lock;
    struct bucket b[REFUSALS_MINUTES];
} book = {.lock = PTHREAD_MUTEX_INITIALIZER};

static const char *reason_name(int r)
{
    return r < VERDICT_COUNT ? verdict_name((enum verdict_code)r) : "other";
}

void refusals_note(int code, int64_t now)
{
    int64_t minute = now / 60;
    struct bucket *b = &book.b[minute % REFUSALS_MINUTES];
    int r = code > 0 && code < VERDICT_COUNT ? code : VERDICT_COUNT;

    if (code == VERDICT_OK)
        return;
    pthread_mutex_lock(&book.lock);
    if (b->minute != minute) {
        memset(b, 0, sizeof(*b));
        b->minute = minute;
    }
    if (b->count[r] < UINT32_MAX)
        b->count[r]++;
    pthread_mutex_unlock(&book.lock);
}

struct json_object *refusals_json(int64_t now)
{
    struct json_object *o = json_object_new_object(), *reasons = json_object_new_object();
    uint32_t counts[REASONS][REFUSALS_MINUTES];
    int64_t last = now / 60, total = 0;
    char until[32];

    memset(counts, 0, sizeof(counts));
    pthread_mutex_lock(&book.lock);
    for (int i = 0; i < REFUSALS_MINUTES; i++) {
        int64_t minute = last - (REFUSALS_MINUTES - 1) + i;
        const struct bucket *b = &book.b[minute % REFUSALS_MINUTES];

        if (b->minute != minute)
            continue;
        for (int r = 0; r < REASONS; r++)
            counts[r][i] = b->count[r];
    }
    pthread_mutex_unlock(&book.lock);
    for (int r = 0; r < REASONS; r++) {
        struct json_object *arr = NULL;
        int64_t sum = 0;

        for (int i = 0; i < REFUSALS_MINUTES; i++)
            sum += counts[r][i];
        if (!sum)
            continue;
        arr = json_object_new_array();
        for (int i = 0; i < REFUSALS_MINUTES; i++)
            json_object_array_add(arr, json_object_new_int64(counts[r][i]));
        json_object_object_add(reasons, reason_name(r), arr);
        total += sum;
    }
    time_format_utc((last + 1) * 60, until, sizeof(until));
    json_object_object_add(o, "minutes", json_object_new_int(REFUSALS_MINUTES));
    json_object_object_add(o, "until", json_object_new_string(until));
    json_object_object_add(o, "reasons", reasons);
    json_object_object_add(o, "total", json_object_new_int64(total));
    return o;
}

void refusals_reset(void)
{
    pthread_mutex_lock(&book.lock);
    memset(book.b, 0, sizeof(book.b));
    pthread_mutex_unlock(&book.lock);
}
