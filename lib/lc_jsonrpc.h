/* lc_jsonrpc.h: the JSON-RPC 2.0 codec for Ethereum nodes: strict parsing of quantities and
 * data, validation of one answer against its request, and what a node's error object means.
 * Pure functions, no state, no network: lc_rpc sends requests with them, lc_ethrpc reads the
 * typed results; lcore-cli reads revert data with lc_jsonrpc_parse_data. */
#ifndef LC_JSONRPC_H
#define LC_JSONRPC_H

#include <jansson.h>

#include "lc_common.h"

/* The node answered with a JSON-RPC error object (other than "method not found", which is
 * LC_ERR_UNSUPPORTED); the error is in *err. */
#define LC_JSONRPC_REJECTED LC_ERR_INVALID

/* What an error object (or the absence of a usable answer) means. */
typedef enum {
    LC_JSONRPC_ERR_NONE = 0,
    LC_JSONRPC_ERR_ENDPOINT,         /* no usable answer: transport, timeout, HTTP status, bad
                                        answer */
    LC_JSONRPC_ERR_METHOD_NOT_FOUND, /* -32601 or "method not found" / "does not exist" wording */
    LC_JSONRPC_ERR_INVALID_REQUEST,  /* -32700, -32600, -32602: the node refused our request */
    LC_JSONRPC_ERR_REVERTED,         /* code 3 or "execution reverted": data holds the revert */
    LC_JSONRPC_ERR_LIMITED,          /* -32005 or rate-limit wording */
    LC_JSONRPC_ERR_SERVER,           /* anything else (geth answers most refusals with -32000) */
} lc_jsonrpc_err_kind_t;

#define LC_JSONRPC_ERR_MESSAGE_MAX 256
#define LC_JSONRPC_ERR_DATA_MAX 512

/* A JSON-RPC error object, or why no endpoint answered (kind LC_JSONRPC_ERR_ENDPOINT, code 0).
 * Texts are NUL-terminated and truncated to fit; control characters the node sent (anvil puts
 * raw revert bytes, "\u0000" included, in its messages) are replaced by '?'. */
typedef struct {
    lc_jsonrpc_err_kind_t kind;
    long long code;
    char message[LC_JSONRPC_ERR_MESSAGE_MAX];
    char data[LC_JSONRPC_ERR_DATA_MAX]; /* a string as is, other JSON compact; "" when absent */
} lc_jsonrpc_error_t;

/* The JSON type a result must have; anything else is a bad answer (an endpoint error). */
typedef enum {
    LC_JSONRPC_EXPECT_ANY = 0,        /* any value, null included */
    LC_JSONRPC_EXPECT_QUANTITY,       /* strict "0x" quantity, see lc_jsonrpc_parse_quantity */
    LC_JSONRPC_EXPECT_DATA,           /* "0x" followed by an even number of hex digits */
    LC_JSONRPC_EXPECT_OBJECT,         /* a JSON object */
    LC_JSONRPC_EXPECT_OBJECT_OR_NULL, /* a JSON object or null (receipts, blocks) */
} lc_jsonrpc_expect_t;

/* Strict quantity (execution-apis "uint"): "0x", then 1..64 lowercase hex digits without leading
 * zeros ("0x0" is zero). s need not be NUL-terminated; len excludes any NUL. Writes 32 bytes
 * big-endian. 0 or LC_ERR_INVALID. */
int lc_jsonrpc_parse_quantity(const char *s, size_t len, uint8_t out[32]) LC_WUR;
/* The same into a uint64_t: LC_ERR_TOOBIG when it does not fit. */
int lc_jsonrpc_parse_quantity_u64(const char *s, size_t len, uint64_t *out) LC_WUR;
/* Data: "0x" then an even number of hex digits (either case: addresses may be checksummed).
 * 0, LC_ERR_INVALID, or LC_ERR_TOOBIG when out_cap is short. */
int lc_jsonrpc_parse_data(const char *s, size_t len, uint8_t *out, size_t out_cap,
                          size_t *out_len) LC_WUR;

/* Validates one answer body for request id: a JSON object, "jsonrpc": "2.0", "id" the same
 * integer, exactly one of "result" / "error". Returns
 *   0                    *result = the result (new reference), of the expected type
 *   LC_JSONRPC_REJECTED  *err = the error object ({code: integer, message: string, data?})
 *   LC_ERR_UNSUPPORTED   the same, for method not found
 *   LC_ERR_IO            not a valid answer; err->message says why (kind LC_JSONRPC_ERR_ENDPOINT)
 * err may be NULL. */
int lc_jsonrpc_check_response(const char *body, size_t len, uint64_t id, lc_jsonrpc_expect_t expect,
                              json_t **result, lc_jsonrpc_error_t *err) LC_WUR;

/* Kind of a JSON-RPC error object from its code and message. */
lc_jsonrpc_err_kind_t lc_jsonrpc_classify_error(long long code, const char *message);

/* 1 when err's message or data holds one of phrases (lowercase, NULL-terminated list),
 * case-insensitively and from a word start ("known transaction" is not found in "Unknown
 * transaction type"). What the wording of a refusal means is the caller's table. */
int lc_jsonrpc_error_mentions(const lc_jsonrpc_error_t *err, const char *const *phrases);

/* Resets err (may be NULL) to kind, code and message (NULL for ""). */
void lc_jsonrpc_error_set(lc_jsonrpc_error_t *err, lc_jsonrpc_err_kind_t kind, long long code,
                          const char *message);

#endif
