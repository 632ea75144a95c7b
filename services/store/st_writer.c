/* st_writer.c: see st_writer.h. */
#include "st_writer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lc_log.h"
#include "lc_record.h"
#include "lc_seal.h"
#include "lc_zmq.h"

#define ST_ATTEMPTS_MAX 1000

/* ok[] marks of a write batch once written: what is acknowledged, and why. */
enum { S_NOT_ACKED = 0, S_STORED, S_DEAD_LETTERED, S_CONFLICT };

struct st_writer {
    st_db_t *db;
    zsock_t *events;
    size_t write_batch_max, cap, max_ciphertext;
    int wait_ms;
    Lcore__V1__SealedRecord **write_batch;
    size_t n;
    size_t n_write;    /* the first n_write rows are this flush's (see s_split) */
    uint64_t first_us; /* when the oldest pending record arrived */
    lc_counter_t *messages, *received, *bad, *stored, *duplicates, *refused, *acks_sent, *conflicts;
    lc_counter_t *revoked;
    lc_histogram_t *write_batch_rows, *commit_seconds, *lag_seconds, *device_lag_seconds;
    lc_counter_t *heartbeats;
    lc_gauge_t *heartbeat_lag, *heartbeat_at, *last_commit_at;
    lc_gauge_t *pending;
    uint32_t *seen; /* s_split's hash set: row index + 1 by record_id, seen_mask + 1 slots */
    size_t seen_mask;
};

static const double s_device_lag_buckets[] = {0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1,   2.5,
                                              5,    10,    30,   60,  300,  900, 3600};
static const double s_row_buckets[] = {1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000};

st_writer_t *st_writer_new(st_db_t *db, zsock_t *events, size_t write_batch_max, int wait_ms,
                           size_t max_ciphertext, lc_metrics_t *m)
{
    st_writer_t *self = calloc(1, sizeof *self);
    size_t cap = write_batch_max + LC_ZMQ_BATCH_MAX; /* a message more than a full batch */
    if (!self || !(self->write_batch = calloc(cap, sizeof *self->write_batch))) {
        free(self);
        return NULL;
    }
    size_t slots = 2;
    while (slots < 2 * cap)
        slots <<= 1;
    if (!(self->seen = calloc(slots, sizeof *self->seen))) {
        free(self->write_batch);
        free(self);
        return NULL;
    }
    self->seen_mask = slots - 1;
    self->db = db;
    self->events = events;
    self->write_batch_max = write_batch_max;
    self->cap = cap;
    self->wait_ms = wait_ms;
    self->max_ciphertext = max_ciphertext;
    self->messages = lc_metrics_counter(m, "lcore_store_messages_received_total",
                                        "Messages (sealed batches) received from workers", NULL);
    self->received = lc_metrics_counter(m, "lcore_store_records_received_total",
                                        "Sealed records received from workers", NULL);
    self->bad = lc_metrics_counter(m, "lcore_store_bad_messages_total",
                                   "Messages dropped as undecodable or invalid, by socket",
                                   "socket=\"sealed\"");
    self->stored = lc_metrics_counter(m, "lcore_store_records_stored_total",
                                      "Records newly written to PostgreSQL", NULL);
    self->duplicates = lc_metrics_counter(m, "lcore_store_records_duplicate_total",
                                          "Redelivered records absorbed by uniqueness", NULL);
    self->refused = lc_metrics_counter(
        m, "lcore_store_records_refused_total",
        "Records the database refused (acknowledged only once dead-lettered)", NULL);
    self->revoked = lc_metrics_counter(
        m, "lcore_store_records_revoked_total",
        "Readings not stored because their device was revoked before they were received "
        "(dead-lettered, acknowledged)",
        NULL);
    self->conflicts = lc_metrics_counter(
        m, "lcore_store_seq_conflicts_total",
        "Readings not stored because their (device_id, seq) holds other bytes (kept in "
        "seq_conflicts)",
        NULL);
    self->acks_sent = lc_metrics_counter(m, "lcore_store_acks_sent_total",
                                         "Record acknowledgements published to gateways", NULL);
    self->write_batch_rows = lc_metrics_histogram(m, "lcore_store_write_batch_rows",
                                                  "Rows per write batch (one transaction)", NULL,
                                                  s_row_buckets, LC_ARRAY_LEN(s_row_buckets));
    self->commit_seconds = lc_metrics_histogram(m, "lcore_store_commit_duration_seconds",
                                                "Time to write and commit one write batch", NULL,
                                                lc_latency_buckets, lc_latency_buckets_len);
    self->device_lag_seconds =
        lc_metrics_histogram(m, "lcore_store_device_lag_seconds",
                             "Device timestamp to commit, per record (includes device clock skew)",
                             NULL, s_device_lag_buckets, LC_ARRAY_LEN(s_device_lag_buckets));
    self->heartbeats = lc_metrics_counter(m, "lcore_store_heartbeats_total",
                                          "Gateway heartbeats received through the workers", NULL);
    self->heartbeat_lag =
        lc_metrics_gauge(m, "lcore_store_heartbeat_lag_seconds",
                         "Gateway to store transit time of the last heartbeat", NULL);
    self->heartbeat_at =
        lc_metrics_gauge(m, "lcore_store_last_heartbeat_timestamp_seconds",
                         "When the last gateway heartbeat arrived (unix seconds)", NULL);
    self->last_commit_at =
        lc_metrics_gauge(m, "lcore_store_last_commit_timestamp_seconds",
                         "When the last write batch was committed (unix seconds)", NULL);
    self->lag_seconds = lc_metrics_histogram(m, "lcore_store_ingest_lag_seconds",
                                             "Gateway receipt to commit, per record", NULL,
                                             lc_latency_buckets, lc_latency_buckets_len);
    self->pending = lc_metrics_gauge(m, "lcore_store_pending_records",
                                     "Records in the write batch, not written yet", NULL);
    return self;
}

/* Drops the first n rows (written, or all of them), keeping the rest in order. The rows kept
 * keep the first arrival time: their deadline has passed, so they are flushed next. */
static void s_drop(st_writer_t *self, size_t n)
{
    for (size_t i = 0; i < n; i++)
        lcore__v1__sealed_record__free_unpacked(self->write_batch[i], NULL);
    memmove(self->write_batch, self->write_batch + n, (self->n - n) * sizeof *self->write_batch);
    self->n -= n;
    if (self->n == 0)
        self->first_us = 0;
    lc_gauge_set(self->pending, (double)self->n);
}

void st_writer_destroy(st_writer_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    s_drop(*self_p, (*self_p)->n);
    free((*self_p)->write_batch);
    free((*self_p)->seen);
    free(*self_p);
    *self_p = NULL;
}

/* Everything the database will rely on is checked here, so a write batch fails only for reasons
 * outside the message (database down, unknown device). */
static const char *s_invalid(const st_writer_t *self, const Lcore__V1__SealedRecord *r)
{
    if (r->version != 1)
        return "version";
    if (r->record_id.len != LC_RECORD_ID_LEN || r->aes_nonce.len != LC_AES_NONCE_LEN ||
        r->xchacha_nonce.len != LC_XCHACHA_NONCE_LEN ||
        r->envelope_hash.len != LC_ENVELOPE_HASH_LEN)
        return "field_length";
    if (!r->device_id || !lc_device_id_valid(r->device_id, strlen(r->device_id)))
        return "device_id";
    if (r->seq > INT64_MAX || r->device_ts_ms > INT64_MAX || r->received_at_us == 0 ||
        r->received_at_us > INT64_MAX || r->key_version == 0 || r->key_version > INT32_MAX)
        return "range";
    /* 0 is what senders from before delivery attempts were counted send. */
    if (r->attempt > ST_ATTEMPTS_MAX || r->max_attempts > ST_ATTEMPTS_MAX)
        return "attempts";
    /* The ack goes to topic "ack/<gateway_id>/", and a dead letter names the gateway. */
    if (!r->gateway_id || !r->gateway_id[0] || strlen(r->gateway_id) > ST_GATEWAY_ID_MAX)
        return "gateway_id";
    if (r->reading_hash.len != LC_READING_HASH_LEN)
        return "reading_hash";
    if (r->ciphertext.len <= LC_SEAL_OVERHEAD || r->ciphertext.len > self->max_ciphertext)
        return "ciphertext_length";
    uint8_t id[LC_RECORD_ID_LEN], eh[LC_ENVELOPE_HASH_LEN];
    lc_record_id(id, r->device_id, strlen(r->device_id), r->seq);
    if (memcmp(id, r->record_id.data, sizeof id) != 0)
        return "record_id";
    lc_envelope_hash(eh, r->key_version, r->aes_nonce.data, r->xchacha_nonce.data,
                     r->ciphertext.data, r->ciphertext.len);
    if (memcmp(eh, r->envelope_hash.data, sizeof eh) != 0)
        return "envelope_hash";
    return NULL;
}

/* A heartbeat is measured, not stored. */
static void s_heartbeat(st_writer_t *self, const Lcore__V1__SealedRecord *r)
{
    uint64_t now = lc_now_us();
    lc_counter_inc(self->heartbeats);
    lc_gauge_set(self->heartbeat_lag,
                 now > r->received_at_us ? (double)(now - r->received_at_us) / 1e6 : 0);
    lc_gauge_set(self->heartbeat_at, (double)now / 1e6);
}

void st_writer_take_one(st_writer_t *self, const uint8_t *data, size_t len)
{
    if (self->n == self->cap) { /* cannot happen: messages are taken only while not full */
        lc_counter_inc(self->bad);
        lc_warn("sealed_record_dropped", "reason=write_batch_full bytes=%zu", len);
        return;
    }
    Lcore__V1__SealedRecord *r = lcore__v1__sealed_record__unpack(NULL, len, data);
    if (r && r->version == 1 && r->heartbeat) {
        s_heartbeat(self, r);
        lcore__v1__sealed_record__free_unpacked(r, NULL);
        return;
    }
    const char *why = r ? s_invalid(self, r) : "decode";
    if (why) {
        lc_counter_inc(self->bad);
        lc_warn("sealed_record_dropped", "reason=%s bytes=%zu", why, len);
        if (r)
            lcore__v1__sealed_record__free_unpacked(r, NULL);
        return;
    }
    lc_counter_inc(self->received);
    if (self->n == 0)
        self->first_us = lc_mono_us();
    self->write_batch[self->n++] = r;
    lc_gauge_set(self->pending, (double)self->n);
}

void st_writer_take(st_writer_t *self, const uint8_t *data, size_t len)
{
    lc_counter_inc(self->messages);
    Lcore__V1__SealedBatch *b = lcore__v1__sealed_batch__unpack(NULL, len, data);
    if (!b || b->version != 1 || !lc_zmq_batch_within(b->n_records, len)) {
        lc_counter_inc(self->bad);
        lc_warn("batch_dropped", "reason=%s bytes=%zu", !b ? "decode" : "bounds", len);
    } else {
        for (size_t i = 0; i < b->n_records; i++)
            st_writer_take_one(self, b->records[i].data, b->records[i].len);
    }
    if (b)
        lcore__v1__sealed_batch__free_unpacked(b, NULL);
}

size_t st_writer_pending(const st_writer_t *self)
{
    return self->n;
}
int st_writer_full(const st_writer_t *self)
{
    return self->n >= self->write_batch_max;
}

uint64_t st_writer_deadline(const st_writer_t *self)
{
    return self->n ? self->first_us + (uint64_t)self->wait_ms * 1000u : 0;
}

/* How many rows, from the first, this flush writes: at most write_batch_max, and up to (not
 * including) the first row whose record_id is already among them. The same reading twice in one
 * statement would be skipped by ON CONFLICT without being compared; the later copy waits for the
 * next flush, where it is compared with the stored one (a duplicate or a conflict). */
static size_t s_split(st_writer_t *self)
{
    memset(self->seen, 0, (self->seen_mask + 1) * sizeof *self->seen);
    size_t n = self->n < self->write_batch_max ? self->n : self->write_batch_max;
    for (size_t i = 0; i < n; i++) {
        const uint8_t *id = self->write_batch[i]->record_id.data;
        uint64_t h;
        memcpy(&h, id, sizeof h); /* a SHA-256 output: its first bytes are hash enough */
        for (size_t slot = h & self->seen_mask;; slot = (slot + 1) & self->seen_mask) {
            uint32_t at = self->seen[slot];
            if (at == 0) {
                self->seen[slot] = (uint32_t)i + 1;
                break;
            }
            if (memcmp(self->write_batch[at - 1]->record_id.data, id, LC_RECORD_ID_LEN) == 0)
                return i;
        }
    }
    return n;
}

/* Publishes one Ack per gateway for the rows marked in `ok`: stored or dead-lettered ones in
 * record_ids, (device_id, seq) conflicts in conflicts. */
static void s_ack(st_writer_t *self, const unsigned char *ok)
{
    size_t n = self->n_write;
    ProtobufCBinaryData *ids = malloc(n * sizeof *ids), *conf = malloc(n * sizeof *conf);
    unsigned char *done = calloc(n, 1);
    if (!ids || !conf || !done)
        goto out;
    for (size_t i = 0; i < n; i++) {
        if (done[i] || !ok[i])
            continue;
        const char *gw = self->write_batch[i]->gateway_id;
        Lcore__V1__Ack ack = LCORE__V1__ACK__INIT;
        ack.version = 1;
        ack.record_ids = ids;
        ack.conflicts = conf;
        for (size_t j = i; j < n; j++) {
            if (done[j] || !ok[j] || strcmp(self->write_batch[j]->gateway_id, gw) != 0)
                continue;
            if (ok[j] == S_CONFLICT)
                conf[ack.n_conflicts++] = self->write_batch[j]->record_id;
            else
                ids[ack.n_record_ids++] = self->write_batch[j]->record_id;
            done[j] = 1;
        }
        char topic[96];
        snprintf(topic, sizeof topic, "ack/%s/", gw);
        if (lc_zmq_send_pb(self->events, topic, &ack.base, ZMQ_DONTWAIT) == 0)
            lc_counter_add(self->acks_sent, ack.n_record_ids + ack.n_conflicts);
    }
out:
    free(ids);
    free(conf);
    free(done);
}

/* A record that is not stored: recorded in dead_letters (stage "store", why) so that its
 * gateway, once acked, stops redelivering it; kept as the worker sealed it, for a replay.
 * Returns 0 when recorded (or already recorded, or its record is stored), LC_ERR_UNAVAILABLE
 * (retry the write batch later), or another error (left unacknowledged: redelivered). */
static int s_dead_letter(st_writer_t *self, const Lcore__V1__SealedRecord *r, const char *why)
{
    Lcore__V1__DeadLetter dl = LCORE__V1__DEAD_LETTER__INIT;
    dl.record_id = r->record_id;
    dl.device_id = r->device_id;
    dl.seq = r->seq;
    dl.device_ts_ms = r->device_ts_ms;
    dl.received_at_us = r->received_at_us;
    dl.gateway_id = r->gateway_id;
    dl.attempts = r->attempt ? r->attempt : 1; /* 0: a sender from before attempts were counted */
    dl.stage = (char *)"store";
    dl.sealed = (Lcore__V1__SealedRecord *)r; /* kept, sealed, for a replay */
    dl.reason = (char *)why;
    st_dead_letter_outcome_t outcome;
    return st_db_dead_letter(self->db, &dl, &outcome);
}

/* A reading its device's revocation left out of the insert: dead-lettered ("device revoked";
 * replayed once the device is active again, it is stored) and so acknowledged (*ok
 * S_DEAD_LETTERED), counted, logged. 0 or LC_ERR_UNAVAILABLE (retry the write batch later). */
static int s_revoked(st_writer_t *self, const Lcore__V1__SealedRecord *r, unsigned char *ok)
{
    int rc = s_dead_letter(self, r, "device revoked");
    if (rc == LC_ERR_UNAVAILABLE)
        return rc;
    *ok = rc == 0 ? S_DEAD_LETTERED : S_NOT_ACKED;
    lc_counter_inc(self->revoked);
    static lc_log_limit_t limit = LC_LOG_LIMIT_INIT;
    lc_log_limited(&limit, 10000, LC_LOG_WARN, "record_revoked",
                   "device_id=%s seq=%llu gateway_id=%s", r->device_id, (unsigned long long)r->seq,
                   r->gateway_id);
    return 0;
}

/* After rows were written (recs[0..n), ok[0..n) marked S_STORED) and some were not new: marks
 * the (device_id, seq) conflicts among them S_CONFLICT (kept in seq_conflicts by
 * st_db_find_conflicts), counts and logs them, and dead-letters those left out for their revoked
 * device (s_revoked). Returns how many conflicts, or an error (retry the write batch later). */
static int s_not_new(st_writer_t *self, Lcore__V1__SealedRecord *const *recs, size_t n,
                     unsigned char *ok)
{
    unsigned char one[1], *mark = n == 1 ? one : malloc(n);
    size_t found = 0;
    int rc = mark ? st_db_find_conflicts(self->db, recs, n, mark, &found) : LC_ERR_NOMEM;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        if (mark[i] == ST_ROW_REVOKED) {
            rc = s_revoked(self, recs[i], &ok[i]);
            continue;
        }
        if (mark[i] != ST_ROW_CONFLICT)
            continue;
        ok[i] = S_CONFLICT;
        lc_counter_inc(self->conflicts);
        static lc_log_limit_t limit = LC_LOG_LIMIT_INIT;
        lc_log_limited(&limit, 10000, LC_LOG_WARN, "seq_conflict",
                       "device_id=%s seq=%llu gateway_id=%s", recs[i]->device_id,
                       (unsigned long long)recs[i]->seq, recs[i]->gateway_id);
    }
    if (mark != one)
        free(mark);
    return rc < 0 ? rc : (int)found;
}

/* Tells the relayer what one committed insert added, on topic "stored/<store_id>/": it anchors
 * from these, and asks records_after when it sees one's `after` differ from where it stands (a
 * message lost to a full queue or a restart). Sent even when every row was a duplicate, so that
 * the relayer moves past the hole without asking. */
static void s_publish_stored(st_writer_t *self)
{
    const Lcore__V1__StoredRecords *ev = st_db_last_written(self->db);
    char topic[16 + ST_STORE_ID_MAX];
    snprintf(topic, sizeof topic, "stored/%s/", ev->store_id);
    if (lc_zmq_send_pb(self->events, topic, &ev->base, ZMQ_DONTWAIT) < 0)
        lc_debug("stored_event_dropped", "after=%llu upto=%llu", (unsigned long long)ev->after,
                 (unsigned long long)ev->upto);
}

/* What follows a committed insert of recs[0..n) (inserted new rows; ok[0..n) S_STORED): the
 * relayer is told; the rows that were not new are sorted out (s_not_new). Returns how many
 * conflicts, or LC_ERR_UNAVAILABLE. */
static int s_after_insert(st_writer_t *self, Lcore__V1__SealedRecord *const *recs, size_t n,
                          size_t inserted, unsigned char *ok)
{
    s_publish_stored(self);
    int conflicts = inserted < n ? s_not_new(self, recs, n, ok) : 0;
    return conflicts < 0 ? LC_ERR_UNAVAILABLE : conflicts;
}

/* The write batch one row at a time, after the database refused it whole: keeps the good rows, and
 * dead-letters a refused row on its last allowed delivery. ok[i] says what became of row i.
 * Returns 0 or LC_ERR_UNAVAILABLE (retry the whole write batch later; rows already in are
 * absorbed). */
static int s_write_one_by_one(st_writer_t *self, unsigned char *ok, size_t *inserted, size_t *dead)
{
    for (size_t i = 0; i < self->n_write; i++) {
        size_t one = 0;
        int r1 = st_db_insert_records(self->db, &self->write_batch[i], 1, &one);
        if (r1 == LC_ERR_UNAVAILABLE)
            return r1;
        ok[i] = r1 == 0 ? S_STORED : S_NOT_ACKED;
        *inserted += one;
        if (r1 == 0) {
            if (s_after_insert(self, &self->write_batch[i], 1, one, &ok[i]) < 0)
                return LC_ERR_UNAVAILABLE;
            continue;
        }
        const Lcore__V1__SealedRecord *rec = self->write_batch[i];
        lc_counter_inc(self->refused);
        lc_warn("record_refused", "device_id=%s seq=%llu attempt=%u max_attempts=%u",
                rec->device_id, (unsigned long long)rec->seq, rec->attempt, rec->max_attempts);
        /* Earlier attempts stay unacknowledged: the gateway redelivers them. */
        if (r1 == LC_ERR_INVALID && rec->max_attempts > 0 && rec->attempt >= rec->max_attempts) {
            char why[256];
            snprintf(why, sizeof why, "refused by PostgreSQL: %s", st_db_last_error(self->db));
            int d = s_dead_letter(self, rec, why);
            if (d == LC_ERR_UNAVAILABLE)
                return d;
            if (d == 0) {
                ok[i] = S_DEAD_LETTERED;
                (*dead)++;
            }
        }
    }
    return 0;
}

/* Metrics of a write batch just committed: commit time, rows, lags of the stored records. */
static void s_observe(st_writer_t *self, const unsigned char *ok, size_t inserted, uint64_t t0)
{
    uint64_t t1 = lc_mono_us();
    uint64_t now_wall = lc_now_us();
    lc_histogram_observe(self->commit_seconds, (double)(t1 - t0) / 1e6);
    lc_histogram_observe(self->write_batch_rows, (double)self->n_write);
    lc_counter_add(self->stored, inserted);
    size_t acked = 0; /* stored, newly or before */
    for (size_t i = 0; i < self->n_write; i++) {
        acked += ok[i] == S_STORED;
        if (ok[i] != S_STORED)
            continue;
        if (now_wall > self->write_batch[i]->received_at_us)
            lc_histogram_observe(self->lag_seconds,
                                 (double)(now_wall - self->write_batch[i]->received_at_us) / 1e6);
        uint64_t now_ms = now_wall / 1000u, ts = self->write_batch[i]->device_ts_ms;
        lc_histogram_observe(self->device_lag_seconds,
                             now_ms > ts ? (double)(now_ms - ts) / 1e3 : 0);
    }
    lc_gauge_set(self->last_commit_at, (double)now_wall / 1e6);
    lc_counter_add(self->duplicates, acked - inserted);
}

int st_writer_flush(st_writer_t *self)
{
    if (self->n == 0)
        return 0;
    uint64_t t0 = lc_mono_us();
    size_t inserted = 0, dead = 0;
    int conflicts = 0;
    size_t n = self->n_write = s_split(self);
    unsigned char *ok = malloc(n);
    if (!ok)
        return LC_ERR_NOMEM;
    int rc = st_db_insert_records(self->db, self->write_batch, n, &inserted);
    if (rc == 0) {
        memset(ok, S_STORED, n);
        if ((conflicts = s_after_insert(self, self->write_batch, n, inserted, ok)) < 0)
            rc = LC_ERR_UNAVAILABLE;
    } else if (rc == LC_ERR_INVALID) {
        /* One row spoils the statement: write them one by one to keep the good ones. */
        inserted = 0;
        rc = s_write_one_by_one(self, ok, &inserted, &dead);
    }
    if (rc < 0) {
        free(ok);
        return rc;
    }
    s_observe(self, ok, inserted, t0);
    s_ack(self, ok);
    lc_debug("write_batch_written", "rows=%zu inserted=%zu conflicts=%d dead_lettered=%zu ms=%.2f",
             n, inserted, conflicts, dead, (double)(lc_mono_us() - t0) / 1e3);
    free(ok);
    s_drop(self, n);
    return 0;
}
