/* lcore-sim: device simulator and load generator.
 * options -> devices and keys -> register -> pre-sign -> [connect to the broker] -> timed send
 * (HTTP: sim_load over sim_pool; MQTT: sim_mqtt) -> report, then clean up in reverse.
 * Exit 0 when the run completed (whatever the gateway answered), 1 on a setup failure. */
#include <curl/curl.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lc_log.h"
#include "sim_config.h"
#include "sim_devices.h"
#include "sim_ids.h"
#include "sim_load.h"
#include "sim_mqtt.h"
#include "sim_pool.h"
#include "sim_readings.h"
#include "sim_stats.h"

/* Set by SIGINT/SIGTERM: stop sending, wait for what is in flight, report. */
static volatile sig_atomic_t s_stop;

static void s_on_signal(int sig)
{
    (void)sig;
    s_stop = 1;
}

static void s_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = s_on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sa.sa_handler = SIG_IGN; /* a gateway closing a connection must not kill us */
    sigaction(SIGPIPE, &sa, NULL);
}

/* --quiet also quiets the info lines (only warnings and errors remain). */
static void s_log_init(int quiet)
{
    lc_log_level_t level = quiet ? LC_LOG_WARN : LC_LOG_INFO;
    const char *env = getenv("LCORE_LOG_LEVEL");
    if (env && *env && lc_log_level_parse(env, &level) < 0)
        level = quiet ? LC_LOG_WARN : LC_LOG_INFO;
    lc_log_init("sim", level);
}

/* The summary on stdout: key=value lines, the last one exactly accepted=<n>. */
static void s_report(const sim_config_t *cfg, const sim_devices_t *devices, long registered,
                     long connected, const sim_stats_t *stats, double duration_s)
{
    static const char *const alg_names[] = {"EdDSA", "ES256K", "mixed"};
    printf("mode=%s\n", sim_mode_name(cfg->mode));
    printf("alg=%s\n", alg_names[cfg->alg]);
    printf("devices=%zu\n", sim_devices_count(devices));
    if (registered >= 0) {
        printf("registered=%ld\n", registered);
        printf("register_failed=%zu\n", sim_devices_register_failures(devices));
    }
    if (connected >= 0)
        printf("connected=%ld\n", connected);
    sim_stats_report(stats, stdout, duration_s);
    fflush(stdout);
}

/* Registration is the operator API: the gateway's admin listener, not the device one.
 * Returns the number of devices registered (> 0), or <= 0 when none could be (logged). */
static long s_register(const sim_config_t *cfg, sim_devices_t *devices)
{
    sim_pool_t *admin_pool =
        sim_pool_new(cfg->admin_url, (unsigned)cfg->concurrency, cfg->timeout_s, cfg->ca_file);
    if (!admin_pool)
        return -1;
    long registered = sim_devices_register(devices, admin_pool, cfg->admin_token,
                                           sim_mode_is_mqtt(cfg->mode), &s_stop);
    sim_pool_destroy(&admin_pool);
    if (registered <= 0)
        lc_error("no_device_registered", "admin_url=%s devices=%llu", cfg->admin_url,
                 (unsigned long long)cfg->devices);
    return registered;
}

static sim_readings_t *s_presign(const sim_config_t *cfg, sim_devices_t *devices)
{
    sim_readings_opts_t ropts = {
        .mode = cfg->mode,
        .count = sim_config_total_readings(cfg),
        .batch_size = (uint32_t)cfg->batch_size,
        .payload_bytes = (size_t)cfg->payload_bytes,
        .seq_start = cfg->seq_start,
    };
    sim_readings_t *readings = sim_readings_new(devices, &ropts);
    /* Everything is signed: the keys have no further use. */
    sim_devices_wipe_keys(devices);
    return readings;
}

/* The timed phase over HTTP. */
static int s_send_http(const sim_config_t *cfg, const sim_readings_t *readings, sim_stats_t *stats,
                       FILE *record_ids, double *duration_s)
{
    sim_pool_t *pool =
        sim_pool_new(cfg->url, (unsigned)cfg->concurrency, cfg->timeout_s, cfg->ca_file);
    if (!pool)
        return LC_ERR_NOMEM;
    sim_load_opts_t lopts = {
        .mode = cfg->mode,
        .rate = cfg->rate,
        .duration_s = cfg->count ? 0 : cfg->duration_s,
        .record_ids = record_ids,
        .quiet = cfg->quiet,
        .progress = cfg->progress,
        .retry = cfg->retry,
        .retry_for_s = cfg->retry_for_s,
        .stop = &s_stop,
    };
    int rc = sim_load_run(pool, readings, stats, &lopts, duration_s);
    sim_pool_destroy(&pool);
    return rc;
}

/* The timed phase over MQTT, on connections made once everything is signed. */
static int s_send_mqtt(const sim_config_t *cfg, sim_devices_t *devices,
                       const sim_readings_t *readings, sim_stats_t *stats, FILE *record_ids,
                       FILE *puback_ids, long *connected, double *duration_s)
{
    sim_mqtt_t *mqtt = sim_mqtt_new(devices, cfg->mqtt_url, cfg->ca_file, cfg->timeout_s, &s_stop);
    /* The clients hold the broker passwords now: ours have no further use. */
    sim_devices_wipe_mqtt(devices);
    if (!mqtt)
        return LC_ERR_INVALID;
    *connected = (long)sim_mqtt_connected(mqtt);
    sim_mqtt_run_t run = {
        .rate = cfg->rate,
        .duration_s = cfg->count ? 0 : cfg->duration_s,
        .concurrency = (unsigned)cfg->concurrency,
        .timeout_s = cfg->timeout_s,
        .record_ids = record_ids,
        .puback_ids = puback_ids,
        .quiet = cfg->quiet,
        .progress = cfg->progress,
        .stop = &s_stop,
    };
    int rc = sim_mqtt_run(mqtt, readings, stats, &run, duration_s);
    sim_mqtt_destroy(&mqtt);
    return rc;
}

/* After the report: a run that got no answer at all had nothing to talk to (setup failure). */
static int s_check_answered(const sim_config_t *cfg, const sim_stats_t *stats)
{
    if (sim_stats_replies(stats) > 0 || sim_stats_errors(stats) == 0)
        return 0;
    if (sim_mode_is_mqtt(cfg->mode))
        lc_error("no_results", "mqtt_url=%s hint=\"is a gateway subscribed to the data topics?\"",
                 cfg->mqtt_url);
    else
        lc_error("gateway_unreachable", "url=%s", cfg->url);
    return -1;
}

int main(int argc, char **argv)
{
    sim_config_t cfg;
    if (sodium_init() < 0) {
        fprintf(stderr, "lcore-sim: libsodium failed to initialise\n");
        return 1;
    }
    int rc = sim_config_parse(&cfg, argc, argv);
    if (rc != 0)
        return rc > 0 ? 0 : 1;
    s_log_init(cfg.quiet);
    sim_config_log(&cfg);
    s_signals();
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        lc_error("curl_init_failed", NULL);
        return 1;
    }

    int exit_code = 1;
    FILE *record_ids = NULL, *puback_ids = NULL;
    sim_devices_t *devices = NULL;
    sim_readings_t *readings = NULL;
    sim_stats_t *stats = NULL;
    long registered = -1, connected = -1;
    double duration_s = 0;

    if (cfg.record_ids[0] && !(record_ids = fopen(cfg.record_ids, "a"))) {
        lc_error("record_ids_open_failed", "path=%s", cfg.record_ids);
        goto out;
    }
    /* sim_ids flushes whole lines before this buffer fills: readers never see half an id. */
    if (record_ids)
        setvbuf(record_ids, NULL, _IOFBF, SIM_IDS_BUFSIZE);
    if (cfg.puback_ids[0] && !(puback_ids = fopen(cfg.puback_ids, "a"))) {
        lc_error("puback_ids_open_failed", "path=%s", cfg.puback_ids);
        goto out;
    }
    if (puback_ids)
        setvbuf(puback_ids, NULL, _IOFBF, SIM_IDS_BUFSIZE);
    if (!(devices = sim_devices_new(cfg.device_prefix, (size_t)cfg.devices, cfg.alg)))
        goto out;
    if (!cfg.no_register && (registered = s_register(&cfg, devices)) <= 0)
        goto out;
    if (!(readings = s_presign(&cfg, devices)) ||
        !(stats = sim_stats_new(sim_mode_is_mqtt(cfg.mode))))
        goto out;
    rc = sim_mode_is_mqtt(cfg.mode) ? s_send_mqtt(&cfg, devices, readings, stats, record_ids,
                                                  puback_ids, &connected, &duration_s)
                                    : s_send_http(&cfg, readings, stats, record_ids, &duration_s);
    if (rc < 0)
        goto out;
    if (s_stop)
        lc_warn("interrupted", "reason=signal elapsed_s=%.3f", duration_s);
    else if (cfg.count == 0 && cfg.rate <= 0 && duration_s + 0.5 < cfg.duration_s)
        lc_warn("presigned_exhausted",
                "readings=%llu elapsed_s=%.3f hint=\"use --count or --rate\"",
                (unsigned long long)sim_readings_count(readings), duration_s);
    s_report(&cfg, devices, registered, connected, stats, duration_s);

    if (record_ids && (fflush(record_ids) != 0 || ferror(record_ids))) {
        lc_error("record_ids_write_failed", "path=%s", cfg.record_ids);
        goto out;
    }
    if (puback_ids && (fflush(puback_ids) != 0 || ferror(puback_ids))) {
        lc_error("puback_ids_write_failed", "path=%s", cfg.puback_ids);
        goto out;
    }
    if (s_check_answered(&cfg, stats) == 0)
        exit_code = 0;
out:
    sim_stats_destroy(&stats);
    sim_readings_destroy(&readings);
    sim_devices_destroy(&devices);
    if (record_ids)
        fclose(record_ids);
    if (puback_ids)
        fclose(puback_ids);
    curl_global_cleanup();
    return exit_code;
}
