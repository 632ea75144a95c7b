/* lc_log.h: one line per event on stderr, key=value, with a level:
 *   ts=2026-11-21T08:00:00.123Z level=info svc=gateway event=listening port=8080
 * Never log secrets or payloads: log key versions, ids and sizes. Thread-safe (one write(2) per
 * line). The service name and the minimum level are set once in main(). */
#ifndef LC_LOG_H
#define LC_LOG_H

typedef enum { LC_LOG_DEBUG = 0, LC_LOG_INFO, LC_LOG_WARN, LC_LOG_ERROR } lc_log_level_t;

void lc_log_init(const char *service, lc_log_level_t min_level);
int lc_log_level_parse(const char *name, lc_log_level_t *out); /* 0 or -1 */

/* event: a short snake_case name; fmt: further key=value pairs (may be NULL). Values with
 * spaces should be quoted by the caller with %s inside "..." or use lc_log_quote(). */
void lc_log(lc_log_level_t level, const char *event, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* A log site that can fire in a loop (a peer repeating a refused message, a stuck transaction
 * checked every tick): its first event is logged at once, then at most one line per interval,
 * which carries suppressed=<events not logged since the last line>. Declare one per site,
 * static, with LC_LOG_LIMIT_INIT. Thread-safe. */
typedef struct {
    _Atomic unsigned long long next_us; /* monotonic µs before which events are only counted */
    _Atomic unsigned long long suppressed;
} lc_log_limit_t;
#define LC_LOG_LIMIT_INIT                                                                          \
    {                                                                                              \
        0, 0                                                                                       \
    }
/* 1 when this event is to be logged (*suppressed: how many were not since the last line). */
int lc_log_limit_take(lc_log_limit_t *limit, unsigned interval_ms, unsigned long long *suppressed);
#define lc_log_limited(limit, interval_ms, level, ev, fmt, ...)                                    \
    do {                                                                                           \
        unsigned long long lc_suppressed_;                                                         \
        if (lc_log_limit_take(limit, interval_ms, &lc_suppressed_))                                \
            lc_log(level, ev, fmt " suppressed=%llu", __VA_ARGS__, lc_suppressed_);                \
    } while (0)

#define lc_debug(ev, ...) lc_log(LC_LOG_DEBUG, ev, __VA_ARGS__)
#define lc_info(ev, ...) lc_log(LC_LOG_INFO, ev, __VA_ARGS__)
#define lc_warn(ev, ...) lc_log(LC_LOG_WARN, ev, __VA_ARGS__)
#define lc_error(ev, ...) lc_log(LC_LOG_ERROR, ev, __VA_ARGS__)

#endif
