/* gw_seq.c: (device_id, seq) conflicts seen at the gateway. See gw_seq.h. */
#include "gw_seq.h"

#include <czmq.h>
#include <pthread.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "lc_log.h"
#include "lcore.pb-c.h"

typedef struct {
    uint8_t record_id[LC_RECORD_ID_LEN]; /* first: the table's key */
    uint8_t reading_hash[LC_READING_HASH_LEN];
} s_noted_t;

struct gw_seq {
    lc_query_client_t *store;
    size_t max_entries;
    pthread_mutex_t lock;
    zhashx_t *table; /* record_id -> s_noted_t */
    lc_counter_t *conflicts, *not_noted, *store_unanswered, *store_checks;
    lc_gauge_t *noted;
};

/* The table's hash is keyed (SipHash, a key drawn at start): record ids are chosen by whoever
 * holds a device key, and must not be able to pile up in one chain. */
static uint8_t s_key[crypto_shorthash_KEYBYTES];
static pthread_once_t s_key_once = PTHREAD_ONCE_INIT;
static void s_key_init(void)
{
    randombytes_buf(s_key, sizeof s_key);
}
static size_t s_hash(const void *key)
{
    uint8_t h[crypto_shorthash_BYTES];
    crypto_shorthash(h, key, LC_RECORD_ID_LEN, s_key);
    size_t out;
    memcpy(&out, h, sizeof out);
    return out;
}
static int s_compare(const void *a, const void *b)
{
    return memcmp(a, b, LC_RECORD_ID_LEN);
}
static void s_free_item(void **item)
{
    free(*item);
    *item = NULL;
}

gw_seq_t *gw_seq_new(lc_query_client_t *store, size_t max_entries, lc_metrics_t *m)
{
    pthread_once(&s_key_once, s_key_init);
    gw_seq_t *self = calloc(1, sizeof *self);
    if (!self || !(self->table = zhashx_new())) {
        free(self);
        return NULL;
    }
    zhashx_set_key_hasher(self->table, s_hash);
    zhashx_set_key_comparator(self->table, s_compare);
    zhashx_set_key_duplicator(self->table, NULL);
    zhashx_set_key_destructor(self->table, NULL);
    zhashx_set_destructor(self->table, s_free_item);
    pthread_mutex_init(&self->lock, NULL);
    self->store = store;
    self->max_entries = max_entries;
    self->conflicts = lc_metrics_counter(
        m, "lcore_gateway_seq_conflicts_total",
        "Readings whose (device_id, seq) holds another reading: refused with 409 (gateway), or "
        "accepted then kept aside in seq_conflicts (store)",
        "where=\"gateway\"");
    self->not_noted =
        lc_metrics_counter(m, "lcore_gateway_seq_table_full_total",
                           "Readings logged without a conflict check entry (table at its bound: "
                           "the store decides for them)",
                           NULL);
    self->store_unanswered =
        lc_metrics_counter(m, "lcore_gateway_seq_check_unanswered_total",
                           "Conflict checks the store did not answer (the reading was accepted "
                           "and the store decides)",
                           NULL);
    self->store_checks = lc_metrics_counter(
        m, "lcore_gateway_seq_store_checks_total",
        "Readings below their device's next_seq checked against the store (get_record)", NULL);
    self->noted = lc_metrics_gauge(m, "lcore_gateway_seq_noted_readings",
                                   "Readings in the log the conflict check knows", NULL);
    return self;
}

void gw_seq_destroy(gw_seq_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    zhashx_destroy(&(*self_p)->table);
    pthread_mutex_destroy(&(*self_p)->lock);
    free(*self_p);
    *self_p = NULL;
}

/* Notes the reading unless its record_id is noted: 1 noted now, 0 noted before with the same
 * bytes, LC_ERR_CONFLICT noted with other bytes. */
static int s_note(gw_seq_t *self, const uint8_t *id, const uint8_t *hash)
{
    pthread_mutex_lock(&self->lock);
    int rc = 1;
    s_noted_t *n = zhashx_lookup(self->table, id);
    if (n) {
        rc = memcmp(n->reading_hash, hash, LC_READING_HASH_LEN) == 0 ? 0 : LC_ERR_CONFLICT;
    } else if (zhashx_size(self->table) >= self->max_entries || !(n = malloc(sizeof *n))) {
        lc_counter_inc(self->not_noted);
        rc = 0;
    } else {
        memcpy(n->record_id, id, LC_RECORD_ID_LEN);
        memcpy(n->reading_hash, hash, LC_READING_HASH_LEN);
        zhashx_insert(self->table, n->record_id, n);
        lc_gauge_set(self->noted, (double)zhashx_size(self->table));
    }
    pthread_mutex_unlock(&self->lock);
    return rc;
}

/* Asks the store: query q, the reply's status OK with the answer in *reply (caller frees), or
 * NULL (not found, or no answer: counted). */
static Lcore__V1__QueryReply *s_ask(gw_seq_t *self, Lcore__V1__Query *q)
{
    int err = 0;
    Lcore__V1__QueryReply *r = lc_query_call(self->store, q, &err);
    if (!r || (r->status != LCORE__V1__QUERY_REPLY__STATUS__OK &&
               r->status != LCORE__V1__QUERY_REPLY__STATUS__NOT_FOUND)) {
        lc_counter_inc(self->store_unanswered);
    } else if (r->status == LCORE__V1__QUERY_REPLY__STATUS__OK) {
        return r;
    }
    if (r)
        lcore__v1__query_reply__free_unpacked(r, NULL);
    return NULL;
}

/* 1 if the store holds the record with other bytes, 0 otherwise (not stored, the same bytes,
 * stored before reading hashes, or no answer). */
static int s_stored_differs(gw_seq_t *self, const gw_seq_reading_t *r)
{
    lc_counter_inc(self->store_checks);
    Lcore__V1__Query q = LCORE__V1__QUERY__INIT;
    q.body_case = LCORE__V1__QUERY__BODY_GET_RECORD;
    q.get_record = (ProtobufCBinaryData){LC_RECORD_ID_LEN, (uint8_t *)r->record_id};
    Lcore__V1__QueryReply *reply = s_ask(self, &q);
    int differs =
        reply && reply->record && reply->record->reading_hash.len == LC_READING_HASH_LEN &&
        memcmp(reply->record->reading_hash.data, r->reading_hash, LC_READING_HASH_LEN) != 0;
    if (reply)
        lcore__v1__query_reply__free_unpacked(reply, NULL);
    return differs;
}

/* One past the highest seq the store holds for the device now (0 if it cannot say). */
static uint64_t s_next_seq(gw_seq_t *self, const char *device_id)
{
    Lcore__V1__Query q = LCORE__V1__QUERY__INIT;
    q.body_case = LCORE__V1__QUERY__BODY_GET_DEVICE;
    q.get_device = (char *)device_id;
    Lcore__V1__QueryReply *reply = s_ask(self, &q);
    uint64_t next = reply && reply->device ? reply->device->next_seq : 0;
    if (reply)
        lcore__v1__query_reply__free_unpacked(reply, NULL);
    return next;
}

int gw_seq_check(gw_seq_t *self, const gw_seq_reading_t *r, uint64_t *next_seq)
{
    *next_seq = 0;
    /* Below next_seq the store may hold the seq: a device that lost its counter, or a retry. */
    int rc = r->seq < r->next_seq && self->store && s_stored_differs(self, r) ? LC_ERR_CONFLICT : 0;
    if (rc == 0)
        rc = s_note(self, r->record_id, r->reading_hash);
    if (rc == LC_ERR_CONFLICT) {
        lc_counter_inc(self->conflicts);
        if (self->store)
            *next_seq = s_next_seq(self, r->device_id);
        static lc_log_limit_t limit = LC_LOG_LIMIT_INIT;
        lc_log_limited(&limit, 10000, LC_LOG_INFO, "seq_conflict",
                       "device_id=%s seq=%llu where=gateway next_seq=%llu", r->device_id,
                       (unsigned long long)r->seq, (unsigned long long)*next_seq);
    }
    return rc;
}

void gw_seq_note_logged(gw_seq_t *self, const uint8_t record_id[LC_RECORD_ID_LEN],
                        const uint8_t *data, size_t len)
{
    Lcore__V1__Reading *r = lcore__v1__reading__unpack(NULL, len, data);
    if (r && r->reading_hash.len == LC_READING_HASH_LEN)
        (void)s_note(self, record_id, r->reading_hash.data);
    if (r) {
        sodium_memzero(r->jws.data, r->jws.len);
        lcore__v1__reading__free_unpacked(r, NULL);
    }
}

int gw_seq_reading_of(const uint8_t *data, size_t len, char device_id[LC_DEVICE_ID_MAX + 1],
                      uint64_t *seq)
{
    Lcore__V1__Reading *r = lcore__v1__reading__unpack(NULL, len, data);
    int ok = r && r->device_id && strlen(r->device_id) <= LC_DEVICE_ID_MAX;
    if (ok) {
        memcpy(device_id, r->device_id, strlen(r->device_id) + 1);
        *seq = r->seq;
    }
    if (r) {
        sodium_memzero(r->jws.data, r->jws.len);
        lcore__v1__reading__free_unpacked(r, NULL);
    }
    return ok ? 0 : -1;
}

void gw_seq_forget(gw_seq_t *self, const uint8_t record_id[LC_RECORD_ID_LEN])
{
    pthread_mutex_lock(&self->lock);
    zhashx_delete(self->table, record_id);
    lc_gauge_set(self->noted, (double)zhashx_size(self->table));
    pthread_mutex_unlock(&self->lock);
}

int gw_seq_logged(gw_seq_t *self, const uint8_t record_id[LC_RECORD_ID_LEN])
{
    pthread_mutex_lock(&self->lock);
    int found = zhashx_lookup(self->table, record_id) != NULL;
    pthread_mutex_unlock(&self->lock);
    return found;
}

size_t gw_seq_size(gw_seq_t *self)
{
    pthread_mutex_lock(&self->lock);
    size_t n = zhashx_size(self->table);
    pthread_mutex_unlock(&self->lock);
    return n;
}
