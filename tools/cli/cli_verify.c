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
#include "lc_log.h"
#include "lc_merkle.h"
#include "lc_record.h"

/* What a receipt says. */
typedef struct {
    uint8_t record_id[LC_RECORD_ID_LEN], envelope_hash[32], leaf[32], root[32];
    int has_leaf;
    uint8_t proof[LC_MERKLE_MAX_PROOF * 32];
    size_t proof_len;
    uint8_t contract[20];
    int has_contract;
    long long anchor_id, block;
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

/* NULL, or what is missing or malformed. The root and the anchor are the receipt's own fields
 * (root, anchor_id) or those of a record answer's anchor (the API's "batch" object). */
static const char *s_parse(s_receipt_t *r, const json_t *j)
{
    const json_t *anchor = json_object_get(j, "batch");
    const json_t *root = json_object_get(j, "root");
    if (!root && json_is_object(anchor))
        root = json_object_get(anchor, "root");
    if (s_hex32(r->record_id, json_object_get(j, "record_id")) < 0)
        return "record_id (32 bytes, hex)";
    if (s_hex32(r->envelope_hash, json_object_get(j, "envelope_hash")) < 0)
        return "envelope_hash (32 bytes, hex)";
    if (s_hex32(r->root, root) < 0)
        return "root (32 bytes, hex): the record is not anchored yet?";
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
    const char *c = json_string_value(json_object_get(j, "contract"));
    r->has_contract = c && lc_eth_address_parse(r->contract, c, strlen(c)) == 0;
    const json_t *from = json_is_object(anchor) ? anchor : j;
    r->anchor_id =
        json_integer_value(json_object_get(from, json_is_object(anchor) ? "id" : "anchor_id"));
    r->block = json_integer_value(json_object_get(from, "block"));
    return NULL;
}

/* The contract's verify(root, proof, leaf): 0 true, 1 false or refused, -1 no answer. */
static int s_on_chain(const s_receipt_t *r, const uint8_t leaf[32], const char *rpc_url,
                      const uint8_t contract[20])
{
    int ret = -1;
    size_t call_len = 0, out_len = 0;
    uint8_t *call = NULL, *out = NULL;
    lc_jsonrpc_error_t err;
    const char *ca_file = getenv("LCORE_CA_FILE");
    lc_rpc_t *rpc = lc_rpc_new(rpc_url, 10000, NULL);
    if (!rpc || (ca_file && *ca_file && lc_rpc_set_ca_file(rpc, ca_file) < 0) ||
        !(call = lc_abi_verify(r->root, r->proof, r->proof_len, leaf, &call_len)))
        goto out;
    if (lc_ethrpc_call(rpc, contract, call, call_len, &out, &out_len, &err) != 0) {
        printf("NOT VERIFIED: the chain did not answer: %s\n", err.message);
        goto out;
    }
    bool yes = false;
    ret = lc_abi_bool_decode(&yes, out, out_len) == 0 && yes ? 0 : 1;
out:
    free(out);
    free(call);
    lc_rpc_destroy(&rpc);
    return ret;
}

/* The receipt's claims, checked in order: leaf, proof, chain. */
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
    int rc = s_on_chain(r, leaf, rpc_url, contract);
    if (rc == 1)
        printf("NOT VERIFIED: the anchor contract does not hold this root for this leaf\n");
    if (rc != 0)
        return 1;
    char rid[65], root[65];
    lc_hex_encode(rid, sizeof rid, r->record_id, 32);
    lc_hex_encode(root, sizeof root, r->root, 32);
    printf("VERIFIED record=%s anchor=%lld root=0x%s block=%lld proof_length=%zu\n", rid,
           r->anchor_id, root, r->block, r->proof_len);
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
    int o;
    optind = 1;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (o == 'r')
            file = optarg;
        else if (o == 'u')
            rpc = optarg;
        else if (o == 'c')
            contract_text = optarg;
        else
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
