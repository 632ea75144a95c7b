/* feed.h: the stage drivers of lcore-bench-feed. Each drives one stage of the pipeline over its
 * real ZeroMQ interface, standing in for its neighbours, and prints one JSON object:
 *   crypto: acts as gateway and store for lcore-crypto workers started separately;
 *   store:  acts as crypto workers for a running lcore-store.
 * Each returns main()'s exit code: 0, 1 on failure (reason on stderr), 2 on bad usage. */
#ifndef FEED_H
#define FEED_H

int feed_crypto_main(int argc, char **argv);
int feed_store_main(int argc, char **argv);

/* Polls `sock` (a zsock_t) for input for at most timeout_ms; 1 when readable, 0 on timeout, -1
 * when interrupted (SIGINT/SIGTERM: czmq's handler sets zsys_interrupted). */
int feed_wait_input(void *sock, long timeout_ms);

#endif
