/* lc_ethkey.c: see lc_ethkey.h. */
#include "lc_ethkey.h"

#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lc_codec.h"
#include "lc_log.h"

/* eth_accounts of anvil's default mnemonic, in order (tests/e2e/test_chain.py checks them
 * against a real anvil). */
static const char *const s_dev_accounts[] = {
    "f39fd6e51aad88f6f4ce6ab8827279cfffb92266", "70997970c51812dc3a010c7d01b50e0d17dc79c8",
    "3c44cdddb6a900fa2b585dd299e03d12fa4293bc", "90f79bf6eb2c4f870365e785982e1f101e93b906",
    "15d34aaf54267db7d7c367839aaf71a00a2c6a65", "9965507d1a55bcc2695c58ba16fb37d819b0a4dc",
    "976ea74026e726554db657fa54763abd0c3a0aa9", "14dc79964da2c08b23698b3d3cc7ca32193d9955",
    "23618e81e3f5cdf7f54c3d65f7fbc0abf5b21e8f", "a0ee7a142d267c1f36714e4a8f75612f20a79720",
};

int lc_ethkey_is_dev_account(const uint8_t address[20])
{
    int found = 0;
    for (size_t i = 0; i < sizeof s_dev_accounts / sizeof s_dev_accounts[0]; i++) {
        uint8_t dev[20];
        size_t len = 0;
        if (lc_hex_decode(dev, sizeof dev, &len, s_dev_accounts[i], 40) == 0 && len == 20)
            found |= sodium_memcmp(dev, address, 20) == 0;
    }
    return found;
}

lc_ethtx_signer_t *lc_ethkey_load(const char *path)
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

int lc_ethkey_generate(const char *path)
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
