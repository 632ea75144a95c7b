/* lc_pg.c: see lc_pg.h. */
#include "lc_pg.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lc_log.h"

/* Type OIDs (pg_type.h is a server header). */
enum {
    S_BOOL = 16,
    S_BYTEA = 17,
    S_NAME = 19,
    S_INT8 = 20,
    S_INT2 = 21,
    S_INT4 = 23,
    S_TEXT = 25,
    S_FLOAT4 = 700,
    S_FLOAT8 = 701,
    S_BPCHAR = 1042,
    S_VARCHAR = 1043,
    S_TIMESTAMPTZ = 1184,
    S_NUMERIC = 1700,
};
/* timestamptz on the wire: microseconds since 2000-01-01 00:00 UTC. */
#define S_PG_EPOCH_US 946684800000000LL
#define S_FIRST_DELAY_MS 100u

struct lc_pg_params {
    int n, cap;
    const char **values; /* borrowed, or NULL where the value is in arena (off >= 0) */
    long *off;
    int *lengths, *formats;
    Oid *types;
    uint8_t *arena; /* values this builder encoded: resolved at run time (arena may move) */
    size_t used, size;
    int failed; /* an append ran out of memory */
};

struct lc_pg {
    char *dsn, *app;
    PGconn *conn;
    uint64_t session, changes;
    struct {
        const char *sql; /* the caller's static text: its address is the key */
        char name[16];
    } prepared[32]; /* prepared in this session (lc_pg_query_prepared) */
    size_t n_prepared;
    uint64_t prepared_session;
    lc_pg_params_t *params;
    char last_error[192];
};

/* -- connections ------------------------------------------------------------------------- */

/* "already exists, skipping" and the like: not worth a line of their own. */
static void s_notice(void *arg, const char *message)
{
    (void)arg;
    lc_debug("db_notice", "msg=\"%.*s\"", (int)strcspn(message, "\n"), message);
}

/* Connects; on failure NULL with the first line of libpq's reason in err. */
static PGconn *s_connect(const char *dsn, const char *application, char *err, size_t cap)
{
    /* Keywords after the DSN override it: connect_timeout bounds the TCP and auth phases. */
    const char *keys[] = {"dbname", "connect_timeout", "application_name", "options", NULL};
    const char *vals[] = {dsn, "5", application, "-c statement_timeout=30s", NULL};
    PGconn *c = PQconnectdbParams(keys, vals, 1);
    if (PQstatus(c) != CONNECTION_OK) {
        snprintf(err, cap, "%s", PQerrorMessage(c));
        err[strcspn(err, "\n")] = '\0';
        PQfinish(c);
        return NULL;
    }
    PQsetNoticeProcessor(c, s_notice, NULL);
    return c;
}

PGconn *lc_pg_connect(const char *dsn, const char *application)
{
    char err[256];
    PGconn *c = s_connect(dsn, application, err, sizeof err);
    if (!c)
        lc_warn("db_connect_failed", "application=%s err=\"%s\"", application, err);
    return c;
}

/* A handle around conn (taken; NULL: none, then NULL). */
static lc_pg_t *s_new(const char *dsn, const char *application, PGconn *conn)
{
    lc_pg_t *self = conn ? calloc(1, sizeof *self) : NULL;
    if (!self || !(self->dsn = strdup(dsn)) || !(self->app = strdup(application)) ||
        !(self->params = lc_pg_params_new())) {
        PQfinish(conn);
        lc_pg_destroy(&self);
        return NULL;
    }
    self->conn = conn;
    self->session = self->changes = 1;
    return self;
}

lc_pg_t *lc_pg_new(const char *dsn, const char *application)
{
    return s_new(dsn, application, lc_pg_connect(dsn, application));
}

void lc_pg_destroy(lc_pg_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    lc_pg_t *self = *self_p;
    PQfinish(self->conn);
    lc_pg_params_destroy(&self->params);
    free(self->dsn);
    free(self->app);
    free(self);
    *self_p = NULL;
}

unsigned lc_pg_backoff_next(unsigned delay_ms, unsigned max_delay_ms)
{
    unsigned next = delay_ms == 0                 ? S_FIRST_DELAY_MS
                    : delay_ms > max_delay_ms / 2 ? max_delay_ms
                                                  : delay_ms * 2;
    return next < max_delay_ms ? next : max_delay_ms;
}

void *lc_pg_retry(void *(*attempt)(void *arg), void *arg, unsigned max_delay_ms, lc_pg_stop_fn stop,
                  void *stop_arg)
{
    unsigned waited = 0, delay = 0;
    for (;;) {
        void *got = attempt(arg);
        if (got)
            return got;
        if (stop && stop(stop_arg, waited))
            return NULL;
        delay = lc_pg_backoff_next(delay, max_delay_ms);
        /* A signal cuts the sleep short: stop() is asked again right after the next try. */
        struct timespec ts = {delay / 1000, (long)(delay % 1000) * 1000000L};
        nanosleep(&ts, NULL);
        waited += delay;
    }
}

typedef struct {
    const char *dsn, *app;
    char said[256]; /* the last failure logged */
} s_wait_t;

static void *s_try_connect(void *arg)
{
    s_wait_t *w = arg;
    char err[256];
    PGconn *c = s_connect(w->dsn, w->app, err, sizeof err);
    if (!c) {
        if (strcmp(err, w->said) != 0)
            lc_warn("db_connect_failed", "application=%s err=\"%s\" retrying=1", w->app, err);
        snprintf(w->said, sizeof w->said, "%s", err);
        return NULL;
    }
    return s_new(w->dsn, w->app, c);
}

lc_pg_t *lc_pg_connect_wait(const char *dsn, const char *application, unsigned max_delay_ms,
                            lc_pg_stop_fn stop, void *stop_arg)
{
    s_wait_t w = {.dsn = dsn, .app = application};
    return lc_pg_retry(s_try_connect, &w, max_delay_ms, stop, stop_arg);
}

int lc_pg_ok(lc_pg_t *self)
{
    if (self->conn && PQstatus(self->conn) == CONNECTION_OK)
        return 1;
    PQfinish(self->conn);
    if (!(self->conn = lc_pg_connect(self->dsn, self->app)))
        return 0;
    self->session++;
    self->changes++;
    lc_info("db_reconnected", "application=%s", self->app);
    return 1;
}

uint64_t lc_pg_session(const lc_pg_t *self)
{
    return self->session;
}

uint64_t lc_pg_changes(const lc_pg_t *self)
{
    return self->changes;
}

PGconn *lc_pg_conn(lc_pg_t *self)
{
    return self->conn;
}

char *lc_pg_identifier(lc_pg_t *self, const char *name)
{
    if (!self->conn)
        return NULL;
    char *q = PQescapeIdentifier(self->conn, name, strlen(name));
    char *copy = q ? strdup(q) : NULL;
    PQfreemem(q);
    return copy;
}

/* -- parameters -------------------------------------------------------------------------- */

lc_pg_params_t *lc_pg_params_new(void)
{
    return calloc(1, sizeof(lc_pg_params_t));
}

void lc_pg_params_destroy(lc_pg_params_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    lc_pg_params_t *p = *self_p;
    free(p->values);
    free(p->off);
    free(p->lengths);
    free(p->formats);
    free(p->types);
    free(p->arena);
    free(p);
    *self_p = NULL;
}

void lc_pg_params_clear(lc_pg_params_t *p)
{
    p->n = 0;
    p->used = 0;
    p->failed = 0;
}

lc_pg_params_t *lc_pg_params(lc_pg_t *self)
{
    lc_pg_params_clear(self->params);
    return self->params;
}

static int s_grow(void **arr, size_t elem, int cap)
{
    void *a = realloc(*arr, elem * (size_t)cap);
    if (!a)
        return -1;
    *arr = a;
    return 0;
}

/* The next parameter's slot, or -1 (then the statement fails with LC_ERR_NOMEM). */
static int s_slot(lc_pg_params_t *p, Oid type, int format)
{
    if (p->failed)
        return -1;
    if (p->n == p->cap) {
        int cap = p->cap ? p->cap * 2 : 16;
        if (s_grow((void **)&p->values, sizeof *p->values, cap) ||
            s_grow((void **)&p->off, sizeof *p->off, cap) ||
            s_grow((void **)&p->lengths, sizeof *p->lengths, cap) ||
            s_grow((void **)&p->formats, sizeof *p->formats, cap) ||
            s_grow((void **)&p->types, sizeof *p->types, cap)) {
            p->failed = 1;
            return -1;
        }
        p->cap = cap;
    }
    int i = p->n++;
    p->values[i] = NULL;
    p->off[i] = -1;
    p->lengths[i] = 0;
    p->formats[i] = format;
    p->types[i] = type;
    return i;
}

/* Room for len more bytes of an encoded value: where they go, or NULL. */
static uint8_t *s_reserve(lc_pg_params_t *p, int i, size_t len)
{
    if (p->used + len > p->size) {
        size_t size = p->size ? p->size : 256;
        while (size < p->used + len)
            size *= 2;
        uint8_t *a = realloc(p->arena, size);
        if (!a) {
            p->failed = 1;
            return NULL;
        }
        p->arena = a;
        p->size = size;
    }
    uint8_t *at = p->arena + p->used;
    p->off[i] = (long)p->used;
    p->lengths[i] = (int)len;
    p->used += len;
    return at;
}

static uint8_t *s_be(uint8_t *at, uint64_t v, int bytes)
{
    for (int k = 0; k < bytes; k++)
        *at++ = (uint8_t)(v >> (8 * (bytes - 1 - k)));
    return at;
}

static uint64_t s_pg_time(uint64_t unix_us)
{
    return (uint64_t)((int64_t)unix_us - S_PG_EPOCH_US);
}

static void s_add_be(lc_pg_params_t *p, Oid type, uint64_t v, int bytes)
{
    int i = s_slot(p, type, 1);
    uint8_t *at = i < 0 ? NULL : s_reserve(p, i, (size_t)bytes);
    if (at)
        s_be(at, v, bytes);
}

void lc_pg_add_i64(lc_pg_params_t *p, int64_t v)
{
    s_add_be(p, S_INT8, (uint64_t)v, 8);
}

void lc_pg_add_u64(lc_pg_params_t *p, uint64_t v)
{
    if (v <= INT64_MAX) {
        s_add_be(p, S_INT8, v, 8);
        return;
    }
    int i = s_slot(p, S_NUMERIC, 0);
    char *at = i < 0 ? NULL : (char *)s_reserve(p, i, 24);
    if (at)
        snprintf(at, 24, "%llu", (unsigned long long)v);
}

void lc_pg_add_bool(lc_pg_params_t *p, int v)
{
    s_add_be(p, S_BOOL, v != 0, 1);
}

void lc_pg_add_time_us(lc_pg_params_t *p, uint64_t unix_us)
{
    if (unix_us == 0)
        lc_pg_add_null(p);
    else
        s_add_be(p, S_TIMESTAMPTZ, s_pg_time(unix_us), 8);
}

void lc_pg_add_text(lc_pg_params_t *p, const char *s)
{
    int i = s_slot(p, 0, 0);
    if (i >= 0)
        p->values[i] = s;
}

void lc_pg_add_bytes(lc_pg_params_t *p, const void *data, size_t len)
{
    int i = s_slot(p, S_BYTEA, 1);
    if (i >= 0 && data) {
        p->values[i] = data;
        p->lengths[i] = (int)len;
    }
}

void lc_pg_add_null(lc_pg_params_t *p)
{
    (void)s_slot(p, 0, 0);
}

/* array_recv's format: header (dimensions, has-NULLs, element type, length, lower bound), then
 * each element as its length and its bytes. */
/* The header of an array of n elements whose bytes come to `body` in all; returns where the
 * first element goes (NULL: out of memory, noted). */
static uint8_t *s_array_of(lc_pg_params_t *p, Oid array_type, Oid elem_type, size_t body, size_t n)
{
    int i = s_slot(p, array_type, 1);
    uint8_t *at = i < 0 ? NULL : s_reserve(p, i, 20 + n * 4 + body);
    if (!at)
        return NULL;
    at = s_be(at, 1, 4);
    at = s_be(at, 0, 4);
    at = s_be(at, elem_type, 4);
    at = s_be(at, n, 4);
    return s_be(at, 1, 4);
}

static uint8_t *s_array(lc_pg_params_t *p, Oid array_type, Oid elem_type, size_t elem_len, size_t n)
{
    return s_array_of(p, array_type, elem_type, n * elem_len, n);
}

/* Element k of a lc_pg_add_var_array: its bytes and length. */
static const char *s_var_elem(const void *ptrs, const void *lens, size_t stride, size_t k,
                              size_t *len)
{
    const char *e;
    memcpy(&e, (const uint8_t *)ptrs + k * stride, sizeof e);
    if (lens)
        memcpy(len, (const uint8_t *)lens + k * stride, sizeof *len);
    else
        *len = strlen(e);
    return e;
}

void lc_pg_add_var_array(lc_pg_params_t *p, int text, const void *ptrs, const void *lens,
                         size_t stride, size_t n)
{
    size_t body = 0, len;
    for (size_t k = 0; k < n; k++) {
        (void)s_var_elem(ptrs, lens, stride, k, &len);
        body += len;
    }
    uint8_t *at = s_array_of(p, text ? 1009 : 1001, text ? S_TEXT : S_BYTEA, body, n);
    for (size_t k = 0; at && k < n; k++) {
        const char *e = s_var_elem(ptrs, lens, stride, k, &len);
        at = s_be(at, len, 4);
        memcpy(at, e, len);
        at += len;
    }
}

void lc_pg_add_bytes_array(lc_pg_params_t *p, const void *first, size_t stride, size_t len,
                           size_t n)
{
    uint8_t *at = s_array(p, 1001, S_BYTEA, len, n);
    for (size_t k = 0; at && k < n; k++) {
        at = s_be(at, len, 4);
        memcpy(at, (const uint8_t *)first + k * stride, len);
        at += len;
    }
}

/* n 8-byte integers read at first + k * stride, each through conv. */
static void s_int8_array(lc_pg_params_t *p, Oid array_type, Oid elem_type, const void *first,
                         size_t stride, size_t n, uint64_t (*conv)(uint64_t))
{
    uint8_t *at = s_array(p, array_type, elem_type, 8, n);
    for (size_t k = 0; at && k < n; k++) {
        uint64_t v;
        memcpy(&v, (const uint8_t *)first + k * stride, sizeof v);
        at = s_be(s_be(at, 8, 4), conv ? conv(v) : v, 8);
    }
}

void lc_pg_add_i64_array(lc_pg_params_t *p, const void *first, size_t stride, size_t n)
{
    s_int8_array(p, 1016, S_INT8, first, stride, n, NULL);
}

void lc_pg_add_time_array(lc_pg_params_t *p, const void *first, size_t stride, size_t n)
{
    s_int8_array(p, 1185, S_TIMESTAMPTZ, first, stride, n, s_pg_time);
}

int lc_pg_params_count(const lc_pg_params_t *p)
{
    return p->n;
}

const char *lc_pg_params_value(const lc_pg_params_t *p, int i, int *len, int *format, Oid *type)
{
    *len = p->lengths[i];
    *format = p->formats[i];
    *type = p->types[i];
    return p->off[i] >= 0 ? (const char *)p->arena + p->off[i] : p->values[i];
}

/* -- statements -------------------------------------------------------------------------- */

int lc_pg_sqlstate_error(const char *sqlstate)
{
    if (sqlstate && (strncmp(sqlstate, "22", 2) == 0 || strncmp(sqlstate, "23", 2) == 0))
        return LC_ERR_INVALID;
    return LC_ERR_UNAVAILABLE;
}

/* Keeps and logs why a statement failed, never with parameter values: an integrity violation's
 * primary message names only the table, column or constraint; a data exception's (class 22)
 * may quote the offending value, so only its SQLSTATE is kept and logged. Details ("Failing row
 * contains ...") never. Returns the error code. */
static int s_fail(lc_pg_t *self, const PGresult *r, const char *sql)
{
    const char *state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
    const char *primary = r ? PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    char msg[160];
    snprintf(msg, sizeof msg, "%s", primary ? primary : PQerrorMessage(self->conn));
    msg[strcspn(msg, "\n")] = '\0';
    for (char *c = msg; *c; c++)
        *c = *c == '"' ? '\'' : *c; /* a log value in quotes */
    int data = lc_pg_sqlstate_error(state) == LC_ERR_INVALID;
    if (data && strncmp(state, "22", 2) == 0)
        snprintf(msg, sizeof msg, "data exception");
    if (data)
        snprintf(self->last_error, sizeof self->last_error, "%s: %s", state, msg);
    else
        snprintf(self->last_error, sizeof self->last_error, "%s", state ? state : "no SQLSTATE");
    lc_warn("db_error", "sqlstate=%s err=\"%s\" sql=\"%.60s\"", state ? state : "-", msg, sql);
    if (PQstatus(self->conn) != CONNECTION_OK) {
        PQfinish(self->conn); /* lc_pg_ok reconnects */
        self->conn = NULL;
        return LC_ERR_UNAVAILABLE;
    }
    return data ? LC_ERR_INVALID : LC_ERR_UNAVAILABLE;
}

/* sql with p, or the statement prepared as `name`. */
static PGresult *s_run(lc_pg_t *self, const char *sql, const char *name, const lc_pg_params_t *p)
{
    int n = p ? p->n : 0;
    for (int i = 0; i < n; i++)
        if (p->off[i] >= 0)
            p->values[i] = (const char *)p->arena + p->off[i];
    if (name)
        return PQexecPrepared(self->conn, name, n, n ? p->values : NULL, n ? p->lengths : NULL,
                              n ? p->formats : NULL, 1);
    if (!n)
        return PQexecParams(self->conn, sql, 0, NULL, NULL, NULL, NULL, 1);
    return PQexecParams(self->conn, sql, n, p->types, p->values, p->lengths, p->formats, 1);
}

/* The name of sql prepared in this session, preparing it on first use: "lc_" and its index in
 * the handle's table (which a reconnect empties). NULL with *failed set when it could not be. */
static const char *s_prepared(lc_pg_t *self, const char *sql, const lc_pg_params_t *p,
                              PGresult **failed)
{
    if (self->prepared_session != self->session) {
        self->n_prepared = 0;
        self->prepared_session = self->session;
    }
    size_t i = 0;
    while (i < self->n_prepared && self->prepared[i].sql != sql)
        i++;
    if (i < self->n_prepared)
        return self->prepared[i].name;
    if (i == LC_ARRAY_LEN(self->prepared))
        return NULL; /* the table is full: run it unprepared */
    snprintf(self->prepared[i].name, sizeof self->prepared[i].name, "lc_%zu", i);
    PGresult *r =
        PQprepare(self->conn, self->prepared[i].name, sql, p ? p->n : 0, p ? p->types : NULL);
    if (PQresultStatus(r) != PGRES_COMMAND_OK) {
        *failed = r;
        return NULL;
    }
    PQclear(r);
    self->prepared[i].sql = sql;
    self->n_prepared = i + 1;
    return self->prepared[i].name;
}

/* Runs sql (prepared first when asked), with p, and keeps or logs the outcome. */
static int s_query(lc_pg_t *self, PGresult **out, const char *sql, int prepare,
                   const lc_pg_params_t *p)
{
    *out = NULL;
    if (p && p->failed)
        return LC_ERR_NOMEM;
    if (!self->conn) { /* lost earlier (and logged then): lc_pg_ok reconnects */
        snprintf(self->last_error, sizeof self->last_error, "no connection");
        return LC_ERR_UNAVAILABLE;
    }
    PGresult *r = NULL;
    const char *name = prepare ? s_prepared(self, sql, p, &r) : NULL;
    if (!r)
        r = s_run(self, sql, name, p);
    ExecStatusType st = PQresultStatus(r);
    if (st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK) {
        self->last_error[0] = '\0';
        *out = r;
        return 0;
    }
    int rc = s_fail(self, r, sql);
    PQclear(r);
    return rc;
}

int lc_pg_query(lc_pg_t *self, PGresult **out, const char *sql, const lc_pg_params_t *p)
{
    return s_query(self, out, sql, 0, p);
}

int lc_pg_query_prepared(lc_pg_t *self, PGresult **out, const char *sql, const lc_pg_params_t *p)
{
    return s_query(self, out, sql, 1, p);
}

int lc_pg_query_row(lc_pg_t *self, PGresult **out, const char *sql, const lc_pg_params_t *p)
{
    int rc = lc_pg_query(self, out, sql, p);
    if (rc == 0 && PQntuples(*out) != 1) {
        PQclear(*out);
        *out = NULL;
        rc = LC_ERR_NOTFOUND;
    }
    return rc;
}

/* lc_pg_exec and lc_pg_exec_prepared. */
static int s_exec(lc_pg_t *self, const char *sql, int prepare, const lc_pg_params_t *p)
{
    PGresult *r;
    self->changes++;
    int rc = s_query(self, &r, sql, prepare, p);
    if (rc < 0)
        return rc;
    rc = atoi(PQcmdTuples(r));
    PQclear(r);
    return rc;
}

int lc_pg_exec(lc_pg_t *self, const char *sql, const lc_pg_params_t *p)
{
    return s_exec(self, sql, 0, p);
}

int lc_pg_exec_prepared(lc_pg_t *self, const char *sql, const lc_pg_params_t *p)
{
    return s_exec(self, sql, 1, p);
}

int lc_pg_script(lc_pg_t *self, const char *sql)
{
    self->changes++;
    if (!self->conn) {
        snprintf(self->last_error, sizeof self->last_error, "no connection");
        return LC_ERR_UNAVAILABLE;
    }
    PGresult *r = PQexec(self->conn, sql);
    ExecStatusType st = PQresultStatus(r);
    int rc = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK ? 0 : s_fail(self, r, sql);
    PQclear(r);
    return rc;
}

int lc_pg_begin(lc_pg_t *self)
{
    return lc_pg_script(self, "BEGIN");
}

int lc_pg_commit(lc_pg_t *self)
{
    return lc_pg_script(self, "COMMIT");
}

void lc_pg_rollback(lc_pg_t *self)
{
    self->changes++;
    if (self->conn)
        PQclear(PQexec(self->conn, "ROLLBACK")); /* nothing to do if it fails: the session is */
}

const char *lc_pg_last_error(const lc_pg_t *self)
{
    return self->last_error;
}

/* -- reading rows ------------------------------------------------------------------------ */

/* The column's value if it is not NULL and of one of the types in want (0-terminated); a
 * column of another type is the SQL's bug: logged, read as NULL. */
static const uint8_t *s_value(const PGresult *r, int row, int col, const Oid *want, int *len)
{
    if (PQgetisnull(r, row, col))
        return NULL;
    Oid type = PQftype(r, col);
    for (; *want; want++)
        if (*want == type) {
            *len = PQgetlength(r, row, col);
            return (const uint8_t *)PQgetvalue(r, row, col);
        }
    lc_error("db_column_type", "column=%s type=%u", PQfname(r, col), (unsigned)type);
    return NULL;
}

static const Oid s_ints[] = {S_INT8, S_INT4, S_INT2, 0};

int lc_pg_null(const PGresult *r, int row, int col)
{
    return PQgetisnull(r, row, col);
}

int64_t lc_pg_i64(const PGresult *r, int row, int col)
{
    int len = 0;
    const uint8_t *v = s_value(r, row, col, s_ints, &len);
    if (!v || len < 1 || len > 8)
        return 0;
    uint64_t x = v[0] & 0x80 ? UINT64_MAX : 0; /* sign-extends int2 and int4 */
    for (int i = 0; i < len; i++)
        x = x << 8 | v[i];
    return (int64_t)x;
}

uint64_t lc_pg_u64(const PGresult *r, int row, int col)
{
    int64_t v = lc_pg_i64(r, row, col);
    return v > 0 ? (uint64_t)v : 0;
}

int lc_pg_bool(const PGresult *r, int row, int col)
{
    static const Oid want[] = {S_BOOL, 0};
    int len = 0;
    const uint8_t *v = s_value(r, row, col, want, &len);
    return v && len == 1 && v[0] != 0;
}

double lc_pg_double(const PGresult *r, int row, int col)
{
    static const Oid floats[] = {S_FLOAT8, S_FLOAT4, 0};
    if (!PQgetisnull(r, row, col) && PQftype(r, col) != S_FLOAT8 && PQftype(r, col) != S_FLOAT4)
        return (double)lc_pg_i64(r, row, col);
    int len = 0;
    const uint8_t *v = s_value(r, row, col, floats, &len);
    uint64_t bits = 0;
    for (int i = 0; v && i < len; i++)
        bits = bits << 8 | v[i];
    if (v && len == 8) {
        double d;
        memcpy(&d, &bits, sizeof d);
        return d;
    }
    if (v && len == 4) {
        uint32_t b32 = (uint32_t)bits;
        float f;
        memcpy(&f, &b32, sizeof f);
        return f;
    }
    return 0;
}

uint64_t lc_pg_time_us(const PGresult *r, int row, int col)
{
    static const Oid want[] = {S_TIMESTAMPTZ, 0};
    int len = 0;
    const uint8_t *v = s_value(r, row, col, want, &len);
    if (!v || len != 8)
        return 0;
    uint64_t x = 0;
    for (int i = 0; i < 8; i++)
        x = x << 8 | v[i];
    int64_t pg = (int64_t)x; /* also catches -infinity and infinity (INT64_MIN, INT64_MAX) */
    return pg < -S_PG_EPOCH_US || pg > INT64_MAX - S_PG_EPOCH_US ? 0
                                                                 : (uint64_t)(pg + S_PG_EPOCH_US);
}

static const Oid s_bytea[] = {S_BYTEA, 0};

int lc_pg_bytes(const PGresult *r, int row, int col, void *out, size_t len)
{
    int n = 0;
    const uint8_t *v = s_value(r, row, col, s_bytea, &n);
    if (!v)
        return PQgetisnull(r, row, col) ? LC_ERR_NOTFOUND : LC_ERR_INVALID;
    if ((size_t)n != len)
        return LC_ERR_INVALID;
    memcpy(out, v, len);
    return 0;
}

int lc_pg_bytes_dup(const PGresult *r, int row, int col, uint8_t **out, size_t *len)
{
    int n = 0;
    const uint8_t *v = s_value(r, row, col, s_bytea, &n);
    *out = NULL;
    *len = 0;
    if (!v)
        return PQgetisnull(r, row, col) ? LC_ERR_NOTFOUND : LC_ERR_INVALID;
    if (!(*out = malloc(n ? (size_t)n : 1)))
        return LC_ERR_NOMEM;
    memcpy(*out, v, (size_t)n);
    *len = (size_t)n;
    return 0;
}

char *lc_pg_text_dup(const PGresult *r, int row, int col)
{
    static const Oid texts[] = {S_TEXT, S_VARCHAR, S_NAME, S_BPCHAR, 0};
    int len = 0;
    const uint8_t *v = s_value(r, row, col, texts, &len);
    return v ? strndup((const char *)v, (size_t)len) : NULL;
}
