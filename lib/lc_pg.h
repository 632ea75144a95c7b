/* lc_pg.h: the one way lcore programs talk to PostgreSQL (libpq). A connection handle (lc_pg_t)
 * with a bounded connect time (an unreachable host must not stall a service), a statement
 * timeout, the program's name in pg_stat_activity, and reconnect on demand; parameters bound by
 * type (lc_pg_params_t: integers, timestamps, bytea and arrays in binary, text as text, so no
 * caller formats numbers); results always in binary, read by type with NULL and length checks;
 * failures classified (the connection or the data) and described without parameter values.
 * Used by the services' data modules (st_db, ch_db) and the migration runner (lc_migrate);
 * lcore-cli still uses the raw lc_pg_connect. */
#ifndef LC_PG_H
#define LC_PG_H

#include <libpq-fe.h>
#include <stdint.h>

#include "lc_common.h"

typedef struct lc_pg lc_pg_t;
typedef struct lc_pg_params lc_pg_params_t;

/* -- connections ------------------------------------------------------------------------- */

/* A raw libpq connection with lcore's settings; NULL (reason logged, never the DSN: it may hold
 * a password) on failure. */
PGconn *lc_pg_connect(const char *dsn, const char *application);

/* Connects once; NULL on failure (logged as for lc_pg_connect). */
lc_pg_t *lc_pg_new(const char *dsn, const char *application);
void lc_pg_destroy(lc_pg_t **self_p);

/* Asked before each wait: non-zero gives up (e.g. a signal arrived, or waited_ms is too long). */
typedef int (*lc_pg_stop_fn)(void *arg, unsigned waited_ms);
/* Calls attempt(arg) until it returns non-NULL, waiting 100 ms, then twice as long each time up
 * to max_delay_ms between tries; NULL when stop (may be NULL: never) says to give up. For a
 * service's start (PostgreSQL may come up after it) and one-shots such as migrate. */
void *lc_pg_retry(void *(*attempt)(void *arg), void *arg, unsigned max_delay_ms, lc_pg_stop_fn stop,
                  void *stop_arg);
/* lc_pg_new with lc_pg_retry's backoff; a failed try is logged at most once per reason. */
lc_pg_t *lc_pg_connect_wait(const char *dsn, const char *application, unsigned max_delay_ms,
                            lc_pg_stop_fn stop, void *stop_arg);
/* The wait after one of delay_ms (0: the first): doubles, from 100 ms, capped. */
unsigned lc_pg_backoff_next(unsigned delay_ms, unsigned max_delay_ms);

/* 1 if the connection is usable; otherwise tries one reconnect and says whether it worked.
 * Statements never reconnect by themselves (that would split a transaction): call this first. */
int lc_pg_ok(lc_pg_t *self);
/* Grows with each new connection (session state such as advisory locks is gone). */
uint64_t lc_pg_session(const lc_pg_t *self);
/* Grows with every command run through lc_pg_exec, lc_pg_script, begin/commit/rollback (whatever
 * its outcome) and every new connection: what was read before may be stale. */
uint64_t lc_pg_changes(const lc_pg_t *self);
/* The libpq connection (borrowed; NULL while disconnected), for PQuser and the like. */
PGconn *lc_pg_conn(lc_pg_t *self);
/* name as a quoted SQL identifier (malloc'd, free()), or NULL. */
char *lc_pg_identifier(lc_pg_t *self, const char *name);

/* -- parameters -------------------------------------------------------------------------- */

/* The handle's own builder, emptied: build, then pass it to one statement. */
lc_pg_params_t *lc_pg_params(lc_pg_t *self);
lc_pg_params_t *lc_pg_params_new(void);
void lc_pg_params_destroy(lc_pg_params_t **self_p);
void lc_pg_params_clear(lc_pg_params_t *p);

/* Each appends the next parameter ($1, $2, ...). Values are copied, except text and bytes, which
 * are borrowed until the statement ran. A failed append (memory) makes the statement fail with
 * LC_ERR_NOMEM. */
void lc_pg_add_i64(lc_pg_params_t *p, int64_t v);  /* int8, binary */
void lc_pg_add_u64(lc_pg_params_t *p, uint64_t v); /* int8; above 2^63-1: numeric (text) */
void lc_pg_add_bool(lc_pg_params_t *p, int v);
void lc_pg_add_time_us(lc_pg_params_t *p, uint64_t unix_us); /* timestamptz; 0: NULL */
void lc_pg_add_text(lc_pg_params_t *p, const char *s);       /* type inferred; NULL: NULL */
void lc_pg_add_bytes(lc_pg_params_t *p, const void *data, size_t len); /* bytea; NULL: NULL */
void lc_pg_add_null(lc_pg_params_t *p);
/* One-dimensional arrays without NULLs (binary, lower bound 1) of n elements, element i read at
 * first + i * stride (so a field of an array of structs can be sent): bytea[] of len bytes each,
 * int8[] of int64_t (or uint64_t) values, timestamptz[] of unix microseconds (uint64_t). */
void lc_pg_add_bytes_array(lc_pg_params_t *p, const void *first, size_t stride, size_t len,
                           size_t n);
void lc_pg_add_i64_array(lc_pg_params_t *p, const void *first, size_t stride, size_t n);
/* bytea[] (text 0) or text[] (text 1) of n elements of varying length: element i's bytes are
 * at the pointer stored at ptrs + i * stride, its length the size_t at lens + i * stride (text
 * with lens NULL: a NUL-terminated string). So the fields of an array of structs can be sent. */
void lc_pg_add_var_array(lc_pg_params_t *p, int text, const void *ptrs, const void *lens,
                         size_t stride, size_t n);
void lc_pg_add_time_array(lc_pg_params_t *p, const void *first, size_t stride, size_t n);

/* What is bound (tests, debugging): the count, and parameter i's bytes (NULL for SQL NULL),
 * length, format (1 binary) and type OID (0: inferred by the server). */
int lc_pg_params_count(const lc_pg_params_t *p);
const char *lc_pg_params_value(const lc_pg_params_t *p, int i, int *len, int *format, Oid *type);

/* -- statements -------------------------------------------------------------------------- */

/* Runs one statement with p's parameters (p may be NULL), rows in binary format. 0 with *out
 * (PQclear it) or, with *out NULL: LC_ERR_UNAVAILABLE (connection lost - dropped so that
 * lc_pg_ok reconnects - or any failure that is not the data's), LC_ERR_INVALID (SQLSTATE class
 * 22 or 23: the database refused the data) or LC_ERR_NOMEM. Failures are logged (SQLSTATE, the
 * server's message unless it may quote a value, the start of the SQL). */
int lc_pg_query(lc_pg_t *self, PGresult **out, const char *sql, const lc_pg_params_t *p) LC_WUR;
/* As lc_pg_query and lc_pg_exec, for a statement run often: the handle prepares it (PQprepare)
 * on its first use in a session and runs it prepared from then on, so the server parses it once
 * and can keep its plan. sql must be a string that lives as long as the handle (a static
 * constant: its address is the key), and its parameters must keep their types from one run to
 * the next. Past 32 distinct statements a handle runs the others unprepared. */
int lc_pg_query_prepared(lc_pg_t *self, PGresult **out, const char *sql,
                         const lc_pg_params_t *p) LC_WUR;
int lc_pg_exec_prepared(lc_pg_t *self, const char *sql, const lc_pg_params_t *p) LC_WUR;
/* As lc_pg_query, exactly one row expected: LC_ERR_NOTFOUND (nothing logged) when none. */
int lc_pg_query_row(lc_pg_t *self, PGresult **out, const char *sql, const lc_pg_params_t *p) LC_WUR;
/* A statement whose rows are not wanted: the number of rows it affected (>= 0) or an error as
 * for lc_pg_query. */
int lc_pg_exec(lc_pg_t *self, const char *sql, const lc_pg_params_t *p) LC_WUR;
/* Several statements, no parameters (migrations, grants): 0 or an error as for lc_pg_query. */
int lc_pg_script(lc_pg_t *self, const char *sql) LC_WUR;
int lc_pg_begin(lc_pg_t *self) LC_WUR;
int lc_pg_commit(lc_pg_t *self) LC_WUR;
void lc_pg_rollback(lc_pg_t *self);

/* Why the last statement failed: "<SQLSTATE>: <primary message>" for integrity violations
 * (class 23: the message names a constraint, never a value), "<SQLSTATE>: data exception" for
 * class 22 (its message may quote the value), the SQLSTATE alone otherwise ("no SQLSTATE", "no
 * connection"); "" after a success. The log line of a failure has the server's message too,
 * except for class 22. */
const char *lc_pg_last_error(const lc_pg_t *self);
/* LC_ERR_INVALID for SQLSTATE classes 22 (data exception) and 23 (integrity constraint), else
 * LC_ERR_UNAVAILABLE (connection, resources, locks, permissions: retry later). */
int lc_pg_sqlstate_error(const char *sqlstate);

/* -- reading rows (binary format) -------------------------------------------------------- */

/* A column of a type other than the reader's (the SQL's bug) reads as NULL and is logged. */
int lc_pg_null(const PGresult *r, int row, int col);
int64_t lc_pg_i64(const PGresult *r, int row, int col);      /* int2/4/8; NULL: 0 */
uint64_t lc_pg_u64(const PGresult *r, int row, int col);     /* int2/4/8; NULL or < 0: 0 */
int lc_pg_bool(const PGresult *r, int row, int col);         /* NULL: 0 */
double lc_pg_double(const PGresult *r, int row, int col);    /* float4/8, int2/4/8; NULL: 0 */
uint64_t lc_pg_time_us(const PGresult *r, int row, int col); /* timestamptz; NULL: 0 */
/* A bytea of exactly len bytes into out: 0, LC_ERR_NOTFOUND (NULL) or LC_ERR_INVALID. */
int lc_pg_bytes(const PGresult *r, int row, int col, void *out, size_t len) LC_WUR;
/* A bytea as a malloc'd copy: 0, LC_ERR_NOTFOUND (NULL), LC_ERR_INVALID or LC_ERR_NOMEM. */
int lc_pg_bytes_dup(const PGresult *r, int row, int col, uint8_t **out, size_t *len) LC_WUR;
/* A text value as a malloc'd string; NULL for SQL NULL or no memory. */
char *lc_pg_text_dup(const PGresult *r, int row, int col);

/* lcore-cli's name for lc_pg_u64. */
static inline uint64_t lc_pg_uint(const PGresult *r, int row, int col)
{
    return lc_pg_u64(r, row, col);
}

#endif
