/* lcore-store: the only writer of records to PostgreSQL. Batches sealed records from the crypto
 * workers into idempotent transactions, acknowledges each record to its gateway after commit,
 * and answers device and record queries. `lcore-store migrate` (as the owner role) applies the
 * schema and the service roles' grants; the service itself never changes the schema.
 * main: config -> log -> resources -> loop -> teardown in reverse. */
#include <czmq.h>
#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include "lc_http.h"
#include "lc_log.h"
#include "lc_service.h"
#include "lc_zmq.h"
#include "st_config.h"
#include "st_db.h"
#include "st_schema.h"
#include "st_writer.h"

typedef struct {
    st_db_t *queries_db;
    lc_curve_t *curve;
    lc_counter_t *queries, *bad, *unauthorized;
    const int *backoff_ms; /* the writer's: > 0 while PostgreSQL is down (pings say so) */
} s_query_ctx_t;

/* Which peers may ask what: every query on this link today is a gateway's (registration only
 * after the gateway checked the operator token, record status, dead letters from its relay). */
static unsigned s_query_roles(Lcore__V1__Query__BodyCase body)
{
    (void)body;
    return LC_ROLE_GATEWAY;
}

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
    if (!lc_curve_from(ctx->curve, zframe_meta(body, "User-Id"), s_query_roles(q->body_case))) {
        lc_counter_inc(ctx->unauthorized);
        lc_warn("query_unauthorized", "peer=%s query=%d", zframe_meta(body, "User-Id"),
                (int)q->body_case);
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

/* Takes every sealed record already queued, up to a full batch, without blocking. Only a crypto
 * worker's messages are taken (the ZAP handler admits no one else on this socket). */
static void s_drain_sealed(zsock_t *pull, st_writer_t *writer, lc_curve_t *curve,
                           lc_counter_t *unauthorized)
{
    void *h = zsock_resolve(pull);
    while (!st_writer_full(writer)) {
        zmq_msg_t m;
        zmq_msg_init(&m);
        if (zmq_msg_recv(&m, h, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&m);
            return;
        }
        if (lc_curve_from(curve, zmq_msg_gets(&m, "User-Id"), LC_ROLE_CRYPTO))
            st_writer_take(writer, zmq_msg_data(&m), zmq_msg_size(&m));
        else
            lc_counter_inc(unauthorized);
        zmq_msg_close(&m);
    }
}

/* `lcore-store migrate`: as the owner role, under the migration lock; says on stdout what it
 * did. PostgreSQL gets 30 s to come up (a one-shot started next to it). Exit 0 or 1. */
static int s_migrate(const st_config_t *cfg)
{
    st_db_t *db = NULL;
    for (int delay = 100, waited = 0; !(db = st_db_new(cfg->pg_dsn, NULL)); waited += delay) {
        if (zsys_interrupted || waited >= 30000) {
            fprintf(stderr, "lcore-store migrate: cannot connect to PostgreSQL (see the log)\n");
            return 1;
        }
        zclock_sleep(delay);
        delay = delay < 5000 ? delay * 2 : 5000;
    }
    int rc = st_db_migrate(db, cfg->store_db_role, NULL, stdout);
    st_db_destroy(&db);
    if (rc < 0)
        fprintf(stderr, "lcore-store migrate: failed: %s (see the log)\n", lc_strerror(rc));
    return rc < 0 ? 1 : 0;
}

/* PostgreSQL may come up after us (compose, boot order) and `lcore-store migrate` may not have
 * run yet: wait for both, with backoff, not ready meanwhile with the reason (logged once each
 * time it changes). NULL when interrupted. */
static st_db_t *s_wait_for_schema(const char *dsn, const char *store_id, lc_admin_t *admin)
{
    char why[160], said[160] = "";
    for (int delay = 100; !zsys_interrupted; delay = delay < 5000 ? delay * 2 : 5000) {
        st_db_t *db = st_db_new(dsn, store_id);
        int rc = db ? st_db_schema_check(db, why, sizeof why) : LC_ERR_UNAVAILABLE;
        if (rc == 0) {
            if (said[0])
                lc_info("schema_ready", "version=%d", st_schema_version());
            return db;
        }
        if (!db)
            snprintf(why, sizeof why, "PostgreSQL unavailable");
        st_db_destroy(&db);
        lc_admin_set_ready(admin, 0, why);
        if (strcmp(why, said) != 0) {
            lc_warn("waiting_for_schema", "version=%d reason=\"%s\"", st_schema_version(), why);
            snprintf(said, sizeof said, "%s", why);
        }
        zclock_sleep(delay);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    static st_config_t cfg;
    const char *cmd = argc > 1 && argv[1][0] != '-' ? argv[1] : NULL;
    int rc = lc_service_start(
        cmd ? 1 : argc, argv, "lcore-store",
        "The only writer of records to PostgreSQL: batched, idempotent, acked.\n"
        "Commands: (none) run the store, as its own role (LCORE_STORE_DB_ROLE), once the\n"
        "database is migrated (until then /readyz says why, and the store waits);\n"
        "migrate: apply the store's migrations, then grant the store's role exactly its\n"
        "privileges on them (lcore-chain migrate does the chain's); run with LCORE_PG_DSN =\n"
        "the owner role's DSN; idempotent.",
        &cfg, st_config_opts, st_config_opts_len);
    if (rc >= 0)
        return rc;
    if (cmd && strcmp(cmd, "migrate") == 0)
        return s_migrate(&cfg);
    if (cmd) {
        fprintf(stderr, "lcore-store: unknown command '%s' (migrate)\n", cmd);
        return 2;
    }

    int exit_code = 1;
    lc_metrics_t *metrics = lc_metrics_new();
    lc_admin_t *admin = NULL;
    st_db_t *db = NULL, *qdb = NULL;
    zsock_t *sealed = NULL, *events = NULL, *queries = NULL;
    st_writer_t *writer = NULL;
    lc_curve_t *curve = NULL;
    lc_zmq_peers_t *workers = NULL, *subscribers = NULL, *askers = NULL;
    if (!metrics || !(admin = lc_admin_new(cfg.admin_bind, metrics, "store")))
        goto out;
    lc_admin_set_ready(admin, 0, "connecting to PostgreSQL");
    if (!(db = s_wait_for_schema(cfg.pg_dsn, cfg.store_id, admin)) ||
        !(qdb = st_db_new(cfg.pg_dsn, NULL)))
        goto out;
    if (!(curve = lc_curve_new(&cfg.curve, "store", metrics)))
        goto out;
    lc_zmq_opts_t so = {.name = "sealed",
                        .type = ZMQ_PULL,
                        .endpoints = cfg.sealed_bind,
                        .bind = 1,
                        .roles = LC_ROLE_CRYPTO,
                        .hwm = (int)cfg.sealed_hwm,
                        .max_msg = cfg.max_ciphertext_bytes + LC_ZMQ_ENVELOPE_OVERHEAD};
    lc_zmq_opts_t eo = {.name = "events",
                        .type = ZMQ_PUB,
                        .endpoints = cfg.events_bind,
                        .bind = 1,
                        .roles = LC_ROLE_GATEWAY | LC_ROLE_CHAIN,
                        .hwm = 100000,
                        .linger_ms = 1000,
                        .max_msg = LC_ZMQ_SEND_ONLY_MAX};
    lc_zmq_opts_t qo = {.name = "queries",
                        .type = ZMQ_ROUTER,
                        .endpoints = cfg.queries_bind,
                        .bind = 1,
                        .roles = LC_ROLE_GATEWAY,
                        .hwm = 1000,
                        .max_msg = LC_ZMQ_QUERY_MAX};
    sealed = lc_zmq_open(&so, curve, &workers);
    events = lc_zmq_open(&eo, curve, &subscribers);
    queries = lc_zmq_open(&qo, curve, &askers);
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
    static const char unauth_help[] =
        "Messages refused because the authenticated peer's role may not send them, by socket";
    lc_counter_t *sealed_unauthorized = lc_metrics_counter(
        metrics, "lcore_store_unauthorized_messages_total", unauth_help, "socket=\"sealed\"");
    s_query_ctx_t qctx = {
        .queries_db = qdb,
        .curve = curve,
        .unauthorized = lc_metrics_counter(metrics, "lcore_store_unauthorized_messages_total",
                                           unauth_help, "socket=\"queries\""),
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
        lc_zmq_peers_update(subscribers); /* counts refused handshakes */
        lc_zmq_peers_update(askers);
        if (n > 0 && (items[0].revents & ZMQ_POLLIN))
            for (int i = 0; i < 100 && (zsock_events(queries) & ZMQ_POLLIN); i++)
                s_answer(queries, &qctx);
        if (take_sealed)
            s_drain_sealed(sealed, writer, curve, sealed_unauthorized);
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
    s_drain_sealed(sealed, writer, curve, sealed_unauthorized);
    if (st_writer_flush(writer) < 0)
        lc_warn("shutdown_unwritten", "records=%zu", st_writer_pending(writer));
    exit_code = 0;
out:
    st_writer_destroy(&writer);
    lc_zmq_peers_destroy(&workers);
    lc_zmq_peers_destroy(&subscribers);
    lc_zmq_peers_destroy(&askers);
    zsock_destroy(&queries);
    zsock_destroy(&events);
    zsock_destroy(&sealed);
    st_db_destroy(&qdb);
    st_db_destroy(&db);
    lc_curve_destroy(&curve);
    lc_admin_destroy(&admin);
    lc_metrics_destroy(&metrics);
    lc_info("exited", "code=%d", exit_code);
    return exit_code;
}
