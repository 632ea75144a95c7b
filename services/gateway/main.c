/* lcore-gateway: HTTP ingest. Authenticates signed readings, makes them durable in its
 * write-ahead log (202), and relays them to the crypto workers until the store acknowledges
 * them; registers devices and answers record status through the store.
 * main: config -> log -> resources -> loop -> teardown in reverse. */
#include <czmq.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "gw_config.h"
#include "gw_http.h"
#include "gw_relay.h"
#include "gw_wal.h"
#include "lc_log.h"
#include "lc_service.h"

/* Readiness: the store answers (and can write to PostgreSQL) and the log works. The relay
 * learns from the same ping whether overdue readings are lost or only waiting. */
static void s_check_ready(lc_query_client_t *store, gw_relay_t *relay, gw_wal_t *wal,
                          lc_admin_t *admin)
{
    Lcore__V1__Query q = LCORE__V1__QUERY__INIT;
    q.body_case = LCORE__V1__QUERY__BODY_PING;
    q.ping = 1;
    int err = 0;
    Lcore__V1__QueryReply *r = lc_query_call(store, &q, &err);
    int store_ok = r && r->status == LCORE__V1__QUERY_REPLY__STATUS__OK;
    gw_relay_set_store_ready(relay, store_ok);
    if (gw_wal_failed(wal))
        lc_admin_set_ready(admin, 0, "write-ahead log failed");
    else if (store_ok)
        lc_admin_set_ready(admin, 1, "");
    else
        lc_admin_set_ready(admin, 0, r && r->message ? r->message : "store not answering");
    if (r)
        lcore__v1__query_reply__free_unpacked(r, NULL);
}

int main(int argc, char **argv)
{
    static gw_config_t cfg;
    int rc = lc_service_start(argc, argv, "lcore-gateway",
                              "HTTP ingest: device signatures, registration, record status.", &cfg,
                              gw_config_opts, gw_config_opts_len);
    /* The raw operator token is hashed and wiped before anything else runs. */
    uint8_t token_hash[32];
    int token_set = 0;
    char token_err[256];
    if (rc < 0 &&
        gw_config_admin_token(&cfg, token_hash, &token_set, token_err, sizeof token_err) != 0) {
        fprintf(stderr, "lcore-gateway: %s\n", token_err);
        return 2;
    }
    if (rc >= 0)
        return rc;
    if (!cfg.tls_cert[0] != !cfg.tls_key[0]) {
        fprintf(stderr,
                "lcore-gateway: invalid configuration: LCORE_GATEWAY_TLS_CERT and "
                "LCORE_GATEWAY_TLS_KEY are set together or not at all (only %s is set)\n",
                cfg.tls_cert[0] ? "LCORE_GATEWAY_TLS_CERT" : "LCORE_GATEWAY_TLS_KEY");
        return 2;
    }
    if (!cfg.gateway_id[0]) {
        char host[48] = "gateway";
        gethostname(host, sizeof host);
        host[sizeof host - 1] = '\0';
        snprintf(cfg.gateway_id, sizeof cfg.gateway_id, "%s-%s", host,
                 strrchr(cfg.http_bind, ':') + 1); /* LC_CFG_A: always host:port */
    }

    int exit_code = 1;
    lc_metrics_t *metrics = lc_metrics_new();
    lc_admin_t *admin = NULL;
    lc_keyring_t *ring = NULL;
    lc_curve_t *curve = NULL;
    lc_query_client_t *store = NULL, *chain = NULL;
    gw_relay_t *relay = NULL;
    gw_wal_t *wal = NULL;
    gw_devices_t *devices = NULL;
    gw_ingest_t *ingest = NULL;
    gw_http_t *http = NULL;
    int err = 0;
    if (!metrics || !(admin = lc_admin_new(cfg.admin_bind, metrics, "gateway")))
        goto out;
    lc_admin_set_ready(admin, 0, "connecting to the store");
    if (!(ring = lc_keyring_load(cfg.keyring, LC_KEYRING_GATEWAY, &err))) {
        lc_error("keyring_load_failed", "path=%s err=\"%s\"", cfg.keyring, lc_strerror(err));
        goto out;
    }
    if (!(curve = lc_curve_new(&cfg.curve, "gateway", metrics)) ||
        !(store = lc_query_client_new(cfg.queries_connect, LC_ROLE_STORE, (int)cfg.query_timeout_ms,
                                      curve)) ||
        !(chain = lc_query_client_new(cfg.chain_queries_connect, LC_ROLE_CHAIN,
                                      (int)cfg.query_timeout_ms, curve)))
        goto out;
    /* The log first: what it holds from a previous run goes out before new readings. */
    gw_relay_opts_t ropts = {.readings_bind = cfg.readings_bind,
                             .events_connect = cfg.events_connect,
                             .gateway_id = cfg.gateway_id,
                             .store = store,
                             .curve = curve,
                             .hwm = (int)cfg.readings_hwm,
                             .window = (unsigned)cfg.inflight,
                             .redeliver_ms = (unsigned)cfg.redeliver_ms,
                             .redeliver_max_ms = (unsigned)cfg.redeliver_max_ms,
                             .max_attempts = (unsigned)cfg.max_attempts,
                             .drain_ms = (unsigned)cfg.drain_ms,
                             .heartbeat_ms = (unsigned)cfg.heartbeat_ms,
                             .metrics = metrics};
    gw_wal_opts_t wopts = {.dir = cfg.wal_dir,
                           .ring = ring,
                           .max_bytes = (uint64_t)cfg.wal_max_bytes,
                           .max_entries = (uint64_t)cfg.wal_max_readings,
                           .segment_bytes = (uint64_t)cfg.wal_segment_bytes,
                           .metrics = metrics,
                           .prefill_bytes = GW_WAL_PREFILL_BYTES};
    if (!(relay = gw_relay_new(&ropts)) ||
        !(wal = gw_wal_open(&wopts, gw_relay_replay_reading, gw_relay_replay_ack, relay)) ||
        gw_relay_start(relay, wal) < 0)
        goto out;
    if (!(devices = gw_devices_new(store, (int)cfg.device_cache_ttl_ms, (double)cfg.device_rate,
                                   (double)cfg.device_burst)))
        goto out;
    gw_ingest_opts_t iopts = {.gateway_id = cfg.gateway_id,
                              .max_reading_bytes = (size_t)cfg.max_reading_bytes};
    if (!(ingest = gw_ingest_new(&iopts, devices, wal, metrics)))
        goto out;
    gw_http_deps_t deps = {.cfg = &cfg,
                           .admin_token_hash = token_set ? token_hash : NULL,
                           .ingest = ingest,
                           .wal = wal,
                           .devices = devices,
                           .store = store,
                           .chain = chain,
                           .admin = admin,
                           .metrics = metrics};
    if (!(http = gw_http_new(&deps)))
        goto out;
    lc_info("started", "gateway_id=%s registration=%s wal_dir=%s", cfg.gateway_id,
            token_set ? "enabled" : "disabled", cfg.wal_dir);

    /* The loop only watches readiness; requests run on the HTTP threads. SIGTERM/SIGINT set
     * zsys_interrupted (czmq's handler). */
    while (!zsys_interrupted && !gw_wal_failed(wal)) {
        s_check_ready(store, relay, wal, admin);
        for (int i = 0; i < 10 && !zsys_interrupted; i++)
            zclock_sleep(100);
    }
    /* A failed log cannot be trusted with more readings: exit non-zero so the supervisor
     * restarts the gateway, which replays the log. */
    exit_code = gw_wal_failed(wal) ? 1 : 0;
    lc_info("stopping", "reason=%s", exit_code ? "log_failed" : "signal");
    lc_admin_set_ready(admin, 0, "shutting down");
out:
    gw_http_destroy(&http); /* answers requests waiting for the log (the relay still runs) */
    gw_ingest_destroy(&ingest);
    gw_devices_destroy(&devices);
    gw_relay_destroy(&relay); /* drains acks, logs them */
    gw_wal_destroy(&wal);
    lc_query_client_destroy(&chain);
    lc_query_client_destroy(&store);
    lc_curve_destroy(&curve);
    lc_keyring_destroy(&ring);
    lc_admin_destroy(&admin);
    lc_metrics_destroy(&metrics);
    sodium_memzero(token_hash, sizeof token_hash);
    if (exit_code)
        lc_error("exit_failure", "see the lines above");
    lc_info("exited", "code=%d", exit_code);
    return exit_code;
}
