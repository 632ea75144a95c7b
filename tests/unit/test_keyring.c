/* test_keyring.c: the key ring files — create, load, rotate, permission and syntax checks, that
 * a rotated ring seals with the newest version while older records still open, the two kinds
 * (seal, gateway), refusal of a ring of the wrong kind, and the split of a combined ring. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "lc_keyring.h"
#include "lc_seal.h"

#define S_KEY_A "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
#define S_KEY_B "202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f"
#define S_KEY_C "404142434445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f"
#define S_LINE(v) "v=" v " created=1700000000 aes=" S_KEY_A " xchacha=" S_KEY_B
#define S_GW_LINE(v) "v=" v " created=1700000000 gateway=" S_KEY_C
#define S_OLD_LINE(v) S_LINE(v) " gateway=" S_KEY_C /* the combined ring before the split */

typedef struct {
    char dir[64];
    char path[128];
} s_fixture_t;

static int s_setup(void **state)
{
    s_fixture_t *f = calloc(1, sizeof *f);
    if (!f)
        return -1;
    snprintf(f->dir, sizeof f->dir, "/tmp/lc_test_keyring.XXXXXX");
    if (!mkdtemp(f->dir))
        return -1;
    snprintf(f->path, sizeof f->path, "%s/ring", f->dir);
    *state = f;
    return 0;
}

/* Number of entries in dir; with unlink_all, removes them (the test dirs are flat). */
static int s_dir_entries(const char *dir, bool unlink_all)
{
    DIR *d = opendir(dir);
    if (!d)
        return -1;
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        n++;
        if (unlink_all) {
            char p[512];
            snprintf(p, sizeof p, "%s/%s", dir, de->d_name);
            unlink(p);
        }
    }
    closedir(d);
    return n;
}

/* Removes everything the test left in its directory (ring, temporaries, logs). */
static int s_teardown(void **state)
{
    s_fixture_t *f = *state;
    s_dir_entries(f->dir, true);
    int rc = rmdir(f->dir);
    free(f);
    return rc;
}

static void s_write(const char *path, const char *text, mode_t mode)
{
    unlink(path);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
    assert_true(fd >= 0);
    size_t len = strlen(text);
    assert_int_equal(write(fd, text, len), (ssize_t)len);
    assert_int_equal(fchmod(fd, mode), 0);
    close(fd);
}

static char *s_read(const char *path)
{
    FILE *fp = fopen(path, "rb");
    assert_non_null(fp);
    static char buf[1 << 20];
    size_t n = fread(buf, 1, sizeof buf - 1, fp);
    fclose(fp);
    buf[n] = '\0';
    return strdup(buf);
}

/* Runs lc_keyring_load with stderr captured into *log (caller frees). */
static lc_keyring_t *s_load_logged(const char *dir, const char *path, lc_keyring_kind_t kind,
                                   int *err, char **log)
{
    char log_path[160];
    snprintf(log_path, sizeof log_path, "%s/stderr.log", dir);
    int fd = open(log_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    int saved = dup(STDERR_FILENO);
    assert_true(saved >= 0);
    assert_true(dup2(fd, STDERR_FILENO) >= 0);
    close(fd);
    lc_keyring_t *ring = lc_keyring_load(path, kind, err);
    assert_true(dup2(saved, STDERR_FILENO) >= 0);
    close(saved);
    *log = s_read(log_path);
    return ring;
}

static void test_create_and_load(void **state)
{
    s_fixture_t *f = *state;
    time_t before = time(NULL);
    assert_int_equal(lc_keyring_create(f->path, LC_KEYRING_SEAL), 0);
    struct stat st;
    assert_int_equal(stat(f->path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);

    int err = 1;
    lc_keyring_t *ring = lc_keyring_load(f->path, LC_KEYRING_SEAL, &err);
    assert_non_null(ring);
    assert_int_equal(err, 0);
    assert_int_equal(lc_keyring_count(ring), 1);
    const lc_keyring_entry_t *e = lc_keyring_current(ring);
    assert_non_null(e);
    assert_int_equal(e->version, 1);
    assert_ptr_equal(lc_keyring_get(ring, 1), e);
    assert_null(lc_keyring_get(ring, 2));
    assert_null(lc_keyring_get(ring, 0));
    assert_true(e->created >= (uint64_t)before && e->created <= (uint64_t)time(NULL));
    assert_false(sodium_is_zero(e->aes_master, 32));
    assert_memory_not_equal(e->aes_master, e->xchacha_master, 32);
    assert_true(sodium_is_zero(e->gateway_master, 32)); /* a seal ring has no log key */
    lc_keyring_destroy(&ring);
    assert_null(ring);
    lc_keyring_destroy(&ring);
    lc_keyring_destroy(NULL);

    /* No temporary left behind. */
    assert_int_equal(s_dir_entries(f->dir, false), 1);
}

static void test_create_refuses_overwrite(void **state)
{
    s_fixture_t *f = *state;
    assert_int_equal(lc_keyring_create(f->path, LC_KEYRING_SEAL), 0);
    char *before = s_read(f->path);
    assert_int_equal(lc_keyring_create(f->path, LC_KEYRING_SEAL), LC_ERR_CONFLICT);
    char *after = s_read(f->path);
    assert_string_equal(before, after);
    free(before);
    free(after);
    /* A file that is not even a ring is not overwritten either. */
    s_write(f->path, "precious\n", 0600);
    assert_int_equal(lc_keyring_create(f->path, LC_KEYRING_SEAL), LC_ERR_CONFLICT);
    after = s_read(f->path);
    assert_string_equal(after, "precious\n");
    free(after);
}

/* Rotation adds versions, keeps the old ones byte for byte, and the sealer follows the newest. */
static void test_rotate(void **state)
{
    s_fixture_t *f = *state;
    assert_int_equal(lc_keyring_create(f->path, LC_KEYRING_SEAL), 0);
    int err;
    lc_keyring_t *old_ring = lc_keyring_load(f->path, LC_KEYRING_SEAL, &err);
    assert_non_null(old_ring);
    lc_sealer_t *old_sealer = lc_sealer_new(old_ring, LC_AES_PORTABLE);
    assert_non_null(old_sealer);

    static const uint8_t rid[32] = {9};
    static const uint8_t pt[] = "reading sealed under v1";
    uint8_t ct1[sizeof pt + LC_SEAL_OVERHEAD];
    lc_sealed_t s1;
    assert_int_equal(lc_seal(old_sealer, &s1, ct1, rid, "dev-1", 5, pt, sizeof pt), 0);
    assert_int_equal(s1.key_version, 1);

    uint32_t v = 0;
    assert_int_equal(lc_keyring_rotate(f->path, LC_KEYRING_SEAL, &v), 0);
    assert_int_equal(v, 2);
    assert_int_equal(lc_keyring_rotate(f->path, LC_KEYRING_SEAL, &v), 0);
    assert_int_equal(v, 3);
    struct stat st;
    assert_int_equal(stat(f->path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);

    lc_keyring_t *ring = lc_keyring_load(f->path, LC_KEYRING_SEAL, &err);
    assert_non_null(ring);
    assert_int_equal(lc_keyring_count(ring), 3);
    assert_int_equal(lc_keyring_current(ring)->version, 3);
    const lc_keyring_entry_t *e1 = lc_keyring_get(ring, 1), *o1 = lc_keyring_get(old_ring, 1);
    assert_non_null(e1);
    assert_memory_equal(e1->aes_master, o1->aes_master, 32);
    assert_memory_equal(e1->xchacha_master, o1->xchacha_master, 32);
    assert_memory_equal(e1->gateway_master, o1->gateway_master, 32);
    assert_memory_not_equal(lc_keyring_get(ring, 3)->aes_master, e1->aes_master, 32);

    lc_sealer_t *sealer = lc_sealer_new(ring, LC_AES_AUTO);
    assert_non_null(sealer);
    uint8_t ct3[sizeof pt + LC_SEAL_OVERHEAD], back[sizeof pt];
    lc_sealed_t s3;
    assert_int_equal(lc_seal(sealer, &s3, ct3, rid, "dev-1", 5, pt, sizeof pt), 0);
    assert_int_equal(s3.key_version, 3);
    /* The v1 record still opens with the rotated ring... */
    assert_int_equal(lc_open(sealer, back, rid, "dev-1", 5, s1.key_version, s1.aes_nonce,
                             s1.xchacha_nonce, ct1, s1.ciphertext_len),
                     0);
    assert_memory_equal(back, pt, sizeof pt);
    assert_int_equal(lc_open(sealer, back, rid, "dev-1", 5, s3.key_version, s3.aes_nonce,
                             s3.xchacha_nonce, ct3, s3.ciphertext_len),
                     0);
    /* ...and the old ring does not know v3. */
    assert_int_equal(lc_open(old_sealer, back, rid, "dev-1", 5, s3.key_version, s3.aes_nonce,
                             s3.xchacha_nonce, ct3, s3.ciphertext_len),
                     LC_ERR_NOTFOUND);

    lc_sealer_destroy(&sealer);
    lc_sealer_destroy(&old_sealer);
    lc_keyring_destroy(&ring);
    lc_keyring_destroy(&old_ring);
}

static void test_rotate_keeps_text_and_creates(void **state)
{
    s_fixture_t *f = *state;
    /* Absent file: rotate creates version 1. */
    uint32_t v = 0;
    assert_int_equal(lc_keyring_rotate(f->path, LC_KEYRING_SEAL, &v), 0);
    assert_int_equal(v, 1);
    /* Hand-written ring with comments and no final newline: kept verbatim, appended to. */
    const char *text = "# production ring\n" S_LINE("41") "\n# note\n" S_LINE("40");
    s_write(f->path, text, 0600);
    assert_int_equal(lc_keyring_rotate(f->path, LC_KEYRING_SEAL, &v), 0);
    assert_int_equal(v, 42);
    char *after = s_read(f->path);
    assert_memory_equal(after, text, strlen(text));
    assert_true(after[strlen(text)] == '\n');
    assert_true(strncmp(after + strlen(text) + 1, "v=42 ", 5) == 0);
    free(after);
    int err;
    lc_keyring_t *ring = lc_keyring_load(f->path, LC_KEYRING_SEAL, &err);
    assert_non_null(ring);
    assert_int_equal(lc_keyring_count(ring), 3);
    lc_keyring_destroy(&ring);
    /* A malformed ring is not rotated. */
    s_write(f->path, S_LINE("1") "\nv=2 garbage\n", 0600);
    char *before = s_read(f->path);
    assert_int_equal(lc_keyring_rotate(f->path, LC_KEYRING_SEAL, &v), LC_ERR_INVALID);
    after = s_read(f->path);
    assert_string_equal(before, after);
    free(before);
    free(after);
}

static void test_rotate_refuses_symlink(void **state)
{
    s_fixture_t *f = *state;
    char target[160];
    snprintf(target, sizeof target, "%s/real", f->dir);
    s_write(target, S_LINE("1") "\n", 0600);
    assert_int_equal(symlink(target, f->path), 0);
    uint32_t v;
    assert_int_equal(lc_keyring_rotate(f->path, LC_KEYRING_SEAL, &v), LC_ERR_INVALID);
    /* Loading through a link is fine. */
    int err;
    lc_keyring_t *ring = lc_keyring_load(f->path, LC_KEYRING_SEAL, &err);
    assert_non_null(ring);
    lc_keyring_destroy(&ring);
}

static void test_refuses_open_permissions(void **state)
{
    s_fixture_t *f = *state;
    const mode_t modes[] = {0644, 0640, 0604, 0660, 0602, 0620, 0601};
    for (size_t i = 0; i < LC_ARRAY_LEN(modes); i++) {
        s_write(f->path, S_LINE("1") "\n", modes[i]);
        int err = 0;
        char *log = NULL;
        assert_null(s_load_logged(f->dir, f->path, LC_KEYRING_SEAL, &err, &log));
        assert_int_equal(err, LC_ERR_INVALID);
        assert_non_null(strstr(log, "keyring_insecure_mode"));
        free(log);
        uint32_t v;
        assert_int_equal(lc_keyring_rotate(f->path, LC_KEYRING_SEAL, &v), LC_ERR_INVALID);
    }
    s_write(f->path, S_LINE("1") "\n", 0400);
    int err = 1;
    lc_keyring_t *ring = lc_keyring_load(f->path, LC_KEYRING_SEAL, &err);
    assert_non_null(ring);
    assert_int_equal(err, 0);
    lc_keyring_destroy(&ring);
}

static void test_missing_file(void **state)
{
    s_fixture_t *f = *state;
    int err = 0;
    assert_null(lc_keyring_load(f->path, LC_KEYRING_SEAL, &err));
    assert_int_equal(err, LC_ERR_NOTFOUND);
    assert_null(lc_keyring_load(f->dir, LC_KEYRING_SEAL, &err)); /* a directory */
    assert_int_equal(err, LC_ERR_INVALID);
    assert_null(lc_keyring_load(NULL, LC_KEYRING_SEAL, NULL));
}

/* Each bad ring is refused; the log names the line and never carries key material. */
static void test_refuses_malformed(void **state)
{
    s_fixture_t *f = *state;
    static const struct {
        const char *text;
        const char *reason;
    } bad[] = {
        {"# empty\n\n", "no_versions"},
        {"# c\n" S_LINE("1") "\n" S_LINE("1") "\n", "line=3 reason=duplicate_version"},
        {S_LINE("2") "\n" S_LINE("1") "\n\n" S_LINE("2") "\n", "line=4 reason=duplicate_version"},
        {"v=1 created=1 aes=" S_KEY_A "\n", "line=1 reason=missing_field"},
        {"v=1 aes=" S_KEY_A " xchacha=" S_KEY_B "\n", "line=1 reason=missing_field"},
        {S_LINE("1") " extra=1\n", "line=1 reason=unknown_field"},
        {S_LINE("1") " v=2\n", "line=1 reason=repeated_field"},
        {S_LINE("1") " junk\n", "line=1 reason=field_without_value"},
        {S_LINE("0") "\n", "line=1 reason=bad_version"},
        {S_LINE("-1") "\n", "line=1 reason=bad_version"},
        {S_LINE("+1") "\n", "line=1 reason=bad_version"},
        {S_LINE("4294967296") "\n", "line=1 reason=bad_version"},
        {S_LINE("") "\n", "line=1 reason=bad_version"},
        {"v=1 created=x aes=" S_KEY_A " xchacha=" S_KEY_B "\n", "line=1 reason=bad_created"},
        {"\n\nv=1 created=1 aes=" S_KEY_A "0 xchacha=" S_KEY_B "\n", "line=3 reason=bad_aes_key"},
        {"v=1 created=1 aes=" S_KEY_A " xchacha="
         "2" S_KEY_B "\n",
         "line=1 reason=bad_xchacha_key"},
        {"v=1 created=1 gateway=4g4142434445464748494a4b4c4d"
         "4e4f505152535455565758595a5b5c5d5e5f\n",
         "line=1 reason=bad_gateway_key"},
        {"v=1 created=1 gateway=40414243444546474849"
         "4a4b4c4d4e4f505152535455565758595a5b5c5d5e\n",
         "line=1 reason=bad_gateway_key"},
        {"v=1 created=1 aes=0000000000000000000000000000000000000000000000000000000000000000"
         " xchacha=" S_KEY_B "\n",
         "line=1 reason=bad_aes_key"},
    };
    for (size_t i = 0; i < LC_ARRAY_LEN(bad); i++) {
        s_write(f->path, bad[i].text, 0600);
        int err = 0;
        char *log = NULL;
        lc_keyring_t *ring = s_load_logged(f->dir, f->path, LC_KEYRING_SEAL, &err, &log);
        if (ring || !strstr(log, bad[i].reason))
            print_error("case %zu: want \"%s\", log: %s", i, bad[i].reason, log);
        assert_null(ring);
        assert_int_equal(err, LC_ERR_INVALID);
        assert_non_null(strstr(log, bad[i].reason));
        assert_null(strstr(log, "0405060708090a0b"));
        assert_null(strstr(log, "2425262728292a2b"));
        assert_null(strstr(log, "4445464748494a4b"));
        free(log);
    }
}

static void test_accepts_comments_crlf_and_order(void **state)
{
    s_fixture_t *f = *state;
    s_write(
        f->path,
        "# ring\r\n\r\n   # indented comment\n" S_LINE("10") "\r\n"
                                                             "\t" S_LINE("3") "  \n" S_LINE("7"),
        0600);
    int err = 1;
    lc_keyring_t *ring = lc_keyring_load(f->path, LC_KEYRING_SEAL, &err);
    assert_non_null(ring);
    assert_int_equal(err, 0);
    assert_int_equal(lc_keyring_count(ring), 3);
    assert_int_equal(lc_keyring_current(ring)->version, 10);
    assert_int_equal(lc_keyring_get(ring, 3)->version, 3);
    assert_int_equal(lc_keyring_get(ring, 7)->version, 7);
    assert_null(lc_keyring_get(ring, 8));
    const lc_keyring_entry_t *e = lc_keyring_get(ring, 7);
    assert_int_equal(e->created, 1700000000);
    uint8_t a[32];
    assert_int_equal(sodium_hex2bin(a, sizeof a, S_KEY_A, 64, NULL, NULL, NULL), 0);
    assert_memory_equal(e->aes_master, a, 32);
    lc_keyring_destroy(&ring);
}

static void test_version_limit(void **state)
{
    s_fixture_t *f = *state;
    size_t cap = 1100 * 256;
    char *text = malloc(cap);
    assert_non_null(text);
    size_t len = 0;
    for (unsigned v = 1; v <= 1024; v++)
        len += (size_t)snprintf(text + len, cap - len, S_LINE("%u") "\n", v);
    s_write(f->path, text, 0600);
    int err;
    lc_keyring_t *ring = lc_keyring_load(f->path, LC_KEYRING_SEAL, &err);
    assert_non_null(ring);
    assert_int_equal(lc_keyring_count(ring), 1024);
    lc_keyring_destroy(&ring);
    uint32_t v;
    assert_int_equal(lc_keyring_rotate(f->path, LC_KEYRING_SEAL, &v), LC_ERR_TOOBIG);
    snprintf(text + len, cap - len, S_LINE("1025") "\n");
    s_write(f->path, text, 0600);
    assert_null(lc_keyring_load(f->path, LC_KEYRING_SEAL, &err));
    assert_int_equal(err, LC_ERR_TOOBIG);
    free(text);
}

static void s_on_segv(int sig)
{
    (void)sig;
    _exit(42);
}

/* Loaded entries are read-only: a stray write faults instead of corrupting a key. */
static void test_entries_read_only(void **state)
{
    s_fixture_t *f = *state;
    s_write(f->path, S_LINE("1") "\n", 0600);
    int err;
    lc_keyring_t *ring = lc_keyring_load(f->path, LC_KEYRING_SEAL, &err);
    assert_non_null(ring);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = s_on_segv;
        sigaction(SIGSEGV, &sa, NULL);
        sigaction(SIGBUS, &sa, NULL);
        volatile uint8_t *p = (volatile uint8_t *)lc_keyring_current(ring)->aes_master;
        p[0] ^= 1;
        _exit(0);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 42);
    lc_keyring_destroy(&ring);
}

/* The gateway's ring: log keys only, versioned and rotated like the seal ring. */
static void test_gateway_ring(void **state)
{
    s_fixture_t *f = *state;
    assert_int_equal(lc_keyring_create(f->path, LC_KEYRING_GATEWAY), 0);
    int err = 1;
    lc_keyring_t *v1 = lc_keyring_load(f->path, LC_KEYRING_GATEWAY, &err);
    assert_non_null(v1);
    assert_int_equal(err, 0);
    const lc_keyring_entry_t *e = lc_keyring_current(v1);
    assert_int_equal(e->version, 1);
    assert_false(sodium_is_zero(e->gateway_master, 32));
    assert_true(sodium_is_zero(e->aes_master, 32));
    assert_true(sodium_is_zero(e->xchacha_master, 32));
    char *text = s_read(f->path);
    assert_null(strstr(text, "aes="));
    assert_null(strstr(text, "xchacha="));
    free(text);

    uint32_t v = 0;
    assert_int_equal(lc_keyring_rotate(f->path, LC_KEYRING_GATEWAY, &v), 0);
    assert_int_equal(v, 2);
    lc_keyring_t *v2 = lc_keyring_load(f->path, LC_KEYRING_GATEWAY, &err);
    assert_non_null(v2);
    assert_int_equal(lc_keyring_current(v2)->version, 2);
    assert_memory_equal(lc_keyring_get(v2, 1)->gateway_master, e->gateway_master, 32);
    assert_memory_not_equal(lc_keyring_get(v2, 2)->gateway_master, e->gateway_master, 32);
    lc_keyring_destroy(&v2);
    lc_keyring_destroy(&v1);

    /* Rotating the absent file of a kind creates it with that kind's keys. */
    char seal[160];
    snprintf(seal, sizeof seal, "%s/seal", f->dir);
    assert_int_equal(lc_keyring_rotate(seal, LC_KEYRING_SEAL, &v), 0);
    lc_keyring_t *s = lc_keyring_load(seal, LC_KEYRING_SEAL, &err);
    assert_non_null(s);
    assert_true(sodium_is_zero(lc_keyring_current(s)->gateway_master, 32));
    lc_keyring_destroy(&s);
}

/* A reader never takes a ring holding keys it must not have: the one log line says which and
 * how to split; rotate leaves such a file alone. */
static void test_refuses_wrong_kind(void **state)
{
    s_fixture_t *f = *state;
    static const struct {
        const char *text;
        lc_keyring_kind_t kind;
        const char *holds;
    } bad[] = {
        {S_GW_LINE("1") "\n", LC_KEYRING_SEAL, "holds=\"the gateway log key\""},
        {S_LINE("1") "\n", LC_KEYRING_GATEWAY, "holds=\"sealing keys\""},
        {S_OLD_LINE("1") "\n", LC_KEYRING_SEAL, "holds=\"sealing keys and the gateway log key\""},
        {S_OLD_LINE("1") "\n", LC_KEYRING_GATEWAY, "holds=\"sealing keys and the gateway"},
        {S_LINE("1") "\n" S_GW_LINE("2") "\n", LC_KEYRING_SEAL, "line=2 want=seal"},
        {"v=1 created=1 aes=" S_KEY_A "\n", LC_KEYRING_GATEWAY, "want=gateway"},
    };
    for (size_t i = 0; i < LC_ARRAY_LEN(bad); i++) {
        s_write(f->path, bad[i].text, 0600);
        int err = 0;
        char *log = NULL;
        lc_keyring_t *ring = s_load_logged(f->dir, f->path, bad[i].kind, &err, &log);
        if (ring || !strstr(log, bad[i].holds))
            print_error("case %zu: want \"%s\", log: %s", i, bad[i].holds, log);
        assert_null(ring);
        assert_int_equal(err, LC_ERR_INVALID);
        assert_non_null(strstr(log, "event=keyring_wrong_kind"));
        assert_non_null(strstr(log, "lcore-cli keyring-split"));
        assert_int_equal(strchr(log, '\n') - log + 1, (long)strlen(log)); /* one line */
        assert_null(strstr(log, "0405060708090a0b"));
        assert_null(strstr(log, "4445464748494a4b"));
        free(log);
        uint32_t v;
        assert_int_equal(lc_keyring_rotate(f->path, bad[i].kind, &v), LC_ERR_INVALID);
        char *after = s_read(f->path);
        assert_string_equal(after, bad[i].text);
        free(after);
    }
}

/* keyring-split: the combined ring becomes a seal ring and a gateway ring with the same versions,
 * times and keys; neither output overwrites a file, and a failure leaves neither. */
static void test_split(void **state)
{
    s_fixture_t *f = *state;
    char seal[160], gw[160];
    snprintf(seal, sizeof seal, "%s/seal", f->dir);
    snprintf(gw, sizeof gw, "%s/gateway", f->dir);
    s_write(f->path, "# old\n" S_OLD_LINE("3") "\n" S_OLD_LINE("1") "\n", 0600);
    assert_int_equal(lc_keyring_split(f->path, seal, gw), 0);
    struct stat st;
    assert_int_equal(stat(seal, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(stat(gw, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    uint8_t a[32], c[32];
    assert_int_equal(sodium_hex2bin(a, sizeof a, S_KEY_A, 64, NULL, NULL, NULL), 0);
    assert_int_equal(sodium_hex2bin(c, sizeof c, S_KEY_C, 64, NULL, NULL, NULL), 0);
    int err = 1;
    lc_keyring_t *sr = lc_keyring_load(seal, LC_KEYRING_SEAL, &err);
    lc_keyring_t *gr = lc_keyring_load(gw, LC_KEYRING_GATEWAY, &err);
    assert_non_null(sr);
    assert_non_null(gr);
    assert_int_equal(lc_keyring_count(sr), 2);
    assert_int_equal(lc_keyring_count(gr), 2);
    assert_int_equal(lc_keyring_current(sr)->version, 3);
    assert_int_equal(lc_keyring_current(gr)->version, 3);
    assert_int_equal(lc_keyring_get(gr, 1)->created, 1700000000);
    assert_memory_equal(lc_keyring_get(sr, 1)->aes_master, a, 32);
    assert_memory_equal(lc_keyring_get(gr, 1)->gateway_master, c, 32);
    assert_true(sodium_is_zero(lc_keyring_get(sr, 3)->gateway_master, 32));
    assert_true(sodium_is_zero(lc_keyring_get(gr, 3)->aes_master, 32));
    lc_keyring_destroy(&sr);
    lc_keyring_destroy(&gr);
    /* The outputs rotate like any ring of their kind. */
    uint32_t v = 0;
    assert_int_equal(lc_keyring_rotate(gw, LC_KEYRING_GATEWAY, &v), 0);
    assert_int_equal(v, 4);

    /* Existing outputs: refused, and nothing half-done (the seal ring is not left alone). */
    assert_int_equal(lc_keyring_split(f->path, seal, gw), LC_ERR_CONFLICT);
    assert_int_equal(unlink(seal), 0);
    assert_int_equal(lc_keyring_split(f->path, seal, gw), LC_ERR_CONFLICT);
    assert_int_equal(access(seal, F_OK), -1);
    assert_int_equal(unlink(gw), 0);
    assert_int_equal(s_dir_entries(f->dir, false), 1);

    /* Only a combined ring splits. */
    s_write(f->path, S_LINE("1") "\n", 0600);
    assert_int_equal(lc_keyring_split(f->path, seal, gw), LC_ERR_INVALID);
    s_write(f->path, S_OLD_LINE("1") "\n", 0644);
    assert_int_equal(lc_keyring_split(f->path, seal, gw), LC_ERR_INVALID);
    assert_int_equal(s_dir_entries(f->dir, false), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_create_and_load, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_create_refuses_overwrite, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_rotate, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_rotate_keeps_text_and_creates, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_rotate_refuses_symlink, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_refuses_open_permissions, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_missing_file, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_refuses_malformed, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_accepts_comments_crlf_and_order, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_version_limit, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_entries_read_only, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_gateway_ring, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_refuses_wrong_kind, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_split, s_setup, s_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
