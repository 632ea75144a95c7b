/* fuzz_hex.c: lc_hex_decode on hostile text. What it accepts (either case, optional "0x") must
 * re-encode to the same digits, lowercased; and any bytes must survive encode then decode. */
#include "lc_codec.h"

#include <assert.h>
#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data;
    size_t cap = size + 1; /* holds the decoding of the input and of its own encoding */
    uint8_t *bin = malloc(cap);
    char *again = malloc(LC_HEX_LEN(size) + 1);
    uint8_t small[4];
    size_t n = 0;
    if (!bin || !again)
        goto out;

    if (lc_hex_decode(bin, cap, &n, text, size) == 0) {
        size_t skip = size >= 2 && text[0] == '0' && (text[1] == 'x' || text[1] == 'X') ? 2 : 0;
        assert(LC_HEX_LEN(n) == size - skip);
        assert(lc_hex_encode(again, LC_HEX_LEN(n) + 1, bin, n) == 0);
        for (size_t i = 0; i < LC_HEX_LEN(n); i++)
            assert(again[i] == tolower((unsigned char)text[skip + i]));
    }
    int rc = lc_hex_decode(small, sizeof small, &n, text, size);
    assert(rc != 0 || n <= sizeof small);

    assert(lc_hex_encode(again, LC_HEX_LEN(size) + 1, data, size) == 0);
    assert(strlen(again) == LC_HEX_LEN(size));
    assert(lc_hex_decode(bin, cap, &n, again, LC_HEX_LEN(size)) == 0);
    assert(n == size && memcmp(bin, data, size) == 0);
out:
    free(bin);
    free(again);
    return 0;
}
