/* st_admin.h: the data of the gateways' operator and reader APIs, answered by the store over the
 * query link (role gateway only; the gateway checked the bearer token and names it in
 * Query.actor): devices (list, revoke or reactivate, key rotation), bearer tokens (create, list,
 * delete, look up by hash), the audit log (append an "open", list) and a device's records page by
 * page. Called from st_db_answer (its checks from st_db_query_invalid). A list answer holds at
 * most its limit and about 512 KiB of items (`more` set when either cut it short).
 *
 * Every change and its audit_log row are one statement, so they commit together or not at all.
 * Once a change a gateway caches has committed (a device's status or key, a token deleted), it is
 * published as a Change on the store's events socket, topic "changes/": every gateway forgets its
 * copy at once. A device's keys live in device_keys, append-only: the current key is the newest
 * row, the previous one verifies until the current row's prev_until.
 *
 * Also the readers of one device (with its keys) and of one record's RecordInfo, which st_db's
 * get_device and get_record share. */
#ifndef ST_ADMIN_H
#define ST_ADMIN_H

#include <czmq.h>

#include "lc_pg.h"
#include "lcore.pb-c.h"

#define ST_ADMIN_PAGE_MAX 1000        /* devices, tokens, audit entries or records in one answer */
#define ST_ADMIN_OVERLAP_MAX 2592000u /* a rotation's overlap: 30 days at most */
#define ST_ADMIN_ACTOR "admin"        /* the actor of a registration that names none */

/* A device with its current and previous key: the columns st_admin_device_row reads, from a
 * devices row named `d` (a table or a CTE with devices' columns) joined with ST_DEVICE_KEYS. */
#define ST_DEVICE_COLUMNS                                                                          \
    "d.device_id, coalesce(c.alg, d.alg), coalesce(c.public_key, d.public_key), d.status,"         \
    " coalesce(d.did_document::text, ''), d.registered_at, d.revoked_at, coalesce(c.key_no, 1),"   \
    " coalesce(c.since, d.registered_at), coalesce(p.alg, ''), p.public_key, c.prev_until"
#define ST_DEVICE_NCOLS 12
#define ST_DEVICE_KEYS                                                                             \
    " LEFT JOIN LATERAL (SELECT key_no, alg, public_key, since, prev_until FROM device_keys k"     \
    " WHERE k.device_id = d.device_id ORDER BY key_no DESC LIMIT 1) c ON true"                     \
    " LEFT JOIN device_keys p ON p.device_id = d.device_id AND p.key_no = c.key_no - 1"

/* A record as get_record answers it: the columns st_admin_record_row reads. */
#define ST_RECORD_COLUMNS                                                                          \
    "device_id, seq, key_version, envelope_hash, device_ts_ms, stored_at, record_id, reading_hash"

/* 1 for the bodies st_admin answers. */
int st_admin_owns(Lcore__V1__Query__BodyCase body);

/* NULL when st_admin_answer may take q (one of its bodies) to the database, else why it is a
 * BAD_REQUEST. Pure (st_db_query_invalid calls it; a fuzz target). */
const char *st_admin_invalid(const Lcore__V1__Query *q);

/* Answers q (checked by st_admin_invalid; the connection is up) into reply; st_db_reply_clear
 * frees what it sets. changes: the events socket the Changes go out on (NULL: none). */
void st_admin_answer(lc_pg_t *pg, zsock_t *changes, const Lcore__V1__Query *q,
                     Lcore__V1__QueryReply *reply);

/* NULL when alg names a device algorithm and public_key is a canonical key on its curve, else
 * why not (a registration's and a rotation's key). */
const char *st_admin_key_invalid(const char *alg, const ProtobufCBinaryData *public_key);

/* NULL when actor is a token id that may be written to the audit log (1..64 characters of
 * [A-Za-z0-9_.:-]; empty allowed when may_be_empty), else why not. */
const char *st_admin_actor_invalid(const char *actor, int may_be_empty);

/* Row `row` of r, ST_DEVICE_COLUMNS from column 0, as a Device (malloc'd:
 * lcore__v1__device__free_unpacked), or NULL (no memory, or a column that does not read). */
Lcore__V1__Device *st_admin_device_row(const PGresult *r, int row);

/* Row `row` of r, ST_RECORD_COLUMNS from column 0, as get_record's RecordInfo (status "stored";
 * malloc'd: lcore__v1__record_info__free_unpacked), or NULL. */
Lcore__V1__RecordInfo *st_admin_record_row(const PGresult *r, int row);

#endif
