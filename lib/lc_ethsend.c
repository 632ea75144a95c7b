/* lc_ethsend.c: see lc_ethsend.h. */
#include "lc_ethsend.h"

#include <czmq.h>
#include <string.h>

#define LC_ETHSEND_POLL_MS 100

int lc_ethsend_sign(const lc_ethtx_signer_t *signer, const lc_ethsend_tx_t *tx, uint8_t **raw,
                    size_t *raw_len, uint8_t hash[32])
{
    lc_ethtx_t t = {.chain_id = tx->chain_id,
                    .nonce = tx->nonce,
                    .gas_limit = tx->gas_limit,
                    .has_to = tx->to != NULL,
                    .data = tx->data,
                    .data_len = tx->data_len};
    if (tx->to)
        memcpy(t.to, tx->to, 20);
    lc_u256_from_u64(&t.max_priority_fee_per_gas, tx->tip);
    lc_u256_from_u64(&t.max_fee_per_gas, tx->fee_cap);
    lc_u256_from_u64(&t.value, 0);
    return lc_ethtx_signer_sign(signer, raw, raw_len, hash, &t);
}

int lc_ethsend_market_fees(lc_rpc_t *rpc, uint64_t max_fee_wei, uint64_t *tip, uint64_t *fee_cap,
                           lc_jsonrpc_error_t *err)
{
    uint64_t base = 0;
    int rc = lc_ethrpc_base_fee(rpc, &base, err);
    if (rc < 0)
        return rc;
    if (lc_ethrpc_max_priority_fee(rpc, tip, NULL) < 0)
        *tip = LC_ETHSEND_DEFAULT_TIP_WEI;
    *fee_cap = *tip + 2 * base;
    if (*fee_cap > max_fee_wei)
        *fee_cap = max_fee_wei;
    if (*tip > *fee_cap)
        *tip = *fee_cap;
    return 0;
}

lc_ethrpc_send_status_t lc_ethsend_once(lc_rpc_t *rpc, const lc_ethtx_signer_t *signer,
                                        lc_ethsend_tx_t *tx, uint8_t hash[32],
                                        lc_jsonrpc_error_t *err)
{
    const uint8_t *from = lc_ethtx_signer_address(signer);
    if (lc_ethrpc_get_transaction_count(rpc, from, LC_ETHRPC_BLOCK_PENDING, &tx->nonce, err) < 0 ||
        lc_ethsend_market_fees(rpc, UINT64_MAX, &tx->tip, &tx->fee_cap, err) < 0)
        return LC_ETHRPC_SEND_RETRYABLE;
    uint8_t *raw = NULL;
    size_t raw_len = 0;
    if (lc_ethsend_sign(signer, tx, &raw, &raw_len, hash) < 0) {
        lc_jsonrpc_error_set(err, LC_JSONRPC_ERR_NONE, 0, "signing failed");
        return LC_ETHRPC_SEND_OTHER_FATAL;
    }
    lc_ethrpc_send_status_t st = lc_ethrpc_send_raw_transaction(rpc, raw, raw_len, hash, err);
    free(raw);
    return st;
}

int lc_ethsend_wait_receipt(lc_rpc_t *rpc, const uint8_t hash[32], int timeout_ms,
                            lc_ethrpc_receipt_t *receipt, lc_jsonrpc_error_t *err)
{
    int rc = LC_ERR_NOTFOUND;
    for (int waited = 0; waited < timeout_ms && !zsys_interrupted; waited += LC_ETHSEND_POLL_MS) {
        if ((rc = lc_ethrpc_get_transaction_receipt(rpc, hash, receipt, err)) == 0)
            return 0;
        zclock_sleep(LC_ETHSEND_POLL_MS);
    }
    return rc;
}
