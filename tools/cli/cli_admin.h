/* cli_admin.h: the operator verbs, a thin client of the gateway's operator API (its admin
 * listener, cli_gateway.h): the cli reads no database and holds no key, so the gateway authorizes
 * and audits every action under the operator token.
 *   device list [--limit N] [--after CURSOR] [--all] [--json]    GET /v1/devices
 *   device show ID [--json]                                      GET /v1/devices/{ID}
 *   device revoke ID [--json], device reactivate ID [--json]     POST /v1/devices/{ID}/revoke...
 *   device rotate ID --alg EdDSA|ES256K --public-key HEX|@FILE.jwk [--overlap-s N] [--json]
 *                                                                POST /v1/devices/{ID}/keys
 *   token create --scope read|decrypt|operator [--device ID]... [--expires-in-s N] [--json]
 *                                                                POST /v1/tokens
 *   token list [--json], token delete TOKEN_ID [--json]          GET, DELETE /v1/tokens
 *   audit [--after CURSOR] [--limit N] [--all] [--json]          GET /v1/audit
 * Tables by default; --json prints the API's JSON document (with --all, the pages' lists
 * concatenated in one document whose "next" is null). Every answer is checked against the shape
 * the API describes before anything of it is printed. A created token is printed once: alone on
 * the last line of stdout (or in the JSON), with a warning on stderr. */
#ifndef CLI_ADMIN_H
#define CLI_ADMIN_H

#include <stdio.h>

/* argv[0] is "device", "token" or "audit". Exit code: 0 done, 1 the API answered an error (its
 * code and message on stderr) or something that is not the API, 2 usage or configuration (no
 * operator token), 3 the gateway could not be reached. */
int cli_admin(int argc, char **argv);
/* The verbs' part of lcore-cli --help. */
void cli_admin_help(FILE *out);

#endif
