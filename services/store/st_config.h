/* st_config.h: lcore-store settings (table in st_config.c). */
#ifndef ST_CONFIG_H
#define ST_CONFIG_H

#include "lc_cfg.h"
#include "lc_curve.h"
#include "lc_record.h"

typedef struct {
    char admin_bind[64];
    char pg_dsn[1024];
    char store_id[LC_STORE_ID_MAX + 1];
    char store_db_role[64]; /* PostgreSQL identifiers: at most 63 bytes */
    char sealed_bind[512];
    char events_bind[512];
    char queries_bind[512];
    long long write_batch_max;
    long long write_batch_wait_ms;
    long long max_ciphertext_bytes;
    long long sealed_hwm;
    lc_curve_cfg_t curve;
} st_config_t;

extern const lc_cfg_opt_t st_config_opts[];
extern const size_t st_config_opts_len;

#endif
