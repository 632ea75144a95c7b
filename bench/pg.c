/* lcore-bench-pg: the PostgreSQL ceiling of the store's write path. Connects like the store
 * (st_db_new, then st_db_migrate: the migrations, no grants), registers a bench device through the
 * store's own query code (st_db_answer), then for --seconds of insert time writes write batches of
 * --rows fresh records with st_db_insert_records: the store's multi-row INSERT ... ON CONFLICT DO
 * NOTHING, one transaction per write batch, with the server's fsync and synchronous_commit as
 * configured (they are reported, never changed). Every row is a real record: a freshly signed
 * reading sealed under its own record_id. Signing and sealing happen between write batches and are
 * not timed. The rows are numbered under the store_id "bench" (its own positions; a running
 * lcore-store has another store_id). At the end the bench rows and device are deleted (unless
 * --keep); "rows_kept" counts what is left of them (0 unless a delete failed): an lcore-chain fed
 * by the store keeps its own copy of what it anchored, nothing refers to `records`. One JSON object
 * on stdout; exit 0, 1 on failure (reason on stderr), 2 on bad usage. */
#include <getopt.h>
#include <libpq-fe.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench_util.h"
#include "lc_keyring.h"
#include "lc_log.h"
#include "lc_pg.h"
#include "st_db.h"

#define PROG "lcore-bench-pg"

typedef struct {
    const char *dsn;
    const char *keyring; /* NULL: a fresh ring in a temporary directory */
    double seconds;
    uint64_t rows;
    double timeout_s;
    int keep;
} pg_opts_t;

static void s_usage(FILE *out)
{
    fprintf(
        out,
        "usage: " PROG " --dsn DSN [--seconds S] [--rows N] [--keyring PATH] [--keep]\n"
        "          [--timeout S]\n"
        "  Inserts write batches of N sealed records (default 500) into the real records table\n"
        "  with the store's own INSERT path for S seconds of insert time (default 2).\n"
        "  --dsn DSN       PostgreSQL connection string (default: $LCORE_PG_DSN)\n"
        "  --keyring PATH  seal with this key ring (default: a fresh one in a temp dir)\n"
        "  --keep          leave the bench rows and device in the database\n"
        "  --timeout S     give up after S seconds of wall time (default 120)\n");
}

static int s_parse(pg_opts_t *o, int argc, char **argv)
{
    static const struct option longopts[] = {
        {"dsn", required_argument, NULL, 'd'},  {"seconds", required_argument, NULL, 's'},
        {"rows", required_argument, NULL, 'r'}, {"keyring", required_argument, NULL, 'k'},
        {"keep", no_argument, NULL, 'K'},       {"timeout", required_argument, NULL, 't'},
        {"help", no_argument, NULL, 'h'},       {0}};
    *o = (pg_opts_t){.dsn = getenv("LCORE_PG_DSN"), .seconds = 2, .rows = 500, .timeout_s = 120};
    int c;
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (c) {
        case 'd':
            o->dsn = optarg;
            break;
        case 's':
            if (bench_parse_double(PROG, "--seconds", optarg, 0.05, 600, &o->seconds) < 0)
                return 2;
            break;
        case 'r':
            if (bench_parse_u64(PROG, "--rows", optarg, 1, 5000, &o->rows) < 0)
                return 2;
            break;
        case 'k':
            o->keyring = optarg;
            break;
        case 'K':
            o->keep = 1;
            break;
        case 't':
            if (bench_parse_double(PROG, "--timeout", optarg, 1, 86400, &o->timeout_s) < 0)
                return 2;
            break;
        case 'h':
            s_usage(stdout);
            return 1;
        default:
            s_usage(stderr);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, PROG ": unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    if (!o->dsn || !*o->dsn) {
        fprintf(stderr, PROG ": --dsn (or LCORE_PG_DSN) is required\n");
        return 2;
    }
    return 0;
}

/* The value of a server setting ("?" when it cannot be read). */
static void s_show(PGconn *conn, const char *name, char *out, size_t cap)
{
    char sql[64];
    snprintf(sql, sizeof sql, "SHOW %s", name);
    PGresult *r = PQexec(conn, sql);
    snprintf(out, cap, "%s", PQresultStatus(r) == PGRES_TUPLES_OK ? PQgetvalue(r, 0, 0) : "?");
    PQclear(r);
}

/* Registers the device the way a gateway's registration reaches the store. */
static int s_register(st_db_t *db, const bench_device_t *dev)
{
    Lcore__V1__Device d;
    Lcore__V1__Query q;
    bench_register_query(&q, &d, dev);
    Lcore__V1__QueryReply reply = LCORE__V1__QUERY_REPLY__INIT;
    st_db_answer(db, &q, 1, &reply);
    int ok = reply.status == LCORE__V1__QUERY_REPLY__STATUS__CREATED ||
             reply.status == LCORE__V1__QUERY_REPLY__STATUS__OK;
    if (!ok)
        fprintf(stderr, PROG ": registering %s failed: status %d %s\n", dev->id, reply.status,
                reply.message ? reply.message : "");
    st_db_reply_clear(&reply);
    return ok ? 0 : -1;
}

/* Deletes the bench rows, then the device (its seq ranges and keys) if no record refers to it.
 * *deleted and *kept receive the row counts. */
static int s_cleanup(PGconn *conn, const char *device_id, long *deleted, long *kept)
{
    const char *v[1] = {device_id};
    PGresult *r =
        PQexecParams(conn, "DELETE FROM records WHERE device_id = $1", 1, NULL, v, NULL, NULL, 0);
    int ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    if (!ok)
        fprintf(stderr, PROG ": deleting the bench rows failed: %s", PQresultErrorMessage(r));
    *deleted = ok ? atol(PQcmdTuples(r)) : 0;
    PQclear(r);
    r = PQexecParams(conn, "SELECT count(*) FROM records WHERE device_id = $1", 1, NULL, v, NULL,
                     NULL, 0);
    *kept = PQresultStatus(r) == PGRES_TUPLES_OK ? atol(PQgetvalue(r, 0, 0)) : -1;
    PQclear(r);
    if (ok && *kept == 0) {
        /* The device's seq ranges (derived from its records) and its keys go with it (its
         * registration's audit_log row stays: the log is append-only). */
        r = PQexecParams(conn,
                         "WITH g AS (DELETE FROM device_seq_ranges WHERE device_id = $1),"
                         " k AS (DELETE FROM device_keys WHERE device_id = $1)"
                         " DELETE FROM devices WHERE device_id = $1",
                         1, NULL, v, NULL, NULL, 0);
        ok = PQresultStatus(r) == PGRES_COMMAND_OK;
        if (!ok)
            fprintf(stderr, PROG ": deleting the bench device failed: %s", PQresultErrorMessage(r));
        PQclear(r);
    } else if (*kept > 0) {
        fprintf(stderr, PROG ": kept %ld rows of %s\n", *kept, device_id);
    }
    return ok ? 0 : -1;
}

int main(int argc, char **argv)
{
    pg_opts_t o;
    int rc = s_parse(&o, argc, argv);
    if (rc)
        return rc == 1 ? 0 : rc;
    if (sodium_init() < 0) {
        fprintf(stderr, PROG ": libsodium failed to initialise\n");
        return 1;
    }
    lc_log_init("bench", LC_LOG_WARN);

    int exit_code = 1, registered = 0;
    char dir[] = "/tmp/lcore-bench-XXXXXX", tmp_ring[64] = "";
    st_db_t *db = NULL;
    PGconn *conn = NULL;
    lc_keyring_t *ring = NULL;
    lc_sealer_t *sealer = NULL;
    bench_sealed_t *recs = calloc(o.rows, sizeof *recs);
    Lcore__V1__SealedRecord **ptrs = calloc(o.rows, sizeof *ptrs);
    size_t cap = 1024, write_batches = 0;
    double *write_batch_s = malloc(cap * sizeof *write_batch_s);
    static bench_device_t dev;
    char run[9], device_id[32], fsync_s[16], sync_s[16];
    bench_run_id(run);
    snprintf(device_id, sizeof device_id, "bench-pg-%s", run);
    if (!recs || !ptrs || !write_batch_s)
        goto out;

    if (!(db = st_db_new(o.dsn, "bench")) || st_db_migrate(db, NULL, NULL, stderr) < 0 ||
        !(conn = lc_pg_connect(o.dsn, PROG))) {
        fprintf(stderr, PROG ": cannot connect to PostgreSQL or apply the migrations (see the "
                             "log line above)\n");
        goto out;
    }
    s_show(conn, "fsync", fsync_s, sizeof fsync_s);
    s_show(conn, "synchronous_commit", sync_s, sizeof sync_s);
    const char *ring_path = o.keyring;
    if (!ring_path) {
        if (!mkdtemp(dir)) {
            perror(PROG ": mkdtemp");
            goto out;
        }
        snprintf(tmp_ring, sizeof tmp_ring, "%s/keyring", dir);
        if (lc_keyring_create(tmp_ring, LC_KEYRING_SEAL) < 0) {
            fprintf(stderr, PROG ": cannot create a key ring in %s\n", dir);
            goto out;
        }
        ring_path = tmp_ring;
    }
    int err = 0;
    if (!(ring = lc_keyring_load(ring_path, LC_KEYRING_SEAL, &err)) ||
        !(sealer = lc_sealer_new(ring, LC_AES_AUTO))) {
        fprintf(stderr, PROG ": cannot load the key ring %s: %s\n", ring_path, lc_strerror(err));
        goto out;
    }
    if (bench_device_init(&dev, device_id, LC_ALG_EDDSA) < 0 || s_register(db, &dev) < 0)
        goto out;
    registered = 1;

    double insert_s = 0, t_wall = bench_now();
    uint64_t seq = 1;
    while (insert_s < o.seconds) {
        if (bench_now() - t_wall > o.timeout_s) {
            fprintf(stderr, PROG ": timed out after %.0f s (%zu write batches)\n", o.timeout_s,
                    write_batches);
            goto out;
        }
        for (size_t i = 0; i < o.rows; i++) {
            if (bench_sealed_make(&recs[i], sealer, &dev, seq++, "bench-pg", BENCH_DATA_BYTES) <
                0) {
                fprintf(stderr, PROG ": sealing a record failed\n");
                goto out;
            }
            ptrs[i] = &recs[i].msg;
        }
        size_t inserted = 0;
        double t0 = bench_now();
        rc = st_db_insert_records(db, ptrs, o.rows, &inserted);
        double dt = bench_now() - t0;
        for (size_t i = 0; i < o.rows; i++)
            bench_sealed_clear(&recs[i]);
        if (rc < 0) {
            fprintf(stderr, PROG ": insert failed: %s (%s)\n", lc_strerror(rc),
                    st_db_last_error(db));
            goto out;
        }
        if (inserted != o.rows) {
            fprintf(stderr, PROG ": only %zu of %llu rows were new\n", inserted,
                    (unsigned long long)o.rows);
            goto out;
        }
        if (write_batches == cap) {
            double *p = realloc(write_batch_s, 2 * cap * sizeof *write_batch_s);
            if (!p)
                goto out;
            write_batch_s = p, cap *= 2;
        }
        write_batch_s[write_batches++] = dt;
        insert_s += dt;
    }
    double rows_per_s = (double)(write_batches * o.rows) / insert_s;
    double p50 = bench_percentile(write_batch_s, write_batches, 0.50) * 1e3;
    double p99 = bench_percentile(write_batch_s, write_batches, 0.99) * 1e3;
    long deleted = 0, kept = 0;
    if (!o.keep && s_cleanup(conn, dev.id, &deleted, &kept) < 0)
        goto out;
    registered = 0;
    printf("{\"pg_insert_rows_per_s\":%.0f,\"write_batch_rows\":%llu,\"write_batches\":%zu,"
           "\"p50_write_batch_ms\":%.2f,\"p99_write_batch_ms\":%.2f,\"insert_seconds\":%.3f,"
           "\"fsync\":\"%s\",\"synchronous_commit\":\"%s\",\"device_id\":\"%s\","
           "\"rows_deleted\":%ld,\"rows_kept\":%ld}\n",
           rows_per_s, (unsigned long long)o.rows, write_batches, p50, p99, insert_s, fsync_s,
           sync_s, dev.id, deleted, o.keep ? (long)(write_batches * o.rows) : kept);
    fflush(stdout);
    exit_code = 0;
out:
    /* A failed run still removes what it wrote, unless asked to keep it. */
    if (registered && !o.keep && conn) {
        long d = 0, k = 0;
        if (s_cleanup(conn, dev.id, &d, &k) < 0)
            fprintf(stderr, PROG ": rows of %s may remain\n", dev.id);
    }
    for (size_t i = 0; recs && i < o.rows; i++)
        bench_sealed_clear(&recs[i]);
    free(recs);
    free(ptrs);
    free(write_batch_s);
    bench_device_wipe(&dev);
    lc_sealer_destroy(&sealer);
    lc_keyring_destroy(&ring);
    if (tmp_ring[0]) {
        unlink(tmp_ring);
        rmdir(dir);
    }
    PQfinish(conn);
    st_db_destroy(&db);
    return exit_code;
}
