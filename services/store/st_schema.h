/* st_schema.h: the store's schema as the store uses it. `lcore-store migrate` (connected as the
 * owner role) applies st_migrations and the store role's grants through lib/lc_migrate; the
 * running store only checks that the database is at the version it was built for and that its
 * role holds its grants. The chain's tables are lcore-chain's (`lcore-chain migrate`). */
#ifndef ST_SCHEMA_H
#define ST_SCHEMA_H

#include <stdio.h>

#include "lc_common.h"
#include "lc_pg.h"

/* The newest migration this build knows: the version a running store needs. */
int st_schema_version(void);

/* See lc_migrate: pending migrations, then store_role's grants (NULL or "" skips them). */
int st_schema_migrate(lc_pg_t *pg, const char *store_role, FILE *out) LC_WUR;

/* 0 when the database is at st_schema_version() and the connected role holds the store's
 * grants; otherwise LC_ERR_UNAVAILABLE or LC_ERR_NOTFOUND with an operator's reason in why. */
int st_schema_check(lc_pg_t *pg, char *why, size_t cap) LC_WUR;

#endif
