/* lc_ethkey.h: an Ethereum signing key file (the chain relayer's key, the anchor contract owner's):
 * 64 hex digits (optional 0x), mode 0600, read into guarded memory and handed to an lc_ethtx
 * signer; the file's bytes are wiped after. Used by lcore-chain and lcore-cli set-relayer. */
#ifndef LC_ETHKEY_H
#define LC_ETHKEY_H

#include "lc_ethtx.h"

/* NULL on error (reason logged: missing, group/other access, malformed, invalid key). */
lc_ethtx_signer_t *lc_ethkey_load(const char *path);
/* 1 when address is one of anvil's ten development accounts (mnemonic "test test test test test
 * test test test test test test junk"), whose keys are public: such a key may only sign on a
 * development chain (chain id 31337). Compares with every entry in constant time. */
int lc_ethkey_is_dev_account(const uint8_t address[20]);
#define LC_ETHKEY_DEV_CHAIN_ID 31337

/* Writes a new random key (0600, refuses to overwrite) and prints nothing. 0 or an error. */
int lc_ethkey_generate(const char *path) LC_WUR;

#endif
