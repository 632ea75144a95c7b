/* fuzz_support.h: helpers shared by the services' fuzz targets (tests/fuzz/fuzz_{gw,cw,st}_*.c)
 * and their seed generator (seeds.c): an exact-size copy of an input, and the fixed key rings the
 * committed seeds were sealed with. Header-only: every target is one .c file. */
#ifndef FUZZ_SUPPORT_H
#define FUZZ_SUPPORT_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lc_keyring.h"

/* The rings' keys are fixed, so that sealed seeds (WAL segments) stay valid from run to run. */
#define FZ_SEAL_RING                                                                               \
    "v=1 created=1700000000 aes=1111111111111111111111111111111111111111111111111111111111111111 " \
    "xchacha=2222222222222222222222222222222222222222222222222222222222222222\n"
#define FZ_GATEWAY_RING                                                                            \
    "v=1 created=1700000000 "                                                                      \
    "gateway=3333333333333333333333333333333333333333333333333333333333333333\n"

/* Loads a ring from text through a 0600 temporary file (removed at once); aborts on failure:
 * a target without its ring would fuzz nothing. */
static inline lc_keyring_t *fz_ring(const char *text, lc_keyring_kind_t kind)
{
    char path[] = "/tmp/lcore-fuzz-ring-XXXXXX";
    int fd = mkstemp(path);
    size_t len = strlen(text);
    if (fd < 0 || write(fd, text, len) != (ssize_t)len) {
        perror("fz_ring");
        abort();
    }
    close(fd);
    lc_keyring_t *ring = lc_keyring_load(path, kind, NULL);
    unlink(path);
    if (!ring)
        abort();
    return ring;
}

/* A malloc'd copy of exactly size bytes (reads past the end are seen by ASan); NULL if size is
 * 0 and malloc(1) fails, which the callers treat as an input skipped. */
static inline uint8_t *fz_copy(const uint8_t *data, size_t size)
{
    uint8_t *p = malloc(size ? size : 1);
    if (p && size)
        memcpy(p, data, size);
    return p;
}

#endif
