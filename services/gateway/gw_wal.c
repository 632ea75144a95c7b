/* gw_wal.c: see gw_wal.h. */
#include "gw_wal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "lc_log.h"

#define S_MAGIC "LCWAL002"
#define S_MAGIC_V1 "LCWAL001"
#define S_HEADER_LEN 32
#define S_FRAME_LEN 8 /* body length + CRC */
#define S_NONCE_LEN crypto_aead_xchacha20poly1305_ietf_NPUBBYTES
#define S_TAG_LEN crypto_aead_xchacha20poly1305_ietf_ABYTES
#define S_BODY_FIXED (1 + 8 + S_NONCE_LEN) /* type, position, nonce */
#define S_MAX_READING (8u << 20)           /* far above any reading the gateway accepts */
#define S_MAX_BODY (S_BODY_FIXED + LC_RECORD_ID_LEN + S_MAX_READING + S_TAG_LEN)
#define S_MIN_BODY (S_BODY_FIXED + LC_RECORD_ID_LEN + S_TAG_LEN) /* one ack */
#define S_MIN_FRAME (S_FRAME_LEN + S_MIN_BODY)
#define S_TRAILER_PLAIN (8 + 32) /* count, chain value */
#define S_TRAILER_FRAME (S_FRAME_LEN + S_BODY_FIXED + S_TRAILER_PLAIN + S_TAG_LEN)
#define S_AD_PREFIX "lcore/wal/v2"
#define S_AD_LEN (sizeof S_AD_PREFIX - 1 + 8 + 8 + 1 + 4)
#define S_CHAIN_IN (32 + S_FRAME_LEN + S_BODY_FIXED + S_TAG_LEN)
#define S_KEYS_LEN 64 /* entry key | chain key */
#define S_DAMAGE_HINT                                                                              \
    "every authentic reading in it was replayed; it is kept for inspection (renamed .damaged "     \
    "once its readings are acknowledged)"

enum { S_READING = 1, S_ACKS = 2, S_TRAILER = 3 };

typedef struct {
    uint8_t *data;
    size_t len, cap;
} s_buf_t;

typedef struct {
    uint64_t lsn;
    gw_wal_done_fn *done;
    void *arg;
} s_waiter_t;

typedef struct {
    uint64_t no, bytes;
    int damaged; /* kept for inspection: trim renames it instead of deleting it */
} s_segment_t;

/* Where the next entry of a segment goes: its position, the chain so far, the bytes so far. */
typedef struct {
    uint64_t no, next, bytes;
    uint8_t chain[32];
} s_pos_t;

struct gw_wal {
    gw_wal_opts_t opts;
    char *dir;
    int dir_fd, lock_fd, fd, wake_fd;
    uint32_t key_version;
    uint8_t *keys; /* sodium_malloc'd, read-only: entry key | chain key */
    uint8_t nonce_prefix[16];
    uint64_t nonce_counter; /* under lock */

    pthread_mutex_t lock;
    /* Under lock: */
    s_pos_t seal;     /* the segment appends are sealed for (ahead of the file while unwritten) */
    s_buf_t frames;   /* sealed entries not yet written */
    size_t roll;      /* bytes of frames that are the previous segment's trailer (0: none) */
    s_buf_t readings; /* the same readings in the clear: u32 len | record_id | data */
    size_t n_readings;
    uint64_t last_lsn, durable_lsn, unacked;
    s_waiter_t *waiters;
    size_t n_waiters, cap_waiters;
    s_segment_t *segments; /* live segments, oldest first; the last is the one written to */
    size_t n_segments, cap_segments;
    uint64_t live_bytes;
    uint64_t prefilled; /* size of the open segment's file: data, then zeros up to here */
    int wake_armed;
    atomic_int failed;

    /* Relay thread only: the buffers being written while appends fill the others. */
    s_buf_t out_frames, out_readings;
    size_t out_roll;

    lc_gauge_t *g_bytes, *g_readings, *g_segments, *g_limit_bytes, *g_limit_readings;
    lc_gauge_t *g_damaged;
    lc_histogram_t *h_fsync_seconds, *h_fsync_readings;
    lc_counter_t *c_fsyncs, *c_replayed, *c_damaged, *c_torn;
    lc_counter_t *c_damage[GW_WAL_DAMAGE_KINDS];
    uint64_t n_damaged; /* damaged segments: live ones and <name>.damaged files */
};

static const double s_group_buckets[] = {1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000};
static const char *const s_damage_names[GW_WAL_DAMAGE_KINDS] = {
    "gap", "reorder", "truncated", "corrupt", "header", "chain", "key"};

const char *gw_wal_damage_name(unsigned i)
{
    return i < GW_WAL_DAMAGE_KINDS ? s_damage_names[i] : "unknown";
}

/* -- little helpers ---------------------------------------------------------------------- */

static void s_put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}
static void s_put64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}
static uint32_t s_get32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static uint64_t s_get64(const uint8_t *p)
{
    return (uint64_t)s_get32(p) | (uint64_t)s_get32(p + 4) << 32;
}
static uint32_t s_crc(const uint8_t *p, size_t n)
{
    return (uint32_t)crc32(crc32(0L, Z_NULL, 0), p, (uInt)n);
}

/* Makes room for n more bytes; returns the write position or NULL. */
static uint8_t *s_reserve(s_buf_t *b, size_t n)
{
    uint8_t *d = lc_grow(b->data, &b->cap, b->len + n, 64 * 1024);
    if (!d)
        return NULL;
    b->data = d;
    return b->data + b->len;
}

/* -- the format: sealing and chaining entries ---------------------------------------------- */

static void s_ad(uint8_t ad[S_AD_LEN], uint64_t segment, uint64_t position, uint8_t type,
                 uint32_t key_version)
{
    size_t o = sizeof S_AD_PREFIX - 1;
    memcpy(ad, S_AD_PREFIX, o);
    s_put64(ad + o, segment);
    s_put64(ad + o + 8, position);
    ad[o + 16] = type;
    s_put32(ad + o + 17, key_version);
}

/* keys: the entry key | the chain key of key ring version `version`. */
static int s_derive(uint8_t keys[S_KEYS_LEN], const lc_keyring_t *ring, uint32_t version)
{
    const lc_keyring_entry_t *e = lc_keyring_get(ring, version);
    if (!e)
        return LC_ERR_NOTFOUND;
    if (crypto_kdf_derive_from_key(keys, 32, 1, "lcgwwal1", e->gateway_master) != 0 ||
        crypto_kdf_derive_from_key(keys + 32, 32, 2, "lcgwwal1", e->gateway_master) != 0)
        return LC_ERR_INVALID;
    return 0;
}

/* pos: segment `no` before its first entry. */
static void s_pos_start(s_pos_t *pos, const uint8_t keys[S_KEYS_LEN], uint64_t no,
                        uint32_t key_version)
{
    uint8_t in[8 + 8 + 4];
    memcpy(in, S_MAGIC, 8);
    s_put64(in + 8, no);
    s_put32(in + 16, key_version);
    *pos = (s_pos_t){.no = no, .next = 0, .bytes = S_HEADER_LEN};
    crypto_generichash(pos->chain, 32, in, sizeof in, keys + 32, 32);
}

/* Chains the entry at f (body of blen bytes): its frame, type, position, nonce and tag. The
 * chain starts from a keyed hash, so the previous value is the secret here: one BLAKE2b block
 * per entry (keyed, each step would hash a key block too). */
static void s_chain_step(uint8_t chain[32], const uint8_t *f, size_t blen)
{
    uint8_t in[S_CHAIN_IN];
    memcpy(in, chain, 32);
    memcpy(in + 32, f, S_FRAME_LEN + S_BODY_FIXED);
    memcpy(in + 32 + S_FRAME_LEN + S_BODY_FIXED, f + S_FRAME_LEN + blen - S_TAG_LEN, S_TAG_LEN);
    crypto_generichash(chain, 32, in, sizeof in, NULL, 0);
}

/* Seals plain (n bytes) as entry `type` at pos into out (room for S_FRAME_LEN + S_BODY_FIXED +
 * n + S_TAG_LEN bytes), moves pos past it and returns its size. */
static size_t s_seal(uint8_t *out, s_pos_t *pos, const uint8_t keys[S_KEYS_LEN],
                     uint32_t key_version, const uint8_t nonce[S_NONCE_LEN], uint8_t type,
                     const uint8_t *plain, size_t n)
{
    size_t body = S_BODY_FIXED + n + S_TAG_LEN;
    uint8_t *b = out + S_FRAME_LEN;
    b[0] = type;
    s_put64(b + 1, pos->next);
    memcpy(b + 9, nonce, S_NONCE_LEN);
    uint8_t ad[S_AD_LEN];
    s_ad(ad, pos->no, pos->next, type, key_version);
    crypto_aead_xchacha20poly1305_ietf_encrypt(b + S_BODY_FIXED, NULL, plain, n, ad, sizeof ad,
                                               NULL, b + 9, keys);
    s_put32(out, (uint32_t)body);
    s_put32(out + 4, s_crc(b, body));
    s_chain_step(pos->chain, out, body);
    pos->next++;
    pos->bytes += S_FRAME_LEN + body;
    return S_FRAME_LEN + body;
}

/* Seals the trailer that closes the segment at pos into out (S_TRAILER_FRAME bytes). */
static size_t s_seal_trailer(uint8_t *out, s_pos_t *pos, const uint8_t keys[S_KEYS_LEN],
                             uint32_t key_version, const uint8_t nonce[S_NONCE_LEN])
{
    uint8_t plain[S_TRAILER_PLAIN];
    s_put64(plain, pos->next);
    memcpy(plain + 8, pos->chain, 32);
    return s_seal(out, pos, keys, key_version, nonce, S_TRAILER, plain, sizeof plain);
}

static void s_next_nonce(gw_wal_t *self, uint8_t nonce[S_NONCE_LEN])
{
    memcpy(nonce, self->nonce_prefix, sizeof self->nonce_prefix);
    s_put64(nonce + sizeof self->nonce_prefix, ++self->nonce_counter);
}

/* Seals plain (n bytes) as one entry of `type` at frames' end. Under lock. A group that starts
 * once the segment is full goes to the next segment: the full one's trailer goes first in the
 * group, and gw_wal_sync writes it there before it opens the next. */
static int s_seal_frame(gw_wal_t *self, uint8_t type, const uint8_t *plain, size_t n)
{
    int roll = self->frames.len == 0 && self->seal.bytes >= self->opts.segment_bytes;
    size_t need = S_FRAME_LEN + S_BODY_FIXED + n + S_TAG_LEN + (roll ? S_TRAILER_FRAME : 0);
    uint8_t *p = s_reserve(&self->frames, need);
    if (!p)
        return LC_ERR_NOMEM;
    uint8_t nonce[S_NONCE_LEN];
    if (roll) {
        s_next_nonce(self, nonce);
        self->roll = s_seal_trailer(p, &self->seal, self->keys, self->key_version, nonce);
        p += self->roll;
        self->frames.len += self->roll;
        s_pos_start(&self->seal, self->keys, self->seal.no + 1, self->key_version);
    }
    s_next_nonce(self, nonce);
    self->frames.len +=
        s_seal(p, &self->seal, self->keys, self->key_version, nonce, type, plain, n);
    return 0;
}

/* -- segment files ----------------------------------------------------------------------- */

static int s_add_segment(gw_wal_t *self, uint64_t no, uint64_t bytes, int damaged)
{
    if (self->n_segments == self->cap_segments) {
        size_t cap = self->cap_segments ? self->cap_segments * 2 : 16;
        s_segment_t *s = realloc(self->segments, cap * sizeof *s);
        if (!s)
            return LC_ERR_NOMEM;
        self->segments = s;
        self->cap_segments = cap;
    }
    self->segments[self->n_segments++] = (s_segment_t){no, bytes, damaged};
    self->live_bytes += bytes;
    return 0;
}

static void s_segment_path(const gw_wal_t *self, char *out, size_t cap, uint64_t no)
{
    snprintf(out, cap, "%s/%016" PRIx64 ".wal", self->dir, no);
}

static int s_pwrite_all(int fd, const uint8_t *p, size_t n, uint64_t off)
{
    while (n) {
        ssize_t w = pwrite(fd, p, n, (off_t)off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
        off += (uint64_t)w;
    }
    return 0;
}

/* Writes zeros over [from, to) of the open segment. */
static int s_zero_fill(int fd, uint64_t from, uint64_t to)
{
    static const uint8_t zeros[64 * 1024];
    while (from < to) {
        size_t n = to - from < sizeof zeros ? (size_t)(to - from) : sizeof zeros;
        if (s_pwrite_all(fd, zeros, n, from) != 0)
            return -1;
        from += n;
    }
    return 0;
}

/* Creates segment `no` with its header and the first zeros, durable (file and directory entry)
 * before use. */
static int s_open_segment(gw_wal_t *self, uint64_t no)
{
    char path[4096];
    s_segment_path(self, path, sizeof path, no);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        lc_error("wal_segment_create_failed", "path=%s errno=\"%s\"", path, strerror(errno));
        return LC_ERR_IO;
    }
    uint8_t h[S_HEADER_LEN] = {0};
    memcpy(h, S_MAGIC, 8);
    s_put64(h + 8, no);
    s_put64(h + 16, lc_now_us());
    s_put32(h + 24, self->key_version);
    s_put32(h + 28, s_crc(h, 28));
    uint64_t prefilled = S_HEADER_LEN + self->opts.prefill_bytes;
    if (s_pwrite_all(fd, h, sizeof h, 0) != 0 || s_zero_fill(fd, S_HEADER_LEN, prefilled) != 0 ||
        fdatasync(fd) != 0 || fsync(self->dir_fd) != 0) {
        lc_error("wal_segment_create_failed", "path=%s errno=\"%s\"", path, strerror(errno));
        close(fd);
        unlink(path);
        return LC_ERR_IO;
    }
    if (self->fd >= 0)
        close(self->fd);
    self->fd = fd;
    self->prefilled = prefilled;
    pthread_mutex_lock(&self->lock);
    int rc = s_add_segment(self, no, S_HEADER_LEN, 0);
    pthread_mutex_unlock(&self->lock);
    return rc;
}

/* Writes a closed segment's trailer at `at` and cuts the file there (the zeros written ahead, or
 * a torn tail, go), durable before the next segment is created. */
static int s_write_trailer(int fd, const uint8_t *trailer, size_t n, uint64_t at)
{
    if (s_pwrite_all(fd, trailer, n, at) != 0 || ftruncate(fd, (off_t)(at + n)) != 0 ||
        fdatasync(fd) != 0)
        return -1;
    return 0;
}

static void s_fail(gw_wal_t *self, const char *what)
{
    if (!atomic_exchange(&self->failed, 1))
        lc_error("wal_failed",
                 "op=%s errno=\"%s\" hint=\"restart the gateway: it replays its log\"", what,
                 strerror(errno));
}

/* -- replay: one segment's bytes --------------------------------------------------------- */

static int s_all_zero(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i])
            return 0;
    return 1;
}

/* The body length of a plausible entry at off (its CRC holds), 0 if there is none. The cheap
 * checks come first: replay scans damaged stretches byte by byte with this. */
static size_t s_frame_at(const uint8_t *buf, size_t len, size_t off)
{
    if (off > len || len - off < S_MIN_FRAME)
        return 0;
    size_t blen = s_get32(buf + off);
    const uint8_t *b = buf + off + S_FRAME_LEN;
    if (blen < S_MIN_BODY || blen > S_MAX_BODY || blen > len - off - S_FRAME_LEN)
        return 0;
    if (b[0] < S_READING || b[0] > S_TRAILER || s_get64(b + 1) > len / S_MIN_FRAME)
        return 0;
    return s_get32(buf + off + 4) == s_crc(b, blen) ? blen : 0;
}

typedef struct {
    const uint8_t *buf;
    size_t len;
    uint64_t segment;
    int newest;
    uint8_t *keys; /* sodium_malloc'd: the segment's entry key | chain key */
    uint8_t *plain;
    size_t plain_cap;
    gw_wal_reading_fn *on_reading;
    gw_wal_ack_fn *on_ack;
    void *arg;
    gw_wal_replay_report_t *rep;
    uint64_t found; /* authentic entries (trailer aside) */
    uint64_t max;   /* highest position found, if any */
    int have_max;
    uint64_t count; /* the trailer's, when rep->closed */
    int chain_ok;   /* the trailer's chain value matched */
} s_scan_t;

/* The segment header: sets the key version and the chain's start. 0 to read the entries, 1
 * when there is nothing to read, LC_ERR_UNSUPPORTED for a format-1 segment. */
static int s_scan_header(s_scan_t *s, const lc_keyring_t *ring)
{
    gw_wal_replay_report_t *rep = s->rep;
    const uint8_t *h = s->buf;
    if (s->newest && s_all_zero(h, s->len)) {
        rep->torn = 1; /* a crash between creating the segment and its header's fsync */
        return 1;
    }
    if (s->len < S_HEADER_LEN) {
        rep->damage |= GW_WAL_DAMAGE_HEADER;
        return 1;
    }
    if (memcmp(h, S_MAGIC_V1, 8) == 0)
        return LC_ERR_UNSUPPORTED;
    rep->key_version = s_get32(h + 24);
    if (memcmp(h, S_MAGIC, 8) != 0 || s_get64(h + 8) != s->segment ||
        s_get32(h + 28) != s_crc(h, 28)) {
        /* Try the entries anyway: with the header's key version if the ring has it. */
        rep->damage |= GW_WAL_DAMAGE_HEADER;
        const lc_keyring_entry_t *cur = lc_keyring_current(ring);
        if (!lc_keyring_get(ring, rep->key_version) && cur)
            rep->key_version = cur->version;
    }
    if (s_derive(s->keys, ring, rep->key_version) < 0) {
        rep->damage |= GW_WAL_DAMAGE_KEY;
        return 1;
    }
    s_pos_t start;
    s_pos_start(&start, s->keys, s->segment, rep->key_version);
    memcpy(rep->chain, start.chain, 32);
    return 0;
}

/* Notes where an authentic entry was found: after one written later, it is late. */
static void s_place(s_scan_t *s, uint64_t position)
{
    s->found++;
    if (s->rep->closed || (s->have_max && position <= s->max)) {
        s->rep->late++;
        return;
    }
    s->max = position;
    s->have_max = 1;
}

/* A trailer that authenticated (plain: its plen bytes). */
static int s_scan_trailer(s_scan_t *s, uint64_t position, size_t plen)
{
    if (plen != S_TRAILER_PLAIN || s_get64(s->plain) != position)
        return LC_ERR_INVALID;
    if (s->rep->closed) {
        s->rep->late++;
        return 0;
    }
    s->rep->closed = 1;
    s->count = position;
    s->chain_ok = sodium_memcmp(s->plain + 8, s->rep->chain, 32) == 0;
    return 0;
}

/* Opens the entry at f (body of blen bytes) and hands it over. 0, or LC_ERR_* for bytes that
 * are not an authentic entry. */
static int s_scan_entry(s_scan_t *s, const uint8_t *f, size_t blen)
{
    const uint8_t *b = f + S_FRAME_LEN;
    uint8_t type = b[0];
    uint64_t position = s_get64(b + 1);
    size_t plen = blen - S_BODY_FIXED - S_TAG_LEN;
    if (plen > s->plain_cap) {
        uint8_t *p = realloc(s->plain, plen);
        if (!p)
            return LC_ERR_NOMEM;
        s->plain = p;
        s->plain_cap = plen;
    }
    uint8_t ad[S_AD_LEN];
    s_ad(ad, s->segment, position, type, s->rep->key_version);
    if (crypto_aead_xchacha20poly1305_ietf_decrypt(s->plain, NULL, NULL, b + S_BODY_FIXED,
                                                   blen - S_BODY_FIXED, ad, sizeof ad, b + 9,
                                                   s->keys) != 0)
        return LC_ERR_SIGNATURE;
    int rc = 0;
    if (type == S_TRAILER) {
        rc = s_scan_trailer(s, position, plen);
    } else if (type == S_READING && plen > LC_RECORD_ID_LEN) {
        s_place(s, position);
        s->rep->readings++;
        s->on_reading(s->arg, s->segment, s->plain, s->plain + LC_RECORD_ID_LEN,
                      plen - LC_RECORD_ID_LEN);
    } else if (type == S_ACKS && plen % LC_RECORD_ID_LEN == 0) {
        s_place(s, position);
        for (size_t i = 0; i < plen; i += LC_RECORD_ID_LEN)
            s->on_ack(s->arg, s->plain + i);
    } else {
        rc = LC_ERR_INVALID;
    }
    sodium_memzero(s->plain, plen);
    return rc;
}

/* Walks the entries in file order. A stretch that is not an entry is skipped up to the next
 * entry (every authentic one is replayed); with none after it, it is the segment's end. */
static int s_scan_entries(s_scan_t *s)
{
    gw_wal_replay_report_t *rep = s->rep;
    size_t off = S_HEADER_LEN;
    rep->end = off;
    while (off < s->len) {
        size_t blen = s_frame_at(s->buf, s->len, off);
        if (blen) {
            int rc = s_scan_entry(s, s->buf + off, blen);
            if (rc == LC_ERR_NOMEM)
                return rc;
            rep->unreadable += rc < 0;
            s_chain_step(rep->chain, s->buf + off, blen);
            off += S_FRAME_LEN + blen;
            rep->end = off;
            continue;
        }
        /* Zeros to the end of the file: the space written ahead of the data. */
        if (s_all_zero(s->buf + off, s->len - off))
            break;
        size_t next = off + 1;
        while (next < s->len && !s_frame_at(s->buf, s->len, next))
            next++;
        if (next < s->len) {
            rep->unreadable++;
            off = next;
        } else if (s->newest) {
            rep->torn = 1; /* a crash mid-write: the group was never acknowledged */
            break;
        } else {
            /* Bytes cut short (no trailer: truncated) or after the trailer (corrupt). */
            rep->unreadable += rep->closed;
            break;
        }
    }
    return 0;
}

/* What the walk adds up to. */
static void s_scan_finish(s_scan_t *s)
{
    gw_wal_replay_report_t *rep = s->rep;
    uint64_t expected = rep->closed ? s->count : s->have_max ? s->max + 1 : 0;
    uint64_t missing = expected > s->found ? expected - s->found : 0;
    /* An unreadable stretch holds at least one entry: only what is missing beyond is a gap. */
    rep->missing = missing > rep->unreadable ? missing - rep->unreadable : 0;
    rep->next = s->have_max ? s->max + 1 : 0;
    if (rep->missing)
        rep->damage |= GW_WAL_DAMAGE_GAP;
    if (rep->late)
        rep->damage |= GW_WAL_DAMAGE_REORDER;
    if (rep->unreadable)
        rep->damage |= GW_WAL_DAMAGE_CORRUPT;
    if (!rep->closed && !s->newest)
        rep->damage |= GW_WAL_DAMAGE_TRUNCATED;
    if (rep->closed && !s->chain_ok && !rep->damage)
        rep->damage |= GW_WAL_DAMAGE_CHAIN;
}

int gw_wal_replay_segment(const lc_keyring_t *ring, uint64_t segment, int newest,
                          const uint8_t *buf, size_t len, gw_wal_reading_fn *on_reading,
                          gw_wal_ack_fn *on_ack, void *arg, gw_wal_replay_report_t *rep)
{
    memset(rep, 0, sizeof *rep);
    s_scan_t s = {.buf = buf,
                  .len = len,
                  .segment = segment,
                  .newest = newest,
                  .keys = sodium_malloc(S_KEYS_LEN),
                  .on_reading = on_reading,
                  .on_ack = on_ack,
                  .arg = arg,
                  .rep = rep};
    if (!s.keys)
        return LC_ERR_NOMEM;
    int rc = s_scan_header(&s, ring);
    if (rc == 0 && (rc = s_scan_entries(&s)) == 0)
        s_scan_finish(&s);
    if (rc == 1) {
        rc = 0;
        rep->unreadable = rep->damage ? 1 : 0; /* the whole segment */
    }
    if (s.plain)
        sodium_memzero(s.plain, s.plain_cap);
    free(s.plain);
    sodium_free(s.keys);
    return rc;
}

/* -- replay: the directory --------------------------------------------------------------- */

static int s_cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Reads a whole file into a malloc'd buffer. */
static uint8_t *s_slurp(const char *path, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    uint8_t *buf = NULL;
    if (fd < 0 || fstat(fd, &st) != 0 || !(buf = malloc((size_t)st.st_size + 1)))
        goto fail;
    size_t got = 0;
    while (got < (size_t)st.st_size) {
        ssize_t r = read(fd, buf + got, (size_t)st.st_size - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            goto fail;
        got += (size_t)r;
    }
    close(fd);
    *len = got;
    return buf;
fail:
    if (fd >= 0)
        close(fd);
    free(buf);
    return NULL;
}

/* Counts and logs (one line) what replay found in a segment. */
static void s_report(gw_wal_t *self, const char *path, const gw_wal_replay_report_t *rep)
{
    lc_counter_add(self->c_replayed, rep->readings);
    if (rep->torn) {
        lc_counter_inc(self->c_torn);
        lc_warn("wal_torn_tail", "path=%s offset=%" PRIu64, path, rep->end);
    }
    if (!rep->damage)
        return;
    char kinds[96] = "";
    for (unsigned i = 0; i < GW_WAL_DAMAGE_KINDS; i++) {
        if (!(rep->damage & 1u << i))
            continue;
        lc_counter_inc(self->c_damage[i]);
        size_t n = strlen(kinds);
        snprintf(kinds + n, sizeof kinds - n, "%s%s", n ? "," : "", s_damage_names[i]);
    }
    lc_counter_add(self->c_damaged, rep->unreadable);
    self->n_damaged++;
    lc_error("wal_segment_damaged",
             "path=%s damage=%s readings=%" PRIu64 " unreadable=%" PRIu64 " missing=%" PRIu64
             " late=%" PRIu64 " key_version=%u hint=\"%s\"",
             path, kinds, rep->readings, rep->unreadable, rep->missing, rep->late, rep->key_version,
             S_DAMAGE_HINT);
}

/* Gives the newest segment found at start-up, replayed whole, its trailer (a torn tail is cut
 * off), so that only the segment being written lacks one. Returns its new size or 0. */
static uint64_t s_close_replayed(gw_wal_t *self, const char *path, uint64_t no,
                                 const gw_wal_replay_report_t *rep)
{
    uint8_t *keys = sodium_malloc(S_KEYS_LEN), frame[S_TRAILER_FRAME], nonce[S_NONCE_LEN];
    int fd = -1;
    uint64_t size = 0;
    if (!keys || s_derive(keys, self->opts.ring, rep->key_version) < 0)
        goto out;
    s_pos_t pos = {.no = no, .next = rep->next, .bytes = rep->end};
    memcpy(pos.chain, rep->chain, 32);
    randombytes_buf(nonce, sizeof nonce);
    size_t n = s_seal_trailer(frame, &pos, keys, rep->key_version, nonce);
    if ((fd = open(path, O_WRONLY | O_CLOEXEC)) < 0 || s_write_trailer(fd, frame, n, rep->end))
        lc_error("wal_close_failed", "path=%s errno=\"%s\"", path, strerror(errno));
    else
        size = rep->end + n;
out:
    if (fd >= 0)
        close(fd);
    sodium_free(keys);
    return size;
}

/* Replays one segment file. newest: damage at its end is a torn write, not corruption. */
static int s_replay_file(gw_wal_t *self, uint64_t no, int newest, gw_wal_reading_fn *on_reading,
                         gw_wal_ack_fn *on_ack, void *arg)
{
    char path[4096];
    s_segment_path(self, path, sizeof path, no);
    size_t len = 0;
    uint8_t *buf = s_slurp(path, &len);
    if (!buf) {
        lc_error("wal_read_failed", "path=%s errno=\"%s\"", path, strerror(errno));
        return LC_ERR_IO;
    }
    gw_wal_replay_report_t rep;
    int rc =
        gw_wal_replay_segment(self->opts.ring, no, newest, buf, len, on_reading, on_ack, arg, &rep);
    sodium_memzero(buf, len);
    free(buf);
    if (rc == LC_ERR_UNSUPPORTED)
        lc_error("wal_old_format",
                 "path=%s hint=\"written by an older gateway (format 1); this one reads format 2 "
                 "only: drain the log with the old gateway, or move it away\"",
                 path);
    if (rc < 0)
        return rc;
    s_report(self, path, &rep);
    self->unacked += rep.readings;
    if (rep.torn && rep.end == 0) /* no header: nothing was ever written to it */
        return unlink(path) == 0 || errno == ENOENT ? 0 : LC_ERR_IO;
    uint64_t size = len;
    if (newest && !rep.damage && !rep.closed &&
        (size = s_close_replayed(self, path, no, &rep)) == 0)
        return LC_ERR_IO;
    pthread_mutex_lock(&self->lock);
    rc = s_add_segment(self, no, size, rep.damage != 0);
    pthread_mutex_unlock(&self->lock);
    return rc;
}

/* The segment numbers in the directory, sorted; counts <name>.damaged files on the way. */
static int s_list_segments(gw_wal_t *self, uint64_t **nos_p, size_t *n_p)
{
    DIR *d = opendir(self->dir);
    if (!d)
        return LC_ERR_IO;
    uint64_t *nos = NULL;
    size_t n = 0, cap = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        const char *name = de->d_name;
        if (strspn(name, "0123456789abcdef") != 16 || strncmp(name + 16, ".wal", 4) != 0)
            continue;
        if (strcmp(name + 20, ".damaged") == 0)
            self->n_damaged++;
        if (name[20] != '\0')
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            uint64_t *p = realloc(nos, cap * sizeof *p);
            if (!p) {
                free(nos);
                closedir(d);
                return LC_ERR_NOMEM;
            }
            nos = p;
        }
        nos[n++] = strtoull(name, NULL, 16);
    }
    closedir(d);
    if (n)
        qsort(nos, n, sizeof *nos, s_cmp_u64);
    *nos_p = nos;
    *n_p = n;
    return 0;
}

/* Replays every segment, oldest first. *last receives the highest segment number (0: none). */
static int s_replay(gw_wal_t *self, gw_wal_reading_fn *on_reading, gw_wal_ack_fn *on_ack, void *arg,
                    uint64_t *last)
{
    uint64_t *nos = NULL;
    size_t n = 0;
    int rc = s_list_segments(self, &nos, &n);
    for (size_t i = 0; i < n && rc == 0; i++)
        rc = s_replay_file(self, nos[i], i + 1 == n, on_reading, on_ack, arg);
    *last = n ? nos[n - 1] : 0;
    if (n && rc == 0)
        lc_info("wal_replayed", "segments=%zu readings=%" PRIu64 " damaged_segments=%" PRIu64, n,
                self->unacked, self->n_damaged);
    free(nos);
    return rc;
}

/* -- life cycle -------------------------------------------------------------------------- */

static int s_mkdirs(const char *dir)
{
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s", dir) >= (int)sizeof tmp)
        return -1;
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(tmp, 0700) != 0 && errno != EEXIST)
            return -1;
        *p = '/';
    }
    return mkdir(tmp, 0700) != 0 && errno != EEXIST ? -1 : 0;
}

/* The log's metrics, in the service's registry. */
static void s_register_metrics(gw_wal_t *self, lc_metrics_t *m)
{
    self->g_bytes = lc_metrics_gauge(m, "lcore_gateway_wal_bytes", "Size of the log on disk", NULL);
    self->g_readings =
        lc_metrics_gauge(m, "lcore_gateway_wal_readings",
                         "Readings in the log not yet acknowledged by the store", NULL);
    self->g_segments =
        lc_metrics_gauge(m, "lcore_gateway_wal_segments", "Segment files of the log", NULL);
    self->g_limit_bytes = lc_metrics_gauge(m, "lcore_gateway_wal_limit_bytes",
                                           "Log size past which readings get 503", NULL);
    self->g_limit_readings =
        lc_metrics_gauge(m, "lcore_gateway_wal_limit_readings",
                         "Unacknowledged readings past which readings get 503", NULL);
    self->h_fsync_seconds =
        lc_metrics_histogram(m, "lcore_gateway_wal_fsync_duration_seconds",
                             "Time to write and fdatasync one group of log entries", NULL,
                             lc_latency_buckets, lc_latency_buckets_len);
    self->h_fsync_readings = lc_metrics_histogram(m, "lcore_gateway_wal_fsync_readings",
                                                  "Readings made durable by one fdatasync", NULL,
                                                  s_group_buckets, LC_ARRAY_LEN(s_group_buckets));
    self->c_fsyncs =
        lc_metrics_counter(m, "lcore_gateway_wal_fsyncs_total", "fdatasync calls on the log", NULL);
    self->c_replayed = lc_metrics_counter(m, "lcore_gateway_wal_replayed_readings_total",
                                          "Readings read back from the log at start-up", NULL);
    self->c_damaged =
        lc_metrics_counter(m, "lcore_gateway_wal_damaged_entries_total",
                           "Log entries or segments that could not be read back", NULL);
    self->c_torn = lc_metrics_counter(m, "lcore_gateway_wal_torn_tails_total",
                                      "Torn writes cut off the newest segment at start-up", NULL);
    self->g_damaged = lc_metrics_gauge(m, "lcore_gateway_wal_damaged_segments",
                                       "Damaged log segments kept for inspection", NULL);
    for (unsigned i = 0; i < GW_WAL_DAMAGE_KINDS; i++) {
        char labels[32];
        snprintf(labels, sizeof labels, "kind=\"%s\"", s_damage_names[i]);
        self->c_damage[i] =
            lc_metrics_counter(m, "lcore_gateway_wal_damage_total",
                               "Damaged log segments found at replay, by kind of damage", labels);
    }
}

gw_wal_t *gw_wal_open(const gw_wal_opts_t *opts, gw_wal_reading_fn *on_reading,
                      gw_wal_ack_fn *on_ack, void *arg)
{
    gw_wal_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->opts = *opts;
    self->dir_fd = self->lock_fd = self->fd = self->wake_fd = -1;
    self->wake_armed = 1;
    pthread_mutex_init(&self->lock, NULL);
    s_register_metrics(self, opts->metrics);
    lc_gauge_set(self->g_limit_bytes, (double)opts->max_bytes);
    lc_gauge_set(self->g_limit_readings, (double)opts->max_entries);

    const lc_keyring_entry_t *cur = lc_keyring_current(opts->ring);
    uint64_t last = 0;
    if (!(self->dir = strdup(opts->dir)) || !cur || !(self->keys = sodium_malloc(S_KEYS_LEN)))
        goto fail;
    self->key_version = cur->version;
    if (s_derive(self->keys, opts->ring, cur->version) < 0)
        goto fail;
    sodium_mprotect_readonly(self->keys);
    randombytes_buf(self->nonce_prefix, sizeof self->nonce_prefix);
    if (s_mkdirs(self->dir) != 0 ||
        (self->dir_fd = open(self->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
        lc_error("wal_dir_failed", "dir=%s errno=\"%s\"", self->dir, strerror(errno));
        goto fail;
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/LOCK", self->dir);
    if ((self->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600)) < 0 ||
        flock(self->lock_fd, LOCK_EX | LOCK_NB) != 0) {
        lc_error("wal_locked",
                 "dir=%s hint=\"another gateway uses this log directory; give each "
                 "gateway its own LCORE_GATEWAY_WAL_DIR\"",
                 self->dir);
        goto fail;
    }
    if ((self->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) < 0)
        goto fail;
    if (s_replay(self, on_reading, on_ack, arg, &last) < 0)
        goto fail;
    s_pos_start(&self->seal, self->keys, last + 1, self->key_version);
    if (s_open_segment(self, last + 1) < 0)
        goto fail;
    lc_gauge_set(self->g_readings, (double)self->unacked);
    lc_gauge_set(self->g_bytes, (double)self->live_bytes);
    lc_gauge_set(self->g_segments, (double)self->n_segments);
    lc_gauge_set(self->g_damaged, (double)self->n_damaged);
    lc_info("wal_open",
            "dir=%s segment=%" PRIu64 " key_version=%u max_bytes=%" PRIu64 " max_readings=%" PRIu64,
            self->dir, last + 1, self->key_version, opts->max_bytes, opts->max_entries);
    return self;
fail:
    gw_wal_destroy(&self);
    return NULL;
}

void gw_wal_destroy(gw_wal_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    gw_wal_t *self = *self_p;
    if (self->fd >= 0)
        close(self->fd);
    if (self->wake_fd >= 0)
        close(self->wake_fd);
    if (self->lock_fd >= 0)
        close(self->lock_fd); /* releases the flock */
    if (self->dir_fd >= 0)
        close(self->dir_fd);
    s_buf_t *bufs[] = {&self->frames, &self->readings, &self->out_frames, &self->out_readings};
    for (size_t i = 0; i < LC_ARRAY_LEN(bufs); i++) {
        if (bufs[i]->data)
            sodium_memzero(bufs[i]->data, bufs[i]->cap);
        free(bufs[i]->data);
    }
    sodium_free(self->keys);
    free(self->waiters);
    free(self->segments);
    free(self->dir);
    pthread_mutex_destroy(&self->lock);
    free(self);
    *self_p = NULL;
}

/* -- appending --------------------------------------------------------------------------- */

static void s_wake(gw_wal_t *self)
{
    uint64_t one = 1;
    if (write(self->wake_fd, &one, sizeof one) < 0 && errno != EAGAIN)
        lc_warn("wal_wakeup_failed", "errno=\"%s\"", strerror(errno));
}

/* Appends a reading of len bytes that put() writes into place (under the lock). */
static int s_append(gw_wal_t *self, const uint8_t record_id[LC_RECORD_ID_LEN], size_t len,
                    void (*put)(uint8_t *dst, const void *src, size_t len), const void *src,
                    uint64_t *lsn)
{
    if (len == 0 || len > S_MAX_READING)
        return LC_ERR_TOOBIG;
    size_t plain = LC_RECORD_ID_LEN + len;
    size_t frame = S_FRAME_LEN + S_BODY_FIXED + plain + S_TAG_LEN;
    int rc = 0, wake = 0;
    pthread_mutex_lock(&self->lock);
    if (atomic_load(&self->failed)) {
        rc = LC_ERR_IO;
        goto out;
    }
    if (self->unacked >= self->opts.max_entries ||
        self->live_bytes + self->frames.len + frame > self->opts.max_bytes) {
        rc = LC_ERR_FULL;
        goto out;
    }
    uint8_t *p = s_reserve(&self->readings, 4 + plain);
    if (!p) {
        rc = LC_ERR_NOMEM;
        goto out;
    }
    s_put32(p, (uint32_t)len);
    memcpy(p + 4, record_id, LC_RECORD_ID_LEN);
    put(p + 4 + LC_RECORD_ID_LEN, src, len);
    if ((rc = s_seal_frame(self, S_READING, p + 4, plain)) < 0)
        goto out;
    self->readings.len += 4 + plain;
    self->n_readings++;
    self->unacked++;
    *lsn = ++self->last_lsn;
    wake = self->wake_armed;
    self->wake_armed = 0;
out:
    pthread_mutex_unlock(&self->lock);
    if (wake)
        s_wake(self);
    return rc;
}

static void s_put_bytes(uint8_t *dst, const void *src, size_t len)
{
    memcpy(dst, src, len);
}

static void s_put_packed(uint8_t *dst, const void *msg, size_t len)
{
    (void)len;
    protobuf_c_message_pack(msg, dst);
}

int gw_wal_append(gw_wal_t *self, const uint8_t record_id[LC_RECORD_ID_LEN], const uint8_t *data,
                  size_t len, uint64_t *lsn)
{
    return s_append(self, record_id, len, s_put_bytes, data, lsn);
}

int gw_wal_append_pb(gw_wal_t *self, const uint8_t record_id[LC_RECORD_ID_LEN],
                     const ProtobufCMessage *reading, uint64_t *lsn)
{
    return s_append(self, record_id, protobuf_c_message_get_packed_size(reading), s_put_packed,
                    reading, lsn);
}

int gw_wal_notify(gw_wal_t *self, uint64_t lsn, gw_wal_done_fn *done, void *arg)
{
    int rc = 0;
    pthread_mutex_lock(&self->lock);
    if (atomic_load(&self->failed)) {
        rc = LC_ERR_IO;
    } else if (lsn <= self->durable_lsn) {
        rc = 1;
    } else {
        if (self->n_waiters == self->cap_waiters) {
            size_t cap = self->cap_waiters ? self->cap_waiters * 2 : 256;
            s_waiter_t *w = realloc(self->waiters, cap * sizeof *w);
            if (!w) {
                rc = LC_ERR_NOMEM;
                goto out;
            }
            self->waiters = w;
            self->cap_waiters = cap;
        }
        self->waiters[self->n_waiters++] = (s_waiter_t){lsn, done, arg};
    }
out:
    pthread_mutex_unlock(&self->lock);
    return rc;
}

int gw_wal_append_acks(gw_wal_t *self, const uint8_t (*ids)[LC_RECORD_ID_LEN], size_t n)
{
    if (n == 0)
        return 0;
    pthread_mutex_lock(&self->lock);
    int rc = atomic_load(&self->failed)
                 ? LC_ERR_IO
                 : s_seal_frame(self, S_ACKS, (const uint8_t *)ids, n * LC_RECORD_ID_LEN);
    pthread_mutex_unlock(&self->lock);
    return rc;
}

int gw_wal_has_pending(gw_wal_t *self)
{
    pthread_mutex_lock(&self->lock);
    int pending = self->frames.len > 0;
    pthread_mutex_unlock(&self->lock);
    return pending;
}

int gw_wal_wakeup_fd(const gw_wal_t *self)
{
    return self->wake_fd;
}

void gw_wal_clear_wakeup(gw_wal_t *self)
{
    uint64_t v;
    if (read(self->wake_fd, &v, sizeof v) < 0 && errno != EAGAIN)
        lc_warn("wal_wakeup_failed", "errno=\"%s\"", strerror(errno));
}

/* -- group commit ------------------------------------------------------------------------ */

/* Wakes the waiters whose entries are durable (all of them, with an error, if the log failed).
 * Callbacks run outside the lock. */
static void s_wake_waiters(gw_wal_t *self, int status)
{
    s_waiter_t woken[256];
    for (;;) {
        size_t n = 0;
        pthread_mutex_lock(&self->lock);
        size_t keep = 0;
        for (size_t i = 0; i < self->n_waiters; i++) {
            s_waiter_t w = self->waiters[i];
            if (n < LC_ARRAY_LEN(woken) && (status < 0 || w.lsn <= self->durable_lsn))
                woken[n++] = w;
            else
                self->waiters[keep++] = w;
        }
        self->n_waiters = keep;
        int more = n == LC_ARRAY_LEN(woken);
        pthread_mutex_unlock(&self->lock);
        for (size_t i = 0; i < n; i++)
            woken[i].done(woken[i].arg, status);
        if (!more)
            return;
    }
}

/* Passes each reading of a group just made durable to on_reading. */
static void s_hand_over(const s_buf_t *readings, uint64_t seg, gw_wal_reading_fn *on_reading,
                        void *arg)
{
    for (size_t off = 0; off < readings->len;) {
        const uint8_t *p = readings->data + off;
        size_t len = s_get32(p);
        on_reading(arg, seg, p + 4, p + 4 + LC_RECORD_ID_LEN, len);
        off += 4 + LC_RECORD_ID_LEN + len;
    }
}

/* The group starts with the open segment's trailer: writes it, then opens the next segment. */
static int s_roll(gw_wal_t *self)
{
    pthread_mutex_lock(&self->lock);
    s_segment_t *cur = &self->segments[self->n_segments - 1];
    uint64_t at = cur->bytes, no = cur->no;
    pthread_mutex_unlock(&self->lock);
    if (s_write_trailer(self->fd, self->out_frames.data, self->out_roll, at) != 0) {
        s_fail(self, "close");
        return LC_ERR_IO;
    }
    pthread_mutex_lock(&self->lock);
    self->segments[self->n_segments - 1].bytes += self->out_roll;
    self->live_bytes += self->out_roll;
    pthread_mutex_unlock(&self->lock);
    if (s_open_segment(self, no + 1) < 0) {
        s_fail(self, "segment");
        return LC_ERR_IO;
    }
    return 0;
}

int gw_wal_sync(gw_wal_t *self, gw_wal_reading_fn *on_reading, void *arg)
{
    if (atomic_load(&self->failed))
        return LC_ERR_IO;
    pthread_mutex_lock(&self->lock);
    s_buf_t t = self->frames;
    self->frames = self->out_frames;
    self->out_frames = t;
    t = self->readings;
    self->readings = self->out_readings;
    self->out_readings = t;
    size_t n_readings = self->n_readings;
    self->n_readings = 0;
    self->out_roll = self->roll;
    self->roll = 0;
    uint64_t upto = self->last_lsn;
    self->wake_armed = 1;
    pthread_mutex_unlock(&self->lock);
    if (self->out_frames.len == 0)
        return 0;

    uint64_t t0 = lc_mono_us();
    int rc = 0;
    if (self->out_roll && (rc = s_roll(self)) < 0)
        goto out;
    const uint8_t *data = self->out_frames.data + self->out_roll;
    size_t group = self->out_frames.len - self->out_roll;
    pthread_mutex_lock(&self->lock);
    uint64_t at = self->segments[self->n_segments - 1].bytes;
    pthread_mutex_unlock(&self->lock);
    /* Past the zeros written ahead: write the next stretch with this group, so most groups'
     * fdatasync flush only data blocks and not the inode (the file size does not change). */
    uint64_t need = at + group;
    if (self->opts.prefill_bytes && need > self->prefilled) {
        if (s_zero_fill(self->fd, need, need + self->opts.prefill_bytes) != 0) {
            s_fail(self, "write");
            rc = LC_ERR_IO;
            goto out;
        }
        self->prefilled = need + self->opts.prefill_bytes;
    }
    if (s_pwrite_all(self->fd, data, group, at) != 0) {
        s_fail(self, "write");
        rc = LC_ERR_IO;
        goto out;
    }
    /* Acks alone need no fsync: losing them costs a redelivery, not a reading. */
    if (n_readings && fdatasync(self->fd) != 0) {
        s_fail(self, "fdatasync");
        rc = LC_ERR_IO;
        goto out;
    }
    if (n_readings) {
        lc_counter_inc(self->c_fsyncs);
        lc_histogram_observe(self->h_fsync_seconds, (double)(lc_mono_us() - t0) / 1e6);
        lc_histogram_observe(self->h_fsync_readings, (double)n_readings);
    }
    pthread_mutex_lock(&self->lock);
    s_segment_t *last = &self->segments[self->n_segments - 1];
    last->bytes += group;
    self->live_bytes += group;
    self->durable_lsn = upto;
    lc_gauge_set(self->g_bytes, (double)self->live_bytes);
    lc_gauge_set(self->g_segments, (double)self->n_segments);
    uint64_t seg = last->no;
    pthread_mutex_unlock(&self->lock);
    s_wake_waiters(self, 0);
    s_hand_over(&self->out_readings, seg, on_reading, arg);
out:
    /* The clear copies are wiped: only the sealed log (and the relay's queue) keep readings. */
    if (self->out_readings.len)
        sodium_memzero(self->out_readings.data, self->out_readings.len);
    self->out_readings.len = 0;
    self->out_frames.len = 0;
    self->out_roll = 0;
    if (rc < 0)
        s_wake_waiters(self, LC_ERR_IO);
    return rc;
}

/* -- releasing --------------------------------------------------------------------------- */

void gw_wal_release(gw_wal_t *self, uint64_t n)
{
    pthread_mutex_lock(&self->lock);
    self->unacked = n > self->unacked ? 0 : self->unacked - n;
    lc_gauge_set(self->g_readings, (double)self->unacked);
    pthread_mutex_unlock(&self->lock);
}

/* A damaged segment whose readings are all acknowledged: out of replay, kept for inspection. */
static void s_set_aside(gw_wal_t *self, uint64_t no)
{
    char path[4096], to[4096 + 16];
    s_segment_path(self, path, sizeof path, no);
    snprintf(to, sizeof to, "%s.damaged", path);
    if (rename(path, to) != 0)
        lc_warn("wal_rename_failed", "path=%s errno=\"%s\"", path, strerror(errno));
    else
        lc_info("wal_segment_set_aside", "path=%s", to);
}

void gw_wal_trim(gw_wal_t *self, uint64_t keep_from)
{
    s_segment_t gone[64];
    size_t n_gone = 0;
    pthread_mutex_lock(&self->lock);
    /* Oldest first; the last segment is being written and always stays. */
    while (self->n_segments > 1 && self->segments[0].no < keep_from &&
           n_gone < LC_ARRAY_LEN(gone)) {
        gone[n_gone++] = self->segments[0];
        self->live_bytes -= self->segments[0].bytes;
        memmove(self->segments, self->segments + 1,
                (self->n_segments - 1) * sizeof *self->segments);
        self->n_segments--;
    }
    lc_gauge_set(self->g_bytes, (double)self->live_bytes);
    lc_gauge_set(self->g_segments, (double)self->n_segments);
    pthread_mutex_unlock(&self->lock);
    for (size_t i = 0; i < n_gone; i++) {
        char path[4096];
        s_segment_path(self, path, sizeof path, gone[i].no);
        if (gone[i].damaged)
            s_set_aside(self, gone[i].no);
        else if (unlink(path) != 0)
            lc_warn("wal_unlink_failed", "path=%s errno=\"%s\"", path, strerror(errno));
        else
            lc_debug("wal_segment_deleted", "segment=%" PRIu64, gone[i].no);
    }
}

uint64_t gw_wal_segment(const gw_wal_t *self)
{
    return self->segments[self->n_segments - 1].no;
}

int gw_wal_failed(gw_wal_t *self)
{
    return atomic_load(&self->failed);
}
