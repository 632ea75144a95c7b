/* gw_mqtt.h: the gateway's MQTT ingest (DESIGN.md "MQTT ingest"; docs/ARCHITECTURE.md).
 *
 * One thread owns the broker connection (lc_mqtt): it subscribes to
 * $share/lcore/lcore/v1/+/data and $share/lcore/lcore/v1/+/batch at QoS 1 in a persistent
 * session, and runs every reading of a message through the same path as POST /v1/data
 * (gw_ingest_check, gw_ingest_accept: same checks, codes, log and group commit). A message is
 * acknowledged (PUBACK) once every reading in it is durable in the log or definitively refused;
 * its results go to lcore/v1/<device_id>/result (and to the MQTT 5 response topic, when it is
 * the device's own). A reading that fails for a transient reason (503) keeps its message
 * unacknowledged in the window and is retried here with backoff: MQTT 5 brokers resend only on
 * reconnection. The log's relay thread says when an entry is durable (gw_wal_notify): its
 * callback only queues the message and wakes this thread; no other thread touches the socket.
 *
 * Created by main after the relay (it needs the log and gw_ingest), destroyed before them. */
#ifndef GW_MQTT_H
#define GW_MQTT_H

#include "gw_config.h"
#include "gw_ingest.h"

typedef struct gw_mqtt gw_mqtt_t;

typedef struct {
    /* mqtt_*, gateway_id, max_reading_bytes, max_request_batch_bytes, body_budget_bytes (the
     * bytes of messages held), drain_ms; borrowed, must outlive the ingest */
    const gw_config_t *cfg;
    gw_ingest_t *ingest;
    gw_wal_t *wal;
    lc_metrics_t *metrics;
} gw_mqtt_deps_t;

/* Reads the password file (wiped once handed to lc_mqtt) and starts the thread, which connects
 * and reconnects (100 ms doubling to 5 s) on its own. NULL on error (logged). */
gw_mqtt_t *gw_mqtt_new(const gw_mqtt_deps_t *deps);

/* Stops reading, acknowledges what becomes durable within cfg->drain_ms, publishes those
 * results, sends DISCONNECT and stops the thread. What is still unacknowledged stays with the
 * broker's session (resent to this gateway's next connection, or to another gateway of the
 * group). NULL-safe. */
void gw_mqtt_destroy(gw_mqtt_t **self_p);

/* MQTT is not configured: its metrics are exported all the same (zero, connected 0), so the
 * dashboards and alerts find every series whatever the configuration. */
void gw_mqtt_export_off(lc_metrics_t *metrics);

/* 1 while connected and subscribed (readiness). Thread-safe. */
int gw_mqtt_connected(const gw_mqtt_t *self);

/* Parses "mqtt://host:port" or "mqtts://host:port" (TLS: *tls = 1) into host and port; the
 * port is 1883 (mqtt) or 8883 (mqtts) when none is given; host may be [IPv6]. 0, or
 * LC_ERR_INVALID (another scheme, credentials, a path, a bad port). Pure. */
int gw_mqtt_url_parse(const char *url, char *host, size_t host_cap, char *port, size_t port_cap,
                      int *tls) LC_WUR;

#endif
