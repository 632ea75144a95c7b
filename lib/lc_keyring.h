/* lc_keyring.h: the versioned key ring files (mode 0600). Secrets are split per service, so there
 * are two kinds of ring, and each loader names the kind it needs:
 *   seal ring (LC_KEYRING_SEAL): per version the stage-1 (AES-256-GCM per-device key derivation)
 *     and stage-2 (XChaCha20-Poly1305 context key derivation) master keys. Read by the crypto
 *     workers and `lcore-cli decrypt`.
 *   gateway ring (LC_KEYRING_GATEWAY): per version the gateway's log key (its write-ahead log
 *     entries name the version that sealed them). Read by the gateway only.
 * A ring holding a key its reader must not have (a worker given the gateway key, a gateway given
 * sealing keys, or the old combined ring) is refused with a one-line hint to split it
 * (`lcore-cli keyring-split`, which calls lc_keyring_split).
 * Secrets live in sodium_malloc'd memory, read-only while loaded, wiped on destroy.
 * File format (text, one version per line, '#' comments):
 *   seal:     v=<version> created=<unix seconds> aes=<64 hex> xchacha=<64 hex>
 *   gateway:  v=<version> created=<unix seconds> gateway=<64 hex>
 *   combined (before the split; only lc_keyring_split reads it): all three keys on each line.
 * New records (log entries) use the newest (highest) version; older versions stay readable. A
 * ring with no version is refused on load; rotate returns LC_ERR_TOOBIG when the ring is full
 * (1024). */
#ifndef LC_KEYRING_H
#define LC_KEYRING_H

#include "lc_common.h"

#define LC_MASTER_KEY_LEN 32

typedef struct lc_keyring lc_keyring_t;

typedef enum {
    LC_KEYRING_SEAL = 0,    /* aes + xchacha per version: crypto workers, lcore-cli decrypt */
    LC_KEYRING_GATEWAY = 1, /* gateway log key per version: the gateway */
} lc_keyring_kind_t;

/* The keys of the ring's kind are set; the others are all zero. */
typedef struct {
    uint32_t version;
    uint64_t created;
    uint8_t aes_master[LC_MASTER_KEY_LEN];     /* seal */
    uint8_t xchacha_master[LC_MASTER_KEY_LEN]; /* seal */
    uint8_t gateway_master[LC_MASTER_KEY_LEN]; /* gateway */
} lc_keyring_entry_t;

/* "seal" or "gateway" (logs, lcore-cli). */
const char *lc_keyring_kind_name(lc_keyring_kind_t kind);

/* Loads a ring of the given kind. Refuses a file readable or writable by group/other, and a file
 * holding another kind's keys (LC_ERR_INVALID, reason logged on one line). Returns NULL on error
 * and sets *err if err is not NULL. */
lc_keyring_t *lc_keyring_load(const char *path, lc_keyring_kind_t kind, int *err);
void lc_keyring_destroy(lc_keyring_t **self_p);

/* The newest version, and lookup by version (NULL if absent). Entries are borrowed. */
const lc_keyring_entry_t *lc_keyring_current(const lc_keyring_t *self);
const lc_keyring_entry_t *lc_keyring_get(const lc_keyring_t *self, uint32_t version);
size_t lc_keyring_count(const lc_keyring_t *self);

/* Creates a new ring file of the kind with version 1 (fails with LC_ERR_CONFLICT if it exists),
 * or appends a new version with fresh random keys (creating the file if absent; a file of another
 * kind is refused). The file is written to a temporary file (0600), fsynced and renamed.
 * *new_version receives the version written. */
int lc_keyring_create(const char *path, lc_keyring_kind_t kind) LC_WUR;
int lc_keyring_rotate(const char *path, lc_keyring_kind_t kind, uint32_t *new_version) LC_WUR;

/* Splits a combined ring (every line with aes, xchacha and gateway keys) into a new seal ring and
 * a new gateway ring with the same versions, creation times and keys, each written atomically
 * (0600) and neither overwriting an existing file (LC_ERR_CONFLICT; nothing is left behind on
 * failure). The combined file is left as it is: the operator deletes it once both services run
 * on their own rings. */
int lc_keyring_split(const char *combined_path, const char *seal_path,
                     const char *gateway_path) LC_WUR;

#endif
