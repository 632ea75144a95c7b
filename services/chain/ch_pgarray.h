/* ch_pgarray.h: one-dimensional arrays in PostgreSQL's binary wire format (what array_recv reads),
 * so ch_db can pass a batch's record ids and leaves as two binary parameters: nothing for the
 * server to parse or hex-decode. Pure functions; unit-tested. */
#ifndef CH_PGARRAY_H
#define CH_PGARRAY_H

#include <stddef.h>
#include <stdint.h>

#define CH_PGARRAY_OID_BYTEA 17u
#define CH_PGARRAY_OID_INT8 20u

/* Bytes ch_pgarray_encode writes for n elements of elem_len bytes. */
size_t ch_pgarray_size(size_t elem_len, size_t n);
/* Writes the array of n elements (no NULLs, lower bound 1) of type elem_oid; element i is the
 * elem_len bytes at elems + i * stride, already in the type's binary form. Returns its length. */
size_t ch_pgarray_encode(uint8_t *out, uint32_t elem_oid, const uint8_t *elems, size_t stride,
                         size_t elem_len, size_t n);
/* An int8 value's binary form (8 bytes, big-endian). */
void ch_pgarray_int8(uint8_t out[8], int64_t v);

#endif
