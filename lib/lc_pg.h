/* lc_pg.h: how every lcore program connects to PostgreSQL: a bounded connect time (an
 * unreachable host must not stall a service), a statement timeout, the program's name in
 * pg_stat_activity, and reconnect-on-demand after the connection broke. */
#ifndef LC_PG_H
#define LC_PG_H

#include <libpq-fe.h>
#include <stdint.h>

/* Connects; NULL (reason logged, never the DSN: it may hold a password) on failure. */
PGconn *lc_pg_connect(const char *dsn, const char *application);

/* 1 if *conn is usable; otherwise replaces it with a fresh connection and says whether that
 * worked. */
int lc_pg_ensure(PGconn **conn, const char *dsn, const char *application);

/* An integer column of a binary-format result (int2/int4/int8, big-endian on the wire) as an
 * unsigned value; 0 for NULL. */
uint64_t lc_pg_uint(const PGresult *r, int row, int col);

#endif
