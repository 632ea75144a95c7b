/* sim_stats.h: what happened to the readings of a run: outcome counters (per HTTP status),
 * log-linear latency histograms (HDR-style, ~1.5% precision), the per-second progress line and
 * the key=value summary. Over MQTT a result's error name counts as the HTTP status it names, and
 * the broker's PUBACKs have a histogram and counters of their own. Single-threaded: owned by the
 * sending loop. Called by sim_load, sim_track, sim_mqtt and main(). */
#ifndef SIM_STATS_H
#define SIM_STATS_H

#include <stdint.h>
#include <stdio.h>

typedef struct sim_stats sim_stats_t;

/* What only the MQTT modes count (readings, but PUBACKs: messages). */
typedef enum {
    SIM_MQTT_PUBLISH_FAILED = 0, /* not published: device not connected, or the client refused */
    SIM_MQTT_PUBACK_REFUSED,     /* the broker refused the message (PUBACK reason >= 0x80) */
    SIM_MQTT_RESULTS_MISSING,    /* published, no result within --timeout */
    SIM_MQTT_RESULTS_LATE,       /* a result for a reading already counted missing */
    SIM_MQTT_RESULTS_DUPLICATE,  /* a second result for a reading */
    SIM_MQTT_RESULTS_UNMATCHED,  /* a result naming no reading of this run, or unreadable */
    SIM_MQTT_COUNT
} sim_mqtt_count_t;

/* mqtt: the summary also has the MQTT keys (sim_stats_report). NULL on allocation failure. */
sim_stats_t *sim_stats_new(int mqtt);
void sim_stats_destroy(sim_stats_t **self_p);

/* readings put on the wire, each attempt of each reading once (so sent = accepted + rejected +
 * backpressure + errors holds with retries too). */
void sim_stats_sent(sim_stats_t *self, uint64_t readings);
/* One request sent again (--retry). */
void sim_stats_retried(sim_stats_t *self);
/* Readings that never got a definitive answer (202, or a 4xx but 429): set once, at the end. */
void sim_stats_set_unanswered(sim_stats_t *self, uint64_t n);
/* n readings answered with HTTP status (per reading, or per line of a request batch). 200/202 count
 * as accepted, 429/503 as backpressure, anything else as rejected_<status>. */
void sim_stats_outcome(sim_stats_t *self, long status, uint64_t n);
/* n readings whose fate is unknown: transport error or a reply we could not read. */
void sim_stats_error(sim_stats_t *self, uint64_t n);
/* An accepted reading whose record_id was missing or not the one the contract defines. */
void sim_stats_record_id_mismatch(sim_stats_t *self);
void sim_stats_latency(sim_stats_t *self, uint64_t us);
/* MQTT: one message's publish -> PUBACK time. */
void sim_stats_puback_latency(sim_stats_t *self, uint64_t us);
void sim_stats_mqtt(sim_stats_t *self, sim_mqtt_count_t what, uint64_t n);

uint64_t sim_stats_accepted(const sim_stats_t *self);
/* Replies of any kind (HTTP status received), to tell "server said no" from "no server". */
uint64_t sim_stats_replies(const sim_stats_t *self);
uint64_t sim_stats_errors(const sim_stats_t *self);

/* Logs one progress line (event=progress) on stderr. */
void sim_stats_progress(sim_stats_t *self, double elapsed_s);
/* Writes and flushes "progress t=<s> sent= accepted= rejected= overloaded= errors=" (--progress):
 * cumulative counts, for scripts that watch a run. */
void sim_stats_progress_line(const sim_stats_t *self, FILE *out, double elapsed_s);

/* Writes the counters, rate and latency as key=value lines (with the MQTT keys when made for
 * MQTT); the last line is accepted=<n>. */
void sim_stats_report(const sim_stats_t *self, FILE *out, double duration_s);

/* Latency percentile in microseconds (q in [0, 1]); 0 without samples. */
uint64_t sim_stats_latency_percentile(const sim_stats_t *self, double q);

#endif
