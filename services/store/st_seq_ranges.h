/* st_seq_ranges.h: completeness, per device: the runs of seqs its stored readings cover
 * (table device_seq_ranges, derived from records), for GET /v1/devices/{device_id}/status and
 * the gauge lcore_store_devices_with_gaps. A write batch adds its new seqs as runs in its own
 * insert statement (st_db.c: atomic with the records, no round trip per reading); the merge here
 * then folds the touched devices' adjacent runs into one (one more statement per write batch,
 * best effort: readers merge adjacent or overlapping runs themselves, so an unmerged table is
 * only bigger, never wrong). Several stores may write one device: the merge locks the rows it
 * folds (FOR UPDATE) and only ever widens a run, so coverage never shrinks.
 * Gaps are counted from the lowest seq ever received (a device may start at 0 or at 1): the
 * seqs between it and last_seq that never arrived. Called by st_db (merge, status) and the
 * store's loop (the gauge). */
#ifndef ST_SEQ_RANGES_H
#define ST_SEQ_RANGES_H

#include "lc_pg.h"
#include "lcore.pb-c.h"

#define ST_STATUS_GAPS_MAX 100 /* gap ranges in one status answer (gaps_capped past it) */

/* Folds the adjacent or overlapping runs of every device written by store_id's positions
 * (after, upto]. 0 or the statement's error (logged by the caller; nothing is lost). */
int st_seq_ranges_merge(lc_pg_t *pg, const char *store_id, uint64_t after, uint64_t upto) LC_WUR;

/* The device's completeness report in *out (the caller frees it with st_seq_ranges_free):
 * 0, LC_ERR_NOTFOUND (no such device), LC_ERR_NOMEM or the statement's error. */
int st_seq_ranges_status(lc_pg_t *pg, const char *device_id, Lcore__V1__DeviceStatus **out) LC_WUR;
void st_seq_ranges_free(Lcore__V1__DeviceStatus *ds); /* NULL-safe */

/* How many devices have at least one gap: 0 with *n, or the statement's error. */
int st_seq_ranges_devices_with_gaps(lc_pg_t *pg, uint64_t *n) LC_WUR;

#endif
