/* st_config.c: the store's configuration table. */
#include "st_config.h"

#define T st_config_t
const lc_cfg_opt_t st_config_opts[] = {
    LC_CFG_ADMIN_BIND("LCORE_STORE_ADMIN_BIND", T, "9103", ""),
    LC_CFG_PG_DSN(T, "lcore_store", ": the store's role; `migrate`: the owner's"),
    LC_CFG_S("LCORE_STORE_ID", T, store_id, "",
             "this store's id: it numbers the records it writes under it (positions), so keep it "
             "across restarts; one process per id (default: the host name)"),
    LC_CFG_S("LCORE_STORE_DB_ROLE", T, store_db_role, "lcore_store",
             "`migrate` grants this role the store's privileges on the store's tables"),
    LC_CFG_LINK_BIND("LCORE_STORE_SEALED_BIND", T, sealed_bind, LC_LINK_SEALED,
                     "sealed-records PULL socket, bound; crypto workers connect"),
    LC_CFG_LINK_BIND("LCORE_STORE_EVENTS_BIND", T, events_bind, LC_LINK_EVENTS,
                     "events PUB socket (acks to gateways, stored records to the relayer), bound"),
    LC_CFG_LINK_BIND("LCORE_STORE_QUERIES_BIND", T, queries_bind, LC_LINK_QUERIES,
                     "query ROUTER socket (gateways: devices, record status; the relayer: "
                     "catch-up; operators: sealed records), bound"),
    LC_CFG_I("LCORE_STORE_WRITE_BATCH_MAX", T, write_batch_max, "500", 1, 5000,
             "most records written in one transaction"),
    LC_CFG_I("LCORE_STORE_WRITE_BATCH_WAIT_MS", T, write_batch_wait_ms, "5", 0, 10000,
             "longest a record waits for its write batch to fill"),
    LC_CFG_I("LCORE_STORE_MAX_CIPHERTEXT_BYTES", T, max_ciphertext_bytes, "1114112", 64, 16777216,
             "largest sealed record accepted from a worker"),
    LC_CFG_I("LCORE_STORE_SEALED_HWM", T, sealed_hwm, "10000", 10, 1000000,
             "messages (a batch of sealed records each) queued before workers wait"),
    LC_CURVE_CFG_ROWS(T),
};
#undef T
const size_t st_config_opts_len = sizeof st_config_opts / sizeof st_config_opts[0];
