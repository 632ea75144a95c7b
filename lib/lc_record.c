/* lc_record.c: record identity. See lc_record.h. */
#include "lc_record.h"

#include <nettle/sha2.h>

#include "lc_codec.h"

void lc_record_id(uint8_t out[LC_RECORD_ID_LEN], const char *device_id, size_t device_id_len,
                  uint64_t seq)
{
    static const char prefix[] = "lcore/record";
    uint8_t seq_be[8];
    for (int i = 0; i < 8; i++)
        seq_be[i] = (uint8_t)(seq >> (56 - 8 * i));
    struct sha256_ctx st;
    sha256_init(&st);
    sha256_update(&st, sizeof prefix - 1, (const uint8_t *)prefix);
    sha256_update(&st, device_id_len, (const uint8_t *)device_id);
    sha256_update(&st, sizeof seq_be, seq_be);
    sha256_digest(&st, LC_RECORD_ID_LEN, out);
}

void lc_reading_hash(uint8_t out[LC_READING_HASH_LEN], const uint8_t *jws, size_t len)
{
    struct sha256_ctx st;
    sha256_init(&st);
    sha256_update(&st, len, jws);
    sha256_digest(&st, LC_READING_HASH_LEN, out);
}

/* 1..max bytes of [A-Za-z0-9._:-]. */
static int s_name_valid(const char *name, size_t len, size_t max)
{
    if (len == 0 || len > max)
        return 0;
    for (size_t i = 0; i < len; i++) {
        char c = name[i];
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                 c == '.' || c == '_' || c == ':' || c == '-';
        if (!ok)
            return 0;
    }
    return 1;
}

int lc_device_id_valid(const char *device_id, size_t len)
{
    return s_name_valid(device_id, len, LC_DEVICE_ID_MAX);
}

int lc_store_id_valid(const char *store_id, size_t len)
{
    return s_name_valid(store_id, len, LC_STORE_ID_MAX);
}

int lc_record_id_parse(uint8_t out[LC_RECORD_ID_LEN], const char *text, size_t len)
{
    size_t n = 0;
    if (len >= 2 && text[0] == '0' && (text[1] == 'x' || text[1] == 'X')) {
        text += 2;
        len -= 2;
    }
    if (len != 2 * LC_RECORD_ID_LEN || lc_hex_decode(out, LC_RECORD_ID_LEN, &n, text, len) != 0 ||
        n != LC_RECORD_ID_LEN)
        return LC_ERR_INVALID;
    return 0;
}
