/* ch_relayer.h: the relayer's work, one tick at a time: gather stored records into anchors
 * (arrival order, up to N or T seconds), send one anchor per EIP-1559 transaction signed here,
 * and walk each transaction through in_progress -> unconfirmed -> (mined) -> confirmed ->
 * finalized, with fee bumps, replacement by a larger anchor at the same nonce, reorg checks, and
 * recovery from a nonce taken by another sender. All state is in PostgreSQL (ch_db); the relayer
 * can be killed at any point and resumes from there. The contract has the last word: an anchor it
 * already holds (its root, under its anchor id: the contract keys anchors by root) is never sent
 * again; the transaction that anchored it (Anchored event) is recorded as mined instead, even one
 * the database gave up on or never saw. Single-threaded, owned by main(). */
#ifndef CH_RELAYER_H
#define CH_RELAYER_H

#include "ch_config.h"
#include "ch_db.h"
#include "lc_rpc.h"
#include "lc_ethtx.h"
#include "lc_metrics.h"

typedef struct ch_relayer ch_relayer_t;

ch_relayer_t *ch_relayer_new(const ch_config_t *cfg, ch_db_t *db, lc_rpc_t *rpc,
                             const lc_ethtx_signer_t *signer, const uint8_t contract[20],
                             lc_metrics_t *metrics);
void ch_relayer_destroy(ch_relayer_t **self_p);

/* One round. Returns 0, or LC_ERR_UNAVAILABLE when the database or every RPC endpoint is away
 * (the caller waits and tries again). */
int ch_relayer_tick(ch_relayer_t *self) LC_WUR;
/* This relayer just became the active one (it took the lease): everything is read again from the
 * database at the next tick, and its stall clock starts now. */
void ch_relayer_activate(ch_relayer_t *self);

/* Why the relayer cannot anchor, for /readyz: the chain is not the one it anchors on (until
 * `lcore-chain adopt-chain`), a nonce gap it cannot fill, or no anchor mined or confirmed for
 * LCORE_CHAIN_STALL_MS while records or transactions wait. NULL when it can. */
const char *ch_relayer_not_ready(ch_relayer_t *self);

#endif
