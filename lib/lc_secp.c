/* lc_secp.c: see lc_secp.h. */
#include "lc_secp.h"

#include <pthread.h>
#include <sodium.h>

#include "lc_log.h"

static pthread_once_t s_once = PTHREAD_ONCE_INIT;
static secp256k1_context *s_secp;

static void s_init(void)
{
    if (sodium_init() < 0) {
        lc_error("crypto_init_failed", "lib=libsodium");
        return;
    }
    secp256k1_context *ctx = secp256k1_context_create(SECP256K1_CONTEXT_NONE);
    if (ctx == NULL) {
        lc_error("crypto_init_failed", "lib=libsecp256k1");
        return;
    }
    uint8_t seed[32];
    randombytes_buf(seed, sizeof seed);
    int ok = secp256k1_context_randomize(ctx, seed);
    sodium_memzero(seed, sizeof seed);
    if (!ok) {
        secp256k1_context_destroy(ctx);
        lc_error("crypto_init_failed", "lib=libsecp256k1 step=randomize");
        return;
    }
    s_secp = ctx;
}

const secp256k1_context *lc_secp_context(void)
{
    if (pthread_once(&s_once, s_init) != 0)
        return NULL;
    return s_secp;
}
