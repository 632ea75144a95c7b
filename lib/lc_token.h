/* lc_token.h: operator bearer tokens. A service keeps only SHA-256(token); the raw token is hashed
 * the moment it is read and wiped. A token must carry at least 128 bits: LC_TOKEN_MIN_LEN
 * characters (32 hex digits of 4 bits each; `openssl rand -hex 32` and scripts/stack give 64).
 * Used by the gateway (its operator token) and lcore-cli token-hash. */
#ifndef LC_TOKEN_H
#define LC_TOKEN_H

#include "lc_common.h"

#define LC_TOKEN_MIN_LEN 32
#define LC_TOKEN_HASH_LEN 32
#define LC_TOKEN_HASH_HEX_LEN (2 * LC_TOKEN_HASH_LEN)

/* out = SHA-256(token). LC_ERR_INVALID (nothing written) when the token is shorter than
 * LC_TOKEN_MIN_LEN or holds a control character or space (a pasted line break, say). */
int lc_token_hash(uint8_t out[LC_TOKEN_HASH_LEN], const char *token, size_t len) LC_WUR;

/* Parses a token hash file's text: 64 hex digits, surrounding white space allowed. */
int lc_token_hash_parse(uint8_t out[LC_TOKEN_HASH_LEN], const char *text, size_t len) LC_WUR;

/* Reads the first line of a small file into out (NUL-terminated, line break dropped) and wipes
 * every other copy. 0, LC_ERR_NOTFOUND / LC_ERR_IO, or LC_ERR_TOOBIG when the line does not fit. */
int lc_token_read_file(char *out, size_t cap, const char *path) LC_WUR;

#endif
