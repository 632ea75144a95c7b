/* fuzz_st_writer.c: the store's writer's intake (st_writer_take: a worker's SealedBatch decoded,
 * and each SealedRecord in it validated before it joins the write batch). Input: a sequence of
 * messages, each a 2-byte little-endian length and that many bytes (a short last one takes what
 * is left), taken in turn by one writer (no database: nothing is flushed) until its write batch
 * is full. A second writer takes each record of a message that decodes within the batch bounds
 * on its own (in a batch of one): a record that joins it must be valid, and the first writer
 * must take exactly as many records of the message. The writers free their batches when
 * destroyed. */
#include "st_writer.h"

#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_support.h"
#include "lc_log.h"
#include "lc_record.h"
#include "lc_seal.h"
#include "lc_zmq.h"

#define S_BATCH 8
#define S_MAX_CIPHERTEXT (4096 + LC_SEAL_OVERHEAD)

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    lc_log_init("fuzz_st_writer", LC_LOG_ERROR); /* one warning per dropped message otherwise */
    return 0;
}

/* The fields the database relies on, for a message the writer kept. */
static void s_check_kept(const uint8_t *msg, size_t len)
{
    Lcore__V1__SealedRecord *r = lcore__v1__sealed_record__unpack(NULL, len, msg);
    assert(r && r->version == 1 && !r->heartbeat);
    assert(lc_device_id_valid(r->device_id, strlen(r->device_id)));
    assert(r->seq <= INT64_MAX && r->key_version >= 1 && r->key_version <= INT32_MAX);
    assert(r->ciphertext.len > LC_SEAL_OVERHEAD && r->ciphertext.len <= S_MAX_CIPHERTEXT);
    assert(strlen(r->gateway_id) >= 1 && strlen(r->gateway_id) <= ST_GATEWAY_ID_MAX);
    uint8_t id[LC_RECORD_ID_LEN];
    lc_record_id(id, r->device_id, strlen(r->device_id), r->seq);
    assert(r->record_id.len == LC_RECORD_ID_LEN && memcmp(id, r->record_id.data, sizeof id) == 0);
    lcore__v1__sealed_record__free_unpacked(r, NULL);
}

/* Takes each record of message msg into w alone, checking those it keeps; returns how many. */
static size_t s_take_each(st_writer_t *w, const uint8_t *msg, size_t len)
{
    Lcore__V1__SealedBatch *b = lcore__v1__sealed_batch__unpack(NULL, len, msg);
    size_t kept = 0;
    if (b && b->version == 1 && lc_zmq_batch_within(b->n_records, len)) {
        for (size_t i = 0; i < b->n_records; i++) {
            lc_zmq_batch_t one = {0};
            uint8_t *p = lc_zmq_batch_add(&one, b->records[i].len);
            assert(p);
            memcpy(p, b->records[i].data, b->records[i].len);
            size_t before = st_writer_pending(w);
            st_writer_take(w, one.buf, one.len);
            size_t after = st_writer_pending(w);
            assert(after == before || after == before + 1);
            if (after > before) {
                s_check_kept(b->records[i].data, b->records[i].len);
                kept++;
            }
            lc_zmq_batch_free(&one);
        }
    }
    if (b)
        lcore__v1__sealed_batch__free_unpacked(b, NULL);
    return kept;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    lc_metrics_t *m = lc_metrics_new();
    st_writer_t *w = m ? st_writer_new(NULL, NULL, S_BATCH, 50, S_MAX_CIPHERTEXT, m) : NULL;
    /* Room for every record of a full batch of messages: it never fills. */
    st_writer_t *each =
        m ? st_writer_new(NULL, NULL, S_BATCH * LC_ZMQ_BATCH_MAX, 50, S_MAX_CIPHERTEXT, m) : NULL;
    for (size_t off = 0; w && each && off + 2 <= size && !st_writer_full(w);) {
        size_t len = (size_t)data[off] | (size_t)data[off + 1] << 8;
        off += 2;
        if (len > size - off)
            len = size - off;
        uint8_t *msg = fz_copy(data + off, len);
        if (!msg)
            break;
        size_t before = st_writer_pending(w);
        st_writer_take(w, msg, len);
        size_t after = st_writer_pending(w);
        assert(after - before == s_take_each(each, msg, len));
        assert((after != 0) == (st_writer_deadline(w) != 0));
        free(msg);
        off += len;
    }
    st_writer_destroy(&w);
    st_writer_destroy(&each);
    lc_metrics_destroy(&m);
    return 0;
}
