/* cw_config.c: the crypto worker's configuration table. */
#include "cw_config.h"

#define T cw_config_t
const lc_cfg_opt_t cw_config_opts[] = {
    LC_CFG_ADMIN_BIND("LCORE_CRYPTO_ADMIN_BIND", T, "9102", " (one per worker on a host)"),
    LC_CFG_LINK_CONNECT("LCORE_CRYPTO_READINGS_CONNECT", T, readings_connect, LC_LINK_READINGS,
                        "gateway readings endpoint(s), comma-separated, to PULL from"),
    LC_CFG_LINK_CONNECT("LCORE_CRYPTO_SEALED_CONNECT", T, sealed_connect, LC_LINK_SEALED,
                        "store sealed-records endpoint to PUSH to"),
    LC_CFG_LINK_CONNECT("LCORE_CRYPTO_OPEN_CONNECT", T, open_connect, LC_LINK_OPEN,
                        "gateway open endpoint(s), comma-separated (every gateway), to answer "
                        "record opens on"),
    LC_CFG_S("LCORE_KEYRING", T, keyring, "lcore.keyring", "key ring file (mode 0600)"),
    LC_CFG_E("LCORE_CRYPTO_AES_IMPL", T, aes_impl, "auto", "auto|aesni|portable",
             "AES-256-GCM implementation: AES-NI (libsodium) or constant-time software"),
    LC_CFG_I("LCORE_CRYPTO_HWM", T, hwm, "1000", 1, 1000000,
             "messages queued per socket before the worker stops taking more"),
    LC_CFG_I("LCORE_CRYPTO_MAX_READING_BYTES", T, max_reading_bytes, "1048576", 256, 16777216,
             "largest reading accepted from a gateway"),
    LC_CFG_I("LCORE_CRYPTO_DRAIN_MS", T, drain_ms, "500", 0, 60000,
             "on SIGTERM, how long to keep sealing what is already queued here"),
#ifdef LCORE_FAULT_HOOKS
    LC_CFG_S("LCORE_CRYPTO_CRASH_DEVICE", T, crash_device, "",
             "fault-injection builds only: abort on any reading of this device_id"),
#endif
    LC_CURVE_CFG_ROWS(T),
};
#undef T
const size_t cw_config_opts_len = sizeof cw_config_opts / sizeof cw_config_opts[0];
