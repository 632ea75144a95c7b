/* lc_zmq.h: ZeroMQ glue for protobuf messages. Messages are packed straight into zmq_msg_t
 * buffers (no intermediate copy); an optional topic frame goes first (PUB/SUB). */
#ifndef LC_ZMQ_H
#define LC_ZMQ_H

#include <czmq.h>
#include <protobuf-c/protobuf-c.h>

#include "lc_common.h"

/* Sends [topic?][message]. flags: ZMQ_DONTWAIT to fail with LC_ERR_TIMEOUT instead of blocking
 * (high-water mark reached or no peer). Returns 0 or a negative error. */
int lc_zmq_send_pb(void *socket, const char *topic, const ProtobufCMessage *msg, int flags) LC_WUR;

/* Common socket set-up: high-water marks, linger on close, ZMQ_IMMEDIATE for connecting
 * sockets so messages are never queued to a peer that is not there. */
void lc_zmq_tune(zsock_t *sock, int hwm, int linger_ms);

/* Creates a socket of `type` that binds (endpoint starts with '@' or not) or connects ('>')
 * per czmq's endpoint syntax; endpoints may be a comma-separated list. NULL on error (logged). */
zsock_t *lc_zmq_socket(int type, const char *endpoints, int bind, int hwm, int linger_ms);

typedef struct lc_zmq_peers lc_zmq_peers_t;

/* lc_zmq_socket that also counts its connections (*peers, see below); the caller destroys
 * *peers before the socket. */
zsock_t *lc_zmq_socket_watched(int type, const char *endpoints, int bind, int hwm, int linger_ms,
                               lc_zmq_peers_t **peers);

/* Counts a socket's live connections from its monitor events (zmq_socket_monitor: connected
 * or accepted, minus disconnected). Used for readiness ("is a peer there?") and metrics. Lives
 * in the thread that owns the socket: call lc_zmq_peers_update from there, and destroy it
 * before the socket. */
lc_zmq_peers_t *lc_zmq_peers_new(zsock_t *sock);
void lc_zmq_peers_destroy(lc_zmq_peers_t **self_p);
/* Takes the pending events without blocking; returns the number of connected peers. */
int lc_zmq_peers_update(lc_zmq_peers_t *self);

#endif
