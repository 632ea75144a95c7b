/* fuzz_keyring.c: the key ring text parser, through its public loader: each input is written to
 * one 0600 temporary file (created once, rewritten per input) and loaded as a seal ring and as a
 * gateway ring, so the file checks, the guarded-memory handling and the parser all run as in a
 * service. A ring that loads must answer lookups consistently. The file is removed at exit. */
#include "lc_keyring.h"
#include "lc_log.h"

#include <assert.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char s_path[] = "/tmp/lcore-fuzz-keyring-XXXXXX";
static int s_fd = -1;

static void s_cleanup(void)
{
    if (s_fd >= 0) {
        close(s_fd);
        unlink(s_path);
    }
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    /* Parse errors are logged at error level, one line per rejected input: keep them, they are
     * part of the code under test, but nothing below error. */
    lc_log_init("fuzz_keyring", LC_LOG_ERROR);
    s_fd = mkstemp(s_path); /* mode 0600 */
    if (s_fd < 0) {
        perror("mkstemp");
        abort();
    }
    atexit(s_cleanup);
    return 0;
}

static void s_load(lc_keyring_kind_t kind)
{
    int err = 0;
    lc_keyring_t *ring = lc_keyring_load(s_path, kind, &err);
    if (!ring) {
        assert(err != 0);
        return;
    }
    assert(err == 0);
    size_t count = lc_keyring_count(ring);
    const lc_keyring_entry_t *cur = lc_keyring_current(ring);
    assert(count > 0 && cur != NULL);
    assert(lc_keyring_get(ring, cur->version) == cur);
    assert(lc_keyring_get(ring, 0) == NULL);
    if (cur->version < UINT32_MAX)
        assert(lc_keyring_get(ring, cur->version + 1) == NULL);
    lc_keyring_destroy(&ring);
    assert(ring == NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (ftruncate(s_fd, 0) != 0 || pwrite(s_fd, data, size, 0) != (ssize_t)size)
        abort();
    s_load(LC_KEYRING_SEAL);
    s_load(LC_KEYRING_GATEWAY);
    return 0;
}
