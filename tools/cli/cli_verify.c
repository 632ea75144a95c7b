/* cli_verify.c: see cli_verify.h. */
#include "cli_verify.h"

#include <getopt.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lc_abi.h"
#include "lc_ethrpc.h"
#include "lc_codec.h"
#include "lc_ethtx.h"
#include "lc_keccak.h"
#include "lc_log.h"
#include "lc_merkle.h"
#include "lc_record.h"

/* What a receipt says: a receipt (docs/RECEIPTS.md) or a GET /v1/records/{id} answer. */
typedef struct {
    uint8_t record_id[LC_RECORD_ID_LEN], envelope_hash[32], leaf[32], root[32], tx_hash[32];
    int has_leaf, has_tx_hash, has_chain_id, has_anchor_id;
    uint8_t proof[LC_MERKLE_MAX_PROOF * 32];
    size_t proof_len;
    uint8_t contract[20];
    int has_contract;
    uint64_t chain_id, anchor_id, block;
} s_receipt_t;

/* 32 bytes from hex, with or without 0x. */
static int s_hex32(uint8_t out[32], const json_t *j)
{
    const char *t = json_string_value(j);
    size_t n = 0;
    if (!t)
        return -1;
    if (t[0] == '0' && (t[1] == 'x' || t[1] == 'X'))
        t += 2;
    return strlen(t) == 64 && lc_hex_decode(out, 32, &n, t, 64) == 0 && n == 32 ? 0 : -1;
}

/* A non-negative JSON integer into *v: 1, 0 when absent or null, -1 when it is something else. */
static int s_u64(uint64_t *v, const json_t *j)
{
    if (!j || json_is_null(j))
        return 0;
    if (!json_is_integer(j) || json_integer_value(j) < 0)
        return -1;
    *v = (uint64_t)json_integer_value(j);
    return 1;
}

/* The anchor's fields: a receipt's own (root, anchor_id, tx_hash, block, chain_id, contract), or
 * those of a record answer's anchor (the API's "batch" object: root, id, tx_hash, block). */
static const char *s_parse_anchor(s_receipt_t *r, const json_t *j)
{
    const json_t *batch = json_object_get(j, "batch");
    const json_t *from = json_is_object(batch) ? batch : j;
    if (s_hex32(r->root, json_object_get(from, "root")) < 0)
        return "root (32 bytes, hex): the record is not anchored yet?";
    const json_t *tx = json_object_get(from, "tx_hash");
    r->has_tx_hash = tx && !json_is_null(tx);
    if (r->has_tx_hash && s_hex32(r->tx_hash, tx) < 0)
        return "tx_hash (32 bytes, hex)";
    int id = s_u64(&r->anchor_id, json_object_get(from, from == batch ? "id" : "anchor_id"));
    int block = s_u64(&r->block, json_object_get(from, "block"));
    int chain = s_u64(&r->chain_id, json_object_get(j, "chain_id"));
    if (id < 0 || block < 0 || chain < 0)
        return "anchor_id, block, chain_id (non-negative integers)";
    r->has_anchor_id = id;
    r->has_chain_id = chain;
    const json_t *c = json_object_get(j, "contract");
    r->has_contract = c && !json_is_null(c);
    if (r->has_contract &&
        (!json_is_string(c) ||
         lc_eth_address_parse(r->contract, json_string_value(c), json_string_length(c)) != 0))
        return "contract (a 20-byte 0x address)";
    return NULL;
}

/* NULL, or what is missing or malformed. */
static const char *s_parse(s_receipt_t *r, const json_t *j)
{
    if (!json_is_object(j))
        return "not a JSON object";
    if (s_hex32(r->record_id, json_object_get(j, "record_id")) < 0)
        return "record_id (32 bytes, hex)";
    if (s_hex32(r->envelope_hash, json_object_get(j, "envelope_hash")) < 0)
        return "envelope_hash (32 bytes, hex)";
    r->has_leaf = json_object_get(j, "leaf") && !json_is_null(json_object_get(j, "leaf"));
    if (r->has_leaf && s_hex32(r->leaf, json_object_get(j, "leaf")) < 0)
        return "leaf (32 bytes, hex)";
    const json_t *proof = json_object_get(j, "proof"), *p;
    size_t i;
    if (!json_is_array(proof) || json_array_size(proof) > LC_MERKLE_MAX_PROOF)
        return "proof (an array of at most 64 hashes)";
    json_array_foreach(proof, i, p)
    {
        if (s_hex32(r->proof + 32 * i, p) < 0)
            return "proof (32-byte hex hashes)";
    }
    r->proof_len = json_array_size(proof);
    return s_parse_anchor(r, j);
}

/* The contract's verify(root, proof, leaf): 0 true, 1 false or refused, -1 no answer. */
static int s_on_chain(const s_receipt_t *r, const uint8_t leaf[32], lc_rpc_t *rpc,
                      const uint8_t contract[20])
{
    int ret = -1;
    size_t call_len = 0, out_len = 0;
    uint8_t *call = NULL, *out = NULL;
    lc_jsonrpc_error_t err;
    if (!(call = lc_abi_verify(r->root, r->proof, r->proof_len, leaf, &call_len)))
        goto out;
    if (lc_ethrpc_call(rpc, contract, call, call_len, &out, &out_len, &err) != 0) {
        printf("NOT VERIFIED: the chain did not answer: %s\n", err.message);
        goto out;
    }
    bool yes = false;
    ret = lc_abi_bool_decode(&yes, out, out_len) == 0 && yes ? 0 : 1;
    if (ret == 1)
        printf("NOT VERIFIED: the anchor contract does not hold this root for this leaf\n");
out:
    free(out);
    free(call);
    return ret;
}

/* The chain is the receipt's chain: 0, else 1 (said why). */
static int s_chain_id(const s_receipt_t *r, lc_rpc_t *rpc)
{
    uint64_t id = 0;
    lc_jsonrpc_error_t err;
    if (!r->has_chain_id)
        return 0;
    if (lc_ethrpc_chain_id(rpc, &id, &err) != 0) {
        printf("NOT VERIFIED: the chain did not answer: %s\n", err.message);
        return 1;
    }
    if (id != r->chain_id) {
        printf("NOT VERIFIED: the RPC serves chain %llu, the receipt names chain %llu\n",
               (unsigned long long)id, (unsigned long long)r->chain_id);
        return 1;
    }
    return 0;
}

/* The receipt's transaction, in its block, emitted the contract's Anchored(anchor_id, root): 0,
 * else 1 (said why). Skipped for a receipt that names no transaction or anchor id. */
static int s_anchor_tx(const s_receipt_t *r, lc_rpc_t *rpc, const uint8_t contract[20])
{
    if (!r->has_tx_hash || !r->has_anchor_id)
        return 0;
    uint8_t topics[3][32];
    lc_keccak256(topics[0], (const uint8_t *)LC_ABI_ANCHORED_EVENT,
                 sizeof LC_ABI_ANCHORED_EVENT - 1);
    lc_abi_word(topics[1], r->anchor_id);
    memcpy(topics[2], r->root, 32);
    lc_ethrpc_log_t logs[8];
    size_t n = 0;
    lc_jsonrpc_error_t err;
    if (lc_ethrpc_get_logs(rpc, contract, (const uint8_t(*)[32])topics, 3, r->block, r->block, logs,
                           8, &n, &err) != 0) {
        printf("NOT VERIFIED: the chain did not answer: %s\n", err.message);
        return 1;
    }
    for (size_t i = 0; i < n; i++)
        if (!logs[i].removed && memcmp(logs[i].tx_hash, r->tx_hash, 32) == 0)
            return 0;
    printf("NOT VERIFIED: transaction tx_hash in block %llu did not anchor this root (no Anchored "
           "event of the contract)\n",
           (unsigned long long)r->block);
    return 1;
}

/* The receipt's claims, checked in order: leaf, proof, chain id, contract, transaction. */
static int s_check(const s_receipt_t *r, const char *rpc_url, const uint8_t contract[20])
{
    uint8_t leaf[32];
    lc_merkle_leaf(leaf, r->record_id, r->envelope_hash);
    if (r->has_leaf && memcmp(leaf, r->leaf, 32) != 0) {
        printf("NOT VERIFIED: the leaf is not keccak256(keccak256(abi.encode(record_id, "
               "envelope_hash)))\n");
        return 1;
    }
    if (lc_merkle_verify(r->root, leaf, r->proof, r->proof_len) != 0) {
        printf("NOT VERIFIED: the proof does not lead from the leaf to the root\n");
        return 1;
    }
    const char *ca_file = getenv("LCORE_CA_FILE");
    lc_rpc_t *rpc = lc_rpc_new(rpc_url, 10000, NULL);
    int rc = 1;
    if (!rpc || (ca_file && *ca_file && lc_rpc_set_ca_file(rpc, ca_file) < 0))
        printf("NOT VERIFIED: cannot use the RPC URL %s\n", rpc_url);
    else
        rc = s_chain_id(r, rpc) || s_on_chain(r, leaf, rpc, contract) != 0 ||
             s_anchor_tx(r, rpc, contract);
    lc_rpc_destroy(&rpc);
    if (rc != 0)
        return 1;
    char rid[65], root[65];
    lc_hex_encode(rid, sizeof rid, r->record_id, 32);
    lc_hex_encode(root, sizeof root, r->root, 32);
    printf("VERIFIED record=%s anchor=%llu root=0x%s block=%llu proof_length=%zu\n", rid,
           (unsigned long long)r->anchor_id, root, (unsigned long long)r->block, r->proof_len);
    return 0;
}

int cli_verify(int argc, char **argv)
{
    static const struct option opts[] = {{"receipt", required_argument, NULL, 'r'},
                                         {"rpc", required_argument, NULL, 'u'},
                                         {"contract", required_argument, NULL, 'c'},
                                         {NULL, 0, NULL, 0}};
    const char *file = NULL, *rpc = getenv("LCORE_CHAIN_RPC"),
               *contract_text = getenv("LCORE_CONTRACT_ADDRESS");
    int o, contract_given = 0;
    optind = 1;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (o == 'r')
            file = optarg;
        else if (o == 'u')
            rpc = optarg;
        else if (o == 'c') {
            contract_text = optarg;
            contract_given = 1;
        } else
            return 2;
    }
    if (!file || optind != argc) {
        fprintf(stderr, "usage: lcore-cli verify --receipt FILE|- [--rpc URL] [--contract ADDR]\n");
        return 2;
    }
    json_error_t jerr;
    json_t *j =
        strcmp(file, "-") == 0 ? json_loadf(stdin, 0, &jerr) : json_load_file(file, 0, &jerr);
    static s_receipt_t r;
    memset(&r, 0, sizeof r);
    const char *bad = j ? s_parse(&r, j) : jerr.text;
    json_decref(j);
    if (bad) {
        fprintf(stderr, "lcore-cli verify: %s: %s\n", file, bad);
        return 2;
    }
    uint8_t contract[20];
    if (contract_given && r.has_contract &&
        (lc_eth_address_parse(contract, contract_text, strlen(contract_text)) != 0 ||
         memcmp(contract, r.contract, 20) != 0)) {
        printf("NOT VERIFIED: the receipt names another contract than --contract %s\n",
               contract_text);
        return 1;
    }
    if (!r.has_contract && (!contract_text || lc_eth_address_parse(contract, contract_text,
                                                                   strlen(contract_text)) != 0)) {
        fprintf(stderr, "lcore-cli verify: no contract address (the receipt's \"contract\", "
                        "--contract or LCORE_CONTRACT_ADDRESS)\n");
        return 2;
    }
    lc_log_init("lcore-cli", LC_LOG_ERROR);
    return s_check(&r, rpc && *rpc ? rpc : "http://127.0.0.1:8545",
                   r.has_contract ? r.contract : contract);
}
