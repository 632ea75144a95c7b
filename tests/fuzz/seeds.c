/* seeds.c: writes the seed inputs of the services' fuzz targets that have to be computed (record
 * ids, hashes, sealed records, write-ahead log segments sealed with the fixed gateway ring) into
 * DIR/<target>/ (build-fuzz/fuzz_seeds tests/fuzz/corpus). Run by hand when a message or the log
 * format changes, and commit what it writes. Nonces and times differ from run to run; the seeds'
 * validity does not. */
#include <dirent.h>
#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fuzz_support.h"
#include "gw_letter.h"
#include "gw_wal.h"
#include "lc_record.h"
#include "lc_seal.h"
#include "lc_zmq.h"
#include "lcore.pb-c.h"

static const char *s_dir;
static const char s_jws[] = "eyJhbGciOiJFZERTQSIsImtpZCI6InNlbnNvci0wMSJ9."
                            "eyJkZXZpY2VfaWQiOiJzZW5zb3ItMDEiLCJzZXEiOjEsInRzIjoxLCJkYXRhIjoxfQ."
                            "c2lnbmF0dXJlc2lnbmF0dXJlc2lnbmF0dXJlc2lnbmF0dXJl";

/* DIR/target/name := prefix bytes (np of them) then p[0..n). */
static void s_write(const char *target, const char *name, const void *prefix, size_t np,
                    const void *p, size_t n)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", s_dir, target);
    if (mkdir(path, 0755) < 0 && errno != EEXIST)
        abort();
    snprintf(path, sizeof path, "%s/%s/%s", s_dir, target, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(prefix, 1, np, f) != np || fwrite(p, 1, n, f) != n || fclose(f) != 0)
        abort();
}

/* A message packed into a malloc'd buffer (*len bytes). */
static uint8_t *s_pack(const ProtobufCMessage *m, size_t *len)
{
    *len = protobuf_c_message_get_packed_size(m);
    uint8_t *p = malloc(*len ? *len : 1);
    if (!p)
        abort();
    protobuf_c_message_pack(m, p);
    return p;
}

static void s_write_pb(const char *target, const char *name, const ProtobufCMessage *m)
{
    size_t len;
    uint8_t *p = s_pack(m, &len);
    s_write(target, name, "", 0, p, len);
    free(p);
}

/* Messages packed as the entries of one batch (a ReadingBatch or SealedBatch), malloc'd. */
static uint8_t *s_pack_batch(const ProtobufCMessage *const *msgs, size_t n, size_t *len)
{
    lc_zmq_batch_t b = {0};
    for (size_t i = 0; i < n; i++) {
        size_t one = protobuf_c_message_get_packed_size(msgs[i]);
        uint8_t *p = lc_zmq_batch_add(&b, one);
        if (!p)
            abort();
        protobuf_c_message_pack(msgs[i], p);
    }
    uint8_t *out = malloc(b.len ? b.len : 1);
    if (!out)
        abort();
    memcpy(out, b.buf, b.len);
    *len = b.len;
    lc_zmq_batch_free(&b);
    return out;
}

/* DIR/target/name := the messages as one batch. */
static void s_write_batch(const char *target, const char *name, const ProtobufCMessage *const *msgs,
                          size_t n)
{
    size_t len;
    uint8_t *p = s_pack_batch(msgs, n, &len);
    s_write(target, name, "", 0, p, len);
    free(p);
}

/* A valid Reading of sensor-01's seq, ids and hash filled into the caller's buffers. */
static Lcore__V1__Reading s_reading(uint64_t seq, uint8_t id[32], uint8_t hash[32])
{
    Lcore__V1__Reading r = LCORE__V1__READING__INIT;
    r.version = 1;
    r.device_id = (char *)"sensor-01";
    r.seq = seq;
    r.device_ts_ms = 1700000000000;
    r.received_at_us = 1700000000000000;
    r.jws.data = (uint8_t *)s_jws;
    r.jws.len = sizeof s_jws - 1;
    r.gateway_id = (char *)"gw-1";
    r.attempt = 1;
    r.max_attempts = 5;
    lc_record_id(id, r.device_id, strlen(r.device_id), seq);
    lc_reading_hash(hash, r.jws.data, r.jws.len);
    r.record_id = (ProtobufCBinaryData){32, id};
    r.reading_hash = (ProtobufCBinaryData){32, hash};
    return r;
}

static void s_worker_seeds(void)
{
    const char *t = "cw_worker";
    uint8_t id[32], hash[32];
    Lcore__V1__Reading r = s_reading(1, id, hash);
    s_write_batch(t, "valid", (const ProtobufCMessage *[]){&r.base}, 1);
    s_write_pb(t, "not_a_batch", &r.base);
    r.seq = 2;
    s_write_batch(t, "record_id_mismatch", (const ProtobufCMessage *[]){&r.base}, 1);
    r.seq = 1;
    r.version = 2;
    s_write_batch(t, "version_2", (const ProtobufCMessage *[]){&r.base}, 1);
    r.version = 1;
    hash[0] ^= 1;
    s_write_batch(t, "reading_hash_wrong", (const ProtobufCMessage *[]){&r.base}, 1);
    hash[0] ^= 1;
    r.gateway_id = (char *)"g234567890123456789012345678901234567890123456789012345678901234X";
    s_write_batch(t, "gateway_id_65", (const ProtobufCMessage *[]){&r.base}, 1);
    r.gateway_id = (char *)"gw-1";
    r.jws.len = 0;
    s_write_batch(t, "jws_empty", (const ProtobufCMessage *[]){&r.base}, 1);
    Lcore__V1__Reading hb = LCORE__V1__READING__INIT;
    hb.version = 1;
    hb.heartbeat = 1;
    hb.received_at_us = 1700000000000000;
    hb.gateway_id = (char *)"gw-1";
    s_write_batch(t, "heartbeat", (const ProtobufCMessage *[]){&hb.base}, 1);
    hb.gateway_id = (char *)"";
    s_write_batch(t, "heartbeat_no_gateway", (const ProtobufCMessage *[]){&hb.base}, 1);
    s_write(t, "empty", "", 0, "", 0);
    uint8_t id2[32], hash2[32];
    Lcore__V1__Reading r2 = s_reading(2, id2, hash2), bad = s_reading(1, id, hash);
    bad.seq = 3;
    hb.gateway_id = (char *)"gw-1";
    s_write_batch(t, "three", (const ProtobufCMessage *[]){&r2.base, &hb.base, &bad.base}, 3);
}

/* A SealedRecord of sensor-01's seq, sealed with the fixed seal ring into the buffers given. */
static Lcore__V1__SealedRecord s_sealed(lc_sealer_t *sealer, uint64_t seq, uint8_t id[32],
                                        uint8_t hash[32], uint8_t *ct, lc_sealed_t *out)
{
    Lcore__V1__Reading r = s_reading(seq, id, hash);
    if (lc_seal(sealer, out, ct, id, "sensor-01", 9, r.jws.data, r.jws.len) < 0)
        abort();
    Lcore__V1__SealedRecord s = LCORE__V1__SEALED_RECORD__INIT;
    s.version = 1;
    s.record_id = r.record_id;
    s.device_id = r.device_id;
    s.seq = seq;
    s.device_ts_ms = r.device_ts_ms;
    s.received_at_us = r.received_at_us;
    s.sealed_at_us = r.received_at_us + 300;
    s.key_version = out->key_version;
    s.aes_nonce = (ProtobufCBinaryData){LC_AES_NONCE_LEN, out->aes_nonce};
    s.xchacha_nonce = (ProtobufCBinaryData){LC_XCHACHA_NONCE_LEN, out->xchacha_nonce};
    s.ciphertext = (ProtobufCBinaryData){out->ciphertext_len, ct};
    s.envelope_hash = (ProtobufCBinaryData){LC_ENVELOPE_HASH_LEN, out->envelope_hash};
    s.gateway_id = r.gateway_id;
    s.attempt = 1;
    s.max_attempts = 5;
    s.reading_hash = r.reading_hash;
    return s;
}

/* The writer's input: messages framed with a 2-byte little-endian length, each a batch of `per`
 * records (msgs[0 .. per), then msgs[per .. 2 per), ...). */
static void s_frames_of(const char *name, const ProtobufCMessage *const *msgs, size_t n, size_t per)
{
    uint8_t out[8192];
    size_t off = 0;
    for (size_t i = 0; i < n; i += per) {
        size_t len;
        uint8_t *p = s_pack_batch(msgs + i, n - i < per ? n - i : per, &len);
        if (off + 2 + len > sizeof out)
            abort();
        out[off] = (uint8_t)len;
        out[off + 1] = (uint8_t)(len >> 8);
        memcpy(out + off + 2, p, len);
        off += 2 + len;
        free(p);
    }
    s_write("st_writer", name, "", 0, out, off);
}

/* Each record in a batch of its own. */
static void s_frames(const char *name, const ProtobufCMessage *const *msgs, size_t n)
{
    s_frames_of(name, msgs, n, 1);
}

static void s_writer_seeds(lc_sealer_t *sealer)
{
    uint8_t id1[32], h1[32], ct1[512], id2[32], h2[32], ct2[512];
    lc_sealed_t o1, o2;
    Lcore__V1__SealedRecord a = s_sealed(sealer, 1, id1, h1, ct1, &o1);
    Lcore__V1__SealedRecord b = s_sealed(sealer, 2, id2, h2, ct2, &o2);
    Lcore__V1__SealedRecord hb = LCORE__V1__SEALED_RECORD__INIT;
    hb.version = 1;
    hb.heartbeat = 1;
    hb.gateway_id = (char *)"gw-1";
    const ProtobufCMessage *one[] = {&a.base}, *two[] = {&a.base, &b.base},
                           *dup[] = {&a.base, &a.base, &hb.base};
    s_frames("valid", one, 1);
    s_frames("two", two, 2);
    s_frames("same_twice_and_heartbeat", dup, 3);
    const ProtobufCMessage *nine[] = {&a.base, &b.base, &a.base, &b.base, &a.base,
                                      &b.base, &a.base, &b.base, &a.base};
    s_frames("over_batch", nine, 9);
    Lcore__V1__SealedRecord bad = a;
    bad.key_version = 0;
    const ProtobufCMessage *kv[] = {&bad.base, &b.base};
    s_frames("key_version_0", kv, 2);
    bad = a;
    bad.envelope_hash = b.envelope_hash;
    s_frames("envelope_hash_other", (const ProtobufCMessage *[]){&bad.base}, 1);
    bad = a;
    bad.attempt = 1001;
    s_frames("attempt_1001", (const ProtobufCMessage *[]){&bad.base}, 1);
    bad = a;
    bad.ciphertext.len = LC_SEAL_OVERHEAD;
    s_frames("ciphertext_short", (const ProtobufCMessage *[]){&bad.base}, 1);
    bad = a;
    bad.seq = (uint64_t)INT64_MAX + 1;
    s_frames("seq_over_i63", (const ProtobufCMessage *[]){&bad.base}, 1);
    s_write("st_writer", "garbage_then_short", "", 0, "\x03\x00\xff\xff\xff\x40\x00\x0a", 8);
    s_frames_of("records_in_one_batch", (const ProtobufCMessage *[]){&a.base, &hb.base, &b.base}, 3,
                3);
    const ProtobufCMessage *beats[LC_ZMQ_BATCH_MAX + 1];
    for (size_t i = 0; i < LC_ZMQ_BATCH_MAX + 1; i++)
        beats[i] = &hb.base;
    s_frames_of("heartbeats_over_max", beats, LC_ZMQ_BATCH_MAX + 1, LC_ZMQ_BATCH_MAX + 1);
}

static void s_query(const char *name, Lcore__V1__Query *q)
{
    q->version = 1;
    q->request_id = 42;
    s_write_pb("st_query", name, &q->base);
}

static void s_query_seeds(lc_sealer_t *sealer)
{
    uint8_t id[32], h[32], ct[512], pk[32], sk[64], sealed_gw[64];
    lc_sealed_t o;
    Lcore__V1__SealedRecord s = s_sealed(sealer, 1, id, h, ct, &o);
    Lcore__V1__Query q = LCORE__V1__QUERY__INIT;
    q.body_case = LCORE__V1__QUERY__BODY_PING;
    q.ping = 1;
    s_query("ping", &q);
    q = (Lcore__V1__Query)LCORE__V1__QUERY__INIT;
    q.body_case = LCORE__V1__QUERY__BODY_STORE_POSITIONS;
    q.store_positions = 1;
    s_query("store_positions", &q);
    q = (Lcore__V1__Query)LCORE__V1__QUERY__INIT;
    q.body_case = LCORE__V1__QUERY__BODY_GET_DEVICE;
    q.get_device = (char *)"sensor-01";
    s_query("get_device", &q);
    q.body_case = LCORE__V1__QUERY__BODY_GET_RECORD;
    q.get_record = (ProtobufCBinaryData){32, id};
    s_query("get_record", &q);
    q.get_record.len = 31;
    s_query("get_record_31", &q);
    q.body_case = LCORE__V1__QUERY__BODY_GET_SEALED;
    q.get_sealed = (ProtobufCBinaryData){32, id};
    s_query("get_sealed", &q);
    q.body_case = LCORE__V1__QUERY__BODY_GET_ANCHOR;
    q.get_anchor = (ProtobufCBinaryData){32, id};
    s_query("get_anchor_not_the_store", &q);

    Lcore__V1__Device d = LCORE__V1__DEVICE__INIT;
    crypto_sign_keypair(pk, sk);
    d.device_id = (char *)"sensor-01";
    d.alg = (char *)"EdDSA";
    d.public_key = (ProtobufCBinaryData){32, pk};
    d.did_document = (char *)"{\"id\":\"did:example:1\"}";
    q.body_case = LCORE__V1__QUERY__BODY_REGISTER_DEVICE;
    q.register_device = &d;
    s_query("register_device", &q);
    d.alg = (char *)"ES256";
    s_query("register_bad_alg", &q);

    Lcore__V1__RecordsAfter ra = LCORE__V1__RECORDS_AFTER__INIT;
    ra.store_id = (char *)"store-1";
    ra.after = 10;
    ra.limit = 100;
    q.body_case = LCORE__V1__QUERY__BODY_RECORDS_AFTER;
    q.records_after = &ra;
    s_query("records_after", &q);
    ra.store_id = (char *)"store 1";
    s_query("records_after_bad_store_id", &q);

    Lcore__V1__DeadLetter dl = LCORE__V1__DEAD_LETTER__INIT;
    dl.record_id = (ProtobufCBinaryData){32, id};
    dl.device_id = (char *)"sensor-01";
    dl.seq = 1;
    dl.device_ts_ms = 1700000000000;
    dl.received_at_us = 1700000000000000;
    dl.gateway_id = (char *)"gw-1";
    dl.attempts = 5;
    dl.stage = (char *)"store";
    dl.reason = (char *)"refused by PostgreSQL: 23514: check";
    dl.sealed = &s;
    q.body_case = LCORE__V1__QUERY__BODY_DEAD_LETTER;
    q.dead_letter = &dl;
    s_query("dead_letter_store", &q);
    dl.stage = (char *)"crypto";
    dl.sealed = NULL;
    randombytes_buf(sealed_gw, sizeof sealed_gw);
    dl.gateway_sealed = (ProtobufCBinaryData){sizeof sealed_gw, sealed_gw};
    dl.gateway_key_version = 1;
    s_query("dead_letter_crypto", &q);
    dl.reason = (char *)"bad \xc3\x28 utf-8";
    s_query("dead_letter_reason_not_utf8", &q);

    Lcore__V1__DeadLetterList l = LCORE__V1__DEAD_LETTER_LIST__INIT;
    l.limit = 10;
    l.unresolved_only = 1;
    q.body_case = LCORE__V1__QUERY__BODY_LIST_DEAD_LETTERS;
    q.list_dead_letters = &l;
    s_query("list_dead_letters", &q);
    l.after = (ProtobufCBinaryData){32, id};
    s_query("list_dead_letters_after", &q);
    l.after.len = 5;
    s_query("list_dead_letters_after_5", &q);

    ProtobufCBinaryData ids[101];
    for (size_t i = 0; i < 101; i++)
        ids[i] = (ProtobufCBinaryData){32, id};
    Lcore__V1__DeadLetterReplay rp = LCORE__V1__DEAD_LETTER_REPLAY__INIT;
    rp.record_ids = ids;
    rp.n_record_ids = 2;
    q.body_case = LCORE__V1__QUERY__BODY_REPLAY_DEAD_LETTERS;
    q.replay_dead_letters = &rp;
    s_query("replay_dead_letters", &q);
    rp.n_record_ids = 101;
    s_query("replay_dead_letters_101", &q);
    rp.n_record_ids = 0;
    s_query("replay_dead_letters_none", &q);
    s_write("st_query", "empty", "", 0, "", 0);
}

/* The operator and reader APIs' bodies (st_admin), valid ones and a few refused. */
static void s_admin_query_seeds(void)
{
    uint8_t pk[32], sk[64], hash[32];
    crypto_sign_keypair(pk, sk);
    crypto_hash_sha256(hash, (const uint8_t *)"token", 5);
    Lcore__V1__Query q = LCORE__V1__QUERY__INIT;
    q.actor = (char *)"tok_0123456789abcdef";
    Lcore__V1__DeviceList dl = LCORE__V1__DEVICE_LIST__INIT;
    dl.after = (char *)"sensor-01";
    dl.limit = 100;
    q.body_case = LCORE__V1__QUERY__BODY_LIST_DEVICES;
    q.list_devices = &dl;
    s_query("list_devices", &q);
    Lcore__V1__SetDeviceStatus ss = LCORE__V1__SET_DEVICE_STATUS__INIT;
    ss.device_id = (char *)"sensor-01";
    ss.revoked = 1;
    q.body_case = LCORE__V1__QUERY__BODY_SET_DEVICE_STATUS;
    q.set_device_status = &ss;
    s_query("set_device_status", &q);
    Lcore__V1__RotateKey rk = LCORE__V1__ROTATE_KEY__INIT;
    rk.device_id = (char *)"sensor-01";
    rk.alg = (char *)"EdDSA";
    rk.public_key = (ProtobufCBinaryData){32, pk};
    rk.overlap_s = 3600;
    q.body_case = LCORE__V1__QUERY__BODY_ROTATE_KEY;
    q.rotate_key = &rk;
    s_query("rotate_key", &q);
    char *devices[] = {(char *)"sensor-01", (char *)"sensor-02"};
    Lcore__V1__Token t = LCORE__V1__TOKEN__INIT;
    t.id = (char *)"tok_0123456789abcdef";
    t.hash = (ProtobufCBinaryData){32, hash};
    t.scope = (char *)"read";
    t.devices = devices;
    t.n_devices = 2;
    q.body_case = LCORE__V1__QUERY__BODY_CREATE_TOKEN;
    q.create_token = &t;
    s_query("create_token", &q);
    q.body_case = LCORE__V1__QUERY__BODY_DELETE_TOKEN;
    q.delete_token = (char *)"tok_0123456789abcdef";
    s_query("delete_token", &q);
    q.body_case = LCORE__V1__QUERY__BODY_GET_TOKEN;
    q.get_token = (ProtobufCBinaryData){32, hash};
    s_query("get_token", &q);
    Lcore__V1__AuditEntry e = LCORE__V1__AUDIT_ENTRY__INIT;
    e.token_id = (char *)"tok_0123456789abcdef";
    e.action = (char *)"open";
    e.target = (char *)"00ff";
    q.body_case = LCORE__V1__QUERY__BODY_APPEND_AUDIT;
    q.append_audit = &e;
    s_query("append_audit", &q);
    Lcore__V1__RecordList rl = LCORE__V1__RECORD_LIST__INIT;
    rl.device_id = (char *)"sensor-01";
    rl.to_seq = INT64_MAX;
    rl.has_after = 1;
    rl.after_seq = 10;
    rl.limit = 50;
    q.body_case = LCORE__V1__QUERY__BODY_LIST_RECORDS;
    q.list_records = &rl;
    s_query("list_records", &q);
    q.actor = (char *)"";
    q.body_case = LCORE__V1__QUERY__BODY_SET_DEVICE_STATUS;
    s_query("set_device_status_no_actor", &q);
}

static void s_ack_seeds(void)
{
    uint8_t a[32], b[32], h[32];
    lc_record_id(a, "sensor-01", 9, 1);
    lc_record_id(b, "sensor-01", 9, 2);
    lc_reading_hash(h, (const uint8_t *)"x", 1);
    ProtobufCBinaryData ids[] = {{32, a}, {32, b}, {31, h}}, conf[] = {{32, h}};
    Lcore__V1__Ack ack = LCORE__V1__ACK__INIT;
    ack.version = 1;
    ack.record_ids = ids;
    ack.n_record_ids = 2;
    s_write_pb("gw_ack", "two_ids", &ack.base);
    ack.conflicts = conf;
    ack.n_conflicts = 1;
    s_write_pb("gw_ack", "ids_and_conflict", &ack.base);
    ack.n_record_ids = 3;
    s_write_pb("gw_ack", "id_31_bytes", &ack.base);
    ack.version = 2;
    s_write_pb("gw_ack", "version_2", &ack.base);
    s_write("gw_ack", "empty", "", 0, "", 0);
}

static void s_on_reading(void *arg, uint64_t segment, const uint8_t record_id[32],
                         const uint8_t *data, size_t len)
{
    (void)arg, (void)segment, (void)record_id, (void)data, (void)len;
}

static void s_on_ack(void *arg, const uint8_t record_id[32])
{
    (void)arg, (void)record_id;
}

/* Appends readings seq from..to-1 and acks for the first `acked` of them, then syncs. */
static void s_wal_fill(gw_wal_t *w, uint64_t from, uint64_t to, size_t acked)
{
    uint8_t ids[16][32], hash[32];
    for (uint64_t seq = from; seq < to; seq++) {
        Lcore__V1__Reading r = s_reading(seq, ids[seq - from], hash);
        uint64_t lsn;
        if (gw_wal_append_pb(w, ids[seq - from], &r.base, &lsn) < 0)
            abort();
    }
    if ((acked && gw_wal_append_acks(w, (const uint8_t(*)[32])ids, acked) < 0) ||
        gw_wal_sync(w, s_on_reading, NULL) < 0)
        abort();
}

/* A log written, closed and reopened (so that its older segments carry their trailer); each
 * segment file becomes a seed (byte 0: segment << 1 | newest), and a few near-valid copies. */
static void s_wal_seeds(void)
{
    char dir[] = "/tmp/lcore-fuzz-seeds-XXXXXX";
    if (!mkdtemp(dir))
        abort();
    lc_keyring_t *ring = fz_ring(FZ_GATEWAY_RING, LC_KEYRING_GATEWAY);
    lc_metrics_t *m = lc_metrics_new();
    gw_wal_opts_t o = {dir, ring, 1u << 24, 1000, 1200, m, 0};
    gw_wal_t *w = gw_wal_open(&o, s_on_reading, s_on_ack, NULL);
    if (!w)
        abort();
    s_wal_fill(w, 1, 4, 2);
    s_wal_fill(w, 4, 9, 0);
    s_wal_fill(w, 9, 11, 1);
    gw_wal_destroy(&w);
    if (!(w = gw_wal_open(&o, s_on_reading, s_on_ack, NULL)))
        abort();
    gw_wal_destroy(&w);
    struct dirent **names;
    int n = scandir(dir, &names, NULL, alphasort);
    unsigned newest = 0;
    for (int i = 0; i < n; i++)
        if (strstr(names[i]->d_name, ".wal"))
            newest = (unsigned)strtoul(names[i]->d_name, NULL, 16);
    for (int i = 0; i < n; i++) {
        char path[256], name[64];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]->d_name);
        unsigned no = (unsigned)strtoul(names[i]->d_name, NULL, 16);
        FILE *f = strstr(names[i]->d_name, ".wal") ? fopen(path, "rb") : NULL;
        static uint8_t buf[1 << 16];
        size_t len = f ? fread(buf, 1, sizeof buf, f) : 0;
        if (f) {
            fclose(f);
            uint8_t pre = (uint8_t)(no << 1 | (no == newest));
            snprintf(name, sizeof name, "segment_%u%s", no, no == newest ? "_newest" : "");
            s_write("gw_wal_replay", name, &pre, 1, buf, len);
            if (no == 1 && len > 100) {
                uint8_t closed = 1 << 1, as_newest = closed | 1;
                s_write("gw_wal_replay", "segment_1_cut", &closed, 1, buf, len - 37);
                s_write("gw_wal_replay", "segment_1_cut_newest", &as_newest, 1, buf, len - 37);
                buf[len / 2] ^= 0x20;
                s_write("gw_wal_replay", "segment_1_flipped", &closed, 1, buf, len);
                uint8_t other = 5 << 1;
                s_write("gw_wal_replay", "segment_1_named_5", &other, 1, buf, len);
            }
        }
        unlink(path);
        free(names[i]);
    }
    free(names);
    rmdir(dir);
    uint8_t zeros[64] = {1}; /* newest, segment 0, no header yet */
    s_write("gw_wal_replay", "newest_all_zero", "", 0, zeros, sizeof zeros);
    s_write("gw_wal_replay", "v1_header", "\x02", 1, "LCWAL001", 8);
    lc_metrics_destroy(&m);
    lc_keyring_destroy(&ring);
}

/* One dead letter as the store sends it back for a replay (gw_gw_letter's input): a Reading
 * sealed with the fixed gateway ring, then variants that must not open. */
static void s_letter(const char *name, lc_keyring_t *ring, uint64_t seq, uint32_t version_delta,
                     int other_id, size_t cut)
{
    uint8_t id[32], hash[32], other[32];
    Lcore__V1__Reading r = s_reading(seq, id, hash);
    size_t len;
    uint8_t *packed = s_pack(&r.base, &len), *sealed = NULL;
    size_t slen = 0;
    uint32_t version = 0;
    if (!packed || gw_letter_seal(ring, id, packed, len, &sealed, &slen, &version) < 0)
        abort();
    lc_record_id(other, "sensor-01", 9, seq + 1);
    Lcore__V1__DeadLetter dl = LCORE__V1__DEAD_LETTER__INIT;
    dl.record_id = (ProtobufCBinaryData){32, other_id ? other : id};
    dl.device_id = (char *)"sensor-01";
    dl.seq = seq;
    dl.gateway_id = (char *)"gw-1";
    dl.gateway_sealed = (ProtobufCBinaryData){slen > cut ? slen - cut : 0, sealed};
    dl.gateway_key_version = version + version_delta;
    s_write_pb("gw_letter", name, &dl.base);
    free(packed);
    free(sealed);
}

static void s_letter_seeds(void)
{
    lc_keyring_t *ring = fz_ring(FZ_GATEWAY_RING, LC_KEYRING_GATEWAY);
    s_letter("valid", ring, 7, 0, 0, 0);
    s_letter("key_version_unknown", ring, 7, 1, 0, 0);
    s_letter("other_record", ring, 7, 0, 1, 0);
    s_letter("cut_tag", ring, 7, 0, 0, 5);
    s_letter("cut_to_nonce", ring, 7, 0, 0, 16 + 3);
    s_write("gw_letter", "empty", "", 0, "", 0);
    lc_keyring_destroy(&ring);
}

int main(int argc, char **argv)
{
    if (argc != 2 || sodium_init() < 0) {
        fprintf(stderr, "usage: fuzz_seeds DIR (e.g. tests/fuzz/corpus)\n");
        return 2;
    }
    s_dir = argv[1];
    lc_keyring_t *seal = fz_ring(FZ_SEAL_RING, LC_KEYRING_SEAL);
    lc_sealer_t *sealer = lc_sealer_new(seal, LC_AES_AUTO);
    if (!sealer)
        abort();
    s_worker_seeds();
    s_writer_seeds(sealer);
    s_query_seeds(sealer);
    s_admin_query_seeds();
    s_ack_seeds();
    s_wal_seeds();
    s_letter_seeds();
    lc_sealer_destroy(&sealer);
    lc_keyring_destroy(&seal);
    return 0;
}
