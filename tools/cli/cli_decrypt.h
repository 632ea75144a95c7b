/* cli_decrypt.h: `lcore-cli decrypt RECORD_ID`: asks a store for the sealed record and its
 * device over the store's query link (CURVE, as the operator role: LCORE_CLI_CURVE_CERT, a
 * certificate in the trust directory's operator/), opens both layers with the seal key ring
 * (LCORE_KEYRING) here, checks the envelope hash and the device's signature again, and prints
 * the reading. No database access: the store is the records' owner. */
#ifndef CLI_DECRYPT_H
#define CLI_DECRYPT_H

/* Exit code: 0 opened and verified, 1 not (or no store answered), 2 usage. */
int cli_decrypt(const char *record_hex);

#endif
