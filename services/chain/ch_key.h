/* ch_key.h: transitional. The signing key file moved to lib/lc_ethkey (shared with lcore-cli).
 * These are the old names that main() still uses while it is rewritten on another branch of
 * issue 13; new code uses lib's names. Delete this header once main.c is renamed. */
#ifndef CH_KEY_H
#define CH_KEY_H

#include "lc_ethkey.h"

#define ch_key_load lc_ethkey_load
#define ch_key_generate lc_ethkey_generate
#define ch_key_is_dev_account lc_ethkey_is_dev_account
#define CH_DEV_CHAIN_ID LC_ETHKEY_DEV_CHAIN_ID

#endif
