/* st_schema.c: see st_schema.h. */
#include "st_schema.h"

#include "lc_migrate.h"
#include "st_migrations.h"

int st_schema_version(void)
{
    return lc_migrate_version(&st_migrations);
}

int st_schema_migrate(lc_pg_t *pg, const char *store_role, FILE *out)
{
    return lc_migrate(pg, &st_migrations, store_role, out);
}

int st_schema_check(lc_pg_t *pg, char *why, size_t cap)
{
    return lc_migrate_check(pg, &st_migrations, why, cap);
}
