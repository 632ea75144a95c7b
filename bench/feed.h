/* feed.h: the stage drivers of lcore-bench-feed. Each drives one stage of the pipeline over its
 * real ZeroMQ interface, standing in for its neighbours, and prints one JSON object:
 *   crypto: acts as gateway and store for lcore-crypto workers started separately;
 *   store:  acts as crypto workers for a running lcore-store.
 * Each returns main()'s exit code: 0, 1 on failure (reason on stderr), 2 on bad usage. */
#ifndef FEED_H
#define FEED_H

#include <stddef.h>
#include <stdint.h>

#include "lc_zmq.h"

int feed_crypto_main(int argc, char **argv);
int feed_store_main(int argc, char **argv);

/* Polls `sock` (a zsock_t) for input for at most timeout_ms; 1 when readable, 0 on timeout, -1
 * when interrupted (SIGINT/SIGTERM: czmq's handler sets zsys_interrupted). */
int feed_wait_input(void *sock, long timeout_ms);

/* Sends packed messages [from, to) of buf (message i is buf[off[i] .. off[i+1])) as entries of
 * one batch (lc_zmq.h; as many as fit) on the socket handle `h`, without blocking. Returns how
 * many went (0: the socket could not take the batch). */
uint64_t feed_send_batch(void *h, lc_zmq_batch_t *b, const uint8_t *buf, const size_t *off,
                         uint64_t from, uint64_t to);

#endif
