/* lc_pg.c: see lc_pg.h. */
#include "lc_pg.h"

#include <stdio.h>
#include <string.h>

#include "lc_log.h"

PGconn *lc_pg_connect(const char *dsn, const char *application)
{
    /* Keywords after the DSN override it: connect_timeout bounds the TCP and auth phases. */
    const char *keys[] = {"dbname", "connect_timeout", "application_name", "options", NULL};
    const char *vals[] = {dsn, "5", application, "-c statement_timeout=30s", NULL};
    PGconn *c = PQconnectdbParams(keys, vals, 1);
    if (PQstatus(c) != CONNECTION_OK) {
        char err[256];
        snprintf(err, sizeof err, "%s", PQerrorMessage(c));
        err[strcspn(err, "\n")] = '\0';
        lc_warn("db_connect_failed", "application=%s err=\"%s\"", application, err);
        PQfinish(c);
        return NULL;
    }
    return c;
}

int lc_pg_ensure(PGconn **conn, const char *dsn, const char *application)
{
    if (*conn && PQstatus(*conn) == CONNECTION_OK)
        return 1;
    int was = *conn != NULL;
    PQfinish(*conn);
    *conn = lc_pg_connect(dsn, application);
    if (*conn && was)
        lc_info("db_reconnected", "application=%s", application);
    return *conn != NULL;
}

uint64_t lc_pg_uint(const PGresult *r, int row, int col)
{
    uint64_t v = 0;
    if (PQgetisnull(r, row, col))
        return 0;
    const uint8_t *p = (const uint8_t *)PQgetvalue(r, row, col);
    for (int i = 0; i < PQgetlength(r, row, col) && i < 8; i++)
        v = v << 8 | p[i];
    return v;
}
