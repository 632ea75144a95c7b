/* gw_config.c: the gateway's configuration table, and the operator token's hash. */
#include "gw_config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "gw_mqtt.h"
#include "lc_token.h"

#define T gw_config_t
const lc_cfg_opt_t gw_config_opts[] = {
    LC_CFG_A("LCORE_GATEWAY_HTTP_BIND", T, http_bind, "0.0.0.0:8080",
             "device listener, IPv4:port or [IPv6]:port: readings and record reads"),
    LC_CFG_ADMIN_BIND("LCORE_GATEWAY_ADMIN_BIND", T, "9101", ", operator API"),
    LC_CFG_S("LCORE_GATEWAY_TLS_CERT", T, tls_cert, "",
             "PEM certificate (chain) file: the device listener speaks TLS (with "
             "LCORE_GATEWAY_TLS_KEY)"),
    LC_CFG_S("LCORE_GATEWAY_TLS_KEY", T, tls_key, "",
             "PEM private key file of LCORE_GATEWAY_TLS_CERT (read at start, then wiped)"),
    LC_CFG_I("LCORE_GATEWAY_THREADS", T, threads, "2", 1, 64,
             "HTTP worker threads (signature checks run on them)"),
    LC_CFG_I("LCORE_GATEWAY_QUERY_THREADS", T, query_threads, "4", 1, 64,
             "threads that run the device listener's reader routes (they wait for the store, the "
             "relayer or a crypto worker; the HTTP worker threads stay free for readings)"),
    LC_CFG_S("LCORE_GATEWAY_ID", T, gateway_id, "",
             "this gateway's id for ack routing (default: hostname-port)"),
    LC_CFG_S("LCORE_ADMIN_TOKEN_SHA256_FILE", T, admin_token_sha256_file, "",
             "file holding the hex SHA-256 of the operator bearer token for POST /v1/devices "
             "(`lcore-cli token-hash`); the gateway never sees the token itself"),
    LC_CFG_SECRET("LCORE_ADMIN_TOKEN", T, admin_token, "",
                  "or: the operator token itself (>= 32 characters), hashed and wiped at start "
                  "(none of the three: registration refused)"),
    LC_CFG_S("LCORE_ADMIN_TOKEN_FILE", T, admin_token_file, "",
             "or: file holding the operator token (first line, >= 32 characters)"),
    LC_CFG_LINK_BIND("LCORE_GATEWAY_READINGS_BIND", T, readings_bind, LC_LINK_READINGS,
                     "readings PUSH socket, bound; crypto workers connect"),
    LC_CFG_LINK_CONNECT("LCORE_GATEWAY_EVENTS_CONNECT", T, events_connect, LC_LINK_EVENTS,
                        "store events PUB endpoint(s) to subscribe to for acks"),
    LC_CFG_LINK_CONNECT("LCORE_GATEWAY_QUERIES_CONNECT", T, queries_connect, LC_LINK_QUERIES,
                        "store query ROUTER endpoint(s), comma-separated"),
    LC_CFG_LINK_CONNECT("LCORE_GATEWAY_CHAIN_QUERIES_CONNECT", T, chain_queries_connect,
                        LC_LINK_CHAIN_QUERIES,
                        "the relayer's query ROUTER endpoint: a record's anchor and proof"),
    LC_CFG_LINK_BIND("LCORE_GATEWAY_OPEN_BIND", T, open_bind, LC_LINK_OPEN,
                     "open DEALER socket, bound: crypto workers connect and open records for "
                     "POST /v1/records/{id}/open (the gateway holds no sealing key)"),
    LC_CFG_I("LCORE_GATEWAY_OPEN_TIMEOUT_MS", T, open_timeout_ms, "5000", 100, 60000,
             "how long an open waits for a crypto worker's answer (none: 503 + Retry-After)"),
    LC_CFG_I("LCORE_GATEWAY_MAX_READING_BYTES", T, max_reading_bytes, "65536", 256, 1048576,
             "largest accepted reading (JWS bytes); larger ones get 413"),
    LC_CFG_I("LCORE_GATEWAY_MAX_REQUEST_BATCH_BYTES", T, max_request_batch_bytes, "16777216", 4096,
             134217728,
             "largest accepted request batch body (POST /v1/data/batch); larger ones get 413"),
    LC_CFG_I("LCORE_GATEWAY_MAX_CONNECTIONS", T, max_connections, "4096", 16, 65536,
             "device listener connections at most (more are refused at accept)"),
    LC_CFG_I("LCORE_GATEWAY_MAX_CONNECTIONS_PER_IP", T, max_connections_per_ip, "128", 0, 65536,
             "device listener connections at most from one client address (0: no limit; raise "
             "it behind a load balancer that does not pass the client address)"),
    LC_CFG_I("LCORE_GATEWAY_CONNECTION_TIMEOUT_S", T, connection_timeout_s, "30", 1, 3600,
             "a connection that sends nothing for this long is closed"),
    LC_CFG_I("LCORE_GATEWAY_BODY_BUDGET_BYTES", T, body_budget_bytes, "67108864", 1048576,
             17179869184LL,
             "request bodies held across all connections at most (request batches: 3/4 of it); "
             "past it: 503 + Retry-After"),
    LC_CFG_I("LCORE_GATEWAY_UNKNOWN_LOOKUPS_PER_IP", T, unknown_lookups_per_ip, "100", 0, 1000000,
             "store lookups per second of device ids this gateway does not know, per client "
             "address (0: no limit); over it: 429"),
    LC_CFG_I("LCORE_GATEWAY_UNKNOWN_LOOKUPS_BURST", T, unknown_lookups_burst, "1000", 1, 10000000,
             "burst allowance for LCORE_GATEWAY_UNKNOWN_LOOKUPS_PER_IP"),
    LC_CFG_I("LCORE_GATEWAY_QUERY_TIMEOUT_MS", T, query_timeout_ms, "2000", 10, 60000,
             "how long to wait for the store to answer a query (the relayer: a quarter of it; "
             "without its answer a record lookup says stored)"),
    LC_CFG_I("LCORE_GATEWAY_DEVICE_CACHE_TTL_MS", T, device_cache_ttl_ms, "30000", 0, 3600000,
             "how long a device's key (or its absence) is cached"),
    LC_CFG_I("LCORE_GATEWAY_DEVICE_RATE", T, device_rate, "1000", 0, 1000000,
             "readings per second allowed per device (0: unlimited); over it: 429"),
    LC_CFG_I("LCORE_GATEWAY_DEVICE_BURST", T, device_burst, "2000", 1, 10000000,
             "burst allowance per device for the rate limit"),
    LC_CFG_I("LCORE_GATEWAY_TOKEN_RATE", T, token_rate, "50", 0, 1000000,
             "reader and operator API requests per second allowed per bearer token (0: "
             "unlimited); over it: 429, so that no reader can crowd out ingest"),
    LC_CFG_I("LCORE_GATEWAY_TOKEN_BURST", T, token_burst, "100", 1, 10000000,
             "burst allowance per token for its rate limit"),
    LC_CFG_I("LCORE_GATEWAY_READINGS_HWM", T, readings_hwm, "1000", 10, 1000000,
             "messages (a batch of readings each) queued per connected worker before the relay "
             "waits for room; LCORE_GATEWAY_INFLIGHT bounds the readings"),
    LC_CFG_S("LCORE_GATEWAY_KEYRING", T, keyring, "lcore-gateway.keyring",
             "gateway key ring (mode 0600, log keys only): seals the write-ahead log"),
    LC_CFG_S("LCORE_GATEWAY_WAL_DIR", T, wal_dir, "lcore-wal",
             "write-ahead log directory, one per gateway (created 0700, locked)"),
    LC_CFG_I("LCORE_GATEWAY_WAL_MAX_BYTES", T, wal_max_bytes, "268435456", 1048576, 1099511627776LL,
             "log size past which readings get 503 + Retry-After"),
    LC_CFG_I("LCORE_GATEWAY_WAL_MAX_READINGS", T, wal_max_readings, "500000", 10, 100000000,
             "unacknowledged readings past which readings get 503 + Retry-After"),
    LC_CFG_I("LCORE_GATEWAY_WAL_SEGMENT_BYTES", T, wal_segment_bytes, "67108864", 65536,
             4294967296LL, "log segment size (a segment is deleted once all of it is acked)"),
    LC_CFG_I("LCORE_GATEWAY_INFLIGHT", T, inflight, "10000", 1, 10000000,
             "readings sent to workers and awaiting the store's ack, at most"),
    LC_CFG_I("LCORE_GATEWAY_REDELIVER_MS", T, redeliver_ms, "5000", 100, 3600000,
             "ack timeout before a reading is sent again (doubles per attempt)"),
    LC_CFG_I("LCORE_GATEWAY_REDELIVER_MAX_MS", T, redeliver_max_ms, "60000", 100, 86400000,
             "longest ack timeout between redeliveries"),
    LC_CFG_I("LCORE_GATEWAY_MAX_ATTEMPTS", T, max_attempts, "5", 1, 1000,
             "deliveries before a reading goes to the dead-letter table"),
    LC_CFG_I("LCORE_GATEWAY_DRAIN_MS", T, drain_ms, "2000", 0, 600000,
             "on SIGTERM, how long to wait for acks of readings in flight"),
    LC_CFG_I("LCORE_GATEWAY_HEARTBEAT_MS", T, heartbeat_ms, "1000", 0, 3600000,
             "a heartbeat through workers to the store this often (0: none)"),
    LC_CFG_URLS("LCORE_GATEWAY_MQTT_URL", T, mqtt_url, "",
                "MQTT broker, mqtt://host:port or mqtts://host:port (TLS, with "
                "LCORE_GATEWAY_MQTT_CA_FILE): readings from devices over MQTT (empty: no MQTT "
                "ingest)"),
    LC_CFG_S("LCORE_GATEWAY_MQTT_USERNAME", T, mqtt_username, "",
             "this gateway's broker user (default lcore-gw-<gateway id>)"),
    LC_CFG_S("LCORE_GATEWAY_MQTT_PASSWORD_FILE", T, mqtt_password_file, "",
             "file holding the broker user's password (first line; required with "
             "LCORE_GATEWAY_MQTT_URL)"),
    LC_CFG_S("LCORE_GATEWAY_MQTT_CA_FILE", T, mqtt_ca_file, "",
             "PEM CA file the broker's certificate is verified against (mqtts://; its name "
             "must be the URL's host)"),
    LC_CFG_I("LCORE_GATEWAY_MQTT_INFLIGHT", T, mqtt_inflight, "1000", 1, 65535,
             "MQTT messages held unacknowledged at once (our Receive Maximum): the group commit "
             "groups them"),
    LC_CFG_S("LCORE_GATEWAY_MQTT_CLIENT_ID", T, mqtt_client_id, "",
             "MQTT client id, the persistent session's name: keep it across restarts (default "
             "lcore-gw-<gateway id>)"),
    LC_CURVE_CFG_ROWS(T),
    /* MQTT provisioning (gw_dynsec) */
    LC_CFG_B("LCORE_GATEWAY_MQTT_PROVISION", T, mqtt_provision, "1",
             "with LCORE_GATEWAY_MQTT_URL: registering a device provisions its broker credentials "
             "and ACL through Mosquitto's dynamic-security plugin (the password shown once in "
             "the answer), revoking disables them, reactivating enables them (0: the broker's "
             "accounts are managed elsewhere)"),
    LC_CFG_I("LCORE_GATEWAY_MQTT_PROVISION_TIMEOUT_MS", T, mqtt_provision_timeout_ms, "3000", 100,
             60000,
             "how long a registration, revoke or reactivate waits for the broker's "
             "dynamic-security plugin, connecting included; then the answer carries a warning"),
#ifdef LCORE_FAULT_HOOKS
    LC_CFG_I("LCORE_GATEWAY_HOLD_LOGGED_MS", T, hold_logged_ms, "0", 0, 60000,
             "fault-injection builds only: an HTTP reading waits this long on its worker thread "
             "after the log took it, before it waits for the log to be durable"),
#endif
};
#undef T
const size_t gw_config_opts_len = sizeof gw_config_opts / sizeof gw_config_opts[0];

/* Overwrites the variable's value where the process environment holds it (so it does not stay
 * in memory, nor in /proc/<pid>/environ's view of the original block), then drops it. */
static void s_wipe_env(const char *name)
{
    char *v = getenv(name);
    if (v)
        sodium_memzero(v, strlen(v));
    unsetenv(name);
}

int gw_config_admin_token(gw_config_t *cfg, uint8_t hash[LC_TOKEN_HASH_LEN], int *set, char *err,
                          size_t err_len)
{
    int rc = -1;
    char text[LC_TOKEN_HASH_HEX_LEN + 64];
    int sources = (cfg->admin_token[0] != '\0') + (cfg->admin_token_file[0] != '\0') +
                  (cfg->admin_token_sha256_file[0] != '\0');
    *set = 0;
    s_wipe_env("LCORE_ADMIN_TOKEN");
    if (sources > 1) {
        snprintf(err, err_len,
                 "set only one of LCORE_ADMIN_TOKEN_SHA256_FILE, LCORE_ADMIN_TOKEN, "
                 "LCORE_ADMIN_TOKEN_FILE");
        goto out;
    }
    if (cfg->admin_token_sha256_file[0]) {
        int r = lc_token_read_file(text, sizeof text, cfg->admin_token_sha256_file);
        if (r != 0 || lc_token_hash_parse(hash, text, strlen(text)) != 0) {
            snprintf(err, err_len, "LCORE_ADMIN_TOKEN_SHA256_FILE %s: %s",
                     cfg->admin_token_sha256_file,
                     r != 0 ? lc_strerror(r) : "want 64 hex digits (lcore-cli token-hash)");
            goto out;
        }
    } else if (cfg->admin_token_file[0] &&
               lc_token_read_file(cfg->admin_token, sizeof cfg->admin_token,
                                  cfg->admin_token_file) != 0) {
        snprintf(err, err_len, "cannot read LCORE_ADMIN_TOKEN_FILE %s", cfg->admin_token_file);
        goto out;
    }
    if (cfg->admin_token[0] &&
        lc_token_hash(hash, cfg->admin_token, strlen(cfg->admin_token)) != 0) {
        snprintf(err, err_len,
                 "the operator token must be at least %d characters (128 bits) "
                 "without spaces: make one with `openssl rand -hex 32`",
                 LC_TOKEN_MIN_LEN);
        goto out;
    }
    *set = sources == 1;
    rc = 0;
out:
    sodium_memzero(cfg->admin_token, sizeof cfg->admin_token);
    sodium_memzero(text, sizeof text);
    if (rc != 0)
        sodium_memzero(hash, LC_TOKEN_HASH_LEN);
    return rc;
}

/* The broker settings, once gateway_id is known (the defaults are made from it). */
static int s_check_mqtt(gw_config_t *cfg, char *err, size_t err_len)
{
    char host[256], port[16];
    int tls = 0;
    if (!cfg->mqtt_url[0])
        return 0;
    if (gw_mqtt_url_parse(cfg->mqtt_url, host, sizeof host, port, sizeof port, &tls) != 0) {
        snprintf(err, err_len,
                 "invalid configuration: LCORE_GATEWAY_MQTT_URL must be mqtt://host:port or "
                 "mqtts://host:port (credentials go in LCORE_GATEWAY_MQTT_USERNAME and "
                 "_PASSWORD_FILE)");
        return -1;
    }
    if (tls && !cfg->mqtt_ca_file[0]) {
        snprintf(err, err_len,
                 "invalid configuration: mqtts:// needs LCORE_GATEWAY_MQTT_CA_FILE (the PEM CA "
                 "the broker's certificate is checked against)");
        return -1;
    }
    if (!cfg->mqtt_password_file[0]) {
        snprintf(err, err_len,
                 "invalid configuration: LCORE_GATEWAY_MQTT_URL needs "
                 "LCORE_GATEWAY_MQTT_PASSWORD_FILE (the broker allows no anonymous access)");
        return -1;
    }
    if (!cfg->mqtt_username[0])
        snprintf(cfg->mqtt_username, sizeof cfg->mqtt_username, "lcore-gw-%s", cfg->gateway_id);
    if (!cfg->mqtt_client_id[0])
        snprintf(cfg->mqtt_client_id, sizeof cfg->mqtt_client_id, "lcore-gw-%s", cfg->gateway_id);
    return 0;
}

int gw_config_check(gw_config_t *cfg, char *err, size_t err_len)
{
    if (!cfg->tls_cert[0] != !cfg->tls_key[0]) {
        snprintf(err, err_len,
                 "invalid configuration: LCORE_GATEWAY_TLS_CERT and LCORE_GATEWAY_TLS_KEY are "
                 "set together or not at all (only %s is set)",
                 cfg->tls_cert[0] ? "LCORE_GATEWAY_TLS_CERT" : "LCORE_GATEWAY_TLS_KEY");
        return -1;
    }
    if (cfg->body_budget_bytes < 8 * cfg->max_reading_bytes) {
        snprintf(err, err_len,
                 "invalid configuration: LCORE_GATEWAY_BODY_BUDGET_BYTES (%lld) must hold at least "
                 "8 readings of LCORE_GATEWAY_MAX_READING_BYTES (%lld)",
                 cfg->body_budget_bytes, cfg->max_reading_bytes);
        return -1;
    }
    if (!cfg->gateway_id[0]) {
        char host[48] = "gateway";
        gethostname(host, sizeof host);
        host[sizeof host - 1] = '\0';
        snprintf(cfg->gateway_id, sizeof cfg->gateway_id, "%s-%s", host,
                 strrchr(cfg->http_bind, ':') + 1); /* LC_CFG_A: always host:port */
    }
    return s_check_mqtt(cfg, err, err_len);
}
