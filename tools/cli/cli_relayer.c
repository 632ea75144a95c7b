/* cli_relayer.c: see cli_relayer.h. Configuration: LCORE_CHAIN_OWNER_KEY_FILE (the owner's key,
 * 0600), LCORE_CONTRACT_ADDRESS, LCORE_CHAIN_RPC, LCORE_CHAIN_ID (checked against the node).
 * The transaction is estimated first, so a key that is not the owner is refused (NotOwner)
 * before anything is sent; then signed (EIP-1559, lc_ethtx), sent, and its receipt awaited. */
#include "cli_relayer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lc_abi.h"
#include "lc_ethkey.h"
#include "lc_ethrpc.h"
#include "lc_codec.h"
#include "lc_ethsend.h"
#include "lc_ethtx.h"
#include "lc_log.h"

#define S_RECEIPT_WAIT_MS 120000

static const char *s_env(const char *name, const char *def)
{
    const char *v = getenv(name);
    return v && *v ? v : def;
}

/* Says why the node refused the call: the contract's error when the revert data names one. */
static void s_report_refusal(const char *what, const lc_jsonrpc_error_t *err)
{
    uint8_t data[64];
    size_t len = 0;
    const char *name = NULL;
    if (err->kind == LC_JSONRPC_ERR_REVERTED &&
        lc_jsonrpc_parse_data(err->data, strlen(err->data), data, sizeof data, &len) == 0)
        name = lc_abi_error_name(data, len);
    if (name && strcmp(name, "NotOwner") == 0)
        fprintf(stderr, "lcore-cli set-relayer: refused: LCORE_CHAIN_OWNER_KEY_FILE is not the "
                        "contract's owner (NotOwner)\n");
    else
        fprintf(stderr, "lcore-cli set-relayer: %s: %s%s%s\n", what, err->message,
                err->data[0] ? " data=" : "", err->data);
}

/* The contract's relayer() now. */
static int s_current_relayer(lc_rpc_t *rpc, const uint8_t contract[20], uint8_t out[20])
{
    uint8_t call[LC_ABI_RELAYER_LEN], *ret = NULL;
    size_t ret_len = 0;
    lc_jsonrpc_error_t err;
    lc_abi_relayer(call);
    int rc = lc_ethrpc_call(rpc, contract, call, sizeof call, &ret, &ret_len, &err);
    if (rc == 0)
        rc = lc_abi_address_decode(out, ret, ret_len);
    free(ret);
    return rc;
}

/* Builds, signs and sends setRelayer(relayer) from the owner. 0 and the hash, or -1 (said). */
static int s_send(lc_rpc_t *rpc, const lc_ethtx_signer_t *owner, const uint8_t contract[20],
                  const uint8_t relayer[20], uint64_t chain_id, uint8_t hash[32])
{
    uint8_t data[LC_ABI_SET_RELAYER_LEN];
    uint64_t gas = 0;
    lc_jsonrpc_error_t err;
    lc_abi_set_relayer(data, relayer);
    if (lc_ethrpc_estimate_gas(rpc, lc_ethtx_signer_address(owner), contract, data, sizeof data,
                               &gas, &err) != 0) {
        s_report_refusal("estimate refused", &err);
        return -1;
    }
    lc_ethsend_tx_t tx = {.chain_id = chain_id,
                          .gas_limit = gas + gas / 5, /* estimates are exact; leave room anyway */
                          .to = contract,
                          .data = data,
                          .data_len = sizeof data};
    lc_ethrpc_send_status_t st = lc_ethsend_once(rpc, owner, &tx, hash, &err);
    if (st != LC_ETHRPC_SEND_OK && st != LC_ETHRPC_SEND_ALREADY_KNOWN) {
        fprintf(stderr, "lcore-cli set-relayer: not sent (%s): %s\n",
                lc_ethrpc_send_status_name(st), err.message);
        return -1;
    }
    return 0;
}

int cli_set_relayer(const char *address)
{
    uint8_t relayer[20], contract[20], hash[32], now[20];
    const char *contract_text = s_env("LCORE_CONTRACT_ADDRESS", "");
    if (!address || lc_eth_address_parse(relayer, address, strlen(address)) != 0) {
        fprintf(stderr, "lcore-cli set-relayer: usage: set-relayer ADDRESS (0x + 40 hex)\n");
        return 2;
    }
    if (lc_eth_address_parse(contract, contract_text, strlen(contract_text)) != 0) {
        fprintf(stderr, "lcore-cli set-relayer: LCORE_CONTRACT_ADDRESS is not an address\n");
        return 2;
    }
    const char *key_file = s_env("LCORE_CHAIN_OWNER_KEY_FILE", "");
    if (!*key_file) {
        fprintf(stderr, "lcore-cli set-relayer: LCORE_CHAIN_OWNER_KEY_FILE (the contract "
                        "owner's key) is not set\n");
        return 2;
    }
    lc_log_init("lcore-cli", LC_LOG_ERROR);
    int ret = 1;
    lc_ethtx_signer_t *owner = lc_ethkey_load(key_file);
    lc_rpc_t *rpc = lc_rpc_new(s_env("LCORE_CHAIN_RPC", "http://127.0.0.1:8545"), 10000, NULL);
    lc_jsonrpc_error_t err;
    uint64_t chain_id = 0;
    char text[LC_ETH_ADDR_HEX_LEN + 1], hash_hex[65];
    if (!owner || !rpc)
        goto out;
    if (lc_ethrpc_chain_id(rpc, &chain_id, &err) != 0) {
        fprintf(stderr, "lcore-cli set-relayer: the chain did not answer: %s\n", err.message);
        goto out;
    }
    const char *want = getenv("LCORE_CHAIN_ID");
    if (want && *want && strtoull(want, NULL, 10) != chain_id) {
        fprintf(stderr, "lcore-cli set-relayer: RPC chain id %llu, LCORE_CHAIN_ID %s\n",
                (unsigned long long)chain_id, want);
        goto out;
    }
    if (chain_id != LC_ETHKEY_DEV_CHAIN_ID &&
        lc_ethkey_is_dev_account(lc_ethtx_signer_address(owner))) {
        fprintf(stderr,
                "lcore-cli set-relayer: LCORE_CHAIN_OWNER_KEY_FILE holds a public anvil "
                "development key, allowed only on chain id %d\n",
                LC_ETHKEY_DEV_CHAIN_ID);
        goto out;
    }
    if (s_send(rpc, owner, contract, relayer, chain_id, hash) != 0)
        goto out;
    lc_hex_encode(hash_hex, sizeof hash_hex, hash, sizeof hash);
    printf("tx 0x%s\n", hash_hex);
    fflush(stdout);
    lc_ethrpc_receipt_t r;
    if (lc_ethsend_wait_receipt(rpc, hash, S_RECEIPT_WAIT_MS, &r, &err) != 0) {
        fprintf(stderr, "lcore-cli set-relayer: no receipt for 0x%s yet: check it later\n",
                hash_hex);
        goto out;
    }
    if (!r.status) {
        fprintf(stderr, "lcore-cli set-relayer: transaction 0x%s reverted in block %llu\n",
                hash_hex, (unsigned long long)r.block_number);
        goto out;
    }
    if (s_current_relayer(rpc, contract, now) != 0 || memcmp(now, relayer, 20) != 0) {
        fprintf(stderr, "lcore-cli set-relayer: mined, but relayer() does not return %s\n",
                address);
        goto out;
    }
    lc_eth_address_format(text, now);
    printf("relayer %s (block %llu): restart lcore-chain with its key\n", text,
           (unsigned long long)r.block_number);
    ret = 0;
out:
    lc_rpc_destroy(&rpc);
    lc_ethtx_signer_destroy(&owner);
    return ret;
}
