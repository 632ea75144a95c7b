/* lc_curlbuf.c: see lc_curlbuf.h. */
#include "lc_curlbuf.h"

#include <stdlib.h>
#include <string.h>

size_t lc_curlbuf_write(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    lc_curlbuf_t *b = userdata;
    size_t n = size * nmemb;
    if (b->len + n + 1 > b->cap) {
        if (b->len + n + 1 > LC_CURLBUF_MAX)
            return 0; /* aborts the transfer: CURLE_WRITE_ERROR */
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *data = realloc(b->data, cap);
        if (!data)
            return 0;
        b->data = data;
        b->cap = cap;
    }
    memcpy(b->data + b->len, ptr, n);
    b->len += n;
    b->data[b->len] = '\0';
    return n;
}

void lc_curlbuf_reset(lc_curlbuf_t *b)
{
    b->len = 0;
    if (b->data)
        b->data[0] = '\0';
}

const char *lc_curlbuf_text(const lc_curlbuf_t *b)
{
    return b->data ? b->data : "";
}

void lc_curlbuf_free(lc_curlbuf_t *b)
{
    free(b->data);
    *b = (lc_curlbuf_t){0};
}
