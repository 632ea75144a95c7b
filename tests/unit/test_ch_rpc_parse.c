/* test_ch_rpc_parse.c: the chain RPC client's pure functions: strict quantity and data parsing,
 * classification of real node error messages (geth, Nitro, anvil, reth, Nethermind, Besu,
 * OpenEthereum), and validation of JSON-RPC answers; and the anchor contract's ABI (ch_abi): call
 * data against the selectors of the signatures, decoding of the views' answers. No network. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "ch_abi.h"
#include "ch_rpc.h"
#include "lc_codec.h"
#include "lc_keccak.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int s_q(const char *s, uint8_t out[32])
{
    return ch_rpc_parse_quantity(s, strlen(s), out);
}

static void test_quantity_valid(void **state)
{
    (void)state;
    uint8_t be[32], want[32];
    uint64_t v = 99;

    memset(want, 0, 32);
    assert_int_equal(s_q("0x0", be), 0);
    assert_memory_equal(be, want, 32);

    assert_int_equal(s_q("0x1", be), 0);
    want[31] = 1;
    assert_memory_equal(be, want, 32);

    assert_int_equal(s_q("0x1a2b3", be), 0);
    memset(want, 0, 32);
    want[29] = 0x01, want[30] = 0xa2, want[31] = 0xb3;
    assert_memory_equal(be, want, 32);

    char max[2 + 64 + 1] = "0x";
    memset(max + 2, 'f', 64);
    max[66] = '\0';
    assert_int_equal(s_q(max, be), 0);
    memset(want, 0xff, 32);
    assert_memory_equal(be, want, 32);

    char top[2 + 64 + 1] = "0x8";
    memset(top + 3, '0', 63);
    top[66] = '\0';
    assert_int_equal(s_q(top, be), 0);
    memset(want, 0, 32);
    want[0] = 0x80;
    assert_memory_equal(be, want, 32);

    assert_int_equal(ch_rpc_parse_quantity_u64("0x0", 3, &v), 0);
    assert_int_equal(v, 0);
    assert_int_equal(ch_rpc_parse_quantity_u64("0x7a69", 6, &v), 0);
    assert_int_equal(v, 31337);
    assert_int_equal(ch_rpc_parse_quantity_u64("0x3b9aca00", 10, &v), 0);
    assert_int_equal(v, 1000000000u);
    assert_int_equal(ch_rpc_parse_quantity_u64("0xffffffffffffffff", 18, &v), 0);
    assert_true(v == UINT64_MAX);
    /* Only len characters are read. */
    assert_int_equal(ch_rpc_parse_quantity_u64("0x12zz", 4, &v), 0);
    assert_int_equal(v, 0x12);
}

static void test_quantity_invalid(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "",
        "0",
        "0x",
        "x1",
        "0X1",
        "1x0",
        "00x1",
        "0x01",
        "0x00",
        "0xA",
        "0xaB",
        "0xg",
        "0x1g",
        " 0x1",
        "0x1 ",
        "0x 1",
        "0x-1",
        "-0x1",
        "0x+1",
        "0x1.0",
        "0x1,2",
        "0x0x1",
        "0xffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff0",
        "1",
        "10",
        "0b1",
        "\"0x1\"",
    };
    uint8_t be[32];
    for (size_t i = 0; i < LC_ARRAY_LEN(bad); i++) {
        memset(be, 0xee, sizeof be);
        if (s_q(bad[i], be) != LC_ERR_INVALID)
            fail_msg("accepted quantity \"%s\"", bad[i]);
        for (size_t j = 0; j < 32; j++)
            assert_int_equal(be[j], 0); /* never half-written */
    }
    /* An embedded NUL inside the length is not a terminator. */
    assert_int_equal(ch_rpc_parse_quantity("0x1\0", 4, be), LC_ERR_INVALID);
    assert_int_equal(ch_rpc_parse_quantity(NULL, 0, be), LC_ERR_INVALID);

    uint64_t v = 5;
    assert_int_equal(ch_rpc_parse_quantity_u64("0x10000000000000000", 19, &v), LC_ERR_TOOBIG);
    assert_int_equal(v, 0);
    assert_int_equal(ch_rpc_parse_quantity_u64("0x01", 4, &v), LC_ERR_INVALID);
}

static void test_data(void **state)
{
    (void)state;
    uint8_t out[8];
    size_t n = 99;
    const uint8_t want[] = {0xde, 0xad, 0xbe, 0xef};

    assert_int_equal(ch_rpc_parse_data("0x", 2, out, sizeof out, &n), 0);
    assert_int_equal(n, 0);
    assert_int_equal(ch_rpc_parse_data("0xdeadBEEF", 10, out, sizeof out, &n), 0);
    assert_int_equal(n, 4);
    assert_memory_equal(out, want, 4);
    assert_int_equal(ch_rpc_parse_data("0x00", 4, out, sizeof out, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(out[0], 0);

    assert_int_equal(ch_rpc_parse_data("deadbeef", 8, out, sizeof out, &n), LC_ERR_INVALID);
    assert_int_equal(ch_rpc_parse_data("0x0", 3, out, sizeof out, &n), LC_ERR_INVALID);
    assert_int_equal(ch_rpc_parse_data("0x0x12", 6, out, sizeof out, &n), LC_ERR_INVALID);
    assert_int_equal(ch_rpc_parse_data("0X12", 4, out, sizeof out, &n), LC_ERR_INVALID);
    assert_int_equal(ch_rpc_parse_data("0xzz", 4, out, sizeof out, &n), LC_ERR_INVALID);
    assert_int_equal(ch_rpc_parse_data("0x12 ", 5, out, sizeof out, &n), LC_ERR_INVALID);
    assert_int_equal(ch_rpc_parse_data("", 0, out, sizeof out, &n), LC_ERR_INVALID);
    assert_int_equal(ch_rpc_parse_data("0x001122", 8, out, 2, &n), LC_ERR_TOOBIG);
}

static ch_rpc_error_t s_err(ch_rpc_err_kind_t kind, long long code, const char *message,
                            const char *data)
{
    ch_rpc_error_t e;
    memset(&e, 0, sizeof e);
    e.kind = kind;
    e.code = code;
    snprintf(e.message, sizeof e.message, "%s", message);
    snprintf(e.data, sizeof e.data, "%s", data ? data : "");
    return e;
}

/* Error objects as real nodes send them for eth_sendRawTransaction. */
static const struct {
    long long code;
    const char *message;
    const char *data;
    ch_send_status_t want;
} s_send_vectors[] = {
    /* geth / Nitro */
    {-32000, "already known", NULL, CH_SEND_ALREADY_KNOWN},
    {-32000, "known transaction: 5f2c8e0d2b1a", NULL, CH_SEND_ALREADY_KNOWN},
    {-32000, "nonce too low: address 0x70997970C51812dc3A010C7d01b50e0d17dc79C8, tx: 0 state: 1",
     NULL, CH_SEND_NONCE_TOO_LOW},
    {-32000, "nonce too high: address 0x7099, tx: 9 state: 1", NULL, CH_SEND_NONCE_TOO_HIGH},
    {-32000, "replacement transaction underpriced", NULL, CH_SEND_UNDERPRICED},
    {-32000, "transaction underpriced: tip needed 1000000000, tip permitted 0", NULL,
     CH_SEND_UNDERPRICED},
    {-32000,
     "max fee per gas less than block base fee: address 0x7099, maxFeePerGas: 1 baseFee: 100000000",
     NULL, CH_SEND_UNDERPRICED},
    {-32000, "fee cap less than block base fee: address 0x7099, gasFeeCap: 1 baseFee: 7", NULL,
     CH_SEND_UNDERPRICED},
    {-32000,
     "insufficient funds for gas * price + value: address 0x7099 have 0 want 21000000000000", NULL,
     CH_SEND_INSUFFICIENT_FUNDS},
    {-32000, "intrinsic gas too low", NULL, CH_SEND_OTHER_FATAL},
    {-32000, "invalid sender", NULL, CH_SEND_OTHER_FATAL},
    {-32000, "tx fee (1.20 ether) exceeds the configured cap (1.00 ether)", NULL,
     CH_SEND_OTHER_FATAL},
    {-32000, "txpool is full", NULL, CH_SEND_RETRYABLE},
    {3, "execution reverted", "0x", CH_SEND_OTHER_FATAL},
    /* anvil */
    {-32003, "transaction already imported", NULL, CH_SEND_ALREADY_KNOWN},
    {-32003, "Tx: [0x5f2c8e0d2b1a] already Imported", NULL, CH_SEND_ALREADY_KNOWN},
    {-32003, "nonce too low", NULL, CH_SEND_NONCE_TOO_LOW},
    {-32003, "Nonce too high", NULL, CH_SEND_NONCE_TOO_HIGH},
    {-32003, "Insufficient funds for gas * price + value", NULL, CH_SEND_INSUFFICIENT_FUNDS},
    {-32003, "max fee per gas less than block base fee", NULL, CH_SEND_UNDERPRICED},
    {-32003, "replacement transaction underpriced", NULL, CH_SEND_UNDERPRICED},
    {-32602, "Failed to decode transaction", NULL, CH_SEND_OTHER_FATAL},
    {-32602, "Unknown transaction type not supported", NULL, CH_SEND_OTHER_FATAL},
    /* reth, Nethermind, Besu, OpenEthereum, ethers-style wordings */
    {-32010, "transaction rejected", "AlreadyKnown", CH_SEND_ALREADY_KNOWN},
    {-32010, "NonceTooLow", NULL, CH_SEND_NONCE_TOO_LOW},
    {-32000, "Known transaction", NULL, CH_SEND_ALREADY_KNOWN},
    {-32000, "nonce has already been used", NULL, CH_SEND_NONCE_TOO_LOW},
    {-32010, "Transaction nonce is too low. Try incrementing the nonce.", NULL,
     CH_SEND_NONCE_TOO_LOW},
    {-32000, "invalid transaction", "{\"reason\":\"InsufficientFunds\"}",
     CH_SEND_INSUFFICIENT_FUNDS},
    /* rate limits and other refusals */
    {-32005, "limit exceeded", NULL, CH_SEND_RETRYABLE},
    {-32000, "Too Many Requests", NULL, CH_SEND_RETRYABLE},
    {-32603, "internal error", NULL, CH_SEND_OTHER_FATAL},
};

static void test_classify_send(void **state)
{
    (void)state;
    for (size_t i = 0; i < LC_ARRAY_LEN(s_send_vectors); i++) {
        ch_rpc_err_kind_t kind =
            ch_rpc_classify_error(s_send_vectors[i].code, s_send_vectors[i].message);
        ch_rpc_error_t e =
            s_err(kind, s_send_vectors[i].code, s_send_vectors[i].message, s_send_vectors[i].data);
        ch_send_status_t got = ch_rpc_classify_send_error(&e);
        if (got != s_send_vectors[i].want)
            fail_msg("\"%s\" (data \"%s\"): got %s, want %s", e.message, e.data,
                     ch_send_status_name(got), ch_send_status_name(s_send_vectors[i].want));
    }
    /* No answer at all is retryable. */
    assert_int_equal(ch_rpc_classify_send_error(NULL), CH_SEND_RETRYABLE);
    ch_rpc_error_t e = s_err(CH_RPC_ERR_ENDPOINT, 0, "no endpoint answered: timeout", NULL);
    assert_int_equal(ch_rpc_classify_send_error(&e), CH_SEND_RETRYABLE);
    /* Case-insensitive. */
    e = s_err(CH_RPC_ERR_SERVER, -32000, "ALREADY KNOWN", NULL);
    assert_int_equal(ch_rpc_classify_send_error(&e), CH_SEND_ALREADY_KNOWN);
    assert_string_equal(ch_send_status_name(CH_SEND_NONCE_TOO_LOW), "nonce_too_low");
    assert_string_equal(ch_send_status_name(CH_SEND_OK), "ok");
}

static void test_classify_error(void **state)
{
    (void)state;
    assert_int_equal(ch_rpc_classify_error(-32601, "Method not found"),
                     CH_RPC_ERR_METHOD_NOT_FOUND);
    assert_int_equal(
        ch_rpc_classify_error(
            -32000, "the method eth_maxPriorityFeePerGas does not exist/is not available"),
        CH_RPC_ERR_METHOD_NOT_FOUND);
    assert_int_equal(ch_rpc_classify_error(3, "execution reverted: not owner"),
                     CH_RPC_ERR_REVERTED);
    assert_int_equal(ch_rpc_classify_error(-32000, "execution reverted"), CH_RPC_ERR_REVERTED);
    /* Code 3 is a revert whatever the wording (a custom error has no reason string). */
    assert_int_equal(ch_rpc_classify_error(3, "custom error 0xfb8f41b2"), CH_RPC_ERR_REVERTED);
    assert_int_equal(ch_rpc_classify_error(-32602, "invalid argument 0: hex string has odd length"),
                     CH_RPC_ERR_INVALID_REQUEST);
    assert_int_equal(ch_rpc_classify_error(-32700, "parse error"), CH_RPC_ERR_INVALID_REQUEST);
    assert_int_equal(ch_rpc_classify_error(-32600, "invalid request"), CH_RPC_ERR_INVALID_REQUEST);
    assert_int_equal(ch_rpc_classify_error(-32005, "limit exceeded"), CH_RPC_ERR_LIMITED);
    assert_int_equal(ch_rpc_classify_error(-32000, "rate limit reached"), CH_RPC_ERR_LIMITED);
    assert_int_equal(ch_rpc_classify_error(-32000, "nonce too low"), CH_RPC_ERR_SERVER);
    assert_int_equal(ch_rpc_classify_error(-32000, "header not found"), CH_RPC_ERR_SERVER);
}

static int s_check(const char *body, uint64_t id, ch_rpc_expect_t expect, json_t **result,
                   ch_rpc_error_t *err)
{
    return ch_rpc_check_response(body, strlen(body), id, expect, result, err);
}

static void test_response_result(void **state)
{
    (void)state;
    json_t *r = NULL;
    ch_rpc_error_t e;

    assert_int_equal(s_check("{\"jsonrpc\":\"2.0\",\"id\":7,\"result\":\"0x7a69\"}", 7,
                             CH_RPC_EXPECT_QUANTITY, &r, &e),
                     0);
    assert_string_equal(json_string_value(r), "0x7a69");
    assert_int_equal(e.kind, CH_RPC_ERR_NONE);
    json_decref(r);

    /* Member order and whitespace do not matter. */
    assert_int_equal(s_check(" {\"result\": \"0x\", \"id\": 12, \"jsonrpc\": \"2.0\"}\n", 12,
                             CH_RPC_EXPECT_DATA, &r, NULL),
                     0);
    assert_string_equal(json_string_value(r), "0x");
    json_decref(r);

    /* null is a result: a receipt not found yet. */
    const char *null_result = "{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":null}";
    assert_int_equal(s_check(null_result, 1, CH_RPC_EXPECT_OBJECT_OR_NULL, &r, &e), 0);
    assert_true(json_is_null(r));
    json_decref(r);
    assert_int_equal(s_check(null_result, 1, CH_RPC_EXPECT_ANY, &r, &e), 0);
    assert_true(json_is_null(r));
    json_decref(r);
    assert_int_equal(s_check(null_result, 1, CH_RPC_EXPECT_OBJECT, &r, &e), LC_ERR_IO);
    assert_null(r);
    assert_int_equal(e.kind, CH_RPC_ERR_ENDPOINT);
    assert_int_equal(s_check(null_result, 1, CH_RPC_EXPECT_QUANTITY, &r, &e), LC_ERR_IO);

    const char *block = "{\"jsonrpc\":\"2.0\",\"id\":3,\"result\":{\"number\":\"0x1\"}}";
    assert_int_equal(s_check(block, 3, CH_RPC_EXPECT_OBJECT, &r, &e), 0);
    assert_true(json_is_object(r));
    json_decref(r);
}

static void test_response_wrong_type(void **state)
{
    (void)state;
    static const struct {
        const char *result;
        ch_rpc_expect_t expect;
    } bad[] = {
        {"\"0x01\"", CH_RPC_EXPECT_QUANTITY},
        {"\"0x\"", CH_RPC_EXPECT_QUANTITY},
        {"1", CH_RPC_EXPECT_QUANTITY},
        {"\"0xA\"", CH_RPC_EXPECT_QUANTITY},
        {"\"0xabc\"", CH_RPC_EXPECT_DATA},
        {"\"abcd\"", CH_RPC_EXPECT_DATA},
        {"\"0xzz\"", CH_RPC_EXPECT_DATA},
        {"[]", CH_RPC_EXPECT_OBJECT},
        {"\"0x1\"", CH_RPC_EXPECT_OBJECT_OR_NULL},
        {"false", CH_RPC_EXPECT_OBJECT_OR_NULL},
    };
    for (size_t i = 0; i < LC_ARRAY_LEN(bad); i++) {
        char body[256];
        snprintf(body, sizeof body, "{\"jsonrpc\":\"2.0\",\"id\":5,\"result\":%s}", bad[i].result);
        json_t *r = NULL;
        ch_rpc_error_t e;
        if (s_check(body, 5, bad[i].expect, &r, &e) != LC_ERR_IO)
            fail_msg("accepted %s as type %d", bad[i].result, (int)bad[i].expect);
        assert_null(r);
        assert_int_equal(e.kind, CH_RPC_ERR_ENDPOINT);
        assert_string_equal(e.message, "result has the wrong type");
    }
}

static void test_response_error_object(void **state)
{
    (void)state;
    json_t *r = NULL;
    ch_rpc_error_t e;

    assert_int_equal(
        s_check("{\"jsonrpc\":\"2.0\",\"id\":9,\"error\":{\"code\":-32000,\"message\":\"nonce too "
                "low: address 0x7099, tx: 0 state: 1\"}}",
                9, CH_RPC_EXPECT_DATA, &r, &e),
        CH_RPC_REJECTED);
    assert_null(r);
    assert_int_equal(e.kind, CH_RPC_ERR_SERVER);
    assert_int_equal(e.code, -32000);
    assert_string_equal(e.message, "nonce too low: address 0x7099, tx: 0 state: 1");
    assert_string_equal(e.data, "");
    assert_int_equal(ch_rpc_classify_send_error(&e), CH_SEND_NONCE_TOO_LOW);

    /* A revert carries its bytes in data, as a string. */
    assert_int_equal(
        s_check("{\"jsonrpc\":\"2.0\",\"id\":9,\"error\":{\"code\":3,\"message\":\"execution "
                "reverted: not owner\",\"data\":\"0x08c379a0\"}}",
                9, CH_RPC_EXPECT_QUANTITY, &r, &e),
        CH_RPC_REJECTED);
    assert_int_equal(e.kind, CH_RPC_ERR_REVERTED);
    assert_int_equal(e.code, 3);
    assert_string_equal(e.data, "0x08c379a0");

    /* Other data is kept as compact JSON. */
    assert_int_equal(
        s_check("{\"jsonrpc\":\"2.0\",\"id\":9,\"error\":{\"code\":-32010,\"message\":\"rejected\","
                "\"data\":{\"reason\": \"AlreadyKnown\"}}}",
                9, CH_RPC_EXPECT_ANY, &r, &e),
        CH_RPC_REJECTED);
    assert_string_equal(e.data, "{\"reason\":\"AlreadyKnown\"}");
    assert_int_equal(ch_rpc_classify_send_error(&e), CH_SEND_ALREADY_KNOWN);

    /* Method not found is its own outcome: the caller falls back. */
    assert_int_equal(
        s_check("{\"jsonrpc\":\"2.0\",\"id\":2,\"error\":{\"code\":-32601,\"message\":\"the method "
                "eth_maxPriorityFeePerGas does not exist/is not available\"}}",
                2, CH_RPC_EXPECT_QUANTITY, &r, &e),
        LC_ERR_UNSUPPORTED);
    assert_int_equal(e.kind, CH_RPC_ERR_METHOD_NOT_FOUND);

    /* err may be NULL. */
    assert_int_equal(s_check("{\"jsonrpc\":\"2.0\",\"id\":2,\"error\":{\"code\":-32000,"
                             "\"message\":\"x\"}}",
                             2, CH_RPC_EXPECT_ANY, &r, NULL),
                     CH_RPC_REJECTED);

    /* anvil's revert message carries the raw revert bytes, \u0000 escapes included, when they
     * are valid UTF-8 (anvil 1.7.1, a reverting eth_estimateGas for RootAlreadyAnchored(0x4142..60,
     * 1)): still an answer, the message kept whole, control characters as '?'. */
    assert_int_equal(
        s_check(
            "{\"jsonrpc\":\"2.0\",\"id\":5,\"error\":{\"code\":3,\"message\":\"execution "
            "reverted: \\u0004\\n\\u0002\\u0002ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\\\]^_`"
            "\\u0000\\u0000\\u0000\\u0000\\u0000\\u0000\\u0000\\u0000\\u0000\\u0000\\u0000"
            "\\u0000\\u0000\\u0000\\u0000\\u0000\\u0000\\u0000\\u0000\\u0000\\u0000\\u0000"
            "\\u0000\\u0000\\u0000\\u0000\\u0000\\u0000\\u0000\\u0000\\u0000\\u0001\",\"data\":"
            "\"0x040a02024142434445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f6000000000"
            "00000000000000000000000000000000000000000000000000000001\"}}",
            5, CH_RPC_EXPECT_QUANTITY, &r, &e),
        CH_RPC_REJECTED);
    assert_int_equal(e.kind, CH_RPC_ERR_REVERTED);
    assert_string_equal(e.message, "execution reverted: ????ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_`"
                                   "????????????????????????????????");
    assert_string_equal(e.data, "0x040a02024142434445464748494a4b4c4d4e4f505152535455565758595a5b5c"
                                "5d5e5f60000000000000000000000000000000000000000000000000000000000"
                                "0000001");
    /* Not valid UTF-8: anvil names the error and prints its arguments in hex instead. */
    assert_int_equal(
        s_check("{\"jsonrpc\":\"2.0\",\"id\":5,\"error\":{\"code\":3,\"message\":\"execution reve"
                "rted: custom error 0x040a0202: ababababababababababababababababababababababababa"
                "babababababab010000000000000000000000000000000000000000000000000000000000000001"
                "\",\"data\":\"0x040a0202abababababababababababababababababababababababababababab"
                "ababab010000000000000000000000000000000000000000000000000000000000000001\"}}",
                5, CH_RPC_EXPECT_QUANTITY, &r, &e),
        CH_RPC_REJECTED);
    assert_int_equal(e.kind, CH_RPC_ERR_REVERTED);
    assert_non_null(strstr(e.message, "custom error 0x040a0202"));

    /* A long message is truncated, NUL-terminated. */
    char body[2048], msg[1000];
    memset(msg, 'm', sizeof msg - 1);
    msg[sizeof msg - 1] = '\0';
    snprintf(body, sizeof body,
             "{\"jsonrpc\":\"2.0\",\"id\":4,\"error\":{\"code\":-32000,\"message\":\"%s\"}}", msg);
    assert_int_equal(s_check(body, 4, CH_RPC_EXPECT_ANY, &r, &e), CH_RPC_REJECTED);
    assert_int_equal(strlen(e.message), CH_RPC_ERR_MESSAGE_MAX - 1);
}

static void test_response_invalid(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "",
        "<html><body>502 Bad Gateway</body></html>",
        "null",
        "\"0x1\"",
        "[{\"jsonrpc\":\"2.0\",\"id\":7,\"result\":\"0x1\"}]",
        "{\"id\":7,\"result\":\"0x1\"}",
        "{\"jsonrpc\":\"1.0\",\"id\":7,\"result\":\"0x1\"}",
        "{\"jsonrpc\":2.0,\"id\":7,\"result\":\"0x1\"}",
        "{\"jsonrpc\":\"2.0\",\"id\":8,\"result\":\"0x1\"}",
        "{\"jsonrpc\":\"2.0\",\"id\":\"7\",\"result\":\"0x1\"}",
        "{\"jsonrpc\":\"2.0\",\"id\":7.0,\"result\":\"0x1\"}",
        "{\"jsonrpc\":\"2.0\",\"id\":null,\"result\":\"0x1\"}",
        "{\"jsonrpc\":\"2.0\",\"result\":\"0x1\"}",
        "{\"jsonrpc\":\"2.0\",\"id\":-7,\"result\":\"0x1\"}",
        "{\"jsonrpc\":\"2.0\",\"id\":7}",
        "{\"jsonrpc\":\"2.0\",\"id\":7,\"result\":\"0x1\",\"error\":{\"code\":1,\"message\":\"x\"}"
        "}",
        "{\"jsonrpc\":\"2.0\",\"id\":7,\"result\":\"0x1\",\"error\":null}",
        "{\"jsonrpc\":\"2.0\",\"id\":7,\"error\":null}",
        "{\"jsonrpc\":\"2.0\",\"id\":7,\"error\":\"nonce too low\"}",
        "{\"jsonrpc\":\"2.0\",\"id\":7,\"error\":{\"code\":\"-32000\",\"message\":\"x\"}}",
        "{\"jsonrpc\":\"2.0\",\"id\":7,\"error\":{\"code\":-32000.5,\"message\":\"x\"}}",
        "{\"jsonrpc\":\"2.0\",\"id\":7,\"error\":{\"code\":-32000}}",
        "{\"jsonrpc\":\"2.0\",\"id\":7,\"error\":{\"message\":\"x\"}}",
        "{\"jsonrpc\":\"2.0\",\"id\":7,\"result\":\"0x1\"} trailing",
        "{\"jsonrpc\":\"2.0\",\"id\":7,\"result\":\"0x1\"",
        "{\"jsonrpc\":\"2.0\",\"id\":7,\"result\":\"0x1\",\"result\":\"0x2\"}",
        "{\"jsonrpc\":\"2.0\",\"jsonrpc\":\"2.0\",\"id\":7,\"result\":\"0x1\"}",
    };
    for (size_t i = 0; i < LC_ARRAY_LEN(bad); i++) {
        json_t *r = (json_t *)1;
        ch_rpc_error_t e;
        if (s_check(bad[i], 7, CH_RPC_EXPECT_ANY, &r, &e) != LC_ERR_IO)
            fail_msg("accepted answer %s", bad[i]);
        assert_null(r);
        assert_int_equal(e.kind, CH_RPC_ERR_ENDPOINT);
        assert_true(e.message[0] != '\0');
    }
    /* A NUL inside "2.0" does not pass as "2.0" (jansson refuses \u0000 by default). */
    const char nul[] = "{\"jsonrpc\":\"2.0\\u0000\",\"id\":7,\"result\":\"0x1\"}";
    json_t *r = NULL;
    assert_int_equal(ch_rpc_check_response(nul, strlen(nul), 7, CH_RPC_EXPECT_ANY, &r, NULL),
                     LC_ERR_IO);
    /* Only len bytes are read. */
    const char ok[] = "{\"jsonrpc\":\"2.0\",\"id\":7,\"result\":\"0x1\"}garbage";
    assert_int_equal(ch_rpc_check_response(ok, strlen(ok) - 7, 7, CH_RPC_EXPECT_ANY, &r, NULL), 0);
    json_decref(r);
    assert_int_equal(ch_rpc_check_response(NULL, 0, 7, CH_RPC_EXPECT_ANY, &r, NULL), LC_ERR_IO);
}

/* The selector the call data starts with is keccak256(signature)[0..4). */
static void s_assert_selector(const uint8_t *data, const char *signature)
{
    uint8_t h[32];
    lc_keccak256(h, (const uint8_t *)signature, strlen(signature));
    assert_memory_equal(data, h, 4);
}

/* n bytes of hex into out (a test vector). */
static void s_hex(uint8_t *out, size_t n, const char *hex)
{
    size_t got = 0;
    assert_int_equal(lc_hex_decode(out, n, &got, hex, strlen(hex)), 0);
    assert_int_equal(got, n);
}

static void test_abi_anchor(void **state)
{
    (void)state;
    uint8_t root[32], d[CH_ABI_ANCHOR_LEN], want[CH_ABI_ANCHOR_LEN];
    for (int i = 0; i < 32; i++)
        root[i] = (uint8_t)(0xa0 + i);
    ch_abi_anchor(d, 0x0102030405060708ull, root, 1000);
    s_assert_selector(d, "anchor(uint64,bytes32,uint32)");
    s_hex(want, sizeof want,
          "a149a214"
          "0000000000000000000000000000000000000000000000000102030405060708"
          "a0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebf"
          "00000000000000000000000000000000000000000000000000000000000003e8");
    assert_memory_equal(d, want, sizeof want);

    uint8_t q[CH_ABI_ANCHORS_LEN];
    ch_abi_anchors(q, root);
    s_assert_selector(q, "anchors(bytes32)");
    assert_memory_equal(q + 4, root, 32);

    /* topic0 of the event the relayer looks up: the contract's (contracts/selectors.txt). */
    uint8_t topic[32], want_topic[32];
    lc_keccak256(topic, (const uint8_t *)CH_ABI_ANCHORED_EVENT, strlen(CH_ABI_ANCHORED_EVENT));
    s_hex(want_topic, 32, "1435ec9a26e23f62ab84d767929d3de26da5d513b160935557a4d8d2149af9fd");
    assert_memory_equal(topic, want_topic, 32);
}

static void test_abi_anchors_decode(void **state)
{
    (void)state;
    /* anvil's answer for a root anchored as batch 1 with 3 leaves in block 2. */
    uint8_t ret[128];
    s_hex(ret, sizeof ret,
          "0000000000000000000000000000000000000000000000000000000000000001"
          "0000000000000000000000000000000000000000000000000000000000000003"
          "0000000000000000000000000000000000000000000000000000000000000002"
          "000000000000000000000000000000000000000000000000000000006b017c53");
    ch_anchor_t a;
    assert_int_equal(ch_abi_anchors_decode(&a, ret, sizeof ret), 0);
    assert_true(a.batch_id == 1 && a.count == 3 && a.block_number == 2 &&
                a.timestamp == 0x6b017c53);

    /* The largest values each type holds. */
    uint8_t max[128] = {0};
    memset(max + 24, 0xff, 8);
    memset(max + 32 + 28, 0xff, 4);
    memset(max + 64 + 24, 0xff, 8);
    memset(max + 96 + 24, 0xff, 8);
    assert_int_equal(ch_abi_anchors_decode(&a, max, sizeof max), 0);
    assert_true(a.batch_id == UINT64_MAX && a.count == UINT32_MAX && a.block_number == UINT64_MAX &&
                a.timestamp == UINT64_MAX);

    /* Never anchored: all zero. */
    uint8_t zero[128] = {0};
    assert_int_equal(ch_abi_anchors_decode(&a, zero, sizeof zero), 0);
    assert_true(a.count == 0 && a.batch_id == 0 && a.block_number == 0 && a.timestamp == 0);

    /* Not what LcoreAnchor answers. */
    uint8_t bad[128];
    assert_int_equal(ch_abi_anchors_decode(&a, ret, 96), LC_ERR_INVALID);
    assert_int_equal(ch_abi_anchors_decode(&a, ret, 0), LC_ERR_INVALID);
    assert_int_equal(ch_abi_anchors_decode(&a, NULL, 128), LC_ERR_INVALID);
    /* A byte above each value's type: batch id, count, block, time; and each word's first. */
    static const size_t too_big[] = {23, 32 + 27, 64 + 23, 96 + 23, 0, 32, 64, 96};
    for (size_t i = 0; i < LC_ARRAY_LEN(too_big); i++) {
        memcpy(bad, ret, sizeof bad);
        bad[too_big[i]] = 1;
        if (ch_abi_anchors_decode(&a, bad, sizeof bad) != LC_ERR_INVALID)
            fail_msg("accepted a value too big for its type at byte %zu", too_big[i]);
    }
    memcpy(bad, ret, sizeof bad);
    memset(bad + 32, 0, 32); /* count 0 with a batch id, block and time */
    assert_int_equal(ch_abi_anchors_decode(&a, bad, sizeof bad), LC_ERR_INVALID);
    memcpy(bad, zero, sizeof bad);
    bad[31] = 5; /* count 0, batch id 5 */
    assert_int_equal(ch_abi_anchors_decode(&a, bad, sizeof bad), LC_ERR_INVALID);
    memcpy(bad, ret, sizeof bad);
    memset(bad + 64, 0, 32); /* anchored in no block */
    assert_int_equal(ch_abi_anchors_decode(&a, bad, sizeof bad), LC_ERR_INVALID);
}

static void test_abi_verify(void **state)
{
    (void)state;
    uint8_t root[32], leaf[32], proof[64];
    memset(root, 0x11, 32);
    memset(leaf, 0x22, 32);
    memset(proof, 0x33, 32);
    memset(proof + 32, 0x44, 32);
    size_t len = 0;
    uint8_t *d = ch_abi_verify(root, proof, 2, leaf, &len);
    assert_non_null(d);
    s_assert_selector(d, "verify(bytes32,bytes32[],bytes32)");
    uint8_t want[4 + 32 * 6];
    s_hex(want, sizeof want,
          "0a02831c"
          "1111111111111111111111111111111111111111111111111111111111111111"
          "0000000000000000000000000000000000000000000000000000000000000060"
          "2222222222222222222222222222222222222222222222222222222222222222"
          "0000000000000000000000000000000000000000000000000000000000000002"
          "3333333333333333333333333333333333333333333333333333333333333333"
          "4444444444444444444444444444444444444444444444444444444444444444");
    assert_int_equal(len, sizeof want);
    assert_memory_equal(d, want, sizeof want);
    free(d);

    /* A one-leaf batch: root = leaf, empty proof (an array of length 0, no tail words). */
    d = ch_abi_verify(leaf, NULL, 0, leaf, &len);
    assert_non_null(d);
    assert_int_equal(len, 4 + 32 * 4);
    assert_memory_equal(d, want, 4);
    assert_memory_equal(d + 4, leaf, 32);
    assert_memory_equal(d + 36, want + 36, 32);
    assert_memory_equal(d + 68, leaf, 32);
    for (size_t i = 100; i < len; i++)
        assert_int_equal(d[i], 0);
    free(d);
}

static void test_abi_bool_decode(void **state)
{
    (void)state;
    uint8_t w[32] = {0};
    bool v = true;
    assert_int_equal(ch_abi_bool_decode(&v, w, 32), 0);
    assert_false(v);
    w[31] = 1;
    assert_int_equal(ch_abi_bool_decode(&v, w, 32), 0);
    assert_true(v);
    assert_int_equal(ch_abi_bool_decode(&v, w, 31), LC_ERR_INVALID);
    assert_int_equal(ch_abi_bool_decode(&v, NULL, 0), LC_ERR_INVALID);
    w[31] = 2;
    assert_int_equal(ch_abi_bool_decode(&v, w, 32), LC_ERR_INVALID);
    w[31] = 1;
    w[0] = 1;
    assert_int_equal(ch_abi_bool_decode(&v, w, 32), LC_ERR_INVALID);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_quantity_valid),
        cmocka_unit_test(test_quantity_invalid),
        cmocka_unit_test(test_data),
        cmocka_unit_test(test_classify_send),
        cmocka_unit_test(test_classify_error),
        cmocka_unit_test(test_response_result),
        cmocka_unit_test(test_response_wrong_type),
        cmocka_unit_test(test_response_error_object),
        cmocka_unit_test(test_response_invalid),
        cmocka_unit_test(test_abi_anchor),
        cmocka_unit_test(test_abi_anchors_decode),
        cmocka_unit_test(test_abi_verify),
        cmocka_unit_test(test_abi_bool_decode),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
