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

#define lc_debug(ev, ...) lc_log(LC_LOG_DEBUG, ev, __VA_ARGS__)
#define lc_info(ev, ...) lc_log(LC_LOG_INFO, ev, __VA_ARGS__)
#define lc_warn(ev, ...) lc_log(LC_LOG_WARN, ev, __VA_ARGS__)
#define lc_error(ev, ...) lc_log(LC_LOG_ERROR, ev, __VA_ARGS__)

#endif
