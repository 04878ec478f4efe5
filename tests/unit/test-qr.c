/* QR codes (gateway/core/qr.c): the terminal text and the SVG of a join
 * line are drawn back into a bitmap (PBM) and decoded by zbarimg, a decoder
 * that shares nothing with libqrencode. Skips (77) without zbarimg. */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cunit-main.h"
#include "qr.h"

#define JOIN                                                                                      \
    "mtlsgw join https://gw.example:8443 --name spoke-1 --code ABCD-EFGH-JKLM-NPQR-STUV "         \
    "--fingerprint sha256:0f:1e:2d:3c:4b:5a:69:78:87:96:a5:b4:c3:d2:e1:f0:0f:1e:2d:3c:"           \
    "4b:5a:69:78:87:96:a5:b4:c3:d2:e1:f0"
#define MAXN 200
#define SCALE 4

static unsigned char bits[MAXN][MAXN]; /* 1 = dark */
static int rows, cols;
static char tmpdir[] = "/tmp/mtlsgw-qr.XXXXXX";

/* Write bits as a PBM, SCALE pixels a module, and decode it. */
static int decode(char *got, size_t len)
{
    char pbm[256], cmd[512];
    FILE *f;
    size_t n;

    snprintf(pbm, sizeof(pbm), "%s/code.pbm", tmpdir);
    f = fopen(pbm, "w");
    if (!f)
        return -errno;
    fprintf(f, "P1\n%d %d\n", cols * SCALE, rows * SCALE);
    for (int y = 0; y < rows * SCALE; y++) {
        for (int x = 0; x < cols * SCALE; x++)
            fputs(bits[y / SCALE][x / SCALE] ? "1 " : "0 ", f);
        fputc('\n', f);
    }
    fclose(f);
    snprintf(cmd, sizeof(cmd), "zbarimg -q --raw '%s' 2>/dev/null", pbm);
    f = popen(cmd, "r");
    if (!f)
        return -errno;
    n = fread(got, 1, len - 1, f);
    got[n] = '\0';
    pclose(f);
    while (n && got[n - 1] == '\n')
        got[--n] = '\0';
    return 0;
}

static void test_text_decodes(void)
{
    char *t = NULL, got[1024];
    const char *p;

    EXPECT_INT(qr_text(JOIN, &t), 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(t);
    memset(bits, 0, sizeof(bits));
    rows = cols = 0;
    /* Each line: two module rows; a cell's glyph says which half is light. */
    for (p = t; *p; rows += 2) {
        int x = 0;
        for (; *p && *p != '\n' && x < MAXN; x++) {
            bool top_light = false, bottom_light = false;
            if (*p == ' ') {
                p++;
            } else if ((unsigned char)p[0] == 0xe2 && (unsigned char)p[1] == 0x96) {
                top_light = (unsigned char)p[2] == 0x80 || (unsigned char)p[2] == 0x88;
                bottom_light = (unsigned char)p[2] == 0x84 || (unsigned char)p[2] == 0x88;
                p += 3;
            } else {
                CU_FAIL_FATAL("a character other than a space or a half block");
            }
            bits[rows][x] = !top_light;
            bits[rows + 1][x] = !bottom_light;
        }
        if (cols && x != cols)
            CU_FAIL("lines of different widths");
        cols = x;
        if (*p == '\n')
            p++;
    }
    EXPECT_INT(decode(got, sizeof(got)), 0);
    EXPECT_STR(got, JOIN);
    free(t);
}

static void test_svg_decodes(void)
{
    char *s = NULL, got[1024];
    const char *p;
    int n = 0, x, y, run, back;

    EXPECT_INT(qr_svg(JOIN, &s), 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    CU_ASSERT_EQUAL(strncmp(s, "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 ", 53), 0);
    CU_ASSERT_PTR_NULL(strstr(s, "script"));
    CU_ASSERT_PTR_NULL(strstr(s, "style"));
    CU_ASSERT_EQUAL(sscanf(s + 53, "%d", &n), 1);
    CU_ASSERT_FATAL(n > 20 && n < MAXN);
    memset(bits, 0, sizeof(bits));
    rows = cols = n;
    /* The path is runs of dark modules: "Mx yhRUNv1h-RUNz". */
    p = strstr(s, " d=\"");
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    for (p += 4; *p == 'M'; p = strchr(p, 'z') + 1) {
        CU_ASSERT_FATAL(sscanf(p, "M%d %dh%dv1h-%dz", &x, &y, &run, &back) == 4);
        CU_ASSERT_EQUAL(run, back);
        CU_ASSERT_FATAL(x >= 4 && y >= 4 && x + run <= n - 4 && y < n - 4);
        for (int i = 0; i < run; i++)
            bits[y][x + i] = 1;
    }
    CU_ASSERT_EQUAL(strcmp(p, "\"/></svg>\n"), 0);
    EXPECT_INT(decode(got, sizeof(got)), 0);
    EXPECT_STR(got, JOIN);
    free(s);
}

static void test_bad_input(void)
{
    char *s = NULL, *big = malloc(8000);

    EXPECT_INT(qr_svg("", &s), -EINVAL);
    CU_ASSERT_PTR_NULL(s);
    CU_ASSERT_PTR_NOT_NULL_FATAL(big);
    memset(big, 'x', 7999);
    big[7999] = '\0';
    EXPECT_INT(qr_text(big, &s), -EINVAL);
    CU_ASSERT_PTR_NULL(s);
    free(big);
}

static const struct cu_test tests[] = {
    {"the terminal text decodes to the join line", test_text_decodes},
    {"the SVG decodes to the join line", test_svg_decodes},
    {"empty and too long texts are refused", test_bad_input},
};

int main(void)
{
    char dir[300];
    int rc;

    if (system("command -v zbarimg >/dev/null 2>&1") != 0) {
        printf("1..0 # SKIP zbarimg (zbar-tools) is not installed: nothing to decode with\n");
        return 77;
    }
    if (!mkdtemp(tmpdir))
        return 1;
    rc = cu_run("qr", tests, sizeof(tests) / sizeof(tests[0]));
    snprintf(dir, sizeof(dir), "rm -rf '%s'", tmpdir);
    if (system(dir) != 0)
        rc = 1;
    return rc;
}
