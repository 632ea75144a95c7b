/* sim_config.c: lcore-sim's options table. See sim_config.h.
 * lc_cfg's table reads LCORE_* environment variables, which suits services; a load generator is
 * driven by command-line flags, so it has the same kind of table keyed by flag name instead.
 * One row per option drives getopt_long, defaults, bounds, --help and the config log line. */
#include "sim_config.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <sodium.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lc_log.h"
#include "lc_record.h"
#include "sim_mqtt.h"

#define SIM_DEFAULT_URL "http://127.0.0.1:8080"
#define SIM_DEFAULT_ADMIN_URL "http://127.0.0.1:9101"
#define SIM_DEFAULT_MQTT_URL "mqtt://127.0.0.1:1883"
#define SIM_UNPACED_RATE_GUESS 20000 /* readings/s pre-signed for --rate 0 with --duration */
#define SIM_UNPACED_MAX 1000000      /* ...but never more than this (~350 MB of JWS) */

typedef enum { OPT_STR, OPT_U64, OPT_DBL, OPT_ENUM, OPT_FLAG } opt_type_t;

typedef struct {
    const char *name; /* long option, without "--" */
    opt_type_t type;
    size_t offset;
    size_t size;     /* OPT_STR: capacity */
    const char *def; /* default as text; OPT_STR may name an environment variable in env */
    const char *env; /* environment variable that overrides def, or NULL */
    double min, max; /* OPT_U64 (max 0: no bound), OPT_DBL */
    const char *choices;
    int secret;
    const char *arg; /* argument name in --help */
    const char *help;
} opt_row_t;

#define F(field) offsetof(sim_config_t, field), sizeof(((sim_config_t *)0)->field)

static const opt_row_t s_opts[] = {
    {"url", OPT_STR, F(url), SIM_DEFAULT_URL, "LCORE_GATEWAY_URL", 0, 0, NULL, 0, "URL",
     "gateway device listener base URL (readings)"},
    {"admin-url", OPT_STR, F(admin_url), SIM_DEFAULT_ADMIN_URL, "LCORE_GATEWAY_ADMIN_URL", 0, 0,
     NULL, 0, "URL", "gateway admin listener base URL (POST /v1/devices registers the devices)"},
    {"mqtt-url", OPT_STR, F(mqtt_url), SIM_DEFAULT_MQTT_URL, "LCORE_MQTT_URL", 0, 0, NULL, 0, "URL",
     "MQTT broker for the mqtt modes: mqtt://host:port, or mqtts://host:port (TLS)"},
    {"cacert", OPT_STR, F(ca_file), "", "LCORE_CA_FILE", 0, 0, NULL, 0, "FILE",
     "PEM CA certificate(s) to verify https and mqtts URLs with (default: the system's; "
     "verification is never off)"},
    {"admin-token", OPT_STR, F(admin_token), "", "LCORE_ADMIN_TOKEN", 0, 0, NULL, 1, "TOKEN",
     "operator token for POST /v1/devices"},
    {"devices", OPT_U64, F(devices), "100", NULL, 1, 1000000, NULL, 0, "N",
     "number of simulated devices"},
    {"duration", OPT_DBL, F(duration_s), "10", NULL, 0.001, 86400, NULL, 0, "SECONDS",
     "how long to send (ignored with --count)"},
    {"count", OPT_U64, F(count), "0", NULL, 0, 1e9, NULL, 0, "TOTAL",
     "total readings to send; overrides --duration (0 = use --duration)"},
    {"rate", OPT_DBL, F(rate), "1000", NULL, 0, 1e7, NULL, 0, "R",
     "total readings/s offered (0 = as fast as possible)"},
    {"concurrency", OPT_U64, F(concurrency), "16", NULL, 1, 1024, NULL, 0, "C",
     "keep-alive HTTP connections; mqtt modes: messages awaiting their result, across devices"},
    {"mode", OPT_ENUM, F(mode), "single", NULL, 0, 0, "single|batch|compat|mqtt|mqtt-batch", 0,
     "MODE",
     "single: POST /v1/data (application/jose); batch: request batches, POST /v1/data/batch "
     "(text/plain, one JWS a line); compat: POST /device/data (JSON); mqtt: each device "
     "connects to the broker as itself (MQTT 5), publishes a reading a message with QoS 1 to "
     "lcore/v1/<device_id>/data and reads its results, matched by seq, from .../result; "
     "mqtt-batch: B readings of one device a message, one JWS a line, to .../batch"},
    {"batch-size", OPT_U64, F(batch_size), "100", NULL, 1, SIM_BATCH_MAX, NULL, 0, "B",
     "readings per request batch (batch mode) or per message (mqtt-batch)"},
    {"alg", OPT_ENUM, F(alg), "EdDSA", NULL, 0, 0, "EdDSA|ES256K|mixed", 0, "ALG",
     "signature algorithm (mixed: even devices EdDSA, odd ES256K)"},
    {"payload-bytes", OPT_U64, F(payload_bytes), "64", NULL, 0, 4194304, NULL, 0, "P",
     "approximate size of the \"data\" object"},
    {"device-prefix", OPT_STR, F(device_prefix), "", NULL, 0, 0, NULL, 0, "PFX",
     "device ids are PFX-<index> (default sim-<8 random hex>, new every run)"},
    {"seq-start", OPT_U64, F(seq_start), "1", NULL, 0, 0, NULL, 0, "S",
     "first seq of every device"},
    {"no-register", OPT_FLAG, F(no_register), "0", NULL, 0, 0, NULL, 0, NULL,
     "do not register the devices first"},
    {"record-ids", OPT_STR, F(record_ids), "", NULL, 0, 0, NULL, 0, "FILE",
     "append the record_id (hex, as DESIGN.md defines it) of every accepted reading, one a line"},
    {"puback-ids", OPT_STR, F(puback_ids), "", NULL, 0, 0, NULL, 0, "FILE",
     "mqtt modes: append the record_id of every reading whose message the broker acknowledged "
     "(PUBACK reason code 0; 16, no matching subscribers, is not a hand-over), one a line"},
    {"quiet", OPT_FLAG, F(quiet), "0", NULL, 0, 0, NULL, 0, NULL, "no progress lines on stderr"},
    {"progress", OPT_FLAG, F(progress), "0", NULL, 0, 0, NULL, 0, NULL,
     "every second print \"progress t=<s> sent=<n> accepted=<n> rejected=<n> overloaded=<n> "
     "errors=<n>\" on stdout (cumulative counts; t from the first send; overloaded: 429/503 "
     "answers; errors: no answer)"},
    {"timeout", OPT_DBL, F(timeout_s), "30", NULL, 0.1, 3600, NULL, 0, "SECONDS",
     "per-request timeout; mqtt modes: how long a reading waits for its result after its "
     "publish (then it counts in results_missing), and for the devices to connect"},
    {"retry", OPT_FLAG, F(retry), "0", NULL, 0, 0, NULL, 0, NULL,
     "send a reading again, like a device would, when its request got no answer (connection "
     "error, timeout) or a 429 or 5xx (batch mode: the whole request batch, for its lines "
     "that did): after Retry-After, else after a backoff of 200 ms doubling to 2 s, until it "
     "gets a definitive answer (202, or a 4xx but 429). Retries are extra requests, not paced "
     "by --rate"},
    {"retry-for", OPT_DBL, F(retry_for_s), "60", NULL, 0, 86400, NULL, 0, "SECONDS",
     "with --retry: how long after the paced load ends retries may go on"},
};

#define SIM_N_OPTS LC_ARRAY_LEN(s_opts)

static int s_enum_index(const char *choices, const char *value)
{
    size_t vlen = strlen(value);
    int idx = 0;
    for (const char *p = choices; *p; idx++) {
        const char *bar = strchr(p, '|');
        size_t len = bar ? (size_t)(bar - p) : strlen(p);
        if (len == vlen && strncmp(p, value, len) == 0)
            return idx;
        if (!bar)
            break;
        p = bar + 1;
    }
    return -1;
}

static int s_set(sim_config_t *cfg, const opt_row_t *o, const char *value)
{
    char *field = (char *)cfg + o->offset;
    char *end = NULL;
    switch (o->type) {
    case OPT_STR:
        if (strlen(value) >= o->size) {
            fprintf(stderr, "lcore-sim: --%s: longer than %zu bytes\n", o->name, o->size - 1);
            return -1;
        }
        memcpy(field, value, strlen(value) + 1);
        return 0;
    case OPT_U64: {
        /* max 0: the whole u64 range (a double cannot hold UINT64_MAX exactly) */
        unsigned long long lo = (unsigned long long)o->min;
        unsigned long long hi = o->max > 0 ? (unsigned long long)o->max : UINT64_MAX;
        errno = 0;
        unsigned long long v = strtoull(value, &end, 10);
        if (errno || end == value || *end != '\0' || value[0] == '-' || v < lo || v > hi) {
            fprintf(stderr, "lcore-sim: --%s: '%s' is not an integer in [%llu, %llu]\n", o->name,
                    value, lo, hi);
            return -1;
        }
        uint64_t u = v;
        memcpy(field, &u, sizeof u);
        return 0;
    }
    case OPT_DBL: {
        errno = 0;
        double v = strtod(value, &end);
        if (errno || end == value || *end != '\0' || !isfinite(v) || v < o->min || v > o->max) {
            fprintf(stderr, "lcore-sim: --%s: '%s' is not a number in [%g, %g]\n", o->name, value,
                    o->min, o->max);
            return -1;
        }
        memcpy(field, &v, sizeof v);
        return 0;
    }
    case OPT_ENUM: {
        int idx = s_enum_index(o->choices, value);
        if (idx < 0) {
            fprintf(stderr, "lcore-sim: --%s: '%s' is not one of %s\n", o->name, value, o->choices);
            return -1;
        }
        memcpy(field, &idx, sizeof idx);
        return 0;
    }
    case OPT_FLAG: {
        int on = strcmp(value, "0") != 0;
        memcpy(field, &on, sizeof on);
        return 0;
    }
    }
    return -1;
}

/* Prints text from column `indent`, wrapped at word boundaries before column `width`. */
static void s_wrap(FILE *out, const char *text, int indent, int width)
{
    int col = indent;
    for (const char *p = text; *p;) {
        size_t word = strcspn(p, " ");
        if (col > indent && col + 1 + (int)word > width) {
            fprintf(out, "\n%*s", indent, "");
            col = indent;
        } else if (col > indent) {
            fputc(' ', out);
            col++;
        }
        fprintf(out, "%.*s", (int)word, p);
        col += (int)word;
        p += word;
        p += strspn(p, " ");
    }
    fputc('\n', out);
}

static void s_help(FILE *out)
{
    fprintf(out, "Usage: lcore-sim [OPTION]...\n"
                 "Device simulator and load generator for the lcore gateway: registers devices,\n"
                 "pre-signs their readings (JWS), sends them at a paced rate and reports what the\n"
                 "gateway answered as key=value lines on stdout (the last one is accepted=<n>).\n\n"
                 "Options:\n");
    for (size_t i = 0; i < SIM_N_OPTS; i++) {
        const opt_row_t *o = &s_opts[i];
        char flag[64], text[1024];
        snprintf(flag, sizeof flag, "--%s%s%s", o->name, o->arg ? " " : "", o->arg ? o->arg : "");
        int n = snprintf(text, sizeof text, "%s", o->help);
        if (o->type == OPT_ENUM && n > 0 && (size_t)n < sizeof text)
            n += snprintf(text + n, sizeof text - (size_t)n, " [%s]", o->choices);
        if (o->type != OPT_FLAG && o->def[0] && n > 0 && (size_t)n < sizeof text)
            n += snprintf(text + n, sizeof text - (size_t)n, " (default %s%s%s%s)",
                          o->env ? "$" : "", o->env ? o->env : "", o->env ? ", else " : "", o->def);
        else if (o->env && n > 0 && (size_t)n < sizeof text)
            snprintf(text + n, sizeof text - (size_t)n, " (default $%s)", o->env);
        fprintf(out, "  %-24s ", flag);
        s_wrap(out, text, 27, 100);
    }
    fprintf(out, "  %-24s %s\n\n", "-h, --help", "show this help and exit");
    fprintf(out,
            "Environment: LCORE_GATEWAY_URL, LCORE_GATEWAY_ADMIN_URL, LCORE_MQTT_URL,\n"
            "LCORE_CA_FILE, LCORE_ADMIN_TOKEN (defaults for --url, --admin-url, --mqtt-url,\n"
            "--cacert and --admin-token), LCORE_LOG_LEVEL (debug|info|warn|error, default info).\n"
            "Summary keys: mode alg devices [registered register_failed] sent accepted\n"
            "rejected rejected_<status>... backpressure backpressure_<429|503> errors\n"
            "record_id_mismatch retried unanswered duration_s rate_per_s responses p50_ms\n"
            "p90_ms p99_ms max_ms accepted (sent = accepted + rejected + backpressure +\n"
            "errors, every attempt of a reading counted; accepted counts a reading once;\n"
            "retried: requests sent again; unanswered: readings with no definitive answer).\n"
            "mqtt modes: connected (after registered); a result's error counts as the\n"
            "HTTP status it names (rejected_409 for seq_conflict, backpressure_503 for\n"
            "overloaded, an unknown name as rejected_0); latency is publish -> result;\n"
            "errors = publish_failed + puback_refused + results_missing; also results_late\n"
            "results_duplicate results_unmatched pubacks puback_p50_ms puback_p90_ms\n"
            "puback_p99_ms puback_max_ms (publish -> the broker's PUBACK, per message).\n"
            "Exit status: 0 when the run completed (even with rejections), 1 on a setup\n"
            "failure (bad options, no device registered, gateway unreachable, no device\n"
            "connected to the broker, no result at all over MQTT).\n");
}

static int s_defaults(sim_config_t *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    for (size_t i = 0; i < SIM_N_OPTS; i++) {
        const opt_row_t *o = &s_opts[i];
        const char *env = o->env ? getenv(o->env) : NULL;
        if (s_set(cfg, o, env && *env ? env : o->def) < 0)
            return -1;
    }
    return 0;
}

/* Cross-field rules and derived defaults, after every option is read. */
/* Trims trailing '/'; 0 when url is http:// or https://, else -1 (reason on stderr). */
static int s_check_url(char *url, const char *flag)
{
    size_t len = strlen(url);
    while (len > 0 && url[len - 1] == '/')
        url[--len] = '\0';
    if (strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0) {
        fprintf(stderr, "lcore-sim: --%s: '%s' is not an http:// or https:// URL\n", flag, url);
        return -1;
    }
    return 0;
}

/* The MQTT modes' own rules: a broker URL, credentials only registration gives, no --retry. */
static int s_finish_mqtt(const sim_config_t *cfg)
{
    char host[SIM_MQTT_HOST_MAX];
    int port, tls;
    if (sim_mqtt_url_parse(cfg->mqtt_url, host, &port, &tls) < 0) {
        fprintf(stderr,
                "lcore-sim: --mqtt-url: '%s' is not an mqtt://host[:port] or "
                "mqtts://host[:port] URL\n",
                cfg->mqtt_url);
        return -1;
    }
    if (cfg->no_register) {
        fprintf(stderr,
                "lcore-sim: --mode %s needs registration: a device's broker password "
                "comes only in the answer that registers it (drop --no-register)\n",
                sim_mode_name(cfg->mode));
        return -1;
    }
    if (cfg->retry) {
        fprintf(stderr, "lcore-sim: --retry is for the HTTP modes: over MQTT the broker "
                        "redelivers (QoS 1); --timeout sets how long a result may take\n");
        return -1;
    }
    return 0;
}

static int s_finish(sim_config_t *cfg)
{
    if (s_check_url(cfg->url, "url") < 0 || s_check_url(cfg->admin_url, "admin-url") < 0)
        return -1;
    if (sim_mode_is_mqtt(cfg->mode) && s_finish_mqtt(cfg) < 0)
        return -1;
    if (!sim_mode_is_mqtt(cfg->mode) && cfg->puback_ids[0]) {
        fprintf(stderr, "lcore-sim: --puback-ids is for the mqtt modes\n");
        return -1;
    }
    if (cfg->ca_file[0] && access(cfg->ca_file, R_OK) != 0) {
        fprintf(stderr, "lcore-sim: --cacert: cannot read '%s'\n", cfg->ca_file);
        return -1;
    }
    if (!cfg->no_register && !cfg->admin_token[0]) {
        fprintf(stderr, "lcore-sim: registering devices needs --admin-token or LCORE_ADMIN_TOKEN "
                        "(or use --no-register)\n");
        return -1;
    }
    if (!cfg->device_prefix[0]) {
        uint8_t rnd[4];
        randombytes_buf(rnd, sizeof rnd);
        snprintf(cfg->device_prefix, sizeof cfg->device_prefix, "sim-%02x%02x%02x%02x", rnd[0],
                 rnd[1], rnd[2], rnd[3]);
    }
    /* The longest id this run makes must be a valid device id. */
    char longest[LC_DEVICE_ID_MAX + 32];
    int n = snprintf(longest, sizeof longest, "%s-%llu", cfg->device_prefix,
                     (unsigned long long)(cfg->devices - 1));
    if (n < 0 || !lc_device_id_valid(longest, (size_t)n)) {
        fprintf(stderr,
                "lcore-sim: --device-prefix: '%s' makes invalid device ids (1..128 bytes of "
                "[A-Za-z0-9._:-])\n",
                cfg->device_prefix);
        return -1;
    }
    if (cfg->count == 0 && cfg->rate > 0 && cfg->rate * cfg->duration_s < 1) {
        fprintf(stderr, "lcore-sim: --rate x --duration offers less than one reading\n");
        return -1;
    }
    /* mqtt-batch hands out seqs a message (batch_size) at a time. */
    uint64_t per_device = sim_config_total_readings(cfg) / cfg->devices + 1 + cfg->batch_size;
    if (cfg->seq_start > UINT64_MAX - per_device) {
        fprintf(stderr, "lcore-sim: --seq-start: seq would overflow 64 bits\n");
        return -1;
    }
    return 0;
}

int sim_config_parse(sim_config_t *cfg, int argc, char **argv)
{
    if (s_defaults(cfg) < 0)
        return -1;
    struct option longopts[SIM_N_OPTS + 2];
    for (size_t i = 0; i < SIM_N_OPTS; i++) {
        longopts[i] = (struct option){s_opts[i].name,
                                      s_opts[i].type == OPT_FLAG ? no_argument : required_argument,
                                      NULL, 256 + (int)i};
    }
    longopts[SIM_N_OPTS] = (struct option){"help", no_argument, NULL, 'h'};
    longopts[SIM_N_OPTS + 1] = (struct option){NULL, 0, NULL, 0};

    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        if (c == 'h') {
            s_help(stdout);
            return 1;
        }
        if (c < 256 || c >= 256 + (int)SIM_N_OPTS) {
            fprintf(stderr, "Try 'lcore-sim --help'.\n");
            return -1;
        }
        const opt_row_t *o = &s_opts[c - 256];
        if (s_set(cfg, o, o->type == OPT_FLAG ? "1" : optarg) < 0)
            return -1;
    }
    if (optind < argc) {
        fprintf(stderr, "lcore-sim: unexpected argument '%s'. Try 'lcore-sim --help'.\n",
                argv[optind]);
        return -1;
    }
    return s_finish(cfg);
}

void sim_config_log(const sim_config_t *cfg)
{
    char line[4096];
    size_t used = 0;
    line[0] = '\0';
    for (size_t i = 0; i < SIM_N_OPTS && used < sizeof line; i++) {
        const opt_row_t *o = &s_opts[i];
        const char *field = (const char *)cfg + o->offset;
        char value[SIM_PATH_MAX + 8];
        switch (o->type) {
        case OPT_STR:
            snprintf(value, sizeof value, "%s",
                     o->secret ? (field[0] ? "<set>" : "<unset>") : (field[0] ? field : "-"));
            break;
        case OPT_U64: {
            uint64_t v;
            memcpy(&v, field, sizeof v);
            snprintf(value, sizeof value, "%llu", (unsigned long long)v);
            break;
        }
        case OPT_DBL: {
            double v;
            memcpy(&v, field, sizeof v);
            snprintf(value, sizeof value, "%g", v);
            break;
        }
        case OPT_ENUM:
        case OPT_FLAG: {
            int v;
            memcpy(&v, field, sizeof v);
            if (o->type == OPT_FLAG) {
                snprintf(value, sizeof value, "%d", v);
                break;
            }
            const char *p = o->choices;
            for (int k = 0; k < v && p; k++) {
                p = strchr(p, '|');
                p = p ? p + 1 : NULL;
            }
            size_t len = p ? strcspn(p, "|") : 0;
            snprintf(value, sizeof value, "%.*s", (int)len, p ? p : "");
            break;
        }
        }
        char key[32];
        snprintf(key, sizeof key, "%s", o->name);
        for (char *k = key; *k; k++)
            *k = *k == '-' ? '_' : *k; /* log keys are snake_case */
        int n = snprintf(line + used, sizeof line - used, "%s%s=%s", used ? " " : "", key, value);
        if (n > 0)
            used += (size_t)n;
    }
    lc_info("config", "%s", line);
}

uint64_t sim_config_total_readings(const sim_config_t *cfg)
{
    if (cfg->count > 0)
        return cfg->count;
    double total = cfg->rate > 0 ? ceil(cfg->rate * cfg->duration_s)
                                 : cfg->duration_s * SIM_UNPACED_RATE_GUESS;
    if (cfg->rate <= 0 && total > SIM_UNPACED_MAX)
        total = SIM_UNPACED_MAX;
    return total < 1 ? 1 : (uint64_t)total;
}
