/* st_schema.c: see st_schema.h. */
#include "st_schema.h"

#include <stdlib.h>
#include <string.h>

#include "lc_log.h"
#include "st_migrations.h"

#define ST_MIGRATION_LOCK 0x6c636f7265 /* "lcore" */

static const char *const s_role_kind[] = {"store", "chain"};

int st_schema_version(void)
{
    return st_migrations[st_migrations_len - 1].version;
}

/* "already exists, skipping" and the like: not worth a line of their own. */
static void s_notice(void *arg, const char *message)
{
    (void)arg;
    lc_debug("db_notice", "msg=\"%.*s\"", (int)strcspn(message, "\n"), message);
}

static int s_failed(PGconn *c, const PGresult *r, const char *what)
{
    const char *msg = PQresultErrorMessage(r);
    lc_error("db_error", "what=\"%s\" err=\"%.*s\"", what, (int)strcspn(msg, "\n"), msg);
    return PQstatus(c) == CONNECTION_OK ? LC_ERR_INVALID : LC_ERR_UNAVAILABLE;
}

static int s_exec(PGconn *c, const char *sql, const char *what)
{
    PGresult *r = PQexec(c, sql);
    ExecStatusType st = PQresultStatus(r);
    int rc = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK ? 0 : s_failed(c, r, what);
    PQclear(r);
    return rc;
}

/* One value of a one-row query, as text into out; 0 or an error code. */
static int s_value(PGconn *c, const char *sql, const char *what, char *out, size_t cap)
{
    PGresult *r = PQexec(c, sql);
    int rc = 0;
    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1)
        rc = s_failed(c, r, what);
    else
        snprintf(out, cap, "%s", PQgetvalue(r, 0, 0));
    PQclear(r);
    return rc;
}

/* Each pending migration in its own transaction, in order. */
static int s_apply_migrations(PGconn *c, FILE *out)
{
    char v[16];
    int rc = s_exec(c,
                    "CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY,"
                    " name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())",
                    "schema_migrations");
    if (rc == 0)
        rc = s_value(c, "SELECT coalesce(max(version), 0) FROM schema_migrations", "schema version",
                     v, sizeof v);
    if (rc < 0)
        return rc;
    int current = atoi(v), applied = 0;
    if (current > st_schema_version()) {
        lc_error("schema_newer", "version=%d known=%d", current, st_schema_version());
        fprintf(out, "schema at version %d, newer than this lcore-store (%d): nothing done\n",
                current, st_schema_version());
        return LC_ERR_INVALID;
    }
    for (size_t i = 0; i < st_migrations_len; i++) {
        const st_migration_t *m = &st_migrations[i];
        if (m->version <= current)
            continue;
        char ins[256];
        snprintf(ins, sizeof ins, "INSERT INTO schema_migrations (version, name) VALUES (%d, '%s')",
                 m->version, m->name);
        if ((rc = s_exec(c, "BEGIN", "begin")) < 0 || (rc = s_exec(c, m->sql, m->name)) < 0 ||
            (rc = s_exec(c, ins, "record migration")) < 0 || (rc = s_exec(c, "COMMIT", "commit"))) {
            (void)s_exec(c, "ROLLBACK", "rollback");
            return rc;
        }
        lc_info("migration_applied", "version=%d name=\"%s\"", m->version, m->name);
        fprintf(out, "applied migration %d: %s\n", m->version, m->name);
        current = m->version;
        applied++;
    }
    fprintf(out, "schema at version %d%s\n", current, applied ? "" : " (nothing to apply)");
    return 0;
}

/* Nobody but the owner creates objects: PostgreSQL 15 no longer lets PUBLIC create in schema
 * public, older clusters (and upgraded ones) still do. Temporary tables: no service uses them. */
static int s_lock_down_public(PGconn *c, FILE *out)
{
    char *db = PQescapeIdentifier(c, PQdb(c), strlen(PQdb(c)));
    char sql[256], can[8] = "";
    if (!db)
        return LC_ERR_NOMEM;
    snprintf(sql, sizeof sql,
             "REVOKE CREATE ON SCHEMA public FROM PUBLIC; REVOKE TEMPORARY ON DATABASE %s FROM"
             " PUBLIC",
             db);
    PQfreemem(db);
    int rc = s_exec(c, sql, "revoke from PUBLIC");
    if (rc == 0)
        rc = s_value(c, "SELECT has_schema_privilege('public', 'public', 'CREATE')",
                     "PUBLIC's CREATE", can, sizeof can);
    if (rc == 0 && can[0] == 't') {
        /* The schema belongs to someone else (a superuser, before PostgreSQL 15). */
        lc_warn("public_may_create", "schema=public");
        fprintf(out, "warning: PUBLIC may still CREATE in schema public (its owner must run"
                     " REVOKE CREATE ON SCHEMA public FROM PUBLIC)\n");
    }
    return rc;
}

/* Whether role may be given exactly its grants: it exists and is not the owner (revoking all
 * from the owner would lock the owner out). Says what is wrong with it otherwise: a superuser or
 * a role that can create roles or databases, or owns tables, defeats least privilege. 1 to
 * grant, 0 to skip, or an error code. */
static int s_role_usable(PGconn *c, const char *kind, const char *role, FILE *out)
{
    const char *v[1] = {role};
    PGresult *r = PQexecParams(
        c,
        "SELECT r.rolsuper, r.rolcreaterole, r.rolcreatedb,"
        " pg_has_role(r.oid, (SELECT datdba FROM pg_database WHERE datname = current_database()),"
        " 'USAGE'), EXISTS (SELECT 1 FROM pg_class WHERE relowner = r.oid)"
        " FROM pg_roles r WHERE r.rolname = $1",
        1, NULL, v, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        int rc = s_failed(c, r, "role check");
        PQclear(r);
        return rc;
    }
    int found = PQntuples(r) == 1, usable = 0;
    if (!found) {
        lc_warn("role_missing", "service=%s role=%s", kind, role);
        fprintf(out, "warning: role %s (%s) does not exist: no grants for it\n", role, kind);
    } else if (PQgetvalue(r, 0, 3)[0] == 't') {
        lc_warn("role_is_owner", "service=%s role=%s", kind, role);
        fprintf(out, "warning: role %s (%s) is or acts as the database owner: left as it is\n",
                role, kind);
    } else {
        static const char *const flags[] = {"superuser", "createrole", "createdb",
                                            "member of the owner", "owner of tables"};
        for (int i = 0; i < 5; i++)
            if (i != 3 && PQgetvalue(r, 0, i)[0] == 't') {
                lc_warn("role_too_powerful", "service=%s role=%s is=\"%s\"", kind, role, flags[i]);
                fprintf(out, "warning: role %s (%s) is %s: it should not be\n", role, kind,
                        flags[i]);
            }
        usable = 1;
    }
    PQclear(r);
    return usable;
}

/* Revokes everything from role, then grants it its rows of st_grants: one transaction, so the
 * service never sees a half-granted state. */
static int s_grant(PGconn *c, st_role_t kind, const char *role, FILE *out)
{
    if (!role || !role[0])
        return 0;
    int rc = s_role_usable(c, s_role_kind[kind], role, out);
    if (rc <= 0)
        return rc;
    char *id = PQescapeIdentifier(c, role, strlen(role));
    size_t cap = 512 + st_grants_len * (96 + (id ? strlen(id) : 0)), off = 0;
    char *sql = id ? malloc(cap) : NULL;
    rc = LC_ERR_NOMEM;
    if (!sql)
        goto out;
    off += (size_t)snprintf(sql + off, cap - off,
                            "BEGIN; REVOKE ALL ON ALL TABLES IN SCHEMA public FROM %s;"
                            " REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM %s;"
                            " GRANT USAGE ON SCHEMA public TO %s;",
                            id, id, id);
    for (size_t i = 0; i < st_grants_len; i++)
        if (st_grants[i].role == kind)
            off += (size_t)snprintf(sql + off, cap - off, " GRANT %s ON %s TO %s;",
                                    st_grants[i].privileges, st_grants[i].object, id);
    snprintf(sql + off, cap - off, " COMMIT");
    if ((rc = s_exec(c, sql, "grants")) < 0) {
        (void)s_exec(c, "ROLLBACK", "rollback");
        goto out;
    }
    lc_info("grants_applied", "service=%s role=%s", s_role_kind[kind], role);
    fprintf(out, "grants applied to %s (%s)\n", role, s_role_kind[kind]);
out:
    free(sql);
    PQfreemem(id);
    return rc;
}

int st_schema_migrate(PGconn *c, const char *store_role, const char *chain_role, FILE *out)
{
    PQsetNoticeProcessor(c, s_notice, NULL);
    char sql[96];
    snprintf(sql, sizeof sql, "SELECT pg_advisory_lock(%lld)", (long long)ST_MIGRATION_LOCK);
    int rc = s_exec(c, sql, "migration lock");
    if (rc < 0)
        return rc;
    rc = s_apply_migrations(c, out);
    if (rc == 0)
        rc = s_lock_down_public(c, out);
    if (rc == 0)
        rc = s_grant(c, ST_ROLE_STORE, store_role, out);
    if (rc == 0)
        rc = s_grant(c, ST_ROLE_CHAIN, chain_role, out);
    snprintf(sql, sizeof sql, "SELECT pg_advisory_unlock(%lld)", (long long)ST_MIGRATION_LOCK);
    (void)s_exec(c, sql, "migration unlock");
    return rc;
}

int st_schema_check(PGconn *c, char *why, size_t cap)
{
    PGresult *r = PQexec(c, "SELECT to_regclass('schema_migrations') IS NOT NULL");
    int rc = LC_ERR_NOTFOUND;
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        snprintf(why, cap, "PostgreSQL unavailable");
        rc = LC_ERR_UNAVAILABLE;
    } else if (PQgetvalue(r, 0, 0)[0] != 't') {
        snprintf(why, cap, "database not migrated: run lcore-store migrate as the owner role");
    } else {
        PQclear(r);
        r = PQexec(c, "SELECT coalesce(max(version), 0), coalesce(has_table_privilege("
                      "to_regclass('records'), 'INSERT') AND has_table_privilege(to_regclass("
                      "'devices'), 'INSERT') AND has_table_privilege(to_regclass('dead_letters'),"
                      " 'INSERT'), false) FROM schema_migrations");
        int version = PQresultStatus(r) == PGRES_TUPLES_OK ? atoi(PQgetvalue(r, 0, 0)) : -1;
        if (version < 0)
            snprintf(why, cap, "role %s may not read schema_migrations: run lcore-store migrate",
                     PQuser(c));
        else if (version != st_schema_version())
            snprintf(why, cap, "database schema is version %d, this lcore-store needs %d: %s",
                     version, st_schema_version(),
                     version < st_schema_version() ? "run lcore-store migrate"
                                                   : "upgrade lcore-store");
        else if (PQgetvalue(r, 0, 1)[0] != 't')
            snprintf(why, cap, "role %s may not write records: run lcore-store migrate", PQuser(c));
        else
            rc = 0;
        if (version < 0 && PQstatus(c) != CONNECTION_OK) {
            snprintf(why, cap, "PostgreSQL unavailable");
            rc = LC_ERR_UNAVAILABLE;
        }
    }
    PQclear(r);
    return rc;
}
