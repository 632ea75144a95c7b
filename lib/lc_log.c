/* lc_log.c: key=value logging to stderr. See lc_log.h. */
#include "lc_log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static char s_service[32] = "lcore";
static lc_log_level_t s_min_level = LC_LOG_INFO;
static const char *const s_level_names[] = {"debug", "info", "warn", "error"};

void lc_log_init(const char *service, lc_log_level_t min_level)
{
    snprintf(s_service, sizeof s_service, "%s", service);
    s_min_level = min_level;
}

int lc_log_level_parse(const char *name, lc_log_level_t *out)
{
    for (int i = 0; i < 4; i++) {
        if (strcmp(name, s_level_names[i]) == 0) {
            *out = (lc_log_level_t)i;
            return 0;
        }
    }
    return -1;
}

void lc_log(lc_log_level_t level, const char *event, const char *fmt, ...)
{
    if (level < s_min_level)
        return;
    char line[2048];
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    int n = snprintf(line, sizeof line,
                     "ts=%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ level=%s svc=%s event=%s",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                     ts.tv_nsec / 1000000, s_level_names[level], s_service, event);
    if (fmt && *fmt && n > 0 && (size_t)n < sizeof line - 2) {
        line[n++] = ' ';
        va_list ap;
        va_start(ap, fmt);
        int m = vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
        va_end(ap);
        if (m > 0)
            n += m;
    }
    if (n < 0)
        return;
    if ((size_t)n > sizeof line - 2)
        n = (int)sizeof line - 2;
    line[n++] = '\n';
    /* One write per line keeps lines whole when threads log at once. */
    ssize_t w = write(STDERR_FILENO, line, (size_t)n);
    (void)w;
}

int lc_log_limit_take(lc_log_limit_t *limit, unsigned interval_ms, unsigned long long *suppressed)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    unsigned long long now =
        (unsigned long long)ts.tv_sec * 1000000ull + (unsigned long long)ts.tv_nsec / 1000u;
    unsigned long long next = atomic_load(&limit->next_us);
    if (now < next || !atomic_compare_exchange_strong(
                          &limit->next_us, &next, now + (unsigned long long)interval_ms * 1000u)) {
        atomic_fetch_add(&limit->suppressed, 1);
        return 0;
    }
    *suppressed = atomic_exchange(&limit->suppressed, 0);
    return 1;
}
