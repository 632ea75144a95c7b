/* lc_token.c: see lc_token.h. */
#include "lc_token.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

int lc_token_hash(uint8_t out[LC_TOKEN_HASH_LEN], const char *token, size_t len)
{
    if (!token || len < LC_TOKEN_MIN_LEN)
        return LC_ERR_INVALID;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)token[i] <= ' ' || token[i] == 0x7f)
            return LC_ERR_INVALID;
    crypto_hash_sha256(out, (const uint8_t *)token, len);
    return 0;
}

int lc_token_hash_parse(uint8_t out[LC_TOKEN_HASH_LEN], const char *text, size_t len)
{
    while (len > 0 && (*text == ' ' || *text == '\t' || *text == '\n' || *text == '\r')) {
        text++;
        len--;
    }
    while (len > 0 && (text[len - 1] == ' ' || text[len - 1] == '\t' || text[len - 1] == '\n' ||
                       text[len - 1] == '\r'))
        len--;
    size_t bin_len = 0;
    const char *end = NULL;
    if (len != LC_TOKEN_HASH_HEX_LEN ||
        sodium_hex2bin(out, LC_TOKEN_HASH_LEN, text, len, NULL, &bin_len, &end) != 0 ||
        bin_len != LC_TOKEN_HASH_LEN || end != text + len)
        return LC_ERR_INVALID;
    return 0;
}

int lc_token_read_file(char *out, size_t cap, const char *path)
{
    char buf[1024];
    int rc = LC_ERR_IO;
    size_t len = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0)
        return errno == ENOENT ? LC_ERR_NOTFOUND : LC_ERR_IO;
    for (;;) {
        ssize_t n = read(fd, buf + len, sizeof buf - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            goto out;
        if (n == 0)
            break;
        len += (size_t)n;
        if (len == sizeof buf)
            break;
    }
    size_t line = 0;
    while (line < len && buf[line] != '\n' && buf[line] != '\r')
        line++;
    if (line + 1 > cap || (line == len && len == sizeof buf)) {
        rc = LC_ERR_TOOBIG;
        goto out;
    }
    memcpy(out, buf, line);
    out[line] = '\0';
    rc = 0;
out:
    sodium_memzero(buf, sizeof buf);
    close(fd);
    return rc;
}
