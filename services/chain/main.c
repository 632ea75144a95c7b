/* lcore-chain: the chain relayer. Anchors Merkle roots of stored records on an EVM chain
 * (KC-Chain, or anvil in development) with transactions it signs itself, and tracks them to
 * confirmation. `lcore-chain deploy` deploys the anchor contract (signed by the owner key when
 * LCORE_CHAIN_OWNER_KEY_FILE is set, else by the relayer's key) with the relayer as relayer;
 * `lcore-chain keygen` writes a new key file; `lcore-chain address` prints the relayer address;
 * `lcore-chain migrate` (as the owner role) applies the relayer's tables and its role's grants.
 * main: config -> log -> resources -> loop -> teardown in reverse. */
#include <czmq.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "ch_config.h"
#include "ch_db.h"
#include "ch_key.h"
#include "ch_relayer.h"
#include "ch_rpc.h"
#include "lc_codec.h"
#include "lc_http.h"
#include "lc_keccak.h"
#include "lc_log.h"
#include "lc_rlp.h"
#include "lc_service.h"
#include "lc_zmq.h"

extern const char ch_anchor_bytecode_hex[];

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

/* 0, or 2 after saying why: anvil's development keys are public, so they sign only for a
 * development chain. */
static int s_refuse_dev_key(const ch_config_t *cfg, const lc_ethtx_signer_t *signer,
                            const char *var)
{
    if (cfg->chain_id == CH_DEV_CHAIN_ID || !ch_key_is_dev_account(lc_ethtx_signer_address(signer)))
        return 0;
    char addr[LC_ETH_ADDR_HEX_LEN + 1];
    lc_eth_address_format(addr, lc_ethtx_signer_address(signer));
    fprintf(stderr,
            "lcore-chain: %s holds a public anvil development key (%s), allowed only with "
            "LCORE_CHAIN_ID=%d; make a key with `lcore-chain keygen`\n",
            var, addr, CH_DEV_CHAIN_ID);
    return 2;
}

/* Deploys the anchor contract: signed by `owner` (the deployer becomes the contract's owner),
 * with `relayer`'s address as the constructor's relayer. */
static int s_deploy(const ch_config_t *cfg, lc_ethtx_signer_t *owner,
                    const lc_ethtx_signer_t *relayer, lc_metrics_t *metrics)
{
    int ret = 1;
    lc_ethtx_signer_t *signer = owner;
    ch_rpc_t *rpc = ch_rpc_new(cfg->rpc, (int)cfg->rpc_timeout_ms, metrics);
    size_t hex_len = strlen(ch_anchor_bytecode_hex), code_len = 0;
    uint8_t *data = malloc(hex_len / 2 + 32), *raw = NULL;
    if (!rpc || !data ||
        lc_hex_decode(data, hex_len / 2, &code_len, ch_anchor_bytecode_hex, hex_len) != 0)
        goto out;
    const uint8_t *from = lc_ethtx_signer_address(signer);
    memset(data + code_len, 0, 12); /* constructor(address relayer) */
    memcpy(data + code_len + 12, lc_ethtx_signer_address(relayer), 20);
    ch_rpc_error_t err;
    uint64_t nonce = 0, base = 0, tip = 0, chain_id = 0;
    if (ch_rpc_chain_id(rpc, &chain_id, &err) < 0 || chain_id != (uint64_t)cfg->chain_id) {
        fprintf(stderr, "lcore-chain deploy: RPC chain id %llu, LCORE_CHAIN_ID %lld\n",
                (unsigned long long)chain_id, cfg->chain_id);
        goto out;
    }
    if (ch_rpc_get_transaction_count(rpc, from, CH_BLOCK_PENDING, &nonce, &err) < 0 ||
        ch_rpc_base_fee(rpc, &base, &err) < 0)
        goto out;
    if (ch_rpc_max_priority_fee(rpc, &tip, &err) < 0)
        tip = 1000000;
    lc_ethtx_t tx = {.chain_id = chain_id,
                     .nonce = nonce,
                     .gas_limit = 2000000,
                     .has_to = false,
                     .data = data,
                     .data_len = code_len + 32};
    lc_u256_from_u64(&tx.max_priority_fee_per_gas, tip);
    lc_u256_from_u64(&tx.max_fee_per_gas, tip + 2 * base);
    lc_u256_from_u64(&tx.value, 0);
    uint8_t hash[32];
    size_t raw_len = 0;
    if (lc_ethtx_signer_sign(signer, &raw, &raw_len, hash, &tx) < 0)
        goto out;
    ch_send_status_t st = ch_rpc_send_raw_transaction(rpc, raw, raw_len, hash, &err);
    if (st != CH_SEND_OK && st != CH_SEND_ALREADY_KNOWN) {
        fprintf(stderr, "lcore-chain deploy: refused (%s): %s\n", ch_send_status_name(st),
                err.message);
        goto out;
    }
    ch_receipt_t r;
    int rc = LC_ERR_NOTFOUND;
    for (int i = 0; i < 600 && rc == LC_ERR_NOTFOUND && !zsys_interrupted; i++) {
        rc = ch_rpc_get_transaction_receipt(rpc, hash, &r, &err);
        if (rc == LC_ERR_NOTFOUND)
            zclock_sleep(100);
    }
    if (rc != 0 || !r.status) {
        fprintf(stderr, "lcore-chain deploy: no successful receipt\n");
        goto out;
    }
    uint8_t addr[20];
    char text[LC_ETH_ADDR_HEX_LEN + 1];
    s_create_address(addr, from, nonce);
    lc_eth_address_format(text, addr);
    char owner_text[LC_ETH_ADDR_HEX_LEN + 1], relayer_text[LC_ETH_ADDR_HEX_LEN + 1];
    lc_eth_address_format(owner_text, from);
    lc_eth_address_format(relayer_text, lc_ethtx_signer_address(relayer));
    lc_info("contract_deployed", "address=%s owner=%s relayer=%s block=%llu gas_used=%llu", text,
            owner_text, relayer_text, (unsigned long long)r.block_number,
            (unsigned long long)r.gas_used);
    printf("LCORE_CONTRACT_ADDRESS=%s\n", text);
    ret = 0;
out:
    free(raw);
    free(data);
    ch_rpc_destroy(&rpc);
    return ret;
}

/* Waits up to timeout_ms for wake-up events and drains them; returns 1 if any arrived. An event
 * does not start the next tick before not_before (zclock_mono): under load the store announces
 * a commit every few milliseconds, and one tick reads everything they announce. */
static int s_wait(zsock_t *events, int timeout_ms, int64_t not_before)
{
    int woke = 0;
    zmq_pollitem_t item = {zsock_resolve(events), 0, ZMQ_POLLIN, 0};
    if (zmq_poll(&item, 1, timeout_ms) > 0) {
        int64_t rest = not_before - zclock_mono();
        if (rest > 0 && !zsys_interrupted)
            zclock_sleep((int)rest);
        zmsg_t *m;
        while ((zsock_events(events) & ZMQ_POLLIN) && (m = zmsg_recv(events))) {
            zmsg_destroy(&m);
            woke = 1;
        }
    }
    return woke;
}

/* `lcore-chain migrate` gives PostgreSQL 30 s to come up (a one-shot started next to it). */
static int s_migrate_stop(void *arg, unsigned waited_ms)
{
    (void)arg;
    return zsys_interrupted || waited_ms >= 30000;
}

/* `lcore-chain migrate`: as the owner role; says on stdout what it did. Exit 0 or 1. */
static int s_migrate(const ch_config_t *cfg)
{
    int rc = ch_db_migrate(cfg->pg_dsn, cfg->db_role, stdout, s_migrate_stop, NULL);
    if (rc < 0)
        fprintf(stderr, "lcore-chain migrate: failed: %s (see the log)\n", lc_strerror(rc));
    return rc < 0 ? 1 : 0;
}

int main(int argc, char **argv)
{
    static ch_config_t cfg;
    const char *cmd = argc > 1 && argv[1][0] != '-' ? argv[1] : NULL;
    int rc = lc_service_start(cmd ? 1 : argc, argv, "lcore-chain",
                              "Chain relayer: anchors batches of records on an EVM chain.\n"
                              "Commands: (none) run the relayer; deploy; keygen; address;\n"
                              "migrate: apply the relayer's migrations, then grant its role\n"
                              "(LCORE_CHAIN_DB_ROLE) exactly its privileges on them; run with\n"
                              "LCORE_PG_DSN = the owner role's DSN; idempotent.",
                              &cfg, ch_config_opts, ch_config_opts_len);
    if (rc >= 0)
        return rc;
    if (cmd && strcmp(cmd, "migrate") == 0)
        return s_migrate(&cfg);
    if (cmd && strcmp(cmd, "keygen") == 0) {
        rc = ch_key_generate(cfg.key_file);
        if (rc < 0)
            fprintf(stderr, "lcore-chain keygen: %s: %s\n", cfg.key_file, lc_strerror(rc));
        cmd = "address";
        if (rc < 0)
            return 1;
    }
    lc_ethtx_signer_t *signer = ch_key_load(cfg.key_file);
    if (!signer)
        return 2;
    char from_text[LC_ETH_ADDR_HEX_LEN + 1];
    lc_eth_address_format(from_text, lc_ethtx_signer_address(signer));
    int exit_code = 1;
    lc_metrics_t *metrics = lc_metrics_new();
    lc_admin_t *admin = NULL;
    ch_db_t *db = NULL;
    ch_rpc_t *rpc = NULL;
    ch_relayer_t *relayer = NULL;
    zsock_t *events = NULL;
    lc_curve_t *curve = NULL;
    lc_zmq_peers_t *store_peers = NULL;
    uint8_t contract[20];
    if (cmd && strcmp(cmd, "address") == 0) {
        printf("%s\n", from_text);
        exit_code = 0;
        goto out;
    }
    if ((exit_code = s_refuse_dev_key(&cfg, signer, "LCORE_CHAIN_KEY_FILE")) != 0)
        goto out;
    exit_code = 1;
    if (cmd && strcmp(cmd, "deploy") == 0) {
        lc_ethtx_signer_t *owner = cfg.owner_key_file[0] ? ch_key_load(cfg.owner_key_file) : NULL;
        if (cfg.owner_key_file[0] && !owner)
            exit_code = 2;
        else if (!owner ||
                 !(exit_code = s_refuse_dev_key(&cfg, owner, "LCORE_CHAIN_OWNER_KEY_FILE")))
            exit_code = s_deploy(&cfg, owner ? owner : signer, signer, metrics);
        lc_ethtx_signer_destroy(&owner);
        goto out;
    }
    if (cmd) {
        fprintf(stderr, "lcore-chain: unknown command '%s' (deploy, keygen, address, migrate)\n",
                cmd);
        exit_code = 2;
        goto out;
    }
    if (lc_eth_address_parse(contract, cfg.contract, strlen(cfg.contract)) != 0) {
        fprintf(stderr, "lcore-chain: LCORE_CONTRACT_ADDRESS '%s' is not an address\n",
                cfg.contract);
        exit_code = 2;
        goto out;
    }
    if (!metrics || !(admin = lc_admin_new(cfg.admin_bind, metrics, "chain")))
        goto out;
    lc_admin_set_ready(admin, 0, "connecting");
    if (!(rpc = ch_rpc_new(cfg.rpc, (int)cfg.rpc_timeout_ms, metrics)))
        goto out;
    /* The schema comes from `lcore-chain migrate`: wait for it, and for PostgreSQL. */
    for (int delay = 100; !(db = ch_db_new(cfg.pg_dsn)); delay = delay < 5000 ? delay * 2 : 5000) {
        if (zsys_interrupted)
            goto out;
        zclock_sleep(delay);
    }
    lc_zmq_opts_t eo = {.name = "events",
                        .type = ZMQ_SUB,
                        .endpoints = cfg.events_connect,
                        .roles = LC_ROLE_STORE,
                        .hwm = 1000,
                        .max_msg = LC_ZMQ_EVENT_MAX};
    if (!(curve = lc_curve_new(&cfg.curve, "chain", metrics)) ||
        !(events = lc_zmq_open(&eo, curve, &store_peers)))
        goto out;
    zsock_set_subscribe(events, "stored/");
    if (!(relayer = ch_relayer_new(&cfg, db, rpc, signer, contract, metrics)))
        goto out;
    lc_info("started", "relayer=%s contract=%s chain_id=%lld confirmations=%lld batch_max=%lld",
            from_text, cfg.contract, cfg.chain_id, cfg.confirmations, cfg.batch_max);

    /* Ticks woken by events are at least this far apart: small next to the batch window, so a
     * batch still closes when it is full or its window ends (within the gap). */
    int64_t gap_ms = cfg.batch_window_ms / 10 < 50 ? cfg.batch_window_ms / 10 : 50;
    int chain_checked = 0;
    while (!zsys_interrupted) {
        int64_t tick_at = zclock_mono();
        if (!chain_checked) {
            uint64_t id = 0;
            ch_rpc_error_t err;
            if (ch_rpc_chain_id(rpc, &id, &err) == 0) {
                if (id != (uint64_t)cfg.chain_id) {
                    lc_error("wrong_chain", "rpc_chain_id=%llu configured=%lld",
                             (unsigned long long)id, cfg.chain_id);
                    exit_code = 2;
                    goto out;
                }
                chain_checked = 1;
            }
        }
        rc = chain_checked ? ch_relayer_tick(relayer) : LC_ERR_UNAVAILABLE;
        if (rc == LC_ERR_UNAVAILABLE)
            lc_admin_set_ready(admin, 0, "RPC endpoints or PostgreSQL unavailable");
        else
            lc_admin_set_ready(admin, 1, "");
        s_wait(events, (int)cfg.poll_ms, tick_at + gap_ms);
        lc_zmq_peers_update(store_peers); /* counts refused handshakes and drops */
    }
    lc_info("stopping", "reason=signal");
    exit_code = 0;
out:
    ch_relayer_destroy(&relayer);
    lc_zmq_peers_destroy(&store_peers);
    zsock_destroy(&events);
    lc_curve_destroy(&curve);
    ch_db_destroy(&db);
    ch_rpc_destroy(&rpc);
    lc_admin_destroy(&admin);
    lc_metrics_destroy(&metrics);
    lc_ethtx_signer_destroy(&signer);
    lc_info("exited", "code=%d", exit_code);
    return exit_code;
}
