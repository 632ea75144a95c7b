/* test_zmq_batch.c: lc_zmq_batch, the messages of the readings and sealed links. What it
 * writes decodes with the generated code as a ReadingBatch (and a SealedBatch) holding the
 * entries in order; it stops taking entries at LC_ZMQ_BATCH_MAX, or at LC_ZMQ_BATCH_BYTES once
 * it holds one; an entry larger than that goes alone; a sent batch arrives whole and leaves the
 * batch empty (and its buffer wiped) for the next. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <czmq.h>
#include <stdlib.h>
#include <string.h>

#include "lc_zmq.h"
#include "lcore.pb-c.h"

/* Appends an entry of len bytes, each byte `fill`. */
static void s_add(lc_zmq_batch_t *b, size_t len, uint8_t fill)
{
    assert_true(lc_zmq_batch_fits(b, len));
    uint8_t *p = lc_zmq_batch_add(b, len);
    assert_non_null(p);
    memset(p, fill, len);
}

static void test_entries_decode_in_order(void **state)
{
    (void)state;
    lc_zmq_batch_t b = {0};
    size_t lens[] = {1, 0, 127, 128, 300, 16384};
    for (size_t i = 0; i < LC_ARRAY_LEN(lens); i++)
        s_add(&b, lens[i], (uint8_t)(i + 1));
    assert_int_equal(b.n, LC_ARRAY_LEN(lens));
    Lcore__V1__ReadingBatch *r = lcore__v1__reading_batch__unpack(NULL, b.len, b.buf);
    assert_non_null(r);
    assert_int_equal(r->version, 1);
    assert_int_equal(r->n_readings, LC_ARRAY_LEN(lens));
    for (size_t i = 0; i < LC_ARRAY_LEN(lens); i++) {
        assert_int_equal(r->readings[i].len, lens[i]);
        for (size_t k = 0; k < lens[i]; k++)
            assert_int_equal(r->readings[i].data[k], i + 1);
    }
    lcore__v1__reading_batch__free_unpacked(r, NULL);
    Lcore__V1__SealedBatch *s = lcore__v1__sealed_batch__unpack(NULL, b.len, b.buf);
    assert_non_null(s);
    assert_int_equal(s->n_records, LC_ARRAY_LEN(lens));
    lcore__v1__sealed_batch__free_unpacked(s, NULL);
    lc_zmq_batch_free(&b);
}

static void test_bounds(void **state)
{
    (void)state;
    lc_zmq_batch_t b = {0};
    for (size_t i = 0; i < LC_ZMQ_BATCH_MAX; i++)
        s_add(&b, 10, 7);
    assert_false(lc_zmq_batch_fits(&b, 1)); /* a full count */
    lc_zmq_batch_clear(&b);
    assert_int_equal(b.n, 0);
    /* Bytes: entries of 64 KiB fit three times, not four (framing included). */
    for (int i = 0; i < 3; i++)
        s_add(&b, 65536, 1);
    assert_false(lc_zmq_batch_fits(&b, 65536));
    assert_true(b.len <= LC_ZMQ_BATCH_BYTES);
    lc_zmq_batch_clear(&b);
    /* One entry over the bytes bound goes alone, and the batch then takes nothing more. */
    assert_true(lc_zmq_batch_fits(&b, LC_ZMQ_BATCH_BYTES * 2));
    s_add(&b, LC_ZMQ_BATCH_BYTES * 2, 3);
    assert_false(lc_zmq_batch_fits(&b, 1));
    assert_true((int64_t)b.len <= lc_zmq_batch_max_msg(LC_ZMQ_BATCH_BYTES * 2));
    lc_zmq_batch_free(&b);
}

static void test_send_whole_then_empty(void **state)
{
    (void)state;
    zsock_t *pull = zsock_new_pull("inproc://test-zmq-batch");
    zsock_t *push = zsock_new_push(">inproc://test-zmq-batch");
    assert_non_null(pull);
    assert_non_null(push);
    lc_zmq_batch_t b = {0};
    assert_int_equal(lc_zmq_batch_send(&b, push, 0), 0); /* empty: nothing goes */
    s_add(&b, 5, 0xaa);
    s_add(&b, 6, 0xbb);
    uint8_t *buf = b.buf;
    size_t len = b.len;
    assert_int_equal(lc_zmq_batch_send(&b, push, 0), 0);
    assert_int_equal(b.n, 0);
    assert_int_equal(b.len, 0);
    for (size_t i = 0; i < len; i++)
        assert_int_equal(buf[i], 0); /* wiped: entries may be plaintext */
    zsock_set_rcvtimeo(pull, 2000);
    zframe_t *f = zframe_recv(pull);
    assert_non_null(f);
    assert_int_equal(zframe_size(f), len);
    Lcore__V1__ReadingBatch *r = lcore__v1__reading_batch__unpack(NULL, len, zframe_data(f));
    assert_non_null(r);
    assert_int_equal(r->n_readings, 2);
    assert_int_equal(r->readings[1].len, 6);
    assert_int_equal(r->readings[1].data[0], 0xbb);
    lcore__v1__reading_batch__free_unpacked(r, NULL);
    zframe_destroy(&f);
    zsock_set_rcvtimeo(pull, 50);
    assert_null(f = zframe_recv(pull)); /* one message */
    lc_zmq_batch_free(&b);
    zsock_destroy(&push);
    zsock_destroy(&pull);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_entries_decode_in_order),
        cmocka_unit_test(test_bounds),
        cmocka_unit_test(test_send_whole_then_empty),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
