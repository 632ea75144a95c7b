/* lc_curlbuf.h: the receive side of a libcurl transfer: a write callback that appends the answer
 * body to a heap buffer that grows as needed and stays NUL-terminated. A body larger than
 * LC_CURLBUF_MAX fails the transfer (CURLE_WRITE_ERROR): such an answer means a broken peer. One
 * buffer per easy handle, reused for every transfer; used by lc_rpc and lcore-sim's pool. */
#ifndef LC_CURLBUF_H
#define LC_CURLBUF_H

#include <stddef.h>

#define LC_CURLBUF_MAX (16u * 1024 * 1024)

/* Zero-initialised is empty. data is NULL until the first byte arrives. */
typedef struct {
    char *data;
    size_t len, cap;
} lc_curlbuf_t;

/* CURLOPT_WRITEFUNCTION; CURLOPT_WRITEDATA is the lc_curlbuf_t. Returns nmemb * size, or 0 to
 * abort (over LC_CURLBUF_MAX, out of memory). */
size_t lc_curlbuf_write(char *ptr, size_t size, size_t nmemb, void *userdata);
/* Empties the buffer before the next transfer; the memory is kept. */
void lc_curlbuf_reset(lc_curlbuf_t *b);
/* The body received so far, NUL-terminated: "" when nothing arrived. Borrowed. */
const char *lc_curlbuf_text(const lc_curlbuf_t *b);
void lc_curlbuf_free(lc_curlbuf_t *b);

#endif
