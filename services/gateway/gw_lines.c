/* gw_lines.c: the streaming request batch line splitter. See gw_lines.h. */
#include "gw_lines.h"

#include <string.h>

void gw_lines_init(gw_lines_t *s, char *buf, size_t max_line)
{
    memset(s, 0, sizeof *s);
    s->buf = buf;
    s->max_line = max_line;
}

/* Adds a piece of the current line: buf keeps its first max_line bytes, trimmed its length
 * up to the last byte that is not a CR or a space. */
static void s_add(gw_lines_t *s, const char *p, size_t n)
{
    size_t k = n;
    while (k && (p[k - 1] == '\r' || p[k - 1] == ' '))
        k--;
    if (k)
        s->trimmed = s->total + k;
    s->total += n;
    if (s->len < s->max_line) {
        size_t take = n < s->max_line - s->len ? n : s->max_line - s->len;
        memcpy(s->buf + s->len, p, take);
        s->len += take;
    }
}

/* The current line is complete: reports it (when not empty) and starts the next. */
static int s_emit(gw_lines_t *s, const char *line, gw_line_fn fn, void *arg)
{
    size_t len = s->trimmed;
    s->len = s->total = s->trimmed = 0;
    if (!len)
        return 0;
    int rc = fn(arg, len <= s->max_line ? line : NULL, len);
    if (rc)
        s->stopped = 1;
    return rc;
}

int gw_lines_feed(gw_lines_t *s, const char *chunk, size_t n, gw_line_fn fn, void *arg)
{
    for (const char *p = chunk, *end = chunk + n; p < end && !s->stopped;) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *e = nl ? nl : end;
        if (nl && s->total == 0) { /* the whole line is in this chunk: reported from it */
            size_t k = (size_t)(e - p);
            while (k && (p[k - 1] == '\r' || p[k - 1] == ' '))
                k--;
            s->total = (size_t)(e - p);
            s->trimmed = k;
            int rc = s_emit(s, p, fn, arg);
            if (rc)
                return rc;
        } else {
            s_add(s, p, (size_t)(e - p));
            if (nl) {
                int rc = s_emit(s, s->buf, fn, arg);
                if (rc)
                    return rc;
            }
        }
        p = e + (nl != NULL);
    }
    return 0;
}

int gw_lines_end(gw_lines_t *s, gw_line_fn fn, void *arg)
{
    if (s->stopped || s->total == 0)
        return 0;
    return s_emit(s, s->buf, fn, arg);
}
