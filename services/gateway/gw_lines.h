/* gw_lines.h: the request batch line splitter (POST /v1/data/batch: one JWS a line), fed the
 * body chunk by chunk as it streams in. A line is reported once complete, with trailing CR and
 * spaces trimmed; empty lines are skipped. Only a line that spans chunks is copied, into the
 * caller's buffer (at most max_line bytes); a longer line is not kept, only its length reported.
 * Pure: no allocation, no I/O, no globals (a fuzz target can call it on any bytes). */
#ifndef GW_LINES_H
#define GW_LINES_H

#include <stddef.h>

/* One complete non-empty line: line[0..len) , or line NULL for a line longer than max_line
 * (len is then its trimmed length). Returns 0 to go on, non-zero to stop the splitter. */
typedef int (*gw_line_fn)(void *arg, const char *line, size_t len);

typedef struct {
    char *buf;       /* caller's, max_line bytes: the part of a line seen in earlier chunks */
    size_t max_line; /* longer lines are reported with line NULL */
    size_t len;      /* bytes of the current line in buf */
    size_t total;    /* bytes of the current line so far */
    size_t trimmed;  /* its length without trailing CR and spaces */
    int stopped;     /* fn returned non-zero: the rest is ignored */
} gw_lines_t;

/* buf holds max_line bytes (max_line > 0). */
void gw_lines_init(gw_lines_t *s, char *buf, size_t max_line);

/* Feeds n bytes; reports each line completed by them. Returns fn's non-zero value once it
 * stopped the splitter, else 0. */
int gw_lines_feed(gw_lines_t *s, const char *chunk, size_t n, gw_line_fn fn, void *arg);

/* The body ended: reports the last line if it had no newline. Same return as gw_lines_feed. */
int gw_lines_end(gw_lines_t *s, gw_line_fn fn, void *arg);

#endif
