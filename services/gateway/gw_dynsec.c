/* gw_dynsec.c: devices' broker identities through Mosquitto's dynamic-security plugin. See
 * gw_dynsec.h. The commands are those of the plugin's README (Mosquitto 2.0): one message on
 * $CONTROL/dynamic-security/v1 carries {"commands": [...]}, which the plugin runs in order, and
 * it answers one message on .../response with {"responses": [...]} in the same order, each
 * echoing the command's "correlationData". */
#include "gw_dynsec.h"

#include <errno.h>
#include <jansson.h>
#include <mosquitto.h>
#include <mqtt_protocol.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gw_mqtt.h"
#include "lc_http.h"
#include "lc_log.h"
#include "lc_record.h"
#include "lc_token.h"

#define S_CONTROL_TOPIC "$CONTROL/dynamic-security/v1"
#define S_RESPONSE_TOPIC "$CONTROL/dynamic-security/v1/response"
#define S_ROLE_PREFIX "lcore-device-"
#define S_RESERVED_PREFIX "lcore-gw-"
#define S_KEEPALIVE_S 30
#define S_ANSWER_MAX (4u << 20) /* larger messages on the response topic are not ours */

/* What a device may do, all on its own topics lcore/v1/<device_id>/...: publish readings,
 * subscribe to (and unsubscribe from) its results, and receive them. Everything else is denied
 * by the plugin's default ACL access (publishClientSend and subscribe deny by default; the
 * broker's setup may deny the other two as well, which these rows then cover). */
static const struct {
    const char *acltype;
    const char *leaf;
} s_acls[] = {
    {"publishClientSend", "data"},      {"publishClientSend", "batch"},
    {"subscribeLiteral", "result"},     {"subscribePattern", "response/#"},
    {"publishClientReceive", "result"}, {"publishClientReceive", "response/#"},
    {"unsubscribeLiteral", "result"},   {"unsubscribePattern", "response/#"},
};

enum { S_PROVISION, S_DISABLE, S_ENABLE, S_ACTIONS };
enum { S_OK, S_EXISTS, S_NOT_FOUND, S_FAILED, S_RESULTS };
static const char *const s_action_names[S_ACTIONS] = {"provision", "disable", "enable"};
static const char *const s_result_names[S_RESULTS] = {"ok", "exists", "not_found", "failed"};

struct gw_dynsec {
    struct mosquitto *mosq;
    char host[256];
    int port, tls;
    int timeout_ms;
    pthread_t actor;
    int actor_started;
    pthread_mutex_t call_lock; /* one command set in flight */
    pthread_mutex_t lock;      /* what follows, shared with the actor's callbacks */
    pthread_cond_t cond;       /* ready, an answer, stop (CLOCK_MONOTONIC) */
    int ready;                 /* connected, and subscribed to the response topic */
    unsigned connection;       /* connections made ready so far */
    int stop;
    int actor_done;
    char pending[48];  /* correlationData stem of the command set awaiting its answer, or "" */
    json_t *answer;    /* its "responses" once arrived */
    char stem[24];     /* this run's: random, so that other gateways' answers never match */
    unsigned long seq; /* command sets sent */
    lc_counter_t *count[S_ACTIONS][S_RESULTS];
    lc_gauge_t *connected;
};

/* ---- the connection (the actor's thread runs the callbacks) ---- */

static void s_set_ready(gw_dynsec_t *self, int ready)
{
    pthread_mutex_lock(&self->lock);
    self->ready = ready;
    if (ready)
        self->connection++;
    pthread_cond_broadcast(&self->cond);
    pthread_mutex_unlock(&self->lock);
    lc_gauge_set(self->connected, ready);
}

static void s_on_connect(struct mosquitto *mosq, void *arg, int rc)
{
    static lc_log_limit_t limit = LC_LOG_LIMIT_INIT;
    gw_dynsec_t *self = arg;
    if (rc != 0) {
        lc_log_limited(&limit, 30000, LC_LOG_ERROR, "broker_control_refused",
                       "host=%s port=%d reason=\"%s\"", self->host, self->port,
                       mosquitto_reason_string(rc));
        return;
    }
    if (mosquitto_subscribe(mosq, NULL, S_RESPONSE_TOPIC, 0) != MOSQ_ERR_SUCCESS)
        mosquitto_disconnect(mosq); /* the loop reconnects */
}

static void s_on_subscribe(struct mosquitto *mosq, void *arg, int mid, int n, const int *granted)
{
    (void)mosq, (void)mid;
    static lc_log_limit_t limit = LC_LOG_LIMIT_INIT;
    gw_dynsec_t *self = arg;
    if (n != 1 || granted[0] >= 0x80) {
        lc_log_limited(&limit, 30000, LC_LOG_ERROR, "broker_control_refused",
                       "topic=%s reason=\"subscription refused: the gateway's role needs "
                       "subscribeLiteral and publishClientReceive on it\"",
                       S_RESPONSE_TOPIC);
        return;
    }
    s_set_ready(self, 1);
    lc_info("broker_control_ready", "host=%s port=%d", self->host, self->port);
}

static void s_on_disconnect(struct mosquitto *mosq, void *arg, int rc)
{
    (void)mosq;
    static lc_log_limit_t limit = LC_LOG_LIMIT_INIT;
    gw_dynsec_t *self = arg;
    s_set_ready(self, 0);
    if (rc != 0)
        lc_log_limited(&limit, 30000, LC_LOG_WARN, "broker_control_lost",
                       "host=%s port=%d err=\"%s\"", self->host, self->port,
                       mosquitto_strerror(rc));
}

/* An answer on the response topic: kept when it is the one awaited (every gateway's answers,
 * and mosquitto_ctrl's, arrive here). */
static void s_on_message(struct mosquitto *mosq, void *arg, const struct mosquitto_message *m)
{
    (void)mosq;
    gw_dynsec_t *self = arg;
    char want[96];
    pthread_mutex_lock(&self->lock);
    snprintf(want, sizeof want, "%s.0", self->pending);
    int waiting = self->pending[0] && !self->answer;
    pthread_mutex_unlock(&self->lock);
    if (!waiting || strcmp(m->topic, S_RESPONSE_TOPIC) != 0 || m->payloadlen <= 0 ||
        (unsigned)m->payloadlen > S_ANSWER_MAX)
        return;
    json_t *root = json_loadb(m->payload, (size_t)m->payloadlen, 0, NULL);
    json_t *responses = json_object_get(root, "responses");
    const char *corr =
        json_string_value(json_object_get(json_array_get(responses, 0), "correlationData"));
    if (corr && strcmp(corr, want) == 0) {
        pthread_mutex_lock(&self->lock);
        snprintf(want, sizeof want, "%s.0", self->pending);
        if (!self->answer && strcmp(corr, want) == 0) {
            self->answer = json_incref(responses);
            pthread_cond_broadcast(&self->cond);
        }
        pthread_mutex_unlock(&self->lock);
    }
    json_decref(root);
}

static int s_stopping(gw_dynsec_t *self)
{
    pthread_mutex_lock(&self->lock);
    int stop = self->stop;
    pthread_mutex_unlock(&self->lock);
    return stop;
}

static void s_deadline(struct timespec *ts, int ms)
{
    clock_gettime(CLOCK_MONOTONIC, ts);
    ts->tv_sec += ms / 1000;
    ts->tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

/* The actor: libmosquitto's loop reconnects by itself (every second, reconnect_delay_set), but
 * returns for good on errors it deems fatal (a protocol error, a failed lookup): this loop
 * starts it again, until gw_dynsec_destroy. No lock of ours is held while libmosquitto runs
 * (a host name lookup may take seconds). */
static void *s_actor(void *arg)
{
    static lc_log_limit_t limit = LC_LOG_LIMIT_INIT;
    gw_dynsec_t *self = arg;
    for (int first = 1; !s_stopping(self); first = 0) {
        if (!first) { /* a pause, cut short by destroy */
            struct timespec ts;
            s_deadline(&ts, 1000);
            pthread_mutex_lock(&self->lock);
            if (!self->stop)
                pthread_cond_timedwait(&self->cond, &self->lock, &ts);
            pthread_mutex_unlock(&self->lock);
        }
        int rc = first ? mosquitto_connect_async(self->mosq, self->host, self->port, S_KEEPALIVE_S)
                       : mosquitto_reconnect_async(self->mosq);
        if (rc != MOSQ_ERR_SUCCESS)
            lc_log_limited(&limit, 30000, LC_LOG_WARN, "broker_control_unreachable",
                           "host=%s port=%d err=\"%s\"", self->host, self->port,
                           mosquitto_strerror(rc));
        if (!s_stopping(self)) /* else destroy's disconnect may have come before the connect */
            (void)mosquitto_loop_forever(self->mosq, 1000, 1);
        s_set_ready(self, 0);
    }
    pthread_mutex_lock(&self->lock);
    self->actor_done = 1;
    pthread_cond_broadcast(&self->cond);
    pthread_mutex_unlock(&self->lock);
    return NULL;
}

/* ---- one command set: send, await its answer ---- */

/* Checks the answer against the commands: same length, names and correlationData. Then 0 when
 * every command succeeded or failed only as tolerated (createRole and addRoleACL: "already
 * exists", so that a set may run again), LC_ERR_NOTFOUND when a command found no such client,
 * LC_ERR_CONFLICT when createClient found one, LC_ERR_IO for any other error (logged). */
static int s_check(const json_t *commands, const json_t *answer, const char *stem)
{
    size_t n = json_array_size(commands);
    if (json_array_size(answer) != n)
        return LC_ERR_IO;
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        const json_t *c = json_array_get(commands, i), *r = json_array_get(answer, i);
        const char *name = json_string_value(json_object_get(c, "command"));
        const char *got = json_string_value(json_object_get(r, "command"));
        const char *corr = json_string_value(json_object_get(r, "correlationData"));
        const char *error = json_string_value(json_object_get(r, "error"));
        char want[96];
        snprintf(want, sizeof want, "%s.%zu", stem, i);
        if (!got || strcmp(got, name) != 0 || !corr || strcmp(corr, want) != 0)
            return LC_ERR_IO;
        int tolerated = error && strstr(error, "already exists") &&
                        (!strcmp(name, "createRole") || !strcmp(name, "addRoleACL"));
        if (!error || tolerated || rc)
            continue;
        if (strcmp(error, "Client not found") == 0) {
            rc = LC_ERR_NOTFOUND;
        } else if (strcmp(error, "Client already exists") == 0) {
            rc = LC_ERR_CONFLICT; /* made meanwhile by another gateway: not ours to undo */
        } else {
            lc_error("broker_command_refused", "command=%s error=\"%.120s\"", name, error);
            rc = LC_ERR_IO;
        }
    }
    return rc;
}

/* Waits for the answer to the set just sent on connection `sent_on`; the lock is held. */
static json_t *s_await(gw_dynsec_t *self, unsigned sent_on, const struct timespec *deadline)
{
    while (!self->answer && self->ready && self->connection == sent_on)
        if (pthread_cond_timedwait(&self->cond, &self->lock, deadline) == ETIMEDOUT)
            break;
    json_t *answer = self->answer;
    self->answer = NULL;
    self->pending[0] = '\0';
    return answer;
}

/* Sends commands (borrowed; each gets its correlationData here) as one message and waits for
 * the answer, within the timeout, the wait for a connection included. 0 (with *answer, the
 * caller's, when answer is not NULL), LC_ERR_UNAVAILABLE (not sent), LC_ERR_TIMEOUT (sent, no
 * answer: the commands may or may not have run), or s_check's. */
static int s_call(gw_dynsec_t *self, json_t *commands, json_t **answer)
{
    struct timespec deadline;
    s_deadline(&deadline, self->timeout_ms);
    pthread_mutex_lock(&self->call_lock);
    char stem[48];
    snprintf(stem, sizeof stem, "%s.%lu", self->stem, ++self->seq);
    size_t i, len = 0;
    json_t *c;
    json_array_foreach(commands, i, c)
        json_object_set_new(c, "correlationData", json_sprintf("%s.%zu", stem, i));
    json_t *msg = json_pack("{s:O}", "commands", commands);
    char *text = msg ? lc_json_dump_secret(msg, &len) : NULL;
    json_decref(msg); /* commands stay the caller's, to wipe */
    int rc = LC_ERR_UNAVAILABLE;
    json_t *got = NULL;
    pthread_mutex_lock(&self->lock);
    while (text && !self->ready && !self->stop)
        if (pthread_cond_timedwait(&self->cond, &self->lock, &deadline) == ETIMEDOUT)
            break;
    if (text && self->ready) {
        unsigned sent_on = self->connection;
        snprintf(self->pending, sizeof self->pending, "%s", stem);
        pthread_mutex_unlock(&self->lock); /* libmosquitto's locks are never taken under ours */
        /* QoS 0: a set that did not leave before a disconnection is dropped, never sent late. */
        int mrc = mosquitto_publish(self->mosq, NULL, S_CONTROL_TOPIC, (int)len, text, 0, false);
        pthread_mutex_lock(&self->lock);
        if (mrc == MOSQ_ERR_SUCCESS)
            got = s_await(self, sent_on, &deadline);
        else
            self->pending[0] = '\0';
        rc = mrc != MOSQ_ERR_SUCCESS ? LC_ERR_UNAVAILABLE : got ? 0 : LC_ERR_TIMEOUT;
    }
    pthread_mutex_unlock(&self->lock);
    pthread_mutex_unlock(&self->call_lock);
    if (text) {
        sodium_memzero(text, len);
        free(text);
    }
    if (rc == LC_ERR_TIMEOUT) {
        static lc_log_limit_t limit = LC_LOG_LIMIT_INIT;
        lc_log_limited(&limit, 30000, LC_LOG_WARN, "broker_control_no_answer",
                       "timeout_ms=%d hint=\"is the dynamic-security plugin loaded, and may the "
                       "gateway's user publish to $CONTROL/dynamic-security/v1, subscribe to "
                       "and receive (publishClientReceive) .../response?\"",
                       self->timeout_ms);
    }
    if (rc == 0)
        rc = s_check(commands, got, stem);
    if (rc == 0 && answer)
        *answer = json_incref(got);
    json_decref(got);
    return rc;
}

/* ---- the commands ---- */

static json_t *s_client_command(const char *command, const char *device_id)
{
    return json_pack("{s:s, s:s}", "command", command, "username", device_id);
}

/* The client as the plugin has it (getClient): 0 with *exists (and, when it does, whether it
 * has the device's role, is bound to the device's client id, and is disabled), or an error of
 * s_call. */
typedef struct {
    int exists, has_role, bound, disabled;
} s_client_t;

static int s_get_client(gw_dynsec_t *self, const char *device_id, const char *role, s_client_t *c)
{
    json_t *commands = json_pack("[o]", s_client_command("getClient", device_id)), *answer = NULL;
    int rc = commands ? s_call(self, commands, &answer) : LC_ERR_NOMEM;
    memset(c, 0, sizeof *c);
    if (rc == 0) {
        json_t *client =
                   json_object_get(json_object_get(json_array_get(answer, 0), "data"), "client"),
               *r;
        size_t i;
        c->exists = 1;
        c->disabled = json_is_true(json_object_get(client, "disabled"));
        const char *id = json_string_value(json_object_get(client, "clientid"));
        c->bound = id && strcmp(id, device_id) == 0;
        json_array_foreach(json_object_get(client, "roles"), i, r)
        {
            const char *name = json_string_value(json_object_get(r, "rolename"));
            c->has_role |= name && strcmp(name, role) == 0;
        }
    }
    json_decref(answer);
    json_decref(commands);
    return rc == LC_ERR_NOTFOUND ? 0 : rc;
}

/* Appends c to commands; *ok becomes 0 when c is NULL (out of memory). */
static void s_add(json_t *commands, json_t *c, int *ok)
{
    if (json_array_append_new(commands, c) != 0)
        *ok = 0;
}

/* The device's ACL i: {acltype, topic, priority, allow}, as createRole and addRoleACL take it;
 * with command set, an addRoleACL of role. */
static json_t *s_acl(const char *device_id, size_t i, const char *role)
{
    char topic[LC_DEVICE_ID_MAX + 32];
    snprintf(topic, sizeof topic, "lcore/v1/%s/%s", device_id, s_acls[i].leaf);
    json_t *acl = json_pack("{s:s, s:s, s:i, s:b}", "acltype", s_acls[i].acltype, "topic", topic,
                            "priority", 0, "allow", 1);
    if (acl && role &&
        (json_object_set_new(acl, "command", json_string("addRoleACL")) != 0 ||
         json_object_set_new(acl, "rolename", json_string(role)) != 0)) {
        json_decref(acl);
        return NULL;
    }
    return acl;
}

/* The set that gives the device its identity, given what the plugin has (c): the role with its
 * ACLs, then each ACL again (addRoleACL: "already exists" for a role made here, and a leftover
 * role missing one gets it back; Mosquitto 2.0 rewrites its whole file after each change, so a
 * new device costs two rewrites, not ten), the client with password (created, or its password
 * reset when it exists), bound to the client id device_id (the broker refuses the device any
 * other, so that it cannot take over another client's session: a gateway's, say), the role on
 * the client, and the client enabled or disabled as the device is. NULL when out of memory. */
static json_t *s_provision_commands(const char *device_id, const char *role, const s_client_t *c,
                                    unsigned flags, const char *password)
{
    json_t *commands = json_array(), *acls = json_array();
    char name[sizeof "lcore device " + LC_DEVICE_ID_MAX];
    int ok = commands && acls, revoked = (flags & GW_DYNSEC_REVOKED) != 0;
    snprintf(name, sizeof name, "lcore device %s", device_id);
    for (size_t i = 0; i < LC_ARRAY_LEN(s_acls); i++)
        s_add(acls, s_acl(device_id, i, NULL), &ok);
    s_add(commands,
          json_pack("{s:s, s:s, s:s, s:o}", "command", "createRole", "rolename", role, "textname",
                    name, "acls", acls),
          &ok);
    for (size_t i = 0; i < LC_ARRAY_LEN(s_acls); i++)
        s_add(commands, s_acl(device_id, i, role), &ok);
    if (!c->exists)
        s_add(commands,
              json_pack("{s:s, s:s, s:s, s:s, s:s, s:[{s:s}]}", "command", "createClient",
                        "username", device_id, "password", password, "clientid", device_id,
                        "textname", name, "roles", "rolename", role),
              &ok);
    else if (password)
        s_add(commands,
              json_pack("{s:s, s:s, s:s}", "command", "setClientPassword", "username", device_id,
                        "password", password),
              &ok);
    if (c->exists && !c->bound)
        s_add(commands,
              json_pack("{s:s, s:s, s:s}", "command", "setClientId", "username", device_id,
                        "clientid", device_id),
              &ok);
    if (c->exists && !c->has_role)
        s_add(commands,
              json_pack("{s:s, s:s, s:s}", "command", "addClientRole", "username", device_id,
                        "rolename", role),
              &ok);
    /* In the same message as createClient: a revoked device's client is never enabled. */
    if (revoked && !(c->exists && c->disabled))
        s_add(commands, s_client_command("disableClient", device_id), &ok);
    else if (!revoked && c->exists && c->disabled)
        s_add(commands, s_client_command("enableClient", device_id), &ok);
    if (!ok) {
        lc_json_wipe(commands);
        json_decref(commands);
        return NULL;
    }
    return commands;
}

/* After a failed set that carried a new password, which may have run in part: the client goes,
 * since nobody was shown its password, so that registering the device again makes a new one. */
static void s_withdraw(gw_dynsec_t *self, const char *device_id)
{
    json_t *commands = json_pack("[o]", s_client_command("deleteClient", device_id));
    int rc = commands ? s_call(self, commands, NULL) : LC_ERR_NOMEM;
    json_decref(commands);
    if (rc == 0 || rc == LC_ERR_NOTFOUND)
        lc_info("broker_identity_withdrawn", "device_id=%s", device_id);
    else
        lc_error("broker_identity_unknown",
                 "device_id=%s err=\"%s\" hint=\"its broker password may be set but was never "
                 "shown: mosquitto_ctrl dynsec deleteClient <device_id>, then register it again\"",
                 device_id, lc_strerror(rc));
}

static void s_count(gw_dynsec_t *self, int action, int result)
{
    lc_counter_t *c = self->count[action][result];
    lc_counter_inc(c ? c : self->count[action][S_FAILED]);
}

int gw_dynsec_provision(gw_dynsec_t *self, const char *device_id, unsigned flags,
                        char password[GW_DYNSEC_PASSWORD_LEN + 1], int *created)
{
    char role[sizeof S_ROLE_PREFIX + LC_DEVICE_ID_MAX];
    s_client_t c;
    uint8_t raw[GW_DYNSEC_PASSWORD_LEN / 2];
    password[0] = '\0';
    *created = 0;
    /* No '/', '+' or '#' in topics; "lcore-gw-" names the gateways' own users and client ids. */
    int valid = lc_device_id_valid(device_id, strlen(device_id));
    if (!valid || strncmp(device_id, S_RESERVED_PREFIX, strlen(S_RESERVED_PREFIX)) == 0) {
        lc_warn("broker_provisioning_refused", "device_id=%s reason=\"%s\"",
                valid ? device_id : "-", valid ? "a gateway's name" : "not a device id");
        s_count(self, S_PROVISION, S_FAILED);
        return LC_ERR_INVALID;
    }
    snprintf(role, sizeof role, S_ROLE_PREFIX "%s", device_id);
    int rc = s_get_client(self, device_id, role, &c);
    int with_password = rc == 0 && (!c.exists || (flags & GW_DYNSEC_NEW));
    if (rc == 0) {
        if (with_password) {
            randombytes_buf(raw, sizeof raw);
            sodium_bin2hex(password, GW_DYNSEC_PASSWORD_LEN + 1, raw, sizeof raw);
            sodium_memzero(raw, sizeof raw);
        }
        json_t *commands =
            s_provision_commands(device_id, role, &c, flags, with_password ? password : NULL);
        rc = commands ? s_call(self, commands, NULL) : LC_ERR_NOMEM;
        lc_json_wipe(commands);
        json_decref(commands);
    }
    if (with_password && (rc == LC_ERR_TIMEOUT || rc == LC_ERR_IO || rc == LC_ERR_NOTFOUND))
        s_withdraw(self, device_id);
    if (rc == 0 && with_password)
        *created = 1;
    else
        sodium_memzero(password, GW_DYNSEC_PASSWORD_LEN + 1);
    s_count(self, S_PROVISION, rc ? S_FAILED : *created ? S_OK : S_EXISTS);
    if (rc == 0)
        lc_info(*created ? "broker_identity_created" : "broker_identity_exists",
                "device_id=%s reset=%d revoked=%d", device_id, *created && c.exists,
                (flags & GW_DYNSEC_REVOKED) != 0);
    else
        lc_warn("broker_provisioning_failed", "device_id=%s err=\"%s\"", device_id,
                lc_strerror(rc));
    return rc;
}

static int s_set_enabled(gw_dynsec_t *self, const char *device_id, int enable)
{
    int action = enable ? S_ENABLE : S_DISABLE;
    if (!lc_device_id_valid(device_id, strlen(device_id)))
        return LC_ERR_INVALID;
    json_t *commands =
        json_pack("[o]", s_client_command(enable ? "enableClient" : "disableClient", device_id));
    int rc = commands ? s_call(self, commands, NULL) : LC_ERR_NOMEM;
    json_decref(commands);
    s_count(self, action, rc == 0 ? S_OK : rc == LC_ERR_NOTFOUND ? S_NOT_FOUND : S_FAILED);
    if (rc == 0)
        lc_info(enable ? "broker_client_enabled" : "broker_client_disabled", "device_id=%s",
                device_id);
    else if (rc == LC_ERR_NOTFOUND)
        lc_warn("broker_client_missing",
                "device_id=%s action=%s hint=\"no broker identity: "
                "register the device again to provision it\"",
                device_id, s_action_names[action]);
    else
        lc_warn("broker_client_update_failed", "device_id=%s action=%s err=\"%s\"", device_id,
                s_action_names[action], lc_strerror(rc));
    return rc;
}

int gw_dynsec_disable(gw_dynsec_t *self, const char *device_id)
{
    return s_set_enabled(self, device_id, 0);
}

int gw_dynsec_enable(gw_dynsec_t *self, const char *device_id)
{
    return s_set_enabled(self, device_id, 1);
}

/* ---- life ---- */

static void s_metrics(gw_dynsec_t *self, lc_metrics_t *metrics)
{
    static const int results[S_ACTIONS][3] = {
        {S_OK, S_EXISTS, S_FAILED}, {S_OK, S_NOT_FOUND, S_FAILED}, {S_OK, S_NOT_FOUND, S_FAILED}};
    for (int a = 0; a < S_ACTIONS; a++)
        for (int i = 0; i < 3; i++) {
            char labels[64];
            snprintf(labels, sizeof labels, "action=\"%s\",result=\"%s\"", s_action_names[a],
                     s_result_names[results[a][i]]);
            self->count[a][results[a][i]] = lc_metrics_counter(
                metrics, "lcore_gateway_broker_provisioning_total",
                "devices' broker identities provisioned (on registration), disabled (revoke) and "
                "enabled (reactivate), by result",
                labels);
        }
    self->connected = lc_metrics_gauge(metrics, "lcore_gateway_broker_control_connected",
                                       "1 while the gateway's control connection to the broker "
                                       "(dynamic-security commands) is up; 0 without MQTT",
                                       NULL);
}

void gw_dynsec_metrics_off(lc_metrics_t *metrics)
{
    gw_dynsec_t unused;
    s_metrics(&unused, metrics);
}

/* The connection's settings: v5, the gateway's credentials (the password read and wiped here;
 * libmosquitto keeps its own copy for reconnecting), the callbacks. 0 or -1 (logged). */
static int s_setup(gw_dynsec_t *self, const gw_dynsec_opts_t *opts)
{
    char password[256];
    int rc = lc_token_read_file(password, sizeof password, opts->password_file);
    if (rc != 0) {
        lc_error("broker_password_unreadable", "path=%s err=\"%s\"", opts->password_file,
                 lc_strerror(rc));
        return -1;
    }
    mosquitto_lib_init(); /* once per process would do; again is harmless (never cleaned up) */
    self->mosq = mosquitto_new(opts->client_id, true, self);
    rc = !self->mosq ||
         mosquitto_int_option(self->mosq, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V5) ||
         mosquitto_threaded_set(self->mosq, true) ||
         mosquitto_username_pw_set(self->mosq, opts->username, password) ||
         mosquitto_reconnect_delay_set(self->mosq, 1, 1, false) ||
         (self->tls && mosquitto_tls_set(self->mosq, opts->ca_file, NULL, NULL, NULL, NULL));
    sodium_memzero(password, sizeof password);
    if (rc) {
        lc_error("broker_control_setup_failed", "client_id=%s", opts->client_id);
        return -1;
    }
    mosquitto_connect_callback_set(self->mosq, s_on_connect);
    mosquitto_subscribe_callback_set(self->mosq, s_on_subscribe);
    mosquitto_disconnect_callback_set(self->mosq, s_on_disconnect);
    mosquitto_message_callback_set(self->mosq, s_on_message);
    return 0;
}

gw_dynsec_t *gw_dynsec_new(const gw_dynsec_opts_t *opts)
{
    gw_dynsec_t *self = calloc(1, sizeof *self);
    pthread_condattr_t ca;
    if (!self)
        return NULL;
    self->timeout_ms = opts->timeout_ms > 0 ? opts->timeout_ms : 3000;
    pthread_mutex_init(&self->call_lock, NULL);
    pthread_mutex_init(&self->lock, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&self->cond, &ca);
    pthread_condattr_destroy(&ca);
    uint8_t stem[8];
    randombytes_buf(stem, sizeof stem);
    sodium_bin2hex(self->stem, sizeof self->stem, stem, sizeof stem);
    s_metrics(self, opts->metrics);
    char port[16];
    if (gw_mqtt_url_parse(opts->url, self->host, sizeof self->host, port, sizeof port,
                          &self->tls) != 0 ||
        (self->tls && !(opts->ca_file && opts->ca_file[0]))) {
        lc_error("broker_url_invalid", "want=\"mqtt://host[:port] or mqtts://host[:port] with a "
                                       "CA file\"");
        goto fail;
    }
    self->port = atoi(port);
    if (!opts->username[0] || s_setup(self, opts) != 0)
        goto fail;
    if (pthread_create(&self->actor, NULL, s_actor, self) != 0)
        goto fail;
    self->actor_started = 1;
    lc_info("broker_control_started", "host=%s port=%d tls=%s username=%s client_id=%s", self->host,
            self->port, self->tls ? "on" : "off", opts->username, opts->client_id);
    return self;
fail:
    gw_dynsec_destroy(&self);
    return NULL;
}

void gw_dynsec_destroy(gw_dynsec_t **self_p)
{
    gw_dynsec_t *self = *self_p;
    if (!self)
        return;
    *self_p = NULL;
    pthread_mutex_lock(&self->lock);
    self->stop = 1;
    pthread_cond_broadcast(&self->cond);
    pthread_mutex_unlock(&self->lock);
    if (self->actor_started) {
        /* The loop returns within its 1 s wait; a connection still being made to a host that
         * does not answer could hold it for minutes: then the thread is cancelled, as
         * libmosquitto's own mosquitto_loop_stop(force) does. */
        mosquitto_disconnect(self->mosq);
        struct timespec ts;
        s_deadline(&ts, 3000);
        pthread_mutex_lock(&self->lock);
        while (!self->actor_done)
            if (pthread_cond_timedwait(&self->cond, &self->lock, &ts) == ETIMEDOUT)
                break;
        int done = self->actor_done;
        pthread_mutex_unlock(&self->lock);
        if (!done)
            pthread_cancel(self->actor);
        pthread_join(self->actor, NULL);
    }
    mosquitto_destroy(self->mosq);
    json_decref(self->answer);
    pthread_cond_destroy(&self->cond);
    pthread_mutex_destroy(&self->lock);
    pthread_mutex_destroy(&self->call_lock);
    free(self);
}
