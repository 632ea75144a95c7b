/* gw_operator.c: the operator API on the admin listener (DESIGN.md "HTTP API", Operators):
 * devices (register, list, show, revoke, reactivate, rotate a key), tokens (create, list,
 * delete) and the audit log. gw_http.c has checked that the caller's token has scope operator;
 * the store does the work, writes the audit entry in the same transaction (Query.actor: the
 * caller's token id) and tells every gateway what changed (topic "changes/"). With MQTT, the
 * device's broker identity follows (gw_dynsec): made on registration (its password in the answer,
 * shown once), disabled on revoke, enabled on reactivate. */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gw_handlers.h"
#include "lc_jws.h"
#include "lc_log.h"
#include "lc_record.h"

#define S_CURSOR_DEVICES 2 /* the page's last device_id */
#define S_CURSOR_AUDIT 3   /* the page's last audit entry id (8 bytes) */
#define S_MAX_OVERLAP_S 2592000
#define S_MAX_EXPIRY_S (10LL * 365 * 24 * 3600)

/* Asks the store on behalf of the caller's token. */
static Lcore__V1__QueryReply *s_ask(const gw_call_t *call, Lcore__V1__Query *q)
{
    int err = 0;
    q->actor = (char *)call->token->id;
    return lc_query_call(call->deps->store, q, &err);
}

/* The answer to a store reply that is not OK/CREATED: 404, 409, 400 or 503. */
static enum MHD_Result s_not_ok(const gw_call_t *call, const Lcore__V1__QueryReply *r,
                                const char *not_found)
{
    const char *msg = r && r->message && r->message[0] ? r->message : NULL;
    switch (r ? r->status : LCORE__V1__QUERY_REPLY__STATUS__ERROR) {
    case LCORE__V1__QUERY_REPLY__STATUS__NOT_FOUND:
        return gw_reply_error(call, 404, "not_found", not_found, 0);
    case LCORE__V1__QUERY_REPLY__STATUS__CONFLICT:
        return gw_reply_error(call, 409, "conflict", msg ? msg : "conflicts with the stored state",
                              0);
    case LCORE__V1__QUERY_REPLY__STATUS__BAD_REQUEST:
        return gw_reply_error(call, 400, "malformed", msg ? msg : "refused by the store", 0);
    default:
        return gw_reply_unavailable(call, r, "store");
    }
}

static int s_ok(const Lcore__V1__QueryReply *r)
{
    return r && (r->status == LCORE__V1__QUERY_REPLY__STATUS__OK ||
                 r->status == LCORE__V1__QUERY_REPLY__STATUS__CREATED);
}

static json_t *s_device_json(const Lcore__V1__Device *d)
{
    json_t *prev = json_null();
    if (d->prev_alg && d->prev_alg[0] && d->prev_public_key.len)
        prev = json_pack("{s:s, s:o, s:o}", "alg", d->prev_alg, "public_key",
                         gw_json_hex(d->prev_public_key.data, d->prev_public_key.len),
                         "valid_until", gw_json_time(d->prev_until_us));
    json_t *did = d->did_document && d->did_document[0]
                      ? json_loads(d->did_document, JSON_DECODE_ANY, NULL)
                      : NULL;
    return json_pack("{s:s, s:s, s:o, s:s, s:o, s:o, s:I, s:o, s:o, s:o}", "device_id",
                     d->device_id ? d->device_id : "", "alg", d->alg ? d->alg : "", "public_key",
                     gw_json_hex(d->public_key.data, d->public_key.len), "status",
                     d->status ? d->status : "", "registered_at", gw_json_time(d->registered_at_us),
                     "revoked_at", gw_json_time(d->revoked_at_us), "key_no", (json_int_t)d->key_no,
                     "key_since", gw_json_time(d->key_since_us), "previous_key", prev,
                     "did_document", did ? did : json_null());
}

/* A store reply carrying one Device: 200 with it, or the error. */
static enum MHD_Result s_device_reply(const gw_call_t *call, Lcore__V1__QueryReply *r)
{
    enum MHD_Result ret;
    if (s_ok(r) && r->device)
        ret = gw_reply_json(call, 200, s_device_json(r->device));
    else
        ret = s_not_ok(call, r, "no such device");
    if (r)
        lcore__v1__query_reply__free_unpacked(r, NULL);
    return ret;
}

static int s_path_device_ok(const gw_call_t *call)
{
    return call->param[0] && lc_device_id_valid(call->param, strlen(call->param));
}

static enum MHD_Result s_bad_device(const gw_call_t *call)
{
    return gw_reply_error(call, 400, "malformed",
                          "device_id must be 1..128 characters of [A-Za-z0-9._:-]", 0);
}

/* A JSON body: the object, or NULL once answered 400. */
static json_t *s_body(const gw_call_t *call, const char *shape, enum MHD_Result *ret)
{
    json_error_t err;
    json_t *body = json_loadb(call->body, call->len, JSON_REJECT_DUPLICATES, &err);
    if (json_is_object(body))
        return body;
    json_decref(body);
    char msg[160];
    snprintf(msg, sizeof msg, "body must be a JSON object %s", shape);
    *ret = gw_reply_error(call, 400, "malformed", msg, 0);
    return NULL;
}

/* A device key of the body (alg, public_key as hex or JWK) in its raw form: 0, or -1 with *why. */
static int s_key(const json_t *body, lc_alg_t *alg, uint8_t raw[65], size_t *raw_len,
                 const char **why)
{
    const char *alg_name = json_string_value(json_object_get(body, "alg"));
    json_t *pk = json_object_get(body, "public_key");
    *alg = lc_alg_from_name(alg_name);
    *why = "alg must be EdDSA or ES256K";
    if (!alg_name || *alg == LC_ALG_NONE)
        return -1;
    *why = "public_key is not a valid key for alg (hex or JWK)";
    if (!pk)
        return -1;
    char *text = json_is_string(pk) ? strdup(json_string_value(pk)) : json_dumps(pk, JSON_COMPACT);
    int rc = text && lc_pubkey_parse(raw, 65, raw_len, *alg, text, strlen(text)) == 0 ? 0 : -1;
    free(text);
    return rc;
}

/* The store's view of a device being registered again: *flags gets GW_DYNSEC_REVOKED when it
 * is revoked. 0, or -1 when the store does not answer. */
static int s_device_flags(const gw_call_t *call, const char *device_id, unsigned *flags)
{
    Lcore__V1__Query q = LCORE__V1__QUERY__INIT;
    q.body_case = LCORE__V1__QUERY__BODY_GET_DEVICE;
    q.get_device = (char *)device_id;
    Lcore__V1__QueryReply *r = s_ask(call, &q);
    int rc = s_ok(r) && r->device ? 0 : -1;
    if (rc == 0 && r->device->status && strcmp(r->device->status, "revoked") == 0)
        *flags |= GW_DYNSEC_REVOKED;
    if (r)
        lcore__v1__query_reply__free_unpacked(r, NULL);
    return rc;
}

/* With MQTT, a registration the store took gives the device its broker identity (gw_dynsec)
 * and answer gets "mqtt": {"username", "password"} when a password was just made (shown this
 * once), {"username"} when the identity was there already (its password unchanged), or null
 * and a "warning" when the broker could not do it: the device is registered all the same, and
 * registering it again retries. Returns what happened, for the log. */
static const char *s_broker_identity(const gw_call_t *call, const char *device_id, int created,
                                     json_t *answer)
{
    gw_dynsec_t *dynsec = call->deps->dynsec;
    if (!dynsec || !answer)
        return "off";
    char password[GW_DYNSEC_PASSWORD_LEN + 1] = "";
    unsigned flags = created ? GW_DYNSEC_NEW : 0;
    int made = 0;
    int rc = created ? 0 : s_device_flags(call, device_id, &flags);
    if (rc == 0)
        rc = gw_dynsec_provision(dynsec, device_id, flags, password, &made);
    json_t *mqtt = rc != 0 ? json_null()
                   : made  ? json_pack("{s:s, s:s}", "username", device_id, "password", password)
                           : json_pack("{s:s}", "username", device_id);
    sodium_memzero(password, sizeof password);
    json_object_set_new(answer, "mqtt", mqtt);
    if (rc != 0)
        json_object_set_new(answer, "warning",
                            json_string("the device is registered, but its broker credentials "
                                        "could not be provisioned (see the gateway's log): "
                                        "register it again to retry"));
    return rc != 0 ? "failed" : made ? "created" : "exists";
}

/* POST /v1/devices: {device_id, alg, public_key (hex or JWK), did_document (optional)}. */
enum MHD_Result gw_op_register(const gw_call_t *call)
{
    enum MHD_Result ret = MHD_NO;
    json_t *body = s_body(call, "{device_id, alg, public_key[, did_document]}", &ret);
    if (!body)
        return ret;
    const char *device_id = json_string_value(json_object_get(body, "device_id"));
    json_t *did = json_object_get(body, "did_document");
    char *did_text = NULL;
    lc_alg_t alg;
    uint8_t raw[65];
    size_t raw_len = 0;
    const char *why = NULL;
    int created = 0, rc = 0;
    if (!device_id || !lc_device_id_valid(device_id, strlen(device_id))) {
        ret = s_bad_device(call);
    } else if (s_key(body, &alg, raw, &raw_len, &why) < 0) {
        ret = gw_reply_error(call, 400, "malformed", why, 0);
    } else if (did && !json_is_null(did) &&
               (!(did_text = json_dumps(did, JSON_COMPACT | JSON_ENCODE_ANY)) ||
                strlen(did_text) > 16384)) {
        ret = gw_reply_error(call, 400, "malformed", "did_document too large (16 KiB)", 0);
    } else if ((rc = gw_devices_register(call->deps->devices, device_id, alg, raw, raw_len,
                                         did_text, call->token->id, &created)) == LC_ERR_CONFLICT) {
        ret = gw_reply_error(call, 409, "conflict",
                             "device_id is registered with a different key or algorithm", 0);
    } else if (rc == LC_ERR_INVALID) {
        ret = gw_reply_error(call, 400, "malformed", "registration refused by the store", 0);
    } else if (rc < 0) {
        ret = gw_reply_error(call, 503, "not_ready", "device registry unavailable", 1);
    } else {
        json_t *answer = json_pack("{s:s, s:s, s:o, s:s}", "device_id", device_id, "alg",
                                   lc_alg_name(alg), "public_key", gw_json_hex(raw, raw_len),
                                   "status", created ? "registered" : "exists");
        const char *broker = s_broker_identity(call, device_id, created, answer);
        lc_info("device_registered", "device_id=%s alg=%s created=%d broker=%s token_id=%s",
                device_id, lc_alg_name(alg), created, broker, call->token->id);
        ret = gw_reply_json_secret(call, created ? 201 : 200, answer);
    }
    free(did_text);
    json_decref(body);
    return ret;
}

/* GET /v1/devices?limit=&after= */
enum MHD_Result gw_op_device_list(const gw_call_t *call)
{
    int limit = gw_arg_limit(call, 100);
    const char *after = gw_call_arg(call, "after");
    char after_id[LC_DEVICE_ID_MAX + 1] = "";
    if (limit < 0)
        return gw_reply_error(call, 400, "malformed", "limit must be an integer from 1 to 1000", 0);
    if (after && after[0]) {
        int n = gw_cursor_parse(after, S_CURSOR_DEVICES, after_id, LC_DEVICE_ID_MAX);
        if (n <= 0 || (after_id[n] = '\0', !lc_device_id_valid(after_id, (size_t)n)))
            return gw_reply_error(call, 400, "malformed",
                                  "after must be the \"next\" of a previous page", 0);
    }
    Lcore__V1__DeviceList dl = LCORE__V1__DEVICE_LIST__INIT;
    dl.after = after_id;
    dl.limit = (uint32_t)limit;
    Lcore__V1__Query q = LCORE__V1__QUERY__INIT;
    q.body_case = LCORE__V1__QUERY__BODY_LIST_DEVICES;
    q.list_devices = &dl;
    Lcore__V1__QueryReply *r = s_ask(call, &q);
    enum MHD_Result ret;
    if (!s_ok(r) || r->n_devices > (size_t)limit) {
        ret = s_not_ok(call, r, "no such device");
    } else {
        json_t *devices = json_array(), *next = json_null();
        for (size_t i = 0; devices && i < r->n_devices; i++)
            json_array_append_new(devices, s_device_json(r->devices[i]));
        const char *last = r->n_devices ? r->devices[r->n_devices - 1]->device_id : NULL;
        char cursor[GW_CURSOR_MAX];
        if (r->more && last &&
            gw_cursor_make(cursor, S_CURSOR_DEVICES, last, strnlen(last, LC_DEVICE_ID_MAX)) == 0)
            next = json_string(cursor);
        ret = gw_reply_json(call, 200, json_pack("{s:o, s:o}", "devices", devices, "next", next));
    }
    if (r)
        lcore__v1__query_reply__free_unpacked(r, NULL);
    return ret;
}

/* GET /v1/devices/{device_id} */
enum MHD_Result gw_op_device_get(const gw_call_t *call)
{
    if (!s_path_device_ok(call))
        return s_bad_device(call);
    Lcore__V1__Query q = LCORE__V1__QUERY__INIT;
    q.body_case = LCORE__V1__QUERY__BODY_GET_DEVICE;
    q.get_device = (char *)call->param;
    return s_device_reply(call, s_ask(call, &q));
}

/* POST /v1/devices/{device_id}/revoke and .../reactivate. This gateway forgets its copy at
 * once; the others when the store's Change reaches them. */
enum MHD_Result gw_op_device_revoke(const gw_call_t *call)
{
    if (!s_path_device_ok(call))
        return s_bad_device(call);
    Lcore__V1__SetDeviceStatus st = LCORE__V1__SET_DEVICE_STATUS__INIT;
    st.device_id = (char *)call->param;
    st.revoked = call->route == GW_ROUTE_REVOKE;
    Lcore__V1__Query q = LCORE__V1__QUERY__INIT;
    q.body_case = LCORE__V1__QUERY__BODY_SET_DEVICE_STATUS;
    q.set_device_status = &st;
    Lcore__V1__QueryReply *r = s_ask(call, &q);
    if (!s_ok(r) || !r->device)
        return s_device_reply(call, r);
    gw_devices_forget(call->deps->devices, call->param);
    lc_info(st.revoked ? "device_revoked" : "device_reactivated", "device_id=%s token_id=%s",
            call->param, call->token->id);
    json_t *answer = s_device_json(r->device);
    lcore__v1__query_reply__free_unpacked(r, NULL);
    /* The broker part: the store's change stands either way (its check at write time, and this
     * gateway's, refuse a revoked device's readings); a failure is logged, counted and said. */
    int rc = 0;
    if (call->deps->dynsec)
        rc = st.revoked ? gw_dynsec_disable(call->deps->dynsec, call->param)
                        : gw_dynsec_enable(call->deps->dynsec, call->param);
    if (answer && rc != 0 && !(rc == LC_ERR_NOTFOUND && st.revoked))
        json_object_set_new(answer, "warning",
                            json_string(rc == LC_ERR_NOTFOUND
                                            ? "the device has no broker credentials: register "
                                              "it again to provision them"
                                            : "the broker could not be told (see the gateway's "
                                              "log): repeat the call to retry"));
    return gw_reply_json(call, 200, answer);
}

/* POST /v1/devices/{device_id}/keys: {alg, public_key, overlap_s}. */
enum MHD_Result gw_op_rotate(const gw_call_t *call)
{
    if (!s_path_device_ok(call))
        return s_bad_device(call);
    enum MHD_Result ret = MHD_NO;
    json_t *body = s_body(call, "{alg, public_key, overlap_s}", &ret);
    if (!body)
        return ret;
    json_t *ov = json_object_get(body, "overlap_s");
    lc_alg_t alg;
    uint8_t raw[65];
    size_t raw_len = 0;
    const char *why = NULL;
    if (s_key(body, &alg, raw, &raw_len, &why) < 0) {
        json_decref(body);
        return gw_reply_error(call, 400, "malformed", why, 0);
    }
    if (ov && (!json_is_integer(ov) || json_integer_value(ov) < 0 ||
               json_integer_value(ov) > S_MAX_OVERLAP_S)) {
        json_decref(body);
        return gw_reply_error(call, 400, "malformed",
                              "overlap_s must be an integer from 0 to 2592000 (30 days)", 0);
    }
    Lcore__V1__RotateKey rk = LCORE__V1__ROTATE_KEY__INIT;
    rk.device_id = (char *)call->param;
    rk.alg = (char *)lc_alg_name(alg);
    rk.public_key.data = raw;
    rk.public_key.len = raw_len;
    rk.overlap_s = ov ? (uint32_t)json_integer_value(ov) : 0;
    json_decref(body);
    Lcore__V1__Query q = LCORE__V1__QUERY__INIT;
    q.body_case = LCORE__V1__QUERY__BODY_ROTATE_KEY;
    q.rotate_key = &rk;
    Lcore__V1__QueryReply *r = s_ask(call, &q);
    if (s_ok(r)) {
        gw_devices_forget(call->deps->devices, call->param);
        lc_info("device_key_rotated", "device_id=%s overlap_s=%u token_id=%s", call->param,
                rk.overlap_s, call->token->id);
    }
    return s_device_reply(call, r);
}

static json_t *s_token_devices(const Lcore__V1__Token *t)
{
    if (t->n_devices == 0)
        return json_null();
    json_t *a = json_array();
    for (size_t i = 0; a && i < t->n_devices; i++)
        json_array_append_new(a, json_string(t->devices[i] ? t->devices[i] : ""));
    return a;
}

/* The token of the body {scope, devices (optional), expires_in_s (optional)}: 0, or -1 with
 * *why. t->devices points into body (valid while it lives; free t->devices only). */
static int s_token_spec(const json_t *body, Lcore__V1__Token *t, const char **why)
{
    const char *scope = json_string_value(json_object_get(body, "scope"));
    json_t *devices = json_object_get(body, "devices"),
           *exp = json_object_get(body, "expires_in_s");
    *why = "scope must be read, decrypt or operator";
    if (gw_token_scope_parse(scope) == GW_AUTH_NONE)
        return -1;
    t->scope = (char *)scope;
    *why = "expires_in_s must be a positive integer (at most ten years)";
    if (exp && !json_is_null(exp) &&
        (!json_is_integer(exp) || json_integer_value(exp) < 1 ||
         json_integer_value(exp) > S_MAX_EXPIRY_S))
        return -1;
    if (exp && json_is_integer(exp))
        t->expires_at_us = lc_now_us() + (uint64_t)json_integer_value(exp) * 1000000u;
    *why = "devices must be a list of 1..100 device ids";
    if (!devices || json_is_null(devices))
        return 0;
    size_t n = json_array_size(devices);
    if (!json_is_array(devices) || n == 0 || n > GW_TOKEN_MAX_DEVICES ||
        !(t->devices = calloc(n, sizeof *t->devices)))
        return -1;
    for (size_t i = 0; i < n; i++) {
        const char *d = json_string_value(json_array_get(devices, i));
        if (!d || !lc_device_id_valid(d, strlen(d)))
            return -1;
        t->devices[t->n_devices++] = (char *)d;
    }
    return 0;
}

/* The 201 of a created token: the token itself, shown this once. */
static json_t *s_created_json(const Lcore__V1__Token *t, const char *text)
{
    return json_pack("{s:s, s:s, s:s, s:o, s:o}", "id", t->id, "token", text, "scope", t->scope,
                     "devices", s_token_devices(t), "expires_at", gw_json_time(t->expires_at_us));
}

/* POST /v1/tokens */
enum MHD_Result gw_op_token_create(const gw_call_t *call)
{
    enum MHD_Result ret = MHD_NO;
    json_t *body = s_body(call, "{scope, devices (optional), expires_in_s (optional)}", &ret);
    if (!body)
        return ret;
    Lcore__V1__Token t = LCORE__V1__TOKEN__INIT;
    const char *why = NULL;
    if (s_token_spec(body, &t, &why) < 0) {
        free(t.devices);
        json_decref(body);
        return gw_reply_error(call, 400, "malformed", why, 0);
    }
    char text[GW_TOKEN_TEXT_LEN + 1], id[GW_TOKEN_ID_MAX + 1];
    uint8_t hash[32];
    gw_tokens_generate(text, hash, id);
    t.id = id;
    t.hash.data = hash;
    t.hash.len = sizeof hash;
    t.created_by = (char *)call->token->id;
    Lcore__V1__Query q = LCORE__V1__QUERY__INIT;
    q.body_case = LCORE__V1__QUERY__BODY_CREATE_TOKEN;
    q.create_token = &t;
    Lcore__V1__QueryReply *r = s_ask(call, &q);
    if (s_ok(r)) {
        lc_info("token_created", "id=%s scope=%s devices=%zu token_id=%s", id, t.scope, t.n_devices,
                call->token->id);
        ret = gw_reply_json_secret(call, 201, s_created_json(&t, text));
    } else {
        ret = s_not_ok(call, r, "no such token");
    }
    sodium_memzero(text, sizeof text);
    sodium_memzero(hash, sizeof hash);
    free(t.devices);
    json_decref(body);
    if (r)
        lcore__v1__query_reply__free_unpacked(r, NULL);
    return ret;
}

/* GET /v1/tokens: the live tokens, never their secret (only its hash is kept). */
enum MHD_Result gw_op_token_list(const gw_call_t *call)
{
    Lcore__V1__Query q = LCORE__V1__QUERY__INIT;
    q.body_case = LCORE__V1__QUERY__BODY_LIST_TOKENS;
    q.list_tokens = 1;
    Lcore__V1__QueryReply *r = s_ask(call, &q);
    enum MHD_Result ret;
    if (!s_ok(r)) {
        ret = s_not_ok(call, r, "no tokens");
    } else {
        json_t *tokens = json_array();
        for (size_t i = 0; tokens && i < r->n_tokens; i++) {
            const Lcore__V1__Token *t = r->tokens[i];
            json_array_append_new(
                tokens, json_pack("{s:s, s:s, s:o, s:o, s:o, s:s}", "id", t->id ? t->id : "",
                                  "scope", t->scope ? t->scope : "", "devices", s_token_devices(t),
                                  "expires_at", gw_json_time(t->expires_at_us), "created_at",
                                  gw_json_time(t->created_at_us), "created_by",
                                  t->created_by ? t->created_by : ""));
        }
        ret = gw_reply_json(call, 200, json_pack("{s:o}", "tokens", tokens));
    }
    if (r)
        lcore__v1__query_reply__free_unpacked(r, NULL);
    return ret;
}

static int s_token_id_valid(const char *id)
{
    if (strlen(id) != 20 || strncmp(id, "tok_", 4) != 0)
        return 0;
    for (const char *p = id + 4; *p; p++)
        if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
            return 0;
    return 1;
}

/* DELETE /v1/tokens/{token_id} */
enum MHD_Result gw_op_token_delete(const gw_call_t *call)
{
    if (!s_token_id_valid(call->param))
        return gw_reply_error(call, 400, "malformed", "token id must be tok_ and 16 hex digits", 0);
    Lcore__V1__Query q = LCORE__V1__QUERY__INIT;
    q.body_case = LCORE__V1__QUERY__BODY_DELETE_TOKEN;
    q.delete_token = (char *)call->param;
    Lcore__V1__QueryReply *r = s_ask(call, &q);
    enum MHD_Result ret;
    if (s_ok(r)) {
        gw_tokens_forget(call->deps->tokens, call->param);
        lc_info("token_deleted", "id=%s token_id=%s", call->param, call->token->id);
        ret = gw_reply_json(call, 200,
                            json_pack("{s:s, s:s}", "id", call->param, "status", "deleted"));
    } else {
        ret = s_not_ok(call, r, "no such token (or deleted already)");
    }
    if (r)
        lcore__v1__query_reply__free_unpacked(r, NULL);
    return ret;
}

static json_t *s_entries_json(const Lcore__V1__QueryReply *r)
{
    json_t *entries = json_array();
    for (size_t i = 0; entries && i < r->n_audit; i++) {
        const Lcore__V1__AuditEntry *e = r->audit[i];
        json_array_append_new(entries, json_pack("{s:I, s:o, s:s, s:s, s:s}", "id",
                                                 (json_int_t)e->id, "at", gw_json_time(e->at_us),
                                                 "token_id", e->token_id ? e->token_id : "",
                                                 "action", e->action ? e->action : "", "target",
                                                 e->target ? e->target : ""));
    }
    return entries;
}

/* GET /v1/audit?after=&limit= : oldest first. */
enum MHD_Result gw_op_audit(const gw_call_t *call)
{
    int limit = gw_arg_limit(call, 100);
    const char *after = gw_call_arg(call, "after");
    Lcore__V1__AuditList al = LCORE__V1__AUDIT_LIST__INIT;
    if (limit < 0)
        return gw_reply_error(call, 400, "malformed", "limit must be an integer from 1 to 1000", 0);
    if (after && after[0]) {
        if (gw_cursor_parse_u64(after, S_CURSOR_AUDIT, &al.after) < 0)
            return gw_reply_error(call, 400, "malformed",
                                  "after must be the \"next\" of a previous page", 0);
    }
    al.limit = (uint32_t)limit;
    Lcore__V1__Query q = LCORE__V1__QUERY__INIT;
    q.body_case = LCORE__V1__QUERY__BODY_LIST_AUDIT;
    q.list_audit = &al;
    Lcore__V1__QueryReply *r = s_ask(call, &q);
    enum MHD_Result ret;
    if (!s_ok(r) || r->n_audit > (size_t)limit) {
        ret = s_not_ok(call, r, "no audit log");
    } else {
        json_t *next = json_null();
        char cursor[GW_CURSOR_MAX];
        if (r->more && r->n_audit &&
            gw_cursor_make_u64(cursor, S_CURSOR_AUDIT, r->audit[r->n_audit - 1]->id) == 0)
            next = json_string(cursor);
        ret = gw_reply_json(call, 200,
                            json_pack("{s:o, s:o}", "entries", s_entries_json(r), "next", next));
    }
    if (r)
        lcore__v1__query_reply__free_unpacked(r, NULL);
    return ret;
}
