/* st_db.h: the store's PostgreSQL access (libpq): connection with reconnect, versioned
 * migrations under an advisory lock, the batched idempotent insert of sealed records, and the
 * queries the gateways ask for. The store is the only writer of records and devices. */
#ifndef ST_DB_H
#define ST_DB_H

#include "lc_common.h"
#include "lcore.pb-c.h"

typedef struct st_db st_db_t;

/* Connects (no retry here) and, with migrate set, applies pending migrations. NULL on error
 * with the reason logged. */
st_db_t *st_db_new(const char *dsn, int migrate);
void st_db_destroy(st_db_t **self_p);

/* 1 if the connection is usable; otherwise tries one reconnect and says whether it worked. */
int st_db_ok(st_db_t *self);

/* Inserts the records in one statement (one transaction), ON CONFLICT DO NOTHING.
 * *inserted receives the number of new rows (duplicates excluded).
 * Returns 0, LC_ERR_UNAVAILABLE (connection lost: retry the same batch later) or
 * LC_ERR_INVALID (the database refused the data: retry row by row to isolate it). */
int st_db_insert_records(st_db_t *self, Lcore__V1__SealedRecord *const *recs, size_t n,
                         size_t *inserted, uint64_t *last_id) LC_WUR;

/* Answers one query; fills reply (strings and bytes it sets are owned by the caller's arena:
 * free with st_db_reply_clear). */
void st_db_answer(st_db_t *self, const Lcore__V1__Query *q, Lcore__V1__QueryReply *reply);
void st_db_reply_clear(Lcore__V1__QueryReply *reply);

#endif
