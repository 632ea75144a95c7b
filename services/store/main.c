/* lcore-store: the only writer of records to PostgreSQL. Gathers sealed records from the crypto
 * workers into write batches, each one idempotent transaction, acknowledges each record to its
 * gateway after commit, and answers device and record queries. `lcore-store migrate` (as the owner
 * role) applies the schema and the service roles' grants; the service itself never changes the
 * schema. main: config -> log -> resources -> loop -> teardown in reverse. */
#include <czmq.h>
#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "lc_http.h"
#include "lc_log.h"
#include "lc_pg.h"
#include "lc_query.h"
#include "lc_record.h"
#include "lc_service.h"
#include "lc_zmq.h"
#include "st_config.h"
#include "st_db.h"
#include "st_schema.h"
#include "st_seq_ranges.h"
#include "st_letters.h"
#include "st_writer.h"

/* Which peers may ask what: devices, record status and dead letters are the gateways' (a
 * registration only after the gateway checked the operator token), and so are the operator and
 * reader APIs' bodies (st_admin: the gateway checked the bearer token and names it in
 * Query.actor); the relayer catches up with the stores' records; a sealed record goes to a
 * gateway for a reader's open (the crypto tier opens it) and to an operator's lcore-cli, which
 * decrypts it locally; gateways and the relayer may ping. */
static unsigned s_query_roles(Lcore__V1__Query__BodyCase body)
{
    switch (body) {
    case LCORE__V1__QUERY__BODY_GET_SEALED: /* a reader's open goes through a gateway */
        return LC_ROLE_GATEWAY | LC_ROLE_OPERATOR;
    case LCORE__V1__QUERY__BODY_LIST_DEAD_LETTERS:
    case LCORE__V1__QUERY__BODY_REPLAY_DEAD_LETTERS:
        return LC_ROLE_OPERATOR;
    case LCORE__V1__QUERY__BODY_GET_DEVICE:
        return LC_ROLE_GATEWAY | LC_ROLE_OPERATOR;
    case LCORE__V1__QUERY__BODY_RECORDS_AFTER:
    case LCORE__V1__QUERY__BODY_STORE_POSITIONS:
        return LC_ROLE_CHAIN;
    case LCORE__V1__QUERY__BODY_PING:
        return LC_ROLE_GATEWAY | LC_ROLE_CHAIN;
    case LCORE__V1__QUERY__BODY_LIST_DEVICES:
    case LCORE__V1__QUERY__BODY_SET_DEVICE_STATUS:
    case LCORE__V1__QUERY__BODY_ROTATE_KEY:
    case LCORE__V1__QUERY__BODY_CREATE_TOKEN:
    case LCORE__V1__QUERY__BODY_LIST_TOKENS:
    case LCORE__V1__QUERY__BODY_DELETE_TOKEN:
    case LCORE__V1__QUERY__BODY_GET_TOKEN:
    case LCORE__V1__QUERY__BODY_APPEND_AUDIT:
    case LCORE__V1__QUERY__BODY_LIST_AUDIT:
    case LCORE__V1__QUERY__BODY_LIST_RECORDS:
        return LC_ROLE_GATEWAY;
    default:
        return LC_ROLE_GATEWAY;
    }
}

/* The queries link's answers come from their own connection (a query never waits behind a
 * write batch's transaction); a ping says whether the writer can write (not while it backs off
 * because PostgreSQL is down). */
typedef struct {
    st_db_t *db;
    const int *backoff_ms;
    st_letters_t letters; /* operators' dead-letter queries (the writer's thread: this one) */
} s_answer_ctx_t;

static void s_answer(void *ctx, const Lcore__V1__Query *q, Lcore__V1__QueryReply *reply)
{
    const s_answer_ctx_t *a = ctx;
    if (q->body_case == LCORE__V1__QUERY__BODY_LIST_DEAD_LETTERS ||
        q->body_case == LCORE__V1__QUERY__BODY_REPLAY_DEAD_LETTERS)
        st_letters_answer(&a->letters, q, reply);
    else
        st_db_answer(a->db, q, *a->backoff_ms == 0, reply);
}

static void s_clear(void *ctx, Lcore__V1__QueryReply *reply)
{
    (void)ctx;
    st_db_reply_clear(reply);
}

/* Takes every sealed record already queued, up to a full write batch, without blocking. Only a
 * crypto worker's messages are taken (the ZAP handler admits no one else on this socket). */
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

static void *s_connect_query_only(void *arg)
{
    return st_db_new(arg, NULL);
}

/* `lcore-store migrate`: as the owner role, under the migration lock; says on stdout what it
 * did. PostgreSQL gets 30 s to come up (a one-shot started next to it). Exit 0 or 1. */
static int s_migrate(const st_config_t *cfg)
{
    static unsigned wait_ms = 30000; /* PostgreSQL may come up next to a one-shot */
    st_db_t *db =
        lc_pg_retry(s_connect_query_only, (void *)cfg->pg_dsn, 5000, lc_service_give_up, &wait_ms);
    if (!db) {
        fprintf(stderr, "lcore-store migrate: cannot connect to PostgreSQL (see the log)\n");
        return 1;
    }
    int rc = st_db_migrate(db, cfg->store_db_role, NULL, stdout);
    st_db_destroy(&db);
    if (rc < 0)
        fprintf(stderr, "lcore-store migrate: failed: %s (see the log)\n", lc_strerror(rc));
    return rc < 0 ? 1 : 0;
}

/* One try of s_wait_for_schema: connected, migrated, and this store_id is ours. */
typedef struct {
    const st_config_t *cfg;
    lc_admin_t *admin;
    char said[160]; /* the last reason logged */
} s_schema_wait_t;

static void *s_try_schema(void *arg)
{
    s_schema_wait_t *w = arg;
    char why[160];
    st_db_t *db = st_db_new(w->cfg->pg_dsn, w->cfg->store_id);
    int rc = db ? st_db_schema_check(db, why, sizeof why) : LC_ERR_UNAVAILABLE;
    if (rc == 0) {
        if (w->said[0])
            lc_info("schema_ready", "version=%d", st_schema_version());
        return db;
    }
    if (!db)
        snprintf(why, sizeof why, "PostgreSQL unavailable");
    st_db_destroy(&db);
    lc_admin_set_ready(w->admin, 0, why);
    if (strcmp(why, w->said) != 0) {
        lc_warn("waiting_for_schema", "version=%d reason=\"%s\"", st_schema_version(), why);
        snprintf(w->said, sizeof w->said, "%s", why);
    }
    return NULL;
}

/* PostgreSQL may come up after us (compose, boot order) and `lcore-store migrate` may not have
 * run yet: wait for both, with lc_pg's backoff, not ready meanwhile with the reason (logged once
 * each time it changes). NULL when interrupted. */
static st_db_t *s_wait_for_schema(const st_config_t *cfg, lc_admin_t *admin)
{
    s_schema_wait_t w = {.cfg = cfg, .admin = admin};
    return lc_pg_retry(s_try_schema, &w, 5000, lc_service_give_up, NULL);
}

/* Everything the running store holds, in the order it is made (and unmade in reverse). */
typedef struct {
    st_config_t *cfg;
    lc_service_t *svc;
    lc_metrics_t *metrics; /* the service's (borrowed from svc) */
    lc_admin_t *admin;
    lc_curve_t *curve;
    st_db_t *db, *qdb; /* the writer's connection (holds the store_id), the queries' */
    zsock_t *sealed, *events, *queries;
    lc_zmq_peers_t *workers, *subscribers, *askers;
    st_writer_t *writer;
    s_answer_ctx_t answer_ctx;
    lc_query_server_t server;
    lc_counter_t *sealed_unauthorized;
    lc_gauge_t *db_up, *g_workers, *g_gaps;
    uint64_t gaps_at; /* when to count the devices with gaps again (lc_mono_us) */
    int backoff_ms;   /* > 0 while the database is down */
    uint64_t retry_at;
} s_store_t;

/* LCORE_STORE_ID, or the host name: a word of [A-Za-z0-9._:-] (it is a topic segment and a row in
 * `stores`). Stable across restarts, so that the store's positions go on where they stopped. */
static int s_store_id(st_config_t *cfg)
{
    if (!cfg->store_id[0]) {
        char host[LC_STORE_ID_MAX + 1] = "store";
        gethostname(host, sizeof host);
        host[sizeof host - 1] = '\0';
        snprintf(cfg->store_id, sizeof cfg->store_id, "%s", host);
    }
    if (lc_store_id_valid(cfg->store_id, strlen(cfg->store_id)))
        return 0;
    fprintf(stderr, "lcore-store: LCORE_STORE_ID '%s' must be 1 to %d of [A-Za-z0-9._:-]\n",
            cfg->store_id, LC_STORE_ID_MAX);
    return -1;
}

static int s_open_sockets(s_store_t *s)
{
    const st_config_t *cfg = s->cfg;
    lc_zmq_opts_t so = {
        .name = "sealed",
        .type = ZMQ_PULL,
        .endpoints = cfg->sealed_bind,
        .bind = 1,
        .roles = LC_ROLE_CRYPTO,
        .hwm = (int)cfg->sealed_hwm,
        .max_msg = lc_zmq_batch_max_msg(cfg->max_ciphertext_bytes + LC_ZMQ_ENVELOPE_OVERHEAD)};
    lc_zmq_opts_t eo = {.name = "events",
                        .type = ZMQ_PUB,
                        .endpoints = cfg->events_bind,
                        .bind = 1,
                        .roles = LC_ROLE_GATEWAY | LC_ROLE_CHAIN,
                        .hwm = 100000,
                        .linger_ms = 1000,
                        .max_msg = LC_ZMQ_SEND_ONLY_MAX};
    lc_zmq_opts_t qo = {.name = "queries",
                        .type = ZMQ_ROUTER,
                        .endpoints = cfg->queries_bind,
                        .bind = 1,
                        .roles = LC_ROLE_GATEWAY | LC_ROLE_CHAIN | LC_ROLE_OPERATOR,
                        .hwm = 1000,
                        /* a gateway's dead letter carries its reading, sealed */
                        .max_msg = LC_ZMQ_QUERY_MAX + cfg->max_ciphertext_bytes};
    s->sealed = lc_zmq_open(&so, s->curve, &s->workers);
    s->events = lc_zmq_open(&eo, s->curve, &s->subscribers);
    s->queries = lc_zmq_open(&qo, s->curve, &s->askers);
    return s->sealed && s->events && s->queries ? 0 : -1;
}

static void s_register_metrics(s_store_t *s)
{
    lc_metrics_t *m = s->metrics;
    /* Dead letters arrive from gateways (queries) and from the writer: counted on both. */
    static const char dl_help[] = "Readings given up on and recorded in dead_letters, by stage";
    lc_counter_t *dl_crypto = lc_metrics_counter(m, "lcore_store_dead_letters_total", dl_help,
                                                 "stage=\"crypto\""),
                 *dl_store = lc_metrics_counter(m, "lcore_store_dead_letters_total", dl_help,
                                                "stage=\"store\"");
    st_db_count_dead_letters(s->db, dl_crypto, dl_store);
    st_db_count_dead_letters(s->qdb, dl_crypto, dl_store);
    st_db_publish_changes(s->qdb, s->events); /* revocations, rotations, deleted tokens */
    s->sealed_unauthorized = lc_metrics_counter(
        m, "lcore_store_unauthorized_messages_total",
        "Messages refused because the authenticated peer's role may not send them, by socket",
        "socket=\"sealed\"");
    s->answer_ctx = (s_answer_ctx_t){
        .db = s->qdb,
        .backoff_ms = &s->backoff_ms,
        .letters = {.pg = st_db_pg(s->qdb), .writer = s->writer, .events = s->events}};
    s->server = (lc_query_server_t){.roles = s_query_roles,
                                    .answer = s_answer,
                                    .clear = s_clear,
                                    .ctx = &s->answer_ctx,
                                    .curve = s->curve};
    lc_query_server_count(&s->server, m, "lcore_store");
    s->db_up = lc_metrics_gauge(m, "lcore_store_database_up",
                                "1 when PostgreSQL accepted the last write", NULL);
    lc_gauge_set(s->db_up, 1);
    s->g_workers = lc_metrics_gauge(m, "lcore_store_workers_connected",
                                    "Crypto worker connections on the sealed socket", NULL);
    s->g_gaps = lc_metrics_gauge(m, "lcore_store_devices_with_gaps",
                                 "Devices with seqs never received below their last_seq", NULL);
}

/* lcore_store_devices_with_gaps, counted again every ST_GAPS_EVERY_US on the queries' connection
 * (one statement over device_seq_ranges; no per-device label). Kept as it was when it fails. */
#define ST_GAPS_EVERY_US 2000000u
static void s_count_gaps(s_store_t *s, uint64_t now)
{
    if (now < s->gaps_at)
        return;
    s->gaps_at = now + ST_GAPS_EVERY_US;
    uint64_t n = 0;
    if (!s->backoff_ms && st_seq_ranges_devices_with_gaps(st_db_pg(s->qdb), &n) == 0)
        lc_gauge_set(s->g_gaps, (double)n);
}

/* Resources in order; 0 when the store can run. */
static int s_open(s_store_t *s)
{
    const st_config_t *cfg = s->cfg;
    if (!(s->svc =
              lc_service_new("store", cfg->admin_bind, &cfg->curve, "connecting to PostgreSQL")))
        return -1;
    s->metrics = lc_service_metrics(s->svc);
    s->admin = lc_service_admin(s->svc);
    s->curve = lc_service_curve(s->svc);
    if (!(s->db = s_wait_for_schema(cfg, s->admin)) || !(s->qdb = st_db_new(cfg->pg_dsn, NULL)) ||
        s_open_sockets(s) < 0)
        return -1;
    s->writer =
        st_writer_new(s->db, s->events, (size_t)cfg->write_batch_max, (int)cfg->write_batch_wait_ms,
                      (size_t)cfg->max_ciphertext_bytes, s->metrics);
    if (!s->writer)
        return -1;
    s_register_metrics(s);
    return 0;
}

static void s_close(s_store_t *s)
{
    st_writer_destroy(&s->writer);
    lc_zmq_peers_destroy(&s->workers);
    lc_zmq_peers_destroy(&s->subscribers);
    lc_zmq_peers_destroy(&s->askers);
    zsock_destroy(&s->queries);
    zsock_destroy(&s->events);
    zsock_destroy(&s->sealed);
    st_db_destroy(&s->qdb);
    st_db_destroy(&s->db);
    lc_service_destroy(&s->svc);
}

/* Writes the pending write batch; on failure backs off (doubling, up to 5 s), not ready. */
static void s_flush(s_store_t *s)
{
    if (st_writer_flush(s->writer) == 0) {
        if (s->backoff_ms) {
            lc_info("database_recovered", NULL);
            lc_admin_set_ready(s->admin, 1, "");
            lc_gauge_set(s->db_up, 1);
        }
        s->backoff_ms = 0;
        return;
    }
    if (!s->backoff_ms) {
        lc_warn("database_unavailable", "pending=%zu", st_writer_pending(s->writer));
        lc_admin_set_ready(s->admin, 0, "PostgreSQL unavailable");
        lc_gauge_set(s->db_up, 0);
    }
    s->backoff_ms = s->backoff_ms ? (s->backoff_ms < 5000 ? s->backoff_ms * 2 : 5000) : 100;
    s->retry_at = lc_mono_us() + (uint64_t)s->backoff_ms * 1000u;
}

/* One turn of the loop: answer queries, take sealed records, write when a write batch is due.
 * Returns -1 when polling failed. */
static int s_turn(s_store_t *s)
{
    uint64_t now = lc_mono_us();
    uint64_t due = s->backoff_ms ? s->retry_at : st_writer_deadline(s->writer);
    long timeout = 1000;
    if (due)
        timeout = due > now ? (long)((due - now + 999) / 1000) : 0;
    /* While a write batch waits for the database, leave new work queued in ZeroMQ: the workers feel
     * the backpressure instead of the store growing without bound. */
    int take_sealed = !s->backoff_ms && !st_writer_full(s->writer);
    zmq_pollitem_t items[2] = {{zsock_resolve(s->queries), 0, ZMQ_POLLIN, 0},
                               {zsock_resolve(s->sealed), 0, ZMQ_POLLIN, 0}};
    int n = zmq_poll(items, take_sealed ? 2 : 1, timeout);
    if (n < 0 && errno != EINTR)
        return -1;
    lc_gauge_set(s->g_workers, lc_zmq_peers_update(s->workers));
    lc_zmq_peers_update(s->subscribers); /* counts refused handshakes */
    lc_zmq_peers_update(s->askers);
    if (n > 0 && (items[0].revents & ZMQ_POLLIN))
        lc_query_serve(s->queries, &s->server, 100);
    if (take_sealed)
        s_drain_sealed(s->sealed, s->writer, s->curve, s->sealed_unauthorized);
    now = lc_mono_us();
    int due_now = st_writer_pending(s->writer) &&
                  (st_writer_full(s->writer) || now >= st_writer_deadline(s->writer));
    if (due_now && !(s->backoff_ms && now < s->retry_at))
        s_flush(s);
    s_count_gaps(s, now);
    return 0;
}

int main(int argc, char **argv)
{
    static st_config_t cfg;
    const char *cmd = argc > 1 && argv[1][0] != '-' ? argv[1] : NULL;
    int rc = lc_service_start(
        cmd ? 1 : argc, argv, "lcore-store",
        "The only writer of records to PostgreSQL: in write batches, idempotent, acked.\n"
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
    if (s_store_id(&cfg) < 0)
        return 2;
    int exit_code = 1;
    s_store_t s = {.cfg = &cfg};
    if (s_open(&s) == 0) {
        lc_admin_set_ready(s.admin, 1, "");
        lc_info("started", "store_id=%s write_batch_max=%lld write_batch_wait_ms=%lld",
                cfg.store_id, cfg.write_batch_max, cfg.write_batch_wait_ms);
        while (!zsys_interrupted && s_turn(&s) == 0)
            ;
        lc_info("stopping", "pending=%zu", st_writer_pending(s.writer));
        lc_admin_set_ready(s.admin, 0, "shutting down");
        /* Finish what is in hand: a last drain and write. What cannot be written is not acked,
         * so its gateway redelivers it. */
        s_drain_sealed(s.sealed, s.writer, s.curve, s.sealed_unauthorized);
        if (st_writer_flush(s.writer) < 0)
            lc_warn("shutdown_unwritten", "records=%zu", st_writer_pending(s.writer));
        exit_code = 0;
    }
    s_close(&s);
    lc_info("exited", "code=%d", exit_code);
    return exit_code;
}
