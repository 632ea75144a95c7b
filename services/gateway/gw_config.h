/* gw_config.h: lcore-gateway settings (one table row each, see gw_config.c). */
#ifndef GW_CONFIG_H
#define GW_CONFIG_H

#include "lc_cfg.h"
#include "lc_curve.h"

typedef struct {
    char http_bind[64];
    char admin_bind[64];
    char tls_cert[512];
    char tls_key[512];
    long long threads;
    long long query_threads;
    char gateway_id[64];
    char admin_token_sha256_file[512];
    char admin_token[256]; /* wiped by gw_config_admin_token */
    char admin_token_file[512];
    char readings_bind[512];
    char events_connect[512];
    char queries_connect[512];
    char chain_queries_connect[512];
    char open_bind[512];
    long long open_timeout_ms;
    long long max_reading_bytes;
    long long max_request_batch_bytes;
    long long max_connections;
    long long max_connections_per_ip;
    long long connection_timeout_s;
    long long body_budget_bytes;
    long long unknown_lookups_per_ip;
    long long unknown_lookups_burst;
    long long query_timeout_ms;
    long long device_cache_ttl_ms;
    long long device_rate;
    long long device_burst;
    long long token_rate;
    long long token_burst;
    long long readings_hwm;
    char keyring[512];
    char wal_dir[512];
    long long wal_max_bytes;
    long long wal_max_readings;
    long long wal_segment_bytes;
    long long inflight;
    long long redeliver_ms;
    long long redeliver_max_ms;
    long long max_attempts;
    long long drain_ms;
    long long heartbeat_ms;
    char mqtt_url[512];
    char mqtt_username[128];
    char mqtt_password_file[512];
    char mqtt_ca_file[512];
    long long mqtt_inflight;
    char mqtt_client_id[128];
    lc_curve_cfg_t curve;
    /* MQTT provisioning (gw_dynsec) */
    int mqtt_provision;
    long long mqtt_provision_timeout_ms;
#ifdef LCORE_FAULT_HOOKS
    long long hold_logged_ms;
#endif
} gw_config_t;

extern const lc_cfg_opt_t gw_config_opts[];
extern const size_t gw_config_opts_len;

/* The operator token's SHA-256 from the one configured source: the hash file, or the raw token
 * (LCORE_ADMIN_TOKEN or LCORE_ADMIN_TOKEN_FILE), hashed here. Always wipes the raw token, from
 * cfg and from the environment. *set is 0 when no source is configured. -1 (reason in err) when
 * more than one source is set, a file cannot be read, or a raw token is shorter than 32
 * characters. */
int gw_config_admin_token(gw_config_t *cfg, uint8_t hash[32], int *set, char *err,
                          size_t err_len) LC_WUR;

/* What the table cannot check alone: the TLS certificate and key come together or not at all;
 * the body budget holds at least eight of the largest readings; an MQTT broker URL is
 * mqtt://host:port (mqtts:// is refused until TLS to the broker is built) and comes with a
 * password file. Fills the default gateway_id (hostname-port of the device listener) and the
 * broker username and client id (lcore-gw-<gateway_id>). -1 (reason in err) on an invalid
 * combination. */
int gw_config_check(gw_config_t *cfg, char *err, size_t err_len) LC_WUR;

#endif
