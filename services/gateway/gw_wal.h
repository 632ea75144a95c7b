/* gw_wal.h: the gateway's write-ahead log, what makes a 202 mean "on disk".
 *
 * HTTP threads append accepted readings (gw_wal_append, thread-safe) and ask to be told when
 * they are durable (gw_wal_notify). One thread, the relay, group-commits: gw_wal_sync writes
 * everything appended since the last call with one write() and one fdatasync(), then tells the
 * waiters and hands the new readings over. Acknowledged records are logged too (gw_wal_append_acks,
 * no fsync: a lost ack entry only means a redelivery the store absorbs).
 *
 * On disk: a directory of segments <16 hex digits>.wal, written in order, closed with a trailer,
 * never modified once closed, deleted by gw_wal_trim once every reading in them (and before them)
 * is acknowledged. Format 2 ("LCWAL002"); a format-1 segment makes gw_wal_open fail (there is no
 * deployment to upgrade: drain the old gateway, or remove its log, before starting this one).
 *   segment header (32 bytes): "LCWAL002" | u64 segment | u64 created (unix µs) |
 *                              u32 key version | u32 CRC-32 of the first 28 bytes
 *   entry:   u32 body length | u32 CRC-32 of the body | body
 *   body:    u8 type (1 reading, 2 acks, 3 trailer) | u64 position | 24-byte nonce | ciphertext
 *   trailer: the last entry of a closed segment; plaintext u64 count (its own position: the
 *            entries before it) | 32-byte chain value over them
 * position is the entry's index in its segment (0, 1, ...). The ciphertext is
 * XChaCha20-Poly1305 under a key derived from the key ring's gateway master key of the header's
 * version (crypto_kdf, context "lcgwwal1", id 1), associated data
 * "lcore/wal/v2" | u64 segment | u64 position | type | u32 key version: an entry opens only in
 * its own segment at its own place. The chain binds the sequence: it starts from BLAKE2b-256
 * keyed with id 2 of the same derivation, c = H_k("LCWAL002" | u64 segment | u32 key version),
 * then per entry c = BLAKE2b-256(c | frame length and CRC | type, position, nonce | tag): 89
 * bytes, one hash block, with the secret previous value in place of a key.
 * Reading plaintext: record_id (32) | the packed Reading; ack plaintext: record_ids (32 each).
 * All integers little-endian. No plaintext payload reaches the disk.
 *
 * Replay checks every entry and the sequence. What it finds (gw_wal_replay_report_t): gap
 * (positions missing), reorder (an entry after one written later), truncated (a closed segment
 * without its trailer), corrupt (bytes that are no authentic entry; replay finds the next frame
 * and goes on), header, chain (entries authentic one by one but not the sequence written, e.g.
 * one from an older log), key (the ring lacks the segment's key version). Every authentic
 * reading is replayed whatever else is wrong. A damaged segment is counted, logged once and kept
 * for inspection: gw_wal_trim renames it <name>.damaged instead of deleting it. The only damage
 * accepted silently (counted as a torn tail) is at the end of the newest segment: a crash
 * mid-write leaves a partial last group, or a segment whose header never reached the disk. At
 * start-up the newest segment, replayed whole, gets its trailer (torn bytes cut off) before a
 * new segment starts, so only the open segment ever lacks one.
 *
 * Bounds: appends past max_bytes (live segments plus what is not yet written) or max_entries
 * (readings not yet acknowledged) fail with LC_ERR_FULL; the gateway answers 503. A failed write
 * or fsync poisons the log (every later call fails with LC_ERR_IO): the process must restart
 * and replay, since after a failed fsync the kernel may have dropped the dirty pages. */
#ifndef GW_WAL_H
#define GW_WAL_H

#include <protobuf-c/protobuf-c.h>

#include "lc_common.h"
#include "lc_keyring.h"
#include "lc_metrics.h"
#include "lc_record.h"

typedef struct gw_wal gw_wal_t;

/* Zeros written ahead of the data in the open segment. An fdatasync that does not change the
 * file's size flushes the data blocks only, not the inode as well: in paired runs on ext4 /
 * virtio at 3,600 readings/s the log's fsync p50 went from 0.23-0.30 to 0.17-0.21 ms, and on a
 * quiet machine the gateway's p99 request time from 4.6 to 3.7 ms. Replay takes zeros after the
 * last entry for the end of the segment. */
#define GW_WAL_PREFILL_BYTES (1u << 20)

typedef struct {
    const char *dir;          /* created if missing (0700); locked against a second gateway */
    const lc_keyring_t *ring; /* borrowed; must outlive the log */
    uint64_t max_bytes;       /* bound on the log's size */
    uint64_t max_entries;     /* bound on readings not yet acknowledged */
    uint64_t segment_bytes;   /* a segment is closed once it holds this much */
    lc_metrics_t *metrics;    /* the service's registry (tests pass their own) */
    uint64_t prefill_bytes;   /* zeros written ahead of the data (0: none); see gw_wal.c */
} gw_wal_opts_t;

/* A reading found in the log (replay) or just made durable (sync). Borrowed for the call. */
typedef void(gw_wal_reading_fn)(void *arg, uint64_t segment, const uint8_t record_id[32],
                                const uint8_t *data, size_t len);
/* Replay only: an acknowledgement found in the log, for readings logged before it. */
typedef void(gw_wal_ack_fn)(void *arg, const uint8_t record_id[32]);
/* Called from the relay thread when the entry waited for is durable (status 0) or the log
 * failed (LC_ERR_IO). */
typedef void(gw_wal_done_fn)(void *arg, int status);

/* Opens the log, replaying every entry of every segment in order through on_reading/on_ack
 * (the caller works out what is still unacknowledged), then starts a new segment. Torn entries
 * at the end of the newest segment (a crash mid-write) are skipped; damage anywhere else is
 * counted, logged and the segment kept (see above). NULL on error (logged): bad directory, lock
 * held, no key ring key, a format-1 segment. */
gw_wal_t *gw_wal_open(const gw_wal_opts_t *opts, gw_wal_reading_fn *on_reading,
                      gw_wal_ack_fn *on_ack, void *arg);
void gw_wal_destroy(gw_wal_t **self_p);

/* Thread-safe. Appends one reading (data = the packed Reading) and returns its log sequence
 * number in *lsn. Returns 0, LC_ERR_FULL (over a bound), LC_ERR_TOOBIG or LC_ERR_IO. */
int gw_wal_append(gw_wal_t *self, const uint8_t record_id[LC_RECORD_ID_LEN], const uint8_t *data,
                  size_t len, uint64_t *lsn) LC_WUR;

/* The same for a Reading message, packed straight into the log's buffer (no copy). */
int gw_wal_append_pb(gw_wal_t *self, const uint8_t record_id[LC_RECORD_ID_LEN],
                     const ProtobufCMessage *reading, uint64_t *lsn) LC_WUR;

/* Thread-safe. Returns 1 if lsn is already durable, 0 if done(arg, status) will be called once
 * it is (or the log fails), LC_ERR_IO if the log has failed, LC_ERR_NOMEM. */
int gw_wal_notify(gw_wal_t *self, uint64_t lsn, gw_wal_done_fn *done, void *arg) LC_WUR;

/* Relay thread only. Logs acknowledgements (written with the next sync, not waited for). */
int gw_wal_append_acks(gw_wal_t *self, const uint8_t (*ids)[LC_RECORD_ID_LEN], size_t n) LC_WUR;

/* Relay thread only. Writes and fsyncs what was appended, wakes the waiters, then passes each
 * newly durable reading to on_reading. Returns 0 (also when there was nothing to write) or
 * LC_ERR_IO. */
int gw_wal_sync(gw_wal_t *self, gw_wal_reading_fn *on_reading, void *arg) LC_WUR;

/* True when gw_wal_sync has work. Thread-safe. */
int gw_wal_has_pending(gw_wal_t *self);

/* An eventfd that becomes readable when an append finds the log idle; the relay polls it and
 * reads it (gw_wal_clear_wakeup) before syncing. One wake-up per group, not per reading. */
int gw_wal_wakeup_fd(const gw_wal_t *self);
void gw_wal_clear_wakeup(gw_wal_t *self);

/* Relay thread only. n readings left the log (acknowledged, dead-lettered or duplicates):
 * frees their room under max_entries. */
void gw_wal_release(gw_wal_t *self, uint64_t n);

/* Relay thread only. Deletes the closed segments numbered below keep_from; a damaged one is
 * renamed <name>.damaged instead (kept for inspection, no longer replayed). */
void gw_wal_trim(gw_wal_t *self, uint64_t keep_from);

/* The segment being written (once it is full, new appends are sealed for the next one, which
 * the next gw_wal_sync opens). */
uint64_t gw_wal_segment(const gw_wal_t *self);

/* What replay found wrong in one segment (bits of gw_wal_replay_report_t.damage). */
enum {
    GW_WAL_DAMAGE_GAP = 1 << 0,
    GW_WAL_DAMAGE_REORDER = 1 << 1,
    GW_WAL_DAMAGE_TRUNCATED = 1 << 2,
    GW_WAL_DAMAGE_CORRUPT = 1 << 3,
    GW_WAL_DAMAGE_HEADER = 1 << 4,
    GW_WAL_DAMAGE_CHAIN = 1 << 5,
    GW_WAL_DAMAGE_KEY = 1 << 6,
};
#define GW_WAL_DAMAGE_KINDS 7
/* "gap", "reorder", ... for bit i (the metric's kind label). */
const char *gw_wal_damage_name(unsigned i);

typedef struct {
    unsigned damage; /* GW_WAL_DAMAGE_* bits; 0: the segment is whole */
    int torn;        /* newest only: a torn tail was cut, or (end 0) no header was written */
    int closed;      /* an authentic trailer was found */
    uint32_t key_version;
    uint64_t readings;   /* authentic readings passed to on_reading */
    uint64_t unreadable; /* stretches of bytes that are not an authentic entry */
    uint64_t missing;    /* positions never found (beyond the unreadable stretches) */
    uint64_t late;       /* authentic entries found after one written later */
    uint64_t end;        /* offset past the last entry that parsed: where a trailer would go */
    uint64_t next;       /* position of the next entry (when whole: the entries found) */
    uint8_t chain[32];   /* chain value over the entries before `end` */
} gw_wal_replay_report_t;

/* Replays one segment's bytes (a whole file, as read) without any gw_wal_t: no directory, no
 * metrics, no logging: for gw_wal_open, tools and fuzzing. segment: the number in the file's
 * name; newest: damage at the end is a torn write. Returns 0 (also for a damaged segment: see
 * *rep), LC_ERR_UNSUPPORTED (a format-1 segment) or LC_ERR_NOMEM. */
int gw_wal_replay_segment(const lc_keyring_t *ring, uint64_t segment, int newest,
                          const uint8_t *buf, size_t len, gw_wal_reading_fn *on_reading,
                          gw_wal_ack_fn *on_ack, void *arg, gw_wal_replay_report_t *rep) LC_WUR;

/* Whether the log has failed (the service should stop and restart). Thread-safe. */
int gw_wal_failed(gw_wal_t *self);

#endif
