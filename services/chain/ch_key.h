/* ch_key.h: the relayer's signing key file: 64 hex digits (optional 0x), mode 0600, read into
 * guarded memory and handed to an lc_ethtx signer; the file's bytes are wiped after. */
#ifndef CH_KEY_H
#define CH_KEY_H

#include "lc_ethtx.h"

/* NULL on error (reason logged: missing, group/other access, malformed, invalid key). */
lc_ethtx_signer_t *ch_key_load(const char *path);
/* 1 when address is one of anvil's ten development accounts (mnemonic "test test test test test
 * test test test test test test junk"), whose keys are public: such a key may only sign on a
 * development chain (chain id 31337). Compares with every entry in constant time. */
int ch_key_is_dev_account(const uint8_t address[20]);
#define CH_DEV_CHAIN_ID 31337

/* Writes a new random key (0600, refuses to overwrite) and prints nothing. 0 or an error. */
int ch_key_generate(const char *path) LC_WUR;

#endif
