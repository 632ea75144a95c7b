/* sim_stats.c: outcome counters, latency histogram, progress and summary. See sim_stats.h.
 * The histogram is log-linear like HdrHistogram: values below 128 us have their own bucket;
 * above, each power of two is split into 64 buckets, so a bucket is at most ~1.6% wide. Memory
 * is fixed (a few KiB) whatever the number of samples. */
#include "sim_stats.h"

#include <stdlib.h>

#include "lc_log.h"

#define SIM_HTTP_CODES 600
#define SIM_HIST_LINEAR 128
#define SIM_HIST_SUB 64
#define SIM_HIST_BUCKETS (SIM_HIST_LINEAR + 57 * SIM_HIST_SUB) /* up to 2^64 us */

typedef struct {
    uint64_t buckets[SIM_HIST_BUCKETS];
    uint64_t samples, max_us;
} hist_t;

struct sim_stats {
    uint64_t sent, accepted, rejected, backpressure, errors, replies, id_mismatch;
    uint64_t retried, unanswered;
    uint64_t by_status[SIM_HTTP_CODES]; /* readings per HTTP status, any outcome */
    hist_t latency;                     /* request -> reply; over MQTT publish -> result */
    int mqtt;
    hist_t puback; /* MQTT: publish -> the broker's PUBACK, per message */
    uint64_t mqtt_counts[SIM_MQTT_COUNT];
    /* progress: values at the previous line */
    double last_elapsed;
    uint64_t last_sent, last_accepted;
};

sim_stats_t *sim_stats_new(int mqtt)
{
    sim_stats_t *self = calloc(1, sizeof(sim_stats_t));
    if (self)
        self->mqtt = mqtt;
    return self;
}

void sim_stats_destroy(sim_stats_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    free(*self_p);
    *self_p = NULL;
}

void sim_stats_sent(sim_stats_t *self, uint64_t readings)
{
    self->sent += readings;
}

void sim_stats_retried(sim_stats_t *self)
{
    self->retried++;
}

void sim_stats_set_unanswered(sim_stats_t *self, uint64_t n)
{
    self->unanswered = n;
}

static int s_is_backpressure(long status)
{
    return status == 429 || status == 503;
}

void sim_stats_outcome(sim_stats_t *self, long status, uint64_t n)
{
    self->replies += n;
    if (status == 200 || status == 202)
        self->accepted += n;
    else if (s_is_backpressure(status))
        self->backpressure += n;
    else
        self->rejected += n;
    /* Out-of-range codes are a broken server; count them under 0 in the per-code table. */
    self->by_status[status > 0 && status < SIM_HTTP_CODES ? status : 0] += n;
}

void sim_stats_error(sim_stats_t *self, uint64_t n)
{
    self->errors += n;
}

void sim_stats_record_id_mismatch(sim_stats_t *self)
{
    self->id_mismatch++;
}

static size_t s_bucket(uint64_t us)
{
    if (us < SIM_HIST_LINEAR)
        return (size_t)us;
    unsigned msb = 63u - (unsigned)__builtin_clzll(us); /* >= 7 */
    unsigned shift = msb - 6;                           /* us >> shift is in [64, 127] */
    return SIM_HIST_LINEAR + (size_t)(shift - 1) * SIM_HIST_SUB +
           (size_t)((us >> shift) - SIM_HIST_SUB);
}

/* The middle of a bucket's range, the value reported for its samples. */
static uint64_t s_bucket_value(size_t b)
{
    if (b < SIM_HIST_LINEAR)
        return b;
    unsigned shift = (unsigned)((b - SIM_HIST_LINEAR) / SIM_HIST_SUB) + 1;
    uint64_t top = (b - SIM_HIST_LINEAR) % SIM_HIST_SUB + SIM_HIST_SUB;
    return (top << shift) + ((1ull << shift) >> 1);
}

static void s_hist_add(hist_t *h, uint64_t us)
{
    h->buckets[s_bucket(us)]++;
    h->samples++;
    if (us > h->max_us)
        h->max_us = us;
}

static uint64_t s_hist_percentile(const hist_t *h, double q)
{
    if (h->samples == 0)
        return 0;
    uint64_t rank = (uint64_t)(q * (double)h->samples + 0.999999);
    if (rank == 0)
        rank = 1;
    uint64_t seen = 0;
    for (size_t b = 0; b < SIM_HIST_BUCKETS; b++) {
        seen += h->buckets[b];
        if (seen >= rank) {
            uint64_t v = s_bucket_value(b);
            return v < h->max_us ? v : h->max_us;
        }
    }
    return h->max_us;
}

void sim_stats_latency(sim_stats_t *self, uint64_t us)
{
    s_hist_add(&self->latency, us);
}

void sim_stats_puback_latency(sim_stats_t *self, uint64_t us)
{
    s_hist_add(&self->puback, us);
}

void sim_stats_mqtt(sim_stats_t *self, sim_mqtt_count_t what, uint64_t n)
{
    self->mqtt_counts[what] += n;
}

uint64_t sim_stats_latency_percentile(const sim_stats_t *self, double q)
{
    return s_hist_percentile(&self->latency, q);
}

uint64_t sim_stats_accepted(const sim_stats_t *self)
{
    return self->accepted;
}

uint64_t sim_stats_replies(const sim_stats_t *self)
{
    return self->replies;
}

uint64_t sim_stats_errors(const sim_stats_t *self)
{
    return self->errors;
}

void sim_stats_progress(sim_stats_t *self, double elapsed_s)
{
    double dt = elapsed_s - self->last_elapsed;
    double sent_rate = dt > 0 ? (double)(self->sent - self->last_sent) / dt : 0;
    double rate = dt > 0 ? (double)(self->accepted - self->last_accepted) / dt : 0;
    lc_info("progress",
            "elapsed_s=%.1f sent=%llu accepted=%llu rejected=%llu backpressure=%llu errors=%llu "
            "sent_per_s=%.0f rate_per_s=%.0f p99_ms=%.3f",
            elapsed_s, (unsigned long long)self->sent, (unsigned long long)self->accepted,
            (unsigned long long)self->rejected, (unsigned long long)self->backpressure,
            (unsigned long long)self->errors, sent_rate, rate,
            (double)sim_stats_latency_percentile(self, 0.99) / 1000.0);
    self->last_elapsed = elapsed_s;
    self->last_sent = self->sent;
    self->last_accepted = self->accepted;
}

void sim_stats_progress_line(const sim_stats_t *self, FILE *out, double elapsed_s)
{
    fprintf(out,
            "progress t=%.1f sent=%llu accepted=%llu rejected=%llu overloaded=%llu errors=%llu\n",
            elapsed_s, (unsigned long long)self->sent, (unsigned long long)self->accepted,
            (unsigned long long)self->rejected, (unsigned long long)self->backpressure,
            (unsigned long long)self->errors);
    fflush(out);
}

static void s_report_codes(const sim_stats_t *self, FILE *out, const char *prefix, int backpressure)
{
    for (long code = 0; code < SIM_HTTP_CODES; code++) {
        if (!self->by_status[code] || code == 200 || code == 202)
            continue;
        if (s_is_backpressure(code) != backpressure)
            continue;
        fprintf(out, "%s_%ld=%llu\n", prefix, code, (unsigned long long)self->by_status[code]);
    }
}

static void s_report_hist(const hist_t *h, FILE *out, const char *prefix)
{
    static const struct {
        const char *name;
        double q;
    } pct[] = {{"p50", 0.50}, {"p90", 0.90}, {"p99", 0.99}};
    for (size_t i = 0; i < sizeof pct / sizeof pct[0]; i++)
        fprintf(out, "%s%s_ms=%.3f\n", prefix, pct[i].name,
                (double)s_hist_percentile(h, pct[i].q) / 1000.0);
    fprintf(out, "%smax_ms=%.3f\n", prefix, (double)h->max_us / 1000.0);
}

static void s_report_mqtt(const sim_stats_t *self, FILE *out)
{
    static const char *const names[SIM_MQTT_COUNT] = {
        [SIM_MQTT_PUBLISH_FAILED] = "publish_failed",
        [SIM_MQTT_PUBACK_REFUSED] = "puback_refused",
        [SIM_MQTT_RESULTS_MISSING] = "results_missing",
        [SIM_MQTT_RESULTS_LATE] = "results_late",
        [SIM_MQTT_RESULTS_DUPLICATE] = "results_duplicate",
        [SIM_MQTT_RESULTS_UNMATCHED] = "results_unmatched",
    };
    for (int i = 0; i < SIM_MQTT_COUNT; i++)
        fprintf(out, "%s=%llu\n", names[i], (unsigned long long)self->mqtt_counts[i]);
    fprintf(out, "pubacks=%llu\n", (unsigned long long)self->puback.samples);
    s_report_hist(&self->puback, out, "puback_");
}

void sim_stats_report(const sim_stats_t *self, FILE *out, double duration_s)
{
    fprintf(out, "sent=%llu\n", (unsigned long long)self->sent);
    fprintf(out, "accepted=%llu\n", (unsigned long long)self->accepted);
    fprintf(out, "rejected=%llu\n", (unsigned long long)self->rejected);
    s_report_codes(self, out, "rejected", 0);
    fprintf(out, "backpressure=%llu\n", (unsigned long long)self->backpressure);
    s_report_codes(self, out, "backpressure", 1);
    fprintf(out, "errors=%llu\n", (unsigned long long)self->errors);
    fprintf(out, "record_id_mismatch=%llu\n", (unsigned long long)self->id_mismatch);
    fprintf(out, "retried=%llu\n", (unsigned long long)self->retried);
    fprintf(out, "unanswered=%llu\n", (unsigned long long)self->unanswered);
    fprintf(out, "duration_s=%.3f\n", duration_s);
    fprintf(out, "rate_per_s=%.1f\n", duration_s > 0 ? (double)self->accepted / duration_s : 0.0);
    fprintf(out, "responses=%llu\n", (unsigned long long)self->latency.samples);
    s_report_hist(&self->latency, out, "");
    if (self->mqtt)
        s_report_mqtt(self, out);
    /* Scripts read the last line: keep it exactly accepted=<n>. */
    fprintf(out, "accepted=%llu\n", (unsigned long long)self->accepted);
}
