/* st_letters.h: the dead-letter table, for operators (lcore-cli dead-letters list|replay over
 * the query link, role operator). A dead letter keeps its reading, never in plaintext (stage
 * "store": as the worker sealed it; stage "crypto": sealed by its gateway, gw_letter.h); it is
 * resolved once its record is stored. Replaying puts an unresolved one back through the
 * pipeline: a worker-sealed record goes to this store's writer (written as if it had just
 * arrived), a gateway-sealed reading is published to its gateway on the events socket (topic
 * "replay/<gateway_id>/"), which opens it and logs it again. Rows are never updated or deleted:
 * the table is the history of what went wrong. */
#ifndef ST_LETTERS_H
#define ST_LETTERS_H

#include <czmq.h>

#include "lc_pg.h"
#include "lcore.pb-c.h"
#include "st_writer.h"

#define ST_LETTERS_LIST_MAX 1000  /* dead letters in one list answer */
#define ST_LETTERS_REPLAY_MAX 100 /* record ids in one replay */

typedef struct {
    lc_pg_t *pg;         /* the queries' connection */
    st_writer_t *writer; /* replayed worker-sealed records go here */
    zsock_t *events;     /* replayed gateway-sealed readings go out here */
} st_letters_t;

/* Answers list_dead_letters (DeadLetters without their readings, with resolved and
 * created_at_us, oldest first, after the given record_id) and replay_dead_letters (the counts
 * replayed_store, replayed_gateway and replay_skipped: resolved, unknown, or kept no reading).
 * Fills reply; st_db_reply_clear frees it. */
/* NULL when st_letters_answer may take the query to the database, else why it is a
 * BAD_REQUEST (list: after empty or 32 bytes; replay: 1..100 ids of 32 bytes; another body).
 * Pure (st_letters_answer's first step, and a fuzz target). */
const char *st_letters_query_invalid(const Lcore__V1__Query *q);

void st_letters_answer(const st_letters_t *self, const Lcore__V1__Query *q,
                       Lcore__V1__QueryReply *reply);

#endif
