/* ch_key.c: see ch_key.h. */
#include "ch_key.h"

#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lc_codec.h"
#include "lc_log.h"

lc_ethtx_signer_t *ch_key_load(const char *path)
{
    int fd = open(path, O_RDONLY | O_NOFOLLOW);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        lc_error("key_file_unreadable", "path=\"%s\"", path);
        if (fd >= 0)
            close(fd);
        return NULL;
    }
    if (!S_ISREG(st.st_mode) || (st.st_mode & 077)) {
        lc_error("key_file_refused", "path=\"%s\" reason=\"must be a regular file, mode 0600\"",
                 path);
        close(fd);
        return NULL;
    }
    char text[160];
    ssize_t n = read(fd, text, sizeof text - 1);
    close(fd);
    lc_ethtx_signer_t *signer = NULL;
    uint8_t secret[32];
    size_t len = 0;
    if (n > 0) {
        while (n > 0 && (text[n - 1] == '\n' || text[n - 1] == '\r' || text[n - 1] == ' '))
            n--;
        int err = 0;
        if (lc_hex_decode(secret, sizeof secret, &len, text, (size_t)n) == 0 && len == 32)
            signer = lc_ethtx_signer_new(secret, &err);
    }
    sodium_memzero(text, sizeof text);
    sodium_memzero(secret, sizeof secret);
    if (!signer)
        lc_error("key_file_invalid",
                 "path=\"%s\" reason=\"want 64 hex digits of a valid "
                 "secp256k1 secret key\"",
                 path);
    return signer;
}

int ch_key_generate(const char *path)
{
    uint8_t secret[32], addr[20];
    char hex[65];
    int rc = LC_ERR_IO;
    do {
        randombytes_buf(secret, sizeof secret);
    } while (lc_eth_address_from_secret(addr, secret) != 0);
    lc_hex_encode(hex, sizeof hex, secret, sizeof secret);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
    if (fd >= 0) {
        hex[64] = '\n';
        if (write(fd, hex, 65) == 65 && fsync(fd) == 0)
            rc = 0;
        close(fd);
    } else {
        rc = LC_ERR_CONFLICT;
    }
    sodium_memzero(secret, sizeof secret);
    sodium_memzero(hex, sizeof hex);
    return rc;
}
