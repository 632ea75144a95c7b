/* lc_common.c: error strings, clocks and buffer growth. */
#include "lc_common.h"

#include <stdlib.h>
#include <time.h>

const char *lc_strerror(int err)
{
    switch (err) {
    case LC_OK:
        return "ok";
    case LC_ERR_NOMEM:
        return "out of memory";
    case LC_ERR_INVALID:
        return "invalid input";
    case LC_ERR_SIGNATURE:
        return "signature or tag did not verify";
    case LC_ERR_NOTFOUND:
        return "not found";
    case LC_ERR_IO:
        return "i/o error";
    case LC_ERR_TOOBIG:
        return "too large";
    case LC_ERR_UNSUPPORTED:
        return "unsupported";
    case LC_ERR_CONFLICT:
        return "conflict";
    case LC_ERR_TIMEOUT:
        return "timed out";
    case LC_ERR_UNAVAILABLE:
        return "unavailable";
    case LC_ERR_FULL:
        return "at its limit";
    default:
        return "unknown error";
    }
}

static uint64_t s_clock_us(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

uint64_t lc_now_us(void)
{
    return s_clock_us(CLOCK_REALTIME);
}
uint64_t lc_now_ms(void)
{
    return s_clock_us(CLOCK_REALTIME) / 1000u;
}
uint64_t lc_mono_us(void)
{
    return s_clock_us(CLOCK_MONOTONIC);
}

void *lc_grow(void *buf, size_t *cap, size_t need, size_t first)
{
    if (need <= *cap)
        return buf;
    size_t c = *cap ? *cap : first;
    while (c < need)
        c = c > SIZE_MAX / 2 ? need : c * 2;
    void *p = realloc(buf, c);
    if (p)
        *cap = c;
    return p;
}
