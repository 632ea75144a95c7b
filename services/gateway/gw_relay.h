/* gw_relay.h: what happens to a reading after the log has it. The relay is an actor that owns
 * the log's group commit (gw_wal_sync), the readings PUSH socket (crypto workers connect), the
 * SUB socket on the store's events (topics "ack/<gateway_id>/", "replay/<gateway_id>/" and
 * "changes/") and the table of readings that
 * are durable but not yet acknowledged. It pushes each reading once, at most `window` awaiting
 * an ack; redelivers what stays unacknowledged past a timeout (doubling per attempt, with
 * jitter) while the store reports itself able to write; delivers readings lost twice one at
 * a time, so that when a worker crashes on a poison reading only that reading uses up its
 * attempts; after max_attempts deliveries records the reading in the store's dead-letter
 * table, sealed with the gateway's dead-letter key (gw_letter.h), and logs again the readings
 * an operator replays from there (topic "replay/<gateway_id>/"); deletes log segments once
 * acknowledged; and sends a heartbeat through the pipeline every heartbeat_ms so the store can
 * measure transit time while devices are idle.
 *
 * Start-up: gw_relay_new, then gw_wal_open(..., gw_relay_replay_reading, gw_relay_replay_ack,
 * relay) fills its table from the log, then gw_relay_start. Destroy drains (waits up to drain_ms
 * for acks of what is in flight) and writes the last acks to the log. */
#ifndef GW_RELAY_H
#define GW_RELAY_H

#include "lc_query.h"
#include "gw_wal.h"
#include "lc_metrics.h"

typedef struct gw_relay gw_relay_t;

typedef struct {
    const char *readings_bind;  /* PUSH, bound */
    const char *events_connect; /* SUB, connected */
    const char *gateway_id;
    lc_query_client_t *store; /* borrowed: dead letters go through the query socket */
    lc_curve_t *curve;        /* borrowed: the sockets' CURVE keys */
    const lc_keyring_t *ring; /* borrowed: seals dead letters the crypto tier never sealed */
    size_t max_reading_bytes; /* largest reading (sizes the events socket for replays) */
    int hwm;
    unsigned window;           /* readings sent and awaiting an ack, at most */
    unsigned redeliver_ms;     /* first redelivery timeout; doubles per attempt */
    unsigned redeliver_max_ms; /* cap of the timeout */
    unsigned max_attempts;     /* deliveries before a reading is dead-lettered */
    unsigned drain_ms;         /* on shutdown, how long to wait for outstanding acks */
    unsigned heartbeat_ms;     /* a heartbeat through the pipeline this often (0: none) */
    lc_metrics_t *metrics;
    /* Called (relay thread) when a reading leaves the table: acknowledged (stored, or a
     * (device_id, seq) conflict the store kept aside) or dead-lettered; data is its packed
     * Reading, borrowed for the call. NULL: not told. */
    void (*on_drop)(void *arg, const uint8_t record_id[32], const uint8_t *data, size_t len);
    void *on_drop_arg;
    /* Called (relay thread) for each Change the store publishes on topic "changes/": a device
     * or a token (either may be "") that gateways must not keep serving from a cache. */
    void (*on_change)(void *arg, const char *device_id, const char *token_id);
    void *on_change_arg;
} gw_relay_opts_t;

gw_relay_t *gw_relay_new(const gw_relay_opts_t *opts);
/* Replay callbacks for gw_wal_open (arg = the relay). */
void gw_relay_replay_reading(void *relay, uint64_t segment, const uint8_t record_id[32],
                             const uint8_t *data, size_t len);
void gw_relay_replay_ack(void *relay, const uint8_t record_id[32]);
/* An Ack from the store (the body frame of topic "ack/<gateway_id>/"), parsed without a relay:
 * fn(arg, record_id, conflict) for each id of exactly 32 bytes, record_ids (conflict 0) then
 * conflicts (1), in order. Returns how many ids were not 32 bytes (skipped), or -1 when body is
 * not a version 1 Ack. Pure: the relay's ack handler, and a fuzz target. */
typedef void(gw_relay_ack_fn)(void *arg, const uint8_t record_id[32], int conflict);
int gw_relay_parse_ack(const uint8_t *body, size_t len, gw_relay_ack_fn *fn, void *arg);

/* Binds and connects the sockets and starts the actor. The log must outlive the relay. */
int gw_relay_start(gw_relay_t *self, gw_wal_t *wal) LC_WUR;
/* Thread-safe: whether the store can write (it answers ping OK). While it cannot, expired
 * deliveries are not counted as attempts and nothing is dead-lettered. */
void gw_relay_set_store_ready(gw_relay_t *self, int ready);
void gw_relay_destroy(gw_relay_t **self_p);

#endif
