/* feed_store.c: `lcore-bench-feed store`: the store's rate alone. This program stands in for the
 * crypto workers of a running lcore-store: it registers one bench device through the store's
 * queries socket (Query.register_device over a DEALER, as a gateway does), pre-seals --count
 * SealedRecords with the store's key ring (each a freshly signed reading sealed for real),
 * subscribes to its own ack topic "ack/<gateway-id>/" on the events socket, and PUSHes them
 * (at most --window unacknowledged). The store validates, writes them to PostgreSQL in its
 * write batches and acknowledges each after its transaction commits. A probe record is sent (again
 * until acknowledged) before the clock starts, so the subscription is known to work. The rate
 * is from the first send to the last acknowledgement. The records stay in the database: they
 * are real records: the store tells the relayer of them, which anchors them. */
#include <czmq.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_util.h"
#include "feed.h"
#include "lc_keyring.h"
#include "lc_zmq.h"

#define PROG "lcore-bench-feed store"
#define S_BATCH 64 /* records per message, as a worker sends what one gateway message held */

typedef struct {
    const char *sealed_connect, *events_connect, *queries_connect, *gateway_id, *keyring;
    uint64_t count, window;
    double timeout_s;
} opts_t;

/* A record id and the index of its record (the probe is index count). */
typedef struct {
    uint8_t id[LC_RECORD_ID_LEN];
    uint64_t index;
} id_entry_t;

static void s_usage(FILE *out)
{
    fprintf(out,
            "usage: " PROG " --sealed-connect EP --events-connect EP --queries-connect EP\n"
            "          [--keyring PATH] [--count N] [--gateway-id ID] [--window K] [--timeout S]\n"
            "  Be the crypto workers of a running lcore-store.\n"
            "  --keyring PATH    the store's key ring (default: $LCORE_KEYRING)\n"
            "  --count N         records (default 100000)\n"
            "  --gateway-id ID   ack topic ack/ID/ (default bench-feed; not a real gateway's)\n"
            "  --window K        unacknowledged records at most (default 10000)\n"
            "  --timeout S       give up after S seconds of waiting (default 120)\n");
}

static int s_parse(opts_t *o, int argc, char **argv)
{
    static const struct option longopts[] = {{"sealed-connect", required_argument, NULL, 's'},
                                             {"events-connect", required_argument, NULL, 'e'},
                                             {"queries-connect", required_argument, NULL, 'q'},
                                             {"keyring", required_argument, NULL, 'k'},
                                             {"count", required_argument, NULL, 'n'},
                                             {"gateway-id", required_argument, NULL, 'g'},
                                             {"window", required_argument, NULL, 'W'},
                                             {"timeout", required_argument, NULL, 't'},
                                             {"help", no_argument, NULL, 'h'},
                                             {0}};
    *o = (opts_t){.gateway_id = "bench-feed",
                  .keyring = getenv("LCORE_KEYRING"),
                  .count = 100000,
                  .window = 10000,
                  .timeout_s = 120};
    int c, bad = 0;
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1 && !bad) {
        switch (c) {
        case 's':
            o->sealed_connect = optarg;
            break;
        case 'e':
            o->events_connect = optarg;
            break;
        case 'q':
            o->queries_connect = optarg;
            break;
        case 'k':
            o->keyring = optarg;
            break;
        case 'n':
            bad = bench_parse_u64(PROG, "--count", optarg, 1, 10000000, &o->count);
            break;
        case 'g':
            o->gateway_id = optarg;
            bad = !*optarg || strlen(optarg) > 64 || strchr(optarg, '/');
            if (bad)
                fprintf(stderr, PROG ": --gateway-id must be 1..64 bytes without '/'\n");
            break;
        case 'W':
            bad = bench_parse_u64(PROG, "--window", optarg, 1, 1000000, &o->window);
            break;
        case 't':
            bad = bench_parse_double(PROG, "--timeout", optarg, 1, 86400, &o->timeout_s);
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
    if (optind < argc || !o->sealed_connect || !o->events_connect || !o->queries_connect ||
        !o->keyring || !*o->keyring) {
        fprintf(stderr, PROG ": --sealed-connect, --events-connect, --queries-connect and "
                             "--keyring (or LCORE_KEYRING) are required\n");
        return 2;
    }
    return 0;
}

static int s_cmp_id(const void *a, const void *b)
{
    return memcmp(a, b, LC_RECORD_ID_LEN);
}

/* Registers the device with the store, as a gateway forwards POST /v1/devices. */
static int s_register(const opts_t *o, lc_curve_t *curve, const bench_device_t *dev,
                      double deadline)
{
    lc_zmq_opts_t qo = {.name = "queries",
                        .type = ZMQ_DEALER,
                        .endpoints = o->queries_connect,
                        .roles = LC_ROLE_STORE,
                        .hwm = 100,
                        .max_msg = LC_ZMQ_REPLY_MAX};
    zsock_t *q = lc_zmq_open(&qo, curve, NULL);
    if (!q)
        return -1;
    double left_ms = (deadline - bench_now()) * 1000;
    zsock_set_sndtimeo(q, left_ms < 5000 ? (left_ms > 1 ? (int)left_ms : 1) : 5000);
    Lcore__V1__Device d;
    Lcore__V1__Query query;
    bench_register_query(&query, &d, dev);
    int rc = -1;
    if (lc_zmq_send_pb(q, NULL, &query.base, 0) < 0) {
        fprintf(stderr, PROG ": the store's queries socket %s does not answer\n",
                o->queries_connect);
        goto out;
    }
    while (bench_now() < deadline) {
        int ready = feed_wait_input(q, 200);
        if (ready < 0)
            goto out;
        if (!ready)
            continue;
        zframe_t *f = zframe_recv(q);
        Lcore__V1__QueryReply *r =
            f ? lcore__v1__query_reply__unpack(NULL, zframe_size(f), zframe_data(f)) : NULL;
        zframe_destroy(&f);
        if (!r || r->request_id != 1) {
            if (r)
                lcore__v1__query_reply__free_unpacked(r, NULL);
            continue;
        }
        if (r->status == LCORE__V1__QUERY_REPLY__STATUS__CREATED ||
            r->status == LCORE__V1__QUERY_REPLY__STATUS__OK)
            rc = 0;
        else
            fprintf(stderr, PROG ": the store refused the registration: status %d %s\n", r->status,
                    r->message);
        lcore__v1__query_reply__free_unpacked(r, NULL);
        goto out;
    }
    fprintf(stderr, PROG ": no answer to the registration from %s\n", o->queries_connect);
out:
    zsock_destroy(&q);
    return rc;
}

/* Reads every pending ack; marks the acknowledged records. Returns how many were new. */
static uint64_t s_take_acks(void *sub, const id_entry_t *ids, size_t n_ids, uint8_t *acked)
{
    uint64_t fresh = 0;
    for (;;) {
        zmsg_t *msg = zmsg_recv_nowait(sub);
        if (!msg)
            break;
        zframe_t *body = zmsg_last(msg);
        Lcore__V1__Ack *ack =
            body ? lcore__v1__ack__unpack(NULL, zframe_size(body), zframe_data(body)) : NULL;
        for (size_t i = 0; ack && i < ack->n_record_ids; i++) {
            if (ack->record_ids[i].len != LC_RECORD_ID_LEN)
                continue;
            const id_entry_t *e =
                bsearch(ack->record_ids[i].data, ids, n_ids, sizeof *ids, s_cmp_id);
            if (e && !acked[e->index]) {
                acked[e->index] = 1;
                fresh++;
            }
        }
        if (ack)
            lcore__v1__ack__free_unpacked(ack, NULL);
        zmsg_destroy(&msg);
    }
    return fresh;
}

int feed_store_main(int argc, char **argv)
{
    opts_t o;
    int rc = s_parse(&o, argc, argv);
    if (rc)
        return rc == 1 ? 0 : rc;

    int exit_code = 1;
    size_t n = (size_t)o.count + 1; /* the records, then the probe */
    lc_keyring_t *ring = NULL;
    lc_sealer_t *sealer = NULL;
    zsock_t *push = NULL, *sub = NULL;
    lc_metrics_t *metrics = lc_metrics_new();
    lc_curve_t *curve = NULL;
    lc_zmq_batch_t batch = {0};
    static bench_device_t dev;
    char run[9], device_id[40], topic[80];
    uint8_t *buf = NULL, *acked = calloc(n, 1);
    size_t *off = malloc((n + 1) * sizeof *off), cap = n * 640, len = 0, ct_len = 0;
    id_entry_t *ids = malloc(n * sizeof *ids);
    double deadline = bench_now() + o.timeout_s;
    bench_run_id(run);
    snprintf(device_id, sizeof device_id, "bench-store-%s", run);
    snprintf(topic, sizeof topic, "ack/%s/", o.gateway_id);
    if (!acked || !off || !ids || !(buf = malloc(cap)) || !metrics ||
        !(curve = bench_curve(PROG, metrics)))
        goto out;

    int err = 0;
    if (!(ring = lc_keyring_load(o.keyring, LC_KEYRING_SEAL, &err)) ||
        !(sealer = lc_sealer_new(ring, LC_AES_AUTO))) {
        fprintf(stderr, PROG ": cannot load the key ring %s: %s\n", o.keyring, lc_strerror(err));
        goto out;
    }
    if (bench_device_init(&dev, device_id, LC_ALG_EDDSA) < 0 ||
        s_register(&o, curve, &dev, deadline) < 0)
        goto out;
    fprintf(stderr, PROG ": sealing %llu records of %s\n", (unsigned long long)o.count, dev.id);
    for (size_t i = 0; i < n; i++) {
        bench_sealed_t s;
        uint64_t seq = i < o.count ? i + 1 : 0; /* the probe is seq 0 */
        if (bench_sealed_make(&s, sealer, &dev, seq, o.gateway_id, BENCH_DATA_BYTES) < 0) {
            fprintf(stderr, PROG ": sealing failed\n");
            goto out;
        }
        size_t size = protobuf_c_message_get_packed_size(&s.msg.base);
        if (len + size > cap) {
            size_t ncap = cap * 2 > len + size ? cap * 2 : len + size;
            uint8_t *b = realloc(buf, ncap);
            if (!b) {
                bench_sealed_clear(&s);
                goto out;
            }
            buf = b, cap = ncap;
        }
        off[i] = len;
        len += protobuf_c_message_pack(&s.msg.base, buf + len);
        memcpy(ids[i].id, s.record_id, LC_RECORD_ID_LEN);
        ct_len = s.sealed.ciphertext_len;
        ids[i].index = i;
        bench_sealed_clear(&s);
    }
    off[n] = len;
    qsort(ids, n, sizeof *ids, s_cmp_id);
    deadline = bench_now() + o.timeout_s; /* sealing is bounded work: the waits are not */

    lc_zmq_opts_t po = {.name = "sealed",
                        .type = ZMQ_PUSH,
                        .endpoints = o.sealed_connect,
                        .roles = LC_ROLE_STORE,
                        .hwm = (int)o.window,
                        .linger_ms = 2000,
                        .max_msg = LC_ZMQ_SEND_ONLY_MAX};
    lc_zmq_opts_t so = {.name = "events",
                        .type = ZMQ_SUB,
                        .endpoints = o.events_connect,
                        .roles = LC_ROLE_STORE,
                        .hwm = 1000000,
                        .max_msg = LC_ZMQ_EVENT_MAX};
    push = lc_zmq_open(&po, curve, NULL);
    sub = lc_zmq_open(&so, curve, NULL);
    if (!push || !sub) {
        fprintf(stderr, PROG ": cannot connect to %s / %s\n", o.sealed_connect, o.events_connect);
        goto out;
    }
    zsock_set_subscribe(sub, topic);
    void *out_h = zsock_resolve(push);

    /* Probe: until its ack comes back, the subscription may not have reached the store yet. */
    size_t probe = n - 1;
    double next_probe = 0;
    while (!acked[probe]) {
        if (zsys_interrupted || bench_now() > deadline) {
            fprintf(stderr, PROG ": no ack on %s for the probe record (is the store at %s?)\n",
                    topic, o.sealed_connect);
            goto out;
        }
        if (bench_now() >= next_probe) {
            (void)feed_send_batch(out_h, &batch, buf, off, probe, probe + 1);
            next_probe = bench_now() + 0.5;
        }
        if (feed_wait_input(sub, 100) > 0)
            s_take_acks(sub, ids, n, acked);
    }

    uint64_t sent = 0, done = 0;
    double t_first = bench_now(), t_last = t_first;
    while (done < o.count) {
        if (zsys_interrupted || bench_now() > deadline) {
            fprintf(stderr, PROG ": %s: %llu of %llu records acknowledged (%llu sent)\n",
                    zsys_interrupted ? "interrupted" : "timed out", (unsigned long long)done,
                    (unsigned long long)o.count, (unsigned long long)sent);
            goto out;
        }
        while (sent < o.count && sent - done < o.window) {
            uint64_t to = sent + S_BATCH < o.count ? sent + S_BATCH : o.count;
            uint64_t k = feed_send_batch(out_h, &batch, buf, off, sent,
                                         to < done + o.window ? to : done + o.window);
            if (k == 0)
                break;
            sent += k;
        }
        zmq_pollitem_t items[2] = {{zsock_resolve(sub), 0, ZMQ_POLLIN, 0},
                                   {out_h, 0, ZMQ_POLLOUT, 0}};
        int can_send = sent < o.count && sent - done < o.window;
        if (zmq_poll(items, can_send ? 2 : 1, 100) < 0 && !zsys_interrupted)
            break;
        uint64_t fresh = s_take_acks(sub, ids, n, acked);
        if (fresh) {
            done += fresh;
            t_last = bench_now();
        }
    }
    if (done < o.count) {
        fprintf(stderr, PROG ": %llu of %llu records acknowledged\n", (unsigned long long)done,
                (unsigned long long)o.count);
        goto out;
    }
    double secs = t_last - t_first;
    printf("{\"store_acked_per_s\":%.0f,\"count\":%llu,\"seconds\":%.3f,\"device_id\":\"%s\","
           "\"gateway_id\":\"%s\",\"ciphertext_bytes\":%zu}\n",
           secs > 0 ? (double)o.count / secs : 0, (unsigned long long)o.count, secs, dev.id,
           o.gateway_id, ct_len);
    fflush(stdout);
    exit_code = 0;
out:
    lc_zmq_batch_free(&batch);
    zsock_destroy(&sub);
    zsock_destroy(&push);
    lc_curve_destroy(&curve);
    lc_metrics_destroy(&metrics);
    free(buf);
    free(off);
    free(ids);
    free(acked);
    bench_device_wipe(&dev);
    lc_sealer_destroy(&sealer);
    lc_keyring_destroy(&ring);
    return exit_code;
}
