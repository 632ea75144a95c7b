/* ch_feed.h: how the relayer learns what to anchor, from the stores and never from their tables.
 * Each store publishes, per committed write batch, the new records' leaf inputs numbered by a
 * per-store position (StoredRecords on "stored/<store_id>/"). The feed takes a message in when it
 * continues exactly where the relayer stands for that store (ch_db_feed_add: records and position
 * in one transaction); otherwise (a message lost to a full queue, a restart, a relayer starting on
 * an empty database) it asks a store for records_after its position, page by page, until it is
 * level. Every catch_up_ms it also compares every store's position (store_positions) with its
 * own, so an idle or dead store's last records are not left behind. Any store answers for any
 * store_id: they share the records table. */
#ifndef CH_FEED_H
#define CH_FEED_H

#include <czmq.h>

#include "ch_config.h"
#include "ch_db.h"
#include "lc_curve.h"
#include "lc_metrics.h"

typedef struct ch_feed ch_feed_t;

ch_feed_t *ch_feed_new(const ch_config_t *cfg, ch_db_t *db, lc_curve_t *curve, lc_metrics_t *m);
void ch_feed_destroy(ch_feed_t **self_p);

/* The events SUB socket, to poll on. */
zsock_t *ch_feed_events(ch_feed_t *self);

/* Takes in the messages queued on the events socket (without blocking), then catches up with
 * the stores found behind, and with every store when the periodic comparison is due. Bounded:
 * pages of records for about half a second per call (at least one per store behind); the rest
 * next time (ch_feed_behind). Returns the number of records newly taken in, or
 * LC_ERR_UNAVAILABLE when PostgreSQL is away (nothing is lost: the stores still have it, and the
 * next comparison finds it). */
int ch_feed_run(ch_feed_t *self);
/* 1 when the last run left a store behind (more pages to take): the next run should come at
 * once, not after the poll interval. */
int ch_feed_behind(const ch_feed_t *self);

#endif
