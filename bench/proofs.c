/* lcore-bench-proofs: what one get_anchors costs the relayer. Connects like the relayer's query
 * thread (ch_db_new, after ch_db_migrate: the migrations, no grants), takes in --anchors x
 * --leaves records of its own store_id through the relayer's feed code (ch_db_feed_add), saves
 * one anchor over each --leaves of them with its transaction mined (ch_db_create_anchor,
 * ch_db_insert_tx, ch_db_mark_mined), then asks ch_db_anchor_infos for --records of them spread
 * over every anchor (record r in anchor r mod --anchors), --calls times over one connection
 * (after an ANALYZE of the relayer's tables, as autovacuum would run after such inserts),
 * as the gateway's GET /v1/devices/{id}/records asks for a page of records. Timed: each call's
 * wall time, this process's CPU time and, when it can be read (/proc, a server on this
 * machine), the CPU time of the PostgreSQL backend serving the connection. The first call is
 * reported on its own (a fresh connection, the proof cache empty; --cache-leaves 0 makes every
 * call like it, as every call was before the cache); every answer of the first and last
 * call is checked (one per record, each proof leading to its anchor's root). Needs a database
 * where no record waits for an anchor (point --dsn at one nothing else uses: a relayer running
 * on it would anchor the bench's records itself); the bench's rows are deleted at the end unless
 * --keep. One JSON object on stdout; exit 0, 1 on failure (reason on stderr), 2 on bad usage. */
#include <getopt.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench_util.h"
#include "ch_db.h"
#include "lc_log.h"
#include "lc_merkle.h"
#include "lc_pg.h"
#include "lcore.pb-c.h"

#define PROG "lcore-bench-proofs"

typedef struct {
    const char *dsn;
    uint64_t anchors, leaves, records, calls;
    uint64_t cache_leaves; /* the handle's proof cache bound */
    int keep;
} proofs_opts_t;

static void s_usage(FILE *out)
{
    fprintf(out,
            "usage: " PROG " --dsn DSN [--anchors 30] [--leaves 1000] [--records 100]\n"
            "          [--calls 200] [--cache-leaves N] [--keep]\n"
            "  Saves ANCHORS mined anchors of LEAVES records each, then times CALLS calls of\n"
            "  ch_db_anchor_infos (get_anchors) for RECORDS records spread over all of them.\n"
            "  --dsn DSN  PostgreSQL connection string, the owner's (default: $LCORE_PG_DSN);\n"
            "             a database where no record waits for an anchor\n"
            "  --cache-leaves N  the proof cache's bound (default: ch_db's, 524288); 0: every\n"
            "             call reads and hashes every leaf of its anchors, as before the cache\n"
            "  --keep     leave the bench's records and anchors in the database\n");
}

static int s_parse(proofs_opts_t *o, int argc, char **argv)
{
    static const struct option longopts[] = {{"dsn", required_argument, NULL, 'd'},
                                             {"anchors", required_argument, NULL, 'a'},
                                             {"leaves", required_argument, NULL, 'l'},
                                             {"records", required_argument, NULL, 'r'},
                                             {"calls", required_argument, NULL, 'c'},
                                             {"keep", no_argument, NULL, 'K'},
                                             {"cache-leaves", required_argument, NULL, 'C'},
                                             {"help", no_argument, NULL, 'h'},
                                             {0}};
    *o = (proofs_opts_t){.dsn = getenv("LCORE_PG_DSN"),
                         .anchors = 30,
                         .leaves = 1000,
                         .records = 100,
                         .calls = 200,
                         .cache_leaves = CH_DB_PROOF_CACHE_LEAVES};
    int c;
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        int bad = 0;
        switch (c) {
        case 'd':
            o->dsn = optarg;
            break;
        case 'a':
            bad = bench_parse_u64(PROG, "--anchors", optarg, 1, 1000, &o->anchors);
            break;
        case 'l':
            bad = bench_parse_u64(PROG, "--leaves", optarg, 1, 100000, &o->leaves);
            break;
        case 'r':
            bad = bench_parse_u64(PROG, "--records", optarg, 1, 1000, &o->records);
            break;
        case 'c':
            bad = bench_parse_u64(PROG, "--calls", optarg, 1, 1000000, &o->calls);
            break;
        case 'C':
            bad = bench_parse_u64(PROG, "--cache-leaves", optarg, 0, 1u << 30, &o->cache_leaves);
            break;
        case 'K':
            o->keep = 1;
            break;
        case 'h':
            s_usage(stdout);
            return 1;
        default:
            s_usage(stderr);
            return 2;
        }
        if (bad)
            return 2;
    }
    if (optind < argc || !o->dsn || !*o->dsn) {
        fprintf(stderr, PROG ": %s\n", optind < argc ? "unexpected argument" : "--dsn is required");
        return 2;
    }
    if (o->records > o->anchors * o->leaves) {
        fprintf(stderr, PROG ": --records is more than the anchors hold\n");
        return 2;
    }
    return 0;
}

/* The bench's record at position pos (1-based) of its store_id. */
static void s_record(ch_feed_record_t *r, const char *store_id, uint64_t pos)
{
    memset(r, 0, sizeof *r);
    r->position = pos;
    lc_record_id(r->record_id, store_id, strlen(store_id), pos);
    lc_record_id(r->envelope_hash, "bench-proofs-eh", 15, pos);
    r->stored_at_us = r->received_at_us = 1700000000000000ull;
}

/* Anchor number a: its records taken in, the anchor saved over exactly them (nothing else may
 * wait), its transaction mined. */
static int s_make_anchor(ch_db_t *db, const proofs_opts_t *o, const char *store_id,
                         const uint8_t from[20], uint64_t a, int64_t *anchor_id)
{
    size_t n = o->leaves, got = 0, inserted = 0;
    ch_feed_record_t *feed = calloc(n, sizeof *feed);
    ch_record_t *recs = calloc(n + 1, sizeof *recs);
    uint8_t *leaves = malloc(n * 32), root[32], hash[32] = {0xbe}, block_hash[32] = {0x0b};
    int rc = feed && recs && leaves ? 0 : LC_ERR_NOMEM;
    for (size_t i = 0; rc == 0 && i < n; i++)
        s_record(&feed[i], store_id, a * n + i + 1);
    if (rc == 0)
        rc = ch_db_feed_add(db, store_id, a * n, (a + 1) * n, feed, n, &inserted);
    int64_t cursor = 0;
    uint64_t age = 0;
    if (rc == 0 && (rc = ch_db_cursor(db, &cursor)) == 0)
        rc = ch_db_records_after(db, cursor, n + 1, recs, &got, &age);
    for (size_t i = 0; rc == 0 && i < n; i++)
        if (got != n || memcmp(recs[i].record_id, feed[i].record_id, 32) != 0)
            rc = LC_ERR_CONFLICT; /* someone else's records wait too */
    for (size_t i = 0; rc == 0 && i < n; i++)
        lc_merkle_leaf(leaves + 32 * i, recs[i].record_id, recs[i].envelope_hash);
    lc_merkle_t *tree = rc == 0 ? lc_merkle_new(leaves, n, &rc) : NULL;
    if (tree)
        lc_merkle_root(tree, root);
    lc_merkle_destroy(&tree);
    if (rc == 0)
        rc = ch_db_create_anchor(db, recs, leaves, n, root, NULL, anchor_id);
    memcpy(hash + 1, anchor_id, sizeof *anchor_id); /* attempt hashes are unique */
    int64_t tx_id = 0;
    const uint8_t raw[1] = {0};
    if (rc == 0)
        rc = ch_db_insert_tx(db, *anchor_id, from, a, 100000, 1, 2, hash, raw, 1, &tx_id);
    if (rc == 0)
        rc = ch_db_mark_mined(db, tx_id, *anchor_id, hash, 10 + a, block_hash, 21000, 7);
    free(feed);
    free(recs);
    free(leaves);
    return rc;
}

/* The record ids asked: record r in anchor r mod anchors, the anchor's ones spread over its
 * leaves. */
static void s_asked(const proofs_opts_t *o, const char *store_id, uint8_t *ids)
{
    uint64_t per_anchor = (o->records + o->anchors - 1) / o->anchors;
    for (uint64_t r = 0; r < o->records; r++) {
        uint64_t a = r % o->anchors, leaf = r / o->anchors * (o->leaves / per_anchor);
        ch_feed_record_t rec;
        s_record(&rec, store_id, a * o->leaves + leaf + 1);
        memcpy(ids + 32 * r, rec.record_id, 32);
    }
}

/* Every answer there, in the order asked, anchored, its proof leading to its root. */
static int s_check(const Lcore__V1__AnchorInfo *out, size_t found, const uint8_t *ids, size_t n)
{
    if (found != n)
        return -1;
    for (size_t i = 0; i < n; i++) {
        uint8_t proof[LC_MERKLE_MAX_PROOF * 32];
        if (memcmp(out[i].record_id.data, ids + 32 * i, 32) != 0 || !out[i].anchor_id ||
            out[i].root.len != 32 || out[i].n_proof > LC_MERKLE_MAX_PROOF)
            return -1;
        for (size_t k = 0; k < out[i].n_proof; k++)
            memcpy(proof + 32 * k, out[i].proof[k].data, 32);
        if (lc_merkle_verify(out[i].root.data, out[i].leaf.data, proof, out[i].n_proof) != 0)
            return -1;
    }
    return 0;
}

/* CPU seconds of process pid (user + system, from /proc), or -1. */
static double s_proc_cpu(long pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%ld/stat", pid);
    FILE *f = fopen(path, "r");
    size_t len = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
    if (f)
        fclose(f);
    buf[len] = 0;
    char *p = strrchr(buf, ')'); /* fields after the command name */
    unsigned long long ut = 0, st = 0;
    if (!p || sscanf(p + 2, "%*c %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %llu %llu", &ut, &st) != 2)
        return -1;
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

static double s_self_cpu(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The pid of the backend serving ch_db's connection (application lcore-chain, the only one on
 * this database), or 0. */
static long s_backend_pid(PGconn *conn)
{
    PGresult *r = PQexec(conn, "SELECT pid FROM pg_stat_activity WHERE application_name ="
                               " 'lcore-chain' AND datname = current_database()");
    long pid =
        PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1 ? atol(PQgetvalue(r, 0, 0)) : 0;
    PQclear(r);
    return pid;
}

/* Deletes the bench's anchors (their transactions and leaves), then its records. */
static int s_cleanup(PGconn *conn, const char *store_id)
{
    static const char *const sql[] = {
        "DELETE FROM anchor_tx_attempts WHERE anchor_id = ANY($1::bigint[])",
        "DELETE FROM anchor_txs WHERE anchor_id = ANY($1::bigint[])",
        "DELETE FROM anchor_leaves WHERE anchor_id = ANY($1::bigint[])",
        "DELETE FROM anchors WHERE id = ANY($1::bigint[])",
        "DELETE FROM chain_records WHERE store_id = $1",
        "DELETE FROM chain_feed WHERE store_id = $1",
    };
    const char *v[2] = {store_id, NULL};
    PGresult *ids = PQexecParams(conn,
                                 "SELECT coalesce(array_agg(DISTINCT l.anchor_id), '{}')::text"
                                 " FROM anchor_leaves l JOIN chain_records c ON c.arrival ="
                                 " l.arrival WHERE c.store_id = $1",
                                 1, NULL, v, NULL, NULL, 0);
    int ok = PQresultStatus(ids) == PGRES_TUPLES_OK;
    v[1] = ok ? PQgetvalue(ids, 0, 0) : NULL;
    for (size_t i = 0; ok && i < sizeof sql / sizeof *sql; i++) {
        PGresult *r = PQexecParams(conn, sql[i], 1, NULL, i < 4 ? v + 1 : v, NULL, NULL, 0);
        ok = PQresultStatus(r) == PGRES_COMMAND_OK;
        if (!ok)
            fprintf(stderr, PROG ": cleanup: %s", PQresultErrorMessage(r));
        PQclear(r);
    }
    PQclear(ids);
    return ok ? 0 : -1;
}

typedef struct {
    double first_ms, p50_ms, mean_ms, self_cpu_ms, pg_cpu_ms;
} proofs_result_t;

/* o->calls calls of ch_db_anchor_infos for ids; the first and last answers checked. */
static int s_time_calls(ch_db_t *db, PGconn *conn, const proofs_opts_t *o, const uint8_t *ids,
                        proofs_result_t *res)
{
    size_t n = o->records, found = 0;
    Lcore__V1__AnchorInfo *out = calloc(n, sizeof *out);
    double *wall = malloc(o->calls * sizeof *wall), sum = 0;
    int rc = out && wall ? 0 : LC_ERR_NOMEM;
    long pid = rc == 0 ? s_backend_pid(conn) : 0;
    double cpu0 = s_self_cpu(), pg0 = pid ? s_proc_cpu(pid) : -1;
    for (uint64_t c = 0; rc == 0 && c <= o->calls; c++) {
        double t0 = bench_now();
        rc = ch_db_anchor_infos(db, ids, n, out, &found);
        double dt = bench_now() - t0;
        if (rc == 0 && (c == 0 || c == o->calls) && s_check(out, found, ids, n) != 0)
            rc = LC_ERR_INVALID;
        for (size_t i = 0; i < found; i++)
            ch_db_anchor_info_clear(&out[i]);
        if (c == 0) { /* the cold call: on its own */
            res->first_ms = dt * 1e3;
            cpu0 = s_self_cpu();
            pg0 = pid ? s_proc_cpu(pid) : -1;
        } else {
            wall[c - 1] = dt;
            sum += dt;
        }
    }
    double pg1 = pid ? s_proc_cpu(pid) : -1;
    res->self_cpu_ms = (s_self_cpu() - cpu0) * 1e3 / (double)o->calls;
    res->pg_cpu_ms = pg0 >= 0 && pg1 >= 0 ? (pg1 - pg0) * 1e3 / (double)o->calls : -1;
    res->mean_ms = sum * 1e3 / (double)o->calls;
    res->p50_ms = rc == 0 ? bench_percentile(wall, o->calls, 0.5) * 1e3 : 0;
    free(wall);
    free(out);
    return rc;
}

int main(int argc, char **argv)
{
    proofs_opts_t o;
    int rc = s_parse(&o, argc, argv);
    if (rc)
        return rc == 1 ? 0 : rc;
    lc_log_init("bench", LC_LOG_WARN);
    int exit_code = 1;
    char run[9], store_id[32];
    bench_run_id(run);
    snprintf(store_id, sizeof store_id, "bench-proofs-%s", run);
    uint8_t from[20] = {0xbe}, *ids = malloc(o.records * 32);
    memcpy(from + 1, run, 8);
    ch_db_t *db = NULL;
    PGconn *conn = NULL;
    if (!ids || ch_db_migrate(o.dsn, NULL, stderr, NULL, NULL) < 0 || !(db = ch_db_new(o.dsn)) ||
        !(conn = lc_pg_connect(o.dsn, PROG))) {
        fprintf(stderr, PROG ": cannot connect to PostgreSQL or apply the migrations\n");
        goto out;
    }
    ch_db_set_proof_cache(db, (size_t)o.cache_leaves);
    double t0 = bench_now();
    for (uint64_t a = 0; a < o.anchors; a++) {
        int64_t anchor_id = 0;
        if ((rc = s_make_anchor(db, &o, store_id, from, a, &anchor_id)) < 0) {
            fprintf(stderr, PROG ": saving anchor %llu failed: %s%s\n", (unsigned long long)a,
                    lc_strerror(rc),
                    rc == LC_ERR_CONFLICT ? " (other records wait: use a database of its own)"
                                          : "");
            goto out;
        }
    }
    double setup_s = bench_now() - t0;
    /* The planner's statistics, as autovacuum would have them after these inserts. */
    PGresult *an = PQexec(conn, "ANALYZE chain_records, anchors, anchor_leaves, anchor_txs");
    int analyzed = PQresultStatus(an) == PGRES_COMMAND_OK;
    PQclear(an);
    if (!analyzed || ch_db_set_head(db, 10 + o.anchors) < 0)
        goto out;
    s_asked(&o, store_id, ids);
    proofs_result_t res = {0};
    if ((rc = s_time_calls(db, conn, &o, ids, &res)) < 0) {
        fprintf(stderr, PROG ": ch_db_anchor_infos failed or answered wrong: %s\n",
                lc_strerror(rc));
        goto out;
    }
    printf("{\"anchors\":%llu,\"leaves_per_anchor\":%llu,\"records_asked\":%llu,\"calls\":%llu,"
           "\"cache_leaves\":%llu,"
           "\"first_call_ms\":%.3f,\"p50_call_ms\":%.3f,\"mean_call_ms\":%.3f,"
           "\"bench_cpu_ms_per_call\":%.3f,\"pg_backend_cpu_ms_per_call\":%.3f,"
           "\"setup_seconds\":%.1f,\"store_id\":\"%s\"}\n",
           (unsigned long long)o.anchors, (unsigned long long)o.leaves,
           (unsigned long long)o.records, (unsigned long long)o.calls,
           (unsigned long long)o.cache_leaves, res.first_ms, res.p50_ms, res.mean_ms,
           res.self_cpu_ms, res.pg_cpu_ms, setup_s, store_id);
    exit_code = 0;
out:
    if (conn && !o.keep && s_cleanup(conn, store_id) < 0) {
        fprintf(stderr, PROG ": rows of %s may remain\n", store_id);
        exit_code = 1;
    }
    PQfinish(conn);
    ch_db_destroy(&db);
    free(ids);
    return exit_code;
}
