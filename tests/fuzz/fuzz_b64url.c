/* fuzz_b64url.c: lc_b64url_decode on hostile text. The decoder accepts only the canonical
 * unpadded encoding, so whatever it accepts must re-encode to exactly the same text; and any
 * bytes must survive encode then decode. */
#include "lc_codec.h"

#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data;
    size_t cap = size + 1; /* holds the decoding of the input and of its own encoding */
    uint8_t *bin = malloc(cap);
    char *again = malloc(LC_B64URL_LEN(size) + 1);
    uint8_t small[8];
    size_t n = 0;
    if (!bin || !again)
        goto out;

    if (lc_b64url_decode(bin, cap, &n, text, size) == 0) {
        assert(n <= cap);
        assert(lc_b64url_encode(again, LC_B64URL_LEN(n) + 1, bin, n) == 0);
        assert(strlen(again) == size && memcmp(again, text, size) == 0);
    }
    /* A short output: LC_ERR_TOOBIG (or LC_ERR_INVALID), never a write past it. */
    int rc = lc_b64url_decode(small, sizeof small, &n, text, size);
    assert(rc != 0 || n <= sizeof small);

    /* The input as bytes: encode, decode, compare. */
    assert(lc_b64url_encode(again, LC_B64URL_LEN(size) + 1, data, size) == 0);
    assert(strlen(again) == LC_B64URL_LEN(size));
    assert(lc_b64url_decode(bin, cap, &n, again, strlen(again)) == 0);
    assert(n == size && memcmp(bin, data, size) == 0);
out:
    free(bin);
    free(again);
    return 0;
}
