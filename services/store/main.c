/* lcore-store: the only writer of records to PostgreSQL. Batches sealed records from the crypto
 * workers into idempotent transactions, acknowledges each record to its gateway after commit,
 * and answers device and record queries.
 * main: config -> log -> resources -> loop -> teardown in reverse. */
#include <czmq.h>
#include <errno.h>
#include <sodium.h>
#include <stdio.h>

#include "lc_http.h"
#include "lc_log.h"
#include "lc_service.h"
#include "lc_zmq.h"
#include "st_config.h"
#include "st_db.h"
#include "st_writer.h"

typedef struct {
    st_db_t *queries_db;
    lc_counter_t *queries, *bad;
    const int *backoff_ms; /* the writer's: > 0 while PostgreSQL is down (pings say so) */
} s_query_ctx_t;

/* One query from a gateway: [identity][Query] -> [identity][QueryReply]. */
static void s_answer(zsock_t *router, s_query_ctx_t *ctx)
{
    zmsg_t *msg = zmsg_recv(router);
    if (!msg)
        return;
    zframe_t *id = zmsg_pop(msg);
    zframe_t *body = zmsg_last(msg);
    Lcore__V1__Query *q =
        (id && body) ? lcore__v1__query__unpack(NULL, zframe_size(body), zframe_data(body)) : NULL;
    if (!q || q->version != 1) {
        lc_counter_inc(ctx->bad);
        goto out;
    }
    lc_counter_inc(ctx->queries);
    Lcore__V1__QueryReply reply = LCORE__V1__QUERY_REPLY__INIT;
    st_db_answer(ctx->queries_db, q, *ctx->backoff_ms == 0, &reply);
    if (zframe_send(&id, router, ZFRAME_MORE | ZFRAME_REUSE) == 0)
        if (lc_zmq_send_pb(router, NULL, &reply.base, ZMQ_DONTWAIT) < 0)
            lc_debug("query_reply_dropped", "request_id=%llu", (unsigned long long)q->request_id);
    st_db_reply_clear(&reply);
out:
    if (q)
        lcore__v1__query__free_unpacked(q, NULL);
    zframe_destroy(&id);
    zmsg_destroy(&msg);
}

/* Takes every sealed record already queued, up to a full batch, without blocking. */
static void s_drain_sealed(zsock_t *pull, st_writer_t *writer)
{
    void *h = zsock_resolve(pull);
    while (!st_writer_full(writer)) {
        zmq_msg_t m;
        zmq_msg_init(&m);
        if (zmq_msg_recv(&m, h, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&m);
            return;
        }
        st_writer_take(writer, zmq_msg_data(&m), zmq_msg_size(&m));
        zmq_msg_close(&m);
    }
}

int main(int argc, char **argv)
{
    static st_config_t cfg;
    int rc =
        lc_service_start(argc, argv, "lcore-store",
                         "The only writer of records to PostgreSQL: batched, idempotent, acked.",
                         &cfg, st_config_opts, st_config_opts_len);
    if (rc >= 0)
        return rc;

    int exit_code = 1;
    lc_metrics_t *metrics = lc_metrics_new();
    lc_admin_t *admin = NULL;
    st_db_t *db = NULL, *qdb = NULL;
    zsock_t *sealed = NULL, *events = NULL, *queries = NULL;
    st_writer_t *writer = NULL;
    lc_zmq_peers_t *workers = NULL;
    if (!metrics || !(admin = lc_admin_new(cfg.admin_bind, metrics, "store")))
        goto out;
    lc_admin_set_ready(admin, 0, "connecting to PostgreSQL");
    /* PostgreSQL may come up after us (compose, boot order): wait for it, with backoff. */
    for (int delay = 100; !(db = st_db_new(cfg.pg_dsn, 1));
         delay = delay < 5000 ? delay * 2 : 5000) {
        if (zsys_interrupted)
            goto out;
        zclock_sleep(delay);
    }
    if (!(qdb = st_db_new(cfg.pg_dsn, 0)))
        goto out;
    sealed = lc_zmq_socket_watched(ZMQ_PULL, cfg.sealed_bind, 1, (int)cfg.sealed_hwm, 0, &workers);
    events = lc_zmq_socket(ZMQ_PUB, cfg.events_bind, 1, 100000, 1000);
    queries = lc_zmq_socket(ZMQ_ROUTER, cfg.queries_bind, 1, 10000, 0);
    if (!sealed || !events || !queries)
        goto out;
    writer = st_writer_new(db, events, (size_t)cfg.batch_max, (int)cfg.batch_wait_ms,
                           (size_t)cfg.max_ciphertext_bytes, metrics);
    if (!writer)
        goto out;
    /* Dead letters arrive from gateways (queries) and from the writer: counted on both. */
    static const char dl_help[] = "Readings given up on and recorded in dead_letters, by stage";
    lc_counter_t *dl_crypto = lc_metrics_counter(metrics, "lcore_store_dead_letters_total", dl_help,
                                                 "stage=\"crypto\""),
                 *dl_store = lc_metrics_counter(metrics, "lcore_store_dead_letters_total", dl_help,
                                                "stage=\"store\"");
    st_db_count_dead_letters(db, dl_crypto, dl_store);
    st_db_count_dead_letters(qdb, dl_crypto, dl_store);
    int backoff_ms = 0; /* > 0 while the database is down */
    s_query_ctx_t qctx = {
        .queries_db = qdb,
        .queries =
            lc_metrics_counter(metrics, "lcore_store_queries_total", "Queries answered", NULL),
        .bad = lc_metrics_counter(metrics, "lcore_store_bad_messages_total",
                                  "Messages dropped as undecodable or invalid, by socket",
                                  "socket=\"queries\""),
        .backoff_ms = &backoff_ms};
    lc_gauge_t *db_up = lc_metrics_gauge(metrics, "lcore_store_database_up",
                                         "1 when PostgreSQL accepted the last write", NULL);
    lc_gauge_set(db_up, 1);
    lc_gauge_t *g_workers =
        lc_metrics_gauge(metrics, "lcore_store_workers_connected",
                         "Crypto worker connections on the sealed socket", NULL);
    lc_admin_set_ready(admin, 1, "");
    lc_info("started", "batch_max=%lld batch_wait_ms=%lld", cfg.batch_max, cfg.batch_wait_ms);

    uint64_t retry_at = 0;
    while (!zsys_interrupted) {
        uint64_t now = lc_mono_us();
        uint64_t due = backoff_ms ? retry_at : st_writer_deadline(writer);
        long timeout = 1000;
        if (due)
            timeout = due > now ? (long)((due - now + 999) / 1000) : 0;
        /* While a batch waits for the database, leave new work queued in ZeroMQ: the workers
         * feel the backpressure instead of the store growing without bound. */
        int take_sealed = !backoff_ms && !st_writer_full(writer);
        zmq_pollitem_t items[2] = {{zsock_resolve(queries), 0, ZMQ_POLLIN, 0},
                                   {zsock_resolve(sealed), 0, ZMQ_POLLIN, 0}};
        int n = zmq_poll(items, take_sealed ? 2 : 1, timeout);
        if (n < 0 && errno != EINTR)
            break;
        lc_gauge_set(g_workers, lc_zmq_peers_update(workers));
        if (n > 0 && (items[0].revents & ZMQ_POLLIN))
            for (int i = 0; i < 100 && (zsock_events(queries) & ZMQ_POLLIN); i++)
                s_answer(queries, &qctx);
        if (take_sealed)
            s_drain_sealed(sealed, writer);
        now = lc_mono_us();
        int due_now = st_writer_pending(writer) &&
                      (st_writer_full(writer) || now >= st_writer_deadline(writer));
        if (backoff_ms && now < retry_at)
            due_now = 0;
        if (!due_now)
            continue;
        if (st_writer_flush(writer) == 0) {
            if (backoff_ms) {
                lc_info("database_recovered", NULL);
                lc_admin_set_ready(admin, 1, "");
                lc_gauge_set(db_up, 1);
            }
            backoff_ms = 0;
        } else {
            if (!backoff_ms) {
                lc_warn("database_unavailable", "pending=%zu", st_writer_pending(writer));
                lc_admin_set_ready(admin, 0, "PostgreSQL unavailable");
                lc_gauge_set(db_up, 0);
            }
            backoff_ms = backoff_ms ? (backoff_ms < 5000 ? backoff_ms * 2 : 5000) : 100;
            retry_at = lc_mono_us() + (uint64_t)backoff_ms * 1000u;
        }
    }
    lc_info("stopping", "pending=%zu", st_writer_pending(writer));
    lc_admin_set_ready(admin, 0, "shutting down");
    /* Finish what is in hand: a last drain and write. What cannot be written is not acked, so
     * its gateway redelivers it. */
    s_drain_sealed(sealed, writer);
    if (st_writer_flush(writer) < 0)
        lc_warn("shutdown_unwritten", "records=%zu", st_writer_pending(writer));
    exit_code = 0;
out:
    st_writer_destroy(&writer);
    lc_zmq_peers_destroy(&workers);
    zsock_destroy(&queries);
    zsock_destroy(&events);
    zsock_destroy(&sealed);
    st_db_destroy(&qdb);
    st_db_destroy(&db);
    lc_admin_destroy(&admin);
    lc_metrics_destroy(&metrics);
    lc_info("exited", "code=%d", exit_code);
    return exit_code;
}
