/* ch_config.c: the relayer's configuration table. KC-Chain is a configuration, not code. */
#include "ch_config.h"

#include "ch_db.h"

/* lc_cfg stores an enum setting's index as an int. */
_Static_assert(sizeof(ch_fee_mode_t) == sizeof(int), "fee_mode is set as an int");
/* LCORE_CHAIN_PROOF_CACHE_LEAVES's default is ch_db's. */
_Static_assert(CH_DB_PROOF_CACHE_LEAVES == 524288, "the table's default is ch_db's");

#define T ch_config_t
const lc_cfg_opt_t ch_config_opts[] = {
    LC_CFG_ADMIN_BIND("LCORE_CHAIN_ADMIN_BIND", T, "9104", ""),
    LC_CFG_PG_DSN(T, "lcore_chain",
                  ", as the role lcore_chain: the relayer's state; `migrate`: the owner's"),
    LC_CFG_S("LCORE_CHAIN_DB_ROLE", T, db_role, "lcore_chain",
             "`migrate` grants this role the relayer's privileges on the relayer's tables"),
    LC_CFG_URLS("LCORE_CHAIN_RPC", T, rpc, "http://127.0.0.1:8545",
                "JSON-RPC endpoints, comma-separated, first preferred (failover in order)"),
    LC_CFG_I("LCORE_CHAIN_ID", T, chain_id, "31337", 1, 9007199254740991LL,
             "chain id (KC-Chain: 1205614515668104; anvil: 31337)"),
    LC_CFG_S("LCORE_CHAIN_KEY_FILE", T, key_file, "lcore-chain.key",
             "relayer private key file (64 hex digits, mode 0600)"),
    LC_CFG_S("LCORE_CHAIN_OWNER_KEY_FILE", T, owner_key_file, "",
             "`deploy` only: the contract owner's key file (deploys; may call setRelayer); "
             "empty: the relayer key owns the contract"),
    LC_CFG_S("LCORE_CONTRACT_ADDRESS", T, contract, "",
             "LcoreAnchor contract address (0x…); empty: only `deploy` works"),
    LC_CFG_LINK_CONNECT("LCORE_CHAIN_EVENTS_CONNECT", T, events_connect, LC_LINK_EVENTS,
                        "every store's events PUB endpoint, comma-separated: the records each "
                        "store commits"),
    LC_CFG_LINK_CONNECT("LCORE_CHAIN_STORE_QUERIES_CONNECT", T, store_queries_connect,
                        LC_LINK_QUERIES,
                        "the stores' query ROUTER endpoint(s), comma-separated: catching up after "
                        "a gap"),
    LC_CFG_LINK_BIND("LCORE_CHAIN_QUERIES_BIND", T, queries_bind, LC_LINK_CHAIN_QUERIES,
                     "query ROUTER socket, bound: gateways ask for a record's anchor and proof"),
    LC_CFG_I("LCORE_CHAIN_PROOF_CACHE_LEAVES", T, proof_cache_leaves, "524288", 0, 16777216,
             "leaves of the anchor Merkle trees the query thread keeps for proofs, least recently "
             "used out first (about 72 bytes a leaf: 36 MiB by default); 0: rebuilt per query"),
    LC_CFG_I("LCORE_CHAIN_CATCH_UP_MS", T, catch_up_ms, "10000", 100, 3600000,
             "how often every store's position is compared with what the relayer has"),
    LC_CFG_I("LCORE_CHAIN_CONFIRMATIONS", T, confirmations, "3", 1, 10000,
             "blocks on top of an anchor's block before it counts as confirmed"),
    LC_CFG_I("LCORE_CHAIN_FINALITY", T, finality, "64", 1, 100000,
             "blocks on top before an anchor counts as finalized (no more reorg checks)"),
    LC_CFG_I("LCORE_CHAIN_ANCHOR_MAX", T, anchor_max, "100000", 1, 100000,
             "most records in one anchor (one transaction; the gas is per anchor, not per "
             "record): under load an anchor takes every record waiting, up to this; 104 bytes "
             "a record are reserved for the anchor being formed (10 MiB at 100000)"),
    LC_CFG_I("LCORE_CHAIN_ANCHOR_WINDOW_MS", T, anchor_window_ms, "2000", 0, 3600000,
             "longest a stored record waits for its anchor to fill"),
    LC_CFG_I("LCORE_CHAIN_MAX_INFLIGHT", T, max_inflight, "4", 1, 64,
             "anchor transactions sent and not yet mined, at consecutive nonces"),
    LC_CFG_I("LCORE_CHAIN_POLL_MS", T, poll_ms, "500", 50, 60000,
             "how often pending transactions and new blocks are checked"),
    LC_CFG_S("LCORE_CHAIN_RELAYER_ID", T, relayer_id, "",
             "this relayer's name in the lease (one active relayer per chain and contract; the "
             "others stand by); empty: <host name>:<pid>"),
    LC_CFG_I("LCORE_CHAIN_LEASE_TTL_MS", T, lease_ttl_ms, "5000", 1000, 60000,
             "the lease lasts this long unless renewed (every fifth of it): a standby takes over "
             "at most this long, plus its check every second, after the active relayer stops"),
    LC_CFG_E("LCORE_CHAIN_FEE_MODE", T, fee_mode, "bump", CH_FEE_MODE_CHOICES,
             "stuck transactions: bump both fees (bump) or resubmit at market price (market, "
             "Arbitrum Orbit)"),
    LC_CFG_I("LCORE_CHAIN_BUMP_PERCENT", T, bump_percent, "12", 10, 1000,
             "fee increase per replacement (nodes require at least 10 %)"),
    LC_CFG_I("LCORE_CHAIN_BUMP_AFTER_MS", T, bump_after_ms, "15000", 100, 3600000,
             "time without a receipt before a transaction is replaced"),
    LC_CFG_I("LCORE_CHAIN_FEE_CAP_MULTIPLE", T, fee_cap_multiple, "10", 1, 1000,
             "fee cap never above this multiple of the first attempt's fee cap"),
    LC_CFG_I("LCORE_CHAIN_MAX_FEE_GWEI", T, max_fee_gwei, "500", 1, 1000000,
             "absolute ceiling for maxFeePerGas, in gwei"),
    LC_CFG_I("LCORE_CHAIN_RPC_TIMEOUT_MS", T, rpc_timeout_ms, "10000", 100, 120000,
             "timeout of one JSON-RPC request"),
    LC_CFG_I("LCORE_CHAIN_STALL_MS", T, stall_ms, "600000", 1000, 86400000,
             "no anchor mined or confirmed this long while records or transactions wait: not "
             "ready, with the reason"),
    LC_CURVE_CFG_ROWS(T),
};
#undef T
const size_t ch_config_opts_len = sizeof ch_config_opts / sizeof ch_config_opts[0];
