/* lc_jsonrpc.c: the JSON-RPC 2.0 codec. See lc_jsonrpc.h. */
#include "lc_jsonrpc.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lc_codec.h"

static int s_lower_hex(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

int lc_jsonrpc_parse_quantity(const char *s, size_t len, uint8_t out[32])
{
    memset(out, 0, 32);
    if (!s || len < 3 || len > 2 + 64 || s[0] != '0' || s[1] != 'x')
        return LC_ERR_INVALID;
    const char *d = s + 2;
    size_t n = len - 2;
    if (n > 1 && d[0] == '0')
        return LC_ERR_INVALID;
    uint8_t tmp[32] = {0};
    for (size_t i = 0; i < n; i++) {
        int v = s_lower_hex(d[n - 1 - i]); /* i-th nibble from the right */
        if (v < 0)
            return LC_ERR_INVALID;
        tmp[31 - i / 2] |= (uint8_t)(i % 2 ? v << 4 : v);
    }
    memcpy(out, tmp, 32);
    return 0;
}

int lc_jsonrpc_parse_quantity_u64(const char *s, size_t len, uint64_t *out)
{
    uint8_t be[32];
    *out = 0;
    int rc = lc_jsonrpc_parse_quantity(s, len, be);
    if (rc)
        return rc;
    for (size_t i = 0; i < 24; i++)
        if (be[i])
            return LC_ERR_TOOBIG;
    uint64_t v = 0;
    for (size_t i = 24; i < 32; i++)
        v = v << 8 | be[i];
    *out = v;
    return 0;
}

int lc_jsonrpc_parse_data(const char *s, size_t len, uint8_t *out, size_t out_cap, size_t *out_len)
{
    *out_len = 0;
    if (!s || len < 2 || s[0] != '0' || s[1] != 'x')
        return LC_ERR_INVALID;
    /* lc_hex_decode would also take a second "0x"; the digits alone are passed. */
    if (len > 3 && (s[3] == 'x' || s[3] == 'X'))
        return LC_ERR_INVALID;
    return lc_hex_decode(out, out_cap, out_len, s + 2, len - 2);
}

/* Case-insensitive search for needle (lowercase) in hay, starting at a word boundary so that
 * "known transaction" does not match inside "Unknown transaction type". */
static int s_has(const char *hay, const char *needle)
{
    size_t n = strlen(needle);
    for (const char *p = hay; *p; p++) {
        if (p > hay && isalnum((unsigned char)p[-1]))
            continue;
        size_t i = 0;
        while (i < n && p[i] && tolower((unsigned char)p[i]) == needle[i])
            i++;
        if (i == n)
            return 1;
    }
    return 0;
}

static int s_has_any(const char *hay, const char *const *needles)
{
    for (; *needles; needles++)
        if (s_has(hay, *needles))
            return 1;
    return 0;
}

int lc_jsonrpc_error_mentions(const lc_jsonrpc_error_t *err, const char *const *phrases)
{
    return s_has_any(err->message, phrases) || s_has_any(err->data, phrases);
}

lc_jsonrpc_err_kind_t lc_jsonrpc_classify_error(long long code, const char *message)
{
    static const char *const not_found[] = {"method not found", "does not exist/is not available",
                                            "method not supported", "unsupported method", NULL};
    static const char *const limited[] = {"rate limit", "too many requests", NULL};
    if (!message)
        message = "";
    if (code == -32601)
        return LC_JSONRPC_ERR_METHOD_NOT_FOUND;
    if (code == 3)
        return LC_JSONRPC_ERR_REVERTED; /* EIP-1474 execution error, geth and anvil reverts */
    if (code == -32700 || code == -32600 || code == -32602)
        return LC_JSONRPC_ERR_INVALID_REQUEST;
    if (code == -32005)
        return LC_JSONRPC_ERR_LIMITED;
    if (s_has_any(message, not_found))
        return LC_JSONRPC_ERR_METHOD_NOT_FOUND;
    if (s_has(message, "execution reverted"))
        return LC_JSONRPC_ERR_REVERTED; /* geth without revert data: -32000 "execution reverted" */
    if (s_has_any(message, limited))
        return LC_JSONRPC_ERR_LIMITED;
    return LC_JSONRPC_ERR_SERVER;
}

void lc_jsonrpc_error_set(lc_jsonrpc_error_t *err, lc_jsonrpc_err_kind_t kind, long long code,
                          const char *message)
{
    if (!err)
        return;
    memset(err, 0, sizeof *err);
    err->kind = kind;
    err->code = code;
    snprintf(err->message, sizeof err->message, "%s", message ? message : "");
}

/* Copies a JSON string (len bytes, which may hold NULs) into a C string of cap bytes: truncated,
 * NUL-terminated, control characters replaced so that the text stays one printable line. */
static void s_text_set(char *out, size_t cap, const char *s, size_t len)
{
    size_t n = len < cap - 1 ? len : cap - 1;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        out[i] = c < 0x20 || c == 0x7f ? '?' : (char)c;
    }
    out[n] = '\0';
}

static int s_bad(lc_jsonrpc_error_t *err, const char *why)
{
    lc_jsonrpc_error_set(err, LC_JSONRPC_ERR_ENDPOINT, 0, why);
    return LC_ERR_IO;
}

static int s_type_ok(const json_t *v, lc_jsonrpc_expect_t expect)
{
    switch (expect) {
    case LC_JSONRPC_EXPECT_ANY:
        return 1;
    case LC_JSONRPC_EXPECT_QUANTITY: {
        uint8_t be[32];
        return json_is_string(v) &&
               lc_jsonrpc_parse_quantity(json_string_value(v), json_string_length(v), be) == 0;
    }
    case LC_JSONRPC_EXPECT_DATA: {
        if (!json_is_string(v))
            return 0;
        const char *s = json_string_value(v);
        size_t len = json_string_length(v);
        if (len < 2 || s[0] != '0' || s[1] != 'x' || len % 2)
            return 0;
        for (size_t i = 2; i < len; i++)
            if (!isxdigit((unsigned char)s[i]))
                return 0;
        return 1;
    }
    case LC_JSONRPC_EXPECT_OBJECT:
        return json_is_object(v);
    case LC_JSONRPC_EXPECT_OBJECT_OR_NULL:
        return json_is_object(v) || json_is_null(v);
    }
    return 0;
}

int lc_jsonrpc_check_response(const char *body, size_t len, uint64_t id, lc_jsonrpc_expect_t expect,
                              json_t **result, lc_jsonrpc_error_t *err)
{
    *result = NULL;
    if (err)
        memset(err, 0, sizeof *err);
    if (!body || len == 0)
        return s_bad(err, "empty answer");
    json_error_t jerr;
    json_t *root = json_loadb(body, len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &jerr);
    if (!root)
        return s_bad(err, "answer is not JSON");
    int rc;
    const json_t *ver = json_object_get(root, "jsonrpc");
    const json_t *jid = json_object_get(root, "id");
    json_t *res = json_object_get(root, "result");
    const json_t *eo = json_object_get(root, "error");
    if (!json_is_object(root)) {
        rc = s_bad(err, "answer is not a JSON object");
    } else if (!json_is_string(ver) || strcmp(json_string_value(ver), "2.0") != 0 ||
               json_string_length(ver) != 3) {
        rc = s_bad(err, "jsonrpc is not \"2.0\"");
    } else if (!json_is_integer(jid) || json_integer_value(jid) < 0 ||
               (uint64_t)json_integer_value(jid) != id) {
        rc = s_bad(err, "id does not match the request");
    } else if (res && eo) {
        rc = s_bad(err, "answer has both result and error");
    } else if (res) {
        if (s_type_ok(res, expect)) {
            *result = json_incref(res);
            rc = 0;
        } else {
            rc = s_bad(err, "result has the wrong type");
        }
    } else if (eo) {
        const json_t *code = json_object_get(eo, "code");
        const json_t *msg = json_object_get(eo, "message");
        const json_t *data = json_object_get(eo, "data");
        if (!json_is_object(eo) || !json_is_integer(code) || !json_is_string(msg)) {
            rc = s_bad(err, "malformed error object");
        } else {
            /* With JSON_ALLOW_NUL a string may hold NULs: texts are copied by length. */
            lc_jsonrpc_error_t local;
            lc_jsonrpc_error_t *e = err ? err : &local;
            lc_jsonrpc_error_set(e, LC_JSONRPC_ERR_NONE, json_integer_value(code), NULL);
            s_text_set(e->message, sizeof e->message, json_string_value(msg),
                       json_string_length(msg));
            lc_jsonrpc_err_kind_t kind =
                lc_jsonrpc_classify_error(json_integer_value(code), json_string_value(msg));
            e->kind = kind;
            if (err && data && !json_is_null(data)) {
                if (json_is_string(data)) {
                    s_text_set(err->data, sizeof err->data, json_string_value(data),
                               json_string_length(data));
                } else {
                    char *s = json_dumps(data, JSON_COMPACT | JSON_ENCODE_ANY);
                    if (s)
                        snprintf(err->data, sizeof err->data, "%s", s);
                    free(s);
                }
            }
            rc = kind == LC_JSONRPC_ERR_METHOD_NOT_FOUND ? LC_ERR_UNSUPPORTED : LC_JSONRPC_REJECTED;
        }
    } else {
        rc = s_bad(err, "answer has neither result nor error");
    }
    json_decref(root);
    return rc;
}
