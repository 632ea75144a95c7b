/* lc_migrate.h: one migration runner for every service that owns tables. A service describes
 * its schema (lc_schema_t: its migrations, its own history table, its own advisory lock key and
 * exactly what its role may do); `lcore-<service> migrate`, connected as the owner role, applies
 * what is pending and then the role's grants (lc_migrate), and the running service only checks
 * that the database is at the version it was built for and that its role holds its grants
 * (lc_migrate_check). A service's migrate touches its own objects only: the store's and the
 * chain's run one after the other, in either order. */
#ifndef LC_MIGRATE_H
#define LC_MIGRATE_H

#include <stdio.h>

#include "lc_common.h"
#include "lc_pg.h"

/* One step of the schema, applied once in its own transaction. Never edit an applied one. */
typedef struct {
    int version;
    const char *name;
    const char *sql;
} lc_migration_t;

/* One GRANT to the service's role: privileges ("SELECT, INSERT") on an object ("TABLE records",
 * "SEQUENCE anchors_id_seq"). The role holds exactly these rows: every migrate revokes all on
 * each object named here first, so every object the service owns needs at least one row. */
typedef struct {
    const char *privileges;
    const char *object;
} lc_grant_t;

typedef struct {
    const char *service; /* "store": in messages and logs */
    const char *command; /* what an operator runs: "lcore-store migrate" */
    const char *history; /* the history table: "store_migrations" */
    int64_t lock_key;    /* pg_advisory_lock key, one per service */
    const lc_migration_t *migrations;
    size_t migrations_len;
    const lc_grant_t *grants;
    size_t grants_len;
} lc_schema_t;

/* The newest migration of s: the version a running service needs. */
int lc_migrate_version(const lc_schema_t *s);

/* Under s's advisory lock: applies what is pending, revokes CREATE on schema public and
 * TEMPORARY on the database from PUBLIC, then (role not NULL or "") revokes everything on s's
 * objects from role and grants it s's rows, in one transaction. A role that does not exist is
 * skipped with a warning, one that is (or acts as) the owner is left alone, one that is too
 * powerful is warned about. One line per step on out; idempotent. Refuses a database that still
 * has the single pre-split `schema_migrations` table (see lc_migrate.c). Returns 0,
 * LC_ERR_UNAVAILABLE (connection) or LC_ERR_INVALID (a statement failed or the database is not
 * one this build can migrate). */
int lc_migrate(lc_pg_t *pg, const lc_schema_t *s, const char *role, FILE *out) LC_WUR;

/* 0 when the database is at lc_migrate_version(s) and the connected role holds s's grants;
 * otherwise LC_ERR_UNAVAILABLE (connection) or LC_ERR_NOTFOUND (not migrated, another version,
 * or grants missing) with an operator's reason in why. */
int lc_migrate_check(lc_pg_t *pg, const lc_schema_t *s, char *why, size_t cap) LC_WUR;

#endif
