/* ch_lease.h: one active relayer per chain and contract. The relayers of one chain share a row in
 * relayer_lease (PostgreSQL): the one whose name it holds, at an epoch that goes up at every change
 * of holder, until expires_at, is the active relayer; the others are standbys and take the row over
 * once it expires (the active one renews it well before: every ttl / 5).
 *
 * Fencing: a statement-level trigger on the tables that decide what goes on chain (anchors,
 * anchor_leaves, anchor_txs, anchor_tx_attempts) refuses any write from a session that does not
 * hold a live lease (its lcore.lease_holder and lcore.lease_epoch settings, set here), and locks
 * the lease row FOR SHARE until the write commits, so a takeover waits for it. Every transaction
 * the relayer signs is recorded in those tables before it is sent, so a relayer that lost its
 * lease and wakes up late can neither sign a new one nor reserve a nonce: at most it sends again a
 * transaction the new holder already knows of and tracks. */
#ifndef CH_LEASE_H
#define CH_LEASE_H

#include <stdint.h>

#include "lc_metrics.h"
#include "lc_pg.h"

typedef struct ch_lease ch_lease_t;

/* holder: this relayer's name (LCORE_CHAIN_RELAYER_ID); the lease of (chain_id, contract). */
ch_lease_t *ch_lease_new(lc_pg_t *pg, const char *holder, uint64_t chain_id,
                         const uint8_t contract[20], int ttl_ms, lc_metrics_t *metrics);
void ch_lease_destroy(ch_lease_t **self_p);

/* Renews the lease when held (at most every ttl / 5, and again after a reconnect), or takes it
 * when it is free or expired. Returns 1 while held, 0 while another relayer holds it (see
 * ch_lease_holder), CH_LEASE_LOST once it was held and another relayer took it over, or an error
 * (PostgreSQL unavailable: held or not, nothing changed; an expired lease is not held). */
#define CH_LEASE_LOST 2
int ch_lease_step(ch_lease_t *self);
/* The holder as last seen ("" before the first step), and its epoch (0: none). */
const char *ch_lease_holder(const ch_lease_t *self);
uint64_t ch_lease_epoch(const ch_lease_t *self);
/* For `lcore-chain adopt-chain`, an operator's one-shot that sends no transaction: this session
 * acts in the name of the live lease's holder (the running relayer waiting for it), or takes the
 * lease when none is live (release it after). 1 taken, 0 borrowed, or an error. */
int ch_lease_borrow(ch_lease_t *self);
/* Gives the lease up (it expires now) if held: a standby takes over at its next step. */
void ch_lease_release(ch_lease_t *self);

#endif
