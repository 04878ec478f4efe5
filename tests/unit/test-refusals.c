/* Handshake refusals by reason and minute (gateway/daemon/session/
 * refusals.c), what the management page's chart draws: counts land in
 * their minute, the hour slides, a stale bucket reads as zero. */
#include <string.h>

#include <json-c/json.h>

#include "cunit-main.h"
#include "refusals.h"
#include "verify.h"

/* The count of reason in the minute i of the hour ending at now (-1 when
 * the reason is not listed). */
static int64_t count(int64_t now, const char *reason, int i, int64_t *total)
{
    struct json_object *o = refusals_json(now), *reasons, *arr, *v;
    int64_t n = -1;

    json_object_object_get_ex(o, "total", &v);
    *total = json_object_get_int64(v);
    if (json_object_object_get_ex(o, "reasons", &reasons) &&
        json_object_object_get_ex(reasons, reason, &arr)) {
        EXPECT_INT(json_object_array_length(arr), REFUSALS_MINUTES);
        n = json_object_get_int64(json_object_array_get_idx(arr, (size_t)i));
    }
    json_object_put(o);
    return n;
}

static void test_minutes(void)
{
    const int64_t t0 = 1800000000; /* a minute's start */
    int64_t total;

    refusals_reset();
    EXPECT_INT(count(t0, "revoked", 59, &total), -1);
    EXPECT_INT(total, 0);
    refusals_note(VERDICT_REVOKED, t0);
    refusals_note(VERDICT_REVOKED, t0 + 59);
    refusals_note(VERDICT_UNKNOWN_ISSUER, t0 + 30);
    refusals_note(VERDICT_UNKNOWN_ISSUER, t0 + 60); /* the next minute */
    /* Seen from the second minute: the first is the one before last. */
    EXPECT_INT(count(t0 + 61, "revoked", 58, &total), 2);
    EXPECT_INT(count(t0 + 61, "revoked", 59, &total), 0);
    EXPECT_INT(count(t0 + 61, "unknown-issuer", 58, &total), 1);
    EXPECT_INT(count(t0 + 61, "unknown-issuer", 59, &total), 1);
    EXPECT_INT(total, 4);
    EXPECT_INT(count(t0 + 61, "expired", 59, &total), -1);
    /* 59 minutes later the first minute is the oldest still shown. */
    EXPECT_INT(count(t0 + 59 * 60, "revoked", 0, &total), 2);
    /* An hour on it is gone; its slot, reused, counts only the new minute. */
    EXPECT_INT(count(t0 + 60 * 60, "revoked", 0, &total), -1);
    refusals_note(VERDICT_NO_CERT, t0 + 60 * 60);
    EXPECT_INT(count(t0 + 60 * 60, "no-certificate", 59, &total), 1);
    EXPECT_INT(count(t0 + 60 * 60, "revoked", 59, &total), -1);
    EXPECT_INT(total, 2); /* that refusal and the second minute's */
    /* A code the book does not know counts as "other"; ok is no refusal. */
    refusals_note(999, t0 + 60 * 60);
    refusals_note(VERDICT_OK, t0 + 60 * 60);
    EXPECT_INT(count(t0 + 60 * 60, "other", 59, &total), 1);
    refusals_reset();
}

static const struct cu_test tests[] = {
    {"refusals by reason, a bucket a minute for an hour", test_minutes},
};

CU_MAIN("refusals", tests)
