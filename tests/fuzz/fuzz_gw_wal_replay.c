/* fuzz_gw_wal_replay.c: replay of one write-ahead log segment (gw_wal_replay_segment: the bytes
 * of a segment file as read at start-up, entries opened with the gateway ring's key, positions
 * and the chain checked). Input: byte 0 = segment number << 1 | newest, then the file's bytes.
 * The ring is fixed (fuzz_support.h), so the committed seeds (written by seeds.c) hold authentic
 * entries the fuzzer mutates. Checked: every reading and ack handed on is readable, the report
 * counts the readings handed on, stays within the bytes, and reports no damage beside an
 * unreadable stretch, a missing position or a late entry. */
#include "gw_wal.h"

#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_support.h"

static lc_keyring_t *s_ring;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    s_ring = fz_ring(FZ_GATEWAY_RING, LC_KEYRING_GATEWAY);
    return 0;
}

typedef struct {
    uint64_t segment, readings, acks;
    uint8_t sum; /* reads every byte handed on */
} s_seen_t;

static void s_on_reading(void *arg, uint64_t segment, const uint8_t record_id[32],
                         const uint8_t *data, size_t len)
{
    s_seen_t *s = arg;
    assert(segment == s->segment);
    for (size_t i = 0; i < 32; i++)
        s->sum ^= record_id[i];
    for (size_t i = 0; i < len; i++)
        s->sum ^= data[i];
    s->readings++;
}

static void s_on_ack(void *arg, const uint8_t record_id[32])
{
    s_seen_t *s = arg;
    for (size_t i = 0; i < 32; i++)
        s->sum ^= record_id[i];
    s->acks++;
}

static int s_replay(const uint8_t *buf, size_t len, uint64_t segment, int newest, s_seen_t *seen,
                    gw_wal_replay_report_t *rep)
{
    memset(seen, 0, sizeof *seen);
    seen->segment = segment;
    return gw_wal_replay_segment(s_ring, segment, newest, buf, len, s_on_reading, s_on_ack, seen,
                                 rep);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint64_t segment = data[0] >> 1;
    int newest = data[0] & 1;
    uint8_t *buf = fz_copy(data + 1, size - 1);
    if (!buf)
        return 0;
    s_seen_t a;
    gw_wal_replay_report_t ra;
    int rc = s_replay(buf, size - 1, segment, newest, &a, &ra);
    assert(rc == 0 || rc == LC_ERR_UNSUPPORTED || rc == LC_ERR_NOMEM);
    if (rc == 0) {
        assert(ra.readings == a.readings && ra.end <= size - 1);
        assert(!ra.torn || newest);
        assert(!ra.unreadable ||
               (ra.damage & (GW_WAL_DAMAGE_CORRUPT | GW_WAL_DAMAGE_HEADER | GW_WAL_DAMAGE_KEY)) ||
               ra.torn);
        assert(!ra.missing || (ra.damage & GW_WAL_DAMAGE_GAP) || ra.torn);
        assert(!ra.late || (ra.damage & GW_WAL_DAMAGE_REORDER));
    }
    free(buf);
    return 0;
}
