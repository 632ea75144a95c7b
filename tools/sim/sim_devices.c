/* sim_devices.c: simulated device identities, keys and registration. See sim_devices.h.
 * All secret keys live in one sodium_malloc'd arena (guard pages, read-only once generated,
 * wiped by sodium_free), the broker passwords in another; devices refer to theirs by slot, so
 * dropping unregistered devices never moves secret material. */
#include "sim_devices.h"

#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lc_codec.h"
#include "lc_log.h"
#include "lc_record.h"

#define SIM_KEY_SLOT 64         /* max(LC_ED25519_SK_LEN, LC_SECP256K1_SK_LEN) */
#define SIM_PK_MAX 65           /* uncompressed secp256k1 is the longest public key */
#define SIM_REGISTER_LOG_MAX 10 /* failures logged one by one; the rest only counted */
#define SIM_MQTT_PW_SLOT 256    /* one broker password, NUL-terminated */

typedef struct {
    char id[LC_DEVICE_ID_MAX + 1];
    size_t id_len;
    lc_alg_t alg;
    uint8_t pk[SIM_PK_MAX];
    size_t pk_len;
    size_t sk_len;
    size_t slot; /* index of the secret key (and broker password) in the arenas */
    int registered;
    char mqtt_username[LC_DEVICE_ID_MAX + 1]; /* "" without broker credentials */
} device_t;

struct sim_devices {
    device_t *devices;
    size_t n;
    uint8_t *keys; /* sodium_malloc: n_slots * SIM_KEY_SLOT */
    size_t n_slots;
    size_t failures;
    size_t failures_logged;
    uint64_t failures_by_status[600]; /* [0]: transport errors */
    int want_mqtt;
    char *mqtt_pw; /* sodium_malloc: n_slots * SIM_MQTT_PW_SLOT; read-only after registration */
};

sim_devices_t *sim_devices_new(const char *prefix, size_t n, sim_alg_mode_t alg)
{
    sim_devices_t *self = calloc(1, sizeof *self);
    if (!self || n == 0)
        goto fail;
    self->devices = calloc(n, sizeof *self->devices);
    self->keys = sodium_malloc(n * SIM_KEY_SLOT);
    if (!self->devices || !self->keys)
        goto fail;
    self->n = n;
    self->n_slots = n;
    for (size_t i = 0; i < n; i++) {
        device_t *d = &self->devices[i];
        int len = snprintf(d->id, sizeof d->id, "%s-%zu", prefix, i);
        if (len < 0 || (size_t)len >= sizeof d->id || !lc_device_id_valid(d->id, (size_t)len)) {
            lc_error("device_id_invalid", "prefix=%s", prefix);
            goto fail;
        }
        d->id_len = (size_t)len;
        d->alg = alg == SIM_ALG_ES256K || (alg == SIM_ALG_MIXED && i % 2 == 1) ? LC_ALG_ES256K
                                                                               : LC_ALG_EDDSA;
        d->slot = i;
        d->sk_len = SIM_KEY_SLOT;
        d->pk_len = sizeof d->pk;
        if (lc_keypair_generate(d->alg, self->keys + i * SIM_KEY_SLOT, &d->sk_len, d->pk,
                                &d->pk_len) < 0) {
            lc_error("keygen_failed", "alg=%s", lc_alg_name(d->alg));
            goto fail;
        }
    }
    /* Signing only reads the keys from here on; catch any stray write. */
    sodium_mprotect_readonly(self->keys);
    return self;
fail:
    sim_devices_destroy(&self);
    return NULL;
}

void sim_devices_destroy(sim_devices_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    sim_devices_t *self = *self_p;
    sim_devices_wipe_keys(self);
    sim_devices_wipe_mqtt(self);
    free(self->devices);
    free(self);
    *self_p = NULL;
}

void sim_devices_wipe_keys(sim_devices_t *self)
{
    if (!self->keys)
        return;
    sodium_mprotect_readwrite(self->keys);
    sodium_memzero(self->keys, self->n_slots * SIM_KEY_SLOT);
    sodium_free(self->keys); /* wipes again; explicit above for readers */
    self->keys = NULL;
}

void sim_devices_wipe_mqtt(sim_devices_t *self)
{
    if (!self->mqtt_pw)
        return;
    sodium_mprotect_readwrite(self->mqtt_pw);
    sodium_memzero(self->mqtt_pw, self->n_slots * SIM_MQTT_PW_SLOT);
    sodium_free(self->mqtt_pw);
    self->mqtt_pw = NULL;
}

const char *sim_devices_mqtt_username(const sim_devices_t *self, size_t i)
{
    const device_t *d = &self->devices[i];
    return self->mqtt_pw && d->mqtt_username[0] ? d->mqtt_username : NULL;
}

const char *sim_devices_mqtt_password(const sim_devices_t *self, size_t i)
{
    const device_t *d = &self->devices[i];
    return self->mqtt_pw && d->mqtt_username[0] ? self->mqtt_pw + d->slot * SIM_MQTT_PW_SLOT : NULL;
}

size_t sim_devices_count(const sim_devices_t *self)
{
    return self->n;
}

const char *sim_devices_id(const sim_devices_t *self, size_t i)
{
    return self->devices[i].id;
}

size_t sim_devices_id_len(const sim_devices_t *self, size_t i)
{
    return self->devices[i].id_len;
}

lc_alg_t sim_devices_alg(const sim_devices_t *self, size_t i)
{
    return self->devices[i].alg;
}

size_t sim_devices_register_failures(const sim_devices_t *self)
{
    return self->failures;
}

char *sim_devices_sign(const sim_devices_t *self, size_t i, const uint8_t *payload,
                       size_t payload_len)
{
    if (!self->keys)
        return NULL;
    const device_t *d = &self->devices[i];
    return lc_jws_sign(d->alg, d->id, payload, payload_len, self->keys + d->slot * SIM_KEY_SLOT,
                       d->sk_len);
}

/* ---- registration ---- */

typedef struct {
    sim_devices_t *self;
} register_ctx_t;

/* Takes the broker credentials out of a 201 answer: {"mqtt": {"username", "password"}}.
 * Returns 0, or -1 when they are missing or unusable. */
static int s_take_mqtt(sim_devices_t *self, device_t *d, const sim_reply_t *r)
{
    int rc = -1;
    json_t *root = json_loadb(r->body, r->body_len, 0, NULL);
    json_t *mqtt = root ? json_object_get(root, "mqtt") : NULL;
    json_t *user = mqtt ? json_object_get(mqtt, "username") : NULL;
    json_t *pw = mqtt ? json_object_get(mqtt, "password") : NULL;
    if (!json_is_string(user) || !json_is_string(pw))
        goto out;
    size_t user_len = json_string_length(user), pw_len = json_string_length(pw);
    if (user_len == 0 || user_len >= sizeof d->mqtt_username || pw_len == 0 ||
        pw_len >= SIM_MQTT_PW_SLOT || strlen(json_string_value(pw)) != pw_len)
        goto out;
    memcpy(d->mqtt_username, json_string_value(user), user_len + 1);
    memcpy(self->mqtt_pw + d->slot * SIM_MQTT_PW_SLOT, json_string_value(pw), pw_len + 1);
    rc = 0;
out:
    /* jansson's copy of the password is plain heap: wipe it before it is freed. */
    if (json_is_string(pw))
        sodium_memzero((char *)json_string_value(pw), json_string_length(pw));
    json_decref(root);
    return rc;
}

static void s_register_failed(sim_devices_t *self, const device_t *d, const sim_reply_t *r)
{
    self->failures++;
    self->failures_by_status[r->status > 0 && r->status < 600 ? r->status : 0]++;
    if (self->failures_logged >= SIM_REGISTER_LOG_MAX)
        return;
    self->failures_logged++;
    if (r->status == 0) {
        lc_warn("register_failed", "device_id=%s error=\"%s\"", d->id, r->error);
        return;
    }
    if (r->status == 200 || r->status == 201) { /* only with want_mqtt */
        lc_warn("register_failed", "device_id=%s status=%ld error=%s", d->id, r->status,
                r->status == 200 ? "exists_no_mqtt_password" : "no_mqtt_credentials");
        return;
    }
    /* Log the error code the gateway gave, never the whole body. */
    const char *code = "-";
    json_t *root = json_loadb(r->body, r->body_len, 0, NULL);
    json_t *err = root ? json_object_get(root, "error") : NULL;
    if (json_is_string(err))
        code = json_string_value(err);
    /* code comes from the server: log only its leading [a-z0-9_] characters */
    lc_warn("register_failed", "device_id=%s status=%ld error=%.*s", d->id, r->status,
            (int)strspn(code, "abcdefghijklmnopqrstuvwxyz0123456789_-"), code);
    json_decref(root);
}

/* Registration is never retried: a device that failed is left out of the run. */
static int s_register_reply(void *ctx, size_t job, const sim_reply_t *r)
{
    sim_devices_t *self = ((register_ctx_t *)ctx)->self;
    device_t *d = &self->devices[job];
    int ok = self->want_mqtt ? r->status == 201 && s_take_mqtt(self, d, r) == 0
                             : r->status == 200 || r->status == 201;
    if (ok)
        d->registered = 1;
    else
        s_register_failed(self, d, r);
    return 0;
}

/* With want_mqtt a 200 or a 201 without credentials leaves a device unusable: say why once. */
static void s_explain_mqtt_failures(const sim_devices_t *self)
{
    if (self->failures_by_status[200])
        lc_error("mqtt_password_unavailable",
                 "devices=%llu reason=\"already registered: a device's broker password is shown "
                 "only once, in the 201 answer that created it\" hint=\"use a new "
                 "--device-prefix\"",
                 (unsigned long long)self->failures_by_status[200]);
    if (self->failures_by_status[201])
        lc_error("mqtt_credentials_missing",
                 "devices=%llu reason=\"the registration answer has no usable mqtt object "
                 "{username, password}\" hint=\"does this gateway provision broker "
                 "credentials?\"",
                 (unsigned long long)self->failures_by_status[201]);
}

/* One POST /v1/devices body per device (bodies[i] malloc'd; jobs[i] points at it). */
static int s_register_bodies(sim_devices_t *self, char **bodies, sim_job_t *jobs)
{
    for (size_t i = 0; i < self->n; i++) {
        device_t *d = &self->devices[i];
        char pk_hex[LC_HEX_LEN(SIM_PK_MAX) + 1];
        if (lc_hex_encode(pk_hex, sizeof pk_hex, d->pk, d->pk_len) < 0)
            return LC_ERR_INVALID;
        /* device ids are [A-Za-z0-9._:-]: nothing to escape */
        int len =
            asprintf(&bodies[i], "{\"device_id\":\"%s\",\"alg\":\"%s\",\"public_key\":\"%s\"}",
                     d->id, lc_alg_name(d->alg), pk_hex);
        if (len < 0) {
            bodies[i] = NULL;
            return LC_ERR_NOMEM;
        }
        jobs[i] = (sim_job_t){.body = bodies[i], .body_len = (size_t)len, .units = 1};
        d->registered = 0;
    }
    return 0;
}

long sim_devices_register(sim_devices_t *self, sim_pool_t *pool, const char *admin_token,
                          int want_mqtt, const volatile sig_atomic_t *stop)
{
    long rc = 0;
    const size_t n = self->n;
    char **bodies = calloc(n, sizeof *bodies);
    sim_job_t *jobs = calloc(n, sizeof *jobs);
    self->want_mqtt = want_mqtt;
    if (want_mqtt && !self->mqtt_pw &&
        (self->mqtt_pw = sodium_malloc(self->n_slots * SIM_MQTT_PW_SLOT)))
        sodium_memzero(self->mqtt_pw, self->n_slots * SIM_MQTT_PW_SLOT);
    if (!bodies || !jobs || (want_mqtt && !self->mqtt_pw)) {
        rc = LC_ERR_NOMEM;
        goto out;
    }
    if ((rc = s_register_bodies(self, bodies, jobs)) < 0)
        goto out;

    self->failures = 0;
    self->failures_logged = 0;
    memset(self->failures_by_status, 0, sizeof self->failures_by_status);
    register_ctx_t ctx = {.self = self};
    sim_pool_run_t run = {
        .path = "/v1/devices",
        .content_type = "application/json",
        .bearer = admin_token,
        .stop = stop,
        .ctx = &ctx,
        .on_reply = s_register_reply,
    };
    double elapsed = 0;
    if (self->mqtt_pw)
        sodium_mprotect_readwrite(self->mqtt_pw);
    rc = sim_pool_run(pool, &run, jobs, n, &elapsed);
    if (self->mqtt_pw)
        sodium_mprotect_readonly(self->mqtt_pw);
    if (rc < 0)
        goto out;
    if (want_mqtt)
        s_explain_mqtt_failures(self);

    for (size_t code = 0; code < LC_ARRAY_LEN(self->failures_by_status); code++) {
        if (self->failures_by_status[code])
            lc_warn("register_failed_total", "status=%zu devices=%llu", code,
                    (unsigned long long)self->failures_by_status[code]);
    }
    /* Keep only registered devices (stable order); an interrupted run leaves the rest out. */
    size_t kept = 0;
    for (size_t i = 0; i < n; i++) {
        if (self->devices[i].registered)
            self->devices[kept++] = self->devices[i];
    }
    lc_info("registered", "devices=%zu registered=%zu failed=%zu elapsed_s=%.3f", n, kept, n - kept,
            elapsed);
    self->failures = n - kept;
    self->n = kept;
    rc = (long)kept;
out:
    for (size_t i = 0; bodies && i < n; i++)
        free(bodies[i]);
    free(bodies);
    free(jobs);
    return rc;
}
