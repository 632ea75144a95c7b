/* lc_cfg.h: configuration as a table. Each service describes its settings as rows
 * {LCORE_* name, type, field offset, default, bounds, meaning}; one table drives parsing from the
 * environment, validation, `--help` and the start-up dump (secrets redacted). */
#ifndef LC_CFG_H
#define LC_CFG_H

#include <stddef.h>
#include <stdio.h>

#include "lc_common.h"

typedef enum {
    LC_CFG_STR,  /* char[size] field */
    LC_CFG_INT,  /* long long field, within [min, max] */
    LC_CFG_BOOL, /* int field: 0/1, accepts 0/1/true/false/yes/no/on/off */
    LC_CFG_ENUM, /* int field: index into `choices` ("a|b|c") */
    LC_CFG_ADDR, /* char[size] field: a listener's IPv4:port or [IPv6]:port */
} lc_cfg_type_t;

typedef struct {
    const char *name;
    lc_cfg_type_t type;
    size_t offset;
    size_t size; /* LC_CFG_STR: capacity of the char array */
    const char *def;
    long long min, max;  /* LC_CFG_INT */
    const char *choices; /* LC_CFG_ENUM */
    int secret;          /* LC_CFG_SECRET_VALUE: never printed; LC_CFG_SECRET_URLS: URLs, printed
                            as scheme://host:port only (lc_url_redact) */
    const char *help;
} lc_cfg_opt_t;

#define LC_CFG_S(name, st, field, def, help)                                                       \
    {                                                                                              \
        name, LC_CFG_STR, offsetof(st, field), sizeof(((st *)0)->field), def, 0, 0, NULL, 0, help  \
    }
#define LC_CFG_SECRET(name, st, field, def, help)                                                  \
    {                                                                                              \
        name, LC_CFG_STR, offsetof(st, field), sizeof(((st *)0)->field), def, 0, 0, NULL, 1, help  \
    }
enum { LC_CFG_SECRET_VALUE = 1, LC_CFG_SECRET_URLS = 2 };
/* A comma-separated list of URLs that may carry credentials or API keys (user:password@, a
 * provider key in the path or query): logged with only scheme://host:port of each. */
#define LC_CFG_URLS(name, st, field, def, help)                                                    \
    {                                                                                              \
        name, LC_CFG_STR, offsetof(st, field), sizeof(((st *)0)->field), def, 0, 0, NULL,          \
            LC_CFG_SECRET_URLS, help                                                               \
    }
#define LC_CFG_I(name, st, field, def, lo, hi, help)                                               \
    {                                                                                              \
        name, LC_CFG_INT, offsetof(st, field), sizeof(long long), def, lo, hi, NULL, 0, help       \
    }
#define LC_CFG_A(name, st, field, def, help)                                                       \
    {                                                                                              \
        name, LC_CFG_ADDR, offsetof(st, field), sizeof(((st *)0)->field), def, 0, 0, NULL, 0, help \
    }
#define LC_CFG_B(name, st, field, def, help)                                                       \
    {                                                                                              \
        name, LC_CFG_BOOL, offsetof(st, field), sizeof(int), def, 0, 1, NULL, 0, help              \
    }
#define LC_CFG_E(name, st, field, def, choices, help)                                              \
    {                                                                                              \
        name, LC_CFG_ENUM, offsetof(st, field), sizeof(int), def, 0, 0, choices, 0, help           \
    }

/* Rows every service spells the same way but for its name, default port and the end of the
 * help line (`more`): the admin listener, on loopback unless an operator says otherwise
 * (a char admin_bind[] field); and for a service with state in PostgreSQL, LCORE_PG_DSN as its
 * own role (a char pg_dsn[] field), a secret since a DSN may carry a password. */
#define LC_CFG_ADMIN_BIND(name, st, port, more)                                                    \
    LC_CFG_A(name, st, admin_bind, "127.0.0.1:" port,                                              \
             "admin listener, IPv4:port or [IPv6]:port: /metrics, /healthz, /readyz" more)
#define LC_CFG_PG_DSN(st, role, more)                                                              \
    LC_CFG_SECRET("LCORE_PG_DSN", st, pg_dsn, "postgresql://" role "@127.0.0.1:5432/lcore",        \
                  "PostgreSQL connection string (libpq)" more)

/* The ZeroMQ links' default ports (docs/ARCHITECTURE.md). One service binds what others connect
 * to, so each port is written once: the binding row listens on every interface, a connecting
 * row defaults to the same host. */
#define LC_LINK_READINGS "5551"      /* gateway binds, crypto workers connect */
#define LC_LINK_SEALED "5552"        /* store binds, crypto workers connect */
#define LC_LINK_EVENTS "5553"        /* store binds, gateways and the relayer subscribe */
#define LC_LINK_QUERIES "5554"       /* store binds, gateways, the relayer and operators ask */
#define LC_LINK_CHAIN_QUERIES "5555" /* the relayer binds, gateways ask */
#define LC_LINK_OPEN "5556"          /* a gateway binds, crypto workers answer its opens */
#define LC_CFG_LINK_BIND(name, st, field, link, help)                                              \
    LC_CFG_S(name, st, field, "tcp://*:" link, help)
#define LC_CFG_LINK_CONNECT(name, st, field, link, help)                                           \
    LC_CFG_S(name, st, field, "tcp://127.0.0.1:" link, help)

/* Parses a listener address: "IPv4:port" or "[IPv6]:port" (literal addresses, port 1-65535).
 * Fills *out (port in network order) and *out_len. Returns 0 or LC_ERR_INVALID. */
struct sockaddr_storage;
int lc_cfg_addr_parse(struct sockaddr_storage *out, unsigned *out_len, const char *text) LC_WUR;

/* Fills cfg from defaults then the environment. A variable renamed in this release (the table in
 * lc_cfg.c) is still read under its old name when the new one is not set, with a warning
 * (event=config_renamed); when both are set the new one wins and the old one is ignored, with a
 * warning. On an invalid value writes a one-line reason (naming the variable as it was set)
 * into err and returns LC_ERR_INVALID. */
int lc_cfg_load(void *cfg, const lc_cfg_opt_t *opts, size_t n, char *err, size_t err_len) LC_WUR;

/* Prints usage: summary line, then every variable with its default and meaning. */
void lc_cfg_help(FILE *out, const char *prog, const char *summary, const lc_cfg_opt_t *opts,
                 size_t n);

/* Logs the effective configuration as one key=value line (secrets shown as "<set>"). */
void lc_cfg_log(const void *cfg, const lc_cfg_opt_t *opts, size_t n);

/* The common start of every service's main(): handles --help/-h and --version, rejects unknown
 * arguments, loads the table and initialises logging from LCORE_LOG_LEVEL. Returns 0 to go on,
 * 1 when the program should exit 0 (help printed), -1 on error (reason printed to stderr). */
int lc_cfg_main(int argc, char **argv, const char *service, const char *summary, void *cfg,
                const lc_cfg_opt_t *opts, size_t n);

#endif
