/* lc_codec.c: hex and unpadded base64url (RFC 4648 §5). Pure functions, no allocation.
 * Decoding is strict: one accepted spelling per byte string, so that what a device signs, what
 * we store and what we compare can never differ by encoding. The character mapping is
 * branch-free and table-free because the same decoders read secret keys (key ring, CLI). */
#include "lc_codec.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* All ones if lo <= c <= hi, else 0. c and the bounds are bytes, so the unsigned differences
 * only wrap (set bit 31) when c is out of range. */
static uint32_t s_in_range(uint32_t c, uint32_t lo, uint32_t hi)
{
    uint32_t t = (c - lo) | (hi - c);
    return ((t >> 31) & 1u) - 1u;
}

static uint32_t s_equal(uint32_t c, uint32_t v)
{
    return s_in_range(c, v, v);
}

/* 0..15 for a hex digit of either case; 0x100 (out of range) otherwise. */
static uint32_t s_hex_value(uint8_t ch)
{
    uint32_t c = ch;
    uint32_t digit = s_in_range(c, '0', '9');
    uint32_t lower = s_in_range(c, 'a', 'f');
    uint32_t upper = s_in_range(c, 'A', 'F');
    uint32_t v = (digit & (c - '0')) | (lower & (c - 'a' + 10)) | (upper & (c - 'A' + 10));
    return v | (~(digit | lower | upper) & 0x100u);
}

/* 0..63 for a base64url character; 0x100 otherwise ('=', '+', '/', whitespace included). */
static uint32_t s_b64url_value(uint8_t ch)
{
    uint32_t c = ch;
    uint32_t upper = s_in_range(c, 'A', 'Z');
    uint32_t lower = s_in_range(c, 'a', 'z');
    uint32_t digit = s_in_range(c, '0', '9');
    uint32_t dash = s_equal(c, '-');
    uint32_t under = s_equal(c, '_');
    uint32_t v = (upper & (c - 'A')) | (lower & (c - 'a' + 26)) | (digit & (c - '0' + 52)) |
                 (dash & 62u) | (under & 63u);
    return v | (~(upper | lower | digit | dash | under) & 0x100u);
}

static char s_hex_char(uint32_t v)
{
    /* v in 0..15 -> '0'..'9', 'a'..'f' without a branch on v. */
    return (char)(v + '0' + (s_in_range(v, 10, 15) & ('a' - '0' - 10)));
}

static char s_b64url_char(uint32_t v)
{
    uint32_t c = (s_in_range(v, 0, 25) & (v + 'A')) | (s_in_range(v, 26, 51) & (v - 26 + 'a')) |
                 (s_in_range(v, 52, 61) & (v - 52 + '0')) | (s_equal(v, 62) & '-') |
                 (s_equal(v, 63) & '_');
    return (char)c;
}

int lc_hex_encode(char *out, size_t out_cap, const uint8_t *in, size_t len)
{
    if (out == NULL || (in == NULL && len > 0) || len > (SIZE_MAX - 1) / 2 || out_cap < len * 2 + 1)
        return -1;
    for (size_t i = 0; i < len; i++) {
        out[2 * i] = s_hex_char(in[i] >> 4);
        out[2 * i + 1] = s_hex_char(in[i] & 0x0f);
    }
    out[len * 2] = '\0';
    return 0;
}

int lc_hex_decode(uint8_t *out, size_t out_cap, size_t *out_len, const char *in, size_t in_len)
{
    if (out_len == NULL || (in == NULL && in_len > 0))
        return LC_ERR_INVALID;
    *out_len = 0;
    if (in_len >= 2 && in[0] == '0' && (in[1] == 'x' || in[1] == 'X')) {
        in += 2;
        in_len -= 2;
    }
    if (in_len % 2 != 0)
        return LC_ERR_INVALID;
    size_t n = in_len / 2;
    if (n > out_cap || (out == NULL && n > 0))
        return LC_ERR_TOOBIG;

    uint32_t bad = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t hi = s_hex_value((uint8_t)in[2 * i]);
        uint32_t lo = s_hex_value((uint8_t)in[2 * i + 1]);
        bad |= hi | lo;
        out[i] = (uint8_t)((hi << 4) | (lo & 0x0f));
    }
    if (bad & 0x100u) {
        memset(out, 0, n); /* no half-decoded key material left behind */
        return LC_ERR_INVALID;
    }
    *out_len = n;
    return 0;
}

int lc_b64url_encode(char *out, size_t out_cap, const uint8_t *in, size_t len)
{
    if (out == NULL || (in == NULL && len > 0) || len > (SIZE_MAX - 3) / 4 ||
        out_cap < LC_B64URL_LEN(len) + 1)
        return -1;
    size_t i = 0;
    char *p = out;
    for (; i + 3 <= len; i += 3) {
        uint32_t w = ((uint32_t)in[i] << 16) | ((uint32_t)in[i + 1] << 8) | in[i + 2];
        *p++ = s_b64url_char(w >> 18);
        *p++ = s_b64url_char((w >> 12) & 0x3f);
        *p++ = s_b64url_char((w >> 6) & 0x3f);
        *p++ = s_b64url_char(w & 0x3f);
    }
    if (len - i == 1) {
        uint32_t w = (uint32_t)in[i] << 16;
        *p++ = s_b64url_char(w >> 18);
        *p++ = s_b64url_char((w >> 12) & 0x3f);
    } else if (len - i == 2) {
        uint32_t w = ((uint32_t)in[i] << 16) | ((uint32_t)in[i + 1] << 8);
        *p++ = s_b64url_char(w >> 18);
        *p++ = s_b64url_char((w >> 12) & 0x3f);
        *p++ = s_b64url_char((w >> 6) & 0x3f);
    }
    *p = '\0';
    return 0;
}

int lc_b64url_decode(uint8_t *out, size_t out_cap, size_t *out_len, const char *in, size_t in_len)
{
    if (out_len == NULL || (in == NULL && in_len > 0))
        return LC_ERR_INVALID;
    *out_len = 0;
    size_t tail = in_len % 4;
    if (tail == 1) /* 6 bits cannot encode a byte */
        return LC_ERR_INVALID;
    size_t n = in_len / 4 * 3 + (tail ? tail - 1 : 0);
    /* The size check comes first so an oversized body is refused without decoding it. */
    if (n > out_cap || (out == NULL && n > 0))
        return LC_ERR_TOOBIG;

    const uint8_t *s = (const uint8_t *)in;
    uint8_t *p = out;
    uint32_t bad = 0;
    size_t i = 0;
    for (; i + 4 <= in_len; i += 4) {
        uint32_t a = s_b64url_value(s[i]), b = s_b64url_value(s[i + 1]);
        uint32_t c = s_b64url_value(s[i + 2]), d = s_b64url_value(s[i + 3]);
        bad |= a | b | c | d;
        uint32_t w = (a << 18) | (b << 12) | (c << 6) | d;
        *p++ = (uint8_t)(w >> 16);
        *p++ = (uint8_t)(w >> 8);
        *p++ = (uint8_t)w;
    }
    if (tail == 2) {
        uint32_t a = s_b64url_value(s[i]), b = s_b64url_value(s[i + 1]);
        bad |= a | b;
        bad |= ((b & 0x0f) + 0xff) & 0x100u; /* non-canonical: the unused low bits must be zero */
        *p++ = (uint8_t)((a << 2) | ((b & 0x3f) >> 4));
    } else if (tail == 3) {
        uint32_t a = s_b64url_value(s[i]), b = s_b64url_value(s[i + 1]);
        uint32_t c = s_b64url_value(s[i + 2]);
        bad |= a | b | c;
        bad |= ((c & 0x03) + 0xff) & 0x100u;
        uint32_t w = (a << 18) | (b << 12) | (c << 6);
        *p++ = (uint8_t)(w >> 16);
        *p++ = (uint8_t)(w >> 8);
    }
    if (bad & 0x100u) {
        memset(out, 0, n); /* no half-decoded key material left behind */
        return LC_ERR_INVALID;
    }
    *out_len = n;
    return 0;
}

void lc_url_redact(char *out, size_t cap, const char *url, size_t len)
{
    const char *end = url + len;
    const char *sep = NULL;
    for (const char *q = url; q + 3 <= end; q++)
        if (q[0] == ':' && q[1] == '/' && q[2] == '/') {
            sep = q;
            break;
        }
    const char *host = sep ? sep + 3 : url;
    size_t scheme_len = (size_t)(host - url);
    size_t host_len = 0;
    while (host + host_len < end && !strchr("/?#", host[host_len]))
        host_len++;
    const char *at = memchr(host, '@', host_len);
    if (at) {
        host_len -= (size_t)(at + 1 - host);
        host = at + 1;
    }
    int more = host + host_len < end;
    snprintf(out, cap, "%.*s%.*s%s", (int)scheme_len, url, (int)host_len, host, more ? "/…" : "");
}
