/* sim_config.h: lcore-sim's command-line options. One table (in sim_config.c) drives getopt_long,
 * defaults, validation, `--help` and the start-up dump; main() is the only caller. */
#ifndef SIM_CONFIG_H
#define SIM_CONFIG_H

#include <stdint.h>

#include "sim_devices.h"
#include "sim_readings.h"

#define SIM_URL_MAX 512
#define SIM_TOKEN_MAX 256
#define SIM_PREFIX_MAX 96 /* leaves room for "-<index>" within LC_DEVICE_ID_MAX */
#define SIM_PATH_MAX 1024

typedef struct {
    char url[SIM_URL_MAX];           /* gateway device listener base URL, no trailing '/' */
    char admin_url[SIM_URL_MAX];     /* gateway admin listener (operator API), no trailing '/' */
    char mqtt_url[SIM_URL_MAX];      /* broker, mqtt:// or mqtts:// (mqtt modes) */
    char ca_file[SIM_PATH_MAX];      /* CA certificates for https URLs; empty: the system's */
    char admin_token[SIM_TOKEN_MAX]; /* operator token for POST /v1/devices */
    uint64_t devices;
    double duration_s;
    uint64_t count; /* total readings; 0 = run for duration_s */
    double rate;    /* readings/s offered; 0 = as fast as possible */
    uint64_t concurrency;
    int mode; /* sim_mode_t */
    uint64_t batch_size;
    int alg; /* sim_alg_mode_t */
    uint64_t payload_bytes;
    char device_prefix[SIM_PREFIX_MAX];
    uint64_t seq_start;
    int no_register;
    char record_ids[SIM_PATH_MAX]; /* empty: do not write record ids */
    char puback_ids[SIM_PATH_MAX]; /* mqtt modes: ids of readings the broker PUBACKed */
    int quiet;
    int progress;       /* "progress t=..." lines on stdout */
    double timeout_s;   /* per request; mqtt modes: per result, and to connect */
    int retry;          /* send again what got no definitive answer */
    double retry_for_s; /* how long after the paced load retries may go on */
} sim_config_t;

/* Fills cfg from the defaults, the environment (LCORE_GATEWAY_URL, LCORE_GATEWAY_ADMIN_URL,
 * LCORE_MQTT_URL, LCORE_CA_FILE, LCORE_ADMIN_TOKEN) and argv.
 * Returns 0 to go on, 1 when help was printed (exit 0), -1 on a bad option (reason on stderr). */
int sim_config_parse(sim_config_t *cfg, int argc, char **argv);

/* Logs the effective configuration as one key=value line (the token shown as "<set>"). */
void sim_config_log(const sim_config_t *cfg);

/* How many readings to pre-sign: --count, or what --rate offers over --duration. With --rate 0
 * and no --count the total is a bounded estimate (SIM_UNPACED_RATE_GUESS in sim_config.c). */
uint64_t sim_config_total_readings(const sim_config_t *cfg);

#endif
