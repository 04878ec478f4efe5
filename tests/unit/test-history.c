/* GET /api/v1/audit (gateway/daemon/session/api-history.c): the audit log
 * newest first, bounded by limit and by the file's last 256 KiB (a line
 * cut there is dropped, not shown broken), and only a regular file read:
 * a FIFO or a symbolic link in its place is answered at once. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <json-c/json.h>

#include "api-invites.h"
#include "cunit-main.h"
#include "daemon.h"
#include "http.h"
#include "pki.h"

static char dir[] = "/tmp/mtlsgw-test-history.XXXXXX";
static char path[128];

/* GET /api/v1/audit?QUERY on a daemon whose audit log is path. */
static struct json_object *audit(const char *query, int *status)
{
    static struct pki pki;
    static struct daemon d;
    static struct conn c;
    struct http_request req = {0};
    struct api_reply r = {0};
    struct json_object *o;

    pki.audit_path = path;
    d.pki = &pki;
    req.path = (char *)"/api/v1/audit";
    req.query = (char *)query;
    api_get_audit(&d, &c, &req, "", &r);
    *status = r.status;
    o = r.body ? json_tokener_parse(r.body) : NULL;
    free(r.body);
    return o;
}

static void write_lines(int from, int to, const char *pad)
{
    FILE *f = fopen(path, "w");

    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    for (int i = from; i <= to; i++)
        fprintf(f, "{\"event\":\"enroll\",\"name\":\"p%d\",\"pad\":\"%s\"}\n", i, pad);
    fclose(f);
}

static const char *name_at(struct json_object *arr, size_t i)
{
    struct json_object *v;

    if (!json_object_object_get_ex(json_object_array_get_idx(arr, i), "name", &v))
        return "";
    return json_object_get_string(v);
}

static void test_newest_first(void)
{
    struct json_object *o;
    int status;

    write_lines(1, 5, "");
    o = audit("limit=3", &status);
    EXPECT_INT(status, 200);
    EXPECT_INT(json_object_array_length(o), 3);
    EXPECT_STR(name_at(o, 0), "p5");
    EXPECT_STR(name_at(o, 2), "p3");
    json_object_put(o);
    o = audit(NULL, &status);
    EXPECT_INT(json_object_array_length(o), 5);
    EXPECT_STR(name_at(o, 4), "p1");
    json_object_put(o);
    for (const char *bad = "limit=0\0limit=501\0limit=x\0limit=-1\0"; *bad;
         bad += strlen(bad) + 1) {
        o = audit(bad, &status);
        EXPECT_INT(status, 400);
        json_object_put(o);
    }
    /* No log yet: nothing happened. */
    unlink(path);
    o = audit(NULL, &status);
    EXPECT_INT(status, 200);
    EXPECT_INT(json_object_array_length(o), 0);
    json_object_put(o);
}

/* 3,000 lines of about 1 KiB: only the last 256 KiB are read, and the line
 * cut at that edge is not shown. */
static void test_bounded_tail(void)
{
    char pad[1001];
    struct json_object *o;
    int status;

    memset(pad, 'x', sizeof(pad) - 1);
    pad[sizeof(pad) - 1] = '\0';
    write_lines(1, 3000, pad);
    o = audit("limit=500", &status);
    EXPECT_INT(status, 200);
    CU_ASSERT_TRUE(json_object_array_length(o) > 200 && json_object_array_length(o) < 300);
    EXPECT_STR(name_at(o, 0), "p3000");
    for (size_t i = 0; i < json_object_array_length(o); i++) {
        if (!name_at(o, i)[0]) {
            fprintf(stderr, "entry %zu has no name: %s\n", i,
                    json_object_to_json_string(json_object_array_get_idx(o, i)));
            CU_FAIL("a cut or unreadable line is shown");
            break;
        }
    }
    json_object_put(o);
    unlink(path);
}

static void test_not_a_file(void)
{
    struct json_object *o, *e;
    int status;

    CU_ASSERT_EQUAL_FATAL(mkfifo(path, 0600), 0);
    o = audit(NULL, &status); /* would block in open() until a writer came */
    EXPECT_INT(status, 500);
    CU_ASSERT_TRUE(json_object_object_get_ex(o, "error", &e) &&
                   strstr(json_object_get_string(e), "not a regular file"));
    json_object_put(o);
    unlink(path);
    write_lines(1, 1, "");
    {
        char target[160];
        snprintf(target, sizeof(target), "%s.real", path);
        CU_ASSERT_EQUAL(rename(path, target), 0);
        CU_ASSERT_EQUAL(symlink(target, path), 0);
        o = audit(NULL, &status);
        EXPECT_INT(status, 500);
        json_object_put(o);
        unlink(path);
        unlink(target);
    }
}

static void test_setup(void)
{
    CU_ASSERT_PTR_NOT_NULL_FATAL(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/audit.log", dir);
}

static void test_teardown(void)
{
    unlink(path);
    rmdir(dir);
}

static const struct cu_test tests[] = {
    {"a temp dir", test_setup},
    {"newest first, limit", test_newest_first},
    {"only the last 256 KiB, no cut line", test_bounded_tail},
    {"a FIFO or a symbolic link is not read", test_not_a_file},
    {"clean up", test_teardown},
};

CU_MAIN("history", tests)
