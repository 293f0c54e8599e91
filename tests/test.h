/* test.h: the smallest test framework that does the job.
 *
 *   TEST(name) { CHECK(x == 1); CHECK_EQ_INT(a, b); CHECK_STR(a, b); }
 *   int main(void) { RUN(name); return TEST_REPORT(); }
 *
 * A failed CHECK prints file:line and the expression, marks the test failed and continues.
 * TEST_REPORT prints "N passed, N failed" and returns the exit status for ctest. */
#ifndef PULSE_TEST_H
#define PULSE_TEST_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int test_failed_checks;
static int test_passed;
static int test_failed;

#define TEST(name) static void test_##name(void)

#define RUN(name)                                                                                  \
    do {                                                                                           \
        int before_ = test_failed_checks;                                                          \
        test_##name();                                                                             \
        if (test_failed_checks == before_) {                                                       \
            test_passed++;                                                                         \
            printf("ok   %s\n", #name);                                                            \
        } else {                                                                                   \
            test_failed++;                                                                         \
            printf("FAIL %s\n", #name);                                                            \
        }                                                                                          \
        fflush(stdout);                                                                            \
    } while (0)

#define CHECK(expr)                                                                                \
    do {                                                                                           \
        if (!(expr)) {                                                                             \
            test_failed_checks++;                                                                  \
            fprintf(stderr, "%s:%d: CHECK(%s) failed\n", __FILE__, __LINE__, #expr);               \
        }                                                                                          \
    } while (0)

#define CHECK_EQ_INT(a, b)                                                                         \
    do {                                                                                           \
        long long a_ = (long long)(a), b_ = (long long)(b);                                        \
        if (a_ != b_) {                                                                            \
            test_failed_checks++;                                                                  \
            fprintf(stderr, "%s:%d: %s == %s failed: %lld != %lld\n", __FILE__, __LINE__, #a, #b,  \
                    a_, b_);                                                                       \
        }                                                                                          \
    } while (0)

#define CHECK_STR(a, b)                                                                            \
    do {                                                                                           \
        const char *a_ = (a), *b_ = (b);                                                           \
        if (!a_ || !b_ || strcmp(a_, b_) != 0) {                                                   \
            test_failed_checks++;                                                                  \
            fprintf(stderr, "%s:%d: %s == %s failed: \"%s\" != \"%s\"\n", __FILE__, __LINE__, #a,  \
                    #b, a_ ? a_ : "(null)", b_ ? b_ : "(null)");                                   \
        }                                                                                          \
    } while (0)

#define TEST_REPORT()                                                                              \
    (printf("%d passed, %d failed\n", test_passed, test_failed), test_failed ? 1 : 0)

/* For integration tests: the service URLs, or skip loudly (exit 1: a missing service is a
 * failure of the test command, never a silent pass). */
static inline const char *test_env(const char *name)
{
    const char *v = getenv(name);
    if (!v || !*v) {
        fprintf(stderr, "%s is not set: run through `make test`\n", name);
        exit(1);
    }
    return v;
}

#endif
