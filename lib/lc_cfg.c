/* lc_cfg.c: table-driven configuration. See lc_cfg.h. */
#include "lc_cfg.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lc_codec.h"
#include "lc_log.h"

static int s_enum_index(const char *choices, const char *value)
{
    size_t vlen = strlen(value);
    int idx = 0;
    for (const char *p = choices; *p;) {
        const char *bar = strchr(p, '|');
        size_t len = bar ? (size_t)(bar - p) : strlen(p);
        if (len == vlen && strncmp(p, value, len) == 0)
            return idx;
        idx++;
        if (!bar)
            break;
        p = bar + 1;
    }
    return -1;
}

static int s_parse_bool(const char *v, int *out)
{
    static const char *const yes[] = {"1", "true", "yes", "on"};
    static const char *const no[] = {"0", "false", "no", "off"};
    for (size_t i = 0; i < 4; i++) {
        if (strcasecmp(v, yes[i]) == 0) {
            *out = 1;
            return 0;
        }
        if (strcasecmp(v, no[i]) == 0) {
            *out = 0;
            return 0;
        }
    }
    return -1;
}

int lc_cfg_addr_parse(struct sockaddr_storage *out, unsigned *out_len, const char *text)
{
    char host[64];
    const char *colon = strrchr(text, ':');
    if (!colon || colon == text || (size_t)(colon - text) >= sizeof host || colon[1] < '0' ||
        colon[1] > '9')
        return LC_ERR_INVALID; /* strtol would take "+80" or " 80" */
    char *end = NULL;
    errno = 0;
    long port = strtol(colon + 1, &end, 10);
    if (errno || end == colon + 1 || *end != '\0' || port < 1 || port > 65535)
        return LC_ERR_INVALID;
    memcpy(host, text, (size_t)(colon - text));
    host[colon - text] = '\0';
    memset(out, 0, sizeof *out);
    size_t hlen = strlen(host);
    if (host[0] == '[' && hlen > 2 && host[hlen - 1] == ']') {
        struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)out;
        host[hlen - 1] = '\0';
        if (inet_pton(AF_INET6, host + 1, &a6->sin6_addr) != 1)
            return LC_ERR_INVALID;
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons((uint16_t)port);
        *out_len = sizeof *a6;
        return 0;
    }
    struct sockaddr_in *a4 = (struct sockaddr_in *)out;
    if (inet_pton(AF_INET, host, &a4->sin_addr) != 1)
        return LC_ERR_INVALID;
    a4->sin_family = AF_INET;
    a4->sin_port = htons((uint16_t)port);
    *out_len = sizeof *a4;
    return 0;
}

static int s_set(void *cfg, const lc_cfg_opt_t *o, const char *value, char *err, size_t err_len)
{
    char *field = (char *)cfg + o->offset;
    switch (o->type) {
    case LC_CFG_ADDR: {
        struct sockaddr_storage sa;
        unsigned sa_len = 0;
        if (strlen(value) >= o->size || lc_cfg_addr_parse(&sa, &sa_len, value) < 0) {
            snprintf(err, err_len, "%s: '%s' is not IPv4:port or [IPv6]:port (port 1-65535)",
                     o->name, value);
            return LC_ERR_INVALID;
        }
        memcpy(field, value, strlen(value) + 1); /* kept as text: logged and --help as given */
        return 0;
    }
    case LC_CFG_STR:
        if (strlen(value) >= o->size) {
            snprintf(err, err_len, "%s: value longer than %zu bytes", o->name, o->size - 1);
            return LC_ERR_INVALID;
        }
        memcpy(field, value, strlen(value) + 1);
        return 0;
    case LC_CFG_INT: {
        char *end = NULL;
        errno = 0;
        long long v = strtoll(value, &end, 10);
        if (errno || end == value || *end != '\0') {
            snprintf(err, err_len, "%s: '%s' is not an integer", o->name, value);
            return LC_ERR_INVALID;
        }
        if (v < o->min || v > o->max) {
            snprintf(err, err_len, "%s: %lld is outside [%lld, %lld]", o->name, v, o->min, o->max);
            return LC_ERR_INVALID;
        }
        memcpy(field, &v, sizeof v);
        return 0;
    }
    case LC_CFG_BOOL: {
        int b;
        if (s_parse_bool(value, &b) < 0) {
            snprintf(err, err_len, "%s: '%s' is not a boolean (true/false)", o->name, value);
            return LC_ERR_INVALID;
        }
        memcpy(field, &b, sizeof b);
        return 0;
    }
    case LC_CFG_ENUM: {
        int idx = s_enum_index(o->choices, value);
        if (idx < 0) {
            snprintf(err, err_len, "%s: '%s' is not one of %s", o->name, value, o->choices);
            return LC_ERR_INVALID;
        }
        memcpy(field, &idx, sizeof idx);
        return 0;
    }
    }
    return LC_ERR_INVALID;
}

/* Variables renamed in this release: the old name keeps working until the next one, with a
 * warning. Remove a row one release after it was added. */
static const struct {
    const char *old, *new;
} s_renamed[] = {
    {"LCORE_CHAIN_BATCH_MAX", "LCORE_CHAIN_ANCHOR_MAX"},
    {"LCORE_CHAIN_BATCH_WINDOW_MS", "LCORE_CHAIN_ANCHOR_WINDOW_MS"},
    {"LCORE_STORE_BATCH_MAX", "LCORE_STORE_WRITE_BATCH_MAX"},
    {"LCORE_STORE_BATCH_WAIT_MS", "LCORE_STORE_WRITE_BATCH_WAIT_MS"},
    {"LCORE_GATEWAY_MAX_BATCH_BYTES", "LCORE_GATEWAY_MAX_REQUEST_BATCH_BYTES"},
};

/* The environment's value for o (NULL: unset) and, in *set_as, the name it was set under: o's,
 * or its old name when only that one is set. A variable still set under its old name is logged
 * once per load. */
static const char *s_getenv(const lc_cfg_opt_t *o, const char **set_as)
{
    const char *env = getenv(o->name);
    *set_as = o->name;
    for (size_t i = 0; i < LC_ARRAY_LEN(s_renamed); i++) {
        const char *old = s_renamed[i].old, *old_env = getenv(old);
        if (strcmp(s_renamed[i].new, o->name) != 0 || !old_env)
            continue;
        if (env) {
            lc_warn("config_renamed", "old=%s new=%s ignored=%s (both are set: the new name wins)",
                    old, o->name, old);
            return env;
        }
        lc_warn("config_renamed", "old=%s new=%s (the old name works for this release only)", old,
                o->name);
        *set_as = old;
        return old_env;
    }
    return env;
}

int lc_cfg_load(void *cfg, const lc_cfg_opt_t *opts, size_t n, char *err, size_t err_len)
{
    for (size_t i = 0; i < n; i++) {
        int rc = s_set(cfg, &opts[i], opts[i].def, err, err_len);
        if (rc < 0)
            return rc; /* a bad default is a bug, reported the same way */
        /* An invalid value is reported under the name it was set as (maybe an old one). */
        lc_cfg_opt_t as_set = opts[i];
        const char *env = s_getenv(&opts[i], &as_set.name);
        if (env && (rc = s_set(cfg, &as_set, env, err, err_len)) < 0)
            return rc;
    }
    return 0;
}

void lc_cfg_help(FILE *out, const char *prog, const char *summary, const lc_cfg_opt_t *opts,
                 size_t n)
{
    fprintf(out, "Usage: %s [--help] [--version]\n%s\n\nConfiguration (environment):\n", prog,
            summary);
    for (size_t i = 0; i < n; i++) {
        const lc_cfg_opt_t *o = &opts[i];
        fprintf(out, "  %-34s %s\n", o->name, o->help);
        if (o->type == LC_CFG_INT)
            fprintf(out, "  %-34s default %s, range [%lld, %lld]\n", "", o->def, o->min, o->max);
        else if (o->type == LC_CFG_ENUM)
            fprintf(out, "  %-34s default %s, one of %s\n", "", o->def, o->choices);
        else
            fprintf(out, "  %-34s default '%s'\n", "", o->def);
    }
}

/* Each of a comma-separated list of URLs as lc_url_redact logs it. */
static void s_redact_urls(char *out, size_t cap, const char *list)
{
    size_t used = 0;
    out[0] = '\0';
    while (*list && used + 1 < cap) {
        size_t len = strcspn(list, ",");
        char one[160];
        lc_url_redact(one, sizeof one, list, len);
        int w = snprintf(out + used, cap - used, "%s%s", used ? "," : "", one);
        if (w < 0 || (size_t)w >= cap - used)
            break;
        used += (size_t)w;
        list += len + (list[len] == ',');
    }
}

void lc_cfg_log(const void *cfg, const lc_cfg_opt_t *opts, size_t n)
{
    char line[1800];
    size_t used = 0;
    line[0] = '\0';
    for (size_t i = 0; i < n && used < sizeof line; i++) {
        const lc_cfg_opt_t *o = &opts[i];
        const char *field = (const char *)cfg + o->offset;
        int w = 0;
        size_t left = sizeof line - used;
        if (o->secret == LC_CFG_SECRET_URLS) {
            char urls[512];
            s_redact_urls(urls, sizeof urls, field);
            w = snprintf(line + used, left, "%s%s=%s", used ? " " : "", o->name, urls);
        } else if (o->secret) {
            w = snprintf(line + used, left, "%s%s=%s", used ? " " : "", o->name,
                         field[0] ? "<set>" : "<unset>");
        } else if (o->type == LC_CFG_STR || o->type == LC_CFG_ADDR) {
            w = snprintf(line + used, left, "%s%s=%s", used ? " " : "", o->name, field);
        } else if (o->type == LC_CFG_INT) {
            long long v;
            memcpy(&v, field, sizeof v);
            w = snprintf(line + used, left, "%s%s=%lld", used ? " " : "", o->name, v);
        } else {
            int v;
            memcpy(&v, field, sizeof v);
            w = snprintf(line + used, left, "%s%s=%d", used ? " " : "", o->name, v);
        }
        if (w < 0 || (size_t)w >= left)
            break;
        used += (size_t)w;
    }
    lc_info("config", "%s", line);
}

int lc_cfg_main(int argc, char **argv, const char *service, const char *summary, void *cfg,
                const lc_cfg_opt_t *opts, size_t n)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            lc_cfg_help(stdout, argv[0], summary, opts, n);
            printf("  %-34s log level\n  %-34s default 'info', one of debug|info|warn|error\n",
                   "LCORE_LOG_LEVEL", "");
            return 1;
        }
        if (strcmp(argv[i], "--version") == 0) {
            printf("%s %s\n", service, LCORE_VERSION);
            return 1;
        }
        fprintf(stderr,
                "%s: unknown argument '%s' (configuration is by LCORE_* variables; see "
                "--help)\n",
                service, argv[i]);
        return -1;
    }
    lc_log_level_t level = LC_LOG_INFO;
    const char *lvl = getenv("LCORE_LOG_LEVEL");
    if (lvl && lc_log_level_parse(lvl, &level) < 0) {
        fprintf(stderr, "%s: LCORE_LOG_LEVEL: '%s' is not one of debug|info|warn|error\n", service,
                lvl);
        return -1;
    }
    lc_log_init(service, level);
    char err[256];
    if (lc_cfg_load(cfg, opts, n, err, sizeof err) < 0) {
        fprintf(stderr, "%s: invalid configuration: %s\n", service, err);
        return -1;
    }
    lc_cfg_log(cfg, opts, n);
    return 0;
}
