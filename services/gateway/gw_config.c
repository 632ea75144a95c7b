/* gw_config.c: the gateway's configuration table. */
#include "gw_config.h"

#define T gw_config_t
const lc_cfg_opt_t gw_config_opts[] = {
    LC_CFG_I("LCORE_GATEWAY_HTTP_PORT", T, http_port, "8080", 1, 65535, "device-facing HTTP port"),
    LC_CFG_I("LCORE_GATEWAY_ADMIN_PORT", T, admin_port, "9101", 1, 65535,
             "admin port: /metrics, /healthz, /readyz"),
    LC_CFG_I("LCORE_GATEWAY_THREADS", T, threads, "2", 1, 64,
             "HTTP worker threads (signature checks run on them)"),
    LC_CFG_S("LCORE_GATEWAY_ID", T, gateway_id, "",
             "this gateway's id for ack routing (default: hostname-port)"),
    LC_CFG_SECRET("LCORE_ADMIN_TOKEN", T, admin_token, "",
                  "operator bearer token for POST /v1/devices (empty: registration refused)"),
    LC_CFG_S("LCORE_ADMIN_TOKEN_FILE", T, admin_token_file, "",
             "file holding the operator token (used when LCORE_ADMIN_TOKEN is empty)"),
    LC_CFG_S("LCORE_GATEWAY_READINGS_BIND", T, readings_bind, "tcp://*:5551",
             "readings PUSH socket, bound; crypto workers connect"),
    LC_CFG_S("LCORE_GATEWAY_EVENTS_CONNECT", T, events_connect, "tcp://127.0.0.1:5553",
             "store events PUB endpoint(s) to subscribe to for acks"),
    LC_CFG_S("LCORE_GATEWAY_QUERIES_CONNECT", T, queries_connect, "tcp://127.0.0.1:5554",
             "store query ROUTER endpoint"),
    LC_CFG_I("LCORE_GATEWAY_MAX_READING_BYTES", T, max_reading_bytes, "65536", 256, 1048576,
             "largest accepted reading (JWS bytes); larger ones get 413"),
    LC_CFG_I("LCORE_GATEWAY_MAX_BATCH_BYTES", T, max_batch_bytes, "16777216", 4096, 134217728,
             "largest accepted batch body; larger ones get 413"),
    LC_CFG_I("LCORE_GATEWAY_QUERY_TIMEOUT_MS", T, query_timeout_ms, "2000", 10, 60000,
             "how long to wait for the store to answer a query"),
    LC_CFG_I("LCORE_GATEWAY_DEVICE_CACHE_TTL_MS", T, device_cache_ttl_ms, "30000", 0, 3600000,
             "how long a device's key (or its absence) is cached"),
    LC_CFG_I("LCORE_GATEWAY_DEVICE_RATE", T, device_rate, "1000", 0, 1000000,
             "readings per second allowed per device (0: unlimited); over it: 429"),
    LC_CFG_I("LCORE_GATEWAY_DEVICE_BURST", T, device_burst, "2000", 1, 10000000,
             "burst allowance per device for the rate limit"),
    LC_CFG_I("LCORE_GATEWAY_SEND_TIMEOUT_MS", T, send_timeout_ms, "200", 0, 10000,
             "how long a reading may wait for a crypto worker before 503"),
    LC_CFG_I("LCORE_GATEWAY_READINGS_HWM", T, readings_hwm, "10000", 10, 1000000,
             "readings queued per connected worker before sends wait"),
};
#undef T
const size_t gw_config_opts_len = sizeof gw_config_opts / sizeof gw_config_opts[0];
