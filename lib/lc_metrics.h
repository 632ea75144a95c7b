/* lc_metrics.h: a Prometheus registry owned by a service's main(). Metrics are registered at
 * start-up (not thread-safe) and updated lock-free from any thread afterwards; the admin server
 * renders the text exposition format on /metrics. Series with one name share HELP/TYPE lines;
 * labels are fixed at registration (never per device). */
#ifndef LC_METRICS_H
#define LC_METRICS_H

#include <stdatomic.h>

#include "lc_common.h"

typedef struct lc_metrics lc_metrics_t;
typedef struct lc_metric lc_counter_t;
typedef struct lc_metric lc_gauge_t;
typedef struct lc_metric lc_histogram_t;

lc_metrics_t *lc_metrics_new(void);
void lc_metrics_destroy(lc_metrics_t **self_p);

/* labels: NULL or the inside of the braces, e.g. "code=\"400\"". Returned pointers are owned by
 * the registry and live as long as it does. */
lc_counter_t *lc_metrics_counter(lc_metrics_t *self, const char *name, const char *help,
                                 const char *labels);
lc_gauge_t *lc_metrics_gauge(lc_metrics_t *self, const char *name, const char *help,
                             const char *labels);
/* buckets: ascending upper bounds (the +Inf bucket is implicit), at most 24. */
lc_histogram_t *lc_metrics_histogram(lc_metrics_t *self, const char *name, const char *help,
                                     const char *labels, const double *buckets, size_t n_buckets);

void lc_counter_add(lc_counter_t *c, uint64_t n);
static inline void lc_counter_inc(lc_counter_t *c)
{
    lc_counter_add(c, 1);
}
uint64_t lc_counter_get(const lc_counter_t *c);
void lc_gauge_set(lc_gauge_t *g, double v);
void lc_gauge_add(lc_gauge_t *g, double v);
void lc_histogram_observe(lc_histogram_t *h, double v);

/* Latency buckets in seconds, 100 µs .. 10 s. */
extern const double lc_latency_buckets[];
extern const size_t lc_latency_buckets_len;

/* Renders the exposition text into a malloc'd buffer (caller frees). NULL on allocation error. */
char *lc_metrics_render(const lc_metrics_t *self, size_t *len);

#endif
