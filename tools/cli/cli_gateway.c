/* cli_gateway.c: see cli_gateway.h. */
#include "cli_gateway.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cli_store.h"
#include "lc_codec.h"
#include "lc_token.h"

#define S_DEFAULT_URL "http://127.0.0.1:9101"
#define S_CONNECT_TIMEOUT_MS 5000L
#define S_TIMEOUT_MS 30000L

/* Overwrites the variable's value where the process environment holds it, then drops it: the
 * token stays nowhere but in self->token (the gateway does the same with its own copy). */
static void s_wipe_env(const char *name)
{
    char *v = getenv(name);
    if (v)
        sodium_memzero(v, strlen(v));
    unsetenv(name);
}

/* The operator token, from exactly one of the two variables. */
static int s_read_token(cli_gateway_t *self)
{
    const char *text = getenv("LCORE_ADMIN_TOKEN"), *file = getenv("LCORE_ADMIN_TOKEN_FILE");
    int has_text = text && *text, has_file = file && *file;
    const char *bad = NULL;
    if (has_text && has_file)
        bad = "set only one of LCORE_ADMIN_TOKEN and LCORE_ADMIN_TOKEN_FILE";
    else if (!has_text && !has_file)
        bad = "no operator token: set LCORE_ADMIN_TOKEN_FILE (a file holding the token) or "
              "LCORE_ADMIN_TOKEN (scripts/stack prints it)";
    else if (has_text && strlen(text) >= sizeof self->token)
        bad = "LCORE_ADMIN_TOKEN is too long to be a token";
    else if (has_text)
        memcpy(self->token, text, strlen(text) + 1);
    s_wipe_env("LCORE_ADMIN_TOKEN");
    if (!bad && has_file) {
        int rc = lc_token_read_file(self->token, sizeof self->token, file);
        if (rc != 0) {
            fprintf(stderr, "lcore-cli %s: cannot read LCORE_ADMIN_TOKEN_FILE %s: %s\n", self->cmd,
                    file, lc_strerror(rc));
            return CLI_EXIT_USAGE;
        }
    }
    /* The gateway's own rule for a token (length, no space or control character), which also
     * keeps the Authorization header one line. */
    uint8_t hash[LC_TOKEN_HASH_LEN];
    if (!bad && lc_token_hash(hash, self->token, strlen(self->token)) != 0)
        bad = "the operator token is not a valid one (at least 32 characters, no spaces)";
    sodium_memzero(hash, sizeof hash);
    if (bad) {
        fprintf(stderr, "lcore-cli %s: %s\n", self->cmd, bad);
        return CLI_EXIT_USAGE;
    }
    return CLI_EXIT_OK;
}

int cli_gateway_open(cli_gateway_t *self, const char *cmd)
{
    memset(self, 0, sizeof *self);
    self->cmd = cmd;
    const char *url = cli_env("LCORE_GATEWAY_ADMIN_URL", S_DEFAULT_URL);
    size_t len = strlen(url);
    while (len && url[len - 1] == '/')
        len--;
    if ((strncasecmp(url, "http://", 7) != 0 && strncasecmp(url, "https://", 8) != 0) ||
        len >= sizeof self->base) {
        fprintf(stderr, "lcore-cli %s: LCORE_GATEWAY_ADMIN_URL is not an http(s) URL\n", cmd);
        return CLI_EXIT_USAGE;
    }
    memcpy(self->base, url, len);
    self->base[len] = '\0';
    int rc = s_read_token(self);
    if (rc != CLI_EXIT_OK)
        return rc;
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK || !(self->easy = curl_easy_init())) {
        fprintf(stderr, "lcore-cli %s: libcurl did not start\n", cmd);
        return CLI_EXIT_UNREACHABLE;
    }
    return CLI_EXIT_OK;
}

void cli_gateway_close(cli_gateway_t *self)
{
    sodium_memzero(self->token, sizeof self->token);
    if (self->rx.data)
        sodium_memzero(self->rx.data, self->rx.cap); /* a created token's answer */
    lc_curlbuf_free(&self->rx);
    if (self->easy) {
        curl_easy_cleanup(self->easy);
        self->easy = NULL;
        curl_global_cleanup();
    }
}

char *cli_gateway_escape(cli_gateway_t *self, const char *text)
{
    return curl_easy_escape(self->easy, text, 0);
}

void cli_gateway_put_safe(FILE *out, const char *text)
{
    for (const unsigned char *p = (const unsigned char *)text; *p; p++)
        fputc(*p >= 0x20 && *p < 0x7f ? *p : '?', out);
}

/* The base URL as it may be printed: scheme://host[:port]. */
static const char *s_where(const cli_gateway_t *self, char *buf, size_t cap)
{
    lc_url_redact(buf, cap, self->base, strlen(self->base));
    return buf;
}

/* Says what the gateway's error answer says: its code and message, the HTTP status. */
static int s_report_error(cli_gateway_t *self, long status)
{
    json_t *j = json_loads(lc_curlbuf_text(&self->rx), 0, NULL);
    const char *code = json_string_value(json_object_get(j, "error"));
    const char *message = json_string_value(json_object_get(j, "message"));
    fprintf(stderr, "lcore-cli %s: ", self->cmd);
    if (code) {
        cli_gateway_put_safe(stderr, code);
        fputs(message ? ": " : "", stderr);
        cli_gateway_put_safe(stderr, message ? message : "");
    } else {
        fputs("the gateway's answer is not an API error", stderr);
    }
    fprintf(stderr, " (HTTP %ld", status);
    curl_off_t retry_after = 0;
    if (curl_easy_getinfo(self->easy, CURLINFO_RETRY_AFTER, &retry_after) == CURLE_OK &&
        retry_after > 0)
        fprintf(stderr, "; retry after %lld s", (long long)retry_after);
    fputs(")\n", stderr);
    if (status == 401)
        fprintf(stderr,
                "lcore-cli %s: the gateway refused the operator token "
                "(LCORE_ADMIN_TOKEN or LCORE_ADMIN_TOKEN_FILE)\n",
                self->cmd);
    json_decref(j);
    return CLI_EXIT_API;
}

/* What a failed transfer means: the gateway could not be reached (3), or its answer was too
 * large (1). */
static int s_report_transport(cli_gateway_t *self, CURLcode cc)
{
    char where[160];
    if (cc == CURLE_WRITE_ERROR) {
        fprintf(stderr, "lcore-cli %s: the gateway's answer is larger than %u bytes\n", self->cmd,
                LC_CURLBUF_MAX);
        return CLI_EXIT_API;
    }
    fprintf(stderr,
            "lcore-cli %s: cannot reach the gateway at %s (LCORE_GATEWAY_ADMIN_URL): ", self->cmd,
            s_where(self, where, sizeof where));
    cli_gateway_put_safe(stderr, self->errbuf[0] ? self->errbuf : curl_easy_strerror(cc));
    fputc('\n', stderr);
    if (cc == CURLE_PEER_FAILED_VERIFICATION || cc == CURLE_SSL_CACERT_BADFILE ||
        cc == CURLE_SSL_CONNECT_ERROR)
        fprintf(stderr,
                "lcore-cli %s: LCORE_CA_FILE names the CA certificates (PEM) that "
                "verify the gateway's\n",
                self->cmd);
    return CLI_EXIT_UNREACHABLE;
}

/* A 2xx answer: its JSON object into *answer. */
static int s_take_answer(cli_gateway_t *self, json_t **answer)
{
    json_error_t jerr;
    json_t *j =
        json_loadb(self->rx.data ? self->rx.data : "", self->rx.len, JSON_REJECT_DUPLICATES, &jerr);
    if (!json_is_object(j)) {
        fprintf(stderr, "lcore-cli %s: the gateway's answer is not a JSON object%s", self->cmd,
                j ? "\n" : ": ");
        if (!j) {
            cli_gateway_put_safe(stderr, jerr.text);
            fputc('\n', stderr);
        }
        json_decref(j);
        return CLI_EXIT_API;
    }
    *answer = j;
    return CLI_EXIT_OK;
}

/* The options of every request; the headers carry the token (wiped by the caller). */
static CURLcode s_setup(cli_gateway_t *self, const char *url, const char *method, const char *body,
                        struct curl_slist *headers)
{
    CURL *e = self->easy;
    const char *ca_file = getenv("LCORE_CA_FILE");
    curl_easy_reset(e);
    CURLcode rc = CURLE_OK;
    rc |= curl_easy_setopt(e, CURLOPT_URL, url);
    rc |= curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    rc |= curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L); /* the token goes nowhere else */
    rc |= curl_easy_setopt(e, CURLOPT_PATH_AS_IS, 1L);     /* a device id ".." stays one */
    rc |= curl_easy_setopt(e, CURLOPT_HTTPHEADER, headers);
    rc |= curl_easy_setopt(e, CURLOPT_USERAGENT, "lcore-cli/0.1");
    rc |= curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, S_CONNECT_TIMEOUT_MS);
    rc |= curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, S_TIMEOUT_MS);
    rc |= curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    rc |= curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, lc_curlbuf_write);
    rc |= curl_easy_setopt(e, CURLOPT_WRITEDATA, &self->rx);
    rc |= curl_easy_setopt(e, CURLOPT_ERRORBUFFER, self->errbuf);
    if (ca_file && *ca_file)
        rc |= curl_easy_setopt(e, CURLOPT_CAINFO, ca_file);
    if (strcmp(method, "POST") == 0) {
        rc |= curl_easy_setopt(e, CURLOPT_POSTFIELDS, body ? body : "");
        rc |= curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, (long)(body ? strlen(body) : 0));
    } else if (strcmp(method, "GET") != 0) {
        rc |= curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
    }
    return rc;
}

/* The request's headers: the token's, then the fixed ones. NULL on OOM. */
static struct curl_slist *s_headers(const char *auth, int has_body)
{
    struct curl_slist *h = curl_slist_append(NULL, auth), *t = h;
    t = t ? curl_slist_append(h, "Accept: application/json") : NULL;
    /* No body: no Content-Type at all (libcurl would name a form). */
    t = t ? curl_slist_append(h, has_body ? "Content-Type: application/json" : "Content-Type:")
          : NULL;
    t = t ? curl_slist_append(h, "Expect:") : NULL;
    if (!t && h) {
        sodium_memzero(h->data, strlen(h->data));
        curl_slist_free_all(h);
    }
    return t ? h : NULL;
}

int cli_gateway_call(cli_gateway_t *self, const char *method, const char *path, const json_t *body,
                     json_t **answer)
{
    *answer = NULL;
    int ret = CLI_EXIT_API;
    char auth[sizeof "Authorization: Bearer " + CLI_GATEWAY_TOKEN_MAX];
    size_t url_len = strlen(self->base) + strlen(path) + 1;
    char *url = malloc(url_len), *json = body ? json_dumps(body, JSON_COMPACT) : NULL;
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", self->token);
    struct curl_slist *headers = s_headers(auth, body != NULL);
    if (!url || (body && !json) || !headers) {
        fprintf(stderr, "lcore-cli %s: out of memory\n", self->cmd);
        goto out;
    }
    snprintf(url, url_len, "%s%s", self->base, path);
    lc_curlbuf_reset(&self->rx);
    self->errbuf[0] = '\0';
    if (s_setup(self, url, method, json, headers) != CURLE_OK) {
        fprintf(stderr, "lcore-cli %s: libcurl refused an option\n", self->cmd);
        goto out;
    }
    CURLcode cc = curl_easy_perform(self->easy);
    long status = 0;
    curl_easy_getinfo(self->easy, CURLINFO_RESPONSE_CODE, &status);
    if (cc != CURLE_OK)
        ret = s_report_transport(self, cc);
    else if (status < 200 || status > 299)
        ret = s_report_error(self, status);
    else
        ret = s_take_answer(self, answer);
out:
    for (struct curl_slist *h = headers; h; h = h->next)
        sodium_memzero(h->data, strlen(h->data));
    curl_slist_free_all(headers);
    sodium_memzero(auth, sizeof auth);
    free(json);
    free(url);
    return ret;
}
