/* cw_config.h: lcore-crypto settings (table in cw_config.c). */
#ifndef CW_CONFIG_H
#define CW_CONFIG_H

#include "lc_cfg.h"
#include "lc_curve.h"

typedef struct {
    char admin_bind[64];
    char readings_connect[1024];
    char sealed_connect[1024];
    char open_connect[1024];
    char keyring[512];
    int aes_impl; /* lc_aes_impl_t */
    long long hwm;
    long long max_reading_bytes;
    long long drain_ms;
#ifdef LCORE_FAULT_HOOKS
    char crash_device[129];
#endif
    lc_curve_cfg_t curve;
} cw_config_t;

extern const lc_cfg_opt_t cw_config_opts[];
extern const size_t cw_config_opts_len;

#endif
