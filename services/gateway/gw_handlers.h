/* gw_handlers.h: what gw_http.c gives the route handlers of the reader API (gw_reader.c) and the
 * operator API (gw_operator.c), and the handlers themselves. gw_http.c routes a request
 * (gw_routes.h), checks its bearer token and scope (gw_tokens.h), collects its body when the
 * route has one, and calls the route's handler with a gw_call_t; a handler answers through
 * gw_reply_error / gw_reply_json, which count the responses. Internal to the gateway. */
#ifndef GW_HANDLERS_H
#define GW_HANDLERS_H

#include <jansson.h>
#include <microhttpd.h>

#include "gw_http.h"
#include "gw_routes.h"
#include "gw_tokens.h"

/* An answer built on a query thread, queued by libmicrohttpd's thread once the connection is
 * resumed. */
typedef struct {
    unsigned status;
    struct MHD_Response *resp; /* NULL: out of memory (the connection is closed) */
} gw_answer_t;

typedef struct {
    gw_http_t *http;
    struct MHD_Connection *c; /* on a query thread: suspended, only read (query arguments) */
    gw_answer_t *answer;      /* set on a query thread: gw_reply_* build into it */
    const gw_http_deps_t *deps;
    gw_route_id_t route;
    const char *param;       /* the path's "{...}" segment ("" when none, or too long) */
    const gw_token_t *token; /* the caller's (NULL on the device routes) */
    const char *body;        /* routes with a body: NUL-terminated */
    size_t len;
    lc_counter_t *chain_unanswered; /* record answers without the chain's part */
} gw_call_t;

enum MHD_Result gw_reply_error(const gw_call_t *call, unsigned status, const char *code,
                               const char *message, unsigned retry_after);
/* Answers j (taken: freed here) with status; NULL j answers 500. */
enum MHD_Result gw_reply_json(const gw_call_t *call, unsigned status, json_t *j);
/* The same for an answer that shows a secret once (a token, a broker password): no copy is
 * left behind (lc_http_reply_json_secret), and j's strings are wiped before it is freed. */
enum MHD_Result gw_reply_json_secret(const gw_call_t *call, unsigned status, json_t *j);
/* The query string's value of name, or NULL. */
const char *gw_call_arg(const gw_call_t *call, const char *name);
/* The 503 of a store (or relayer) that did not answer, or answered ERROR. */
enum MHD_Result gw_reply_unavailable(const gw_call_t *call, const Lcore__V1__QueryReply *r,
                                     const char *who);

/* JSON pieces: lowercase hex (NULL-safe: null), 0x-hex, RFC 3339 UTC (us 0: null). */
json_t *gw_json_hex(const uint8_t *b, size_t n);
json_t *gw_json_hex0x(const uint8_t *b, size_t n);
json_t *gw_json_time(uint64_t us);
/* Opaque page cursors: kind (one byte), then the position's bytes, base64url. */
#define GW_CURSOR_MAX 400
int gw_cursor_make(char out[GW_CURSOR_MAX], uint8_t kind, const void *pos, size_t len);
/* The position of cursor text of kind: its length, or -1 when text is not such a cursor. */
int gw_cursor_parse(const char *text, uint8_t kind, void *pos, size_t cap);
/* The same for a position that is a number (8 bytes, big-endian). */
int gw_cursor_make_u64(char out[GW_CURSOR_MAX], uint8_t kind, uint64_t pos);
int gw_cursor_parse_u64(const char *text, uint8_t kind, uint64_t *pos);
/* A query-string limit: 1..1000, default def; -1 when given and not a number in range. */
int gw_arg_limit(const gw_call_t *call, int def);

/* Reader API (gw_reader.c), on the device listener. */
enum MHD_Result gw_reader_record(const gw_call_t *call);
enum MHD_Result gw_reader_receipt(const gw_call_t *call);
enum MHD_Result gw_reader_open(const gw_call_t *call);
enum MHD_Result gw_reader_device_records(const gw_call_t *call);
enum MHD_Result gw_reader_device_status(const gw_call_t *call);

/* Operator API (gw_operator.c), on the admin listener. */
enum MHD_Result gw_op_register(const gw_call_t *call);
enum MHD_Result gw_op_device_list(const gw_call_t *call);
enum MHD_Result gw_op_device_get(const gw_call_t *call);
enum MHD_Result gw_op_device_revoke(const gw_call_t *call);
enum MHD_Result gw_op_rotate(const gw_call_t *call);
enum MHD_Result gw_op_token_create(const gw_call_t *call);
enum MHD_Result gw_op_token_list(const gw_call_t *call);
enum MHD_Result gw_op_token_delete(const gw_call_t *call);
enum MHD_Result gw_op_audit(const gw_call_t *call);

#endif
