/* lc_mqtt.h: a small MQTT 5.0 client whose application decides when a received QoS 1 message is
 * acknowledged. libmosquitto 2.0 and Paho C 1.3 both send the PUBACK themselves, as they hand
 * the message over; lcore acknowledges a reading only once it is in the write-ahead log, with
 * many messages in flight so that the log's group commit groups them (docs/ARCHITECTURE.md,
 * "MQTT ingest").
 *
 * What it does: one TCP connection at a time, in TLS (OpenSSL, 1.2 or later, the broker's
 * certificate verified against tls_ca_file and its name against the host connected to) when
 * tls_ca_file is set, CONNECT with Clean Start 0 and a session
 * expiry (a persistent session), Receive Maximum = the messages the application may hold
 * unacknowledged (a server going past it is counted, not refused: see lc_mqtt_over_window), our
 * Maximum Packet Size, Topic Alias Maximum 0 (an alias from the server is a
 * protocol error); SUBSCRIBE (QoS 1) to the filters at every connection; incoming PUBLISH QoS 0
 * and 1 handed to on_message; PUBACK when the application calls lc_mqtt_ack; outgoing PUBLISH
 * QoS 0 and 1, QoS 1 ones kept until their PUBACK and sent again (DUP) after a reconnection,
 * within the server's Receive Maximum and Maximum Packet Size; PINGREQ keep-alive; DISCONNECT.
 * What the server sends is decoded by lc_mqtt_codec, which trusts no length; a malformed packet
 * or a protocol error closes the connection with DISCONNECT and the reason code.
 *
 * Not thread-safe: one thread owns it (polls lc_mqtt_fd for lc_mqtt_events, calls
 * lc_mqtt_service). Reconnection is the owner's decision (lc_mqtt_connect again). */
#ifndef LC_MQTT_H
#define LC_MQTT_H

#include <stddef.h>
#include <stdint.h>

#include "lc_common.h"
#include "lc_mqtt_codec.h"

typedef struct lc_mqtt lc_mqtt_t;

/* A message from the server, borrowed for the call. conn identifies the connection it came
 * on: an acknowledgement must name it (a later connection's packet ids are another's). */
typedef void(lc_mqtt_message_fn)(void *arg, uint32_t conn, const lc_mqtt_publish_t *msg);

typedef struct {
    const char *client_id;   /* copied */
    const char *username;    /* copied; NULL: none */
    const uint8_t *password; /* copied into guarded memory; NULL: none */
    size_t password_len;
    unsigned keep_alive_s;      /* 0: none */
    uint32_t session_expiry_s;  /* the broker keeps our session (and messages) this long */
    uint16_t receive_max;       /* messages held unacknowledged at once (1..65535) */
    uint32_t max_packet;        /* the largest packet we take (0: the spec's limit) */
    const char *const *filters; /* subscribed at QoS 1 at every connection (copied) */
    size_t n_filters;
    size_t max_queued; /* QoS 1 publishes kept until acknowledged (0: 1024) */
    lc_mqtt_message_fn *on_message;
    void *arg;
    const char *tls_ca_file; /* PEM CA file: TLS to the broker (NULL: plain TCP). SSL_write
                              * writes with write(2): the process must ignore SIGPIPE. */
} lc_mqtt_opts_t;

enum {
    LC_MQTT_DOWN = 0,    /* no connection */
    LC_MQTT_OPENING = 1, /* TCP, CONNECT/CONNACK or SUBSCRIBE/SUBACK under way */
    LC_MQTT_UP = 2,      /* connected and subscribed: messages flow */
};

/* NULL on bad options or out of memory. */
lc_mqtt_t *lc_mqtt_new(const lc_mqtt_opts_t *opts);
/* Closes the connection without DISCONNECT (lc_mqtt_disconnect first for a clean end), wipes
 * the password. NULL-safe. */
void lc_mqtt_destroy(lc_mqtt_t **self_p);

/* Starts a connection to host:port (the name resolved here, blocking; the TCP connection and
 * the MQTT handshake go on in lc_mqtt_service). 0, or LC_ERR_UNAVAILABLE (no address, or the
 * connection was refused at once). The state must be LC_MQTT_DOWN. */
int lc_mqtt_connect(lc_mqtt_t *self, const char *host, const char *port) LC_WUR;

int lc_mqtt_state(const lc_mqtt_t *self);
/* The current connection's id (changes at every lc_mqtt_connect). */
uint32_t lc_mqtt_conn(const lc_mqtt_t *self);
/* CONNACK's Session Present of the current connection. */
int lc_mqtt_session_present(const lc_mqtt_t *self);

/* What to poll: the socket (-1 when DOWN) and POLLIN/POLLOUT; the longest wait before
 * lc_mqtt_service must run again (keep-alive, handshake timeout), in ms (-1: none). */
int lc_mqtt_fd(const lc_mqtt_t *self);
short lc_mqtt_events(const lc_mqtt_t *self);
int lc_mqtt_timeout_ms(const lc_mqtt_t *self);

/* Does the connection's work: reads and decodes what came (calling on_message), writes what is
 * queued, keeps the connection alive. revents: what poll said (0: only timers and packets
 * already read). 0, or a negative code once the connection is lost or closed for a protocol
 * error (state DOWN; lc_mqtt_error says why). on_message must not call lc_mqtt_disconnect,
 * lc_mqtt_drop or lc_mqtt_destroy. */
int lc_mqtt_service(lc_mqtt_t *self, short revents);

/* poll() once for at most timeout_ms (capped by lc_mqtt_timeout_ms), then lc_mqtt_service. */
int lc_mqtt_run(lc_mqtt_t *self, int timeout_ms);

/* Acknowledges a QoS 1 message of connection conn: queues its PUBACK (reason 0). 0, or
 * LC_ERR_NOTFOUND when conn is not the current connection (the server sends the message again
 * on the next one) or the message is not unacknowledged. */
int lc_mqtt_ack(lc_mqtt_t *self, uint32_t conn, uint16_t pid);

/* Messages received and not yet acknowledged on the current connection. */
unsigned lc_mqtt_unacked(const lc_mqtt_t *self);

/* QoS 1 messages the server sent past our Receive Maximum (taken, not refused: Mosquitto 2.0.11
 * does so after a PUBACK while it has messages queued for us). */
uint64_t lc_mqtt_over_window(const lc_mqtt_t *self);

/* Stops (1) or resumes (0) reading: no message is handed over while paused (what the server
 * sends waits in the socket; TCP pushes back). */
void lc_mqtt_pause(lc_mqtt_t *self, int paused);

/* Publishes: QoS 0 only while connected (else LC_ERR_UNAVAILABLE); QoS 1 queued, sent within
 * the server's Receive Maximum, kept until acknowledged and sent again after a reconnection.
 * p->pid and p->dup are ignored. 0, LC_ERR_FULL (max_queued QoS 1 messages held),
 * LC_ERR_TOOBIG (over the server's Maximum Packet Size, or not encodable), LC_ERR_NOMEM. */
int lc_mqtt_publish(lc_mqtt_t *self, const lc_mqtt_publish_t *p) LC_WUR;

/* QoS 1 publishes not yet acknowledged by the server (queued or in flight). */
size_t lc_mqtt_queued(const lc_mqtt_t *self);

/* Sends DISCONNECT (normal), writes what is queued (waiting at most timeout_ms), closes.
 * Unacknowledged messages stay with the broker's session. */
void lc_mqtt_disconnect(lc_mqtt_t *self, int timeout_ms);
/* Closes the connection at once, without DISCONNECT (as if the process died). */
void lc_mqtt_drop(lc_mqtt_t *self);

/* Why the last connection ended or failed, for the log. */
const char *lc_mqtt_error(const lc_mqtt_t *self);

#endif
