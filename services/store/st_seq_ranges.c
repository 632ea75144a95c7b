/* st_seq_ranges.c: the received seq ranges of each device. See st_seq_ranges.h. */
#include "st_seq_ranges.h"

#include <stdlib.h>
#include <string.h>

/* A run starts a new island unless it touches or overlaps the runs before it (from_seq - 1 <=
 * their highest to_seq; written so, it never overflows at 2^63 - 1). `starts` is 1 for the first
 * run of each island, so a running sum of it numbers the islands. */
#define ST_STARTS(partition)                                                                       \
    "CASE WHEN from_seq - 1 <= max(to_seq) OVER (" partition "ORDER BY from_seq"                   \
    " ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) THEN 0 ELSE 1 END"
#define ST_STARTS_PER_DEVICE ST_STARTS("PARTITION BY device_id ")
#define ST_STARTS_ONE_DEVICE ST_STARTS("")

/* $1 store_id, $2 after, $3 upto: the devices of the write batch, their runs locked in key
 * order, numbered into islands; each island of more than one run becomes its first run widened
 * (GREATEST: a concurrent merge that saw more cannot be undone) and the others go. */
static const char s_merge_sql[] =
    "WITH touched AS (SELECT DISTINCT device_id FROM records"
    " WHERE store_id = $1 AND position > $2 AND position <= $3),"
    " locked AS (SELECT r.device_id, r.from_seq, r.to_seq, r.last_received_at"
    " FROM device_seq_ranges r JOIN touched t ON t.device_id = r.device_id"
    " ORDER BY r.device_id, r.from_seq FOR UPDATE OF r),"
    " marked AS (SELECT *, " ST_STARTS_PER_DEVICE " AS starts FROM locked),"
    " islands AS (SELECT *, sum(starts) OVER (PARTITION BY device_id ORDER BY from_seq)"
    " AS island FROM marked),"
    " merged AS (SELECT device_id, island, min(from_seq) AS f, max(to_seq) AS t,"
    " max(last_received_at) AS at FROM islands GROUP BY device_id, island HAVING count(*) > 1),"
    " gone AS (DELETE FROM device_seq_ranges d USING islands i, merged m"
    " WHERE d.device_id = i.device_id AND d.from_seq = i.from_seq AND i.device_id = m.device_id"
    " AND i.island = m.island AND i.from_seq > m.f RETURNING 1)"
    " UPDATE device_seq_ranges d SET to_seq = GREATEST(d.to_seq, m.t),"
    " last_received_at = GREATEST(d.last_received_at, m.at)"
    " FROM merged m WHERE d.device_id = m.device_id AND d.from_seq = m.f";

int st_seq_ranges_merge(lc_pg_t *pg, const char *store_id, uint64_t after, uint64_t upto)
{
    lc_pg_params_t *p = lc_pg_params(pg);
    lc_pg_add_text(p, store_id);
    lc_pg_add_u64(p, after);
    lc_pg_add_u64(p, upto);
    int rc = lc_pg_exec(pg, s_merge_sql, p);
    return rc < 0 ? rc : 0;
}

/* $1 device_id, $2 the most gaps to answer + 1. No row: no such device. Else row 0 says the
 * status, last_seq, contiguous_through (the first island's end), last_seen and how many gaps
 * there are; each row's last two columns are one gap (NULL when there is none), lowest first. */
static const char s_status_sql[] =
    "WITH d AS (SELECT status FROM devices WHERE device_id = $1),"
    " r AS (SELECT from_seq, to_seq, last_received_at, " ST_STARTS_ONE_DEVICE " AS starts"
    " FROM device_seq_ranges WHERE device_id = $1),"
    " i AS (SELECT from_seq, to_seq, sum(starts) OVER (ORDER BY from_seq) AS island FROM r),"
    " isl AS (SELECT island, min(from_seq) AS f, max(to_seq) AS t FROM i GROUP BY island),"
    " gaps AS (SELECT lag(t) OVER (ORDER BY island) + 1 AS gf, f - 1 AS gt FROM isl)"
    " SELECT d.status, (SELECT max(to_seq) FROM r), (SELECT t FROM isl ORDER BY island LIMIT 1),"
    " (SELECT max(last_received_at) FROM r), (SELECT count(*) FROM gaps WHERE gf IS NOT NULL),"
    " g.gf, g.gt FROM d LEFT JOIN LATERAL (SELECT gf, gt FROM gaps WHERE gf IS NOT NULL"
    " ORDER BY gf LIMIT $2) g ON true ORDER BY g.gf";

/* The gaps of s_status_sql's rows (at most ST_STATUS_GAPS_MAX) into ds. 0 or LC_ERR_NOMEM. */
static int s_gaps(const PGresult *r, Lcore__V1__DeviceStatus *ds)
{
    size_t rows = lc_pg_null(r, 0, 5) ? 0 : (size_t)PQntuples(r);
    size_t n = rows > ST_STATUS_GAPS_MAX ? ST_STATUS_GAPS_MAX : rows;
    ds->gaps_capped = lc_pg_u64(r, 0, 4) > n;
    if (n == 0)
        return 0;
    Lcore__V1__SeqRange *items = calloc(n, sizeof *items);
    ds->gaps = calloc(n, sizeof *ds->gaps);
    if (!items || !ds->gaps) {
        free(items);
        return LC_ERR_NOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        lcore__v1__seq_range__init(&items[i]);
        items[i].from = lc_pg_u64(r, (int)i, 5);
        items[i].to = lc_pg_u64(r, (int)i, 6);
        ds->gaps[i] = &items[i]; /* gaps[0] owns the array */
    }
    ds->n_gaps = n;
    return 0;
}

int st_seq_ranges_status(lc_pg_t *pg, const char *device_id, Lcore__V1__DeviceStatus **out)
{
    *out = NULL;
    lc_pg_params_t *p = lc_pg_params(pg);
    lc_pg_add_text(p, device_id);
    lc_pg_add_i64(p, ST_STATUS_GAPS_MAX + 1);
    PGresult *r = NULL;
    int rc = lc_pg_query(pg, &r, s_status_sql, p);
    if (rc < 0)
        return rc;
    Lcore__V1__DeviceStatus *ds = NULL;
    rc = PQntuples(r) == 0 ? LC_ERR_NOTFOUND : LC_ERR_NOMEM;
    if (rc == LC_ERR_NOMEM && (ds = calloc(1, sizeof *ds))) {
        lcore__v1__device_status__init(ds);
        ds->device_id = strdup(device_id);
        ds->status = lc_pg_text_dup(r, 0, 0);
        ds->has_seqs = !lc_pg_null(r, 0, 1);
        ds->last_seq = lc_pg_u64(r, 0, 1);
        ds->contiguous_through = lc_pg_u64(r, 0, 2);
        ds->last_seen_us = lc_pg_time_us(r, 0, 3);
        if (ds->device_id && ds->status)
            rc = s_gaps(r, ds);
    }
    PQclear(r);
    if (rc < 0)
        st_seq_ranges_free(ds);
    else
        *out = ds;
    return rc;
}

void st_seq_ranges_free(Lcore__V1__DeviceStatus *ds)
{
    if (!ds)
        return;
    if (ds->n_gaps)
        free(ds->gaps[0]);
    free(ds->gaps);
    if (ds->device_id != protobuf_c_empty_string)
        free(ds->device_id);
    if (ds->status != protobuf_c_empty_string)
        free(ds->status);
    free(ds);
}

int st_seq_ranges_devices_with_gaps(lc_pg_t *pg, uint64_t *n)
{
    PGresult *r = NULL;
    int rc = lc_pg_query(
        pg, &r,
        "SELECT count(*) FROM (SELECT device_id FROM (SELECT device_id, " ST_STARTS_PER_DEVICE
        " AS starts FROM device_seq_ranges) x GROUP BY device_id HAVING sum(starts) > 1) y",
        NULL);
    if (rc < 0)
        return rc;
    *n = lc_pg_u64(r, 0, 0);
    PQclear(r);
    return 0;
}
