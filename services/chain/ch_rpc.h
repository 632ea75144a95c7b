/* ch_rpc.h: the chain relayer's JSON-RPC 2.0 client (libcurl, HTTP POST) with failover across
 * the endpoints of LCORE_CHAIN_RPC, and the typed eth_* calls the relayer needs. Owns one
 * keep-alive curl handle per endpoint and each endpoint's health: a transport error, timeout, HTTP
 * 5xx/429 or an invalid answer marks the endpoint down for 1 s, doubling to 30 s while it keeps
 * failing, and the same call moves on to the next endpoint that is not down. Every call starts from
 * the first endpoint that is not down, so the primary takes over again as soon as its backoff has
 * expired. A JSON-RPC error object is an answer, not a failure: it reaches the caller, classified.
 *
 * Called by the relayer's loop only: one ch_rpc_t is used by one thread at a time (no locks).
 * Every call blocks for at most (number of endpoints) x timeout. */
#ifndef CH_RPC_H
#define CH_RPC_H

#include <jansson.h>

#include "lc_common.h"
#include "lc_metrics.h"

#define CH_RPC_TIMEOUT_MS_DEFAULT 10000
#define CH_RPC_CONNECT_TIMEOUT_MS 2000
#define CH_RPC_BACKOFF_MIN_MS 1000
#define CH_RPC_BACKOFF_MAX_MS 30000
#define CH_RPC_MAX_ENDPOINTS 16

/* The node answered with a JSON-RPC error object (other than "method not found", which is
 * LC_ERR_UNSUPPORTED); the error is in *err. */
#define CH_RPC_REJECTED LC_ERR_INVALID

typedef struct ch_rpc ch_rpc_t;

/* What an error object (or the absence of a usable answer) means. */
typedef enum {
    CH_RPC_ERR_NONE = 0,
    CH_RPC_ERR_ENDPOINT,         /* no usable answer: transport, timeout, HTTP status, bad answer */
    CH_RPC_ERR_METHOD_NOT_FOUND, /* -32601 or "method not found" / "does not exist" wording */
    CH_RPC_ERR_INVALID_REQUEST,  /* -32700, -32600, -32602: the node refused our request */
    CH_RPC_ERR_REVERTED,         /* code 3 or "execution reverted": data holds the revert bytes */
    CH_RPC_ERR_LIMITED,          /* -32005 or rate-limit wording */
    CH_RPC_ERR_SERVER,           /* anything else (geth answers most refusals with -32000) */
} ch_rpc_err_kind_t;

#define CH_RPC_ERR_MESSAGE_MAX 256
#define CH_RPC_ERR_DATA_MAX 512

/* A JSON-RPC error object, or why no endpoint answered (kind CH_RPC_ERR_ENDPOINT, code 0).
 * Texts are NUL-terminated and truncated to fit; control characters the node sent (anvil puts
 * raw revert bytes, "\u0000" included, in its messages) are replaced by '?'. */
typedef struct {
    ch_rpc_err_kind_t kind;
    long long code;
    char message[CH_RPC_ERR_MESSAGE_MAX];
    char data[CH_RPC_ERR_DATA_MAX]; /* a string as is, other JSON compact; "" when absent */
} ch_rpc_error_t;

/* The JSON type a result must have; anything else is a bad answer (an endpoint error). */
typedef enum {
    CH_RPC_EXPECT_ANY = 0,        /* any value, null included */
    CH_RPC_EXPECT_QUANTITY,       /* strict "0x" quantity, see ch_rpc_parse_quantity */
    CH_RPC_EXPECT_DATA,           /* "0x" followed by an even number of hex digits */
    CH_RPC_EXPECT_OBJECT,         /* a JSON object */
    CH_RPC_EXPECT_OBJECT_OR_NULL, /* a JSON object or null (receipts, blocks) */
} ch_rpc_expect_t;

typedef enum { CH_BLOCK_LATEST = 0, CH_BLOCK_PENDING } ch_block_tag_t;

/* urls_csv: comma-separated http:// or https:// URLs, first = primary (spaces around commas are
 * ignored). timeout_ms: total time per HTTP request, <= 0 for CH_RPC_TIMEOUT_MS_DEFAULT.
 * metrics: NULL or the registry to register lcore_chain_rpc_* in. Logs endpoints as
 * scheme://host:port only (paths may hold API keys). NULL on error, logged. */
ch_rpc_t *ch_rpc_new(const char *urls_csv, int timeout_ms, lc_metrics_t *metrics);
/* https endpoints are verified against the PEM CA certificates in path instead of the system's
 * (lcore-cli's LCORE_CA_FILE). Before the first call. 0 or LC_ERR_NOMEM. */
int ch_rpc_set_ca_file(ch_rpc_t *self, const char *path) LC_WUR;
void ch_rpc_destroy(ch_rpc_t **self_p);

/* Common contract of every call below. err may be NULL; when given it is reset, then filled on
 * CH_RPC_REJECTED, LC_ERR_UNSUPPORTED (method not found) and LC_ERR_UNAVAILABLE.
 *   0                   success; outputs are valid only after this
 *   CH_RPC_REJECTED     the node answered with a JSON-RPC error object (see err->kind)
 *   LC_ERR_UNSUPPORTED  the node does not offer the method (or, where said, the field)
 *   LC_ERR_NOTFOUND     where said: the node answered null (no such receipt or block)
 *   LC_ERR_UNAVAILABLE  no endpoint gave a usable answer, or all are in backoff: retry later
 *   LC_ERR_NOMEM */

/* Low level: calls method with params (a JSON array, stolen even on error; NULL for []) and
 * returns the result, of the expected type, as a new reference in *result. */
int ch_rpc_call(ch_rpc_t *self, const char *method, json_t *params, ch_rpc_expect_t expect,
                json_t **result, ch_rpc_error_t *err) LC_WUR;

/* eth_chainId, eth_blockNumber. */
int ch_rpc_chain_id(ch_rpc_t *self, uint64_t *chain_id, ch_rpc_error_t *err) LC_WUR;
int ch_rpc_block_number(ch_rpc_t *self, uint64_t *number, ch_rpc_error_t *err) LC_WUR;
/* eth_getTransactionCount(address, "latest" | "pending"). */
int ch_rpc_get_transaction_count(ch_rpc_t *self, const uint8_t address[20], ch_block_tag_t tag,
                                 uint64_t *nonce, ch_rpc_error_t *err) LC_WUR;
/* eth_getTransactionCount(address, block number): the nonce as of that block. LC_ERR_NOTFOUND
 * is not used: a node without the block answers with an error (CH_RPC_REJECTED). */
int ch_rpc_get_transaction_count_at(ch_rpc_t *self, const uint8_t address[20], uint64_t block,
                                    uint64_t *nonce, ch_rpc_error_t *err) LC_WUR;
/* eth_getBalance(address, "latest") in wei, 32 bytes big-endian. */
int ch_rpc_get_balance(ch_rpc_t *self, const uint8_t address[20], uint8_t wei[32],
                       ch_rpc_error_t *err) LC_WUR;
/* baseFeePerGas of eth_getBlockByNumber("latest", false), in wei (a base fee above 2^64-1 wei is
 * treated as a bad answer). LC_ERR_UNSUPPORTED when the block has no base fee (pre-London). */
int ch_rpc_base_fee(ch_rpc_t *self, uint64_t *base_fee_wei, ch_rpc_error_t *err) LC_WUR;
/* eth_maxPriorityFeePerGas in wei. LC_ERR_UNSUPPORTED when the node lacks the method: the
 * caller picks its own tip then. */
int ch_rpc_max_priority_fee(ch_rpc_t *self, uint64_t *tip_wei, ch_rpc_error_t *err) LC_WUR;
/* eth_estimateGas({from?, to, data}) at "latest". from may be NULL. A revert is CH_RPC_REJECTED
 * with err->kind CH_RPC_ERR_REVERTED. */
int ch_rpc_estimate_gas(ch_rpc_t *self, const uint8_t *from /* 20 or NULL */, const uint8_t to[20],
                        const uint8_t *data, size_t data_len, uint64_t *gas,
                        ch_rpc_error_t *err) LC_WUR;
/* eth_call({to, data}, "latest"). *out is malloc'd (caller frees; NULL when *out_len is 0). */
int ch_rpc_eth_call(ch_rpc_t *self, const uint8_t to[20], const uint8_t *data, size_t data_len,
                    uint8_t **out, size_t *out_len, ch_rpc_error_t *err) LC_WUR;
/* eth_getBlockByNumber(number, false).hash, for reorg checks. LC_ERR_NOTFOUND: no such block
 * yet on the endpoint that answered. */
int ch_rpc_get_block_hash(ch_rpc_t *self, uint64_t number, uint8_t hash[32],
                          ch_rpc_error_t *err) LC_WUR;

typedef struct {
    int status; /* 1 success, 0 reverted */
    uint64_t block_number;
    uint8_t block_hash[32];
    uint64_t gas_used;
    uint64_t effective_gas_price; /* wei */
} ch_receipt_t;

/* eth_getTransactionReceipt. LC_ERR_NOTFOUND while the transaction is not in a block. The
 * receipt must name tx_hash, else it is a bad answer. */
int ch_rpc_get_transaction_receipt(ch_rpc_t *self, const uint8_t tx_hash[32], ch_receipt_t *receipt,
                                   ch_rpc_error_t *err) LC_WUR;

/* One entry of eth_getLogs. */
typedef struct {
    uint8_t tx_hash[32];
    uint64_t block_number;
    uint8_t block_hash[32];
    int removed; /* the node says the log left the chain (reorg) */
} ch_log_t;

/* eth_getLogs({address, topics, fromBlock, toBlock}): the logs of contract `address` whose first
 * n_topics topics are `topics`, in blocks from..to. At most cap entries are kept (*n); more is
 * not an error. */
int ch_rpc_get_logs(ch_rpc_t *self, const uint8_t address[20], const uint8_t (*topics)[32],
                    size_t n_topics, uint64_t from_block, uint64_t to_block, ch_log_t *out,
                    size_t cap, size_t *n, ch_rpc_error_t *err) LC_WUR;

/* eth_getRawTransactionByHash: the signed bytes of a known transaction, malloc'd (*raw, caller
 * frees). LC_ERR_NOTFOUND when the node does not know the hash. */
int ch_rpc_get_raw_transaction(ch_rpc_t *self, const uint8_t tx_hash[32], uint8_t **raw,
                               size_t *raw_len, ch_rpc_error_t *err) LC_WUR;

/* What the relayer should do after eth_sendRawTransaction. */
typedef enum {
    CH_SEND_OK = 0,             /* accepted; tx_hash is set */
    CH_SEND_ALREADY_KNOWN,      /* the same transaction is already in the pool */
    CH_SEND_NONCE_TOO_LOW,      /* nonce used: ours was mined (check the receipt) or replaced */
    CH_SEND_UNDERPRICED,        /* fee too low for the pool, for a replacement or the base fee */
    CH_SEND_INSUFFICIENT_FUNDS, /* the signer cannot pay gas * fee + value */
    CH_SEND_NONCE_TOO_HIGH,     /* a nonce gap: the relayer's nonce is ahead of the chain */
    CH_SEND_OTHER_FATAL,        /* any other refusal: resending the same bytes will not help */
    CH_SEND_RETRYABLE,          /* no answer, or a transient refusal (pool full, rate limit) */
} ch_send_status_t;

const char *ch_send_status_name(ch_send_status_t status); /* "ok", "already_known", ... */

/* eth_sendRawTransaction(raw). tx_hash is set on CH_SEND_OK only; err (may be NULL) holds the
 * node's error otherwise. A failover after a timeout may resend a transaction the first endpoint
 * did take: that comes back as CH_SEND_ALREADY_KNOWN or CH_SEND_NONCE_TOO_LOW. */
ch_send_status_t ch_rpc_send_raw_transaction(ch_rpc_t *self, const uint8_t *raw, size_t raw_len,
                                             uint8_t tx_hash[32], ch_rpc_error_t *err) LC_WUR;

/* ---- Pure functions, exposed for the unit tests. ---- */

/* Strict quantity (execution-apis "uint"): "0x", then 1..64 lowercase hex digits without leading
 * zeros ("0x0" is zero). s need not be NUL-terminated; len excludes any NUL. Writes 32 bytes
 * big-endian. 0 or LC_ERR_INVALID. */
int ch_rpc_parse_quantity(const char *s, size_t len, uint8_t out[32]) LC_WUR;
/* The same into a uint64_t: LC_ERR_TOOBIG when it does not fit. */
int ch_rpc_parse_quantity_u64(const char *s, size_t len, uint64_t *out) LC_WUR;
/* Data: "0x" then an even number of hex digits (either case: addresses may be checksummed).
 * 0, LC_ERR_INVALID, or LC_ERR_TOOBIG when out_cap is short. */
int ch_rpc_parse_data(const char *s, size_t len, uint8_t *out, size_t out_cap,
                      size_t *out_len) LC_WUR;

/* Validates one answer body for request id: a JSON object, "jsonrpc": "2.0", "id" the same
 * integer, exactly one of "result" / "error". Returns
 *   0                   *result = the result (new reference), of the expected type
 *   CH_RPC_REJECTED     *err = the error object ({code: integer, message: string, data?})
 *   LC_ERR_UNSUPPORTED  the same, for method not found
 *   LC_ERR_IO           not a valid answer; err->message says why (kind CH_RPC_ERR_ENDPOINT)
 * err may be NULL. */
int ch_rpc_check_response(const char *body, size_t len, uint64_t id, ch_rpc_expect_t expect,
                          json_t **result, ch_rpc_error_t *err) LC_WUR;

/* Kind of a JSON-RPC error object from its code and message. */
ch_rpc_err_kind_t ch_rpc_classify_error(long long code, const char *message);

/* Classifies a failed eth_sendRawTransaction by case-insensitive phrases, each matched from a
 * word start, in err->message and err->data (ordered table in ch_rpc.c, first match wins).
 * NULL or kind CH_RPC_ERR_ENDPOINT: CH_SEND_RETRYABLE; no phrase: CH_SEND_OTHER_FATAL. */
ch_send_status_t ch_rpc_classify_send_error(const ch_rpc_error_t *err);

#endif
