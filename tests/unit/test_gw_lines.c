/* test_gw_lines.c: the streaming request batch line splitter. Whatever chunks the body comes
 * in, the same lines are reported (trailing CR and spaces trimmed, empty lines skipped); a line
 * longer than the buffer is reported by its length only, unless only trailing spaces overflow;
 * a callback that says stop is not called again. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "gw_lines.h"

typedef struct {
    char out[512]; /* lines joined with '|', an overlong one as <len> */
    int calls, stop_after;
} s_sink_t;

static int s_collect(void *arg, const char *line, size_t len)
{
    s_sink_t *s = arg;
    size_t at = strlen(s->out);
    if (line)
        snprintf(s->out + at, sizeof s->out - at, "%.*s|", (int)len, line);
    else
        snprintf(s->out + at, sizeof s->out - at, "<%zu>|", len);
    return ++s->calls == s->stop_after;
}

/* Splits body fed in two pieces cut at `cut`, then byte by byte. */
static void s_split(const char *body, size_t max_line, size_t cut, int bytewise, s_sink_t *sink)
{
    char buf[64];
    gw_lines_t s;
    gw_lines_init(&s, buf, max_line);
    size_t n = strlen(body);
    if (bytewise) {
        for (size_t i = 0; i < n; i++)
            gw_lines_feed(&s, body + i, 1, s_collect, sink);
    } else {
        gw_lines_feed(&s, body, cut, s_collect, sink);
        gw_lines_feed(&s, body + cut, n - cut, s_collect, sink);
    }
    gw_lines_end(&s, s_collect, sink);
}

/* body split at every cut, and byte by byte, gives want. */
static void s_check_all_cuts(const char *body, size_t max_line, const char *want)
{
    for (size_t cut = 0; cut <= strlen(body); cut++) {
        s_sink_t sink = {0};
        s_split(body, max_line, cut, 0, &sink);
        assert_string_equal(sink.out, want);
    }
    s_sink_t sink = {0};
    s_split(body, max_line, 0, 1, &sink);
    assert_string_equal(sink.out, want);
}

static void test_same_lines_whatever_the_chunks(void **state)
{
    (void)state;
    s_check_all_cuts("a.b.c\r\n  \n\nbb  \r\n x \n\r\nccc", 16, "a.b.c|bb| x|ccc|");
}

static void test_overlong_lines_by_length(void **state)
{
    (void)state;
    /* max 4: "abcdef" is 6 long; "abcd" with 5 trailing spaces fits; "ab  cd" does not. */
    s_check_all_cuts("abcdef\nabcd     \nab  cd\r\nxy", 4, "<6>|abcd|<6>|xy|");
}

static void test_stop_is_final(void **state)
{
    (void)state;
    s_sink_t sink = {.stop_after = 2};
    char buf[16];
    gw_lines_t s;
    gw_lines_init(&s, buf, sizeof buf);
    assert_int_equal(gw_lines_feed(&s, "one\ntwo\nthree\n", 14, s_collect, &sink), 1);
    assert_int_equal(gw_lines_feed(&s, "four\n", 5, s_collect, &sink), 0);
    assert_int_equal(gw_lines_end(&s, s_collect, &sink), 0);
    assert_string_equal(sink.out, "one|two|");
}

static void test_empty_body(void **state)
{
    (void)state;
    s_sink_t sink = {0};
    s_split(" \r\n\n  ", 8, 2, 0, &sink);
    assert_int_equal(sink.calls, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_same_lines_whatever_the_chunks),
        cmocka_unit_test(test_overlong_lines_by_length),
        cmocka_unit_test(test_stop_is_final),
        cmocka_unit_test(test_empty_body),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
