/* lcore-gateway: HTTP and MQTT ingest. Authenticates signed readings, makes them durable in its
 * write-ahead log (202), and relays them to the crypto workers until the store acknowledges
 * them; registers devices and answers record status through the store.
 * main: config -> log -> resources -> loop -> teardown in reverse. */
#include <czmq.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include "gw_config.h"
#include "gw_dynsec.h"
#include "gw_http.h"
#include "gw_mqtt.h"
#include "gw_open.h"
#include "gw_relay.h"
#include "gw_routes.h"
#include "gw_wal.h"
#include "lc_keyring.h"
#include "lc_log.h"
#include "lc_service.h"
#include "lc_zmq.h"

/* Readiness: the store answers (and can write to PostgreSQL), the log works and, when MQTT is
 * configured, the broker connection is up. The relay learns from the same ping whether overdue
 * readings are lost or only waiting, the device cache whether an unknown id can be asked
 * about. */
static void s_check_ready(lc_query_client_t *store, gw_relay_t *relay, gw_devices_t *devices,
                          gw_wal_t *wal, const gw_mqtt_t *mqtt, lc_admin_t *admin)
{
    Lcore__V1__Query q = LCORE__V1__QUERY__INIT;
    q.body_case = LCORE__V1__QUERY__BODY_PING;
    q.ping = 1;
    int err = 0;
    Lcore__V1__QueryReply *r = lc_query_call(store, &q, &err);
    int store_ok = r && r->status == LCORE__V1__QUERY_REPLY__STATUS__OK;
    gw_relay_set_store_ready(relay, store_ok);
    gw_devices_set_store_ready(devices, store_ok); /* unknown ids answered at once while away */
    if (gw_wal_failed(wal))
        lc_admin_set_ready(admin, 0, "write-ahead log failed");
    else if (store_ok && mqtt && !gw_mqtt_connected(mqtt))
        lc_admin_set_ready(admin, 0, "broker not connected");
    else if (store_ok)
        lc_admin_set_ready(admin, 1, "");
    else
        lc_admin_set_ready(admin, 0, r && r->message ? r->message : "store not answering");
    if (r)
        lcore__v1__query_reply__free_unpacked(r, NULL);
}

/* What the gateway runs on: opened in this order by s_open, closed in reverse by s_close. */
typedef struct {
    const gw_config_t *cfg;
    const uint8_t *token_hash; /* the operator token's SHA-256; NULL: registration refused */
    lc_service_t *svc;
    lc_keyring_t *ring;
    lc_query_client_t *store; /* the stores' query links */
    lc_query_client_t *chain; /* the relayer's: record status, the anchor part */
    gw_open_t *open;          /* the crypto workers': opening a record for a reader */
    gw_devices_t *devices;
    gw_tokens_t *tokens;
    gw_seq_t *seq; /* (device_id, seq) conflicts: the readings in the log */
    gw_relay_t *relay;
    gw_wal_t *wal;
    gw_ingest_t *ingest;
    gw_dynsec_t *dynsec; /* devices' broker identities (NULL without MQTT) */
    gw_http_t *http;
    gw_mqtt_t *mqtt; /* NULL: no MQTT ingest configured */
} s_gateway_t;

/* Config: the table, then the operator token, hashed and wiped before anything else runs, then
 * what the table cannot check alone. -1 to go on, else the exit code. */
static int s_config(int argc, char **argv, gw_config_t *cfg, uint8_t token_hash[32], int *token_set)
{
    if (argc == 2 && strcmp(argv[1], "routes") == 0) { /* docs/openapi.yaml's test */
        gw_routes_print(stdout);
        return 0;
    }
    int rc = lc_service_start(argc, argv, "lcore-gateway",
                              "HTTP ingest: device signatures, registration, record status.", cfg,
                              gw_config_opts, gw_config_opts_len);
    if (rc >= 0)
        return rc;
    char err[256];
    if (gw_config_admin_token(cfg, token_hash, token_set, err, sizeof err) != 0 ||
        gw_config_check(cfg, err, sizeof err) != 0) {
        fprintf(stderr, "lcore-gateway: %s\n", err);
        return 2;
    }
    return -1;
}

/* A reading left the relay's table (stored, a conflict, or dead-lettered): the conflict check
 * forgets it, and its device's next_seq moves past it, so that a reading of a seq up to it,
 * arriving later, is checked with the store. Raised here rather than when the reading is logged:
 * readings of one device overtaking each other in flight are then not checked (the table of
 * logged readings covers them). */
static void s_dropped(void *arg, const uint8_t record_id[32], const uint8_t *data, size_t len)
{
    s_gateway_t *gw = arg;
    gw_seq_forget(gw->seq, record_id);
    char device_id[LC_DEVICE_ID_MAX + 1];
    uint64_t seq;
    if (gw_seq_reading_of(data, len, device_id, &seq) == 0)
        gw_devices_note_seq(gw->devices, device_id, seq);
}

/* Replay: a reading from the log goes to the relay, and the conflict check knows it. */
static void s_replay_reading(void *arg, uint64_t segment, const uint8_t record_id[32],
                             const uint8_t *data, size_t len)
{
    s_gateway_t *gw = arg;
    gw_seq_note_logged(gw->seq, record_id, data, len);
    gw_relay_replay_reading(gw->relay, segment, record_id, data, len);
}

/* The store changed a device or deleted a token: the caches forget it (pushed, so revocation
 * does not wait for a cache entry to expire). */
static void s_changed(void *arg, const char *device_id, const char *token_id)
{
    s_gateway_t *gw = arg;
    if (device_id && device_id[0]) {
        gw_devices_forget(gw->devices, device_id);
        lc_info("device_changed", "device_id=%s", device_id);
    }
    if (token_id && token_id[0])
        gw_tokens_forget(gw->tokens, token_id);
}

static void s_replay_ack(void *arg, const uint8_t record_id[32])
{
    gw_relay_replay_ack(((s_gateway_t *)arg)->relay, record_id);
}

/* The log and its relay. The log first: what it holds from a previous run goes out before new
 * readings. */
static int s_open_log(s_gateway_t *gw)
{
    const gw_config_t *cfg = gw->cfg;
    gw_relay_opts_t ropts = {.readings_bind = cfg->readings_bind,
                             .events_connect = cfg->events_connect,
                             .gateway_id = cfg->gateway_id,
                             .store = gw->store,
                             .curve = lc_service_curve(gw->svc),
                             .ring = gw->ring,
                             .max_reading_bytes = (size_t)cfg->max_reading_bytes,
                             .hwm = (int)cfg->readings_hwm,
                             .window = (unsigned)cfg->inflight,
                             .redeliver_ms = (unsigned)cfg->redeliver_ms,
                             .redeliver_max_ms = (unsigned)cfg->redeliver_max_ms,
                             .max_attempts = (unsigned)cfg->max_attempts,
                             .drain_ms = (unsigned)cfg->drain_ms,
                             .heartbeat_ms = (unsigned)cfg->heartbeat_ms,
                             .on_drop = s_dropped,
                             .on_drop_arg = gw,
                             .on_change = s_changed,
                             .on_change_arg = gw,
                             .metrics = lc_service_metrics(gw->svc)};
    gw_wal_opts_t wopts = {.dir = cfg->wal_dir,
                           .ring = gw->ring,
                           .max_bytes = (uint64_t)cfg->wal_max_bytes,
                           .max_entries = (uint64_t)cfg->wal_max_readings,
                           .segment_bytes = (uint64_t)cfg->wal_segment_bytes,
                           .metrics = lc_service_metrics(gw->svc),
                           .prefill_bytes = GW_WAL_PREFILL_BYTES};
    if (!(gw->seq = gw_seq_new(gw->store, (size_t)cfg->wal_max_readings, wopts.metrics)) ||
        !(gw->relay = gw_relay_new(&ropts)) ||
        !(gw->wal = gw_wal_open(&wopts, s_replay_reading, s_replay_ack, gw)))
        return -1;
    return gw_relay_start(gw->relay, gw->wal) < 0 ? -1 : 0;
}

/* The devices' broker identities, when there is a broker (LCORE_GATEWAY_MQTT_URL) and
 * provisioning is on. The gateway's broker user defaults to lcore-gw-<gateway_id>; its control
 * connection has a client id of its own, apart from the ingest client's. 0, or -1 (logged). */
static int s_open_dynsec(s_gateway_t *gw)
{
    const gw_config_t *cfg = gw->cfg;
    if (!cfg->mqtt_url[0] || !cfg->mqtt_provision) {
        gw_dynsec_metrics_off(lc_service_metrics(gw->svc));
        return 0;
    }
    if (!cfg->mqtt_password_file[0]) {
        lc_error("config_invalid", "reason=\"LCORE_GATEWAY_MQTT_PASSWORD_FILE must be set with "
                                   "LCORE_GATEWAY_MQTT_URL\"");
        return -1;
    }
    char username[128], client_id[160];
    if (cfg->mqtt_username[0])
        snprintf(username, sizeof username, "%s", cfg->mqtt_username);
    else
        snprintf(username, sizeof username, "lcore-gw-%s", cfg->gateway_id);
    snprintf(client_id, sizeof client_id, "%s-dynsec", username);
    gw_dynsec_opts_t o = {.url = cfg->mqtt_url,
                          .ca_file = cfg->mqtt_ca_file,
                          .username = username,
                          .password_file = cfg->mqtt_password_file,
                          .client_id = client_id,
                          .timeout_ms = (int)cfg->mqtt_provision_timeout_ms,
                          .metrics = lc_service_metrics(gw->svc)};
    return (gw->dynsec = gw_dynsec_new(&o)) ? 0 : -1;
}

/* The accept path and what feeds it: the HTTP listeners and, when configured, the broker. */
static int s_open_ingest(s_gateway_t *gw)
{
    const gw_config_t *cfg = gw->cfg;
    lc_metrics_t *metrics = lc_service_metrics(gw->svc);
    gw_ingest_opts_t iopts = {.gateway_id = cfg->gateway_id,
                              .max_reading_bytes = (size_t)cfg->max_reading_bytes,
                              .seq = gw->seq};
    if (!(gw->ingest = gw_ingest_new(&iopts, gw->devices, gw->wal, metrics)))
        return -1;
    gw_http_deps_t deps = {.cfg = cfg,
                           .tokens = gw->tokens,
                           .ingest = gw->ingest,
                           .wal = gw->wal,
                           .devices = gw->devices,
                           .store = gw->store,
                           .chain = gw->chain,
                           .seq = gw->seq,
                           .open = gw->open,
                           .dynsec = gw->dynsec,
                           .admin = lc_service_admin(gw->svc),
                           .metrics = metrics};
    if (!(gw->http = gw_http_new(&deps)))
        return -1;
    gw_mqtt_deps_t mdeps = {.cfg = cfg, .ingest = gw->ingest, .wal = gw->wal, .metrics = metrics};
    if (!cfg->mqtt_url[0])
        gw_mqtt_export_off(metrics);
    else if (!(gw->mqtt = gw_mqtt_new(&mdeps)))
        return -1;
    return 0;
}

/* Resources: the service's own (metrics, admin listener, CURVE), the key ring, the query links
 * (stores, relayer) and the open link (workers), the devices, the log and relay, then the accept
 * path and its listeners. 0, or -1 (logged). */
static int s_open(s_gateway_t *gw)
{
    const gw_config_t *cfg = gw->cfg;
    int err = 0;
    if (!(gw->svc =
              lc_service_new("gateway", cfg->admin_bind, &cfg->curve, "connecting to the store")))
        return -1;
    lc_metrics_t *metrics = lc_service_metrics(gw->svc);
    if (!(gw->ring = lc_keyring_load(cfg->keyring, LC_KEYRING_GATEWAY, &err))) {
        lc_error("keyring_load_failed", "path=%s err=\"%s\"", cfg->keyring, lc_strerror(err));
        return -1;
    }
    lc_curve_t *curve = lc_service_curve(gw->svc);
    if (!(gw->store = lc_query_client_new(cfg->queries_connect, LC_ROLE_STORE,
                                          (int)cfg->query_timeout_ms, curve)) ||
        /* A record lookup must not hang on a relayer that is down: it answers "stored". */
        !(gw->chain = lc_query_client_new(cfg->chain_queries_connect, LC_ROLE_CHAIN,
                                          (int)(cfg->query_timeout_ms + 3) / 4, curve)))
        return -1;
    /* The largest answer is the largest reading this gateway takes in. */
    gw_open_opts_t oopts = {.bind = cfg->open_bind,
                            .curve = curve,
                            .timeout_ms = (int)cfg->open_timeout_ms,
                            .max_reply_bytes =
                                (size_t)cfg->max_reading_bytes + LC_ZMQ_ENVELOPE_OVERHEAD,
                            .metrics = metrics};
    if (!(gw->open = gw_open_new(&oopts)))
        return -1;
    /* The devices before the relay, which tells them what was stored (s_dropped). */
    gw_devices_opts_t dopts = {.store = gw->store,
                               .ttl_ms = (int)cfg->device_cache_ttl_ms,
                               .rate = (double)cfg->device_rate,
                               .burst = (double)cfg->device_burst,
                               .lookups_per_ip = (double)cfg->unknown_lookups_per_ip,
                               .lookups_burst = (double)cfg->unknown_lookups_burst,
                               .metrics = metrics};
    gw_tokens_opts_t topts = {.admin_hash = gw->token_hash,
                              .store = gw->store,
                              .rate = (double)cfg->token_rate,
                              .burst = (double)cfg->token_burst,
                              .metrics = metrics};
    if (!(gw->devices = gw_devices_new(&dopts)) || !(gw->tokens = gw_tokens_new(&topts)) ||
        s_open_log(gw) < 0)
        return -1;
    if (s_open_dynsec(gw) < 0 || s_open_ingest(gw) < 0)
        return -1;
    lc_info("started", "gateway_id=%s registration=%s broker_provisioning=%s wal_dir=%s mqtt=%s",
            cfg->gateway_id, gw->token_hash ? "enabled" : "disabled",
            gw->dynsec ? "enabled" : "disabled", cfg->wal_dir, gw->mqtt ? "on" : "off");
    return 0;
}

/* Loop: only watches readiness; requests run on the HTTP threads. SIGTERM/SIGINT set
 * zsys_interrupted (czmq's handler). Returns the exit code: a failed log cannot be trusted
 * with more readings, so 1 makes the supervisor restart the gateway, which replays the log. */
static int s_run(s_gateway_t *gw)
{
    lc_admin_t *admin = lc_service_admin(gw->svc);
    while (!zsys_interrupted && !gw_wal_failed(gw->wal)) {
        s_check_ready(gw->store, gw->relay, gw->devices, gw->wal, gw->mqtt, admin);
        gw_open_tick(gw->open);
        for (int i = 0; i < 10 && !zsys_interrupted; i++)
            zclock_sleep(100);
    }
    int exit_code = gw_wal_failed(gw->wal) ? 1 : 0;
    lc_info("stopping", "reason=%s", exit_code ? "log_failed" : "signal");
    lc_admin_set_ready(admin, 0, "shutting down");
    return exit_code;
}

/* Teardown, in reverse; what s_open did not get to is NULL. */
static void s_close(s_gateway_t *gw)
{
    gw_mqtt_destroy(&gw->mqtt); /* acks what becomes durable (the relay still runs), DISCONNECT */
    gw_http_destroy(&gw->http); /* answers requests waiting for the log (the relay still runs) */
    gw_dynsec_destroy(&gw->dynsec);
    gw_ingest_destroy(&gw->ingest);
    gw_relay_destroy(&gw->relay); /* drains acks, logs them (and tells the devices) */
    gw_tokens_destroy(&gw->tokens);
    gw_devices_destroy(&gw->devices);
    gw_wal_destroy(&gw->wal);
    gw_seq_destroy(&gw->seq);
    gw_open_destroy(&gw->open);
    lc_query_client_destroy(&gw->chain);
    lc_query_client_destroy(&gw->store);
    lc_keyring_destroy(&gw->ring);
    lc_service_destroy(&gw->svc);
}

int main(int argc, char **argv)
{
    static gw_config_t cfg;
    uint8_t token_hash[32];
    int token_set = 0;
    int exit_code = s_config(argc, argv, &cfg, token_hash, &token_set);
    if (exit_code < 0) {
        s_gateway_t gw = {.cfg = &cfg, .token_hash = token_set ? token_hash : NULL};
        exit_code = s_open(&gw) == 0 ? s_run(&gw) : 1;
        s_close(&gw);
        if (exit_code)
            lc_error("exit_failure", "see the lines above");
        lc_info("exited", "code=%d", exit_code);
    }
    sodium_memzero(token_hash, sizeof token_hash);
    return exit_code;
}
