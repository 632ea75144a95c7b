/* lc_zmq.h: ZeroMQ glue for protobuf messages. Messages are packed straight into zmq_msg_t
 * buffers (no intermediate copy); an optional topic frame goes first (PUB/SUB). */
#ifndef LC_ZMQ_H
#define LC_ZMQ_H

#include <czmq.h>
#include <protobuf-c/protobuf-c.h>

#include "lc_common.h"
#include "lc_curve.h"

/* Sends [topic?][message]. flags: ZMQ_DONTWAIT to fail with LC_ERR_TIMEOUT instead of blocking
 * (high-water mark reached or no peer). Returns 0 or a negative error. */
int lc_zmq_send_pb(void *socket, const char *topic, const ProtobufCMessage *msg, int flags) LC_WUR;
/* As lc_zmq_send_pb (no topic), for a message that carries plaintext (an OpenReply): it is packed
 * into memory of its own that is wiped (sodium_memzero) when ZeroMQ lets go of it, sent or not. */
int lc_zmq_send_pb_wiped(void *socket, const ProtobufCMessage *msg, int flags) LC_WUR;

/* Common socket set-up: high-water marks, linger on close, ZMQ_IMMEDIATE for connecting
 * sockets so messages are never queued to a peer that is not there. */
void lc_zmq_tune(zsock_t *sock, int hwm, int linger_ms);

typedef struct lc_zmq_peers lc_zmq_peers_t;

/* ZMQ_MAXMSGSIZE of sockets whose largest message does not depend on configuration. */
#define LC_ZMQ_SEND_ONLY_MAX 4096     /* PUSH/PUB: only the handshake and subscriptions arrive */
#define LC_ZMQ_QUERY_MAX 65536        /* a Query (registration: 16 KiB DID document at most) */
#define LC_ZMQ_REPLY_MAX 1048576      /* a QueryReply */
#define LC_ZMQ_EVENT_MAX 1048576      /* an Ack (one write batch: 5000 record ids at most) */
#define LC_ZMQ_ENVELOPE_OVERHEAD 4096 /* protobuf fields around a reading or ciphertext */

/* Batches on the readings and sealed links: a ReadingBatch or SealedBatch (lcore.proto), i.e.
 * version 1 then each entry as repeated bytes field 2, written in place into a buffer that is
 * reused, and sent as one ZeroMQ message. */
#define LC_ZMQ_BATCH_MAX 128      /* entries in one batch */
#define LC_ZMQ_BATCH_BYTES 262144 /* a batch of more than one entry stays within this */
#define LC_ZMQ_BATCH_FRAMING 16   /* the version and one entry's tag and length */

typedef struct {
    uint8_t *buf;
    size_t len, cap;
    size_t n; /* entries */
} lc_zmq_batch_t;

/* Whether an entry of len bytes goes into b: b is empty (any size), or it holds fewer than
 * LC_ZMQ_BATCH_MAX entries and stays within LC_ZMQ_BATCH_BYTES with it. */
int lc_zmq_batch_fits(const lc_zmq_batch_t *b, size_t len);
/* Appends an entry of len bytes and returns where its bytes go (the caller writes exactly len
 * there); NULL when out of memory. Call only when lc_zmq_batch_fits. */
uint8_t *lc_zmq_batch_add(lc_zmq_batch_t *b, size_t len) LC_WUR;
/* Sends b as one message (copied: b's buffer is reused), then wipes and empties b (entries may
 * carry plaintext). flags as lc_zmq_send_pb: 0, LC_ERR_TIMEOUT (b kept), or an error. An empty
 * batch is not sent (0). */
int lc_zmq_batch_send(lc_zmq_batch_t *b, void *socket, int flags) LC_WUR;
/* Wipes and empties b without sending; its entries are given up. */
void lc_zmq_batch_clear(lc_zmq_batch_t *b);
void lc_zmq_batch_free(lc_zmq_batch_t *b);
/* Whether a received batch of n entries, len bytes in all, is within the bounds above (what
 * lc_zmq_batch_fits lets a sender make): receivers drop a batch that is not. */
int lc_zmq_batch_within(size_t n, size_t len);
/* ZMQ_MAXMSGSIZE of a socket receiving batches whose single entries reach entry_max bytes. */
int64_t lc_zmq_batch_max_msg(int64_t entry_max);

/* One socket of a link. */
typedef struct {
    const char *name;      /* the link: "readings", "sealed", "events", "queries" (ZAP domain,
                              metrics label) */
    int type;              /* ZMQ_PUSH, ZMQ_PULL, ... */
    const char *endpoints; /* comma-separated; a connecting one may end in "#<server cert name>"
                              (lc_curve.h) */
    int bind;              /* 1: bind (CURVE server), 0: connect (CURVE client) */
    unsigned roles;        /* bind: LC_ROLE_* admitted; connect: the server's LC_ROLE_* */
    int hwm;               /* send and receive high-water marks, in messages */
    int linger_ms;
    int64_t max_msg; /* ZMQ_MAXMSGSIZE: larger frames close the sender's connection
                        before they are allocated */
} lc_zmq_opts_t;

/* Creates, secures (lc_curve_server / lc_curve_client per endpoint) and attaches a socket.
 * peers (required for bound sockets: their refused handshakes are counted from its events)
 * receives a watcher of the socket's connections; the caller calls lc_zmq_peers_update at
 * least once a second from the socket's thread and destroys it before the socket.
 * NULL on error (logged). */
zsock_t *lc_zmq_open(const lc_zmq_opts_t *opts, lc_curve_t *curve, lc_zmq_peers_t **peers);

/* Counts a socket's live connections from its monitor events (zmq_socket_monitor: connected
 * or accepted, minus disconnected), and passes failed handshakes and ended connections to
 * lc_curve's counters. Used for readiness ("is a peer there?") and metrics. Lives in the
 * thread that owns the socket: call lc_zmq_peers_update from there, and destroy it before the
 * socket. */
lc_zmq_peers_t *lc_zmq_peers_new(zsock_t *sock, lc_curve_t *curve, const char *name);
void lc_zmq_peers_destroy(lc_zmq_peers_t **self_p);
/* Takes the pending events without blocking; returns the number of connected peers. */
int lc_zmq_peers_update(lc_zmq_peers_t *self);

#endif
