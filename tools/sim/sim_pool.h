/* sim_pool.h: a fixed set of keep-alive HTTP/1.1 connections (libcurl multi, one reused easy
 * handle per connection) that sends a list of pre-built POST bodies, paced by a token bucket.
 * Owns the transport concerns: keep-alive, pacing, Retry-After pauses, timeouts. What a reply
 * means is the caller's business (sim_devices for registration, sim_load for readings). */
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
    void *ctx;
    void (*on_send)(void *ctx, size_t job);                        /* may be NULL */
    void (*on_reply)(void *ctx, size_t job, const sim_reply_t *r); /* once per sent job */
    void (*on_tick)(void *ctx, double elapsed_s);                  /* ~1/s; may be NULL */
} sim_pool_run_t;

/* base_url: "http://host:port" (no trailing '/'). NULL on error (logged). */
sim_pool_t *sim_pool_new(const char *base_url, unsigned connections, double timeout_s);
void sim_pool_destroy(sim_pool_t **self_p);

/* Sends jobs in order until all are sent, the duration passes or *stop is set, then waits for
 * every reply. *elapsed_s receives the time from the first send to the last reply.
 * Returns 0 or LC_ERR_NOMEM / LC_ERR_INVALID (libcurl refused the setup). */
int sim_pool_run(sim_pool_t *self, const sim_pool_run_t *run, const sim_job_t *jobs, size_t n_jobs,
                 double *elapsed_s) LC_WUR;

#endif
