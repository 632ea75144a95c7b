/* sim_devices.h: the simulated devices: their ids, algorithms and key pairs, their registration
 * with the gateway (POST /v1/devices) and, for the MQTT modes, the broker credentials the
 * registration answer carries (shown once). Secret keys and broker passwords stay inside this
 * module, in guarded memory, until wiped or destroy. Called by main(), sim_readings, sim_mqtt. */
#ifndef SIM_DEVICES_H
#define SIM_DEVICES_H

#include <signal.h>
#include <stddef.h>

#include "lc_jws.h"
#include "sim_pool.h"

typedef enum { SIM_ALG_EDDSA = 0, SIM_ALG_ES256K = 1, SIM_ALG_MIXED = 2 } sim_alg_mode_t;

typedef struct sim_devices sim_devices_t;

/* Creates n devices "<prefix>-<index>" with fresh key pairs. With SIM_ALG_MIXED even indexes use
 * EdDSA and odd ones ES256K. NULL on error (logged). */
sim_devices_t *sim_devices_new(const char *prefix, size_t n, sim_alg_mode_t alg);
/* NULL-safe; wipes the secret keys. */
void sim_devices_destroy(sim_devices_t **self_p);

/* Registers every device (201 created or 200 identical registration exists count as success).
 * With want_mqtt only a 201 whose answer carries "mqtt": {"username", "password"} counts: the
 * broker password is shown once, so a device that already existed (200) cannot be used.
 * Devices that could not be registered are logged, counted and dropped from the set.
 * Returns the number registered (>= 0) or a negative error code. */
long sim_devices_register(sim_devices_t *self, sim_pool_t *pool, const char *admin_token,
                          int want_mqtt, const volatile sig_atomic_t *stop);
/* Devices whose registration failed in the last sim_devices_register(). */
size_t sim_devices_register_failures(const sim_devices_t *self);

size_t sim_devices_count(const sim_devices_t *self);
const char *sim_devices_id(const sim_devices_t *self, size_t i);
size_t sim_devices_id_len(const sim_devices_t *self, size_t i);
lc_alg_t sim_devices_alg(const sim_devices_t *self, size_t i);

/* Signs payload as device i (kid = device id). Safe to call from several threads at once.
 * Returns a malloc'd compact JWS (caller frees) or NULL. */
char *sim_devices_sign(const sim_devices_t *self, size_t i, const uint8_t *payload,
                       size_t payload_len);

/* Wipes and frees the secret keys once everything is signed; signing fails afterwards. */
void sim_devices_wipe_keys(sim_devices_t *self);

/* Device i's broker username and password from its registration answer (want_mqtt); NULL
 * without them or once wiped. The password is borrowed guarded memory: copy it nowhere else. */
const char *sim_devices_mqtt_username(const sim_devices_t *self, size_t i);
const char *sim_devices_mqtt_password(const sim_devices_t *self, size_t i);
/* Wipes and frees the broker passwords once the MQTT clients hold them. */
void sim_devices_wipe_mqtt(sim_devices_t *self);

#endif
