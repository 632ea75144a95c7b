/* cli_answer.h: what the gateway's operator API answers (docs/ARCHITECTURE.md, "Operator API"),
 * as tables of fields: each shape checks an answer before anything of it is printed (an answer
 * is external input: only printable ASCII passes, nothing that could drive a terminal), then
 * prints it as a table, as "key value" lines, or as JSON. Used by the operator verbs
 * (cli_admin.h). */
#ifndef CLI_ANSWER_H
#define CLI_ANSWER_H

#include <jansson.h>
#include <stddef.h>

typedef enum {
    CLI_KIND_DEVICE_ID,    /* lc_device_id_valid */
    CLI_KIND_ALG,          /* "EdDSA" | "ES256K" */
    CLI_KIND_HEX,          /* a public key in hex */
    CLI_KIND_STATUS,       /* "active" | "revoked" */
    CLI_KIND_TIME,         /* a time stamp: printable text, or an integer */
    CLI_KIND_TIME_OR_NULL, /* ... or null / absent: never */
    CLI_KIND_COUNT,        /* an integer >= 0 */
    CLI_KIND_PREVIOUS_KEY, /* null / absent, or {alg, public_key, valid_until} */
    CLI_KIND_TOKEN_ID,     /* "tok_" + 16 hex digits */
    CLI_KIND_SCOPE,        /* "read" | "decrypt" | "operator" */
    CLI_KIND_DEVICES,      /* null / absent / [] (every device), or device ids */
    CLI_KIND_WORD,         /* printable text without spaces: an action, a target, a token id */
    CLI_KIND_ID,           /* a word or an integer >= 0 */
    CLI_KIND_SECRET,       /* a created token: a word of 16 characters or more */
    CLI_KIND_DELETED,      /* "deleted" */
} cli_kind_t;

typedef struct {
    const char *key;
    cli_kind_t kind;
    int column; /* shown in tables (every field is shown by cli_answer_detail) */
} cli_field_t;

typedef struct {
    const cli_field_t *fields;
    size_t n;
} cli_shape_t;

extern const cli_shape_t cli_shape_device;        /* GET /v1/devices/{id} and the device verbs */
extern const cli_shape_t cli_shape_token;         /* an entry of GET /v1/tokens */
extern const cli_shape_t cli_shape_token_created; /* POST /v1/tokens */
extern const cli_shape_t cli_shape_token_deleted; /* DELETE /v1/tokens/{id} */
extern const cli_shape_t cli_shape_audit_entry;   /* an entry of GET /v1/audit */

/* NULL when obj is an object of that shape, else the key that is missing or malformed. */
const char *cli_answer_bad(const json_t *obj, const cli_shape_t *shape);

/* A page's "next": 1 with the cursor as text in out, 0 when null or absent (the last page), -1
 * when it is not a cursor (a word or an integer). */
int cli_answer_cursor(char *out, size_t cap, const json_t *next);

/* Every field of obj but a secret, one "key  value" line each. obj is of that shape. */
void cli_answer_detail(const json_t *obj, const cli_shape_t *shape);
/* items (an array of objects of that shape) as a table of the shape's columns, with a heading. */
void cli_answer_table(const json_t *items, const cli_shape_t *shape);
/* doc as one JSON document (indented) on stdout. */
void cli_answer_json(const json_t *doc);

#endif
