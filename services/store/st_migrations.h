/* st_migrations.h: the store's schema: its versioned migrations (history in store_migrations)
 * and exactly what the store's role (LCORE_STORE_DB_ROLE) may do with its tables. Applied by
 * `lcore-store migrate` through lc_migrate; checked by the running store. */
#ifndef ST_MIGRATIONS_H
#define ST_MIGRATIONS_H

#include "lc_migrate.h"

extern const lc_schema_t st_migrations;

#endif
