/* ch_deploy.c: see ch_deploy.h. */
#include "ch_deploy.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lc_codec.h"
#include "lc_ethsend.h"
#include "lc_keccak.h"
#include "lc_log.h"
#include "lc_rlp.h"

#define CH_DEPLOY_GAS 2000000
#define CH_DEPLOY_RECEIPT_WAIT_MS 60000

extern const char ch_anchor_bytecode_hex[]; /* generated: ch_artifact.c */

/* CREATE address: keccak256(rlp([sender, nonce]))[12:]. */
static void s_create_address(uint8_t out[20], const uint8_t from[20], uint64_t nonce)
{
    uint8_t mem[64], h[32];
    lc_rlp_buf_t b;
    lc_rlp_buf_init_fixed(&b, mem, sizeof mem);
    size_t mark = lc_rlp_list_begin(&b);
    lc_rlp_put_bytes(&b, from, 20);
    lc_rlp_put_uint(&b, nonce);
    lc_rlp_list_end(&b, mark);
    lc_keccak256(h, b.data, b.len);
    memcpy(out, h + 12, 20);
}

/* Init code: the creation bytecode, then constructor(address relayer). malloc'd; NULL on error. */
static uint8_t *s_init_code(const lc_ethtx_signer_t *relayer, size_t *len)
{
    size_t hex_len = strlen(ch_anchor_bytecode_hex), code_len = 0;
    uint8_t *data = malloc(hex_len / 2 + 32);
    if (!data ||
        lc_hex_decode(data, hex_len / 2, &code_len, ch_anchor_bytecode_hex, hex_len) != 0) {
        free(data);
        return NULL;
    }
    memset(data + code_len, 0, 12);
    memcpy(data + code_len + 12, lc_ethtx_signer_address(relayer), 20);
    *len = code_len + 32;
    return data;
}

static void s_report(const uint8_t from[20], const lc_ethtx_signer_t *relayer, uint64_t nonce,
                     const lc_ethrpc_receipt_t *r)
{
    uint8_t addr[20];
    char text[LC_ETH_ADDR_HEX_LEN + 1];
    s_create_address(addr, from, nonce);
    lc_eth_address_format(text, addr);
    char owner_text[LC_ETH_ADDR_HEX_LEN + 1], relayer_text[LC_ETH_ADDR_HEX_LEN + 1];
    lc_eth_address_format(owner_text, from);
    lc_eth_address_format(relayer_text, lc_ethtx_signer_address(relayer));
    lc_info("contract_deployed", "address=%s owner=%s relayer=%s block=%llu gas_used=%llu", text,
            owner_text, relayer_text, (unsigned long long)r->block_number,
            (unsigned long long)r->gas_used);
    printf("LCORE_CONTRACT_ADDRESS=%s\n", text);
}

int ch_deploy_contract(const ch_config_t *cfg, const lc_ethtx_signer_t *owner,
                       const lc_ethtx_signer_t *relayer, lc_metrics_t *metrics)
{
    int ret = 1;
    lc_rpc_t *rpc = lc_rpc_new(cfg->rpc, (int)cfg->rpc_timeout_ms, metrics);
    lc_ethsend_tx_t tx = {.gas_limit = CH_DEPLOY_GAS, .to = NULL};
    uint8_t *data = s_init_code(relayer, &tx.data_len);
    tx.data = data;
    lc_jsonrpc_error_t err;
    if (!rpc || !data)
        goto out;
    if (lc_ethrpc_chain_id(rpc, &tx.chain_id, &err) < 0 || tx.chain_id != (uint64_t)cfg->chain_id) {
        fprintf(stderr, "lcore-chain deploy: RPC chain id %llu, LCORE_CHAIN_ID %lld\n",
                (unsigned long long)tx.chain_id, cfg->chain_id);
        goto out;
    }
    uint8_t hash[32];
    lc_ethrpc_send_status_t st = lc_ethsend_once(rpc, owner, &tx, hash, &err);
    if (st != LC_ETHRPC_SEND_OK && st != LC_ETHRPC_SEND_ALREADY_KNOWN) {
        fprintf(stderr, "lcore-chain deploy: refused (%s): %s\n", lc_ethrpc_send_status_name(st),
                err.message);
        goto out;
    }
    lc_ethrpc_receipt_t r;
    if (lc_ethsend_wait_receipt(rpc, hash, CH_DEPLOY_RECEIPT_WAIT_MS, &r, &err) != 0 || !r.status) {
        fprintf(stderr, "lcore-chain deploy: no successful receipt\n");
        goto out;
    }
    s_report(lc_ethtx_signer_address(owner), relayer, tx.nonce, &r);
    ret = 0;
out:
    free(data);
    lc_rpc_destroy(&rpc);
    return ret;
}
