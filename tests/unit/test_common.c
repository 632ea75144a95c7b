/* test_common.c: lc_grow, the doubling growth of buffers filled piece by piece. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lc_common.h"
#include "lc_log.h"

static void test_grow_doubles_from_first(void **state)
{
    (void)state;
    size_t cap = 0;
    char *b = lc_grow(NULL, &cap, 10, 16);
    assert_non_null(b);
    assert_int_equal(cap, 16);
    memcpy(b, "0123456789", 10);
    /* Big enough already: the same buffer, the same capacity. */
    assert_ptr_equal(lc_grow(b, &cap, 16, 16), b);
    assert_int_equal(cap, 16);
    /* Past it: doubled until it fits; the contents kept. */
    b = lc_grow(b, &cap, 40, 16);
    assert_non_null(b);
    assert_int_equal(cap, 64);
    assert_memory_equal(b, "0123456789", 10);
    free(b);
}

/* A rate-limited log site: the first event at once, then one per interval with the count of
 * those it did not log. */
static void test_log_limit(void **state)
{
    (void)state;
    static lc_log_limit_t limit = LC_LOG_LIMIT_INIT;
    unsigned long long suppressed = 99;
    assert_int_equal(lc_log_limit_take(&limit, 50, &suppressed), 1);
    assert_int_equal(suppressed, 0);
    for (int i = 0; i < 1000; i++)
        assert_int_equal(lc_log_limit_take(&limit, 50, &suppressed), 0);
    struct timespec pause = {0, 60 * 1000 * 1000};
    nanosleep(&pause, NULL);
    assert_int_equal(lc_log_limit_take(&limit, 50, &suppressed), 1);
    assert_int_equal(suppressed, 1000);
    assert_int_equal(lc_log_limit_take(&limit, 50, &suppressed), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_grow_doubles_from_first),
        cmocka_unit_test(test_log_limit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
