/* ch_rpc.h: transitional. The chain's JSON-RPC client moved to lib/ (lc_rpc: transport and
 * failover, lc_jsonrpc: codec, lc_ethrpc: eth_* calls), shared with lcore-cli. These are the old
 * names that main() still uses while it is rewritten on another branch of issue 13; new code uses
 * lib's names. Delete this header once main.c is renamed. */
#ifndef CH_RPC_H
#define CH_RPC_H

#include "lc_ethrpc.h"

typedef lc_rpc_t ch_rpc_t;
typedef lc_jsonrpc_error_t ch_rpc_error_t;
#define ch_rpc_new lc_rpc_new
#define ch_rpc_destroy lc_rpc_destroy
#define ch_rpc_chain_id lc_ethrpc_chain_id

#endif
