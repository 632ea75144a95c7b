/* test_gw_wal.c: the gateway's write-ahead log — durability notifications, replay after a
 * restart (acks cancel readings), bounds, segment roll and trim, torn tails and damaged
 * segments, zeros written ahead of the data, sealing at rest, the directory lock. */
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

static void test_torn_tail_and_damage(void **state)
{
    s_fx_t *f = *state;
    gw_wal_t *w = s_open(f, 1 << 20, 1000, 100);
    for (unsigned i = 0; i < 3; i++) {
        s_append(w, i);
        s_append(w, 10 + i);
        assert_int_equal(gw_wal_sync(w, s_on_reading, f), 0);
    }
    gw_wal_destroy(&w); /* segments 1, 2, 3 with two readings each; 3 is the newest */
    char path[160];
    /* Damage the last entry of segment 1 (a flipped byte) and cut segment 3 mid-entry. */
    snprintf(path, sizeof path, "%s/%016x.wal", f->wal, 1);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    int fd = open(path, O_RDWR);
    assert_true(fd >= 0);
    uint8_t byte;
    assert_int_equal(pread(fd, &byte, 1, st.st_size - 5), 1);
    byte ^= 0x40;
    assert_int_equal(pwrite(fd, &byte, 1, st.st_size - 5), 1);
    close(fd);
    snprintf(path, sizeof path, "%s/%016x.wal", f->wal, 3);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(truncate(path, st.st_size - 7), 0);

    assert_non_null(w = s_open(f, 1 << 20, 1000, 100));
    /* Segment 1 loses its damaged entry, 2 is whole, 3 loses its torn last entry. */
    assert_int_equal(f->n, 4);
    assert_string_equal(f->data[0], "reading-0");
    assert_string_equal(f->data[1], "reading-1");
    assert_string_equal(f->data[2], "reading-11");
    assert_string_equal(f->data[3], "reading-2");
    s_assert_metric(f, "lcore_gateway_wal_damaged_entries_total 1\n");
    gw_wal_destroy(&w);
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
        cmocka_unit_test_setup_teardown(test_torn_tail_and_damage, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_prefill, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_sealed_at_rest, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_lock, s_setup, s_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
