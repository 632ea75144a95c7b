/* cli_gateway.h: lcore-cli's link to the gateway's operator API (its admin listener), shared by
 * the operator verbs (cli_admin.h). Configuration: LCORE_GATEWAY_ADMIN_URL (default
 * http://127.0.0.1:9101), the operator token from LCORE_ADMIN_TOKEN or LCORE_ADMIN_TOKEN_FILE
 * (one of them; never on the command line), LCORE_CA_FILE (PEM CA certificates for an https URL;
 * default the system's, verification is never off). The token is kept only here, sent only as
 * the Authorization header of each request (to the configured URL: redirects are not followed),
 * and wiped by cli_gateway_close. Transport errors, HTTP errors and the API's JSON errors are
 * said on stderr here, so a verb only handles the answers it asked for. */
#ifndef CLI_GATEWAY_H
#define CLI_GATEWAY_H

#include <curl/curl.h>
#include <jansson.h>
#include <stdio.h>

#include "lc_curlbuf.h"

/* lcore-cli's exit codes for the operator verbs. */
enum {
    CLI_EXIT_OK = 0,
    CLI_EXIT_API = 1,         /* the API answered an error (or something that is not the API) */
    CLI_EXIT_USAGE = 2,       /* bad arguments or configuration (no operator token) */
    CLI_EXIT_UNREACHABLE = 3, /* no answer: connection refused, timeout, TLS refused */
};

#define CLI_GATEWAY_TOKEN_MAX 1024
#define CLI_GATEWAY_URL_MAX 1024

typedef struct {
    const char *cmd; /* for messages: "device list", "token create" */
    char base[CLI_GATEWAY_URL_MAX];
    char token[CLI_GATEWAY_TOKEN_MAX];
    CURL *easy;
    lc_curlbuf_t rx;
    char errbuf[CURL_ERROR_SIZE];
} cli_gateway_t;

/* Reads the configuration and the token. CLI_EXIT_OK, or CLI_EXIT_USAGE after saying why on
 * stderr (no token, both token variables, a token that cannot be one, a URL that is not
 * http(s)). cli_gateway_close either way. */
int cli_gateway_open(cli_gateway_t *self, const char *cmd);
/* Wipes the token and the last answer. */
void cli_gateway_close(cli_gateway_t *self);

/* One request: method, path (with its query; what goes in it must be URL-safe already: see
 * cli_gateway_escape), body (NULL: none; sent as JSON). CLI_EXIT_OK with *answer the 2xx answer's
 * JSON object (caller decrefs), CLI_EXIT_API (an error answer, a non-JSON or non-object answer:
 * said on stderr, its code and message for a JSON error) or CLI_EXIT_UNREACHABLE (said). */
int cli_gateway_call(cli_gateway_t *self, const char *method, const char *path, const json_t *body,
                     json_t **answer);

/* text percent-encoded for a query value: malloc'd (caller frees with curl_free), NULL on OOM. */
char *cli_gateway_escape(cli_gateway_t *self, const char *text);

/* Prints text with every byte that is not printable ASCII as '?': what a gateway sends may not
 * drive the terminal. */
void cli_gateway_put_safe(FILE *out, const char *text);

#endif
