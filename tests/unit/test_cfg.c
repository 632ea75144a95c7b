/* Unit tests: the configuration table (defaults, environment, bounds, enums, help, secrets,
 * renamed variables) and the metrics exposition format. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <cmocka.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "lc_cfg.h"
#include "lc_metrics.h"

typedef struct {
    long long port;
    char name[16];
    int flag;
    int mode;
    char token[32];
    char bind[64];
} t_cfg_t;

#define T t_cfg_t
static const lc_cfg_opt_t opts[] = {
    LC_CFG_I("LCT_PORT", T, port, "8080", 1, 65535, "a port"),
    LC_CFG_S("LCT_NAME", T, name, "gw", "a name"),
    LC_CFG_B("LCT_FLAG", T, flag, "false", "a flag"),
    LC_CFG_E("LCT_MODE", T, mode, "auto", "auto|aesni|portable", "a mode"),
    LC_CFG_SECRET("LCT_TOKEN", T, token, "", "a secret"),
    LC_CFG_A("LCT_BIND", T, bind, "127.0.0.1:9101", "a listener"),
};
#undef T

static void s_unset(void)
{
    for (size_t i = 0; i < LC_ARRAY_LEN(opts); i++)
        unsetenv(opts[i].name);
}

static void test_defaults(void **state)
{
    (void)state;
    s_unset();
    t_cfg_t c;
    memset(&c, 0x5a, sizeof c);
    char err[128];
    assert_int_equal(lc_cfg_load(&c, opts, LC_ARRAY_LEN(opts), err, sizeof err), 0);
    assert_int_equal(c.port, 8080);
    assert_string_equal(c.name, "gw");
    assert_int_equal(c.flag, 0);
    assert_int_equal(c.mode, 0);
    assert_string_equal(c.token, "");
    assert_string_equal(c.bind, "127.0.0.1:9101");
}

static void test_environment(void **state)
{
    (void)state;
    s_unset();
    setenv("LCT_PORT", "9000", 1);
    setenv("LCT_NAME", "edge-7", 1);
    setenv("LCT_FLAG", "yes", 1);
    setenv("LCT_MODE", "portable", 1);
    t_cfg_t c;
    char err[128];
    assert_int_equal(lc_cfg_load(&c, opts, LC_ARRAY_LEN(opts), err, sizeof err), 0);
    assert_int_equal(c.port, 9000);
    assert_string_equal(c.name, "edge-7");
    assert_int_equal(c.flag, 1);
    assert_int_equal(c.mode, 2);
    s_unset();
}

static void s_expect_invalid(const char *var, const char *value, const char *reason_part)
{
    s_unset();
    setenv(var, value, 1);
    t_cfg_t c;
    char err[128] = "";
    assert_int_equal(lc_cfg_load(&c, opts, LC_ARRAY_LEN(opts), err, sizeof err), LC_ERR_INVALID);
    assert_non_null(strstr(err, var));
    assert_non_null(strstr(err, reason_part));
    s_unset();
}

static void test_invalid(void **state)
{
    (void)state;
    s_expect_invalid("LCT_PORT", "0", "outside");
    s_expect_invalid("LCT_PORT", "65536", "outside");
    s_expect_invalid("LCT_PORT", "80x", "not an integer");
    s_expect_invalid("LCT_PORT", "", "not an integer");
    s_expect_invalid("LCT_NAME", "a-name-that-is-far-too-long", "longer");
    s_expect_invalid("LCT_FLAG", "maybe", "boolean");
    s_expect_invalid("LCT_MODE", "aes", "one of");
    s_expect_invalid("LCT_MODE", "autox", "one of");
    s_expect_invalid("LCT_BIND", "9101", "IPv4:port or [IPv6]:port");
    s_expect_invalid("LCT_BIND", "localhost:9101", "IPv4:port");
    s_expect_invalid("LCT_BIND", "127.0.0.1:0", "IPv4:port");
    s_expect_invalid("LCT_BIND", "127.0.0.1:65536", "IPv4:port");
    s_expect_invalid("LCT_BIND", "::1:9101", "IPv4:port");
    s_expect_invalid("LCT_BIND", "[::1]", "IPv4:port");
    s_expect_invalid("LCT_BIND", "[127.0.0.1]:80", "IPv4:port");
}

/* Listener addresses: the forms DESIGN allows, parsed to what bind(2) takes. */
static void test_addr_parse(void **state)
{
    (void)state;
    struct sockaddr_storage sa;
    unsigned len = 0;
    assert_int_equal(lc_cfg_addr_parse(&sa, &len, "0.0.0.0:8080"), 0);
    const struct sockaddr_in *a4 = (const struct sockaddr_in *)&sa;
    assert_int_equal(a4->sin_family, AF_INET);
    assert_int_equal(ntohs(a4->sin_port), 8080);
    assert_int_equal(a4->sin_addr.s_addr, htonl(INADDR_ANY));
    assert_int_equal(len, sizeof(struct sockaddr_in));
    assert_int_equal(lc_cfg_addr_parse(&sa, &len, "[::1]:9101"), 0);
    const struct sockaddr_in6 *a6 = (const struct sockaddr_in6 *)&sa;
    assert_int_equal(a6->sin6_family, AF_INET6);
    assert_int_equal(ntohs(a6->sin6_port), 9101);
    assert_memory_equal(&a6->sin6_addr, &in6addr_loopback, sizeof in6addr_loopback);
    assert_int_equal(len, sizeof(struct sockaddr_in6));
    assert_int_equal(lc_cfg_addr_parse(&sa, &len, "[::]:1"), 0);
    assert_int_equal(lc_cfg_addr_parse(&sa, &len, "10.1.2.3:65535"), 0);
    assert_int_equal(lc_cfg_addr_parse(&sa, &len, "10.1.2.3:+80"), LC_ERR_INVALID);
    assert_int_equal(lc_cfg_addr_parse(&sa, &len, ":80"), LC_ERR_INVALID);
}

static void test_help_lists_every_variable(void **state)
{
    (void)state;
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    lc_cfg_help(f, "prog", "summary", opts, LC_ARRAY_LEN(opts));
    fclose(f);
    for (size_t i = 0; i < LC_ARRAY_LEN(opts); i++)
        assert_non_null(strstr(buf, opts[i].name));
    assert_non_null(strstr(buf, "default 8080, range [1, 65535]"));
    assert_non_null(strstr(buf, "one of auto|aesni|portable"));
    free(buf);
}

/* Renamed variables: a table whose rows carry this release's new names. */
typedef struct {
    long long max;
    long long wait_ms;
} t_renamed_cfg_t;

#define T t_renamed_cfg_t
static const lc_cfg_opt_t renamed_opts[] = {
    LC_CFG_I("LCORE_STORE_WRITE_BATCH_MAX", T, max, "500", 1, 5000, "rows"),
    LC_CFG_I("LCORE_STORE_WRITE_BATCH_WAIT_MS", T, wait_ms, "5", 0, 10000, "wait"),
};
#undef T

static const char *const renamed_vars[] = {"LCORE_STORE_WRITE_BATCH_MAX", "LCORE_STORE_BATCH_MAX",
                                           "LCORE_STORE_WRITE_BATCH_WAIT_MS",
                                           "LCORE_STORE_BATCH_WAIT_MS"};

/* Loads renamed_opts with stderr (where lc_log writes) captured: returns lc_cfg_load's result,
 * the log lines in log (malloc'd) and the error text in err. */
static int s_load_renamed(t_renamed_cfg_t *c, char **log, char *err, size_t err_len)
{
    fflush(stderr);
    FILE *tmp = tmpfile();
    assert_non_null(tmp);
    int saved = dup(STDERR_FILENO);
    assert_true(saved >= 0);
    assert_true(dup2(fileno(tmp), STDERR_FILENO) >= 0);
    int rc = lc_cfg_load(c, renamed_opts, LC_ARRAY_LEN(renamed_opts), err, err_len);
    assert_true(dup2(saved, STDERR_FILENO) >= 0);
    close(saved);
    long len = ftell(tmp);
    assert_true(len >= 0);
    *log = calloc(1, (size_t)len + 1);
    assert_non_null(*log);
    rewind(tmp);
    assert_int_equal(fread(*log, 1, (size_t)len, tmp), (size_t)len);
    fclose(tmp);
    return rc;
}

static size_t s_count(const char *haystack, const char *needle)
{
    size_t n = 0;
    for (const char *p = haystack; (p = strstr(p, needle)) != NULL; p += strlen(needle))
        n++;
    return n;
}

static void s_unset_renamed(void)
{
    for (size_t i = 0; i < LC_ARRAY_LEN(renamed_vars); i++)
        unsetenv(renamed_vars[i]);
}

/* An old name alone still sets the variable, with one warning naming both; the new name alone
 * warns about nothing; both set: the new one wins and the warning says the old one is ignored. */
static void test_renamed_variables(void **state)
{
    (void)state;
    t_renamed_cfg_t c;
    char err[128] = "", *log = NULL;

    s_unset_renamed();
    setenv("LCORE_STORE_BATCH_MAX", "42", 1);
    assert_int_equal(s_load_renamed(&c, &log, err, sizeof err), 0);
    assert_int_equal(c.max, 42);
    assert_int_equal(c.wait_ms, 5);
    assert_int_equal(s_count(log, "event=config_renamed"), 1);
    assert_non_null(strstr(
        log, "event=config_renamed old=LCORE_STORE_BATCH_MAX new=LCORE_STORE_WRITE_BATCH_MAX"));
    assert_null(strstr(log, "ignored="));
    free(log);

    s_unset_renamed();
    setenv("LCORE_STORE_WRITE_BATCH_WAIT_MS", "7", 1);
    assert_int_equal(s_load_renamed(&c, &log, err, sizeof err), 0);
    assert_int_equal(c.max, 500);
    assert_int_equal(c.wait_ms, 7);
    assert_string_equal(log, "");
    free(log);

    s_unset_renamed();
    setenv("LCORE_STORE_WRITE_BATCH_MAX", "300", 1);
    setenv("LCORE_STORE_BATCH_MAX", "42", 1);
    assert_int_equal(s_load_renamed(&c, &log, err, sizeof err), 0);
    assert_int_equal(c.max, 300);
    assert_int_equal(s_count(log, "event=config_renamed"), 1);
    assert_non_null(strstr(log, "old=LCORE_STORE_BATCH_MAX new=LCORE_STORE_WRITE_BATCH_MAX "
                                "ignored=LCORE_STORE_BATCH_MAX"));
    free(log);

    /* An invalid value under the old name is reported under the name it was set as. */
    s_unset_renamed();
    setenv("LCORE_STORE_BATCH_WAIT_MS", "soon", 1);
    assert_int_equal(s_load_renamed(&c, &log, err, sizeof err), LC_ERR_INVALID);
    assert_non_null(strstr(err, "LCORE_STORE_BATCH_WAIT_MS: 'soon' is not an integer"));
    free(log);
    s_unset_renamed();
}

static void test_metrics_render(void **state)
{
    (void)state;
    lc_metrics_t *m = lc_metrics_new();
    lc_counter_t *a = lc_metrics_counter(m, "lcore_t_requests_total", "Requests", "code=\"200\"");
    lc_gauge_t *g = lc_metrics_gauge(m, "lcore_t_depth", "Depth", NULL);
    lc_counter_t *b = lc_metrics_counter(m, "lcore_t_requests_total", "Requests", "code=\"500\"");
    static const double buckets[] = {0.1, 1};
    lc_histogram_t *h = lc_metrics_histogram(m, "lcore_t_seconds", "Time", NULL, buckets, 2);
    lc_counter_add(a, 3);
    lc_counter_inc(b);
    lc_gauge_set(g, 2.5);
    lc_histogram_observe(h, 0.05);
    lc_histogram_observe(h, 0.5);
    lc_histogram_observe(h, 5);
    size_t len = 0;
    char *text = lc_metrics_render(m, &len);
    assert_non_null(text);
    assert_int_equal(strlen(text), len);
    /* Series of one name are grouped under one HELP/TYPE, whatever the registration order. */
    const char *want = "# HELP lcore_t_requests_total Requests\n"
                       "# TYPE lcore_t_requests_total counter\n"
                       "lcore_t_requests_total{code=\"200\"} 3\n"
                       "lcore_t_requests_total{code=\"500\"} 1\n"
                       "# HELP lcore_t_depth Depth\n"
                       "# TYPE lcore_t_depth gauge\n"
                       "lcore_t_depth 2.5\n"
                       "# HELP lcore_t_seconds Time\n"
                       "# TYPE lcore_t_seconds histogram\n"
                       "lcore_t_seconds_bucket{le=\"0.1\"} 1\n"
                       "lcore_t_seconds_bucket{le=\"1\"} 2\n"
                       "lcore_t_seconds_bucket{le=\"+Inf\"} 3\n"
                       "lcore_t_seconds_sum 5.5499999999999998\n"
                       "lcore_t_seconds_count 3\n";
    assert_memory_equal(text, want, strlen(want));
    /* Then the process collector, read from /proc: this process has used some CPU, has memory
     * and at least stdin/stdout/stderr open. */
    const char *proc = text + strlen(want);
    double cpu = -1, rss = -1, fds = -1;
    const char *p = strstr(proc, "\nprocess_cpu_seconds_total ");
    assert_non_null(p);
    cpu = strtod(p + strlen("\nprocess_cpu_seconds_total "), NULL);
    assert_non_null(p = strstr(proc, "\nprocess_resident_memory_bytes "));
    rss = strtod(p + strlen("\nprocess_resident_memory_bytes "), NULL);
    assert_non_null(p = strstr(proc, "\nprocess_open_fds "));
    fds = strtod(p + strlen("\nprocess_open_fds "), NULL);
    assert_true(cpu >= 0 && rss > 1e5 && fds >= 3);
    assert_non_null(strstr(proc, "# TYPE process_cpu_seconds_total counter\n"));
    assert_non_null(strstr(proc, "\nprocess_start_time_seconds 1"));
    free(text);
    lc_metrics_destroy(&m);
    assert_null(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),          cmocka_unit_test(test_environment),
        cmocka_unit_test(test_invalid),           cmocka_unit_test(test_help_lists_every_variable),
        cmocka_unit_test(test_metrics_render),    cmocka_unit_test(test_addr_parse),
        cmocka_unit_test(test_renamed_variables),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
