/* gw_dynsec.h: devices' broker identities (DESIGN.md "MQTT ingest": no anonymous access). The
 * broker is the enforcer: for each registered device, Mosquitto's dynamic-security plugin holds
 * a client (username = device_id, a generated password it keeps as a salted hash, and the MQTT
 * client id the device must connect with, its device_id too: no device can take over another
 * client's session) and a role "lcore-device-<device_id>" whose ACLs let it publish to
 * lcore/v1/<device_id>/data and /batch only, and subscribe to (and receive)
 * lcore/v1/<device_id>/result and /response/# only. Device ids beginning "lcore-gw-" (the
 * gateways' own users and client ids) get no broker identity.
 *
 * The gateway administers them over MQTT as its own broker user (LCORE_GATEWAY_MQTT_USERNAME,
 * whose role may publish to $CONTROL/dynamic-security/# and subscribe to, and receive,
 * $CONTROL/dynamic-security/v1/response): one connection kept open by an actor thread
 * (reconnecting with backoff), one command set in flight at a time, each command tagged with a
 * correlationData the plugin echoes (its answers go to every subscriber of the response topic,
 * other gateways included).
 *
 * Owned by main (created when LCORE_GATEWAY_MQTT_URL is set, destroyed after gw_http); the calls
 * run on the HTTP threads (gw_operator: registration, revoke, reactivate). Each waits at most the
 * timeout, the connection included. Counted in lcore_gateway_broker_provisioning_total{action,
 * result}; the control connection's state in lcore_gateway_broker_control_connected. */
#ifndef GW_DYNSEC_H
#define GW_DYNSEC_H

#include "lc_common.h"
#include "lc_metrics.h"

typedef struct gw_dynsec gw_dynsec_t;

#define GW_DYNSEC_PASSWORD_LEN 64 /* 32 random bytes, hex */

typedef struct {
    const char *url;      /* the broker: mqtt:// or mqtts://host[:port] (LCORE_GATEWAY_MQTT_URL) */
    const char *ca_file;  /* mqtts: the PEM CA the broker is verified against */
    const char *username; /* this gateway's broker user (LCORE_GATEWAY_MQTT_USERNAME) */
    const char *password_file; /* its password, first line (read here; the copy here wiped) */
    const char *client_id;     /* the control connection's MQTT client id (unique per gateway) */
    int timeout_ms;            /* how long a call waits for the broker (3000 if 0) */
    lc_metrics_t *metrics;     /* borrowed */
} gw_dynsec_opts_t;

/* Checks the options, reads the password and starts connecting (in the background: the broker
 * may come later). NULL on error (logged): a bad URL, an unreadable password file. */
gw_dynsec_t *gw_dynsec_new(const gw_dynsec_opts_t *opts);
/* Disconnects and stops the actor. NULL-safe; no call may be running (gw_http goes first). */
void gw_dynsec_destroy(gw_dynsec_t **self_p);

/* Without provisioning (no LCORE_GATEWAY_MQTT_URL): the same metric series, all 0, so that every
 * gateway exports the same names whatever its configuration. */
void gw_dynsec_metrics_off(lc_metrics_t *metrics);

/* What the store says of the device being provisioned. */
enum {
    GW_DYNSEC_NEW = 1,     /* just registered (201): a broker identity of that name is a leftover
                              nobody was shown a password of, and gets a new one */
    GW_DYNSEC_REVOKED = 2, /* revoked: its identity is (created and) disabled */
};

/* Makes sure the device has its broker identity: role, ACLs, client, enabled unless revoked.
 * When it creates the client (or resets a leftover one, GW_DYNSEC_NEW) *created is 1 and
 * password holds the new password: the caller shows it once, then wipes it (sodium_memzero).
 * Otherwise *created is 0, password is "" and the existing password is left as it is (an
 * idempotent re-registration). Thread-safe. 0, or:
 *   LC_ERR_UNAVAILABLE  not connected to the broker within the timeout (nothing changed)
 *   LC_ERR_TIMEOUT      the plugin did not answer in time; a client this call may have created
 *                       is deleted again (best effort, logged), so that a retry makes a new one
 *   LC_ERR_IO           the plugin refused a command (logged with its error) */
int gw_dynsec_provision(gw_dynsec_t *self, const char *device_id, unsigned flags,
                        char password[GW_DYNSEC_PASSWORD_LEN + 1], int *created) LC_WUR;

/* disableClient: the broker refuses the device's logins and disconnects its sessions at once.
 * enableClient: it may log in again. 0, LC_ERR_NOTFOUND (no broker identity), or as above. */
int gw_dynsec_disable(gw_dynsec_t *self, const char *device_id) LC_WUR;
int gw_dynsec_enable(gw_dynsec_t *self, const char *device_id) LC_WUR;

#endif
