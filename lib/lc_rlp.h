/* lc_rlp.h: Recursive Length Prefix (Ethereum yellow paper, appendix B).
 * Encoder: a byte buffer (lc_rlp_buf_t) that either grows on the heap or fills caller storage of
 * fixed size. Puts never fail on their own: the first error (LC_ERR_NOMEM, LC_ERR_TOOBIG) sticks
 * in the buffer, later puts do nothing, and lc_rlp_buf_error() reports it once at the end, so an
 * encoder of a dozen fields reads as a dozen lines. A list is opened with lc_rlp_list_begin(),
 * filled, and closed with lc_rlp_list_end(), which inserts the header in front of the payload.
 * Decoder: strict and canonical (the one encoding geth accepts), never reads past its input,
 * borrows from it (no allocation). Used by lc_ethtx and the chain relayer. */
#ifndef LC_RLP_H
#define LC_RLP_H

#include "lc_common.h"

#include <stdbool.h>

typedef struct {
    uint8_t *data;
    size_t len;
    size_t cap;
    int err;    /* first error, 0 if none */
    bool fixed; /* data is caller storage: never reallocated nor freed */
} lc_rlp_buf_t;

/* A growable heap buffer (starts empty) / a view over caller storage of cap bytes. */
void lc_rlp_buf_init(lc_rlp_buf_t *b);
void lc_rlp_buf_init_fixed(lc_rlp_buf_t *b, uint8_t *mem, size_t cap);
/* Frees heap storage (not caller storage); the buffer is then empty and may be reused. */
void lc_rlp_buf_free(lc_rlp_buf_t *b);
/* Hands the heap bytes to the caller (free() them) and leaves the buffer empty. NULL if the
 * buffer has an error, is fixed, or is empty. */
uint8_t *lc_rlp_buf_take(lc_rlp_buf_t *b, size_t *len);
/* 0, or the first error any put met. */
int lc_rlp_buf_error(const lc_rlp_buf_t *b) LC_WUR;

/* A byte string: one byte < 0x80 as itself, else 0x80+len (len <= 55) or 0xb7+len-of-len. */
void lc_rlp_put_bytes(lc_rlp_buf_t *b, const uint8_t *p, size_t len);
/* An unsigned integer: the big-endian bytes without leading zeros (0 is the empty string). */
void lc_rlp_put_uint(lc_rlp_buf_t *b, uint64_t v);
/* The same for a big-endian integer of any width (e.g. a 256-bit value); leading zeros dropped. */
void lc_rlp_put_uint_be(lc_rlp_buf_t *b, const uint8_t *be, size_t len);
/* Bytes copied as they are: an item encoded elsewhere, or a typed-transaction type byte. */
void lc_rlp_put_raw(lc_rlp_buf_t *b, const uint8_t *p, size_t len);
/* Opens a list: returns the mark to pass to lc_rlp_list_end. Lists nest. */
size_t lc_rlp_list_begin(const lc_rlp_buf_t *b);
void lc_rlp_list_end(lc_rlp_buf_t *b, size_t mark);

/* A decoded item, borrowing from the input. payload is the string's bytes or the list's
 * encoded items; raw/raw_len cover the whole item, header included. */
typedef struct {
    const uint8_t *payload;
    size_t len;
    bool is_list;
    const uint8_t *raw;
    size_t raw_len;
} lc_rlp_item_t;

/* Decodes the single item that is the whole of in[0..len). Returns 0 or LC_ERR_INVALID
 * (truncated, trailing bytes, or a non-canonical header). */
int lc_rlp_decode(lc_rlp_item_t *out, const uint8_t *in, size_t len) LC_WUR;

/* Walks the items of a list. next returns 0 and the next item, LC_ERR_NOTFOUND after the last,
 * or LC_ERR_INVALID if the payload is malformed. */
typedef struct {
    const uint8_t *p;
    size_t left;
} lc_rlp_iter_t;
void lc_rlp_iter_init(lc_rlp_iter_t *it, const lc_rlp_item_t *list);
int lc_rlp_iter_next(lc_rlp_iter_t *it, lc_rlp_item_t *out) LC_WUR;

/* Reads a canonical unsigned integer (a string without leading zero bytes): into a uint64_t, or
 * right-aligned into out[0..out_len) big-endian, zero-padded. LC_ERR_INVALID for a list or a
 * leading zero, LC_ERR_TOOBIG if it does not fit. */
int lc_rlp_item_uint(uint64_t *out, const lc_rlp_item_t *item) LC_WUR;
int lc_rlp_item_uint_be(uint8_t *out, size_t out_len, const lc_rlp_item_t *item) LC_WUR;

#endif
