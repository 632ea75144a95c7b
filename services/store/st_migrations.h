/* st_migrations.h: the versioned schema, applied in order at start by st_db. */
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

#endif
