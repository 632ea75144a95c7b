/* lcore-gateway: HTTP ingest. Authenticates signed readings and hands them to the crypto
 * workers; registers devices and answers record status through the store.
 * main: config -> log -> resources -> loop -> teardown in reverse. */
#include <czmq.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "gw_acks.h"
#include "gw_config.h"
#include "gw_http.h"
#include "lc_log.h"
#include "lc_service.h"

/* Reads the operator token file (first line). Returns 0 or -1. */
static int s_read_token_file(const char *path, char *out, size_t cap)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    int ok = fgets(out, (int)cap, f) != NULL;
    fclose(f);
    out[strcspn(out, "\r\n")] = '\0';
    return ok && *out ? 0 : -1;
}

/* Liveness of the store's query socket decides readiness. */
static void s_check_ready(gw_store_t *store, lc_admin_t *admin)
{
    Lcore__V1__Query q = LCORE__V1__QUERY__INIT;
    q.body_case = LCORE__V1__QUERY__BODY_PING;
    q.ping = 1;
    int err = 0;
    Lcore__V1__QueryReply *r = gw_store_call(store, &q, &err);
    if (r && r->status == LCORE__V1__QUERY_REPLY__STATUS__OK)
        lc_admin_set_ready(admin, 1, "");
    else
        lc_admin_set_ready(admin, 0, r && r->message ? r->message : "store not answering");
    if (r)
        lcore__v1__query_reply__free_unpacked(r, NULL);
}

int main(int argc, char **argv)
{
    static gw_config_t cfg;
    int rc = lc_service_start(argc, argv, "lcore-gateway",
                              "HTTP ingest: device signatures, registration, record status.", &cfg,
                              gw_config_opts, gw_config_opts_len);
    if (rc >= 0)
        return rc;
    if (!cfg.admin_token[0] && cfg.admin_token_file[0] &&
        s_read_token_file(cfg.admin_token_file, cfg.admin_token, sizeof cfg.admin_token) < 0) {
        fprintf(stderr, "lcore-gateway: cannot read LCORE_ADMIN_TOKEN_FILE %s\n",
                cfg.admin_token_file);
        return 2;
    }
    if (!cfg.gateway_id[0]) {
        char host[48] = "gateway";
        gethostname(host, sizeof host);
        host[sizeof host - 1] = '\0';
        snprintf(cfg.gateway_id, sizeof cfg.gateway_id, "%s-%lld", host, cfg.http_port);
    }

    int exit_code = 1;
    lc_metrics_t *metrics = lc_metrics_new();
    lc_admin_t *admin = NULL;
    gw_store_t *store = NULL;
    gw_devices_t *devices = NULL;
    gw_ingest_t *ingest = NULL;
    zactor_t *acks = NULL;
    gw_http_t *http = NULL;
    if (!metrics || !(admin = lc_admin_new((uint16_t)cfg.admin_port, metrics)))
        goto out;
    lc_admin_set_ready(admin, 0, "connecting to the store");
    if (!(store = gw_store_new(cfg.queries_connect, (int)cfg.query_timeout_ms)))
        goto out;
    if (!(devices = gw_devices_new(store, (int)cfg.device_cache_ttl_ms, (double)cfg.device_rate,
                                   (double)cfg.device_burst)))
        goto out;
    gw_ingest_opts_t iopts = {.gateway_id = cfg.gateway_id,
                              .readings_bind = cfg.readings_bind,
                              .hwm = (int)cfg.readings_hwm,
                              .send_timeout_ms = (int)cfg.send_timeout_ms,
                              .max_reading_bytes = (size_t)cfg.max_reading_bytes};
    if (!(ingest = gw_ingest_new(&iopts, devices, metrics)))
        goto out;
    gw_acks_opts_t aopts = {cfg.events_connect, cfg.gateway_id, metrics};
    if (!(acks = gw_acks_new(&aopts)))
        goto out;
    gw_http_deps_t deps = {&cfg, cfg.admin_token, ingest, devices, store, admin, metrics};
    if (!(http = gw_http_new(&deps)))
        goto out;
    lc_info("started", "gateway_id=%s registration=%s", cfg.gateway_id,
            cfg.admin_token[0] ? "enabled" : "disabled");

    /* The loop only watches readiness; requests run on the HTTP threads. SIGTERM/SIGINT set
     * zsys_interrupted (czmq's handler). */
    while (!zsys_interrupted) {
        s_check_ready(store, admin);
        for (int i = 0; i < 10 && !zsys_interrupted; i++)
            zclock_sleep(100);
    }
    lc_info("stopping", "reason=signal");
    lc_admin_set_ready(admin, 0, "shutting down");
    exit_code = 0;
out:
    gw_http_destroy(&http); /* finishes requests in flight before the sockets go */
    zactor_destroy(&acks);
    gw_ingest_destroy(&ingest);
    gw_devices_destroy(&devices);
    gw_store_destroy(&store);
    lc_admin_destroy(&admin);
    lc_metrics_destroy(&metrics);
    sodium_memzero(cfg.admin_token, sizeof cfg.admin_token);
    if (exit_code)
        lc_error("start_failed", "see the lines above");
    return exit_code;
}
