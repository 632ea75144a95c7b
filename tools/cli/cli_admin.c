/* cli_admin.c: see cli_admin.h. The verbs are a table: each row names the options it takes and
 * its ID argument, so parsing, checking and usage are done once for all of them. */
#include "cli_admin.h"

#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <sodium.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli_answer.h"
#include "cli_gateway.h"
#include "lc_jws.h"
#include "lc_record.h"

#define S_PAGE_MAX 1000  /* the API's bound on limit */
#define S_CURSOR_MAX 512 /* a page cursor's text */
#define S_PATH_MAX 1024  /* a request's path and query */
#define S_JWK_MAX 4096   /* a public JWK file */

/* The options, in the order of their bits (S_O_*). */
static const struct option s_opts[] = {{"limit", required_argument, NULL, 0},
                                       {"after", required_argument, NULL, 0},
                                       {"all", no_argument, NULL, 0},
                                       {"json", no_argument, NULL, 0},
                                       {"alg", required_argument, NULL, 0},
                                       {"public-key", required_argument, NULL, 0},
                                       {"overlap-s", required_argument, NULL, 0},
                                       {"scope", required_argument, NULL, 0},
                                       {"device", required_argument, NULL, 0},
                                       {"expires-in-s", required_argument, NULL, 0},
                                       {NULL, 0, NULL, 0}};
enum {
    S_O_LIMIT = 1u << 0,
    S_O_AFTER = 1u << 1,
    S_O_ALL = 1u << 2,
    S_O_JSON = 1u << 3,
    S_O_ALG = 1u << 4,
    S_O_PUBLIC_KEY = 1u << 5,
    S_O_OVERLAP_S = 1u << 6,
    S_O_SCOPE = 1u << 7,
    S_O_DEVICE = 1u << 8,
    S_O_EXPIRES_IN_S = 1u << 9,
    S_O_PAGES = S_O_LIMIT | S_O_AFTER | S_O_ALL | S_O_JSON,
};

typedef struct {
    unsigned given; /* S_O_* */
    const char *cmd, *id, *after, *alg, *public_key, *scope;
    long long limit, overlap_s, expires_in_s;
    json_t *devices; /* --device, in order */
} s_args_t;

typedef struct {
    const char *family, *name; /* "device", "list"; "audit", NULL */
    unsigned options;          /* S_O_* it takes */
    char id;                   /* its one argument: 'd' a device id, 't' a token id, 0 none */
    const char *usage, *help;
    int (*run)(cli_gateway_t *gw, const s_args_t *a);
} s_verb_t;

/* A list answer: the items under `items`, each of `shape`; paged lists carry "next". */
typedef struct {
    const char *path, *items;
    const cli_shape_t *shape;
    int paged;
} s_list_t;

/* Says that an answer is not what the API describes (key: the field that is not). */
static int s_not_api(const s_args_t *a, const char *key)
{
    fprintf(stderr, "lcore-cli %s: the gateway's answer is not what the API describes (%s)\n",
            a->cmd, key);
    return CLI_EXIT_API;
}

/* ---- Lists ---- */

/* The path of one page: base?limit=&after= (the cursor escaped). 0, or -1 (said). */
static int s_page_path(cli_gateway_t *gw, char *out, size_t cap, const s_list_t *l,
                       const s_args_t *a, const char *cursor)
{
    char *esc = cursor ? cli_gateway_escape(gw, cursor) : NULL;
    char limit[32] = "";
    if (a->given & S_O_LIMIT)
        snprintf(limit, sizeof limit, "limit=%lld", a->limit);
    int n = snprintf(out, cap, "%s%s%s%s%s%s", l->path, limit[0] || esc ? "?" : "", limit,
                     limit[0] && esc ? "&" : "", esc ? "after=" : "", esc ? esc : "");
    curl_free(esc);
    if ((cursor && !esc) || n < 0 || (size_t)n >= cap) {
        fprintf(stderr, "lcore-cli %s: the cursor is too long\n", a->cmd);
        return -1;
    }
    return 0;
}

/* One page: its checked answer in *page, its "next" in cursor (has_next 0 on the last page). */
static int s_fetch_page(cli_gateway_t *gw, const s_list_t *l, const s_args_t *a, char *cursor,
                        int *has_next, json_t **page)
{
    char path[S_PATH_MAX];
    if (s_page_path(gw, path, sizeof path, l, a, *has_next ? cursor : NULL) < 0)
        return CLI_EXIT_USAGE;
    int rc = cli_gateway_call(gw, "GET", path, NULL, page);
    if (rc != CLI_EXIT_OK)
        return rc;
    const json_t *items = json_object_get(*page, l->items), *item;
    const char *bad = json_is_array(items) ? NULL : l->items;
    size_t i;
    json_array_foreach(items, i, item)
    {
        if (!bad)
            bad = cli_answer_bad(item, l->shape);
    }
    *has_next = 0;
    if (!bad && l->paged &&
        (*has_next = cli_answer_cursor(cursor, S_CURSOR_MAX, json_object_get(*page, "next"))) < 0)
        bad = "next";
    if (bad) {
        s_not_api(a, bad);
        json_decref(*page);
        *page = NULL;
        return CLI_EXIT_API;
    }
    return CLI_EXIT_OK;
}

/* One page, or with --all every page from --after on: the last page's document with its list
 * replaced by every page's, so --json prints one document. */
static int s_list(cli_gateway_t *gw, const s_list_t *l, const s_args_t *a)
{
    char cursor[S_CURSOR_MAX] = "", previous[S_CURSOR_MAX] = "";
    int has_next = (a->given & S_O_AFTER) != 0;
    if (has_next)
        snprintf(cursor, sizeof cursor, "%s", a->after);
    json_t *all = json_array(), *page = NULL;
    int rc = all ? CLI_EXIT_OK : CLI_EXIT_API;
    while (rc == CLI_EXIT_OK) {
        json_decref(page);
        memcpy(previous, cursor, sizeof cursor);
        rc = s_fetch_page(gw, l, a, cursor, &has_next, &page);
        if (rc != CLI_EXIT_OK)
            break;
        size_t n = json_array_size(json_object_get(page, l->items));
        json_array_extend(all, json_object_get(page, l->items));
        if (!(a->given & S_O_ALL) || !has_next)
            break;
        if (n == 0 || strcmp(previous, cursor) == 0) { /* it would never end */
            fprintf(stderr, "lcore-cli %s: the gateway's \"next\" does not move on\n", a->cmd);
            rc = CLI_EXIT_API;
        }
    }
    if (rc == CLI_EXIT_OK && (a->given & S_O_ALL))
        json_object_set(page, l->items, all);
    if (rc == CLI_EXIT_OK && (a->given & S_O_JSON)) {
        cli_answer_json(page);
    } else if (rc == CLI_EXIT_OK) {
        cli_answer_table(all, l->shape);
        if (has_next)
            fprintf(stderr, "more: --after %s (or --all)\n", cursor);
    }
    json_decref(page);
    json_decref(all);
    return rc;
}

static int s_device_list(cli_gateway_t *gw, const s_args_t *a)
{
    return s_list(gw, &(s_list_t){"/v1/devices", "devices", &cli_shape_device, 1}, a);
}

static int s_token_list(cli_gateway_t *gw, const s_args_t *a)
{
    return s_list(gw, &(s_list_t){"/v1/tokens", "tokens", &cli_shape_token, 0}, a);
}

static int s_audit(cli_gateway_t *gw, const s_args_t *a)
{
    return s_list(gw, &(s_list_t){"/v1/audit", "entries", &cli_shape_audit_entry, 1}, a);
}

/* ---- One object ---- */

/* A request whose answer is one object of that shape, printed as "key value" lines or JSON. */
static int s_one(cli_gateway_t *gw, const s_args_t *a, const char *method, const char *path,
                 const json_t *body, const cli_shape_t *shape)
{
    json_t *answer = NULL;
    int rc = cli_gateway_call(gw, method, path, body, &answer);
    const char *bad = rc == CLI_EXIT_OK ? cli_answer_bad(answer, shape) : NULL;
    if (bad) {
        rc = s_not_api(a, bad);
    } else if (rc == CLI_EXIT_OK && (a->given & S_O_JSON)) {
        cli_answer_json(answer);
    } else if (rc == CLI_EXIT_OK) {
        cli_answer_detail(answer, shape);
    }
    json_decref(answer);
    return rc;
}

/* /v1/devices/{id}[/action]: the id was checked (lc_device_id_valid: URL-safe). */
static int s_device_at(cli_gateway_t *gw, const s_args_t *a, const char *method, const char *action,
                       const json_t *body)
{
    char path[S_PATH_MAX];
    snprintf(path, sizeof path, "/v1/devices/%s%s%s", a->id, action ? "/" : "",
             action ? action : "");
    return s_one(gw, a, method, path, body, &cli_shape_device);
}

static int s_device_show(cli_gateway_t *gw, const s_args_t *a)
{
    return s_device_at(gw, a, "GET", NULL, NULL);
}

static int s_device_revoke(cli_gateway_t *gw, const s_args_t *a)
{
    return s_device_at(gw, a, "POST", "revoke", NULL);
}

static int s_device_reactivate(cli_gateway_t *gw, const s_args_t *a)
{
    return s_device_at(gw, a, "POST", "reactivate", NULL);
}

/* --public-key @FILE: a public JWK (a JSON object), checked for alg. NULL after saying why. */
static json_t *s_jwk(const s_args_t *a, lc_alg_t alg)
{
    json_error_t jerr;
    json_t *jwk = json_load_file(a->public_key + 1, JSON_REJECT_DUPLICATES, &jerr);
    char *text = json_is_object(jwk) ? json_dumps(jwk, JSON_COMPACT) : NULL;
    uint8_t raw[65];
    size_t raw_len = 0;
    const char *bad = NULL;
    if (!jwk)
        bad = jerr.text;
    else if (!json_is_object(jwk))
        bad = "not a JSON object";
    else if (json_object_get(jwk, "d")) /* never send a private key anywhere */
        bad = "it holds a private key (\"d\"): give the public JWK";
    else if (!text || strlen(text) > S_JWK_MAX ||
             lc_pubkey_parse(raw, sizeof raw, &raw_len, alg, text, strlen(text)) != 0)
        bad = "not a public key of that --alg (a JWK)";
    free(text);
    if (bad) {
        fprintf(stderr, "lcore-cli %s: --public-key %s: %s\n", a->cmd, a->public_key, bad);
        json_decref(jwk);
        return NULL;
    }
    return jwk;
}

/* The new key, as the body's public_key: hex as given, or the JWK file's object. */
static json_t *s_public_key(const s_args_t *a, lc_alg_t alg)
{
    if (a->public_key[0] == '@')
        return s_jwk(a, alg);
    uint8_t raw[65];
    size_t raw_len = 0;
    if (lc_pubkey_parse(raw, sizeof raw, &raw_len, alg, a->public_key, strlen(a->public_key))) {
        fprintf(stderr, "lcore-cli %s: --public-key is not a public key of that --alg (hex)\n",
                a->cmd);
        return NULL;
    }
    return json_string(a->public_key);
}

static int s_device_rotate(cli_gateway_t *gw, const s_args_t *a)
{
    lc_alg_t alg = lc_alg_from_name(a->alg);
    json_t *pk = s_public_key(a, alg);
    if (!pk)
        return CLI_EXIT_USAGE;
    json_t *body = json_pack("{s:s, s:o, s:I}", "alg", lc_alg_name(alg), "public_key", pk,
                             "overlap_s", (json_int_t)a->overlap_s);
    int rc = body ? s_device_at(gw, a, "POST", "keys", body) : CLI_EXIT_API;
    json_decref(body);
    return rc;
}

/* ---- Tokens ---- */

/* The created token, once: the answer's fields, then the token alone on the last line (or the
 * JSON). The copies this process held are wiped. */
static int s_token_create(cli_gateway_t *gw, const s_args_t *a)
{
    json_t *body = json_pack("{s:s}", "scope", a->scope), *answer = NULL;
    if (body && a->devices)
        json_object_set(body, "devices", a->devices);
    if (body && (a->given & S_O_EXPIRES_IN_S))
        json_object_set_new(body, "expires_in_s", json_integer((json_int_t)a->expires_in_s));
    int rc = body ? cli_gateway_call(gw, "POST", "/v1/tokens", body, &answer) : CLI_EXIT_API;
    const char *bad = rc == CLI_EXIT_OK ? cli_answer_bad(answer, &cli_shape_token_created) : NULL;
    json_t *token = json_object_get(answer, "token");
    if (bad) {
        rc = s_not_api(a, bad);
    } else if (rc == CLI_EXIT_OK) {
        fprintf(stderr,
                "lcore-cli %s: the token is shown only this once (the gateway keeps "
                "its hash): store it now\n",
                a->cmd);
        if (a->given & S_O_JSON) {
            cli_answer_json(answer);
        } else {
            cli_answer_detail(answer, &cli_shape_token_created);
            printf("%s\n", json_string_value(token));
        }
        fflush(stdout);
    }
    if (json_is_string(token))
        sodium_memzero((char *)json_string_value(token), json_string_length(token));
    json_decref(answer);
    json_decref(body);
    return rc;
}

static int s_token_delete(cli_gateway_t *gw, const s_args_t *a)
{
    char path[S_PATH_MAX];
    snprintf(path, sizeof path, "/v1/tokens/%s", a->id);
    return s_one(gw, a, "DELETE", path, NULL, &cli_shape_token_deleted);
}

/* ---- Arguments ---- */

static const s_verb_t s_verbs[] = {
    {"device", "list", S_O_PAGES, 0, "device list [--limit N] [--after CURSOR] [--all] [--json]",
     "registered devices, a page (--all: every page)", s_device_list},
    {"device", "show", S_O_JSON, 'd', "device show DEVICE_ID [--json]", "one device",
     s_device_show},
    {"device", "revoke", S_O_JSON, 'd', "device revoke DEVICE_ID [--json]",
     "every gateway refuses its readings within 1 s", s_device_revoke},
    {"device", "reactivate", S_O_JSON, 'd', "device reactivate DEVICE_ID [--json]",
     "every gateway takes its readings again within 1 s", s_device_reactivate},
    {"device", "rotate", S_O_JSON | S_O_ALG | S_O_PUBLIC_KEY | S_O_OVERLAP_S, 'd',
     "device rotate DEVICE_ID --alg EdDSA|ES256K --public-key HEX|@FILE.jwk\n"
     "        [--overlap-s N] [--json]",
     "a new key; the old one verifies N s more (default 0)", s_device_rotate},
    {"token", "create", S_O_JSON | S_O_SCOPE | S_O_DEVICE | S_O_EXPIRES_IN_S, 0,
     "token create --scope read|decrypt|operator [--device DEVICE_ID]...\n"
     "        [--expires-in-s N] [--json]",
     "a bearer token (for those devices only), shown\nonce: alone on the last line",
     s_token_create},
    {"token", "list", S_O_JSON, 0, "token list [--json]", "live tokens, never their values",
     s_token_list},
    {"token", "delete", S_O_JSON, 't', "token delete TOKEN_ID [--json]",
     "it stops working on every gateway", s_token_delete},
    {"audit", NULL, S_O_PAGES, 0, "audit [--after CURSOR] [--limit N] [--all] [--json]",
     "operator actions and decrypts, oldest first", s_audit},
};
#define S_N_VERBS (sizeof s_verbs / sizeof s_verbs[0])

/* A whole number in [min, max]. */
static int s_number(long long *out, const char *text, long long min, long long max)
{
    char *end = NULL;
    errno = 0;
    long long v = strtoll(text, &end, 10);
    if (errno || end == text || *end || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

/* One option's value into a; NULL, or what is wrong with it. */
static const char *s_option(s_args_t *a, unsigned bit, const char *v)
{
    static const char *const scopes[] = {"read", "decrypt", "operator"};
    switch (bit) {
    case S_O_LIMIT:
        return s_number(&a->limit, v, 1, S_PAGE_MAX) ? "a number from 1 to 1000" : NULL;
    case S_O_AFTER:
        a->after = v;
        return strlen(v) < S_CURSOR_MAX ? NULL : "too long for a cursor";
    case S_O_ALG:
        a->alg = v;
        return lc_alg_from_name(v) != LC_ALG_NONE ? NULL : "EdDSA or ES256K";
    case S_O_PUBLIC_KEY:
        a->public_key = v;
        return NULL;
    case S_O_OVERLAP_S:
        return s_number(&a->overlap_s, v, 0, UINT32_MAX) ? "a number of seconds (0 or more)" : NULL;
    case S_O_EXPIRES_IN_S:
        return s_number(&a->expires_in_s, v, 1, INT64_MAX / 1000000)
                   ? "a number of seconds (1 or more)"
                   : NULL;
    case S_O_SCOPE:
        a->scope = v;
        for (size_t i = 0; i < 3; i++)
            if (strcmp(v, scopes[i]) == 0)
                return NULL;
        return "read, decrypt or operator";
    case S_O_DEVICE:
        if (!lc_device_id_valid(v, strlen(v)))
            return "a device id: 1-128 characters of [A-Za-z0-9._:-]";
        if (!a->devices && !(a->devices = json_array()))
            return "out of memory";
        return json_array_append_new(a->devices, json_string(v)) ? "out of memory" : NULL;
    }
    return NULL; /* --all, --json: the bit says it all */
}

/* The verb's ID argument, checked before it goes in a path. NULL, or what is wrong. */
static const char *s_id(const s_verb_t *v, const char *id)
{
    size_t len = strlen(id);
    if (v->id == 'd' && !lc_device_id_valid(id, len))
        return "DEVICE_ID: 1-128 characters of [A-Za-z0-9._:-]";
    if (v->id == 't' && (len != 20 || strncmp(id, "tok_", 4) != 0 ||
                         strspn(id + 4, "0123456789abcdefABCDEF") != 16))
        return "TOKEN_ID: tok_ and 16 hex digits";
    return NULL;
}

/* argv[0] is the verb's last word. 0, or CLI_EXIT_USAGE after saying why. */
static int s_parse(s_args_t *a, const s_verb_t *v, int argc, char **argv)
{
    const char *bad = NULL, *what = NULL; /* what: the option at fault */
    char shorty[3] = "-?";                /* an unknown -x */
    int o, index = 0;
    optind = 0; /* glibc: start afresh */
    opterr = 0;
    while (!bad && (o = getopt_long(argc, argv, "", s_opts, &index)) != -1) {
        unsigned bit = 1u << index;
        shorty[1] = (char)optopt;
        what = o == 0 ? s_opts[index].name : optopt ? shorty : argv[optind - 1];
        if (o != 0)
            bad = "unknown, or its value is missing";
        else if (!(v->options & bit))
            bad = "not an option of this verb";
        else if ((a->given & bit) && bit != S_O_DEVICE)
            bad = "given twice";
        else
            bad = s_option(a, bit, optarg);
        a->given |= bit;
    }
    int ids = v->id ? 1 : 0;
    if (!bad && (what = NULL, argc - optind != ids))
        bad = ids ? "one ID argument is needed" : "no arguments but the options";
    if (!bad && ids)
        bad = s_id(v, (a->id = argv[optind]));
    if (!bad && v->run == s_device_rotate && (!a->alg || !a->public_key))
        bad = "--alg and --public-key are needed";
    if (!bad && v->run == s_token_create && !a->scope)
        bad = "--scope is needed";
    if (bad) {
        fprintf(stderr, "lcore-cli %s: %s%s%s%s\nusage: lcore-cli %s\n", a->cmd,
                what && what[0] != '-' ? "--" : "", what ? what : "", what ? ": " : "", bad,
                v->usage);
        return CLI_EXIT_USAGE;
    }
    return 0;
}

void cli_admin_help(FILE *out)
{
    fputs("Operator verbs, through the gateway's operator API (LCORE_GATEWAY_ADMIN_URL),\n"
          "which authorizes and audits each one; tables, or the API's JSON with --json;\n"
          "exit 1 when the API answers an error, 3 when the gateway cannot be reached:\n",
          out);
    for (size_t i = 0; i < S_N_VERBS; i++) {
        fprintf(out, "  %s\n%30s", s_verbs[i].usage, "");
        for (const char *h = s_verbs[i].help; *h; h++) {
            fputc(*h, out);
            if (*h == '\n')
                fprintf(out, "%30s", "");
        }
        fputc('\n', out);
    }
}

static void s_usage(const char *family)
{
    fprintf(stderr, "usage:\n");
    for (size_t i = 0; i < S_N_VERBS; i++)
        if (strcmp(s_verbs[i].family, family) == 0)
            fprintf(stderr, "  lcore-cli %s\n", s_verbs[i].usage);
}

int cli_admin(int argc, char **argv)
{
    const char *family = argv[0], *name = argc > 1 ? argv[1] : "";
    const s_verb_t *v = NULL;
    for (size_t i = 0; i < S_N_VERBS && !v; i++)
        if (strcmp(s_verbs[i].family, family) == 0 &&
            (!s_verbs[i].name || strcmp(s_verbs[i].name, name) == 0))
            v = &s_verbs[i];
    if (!v) {
        s_usage(family);
        return CLI_EXIT_USAGE;
    }
    char cmd[64];
    snprintf(cmd, sizeof cmd, "%s%s%s", family, v->name ? " " : "", v->name ? v->name : "");
    s_args_t a = {.cmd = cmd};
    /* getopt sees the verb's last word as its argv[0]. */
    int rc = v->name ? s_parse(&a, v, argc - 1, argv + 1) : s_parse(&a, v, argc, argv);
    if (rc == 0) {
        cli_gateway_t gw;
        if ((rc = cli_gateway_open(&gw, cmd)) == CLI_EXIT_OK)
            rc = v->run(&gw, &a);
        cli_gateway_close(&gw);
    }
    json_decref(a.devices);
    return rc;
}
