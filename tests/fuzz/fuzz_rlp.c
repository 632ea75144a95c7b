/* fuzz_rlp.c: the RLP decoder (lc_rlp_decode, lc_rlp_iter_next, lc_rlp_item_uint*) on hostile
 * bytes. lc_rlp_decode checks the outer item; the items inside a list are checked as they are
 * walked. Whatever decodes and walks without error is canonical, so it must re-encode, item by
 * item through the encoder, to exactly the input; and an integer it reads must encode back to
 * its item. */
#include "lc_rlp.h"

#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Nesting deeper than this is only walked, not re-encoded (the stack stays small). */
#define S_MAX_DEPTH 256

/* Re-encodes item into b; returns 0, or -1 if walking a list met a malformed item. */
static int s_reencode(lc_rlp_buf_t *b, const lc_rlp_item_t *item, int depth)
{
    assert(item->raw_len >= item->len && item->payload >= item->raw);
    assert(item->payload + item->len == item->raw + item->raw_len);
    if (!item->is_list) {
        uint64_t v;
        uint8_t be[32];
        if (lc_rlp_item_uint(&v, item) == 0) {
            lc_rlp_buf_t one;
            lc_rlp_buf_init(&one);
            lc_rlp_put_uint(&one, v);
            assert(lc_rlp_buf_error(&one) == 0);
            assert(one.len == item->raw_len && memcmp(one.data, item->raw, one.len) == 0);
            lc_rlp_buf_free(&one);
        }
        if (lc_rlp_item_uint_be(be, sizeof be, item) == 0)
            assert(item->len <= sizeof be);
        lc_rlp_put_bytes(b, item->payload, item->len);
        return 0;
    }
    if (depth >= S_MAX_DEPTH) {
        lc_rlp_put_raw(b, item->raw, item->raw_len);
        return 0;
    }
    size_t mark = lc_rlp_list_begin(b);
    lc_rlp_iter_t it;
    lc_rlp_item_t child;
    int rc;
    lc_rlp_iter_init(&it, item);
    while ((rc = lc_rlp_iter_next(&it, &child)) == 0)
        if (s_reencode(b, &child, depth + 1) != 0)
            return -1;
    if (rc != LC_ERR_NOTFOUND)
        return -1;
    lc_rlp_list_end(b, mark);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *in = malloc(size ? size : 1); /* exact size: reads past the end are seen */
    if (!in)
        return 0;
    memcpy(in, data, size);
    lc_rlp_item_t item;
    if (lc_rlp_decode(&item, in, size) == 0) {
        assert(item.raw == in && item.raw_len == size);
        lc_rlp_buf_t b;
        lc_rlp_buf_init(&b);
        if (s_reencode(&b, &item, 0) == 0) {
            assert(lc_rlp_buf_error(&b) == 0);
            assert(b.len == size && memcmp(b.data, in, size) == 0);
        }
        lc_rlp_buf_free(&b);
    }
    /* The input's bytes as a list payload: the iterator alone, on malformed payloads too. */
    lc_rlp_item_t list = {.payload = in, .len = size, .is_list = true, .raw = in, .raw_len = size};
    lc_rlp_iter_t it;
    lc_rlp_item_t child;
    lc_rlp_iter_init(&it, &list);
    while (lc_rlp_iter_next(&it, &child) == 0)
        assert(child.raw >= in && child.raw + child.raw_len <= in + size);
    free(in);
    return 0;
}
