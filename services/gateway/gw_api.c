/* gw_api.c: pieces the reader and operator handlers share (gw_handlers.h): query-string
 * arguments, page cursors, JSON spellings, the 503 of a peer that does not answer. */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gw_handlers.h"
#include "lc_codec.h"

const char *gw_call_arg(const gw_call_t *call, const char *name)
{
    return MHD_lookup_connection_value(call->c, MHD_GET_ARGUMENT_KIND, name);
}

enum MHD_Result gw_reply_unavailable(const gw_call_t *call, const Lcore__V1__QueryReply *r,
                                     const char *who)
{
    char msg[160];
    snprintf(msg, sizeof msg, "%s unavailable%s%s", who,
             r && r->message && r->message[0] ? ": " : "", r && r->message ? r->message : "");
    return gw_reply_error(call, 503, "not_ready", msg, 1);
}

json_t *gw_json_hex(const uint8_t *b, size_t n)
{
    char hex[2 * 64 + 1];
    if (!b || n > 64 || lc_hex_encode(hex, sizeof hex, b, n) < 0)
        return json_null();
    return json_string(hex);
}

/* "0x"-prefixed hex, the way chain tools and OpenZeppelin's libraries spell bytes32. */
json_t *gw_json_hex0x(const uint8_t *b, size_t n)
{
    char hex[2 + 2 * 64 + 1] = "0x";
    if (!b || n > 64 || lc_hex_encode(hex + 2, sizeof hex - 2, b, n) < 0)
        return json_null();
    return json_string(hex);
}

json_t *gw_json_time(uint64_t us)
{
    if (us == 0)
        return json_null();
    time_t secs = (time_t)(us / 1000000u);
    struct tm tm;
    gmtime_r(&secs, &tm);
    char out[64];
    snprintf(out, sizeof out, "%04d-%02d-%02dT%02d:%02d:%02d.%03uZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
             (unsigned)(us % 1000000u / 1000u));
    return json_string(out);
}

int gw_cursor_make(char out[GW_CURSOR_MAX], uint8_t kind, const void *pos, size_t len)
{
    uint8_t raw[1 + 256];
    if (len > sizeof raw - 1)
        return -1;
    raw[0] = kind;
    memcpy(raw + 1, pos, len);
    sodium_bin2base64(out, GW_CURSOR_MAX, raw, len + 1, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    return 0;
}

int gw_cursor_parse(const char *text, uint8_t kind, void *pos, size_t cap)
{
    uint8_t raw[1 + 256];
    size_t n = 0;
    if (!text || strlen(text) >= GW_CURSOR_MAX ||
        sodium_base642bin(raw, sizeof raw, text, strlen(text), NULL, &n, NULL,
                          sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0 ||
        n < 1 || raw[0] != kind || n - 1 > cap)
        return -1;
    memcpy(pos, raw + 1, n - 1);
    return (int)(n - 1);
}

int gw_cursor_make_u64(char out[GW_CURSOR_MAX], uint8_t kind, uint64_t pos)
{
    uint8_t b[8];
    for (int i = 7; i >= 0; i--, pos >>= 8)
        b[i] = (uint8_t)pos;
    return gw_cursor_make(out, kind, b, sizeof b);
}

int gw_cursor_parse_u64(const char *text, uint8_t kind, uint64_t *pos)
{
    uint8_t b[8];
    if (gw_cursor_parse(text, kind, b, sizeof b) != (int)sizeof b)
        return -1;
    *pos = 0;
    for (int i = 0; i < 8; i++)
        *pos = *pos << 8 | b[i];
    return 0;
}

int gw_arg_limit(const gw_call_t *call, int def)
{
    const char *v = gw_call_arg(call, "limit");
    if (!v)
        return def;
    char *end = NULL;
    long n = strtol(v, &end, 10);
    if (!v[0] || *end || n < 1 || n > 1000)
        return -1;
    return (int)n;
}
