/* lc_keyring.h: the versioned key ring file (mode 0600). Each version holds three secret master
 * keys: stage-1 (AES-256-GCM per-device key derivation), stage-2 (XChaCha20-Poly1305 context key
 * derivation) and the gateway log key (used by the durable log, a later issue).
 * Secrets live in sodium_malloc'd memory, read-only while loaded, wiped on destroy.
 * File format (text, one version per line, '#' comments):
 *   v=<version> created=<unix seconds> aes=<64 hex> xchacha=<64 hex> gateway=<64 hex>
 * New records use the newest (highest) version; older versions stay readable. A ring with no
 * version is refused on load; rotate returns LC_ERR_TOOBIG when the ring is full (1024). */
#ifndef LC_KEYRING_H
#define LC_KEYRING_H

#include "lc_common.h"

#define LC_MASTER_KEY_LEN 32

typedef struct lc_keyring lc_keyring_t;

typedef struct {
    uint32_t version;
    uint64_t created;
    uint8_t aes_master[LC_MASTER_KEY_LEN];
    uint8_t xchacha_master[LC_MASTER_KEY_LEN];
    uint8_t gateway_master[LC_MASTER_KEY_LEN];
} lc_keyring_entry_t;

/* Loads the ring. Refuses a file readable or writable by group/other (LC_ERR_INVALID, reason
 * logged). Returns NULL on error and sets *err if err is not NULL. */
lc_keyring_t *lc_keyring_load(const char *path, int *err);
void lc_keyring_destroy(lc_keyring_t **self_p);

/* The newest version, and lookup by version (NULL if absent). Entries are borrowed. */
const lc_keyring_entry_t *lc_keyring_current(const lc_keyring_t *self);
const lc_keyring_entry_t *lc_keyring_get(const lc_keyring_t *self, uint32_t version);
size_t lc_keyring_count(const lc_keyring_t *self);

/* Creates a new ring file with version 1 (fails with LC_ERR_CONFLICT if it exists), or appends
 * a new version with fresh random keys (creating the file if absent). The file is written to a
 * temporary file (0600), fsynced and renamed. *new_version receives the version written. */
int lc_keyring_create(const char *path) LC_WUR;
int lc_keyring_rotate(const char *path, uint32_t *new_version) LC_WUR;

#endif
