/* cli_answer.c: see cli_answer.h. */
#include "cli_answer.h"

#include <assert.h>
#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "lc_jws.h"
#include "lc_record.h"

#define S_WORD_MAX 256
#define S_SECRET_MIN 16
#define S_SECRET_MAX 1024
#define S_HEX_MAX 130 /* an uncompressed secp256k1 key */
#define S_CELL_MAX 512
#define S_COLUMNS_MAX 8

static const cli_field_t s_device[] = {
    {"device_id", CLI_KIND_DEVICE_ID, 1},
    {"status", CLI_KIND_STATUS, 1},
    {"alg", CLI_KIND_ALG, 1},
    {"key_no", CLI_KIND_COUNT, 1},
    {"public_key", CLI_KIND_HEX, 0},
    {"key_since", CLI_KIND_TIME, 0},
    {"previous_key", CLI_KIND_PREVIOUS_KEY, 0},
    {"registered_at", CLI_KIND_TIME, 1},
    {"revoked_at", CLI_KIND_TIME_OR_NULL, 0},
};
static const cli_field_t s_previous_key[] = {
    {"alg", CLI_KIND_ALG, 1},
    {"public_key", CLI_KIND_HEX, 1},
    {"valid_until", CLI_KIND_TIME, 1},
};
static const cli_field_t s_token[] = {
    {"id", CLI_KIND_TOKEN_ID, 1},     {"scope", CLI_KIND_SCOPE, 1},
    {"devices", CLI_KIND_DEVICES, 1}, {"expires_at", CLI_KIND_TIME_OR_NULL, 1},
    {"created_at", CLI_KIND_TIME, 1}, {"created_by", CLI_KIND_WORD, 1},
};
static const cli_field_t s_token_created[] = {
    {"id", CLI_KIND_TOKEN_ID, 1},     {"scope", CLI_KIND_SCOPE, 1},
    {"devices", CLI_KIND_DEVICES, 1}, {"expires_at", CLI_KIND_TIME_OR_NULL, 1},
    {"token", CLI_KIND_SECRET, 0}, /* printed by the verb, alone on its line */
};
static const cli_field_t s_token_deleted[] = {
    {"id", CLI_KIND_TOKEN_ID, 1},
    {"status", CLI_KIND_DELETED, 1},
};
static const cli_field_t s_audit_entry[] = {
    {"id", CLI_KIND_ID, 1},       {"at", CLI_KIND_TIME, 1},     {"token_id", CLI_KIND_WORD, 1},
    {"action", CLI_KIND_WORD, 1}, {"target", CLI_KIND_WORD, 1},
};
#define S_SHAPE(fields)                                                                            \
    {                                                                                              \
        fields, sizeof fields / sizeof fields[0]                                                   \
    }
const cli_shape_t cli_shape_device = S_SHAPE(s_device);
const cli_shape_t cli_shape_token = S_SHAPE(s_token);
const cli_shape_t cli_shape_token_created = S_SHAPE(s_token_created);
const cli_shape_t cli_shape_token_deleted = S_SHAPE(s_token_deleted);
const cli_shape_t cli_shape_audit_entry = S_SHAPE(s_audit_entry);
static const cli_shape_t s_previous_key_shape = S_SHAPE(s_previous_key);

/* 1 when j is a string of min..max bytes, each printable ASCII and no space. */
static int s_word(const json_t *j, size_t min, size_t max)
{
    const char *t = json_string_value(j);
    size_t len = t ? json_string_length(j) : 0;
    if (!t || len < min || len > max || strlen(t) != len)
        return 0;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)t[i] <= 0x20 || (unsigned char)t[i] >= 0x7f)
            return 0;
    return 1;
}

static int s_one_of(const json_t *j, const char *const *choices)
{
    const char *t = json_string_value(j);
    for (; t && *choices; choices++)
        if (strcmp(t, *choices) == 0)
            return 1;
    return 0;
}

static int s_hex(const json_t *j)
{
    const char *t = json_string_value(j);
    if (!s_word(j, 2, S_HEX_MAX) || json_string_length(j) % 2)
        return 0;
    for (; *t; t++)
        if (!isxdigit((unsigned char)*t))
            return 0;
    return 1;
}

static int s_token_id(const json_t *j)
{
    const char *t = json_string_value(j);
    if (!t || json_string_length(j) != 20 || strncmp(t, "tok_", 4) != 0)
        return 0;
    return strspn(t + 4, "0123456789abcdefABCDEF") == 16;
}

static int s_devices(const json_t *j)
{
    size_t i;
    const json_t *d;
    if (!j || json_is_null(j))
        return 1;
    if (!json_is_array(j))
        return 0;
    json_array_foreach(j, i, d)
    {
        if (!json_is_string(d) || !lc_device_id_valid(json_string_value(d), json_string_length(d)))
            return 0;
    }
    return 1;
}

static int s_kind_ok(const json_t *j, cli_kind_t kind)
{
    static const char *const statuses[] = {"active", "revoked", NULL},
                             *const scopes[] = {"read", "decrypt", "operator", NULL},
                             *const deleted[] = {"deleted", NULL};
    int absent = !j || json_is_null(j);
    int count = json_is_integer(j) && json_integer_value(j) >= 0;
    switch (kind) {
    case CLI_KIND_DEVICE_ID:
        return json_is_string(j) && lc_device_id_valid(json_string_value(j), json_string_length(j));
    case CLI_KIND_ALG:
        return json_is_string(j) && lc_alg_from_name(json_string_value(j)) != LC_ALG_NONE;
    case CLI_KIND_HEX:
        return s_hex(j);
    case CLI_KIND_STATUS:
        return s_one_of(j, statuses);
    case CLI_KIND_TIME_OR_NULL:
        return absent || s_kind_ok(j, CLI_KIND_TIME);
    case CLI_KIND_TIME:
    case CLI_KIND_ID:
        return count || s_word(j, 1, S_WORD_MAX);
    case CLI_KIND_COUNT:
        return count;
    case CLI_KIND_PREVIOUS_KEY:
        return absent || cli_answer_bad(j, &s_previous_key_shape) == NULL;
    case CLI_KIND_TOKEN_ID:
        return s_token_id(j);
    case CLI_KIND_SCOPE:
        return s_one_of(j, scopes);
    case CLI_KIND_DEVICES:
        return s_devices(j);
    case CLI_KIND_WORD:
        return s_word(j, 1, S_WORD_MAX);
    case CLI_KIND_SECRET:
        return s_word(j, S_SECRET_MIN, S_SECRET_MAX);
    case CLI_KIND_DELETED:
        return s_one_of(j, deleted);
    }
    return 0;
}

const char *cli_answer_bad(const json_t *obj, const cli_shape_t *shape)
{
    if (!json_is_object(obj))
        return "(not an object)";
    for (size_t i = 0; i < shape->n; i++)
        if (!s_kind_ok(json_object_get(obj, shape->fields[i].key), shape->fields[i].kind))
            return shape->fields[i].key;
    return NULL;
}

int cli_answer_cursor(char *out, size_t cap, const json_t *next)
{
    if (!next || json_is_null(next))
        return 0;
    if (json_is_integer(next) && json_integer_value(next) >= 0)
        return snprintf(out, cap, "%lld", (long long)json_integer_value(next)) < (int)cap ? 1 : -1;
    if (!s_word(next, 1, S_WORD_MAX) || json_string_length(next) >= cap)
        return -1;
    memcpy(out, json_string_value(next), json_string_length(next) + 1);
    return 1;
}

/* The devices a token is for: "all" for none named. */
static const char *s_devices_cell(const json_t *j, char *buf, size_t cap)
{
    size_t i, len = 0;
    const json_t *d;
    if (json_array_size(j) == 0)
        return "all";
    buf[0] = '\0';
    json_array_foreach(j, i, d)
    {
        int n = snprintf(buf + len, cap - len, "%s%s", i ? "," : "", json_string_value(d));
        if (n < 0 || (size_t)n >= cap - len) {
            snprintf(buf + (cap > 4 ? cap - 4 : 0), cap > 4 ? 4 : cap, "...");
            break;
        }
        len += (size_t)n;
    }
    return buf;
}

/* A checked field as text: a borrowed string, or written into buf. */
static const char *s_cell(const json_t *obj, const cli_field_t *f, char *buf, size_t cap)
{
    const json_t *j = json_object_get(obj, f->key);
    if (f->kind == CLI_KIND_DEVICES)
        return s_devices_cell(j, buf, cap);
    if (f->kind == CLI_KIND_TIME_OR_NULL && (!j || json_is_null(j)))
        return strcmp(f->key, "expires_at") == 0 ? "never" : "-";
    if (!j || json_is_null(j))
        return "-";
    if (json_is_integer(j)) {
        snprintf(buf, cap, "%lld", (long long)json_integer_value(j));
        return buf;
    }
    if (json_is_object(j)) { /* previous_key */
        char until[32];
        snprintf(buf, cap, "%s %s, verifies until %s", json_string_value(json_object_get(j, "alg")),
                 json_string_value(json_object_get(j, "public_key")),
                 s_cell(j, &s_previous_key[2], until, sizeof until));
        return buf;
    }
    return json_string_value(j);
}

void cli_answer_detail(const json_t *obj, const cli_shape_t *shape)
{
    char buf[S_CELL_MAX];
    for (size_t i = 0; i < shape->n; i++)
        if (shape->fields[i].kind != CLI_KIND_SECRET) /* a created token: the verb's to print */
            printf("%-14s %s\n", shape->fields[i].key,
                   s_cell(obj, &shape->fields[i], buf, sizeof buf));
}

/* One line of the table: the headings (item NULL) or an item's cells. */
static void s_row(const json_t *item, const cli_shape_t *shape, const int *width)
{
    char buf[S_CELL_MAX], head[64];
    size_t col = 0, last = 0;
    for (size_t i = 0; i < shape->n; i++)
        if (shape->fields[i].column)
            last = i;
    for (size_t i = 0; i < shape->n; i++) {
        const cli_field_t *f = &shape->fields[i];
        if (!f->column)
            continue;
        assert(col < S_COLUMNS_MAX);
        const char *text = head;
        if (item)
            text = s_cell(item, f, buf, sizeof buf);
        else
            for (size_t k = 0; k < sizeof head; k++)
                if (!(head[k] = (char)toupper((unsigned char)f->key[k])))
                    break;
        printf("%-*s%s", i == last ? 0 : width[col], text, i == last ? "\n" : "  ");
        col++;
    }
}

void cli_answer_table(const json_t *items, const cli_shape_t *shape)
{
    int width[S_COLUMNS_MAX] = {0};
    char buf[S_CELL_MAX];
    size_t col = 0, i;
    const json_t *item;
    for (size_t f = 0; f < shape->n && col < S_COLUMNS_MAX; f++) {
        if (!shape->fields[f].column)
            continue;
        width[col] = (int)strlen(shape->fields[f].key);
        json_array_foreach(items, i, item)
        {
            int w = (int)strlen(s_cell(item, &shape->fields[f], buf, sizeof buf));
            width[col] = w > width[col] ? w : width[col];
        }
        col++;
    }
    s_row(NULL, shape, width);
    json_array_foreach(items, i, item) s_row(item, shape, width);
}

void cli_answer_json(const json_t *doc)
{
    json_dumpf(doc, stdout, JSON_INDENT(2));
    putchar('\n');
}
