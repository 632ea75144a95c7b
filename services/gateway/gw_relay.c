/* gw_relay.c: see gw_relay.h. */
#include "gw_relay.h"

#include <assert.h>
#include <czmq.h>
#include <errno.h>
#include <inttypes.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gw_letter.h"
#include "lc_codec.h"
#include "lc_log.h"
#include "lc_zmq.h"
#include "lcore.pb-c.h"

#define S_TICK_MS 100        /* redelivery scan period */
#define S_ACKS_PER_TURN 1000 /* ack messages taken per loop turn */
#define S_DEAD_PER_TICK 50   /* dead letters written per scan (each is a store round trip) */

/* Where an entry is. */
enum { S_UNSENT, S_IN_FLIGHT, S_SUSPECT };

/* A reading the log holds and the store has not acknowledged. */
typedef struct s_entry {
    struct s_entry *prev, *next; /* in the list its `where` names */
    int where;
    uint64_t segment;
    uint64_t durable_us; /* monotonic: when the log made it durable (or replayed it) */
    uint64_t due_us;     /* in flight: when it counts as lost */
    uint64_t sent_us;    /* monotonic: its last delivery (0: none yet) */
    uint64_t wait_us;    /* that delivery's timeout */
    uint32_t attempts;   /* deliveries so far */
    uint8_t record_id[LC_RECORD_ID_LEN];
    size_t len;
    uint8_t data[]; /* the packed Reading */
} s_entry_t;

typedef struct {
    s_entry_t *head, *tail;
    size_t n;
} s_list_t;

typedef struct {
    uint64_t segment, live;
} s_seg_t;

struct gw_relay {
    gw_relay_opts_t opts;
    gw_wal_t *wal;
    zactor_t *actor;
    zsock_t *readings, *events;
    lc_zmq_peers_t *workers;
    lc_zmq_peers_t *store_events; /* refused handshakes and drops of the events SUB */
    atomic_int store_ready;

    /* Actor thread only (and replay, before the actor starts): */
    zhashx_t *table; /* record_id -> s_entry_t */
    s_list_t unsent, in_flight;
    /* Readings lost twice wait here and are delivered one at a time ("solo"): a worker that
     * crashes then crashed on that reading, so only a poison reading uses up its attempts,
     * not the readings that were queued behind it at the worker. */
    s_list_t suspects;
    s_entry_t *solo; /* the suspect in flight, if any */
    s_seg_t *segs;
    size_t n_segs, cap_segs;
    uint64_t replay_released;
    uint64_t rng;
    uint64_t last_ack_us;   /* monotonic: the last ack of a reading still in the log */
    uint64_t away_us;       /* monotonic: the last scan that found the store away */
    uint64_t acked_sent_us; /* the latest delivery time among the readings acknowledged */
    uint8_t (*acked)[LC_RECORD_ID_LEN]; /* ids acknowledged this turn, for the log */
    lc_zmq_batch_t batch;               /* the next message to the workers (empty between sends) */
    s_entry_t *in_batch[LC_ZMQ_BATCH_MAX]; /* its readings */
    size_t n_batch;
    size_t n_acked, cap_acked;

    lc_counter_t *c_sent, *c_redelivered, *c_acked, *c_dead, *c_dups, *c_bad, *c_blocked;
    lc_counter_t *c_conflicts, *c_replayed, *c_replay_bad, *c_deferred;
    lc_gauge_t *g_in_flight, *g_unsent, *g_suspects, *g_oldest, *g_workers;
    lc_counter_t *c_heartbeats;
    lc_histogram_t *h_ack_seconds, *h_batch;
};

/* -- table, lists and segments ----------------------------------------------------------- */

static size_t s_hash(const void *key)
{
    size_t h;
    memcpy(&h, key, sizeof h); /* record ids are SHA-256 outputs: any 8 bytes are uniform */
    return h;
}
static int s_compare(const void *a, const void *b)
{
    return memcmp(a, b, LC_RECORD_ID_LEN);
}

static void s_push_back(s_list_t *l, s_entry_t *e)
{
    e->next = NULL;
    e->prev = l->tail;
    if (l->tail)
        l->tail->next = e;
    else
        l->head = e;
    l->tail = e;
    l->n++;
}
static void s_push_front(s_list_t *l, s_entry_t *e)
{
    e->prev = NULL;
    e->next = l->head;
    if (l->head)
        l->head->prev = e;
    else
        l->tail = e;
    l->head = e;
    l->n++;
}
static void s_unlink(s_list_t *l, s_entry_t *e)
{
    if (e->prev)
        e->prev->next = e->next;
    else
        l->head = e->next;
    if (e->next)
        e->next->prev = e->prev;
    else
        l->tail = e->prev;
    e->prev = e->next = NULL;
    l->n--;
}

static s_seg_t *s_seg_find(gw_relay_t *self, uint64_t segment)
{
    size_t lo = 0, hi = self->n_segs;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (self->segs[mid].segment < segment)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < self->n_segs && self->segs[lo].segment == segment ? &self->segs[lo] : NULL;
}

/* Segments only grow: entries arrive in log order. */
static int s_seg_add(gw_relay_t *self, uint64_t segment)
{
    if (self->n_segs && self->segs[self->n_segs - 1].segment >= segment) {
        s_seg_t *s = s_seg_find(self, segment);
        if (!s)
            return LC_ERR_INVALID;
        s->live++;
        return 0;
    }
    if (self->n_segs == self->cap_segs) {
        size_t cap = self->cap_segs ? self->cap_segs * 2 : 16;
        s_seg_t *s = realloc(self->segs, cap * sizeof *s);
        if (!s)
            return LC_ERR_NOMEM;
        self->segs = s;
        self->cap_segs = cap;
    }
    self->segs[self->n_segs++] = (s_seg_t){segment, 1};
    return 0;
}

/* The oldest segment still holding an unacknowledged reading (UINT64_MAX: none). */
static uint64_t s_seg_keep_from(gw_relay_t *self)
{
    size_t drop = 0;
    while (drop < self->n_segs && self->segs[drop].live == 0)
        drop++;
    if (drop) {
        memmove(self->segs, self->segs + drop, (self->n_segs - drop) * sizeof *self->segs);
        self->n_segs -= drop;
    }
    return self->n_segs ? self->segs[0].segment : UINT64_MAX;
}

static void s_release(gw_relay_t *self, uint64_t n)
{
    if (self->wal)
        gw_wal_release(self->wal, n);
    else
        self->replay_released += n;
}

/* Takes a durable reading into the table. A record_id already waiting (a device retried)
 * keeps its older entry: the store's uniqueness makes one delivery enough. */
static void s_take(gw_relay_t *self, uint64_t segment, const uint8_t id[32], const uint8_t *data,
                   size_t len)
{
    if (zhashx_lookup(self->table, id)) {
        lc_counter_inc(self->c_dups);
        s_release(self, 1);
        return;
    }
    s_entry_t *e = malloc(sizeof *e + len);
    if (!e || s_seg_add(self, segment) < 0) {
        /* The reading stays in the log and comes back on the next start. */
        lc_error("relay_out_of_memory", "segment=%" PRIu64, segment);
        free(e);
        return;
    }
    memset(e, 0, sizeof *e);
    e->segment = segment;
    e->durable_us = lc_mono_us();
    memcpy(e->record_id, id, LC_RECORD_ID_LEN);
    e->len = len;
    memcpy(e->data, data, len);
    zhashx_insert(self->table, e->record_id, e);
    s_push_back(&self->unsent, e);
}

/* Forgets an entry (acknowledged, or dead-lettered). */
static s_list_t *s_list_of(gw_relay_t *self, const s_entry_t *e)
{
    return e->where == S_IN_FLIGHT ? &self->in_flight
           : e->where == S_SUSPECT ? &self->suspects
                                   : &self->unsent;
}

static void s_drop(gw_relay_t *self, s_entry_t *e)
{
    s_unlink(s_list_of(self, e), e);
    if (self->solo == e)
        self->solo = NULL;
    s_seg_t *s = s_seg_find(self, e->segment);
    if (s && s->live)
        s->live--;
    zhashx_delete(self->table, e->record_id);
    if (self->opts.on_drop)
        self->opts.on_drop(self->opts.on_drop_arg, e->record_id, e->data, e->len);
    s_release(self, 1);
    sodium_memzero(e->data, e->len);
    free(e);
}

void gw_relay_replay_reading(void *relay, uint64_t segment, const uint8_t record_id[32],
                             const uint8_t *data, size_t len)
{
    s_take(relay, segment, record_id, data, len);
}

void gw_relay_replay_ack(void *relay, const uint8_t record_id[32])
{
    gw_relay_t *self = relay;
    s_entry_t *e = zhashx_lookup(self->table, record_id);
    if (e)
        s_drop(self, e);
}

/* -- sending ----------------------------------------------------------------------------- */

/* Timeout for the delivery just made: base x 2^(attempts-1), capped, +-25 % jitter so that
 * readings lost together (a worker's queue) are not redelivered together. */
static uint64_t s_timeout_us(gw_relay_t *self, uint32_t attempts)
{
    uint64_t ms = self->opts.redeliver_ms;
    for (uint32_t i = 1; i < attempts && ms < self->opts.redeliver_max_ms; i++)
        ms *= 2;
    if (ms > self->opts.redeliver_max_ms)
        ms = self->opts.redeliver_max_ms;
    /* splitmix64 */
    uint64_t z = (self->rng += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    uint64_t us = ms * 1000u;
    return us * 3 / 4 + z % (us / 2 + 1);
}

/* The bytes of one delivery, appended to the batch: the logged Reading, then a Reading holding
 * only attempt and max_attempts, packed by the generated code. Protobuf merges concatenated
 * messages (a later scalar wins), so the worker decodes the logged reading with this delivery's
 * attempt, and the logged bytes are sent as they are, without an unpack and repack per delivery.
 * 0, or LC_ERR_NOMEM. */
static int s_delivery(lc_zmq_batch_t *b, const s_entry_t *e, uint32_t attempt,
                      uint32_t max_attempts)
{
    assert(attempt > 0 && max_attempts > 0); /* proto3 omits zeros: a 0 would not override */
    Lcore__V1__Reading tail = LCORE__V1__READING__INIT;
    tail.attempt = attempt;
    tail.max_attempts = max_attempts;
    size_t n = lcore__v1__reading__get_packed_size(&tail);
    uint8_t *p = lc_zmq_batch_add(b, e->len + n);
    if (!p)
        return LC_ERR_NOMEM;
    memcpy(p, e->data, e->len);
    lcore__v1__reading__pack(&tail, p + e->len);
    return 0;
}

/* A delivery's size in a batch (s_delivery's tail: two varint fields, at most 12 bytes). */
static size_t s_delivery_size(const s_entry_t *e)
{
    return e->len + 12;
}

/* Sends the batch (its readings in in_batch, unsent or suspect) as one message; on success they
 * are in flight. 0 when ZeroMQ took it. A solo delivery times out after the base timeout: it is
 * alone, its ack comes fast or not at all. */
static int s_send_batch(gw_relay_t *self, void *sock, int solo, uint64_t now)
{
    int rc = lc_zmq_batch_send(&self->batch, sock, ZMQ_DONTWAIT);
    if (rc < 0) {
        /* No worker connected or all queues full: wait for POLLOUT. */
        lc_zmq_batch_clear(&self->batch);
        self->n_batch = 0;
        if (rc == LC_ERR_TIMEOUT)
            lc_counter_inc(self->c_blocked);
        return rc;
    }
    for (size_t i = 0; i < self->n_batch; i++) {
        s_entry_t *e = self->in_batch[i];
        s_unlink(s_list_of(self, e), e);
        e->attempts++;
        e->where = S_IN_FLIGHT;
        e->sent_us = now;
        e->wait_us = s_timeout_us(self, solo ? 1 : e->attempts);
        e->due_us = now + e->wait_us;
        s_push_back(&self->in_flight, e);
        lc_counter_inc(e->attempts == 1 ? self->c_sent : self->c_redelivered);
    }
    lc_histogram_observe(self->h_batch, (double)self->n_batch);
    self->n_batch = 0;
    return 0;
}

/* Adds e's delivery to the batch; 0, or LC_ERR_NOMEM. */
static int s_batch_add(gw_relay_t *self, s_entry_t *e)
{
    if (s_delivery(&self->batch, e, e->attempts + 1, self->opts.max_attempts) < 0)
        return LC_ERR_NOMEM;
    self->in_batch[self->n_batch++] = e;
    return 0;
}

/* Sends what the window and the socket allow: the next suspect if none is in flight (alone),
 * then the unsent readings in order, as many to a message as a batch holds. */
static void s_send(gw_relay_t *self)
{
    void *sock = zsock_resolve(self->readings);
    uint64_t now = lc_mono_us();
    if (!self->solo && self->suspects.head && self->in_flight.n < self->opts.window) {
        s_entry_t *e = self->suspects.head;
        if (s_batch_add(self, e) == 0 && s_send_batch(self, sock, 1, now) == 0)
            self->solo = e;
    }
    s_entry_t *e = self->unsent.head;
    while (e && self->in_flight.n + self->n_batch < self->opts.window) {
        if (!lc_zmq_batch_fits(&self->batch, s_delivery_size(e)) &&
            s_send_batch(self, sock, 0, now) < 0)
            break;
        s_entry_t *next = e->next; /* e moves to in_flight when its batch is sent */
        if (s_batch_add(self, e) < 0)
            break;
        e = next;
    }
    if (self->n_batch)
        (void)s_send_batch(self, sock, 0, now);
}

/* -- acknowledgements -------------------------------------------------------------------- */

static void s_note_acked(gw_relay_t *self, const uint8_t id[32])
{
    if (self->n_acked == self->cap_acked) {
        size_t cap = self->cap_acked ? self->cap_acked * 2 : 1024;
        void *p = realloc(self->acked, cap * sizeof *self->acked);
        if (!p)
            return; /* the ack is not logged: a replay redelivers it, the store absorbs it */
        self->acked = p;
        self->cap_acked = cap;
    }
    memcpy(self->acked[self->n_acked++], id, LC_RECORD_ID_LEN);
}

/* Logs the ids noted this turn (no fsync: a lost ack entry costs a redelivery). */
static void s_log_acks(gw_relay_t *self)
{
    if (!self->n_acked)
        return;
    if (gw_wal_append_acks(self->wal, (const uint8_t(*)[LC_RECORD_ID_LEN])self->acked,
                           self->n_acked) < 0)
        lc_debug("wal_ack_not_logged", "n=%zu", self->n_acked);
    self->n_acked = 0;
}

int gw_relay_parse_ack(const uint8_t *body, size_t len, gw_relay_ack_fn *fn, void *arg)
{
    Lcore__V1__Ack *ack = body ? lcore__v1__ack__unpack(NULL, len, body) : NULL;
    if (!ack || ack->version != 1) {
        if (ack)
            lcore__v1__ack__free_unpacked(ack, NULL);
        return -1;
    }
    int bad = 0;
    for (size_t k = 0; k < 2; k++) {
        size_t n = k ? ack->n_conflicts : ack->n_record_ids;
        const ProtobufCBinaryData *ids = k ? ack->conflicts : ack->record_ids;
        for (size_t i = 0; i < n; i++) {
            if (ids[i].len == LC_RECORD_ID_LEN)
                fn(arg, ids[i].data, (int)k);
            else
                bad++;
        }
    }
    lcore__v1__ack__free_unpacked(ack, NULL);
    return bad;
}

/* s_ack_one's argument: the relay, and when the Ack came. */
typedef struct {
    gw_relay_t *self;
    uint64_t now;
} s_ack_ctx_t;

/* One acknowledged reading: stored, dead-lettered, or (conflict) refused by the store because
 * its (device_id, seq) holds another reading; it leaves the log in every case. */
static void s_ack_one(void *arg, const uint8_t id[LC_RECORD_ID_LEN], int conflict)
{
    const s_ack_ctx_t *ctx = arg;
    gw_relay_t *self = ctx->self;
    s_entry_t *e = zhashx_lookup(self->table, id);
    if (!e)
        return; /* a second ack (redelivered duplicate), or another life's reading */
    lc_counter_inc(self->c_acked);
    lc_histogram_observe(self->h_ack_seconds, (double)(ctx->now - e->durable_us) / 1e6);
    self->last_ack_us = ctx->now;
    if (e->sent_us > self->acked_sent_us)
        self->acked_sent_us = e->sent_us;
    if (conflict) {
        lc_counter_inc(self->c_conflicts);
        static lc_log_limit_t limit = LC_LOG_LIMIT_INIT;
        char hex[2 * LC_RECORD_ID_LEN + 1];
        lc_hex_encode(hex, sizeof hex, e->record_id, LC_RECORD_ID_LEN);
        lc_log_limited(&limit, 10000, LC_LOG_WARN, "seq_conflict",
                       "record_id=%s where=store (kept in seq_conflicts)", hex);
    }
    s_note_acked(self, e->record_id);
    s_drop(self, e);
}

static void s_on_ack_message(gw_relay_t *self, zmsg_t *msg)
{
    zframe_t *body = zmsg_size(msg) == 2 ? zmsg_last(msg) : NULL;
    s_ack_ctx_t ctx = {self, lc_mono_us()};
    int bad = body ? gw_relay_parse_ack(zframe_data(body), zframe_size(body), s_ack_one, &ctx) : -1;
    if (bad)
        lc_counter_add(self->c_bad, bad < 0 ? 1 : (uint64_t)bad);
}

/* A dead letter this gateway sealed, sent back by the store for a replay: opened, checked
 * (gw_letter_reading) and logged again as a fresh reading (its attempts start over). */
static void s_on_replay_message(gw_relay_t *self, zmsg_t *msg)
{
    zframe_t *body = zmsg_size(msg) == 2 ? zmsg_last(msg) : NULL;
    Lcore__V1__Reading *r = NULL;
    uint64_t lsn;
    int rc = body ? gw_letter_reading(self->opts.ring, zframe_data(body), zframe_size(body), &r)
                  : LC_ERR_INVALID;
    if (rc == 0) {
        r->attempt = 0;
        r->max_attempts = 0;
        rc = gw_wal_append_pb(self->wal, r->record_id.data, &r->base, &lsn);
    }
    gw_letter_reading_free(&r);
    if (rc == 0) {
        lc_counter_inc(self->c_replayed);
    } else {
        lc_counter_inc(self->c_replay_bad);
        static lc_log_limit_t limit = LC_LOG_LIMIT_INIT;
        lc_log_limited(&limit, 10000, LC_LOG_WARN, "dead_letter_replay_refused", "err=\"%s\"",
                       lc_strerror(rc));
    }
}

/* Something gateways cache changed in the store (a device revoked, reactivated or rotated; a
 * token deleted): handed to on_change, which forgets the cached copy. */
static void s_on_change_message(gw_relay_t *self, zmsg_t *msg)
{
    zframe_t *body = zmsg_size(msg) == 2 ? zmsg_last(msg) : NULL;
    Lcore__V1__Change *ch =
        body ? lcore__v1__change__unpack(NULL, zframe_size(body), zframe_data(body)) : NULL;
    if (!ch || ch->version != 1) {
        lc_counter_inc(self->c_bad);
    } else if (self->opts.on_change) {
        self->opts.on_change(self->opts.on_change_arg, ch->device_id, ch->token_id);
    }
    if (ch)
        lcore__v1__change__free_unpacked(ch, NULL);
}

static void s_take_acks(gw_relay_t *self)
{
    for (int i = 0; i < S_ACKS_PER_TURN && (zsock_events(self->events) & ZMQ_POLLIN); i++) {
        zmsg_t *msg = zmsg_recv(self->events);
        if (!msg)
            break;
        char *topic = zmsg_size(msg) == 2 ? zframe_strdup(zmsg_first(msg)) : NULL;
        if (topic && strncmp(topic, "replay/", 7) == 0)
            s_on_replay_message(self, msg);
        else if (topic && strcmp(topic, "changes/") == 0)
            s_on_change_message(self, msg);
        else
            s_on_ack_message(self, msg);
        zstr_free(&topic);
        zmsg_destroy(&msg);
    }
    s_log_acks(self);
}

/* -- redelivery and dead letters --------------------------------------------------------- */

/* Records e in the store's dead-letter table. 0 when recorded (or already stored). */
static int s_dead_letter(gw_relay_t *self, s_entry_t *e)
{
    Lcore__V1__Reading *r = lcore__v1__reading__unpack(NULL, e->len, e->data);
    if (!r)
        return LC_ERR_INVALID; /* cannot happen: the gateway packed it */
    char reason[128];
    snprintf(reason, sizeof reason, "not acknowledged after %u deliveries", e->attempts);
    Lcore__V1__DeadLetter dl = LCORE__V1__DEAD_LETTER__INIT;
    dl.record_id.data = e->record_id;
    dl.record_id.len = LC_RECORD_ID_LEN;
    dl.device_id = r->device_id;
    dl.seq = r->seq;
    dl.device_ts_ms = r->device_ts_ms;
    dl.received_at_us = r->received_at_us;
    dl.gateway_id = (char *)self->opts.gateway_id;
    dl.attempts = e->attempts;
    dl.stage = "crypto";
    dl.reason = reason;
    /* The only copy of the reading leaves the log with this: it goes along, sealed. */
    int sealed =
        gw_letter_seal(self->opts.ring, e->record_id, e->data, e->len, &dl.gateway_sealed.data,
                       &dl.gateway_sealed.len, &dl.gateway_key_version);
    if (sealed < 0) {
        lc_error("dead_letter_not_sealed", "device_id=%s seq=%" PRIu64 " err=\"%s\"", r->device_id,
                 r->seq, lc_strerror(sealed));
        lcore__v1__reading__free_unpacked(r, NULL);
        return sealed; /* kept in the log, retried next scan */
    }
    Lcore__V1__Query q = LCORE__V1__QUERY__INIT;
    q.body_case = LCORE__V1__QUERY__BODY_DEAD_LETTER;
    q.dead_letter = &dl;
    int err = 0;
    Lcore__V1__QueryReply *reply = lc_query_call(self->opts.store, &q, &err);
    int rc = reply && reply->status == LCORE__V1__QUERY_REPLY__STATUS__OK ? 0 : LC_ERR_UNAVAILABLE;
    if (rc == 0)
        lc_warn("reading_dead_lettered", "device_id=%s seq=%" PRIu64 " attempts=%u outcome=%s",
                r->device_id, r->seq, e->attempts, reply->message ? reply->message : "");
    else
        lc_warn("dead_letter_failed", "device_id=%s seq=%" PRIu64 " err=\"%s\"", r->device_id,
                r->seq, reply && reply->message ? reply->message : lc_strerror(err));
    if (reply)
        lcore__v1__query_reply__free_unpacked(reply, NULL);
    free(dl.gateway_sealed.data);
    sodium_memzero(r->jws.data, r->jws.len);
    lcore__v1__reading__free_unpacked(r, NULL);
    return rc;
}

/* Whether an overdue delivery is lost: a delivery made a whole timeout after it is already
 * acknowledged (workers and the store take readings roughly in order), or no ack came for a
 * timeout since the store was last away (nothing moves). Otherwise the acks still coming are
 * for readings sent before it, or the store has just come back: it waits in a queue that is
 * catching up, which is not an attempt. */
static int s_lost(const gw_relay_t *self, const s_entry_t *e, uint64_t now)
{
    uint64_t moved = self->last_ack_us > self->away_us ? self->last_ack_us : self->away_us;
    return self->acked_sent_us >= e->sent_us + e->wait_us || now - moved >= e->wait_us;
}

/* Readings whose ack is overdue go back to the front of the queue, or to the dead letters. */
static void s_scan(gw_relay_t *self)
{
    uint64_t now = lc_mono_us();
    /* Away: its ping fails, or no store is connected to the events socket (a store killed is
     * seen at once there, a ping only after its timeout). */
    int linked = !self->store_events || lc_zmq_peers_update(self->store_events) > 0;
    int ready = atomic_load(&self->store_ready) && linked;
    if (!ready)
        self->away_us = now;
    int dead_budget = S_DEAD_PER_TICK;
    s_list_t again = {0};
    uint64_t oldest = UINT64_MAX;
    if (self->unsent.head)
        oldest = self->unsent.head->durable_us;
    for (s_entry_t *e = self->suspects.head; e; e = e->next)
        oldest = e->durable_us < oldest ? e->durable_us : oldest;
    /* From the third delivery on (and always for the last one), one at a time. */
    uint32_t solo_from = self->opts.max_attempts < 3 ? self->opts.max_attempts : 3;
    for (s_entry_t *e = self->in_flight.head, *next; e; e = next) {
        next = e->next;
        oldest = e->durable_us < oldest ? e->durable_us : oldest;
        if (e->due_us > now)
            continue;
        if (self->solo == e)
            self->solo = NULL;
        if (!ready) {
            /* The store cannot write: the reading is waiting, not lost. Not an attempt. */
            e->due_us = now + s_timeout_us(self, 1);
            continue;
        }
        if (!s_lost(self, e, now)) {
            e->due_us = now + s_timeout_us(self, 1) / 4;
            lc_counter_inc(self->c_deferred);
            continue;
        }
        if (e->attempts >= self->opts.max_attempts) {
            if (dead_budget-- > 0 && s_dead_letter(self, e) == 0) {
                lc_counter_inc(self->c_dead);
                s_note_acked(self, e->record_id);
                s_drop(self, e);
            } else {
                e->due_us = now + s_timeout_us(self, 1);
            }
            continue;
        }
        s_unlink(&self->in_flight, e);
        if (e->attempts + 1 >= solo_from) {
            e->where = S_SUSPECT;
            s_push_back(&self->suspects, e);
        } else {
            e->where = S_UNSENT;
            s_push_back(&again, e);
        }
    }
    /* Overdue readings go first, in their original order. */
    while (again.tail) {
        s_entry_t *e = again.tail;
        s_unlink(&again, e);
        s_push_front(&self->unsent, e);
    }
    s_log_acks(self);
    gw_wal_trim(self->wal, s_seg_keep_from(self));
    lc_gauge_set(self->g_in_flight, (double)self->in_flight.n);
    lc_gauge_set(self->g_unsent, (double)self->unsent.n);
    lc_gauge_set(self->g_suspects, (double)self->suspects.n);
    lc_gauge_set(self->g_oldest, oldest == UINT64_MAX ? 0 : (double)(now - oldest) / 1e6);
    lc_gauge_set(self->g_workers, (double)lc_zmq_peers_update(self->workers));
}

/* A heartbeat: an empty Reading that the workers pass through unsealed to the store. Skipped
 * when no worker can take it (the store's heartbeat age then shows the stall). */
static void s_heartbeat(gw_relay_t *self)
{
    Lcore__V1__Reading hb = LCORE__V1__READING__INIT;
    hb.version = 1;
    hb.heartbeat = 1;
    hb.received_at_us = lc_now_us();
    hb.gateway_id = (char *)self->opts.gateway_id;
    uint8_t *p = lc_zmq_batch_add(&self->batch, lcore__v1__reading__get_packed_size(&hb));
    if (p)
        lcore__v1__reading__pack(&hb, p);
    if (p && lc_zmq_batch_send(&self->batch, self->readings, ZMQ_DONTWAIT) == 0)
        lc_counter_inc(self->c_heartbeats);
    lc_zmq_batch_clear(&self->batch);
}

/* -- the actor --------------------------------------------------------------------------- */

static void s_on_durable(void *arg, uint64_t segment, const uint8_t record_id[32],
                         const uint8_t *data, size_t len)
{
    s_take(arg, segment, record_id, data, len);
}

static void s_actor(zsock_t *pipe, void *arg)
{
    gw_relay_t *self = arg;
    zsock_signal(pipe, 0);
    uint64_t next_scan = lc_mono_us() + S_TICK_MS * 1000u;
    uint64_t next_heartbeat = lc_mono_us();
    uint64_t drain_until = 0; /* set on $TERM */
    for (;;) {
        int want_out = (self->unsent.head || (self->suspects.head && !self->solo)) &&
                       self->in_flight.n < self->opts.window;
        zmq_pollitem_t items[4] = {
            {zsock_resolve(pipe), 0, ZMQ_POLLIN, 0},
            {zsock_resolve(self->events), 0, ZMQ_POLLIN, 0},
            {NULL, gw_wal_wakeup_fd(self->wal), ZMQ_POLLIN, 0},
            {zsock_resolve(self->readings), 0, ZMQ_POLLOUT, 0},
        };
        uint64_t now = lc_mono_us();
        long timeout = next_scan > now ? (long)((next_scan - now) / 1000u) + 1 : 0;
        if (gw_wal_has_pending(self->wal))
            timeout = 0;
        if (zmq_poll(items, want_out ? 4 : 3, timeout) < 0 && errno != EINTR)
            break;
        if (items[0].revents & ZMQ_POLLIN) {
            char *cmd = zstr_recv(pipe);
            int term = !cmd || strcmp(cmd, "$TERM") == 0;
            zstr_free(&cmd);
            if (term && !drain_until) {
                drain_until = lc_mono_us() + (uint64_t)self->opts.drain_ms * 1000u;
                lc_info("relay_draining", "in_flight=%zu unsent=%zu", self->in_flight.n,
                        self->unsent.n);
            }
        }
        if (items[2].revents & ZMQ_POLLIN)
            gw_wal_clear_wakeup(self->wal);
        if (gw_wal_sync(self->wal, s_on_durable, self) < 0 && !drain_until)
            lc_error("relay_log_failed", "in_flight=%zu", self->in_flight.n);
        s_take_acks(self);
        s_send(self);
        now = lc_mono_us();
        if (now >= next_scan) {
            s_scan(self);
            next_scan = now + S_TICK_MS * 1000u;
        }
        if (self->opts.heartbeat_ms && now >= next_heartbeat && !drain_until) {
            s_heartbeat(self);
            next_heartbeat = now + (uint64_t)self->opts.heartbeat_ms * 1000u;
        }
        if (drain_until &&
            (now >= drain_until || (!self->in_flight.n && !self->unsent.n && !self->suspects.n)))
            break;
    }
    /* The last acks reach the log; what is still unacknowledged is replayed on the next start. */
    if (gw_wal_sync(self->wal, s_on_durable, self) == 0)
        lc_info("relay_stopped", "in_flight=%zu unsent=%zu", self->in_flight.n, self->unsent.n);
}

/* -- life cycle -------------------------------------------------------------------------- */

gw_relay_t *gw_relay_new(const gw_relay_opts_t *opts)
{
    gw_relay_t *self = calloc(1, sizeof *self);
    if (!self || !(self->table = zhashx_new())) {
        free(self);
        return NULL;
    }
    self->opts = *opts;
    zhashx_set_key_hasher(self->table, s_hash);
    zhashx_set_key_comparator(self->table, s_compare);
    zhashx_set_key_duplicator(self->table, NULL); /* keys point into their entries */
    zhashx_set_key_destructor(self->table, NULL);
    randombytes_buf(&self->rng, sizeof self->rng);
    lc_metrics_t *m = opts->metrics;
    self->c_sent = lc_metrics_counter(m, "lcore_gateway_readings_sent_total",
                                      "Readings handed to a crypto worker (first delivery)", NULL);
    self->c_redelivered =
        lc_metrics_counter(m, "lcore_gateway_readings_redelivered_total",
                           "Readings sent again after their ack was overdue", NULL);
    self->c_deferred = lc_metrics_counter(
        m, "lcore_gateway_redeliveries_deferred_total",
        "Overdue deliveries given more time, not counted as lost: acks were still coming for "
        "readings sent before them, or the store had just come back",
        NULL);
    self->c_conflicts = lc_metrics_counter(
        m, "lcore_gateway_seq_conflicts_total",
        "Readings whose (device_id, seq) holds another reading: refused with 409 (gateway), or "
        "accepted then kept aside in seq_conflicts (store)",
        "where=\"store\"");
    self->c_replayed = lc_metrics_counter(
        m, "lcore_gateway_dead_letters_replayed_total",
        "Dead-lettered readings sent back by the store (lcore-cli dead-letters replay) and logged "
        "again",
        NULL);
    self->c_replay_bad = lc_metrics_counter(
        m, "lcore_gateway_dead_letter_replays_refused_total",
        "Replayed dead letters that did not open with this gateway's key ring, or failed to log",
        NULL);
    self->c_acked = lc_metrics_counter(m, "lcore_gateway_acked_total",
                                       "Readings the store acknowledged as committed", NULL);
    self->c_dead = lc_metrics_counter(m, "lcore_gateway_dead_letters_total",
                                      "Readings given up after max attempts (dead-lettered)", NULL);
    self->c_dups =
        lc_metrics_counter(m, "lcore_gateway_readings_duplicate_total",
                           "Readings logged again while an earlier copy awaited its ack", NULL);
    self->c_bad =
        lc_metrics_counter(m, "lcore_gateway_bad_messages_total",
                           "Undecodable or unknown-version messages dropped", "socket=\"events\"");
    self->c_blocked = lc_metrics_counter(
        m, "lcore_gateway_send_blocked_total",
        "Times no crypto worker could take a reading (queues full or none)", NULL);
    self->g_in_flight = lc_metrics_gauge(m, "lcore_gateway_readings_in_flight",
                                         "Readings sent and awaiting the store's ack", NULL);
    self->g_unsent = lc_metrics_gauge(m, "lcore_gateway_readings_unsent",
                                      "Durable readings waiting for a crypto worker", NULL);
    self->g_suspects =
        lc_metrics_gauge(m, "lcore_gateway_readings_suspect",
                         "Readings lost twice, redelivered one at a time to isolate poison", NULL);
    self->g_oldest = lc_metrics_gauge(
        m, "lcore_gateway_oldest_unacked_age_seconds",
        "Age of the oldest reading on disk not yet acknowledged by the store (0: none)", NULL);
    self->g_workers = lc_metrics_gauge(m, "lcore_gateway_workers_connected",
                                       "Crypto worker connections on the readings socket", NULL);
    self->c_heartbeats = lc_metrics_counter(m, "lcore_gateway_heartbeats_sent_total",
                                            "Heartbeats sent through the pipeline", NULL);
    self->h_ack_seconds = lc_metrics_histogram(m, "lcore_gateway_ack_duration_seconds",
                                               "Time from a reading on disk to the store's ack",
                                               NULL, lc_latency_buckets, lc_latency_buckets_len);
    static const double batch_buckets[] = {1, 2, 4, 8, 16, 32, 64, 128};
    self->h_batch = lc_metrics_histogram(m, "lcore_gateway_batch_readings",
                                         "Readings per message to the crypto workers", NULL,
                                         batch_buckets, LC_ARRAY_LEN(batch_buckets));
    return self;
}

int gw_relay_start(gw_relay_t *self, gw_wal_t *wal)
{
    self->wal = wal;
    gw_wal_release(wal, self->replay_released);
    self->replay_released = 0;
    gw_wal_trim(wal, s_seg_keep_from(self));
    if (self->unsent.n)
        lc_info("relay_replaying", "readings=%zu", self->unsent.n);
    /* Linger 0: what ZeroMQ still holds at exit is in the log and is redelivered. */
    lc_zmq_opts_t ro = {.name = "readings",
                        .type = ZMQ_PUSH,
                        .endpoints = self->opts.readings_bind,
                        .bind = 1,
                        .roles = LC_ROLE_CRYPTO,
                        .hwm = self->opts.hwm,
                        .max_msg = LC_ZMQ_SEND_ONLY_MAX};
    lc_zmq_opts_t eo = {.name = "events",
                        .type = ZMQ_SUB,
                        .endpoints = self->opts.events_connect,
                        .roles = LC_ROLE_STORE,
                        .hwm = 100000,
                        /* a replayed dead letter carries a whole reading */
                        .max_msg = LC_ZMQ_EVENT_MAX + (int64_t)self->opts.max_reading_bytes +
                                   LC_ZMQ_ENVELOPE_OVERHEAD};
    self->readings = lc_zmq_open(&ro, self->opts.curve, &self->workers);
    self->events = lc_zmq_open(&eo, self->opts.curve, &self->store_events);
    if (!self->readings || !self->events)
        return LC_ERR_UNAVAILABLE;
    char topic[96];
    snprintf(topic, sizeof topic, "ack/%s/", self->opts.gateway_id);
    zsock_set_subscribe(self->events, topic);
    snprintf(topic, sizeof topic, "replay/%s/", self->opts.gateway_id);
    zsock_set_subscribe(self->events, topic);
    zsock_set_subscribe(self->events, "changes/");
    if (!(self->actor = zactor_new(s_actor, self)))
        return LC_ERR_NOMEM;
    return 0;
}

void gw_relay_set_store_ready(gw_relay_t *self, int ready)
{
    atomic_store(&self->store_ready, ready);
}

void gw_relay_destroy(gw_relay_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    gw_relay_t *self = *self_p;
    zactor_destroy(&self->actor);
    lc_zmq_peers_destroy(&self->workers);
    lc_zmq_peers_destroy(&self->store_events);
    zsock_destroy(&self->readings);
    zsock_destroy(&self->events);
    s_list_t *lists[] = {&self->unsent, &self->in_flight, &self->suspects};
    for (size_t i = 0; i < LC_ARRAY_LEN(lists); i++)
        while (lists[i]->head) {
            s_entry_t *e = lists[i]->head;
            s_unlink(lists[i], e);
            sodium_memzero(e->data, e->len);
            free(e);
        }
    zhashx_destroy(&self->table);
    lc_zmq_batch_free(&self->batch);
    free(self->segs);
    free(self->acked);
    free(self);
    *self_p = NULL;
}
