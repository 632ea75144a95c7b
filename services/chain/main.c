/* lcore-chain: the chain relayer. Anchors Merkle roots of stored records on an EVM chain
 * (KC-Chain, or anvil in development) with transactions it signs itself, and tracks them to
 * confirmation. `lcore-chain deploy` deploys the anchor contract (signed by the owner key when
 * LCORE_CHAIN_OWNER_KEY_FILE is set, else by the relayer's key) with the relayer as relayer;
 * `lcore-chain keygen` writes a new key file; `lcore-chain address` prints the relayer address;
 * `lcore-chain migrate` (as the owner role) applies the relayer's tables and its role's grants;
 * `lcore-chain adopt-chain` starts over on a chain that changed under the relayer.
 * main: config -> log -> resources -> loop -> teardown in reverse. */
#include <czmq.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "ch_config.h"
#include "ch_db.h"
#include "ch_feed.h"
#include "ch_deploy.h"
#include "ch_identity.h"
#include "ch_lease.h"
#include "lc_ethkey.h"
#include "ch_query.h"
#include "ch_relayer.h"
#include "lc_ethrpc.h"
#include "lc_codec.h"
#include "lc_http.h"
#include "lc_keccak.h"
#include "lc_log.h"
#include "lc_pg.h"
#include "lc_rlp.h"
#include "lc_service.h"
#include "lc_zmq.h"

/* 0, or 2 after saying why: anvil's development keys are public, so they sign only for a
 * development chain. */
static int s_refuse_dev_key(const ch_config_t *cfg, const lc_ethtx_signer_t *signer,
                            const char *var)
{
    if (cfg->chain_id == LC_ETHKEY_DEV_CHAIN_ID ||
        !lc_ethkey_is_dev_account(lc_ethtx_signer_address(signer)))
        return 0;
    char addr[LC_ETH_ADDR_HEX_LEN + 1];
    lc_eth_address_format(addr, lc_ethtx_signer_address(signer));
    fprintf(stderr,
            "lcore-chain: %s holds a public anvil development key (%s), allowed only with "
            "LCORE_CHAIN_ID=%d; make a key with `lcore-chain keygen`\n",
            var, addr, LC_ETHKEY_DEV_CHAIN_ID);
    return 2;
}

/* Waits up to timeout_ms for the stores' messages. Once one is there, the next turn does not
 * start before not_before (zclock_mono): under load a store commits every few milliseconds, and
 * one turn takes in everything that came meanwhile. */
static void s_wait(zsock_t *events, int timeout_ms, int64_t not_before)
{
    zmq_pollitem_t item = {zsock_resolve(events), 0, ZMQ_POLLIN, 0};
    if (zmq_poll(&item, 1, timeout_ms) > 0) {
        int64_t rest = not_before - zclock_mono();
        if (rest > 0 && !zsys_interrupted)
            zclock_sleep((int)rest);
    }
}

/* `lcore-chain adopt-chain`: the chain the endpoints serve now becomes the relayer's; the old
 * chain's anchors are abandoned (kept) and every record is anchored again. Exit 0 or 1. */
static int s_adopt_chain(const ch_config_t *cfg, const lc_ethtx_signer_t *signer,
                         lc_metrics_t *metrics)
{
    uint8_t contract[20];
    if (lc_eth_address_parse(contract, cfg->contract, strlen(cfg->contract)) != 0) {
        fprintf(stderr, "lcore-chain adopt-chain: LCORE_CONTRACT_ADDRESS '%s' is not an address\n",
                cfg->contract);
        return 2;
    }
    lc_rpc_t *rpc = lc_rpc_new(cfg->rpc, (int)cfg->rpc_timeout_ms, metrics);
    ch_db_t *db = rpc ? ch_db_new(cfg->pg_dsn) : NULL;
    /* The anchor tables take writes from the lease holder: in the name of the running relayer
     * (it waits for this), or with the lease taken when none runs. */
    char name[160];
    snprintf(name, sizeof name, "adopt-chain:%ld", (long)getpid());
    ch_lease_t *lease = db ? ch_lease_new(ch_db_pg(db), name, (uint64_t)cfg->chain_id, contract,
                                          (int)cfg->lease_ttl_ms, metrics)
                           : NULL;
    int taken = lease ? ch_lease_borrow(lease) : LC_ERR_UNAVAILABLE;
    int rc = taken >= 0 ? ch_identity_adopt(db, rpc, lc_ethtx_signer_address(signer), contract,
                                            (uint64_t)cfg->chain_id, stdout)
                        : taken;
    if (taken == 1)
        ch_lease_release(lease);
    ch_lease_destroy(&lease);
    if (rc < 0)
        fprintf(stderr, "lcore-chain adopt-chain: failed: %s\n", lc_strerror(rc));
    ch_db_destroy(&db);
    lc_rpc_destroy(&rpc);
    return rc < 0 ? 1 : 0;
}

/* The commands other than running the relayer: address, deploy, adopt-chain. Returns the exit code,
 * or -1 when there is no command (run the relayer). */
static int s_command(const char *cmd, const ch_config_t *cfg, lc_ethtx_signer_t *signer,
                     lc_metrics_t *metrics)
{
    if (cmd && strcmp(cmd, "address") == 0) {
        char from_text[LC_ETH_ADDR_HEX_LEN + 1];
        lc_eth_address_format(from_text, lc_ethtx_signer_address(signer));
        printf("%s\n", from_text);
        return 0;
    }
    int rc = s_refuse_dev_key(cfg, signer, "LCORE_CHAIN_KEY_FILE");
    if (rc != 0)
        return rc;
    if (cmd && strcmp(cmd, "deploy") == 0) {
        lc_ethtx_signer_t *owner =
            cfg->owner_key_file[0] ? lc_ethkey_load(cfg->owner_key_file) : NULL;
        if (cfg->owner_key_file[0] && !owner)
            rc = 2;
        else if (!owner || !(rc = s_refuse_dev_key(cfg, owner, "LCORE_CHAIN_OWNER_KEY_FILE")))
            rc = ch_deploy_contract(cfg, owner ? owner : signer, signer, metrics);
        lc_ethtx_signer_destroy(&owner);
        return rc;
    }
    if (cmd && strcmp(cmd, "adopt-chain") == 0)
        return s_adopt_chain(cfg, signer, metrics);
    if (cmd) {
        fprintf(stderr,
                "lcore-chain: unknown command '%s' (deploy, keygen, address, migrate, "
                "adopt-chain)\n",
                cmd);
        return 2;
    }
    return -1;
}

/* Everything the running relayer holds, made in this order and unmade in reverse. */
typedef struct {
    const ch_config_t *cfg;
    lc_ethtx_signer_t *signer;
    lc_service_t *svc;
    lc_metrics_t *metrics; /* the service's (borrowed from svc), as admin and curve */
    lc_admin_t *admin;
    lc_curve_t *curve;
    lc_rpc_t *rpc;
    ch_db_t *db;
    ch_feed_t *feed;
    ch_query_t *query;
    ch_relayer_t *relayer;
    ch_lease_t *lease;
    char relayer_id[128];
    uint8_t contract[20];
    int chain_checked;
    int active;    /* holds the lease: feeds and anchors (a standby only answers queries) */
    int said_wait; /* "standby" was logged for the holder as last seen */
} s_chain_t;

static void *s_connect(void *dsn)
{
    return ch_db_new(dsn);
}

/* LCORE_CHAIN_RELAYER_ID, or <host name>:<pid>. */
static void s_relayer_id(const ch_config_t *cfg, char *out, size_t cap)
{
    if (cfg->relayer_id[0]) {
        snprintf(out, cap, "%s", cfg->relayer_id);
        return;
    }
    char host[64] = "relayer";
    gethostname(host, sizeof host);
    host[sizeof host - 1] = '\0';
    snprintf(out, cap, "%s:%ld", host, (long)getpid());
}

/* The lease, at each turn: 1 when this relayer is (or just became) the active one; 0 when it
 * stands by (or cannot tell: PostgreSQL away); 3 (logged) when it was active and another took
 * the lease over: it stops at once, its state is no longer its own. */
static int s_lease(s_chain_t *c)
{
    int held = ch_lease_step(c->lease);
    if (held == 1) {
        if (!c->active)
            ch_relayer_activate(c->relayer);
        c->active = 1;
        c->said_wait = 0;
        return 1;
    }
    if (c->active && (held == CH_LEASE_LOST || held == 0)) {
        lc_error("lease_taken_over", "holder=%s epoch=%llu: stopping", ch_lease_holder(c->lease),
                 (unsigned long long)ch_lease_epoch(c->lease));
        return 3;
    }
    if (held == 0 && !c->said_wait) {
        lc_info("standby", "holder=%s epoch=%llu relayer=%s", ch_lease_holder(c->lease),
                (unsigned long long)ch_lease_epoch(c->lease), c->relayer_id);
        c->said_wait = 1;
    }
    /* A standby is ready (it answers queries and can take over); without PostgreSQL, not. */
    if (!c->active)
        lc_admin_set_ready(c->admin, held == 0, held == 0 ? "" : "PostgreSQL unavailable");
    return 0;
}

/* Resources in order: 0, -1 (logged), or 2 for a configuration error. */
static int s_open(s_chain_t *c)
{
    const ch_config_t *cfg = c->cfg;
    if (lc_eth_address_parse(c->contract, cfg->contract, strlen(cfg->contract)) != 0) {
        fprintf(stderr, "lcore-chain: LCORE_CONTRACT_ADDRESS '%s' is not an address\n",
                cfg->contract);
        return 2;
    }
    if (!(c->svc = lc_service_new("chain", cfg->admin_bind, &cfg->curve, "connecting")))
        return -1;
    c->metrics = lc_service_metrics(c->svc);
    c->admin = lc_service_admin(c->svc);
    c->curve = lc_service_curve(c->svc);
    if (!(c->rpc = lc_rpc_new(cfg->rpc, (int)cfg->rpc_timeout_ms, c->metrics)))
        return -1;
    /* The schema comes from `lcore-chain migrate`: wait for it, and for PostgreSQL. */
    if (!(c->db = lc_pg_retry(s_connect, (void *)cfg->pg_dsn, 5000, lc_service_give_up, NULL)))
        return -1;
    s_relayer_id(cfg, c->relayer_id, sizeof c->relayer_id);
    if (!(c->feed = ch_feed_new(cfg, c->db, c->curve, c->metrics)) ||
        !(c->query = ch_query_new(cfg, c->curve, c->metrics, c->contract)) ||
        !(c->relayer = ch_relayer_new(cfg, c->db, c->rpc, c->signer, c->contract, c->metrics)) ||
        !(c->lease = ch_lease_new(ch_db_pg(c->db), c->relayer_id, (uint64_t)cfg->chain_id,
                                  c->contract, (int)cfg->lease_ttl_ms, c->metrics)))
        return -1;
    return 0;
}

static void s_close(s_chain_t *c)
{
    if (c->lease)
        ch_lease_release(c->lease); /* a standby takes over at its next look, not at expiry */
    ch_lease_destroy(&c->lease);
    ch_relayer_destroy(&c->relayer);
    ch_query_destroy(&c->query);
    ch_feed_destroy(&c->feed);
    ch_db_destroy(&c->db);
    lc_rpc_destroy(&c->rpc);
    lc_service_destroy(&c->svc);
}

/* 0 once the RPC endpoints serve the configured chain, 1 while none answers, 2 (logged) when
 * they serve another chain. */
static int s_check_chain(s_chain_t *c)
{
    uint64_t id = 0;
    lc_jsonrpc_error_t err;
    if (c->chain_checked || lc_ethrpc_chain_id(c->rpc, &id, &err) != 0)
        return c->chain_checked ? 0 : 1;
    if (id != (uint64_t)c->cfg->chain_id) {
        lc_error("wrong_chain", "rpc_chain_id=%llu configured=%lld", (unsigned long long)id,
                 c->cfg->chain_id);
        return 2;
    }
    c->chain_checked = 1;
    return 0;
}

/* One turn: the lease; active, take in what the stores committed, then one relayer round.
 * Returns 0, 2 when the RPC serves the wrong chain, or 3 when the lease was taken over. */
static int s_turn(s_chain_t *c)
{
    int lease = s_lease(c);
    if (lease == 3)
        return 3;
    if (!c->active) { /* standby: look at the lease again in a second */
        zclock_sleep(1000);
        return 0;
    }
    int64_t tick_at = zclock_mono();
    int checked = s_check_chain(c);
    if (checked == 2)
        return 2;
    int fed = ch_feed_run(c->feed);
    int rc = checked == 0 ? ch_relayer_tick(c->relayer) : LC_ERR_UNAVAILABLE;
    const char *why = rc == LC_ERR_UNAVAILABLE || fed == LC_ERR_UNAVAILABLE
                          ? "RPC endpoints or PostgreSQL unavailable"
                          : ch_relayer_not_ready(c->relayer);
    lc_admin_set_ready(c->admin, why == NULL, why ? why : "");
    /* Turns woken by the stores are at least this far apart: small next to the anchor window,
     * so an anchor still closes when it is full or its window ends (within the gap). */
    int64_t window = c->cfg->anchor_window_ms;
    int64_t gap_ms = window / 10 < 50 ? window / 10 : 50;
    /* A store still ahead (a backlog: the relayer was down, or fell behind): at once. */
    int timeout_ms = ch_feed_behind(c->feed) ? (int)gap_ms : (int)c->cfg->poll_ms;
    s_wait(ch_feed_events(c->feed), timeout_ms, tick_at + gap_ms);
    return 0;
}

/* `lcore-chain migrate`: as the owner role; says on stdout what it did. Exit 0 or 1. */
static int s_migrate(const ch_config_t *cfg)
{
    static unsigned wait_ms = 30000; /* PostgreSQL may come up next to a one-shot */
    int rc = ch_db_migrate(cfg->pg_dsn, cfg->db_role, stdout, lc_service_give_up, &wait_ms);
    if (rc < 0)
        fprintf(stderr, "lcore-chain migrate: failed: %s (see the log)\n", lc_strerror(rc));
    return rc < 0 ? 1 : 0;
}

int main(int argc, char **argv)
{
    static ch_config_t cfg;
    const char *cmd = argc > 1 && argv[1][0] != '-' ? argv[1] : NULL;
    int rc = lc_service_start(cmd ? 1 : argc, argv, "lcore-chain",
                              "Chain relayer: anchors the stores' records on an EVM chain.\n"
                              "Commands: (none) run the relayer; deploy; keygen; address;\n"
                              "migrate: apply the relayer's migrations, then grant its role\n"
                              "(LCORE_CHAIN_DB_ROLE) exactly its privileges on them; run with\n"
                              "LCORE_PG_DSN = the owner role's DSN; idempotent.\n"
                              "adopt-chain: the chain changed under the relayer (node reset,\n"
                              "contract redeployed; /readyz says so): record the chain the RPC\n"
                              "serves now and anchor every record again on it (the old chain's\n"
                              "anchors are kept, abandoned); one-shot, run by the operator.",
                              &cfg, ch_config_opts, ch_config_opts_len);
    if (rc >= 0)
        return rc;
    if (cmd && strcmp(cmd, "migrate") == 0)
        return s_migrate(&cfg);
    if (cmd && strcmp(cmd, "keygen") == 0) {
        rc = lc_ethkey_generate(cfg.key_file);
        if (rc < 0) {
            fprintf(stderr, "lcore-chain keygen: %s: %s\n", cfg.key_file, lc_strerror(rc));
            return 1;
        }
        cmd = "address";
    }
    s_chain_t c = {.cfg = &cfg, .signer = lc_ethkey_load(cfg.key_file)};
    /* A command (deploy) counts its RPC calls in a registry of its own: it binds no listener. */
    lc_metrics_t *cmd_metrics = lc_metrics_new();
    int exit_code = c.signer && cmd_metrics ? s_command(cmd, &cfg, c.signer, cmd_metrics) : 2;
    lc_metrics_destroy(&cmd_metrics);
    if (exit_code < 0) {
        exit_code = s_open(&c);
        if (exit_code == 0) {
            char from[LC_ETH_ADDR_HEX_LEN + 1];
            lc_eth_address_format(from, lc_ethtx_signer_address(c.signer));
            lc_info("started",
                    "relayer=%s contract=%s chain_id=%lld confirmations=%lld "
                    "anchor_max=%lld",
                    from, cfg.contract, cfg.chain_id, cfg.confirmations, cfg.anchor_max);
            while (!zsys_interrupted && exit_code == 0)
                exit_code = s_turn(&c);
            if (exit_code == 0)
                lc_info("stopping", "reason=signal");
        }
        exit_code = exit_code < 0 ? 1 : exit_code;
        s_close(&c);
        lc_info("exited", "code=%d", exit_code);
    }
    lc_ethtx_signer_destroy(&c.signer);
    return exit_code;
}
