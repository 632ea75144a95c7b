/* ch_pgarray.c: see ch_pgarray.h. */
#include "ch_pgarray.h"

#include <string.h>

static uint8_t *s_be32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        *p++ = (uint8_t)(v >> (24 - 8 * i));
    return p;
}

size_t ch_pgarray_size(size_t elem_len, size_t n)
{
    return 20 + n * (4 + elem_len);
}

size_t ch_pgarray_encode(uint8_t *out, uint32_t elem_oid, const uint8_t *elems, size_t stride,
                         size_t elem_len, size_t n)
{
    uint8_t *p = out;
    p = s_be32(p, 1);           /* dimensions */
    p = s_be32(p, 0);           /* no NULLs */
    p = s_be32(p, elem_oid);    /* element type */
    p = s_be32(p, (uint32_t)n); /* length of the dimension */
    p = s_be32(p, 1);           /* lower bound */
    for (size_t i = 0; i < n; i++) {
        p = s_be32(p, (uint32_t)elem_len);
        memcpy(p, elems + i * stride, elem_len);
        p += elem_len;
    }
    return (size_t)(p - out);
}

void ch_pgarray_int8(uint8_t out[8], int64_t v)
{
    for (int i = 0; i < 8; i++)
        out[i] = (uint8_t)((uint64_t)v >> (56 - 8 * i));
}
