/* lc_keccak.c: the Keccak-256 sponge over nettle's Keccak-f[1600] permutation. Lanes are
 * little-endian 64-bit words (as in nettle's own SHA-3), so bytes are XORed in and read out
 * with explicit shifts and the code does not depend on the host byte order. */
#include "lc_keccak.h"

#include <sodium.h>
#include <string.h>

#define S_RATE_LANES (LC_KECCAK256_RATE / 8)

static uint64_t s_load_le64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

static void s_absorb(lc_keccak256_t *ctx, const uint8_t *block)
{
    for (size_t i = 0; i < S_RATE_LANES; i++)
        ctx->state.a[i] ^= s_load_le64(block + 8 * i);
    nettle_sha3_permute(&ctx->state);
}

void lc_keccak256_init(lc_keccak256_t *ctx)
{
    memset(ctx, 0, sizeof *ctx);
}

void lc_keccak256_update(lc_keccak256_t *ctx, const uint8_t *in, size_t len)
{
    if (len == 0)
        return;
    if (ctx->index > 0) {
        size_t take = LC_KECCAK256_RATE - ctx->index;
        if (take > len)
            take = len;
        memcpy(ctx->block + ctx->index, in, take);
        ctx->index += take;
        in += take;
        len -= take;
        if (ctx->index < LC_KECCAK256_RATE)
            return;
        s_absorb(ctx, ctx->block);
        ctx->index = 0;
    }
    for (; len >= LC_KECCAK256_RATE; in += LC_KECCAK256_RATE, len -= LC_KECCAK256_RATE)
        s_absorb(ctx, in);
    memcpy(ctx->block, in, len);
    ctx->index = len;
}

void lc_keccak256_final(lc_keccak256_t *ctx, uint8_t out[LC_KECCAK256_LEN])
{
    /* Keccak's multi-rate padding pad10*1 with domain byte 0x01 (SHA-3 would use 0x06). When
     * only one byte of the block is free, 0x01 and 0x80 land on it together as 0x81. */
    memset(ctx->block + ctx->index, 0, LC_KECCAK256_RATE - ctx->index);
    ctx->block[ctx->index] ^= 0x01;
    ctx->block[LC_KECCAK256_RATE - 1] ^= 0x80;
    s_absorb(ctx, ctx->block);
    for (size_t i = 0; i < LC_KECCAK256_LEN; i++)
        out[i] = (uint8_t)(ctx->state.a[i / 8] >> (8 * (i % 8)));
    /* The state may have absorbed secret input (a key, a preimage): leave nothing behind. */
    sodium_memzero(ctx, sizeof *ctx);
}

void lc_keccak256(uint8_t out[LC_KECCAK256_LEN], const uint8_t *in, size_t len)
{
    lc_keccak256_t ctx;
    lc_keccak256_init(&ctx);
    lc_keccak256_update(&ctx, in, len);
    lc_keccak256_final(&ctx, out);
}
