/* lc_rlp.c: RLP encoder (sticky-error byte buffer) and strict decoder. */
#include "lc_rlp.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#define S_SHORT_MAX 55 /* longest payload with a one-byte header */
#define S_STRING_BASE 0x80
#define S_LIST_BASE 0xc0
#define S_HEADER_MAX 9 /* one byte + up to 8 length bytes */

void lc_rlp_buf_init(lc_rlp_buf_t *b)
{
    memset(b, 0, sizeof *b);
}

void lc_rlp_buf_init_fixed(lc_rlp_buf_t *b, uint8_t *mem, size_t cap)
{
    memset(b, 0, sizeof *b);
    b->data = mem;
    b->cap = cap;
    b->fixed = true;
}

void lc_rlp_buf_free(lc_rlp_buf_t *b)
{
    if (!b->fixed)
        free(b->data);
    lc_rlp_buf_init(b);
}

uint8_t *lc_rlp_buf_take(lc_rlp_buf_t *b, size_t *len)
{
    *len = 0;
    if (b->err != 0 || b->fixed || b->len == 0)
        return NULL;
    uint8_t *p = b->data;
    *len = b->len;
    lc_rlp_buf_init(b);
    return p;
}

int lc_rlp_buf_error(const lc_rlp_buf_t *b)
{
    return b->err;
}

/* Makes room for extra more bytes; records the error and returns it when it cannot. */
static int s_reserve(lc_rlp_buf_t *b, size_t extra)
{
    if (b->err != 0)
        return b->err;
    if (extra > SIZE_MAX - b->len) {
        b->err = LC_ERR_TOOBIG;
        return b->err;
    }
    size_t need = b->len + extra;
    if (need <= b->cap)
        return 0;
    if (b->fixed) {
        b->err = LC_ERR_TOOBIG;
        return b->err;
    }
    size_t cap = b->cap < 64 ? 64 : b->cap;
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    uint8_t *p = realloc(b->data, cap);
    if (p == NULL) {
        b->err = LC_ERR_NOMEM;
        return b->err;
    }
    b->data = p;
    b->cap = cap;
    return 0;
}

static void s_write(lc_rlp_buf_t *b, const uint8_t *p, size_t len)
{
    if (s_reserve(b, len) != 0 || len == 0)
        return;
    memcpy(b->data + b->len, p, len);
    b->len += len;
}

/* Writes the header for a payload of len bytes into hdr; returns its length. */
static size_t s_header(uint8_t hdr[S_HEADER_MAX], uint8_t base, size_t len)
{
    if (len <= S_SHORT_MAX) {
        hdr[0] = (uint8_t)(base + len);
        return 1;
    }
    size_t n = 0;
    for (size_t v = len; v != 0; v >>= 8)
        n++;
    hdr[0] = (uint8_t)(base + S_SHORT_MAX + n);
    for (size_t i = 0; i < n; i++)
        hdr[n - i] = (uint8_t)(len >> (8 * i));
    return 1 + n;
}

void lc_rlp_put_raw(lc_rlp_buf_t *b, const uint8_t *p, size_t len)
{
    s_write(b, p, len);
}

void lc_rlp_put_bytes(lc_rlp_buf_t *b, const uint8_t *p, size_t len)
{
    if (len == 1 && p[0] < S_STRING_BASE) {
        s_write(b, p, 1);
        return;
    }
    uint8_t hdr[S_HEADER_MAX];
    s_write(b, hdr, s_header(hdr, S_STRING_BASE, len));
    s_write(b, p, len);
}

void lc_rlp_put_uint_be(lc_rlp_buf_t *b, const uint8_t *be, size_t len)
{
    while (len > 0 && be[0] == 0) {
        be++;
        len--;
    }
    lc_rlp_put_bytes(b, be, len);
}

void lc_rlp_put_uint(lc_rlp_buf_t *b, uint64_t v)
{
    uint8_t be[8];
    for (int i = 0; i < 8; i++)
        be[i] = (uint8_t)(v >> (8 * (7 - i)));
    lc_rlp_put_uint_be(b, be, sizeof be);
}

size_t lc_rlp_list_begin(const lc_rlp_buf_t *b)
{
    return b->len;
}

void lc_rlp_list_end(lc_rlp_buf_t *b, size_t mark)
{
    if (b->err != 0)
        return;
    assert(mark <= b->len); /* a mark from lc_rlp_list_begin on this buffer */
    size_t payload = b->len - mark;
    uint8_t hdr[S_HEADER_MAX];
    size_t h = s_header(hdr, S_LIST_BASE, payload);
    if (s_reserve(b, h) != 0)
        return;
    memmove(b->data + mark + h, b->data + mark, payload);
    memcpy(b->data + mark, hdr, h);
    b->len += h;
}

/* Parses the item at the start of in[0..len): *used receives its total length. Enforces the
 * canonical form: a single byte below 0x80 is never wrapped, a payload of up to 55 bytes uses
 * the short header, and a long length has no leading zero byte. */
static int s_parse(lc_rlp_item_t *out, size_t *used, const uint8_t *in, size_t len)
{
    if (len == 0)
        return LC_ERR_INVALID;
    uint8_t b = in[0];
    bool is_list = b >= S_LIST_BASE;
    size_t hdr = 1;
    size_t plen;

    if (b < S_STRING_BASE) {
        *out = (lc_rlp_item_t){in, 1, false, in, 1};
        *used = 1;
        return 0;
    }
    uint8_t base = is_list ? S_LIST_BASE : S_STRING_BASE;
    if (b <= base + S_SHORT_MAX) {
        plen = (size_t)(b - base);
    } else {
        size_t ll = (size_t)(b - base - S_SHORT_MAX);
        if (ll > len - 1 || in[1] == 0)
            return LC_ERR_INVALID;
        plen = 0;
        for (size_t i = 0; i < ll; i++) {
            if (plen > (SIZE_MAX >> 8))
                return LC_ERR_INVALID;
            plen = (plen << 8) | in[1 + i];
        }
        if (plen <= S_SHORT_MAX)
            return LC_ERR_INVALID;
        hdr += ll;
    }
    if (plen > len - hdr)
        return LC_ERR_INVALID;
    if (!is_list && plen == 1 && in[hdr] < S_STRING_BASE)
        return LC_ERR_INVALID;
    *out = (lc_rlp_item_t){in + hdr, plen, is_list, in, hdr + plen};
    *used = hdr + plen;
    return 0;
}

int lc_rlp_decode(lc_rlp_item_t *out, const uint8_t *in, size_t len)
{
    size_t used = 0;
    int rc = s_parse(out, &used, in, len);
    if (rc != 0)
        return rc;
    return used == len ? 0 : LC_ERR_INVALID;
}

void lc_rlp_iter_init(lc_rlp_iter_t *it, const lc_rlp_item_t *list)
{
    it->p = list->payload;
    it->left = list->is_list ? list->len : 0;
}

int lc_rlp_iter_next(lc_rlp_iter_t *it, lc_rlp_item_t *out)
{
    if (it->left == 0)
        return LC_ERR_NOTFOUND;
    size_t used = 0;
    int rc = s_parse(out, &used, it->p, it->left);
    if (rc != 0)
        return rc;
    it->p += used;
    it->left -= used;
    return 0;
}

int lc_rlp_item_uint_be(uint8_t *out, size_t out_len, const lc_rlp_item_t *item)
{
    if (item->is_list || (item->len > 0 && item->payload[0] == 0))
        return LC_ERR_INVALID;
    if (item->len > out_len)
        return LC_ERR_TOOBIG;
    size_t pad = out_len - item->len;
    memset(out, 0, pad);
    if (item->len > 0)
        memcpy(out + pad, item->payload, item->len);
    return 0;
}

int lc_rlp_item_uint(uint64_t *out, const lc_rlp_item_t *item)
{
    uint8_t be[8];
    int rc = lc_rlp_item_uint_be(be, sizeof be, item);
    if (rc != 0)
        return rc;
    uint64_t v = 0;
    for (size_t i = 0; i < sizeof be; i++)
        v = (v << 8) | be[i];
    *out = v;
    return 0;
}
