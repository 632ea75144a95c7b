/* fuzz_jws.c: lc_jws_parse on hostile compact JWS text and, when it parses, lc_jws_verify with a
 * fixed key of each algorithm (the unit tests' known-answer keys, so the seeds verify), so the
 * verify path also runs on hostile headers, payloads and signatures. Each parse decodes into a
 * heap buffer of exactly the capacity given, so ASan sees any write past it. */
#include "lc_codec.h"
#include "lc_jws.h"

#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* RFC 8037 A.2 (Ed25519) and the secp256k1 key of tests/unit/test_jws.c (secret 32 x 0x01). */
#define S_ED_PK_HEX "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
#define S_ES_PK_HEX "031b84c5567b126440995d3ed5aaba0565d71e1834604819ff9c17f5e9d5dd078f"

static uint8_t s_ed_pk[LC_ED25519_PK_LEN];
static uint8_t s_es_pk[LC_SECP256K1_PK_LEN];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    size_t n = 0;
    if (lc_hex_decode(s_ed_pk, sizeof s_ed_pk, &n, S_ED_PK_HEX, strlen(S_ED_PK_HEX)) != 0 ||
        lc_hex_decode(s_es_pk, sizeof s_es_pk, &n, S_ES_PK_HEX, strlen(S_ES_PK_HEX)) != 0)
        abort();
    return 0;
}

/* One parse with payload capacity cap; on success checks the view and verifies it. */
static void s_parse_verify(const char *text, size_t len, size_t cap)
{
    uint8_t *buf = malloc(cap ? cap : 1);
    if (!buf)
        return;
    lc_jws_t jws;
    if (lc_jws_parse(&jws, text, len, buf, cap) == 0) {
        assert(jws.alg == LC_ALG_EDDSA || jws.alg == LC_ALG_ES256K);
        assert(jws.signature_len == 64);
        assert(jws.payload_len <= cap);
        assert(jws.payload == buf);
        assert(strlen(jws.kid) <= LC_JWS_KID_MAX);
        assert(jws.signing_input == text && jws.signing_input_len < len);
        assert(text[jws.signing_input_len] == '.');
        int ed = lc_jws_verify(&jws, LC_ALG_EDDSA, s_ed_pk, sizeof s_ed_pk);
        int es = lc_jws_verify(&jws, LC_ALG_ES256K, s_es_pk, sizeof s_es_pk);
        /* A signature can only verify under the algorithm its header names. */
        assert(ed != 0 || jws.alg == LC_ALG_EDDSA);
        assert(es != 0 || jws.alg == LC_ALG_ES256K);
    }
    free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* An exact-size copy: the parser must not read past len (the input is not NUL-terminated). */
    char *text = malloc(size ? size : 1);
    if (!text)
        return 0;
    memcpy(text, data, size);
    s_parse_verify(text, size, size); /* a decoded payload is always shorter than its text */
    s_parse_verify(text, size, 16);   /* LC_ERR_TOOBIG for longer payloads */
    free(text);
    return 0;
}
