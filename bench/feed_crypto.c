/* feed_crypto.c: `lcore-bench-feed crypto`: the crypto workers' rate alone. This program binds
 * the readings PUSH (as the gateway does) and the sealed PULL (as the store does); lcore-crypto
 * workers started separately connect to both with the same key ring as always. It pre-builds
 * --count Reading messages of --devices devices (real signed JWS of ~200-byte readings, as
 * lcore-sim makes them, record_id correct), waits for --workers workers, pushes them as fast as
 * the workers take them (at most --window unanswered, so nothing blocks forever), and checks
 * every SealedRecord that comes back: a reading it sent, not seen before, record_id recomputed,
 * envelope_hash recomputed from the envelope, ciphertext length. The rate is from the first send
 * to the last sealed record received. */
#include <czmq.h>
#include <getopt.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_util.h"
#include "feed.h"
#include "lc_zmq.h"

#define PROG "lcore-bench-feed crypto"

typedef struct {
    const char *readings_bind, *sealed_bind, *gateway_id;
    uint64_t count, devices, workers, window, batch;
    double timeout_s;
    lc_alg_t alg;
} opts_t;

/* The pre-built readings: packed Reading messages back to back, and what checking needs. */
typedef struct {
    uint8_t *buf;
    size_t len;        /* bytes used in buf */
    size_t *off;       /* message i is buf[off[i] .. off[i+1]) */
    uint32_t *jws_len; /* plaintext length of reading i */
    uint8_t *seen;     /* sealed record received for reading i */
} readings_t;

static void s_usage(FILE *out)
{
    fprintf(
        out,
        "usage: " PROG " --readings-bind EP --sealed-bind EP [--count N] [--devices D]\n"
        "          [--workers W] [--window K] [--alg EdDSA|ES256K] [--gateway-id ID]\n"
        "          [--timeout S] [--batch B]\n"
        "  Be the gateway and the store of lcore-crypto workers started with\n"
        "  LCORE_CRYPTO_READINGS_CONNECT / LCORE_CRYPTO_SEALED_CONNECT pointing here.\n"
        "  --count N     readings (default 100000)      --devices D  devices (default 100)\n"
        "  --workers W   wait for W workers (default 1) --window K   unanswered (default 2000)\n"
        "  --timeout S   give up after S seconds once signed (default 120)\n"
        "  --batch B     readings per message, as the gateway's relay sends them (default 64)\n");
}

static int s_parse(opts_t *o, int argc, char **argv)
{
    static const struct option longopts[] = {{"readings-bind", required_argument, NULL, 'r'},
                                             {"sealed-bind", required_argument, NULL, 's'},
                                             {"count", required_argument, NULL, 'n'},
                                             {"devices", required_argument, NULL, 'd'},
                                             {"workers", required_argument, NULL, 'w'},
                                             {"window", required_argument, NULL, 'W'},
                                             {"alg", required_argument, NULL, 'a'},
                                             {"gateway-id", required_argument, NULL, 'g'},
                                             {"timeout", required_argument, NULL, 't'},
                                             {"batch", required_argument, NULL, 'b'},
                                             {"help", no_argument, NULL, 'h'},
                                             {0}};
    *o = (opts_t){.gateway_id = "bench-feed",
                  .count = 100000,
                  .devices = 100,
                  .workers = 1,
                  .window = 2000,
                  .batch = 64,
                  .timeout_s = 120,
                  .alg = LC_ALG_EDDSA};
    int c, bad = 0;
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1 && !bad) {
        switch (c) {
        case 'r':
            o->readings_bind = optarg;
            break;
        case 's':
            o->sealed_bind = optarg;
            break;
        case 'n':
            bad = bench_parse_u64(PROG, "--count", optarg, 1, 10000000, &o->count);
            break;
        case 'd':
            bad = bench_parse_u64(PROG, "--devices", optarg, 1, 100000, &o->devices);
            break;
        case 'w':
            bad = bench_parse_u64(PROG, "--workers", optarg, 1, 1000, &o->workers);
            break;
        case 'W':
            bad = bench_parse_u64(PROG, "--window", optarg, 1, 1000000, &o->window);
            break;
        case 'a':
            o->alg = lc_alg_from_name(optarg);
            bad = o->alg == LC_ALG_NONE;
            if (bad)
                fprintf(stderr, PROG ": --alg must be EdDSA or ES256K\n");
            break;
        case 'g':
            o->gateway_id = optarg;
            bad = !*optarg || strlen(optarg) > 64;
            if (bad)
                fprintf(stderr, PROG ": --gateway-id must be 1..64 bytes\n");
            break;
        case 't':
            bad = bench_parse_double(PROG, "--timeout", optarg, 1, 86400, &o->timeout_s);
            break;
        case 'b':
            bad = bench_parse_u64(PROG, "--batch", optarg, 1, LC_ZMQ_BATCH_MAX, &o->batch);
            break;
        case 'h':
            s_usage(stdout);
            return 1;
        default:
            s_usage(stderr);
            return 2;
        }
    }
    if (bad)
        return 2;
    if (optind < argc || !o->readings_bind || !o->sealed_bind) {
        fprintf(stderr, PROG ": --readings-bind and --sealed-bind are required\n");
        return 2;
    }
    return 0;
}

static void s_readings_free(readings_t *r)
{
    free(r->buf);
    free(r->off);
    free(r->jws_len);
    free(r->seen);
    memset(r, 0, sizeof *r);
}

/* Signs and packs every reading: reading i is device i % D, seq 1 + i / D (as lcore-sim). */
static int s_readings_build(readings_t *r, const opts_t *o, const bench_device_t *devs)
{
    size_t n = (size_t)o->count, cap = n * 512, len = 0;
    r->buf = malloc(cap);
    r->off = malloc((n + 1) * sizeof *r->off);
    r->jws_len = malloc(n * sizeof *r->jws_len);
    r->seen = calloc(n, 1);
    if (!r->buf || !r->off || !r->jws_len || !r->seen)
        return LC_ERR_NOMEM;
    for (size_t i = 0; i < n; i++) {
        const bench_device_t *d = &devs[i % o->devices];
        uint64_t seq = 1 + i / o->devices;
        char *jws = bench_sign_reading(d, seq, BENCH_DATA_BYTES);
        if (!jws)
            return LC_ERR_SIGNATURE;
        uint8_t id[LC_RECORD_ID_LEN];
        lc_record_id(id, d->id, strlen(d->id), seq);
        Lcore__V1__Reading m = LCORE__V1__READING__INIT;
        m.version = 1;
        m.record_id.data = id;
        m.record_id.len = sizeof id;
        m.device_id = (char *)d->id;
        m.seq = seq;
        m.device_ts_ms = lc_now_ms();
        m.received_at_us = lc_now_us();
        m.jws.data = (uint8_t *)jws;
        m.jws.len = strlen(jws);
        uint8_t reading_hash[LC_READING_HASH_LEN];
        lc_reading_hash(reading_hash, m.jws.data, m.jws.len);
        m.reading_hash = (ProtobufCBinaryData){sizeof reading_hash, reading_hash};
        m.gateway_id = (char *)o->gateway_id;
        m.attempt = 1;
        m.max_attempts = 5;
        size_t size = protobuf_c_message_get_packed_size(&m.base);
        if (len + size > cap) {
            uint8_t *b = realloc(r->buf, cap * 2 > len + size ? cap * 2 : len + size);
            if (!b) {
                free(jws);
                return LC_ERR_NOMEM;
            }
            r->buf = b, cap = cap * 2 > len + size ? cap * 2 : len + size;
        }
        r->off[i] = len;
        len += protobuf_c_message_pack(&m.base, r->buf + len);
        r->len = len;
        r->jws_len[i] = (uint32_t)m.jws.len;
        free(jws);
    }
    r->off[n] = len;
    r->len = len;
    return 0;
}

/* Checks one sealed record; returns the reading's index, or -1 (invalid) / -2 (duplicate). */
static long s_check(readings_t *r, const opts_t *o, const char *prefix, const uint8_t *data,
                    size_t len)
{
    Lcore__V1__SealedRecord *s = lcore__v1__sealed_record__unpack(NULL, len, data);
    long idx = -1;
    size_t plen = strlen(prefix);
    if (!s || s->version != 1 || s->heartbeat || !s->device_id ||
        strncmp(s->device_id, prefix, plen) != 0 || s->record_id.len != LC_RECORD_ID_LEN ||
        s->aes_nonce.len != LC_AES_NONCE_LEN || s->xchacha_nonce.len != LC_XCHACHA_NONCE_LEN ||
        s->envelope_hash.len != LC_ENVELOPE_HASH_LEN || s->seq == 0)
        goto out;
    char *end = NULL;
    unsigned long long dev = strtoull(s->device_id + plen, &end, 10);
    if (*end || dev >= o->devices)
        goto out;
    unsigned long long i = (s->seq - 1) * o->devices + dev;
    if (i >= o->count)
        goto out;
    uint8_t id[LC_RECORD_ID_LEN], eh[LC_ENVELOPE_HASH_LEN];
    lc_record_id(id, s->device_id, strlen(s->device_id), s->seq);
    lc_envelope_hash(eh, s->key_version, s->aes_nonce.data, s->xchacha_nonce.data,
                     s->ciphertext.data, s->ciphertext.len);
    if (memcmp(id, s->record_id.data, sizeof id) != 0 ||
        memcmp(eh, s->envelope_hash.data, sizeof eh) != 0 ||
        s->ciphertext.len != r->jws_len[i] + LC_SEAL_OVERHEAD ||
        strcmp(s->gateway_id, o->gateway_id))
        goto out;
    idx = r->seen[i] ? -2 : (long)i;
    r->seen[i] = 1;
out:
    if (s)
        lcore__v1__sealed_record__free_unpacked(s, NULL);
    return idx;
}

int feed_crypto_main(int argc, char **argv)
{
    opts_t o;
    int rc = s_parse(&o, argc, argv);
    if (rc)
        return rc == 1 ? 0 : rc;

    int exit_code = 1;
    readings_t rd = {0};
    lc_zmq_batch_t batch = {0};
    bench_device_t *devs = calloc(o.devices, sizeof *devs);
    zsock_t *push = NULL, *pull = NULL;
    lc_zmq_peers_t *push_peers = NULL, *pull_peers = NULL;
    lc_metrics_t *metrics = lc_metrics_new();
    lc_curve_t *curve = NULL;
    char run[9], prefix[32];
    bench_run_id(run);
    snprintf(prefix, sizeof prefix, "bench-%s-", run);
    double t_start = bench_now(), deadline = t_start + o.timeout_s;
    if (!devs || !metrics || !(curve = bench_curve(PROG, metrics)))
        goto out;

    for (uint64_t d = 0; d < o.devices; d++) {
        char id[64];
        snprintf(id, sizeof id, "%s%llu", prefix, (unsigned long long)d);
        if (bench_device_init(&devs[d], id, o.alg) < 0) {
            fprintf(stderr, PROG ": key generation failed\n");
            goto out;
        }
    }
    fprintf(stderr, PROG ": signing %llu readings of %llu devices (%s)\n",
            (unsigned long long)o.count, (unsigned long long)o.devices, lc_alg_name(o.alg));
    if (s_readings_build(&rd, &o, devs) < 0) {
        fprintf(stderr, PROG ": building the readings failed\n");
        goto out;
    }
    /* The clock for --timeout starts now: signing is bounded work, the waits below are not. */
    fprintf(stderr, PROG ": signed in %.1f s\n", bench_now() - t_start);
    deadline = bench_now() + o.timeout_s;
    /* Stands in for the gateway (readings) and the store (sealed): workers connect to both. */
    lc_zmq_opts_t po = {.name = "readings",
                        .type = ZMQ_PUSH,
                        .endpoints = o.readings_bind,
                        .bind = 1,
                        .roles = LC_ROLE_CRYPTO,
                        .hwm = (int)o.window,
                        .max_msg = LC_ZMQ_SEND_ONLY_MAX};
    lc_zmq_opts_t qo = {.name = "sealed",
                        .type = ZMQ_PULL,
                        .endpoints = o.sealed_bind,
                        .bind = 1,
                        .roles = LC_ROLE_CRYPTO,
                        .hwm = (int)o.window,
                        .max_msg = LC_ZMQ_REPLY_MAX + LC_ZMQ_ENVELOPE_OVERHEAD};
    push = lc_zmq_open(&po, curve, &push_peers);
    pull = lc_zmq_open(&qo, curve, &pull_peers);
    if (!push || !pull) {
        fprintf(stderr, PROG ": cannot bind %s / %s\n", o.readings_bind, o.sealed_bind);
        goto out;
    }
    fprintf(stderr, PROG ": waiting for %llu worker(s) on %s and %s\n",
            (unsigned long long)o.workers, o.readings_bind, o.sealed_bind);
    int workers = 0;
    while ((workers = lc_zmq_peers_update(push_peers)) < (int)o.workers ||
           lc_zmq_peers_update(pull_peers) < (int)o.workers) {
        if (zsys_interrupted || bench_now() > deadline) {
            fprintf(stderr, PROG ": %s while waiting for workers (%d connected)\n",
                    zsys_interrupted ? "interrupted" : "timed out", workers);
            goto out;
        }
        zclock_sleep(50);
    }
    zclock_sleep(200); /* connected is not yet handshaken: let every worker join the round-robin */

    void *out_h = zsock_resolve(push), *in_h = zsock_resolve(pull);
    uint64_t sent = 0, received = 0, invalid = 0, duplicates = 0;
    double t_first = 0, t_last = 0;
    while (received < o.count) {
        if (zsys_interrupted || bench_now() > deadline) {
            fprintf(stderr, PROG ": %s: %llu of %llu sealed records received (%llu sent)\n",
                    zsys_interrupted ? "interrupted" : "timed out", (unsigned long long)received,
                    (unsigned long long)o.count, (unsigned long long)sent);
            goto out;
        }
        while (sent < o.count && sent - received < o.window) {
            uint64_t to = sent + o.batch, room = received + o.window;
            to = to < o.count ? to : o.count;
            uint64_t k =
                feed_send_batch(out_h, &batch, rd.buf, rd.off, sent, to < room ? to : room);
            if (k == 0)
                break;
            if (sent == 0)
                t_first = bench_now();
            sent += k;
        }
        zmq_pollitem_t items[2] = {{in_h, 0, ZMQ_POLLIN, 0}, {out_h, 0, ZMQ_POLLOUT, 0}};
        int can_send = sent < o.count && sent - received < o.window;
        if (zmq_poll(items, can_send ? 2 : 1, 100) < 0 && !zsys_interrupted)
            break;
        for (;;) {
            zmq_msg_t m;
            zmq_msg_init(&m);
            if (zmq_msg_recv(&m, in_h, ZMQ_DONTWAIT) < 0) {
                zmq_msg_close(&m);
                break;
            }
            Lcore__V1__SealedBatch *sb =
                lcore__v1__sealed_batch__unpack(NULL, zmq_msg_size(&m), zmq_msg_data(&m));
            zmq_msg_close(&m);
            for (size_t e = 0; e < (sb ? sb->n_records : 1); e++) {
                long idx =
                    sb ? s_check(&rd, &o, prefix, sb->records[e].data, sb->records[e].len) : -1;
                if (idx >= 0) {
                    received++;
                    t_last = bench_now();
                } else if (idx == -2) {
                    duplicates++;
                } else if (invalid++ == 0) {
                    fprintf(stderr, PROG ": an invalid sealed record arrived\n");
                }
            }
            if (sb)
                lcore__v1__sealed_batch__free_unpacked(sb, NULL);
        }
        if (invalid) /* the workers are not sealing what they were given: stop here */
            break;
    }
    int peers = lc_zmq_peers_update(push_peers);
    if (received < o.count || invalid) {
        fprintf(stderr, PROG ": %llu invalid sealed records, %llu of %llu valid\n",
                (unsigned long long)invalid, (unsigned long long)received,
                (unsigned long long)o.count);
        goto out;
    }
    double secs = t_last - t_first;
    printf("{\"crypto_sealed_per_s\":%.0f,\"workers\":%d,\"count\":%llu,\"devices\":%llu,"
           "\"alg\":\"%s\",\"jws_bytes\":%u,\"seconds\":%.3f,\"duplicates\":%llu}\n",
           secs > 0 ? (double)o.count / secs : 0, peers > workers ? peers : workers,
           (unsigned long long)o.count, (unsigned long long)o.devices, lc_alg_name(o.alg),
           rd.jws_len[0], secs, (unsigned long long)duplicates);
    fflush(stdout);
    exit_code = 0;
out:
    lc_zmq_batch_free(&batch);
    lc_zmq_peers_destroy(&push_peers);
    lc_zmq_peers_destroy(&pull_peers);
    zsock_destroy(&push);
    zsock_destroy(&pull);
    lc_curve_destroy(&curve);
    lc_metrics_destroy(&metrics);
    if (rd.buf)
        sodium_memzero(rd.buf, rd.len); /* the readings carry plaintext */
    s_readings_free(&rd);
    for (uint64_t d = 0; devs && d < o.devices; d++)
        bench_device_wipe(&devs[d]);
    free(devs);
    return exit_code;
}
