/* sim_mqtt.h: the MQTT modes (--mode mqtt|mqtt-batch): the simulated devices as MQTT 5 clients
 * of the broker (DESIGN.md "MQTT ingest"). Each device has its own connection, as itself
 * (username = its device id, the password from its registration answer: the broker's ACL lets a
 * device publish only its own topics), clean start, subscribed to lcore/v1/<device_id>/result
 * before it publishes anything. The timed phase publishes the pre-signed readings with QoS 1 to
 * lcore/v1/<device_id>/data (one JWS) or .../batch (one JWS a line), paced like the HTTP modes,
 * with up to `concurrency` messages awaiting their result across devices and, per device, no more
 * awaiting their PUBACK than the broker's receive maximum. sim_track matches the results.
 * One thread drives every connection (epoll over the clients' sockets, libmosquitto's
 * loop_read/loop_write/loop_misc): no thread per device, so the load generator's CPU stays small
 * next to what it measures. Called by main() and sim_config (URL check). */
#ifndef SIM_MQTT_H
#define SIM_MQTT_H

#include <signal.h>
#include <stddef.h>
#include <stdio.h>

#include "lc_common.h"
#include "sim_devices.h"
#include "sim_readings.h"
#include "sim_stats.h"

#define SIM_MQTT_HOST_MAX 256

typedef struct sim_mqtt sim_mqtt_t;

/* Splits mqtt://host[:port] or mqtts://host[:port] (IPv6 as [addr]; default ports 1883, 8883).
 * Returns 0, or -1 when url is not such a URL. */
int sim_mqtt_url_parse(const char *url, char host[SIM_MQTT_HOST_MAX], int *port, int *tls);

/* Makes one client per device (credentials from sim_devices, which may wipe its copies once this
 * returns), connects them all and waits until each is subscribed to its result topic or has
 * failed (logged, counted), at most timeout_s. ca_file: mqtts, the PEM CA to verify the broker
 * with (NULL or "": the system's). NULL when no device could connect, or on error (logged). */
sim_mqtt_t *sim_mqtt_new(const sim_devices_t *devices, const char *url, const char *ca_file,
                         double timeout_s, const volatile sig_atomic_t *stop);
/* NULL-safe; disconnects every client. */
void sim_mqtt_destroy(sim_mqtt_t **self_p);

/* Devices subscribed and ready when the load started. */
size_t sim_mqtt_connected(const sim_mqtt_t *self);

typedef struct {
    double rate;          /* readings per second; 0 = unpaced */
    double duration_s;    /* stop publishing after this long; 0 = until every reading is sent */
    unsigned concurrency; /* messages awaiting their result, across devices */
    double timeout_s;     /* how long a reading waits for its result */
    FILE *record_ids;     /* borrowed; NULL = do not write (see sim_ids.h) */
    FILE *puback_ids;     /* borrowed; ids of the readings the broker acknowledged; NULL: none */
    int quiet;            /* no progress lines on stderr */
    int progress;         /* a "progress t=..." line on stdout every second */
    const volatile sig_atomic_t *stop; /* stop publishing, wait for what is in flight */
} sim_mqtt_run_t;

/* Publishes the readings (readings must be built for the devices given to sim_mqtt_new, in an
 * MQTT mode) and waits for every result or its timeout. *duration_s receives the time from the
 * first publish to the last PUBACK or result. Returns 0 or a negative error code (setup failure;
 * outcomes are in stats). */
int sim_mqtt_run(sim_mqtt_t *self, const sim_readings_t *readings, sim_stats_t *stats,
                 const sim_mqtt_run_t *run, double *duration_s) LC_WUR;

#endif
