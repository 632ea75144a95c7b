/* ch_identity.c: see ch_identity.h. */
#include "ch_identity.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "lc_codec.h"
#include "lc_ethrpc.h"
#include "lc_ethtx.h"
#include "lc_keccak.h"
#include "lc_log.h"

#define CH_OWNERSHIP_EVENT "OwnershipTransferred(address,address)"

/* eth_getCode's answer, hashed: keccak256 of the runtime code; *empty when there is none. */
typedef struct {
    uint8_t *hash;
    int empty;
} s_code_t;

static int s_parse_code(const json_t *r, void *ctx)
{
    s_code_t *c = ctx;
    size_t len = json_string_length(r), n = (len - 2) / 2, got = 0;
    uint8_t *code = malloc(n ? n : 1);
    if (!code)
        return LC_ERR_NOMEM;
    int rc = lc_jsonrpc_parse_data(json_string_value(r), len, code, n, &got) == 0 && got == n
                 ? 0
                 : LC_ERR_IO;
    if (rc == 0) {
        lc_keccak256(c->hash, code, n);
        c->empty = n == 0;
    }
    free(code);
    return rc;
}

/* eth_getCode(contract, "latest"), hashed. 0, LC_ERR_NOTFOUND (no code), LC_ERR_UNAVAILABLE. */
static int s_code_hash(lc_rpc_t *rpc, const uint8_t contract[20], uint8_t hash[32])
{
    char addr[LC_ETH_ADDR_HEX_LEN + 1];
    lc_eth_address_format(addr, contract);
    s_code_t c = {.hash = hash};
    lc_jsonrpc_error_t err;
    int rc = lc_rpc_request(rpc, "eth_getCode", json_pack("[s, s]", addr, "latest"),
                            LC_JSONRPC_EXPECT_DATA, s_parse_code, &c, &err);
    if (rc < 0)
        return rc == LC_ERR_NOMEM ? rc : LC_ERR_UNAVAILABLE;
    return c.empty ? LC_ERR_NOTFOUND : 0;
}

/* The block of the contract's OwnershipTransferred(0, owner): its constructor's. A node that
 * will not search from block 0 (range limits) leaves it unknown (0), said once in the log. */
static int s_find_deploy(lc_rpc_t *rpc, const uint8_t contract[20], ch_chain_identity_t *out)
{
    uint8_t topics[2][32] = {{0}};
    lc_keccak256(topics[0], (const uint8_t *)CH_OWNERSHIP_EVENT, sizeof CH_OWNERSHIP_EVENT - 1);
    lc_jsonrpc_error_t err;
    uint64_t head = 0;
    lc_ethrpc_log_t log;
    size_t n = 0;
    if (lc_ethrpc_block_number(rpc, &head, &err) < 0)
        return LC_ERR_UNAVAILABLE;
    int rc = lc_ethrpc_get_logs(rpc, contract, (const uint8_t(*)[32])topics, 2, 0, head, &log, 1,
                                &n, &err);
    if (rc == LC_ERR_UNAVAILABLE)
        return rc;
    if (rc < 0 || n == 0) {
        lc_warn("contract_deployment_unknown",
                "message=\"%.120s\" (the identity rests on the genesis block and the code)",
                rc < 0 ? err.message : "no OwnershipTransferred(0, owner) event");
        return 0;
    }
    out->deploy_block = log.block_number;
    memcpy(out->deploy_block_hash, log.block_hash, 32);
    return 0;
}

int ch_identity_read(lc_rpc_t *rpc, const uint8_t contract[20], int find_deploy,
                     const ch_chain_identity_t *known, ch_chain_identity_t *out)
{
    lc_jsonrpc_error_t err;
    memset(out, 0, sizeof *out);
    memcpy(out->contract, contract, 20);
    if (lc_ethrpc_chain_id(rpc, &out->chain_id, &err) < 0 ||
        lc_ethrpc_get_block_hash(rpc, 0, out->genesis_hash, &err) < 0)
        return LC_ERR_UNAVAILABLE;
    int code = s_code_hash(rpc, contract, out->code_hash);
    if (code == LC_ERR_UNAVAILABLE || code == LC_ERR_NOMEM)
        return code;
    if (code == 0 && find_deploy) {
        int rc = s_find_deploy(rpc, contract, out);
        if (rc < 0)
            return rc;
    } else if (code == 0 && known && known->deploy_block) {
        out->deploy_block = known->deploy_block;
        int rc = lc_ethrpc_get_block_hash(rpc, known->deploy_block, out->deploy_block_hash, &err);
        if (rc == LC_ERR_UNAVAILABLE)
            return rc;
        if (rc < 0) /* no such block (yet): the chain is shorter than the deployment */
            memset(out->deploy_block_hash, 0, 32);
    }
    return code;
}

static void s_hex(char *out, size_t cap, const uint8_t *data, size_t len)
{
    out[0] = '0';
    out[1] = 'x';
    lc_hex_encode(out + 2, cap - 2, data, len);
}

/* What differs between the recorded identity and the chain's (why), or 0 when nothing. */
static int s_compare(const ch_chain_identity_t *rec, const ch_chain_identity_t *now, int code,
                     char *why, size_t why_len)
{
    char a[67], b[67];
    if (memcmp(rec->contract, now->contract, 20) != 0) {
        s_hex(a, sizeof a, rec->contract, 20);
        s_hex(b, sizeof b, now->contract, 20);
        snprintf(why, why_len, "LCORE_CONTRACT_ADDRESS %.12s... is not the recorded %.12s...", b,
                 a);
    } else if (rec->chain_id != now->chain_id) {
        snprintf(why, why_len, "RPC chain id %" PRIu64 " is not the recorded %" PRIu64,
                 now->chain_id, rec->chain_id);
    } else if (memcmp(rec->genesis_hash, now->genesis_hash, 32) != 0) {
        s_hex(a, sizeof a, rec->genesis_hash, 32);
        s_hex(b, sizeof b, now->genesis_hash, 32);
        snprintf(why, why_len, "genesis %.14s... is not the recorded %.14s... (node reset?)", b, a);
    } else if (code == LC_ERR_NOTFOUND) {
        snprintf(why, why_len, "no contract code at LCORE_CONTRACT_ADDRESS");
    } else if (memcmp(rec->code_hash, now->code_hash, 32) != 0) {
        snprintf(why, why_len, "the contract's code changed");
    } else if (rec->deploy_block &&
               memcmp(rec->deploy_block_hash, now->deploy_block_hash, 32) != 0) {
        snprintf(why, why_len, "block %" PRIu64 " that deployed the contract changed (redeployed)",
                 rec->deploy_block);
    } else {
        return 0;
    }
    return 1;
}

/* 1 (why) when the newest finalized anchor's block is no longer on the chain, else 0 or
 * LC_ERR_UNAVAILABLE. */
static int s_final_block_gone(ch_db_t *db, lc_rpc_t *rpc, const uint8_t from[20], char *why,
                              size_t why_len)
{
    uint64_t block = 0;
    uint8_t want[32], have[32];
    lc_jsonrpc_error_t err;
    int rc = ch_db_newest_final_block(db, from, &block, want);
    if (rc == LC_ERR_NOTFOUND)
        return 0;
    if (rc < 0 || (rc = lc_ethrpc_get_block_hash(rpc, block, have, &err)) == LC_ERR_UNAVAILABLE)
        return LC_ERR_UNAVAILABLE;
    if (rc == 0 && memcmp(want, have, 32) == 0)
        return 0;
    snprintf(why, why_len, "block %" PRIu64 " of a finalized anchor is gone (chain reset?)", block);
    return 1;
}

int ch_identity_verify(ch_db_t *db, lc_rpc_t *rpc, const uint8_t from[20],
                       const uint8_t contract[20], uint64_t chain_id, char *why, size_t why_len)
{
    ch_chain_identity_t rec, now;
    int rc = ch_db_chain_identity(db, &rec);
    if (rc < 0 && rc != LC_ERR_NOTFOUND)
        return LC_ERR_UNAVAILABLE;
    int first = rc == LC_ERR_NOTFOUND;
    int code = ch_identity_read(rpc, contract, first, first ? NULL : &rec, &now);
    if (code == LC_ERR_UNAVAILABLE || code == LC_ERR_NOMEM)
        return LC_ERR_UNAVAILABLE;
    if (first) { /* this chain is the relayer's: unless what it anchored is not on it */
        rec = now;
        rec.chain_id = chain_id;
    }
    int differs = s_compare(&rec, &now, code, why, why_len);
    if (!differs && (differs = s_final_block_gone(db, rpc, from, why, why_len)) < 0)
        return differs;
    if (differs || !first)
        return differs;
    if (ch_db_record_chain_identity(db, &now) < 0)
        return LC_ERR_UNAVAILABLE;
    char genesis[67];
    s_hex(genesis, sizeof genesis, now.genesis_hash, 32);
    lc_info("chain_identity_recorded",
            "chain_id=%" PRIu64 " genesis=%.18s... deploy_block=%" PRIu64, now.chain_id, genesis,
            now.deploy_block);
    return 0;
}

int ch_identity_adopt(ch_db_t *db, lc_rpc_t *rpc, const uint8_t from[20],
                      const uint8_t contract[20], uint64_t chain_id, FILE *out)
{
    char why[256] = "";
    int rc = ch_identity_verify(db, rpc, from, contract, chain_id, why, sizeof why);
    if (rc == 0) {
        fprintf(out, "adopt-chain: the chain is the one the relayer anchors on: nothing to do\n");
        return 1;
    }
    ch_chain_identity_t now;
    if (rc < 0 || (rc = ch_identity_read(rpc, contract, 1, NULL, &now)) < 0) {
        fprintf(out, "adopt-chain: no contract at LCORE_CONTRACT_ADDRESS, or the RPC endpoints "
                     "or PostgreSQL are unavailable\n");
        return rc == LC_ERR_NOTFOUND ? LC_ERR_INVALID : LC_ERR_UNAVAILABLE;
    }
    if (now.chain_id != chain_id) {
        fprintf(out,
                "adopt-chain: the RPC serves chain id %" PRIu64 ", LCORE_CHAIN_ID is %" PRIu64 "\n",
                now.chain_id, chain_id);
        return LC_ERR_INVALID;
    }
    uint64_t anchors = 0, txs = 0;
    if ((rc = ch_db_adopt_chain(db, &now, &anchors, &txs)) < 0)
        return rc;
    lc_warn("chain_adopted",
            "previous=\"%s\" abandoned_anchors=%" PRIu64 " abandoned_transactions=%" PRIu64
            " deploy_block=%" PRIu64 " (every record is anchored again on this chain)",
            why, anchors, txs, now.deploy_block);
    fprintf(out,
            "adopt-chain: was: %s\nadopt-chain: %" PRIu64 " anchors and %" PRIu64
            " transactions of the old chain abandoned (kept); every record is anchored again\n",
            why, anchors, txs);
    return 0;
}
