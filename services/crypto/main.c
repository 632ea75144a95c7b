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

/* What a worker runs on: opened in this order by s_open, closed in reverse by s_close. */
typedef struct {
    const cw_config_t *cfg;
    lc_service_t *svc;
    lc_keyring_t *ring;
    lc_sealer_t *sealer;
    cw_worker_t *worker;
    zsock_t *readings, *sealed;
    lc_zmq_peers_t *gw_peers, *store_peers;
    lc_gauge_t *g_gw, *g_store;
} s_crypto_t;

/* The key ring, the sealer on it and the worker around the sealer. 0, or -1 (logged). */
static int s_open_sealer(s_crypto_t *cw)
{
    const cw_config_t *cfg = cw->cfg;
    int err = 0;
    if (!(cw->ring = lc_keyring_load(cfg->keyring, LC_KEYRING_SEAL, &err))) {
        lc_error("keyring_load_failed", "path=%s err=\"%s\"", cfg->keyring, lc_strerror(err));
        return -1;
    }
    if (!(cw->sealer = lc_sealer_new(cw->ring, (lc_aes_impl_t)cfg->aes_impl))) {
        lc_error("sealer_failed", "aes_impl=%d (aesni needs a CPU with AES-NI)", cfg->aes_impl);
        return -1;
    }
    lc_info("sealer_ready", "aes_gcm=%s key_version=%u key_versions=%zu",
            lc_sealer_aes_impl(cw->sealer), lc_keyring_current(cw->ring)->version,
            lc_keyring_count(cw->ring));
    lc_gauge_t *aesni = lc_metrics_gauge(lc_service_metrics(cw->svc), "lcore_crypto_aesni",
                                         "1 when AES-GCM runs on AES-NI, 0 on constant-time "
                                         "software",
                                         NULL);
    lc_gauge_set(aesni, lc_sealer_aes_impl(cw->sealer)[0] == 'a');
    if (!(cw->worker = cw_worker_new(cw->sealer, (size_t)cfg->max_reading_bytes,
                                     lc_service_metrics(cw->svc))))
        return -1;
#ifdef LCORE_FAULT_HOOKS
    cw_worker_crash_on(cw->worker, cfg->crash_device);
    if (cfg->crash_device[0])
        lc_warn("fault_injection", "crash_device=%s", cfg->crash_device);
#endif
    return 0;
}

/* The readings PULL (from every gateway) and the sealed PUSH (to the store). 0, or -1. */
static int s_open_sockets(s_crypto_t *cw)
{
    const cw_config_t *cfg = cw->cfg;
    lc_zmq_opts_t ro = {.name = "readings",
                        .type = ZMQ_PULL,
                        .endpoints = cfg->readings_connect,
                        .roles = LC_ROLE_GATEWAY,
                        .hwm = (int)cfg->hwm,
                        .max_msg = cfg->max_reading_bytes + LC_ZMQ_ENVELOPE_OVERHEAD};
    lc_zmq_opts_t so = {.name = "sealed",
                        .type = ZMQ_PUSH,
                        .endpoints = cfg->sealed_connect,
                        .roles = LC_ROLE_STORE,
                        .hwm = (int)cfg->hwm,
                        .linger_ms = 2000,
                        .max_msg = LC_ZMQ_SEND_ONLY_MAX};
    cw->readings = lc_zmq_open(&ro, lc_service_curve(cw->svc), &cw->gw_peers);
    cw->sealed = lc_zmq_open(&so, lc_service_curve(cw->svc), &cw->store_peers);
    if (!cw->readings || !cw->sealed)
        return -1;
    zsock_set_sndtimeo(cw->sealed, 1000);
    lc_metrics_t *metrics = lc_service_metrics(cw->svc);
    cw->g_gw = lc_metrics_gauge(metrics, "lcore_crypto_gateways_connected",
                                "Gateway connections of the readings socket", NULL);
    cw->g_store = lc_metrics_gauge(metrics, "lcore_crypto_store_connected",
                                   "Store connections of the sealed socket", NULL);
    return 0;
}

/* Resources: the service's own (metrics, admin listener, CURVE), the sealer, the sockets. */
static int s_open(s_crypto_t *cw)
{
    if (!(cw->svc = lc_service_new("crypto", cw->cfg->admin_bind, &cw->cfg->curve, NULL)) ||
        s_open_sealer(cw) < 0 || s_open_sockets(cw) < 0)
        return -1;
    lc_info("started", "readings=%s sealed=%s", cw->cfg->readings_connect, cw->cfg->sealed_connect);
    return 0;
}

/* Loop: seals what arrives until a signal; ready while a gateway and the store are connected
 * (checked at least once a second). */
static void s_run(s_crypto_t *cw)
{
    lc_admin_t *admin = lc_service_admin(cw->svc);
    void *in = zsock_resolve(cw->readings);
    while (!zsys_interrupted) {
        zmq_pollitem_t item = {in, 0, ZMQ_POLLIN, 0};
        int n = zmq_poll(&item, 1, 1000);
        if (n < 0 && errno != EINTR)
            break;
        if (n > 0)
            s_work(cw->worker, in, cw->sealed, 1000);
        int gws = lc_zmq_peers_update(cw->gw_peers), stores = lc_zmq_peers_update(cw->store_peers);
        lc_gauge_set(cw->g_gw, gws);
        lc_gauge_set(cw->g_store, stores);
        lc_admin_set_ready(admin, gws > 0 && stores > 0,
                           !gws ? "no gateway connected" : "store not connected");
    }
    lc_info("stopping", "reason=signal");
    lc_admin_set_ready(admin, 0, "shutting down");
}

/* Stops taking readings (the gateways route to the other workers), then seals what is already
 * queued here for a little while. Whatever is left is not lost: the gateway that sent it
 * redelivers it once its ack is overdue. */
static void s_drain(s_crypto_t *cw)
{
    void *in = zsock_resolve(cw->readings);
    s_disconnect(cw->readings, cw->cfg->readings_connect);
    for (uint64_t end = lc_mono_us() + (uint64_t)cw->cfg->drain_ms * 1000u; lc_mono_us() < end;)
        if (s_work(cw->worker, in, cw->sealed, 100) == 0)
            break;
}

/* Teardown, in reverse; what s_open did not get to is NULL. What the PULL still holds is
 * dropped by ZeroMQ and redelivered by its gateway. The PUSH lingers to deliver what is
 * sealed. */
static void s_close(s_crypto_t *cw)
{
    lc_zmq_peers_destroy(&cw->gw_peers);
    lc_zmq_peers_destroy(&cw->store_peers);
    zsock_destroy(&cw->readings);
    zsock_destroy(&cw->sealed);
    cw_worker_destroy(&cw->worker);
    lc_sealer_destroy(&cw->sealer);
    lc_keyring_destroy(&cw->ring);
    lc_service_destroy(&cw->svc);
}

int main(int argc, char **argv)
{
    static cw_config_t cfg;
    int exit_code = lc_service_start(argc, argv, "lcore-crypto",
                                     "Crypto worker: dual-encrypts readings for the store.", &cfg,
                                     cw_config_opts, cw_config_opts_len);
    if (exit_code >= 0)
        return exit_code;
    s_crypto_t cw = {.cfg = &cfg};
    exit_code = 1;
    if (s_open(&cw) == 0) {
        s_run(&cw);
        s_drain(&cw);
        exit_code = 0;
    }
    s_close(&cw);
    lc_info("exited", "code=%d", exit_code);
    return exit_code;
}
