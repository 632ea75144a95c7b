/* test_gw_wal.c: the gateway's write-ahead log — durability notifications, replay after a
 * restart (acks cancel readings), bounds, segment roll and trim, damage on disk (entries
 * swapped, dropped, cut short, flipped, replaced; each detected, every authentic reading
 * replayed, the segment kept), torn tails, the old format refused, zeros written ahead of the
 * data, sealing at rest, the directory lock. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "gw_wal.h"
#include "lc_keyring.h"
#include "lc_metrics.h"

#define S_MAX 256

typedef struct {
    char dir[64], wal[96], ring_path[96];
    lc_keyring_t *ring;
    lc_metrics_t *metrics;
    /* what callbacks saw */
    uint8_t ids[S_MAX][32];
    uint64_t segs[S_MAX];
    char data[S_MAX][64];
    size_t n;
    uint8_t acked[S_MAX][32];
    size_t n_acked;
    int done_calls, done_status;
    uint64_t prefill; /* gw_wal_opts_t.prefill_bytes of s_open (0 unless a test sets it) */
} s_fx_t;

static void s_on_reading(void *arg, uint64_t seg, const uint8_t id[32], const uint8_t *data,
                         size_t len)
{
    s_fx_t *f = arg;
    assert_true(f->n < S_MAX && len < 64);
    memcpy(f->ids[f->n], id, 32);
    f->segs[f->n] = seg;
    memcpy(f->data[f->n], data, len);
    f->data[f->n][len] = '\0';
    f->n++;
}

static void s_on_ack(void *arg, const uint8_t id[32])
{
    s_fx_t *f = arg;
    memcpy(f->acked[f->n_acked++], id, 32);
}

static void s_on_done(void *arg, int status)
{
    s_fx_t *f = arg;
    f->done_calls++;
    f->done_status = status;
}

static void s_id(uint8_t id[32], unsigned i)
{
    memset(id, 0, 32);
    id[0] = (uint8_t)i;
    id[1] = (uint8_t)(i >> 8);
    id[31] = 0xAB;
}

static gw_wal_t *s_open(s_fx_t *f, uint64_t max_bytes, uint64_t max_entries, uint64_t seg_bytes)
{
    f->n = f->n_acked = 0;
    gw_wal_opts_t o = {f->wal, f->ring, max_bytes, max_entries, seg_bytes, f->metrics, f->prefill};
    return gw_wal_open(&o, s_on_reading, s_on_ack, f);
}

static int s_setup(void **state)
{
    s_fx_t *f = calloc(1, sizeof *f);
    assert_non_null(f);
    strcpy(f->dir, "/tmp/lcore-test-wal-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->wal, sizeof f->wal, "%s/wal", f->dir);
    snprintf(f->ring_path, sizeof f->ring_path, "%s/ring", f->dir);
    assert_int_equal(lc_keyring_create(f->ring_path, LC_KEYRING_GATEWAY), 0);
    assert_non_null(f->ring = lc_keyring_load(f->ring_path, LC_KEYRING_GATEWAY, NULL));
    assert_non_null(f->metrics = lc_metrics_new());
    *state = f;
    return 0;
}

static int s_teardown(void **state)
{
    s_fx_t *f = *state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", f->dir);
    assert_int_equal(system(cmd), 0);
    lc_keyring_destroy(&f->ring);
    lc_metrics_destroy(&f->metrics);
    free(f);
    return 0;
}

/* Appends reading i ("reading-<i>") and returns its lsn. */
static uint64_t s_append(gw_wal_t *w, unsigned i)
{
    uint8_t id[32];
    char data[32];
    s_id(id, i);
    int n = snprintf(data, sizeof data, "reading-%u", i);
    uint64_t lsn = 0;
    assert_int_equal(gw_wal_append(w, id, (const uint8_t *)data, (size_t)n, &lsn), 0);
    return lsn;
}

/* The registry's text holds `line`. */
static void s_assert_metric(s_fx_t *f, const char *line)
{
    size_t len = 0;
    char *text = lc_metrics_render(f->metrics, &len);
    assert_non_null(text);
    assert_non_null(strstr(text, line));
    free(text);
}

/* The registry's text holds each line given (a NULL-terminated list). */
static void s_assert_metrics(s_fx_t *f, ...)
{
    va_list ap;
    va_start(ap, f);
    for (const char *line; (line = va_arg(ap, const char *));)
        s_assert_metric(f, line);
    va_end(ap);
}

static size_t s_count_segments(const char *dir)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    size_t n = 0;
    struct dirent *de;
    while ((de = readdir(d)))
        n += strstr(de->d_name, ".wal") != NULL;
    closedir(d);
    return n;
}

static void test_notify_after_sync(void **state)
{
    s_fx_t *f = *state;
    gw_wal_t *w = s_open(f, 1 << 20, 100, 1 << 20);
    assert_non_null(w);
    uint64_t a = s_append(w, 1), b = s_append(w, 2);
    assert_true(b > a);
    assert_true(gw_wal_has_pending(w));
    /* Not durable yet: the callback is registered, not called. */
    assert_int_equal(gw_wal_notify(w, b, s_on_done, f), 0);
    assert_int_equal(f->done_calls, 0);
    assert_int_equal(gw_wal_sync(w, s_on_reading, f), 0);
    assert_int_equal(f->done_calls, 1);
    assert_int_equal(f->done_status, 0);
    /* Handed over in order, with their bytes. */
    assert_int_equal(f->n, 2);
    assert_string_equal(f->data[0], "reading-1");
    assert_string_equal(f->data[1], "reading-2");
    uint8_t id[32];
    s_id(id, 2);
    assert_memory_equal(f->ids[1], id, 32);
    /* Durable now: notify says so at once. */
    assert_int_equal(gw_wal_notify(w, a, s_on_done, f), 1);
    assert_false(gw_wal_has_pending(w));
    gw_wal_destroy(&w);
}

static void test_replay_skips_acked(void **state)
{
    s_fx_t *f = *state;
    gw_wal_t *w = s_open(f, 1 << 20, 100, 1 << 20);
    for (unsigned i = 0; i < 10; i++)
        s_append(w, i);
    assert_int_equal(gw_wal_sync(w, s_on_reading, f), 0);
    uint8_t acks[3][32];
    s_id(acks[0], 2);
    s_id(acks[1], 5);
    s_id(acks[2], 7);
    assert_int_equal(gw_wal_append_acks(w, (const uint8_t(*)[32])acks, 3), 0);
    assert_int_equal(gw_wal_sync(w, s_on_reading, f), 0);
    gw_wal_destroy(&w);

    /* A restart replays the 10 readings and then the 3 acks, in log order. */
    assert_non_null(w = s_open(f, 1 << 20, 100, 1 << 20));
    assert_int_equal(f->n, 10);
    assert_string_equal(f->data[9], "reading-9");
    assert_int_equal(f->n_acked, 3);
    assert_memory_equal(f->acked[1], acks[1], 32);
    assert_int_equal(f->segs[0], 1);
    /* New entries go to a new segment. */
    assert_int_equal(gw_wal_segment(w), 2);
    gw_wal_destroy(&w);
}

static void test_bounds(void **state)
{
    s_fx_t *f = *state;
    gw_wal_t *w = s_open(f, 1 << 20, 3, 1 << 20);
    uint8_t id[32] = {1};
    uint64_t lsn;
    s_append(w, 1);
    s_append(w, 2);
    s_append(w, 3);
    assert_int_equal(gw_wal_append(w, id, (const uint8_t *)"x", 1, &lsn), LC_ERR_FULL);
    gw_wal_release(w, 1);
    assert_int_equal(gw_wal_append(w, id, (const uint8_t *)"x", 1, &lsn), 0);
    gw_wal_destroy(&w);

    /* Byte bound: ~100 bytes per entry, 4 KiB of room. */
    assert_non_null(w = s_open(f, 4096, 1000, 1 << 20));
    gw_wal_release(w, 1000); /* forget the replayed ones: only bytes count here */
    static uint8_t big[1000];
    int full = 0;
    for (unsigned i = 0; i < 10 && !full; i++) {
        s_id(id, 100 + i);
        int rc = gw_wal_append(w, id, big, sizeof big, &lsn);
        full = rc == LC_ERR_FULL;
        if (!full)
            assert_int_equal(rc, 0);
    }
    assert_true(full);
    gw_wal_destroy(&w);
}

static void test_roll_and_trim(void **state)
{
    s_fx_t *f = *state;
    /* Tiny segments: every sync after the first fills one. */
    gw_wal_t *w = s_open(f, 1 << 20, 1000, 100);
    for (unsigned i = 0; i < 5; i++) {
        s_append(w, i);
        assert_int_equal(gw_wal_sync(w, s_on_reading, f), 0);
    }
    assert_int_equal(f->segs[0], 1);
    assert_int_equal(f->segs[4], 5);
    assert_int_equal(s_count_segments(f->wal), 5);
    /* Everything before segment 4 acknowledged: 1..3 go, 4 and 5 (the open one) stay. */
    gw_wal_trim(w, 4);
    assert_int_equal(s_count_segments(f->wal), 2);
    /* The open segment is never deleted. */
    gw_wal_trim(w, UINT64_MAX);
    assert_int_equal(s_count_segments(f->wal), 1);
    gw_wal_destroy(&w);
    assert_non_null(w = s_open(f, 1 << 20, 1000, 100));
    assert_int_equal(f->n, 1);
    assert_string_equal(f->data[0], "reading-4");
    gw_wal_destroy(&w);
}

/* -- damage on disk ------------------------------------------------------------------------ */

/* Writes nseg segments of `per` readings each (reading <10 s + k> in segment s + 1, one group
 * each), then closes the log: segments 1 .. nseg-1 are closed (trailer last), nseg is newest. */
static void s_write_segments(s_fx_t *f, unsigned nseg, unsigned per)
{
    gw_wal_t *w = s_open(f, 1 << 20, 1000, 100);
    assert_non_null(w);
    for (unsigned s = 0; s < nseg; s++) {
        for (unsigned k = 0; k < per; k++)
            s_append(w, 10 * s + k);
        assert_int_equal(gw_wal_sync(w, s_on_reading, f), 0);
    }
    gw_wal_destroy(&w);
}

/* Removes the log directory: the next open starts a new log. */
static void s_wipe(s_fx_t *f)
{
    char cmd[160];
    snprintf(cmd, sizeof cmd, "rm -rf %s", f->wal);
    assert_int_equal(system(cmd), 0);
}

/* A fresh registry, so that one open's metrics are the only ones rendered. */
static void s_fresh_metrics(s_fx_t *f)
{
    lc_metrics_destroy(&f->metrics);
    assert_non_null(f->metrics = lc_metrics_new());
}

/* The readings replayed, as "reading-<i>" names joined by spaces. */
static void s_assert_replayed(s_fx_t *f, const char *want)
{
    char got[1024] = "";
    for (size_t i = 0; i < f->n; i++)
        snprintf(got + strlen(got), sizeof got - strlen(got), "%s%s", i ? " " : "",
                 f->data[i] + strlen("reading-"));
    assert_string_equal(got, want);
}

/* Opens the log again with a fresh registry and checks what it replayed. */
static gw_wal_t *s_reopen(s_fx_t *f, const char *want)
{
    s_fresh_metrics(f);
    gw_wal_t *w = s_open(f, 1 << 20, 1000, 100);
    assert_non_null(w);
    s_assert_replayed(f, want);
    return w;
}

/* Overwrites n bytes of the file at `at`. */
static void s_patch(const char *path, const void *bytes, size_t n, size_t at)
{
    int fd = open(path, O_WRONLY);
    assert_true(fd >= 0);
    assert_int_equal(pwrite(fd, bytes, n, (off_t)at), (ssize_t)n);
    close(fd);
}

/* One segment file and where its entries start (parsed by length only). */
typedef struct {
    char path[160];
    uint8_t buf[8192];
    size_t len, end; /* end: past the last entry */
    size_t off[16];
    size_t n;
} s_seg_t;

static void s_seg_load(s_fx_t *f, unsigned no, s_seg_t *s)
{
    snprintf(s->path, sizeof s->path, "%s/%016x.wal", f->wal, no);
    FILE *fp = fopen(s->path, "rb");
    assert_non_null(fp);
    s->len = fread(s->buf, 1, sizeof s->buf, fp);
    fclose(fp);
    assert_true(s->len > 32 && s->len < sizeof s->buf);
    s->n = 0;
    size_t off = 32;
    while (off + 8 <= s->len && s->n < 16) {
        uint32_t blen = s->buf[off] | s->buf[off + 1] << 8 | s->buf[off + 2] << 16;
        if (blen == 0 || off + 8 + blen > s->len)
            break;
        s->off[s->n++] = off;
        off += 8 + blen;
    }
    s->end = off;
}

/* Rewrites the segment as its header, then entries order[0..n), then `tail` bytes more of
 * entry order[n] (a cut mid-entry). */
static void s_seg_rewrite(const s_seg_t *s, const size_t *order, size_t n, size_t tail)
{
    FILE *fp = fopen(s->path, "wb");
    assert_non_null(fp);
    assert_int_equal(fwrite(s->buf, 1, 32, fp), 32);
    for (size_t i = 0; i <= n; i++) {
        if (i == n && !tail)
            break;
        size_t e = order[i], from = s->off[e];
        size_t to = e + 1 < s->n ? s->off[e + 1] : s->end;
        if (i == n)
            to = from + tail;
        assert_int_equal(fwrite(s->buf + from, 1, to - from, fp), to - from);
    }
    assert_int_equal(fclose(fp), 0);
}

static void s_seg_flip(const s_seg_t *s, size_t at)
{
    uint8_t byte = s->buf[at] ^ 0x10;
    s_patch(s->path, &byte, 1, at);
}

static int s_exists(s_fx_t *f, const char *name)
{
    char path[192];
    snprintf(path, sizeof path, "%s/%s", f->wal, name);
    struct stat st;
    return stat(path, &st) == 0;
}

/* Reopens after damage: `kind` counted once, one damaged segment, every authentic reading in
 * `want`. Trim then sets segment 1 aside instead of deleting it, and a later start replays
 * only what follows it while the gauge still shows the damage. */
static void s_assert_damage(s_fx_t *f, const char *kind, const char *want, const char *after)
{
    s_fresh_metrics(f);
    gw_wal_t *w = s_open(f, 1 << 20, 1000, 100);
    assert_non_null(w);
    s_assert_replayed(f, want);
    char line[128];
    snprintf(line, sizeof line, "lcore_gateway_wal_damage_total{kind=\"%s\"} 1\n", kind);
    s_assert_metric(f, line);
    s_assert_metrics(f, "lcore_gateway_wal_damaged_segments 1\n",
                     "lcore_gateway_wal_torn_tails_total 0\n", NULL);
    gw_wal_trim(w, UINT64_MAX);
    gw_wal_destroy(&w);
    assert_false(s_exists(f, "0000000000000001.wal"));
    assert_true(s_exists(f, "0000000000000001.wal.damaged"));

    s_fresh_metrics(f);
    assert_non_null(w = s_open(f, 1 << 20, 1000, 100));
    s_assert_replayed(f, after);
    s_assert_metric(f, "lcore_gateway_wal_damaged_segments 1\n");
    snprintf(line, sizeof line, "lcore_gateway_wal_damage_total{kind=\"%s\"} 0\n", kind);
    s_assert_metric(f, line);
    gw_wal_destroy(&w);
}

/* (a) Two entries of a closed segment swapped: both still replayed, the order flagged. */
static void test_damage_reorder(void **state)
{
    s_fx_t *f = *state;
    s_write_segments(f, 2, 3);
    s_seg_t s;
    s_seg_load(f, 1, &s);
    assert_int_equal(s.n, 4); /* three readings and the trailer */
    const size_t order[] = {2, 1, 0, 3};
    s_seg_rewrite(&s, order, 4, 0);
    s_assert_damage(f, "reorder", "2 1 0 10 11 12", "");
    s_assert_metric(f, "lcore_gateway_wal_damage_total{kind=\"gap\"} 0\n");
}

/* (b) An entry dropped from the middle: the others replayed, the gap flagged. */
static void test_damage_gap(void **state)
{
    s_fx_t *f = *state;
    s_write_segments(f, 2, 3);
    s_seg_t s;
    s_seg_load(f, 1, &s);
    const size_t order[] = {0, 2, 3};
    s_seg_rewrite(&s, order, 3, 0);
    s_assert_damage(f, "gap", "0 2 10 11 12", "");
}

/* (c) A closed segment cut short, mid-entry and then at an entry boundary: truncation, not a
 * torn tail, since it is not the newest. The replay function tells the two apart. */
static void test_damage_truncated(void **state)
{
    s_fx_t *f = *state;
    s_write_segments(f, 2, 3);
    s_seg_t s;
    s_seg_load(f, 1, &s);
    const size_t order[] = {0, 1, 2, 3};
    s_seg_rewrite(&s, order, 2, 20); /* two readings and a part of the third */

    s_seg_t cut;
    s_seg_load(f, 1, &cut);
    gw_wal_replay_report_t rep;
    f->n = 0;
    assert_int_equal(
        gw_wal_replay_segment(f->ring, 1, 0, cut.buf, cut.len, s_on_reading, s_on_ack, f, &rep), 0);
    assert_int_equal(rep.damage, GW_WAL_DAMAGE_TRUNCATED);
    assert_int_equal(rep.readings, 2);
    assert_false(rep.closed);
    f->n = 0;
    assert_int_equal(
        gw_wal_replay_segment(f->ring, 1, 1, cut.buf, cut.len, s_on_reading, s_on_ack, f, &rep), 0);
    assert_int_equal(rep.damage, 0); /* as the newest it would be a torn tail */
    assert_true(rep.torn);
    assert_int_equal(rep.readings, 2);
    /* The whole segment, for contrast. */
    assert_int_equal(
        gw_wal_replay_segment(f->ring, 1, 0, s.buf, s.len, s_on_reading, s_on_ack, f, &rep), 0);
    assert_int_equal(rep.damage, 0);
    assert_true(rep.closed);
    assert_int_equal(rep.readings, 3);

    s_assert_damage(f, "truncated", "0 1 10 11 12", "");
    s_assert_metric(f, "lcore_gateway_wal_damaged_entries_total 0\n");

    /* Cut at an entry boundary: only the trailer gone. */
    s_wipe(f);
    s_write_segments(f, 2, 3);
    s_seg_load(f, 1, &s);
    s_seg_rewrite(&s, order, 3, 0);
    gw_wal_t *w = s_reopen(f, "0 1 2 10 11 12");
    s_assert_metric(f, "lcore_gateway_wal_damage_total{kind=\"truncated\"} 1\n");
    gw_wal_destroy(&w);
}

/* (d) A flipped byte in an entry's header (its position; in another segment its length): that
 * entry is lost and counted, replay finds the next entry and goes on. */
static void test_damage_header_byte(void **state)
{
    s_fx_t *f = *state;
    s_write_segments(f, 3, 3);
    s_seg_t s;
    s_seg_load(f, 1, &s);
    s_seg_flip(&s, s.off[1] + 8 + 1); /* the position */
    s_seg_load(f, 2, &s);
    s_seg_flip(&s, s.off[1] + 1); /* the body length */
    gw_wal_t *w = s_reopen(f, "0 2 10 12 20 21 22");
    s_assert_metrics(f, "lcore_gateway_wal_damage_total{kind=\"corrupt\"} 2\n",
                     "lcore_gateway_wal_damage_total{kind=\"gap\"} 0\n",
                     "lcore_gateway_wal_damaged_entries_total 2\n",
                     "lcore_gateway_wal_damaged_segments 2\n", NULL);
    /* Neither is deleted, whatever is acknowledged. */
    gw_wal_trim(w, UINT64_MAX);
    gw_wal_destroy(&w);
    assert_true(s_exists(f, "0000000000000001.wal.damaged"));
    assert_true(s_exists(f, "0000000000000002.wal.damaged"));
    assert_false(s_exists(f, "0000000000000003.wal"));
}

/* An entry replaced by one that authenticates at the same place, from an older log with the
 * same segment number and key: only the chain tells. */
static void test_damage_chain(void **state)
{
    s_fx_t *f = *state;
    s_write_segments(f, 2, 3); /* readings 0 1 2 in segment 1 */
    s_seg_t old;
    s_seg_load(f, 1, &old);
    s_wipe(f);
    gw_wal_t *w = s_open(f, 1 << 20, 1000, 100);
    for (unsigned k = 3; k < 6; k++)
        s_append(w, k); /* same lengths: "reading-3" .. "reading-5" */
    assert_int_equal(gw_wal_sync(w, s_on_reading, f), 0);
    s_append(w, 6);
    assert_int_equal(gw_wal_sync(w, s_on_reading, f), 0);
    gw_wal_destroy(&w);
    s_seg_t s;
    s_seg_load(f, 1, &s);
    assert_int_equal(s.off[2] - s.off[1], old.off[2] - old.off[1]);
    s_patch(s.path, old.buf + old.off[1], old.off[2] - old.off[1], s.off[1]);

    /* The old entry is authentic: it is replayed too. */
    w = s_reopen(f, "3 1 5 6");
    s_assert_metrics(f, "lcore_gateway_wal_damage_total{kind=\"chain\"} 1\n",
                     "lcore_gateway_wal_damage_total{kind=\"reorder\"} 0\n",
                     "lcore_gateway_wal_damaged_segments 1\n", NULL);
    gw_wal_destroy(&w);
}

/* (e) The newest segment cut mid-entry (no zeros after it), and with zeros where the end of its
 * last entry should be (the zeros written ahead): a torn tail, counted, not damage. Start-up
 * gives the segment its trailer, so the next start finds it whole. */
static void test_torn_tail(void **state)
{
    s_fx_t *f = *state;
    s_write_segments(f, 2, 3);
    s_seg_t s;
    s_seg_load(f, 2, &s);
    assert_int_equal(truncate(s.path, (off_t)s.end - 7), 0);
    gw_wal_t *w = s_reopen(f, "0 1 2 10 11");
    s_assert_metrics(f, "lcore_gateway_wal_torn_tails_total 1\n",
                     "lcore_gateway_wal_damaged_segments 0\n",
                     "lcore_gateway_wal_damaged_entries_total 0\n", NULL);
    gw_wal_destroy(&w);
    w = s_reopen(f, "0 1 2 10 11");
    s_assert_metrics(f, "lcore_gateway_wal_torn_tails_total 0\n",
                     "lcore_gateway_wal_damaged_segments 0\n", NULL);
    gw_wal_destroy(&w);

    /* With the zeros written ahead: the tail of the last entry never reached the disk. */
    s_wipe(f);
    f->prefill = 4096;
    s_write_segments(f, 1, 3);
    s_seg_load(f, 1, &s);
    static const uint8_t zeros[20];
    s_patch(s.path, zeros, sizeof zeros, s.end - sizeof zeros);
    w = s_reopen(f, "0 1");
    s_assert_metrics(f, "lcore_gateway_wal_torn_tails_total 1\n",
                     "lcore_gateway_wal_damaged_segments 0\n", NULL);
    gw_wal_destroy(&w);
}

/* A crash between creating the newest segment and its header's fsync leaves an empty file: it
 * held nothing, it goes, and the next start does not take it for damage. */
static void test_torn_segment(void **state)
{
    s_fx_t *f = *state;
    s_write_segments(f, 2, 2);
    /* A start closes segment 2 and creates 3; then 3 is left as a crash there would leave it. */
    gw_wal_t *w = s_open(f, 1 << 20, 1000, 100);
    gw_wal_destroy(&w);
    char path[160];
    snprintf(path, sizeof path, "%s/%016x.wal", f->wal, 3);
    assert_int_equal(truncate(path, 0), 0);
    w = s_reopen(f, "0 1 10 11");
    s_assert_metrics(f, "lcore_gateway_wal_torn_tails_total 1\n",
                     "lcore_gateway_wal_damaged_segments 0\n", NULL);
    assert_false(s_exists(f, "0000000000000003.wal"));
    gw_wal_destroy(&w);
    w = s_reopen(f, "0 1 10 11");
    s_assert_metric(f, "lcore_gateway_wal_damaged_segments 0\n");
    gw_wal_destroy(&w);
}

/* A segment of the first format stops the gateway: one line says why. */
static void test_old_format(void **state)
{
    s_fx_t *f = *state;
    gw_wal_t *w = s_open(f, 1 << 20, 1000, 1 << 20);
    gw_wal_destroy(&w);
    char path[160];
    snprintf(path, sizeof path, "%s/%016x.wal", f->wal, 1);
    s_patch(path, "LCWAL001", 8, 0);
    assert_null(s_open(f, 1 << 20, 1000, 1 << 20));
}

/* Zeros are written ahead of the data (so most fdatasyncs do not change the file size), the
 * stretch is extended as the data reaches it, and replay takes the zeros for the end. */
static void test_prefill(void **state)
{
    s_fx_t *f = *state;
    f->prefill = 4096;
    gw_wal_t *w = s_open(f, 1 << 20, 1000, 1 << 20);
    char path[160];
    snprintf(path, sizeof path, "%s/%016x.wal", f->wal, 1);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_size, 32 + 4096); /* header, then the zeros */
    off_t last = st.st_size;
    int grew = 0;
    for (unsigned i = 0; i < 100; i++) {
        s_append(w, i);
        if (i % 10 == 9) {
            assert_int_equal(gw_wal_sync(w, s_on_reading, f), 0);
            assert_int_equal(stat(path, &st), 0);
            grew += st.st_size > last;
            last = st.st_size;
        }
    }
    assert_int_equal(f->n, 100);
    assert_true(grew >= 1 && grew < 10); /* in stretches, not with every group */
    gw_wal_destroy(&w);
    /* The tail is zeros; every reading comes back, none counted as damaged. */
    uint8_t tail[16], zero[16] = {0};
    int fd = open(path, O_RDONLY);
    assert_true(fd >= 0);
    assert_int_equal(pread(fd, tail, sizeof tail, st.st_size - (off_t)sizeof tail), sizeof tail);
    close(fd);
    assert_memory_equal(tail, zero, sizeof tail);
    assert_non_null(w = s_open(f, 1 << 20, 1000, 1 << 20));
    assert_int_equal(f->n, 100);
    assert_string_equal(f->data[99], "reading-99");
    s_assert_metric(f, "lcore_gateway_wal_damaged_entries_total 0\n");
    gw_wal_destroy(&w);
}

static void test_sealed_at_rest(void **state)
{
    s_fx_t *f = *state;
    gw_wal_t *w = s_open(f, 1 << 20, 1000, 1 << 20);
    uint8_t id[32];
    s_id(id, 1);
    const char *secret = "{\"temp\":\"PLAINTEXT-MARKER-42\"}";
    uint64_t lsn;
    assert_int_equal(gw_wal_append(w, id, (const uint8_t *)secret, strlen(secret), &lsn), 0);
    assert_int_equal(gw_wal_sync(w, s_on_reading, f), 0);
    gw_wal_destroy(&w);
    char path[160], buf[4096];
    snprintf(path, sizeof path, "%s/%016x.wal", f->wal, 1);
    FILE *fp = fopen(path, "rb");
    assert_non_null(fp);
    size_t n = fread(buf, 1, sizeof buf, fp);
    fclose(fp);
    assert_true(n > 32);
    assert_null(memmem(buf, n, "PLAINTEXT-MARKER", 16));
    struct stat st;
    assert_int_equal(stat(f->wal, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0700);

    /* Another key ring cannot read it: the entry is counted as damaged, nothing replayed. */
    lc_keyring_t *mine = f->ring;
    char other[128];
    snprintf(other, sizeof other, "%s/other-ring", f->dir);
    assert_int_equal(lc_keyring_create(other, LC_KEYRING_GATEWAY), 0);
    assert_non_null(f->ring = lc_keyring_load(other, LC_KEYRING_GATEWAY, NULL));
    assert_non_null(w = s_open(f, 1 << 20, 1000, 1 << 20));
    assert_int_equal(f->n, 0);
    gw_wal_destroy(&w);
    lc_keyring_destroy(&f->ring);
    f->ring = mine;
}

static void test_lock(void **state)
{
    s_fx_t *f = *state;
    gw_wal_t *a = s_open(f, 1 << 20, 100, 1 << 20);
    assert_non_null(a);
    assert_null(s_open(f, 1 << 20, 100, 1 << 20));
    gw_wal_destroy(&a);
    assert_non_null(a = s_open(f, 1 << 20, 100, 1 << 20));
    gw_wal_destroy(&a);
}

int main(void)
{
    if (sodium_init() < 0)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_notify_after_sync, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_replay_skips_acked, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_bounds, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_roll_and_trim, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_damage_reorder, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_damage_gap, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_damage_truncated, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_damage_header_byte, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_damage_chain, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_torn_tail, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_torn_segment, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_old_format, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_prefill, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_sealed_at_rest, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_lock, s_setup, s_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
