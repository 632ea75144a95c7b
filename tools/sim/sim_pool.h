/* sim_pool.h: a fixed set of keep-alive HTTP/1.1 connections (libcurl multi, one reused easy
 * handle per connection) that sends a list of pre-built POST bodies, paced by a token bucket.
 * Owns the transport concerns: keep-alive, pacing, Retry-After pauses, timeouts, and when to send
 * a job again (Retry-After or exponential backoff). What a reply means, and so whether a job must
 * be sent again, is the caller's business (sim_devices for registration, sim_load for readings). */
#ifndef SIM_POOL_H
#define SIM_POOL_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include "lc_common.h"

typedef struct sim_pool sim_pool_t;

/* One request: a POST body (borrowed, must outlive the run) carrying `units` readings. */
typedef struct {
    const char *body;
    size_t body_len;
    uint32_t units;
} sim_job_t;

/* What came back for one job. body is borrowed for the duration of the on_reply call. */
typedef struct {
    long status;       /* HTTP status; 0 when no response arrived */
    const char *error; /* transport error text when status == 0, else NULL */
    const char *body;  /* response body (NUL-terminated), possibly empty */
    size_t body_len;
    uint64_t latency_us; /* request sent to response complete */
} sim_reply_t;

typedef struct {
    const char *path; /* appended to the base URL, e.g. "/v1/data" */
    const char *content_type;
    const char *bearer; /* Authorization: Bearer <bearer>; NULL for none */
    double rate;        /* units per second; 0 = unpaced */
    double duration_s;  /* stop dispatching after this long; 0 = until jobs run out */
    const volatile sig_atomic_t *stop; /* set by a signal handler: stop dispatching, drain */
    /* How long after the last new job is dispatched (or the duration passes) jobs that on_reply
     * asked to send again may still go out. Retries are not paced by `rate` (they are extra
     * requests) but use at most half the connections while new jobs are still going out, and
     * wait out a connection's pause after backpressure or an error like any request. */
    double retry_for_s;
    void *ctx;
    /* attempt: 0 for the first send of a job, n for its n-th retry. May be NULL. */
    void (*on_send)(void *ctx, size_t job, unsigned attempt);
    /* Once per sent job. Returns 1 to send the job again (after the Retry-After the reply gave,
     * else after a backoff doubling from 200 ms to 2 s), 0 when the job is done. */
    int (*on_reply)(void *ctx, size_t job, const sim_reply_t *r);
    void (*on_tick)(void *ctx, double elapsed_s); /* ~1/s; may be NULL */
} sim_pool_run_t;

/* base_url: "http://host:port" or "https://host:port" (no trailing '/'); ca_file: PEM CA
 * certificates that https peers are verified against (NULL or "": the system's). NULL on error
 * (logged). */
sim_pool_t *sim_pool_new(const char *base_url, unsigned connections, double timeout_s,
                         const char *ca_file);
void sim_pool_destroy(sim_pool_t **self_p);

/* Sends jobs in order until all are sent, the duration passes or *stop is set, then sends the
 * retries on_reply asked for until none is left or retry_for_s has passed (none after *stop),
 * and waits for every reply. *elapsed_s receives the time from the first send to the last reply.
 * Returns 0 or LC_ERR_NOMEM / LC_ERR_INVALID (libcurl refused the setup). */
int sim_pool_run(sim_pool_t *self, const sim_pool_run_t *run, const sim_job_t *jobs, size_t n_jobs,
                 double *elapsed_s) LC_WUR;

#endif
