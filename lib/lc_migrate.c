/* lc_migrate.c: see lc_migrate.h.
 *
 * No upgrade from the single history: before issue 13 one `lcore-store migrate` created every
 * table (the chain's too, with foreign keys into `records`) and kept one `schema_migrations`.
 * Each service now owns its tables and history (store_migrations, chain_migrations) with a new
 * baseline whose `records` has another shape. This project has no production deployment, so
 * there is no conversion: a database that still has `schema_migrations` is refused, with a
 * message saying so, rather than half-migrated next to the old tables. Start from an empty
 * database (or drop the old tables) and run both migrates. */
#include "lc_migrate.h"

#include <stdlib.h>
#include <string.h>

#include "lc_log.h"

#define S_LEGACY_HISTORY "schema_migrations"

int lc_migrate_version(const lc_schema_t *s)
{
    return s->migrations[s->migrations_len - 1].version;
}

/* SQL text with the history table's name (a constant of the service, never input) in it. */
static int s_history_sql(char *out, size_t cap, const char *fmt, const lc_schema_t *s)
{
    int n = snprintf(out, cap, fmt, s->history);
    return n > 0 && (size_t)n < cap ? 0 : LC_ERR_TOOBIG;
}

/* The version recorded in s's history table (0 when empty). */
static int s_current(lc_pg_t *pg, const lc_schema_t *s, int *version)
{
    char sql[160];
    PGresult *r = NULL;
    int rc = s_history_sql(sql, sizeof sql, "SELECT coalesce(max(version), 0) FROM %s", s);
    if (rc == 0 && (rc = lc_pg_query_row(pg, &r, sql, NULL)) == 0)
        *version = (int)lc_pg_i64(r, 0, 0);
    PQclear(r);
    return rc;
}

static int s_refuse_legacy(lc_pg_t *pg, const lc_schema_t *s, FILE *out)
{
    PGresult *r = NULL;
    int rc =
        lc_pg_query_row(pg, &r, "SELECT to_regclass('" S_LEGACY_HISTORY "') IS NOT NULL", NULL);
    if (rc == 0 && lc_pg_bool(r, 0, 0)) {
        lc_error("schema_legacy", "table=" S_LEGACY_HISTORY " service=%s", s->service);
        fprintf(out,
                "this database has the old single-history schema (table " S_LEGACY_HISTORY
                "), from before each service owned its tables; it is not upgraded (there were"
                " no production deployments): use a new database, or drop the old tables, then"
                " run %s\n",
                s->command);
        rc = LC_ERR_INVALID;
    }
    PQclear(r);
    return rc;
}

/* One migration in its own transaction, recorded in the history table. */
static int s_apply_one(lc_pg_t *pg, const lc_schema_t *s, const lc_migration_t *m)
{
    char ins[160];
    int rc = s_history_sql(ins, sizeof ins, "INSERT INTO %s (version, name) VALUES ($1, $2)", s);
    if (rc < 0 || (rc = lc_pg_begin(pg)) < 0)
        return rc;
    lc_pg_params_t *p = NULL;
    if ((rc = lc_pg_script(pg, m->sql)) == 0) {
        p = lc_pg_params(pg);
        lc_pg_add_i64(p, m->version);
        lc_pg_add_text(p, m->name);
        rc = lc_pg_exec(pg, ins, p);
    }
    if (rc >= 0 && (rc = lc_pg_commit(pg)) == 0)
        return 0;
    lc_pg_rollback(pg);
    return rc;
}

/* Each pending migration, in order. */
static int s_apply(lc_pg_t *pg, const lc_schema_t *s, FILE *out)
{
    char sql[256];
    int rc = s_history_sql(sql, sizeof sql,
                           "CREATE TABLE IF NOT EXISTS %s (version integer PRIMARY KEY, name text"
                           " NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())",
                           s);
    int current = 0, applied = 0, newest = lc_migrate_version(s);
    if (rc < 0 || (rc = lc_pg_script(pg, sql)) < 0 || (rc = s_current(pg, s, &current)) < 0)
        return rc;
    if (current > newest) {
        lc_error("schema_newer", "service=%s version=%d known=%d", s->service, current, newest);
        fprintf(out, "schema at version %d, newer than this build (%d): nothing done\n", current,
                newest);
        return LC_ERR_INVALID;
    }
    for (size_t i = 0; i < s->migrations_len; i++) {
        const lc_migration_t *m = &s->migrations[i];
        if (m->version <= current)
            continue;
        if ((rc = s_apply_one(pg, s, m)) < 0)
            return rc;
        lc_info("migration_applied", "service=%s version=%d name=\"%s\"", s->service, m->version,
                m->name);
        fprintf(out, "applied migration %d: %s\n", m->version, m->name);
        current = m->version;
        applied++;
    }
    fprintf(out, "schema at version %d%s\n", current, applied ? "" : " (nothing to apply)");
    return 0;
}

/* Nobody but the owner creates objects: PostgreSQL 15 no longer lets PUBLIC create in schema
 * public, older clusters (and upgraded ones) still do. Temporary tables: no service uses them. */
static int s_lock_down_public(lc_pg_t *pg, FILE *out)
{
    PGconn *c = lc_pg_conn(pg);
    char *db = c ? lc_pg_identifier(pg, PQdb(c)) : NULL;
    char sql[256];
    PGresult *r = NULL;
    if (!db)
        return c ? LC_ERR_NOMEM : LC_ERR_UNAVAILABLE;
    snprintf(sql, sizeof sql,
             "REVOKE CREATE ON SCHEMA public FROM PUBLIC; REVOKE TEMPORARY ON DATABASE %s FROM"
             " PUBLIC",
             db);
    free(db);
    int rc = lc_pg_script(pg, sql);
    if (rc == 0 &&
        (rc = lc_pg_query_row(pg, &r, "SELECT has_schema_privilege('public', 'public', 'CREATE')",
                              NULL)) == 0 &&
        lc_pg_bool(r, 0, 0)) {
        /* The schema belongs to someone else (a superuser, before PostgreSQL 15). */
        lc_warn("public_may_create", "schema=public");
        fprintf(out, "warning: PUBLIC may still CREATE in schema public (its owner must run"
                     " REVOKE CREATE ON SCHEMA public FROM PUBLIC)\n");
    }
    PQclear(r);
    return rc;
}

/* Whether role may be given exactly its grants: it exists and is not the owner (revoking all
 * from the owner would lock the owner out). Says what is wrong with it otherwise: a superuser or
 * a role that can create roles or databases, or owns tables, defeats least privilege. 1 to
 * grant, 0 to skip, or an error code. */
static int s_role_usable(lc_pg_t *pg, const char *kind, const char *role, FILE *out)
{
    lc_pg_params_t *p = lc_pg_params(pg);
    lc_pg_add_text(p, role);
    PGresult *r = NULL;
    int rc = lc_pg_query(
        pg, &r,
        "SELECT r.rolsuper, r.rolcreaterole, r.rolcreatedb,"
        " pg_has_role(r.oid, (SELECT datdba FROM pg_database WHERE datname = current_database()),"
        " 'USAGE'), EXISTS (SELECT 1 FROM pg_class WHERE relowner = r.oid)"
        " FROM pg_roles r WHERE r.rolname = $1",
        p);
    if (rc < 0)
        return rc;
    int usable = 0;
    if (PQntuples(r) != 1) {
        lc_warn("role_missing", "service=%s role=%s", kind, role);
        fprintf(out, "warning: role %s (%s) does not exist: no grants for it\n", role, kind);
    } else if (lc_pg_bool(r, 0, 3)) {
        lc_warn("role_is_owner", "service=%s role=%s", kind, role);
        fprintf(out, "warning: role %s (%s) is or acts as the database owner: left as it is\n",
                role, kind);
    } else {
        static const char *const flags[] = {"superuser", "createrole", "createdb",
                                            "member of the owner", "owner of tables"};
        for (int i = 0; i < 5; i++)
            if (i != 3 && lc_pg_bool(r, 0, i)) {
                lc_warn("role_too_powerful", "service=%s role=%s is=\"%s\"", kind, role, flags[i]);
                fprintf(out, "warning: role %s (%s) is %s: it should not be\n", role, kind,
                        flags[i]);
            }
        usable = 1;
    }
    PQclear(r);
    return usable;
}

/* The revokes and grants of role (an escaped identifier) as one transaction, malloc'd. */
static char *s_grant_sql(const lc_schema_t *s, const char *id)
{
    size_t cap = 128 + 3 * strlen(id), off = 0;
    for (size_t i = 0; i < s->grants_len; i++)
        cap +=
            64 + 2 * (strlen(id) + strlen(s->grants[i].object)) + strlen(s->grants[i].privileges);
    char *sql = malloc(cap);
    if (!sql)
        return NULL;
    off += (size_t)snprintf(sql + off, cap - off, "BEGIN; GRANT USAGE ON SCHEMA public TO %s;", id);
    for (size_t i = 0; i < s->grants_len; i++)
        off += (size_t)snprintf(sql + off, cap - off, " REVOKE ALL ON %s FROM %s;",
                                s->grants[i].object, id);
    for (size_t i = 0; i < s->grants_len; i++)
        off += (size_t)snprintf(sql + off, cap - off, " GRANT %s ON %s TO %s;",
                                s->grants[i].privileges, s->grants[i].object, id);
    snprintf(sql + off, cap - off, " COMMIT");
    return sql;
}

/* Revokes everything on s's objects from role, then grants it s's rows: one transaction, so the
 * service never sees a half-granted state. The other services' objects are not touched. */
static int s_grant(lc_pg_t *pg, const lc_schema_t *s, const char *role, FILE *out)
{
    if (!role || !role[0])
        return 0;
    int rc = s_role_usable(pg, s->service, role, out);
    if (rc <= 0)
        return rc;
    char *id = lc_pg_identifier(pg, role);
    char *sql = id ? s_grant_sql(s, id) : NULL;
    rc = sql ? lc_pg_script(pg, sql) : LC_ERR_NOMEM;
    if (rc < 0) {
        lc_pg_rollback(pg);
    } else {
        lc_info("grants_applied", "service=%s role=%s", s->service, role);
        fprintf(out, "grants applied to %s (%s)\n", role, s->service);
    }
    free(sql);
    free(id);
    return rc;
}

/* A statement that failed while the connection stayed up: the migration's fault, not the
 * network's (retrying will not help). */
static int s_migrate_error(lc_pg_t *pg, int rc)
{
    return rc == LC_ERR_UNAVAILABLE && lc_pg_conn(pg) ? LC_ERR_INVALID : rc;
}

int lc_migrate(lc_pg_t *pg, const lc_schema_t *s, const char *role, FILE *out)
{
    lc_pg_params_t *p = lc_pg_params(pg);
    lc_pg_add_i64(p, s->lock_key);
    int rc = lc_pg_exec(pg, "SELECT pg_advisory_lock($1)", p);
    if (rc < 0)
        return rc;
    if ((rc = s_refuse_legacy(pg, s, out)) == 0 && (rc = s_apply(pg, s, out)) == 0 &&
        (rc = s_lock_down_public(pg, out)) == 0)
        rc = s_grant(pg, s, role, out);
    p = lc_pg_params(pg);
    lc_pg_add_i64(p, s->lock_key);
    if (lc_pg_exec(pg, "SELECT pg_advisory_unlock($1)", p) < 0)
        lc_debug("migration_unlock_failed", NULL); /* the session's end releases it */
    return rc < 0 ? s_migrate_error(pg, rc) : 0;
}

/* Whether the connected role holds every privilege of s's grants, in one statement: the
 * objects and their privilege lists go in as two ';'-separated texts. A privilege may name
 * columns ("UPDATE (status, revoked_at)"): then each of those columns is checked. Missing objects
 * count as not granted. 0 with *granted set, or an error code. */
static int s_holds_grants(lc_pg_t *pg, const lc_schema_t *s, int *granted)
{
    size_t olen = 1, plen = 1;
    for (size_t i = 0; i < s->grants_len; i++) {
        olen += strlen(s->grants[i].object) + 1;
        plen += strlen(s->grants[i].privileges) + 1;
    }
    char *objects = calloc(1, olen), *privileges = calloc(1, plen);
    int rc = LC_ERR_NOMEM;
    PGresult *r = NULL;
    if (objects && privileges) {
        for (size_t i = 0; i < s->grants_len; i++) {
            strcat(strcat(objects, i ? ";" : ""), s->grants[i].object);
            strcat(strcat(privileges, i ? ";" : ""), s->grants[i].privileges);
        }
        lc_pg_params_t *p = lc_pg_params(pg);
        lc_pg_add_text(p, objects);
        lc_pg_add_text(p, privileges);
        rc = lc_pg_query_row(
            pg, &r,
            "SELECT coalesce(bool_and(coalesce(CASE WHEN split_part(g.o, ' ', 1) = 'SEQUENCE'"
            " THEN has_sequence_privilege(to_regclass(split_part(g.o, ' ', 2)), v[1])"
            " WHEN v[2] IS NULL"
            " THEN has_table_privilege(to_regclass(split_part(g.o, ' ', 2)), v[1])"
            " ELSE (SELECT bool_and(has_column_privilege(to_regclass(split_part(g.o, ' ', 2)),"
            " trim(c), v[1])) FROM unnest(string_to_array(v[2], ',')) AS c) END,"
            " false)), false) FROM unnest(string_to_array($1, ';'), string_to_array($2, ';'))"
            /* each privilege, and the columns it names: "UPDATE (a, b)" -> {UPDATE, "a, b"} */
            " AS g(o, ps), regexp_matches(g.ps, '\\s*([A-Z]+)\\s*(?:\\(([^)]*)\\))?\\s*(?:,|$)',"
            " 'g') AS v",
            p);
        if (rc == 0)
            *granted = lc_pg_bool(r, 0, 0);
    }
    PQclear(r);
    free(objects);
    free(privileges);
    return rc;
}

int lc_migrate_check(lc_pg_t *pg, const lc_schema_t *s, char *why, size_t cap)
{
    lc_pg_params_t *p = lc_pg_params(pg);
    lc_pg_add_text(p, s->history);
    PGresult *r = NULL;
    int rc = lc_pg_query_row(pg, &r, "SELECT to_regclass($1) IS NOT NULL", p);
    int exists = rc == 0 && lc_pg_bool(r, 0, 0), version = 0, granted = 0;
    PQclear(r);
    if (rc == 0 && !exists) {
        snprintf(why, cap, "database not migrated: run %s as the owner role", s->command);
        return LC_ERR_NOTFOUND;
    }
    const char *user = lc_pg_conn(pg) ? PQuser(lc_pg_conn(pg)) : "?";
    int newest = lc_migrate_version(s);
    if (rc == 0 && (rc = s_current(pg, s, &version)) < 0 && lc_pg_conn(pg)) {
        snprintf(why, cap, "role %s may not read %s: run %s", user, s->history, s->command);
        return LC_ERR_NOTFOUND;
    }
    if (rc == 0 && version != newest) {
        snprintf(why, cap, "database schema is version %d, this lcore-%s needs %d: %s%s", version,
                 s->service, newest, version < newest ? "run " : "upgrade lcore-",
                 version < newest ? s->command : s->service);
        return LC_ERR_NOTFOUND;
    }
    if (rc == 0 && (rc = s_holds_grants(pg, s, &granted)) == 0 && !granted) {
        snprintf(why, cap, "role %s does not hold its grants on the %s tables: run %s", user,
                 s->service, s->command);
        return LC_ERR_NOTFOUND;
    }
    if (rc < 0)
        snprintf(why, cap, "PostgreSQL unavailable");
    return rc < 0 ? LC_ERR_UNAVAILABLE : 0;
}
