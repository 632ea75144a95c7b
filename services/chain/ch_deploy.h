/* ch_deploy.h: `lcore-chain deploy`: deploys the anchor contract (contracts/LcoreAnchor.sol,
 * creation bytecode embedded at build time from the committed artifact) and prints its address.
 * Called by main(). */
#ifndef CH_DEPLOY_H
#define CH_DEPLOY_H

#include "ch_config.h"
#include "lc_ethtx.h"
#include "lc_metrics.h"

/* Deploys with a transaction signed by owner (the deployer becomes the contract's owner), with
 * relayer's address as the constructor's relayer, on the chain of cfg->rpc once its chain id is
 * cfg->chain_id; waits for the receipt and prints LCORE_CONTRACT_ADDRESS=0x... on stdout.
 * Returns the exit code: 0, or 1 after saying why on stderr. */
int ch_deploy_contract(const ch_config_t *cfg, const lc_ethtx_signer_t *owner,
                       const lc_ethtx_signer_t *relayer, lc_metrics_t *metrics);

#endif
