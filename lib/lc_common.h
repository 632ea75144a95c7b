/* lc_common.h: error codes and small helpers shared by every lcore module. */
#ifndef LC_COMMON_H
#define LC_COMMON_H

#include <stddef.h>
#include <stdint.h>

#define LC_WUR __attribute__((warn_unused_result))

/* Error codes: functions return 0 on success or one of these (negative). */
enum {
    LC_OK = 0,
    LC_ERR_NOMEM = -1,
    LC_ERR_INVALID = -2,   /* malformed input */
    LC_ERR_SIGNATURE = -3, /* signature or authentication tag did not verify */
    LC_ERR_NOTFOUND = -4,
    LC_ERR_IO = -5,
    LC_ERR_TOOBIG = -6,
    LC_ERR_UNSUPPORTED = -7,
    LC_ERR_CONFLICT = -8,
    LC_ERR_TIMEOUT = -9,
    LC_ERR_UNAVAILABLE = -10, /* a peer or the database is not reachable */
    LC_ERR_FULL = -11,        /* a bounded queue or log is at its limit */
};

const char *lc_strerror(int err);

/* Wall clock in microseconds / milliseconds since the epoch; monotonic clock in microseconds. */
uint64_t lc_now_us(void);
uint64_t lc_now_ms(void);
uint64_t lc_mono_us(void);

#define LC_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* Grows a buffer filled piece by piece to hold at least `need` bytes, like realloc: capacity
 * *cap (0 at first: `first`) doubles, so n bytes are copied O(log n) times, not once a piece.
 * Returns the buffer (buf itself when it is big enough) and updates *cap, or NULL when out of
 * memory (buf and *cap unchanged). */
void *lc_grow(void *buf, size_t *cap, size_t need, size_t first) LC_WUR;

#endif
