/* ch_feed.c: see ch_feed.h. */
#include "ch_feed.h"

#include <stdlib.h>
#include <string.h>

#include "lc_log.h"
#include "lc_query.h"
#include "lc_record.h"
#include "lc_zmq.h"

#define CH_FEED_STORES_MAX 256 /* store ids the relayer follows (positions answers are capped) */
#define CH_FEED_PAGE 1000      /* records asked for per records_after */
/* Catch-up pages per call, across stores, for about this long: the relayer's tick must come
 * round. */
#define CH_FEED_RUN_MS 500
#define CH_FEED_RECORDS_MAX 5000 /* in one message: a store's largest write batch */
#define CH_FEED_QUERY_TIMEOUT_MS 5000

typedef struct {
    char id[LC_STORE_ID_MAX + 1];
    uint64_t position; /* how far the relayer has taken this store's records in */
    uint64_t seen;     /* the store's own position, as far as the relayer has heard */
} s_store_t;

struct ch_feed {
    ch_db_t *db;
    zsock_t *events;
    lc_zmq_peers_t *peers;
    lc_query_client_t *stores_client;
    s_store_t stores[CH_FEED_STORES_MAX];
    size_t n_stores;
    int64_t catch_up_ms, compare_at; /* zclock_mono */
    int stores_answer;               /* the last store_positions was answered (logged on change) */
    int behind_any;                  /* the last catch-up left records to take (ch_feed_behind) */
    ch_feed_record_t *buf;           /* CH_FEED_RECORDS_MAX */
    lc_counter_t *taken, *from_events, *from_queries, *gaps, *bad_events, *bad_replies;
    lc_gauge_t *behind;
};

ch_feed_t *ch_feed_new(const ch_config_t *cfg, ch_db_t *db, lc_curve_t *curve, lc_metrics_t *m)
{
    ch_feed_t *self = calloc(1, sizeof *self);
    if (!self || !(self->buf = calloc(CH_FEED_RECORDS_MAX, sizeof *self->buf)))
        goto fail;
    self->db = db;
    self->catch_up_ms = cfg->catch_up_ms;
    lc_zmq_opts_t eo = {.name = "events",
                        .type = ZMQ_SUB,
                        .endpoints = cfg->events_connect,
                        .roles = LC_ROLE_STORE,
                        .hwm = 1000,
                        .max_msg = LC_ZMQ_EVENT_MAX};
    if (!(self->events = lc_zmq_open(&eo, curve, &self->peers)))
        goto fail;
    zsock_set_subscribe(self->events, "stored/");
    self->stores_client = lc_query_client_new(cfg->store_queries_connect, LC_ROLE_STORE,
                                              CH_FEED_QUERY_TIMEOUT_MS, curve);
    if (!self->stores_client)
        goto fail;
    static const char taken_help[] = "Records taken in from the stores, by how they came";
    self->from_events =
        lc_metrics_counter(m, "lcore_chain_feed_records_total", taken_help, "source=\"event\"");
    self->from_queries =
        lc_metrics_counter(m, "lcore_chain_feed_records_total", taken_help, "source=\"catch_up\"");
    self->gaps = lc_metrics_counter(
        m, "lcore_chain_feed_gaps_total",
        "Store messages that did not continue where the relayer stood (it caught up by query)",
        NULL);
    static const char bad_help[] = "Messages dropped as undecodable or invalid, by socket";
    self->bad_events =
        lc_metrics_counter(m, "lcore_chain_bad_messages_total", bad_help, "socket=\"events\"");
    self->bad_replies = lc_metrics_counter(m, "lcore_chain_bad_messages_total", bad_help,
                                           "socket=\"store_queries\"");
    self->behind = lc_metrics_gauge(
        m, "lcore_chain_feed_behind_records",
        "Positions the stores have committed and the relayer has not taken in yet (all stores)",
        NULL);
    return self;
fail:
    ch_feed_destroy(&self);
    return NULL;
}

void ch_feed_destroy(ch_feed_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    ch_feed_t *self = *self_p;
    lc_query_client_destroy(&self->stores_client);
    lc_zmq_peers_destroy(&self->peers);
    zsock_destroy(&self->events);
    free(self->buf);
    free(self);
    *self_p = NULL;
}

zsock_t *ch_feed_events(ch_feed_t *self)
{
    return self->events;
}

/* The store's entry, added (with the relayer's position read from the database) on first
 * sight. NULL when the database is away (*rc = LC_ERR_UNAVAILABLE) or the table is full. */
static s_store_t *s_store(ch_feed_t *self, const char *id, int *rc)
{
    *rc = 0;
    for (size_t i = 0; i < self->n_stores; i++)
        if (strcmp(self->stores[i].id, id) == 0)
            return &self->stores[i];
    if (self->n_stores == CH_FEED_STORES_MAX) {
        lc_warn("feed_stores_full", "store_id=%s max=%d", id, CH_FEED_STORES_MAX);
        *rc = LC_ERR_NOMEM;
        return NULL;
    }
    s_store_t *st = &self->stores[self->n_stores];
    memset(st, 0, sizeof *st);
    snprintf(st->id, sizeof st->id, "%s", id);
    if ((*rc = ch_db_feed_position(self->db, id, &st->position)) < 0)
        return NULL;
    st->seen = st->position;
    self->n_stores++;
    lc_info("feed_store", "store_id=%s position=%llu", id, (unsigned long long)st->position);
    return st;
}

/* NULL if the message can be taken in as it says, else what is wrong with it. */
static const char *s_invalid(const Lcore__V1__StoredRecords *m)
{
    if (m->version != 1)
        return "version";
    if (!m->store_id || !lc_store_id_valid(m->store_id, strlen(m->store_id)))
        return "store_id";
    if (m->upto < m->after || m->n_records > m->upto - m->after ||
        m->n_records > CH_FEED_RECORDS_MAX)
        return "range";
    uint64_t last = m->after;
    for (size_t i = 0; i < m->n_records; i++) {
        const Lcore__V1__StoredRecord *r = m->records[i];
        if (r->record_id.len != LC_RECORD_ID_LEN || r->envelope_hash.len != 32)
            return "field_length";
        if (r->position <= last || r->position > m->upto)
            return "position";
        last = r->position;
    }
    return NULL;
}

/* Takes m in if it continues where the relayer stands for its store. Returns the number of new
 * records, 0 when it does not continue (st->seen then says how far the store is), or an error. */
static int s_apply(ch_feed_t *self, s_store_t *st, const Lcore__V1__StoredRecords *m)
{
    if (m->upto > st->seen)
        st->seen = m->upto;
    if (st->position != m->after)
        return 0;
    for (size_t i = 0; i < m->n_records; i++) {
        const Lcore__V1__StoredRecord *r = m->records[i];
        ch_feed_record_t *o = &self->buf[i];
        memcpy(o->record_id, r->record_id.data, 32);
        memcpy(o->envelope_hash, r->envelope_hash.data, 32);
        o->position = r->position;
        o->stored_at_us = r->stored_at_us;
        o->received_at_us = r->received_at_us;
    }
    size_t inserted = 0;
    int rc =
        ch_db_feed_add(self->db, st->id, m->after, m->upto, self->buf, m->n_records, &inserted);
    if (rc == LC_ERR_CONFLICT) /* the database knows better: take its word, catch up from it */
        return ch_db_feed_position(self->db, st->id, &st->position);
    if (rc < 0)
        return rc;
    st->position = m->upto;
    return (int)inserted;
}

/* One queued message from the events socket: [topic][StoredRecords]. */
static int s_take_event(ch_feed_t *self, zmsg_t *msg)
{
    zframe_t *body = zmsg_last(msg);
    Lcore__V1__StoredRecords *m =
        zmsg_size(msg) == 2 && body
            ? lcore__v1__stored_records__unpack(NULL, zframe_size(body), zframe_data(body))
            : NULL;
    const char *why = m ? s_invalid(m) : "undecodable";
    int rc = 0;
    if (why) {
        lc_counter_inc(self->bad_events);
        static lc_log_limit_t limit = LC_LOG_LIMIT_INIT;
        lc_log_limited(&limit, 10000, LC_LOG_WARN, "feed_message_dropped", "reason=%s", why);
    } else {
        s_store_t *st = s_store(self, m->store_id, &rc);
        int gap = st && st->position < m->after;
        if (st && (rc = s_apply(self, st, m)) > 0)
            lc_counter_add(self->from_events, (uint64_t)rc);
        if (gap && rc >= 0) {
            lc_counter_inc(self->gaps);
            lc_info("feed_gap", "store_id=%s position=%llu message_after=%llu", st->id,
                    (unsigned long long)st->position, (unsigned long long)m->after);
        }
    }
    if (m)
        lcore__v1__stored_records__free_unpacked(m, NULL);
    return rc;
}

/* Asks a store for one page of st's records after where the relayer stands, and takes it in.
 * Returns the number of new records, or an error (LC_ERR_UNAVAILABLE: no store answered, or
 * the database is away). *level: the store has nothing more. */
static int s_catch_up_page(ch_feed_t *self, s_store_t *st, int *level)
{
    Lcore__V1__RecordsAfter ra = LCORE__V1__RECORDS_AFTER__INIT;
    ra.store_id = st->id;
    ra.after = st->position;
    ra.limit = CH_FEED_PAGE;
    Lcore__V1__Query q = LCORE__V1__QUERY__INIT;
    q.body_case = LCORE__V1__QUERY__BODY_RECORDS_AFTER;
    q.records_after = &ra;
    int err = 0;
    Lcore__V1__QueryReply *r = lc_query_call(self->stores_client, &q, &err);
    if (!r)
        return err == LC_ERR_INVALID ? (lc_counter_inc(self->bad_replies), err)
                                     : LC_ERR_UNAVAILABLE;
    int rc = LC_ERR_UNAVAILABLE;
    const Lcore__V1__StoredRecords *m = r->stored;
    if (r->status != LCORE__V1__QUERY_REPLY__STATUS__OK || !m) {
        lc_warn("feed_catch_up_refused", "store_id=%s status=%d message=\"%s\"", st->id,
                (int)r->status, r->message ? r->message : "");
    } else if (s_invalid(m) || strcmp(m->store_id, st->id) != 0 || m->after != st->position) {
        lc_counter_inc(self->bad_replies);
        rc = LC_ERR_INVALID;
    } else if ((rc = s_apply(self, st, m)) >= 0) {
        lc_counter_add(self->from_queries, (uint64_t)rc);
        *level = !m->more;
        if (*level)
            st->seen = m->upto; /* the store's word: what it had when it answered */
    }
    lcore__v1__query_reply__free_unpacked(r, NULL);
    return rc;
}

/* Every store's position, as the stores see it: a store the relayer has not heard of, or has
 * fallen behind, shows here. */
static int s_compare(ch_feed_t *self)
{
    Lcore__V1__Query q = LCORE__V1__QUERY__INIT;
    q.body_case = LCORE__V1__QUERY__BODY_STORE_POSITIONS;
    q.store_positions = 1;
    int err = 0, rc = 0;
    Lcore__V1__QueryReply *r = lc_query_call(self->stores_client, &q, &err);
    if (!r || r->status != LCORE__V1__QUERY_REPLY__STATUS__OK) {
        if (r)
            lcore__v1__query_reply__free_unpacked(r, NULL);
        return LC_ERR_UNAVAILABLE;
    }
    for (size_t i = 0; i < r->n_positions && rc >= 0; i++) {
        const Lcore__V1__StorePosition *p = r->positions[i];
        if (!p->store_id || !lc_store_id_valid(p->store_id, strlen(p->store_id))) {
            lc_counter_inc(self->bad_replies);
            continue;
        }
        s_store_t *st = s_store(self, p->store_id, &rc);
        if (st && p->position > st->seen)
            st->seen = p->position;
    }
    lcore__v1__query_reply__free_unpacked(r, NULL);
    return rc == LC_ERR_NOMEM ? 0 : rc;
}

/* Catches up with every store known to be ahead: at least a page each, pages for about
 * CH_FEED_RUN_MS in all. */
static int s_catch_up(ch_feed_t *self, int *taken)
{
    uint64_t behind = 0;
    int rc = 0;
    int64_t until = zclock_mono() + CH_FEED_RUN_MS;
    for (size_t i = 0; i < self->n_stores && rc >= 0; i++) {
        s_store_t *st = &self->stores[i];
        int level = 0;
        for (int page = 0; st->position < st->seen && !level && (!page || zclock_mono() < until);
             page++) {
            if ((rc = s_catch_up_page(self, st, &level)) < 0)
                break;
            *taken += rc;
        }
        behind += st->seen > st->position ? st->seen - st->position : 0;
    }
    lc_gauge_set(self->behind, (double)behind);
    self->behind_any = behind > 0 && rc >= 0;
    return rc < 0 ? rc : 0;
}

int ch_feed_run(ch_feed_t *self)
{
    int taken = 0, rc = 0;
    lc_zmq_peers_update(self->peers); /* counts refused handshakes and drops */
    zmsg_t *msg;
    while (rc >= 0 && (zsock_events(self->events) & ZMQ_POLLIN) &&
           (msg = zmsg_recv(self->events))) {
        rc = s_take_event(self, msg);
        taken += rc > 0 ? rc : 0;
        zmsg_destroy(&msg);
    }
    if (rc == LC_ERR_UNAVAILABLE)
        return rc;
    int64_t now = zclock_mono();
    if (now >= self->compare_at) {
        /* Soon again when no store answered (the relayer may start before the stores). */
        rc = s_compare(self);
        self->compare_at = now + (rc < 0 ? 1000 : self->catch_up_ms);
        if ((rc == 0) != self->stores_answer) {
            self->stores_answer = rc == 0;
            if (rc == 0)
                lc_info("feed_stores_answer", "stores=%zu", self->n_stores);
            else
                lc_warn("feed_stores_silent", "err=\"%s\"", lc_strerror(rc));
        }
    }
    rc = s_catch_up(self, &taken);
    if (rc < 0 && rc != LC_ERR_UNAVAILABLE)
        lc_warn("feed_catch_up_failed", "err=\"%s\"", lc_strerror(rc));
    /* Not reaching a store is not the relayer's failure (it anchors what it has); losing
     * PostgreSQL is. */
    return rc < 0 && !ch_db_ok(self->db) ? LC_ERR_UNAVAILABLE : taken;
}

int ch_feed_behind(const ch_feed_t *self)
{
    return self->behind_any;
}
