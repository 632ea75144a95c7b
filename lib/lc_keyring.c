/* lc_keyring.c: the versioned key ring files (seal and gateway). See lc_keyring.h for the format.
 *
 * Loading reads the whole file into guarded memory, parses it into a sorted array of entries in
 * sodium_malloc'd memory and makes that array read-only; the file bytes are wiped right after.
 * Writers (create, rotate) serialise on an flock of the ring's directory, write a 0600 temporary
 * file next to the ring, fsync it, move it into place and fsync the directory, so a crash leaves
 * either the old ring or the new one, never half of one. Parse errors name the line, never a key.
 * Each line's fields say its kind; a loader refuses keys of another kind rather than ignoring
 * them, so a service never holds a secret it does not need (DESIGN "Trust boundary").
 * Loaded rings are immutable and may be shared by threads; create/rotate/split are for tools. */
#include "lc_keyring.h"

#include "lc_log.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#define S_MAX_VERSIONS 1024
#define S_MAX_FILE_BYTES (1024 * 1024)
#define S_HEX_LEN (2 * LC_MASTER_KEY_LEN)
/* "v=4294967295 created=18446744073709551615 aes=<64> xchacha=<64> gateway=<64>\n" */
#define S_LINE_MAX 320

/* The fields of a line, as bits; a kind is the set of fields each of its lines must hold. */
enum { F_V = 1, F_CREATED = 2, F_AES = 4, F_XCHACHA = 8, F_GATEWAY = 16 };
#define S_KEYS (F_AES | F_XCHACHA | F_GATEWAY)
#define S_WANT_SEAL (F_V | F_CREATED | F_AES | F_XCHACHA)
#define S_WANT_GATEWAY (F_V | F_CREATED | F_GATEWAY)
#define S_WANT_COMBINED (F_V | F_CREATED | S_KEYS)

static const char s_split_hint[] =
    "hint=\"split the combined ring: lcore-cli keyring-split COMBINED SEAL_RING GATEWAY_RING\"";

static unsigned s_want(lc_keyring_kind_t kind)
{
    return kind == LC_KEYRING_GATEWAY ? S_WANT_GATEWAY : S_WANT_SEAL;
}

const char *lc_keyring_kind_name(lc_keyring_kind_t kind)
{
    return kind == LC_KEYRING_GATEWAY ? "gateway" : "seal";
}

static const char *s_want_name(unsigned want)
{
    return want == S_WANT_GATEWAY ? "gateway" : want == S_WANT_SEAL ? "seal" : "combined";
}

struct lc_keyring {
    lc_keyring_entry_t *entries; /* sodium_malloc'd, read-only, sorted by version, no duplicates */
    size_t count;
};

/* ---- reading and parsing ------------------------------------------------------------------- */

/* Reads the ring file into sodium_malloc'd memory (NUL-terminated). Refuses anything but a
 * regular file and any group/other permission bit. */
static int s_read_file(const char *path, char **buf_out, size_t *len_out)
{
    int rc = LC_ERR_IO;
    char *buf = NULL;
    size_t cap = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
        rc = errno == ENOENT ? LC_ERR_NOTFOUND : LC_ERR_IO;
        lc_error("keyring_open_failed", "path=\"%s\" errno=\"%s\"", path, strerror(errno));
        goto out;
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        lc_error("keyring_stat_failed", "path=\"%s\" errno=\"%s\"", path, strerror(errno));
        goto out;
    }
    if (!S_ISREG(st.st_mode)) {
        rc = LC_ERR_INVALID;
        lc_error("keyring_not_regular_file", "path=\"%s\"", path);
        goto out;
    }
    if ((st.st_mode & (S_IRWXG | S_IRWXO)) != 0) {
        rc = LC_ERR_INVALID;
        lc_error("keyring_insecure_mode", "path=\"%s\" mode=%04o want=0600", path,
                 (unsigned)(st.st_mode & 07777));
        goto out;
    }
    if (st.st_size > S_MAX_FILE_BYTES) {
        rc = LC_ERR_TOOBIG;
        lc_error("keyring_too_big", "path=\"%s\" bytes=%lld max=%d", path, (long long)st.st_size,
                 S_MAX_FILE_BYTES);
        goto out;
    }
    cap = (size_t)st.st_size;
    buf = sodium_malloc(cap + 1);
    if (!buf) {
        rc = LC_ERR_NOMEM;
        goto out;
    }
    size_t len = 0;
    while (len < cap) {
        ssize_t n = read(fd, buf + len, cap - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            lc_error("keyring_read_failed", "path=\"%s\" errno=\"%s\"", path, strerror(errno));
            goto out;
        }
        if (n == 0)
            break;
        len += (size_t)n;
    }
    buf[len] = '\0';
    *buf_out = buf;
    *len_out = len;
    buf = NULL;
    rc = 0;
out:
    if (buf) {
        sodium_memzero(buf, cap + 1);
        sodium_free(buf);
    }
    if (fd >= 0)
        close(fd);
    return rc;
}

static void s_free_text(char *buf, size_t len)
{
    if (buf) {
        sodium_memzero(buf, len + 1);
        sodium_free(buf);
    }
}

/* Strict unsigned decimal: digits only, no sign, no overflow past max. */
static bool s_parse_uint(const char *s, size_t len, uint64_t max, uint64_t *out)
{
    if (len == 0 || len > 20)
        return false;
    uint64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        unsigned d = (unsigned)(s[i] - '0');
        if (v > (max - d) / 10)
            return false;
        v = v * 10 + d;
    }
    *out = v;
    return true;
}

/* Exactly 64 hex digits to a non-zero 32-byte key. */
static bool s_parse_key(uint8_t out[LC_MASTER_KEY_LEN], const char *hex, size_t len)
{
    size_t bin_len = 0;
    const char *end = NULL;
    if (len != S_HEX_LEN)
        return false;
    if (sodium_hex2bin(out, LC_MASTER_KEY_LEN, hex, len, NULL, &bin_len, &end) != 0 ||
        bin_len != LC_MASTER_KEY_LEN || end != hex + len)
        return false;
    return !sodium_is_zero(out, LC_MASTER_KEY_LEN);
}

static bool s_is_blank(char c)
{
    return c == ' ' || c == '\t';
}

/* Parses one non-comment line into *e and the set of its fields into *seen. Returns NULL or a
 * reason for the log (syntax only: the caller checks the fields against the kind). */
static const char *s_parse_line(lc_keyring_entry_t *e, unsigned *seen_out, const char *line,
                                size_t len)
{
    unsigned seen = 0;
    size_t i = 0;
    while (i < len) {
        while (i < len && s_is_blank(line[i]))
            i++;
        if (i == len)
            break;
        size_t start = i;
        while (i < len && !s_is_blank(line[i]))
            i++;
        const char *tok = line + start;
        size_t tok_len = i - start;
        const char *eq = memchr(tok, '=', tok_len);
        if (!eq)
            return "field_without_value";
        size_t name_len = (size_t)(eq - tok);
        const char *val = eq + 1;
        size_t val_len = tok_len - name_len - 1;
        unsigned field;
        uint64_t n;
        if (name_len == 1 && memcmp(tok, "v", 1) == 0) {
            field = F_V;
            if (!s_parse_uint(val, val_len, UINT32_MAX, &n) || n == 0)
                return "bad_version";
            e->version = (uint32_t)n;
        } else if (name_len == 7 && memcmp(tok, "created", 7) == 0) {
            field = F_CREATED;
            if (!s_parse_uint(val, val_len, UINT64_MAX, &n))
                return "bad_created";
            e->created = n;
        } else if (name_len == 3 && memcmp(tok, "aes", 3) == 0) {
            field = F_AES;
            if (!s_parse_key(e->aes_master, val, val_len))
                return "bad_aes_key";
        } else if (name_len == 7 && memcmp(tok, "xchacha", 7) == 0) {
            field = F_XCHACHA;
            if (!s_parse_key(e->xchacha_master, val, val_len))
                return "bad_xchacha_key";
        } else if (name_len == 7 && memcmp(tok, "gateway", 7) == 0) {
            field = F_GATEWAY;
            if (!s_parse_key(e->gateway_master, val, val_len))
                return "bad_gateway_key";
        } else {
            return "unknown_field";
        }
        if (seen & field)
            return "repeated_field";
        seen |= field;
    }
    *seen_out = seen;
    return NULL;
}

/* Logs, on one line, a ring holding keys its reader must not have, and how to fix it. */
static void s_log_wrong_kind(const char *path, size_t line_no, unsigned want, unsigned seen)
{
    const char *holds = (seen & S_KEYS) == S_KEYS      ? "sealing keys and the gateway log key"
                        : (seen & S_KEYS) == F_GATEWAY ? "the gateway log key"
                                                       : "sealing keys";
    lc_error("keyring_wrong_kind", "path=\"%s\" line=%zu want=%s holds=\"%s\" %s", path, line_no,
             s_want_name(want), holds, s_split_hint);
}

/* Parses the text of a ring into a sodium_malloc'd array sorted by version (count may be 0; the
 * array is then NULL). The array is left writable; the caller decides on protection. */
static int s_parse(const char *path, unsigned want, char *text, size_t text_len,
                   lc_keyring_entry_t **out, size_t *count_out)
{
    int rc = LC_ERR_INVALID;
    lc_keyring_entry_t *entries = NULL;
    lc_keyring_entry_t tmp;
    size_t count = 0;

    if (strlen(text) != text_len) {
        lc_error("keyring_parse_error", "path=\"%s\" reason=nul_byte", path);
        goto out;
    }
    /* Upper bound on entries: the number of lines. */
    size_t lines = 1;
    for (size_t i = 0; i < text_len; i++)
        lines += text[i] == '\n';
    size_t cap = lines < S_MAX_VERSIONS ? lines : S_MAX_VERSIONS;
    entries = sodium_allocarray(cap, sizeof *entries);
    if (!entries) {
        rc = LC_ERR_NOMEM;
        goto out;
    }
    sodium_memzero(entries, cap * sizeof *entries);

    size_t line_no = 0;
    char *p = text;
    char *end = text + text_len;
    while (p < end) {
        line_no++;
        char *nl = memchr(p, '\n', (size_t)(end - p));
        char *line_end = nl ? nl : end;
        char *next = nl ? nl + 1 : end;
        if (line_end > p && line_end[-1] == '\r')
            line_end--;
        while (p < line_end && s_is_blank(*p))
            p++;
        if (p == line_end || *p == '#') {
            p = next;
            continue;
        }
        sodium_memzero(&tmp, sizeof tmp);
        unsigned seen = 0;
        const char *reason = s_parse_line(&tmp, &seen, p, (size_t)(line_end - p));
        if (!reason && (seen & S_KEYS & ~want)) {
            s_log_wrong_kind(path, line_no, want, seen);
            goto out;
        }
        if (!reason && seen != want)
            reason = (seen & S_KEYS) == 0 || want != S_WANT_COMBINED ? "missing_field"
                                                                     : "not_a_combined_ring";
        if (reason) {
            lc_error("keyring_parse_error", "path=\"%s\" line=%zu reason=%s", path, line_no,
                     reason);
            goto out;
        }
        if (count == S_MAX_VERSIONS) {
            rc = LC_ERR_TOOBIG;
            lc_error("keyring_parse_error", "path=\"%s\" line=%zu reason=too_many_versions max=%d",
                     path, line_no, S_MAX_VERSIONS);
            goto out;
        }
        /* Insertion keeps the array sorted; rings are written in order, so this is O(n). */
        size_t pos = count;
        while (pos > 0 && entries[pos - 1].version > tmp.version)
            pos--;
        if (pos > 0 && entries[pos - 1].version == tmp.version) {
            lc_error("keyring_parse_error", "path=\"%s\" line=%zu reason=duplicate_version v=%u",
                     path, line_no, tmp.version);
            goto out;
        }
        memmove(&entries[pos + 1], &entries[pos], (count - pos) * sizeof *entries);
        entries[pos] = tmp;
        count++;
        p = next;
    }
    *out = count ? entries : NULL;
    *count_out = count;
    if (count)
        entries = NULL;
    rc = 0;
out:
    sodium_memzero(&tmp, sizeof tmp);
    if (entries)
        sodium_free(entries); /* sodium_free wipes the region */
    return rc;
}

/* ---- public: load, lookup, destroy --------------------------------------------------------- */

lc_keyring_t *lc_keyring_load(const char *path, lc_keyring_kind_t kind, int *err)
{
    int rc;
    char *text = NULL;
    size_t text_len = 0;
    lc_keyring_entry_t *entries = NULL;
    size_t count = 0;
    lc_keyring_t *self = NULL;

    if (!path) {
        rc = LC_ERR_INVALID;
        goto out;
    }
    if (sodium_init() < 0) {
        rc = LC_ERR_UNAVAILABLE;
        lc_error("sodium_init_failed", NULL);
        goto out;
    }
    rc = s_read_file(path, &text, &text_len);
    if (rc != 0)
        goto out;
    rc = s_parse(path, s_want(kind), text, text_len, &entries, &count);
    if (rc != 0)
        goto out;
    if (count == 0) {
        rc = LC_ERR_INVALID;
        lc_error("keyring_parse_error", "path=\"%s\" reason=no_versions", path);
        goto out;
    }
    if (sodium_mprotect_readonly(entries) != 0) {
        rc = LC_ERR_IO;
        lc_error("keyring_mprotect_failed", "errno=\"%s\"", strerror(errno));
        goto out;
    }
    self = calloc(1, sizeof *self);
    if (!self) {
        rc = LC_ERR_NOMEM;
        goto out;
    }
    self->entries = entries;
    self->count = count;
    entries = NULL;
    lc_info("keyring_loaded", "path=\"%s\" kind=%s versions=%zu current=%u", path,
            lc_keyring_kind_name(kind), count, self->entries[count - 1].version);
out:
    s_free_text(text, text_len);
    if (entries)
        sodium_free(entries); /* sodium_free makes it writable again and wipes it */
    if (err)
        *err = rc;
    return self;
}

void lc_keyring_destroy(lc_keyring_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    lc_keyring_t *self = *self_p;
    if (self->entries) {
        sodium_mprotect_readwrite(self->entries);
        sodium_memzero(self->entries, self->count * sizeof *self->entries);
        sodium_free(self->entries);
    }
    free(self);
    *self_p = NULL;
}

const lc_keyring_entry_t *lc_keyring_current(const lc_keyring_t *self)
{
    if (!self || self->count == 0)
        return NULL;
    return &self->entries[self->count - 1];
}

const lc_keyring_entry_t *lc_keyring_get(const lc_keyring_t *self, uint32_t version)
{
    if (!self)
        return NULL;
    size_t lo = 0, hi = self->count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        uint32_t v = self->entries[mid].version;
        if (v == version)
            return &self->entries[mid];
        if (v < version)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

size_t lc_keyring_count(const lc_keyring_t *self)
{
    return self ? self->count : 0;
}

/* ---- writing: create and rotate ------------------------------------------------------------ */

static int s_lock_dir(const char *path, int *dfd_out);

/* The start of every write to a ring: a path, libsodium, and the directory's lock. */
static int s_begin_write(const char *path, int *dfd_out)
{
    if (!path)
        return LC_ERR_INVALID;
    if (sodium_init() < 0)
        return LC_ERR_UNAVAILABLE;
    return s_lock_dir(path, dfd_out);
}

/* Opens and locks the directory holding path; writers of the same ring serialise on it. */
static int s_lock_dir(const char *path, int *dfd_out)
{
    char dir[PATH_MAX];
    const char *slash = strrchr(path, '/');
    if (!slash) {
        snprintf(dir, sizeof dir, ".");
    } else if (slash == path) {
        snprintf(dir, sizeof dir, "/");
    } else {
        size_t n = (size_t)(slash - path);
        if (n >= sizeof dir)
            return LC_ERR_INVALID;
        memcpy(dir, path, n);
        dir[n] = '\0';
    }
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0) {
        lc_error("keyring_dir_open_failed", "dir=\"%s\" errno=\"%s\"", dir, strerror(errno));
        return LC_ERR_IO;
    }
    int r;
    do {
        r = flock(dfd, LOCK_EX);
    } while (r != 0 && errno == EINTR);
    if (r != 0) {
        /* Some filesystems (NFS) refuse flock on a directory. The lock only keeps two operators
         * rotating at the same moment from losing a version, so go on, but say so. */
        lc_warn("keyring_lock_failed", "dir=\"%s\" errno=\"%s\"", dir, strerror(errno));
    }
    *dfd_out = dfd;
    return 0;
}

static int s_write_all(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, buf, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Moves tmp to path only if path does not exist, atomically: rename(2) with RENAME_NOREPLACE,
 * or link(2) where the filesystem lacks that flag (tmp then stays, for the caller to unlink). */
static int s_install_new(const char *tmp, const char *path, bool *tmp_exists)
{
#ifdef RENAME_NOREPLACE
    if (renameat2(AT_FDCWD, tmp, AT_FDCWD, path, RENAME_NOREPLACE) == 0) {
        *tmp_exists = false;
        return 0;
    }
    if (errno != EINVAL && errno != ENOSYS && errno != ENOTSUP)
        return errno == EEXIST ? LC_ERR_CONFLICT : LC_ERR_IO;
#endif
    if (link(tmp, path) == 0)
        return 0;
    return errno == EEXIST ? LC_ERR_CONFLICT : LC_ERR_IO;
}

/* Writes head || line to a 0600 temporary file next to path, fsyncs it and moves it into place:
 * atomically without clobbering when the ring must not exist yet (create), with rename(2)
 * otherwise (rotate). Then fsyncs the directory (dfd). */
static int s_replace_file(const char *path, int dfd, bool must_not_exist, const char *head,
                          size_t head_len, const char *line, size_t line_len)
{
    int rc = LC_ERR_IO;
    char tmp[PATH_MAX];
    int fd = -1;
    bool tmp_exists = false;

    if ((size_t)snprintf(tmp, sizeof tmp, "%s.tmp.XXXXXX", path) >= sizeof tmp) {
        rc = LC_ERR_INVALID;
        goto out;
    }
    fd = mkostemp(tmp, O_CLOEXEC);
    if (fd < 0) {
        lc_error("keyring_tmp_create_failed", "path=\"%s\" errno=\"%s\"", path, strerror(errno));
        goto out;
    }
    tmp_exists = true;
    if (fchmod(fd, S_IRUSR | S_IWUSR) != 0 || s_write_all(fd, head, head_len) != 0 ||
        s_write_all(fd, line, line_len) != 0 || fsync(fd) != 0) {
        lc_error("keyring_tmp_write_failed", "path=\"%s\" errno=\"%s\"", path, strerror(errno));
        goto out;
    }
    int cr = close(fd);
    fd = -1;
    if (cr != 0) {
        lc_error("keyring_tmp_write_failed", "path=\"%s\" errno=\"%s\"", path, strerror(errno));
        goto out;
    }
    if (must_not_exist) {
        rc = s_install_new(tmp, path, &tmp_exists);
        if (rc != 0) {
            lc_error("keyring_install_failed", "path=\"%s\" errno=\"%s\"", path, strerror(errno));
            goto out;
        }
        rc = LC_ERR_IO;
    } else {
        if (rename(tmp, path) != 0) {
            lc_error("keyring_install_failed", "path=\"%s\" errno=\"%s\"", path, strerror(errno));
            goto out;
        }
        tmp_exists = false;
    }
    if (fsync(dfd) != 0) {
        lc_error("keyring_dir_fsync_failed", "path=\"%s\" errno=\"%s\"", path, strerror(errno));
        goto out;
    }
    rc = 0;
out:
    if (fd >= 0)
        close(fd);
    if (tmp_exists)
        unlink(tmp); /* after link(2) this only drops the temporary name */
    return rc;
}

/* Formats an entry as one ring line of the kind (want: S_WANT_SEAL or S_WANT_GATEWAY). Returns
 * its length, 0 if it does not fit. */
static size_t s_format_entry(char *line, size_t line_size, unsigned want,
                             const lc_keyring_entry_t *e)
{
    char hex[3][S_HEX_LEN + 1];
    int n;
    if (want == S_WANT_GATEWAY) {
        sodium_bin2hex(hex[2], sizeof hex[2], e->gateway_master, LC_MASTER_KEY_LEN);
        n = snprintf(line, line_size, "v=%u created=%llu gateway=%s\n", e->version,
                     (unsigned long long)e->created, hex[2]);
    } else {
        sodium_bin2hex(hex[0], sizeof hex[0], e->aes_master, LC_MASTER_KEY_LEN);
        sodium_bin2hex(hex[1], sizeof hex[1], e->xchacha_master, LC_MASTER_KEY_LEN);
        n = snprintf(line, line_size, "v=%u created=%llu aes=%s xchacha=%s\n", e->version,
                     (unsigned long long)e->created, hex[0], hex[1]);
    }
    sodium_memzero(hex, sizeof hex);
    return n > 0 && (size_t)n < line_size ? (size_t)n : 0;
}

/* Formats a fresh entry of the kind with random keys as one ring line. Returns its length. */
static size_t s_format_new_entry(char *line, size_t line_size, unsigned want, uint32_t version)
{
    lc_keyring_entry_t e = {.version = version, .created = (uint64_t)time(NULL)};
    randombytes_buf(e.aes_master, sizeof e.aes_master);
    randombytes_buf(e.xchacha_master, sizeof e.xchacha_master);
    randombytes_buf(e.gateway_master, sizeof e.gateway_master);
    size_t n = s_format_entry(line, line_size, want, &e);
    sodium_memzero(&e, sizeof e);
    return n;
}

static const char s_header_seal[] =
    "# lcore seal key ring (crypto workers, lcore-cli decrypt): one version per line; mode 0600\n";
static const char s_header_gateway[] =
    "# lcore gateway key ring (write-ahead log): one version per line; mode 0600\n";

static const char *s_header(unsigned want, size_t *len)
{
    *len = want == S_WANT_GATEWAY ? sizeof s_header_gateway - 1 : sizeof s_header_seal - 1;
    return want == S_WANT_GATEWAY ? s_header_gateway : s_header_seal;
}

int lc_keyring_create(const char *path, lc_keyring_kind_t kind)
{
    int rc;
    int dfd = -1;
    char line[S_LINE_MAX];
    size_t line_len = 0;

    rc = s_begin_write(path, &dfd);
    if (rc != 0)
        goto out;
    line_len = s_format_new_entry(line, sizeof line, s_want(kind), 1);
    if (line_len == 0) {
        rc = LC_ERR_INVALID;
        goto out;
    }
    size_t head_len = 0;
    const char *head = s_header(s_want(kind), &head_len);
    rc = s_replace_file(path, dfd, true, head, head_len, line, line_len);
    if (rc == 0)
        lc_info("keyring_created", "path=\"%s\" kind=%s v=1", path, lc_keyring_kind_name(kind));
out:
    sodium_memzero(line, sizeof line);
    if (dfd >= 0)
        close(dfd); /* releases the lock */
    return rc;
}

int lc_keyring_rotate(const char *path, lc_keyring_kind_t kind, uint32_t *new_version)
{
    int rc;
    int dfd = -1;
    char *text = NULL;
    size_t text_len = 0;
    lc_keyring_entry_t *entries = NULL;
    size_t count = 0;
    char line[S_LINE_MAX];
    size_t line_len = 0;

    rc = s_begin_write(path, &dfd);
    if (rc != 0)
        goto out;

    struct stat st;
    bool exists = lstat(path, &st) == 0;
    if (!exists && errno != ENOENT) {
        rc = LC_ERR_IO;
        lc_error("keyring_stat_failed", "path=\"%s\" errno=\"%s\"", path, strerror(errno));
        goto out;
    }
    if (exists && S_ISLNK(st.st_mode)) {
        /* rename(2) would replace the link, not the ring it points to. */
        rc = LC_ERR_INVALID;
        lc_error("keyring_is_symlink", "path=\"%s\" hint=\"rotate the link target\"", path);
        goto out;
    }
    uint32_t version = 1;
    if (exists) {
        rc = s_read_file(path, &text, &text_len);
        if (rc != 0)
            goto out;
        rc = s_parse(path, s_want(kind), text, text_len, &entries, &count);
        if (rc != 0)
            goto out;
        if (count > 0) {
            uint32_t newest = entries[count - 1].version;
            if (count >= S_MAX_VERSIONS || newest == UINT32_MAX) {
                rc = LC_ERR_TOOBIG;
                lc_error("keyring_full", "path=\"%s\" versions=%zu max=%d", path, count,
                         S_MAX_VERSIONS);
                goto out;
            }
            version = newest + 1;
        }
    }
    /* Keep the existing text (comments included) verbatim and append the new version; line[0]
     * holds the newline a ring without a final one needs. */
    line[0] = '\n';
    line_len = s_format_new_entry(line + 1, sizeof line - 1, s_want(kind), version);
    if (line_len == 0) {
        rc = LC_ERR_INVALID;
        goto out;
    }
    size_t head_len = 0;
    const char *head = s_header(s_want(kind), &head_len);
    if (exists) {
        head = text;
        head_len = text_len;
    }
    bool needs_nl = head_len > 0 && head[head_len - 1] != '\n';
    const char *tail = needs_nl ? line : line + 1;
    size_t tail_len = needs_nl ? line_len + 1 : line_len;
    rc = s_replace_file(path, dfd, false, head, head_len, tail, tail_len);
    if (rc == 0) {
        if (new_version)
            *new_version = version;
        lc_info("keyring_rotated", "path=\"%s\" kind=%s v=%u", path, lc_keyring_kind_name(kind),
                version);
    }
out:
    sodium_memzero(line, sizeof line);
    s_free_text(text, text_len);
    if (entries)
        sodium_free(entries);
    if (dfd >= 0)
        close(dfd);
    return rc;
}

/* ---- splitting a combined ring --------------------------------------------------------------- */

/* Formats every entry as a line of the kind after the kind's header, into sodium_malloc'd
 * memory (caller frees with s_free_text). */
static int s_format_ring(char **out, size_t *out_len, unsigned want,
                         const lc_keyring_entry_t *entries, size_t count)
{
    size_t head_len = 0;
    const char *head = s_header(want, &head_len);
    size_t cap = head_len + count * S_LINE_MAX;
    char *buf = sodium_malloc(cap + 1);
    if (!buf)
        return LC_ERR_NOMEM;
    memcpy(buf, head, head_len);
    size_t len = head_len;
    for (size_t i = 0; i < count; i++) {
        size_t n = s_format_entry(buf + len, cap + 1 - len, want, &entries[i]);
        if (n == 0) {
            s_free_text(buf, cap);
            return LC_ERR_INVALID;
        }
        len += n;
    }
    *out = buf;
    *out_len = len;
    return 0;
}

/* Installs text as a new ring at path (never over an existing file), under the directory's
 * lock. */
static int s_install_ring(const char *path, const char *text, size_t len)
{
    int dfd = -1;
    int rc = s_lock_dir(path, &dfd);
    if (rc == 0)
        rc = s_replace_file(path, dfd, true, text, len, "", 0);
    if (dfd >= 0)
        close(dfd);
    return rc;
}

int lc_keyring_split(const char *combined_path, const char *seal_path, const char *gateway_path)
{
    int rc;
    char *text = NULL, *seal = NULL, *gateway = NULL;
    size_t text_len = 0, seal_len = 0, gateway_len = 0, count = 0;
    lc_keyring_entry_t *entries = NULL;
    bool seal_written = false;

    if (!combined_path || !seal_path || !gateway_path)
        return LC_ERR_INVALID;
    if (sodium_init() < 0)
        return LC_ERR_UNAVAILABLE;
    rc = s_read_file(combined_path, &text, &text_len);
    if (rc != 0)
        goto out;
    rc = s_parse(combined_path, S_WANT_COMBINED, text, text_len, &entries, &count);
    if (rc == 0 && count == 0) {
        rc = LC_ERR_INVALID;
        lc_error("keyring_parse_error", "path=\"%s\" reason=no_versions", combined_path);
    }
    if (rc != 0)
        goto out;
    rc = s_format_ring(&seal, &seal_len, S_WANT_SEAL, entries, count);
    if (rc == 0)
        rc = s_format_ring(&gateway, &gateway_len, S_WANT_GATEWAY, entries, count);
    if (rc != 0)
        goto out;
    rc = s_install_ring(seal_path, seal, seal_len);
    if (rc != 0)
        goto out;
    seal_written = true;
    rc = s_install_ring(gateway_path, gateway, gateway_len);
    if (rc != 0)
        goto out;
    seal_written = false;
    lc_info("keyring_split", "from=\"%s\" seal=\"%s\" gateway=\"%s\" versions=%zu", combined_path,
            seal_path, gateway_path, count);
out:
    if (seal_written)
        unlink(seal_path); /* both rings or neither */
    s_free_text(text, text_len);
    s_free_text(seal, seal_len);
    s_free_text(gateway, gateway_len);
    if (entries)
        sodium_free(entries);
    return rc;
}
