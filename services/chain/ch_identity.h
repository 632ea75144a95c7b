/* ch_identity.h: which chain and which contract the relayer anchors on. The identity is the
 * chain id, the genesis block's hash (a node restarted from genesis, or another network, has
 * another), the contract's address, the hash of its code, and the block that deployed it (its
 * OwnershipTransferred(0, owner) event): anvil redeploying from the same key at the same nonce
 * gives the same address, never the same deployment block hash. The relayer records it at its
 * first start (ch_db chain_identity) and compares it at every start and while it runs
 * (ch_relayer.c); `lcore-chain adopt-chain` (main.c) records a new one and gives the old chain's
 * anchors up, so every record is anchored again on the new chain. */
#ifndef CH_IDENTITY_H
#define CH_IDENTITY_H

#include <stdio.h>

#include "ch_db.h"
#include "lc_rpc.h"

/* The identity the RPC endpoints serve for contract. find_deploy: also search the contract's
 * deployment (eth_getLogs from block 0; a node that refuses leaves deploy_block 0); else
 * out->deploy_block_hash is read at `known`->deploy_block (NULL or 0: not read). Returns 0,
 * LC_ERR_NOTFOUND when there is no code at the contract's address (out filled but code_hash),
 * or LC_ERR_UNAVAILABLE. */
int ch_identity_read(lc_rpc_t *rpc, const uint8_t contract[20], int find_deploy,
                     const ch_chain_identity_t *known, ch_chain_identity_t *out) LC_WUR;

/* Compares what the chain serves with the recorded identity (recording it when none is yet):
 * 0 the same chain, 1 another chain (why says what differs: for the operator, no secrets), or
 * LC_ERR_UNAVAILABLE. The newest block of a finalized anchor of `from` must also still be on
 * the chain (a database older than the identity records, or a deep reorg, is caught there). */
int ch_identity_verify(ch_db_t *db, lc_rpc_t *rpc, const uint8_t from[20],
                       const uint8_t contract[20], uint64_t chain_id, char *why,
                       size_t why_len) LC_WUR;

/* `lcore-chain adopt-chain`: records the chain the endpoints serve now as the relayer's, and
 * abandons the old chain's anchors and transactions (kept, marked with the old identity). Says
 * what it did on out. 0 adopted, 1 nothing to do (the chain is the recorded one), or an error. */
int ch_identity_adopt(ch_db_t *db, lc_rpc_t *rpc, const uint8_t from[20],
                      const uint8_t contract[20], uint64_t chain_id, FILE *out) LC_WUR;

#endif
