/* ch_migrations.h: the relayer's schema: its versioned migrations (history in
 * chain_migrations) and exactly what the chain's role (LCORE_CHAIN_DB_ROLE) may do with its
 * tables. Applied by `lcore-chain migrate` (ch_db_migrate) through lc_migrate; checked by
 * ch_db_new. The chain needs none of the store's tables: it keeps its own copy of the records'
 * leaf inputs (chain_records), fed by the stores over ZeroMQ. */
#ifndef CH_MIGRATIONS_H
#define CH_MIGRATIONS_H

#include "lc_migrate.h"

extern const lc_schema_t ch_migrations;

#endif
