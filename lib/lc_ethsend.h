/* lc_ethsend.h: sending transactions from a key: an EIP-1559 transaction signed from a few
 * fields, today's fees quoted by the node, a one-off transaction at the signer's pending nonce,
 * and the wait for its receipt. Shared by lcore-chain (the relayer's anchors and fee quote, the
 * contract deploy) and lcore-cli set-relayer. */
#ifndef LC_ETHSEND_H
#define LC_ETHSEND_H

#include "lc_ethrpc.h"
#include "lc_ethtx.h"

/* The tip when the node does not quote one: Orbit chains ignore the tip; geth-style nodes need
 * one. 0.001 gwei. */
#define LC_ETHSEND_DEFAULT_TIP_WEI 1000000u

/* A call (or, with to NULL, a contract creation) with value 0. */
typedef struct {
    uint64_t chain_id, nonce, gas_limit;
    uint64_t tip, fee_cap; /* wei */
    const uint8_t *to;     /* 20 bytes; NULL: contract creation */
    const uint8_t *data;   /* call data or init code */
    size_t data_len;
} lc_ethsend_tx_t;

/* Signs tx: *raw (malloc'd, the caller's) is ready for eth_sendRawTransaction, hash is its hash.
 * 0, LC_ERR_INVALID or LC_ERR_NOMEM. */
int lc_ethsend_sign(const lc_ethtx_signer_t *signer, const lc_ethsend_tx_t *tx, uint8_t **raw,
                    size_t *raw_len, uint8_t hash[32]) LC_WUR;

/* Today's price: the tip from eth_maxPriorityFeePerGas (LC_ETHSEND_DEFAULT_TIP_WEI when the node
 * has none), the fee cap tip + 2 x the latest base fee (it survives two full blocks of base-fee
 * rise), at most max_fee_wei; the tip at most the fee cap. Fails as lc_ethrpc_base_fee. */
int lc_ethsend_market_fees(lc_rpc_t *rpc, uint64_t max_fee_wei, uint64_t *tip, uint64_t *fee_cap,
                           lc_jsonrpc_error_t *err) LC_WUR;

/* Sends tx once from signer: tx->nonce becomes the signer's pending nonce and the fees today's
 * (no ceiling), then it is signed and sent; chain_id, to, data and gas_limit are the caller's.
 * Returns what the node said (LC_ETHRPC_SEND_OK or _ALREADY_KNOWN: sent, hash set);
 * LC_ETHRPC_SEND_RETRYABLE when the nonce or fees could not be read and LC_ETHRPC_SEND_OTHER_FATAL
 * when signing failed. err (not NULL) says why whenever it was not sent. */
lc_ethrpc_send_status_t lc_ethsend_once(lc_rpc_t *rpc, const lc_ethtx_signer_t *signer,
                                        lc_ethsend_tx_t *tx, uint8_t hash[32],
                                        lc_jsonrpc_error_t *err) LC_WUR;

/* Polls for the receipt of hash until it shows, timeout_ms passed or the process was interrupted
 * (SIGINT/SIGTERM, czmq's zsys_interrupted). 0 with *receipt set, else the last call's error. */
int lc_ethsend_wait_receipt(lc_rpc_t *rpc, const uint8_t hash[32], int timeout_ms,
                            lc_ethrpc_receipt_t *receipt, lc_jsonrpc_error_t *err) LC_WUR;

#endif
