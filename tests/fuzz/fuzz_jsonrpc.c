/* fuzz_jsonrpc.c: lib/lc_jsonrpc on hostile node answers: lc_jsonrpc_check_response for every
 * expected result type, the error classification of what it rejects, and the strict quantity and
 * data parsers on the same bytes, each checked against a re-encoding of what it accepted. */
#include "lc_codec.h"
#include "lc_jsonrpc.h"

#include <assert.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const s_phrases[] = {"nonce too low", "already known", "underpriced", NULL};

static void s_response(const char *body, size_t len, lc_jsonrpc_expect_t expect)
{
    json_t *result = NULL;
    lc_jsonrpc_error_t err;
    int rc = lc_jsonrpc_check_response(body, len, 1, expect, &result, &err);
    if (rc == 0) {
        assert(result != NULL);
        json_decref(result);
        return;
    }
    assert(result == NULL);
    assert(strlen(err.message) < sizeof err.message && strlen(err.data) < sizeof err.data);
    if (rc == LC_JSONRPC_REJECTED || rc == LC_ERR_UNSUPPORTED) {
        (void)lc_jsonrpc_classify_error(err.code, err.message);
        (void)lc_jsonrpc_error_mentions(&err, s_phrases);
    } else {
        assert(rc == LC_ERR_IO && err.kind == LC_JSONRPC_ERR_ENDPOINT);
    }
    /* err may be NULL. */
    rc = lc_jsonrpc_check_response(body, len, 1, expect, &result, NULL);
    if (rc == 0)
        json_decref(result);
}

static void s_quantity(const char *s, size_t len)
{
    uint8_t be[32];
    uint64_t v;
    char again[2 + 64 + 1];
    if (lc_jsonrpc_parse_quantity(s, len, be) == 0) {
        char hex[LC_HEX_LEN(32) + 1];
        assert(lc_hex_encode(hex, sizeof hex, be, sizeof be) == 0);
        const char *digits = hex;
        while (digits[0] == '0' && digits[1] != '\0')
            digits++;
        snprintf(again, sizeof again, "0x%s", digits);
        assert(strlen(again) == len && memcmp(again, s, len) == 0);
    }
    if (lc_jsonrpc_parse_quantity_u64(s, len, &v) == 0) {
        snprintf(again, sizeof again, "0x%" PRIx64, v);
        assert(strlen(again) == len && memcmp(again, s, len) == 0);
    }
}

static void s_data(const char *s, size_t len)
{
    size_t cap = len / 2 + 1, n = 0;
    uint8_t *bin = malloc(cap);
    uint8_t small[4];
    if (!bin)
        return;
    if (lc_jsonrpc_parse_data(s, len, bin, cap, &n) == 0) {
        size_t m = 0;
        assert(len >= 2 && LC_HEX_LEN(n) == len - 2);
        /* lc_hex_decode accepts what parse_data accepts, minus the required "0x" */
        uint8_t *check = malloc(n ? n : 1);
        assert(check && lc_hex_decode(check, n ? n : 1, &m, s + 2, len - 2) == 0);
        assert(m == n && memcmp(check, bin, n) == 0);
        free(check);
    }
    int rc = lc_jsonrpc_parse_data(s, len, small, sizeof small, &n);
    assert(rc != 0 || n <= sizeof small);
    free(bin);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size ? size : 1); /* exact size, not NUL-terminated */
    if (!text)
        return 0;
    memcpy(text, data, size);
    s_response(text, size, LC_JSONRPC_EXPECT_ANY);
    s_response(text, size, LC_JSONRPC_EXPECT_QUANTITY);
    s_response(text, size, LC_JSONRPC_EXPECT_DATA);
    s_response(text, size, LC_JSONRPC_EXPECT_OBJECT);
    s_response(text, size, LC_JSONRPC_EXPECT_OBJECT_OR_NULL);
    s_quantity(text, size);
    s_data(text, size);
    free(text);
    return 0;
}
