/* lc_metrics.c: counters, gauges and histograms with atomic updates. See lc_metrics.h. */
#include "lc_metrics.h"

#include <dirent.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define LC_HIST_MAX 24

typedef enum { S_COUNTER, S_GAUGE, S_HISTOGRAM } s_kind_t;

struct lc_metric {
    s_kind_t kind;
    char *name, *help, *labels;
    _Atomic uint64_t value; /* counter: count; gauge: double bits */
    size_t n_buckets;
    double bounds[LC_HIST_MAX];
    _Atomic uint64_t buckets[LC_HIST_MAX + 1]; /* last = +Inf */
    _Atomic uint64_t sum_bits;                 /* double */
    struct lc_metric *next;
};

struct lc_metrics {
    struct lc_metric *head, *tail;
};

const double lc_latency_buckets[] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                     0.05,   0.1,     0.25,   0.5,   1,      2.5,   5,    10};
const size_t lc_latency_buckets_len = sizeof lc_latency_buckets / sizeof lc_latency_buckets[0];

static uint64_t s_bits(double d)
{
    uint64_t u;
    memcpy(&u, &d, sizeof u);
    return u;
}

static double s_double(uint64_t u)
{
    double d;
    memcpy(&d, &u, sizeof d);
    return d;
}

static void s_atomic_add_double(_Atomic uint64_t *slot, double v)
{
    uint64_t old = atomic_load_explicit(slot, memory_order_relaxed);
    while (!atomic_compare_exchange_weak_explicit(slot, &old, s_bits(s_double(old) + v),
                                                  memory_order_relaxed, memory_order_relaxed))
        ;
}

lc_metrics_t *lc_metrics_new(void)
{
    return calloc(1, sizeof(lc_metrics_t));
}

void lc_metrics_destroy(lc_metrics_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    struct lc_metric *m = (*self_p)->head;
    while (m) {
        struct lc_metric *next = m->next;
        free(m->name);
        free(m->help);
        free(m->labels);
        free(m);
        m = next;
    }
    free(*self_p);
    *self_p = NULL;
}

static struct lc_metric *s_add(lc_metrics_t *self, s_kind_t kind, const char *name,
                               const char *help, const char *labels)
{
    struct lc_metric *m = calloc(1, sizeof *m);
    if (!m)
        return NULL;
    m->kind = kind;
    m->name = strdup(name);
    m->help = strdup(help);
    m->labels = labels ? strdup(labels) : NULL;
    if (!m->name || !m->help || (labels && !m->labels)) {
        free(m->name);
        free(m->help);
        free(m->labels);
        free(m);
        return NULL;
    }
    /* Keep series of one name adjacent so HELP/TYPE is printed once. */
    struct lc_metric *after = NULL;
    for (struct lc_metric *p = self->head; p; p = p->next)
        if (strcmp(p->name, name) == 0)
            after = p;
    if (after) {
        m->next = after->next;
        after->next = m;
        if (self->tail == after)
            self->tail = m;
    } else if (self->tail) {
        self->tail->next = m;
        self->tail = m;
    } else {
        self->head = self->tail = m;
    }
    return m;
}

lc_counter_t *lc_metrics_counter(lc_metrics_t *self, const char *name, const char *help,
                                 const char *labels)
{
    return s_add(self, S_COUNTER, name, help, labels);
}

lc_gauge_t *lc_metrics_gauge(lc_metrics_t *self, const char *name, const char *help,
                             const char *labels)
{
    return s_add(self, S_GAUGE, name, help, labels);
}

lc_histogram_t *lc_metrics_histogram(lc_metrics_t *self, const char *name, const char *help,
                                     const char *labels, const double *buckets, size_t n_buckets)
{
    if (n_buckets > LC_HIST_MAX)
        return NULL;
    struct lc_metric *m = s_add(self, S_HISTOGRAM, name, help, labels);
    if (m) {
        m->n_buckets = n_buckets;
        memcpy(m->bounds, buckets, n_buckets * sizeof(double));
    }
    return m;
}

void lc_counter_add(lc_counter_t *c, uint64_t n)
{
    atomic_fetch_add_explicit(&c->value, n, memory_order_relaxed);
}

uint64_t lc_counter_get(const lc_counter_t *c)
{
    return atomic_load_explicit(&((lc_counter_t *)c)->value, memory_order_relaxed);
}

void lc_gauge_set(lc_gauge_t *g, double v)
{
    atomic_store_explicit(&g->value, s_bits(v), memory_order_relaxed);
}

void lc_gauge_add(lc_gauge_t *g, double v)
{
    s_atomic_add_double(&g->value, v);
}

void lc_histogram_observe(lc_histogram_t *h, double v)
{
    size_t i = 0;
    while (i < h->n_buckets && v > h->bounds[i])
        i++;
    atomic_fetch_add_explicit(&h->buckets[i], 1, memory_order_relaxed);
    s_atomic_add_double(&h->sum_bits, v);
}

typedef struct {
    char *buf;
    size_t len, cap;
    int failed;
} s_out_t;

static void s_printf(s_out_t *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void s_printf(s_out_t *o, const char *fmt, ...)
{
    if (o->failed)
        return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(o->buf + o->len, o->cap - o->len, fmt, ap);
        va_end(ap);
        if (n < 0) {
            o->failed = 1;
            return;
        }
        if ((size_t)n < o->cap - o->len) {
            o->len += (size_t)n;
            return;
        }
        size_t cap = o->cap * 2 + (size_t)n;
        char *b = realloc(o->buf, cap);
        if (!b) {
            o->failed = 1;
            return;
        }
        o->buf = b;
        o->cap = cap;
    }
}

static void s_series(s_out_t *o, const char *name, const char *suffix, const char *labels,
                     const char *extra, const char *value)
{
    int has = (labels && *labels) || extra;
    s_printf(o, "%s%s%s%s%s%s%s %s\n", name, suffix, has ? "{" : "", labels ? labels : "",
             (labels && *labels && extra) ? "," : "", extra ? extra : "", has ? "}" : "", value);
}

/* The standard process metrics (Prometheus client conventions), read from /proc at scrape
 * time: CPU seconds, resident memory, open descriptors, start time. */
static void s_render_process(s_out_t *o)
{
    long tck = sysconf(_SC_CLK_TCK), page = sysconf(_SC_PAGESIZE);
    char buf[1024];
    unsigned long long utime = 0, stime = 0, start = 0, rss = 0, btime = 0;
    FILE *f = fopen("/proc/self/stat", "r");
    if (f && fgets(buf, sizeof buf, f)) {
        /* Fields after the command name, which may hold spaces: after the last ')'. */
        const char *p = strrchr(buf, ')');
        if (p && sscanf(p + 2,
                        "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu %*d %*d %*d %*d "
                        "%*d %*d %llu",
                        &utime, &stime, &start) != 3)
            utime = stime = start = 0;
    }
    if (f)
        fclose(f);
    if ((f = fopen("/proc/self/statm", "r"))) {
        if (fscanf(f, "%*u %llu", &rss) != 1)
            rss = 0;
        fclose(f);
    }
    if ((f = fopen("/proc/stat", "r"))) {
        while (fgets(buf, sizeof buf, f))
            if (sscanf(buf, "btime %llu", &btime) == 1)
                break;
        fclose(f);
    }
    int fds = 0;
    DIR *d = opendir("/proc/self/fd");
    if (d) {
        for (struct dirent *e; (e = readdir(d));)
            fds += e->d_name[0] != '.';
        closedir(d);
        fds--; /* the directory itself */
    }
    if (tck <= 0 || page <= 0)
        return;
    s_printf(o,
             "# HELP process_cpu_seconds_total User and system CPU time spent, in seconds\n"
             "# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total %.2f\n"
             "# HELP process_resident_memory_bytes Resident memory size in bytes\n"
             "# TYPE process_resident_memory_bytes gauge\nprocess_resident_memory_bytes %llu\n"
             "# HELP process_open_fds Number of open file descriptors\n"
             "# TYPE process_open_fds gauge\nprocess_open_fds %d\n"
             "# HELP process_start_time_seconds Start time of the process since the epoch, in "
             "seconds\n# TYPE process_start_time_seconds gauge\nprocess_start_time_seconds %.2f\n",
             (double)(utime + stime) / (double)tck, rss * (unsigned long long)page, fds,
             (double)btime + (double)start / (double)tck);
}

char *lc_metrics_render(const lc_metrics_t *self, size_t *len)
{
    static const char *const types[] = {"counter", "gauge", "histogram"};
    s_out_t o = {malloc(8192), 0, 8192, 0};
    if (!o.buf)
        return NULL;
    o.buf[0] = '\0';
    const char *prev = NULL;
    char v[64], le[64];
    for (struct lc_metric *m = self->head; m; m = m->next) {
        if (!prev || strcmp(prev, m->name) != 0)
            s_printf(&o, "# HELP %s %s\n# TYPE %s %s\n", m->name, m->help, m->name, types[m->kind]);
        prev = m->name;
        uint64_t raw = atomic_load_explicit(&m->value, memory_order_relaxed);
        if (m->kind == S_COUNTER) {
            snprintf(v, sizeof v, "%llu", (unsigned long long)raw);
            s_series(&o, m->name, "", m->labels, NULL, v);
        } else if (m->kind == S_GAUGE) {
            snprintf(v, sizeof v, "%.17g", s_double(raw));
            s_series(&o, m->name, "", m->labels, NULL, v);
        } else {
            uint64_t cum = 0;
            for (size_t i = 0; i <= m->n_buckets; i++) {
                cum += atomic_load_explicit(&m->buckets[i], memory_order_relaxed);
                if (i < m->n_buckets)
                    snprintf(le, sizeof le, "le=\"%g\"", m->bounds[i]);
                else
                    snprintf(le, sizeof le, "le=\"+Inf\"");
                snprintf(v, sizeof v, "%llu", (unsigned long long)cum);
                s_series(&o, m->name, "_bucket", m->labels, le, v);
            }
            snprintf(v, sizeof v, "%.17g",
                     s_double(atomic_load_explicit(&m->sum_bits, memory_order_relaxed)));
            s_series(&o, m->name, "_sum", m->labels, NULL, v);
            snprintf(v, sizeof v, "%llu", (unsigned long long)cum);
            s_series(&o, m->name, "_count", m->labels, NULL, v);
        }
    }
    s_render_process(&o);
    if (o.failed) {
        free(o.buf);
        return NULL;
    }
    if (len)
        *len = o.len;
    return o.buf;
}
