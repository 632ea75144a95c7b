/* lc_codec.h: hex and base64url (RFC 4648 §5, no padding) codecs. Pure functions, no allocation.
 * Called by the JWS parser, the key ring, the CLI and the HTTP handlers. */
#ifndef LC_CODEC_H
#define LC_CODEC_H

#include "lc_common.h"

/* Length of the hex encoding of n bytes, without the NUL. */
#define LC_HEX_LEN(n) ((n)*2)
/* Writes 2*len lowercase hex digits and a NUL into out (out_cap >= 2*len+1). Returns 0 or -1. */
int lc_hex_encode(char *out, size_t out_cap, const uint8_t *in, size_t len);
/* Decodes hex (either case, optional "0x" prefix) into out. *out_len receives the byte count.
 * Returns 0, or LC_ERR_INVALID on odd length / bad digit, LC_ERR_TOOBIG if out_cap is short. */
int lc_hex_decode(uint8_t *out, size_t out_cap, size_t *out_len, const char *in,
                  size_t in_len) LC_WUR;

/* Length of the unpadded base64url encoding of n bytes. */
#define LC_B64URL_LEN(n) (((n)*4 + 2) / 3)
/* Encodes without padding, NUL-terminated (out_cap >= LC_B64URL_LEN(len)+1). Returns 0 or -1. */
int lc_b64url_encode(char *out, size_t out_cap, const uint8_t *in, size_t len);
/* Decodes unpadded base64url (rejects '=', '+', '/', whitespace and non-canonical trailing bits).
 * Returns 0, LC_ERR_INVALID or LC_ERR_TOOBIG. */
int lc_b64url_decode(uint8_t *out, size_t out_cap, size_t *out_len, const char *in,
                     size_t in_len) LC_WUR;

/* A URL as it may be logged: scheme://host[:port] only. Credentials (user:password@), the path
 * and the query (where providers put API keys) are left out. out is always NUL-terminated. */
void lc_url_redact(char *out, size_t cap, const char *url, size_t len);

#endif
