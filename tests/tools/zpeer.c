/* lcore-zpeer: a ZeroMQ peer for the trust-boundary tests, playing an attacker on the same
 * network (or, with a trusted certificate, a legitimate peer as the positive control). It
 * connects to one endpoint with no keys, a made-up key pair or a given certificate, then
 * receives for --seconds, or sends frames (random bytes, a Query ping, or a well-formed
 * SealedRecord sealed with the key ring in LCORE_KEYRING, in a SealedBatch), and prints what
 * happened:
 *   handshakes_ok=N handshakes_failed=N received=N sent=N
 * Usage: lcore-zpeer --endpoint E --type pull|push|sub|dealer|router [--cert SECRET_CERT |
 *        --random-key]
 *        [--server-cert PUBLIC_CERT | --random-server-key] [--seconds S] [--count N]
 *        [--send-bytes N | --ping | --forge-sealed DEVICE_ID --seq N] */
#include <czmq.h>
#include <getopt.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_util.h"
#include "lc_keyring.h"
#include "lc_seal.h"
#include "lc_zmq.h"
#include "lcore.pb-c.h"

typedef struct {
    const char *endpoint, *type, *cert, *server_cert, *forge_device;
    int random_key, random_server_key, ping;
    double seconds;
    uint64_t count, send_bytes, seq;
} s_opts_t;

static int s_parse(s_opts_t *o, int argc, char **argv)
{
    static const struct option opts[] = {{"endpoint", required_argument, 0, 'e'},
                                         {"type", required_argument, 0, 't'},
                                         {"cert", required_argument, 0, 'c'},
                                         {"random-key", no_argument, 0, 'r'},
                                         {"server-cert", required_argument, 0, 's'},
                                         {"random-server-key", no_argument, 0, 'R'},
                                         {"seconds", required_argument, 0, 'S'},
                                         {"count", required_argument, 0, 'n'},
                                         {"send-bytes", required_argument, 0, 'b'},
                                         {"ping", no_argument, 0, 'p'},
                                         {"forge-sealed", required_argument, 0, 'f'},
                                         {"seq", required_argument, 0, 'q'},
                                         {0, 0, 0, 0}};
    memset(o, 0, sizeof *o);
    o->seconds = 2;
    o->count = 1;
    for (int c; (c = getopt_long(argc, argv, "", opts, NULL)) != -1;) {
        switch (c) {
        case 'e':
            o->endpoint = optarg;
            break;
        case 't':
            o->type = optarg;
            break;
        case 'c':
            o->cert = optarg;
            break;
        case 'r':
            o->random_key = 1;
            break;
        case 's':
            o->server_cert = optarg;
            break;
        case 'R':
            o->random_server_key = 1;
            break;
        case 'S':
            o->seconds = atof(optarg);
            break;
        case 'n':
            o->count = strtoull(optarg, NULL, 10);
            break;
        case 'b':
            o->send_bytes = strtoull(optarg, NULL, 10);
            break;
        case 'p':
            o->ping = 1;
            break;
        case 'f':
            o->forge_device = optarg;
            break;
        case 'q':
            o->seq = strtoull(optarg, NULL, 10);
            break;
        default:
            return -1;
        }
    }
    return o->endpoint && o->type ? 0 : -1;
}

static int s_type(const char *name)
{
    return strcmp(name, "pull") == 0     ? ZMQ_PULL
           : strcmp(name, "push") == 0   ? ZMQ_PUSH
           : strcmp(name, "sub") == 0    ? ZMQ_SUB
           : strcmp(name, "dealer") == 0 ? ZMQ_DEALER
           : strcmp(name, "router") == 0 ? ZMQ_ROUTER /* where workers take opens */
                                         : -1;
}

/* Client keys and server key, as asked. Returns 0 or -1. */
static int s_secure(zsock_t *sock, const s_opts_t *o)
{
    if (!o->cert && !o->random_key)
        return 0; /* no CURVE at all */
    zcert_t *me = o->cert ? zcert_load(o->cert) : zcert_new();
    zcert_t *server = o->server_cert ? zcert_load(o->server_cert) : NULL;
    if (!me || (!server && !o->random_server_key)) {
        fprintf(stderr, "lcore-zpeer: need a loadable --cert/--random-key and "
                        "--server-cert/--random-server-key\n");
        zcert_destroy(&me);
        zcert_destroy(&server);
        return -1;
    }
    zcert_t *fake = o->random_server_key ? zcert_new() : NULL;
    zcert_apply(me, sock);
    zsock_set_curve_serverkey_bin(sock, zcert_public_key(fake ? fake : server));
    zcert_destroy(&fake);
    zcert_destroy(&me);
    zcert_destroy(&server);
    return 0;
}

/* One SealedRecord for device_id/seq, sealed with LCORE_KEYRING, in a SealedBatch frame. */
static zframe_t *s_forged_sealed(const char *device_id, uint64_t seq)
{
    int err = 0;
    const char *path = getenv("LCORE_KEYRING");
    lc_keyring_t *ring = lc_keyring_load(path ? path : "lcore.keyring", LC_KEYRING_SEAL, &err);
    lc_sealer_t *sealer = ring ? lc_sealer_new(ring, LC_AES_AUTO) : NULL;
    static bench_device_t dev;
    bench_sealed_t s;
    zframe_t *frame = NULL;
    if (sealer && bench_device_init(&dev, device_id, LC_ALG_EDDSA) == 0 &&
        bench_sealed_make(&s, sealer, &dev, seq, "zpeer", BENCH_DATA_BYTES) == 0) {
        lc_zmq_batch_t b = {0};
        uint8_t *p = lc_zmq_batch_add(&b, protobuf_c_message_get_packed_size(&s.msg.base));
        if (p) {
            protobuf_c_message_pack(&s.msg.base, p);
            frame = zframe_new(b.buf, b.len);
        }
        lc_zmq_batch_free(&b);
        bench_sealed_clear(&s);
    }
    bench_device_wipe(&dev);
    lc_sealer_destroy(&sealer);
    lc_keyring_destroy(&ring);
    return frame;
}

static zframe_t *s_frame(const s_opts_t *o)
{
    if (o->forge_device)
        return s_forged_sealed(o->forge_device, o->seq);
    if (o->ping) {
        Lcore__V1__Query q = LCORE__V1__QUERY__INIT;
        q.version = 1;
        q.request_id = 1;
        q.body_case = LCORE__V1__QUERY__BODY_PING;
        q.ping = 1;
        zframe_t *f = zframe_new(NULL, protobuf_c_message_get_packed_size(&q.base));
        protobuf_c_message_pack(&q.base, zframe_data(f));
        return f;
    }
    zframe_t *f = zframe_new(NULL, o->send_bytes);
    if (f)
        randombytes_buf(zframe_data(f), o->send_bytes);
    return f;
}

int main(int argc, char **argv)
{
    s_opts_t o;
    int type = -1;
    if (s_parse(&o, argc, argv) != 0 || (type = s_type(o.type)) < 0) {
        fprintf(stderr, "usage: see the comment at the top of tests/tools/zpeer.c\n");
        return 2;
    }
    if (sodium_init() < 0)
        return 1;
    zsys_init();
    zsock_t *sock = zsock_new(type);
    zsock_t *mon = zsock_new(ZMQ_PAIR);
    zmq_socket_monitor(zsock_resolve(sock), "inproc://zpeer-monitor",
                       ZMQ_EVENT_HANDSHAKE_SUCCEEDED | ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL |
                           ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL | ZMQ_EVENT_HANDSHAKE_FAILED_AUTH);
    zsock_connect(mon, "inproc://zpeer-monitor");
    zsock_set_linger(sock, 0);
    zsock_set_sndtimeo(sock, 100);
    if (type == ZMQ_SUB)
        zsock_set_subscribe(sock, "");
    if (s_secure(sock, &o) != 0 || zsock_connect(sock, "%s", o.endpoint) != 0)
        return 2;
    uint64_t sent = 0, received = 0, ok = 0, failed = 0;
    int sends = type == ZMQ_PUSH || type == ZMQ_DEALER;
    int64_t end = zclock_mono() + (int64_t)(o.seconds * 1000);
    zpoller_t *poller = zpoller_new(sock, mon, NULL);
    while (zclock_mono() < end) {
        if (sends && sent < o.count) {
            zframe_t *f = s_frame(&o);
            if (!f)
                return 1;
            if (zframe_send(&f, sock, ZFRAME_DONTWAIT) == 0)
                sent++;
            zframe_destroy(&f);
        }
        void *which = zpoller_wait(poller, 50);
        if (which == sock) {
            zmsg_t *m = zmsg_recv(sock);
            received += m != NULL;
            zmsg_destroy(&m);
        } else if (which == mon) {
            zmsg_t *ev = zmsg_recv(mon);
            zframe_t *f = ev ? zmsg_first(ev) : NULL;
            uint16_t e = 0;
            if (f && zframe_size(f) >= 2)
                memcpy(&e, zframe_data(f), 2);
            ok += e == ZMQ_EVENT_HANDSHAKE_SUCCEEDED;
            failed += e != 0 && e != ZMQ_EVENT_HANDSHAKE_SUCCEEDED;
            zmsg_destroy(&ev);
        }
    }
    printf("handshakes_ok=%llu handshakes_failed=%llu received=%llu sent=%llu\n",
           (unsigned long long)ok, (unsigned long long)failed, (unsigned long long)received,
           (unsigned long long)sent);
    zpoller_destroy(&poller);
    zmq_socket_monitor(zsock_resolve(sock), NULL, 0);
    zsock_destroy(&mon);
    zsock_destroy(&sock);
    return 0;
}
