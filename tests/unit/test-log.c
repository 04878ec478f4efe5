/* log.c: every message is one line, whatever bytes a peer put into it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include "cunit-main.h"
#include "log.h"

static char out[1024];

static const char *esc(const char *s)
{
    log_escape(s, strlen(s), out, sizeof(out));
    return out;
}

static void test_escape_controls(void)
{
    EXPECT_STR(esc("plain text: CN=spoke1,O=Example"), "plain text: CN=spoke1,O=Example");
    EXPECT_STR(esc("a\nb"), "a\\x0ab");
    EXPECT_STR(esc("a\r\nb"), "a\\x0d\\x0ab");
    EXPECT_STR(esc("tab\there"), "tab\\x09here");
    EXPECT_STR(esc("\x1b[31mred"), "\\x1b[31mred");
    EXPECT_STR(esc("del\x7f"), "del\\x7f");
    /* A backslash is doubled: "\x0a" typed by a peer stays apart from an
     * escaped newline. */
    EXPECT_STR(esc("back\\x0aslash"), "back\\\\x0aslash");
}

static void test_escape_utf8(void)
{
    /* Well-formed UTF-8 passes (names in certificates are UTF8String). */
    EXPECT_STR(esc("CN=J\xc3\xbcrgen \xe2\x82\xac \xf0\x9f\x94\x91"),
               "CN=J\xc3\xbcrgen \xe2\x82\xac \xf0\x9f\x94\x91");
    /* Bytes that are not UTF-8, overlong forms, surrogates, a cut sequence. */
    EXPECT_STR(esc("x\xff"), "x\\xff");
    EXPECT_STR(esc("\xc0\x8a"), "\\xc0\\x8a");
    EXPECT_STR(esc("\xe0\x80\x8a"), "\\xe0\\x80\\x8a");
    EXPECT_STR(esc("\xed\xa0\x80"), "\\xed\\xa0\\x80");
    EXPECT_STR(esc("end\xe2\x82"), "end\\xe2\\x82");
    /* NEL, LINE SEPARATOR, RIGHT-TO-LEFT OVERRIDE: line breaks or reorderings
     * to some viewers. */
    EXPECT_STR(esc("a\xc2\x85" "b"), "a\\xc2\\x85b");
    EXPECT_STR(esc("a\xe2\x80\xa8" "b"), "a\\xe2\\x80\\xa8b");
    EXPECT_STR(esc("a\xe2\x80\xae" "b"), "a\\xe2\\x80\\xaeb");
}

static void test_escape_lengths(void)
{
    char small[8];
    const char *s = "ab\ncd";

    /* As snprintf: the whole length is returned, the output is cut and ends
     * in a NUL. */
    EXPECT_INT(log_escape(s, strlen(s), small, sizeof(small)), 8);
    EXPECT_INT(strlen(small), 7);
    EXPECT_INT(log_escape("\n\n", 2, NULL, 0), 8);
    /* Embedded NULs in the length given are escaped too. */
    EXPECT_INT(log_escape("a\0b", 3, out, sizeof(out)), 6);
    EXPECT_STR(out, "a\\x00b");
}

/* What the log functions write to stderr while fn runs. */
static char *capture(void (*fn)(void))
{
    char path[] = "/tmp/mtlsgw-test-log-XXXXXX";
    int fd = mkstemp(path), saved = dup(2);
    char *text = calloc(1, 65536);
    FILE *f;

    CU_ASSERT_FATAL(fd >= 0 && saved >= 0 && text != NULL);
    fflush(stderr);
    dup2(fd, 2);
    fn();
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    f = fdopen(fd, "r");
    rewind(f);
    fread(text, 1, 65535, f);
    fclose(f);
    unlink(path);
    return text;
}

static void forged(void)
{
    log_open("mtlsgwd", LOG_TO_STDERR, false);
    log_set_level(LOG_INFO);
    log_info("management peer ? serial %s from %s: refused (%s): %s [%s]", "1f",
             "192.0.2.1:4000", "unknown-issuer", "unknown issuer",
             "CN=x\nmtlsgwd[1]: peer admin accepted");
}

static void test_forged_line(void)
{
    char *text = capture(forged);

    EXPECT_STR(text, "mtlsgwd: management peer ? serial 1f from 192.0.2.1:4000: refused "
                     "(unknown-issuer): unknown issuer [CN=x\\x0amtlsgwd[1]: peer admin "
                     "accepted]\n");
    free(text);
}

static void long_message(void)
{
    char *big = malloc(5001);

    memset(big, 'a', 5000);
    big[5000] = '\0';
    big[2500] = '\n';
    log_err("%s", big);
    free(big);
}

static void test_long_message(void)
{
    char *text = capture(long_message);
    char *nl = strchr(text, '\n');

    /* Longer than the stack buffers: still whole, still one line. */
    CU_ASSERT_PTR_NOT_NULL(nl);
    if (nl) {
        EXPECT_INT(nl - text, (long long)strlen("mtlsgwd: ") + 4999 + 4);
        EXPECT_INT(nl[1], '\0');
    }
    free(text);
}

static void own_lines(void)
{
    log_lines(LOG_ERR, "/etc/mtlsgw/mtlsgwd.conf has errors; keeping the running config:",
              "mtlsgwd.conf:3: unknown key 'x'\nmtlsgwd.conf:9: bad number 'y\x1b'\n");
    log_debug("not shown: debug is off");
}

static void test_log_lines(void)
{
    char *text = capture(own_lines);

    EXPECT_STR(text, "mtlsgwd: /etc/mtlsgw/mtlsgwd.conf has errors; keeping the running "
                     "config:\n"
                     "mtlsgwd:   mtlsgwd.conf:3: unknown key 'x'\n"
                     "mtlsgwd:   mtlsgwd.conf:9: bad number 'y\\x1b'\n");
    free(text);
}

static const struct cu_test tests[] = {
    {"control bytes and backslash are escaped", test_escape_controls},
    {"UTF-8 passes, what is not UTF-8 or unsafe is escaped", test_escape_utf8},
    {"lengths as snprintf", test_escape_lengths},
    {"a newline in a subject cannot forge a line", test_forged_line},
    {"a long message stays whole and one line", test_long_message},
    {"the daemon's own lines go one by one", test_log_lines},
};

CU_MAIN("log", tests)
