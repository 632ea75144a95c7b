/* lc_ethrpc.h: the typed eth_* calls of the Ethereum JSON-RPC API that the chain relayer, its
 * deploy command and lcore-cli make, over an lc_rpc client (failover, backoff), with strict
 * reading of each result; and what a refused eth_sendRawTransaction means. Every call follows
 * the common contract in lc_rpc.h. */
#ifndef LC_ETHRPC_H
#define LC_ETHRPC_H

#include "lc_jsonrpc.h"
#include "lc_rpc.h"

typedef enum { LC_ETHRPC_BLOCK_LATEST = 0, LC_ETHRPC_BLOCK_PENDING } lc_ethrpc_block_tag_t;

/* eth_chainId, eth_blockNumber. */
int lc_ethrpc_chain_id(lc_rpc_t *rpc, uint64_t *chain_id, lc_jsonrpc_error_t *err) LC_WUR;
int lc_ethrpc_block_number(lc_rpc_t *rpc, uint64_t *number, lc_jsonrpc_error_t *err) LC_WUR;
/* eth_getTransactionCount(address, "latest" | "pending"). */
int lc_ethrpc_get_transaction_count(lc_rpc_t *rpc, const uint8_t address[20],
                                    lc_ethrpc_block_tag_t tag, uint64_t *nonce,
                                    lc_jsonrpc_error_t *err) LC_WUR;
/* eth_getTransactionCount(address, block number): the nonce as of that block. LC_ERR_NOTFOUND
 * is not used: a node without the block answers with an error (LC_JSONRPC_REJECTED). */
int lc_ethrpc_get_transaction_count_at(lc_rpc_t *rpc, const uint8_t address[20], uint64_t block,
                                       uint64_t *nonce, lc_jsonrpc_error_t *err) LC_WUR;
/* eth_getBalance(address, "latest") in wei, 32 bytes big-endian. */
int lc_ethrpc_get_balance(lc_rpc_t *rpc, const uint8_t address[20], uint8_t wei[32],
                          lc_jsonrpc_error_t *err) LC_WUR;
/* baseFeePerGas of eth_getBlockByNumber("latest", false), in wei (a base fee above 2^64-1 wei is
 * treated as a bad answer). LC_ERR_UNSUPPORTED when the block has no base fee (pre-London). */
int lc_ethrpc_base_fee(lc_rpc_t *rpc, uint64_t *base_fee_wei, lc_jsonrpc_error_t *err) LC_WUR;
/* eth_maxPriorityFeePerGas in wei. LC_ERR_UNSUPPORTED when the node lacks the method: the
 * caller picks its own tip then. */
int lc_ethrpc_max_priority_fee(lc_rpc_t *rpc, uint64_t *tip_wei, lc_jsonrpc_error_t *err) LC_WUR;
/* eth_estimateGas({from?, to, data}) at "latest". from may be NULL. A revert is
 * LC_JSONRPC_REJECTED with err->kind LC_JSONRPC_ERR_REVERTED. */
int lc_ethrpc_estimate_gas(lc_rpc_t *rpc, const uint8_t *from /* 20 or NULL */,
                           const uint8_t to[20], const uint8_t *data, size_t data_len,
                           uint64_t *gas, lc_jsonrpc_error_t *err) LC_WUR;
/* eth_call({to, data}, "latest"). *out is malloc'd (caller frees; NULL when *out_len is 0). */
int lc_ethrpc_call(lc_rpc_t *rpc, const uint8_t to[20], const uint8_t *data, size_t data_len,
                   uint8_t **out, size_t *out_len, lc_jsonrpc_error_t *err) LC_WUR;
/* eth_getBlockByNumber(number, false).hash, for reorg checks. LC_ERR_NOTFOUND: no such block
 * yet on the endpoint that answered. */
int lc_ethrpc_get_block_hash(lc_rpc_t *rpc, uint64_t number, uint8_t hash[32],
                             lc_jsonrpc_error_t *err) LC_WUR;

typedef struct {
    int status; /* 1 success, 0 reverted */
    uint64_t block_number;
    uint8_t block_hash[32];
    uint64_t gas_used;
    uint64_t effective_gas_price; /* wei */
} lc_ethrpc_receipt_t;

/* eth_getTransactionReceipt. LC_ERR_NOTFOUND while the transaction is not in a block. The
 * receipt must name tx_hash, else it is a bad answer. */
int lc_ethrpc_get_transaction_receipt(lc_rpc_t *rpc, const uint8_t tx_hash[32],
                                      lc_ethrpc_receipt_t *receipt, lc_jsonrpc_error_t *err) LC_WUR;

/* One entry of eth_getLogs. */
typedef struct {
    uint8_t tx_hash[32];
    uint64_t block_number;
    uint8_t block_hash[32];
    int removed; /* the node says the log left the chain (reorg) */
} lc_ethrpc_log_t;

/* eth_getLogs({address, topics, fromBlock, toBlock}): the logs of contract `address` whose first
 * n_topics topics are `topics`, in blocks from..to. At most cap entries are kept (*n); more is
 * not an error. */
int lc_ethrpc_get_logs(lc_rpc_t *rpc, const uint8_t address[20], const uint8_t (*topics)[32],
                       size_t n_topics, uint64_t from_block, uint64_t to_block,
                       lc_ethrpc_log_t *out, size_t cap, size_t *n, lc_jsonrpc_error_t *err) LC_WUR;

/* eth_getRawTransactionByHash: the signed bytes of a known transaction, malloc'd (*raw, caller
 * frees). LC_ERR_NOTFOUND when the node does not know the hash. */
int lc_ethrpc_get_raw_transaction(lc_rpc_t *rpc, const uint8_t tx_hash[32], uint8_t **raw,
                                  size_t *raw_len, lc_jsonrpc_error_t *err) LC_WUR;

/* What the sender should do after eth_sendRawTransaction. */
typedef enum {
    LC_ETHRPC_SEND_OK = 0,             /* accepted; tx_hash is set */
    LC_ETHRPC_SEND_ALREADY_KNOWN,      /* the same transaction is already in the pool */
    LC_ETHRPC_SEND_NONCE_TOO_LOW,      /* nonce used: ours was mined (check the receipt) or
                                          replaced */
    LC_ETHRPC_SEND_UNDERPRICED,        /* fee too low for the pool, a replacement or the base fee */
    LC_ETHRPC_SEND_INSUFFICIENT_FUNDS, /* the signer cannot pay gas * fee + value */
    LC_ETHRPC_SEND_NONCE_TOO_HIGH,     /* a nonce gap: the sender's nonce is ahead of the chain */
    LC_ETHRPC_SEND_OTHER_FATAL,        /* any other refusal: resending the same bytes won't help */
    LC_ETHRPC_SEND_RETRYABLE,          /* no answer, or a transient refusal (pool full, limit) */
} lc_ethrpc_send_status_t;

/* "ok", "already_known", ... */
const char *lc_ethrpc_send_status_name(lc_ethrpc_send_status_t status);

/* eth_sendRawTransaction(raw). tx_hash is set on LC_ETHRPC_SEND_OK only; err (may be NULL) holds
 * the node's error otherwise. A failover after a timeout may resend a transaction the first
 * endpoint did take: that comes back as LC_ETHRPC_SEND_ALREADY_KNOWN or
 * LC_ETHRPC_SEND_NONCE_TOO_LOW. */
lc_ethrpc_send_status_t lc_ethrpc_send_raw_transaction(lc_rpc_t *rpc, const uint8_t *raw,
                                                       size_t raw_len, uint8_t tx_hash[32],
                                                       lc_jsonrpc_error_t *err) LC_WUR;

/* Classifies a failed eth_sendRawTransaction by case-insensitive phrases, each matched from a
 * word start, in err->message and err->data (ordered table in lc_ethrpc.c, first match wins).
 * NULL or kind LC_JSONRPC_ERR_ENDPOINT: LC_ETHRPC_SEND_RETRYABLE; no phrase:
 * LC_ETHRPC_SEND_OTHER_FATAL. Pure: exposed for the unit tests. */
lc_ethrpc_send_status_t lc_ethrpc_classify_send_error(const lc_jsonrpc_error_t *err);

#endif
