/* st_db.h: the store's PostgreSQL access (through lib/lc_pg): connection with reconnect, the
 * schema (migrations and grants through st_schema, for `lcore-store migrate`; the version check
 * for the service), the idempotent insert of a write batch of sealed records numbered by position,
 * and the queries the gateways and the relayer ask for. The store is the only writer of records and
 * devices. */
#ifndef ST_DB_H
#define ST_DB_H

#include <czmq.h>
#include <stdio.h>

#include "lc_common.h"
#include "lc_metrics.h"
#include "lc_pg.h"
#include "lc_record.h"
#include "lcore.pb-c.h"

typedef struct st_db st_db_t;

#define ST_GATEWAY_ID_MAX 64 /* bytes of a gateway_id (ack topic, dead letters) */

/* What became of a dead letter that was valid and reached the database. */
typedef enum {
    ST_DEAD_LETTERED = 0,     /* recorded now */
    ST_ALREADY_DEAD_LETTERED, /* recorded before (first write wins) */
    ST_ALREADY_STORED,        /* its record is in `records`: nothing to record */
} st_dead_letter_outcome_t;

#define ST_STORE_ID_MAX LC_STORE_ID_MAX /* bytes of a store_id (lc_record.h) */

/* Connects (no retry here) as the store `store_id` (LCORE_STORE_ID): takes that store_id's
 * session advisory lock (one process per store_id: positions are numbered by the holder) and
 * reads its position (the row in `stores`, created at 0 if new). NULL on error with the reason
 * logged; st_db_schema_check says why a connected store may not write (not migrated, or another
 * process holds the store_id). Reconnecting (st_db_ok) takes the lock and re-reads the position
 * again. store_id NULL: a connection that only answers queries (no lock, no insert). */
st_db_t *st_db_new(const char *dsn, const char *store_id);
void st_db_destroy(st_db_t **self_p);

/* 1 if the connection is usable; otherwise tries one reconnect and says whether it worked. */
int st_db_ok(st_db_t *self);

/* `lcore-store migrate`: the store's pending migrations, then store_role's grants on the
 * store's tables; see st_schema_migrate. Run as the owner role. chain_role is ignored (kept for
 * the callers): the chain's tables and role are `lcore-chain migrate`'s. */
int st_db_migrate(st_db_t *self, const char *store_role, const char *chain_role, FILE *out) LC_WUR;

/* 0 when the schema is the one this build knows and the store's role may write; else why not
 * (for /readyz and the log); see st_schema_check. */
int st_db_schema_check(st_db_t *self, char *why, size_t cap) LC_WUR;

/* Inserts the write batch in one transaction: row i gets position P + 1 + i (P: the store's
 * position), ON CONFLICT (record_id) DO NOTHING (a duplicate leaves a hole), and the store's row
 * in `stores` moves from P to P + n (only if it still says P: else LC_ERR_UNAVAILABLE after a
 * rollback, and the position is re-read). *inserted receives the number of new rows. The new
 * rows' seqs go into device_seq_ranges in the same statement, then are merged (st_seq_ranges.h).
 * A row whose device is revoked and that was received (received_at_us, the gateway's accept
 * time) at or after its revoked_at is left out (a hole too; st_db_find_conflicts finds it).
 * Returns 0, LC_ERR_UNAVAILABLE (connection lost: retry the same write batch later) or
 * LC_ERR_INVALID (the database refused the data: retry row by row to isolate it). */
int st_db_insert_records(st_db_t *self, Lcore__V1__SealedRecord *const *recs, size_t n,
                         size_t *inserted) LC_WUR;

/* What st_db_find_conflicts says of each row of a write batch. */
enum {
    ST_ROW_WRITTEN = 0,  /* stored now, or before with the same reading (a duplicate) */
    ST_ROW_CONFLICT = 1, /* (device_id, seq) stored with another reading: kept in seq_conflicts */
    ST_ROW_REVOKED = 2,  /* not stored: its device was revoked before it was received */
};

/* After st_db_insert_records returned 0 for recs[0..n), marks each row (mark[0..n)) with one
 * of ST_ROW_*, asking the database only about the rows that were not new (one statement; none
 * when all were new). A row that is not in `records` now was left out for its revoked device. A
 * row stored before with other bytes than the stored reading (reading_hash differs) is a
 * (device_id, seq) conflict: kept in seq_conflicts, sealed as the worker sent it (*found counts
 * them). A row stored before without a reading hash counts as a duplicate. Not in the insert's
 * transaction: after a failure the caller retries the write batch (its rows then all come back
 * as not new). Returns 0, LC_ERR_UNAVAILABLE, LC_ERR_INVALID or LC_ERR_NOMEM. */
int st_db_find_conflicts(st_db_t *self, Lcore__V1__SealedRecord *const *recs, size_t n,
                         unsigned char *mark, size_t *found) LC_WUR;

/* What the last successful st_db_insert_records committed, as the relayer needs it: store_id,
 * after = P, upto = P + n, and the new rows' leaf inputs (record_id, envelope_hash, position,
 * stored_at_us, received_at_us) in position order. Owned by self, valid until the next insert. */
const Lcore__V1__StoredRecords *st_db_last_written(const st_db_t *self);

/* The events socket on which the operator API's changes (st_admin.h: topic "changes/") go out
 * once committed (borrowed; NULL: none). */
void st_db_publish_changes(st_db_t *self, zsock_t *changes);

/* Why the database refused the last statement, "<SQLSTATE>: <primary message>" for integrity
 * violations and the SQLSTATE alone otherwise ("" if none): never parameter values, so never a
 * payload. Valid until the next call on self. */
const char *st_db_last_error(const st_db_t *self);

/* Counters (borrowed, registered by the caller) for dead letters newly recorded through self,
 * by stage. NULL leaves them uncounted. */
void st_db_count_dead_letters(st_db_t *self, lc_counter_t *crypto, lc_counter_t *store);

/* NULL if the dead letter may be recorded, else why not (a message for BAD_REQUEST). */
const char *st_db_dead_letter_invalid(const Lcore__V1__DeadLetter *dl);

/* Validates, then in one statement records the dead letter unless its record is stored
 * (reason cut to 300 bytes); counts and logs (ids, stage, reason, attempts) what it recorded.
 * Returns 0 with *outcome set, LC_ERR_INVALID (invalid, or refused by the database),
 * LC_ERR_UNAVAILABLE (connection lost or other database failure: retry later) or
 * LC_ERR_NOMEM. */
int st_db_dead_letter(st_db_t *self, const Lcore__V1__DeadLetter *dl,
                      st_dead_letter_outcome_t *outcome) LC_WUR;

/* Answers one query: get_device (with its current and previous key, st_admin.h),
 * register_device (audited: Query.actor, "admin" when empty), get_record (status "stored"; the
 * gateway adds the chain's part), dead_letter, ping, records_after (StoredRecords of that store_id
 * with position > after, at most min(limit, 2000) in position order; upto = the last one's position
 * when more remain (more = 1), else the store_id's position in `stores`, so the asker moves past
 * holes; after = the asked `after`), store_positions (every row of `stores`, by store_id, at most
 * 1000), get_sealed (the stored envelope as a SealedRecord: record_id, device_id, seq,
 * device_ts_ms, received_at_us, key_version, nonces, ciphertext, envelope_hash), device_status
 * (the device's completeness report, st_seq_ranges.h; NOT_FOUND for no such device), and the
 * operator and reader APIs' bodies (st_admin.h). Any other body: BAD_REQUEST. Authorization is the
 * caller's (by peer role). Fills reply (strings and bytes it sets are owned by the caller's arena:
 * free with st_db_reply_clear). A ping is answered from `writable` (0 while the writer backs off
 * because PostgreSQL is down) without touching the database. */
/* NULL when st_db_answer may take the query to the database (or answer a ping), else why it
 * is a BAD_REQUEST: the checks of every body (dead letter, registration, record_id, store_id;
 * an unknown body). Pure: no connection needed (st_db_answer's first step, and a fuzz target). */
const char *st_db_query_invalid(const Lcore__V1__Query *q);

void st_db_answer(st_db_t *self, const Lcore__V1__Query *q, int writable,
                  Lcore__V1__QueryReply *reply);
void st_db_reply_clear(Lcore__V1__QueryReply *reply);
/* Sets reply's status and message (copied; NULL: ""), for the answers of st_db, st_letters and
 * st_admin. */
void st_db_reply_error(Lcore__V1__QueryReply *reply, Lcore__V1__QueryReply__Status st,
                       const char *msg);
/* The reply to a failed statement (rc): the data's fault (LC_ERR_INVALID: BAD_REQUEST, msg) or
 * the database's (ERROR). */
void st_db_reply_failure(Lcore__V1__QueryReply *reply, int rc, const char *msg);
/* A reply that could not be completed (no memory): what was set of it goes, ERROR stays. */
void st_db_reply_incomplete(Lcore__V1__QueryReply *reply);

/* The connection (queries that live in other files: st_letters). */
lc_pg_t *st_db_pg(st_db_t *self);

#endif
