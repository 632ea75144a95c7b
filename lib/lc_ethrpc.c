/* lc_ethrpc.c: the typed eth_* calls over lc_rpc. See lc_ethrpc.h. */
#include "lc_ethrpc.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lc_codec.h"

/* eth_sendRawTransaction refusals, first match wins. Wordings of geth (and Nitro, which is
 * geth), anvil, reth, Erigon, Nethermind, Besu and OpenEthereum. Patterns are lowercase and
 * match case-insensitively at a word start in message or data. */
static const struct {
    lc_ethrpc_send_status_t status;
    const char *const patterns[8];
} s_send_table[] = {
    {LC_ETHRPC_SEND_ALREADY_KNOWN,
     {"already known", "known transaction", "alreadyknown", "already imported", NULL}},
    {LC_ETHRPC_SEND_NONCE_TOO_LOW,
     {"nonce too low", "noncetoolow", "nonce has already been used", "nonce is too low", "oldnonce",
      NULL}},
    {LC_ETHRPC_SEND_UNDERPRICED,
     {"underpriced", "replacementunderpriced", "insufficient gas price to replace",
      "max fee per gas less than block base fee", "fee cap less than block base fee",
      "feecaptoolow", "feetoolow", NULL}},
    {LC_ETHRPC_SEND_INSUFFICIENT_FUNDS, {"insufficient funds", "insufficientfunds", NULL}},
    {LC_ETHRPC_SEND_NONCE_TOO_HIGH, {"nonce too high", "noncetoohigh", NULL}},
    {LC_ETHRPC_SEND_RETRYABLE,
     {"txpool is full", "transaction pool is full", "rate limit", "too many requests", "timed out",
      "timeout", NULL}},
};

lc_ethrpc_send_status_t lc_ethrpc_classify_send_error(const lc_jsonrpc_error_t *err)
{
    if (!err || err->kind == LC_JSONRPC_ERR_ENDPOINT || err->kind == LC_JSONRPC_ERR_NONE)
        return LC_ETHRPC_SEND_RETRYABLE;
    for (size_t i = 0; i < LC_ARRAY_LEN(s_send_table); i++)
        if (lc_jsonrpc_error_mentions(err, s_send_table[i].patterns))
            return s_send_table[i].status;
    if (err->kind == LC_JSONRPC_ERR_LIMITED)
        return LC_ETHRPC_SEND_RETRYABLE;
    return LC_ETHRPC_SEND_OTHER_FATAL;
}

const char *lc_ethrpc_send_status_name(lc_ethrpc_send_status_t status)
{
    switch (status) {
    case LC_ETHRPC_SEND_OK:
        return "ok";
    case LC_ETHRPC_SEND_ALREADY_KNOWN:
        return "already_known";
    case LC_ETHRPC_SEND_NONCE_TOO_LOW:
        return "nonce_too_low";
    case LC_ETHRPC_SEND_UNDERPRICED:
        return "underpriced";
    case LC_ETHRPC_SEND_INSUFFICIENT_FUNDS:
        return "insufficient_funds";
    case LC_ETHRPC_SEND_NONCE_TOO_HIGH:
        return "nonce_too_high";
    case LC_ETHRPC_SEND_OTHER_FATAL:
        return "other_fatal";
    case LC_ETHRPC_SEND_RETRYABLE:
        return "retryable";
    }
    return "unknown";
}

/* "0x" + hex of b, as a new JSON string (NULL on allocation failure). */
static json_t *s_hex_json(const uint8_t *b, size_t n)
{
    char *s = malloc(2 + LC_HEX_LEN(n) + 1);
    if (!s)
        return NULL;
    s[0] = '0';
    s[1] = 'x';
    json_t *j = NULL;
    if (lc_hex_encode(s + 2, LC_HEX_LEN(n) + 1, b, n) == 0)
        j = json_string(s);
    free(s);
    return j;
}

static json_t *s_quantity_json(uint64_t v)
{
    char s[2 + 16 + 1];
    snprintf(s, sizeof s, "0x%llx", (unsigned long long)v);
    return json_string(s);
}

static const char *s_tag(lc_ethrpc_block_tag_t tag)
{
    return tag == LC_ETHRPC_BLOCK_PENDING ? "pending" : "latest";
}

/* Reads a quantity or fixed-size data field of an object; LC_ERR_IO when absent or malformed. */
static int s_field_u64(const json_t *obj, const char *key, uint64_t *out)
{
    const json_t *v = json_object_get(obj, key);
    if (!json_is_string(v) ||
        lc_jsonrpc_parse_quantity_u64(json_string_value(v), json_string_length(v), out) != 0)
        return LC_ERR_IO;
    return 0;
}

static int s_field_fixed(const json_t *obj, const char *key, uint8_t *out, size_t n)
{
    const json_t *v = obj ? json_object_get(obj, key) : NULL;
    size_t got = 0;
    if (!json_is_string(v) ||
        lc_jsonrpc_parse_data(json_string_value(v), json_string_length(v), out, n, &got) != 0 ||
        got != n)
        return LC_ERR_IO;
    return 0;
}

static int s_parse_u64(const json_t *r, void *ctx)
{
    return lc_jsonrpc_parse_quantity_u64(json_string_value(r), json_string_length(r), ctx)
               ? LC_ERR_IO
               : 0;
}

static int s_parse_u256(const json_t *r, void *ctx)
{
    return lc_jsonrpc_parse_quantity(json_string_value(r), json_string_length(r), ctx) ? LC_ERR_IO
                                                                                       : 0;
}

int lc_ethrpc_chain_id(lc_rpc_t *rpc, uint64_t *chain_id, lc_jsonrpc_error_t *err)
{
    return lc_rpc_request(rpc, "eth_chainId", NULL, LC_JSONRPC_EXPECT_QUANTITY, s_parse_u64,
                          chain_id, err);
}

int lc_ethrpc_block_number(lc_rpc_t *rpc, uint64_t *number, lc_jsonrpc_error_t *err)
{
    return lc_rpc_request(rpc, "eth_blockNumber", NULL, LC_JSONRPC_EXPECT_QUANTITY, s_parse_u64,
                          number, err);
}

int lc_ethrpc_get_transaction_count(lc_rpc_t *rpc, const uint8_t address[20],
                                    lc_ethrpc_block_tag_t tag, uint64_t *nonce,
                                    lc_jsonrpc_error_t *err)
{
    json_t *params = json_pack("[o, s]", s_hex_json(address, 20), s_tag(tag));
    if (!params)
        return LC_ERR_NOMEM;
    return lc_rpc_request(rpc, "eth_getTransactionCount", params, LC_JSONRPC_EXPECT_QUANTITY,
                          s_parse_u64, nonce, err);
}

int lc_ethrpc_get_transaction_count_at(lc_rpc_t *rpc, const uint8_t address[20], uint64_t block,
                                       uint64_t *nonce, lc_jsonrpc_error_t *err)
{
    json_t *params = json_pack("[o, o]", s_hex_json(address, 20), s_quantity_json(block));
    if (!params)
        return LC_ERR_NOMEM;
    return lc_rpc_request(rpc, "eth_getTransactionCount", params, LC_JSONRPC_EXPECT_QUANTITY,
                          s_parse_u64, nonce, err);
}

int lc_ethrpc_get_balance(lc_rpc_t *rpc, const uint8_t address[20], uint8_t wei[32],
                          lc_jsonrpc_error_t *err)
{
    json_t *params = json_pack("[o, s]", s_hex_json(address, 20), "latest");
    if (!params)
        return LC_ERR_NOMEM;
    return lc_rpc_request(rpc, "eth_getBalance", params, LC_JSONRPC_EXPECT_QUANTITY, s_parse_u256,
                          wei, err);
}

static int s_parse_base_fee(const json_t *block, void *ctx)
{
    const json_t *v = json_object_get(block, "baseFeePerGas");
    if (!v || json_is_null(v))
        return LC_ERR_UNSUPPORTED; /* a chain without EIP-1559: not the endpoint's fault */
    return s_field_u64(block, "baseFeePerGas", ctx);
}

int lc_ethrpc_base_fee(lc_rpc_t *rpc, uint64_t *base_fee_wei, lc_jsonrpc_error_t *err)
{
    json_t *params = json_pack("[s, b]", "latest", 0);
    if (!params)
        return LC_ERR_NOMEM;
    return lc_rpc_request(rpc, "eth_getBlockByNumber", params, LC_JSONRPC_EXPECT_OBJECT,
                          s_parse_base_fee, base_fee_wei, err);
}

int lc_ethrpc_max_priority_fee(lc_rpc_t *rpc, uint64_t *tip_wei, lc_jsonrpc_error_t *err)
{
    return lc_rpc_request(rpc, "eth_maxPriorityFeePerGas", NULL, LC_JSONRPC_EXPECT_QUANTITY,
                          s_parse_u64, tip_wei, err);
}

/* {from?, to, data} for eth_call and eth_estimateGas. */
static json_t *s_call_object(const uint8_t *from, const uint8_t to[20], const uint8_t *data,
                             size_t data_len)
{
    json_t *o =
        json_pack("{s:o, s:o}", "to", s_hex_json(to, 20), "data", s_hex_json(data, data_len));
    if (o && from && json_object_set_new(o, "from", s_hex_json(from, 20)) != 0) {
        json_decref(o);
        return NULL;
    }
    return o;
}

int lc_ethrpc_estimate_gas(lc_rpc_t *rpc, const uint8_t *from, const uint8_t to[20],
                           const uint8_t *data, size_t data_len, uint64_t *gas,
                           lc_jsonrpc_error_t *err)
{
    assert(data || data_len == 0);
    json_t *params = json_pack("[o]", s_call_object(from, to, data, data_len));
    if (!params)
        return LC_ERR_NOMEM;
    return lc_rpc_request(rpc, "eth_estimateGas", params, LC_JSONRPC_EXPECT_QUANTITY, s_parse_u64,
                          gas, err);
}

typedef struct {
    uint8_t **out;
    size_t *out_len;
} bytes_out_t;

static int s_parse_bytes(const json_t *r, void *ctx)
{
    bytes_out_t *o = ctx;
    size_t len = json_string_length(r);
    size_t n = (len - 2) / 2; /* LC_JSONRPC_EXPECT_DATA checked the form */
    uint8_t *buf = n ? malloc(n) : NULL;
    if (n && !buf)
        return LC_ERR_NOMEM;
    size_t got = 0;
    if (lc_jsonrpc_parse_data(json_string_value(r), len, buf, n, &got) != 0 || got != n) {
        free(buf);
        return LC_ERR_IO;
    }
    *o->out = buf;
    *o->out_len = n;
    return 0;
}

int lc_ethrpc_call(lc_rpc_t *rpc, const uint8_t to[20], const uint8_t *data, size_t data_len,
                   uint8_t **out, size_t *out_len, lc_jsonrpc_error_t *err)
{
    assert(data || data_len == 0);
    *out = NULL;
    *out_len = 0;
    json_t *params = json_pack("[o, s]", s_call_object(NULL, to, data, data_len), "latest");
    if (!params)
        return LC_ERR_NOMEM;
    bytes_out_t o = {out, out_len};
    return lc_rpc_request(rpc, "eth_call", params, LC_JSONRPC_EXPECT_DATA, s_parse_bytes, &o, err);
}

typedef struct {
    uint64_t number;
    uint8_t *hash;
} block_hash_t;

static int s_parse_block_hash(const json_t *block, void *ctx)
{
    block_hash_t *b = ctx;
    if (json_is_null(block))
        return LC_ERR_NOTFOUND;
    uint64_t number = 0;
    if (s_field_u64(block, "number", &number) != 0 || number != b->number)
        return LC_ERR_IO;
    return s_field_fixed(block, "hash", b->hash, 32);
}

int lc_ethrpc_get_block_hash(lc_rpc_t *rpc, uint64_t number, uint8_t hash[32],
                             lc_jsonrpc_error_t *err)
{
    json_t *params = json_pack("[o, b]", s_quantity_json(number), 0);
    if (!params)
        return LC_ERR_NOMEM;
    block_hash_t b = {number, hash};
    return lc_rpc_request(rpc, "eth_getBlockByNumber", params, LC_JSONRPC_EXPECT_OBJECT_OR_NULL,
                          s_parse_block_hash, &b, err);
}

typedef struct {
    const uint8_t *tx_hash;
    lc_ethrpc_receipt_t *receipt;
} receipt_t;

static int s_parse_receipt(const json_t *r, void *ctx)
{
    receipt_t *x = ctx;
    if (json_is_null(r))
        return LC_ERR_NOTFOUND;
    uint8_t hash[32];
    if (s_field_fixed(r, "transactionHash", hash, 32) != 0 || memcmp(hash, x->tx_hash, 32) != 0)
        return LC_ERR_IO;
    /* A receipt without a block (some nodes report pending ones) is not a receipt yet. */
    if (json_is_null(json_object_get(r, "blockNumber")) ||
        json_is_null(json_object_get(r, "blockHash")))
        return LC_ERR_NOTFOUND;
    lc_ethrpc_receipt_t *rc = x->receipt;
    uint64_t status = 0;
    if (s_field_u64(r, "status", &status) != 0 || status > 1 ||
        s_field_u64(r, "blockNumber", &rc->block_number) != 0 ||
        s_field_fixed(r, "blockHash", rc->block_hash, 32) != 0 ||
        s_field_u64(r, "gasUsed", &rc->gas_used) != 0 ||
        s_field_u64(r, "effectiveGasPrice", &rc->effective_gas_price) != 0)
        return LC_ERR_IO;
    rc->status = (int)status;
    return 0;
}

int lc_ethrpc_get_transaction_receipt(lc_rpc_t *rpc, const uint8_t tx_hash[32],
                                      lc_ethrpc_receipt_t *receipt, lc_jsonrpc_error_t *err)
{
    memset(receipt, 0, sizeof *receipt);
    json_t *params = json_pack("[o]", s_hex_json(tx_hash, 32));
    if (!params)
        return LC_ERR_NOMEM;
    receipt_t x = {tx_hash, receipt};
    int rc = lc_rpc_request(rpc, "eth_getTransactionReceipt", params,
                            LC_JSONRPC_EXPECT_OBJECT_OR_NULL, s_parse_receipt, &x, err);
    if (rc != 0)
        memset(receipt, 0, sizeof *receipt);
    return rc;
}

typedef struct {
    lc_ethrpc_log_t *out;
    size_t cap;
    size_t *n;
} logs_out_t;

static int s_parse_logs(const json_t *r, void *ctx)
{
    logs_out_t *o = ctx;
    *o->n = 0;
    if (!json_is_array(r))
        return LC_ERR_IO;
    size_t i;
    const json_t *v;
    json_array_foreach(r, i, v)
    {
        if (*o->n == o->cap)
            break;
        lc_ethrpc_log_t *l = &o->out[*o->n];
        memset(l, 0, sizeof *l);
        const json_t *removed = json_object_get(v, "removed");
        if (!json_is_object(v) || s_field_fixed(v, "transactionHash", l->tx_hash, 32) != 0 ||
            s_field_u64(v, "blockNumber", &l->block_number) != 0 ||
            s_field_fixed(v, "blockHash", l->block_hash, 32) != 0 ||
            (removed && !json_is_boolean(removed)))
            return LC_ERR_IO;
        l->removed = json_is_true(removed);
        (*o->n)++;
    }
    return 0;
}

int lc_ethrpc_get_logs(lc_rpc_t *rpc, const uint8_t address[20], const uint8_t (*topics)[32],
                       size_t n_topics, uint64_t from_block, uint64_t to_block,
                       lc_ethrpc_log_t *out, size_t cap, size_t *n, lc_jsonrpc_error_t *err)
{
    *n = 0;
    json_t *t = json_array();
    for (size_t i = 0; t && i < n_topics; i++)
        if (json_array_append_new(t, s_hex_json(topics[i], 32)) != 0) {
            json_decref(t);
            t = NULL;
        }
    json_t *params = t ? json_pack("[{s:o, s:o, s:o, s:o}]", "address", s_hex_json(address, 20),
                                   "topics", t, "fromBlock", s_quantity_json(from_block), "toBlock",
                                   s_quantity_json(to_block))
                       : NULL;
    if (!params)
        return LC_ERR_NOMEM;
    logs_out_t o = {out, cap, n};
    int rc =
        lc_rpc_request(rpc, "eth_getLogs", params, LC_JSONRPC_EXPECT_ANY, s_parse_logs, &o, err);
    if (rc != 0)
        *n = 0;
    return rc;
}

static int s_parse_raw_or_null(const json_t *r, void *ctx)
{
    if (json_is_null(r))
        return LC_ERR_NOTFOUND;
    const char *s = json_string_value(r);
    size_t len = json_string_length(r);
    if (!s || len < 4 || len % 2)
        return LC_ERR_IO;
    return s_parse_bytes(r, ctx);
}

int lc_ethrpc_get_raw_transaction(lc_rpc_t *rpc, const uint8_t tx_hash[32], uint8_t **raw,
                                  size_t *raw_len, lc_jsonrpc_error_t *err)
{
    *raw = NULL;
    *raw_len = 0;
    json_t *params = json_pack("[o]", s_hex_json(tx_hash, 32));
    if (!params)
        return LC_ERR_NOMEM;
    bytes_out_t o = {raw, raw_len};
    return lc_rpc_request(rpc, "eth_getRawTransactionByHash", params, LC_JSONRPC_EXPECT_ANY,
                          s_parse_raw_or_null, &o, err);
}

static int s_parse_hash(const json_t *r, void *ctx)
{
    size_t got = 0;
    if (lc_jsonrpc_parse_data(json_string_value(r), json_string_length(r), ctx, 32, &got) != 0 ||
        got != 32)
        return LC_ERR_IO;
    return 0;
}

lc_ethrpc_send_status_t lc_ethrpc_send_raw_transaction(lc_rpc_t *rpc, const uint8_t *raw,
                                                       size_t raw_len, uint8_t tx_hash[32],
                                                       lc_jsonrpc_error_t *err)
{
    assert(raw || raw_len == 0);
    lc_jsonrpc_error_t local;
    if (!err)
        err = &local;
    uint8_t hash[32];
    json_t *params = json_pack("[o]", s_hex_json(raw, raw_len));
    int rc = params ? lc_rpc_request(rpc, "eth_sendRawTransaction", params, LC_JSONRPC_EXPECT_DATA,
                                     s_parse_hash, hash, err)
                    : LC_ERR_NOMEM;
    if (rc == 0) {
        memcpy(tx_hash, hash, 32);
        return LC_ETHRPC_SEND_OK;
    }
    if (rc == LC_ERR_NOMEM) {
        lc_jsonrpc_error_set(err, LC_JSONRPC_ERR_ENDPOINT, 0, "out of memory");
        return LC_ETHRPC_SEND_RETRYABLE;
    }
    return lc_ethrpc_classify_send_error(err);
}
