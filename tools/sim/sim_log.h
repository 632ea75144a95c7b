/* sim_log.h: a log limit for problems a run may meet thousands of times (transport errors,
 * unmatched results, record-id mismatches): the first few are logged in detail, the rest only
 * counted (the summary has the counts). A value each logging module keeps in its own state. */
#ifndef SIM_LOG_H
#define SIM_LOG_H

#define SIM_LOG_MAX 10 /* problems logged one by one through one limit */

typedef struct {
    unsigned logged;
} sim_log_limit_t;

/* 1 when the caller may log this problem. The call after the last one it may logs once that
 * further problems (`what`, e.g. "request problems") are only counted. */
int sim_log_may(sim_log_limit_t *limit, const char *what);

#endif
