/* st_schema.h: the database schema and who may use it. `lcore-store migrate` (connected as the
 * owner role) applies the migrations of st_migrations.c and then the service roles' grants
 * (st_grants), all under one advisory lock; the running store only checks that the database is
 * at the version it was built for and that its role may write. */
#ifndef ST_SCHEMA_H
#define ST_SCHEMA_H

#include <stdio.h>

#include <libpq-fe.h>

#include "lc_common.h"

/* The newest migration this build knows: the version a running store needs. */
int st_schema_version(void);

/* Applies what is pending, then (re)applies the grants of the roles named (NULL or "" skips a
 * role; a role that does not exist is skipped with a warning). One line per step on out (what
 * was applied, the version reached, each role's grants and warnings); errors are logged.
 * Idempotent. Returns 0, LC_ERR_UNAVAILABLE (connection) or LC_ERR_INVALID (a statement
 * failed, e.g. the role connected is not the schema's owner). */
int st_schema_migrate(PGconn *c, const char *store_role, const char *chain_role, FILE *out) LC_WUR;

/* 0 when the database is at st_schema_version() and the connected role may write records;
 * otherwise LC_ERR_UNAVAILABLE (the connection failed) or LC_ERR_NOTFOUND (not migrated, another
 * version, or grants missing) with an operator's reason in why. */
int st_schema_check(PGconn *c, char *why, size_t cap) LC_WUR;

#endif
