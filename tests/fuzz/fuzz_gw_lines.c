/* fuzz_gw_lines.c: the request batch line splitter (gw_lines.h). Input: byte 0 sets max_line
 * (1..64), byte 1 seeds the chunking and the line after which the callback stops the splitter,
 * the rest is the body. The body is split whole, then fed in chunks of varying sizes: both must
 * report the same lines, and the same lines as a plain reference splitter (split at '\n', trailing
 * CR and spaces trimmed, empty lines skipped, lines over max_line reported without bytes). */
#include "gw_lines.h"

#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_support.h"

/* What the callback saw: each line as (len, kept?, bytes) appended to buf. */
typedef struct {
    uint8_t *buf;
    size_t len, cap;
    size_t lines, stop_after; /* stop the splitter after this many lines (0: never) */
} s_log_t;

static void s_put(s_log_t *l, const void *p, size_t n)
{
    assert(l->len + n <= l->cap);
    memcpy(l->buf + l->len, p, n);
    l->len += n;
}

static int s_on_line(void *arg, const char *line, size_t len)
{
    s_log_t *l = arg;
    uint8_t kept = line != NULL;
    assert(len > 0);
    s_put(l, &len, sizeof len);
    s_put(l, &kept, 1);
    if (line)
        s_put(l, line, len);
    l->lines++;
    return l->stop_after && l->lines == l->stop_after ? 7 : 0;
}

/* The reference: the whole body at once, by the definition in gw_lines.h. */
static void s_reference(s_log_t *l, const char *body, size_t n, size_t max_line)
{
    for (size_t start = 0; start < n;) {
        const char *nl = memchr(body + start, '\n', n - start);
        size_t end = nl ? (size_t)(nl - body) : n, k = end - start;
        while (k && (body[start + k - 1] == '\r' || body[start + k - 1] == ' '))
            k--;
        if (k && s_on_line(l, k <= max_line ? body + start : NULL, k))
            return;
        start = end + 1;
    }
}

/* Feeds body in chunks sized by a small generator seeded with `seed` (seed 0: one chunk). */
static int s_split(s_log_t *l, const char *body, size_t n, size_t max_line, unsigned seed)
{
    char *buf = malloc(max_line);
    assert(buf);
    gw_lines_t s;
    gw_lines_init(&s, buf, max_line);
    int rc = 0;
    uint32_t x = seed * 2654435761u + 1;
    for (size_t off = 0; off < n && rc == 0;) {
        x ^= x << 13, x ^= x >> 17, x ^= x << 5;
        size_t take = seed ? 1 + x % 9 : n;
        if (take > n - off)
            take = n - off;
        rc = gw_lines_feed(&s, body + off, take, s_on_line, l);
        off += take;
    }
    if (rc == 0)
        rc = gw_lines_end(&s, s_on_line, l);
    free(buf);
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    size_t max_line = 1 + data[0] % 64, n = size - 2;
    unsigned seed = data[1];
    char *body = (char *)fz_copy(data + 2, n);
    /* every line costs at most sizeof(size_t) + 1 + its bytes */
    size_t cap = n * (sizeof(size_t) + 2) + 16;
    s_log_t ref = {malloc(cap), 0, cap, 0, seed % 5}, whole = ref, chunked = ref;
    whole.buf = malloc(cap);
    chunked.buf = malloc(cap);
    if (body && ref.buf && whole.buf && chunked.buf) {
        s_reference(&ref, body, n, max_line);
        int rc1 = s_split(&whole, body, n, max_line, 0);
        int rc2 = s_split(&chunked, body, n, max_line, seed | 1);
        assert(rc1 == rc2 && (rc1 == 0 || rc1 == 7));
        assert(whole.lines == ref.lines && chunked.lines == ref.lines);
        assert(whole.len == ref.len && memcmp(whole.buf, ref.buf, ref.len) == 0);
        assert(chunked.len == ref.len && memcmp(chunked.buf, ref.buf, ref.len) == 0);
    }
    free(ref.buf);
    free(whole.buf);
    free(chunked.buf);
    free(body);
    return 0;
}
