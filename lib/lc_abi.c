/* lc_abi.c: see lc_abi.h. */
#include "lc_abi.h"

#include <stdlib.h>
#include <string.h>

/* Selectors: the first 4 bytes of keccak256 of the canonical signature, in the order
 * anchor(uint64,bytes32,uint32), anchors(bytes32), verify(bytes32,bytes32[],bytes32),
 * setRelayer(address), relayer(); errors NotOwner(address), NotRelayer(address). */
static const uint8_t s_anchor_selector[4] = {0xa1, 0x49, 0xa2, 0x14};
static const uint8_t s_anchors_selector[4] = {0xb0, 0x1b, 0x6d, 0x53};
static const uint8_t s_verify_selector[4] = {0x0a, 0x02, 0x83, 0x1c};
static const uint8_t s_set_relayer_selector[4] = {0x65, 0x48, 0xe9, 0xbc};
static const uint8_t s_relayer_selector[4] = {0x84, 0x06, 0xc0, 0x79};
static const uint8_t s_not_owner_selector[4] = {0x24, 0x5a, 0xec, 0xd3};
static const uint8_t s_not_relayer_selector[4] = {0x36, 0x6b, 0x2e, 0x5a};

void lc_abi_word(uint8_t word[32], uint64_t v)
{
    memset(word, 0, 32);
    for (int i = 0; i < 8; i++)
        word[31 - i] = (uint8_t)(v >> (8 * i));
}

/* The value of a 32-byte word if it fits in `bytes` low-order bytes (at most 8). */
static int s_uint(const uint8_t word[32], size_t bytes, uint64_t *v)
{
    for (size_t i = 0; i < 32 - bytes; i++)
        if (word[i])
            return LC_ERR_INVALID;
    *v = 0;
    for (size_t i = 32 - bytes; i < 32; i++)
        *v = *v << 8 | word[i];
    return 0;
}

void lc_abi_anchor(uint8_t out[LC_ABI_ANCHOR_LEN], uint64_t anchor_id, const uint8_t root[32],
                   uint32_t count)
{
    memcpy(out, s_anchor_selector, 4);
    lc_abi_word(out + 4, anchor_id);
    memcpy(out + 36, root, 32);
    lc_abi_word(out + 68, count);
}

void lc_abi_anchors(uint8_t out[LC_ABI_ANCHORS_LEN], const uint8_t root[32])
{
    memcpy(out, s_anchors_selector, 4);
    memcpy(out + 4, root, 32);
}

int lc_abi_anchors_decode(lc_abi_anchor_t *out, const uint8_t *ret, size_t len)
{
    uint64_t id = 0, count = 0, block = 0, ts = 0;
    if (!ret || len != 128 || s_uint(ret, 8, &id) < 0 || s_uint(ret + 32, 4, &count) < 0 ||
        s_uint(ret + 64, 8, &block) < 0 || s_uint(ret + 96, 8, &ts) < 0)
        return LC_ERR_INVALID;
    if (count == 0 ? (id | block | ts) != 0 : block == 0)
        return LC_ERR_INVALID;
    *out = (lc_abi_anchor_t){
        .anchor_id = id, .count = (uint32_t)count, .block_number = block, .timestamp = ts};
    return 0;
}

uint8_t *lc_abi_verify(const uint8_t root[32], const uint8_t *proof, size_t n,
                       const uint8_t leaf[32], size_t *len)
{
    /* Head: root, offset of the proof array, leaf; tail: the array's length, its words. */
    *len = 4 + 32 * 4 + 32 * n;
    uint8_t *d = malloc(*len);
    if (!d)
        return NULL;
    memcpy(d, s_verify_selector, 4);
    memcpy(d + 4, root, 32);
    lc_abi_word(d + 36, 3 * 32);
    memcpy(d + 68, leaf, 32);
    lc_abi_word(d + 100, (uint64_t)n);
    if (n)
        memcpy(d + 132, proof, 32 * n);
    return d;
}

int lc_abi_bool_decode(bool *out, const uint8_t *ret, size_t len)
{
    uint64_t v = 0;
    if (!ret || len != 32 || s_uint(ret, 1, &v) < 0 || v > 1)
        return LC_ERR_INVALID;
    *out = v == 1;
    return 0;
}

void lc_abi_set_relayer(uint8_t out[LC_ABI_SET_RELAYER_LEN], const uint8_t relayer[20])
{
    memcpy(out, s_set_relayer_selector, 4);
    memset(out + 4, 0, 12);
    memcpy(out + 16, relayer, 20);
}

void lc_abi_relayer(uint8_t out[LC_ABI_RELAYER_LEN])
{
    memcpy(out, s_relayer_selector, 4);
}

int lc_abi_address_decode(uint8_t out[20], const uint8_t *ret, size_t len)
{
    if (!ret || len != 32)
        return LC_ERR_INVALID;
    for (int i = 0; i < 12; i++)
        if (ret[i])
            return LC_ERR_INVALID;
    memcpy(out, ret + 12, 20);
    return 0;
}

const char *lc_abi_error_name(const uint8_t *data, size_t len)
{
    if (!data || len < 4)
        return NULL;
    if (memcmp(data, s_not_owner_selector, 4) == 0)
        return "NotOwner";
    if (memcmp(data, s_not_relayer_selector, 4) == 0)
        return "NotRelayer";
    return NULL;
}
