/* lcore-bench-feed: stage rates alone. `crypto` feeds lcore-crypto workers directly (this
 * program is their gateway and their store); `store` feeds lcore-store directly (this program
 * is its crypto workers). See feed_crypto.c, feed_store.c and bench/README.md. */
#include <czmq.h>
#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include "feed.h"
#include "lc_log.h"
#include "lc_secp.h"

int feed_wait_input(void *sock, long timeout_ms)
{
    zmq_pollitem_t item = {zsock_resolve(sock), 0, ZMQ_POLLIN, 0};
    int n = zmq_poll(&item, 1, timeout_ms);
    if (zsys_interrupted || (n < 0 && errno != EINTR))
        return -1;
    return n > 0;
}

uint64_t feed_send_batch(void *h, lc_zmq_batch_t *b, const uint8_t *buf, const size_t *off,
                         uint64_t from, uint64_t to)
{
    uint64_t k = from;
    for (; k < to; k++) {
        size_t len = off[k + 1] - off[k];
        uint8_t *p = lc_zmq_batch_fits(b, len) ? lc_zmq_batch_add(b, len) : NULL;
        if (!p)
            break;
        memcpy(p, buf + off[k], len);
    }
    if (lc_zmq_batch_send(b, h, ZMQ_DONTWAIT) < 0) {
        lc_zmq_batch_clear(b);
        return 0;
    }
    return k - from;
}

static void s_usage(FILE *out)
{
    fprintf(out, "usage: lcore-bench-feed crypto|store [options]   (--help after the mode)\n"
                 "  crypto  feed lcore-crypto workers directly: be their gateway and store\n"
                 "  store   feed lcore-store directly: be its crypto workers\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        s_usage(stderr);
        return 2;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        s_usage(stdout);
        return 0;
    }
    if (sodium_init() < 0 || !lc_secp_context()) {
        fprintf(stderr, "lcore-bench-feed: libsodium or libsecp256k1 failed to initialise\n");
        return 1;
    }
    lc_log_init("bench", LC_LOG_WARN);
    zsys_init(); /* SIGINT/SIGTERM set zsys_interrupted: every wait below checks it */
    zsys_set_logstream(stderr); /* stdout carries only the JSON result */
    if (strcmp(argv[1], "crypto") == 0)
        return feed_crypto_main(argc - 1, argv + 1);
    if (strcmp(argv[1], "store") == 0)
        return feed_store_main(argc - 1, argv + 1);
    fprintf(stderr, "lcore-bench-feed: unknown mode '%s'\n", argv[1]);
    s_usage(stderr);
    return 2;
}
