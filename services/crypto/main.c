/* lcore-crypto: a crypto worker. PULLs readings from the gateways, dual-encrypts each one
 * (AES-256-GCM, then XChaCha20-Poly1305) and PUSHes the sealed record to the store; opens records
 * for the gateways' readers on the open link. Workers only connect, so more of them means more
 * processes and no change elsewhere.
 * main: config -> log -> resources -> loop -> teardown in reverse. */
#include <czmq.h>
#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include "cw_config.h"
#include "cw_open.h"
#include "cw_worker.h"
#include "lc_http.h"
#include "lc_keyring.h"
#include "lc_log.h"
#include "lc_service.h"
#include "lc_zmq.h"

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
    cw_open_t *open;
    zsock_t *readings, *sealed, *opens;
    lc_zmq_peers_t *gw_peers, *store_peers, *open_peers;
    lc_gauge_t *g_gw, *g_store;
} s_crypto_t;

/* Answers the opens waiting (a reader waits on each): between readings, and while the store
 * makes the worker wait (cw_worker_on_wait). */
static void s_serve_opens(void *arg)
{
    s_crypto_t *cw = arg;
    cw_open_serve(cw->open, cw->opens, 100);
}

/* Seals the readings of up to max messages already queued on the readings socket, and sends
 * the sealed records on. Returns how many messages were taken.
 * After a signal, a send the store cannot take within its timeout is given up (the gateway
 * redelivers). */
static int s_work(s_crypto_t *cw, int max)
{
    void *in = zsock_resolve(cw->readings);
    int taken = 0;
    for (; taken < max; taken++) {
        zmq_msg_t m;
        zmq_msg_init(&m);
        if (zmq_msg_recv(&m, in, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&m);
            break;
        }
        if (cw_worker_handle(cw->worker, zmq_msg_data(&m), zmq_msg_size(&m), cw->sealed) < 0)
            lc_warn("sealed_send_failed", NULL);
        zmq_msg_close(&m);
        s_serve_opens(cw);
    }
    /* What these messages sealed goes on in as few messages as the batch bounds allow. */
    if (cw_worker_flush(cw->worker, cw->sealed) < 0)
        lc_warn("sealed_send_failed", NULL);
    return taken;
}

/* The key ring, the sealer on it, and around the sealer the worker and the open handler.
 * 0, or -1 (logged). */
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
                                     lc_service_metrics(cw->svc))) ||
        !(cw->open =
              cw_open_new(cw->sealer, (size_t)cfg->max_reading_bytes, lc_service_metrics(cw->svc))))
        return -1;
    cw_worker_on_wait(cw->worker, s_serve_opens, cw);
#ifdef LCORE_FAULT_HOOKS
    cw_worker_crash_on(cw->worker, cfg->crash_device);
    if (cfg->crash_device[0])
        lc_warn("fault_injection", "crash_device=%s", cfg->crash_device);
#endif
    return 0;
}

/* The readings PULL and the open ROUTER (to every gateway) and the sealed PUSH (to the store).
 * 0, or -1. */
static int s_open_sockets(s_crypto_t *cw)
{
    const cw_config_t *cfg = cw->cfg;
    lc_zmq_opts_t ro = {
        .name = "readings",
        .type = ZMQ_PULL,
        .endpoints = cfg->readings_connect,
        .roles = LC_ROLE_GATEWAY,
        .hwm = (int)cfg->hwm,
        .max_msg = lc_zmq_batch_max_msg(cfg->max_reading_bytes + LC_ZMQ_ENVELOPE_OVERHEAD)};
    lc_zmq_opts_t so = {.name = "sealed",
                        .type = ZMQ_PUSH,
                        .endpoints = cfg->sealed_connect,
                        .roles = LC_ROLE_STORE,
                        .hwm = (int)cfg->hwm,
                        .linger_ms = 2000,
                        .max_msg = LC_ZMQ_SEND_ONLY_MAX};
    lc_zmq_opts_t oo = {.name = "open",
                        .type = ZMQ_ROUTER,
                        .endpoints = cfg->open_connect,
                        .roles = LC_ROLE_GATEWAY,
                        .hwm = 100,
                        .max_msg =
                            cfg->max_reading_bytes + LC_SEAL_OVERHEAD + LC_ZMQ_ENVELOPE_OVERHEAD};
    lc_curve_t *curve = lc_service_curve(cw->svc);
    cw->readings = lc_zmq_open(&ro, curve, &cw->gw_peers);
    cw->sealed = lc_zmq_open(&so, curve, &cw->store_peers);
    cw->opens = lc_zmq_open(&oo, curve, &cw->open_peers);
    if (!cw->readings || !cw->sealed || !cw->opens)
        return -1;
    /* While the store is away a sealed record waits here; opens are answered between tries. */
    zsock_set_sndtimeo(cw->sealed, 250);
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
    lc_info("started", "readings=%s sealed=%s open=%s", cw->cfg->readings_connect,
            cw->cfg->sealed_connect, cw->cfg->open_connect);
    return 0;
}

/* Loop: seals what arrives and answers opens until a signal; ready while a gateway and the
 * store are connected (checked at least once a second, every 50 ms while not ready so that a
 * worker is ready as soon as its connections are). */
static void s_run(s_crypto_t *cw)
{
    lc_admin_t *admin = lc_service_admin(cw->svc);
    int ready = 0;
    while (!zsys_interrupted) {
        zmq_pollitem_t items[2] = {{zsock_resolve(cw->readings), 0, ZMQ_POLLIN, 0},
                                   {zsock_resolve(cw->opens), 0, ZMQ_POLLIN, 0}};
        int n = zmq_poll(items, 2, ready ? 1000 : 50);
        if (n < 0 && errno != EINTR)
            break;
        if (items[1].revents & ZMQ_POLLIN)
            s_serve_opens(cw);
        if (items[0].revents & ZMQ_POLLIN)
            s_work(cw, 1000);
        lc_zmq_peers_update(cw->open_peers); /* counts refusals */
        int gws = lc_zmq_peers_update(cw->gw_peers), stores = lc_zmq_peers_update(cw->store_peers);
        lc_gauge_set(cw->g_gw, gws);
        lc_gauge_set(cw->g_store, stores);
        ready = gws > 0 && stores > 0;
        lc_admin_set_ready(admin, ready, !gws ? "no gateway connected" : "store not connected");
    }
    lc_info("stopping", "reason=signal");
    lc_admin_set_ready(admin, 0, "shutting down");
}

/* Stops taking readings and opens (the gateways route to the other workers), then seals what
 * is already queued here for a little while. Whatever is left is not lost: the gateway that
 * sent it redelivers it once its ack is overdue (an open left unanswered times out: the reader
 * asks again). */
static void s_drain(s_crypto_t *cw)
{
    s_disconnect(cw->readings, cw->cfg->readings_connect);
    s_disconnect(cw->opens, cw->cfg->open_connect);
    for (uint64_t end = lc_mono_us() + (uint64_t)cw->cfg->drain_ms * 1000u; lc_mono_us() < end;)
        if (s_work(cw, 100) == 0)
            break;
}

/* Teardown, in reverse; what s_open did not get to is NULL. What the PULL still holds is
 * dropped by ZeroMQ and redelivered by its gateway. The PUSH lingers to deliver what is
 * sealed. */
static void s_close(s_crypto_t *cw)
{
    lc_zmq_peers_destroy(&cw->gw_peers);
    lc_zmq_peers_destroy(&cw->store_peers);
    lc_zmq_peers_destroy(&cw->open_peers);
    zsock_destroy(&cw->readings);
    zsock_destroy(&cw->sealed);
    zsock_destroy(&cw->opens);
    cw_open_destroy(&cw->open);
    cw_worker_destroy(&cw->worker);
    lc_sealer_destroy(&cw->sealer);
    lc_keyring_destroy(&cw->ring);
    lc_service_destroy(&cw->svc);
}

int main(int argc, char **argv)
{
    static cw_config_t cfg;
    int exit_code = lc_service_start(
        argc, argv, "lcore-crypto",
        "Crypto worker: dual-encrypts readings for the store, opens records for the "
        "gateways' readers.",
        &cfg, cw_config_opts, cw_config_opts_len);
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
