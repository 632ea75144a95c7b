/* ch_config.h: lcore-chain settings (table in ch_config.c). */
#ifndef CH_CONFIG_H
#define CH_CONFIG_H

#include "ch_fees.h"
#include "lc_cfg.h"
#include "lc_curve.h"

typedef struct {
    char admin_bind[64];
    char pg_dsn[1024];
    char db_role[64]; /* a PostgreSQL identifier: at most 63 bytes */
    char rpc[2048];
    long long chain_id;
    char key_file[512];
    char owner_key_file[512];
    char contract[64];
    char events_connect[512];
    char store_queries_connect[512];
    char queries_bind[512];
    long long proof_cache_leaves;
    long long catch_up_ms;
    long long confirmations;
    long long finality;
    long long anchor_max;
    long long anchor_window_ms;
    long long max_inflight;
    long long poll_ms;
    char relayer_id[128]; /* the lease holder's name; empty: <host>:<pid> */
    long long lease_ttl_ms;
    ch_fee_mode_t fee_mode; /* bump, or market (Orbit: resubmit at market price) */
    long long bump_percent;
    long long bump_after_ms;
    long long fee_cap_multiple;
    long long max_fee_gwei;
    long long rpc_timeout_ms;
    long long stall_ms;
    lc_curve_cfg_t curve;
} ch_config_t;

extern const lc_cfg_opt_t ch_config_opts[];
extern const size_t ch_config_opts_len;

#endif
