/* Shared main() for the CUnit suites: run, print failures, exit non-zero. */
#ifndef MTLSGW_CUNIT_MAIN_H
#define MTLSGW_CUNIT_MAIN_H

#include <CUnit/Basic.h>
#include <stdio.h>

struct cu_test {
    const char *name;
    void (*fn)(void);
};

static inline int cu_run(const char *suite_name, const struct cu_test *tests, size_t n)
{
    CU_pSuite suite;
    unsigned failed;

    if (CU_initialize_registry() != CUE_SUCCESS)
        return 1;
    suite = CU_add_suite(suite_name, NULL, NULL);
    for (size_t i = 0; suite && i < n; i++)
        CU_add_test(suite, tests[i].name, tests[i].fn);
    CU_basic_set_mode(CU_BRM_VERBOSE);
    CU_basic_run_tests();
    failed = CU_get_number_of_tests_failed() + CU_get_number_of_failures();
    CU_cleanup_registry();
    return failed ? 1 : 0;
}

#define CU_MAIN(suite, tests)                                                                     \
    int main(void)                                                                                \
    {                                                                                             \
        return cu_run(suite, tests, sizeof(tests) / sizeof(tests[0]));                            \
    }

/* Equality with expected and got in the failure message. */
#define EXPECT_INT(got, want)                                                                     \
    do {                                                                                          \
        long long g_ = (long long)(got), w_ = (long long)(want);                                  \
        if (g_ != w_)                                                                             \
            fprintf(stderr, "%s:%d: %s: expected %lld, got %lld\n", __FILE__, __LINE__, #got,    \
                    w_, g_);                                                                      \
        CU_ASSERT_EQUAL(g_, w_);                                                                  \
    } while (0)

#define EXPECT_STR(got, want)                                                                     \
    do {                                                                                          \
        const char *g_ = (got), *w_ = (want);                                                     \
        int eq_ = g_ && w_ && strcmp(g_, w_) == 0;                                                \
        if (!eq_)                                                                                 \
            fprintf(stderr, "%s:%d: %s: expected '%s', got '%s'\n", __FILE__, __LINE__, #got,    \
                    w_ ? w_ : "(null)", g_ ? g_ : "(null)");                                      \
        CU_ASSERT_TRUE(eq_);                                                                      \
    } while (0)

#define EXPECT_CONTAINS(hay, needle)                                                              \
    do {                                                                                          \
        const char *h_ = (hay), *n_ = (needle);                                                   \
        int in_ = h_ && strstr(h_, n_) != NULL;                                                   \
        if (!in_)                                                                                 \
            fprintf(stderr, "%s:%d: expected '%s' in '%s'\n", __FILE__, __LINE__, n_,            \
                    h_ ? h_ : "(null)");                                                          \
        CU_ASSERT_TRUE(in_);                                                                      \
    } while (0)

#endif
