/* lcore-crypto: a crypto worker. PULLs readings from the gateways, dual-encrypts each one
 * (AES-256-GCM, then XChaCha20-Poly1305) and PUSHes the sealed record to the store. Workers only
 * connect, so more of them means more processes and no change elsewhere.
 * main: config -> log -> resources -> loop -> teardown in reverse. */
#include <czmq.h>
#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include "cw_config.h"
#include "cw_worker.h"
#include "lc_http.h"
#include "lc_keyring.h"
#include "lc_log.h"
#include "lc_service.h"
#include "lc_zmq.h"

/* Seals up to max readings already queued on `in`. Returns how many were taken. After a
 * signal, a send the store cannot take within its timeout is given up (the gateway redelivers). */
static int s_work(cw_worker_t *worker, void *in, zsock_t *sealed, int max)
{
    int taken = 0;
    for (; taken < max; taken++) {
        zmq_msg_t m;
        zmq_msg_init(&m);
        if (zmq_msg_recv(&m, in, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&m);
            break;
        }
        if (cw_worker_handle(worker, zmq_msg_data(&m), zmq_msg_size(&m), sealed) < 0)
            lc_warn("sealed_send_failed", NULL);
        zmq_msg_close(&m);
    }
    return taken;
}

/* Disconnects from every gateway in the comma-separated list. */
static void s_disconnect(zsock_t *sock, const char *endpoints)
{
    char buf[1024];
    snprintf(buf, sizeof buf, "%s", endpoints);
    char *save = NULL;
    for (char *ep = strtok_r(buf, ",", &save); ep; ep = strtok_r(NULL, ",", &save)) {
        while (*ep == ' ' || *ep == '>')
            ep++;
        if (zsock_disconnect(sock, "%s", ep) != 0)
            lc_debug("disconnect_failed", "endpoint=%s", ep);
    }
}

int main(int argc, char **argv)
{
    static cw_config_t cfg;
    int rc = lc_service_start(argc, argv, "lcore-crypto",
                              "Crypto worker: dual-encrypts readings for the store.", &cfg,
                              cw_config_opts, cw_config_opts_len);
    if (rc >= 0)
        return rc;

    int exit_code = 1;
    lc_metrics_t *metrics = lc_metrics_new();
    lc_admin_t *admin = NULL;
    lc_keyring_t *ring = NULL;
    lc_curve_t *curve = NULL;
    lc_sealer_t *sealer = NULL;
    cw_worker_t *worker = NULL;
    zsock_t *readings = NULL, *sealed = NULL;
    lc_zmq_peers_t *gw_peers = NULL, *store_peers = NULL;
    int err = 0;
    if (!metrics || !(admin = lc_admin_new(cfg.admin_bind, metrics, "crypto")))
        goto out;
    if (!(ring = lc_keyring_load(cfg.keyring, LC_KEYRING_SEAL, &err))) {
        lc_error("keyring_load_failed", "path=%s err=\"%s\"", cfg.keyring, lc_strerror(err));
        goto out;
    }
    if (!(sealer = lc_sealer_new(ring, (lc_aes_impl_t)cfg.aes_impl))) {
        lc_error("sealer_failed", "aes_impl=%d (aesni needs a CPU with AES-NI)", cfg.aes_impl);
        goto out;
    }
    lc_info("sealer_ready", "aes_gcm=%s key_version=%u key_versions=%zu",
            lc_sealer_aes_impl(sealer), lc_keyring_current(ring)->version, lc_keyring_count(ring));
    if (!(worker = cw_worker_new(sealer, (size_t)cfg.max_reading_bytes, metrics)))
        goto out;
#ifdef LCORE_FAULT_HOOKS
    cw_worker_crash_on(worker, cfg.crash_device);
    if (cfg.crash_device[0])
        lc_warn("fault_injection", "crash_device=%s", cfg.crash_device);
#endif
    if (!(curve = lc_curve_new(&cfg.curve, "crypto", metrics)))
        goto out;
    lc_zmq_opts_t ro = {.name = "readings",
                        .type = ZMQ_PULL,
                        .endpoints = cfg.readings_connect,
                        .roles = LC_ROLE_GATEWAY,
                        .hwm = (int)cfg.hwm,
                        .max_msg = cfg.max_reading_bytes + LC_ZMQ_ENVELOPE_OVERHEAD};
    lc_zmq_opts_t so = {.name = "sealed",
                        .type = ZMQ_PUSH,
                        .endpoints = cfg.sealed_connect,
                        .roles = LC_ROLE_STORE,
                        .hwm = (int)cfg.hwm,
                        .linger_ms = 2000,
                        .max_msg = LC_ZMQ_SEND_ONLY_MAX};
    readings = lc_zmq_open(&ro, curve, &gw_peers);
    sealed = lc_zmq_open(&so, curve, &store_peers);
    if (!readings || !sealed)
        goto out;
    zsock_set_sndtimeo(sealed, 1000);
    lc_gauge_t *impl = lc_metrics_gauge(metrics, "lcore_crypto_aesni",
                                        "1 when AES-GCM runs on AES-NI, 0 on constant-time "
                                        "software",
                                        NULL);
    lc_gauge_set(impl, sealer && lc_sealer_aes_impl(sealer)[0] == 'a');
    lc_gauge_t *g_gw = lc_metrics_gauge(metrics, "lcore_crypto_gateways_connected",
                                        "Gateway connections of the readings socket", NULL);
    lc_gauge_t *g_store = lc_metrics_gauge(metrics, "lcore_crypto_store_connected",
                                           "Store connections of the sealed socket", NULL);
    lc_info("started", "readings=%s sealed=%s", cfg.readings_connect, cfg.sealed_connect);

    void *in = zsock_resolve(readings);
    while (!zsys_interrupted) {
        zmq_pollitem_t item = {in, 0, ZMQ_POLLIN, 0};
        int n = zmq_poll(&item, 1, 1000);
        if (n < 0 && errno != EINTR)
            break;
        if (n > 0)
            s_work(worker, in, sealed, 1000);
        /* Ready when a gateway and the store are connected (checked at least once a second). */
        int gws = lc_zmq_peers_update(gw_peers), stores = lc_zmq_peers_update(store_peers);
        lc_gauge_set(g_gw, gws);
        lc_gauge_set(g_store, stores);
        lc_admin_set_ready(admin, gws > 0 && stores > 0,
                           !gws ? "no gateway connected" : "store not connected");
    }
    lc_info("stopping", "reason=signal");
    lc_admin_set_ready(admin, 0, "shutting down");
    /* Stop taking readings (the gateways route to the other workers), then seal what is
     * already queued here for a little while. Whatever is left is not lost: the gateway that
     * sent it redelivers it once its ack is overdue. */
    s_disconnect(readings, cfg.readings_connect);
    for (uint64_t end = lc_mono_us() + (uint64_t)cfg.drain_ms * 1000u; lc_mono_us() < end;)
        if (s_work(worker, in, sealed, 100) == 0)
            break;
    exit_code = 0;
out:
    /* What the PULL still holds is dropped by ZeroMQ and redelivered by its gateway. The PUSH
     * lingers to deliver what is sealed. */
    lc_zmq_peers_destroy(&gw_peers);
    lc_zmq_peers_destroy(&store_peers);
    zsock_destroy(&readings);
    zsock_destroy(&sealed);
    cw_worker_destroy(&worker);
    lc_sealer_destroy(&sealer);
    lc_curve_destroy(&curve);
    lc_keyring_destroy(&ring);
    lc_admin_destroy(&admin);
    lc_metrics_destroy(&metrics);
    lc_info("exited", "code=%d", exit_code);
    return exit_code;
}
