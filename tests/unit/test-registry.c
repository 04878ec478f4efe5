#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <json-c/json.h>

#include "cunit-main.h"
#include "fsutil.h"
#include "registry.h"

static char dir[] = "/tmp/mtlsgw-registry-XXXXXX";

static struct peer sample(const char *name, const char *serial)
{
    static char *nets[] = {"10.1.0.0/24", "fd00:1::/64"};
    struct peer p = {
        .name = (char *)name,
        .role = ROLE_TUNNEL,
        .status = PEER_ACTIVE,
        .serial = (char *)serial,
        .key_id = "ab01",
        .not_before = 1700000000,
        .not_after = 1734000000,
        .enrolled_at = 1700000100,
        .networks = nets,
        .n_networks = 2,
    };
    return p;
}

static void test_roundtrip(void)
{
    struct registry *reg = NULL, *back = NULL;
    struct peer p = sample("spoke1", "0a1b");
    const struct peer *q;
    char path[256], err[256] = "";

    snprintf(path, sizeof(path), "%s/registry.json", dir);
    CU_ASSERT_EQUAL_FATAL(registry_new(&reg), 0);
    EXPECT_INT(registry_add(reg, &p), 0);
    EXPECT_INT(registry_next_crl_number(reg), 1);
    EXPECT_INT(registry_save(reg, path), 0);
    EXPECT_INT(registry_load(path, &back, err, sizeof(err)), 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(back);
    EXPECT_INT(registry_count(back), 1);
    q = registry_find_name(back, "spoke1");
    CU_ASSERT_PTR_NOT_NULL_FATAL(q);
    EXPECT_STR(q->serial, "0a1b");
    EXPECT_INT(q->role, ROLE_TUNNEL);
    EXPECT_INT(q->not_after, 1734000000);
    EXPECT_INT(q->n_networks, 2);
    EXPECT_STR(q->networks[1], "fd00:1::/64");
    /* The CRL number survives a save. */
    EXPECT_INT(registry_next_crl_number(back), 2);
    registry_free(reg);
    registry_free(back);
}

static void test_duplicates_and_revoke(void)
{
    struct registry *reg = NULL;
    struct peer a = sample("spoke1", "01"), b = sample("spoke1", "02");
    const struct peer *q;

    registry_new(&reg);
    EXPECT_INT(registry_add(reg, &a), 0);
    EXPECT_INT(registry_add(reg, &b), -EEXIST); /* name active */
    EXPECT_INT(registry_revoke(reg, "spoke1", PEER_REVOKED, "keyCompromise", 1700000500), 0);
    EXPECT_INT(registry_revoke(reg, "spoke1", PEER_REVOKED, NULL, 1), -ENOENT);
    b.enrolled_at = 1700000600;
    EXPECT_INT(registry_add(reg, &b), 0); /* re-enrolled after revocation */
    EXPECT_INT(registry_add(reg, &b), -EEXIST);
    q = registry_find_name(reg, "spoke1");
    EXPECT_STR(q->serial, "02");
    q = registry_find_serial(reg, "01");
    EXPECT_INT(q->status, PEER_REVOKED);
    EXPECT_STR(q->reason, "keyCompromise");
    CU_ASSERT_PTR_NOT_NULL(registry_find_key(reg, "ab01"));
    CU_ASSERT_PTR_NULL(registry_find_name(reg, "nobody"));
    registry_free(reg);
}

static void test_garbage_refused(void)
{
    static const char *const bad[] = {
        "",
        "{",
        "[]",
        "{\"version\":2,\"peers\":[]}",
        "{\"version\":1}",
        "{\"version\":1,\"peers\":[{\"name\":\"x\"}]}",
        "{\"version\":1,\"peers\":[{\"name\":\"-bad\",\"role\":\"admin\",\"status\":\"active\","
        "\"serial\":\"01\",\"not_before\":\"2024-01-01T00:00:00Z\","
        "\"not_after\":\"2025-01-01T00:00:00Z\",\"enrolled_at\":\"2024-01-01T00:00:00Z\","
        "\"networks\":[]}]}",
        "{\"version\":1,\"peers\":[{\"name\":\"ok\",\"role\":\"king\",\"status\":\"active\","
        "\"serial\":\"01\",\"not_before\":\"2024-01-01T00:00:00Z\","
        "\"not_after\":\"2025-01-01T00:00:00Z\",\"enrolled_at\":\"2024-01-01T00:00:00Z\","
        "\"networks\":[]}]}",
        "{\"version\":1,\"peers\":[{\"name\":\"ok\",\"role\":\"admin\",\"status\":\"active\","
        "\"serial\":\"01\",\"not_before\":\"yesterday\","
        "\"not_after\":\"2025-01-01T00:00:00Z\",\"enrolled_at\":\"2024-01-01T00:00:00Z\","
        "\"networks\":[]}]}",
        "{\"version\":1,\"peers\":[{\"name\":\"ok\",\"role\":\"admin\",\"status\":\"active\","
        "\"serial\":\"01\",\"not_before\":\"2024-01-01T00:00:00Z\","
        "\"not_after\":\"2025-01-01T00:00:00Z\",\"enrolled_at\":\"2024-01-01T00:00:00Z\","
        "\"networks\":[7]}]}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct registry *reg = NULL;
        char err[256] = "";
        int rc = registry_parse(bad[i], strlen(bad[i]), &reg, err, sizeof(err));
        if (rc != -EBADMSG)
            fprintf(stderr, "case %zu: expected -EBADMSG, got %d\n", i, rc);
        CU_ASSERT_EQUAL(rc, -EBADMSG);
        CU_ASSERT_PTR_NULL(reg);
        CU_ASSERT_TRUE(err[0] != '\0');
    }
}

/* A full disk, simulated with RLIMIT_FSIZE (works as root too): the write
 * fails, the old file is intact and no temp file is left behind. */
static void test_atomic_write_keeps_old(void)
{
    char path[300], sub[256], *text = NULL, big[4096];
    struct rlimit old, small = {.rlim_cur = 64, .rlim_max = RLIM_INFINITY};
    struct dirent *de;
    DIR *d;
    int rc, entries = 0;

    snprintf(sub, sizeof(sub), "%s/full", dir);
    snprintf(path, sizeof(path), "%s/file", sub);
    EXPECT_INT(fs_mkdir(sub, 0755), 0);
    EXPECT_INT(fs_write_atomic(path, "old\n", 4, 0644), 0);
    memset(big, 'x', sizeof(big));
    signal(SIGXFSZ, SIG_IGN);
    getrlimit(RLIMIT_FSIZE, &old);
    small.rlim_max = old.rlim_max;
    setrlimit(RLIMIT_FSIZE, &small);
    rc = fs_write_atomic(path, big, sizeof(big), 0644);
    setrlimit(RLIMIT_FSIZE, &old);
    EXPECT_INT(rc, -EFBIG);
    EXPECT_INT(fs_read_file(path, 100, &text, NULL), 0);
    EXPECT_STR(text, "old\n");
    free(text);
    d = opendir(sub);
    CU_ASSERT_PTR_NOT_NULL_FATAL(d);
    while ((de = readdir(d)))
        if (de->d_name[0] != '.')
            entries++;
    closedir(d);
    EXPECT_INT(entries, 1);
}

static void test_names(void)
{
    CU_ASSERT_TRUE(peer_name_valid("spoke-1.branch_a"));
    CU_ASSERT_FALSE(peer_name_valid(""));
    CU_ASSERT_FALSE(peer_name_valid("-x"));
    CU_ASSERT_FALSE(peer_name_valid("a/b"));
    CU_ASSERT_FALSE(peer_name_valid("a b"));
    CU_ASSERT_FALSE(peer_name_valid(
        "a123456789012345678901234567890123456789012345678901234567890123"));
}

static void test_time(void)
{
    int64_t t = 0;
    char buf[32];

    EXPECT_INT(time_parse_utc("2024-02-29T12:34:56Z", &t), 0);
    EXPECT_INT(t, 1709210096);
    time_format_utc(t, buf, sizeof(buf));
    EXPECT_STR(buf, "2024-02-29T12:34:56Z");
    EXPECT_INT(time_parse_utc("2024-13-01T00:00:00Z", &t), -EINVAL);
    EXPECT_INT(time_parse_utc("2024-01-01 00:00:00", &t), -EINVAL);
}

/* The daemon's index: the same answers as the scan, also after an add. */
static void test_serial_index(void)
{
    struct registry *reg = NULL;
    char name[32], serial[32];
    const struct peer *q;
    size_t wrong = 0;

    registry_new(&reg);
    EXPECT_INT(registry_index(reg), 0); /* empty */
    CU_ASSERT_PTR_NULL(registry_find_serial(reg, "01"));
    /* Serials out of order, of different lengths. */
    for (unsigned i = 0; i < 1000; i++) {
        struct peer p;
        snprintf(name, sizeof(name), "peer%u", i);
        snprintf(serial, sizeof(serial), "%x", (i * 7919u) % 100003u + 1);
        p = sample(name, serial);
        EXPECT_INT(registry_add(reg, &p), 0);
    }
    EXPECT_INT(registry_index(reg), 0);
    for (unsigned i = 0; i < 1000; i++) {
        snprintf(name, sizeof(name), "peer%u", i);
        snprintf(serial, sizeof(serial), "%x", (i * 7919u) % 100003u + 1);
        q = registry_find_serial(reg, serial);
        if (!q || strcmp(q->name, name) != 0)
            wrong++;
    }
    EXPECT_INT(wrong, 0);
    CU_ASSERT_PTR_NULL(registry_find_serial(reg, "0"));
    CU_ASSERT_PTR_NULL(registry_find_serial(reg, "fffffff"));
    CU_ASSERT_PTR_NULL(registry_find_serial(reg, ""));
    /* Revocation changes no serial: the index still answers. */
    EXPECT_INT(registry_revoke(reg, "peer5", PEER_REVOKED, NULL, 1700000500), 0);
    snprintf(serial, sizeof(serial), "%x", (5 * 7919u) % 100003u + 1);
    q = registry_find_serial(reg, serial);
    CU_ASSERT_PTR_NOT_NULL_FATAL(q);
    EXPECT_INT(q->status, PEER_REVOKED);
    /* An add after indexing: found all the same (the scan takes over). */
    {
        struct peer p = sample("late", "abcdef01");
        EXPECT_INT(registry_add(reg, &p), 0);
    }
    q = registry_find_serial(reg, "abcdef01");
    CU_ASSERT_PTR_NOT_NULL_FATAL(q);
    EXPECT_STR(q->name, "late");
    EXPECT_INT(registry_index(reg), 0);
    q = registry_find_serial(reg, "abcdef01");
    CU_ASSERT_PTR_NOT_NULL_FATAL(q);
    EXPECT_STR(q->name, "late");
    registry_free(reg);
}

static const struct cu_test tests[] = {
    {"serial index", test_serial_index},
    {"save and load", test_roundtrip},
    {"duplicates, revocation, re-enrollment", test_duplicates_and_revoke},
    {"garbage refused", test_garbage_refused},
    {"atomic write keeps the old file", test_atomic_write_keeps_old},
    {"peer names", test_names},
    {"RFC 3339 times", test_time},
};

int main(void)
{
    int rc;
    char cmd[300];

    if (!mkdtemp(dir))
        return 1;
    rc = cu_run("registry", tests, sizeof(tests) / sizeof(tests[0]));
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "cannot remove %s\n", dir);
    return rc;
}
