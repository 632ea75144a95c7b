/* st_config.c: the store's configuration table. */
#include "st_config.h"

#define T st_config_t
const lc_cfg_opt_t st_config_opts[] = {
    LC_CFG_A("LCORE_STORE_ADMIN_BIND", T, admin_bind, "127.0.0.1:9103",
             "admin listener, IPv4:port or [IPv6]:port: /metrics, /healthz, /readyz"),
    LC_CFG_SECRET("LCORE_PG_DSN", T, pg_dsn, "postgresql://lcore_store@127.0.0.1:5432/lcore",
                  "PostgreSQL connection string (libpq): the store's role; `migrate`: the owner's"),
    LC_CFG_S("LCORE_STORE_DB_ROLE", T, store_db_role, "lcore_store",
             "`migrate` grants this role the store's privileges on the store's tables"),
    LC_CFG_S("LCORE_STORE_ID", T, store_id, "store-1",
             "this store's name (1-64 of [A-Za-z0-9._:-]): it numbers its records' positions "
             "under it; one running process per store_id"),
    LC_CFG_S("LCORE_STORE_SEALED_BIND", T, sealed_bind, "tcp://*:5552",
             "sealed-records PULL socket, bound; crypto workers connect"),
    LC_CFG_S("LCORE_STORE_EVENTS_BIND", T, events_bind, "tcp://*:5553",
             "events PUB socket (acks to gateways, stored-record events), bound"),
    LC_CFG_S("LCORE_STORE_QUERIES_BIND", T, queries_bind, "tcp://*:5554",
             "query ROUTER socket (devices, record status), bound"),
    LC_CFG_I("LCORE_STORE_BATCH_MAX", T, batch_max, "500", 1, 5000,
             "most records written in one transaction"),
    LC_CFG_I("LCORE_STORE_BATCH_WAIT_MS", T, batch_wait_ms, "5", 0, 10000,
             "longest a record waits for its batch to fill"),
    LC_CFG_I("LCORE_STORE_MAX_CIPHERTEXT_BYTES", T, max_ciphertext_bytes, "1114112", 64, 16777216,
             "largest sealed record accepted from a worker"),
    LC_CFG_I("LCORE_STORE_SEALED_HWM", T, sealed_hwm, "10000", 10, 1000000,
             "sealed records queued before workers wait"),
    LC_CURVE_CFG_ROWS(T),
};
#undef T
const size_t st_config_opts_len = sizeof st_config_opts / sizeof st_config_opts[0];
