/* st_migrations.h: the versioned schema, applied in order by `lcore-store migrate` (st_schema),
 * and what each service role may do with it. */
#ifndef ST_MIGRATIONS_H
#define ST_MIGRATIONS_H

#include <stddef.h>

typedef struct {
    int version;
    const char *name;
    const char *sql;
} st_migration_t;

extern const st_migration_t st_migrations[];
extern const size_t st_migrations_len;

/* The service roles (LCORE_STORE_DB_ROLE, LCORE_CHAIN_DB_ROLE). */
typedef enum { ST_ROLE_STORE, ST_ROLE_CHAIN } st_role_t;

/* One GRANT: privileges on an object ("TABLE records", "SEQUENCE ..."). A role holds exactly
 * the rows naming it: `lcore-store migrate` revokes everything else on every run. */
typedef struct {
    st_role_t role;
    const char *privileges;
    const char *object;
} st_grant_t;

extern const st_grant_t st_grants[];
extern const size_t st_grants_len;

#endif
