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

#define S_MAGIC "LCWAL001"
#define S_HEADER_LEN 32
#define S_FRAME_LEN 8 /* body length + CRC */
#define S_NONCE_LEN crypto_aead_xchacha20poly1305_ietf_NPUBBYTES
#define S_TAG_LEN crypto_aead_xchacha20poly1305_ietf_ABYTES
#define S_BODY_FIXED (1 + 4 + S_NONCE_LEN) /* type, key version, nonce */
#define S_MAX_READING (8u << 20)           /* far above any reading the gateway accepts */
#define S_MAX_BODY (S_BODY_FIXED + LC_RECORD_ID_LEN + S_MAX_READING + S_TAG_LEN)
#define S_AD_PREFIX "lcore/wal/v1"
#define S_AD_LEN (sizeof S_AD_PREFIX - 1 + 1 + 4)

enum { S_READING = 1, S_ACKS = 2 };

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
} s_segment_t;

struct gw_wal {
    gw_wal_opts_t opts;
    char *dir;
    int dir_fd, lock_fd, fd, wake_fd;
    uint32_t key_version;
    uint8_t *key; /* sodium_malloc'd, read-only */
    uint8_t nonce_prefix[16];
    uint64_t nonce_counter; /* under lock */

    pthread_mutex_t lock;
    /* Under lock: */
    s_buf_t frames;   /* sealed entries not yet written */
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

    lc_gauge_t *g_bytes, *g_readings, *g_segments, *g_limit_bytes, *g_limit_readings;
    lc_histogram_t *h_fsync_seconds, *h_fsync_readings;
    lc_counter_t *c_fsyncs, *c_replayed, *c_damaged;
};

static const double s_group_buckets[] = {1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000};

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

static void s_ad(uint8_t ad[S_AD_LEN], uint8_t type, uint32_t key_version)
{
    memcpy(ad, S_AD_PREFIX, sizeof S_AD_PREFIX - 1);
    ad[sizeof S_AD_PREFIX - 1] = type;
    s_put32(ad + sizeof S_AD_PREFIX, key_version);
}

static int s_derive(uint8_t key[32], const lc_keyring_t *ring, uint32_t version)
{
    const lc_keyring_entry_t *e = lc_keyring_get(ring, version);
    if (!e)
        return LC_ERR_NOTFOUND;
    return crypto_kdf_derive_from_key(key, 32, 1, "lcgwwal1", e->gateway_master) == 0
               ? 0
               : LC_ERR_INVALID;
}

/* Seals plain (n bytes) as one entry of `type` at frames' end. Under lock. */
static int s_seal_frame(gw_wal_t *self, uint8_t type, const uint8_t *plain, size_t n)
{
    size_t body = S_BODY_FIXED + n + S_TAG_LEN;
    uint8_t *p = s_reserve(&self->frames, S_FRAME_LEN + body);
    if (!p)
        return LC_ERR_NOMEM;
    uint8_t *b = p + S_FRAME_LEN;
    b[0] = type;
    s_put32(b + 1, self->key_version);
    uint8_t *nonce = b + 5;
    memcpy(nonce, self->nonce_prefix, sizeof self->nonce_prefix);
    s_put64(nonce + sizeof self->nonce_prefix, ++self->nonce_counter);
    uint8_t ad[S_AD_LEN];
    s_ad(ad, type, self->key_version);
    crypto_aead_xchacha20poly1305_ietf_encrypt(b + S_BODY_FIXED, NULL, plain, n, ad, sizeof ad,
                                               NULL, nonce, self->key);
    s_put32(p, (uint32_t)body);
    s_put32(p + 4, s_crc(b, body));
    self->frames.len += S_FRAME_LEN + body;
    return 0;
}

static int s_add_segment(gw_wal_t *self, uint64_t no, uint64_t bytes)
{
    if (self->n_segments == self->cap_segments) {
        size_t cap = self->cap_segments ? self->cap_segments * 2 : 16;
        s_segment_t *s = realloc(self->segments, cap * sizeof *s);
        if (!s)
            return LC_ERR_NOMEM;
        self->segments = s;
        self->cap_segments = cap;
    }
    self->segments[self->n_segments++] = (s_segment_t){no, bytes};
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
    int rc = s_add_segment(self, no, S_HEADER_LEN);
    pthread_mutex_unlock(&self->lock);
    return rc;
}

static void s_fail(gw_wal_t *self, const char *what)
{
    if (!atomic_exchange(&self->failed, 1))
        lc_error("wal_failed",
                 "op=%s errno=\"%s\" hint=\"restart the gateway: it replays its log\"", what,
                 strerror(errno));
}

/* -- replay ------------------------------------------------------------------------------ */

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

typedef struct {
    gw_wal_reading_fn *on_reading;
    gw_wal_ack_fn *on_ack;
    void *arg;
    uint8_t *key; /* sodium_malloc'd scratch for the entry's key version */
    uint32_t key_version;
    uint8_t *plain;
    size_t plain_cap;
} s_replay_t;

/* Opens one entry body. Returns 0, or LC_ERR_* for an entry that cannot be read. */
static int s_replay_body(gw_wal_t *self, s_replay_t *r, uint64_t seg, const uint8_t *b, size_t n)
{
    if (n < S_BODY_FIXED + S_TAG_LEN)
        return LC_ERR_INVALID;
    uint8_t type = b[0];
    uint32_t version = s_get32(b + 1);
    if (version != r->key_version) {
        if (s_derive(r->key, self->opts.ring, version) < 0) {
            r->key_version = 0;
            return LC_ERR_NOTFOUND;
        }
        r->key_version = version;
    }
    size_t plen = n - S_BODY_FIXED - S_TAG_LEN;
    if (plen > r->plain_cap) {
        uint8_t *p = realloc(r->plain, plen);
        if (!p)
            return LC_ERR_NOMEM;
        r->plain = p;
        r->plain_cap = plen;
    }
    uint8_t ad[S_AD_LEN];
    s_ad(ad, type, version);
    if (crypto_aead_xchacha20poly1305_ietf_decrypt(r->plain, NULL, NULL, b + S_BODY_FIXED,
                                                   n - S_BODY_FIXED, ad, sizeof ad, b + 5,
                                                   r->key) != 0)
        return LC_ERR_SIGNATURE;
    if (type == S_READING && plen > LC_RECORD_ID_LEN) {
        lc_counter_inc(self->c_replayed);
        r->on_reading(r->arg, seg, r->plain, r->plain + LC_RECORD_ID_LEN, plen - LC_RECORD_ID_LEN);
    } else if (type == S_ACKS && plen % LC_RECORD_ID_LEN == 0) {
        for (size_t i = 0; i < plen; i += LC_RECORD_ID_LEN)
            r->on_ack(r->arg, r->plain + i);
    } else {
        return LC_ERR_INVALID;
    }
    sodium_memzero(r->plain, plen);
    return 0;
}

static int s_all_zero(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i])
            return 0;
    return 1;
}

/* Replays one segment file. newest: damage at its end is a torn write, not corruption. */
static int s_replay_segment(gw_wal_t *self, s_replay_t *r, uint64_t no, int newest,
                            uint64_t *readings)
{
    char path[4096];
    s_segment_path(self, path, sizeof path, no);
    size_t len = 0;
    uint8_t *buf = s_slurp(path, &len);
    if (!buf) {
        lc_error("wal_read_failed", "path=%s errno=\"%s\"", path, strerror(errno));
        return LC_ERR_IO;
    }
    int rc = 0;
    size_t end = len; /* of the entries: the zeros written ahead of them do not count */
    if (len < S_HEADER_LEN || memcmp(buf, S_MAGIC, 8) != 0 || s_get64(buf + 8) != no ||
        s_get32(buf + 28) != s_crc(buf, 28)) {
        /* A crash between creating a segment and its header's fsync leaves it short. */
        if (newest && len < S_HEADER_LEN) {
            lc_warn("wal_torn_segment", "path=%s bytes=%zu", path, len);
        } else {
            lc_error("wal_bad_segment_header", "path=%s", path);
            lc_counter_inc(self->c_damaged);
        }
        goto out;
    }
    size_t off = S_HEADER_LEN, damaged = 0;
    uint64_t before = lc_counter_get(self->c_replayed);
    while (off < len) {
        /* Zeros to the end of the file: the space written ahead of the data, not an entry. */
        if (s_all_zero(buf + off, len - off)) {
            end = off;
            break;
        }
        uint32_t blen = off + S_FRAME_LEN <= len ? s_get32(buf + off) : 0;
        if (off + S_FRAME_LEN > len || blen > S_MAX_BODY || off + S_FRAME_LEN + blen > len ||
            s_get32(buf + off + 4) != s_crc(buf + off + S_FRAME_LEN, blen)) {
            /* The length cannot be trusted past a bad frame: the rest of the file is lost. */
            if (newest) {
                lc_warn("wal_torn_tail", "path=%s offset=%zu bytes_dropped=%zu", path, off,
                        len - off);
            } else {
                lc_error("wal_damaged", "path=%s offset=%zu bytes_dropped=%zu", path, off,
                         len - off);
                lc_counter_inc(self->c_damaged);
            }
            break;
        }
        int e = s_replay_body(self, r, no, buf + off + S_FRAME_LEN, blen);
        if (e == LC_ERR_NOMEM) {
            rc = e;
            goto out;
        }
        if (e < 0) {
            damaged++;
            lc_counter_inc(self->c_damaged);
        }
        off += S_FRAME_LEN + blen;
    }
    if (damaged)
        lc_error("wal_entries_unreadable",
                 "path=%s entries=%zu hint=\"key ring missing the "
                 "version that wrote them, or a damaged disk\"",
                 path, damaged);
    *readings += lc_counter_get(self->c_replayed) - before;
out:
    if (rc == 0) {
        pthread_mutex_lock(&self->lock);
        rc = s_add_segment(self, no, end);
        pthread_mutex_unlock(&self->lock);
    }
    sodium_memzero(buf, len);
    free(buf);
    return rc;
}

/* Replays every segment, oldest first. *last receives the highest segment number (0: none). */
static int s_replay(gw_wal_t *self, gw_wal_reading_fn *on_reading, gw_wal_ack_fn *on_ack, void *arg,
                    uint64_t *last)
{
    DIR *d = opendir(self->dir);
    if (!d)
        return LC_ERR_IO;
    uint64_t *nos = NULL;
    size_t n = 0, cap = 0;
    int rc = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        const char *name = de->d_name;
        if (strlen(name) != 20 || strcmp(name + 16, ".wal") != 0 ||
            strspn(name, "0123456789abcdef") != 16)
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            uint64_t *p = realloc(nos, cap * sizeof *p);
            if (!p) {
                rc = LC_ERR_NOMEM;
                goto out;
            }
            nos = p;
        }
        nos[n++] = strtoull(name, NULL, 16);
    }
    if (n)
        qsort(nos, n, sizeof *nos, s_cmp_u64);
    s_replay_t r = {on_reading, on_ack, arg, sodium_malloc(32), 0, NULL, 0};
    if (!r.key) {
        rc = LC_ERR_NOMEM;
        goto out;
    }
    uint64_t readings = 0;
    for (size_t i = 0; i < n && rc == 0; i++)
        rc = s_replay_segment(self, &r, nos[i], i + 1 == n, &readings);
    sodium_free(r.key);
    free(r.plain);
    self->unacked = readings;
    *last = n ? nos[n - 1] : 0;
    if (n)
        lc_info("wal_replayed", "segments=%zu readings=%" PRIu64, n, readings);
out:
    free(nos);
    closedir(d);
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
    lc_metrics_t *m = opts->metrics;
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
    lc_gauge_set(self->g_limit_bytes, (double)opts->max_bytes);
    lc_gauge_set(self->g_limit_readings, (double)opts->max_entries);

    const lc_keyring_entry_t *cur = lc_keyring_current(opts->ring);
    uint64_t last = 0;
    if (!(self->dir = strdup(opts->dir)) || !cur || !(self->key = sodium_malloc(32)))
        goto fail;
    self->key_version = cur->version;
    if (s_derive(self->key, opts->ring, cur->version) < 0)
        goto fail;
    sodium_mprotect_readonly(self->key);
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
    if (s_replay(self, on_reading, on_ack, arg, &last) < 0 || s_open_segment(self, last + 1) < 0)
        goto fail;
    lc_gauge_set(self->g_readings, (double)self->unacked);
    lc_gauge_set(self->g_bytes, (double)self->live_bytes);
    lc_gauge_set(self->g_segments, (double)self->n_segments);
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
    sodium_free(self->key);
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
    uint64_t upto = self->last_lsn;
    self->wake_armed = 1;
    pthread_mutex_unlock(&self->lock);
    if (self->out_frames.len == 0)
        return 0;

    uint64_t t0 = lc_mono_us();
    int rc = 0;
    s_segment_t *cur = &self->segments[self->n_segments - 1];
    if (cur->bytes >= self->opts.segment_bytes && (rc = s_open_segment(self, cur->no + 1)) < 0) {
        s_fail(self, "segment");
        goto out;
    }
    pthread_mutex_lock(&self->lock);
    uint64_t at = self->segments[self->n_segments - 1].bytes;
    pthread_mutex_unlock(&self->lock);
    /* Past the zeros written ahead: write the next stretch with this group, so most groups'
     * fdatasync flush only data blocks and not the inode (the file size does not change). */
    uint64_t need = at + self->out_frames.len;
    if (self->opts.prefill_bytes && need > self->prefilled) {
        if (s_zero_fill(self->fd, need, need + self->opts.prefill_bytes) != 0) {
            s_fail(self, "write");
            rc = LC_ERR_IO;
            goto out;
        }
        self->prefilled = need + self->opts.prefill_bytes;
    }
    if (s_pwrite_all(self->fd, self->out_frames.data, self->out_frames.len, at) != 0) {
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
    last->bytes += self->out_frames.len;
    self->live_bytes += self->out_frames.len;
    self->durable_lsn = upto;
    lc_gauge_set(self->g_bytes, (double)self->live_bytes);
    lc_gauge_set(self->g_segments, (double)self->n_segments);
    uint64_t seg = last->no;
    pthread_mutex_unlock(&self->lock);
    s_wake_waiters(self, 0);
    for (size_t off = 0; off < self->out_readings.len;) {
        const uint8_t *p = self->out_readings.data + off;
        size_t len = s_get32(p);
        on_reading(arg, seg, p + 4, p + 4 + LC_RECORD_ID_LEN, len);
        off += 4 + LC_RECORD_ID_LEN + len;
    }
out:
    /* The clear copies are wiped: only the sealed log (and the relay's queue) keep readings. */
    if (self->out_readings.len)
        sodium_memzero(self->out_readings.data, self->out_readings.len);
    self->out_readings.len = 0;
    self->out_frames.len = 0;
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

void gw_wal_trim(gw_wal_t *self, uint64_t keep_from)
{
    uint64_t gone[64];
    size_t n_gone = 0;
    pthread_mutex_lock(&self->lock);
    /* Oldest first; the last segment is being written and always stays. */
    while (self->n_segments > 1 && self->segments[0].no < keep_from &&
           n_gone < LC_ARRAY_LEN(gone)) {
        gone[n_gone++] = self->segments[0].no;
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
        s_segment_path(self, path, sizeof path, gone[i]);
        if (unlink(path) != 0)
            lc_warn("wal_unlink_failed", "path=%s errno=\"%s\"", path, strerror(errno));
        else
            lc_debug("wal_segment_deleted", "segment=%" PRIu64, gone[i]);
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
