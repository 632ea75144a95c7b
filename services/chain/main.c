/* lcore-chain: the chain relayer. Anchors Merkle roots of stored records on an EVM chain
 * (KC-Chain, or anvil in development) with transactions it signs itself, and tracks them to
 * confirmation. `lcore-chain deploy` deploys the anchor contract (signed by the owner key when
 * LCORE_CHAIN_OWNER_KEY_FILE is set, else by the relayer's key) with the relayer as relayer;
 * `lcore-chain keygen` writes a new key file; `lcore-chain address` prints the relayer address.
 * main: config -> log -> resources -> loop -> teardown in reverse. */
#include <czmq.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "ch_config.h"
#include "ch_db.h"
#include "ch_deploy.h"
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

int main(int argc, char **argv)
{
    static ch_config_t cfg;
    const char *cmd = argc > 1 && argv[1][0] != '-' ? argv[1] : NULL;
    int rc = lc_service_start(cmd ? 1 : argc, argv, "lcore-chain",
                              "Chain relayer: anchors batches of records on an EVM chain.\n"
                              "Commands: (none) run the relayer; deploy; keygen; address.",
                              &cfg, ch_config_opts, ch_config_opts_len);
    if (rc >= 0)
        return rc;
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
            exit_code = ch_deploy_contract(&cfg, owner ? owner : signer, signer, metrics);
        lc_ethtx_signer_destroy(&owner);
        goto out;
    }
    if (cmd) {
        fprintf(stderr, "lcore-chain: unknown command '%s' (deploy, keygen, address)\n", cmd);
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
    /* The schema comes from lcore-store's migrations: wait for it, and for PostgreSQL. */
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
