/* lc_secp.h: the process-wide libsecp256k1 context shared by the JWS (ES256K) and Ethereum
 * transaction modules. Created and randomized once (pthread_once), with libsodium initialised;
 * read-only afterwards, so threads share it without locks (every sign/verify/recover call takes
 * it as const; randomizing later would race with them). */
#ifndef LC_SECP_H
#define LC_SECP_H

#include <secp256k1.h>

/* The shared context, or NULL if libsodium or libsecp256k1 failed to initialise (logged). */
const secp256k1_context *lc_secp_context(void);

#endif
