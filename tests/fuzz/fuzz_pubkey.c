/* fuzz_pubkey.c: lc_pubkey_parse on hostile device key text (hex or JWK JSON) for both
 * algorithms, and lc_pubkey_valid on the raw bytes. What parse writes must be valid; raw bytes
 * that are valid must parse back, from their hex, to themselves. */
#include "lc_codec.h"
#include "lc_jws.h"

#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static void s_one(lc_alg_t alg, const char *text, size_t size)
{
    uint8_t out[LC_SECP256K1_PK_LEN];
    size_t n = 0;
    if (lc_pubkey_parse(out, sizeof out, &n, alg, text, size) == 0) {
        assert(n == (alg == LC_ALG_EDDSA ? LC_ED25519_PK_LEN : LC_SECP256K1_PK_LEN));
        assert(lc_pubkey_valid(alg, out, n) == 1);
    }
    if (lc_pubkey_valid(alg, (const uint8_t *)text, size) == 1) {
        char hex[LC_HEX_LEN(LC_SECP256K1_PK_LEN) + 1];
        assert(size <= LC_SECP256K1_PK_LEN);
        assert(lc_hex_encode(hex, sizeof hex, (const uint8_t *)text, size) == 0);
        assert(lc_pubkey_parse(out, sizeof out, &n, alg, hex, strlen(hex)) == 0);
        assert(n == size && memcmp(out, text, size) == 0);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size ? size : 1); /* exact size: no read past the end goes unseen */
    if (!text)
        return 0;
    memcpy(text, data, size);
    s_one(LC_ALG_EDDSA, text, size);
    s_one(LC_ALG_ES256K, text, size);
    uint8_t out[LC_SECP256K1_PK_LEN];
    size_t n = 0;
    assert(lc_pubkey_parse(out, sizeof out, &n, LC_ALG_NONE, text, size) != 0);
    free(text);
    return 0;
}
