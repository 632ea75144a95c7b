/* ch_lease.c: see ch_lease.h. */
#include "ch_lease.h"

#include <stdlib.h>
#include <string.h>

#include "lc_codec.h"
#include "lc_log.h"

struct ch_lease {
    lc_pg_t *pg;
    char holder[128]; /* this relayer's name */
    char seen[128];   /* the holder as last seen */
    uint64_t chain_id;
    uint8_t contract[20];
    int ttl_ms;
    int held;
    uint64_t epoch;      /* as last seen */
    uint64_t mine;       /* the epoch this relayer last held (0: none, or taken over since) */
    uint64_t renewed_us; /* monotonic: the last renewal */
    uint64_t session;    /* the lc_pg session the settings were made in */
    lc_gauge_t *g_held, *g_epoch;
    lc_counter_t *c_taken;
};

/* One statement: take the row when there is none or it expired, renew it when it is ours at our
 * epoch; answer the holder and epoch it has now. Taking it over moves the epoch on; renewing an
 * expired lease nobody took keeps it (nothing happened in between). When the row is ours, the
 * session's settings the fence checks are set with it. $1 chain_id, $2 contract, $3 holder,
 * $4 ttl ms, $5 the epoch held (0: none). */
static const char s_step_sql[] =
    "WITH cur AS (SELECT holder, epoch, expires_at > clock_timestamp() AS live"
    " FROM relayer_lease WHERE chain_id = $1 AND contract = $2 FOR UPDATE),"
    " ins AS (INSERT INTO relayer_lease (chain_id, contract, holder, epoch, expires_at)"
    " SELECT $1, $2, $3, 1, clock_timestamp() + $4 * interval '1 millisecond'"
    " WHERE NOT EXISTS (SELECT 1 FROM cur) ON CONFLICT DO NOTHING RETURNING holder, epoch),"
    " upd AS (UPDATE relayer_lease l SET holder = $3,"
    " epoch = CASE WHEN c.holder = $3 AND c.epoch = $5 THEN c.epoch ELSE c.epoch + 1 END,"
    " acquired_at = CASE WHEN c.holder = $3 AND c.epoch = $5 THEN l.acquired_at"
    " ELSE clock_timestamp() END,"
    " expires_at = clock_timestamp() + $4 * interval '1 millisecond'"
    " FROM cur c WHERE l.chain_id = $1 AND l.contract = $2"
    " AND (NOT c.live OR (c.holder = $3 AND c.epoch = $5)) RETURNING l.holder, l.epoch),"
    " now_held AS (SELECT holder, epoch FROM ins UNION ALL SELECT holder, epoch FROM upd)"
    " SELECT holder, epoch, set_config('lcore.lease_holder', holder, false),"
    " set_config('lcore.lease_epoch', epoch::text, false) FROM now_held"
    " UNION ALL SELECT holder, epoch, NULL, NULL FROM cur"
    " WHERE NOT EXISTS (SELECT 1 FROM now_held)";

ch_lease_t *ch_lease_new(lc_pg_t *pg, const char *holder, uint64_t chain_id,
                         const uint8_t contract[20], int ttl_ms, lc_metrics_t *m)
{
    ch_lease_t *self = calloc(1, sizeof *self);
    if (!self || !holder[0] || strlen(holder) >= sizeof self->holder || ttl_ms < 500) {
        free(self);
        return NULL;
    }
    self->pg = pg;
    memcpy(self->holder, holder, strlen(holder) + 1);
    self->chain_id = chain_id;
    memcpy(self->contract, contract, sizeof self->contract);
    self->ttl_ms = ttl_ms;
    self->g_held = lc_metrics_gauge(m, "lcore_chain_lease_held",
                                    "1 while this relayer holds the chain's relayer lease (the "
                                    "active relayer), 0 for a standby",
                                    NULL);
    self->g_epoch = lc_metrics_gauge(m, "lcore_chain_lease_epoch",
                                     "The lease's epoch as last seen: it goes up at each change "
                                     "of holder",
                                     NULL);
    self->c_taken = lc_metrics_counter(m, "lcore_chain_lease_acquired_total",
                                       "Times this relayer took the lease (at start, or over "
                                       "from a relayer that stopped renewing it)",
                                       NULL);
    return self;
}

void ch_lease_destroy(ch_lease_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    free(*self_p);
    *self_p = NULL;
}

/* The row's holder and epoch as answered, and whether this session holds it: 1 ours, 0
 * another's, CH_LEASE_LOST when it was ours. */
static int s_seen(ch_lease_t *self, const char *holder, uint64_t epoch, int ours, uint64_t now)
{
    int was = self->held;
    if (ours)
        self->mine = epoch;
    else if (epoch != self->mine)
        self->mine = 0; /* taken over: what was ours is gone */
    snprintf(self->seen, sizeof self->seen, "%s", holder);
    self->epoch = epoch;
    self->held = ours;
    lc_gauge_set(self->g_held, ours);
    lc_gauge_set(self->g_epoch, (double)epoch);
    if (ours) {
        self->renewed_us = now;
        self->session = lc_pg_session(self->pg);
        if (!was) {
            lc_counter_inc(self->c_taken);
            lc_info("lease_acquired", "holder=%s epoch=%llu ttl_ms=%d", holder,
                    (unsigned long long)epoch, self->ttl_ms);
        }
        return 1;
    }
    if (was) {
        lc_error("lease_lost", "holder=%s epoch=%llu (this relayer: %s)", holder,
                 (unsigned long long)epoch, self->holder);
        return CH_LEASE_LOST;
    }
    return 0;
}

int ch_lease_step(ch_lease_t *self)
{
    uint64_t now = lc_mono_us(), ttl_us = (uint64_t)self->ttl_ms * 1000u;
    if (self->held && self->session == lc_pg_session(self->pg) &&
        now - self->renewed_us < ttl_us / 5)
        return 1;
    if (!lc_pg_ok(self->pg))
        goto unavailable;
    lc_pg_params_t *p = lc_pg_params(self->pg);
    lc_pg_add_i64(p, (int64_t)self->chain_id);
    lc_pg_add_bytes(p, self->contract, sizeof self->contract);
    lc_pg_add_text(p, self->holder);
    lc_pg_add_i64(p, self->ttl_ms);
    lc_pg_add_i64(p, (int64_t)self->mine);
    PGresult *r = NULL;
    int rc = lc_pg_query(self->pg, &r, s_step_sql, p);
    if (rc < 0)
        goto unavailable;
    if (PQntuples(r) != 1) { /* two took a missing row at once: the other won; look again */
        PQclear(r);
        return self->held;
    }
    char *holder = lc_pg_text_dup(r, 0, 0);
    uint64_t epoch = lc_pg_u64(r, 0, 1);
    int ours = !lc_pg_null(r, 0, 2); /* the settings were made: the row is this session's */
    PQclear(r);
    if (!holder)
        return LC_ERR_NOMEM;
    rc = s_seen(self, holder, epoch, ours, now);
    free(holder);
    return rc;
unavailable:
    /* Not renewed: past its expiry it is not ours to act on (the fence agrees). */
    if (self->held && now - self->renewed_us >= ttl_us) {
        self->held = 0;
        lc_gauge_set(self->g_held, 0);
        lc_warn("lease_expired", "holder=%s epoch=%llu (PostgreSQL unavailable)", self->holder,
                (unsigned long long)self->epoch);
    }
    return LC_ERR_UNAVAILABLE;
}

const char *ch_lease_holder(const ch_lease_t *self)
{
    return self->seen;
}

uint64_t ch_lease_epoch(const ch_lease_t *self)
{
    return self->epoch;
}

int ch_lease_borrow(ch_lease_t *self)
{
    if (!lc_pg_ok(self->pg))
        return LC_ERR_UNAVAILABLE;
    lc_pg_params_t *p = lc_pg_params(self->pg);
    lc_pg_add_i64(p, (int64_t)self->chain_id);
    lc_pg_add_bytes(p, self->contract, sizeof self->contract);
    PGresult *r = NULL;
    int rc =
        lc_pg_query(self->pg, &r,
                    "SELECT holder, epoch, set_config('lcore.lease_holder', holder, false),"
                    " set_config('lcore.lease_epoch', epoch::text, false) FROM relayer_lease"
                    " WHERE chain_id = $1 AND contract = $2 AND expires_at > clock_timestamp()",
                    p);
    if (rc < 0)
        return rc;
    int live = PQntuples(r) == 1;
    if (live) {
        char *holder = lc_pg_text_dup(r, 0, 0);
        snprintf(self->seen, sizeof self->seen, "%s", holder ? holder : "");
        self->epoch = lc_pg_u64(r, 0, 1);
        free(holder);
    }
    PQclear(r);
    if (live)
        return 0;
    rc = ch_lease_step(self);
    return rc == 1 ? 1 : rc < 0 ? rc : LC_ERR_CONFLICT; /* taken by another meanwhile */
}

void ch_lease_release(ch_lease_t *self)
{
    if (!self->held || !lc_pg_ok(self->pg))
        return;
    lc_pg_params_t *p = lc_pg_params(self->pg);
    lc_pg_add_i64(p, (int64_t)self->chain_id);
    lc_pg_add_bytes(p, self->contract, sizeof self->contract);
    lc_pg_add_text(p, self->holder);
    lc_pg_add_i64(p, (int64_t)self->mine);
    if (lc_pg_exec(self->pg,
                   "UPDATE relayer_lease SET expires_at = clock_timestamp() WHERE chain_id = $1"
                   " AND contract = $2 AND holder = $3 AND epoch = $4",
                   p) == 1)
        lc_info("lease_released", "holder=%s epoch=%llu", self->holder,
                (unsigned long long)self->mine);
    self->held = 0;
    self->mine = 0;
    lc_gauge_set(self->g_held, 0);
}
