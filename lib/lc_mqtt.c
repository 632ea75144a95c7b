/* lc_mqtt.c: the MQTT 5.0 client's connection: socket, buffers, session state. The bytes on
 * the wire are lc_mqtt_codec's. See lc_mqtt.h. */
#include "lc_mqtt.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define S_HANDSHAKE_US (10 * 1000000ull) /* TCP + CONNACK + SUBACK */
#define S_READ_CHUNK 65536

enum { P_TCP, P_TLS, P_CONNACK, P_SUBACK, P_UP };

/* A QoS 1 publish kept until the server acknowledges it, in the order it was queued. */
typedef struct s_out {
    struct s_out *prev, *next;
    uint16_t pid;
    int sent;      /* on the current connection */
    int sent_once; /* on any connection: sent again with DUP */
    size_t len;
    uint8_t pkt[];
} s_out_t;

struct lc_mqtt {
    lc_mqtt_opts_t o;
    char *client_id, *username, **filters;
    uint8_t *password; /* sodium_malloc'd */
    int fd, phase;
    SSL_CTX *tls_ctx; /* NULL: plain TCP */
    SSL *ssl;         /* this connection's, with tls_ctx */
    short tls_want;   /* P_TLS: what the handshake waits for */
    short tls_cross;  /* up: POLLOUT when a TLS read must write first, POLLIN when a write must
                         read first (post-handshake messages); 0 otherwise */
    char *host;       /* the name the broker's certificate must carry */
    uint32_t conn;
    int session_present;
    uint64_t opened_us, last_sent_us, ping_sent_us;
    unsigned keep_alive_s;
    uint8_t *in, *out;
    size_t in_len, in_cap, out_len, out_cap;
    uint16_t server_receive_max, sub_pid;
    uint32_t server_max_packet;
    s_out_t **by_pid; /* 65536 slots */
    s_out_t *head, *tail, *next_unsent;
    size_t n_queued;
    unsigned n_inflight_out;
    uint16_t next_pid;
    uint8_t unacked[65536 / 8]; /* incoming QoS 1 packet ids not yet acknowledged */
    unsigned n_unacked;
    uint64_t over_window;
    int paused;
    char error[160];
};

static void s_set_error(lc_mqtt_t *self, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void s_set_error(lc_mqtt_t *self, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(self->error, sizeof self->error, fmt, ap);
    va_end(ap);
}

static char *s_strdup(const char *s)
{
    return s ? strdup(s) : NULL;
}

static int s_copy_opts(lc_mqtt_t *self, const lc_mqtt_opts_t *o)
{
    self->o = *o;
    if (!(self->client_id = strdup(o->client_id)) ||
        (o->username && !(self->username = s_strdup(o->username))))
        return -1;
    if (o->password) {
        if (!(self->password = sodium_malloc(o->password_len + 1)))
            return -1;
        memcpy(self->password, o->password, o->password_len);
    }
    if (o->n_filters && !(self->filters = calloc(o->n_filters, sizeof(char *))))
        return -1;
    for (size_t i = 0; i < o->n_filters; i++)
        if (!(self->filters[i] = strdup(o->filters[i])))
            return -1;
    if (!self->o.max_queued)
        self->o.max_queued = 1024;
    if (self->o.max_queued > 65535)
        self->o.max_queued = 65535;
    if (!self->o.max_packet)
        self->o.max_packet = LC_MQTT_MAX_REMAINING + 5;
    return 0;
}

/* TLS 1.2 or later, the broker's chain verified against the CA file, its name checked
 * (X509_check_host, through SSL_set1_host at each connection). */
static int s_tls_ctx(lc_mqtt_t *self, const char *ca_file)
{
    if (!(self->tls_ctx = SSL_CTX_new(TLS_client_method())))
        return -1;
    SSL_CTX_set_min_proto_version(self->tls_ctx, TLS1_2_VERSION);
    /* Like send(2): a write may take part of the bytes, and the output buffer moves (it is
     * compacted and grown between tries). */
    SSL_CTX_set_mode(self->tls_ctx,
                     SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    /* A TLS 1.2 renegotiation the broker asks for is refused: a read would have to write. (A TLS
     * 1.3 key update's answer goes out with the next write.) */
    SSL_CTX_set_options(self->tls_ctx, SSL_OP_NO_RENEGOTIATION);
    SSL_CTX_set_verify(self->tls_ctx, SSL_VERIFY_PEER, NULL);
    if (SSL_CTX_load_verify_locations(self->tls_ctx, ca_file, NULL) != 1) {
        s_set_error(self, "cannot load the CA file %s", ca_file);
        return -1;
    }
    return 0;
}

lc_mqtt_t *lc_mqtt_new(const lc_mqtt_opts_t *opts)
{
    if (!opts->client_id || !opts->on_message || opts->receive_max == 0 ||
        (opts->password && !opts->username) || sodium_init() < 0)
        return NULL;
    lc_mqtt_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->fd = -1;
    self->next_pid = 1;
    if (s_copy_opts(self, opts) < 0 || !(self->by_pid = calloc(65536, sizeof(s_out_t *))) ||
        (opts->tls_ca_file && s_tls_ctx(self, opts->tls_ca_file) < 0)) {
        lc_mqtt_destroy(&self);
        return NULL;
    }
    return self;
}

static void s_close(lc_mqtt_t *self);

void lc_mqtt_destroy(lc_mqtt_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    lc_mqtt_t *self = *self_p;
    s_close(self);
    for (s_out_t *m = self->head, *next; m; m = next) {
        next = m->next;
        free(m);
    }
    for (size_t i = 0; self->filters && i < self->o.n_filters; i++)
        free(self->filters[i]);
    free(self->filters);
    sodium_free(self->password);
    free(self->client_id);
    free(self->username);
    free(self->by_pid);
    free(self->in);
    free(self->out);
    free(self->host);
    SSL_CTX_free(self->tls_ctx);
    free(self);
    *self_p = NULL;
}

int lc_mqtt_state(const lc_mqtt_t *self)
{
    return self->fd < 0 ? LC_MQTT_DOWN : self->phase == P_UP ? LC_MQTT_UP : LC_MQTT_OPENING;
}

uint32_t lc_mqtt_conn(const lc_mqtt_t *self)
{
    return self->conn;
}

int lc_mqtt_session_present(const lc_mqtt_t *self)
{
    return self->session_present;
}

int lc_mqtt_fd(const lc_mqtt_t *self)
{
    return self->fd;
}

const char *lc_mqtt_error(const lc_mqtt_t *self)
{
    return self->error;
}

unsigned lc_mqtt_unacked(const lc_mqtt_t *self)
{
    return self->n_unacked;
}

uint64_t lc_mqtt_over_window(const lc_mqtt_t *self)
{
    return self->over_window;
}

size_t lc_mqtt_queued(const lc_mqtt_t *self)
{
    return self->n_queued;
}

void lc_mqtt_pause(lc_mqtt_t *self, int paused)
{
    self->paused = paused;
}

short lc_mqtt_events(const lc_mqtt_t *self)
{
    if (self->fd < 0)
        return 0;
    if (self->phase == P_TCP)
        return POLLOUT;
    if (self->phase == P_TLS)
        return self->tls_want;
    return (short)((self->paused ? 0 : POLLIN) | (self->out_len ? POLLOUT : 0) | self->tls_cross);
}

/* Closes the socket; what the connection held goes (the server keeps the session). */
static void s_close(lc_mqtt_t *self)
{
    SSL_free(self->ssl);
    self->ssl = NULL;
    self->tls_cross = 0;
    if (self->fd >= 0)
        close(self->fd);
    self->fd = -1;
    self->in_len = self->out_len = 0;
    memset(self->unacked, 0, sizeof self->unacked);
    self->n_unacked = 0;
    self->n_inflight_out = 0;
    for (s_out_t *m = self->head; m; m = m->next)
        m->sent = 0;
    self->next_unsent = self->head;
    self->ping_sent_us = 0;
}

/* The connection's bytes, through TLS when configured: what send(2) and recv(2) return, with
 * TLS's "want read / want write" as EAGAIN. (SSL_write writes with write(2): the process must
 * ignore SIGPIPE, as lcore's services do.) */
static ssize_t s_send(lc_mqtt_t *self, const uint8_t *b, size_t n)
{
    if (!self->ssl)
        return send(self->fd, b, n, MSG_NOSIGNAL | MSG_DONTWAIT);
    ERR_clear_error();
    int w = SSL_write(self->ssl, b, (int)(n > INT32_MAX ? INT32_MAX : n));
    int e = w > 0 ? SSL_ERROR_NONE : SSL_get_error(self->ssl, w);
    self->tls_cross =
        (short)((self->tls_cross & ~POLLIN) | (e == SSL_ERROR_WANT_READ ? POLLIN : 0));
    if (w > 0)
        return w;
    errno = e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE ? EAGAIN
            : e == SSL_ERROR_SYSCALL && errno                     ? errno
                                                                  : EPROTO;
    return -1;
}

static ssize_t s_recv(lc_mqtt_t *self, uint8_t *b, size_t n)
{
    if (!self->ssl)
        return recv(self->fd, b, n, MSG_DONTWAIT);
    ERR_clear_error();
    int r = SSL_read(self->ssl, b, (int)(n > INT32_MAX ? INT32_MAX : n));
    int e = r > 0 ? SSL_ERROR_NONE : SSL_get_error(self->ssl, r);
    self->tls_cross =
        (short)((self->tls_cross & ~POLLOUT) | (e == SSL_ERROR_WANT_WRITE ? POLLOUT : 0));
    if (r > 0)
        return r;
    if (e == SSL_ERROR_ZERO_RETURN)
        return 0;
    errno = e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE ? EAGAIN
            : e == SSL_ERROR_SYSCALL && errno                     ? errno
                                                                  : EPROTO;
    return -1;
}

/* Queues bytes to write. */
static int s_queue(lc_mqtt_t *self, const uint8_t *b, size_t n)
{
    uint8_t *grown = lc_grow(self->out, &self->out_cap, self->out_len + n, 4096);
    if (!grown)
        return LC_ERR_NOMEM;
    self->out = grown;
    memcpy(self->out + self->out_len, b, n);
    self->out_len += n;
    return 0;
}

/* Fails the connection: DISCONNECT with reason (>= 0x80; 0: none sent) if the handshake got
 * that far, then closes. Returns LC_ERR_IO. */
static int s_fail(lc_mqtt_t *self, uint8_t reason, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int s_fail(lc_mqtt_t *self, uint8_t reason, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(self->error, sizeof self->error, fmt, ap);
    va_end(ap);
    if (reason && self->fd >= 0 && self->phase > P_TLS) {
        uint8_t b[3];
        size_t n = lc_mqtt_encode_disconnect(b, sizeof b, reason);
        ssize_t w = s_send(self, b, n); /* best effort */
        (void)w;
    }
    s_close(self);
    return LC_ERR_IO;
}

int lc_mqtt_connect(lc_mqtt_t *self, const char *host, const char *port)
{
    if (self->fd >= 0)
        return LC_ERR_INVALID;
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res = NULL;
    int gai = getaddrinfo(host, port, &hints, &res);
    if (gai != 0) {
        s_set_error(self, "resolve %s: %s", host, gai_strerror(gai));
        return LC_ERR_UNAVAILABLE;
    }
    int rc = LC_ERR_UNAVAILABLE;
    for (struct addrinfo *a = res; a && self->fd < 0; a = a->ai_next) {
        int fd = socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0)
            continue;
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        if (connect(fd, a->ai_addr, a->ai_addrlen) == 0 || errno == EINPROGRESS) {
            self->fd = fd;
            rc = 0;
        } else {
            s_set_error(self, "connect %s:%s: %s", host, port, strerror(errno));
            close(fd);
        }
    }
    freeaddrinfo(res);
    if (rc == 0 && self->tls_ctx && (!self->host || strcmp(self->host, host) != 0)) {
        free(self->host);
        if (!(self->host = strdup(host))) {
            s_close(self);
            rc = LC_ERR_NOMEM;
        }
    }
    if (rc == 0) {
        self->conn++;
        self->phase = P_TCP;
        self->session_present = 0;
        self->opened_us = self->last_sent_us = lc_mono_us();
        self->keep_alive_s = self->o.keep_alive_s;
        self->server_receive_max = 65535;
        self->server_max_packet = 0;
    }
    return rc;
}

/* Writes what is queued, as far as the socket takes it. 0, or LC_ERR_IO (closed). */
static int s_flush(lc_mqtt_t *self)
{
    size_t off = 0;
    while (off < self->out_len) {
        ssize_t n = s_send(self, self->out + off, self->out_len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        if (n <= 0) {
            self->out_len = 0;
            return s_fail(self, 0, "send: %s", n < 0 ? strerror(errno) : "closed");
        }
        off += (size_t)n;
        self->last_sent_us = lc_mono_us();
    }
    memmove(self->out, self->out + off, self->out_len - off);
    self->out_len -= off;
    return 0;
}

static void s_unlink(lc_mqtt_t *self, s_out_t *m)
{
    if (self->next_unsent == m)
        self->next_unsent = m->next;
    if (m->prev)
        m->prev->next = m->next;
    else
        self->head = m->next;
    if (m->next)
        m->next->prev = m->prev;
    else
        self->tail = m->prev;
    self->by_pid[m->pid] = NULL;
    self->n_queued--;
    free(m);
}

/* Queues the QoS 1 publishes not yet sent on this connection, within the server's Receive
 * Maximum. One over the server's Maximum Packet Size is dropped (it never could be sent). */
static int s_send_publishes(lc_mqtt_t *self)
{
    while (self->next_unsent && self->n_inflight_out < self->server_receive_max) {
        s_out_t *m = self->next_unsent;
        self->next_unsent = m->next;
        if (self->server_max_packet && m->len > self->server_max_packet) {
            s_unlink(self, m);
            continue;
        }
        if (m->sent_once)
            m->pkt[0] |= 0x08; /* DUP */
        if (s_queue(self, m->pkt, m->len) < 0)
            return LC_ERR_NOMEM;
        m->sent = m->sent_once = 1;
        self->n_inflight_out++;
    }
    return 0;
}

/* The TCP connection is up: CONNECT. */
static int s_send_connect(lc_mqtt_t *self)
{
    lc_mqtt_connect_t c = {.client_id = self->client_id,
                           .username = self->username,
                           .password = self->password,
                           .password_len = self->o.password_len,
                           .keep_alive_s = (uint16_t)self->o.keep_alive_s,
                           .clean_start = 0,
                           .session_expiry_s = self->o.session_expiry_s,
                           .receive_max = self->o.receive_max,
                           .max_packet = self->o.max_packet};
    size_t n = lc_mqtt_encode_connect(NULL, 0, &c);
    uint8_t *b = n ? sodium_malloc(n) : NULL; /* holds the password */
    if (!b)
        return s_fail(self, 0, "CONNECT cannot be encoded");
    lc_mqtt_encode_connect(b, n, &c);
    int rc = s_queue(self, b, n);
    sodium_free(b);
    self->phase = P_CONNACK;
    return rc;
}

static int s_on_connack(lc_mqtt_t *self, uint8_t flags, const uint8_t *body, size_t len)
{
    lc_mqtt_connack_t ca;
    int rc = lc_mqtt_decode_connack(flags, body, len, &ca);
    if (rc)
        return s_fail(self, (uint8_t)rc, "malformed CONNACK (reason 0x%02x)", rc);
    if (ca.reason >= 0x80)
        return s_fail(self, 0, "connection refused by the broker (reason 0x%02x)", ca.reason);
    self->session_present = ca.session_present;
    self->server_receive_max = ca.receive_max;
    self->server_max_packet = ca.max_packet;
    if (ca.server_keep_alive >= 0)
        self->keep_alive_s = (unsigned)ca.server_keep_alive;
    self->phase = P_UP;
    if (self->o.n_filters) {
        self->sub_pid = (uint16_t)(self->conn % 65535 + 1);
        size_t n = lc_mqtt_encode_subscribe(
            NULL, 0, self->sub_pid, (const char *const *)self->filters, self->o.n_filters, 1);
        uint8_t *b = n ? malloc(n) : NULL;
        if (!b)
            return s_fail(self, 0, "SUBSCRIBE cannot be encoded");
        lc_mqtt_encode_subscribe(b, n, self->sub_pid, (const char *const *)self->filters,
                                 self->o.n_filters, 1);
        rc = s_queue(self, b, n);
        free(b);
        if (rc < 0)
            return rc;
        self->phase = P_SUBACK;
    }
    return s_send_publishes(self); /* what the last connection left unacknowledged */
}

static int s_on_suback(lc_mqtt_t *self, uint8_t flags, const uint8_t *body, size_t len)
{
    uint16_t pid;
    uint8_t reasons[64];
    size_t n;
    int rc = lc_mqtt_decode_suback(flags, body, len, &pid, reasons, sizeof reasons, &n);
    if (rc)
        return s_fail(self, (uint8_t)rc, "malformed SUBACK (reason 0x%02x)", rc);
    if (self->phase != P_SUBACK || pid != self->sub_pid || n != self->o.n_filters)
        return s_fail(self, LC_MQTT_RC_PROTOCOL, "unexpected SUBACK");
    for (size_t i = 0; i < n; i++)
        if (reasons[i] >= 0x80)
            return s_fail(self, 0, "subscription to %s refused (reason 0x%02x)", self->filters[i],
                          reasons[i]);
    self->phase = P_UP;
    return 0;
}

static int s_on_publish(lc_mqtt_t *self, uint8_t flags, const uint8_t *body, size_t len)
{
    lc_mqtt_publish_t p;
    int rc = lc_mqtt_decode_publish(flags, body, len, &p);
    if (rc)
        return s_fail(self, (uint8_t)rc, "malformed PUBLISH (reason 0x%02x)", rc);
    if (p.topic_alias)
        return s_fail(self, LC_MQTT_RC_TOPIC_ALIAS, "topic alias (we allow none)");
    if (p.qos > 1)
        return s_fail(self, LC_MQTT_RC_PROTOCOL, "QoS 2 PUBLISH (subscribed at QoS 1)");
    if (p.qos == 1) {
        uint8_t bit = (uint8_t)(1u << (p.pid & 7));
        if (!(self->unacked[p.pid >> 3] & bit)) {
            /* Mosquitto 2.0.11 goes past our Receive Maximum after a PUBACK while it has
             * messages queued (db__message_delete_outgoing moves them in by position, not by
             * quota). Refusing would reconnect forever; counted instead. The owner bounds its
             * memory by pausing. */
            if (self->n_unacked >= self->o.receive_max)
                self->over_window++;
            self->unacked[p.pid >> 3] |= bit;
            self->n_unacked++;
        }
    }
    self->o.on_message(self->o.arg, self->conn, &p);
    return 0;
}

/* One packet from the server. */
static int s_on_packet(lc_mqtt_t *self, uint8_t hdr, const uint8_t *body, size_t len)
{
    unsigned type = hdr >> 4, flags = hdr & 0x0f;
    if (self->phase == P_CONNACK && type != LC_MQTT_CONNACK)
        return s_fail(self, LC_MQTT_RC_PROTOCOL, "packet type %u before CONNACK", type);
    uint16_t pid;
    uint8_t reason;
    int rc;
    switch (type) {
    case LC_MQTT_CONNACK:
        if (self->phase != P_CONNACK)
            return s_fail(self, LC_MQTT_RC_PROTOCOL, "second CONNACK");
        return s_on_connack(self, (uint8_t)flags, body, len);
    case LC_MQTT_SUBACK:
        return s_on_suback(self, (uint8_t)flags, body, len);
    case LC_MQTT_PUBLISH:
        return s_on_publish(self, (uint8_t)flags, body, len);
    case LC_MQTT_PUBACK:
        if ((rc = lc_mqtt_decode_puback((uint8_t)flags, body, len, &pid, &reason)) != 0)
            return s_fail(self, (uint8_t)rc, "malformed PUBACK (reason 0x%02x)", rc);
        if (self->by_pid[pid] && self->by_pid[pid]->sent) {
            s_unlink(self, self->by_pid[pid]);
            self->n_inflight_out--;
            return s_send_publishes(self);
        }
        return 0; /* an acknowledgement of nothing we sent: ignored */
    case LC_MQTT_PINGRESP:
        if (flags || len)
            return s_fail(self, LC_MQTT_RC_MALFORMED, "malformed PINGRESP");
        self->ping_sent_us = 0;
        return 0;
    case LC_MQTT_DISCONNECT:
        if (lc_mqtt_decode_disconnect((uint8_t)flags, body, len, &reason) != 0)
            reason = LC_MQTT_RC_MALFORMED;
        return s_fail(self, 0, "disconnected by the broker (reason 0x%02x)", reason);
    default:
        return s_fail(self, LC_MQTT_RC_PROTOCOL, "unexpected packet type %u", type);
    }
}

/* Decodes the whole packets read so far (not while paused). */
static int s_parse(lc_mqtt_t *self)
{
    size_t off = 0;
    int rc = 0;
    while (!self->paused && self->fd >= 0) {
        uint8_t hdr;
        size_t body_off, total;
        rc = lc_mqtt_frame(self->in + off, self->in_len - off, self->o.max_packet, &hdr, &body_off,
                           &total);
        if (rc == LC_ERR_TIMEOUT) {
            rc = 0;
            break;
        }
        if (rc == LC_ERR_TOOBIG)
            return s_fail(self, LC_MQTT_RC_TOO_LARGE, "packet over our Maximum Packet Size");
        if (rc < 0)
            return s_fail(self, LC_MQTT_RC_MALFORMED, "malformed Remaining Length");
        const uint8_t *pkt = self->in + off;
        off += total;
        if ((rc = s_on_packet(self, hdr, pkt + body_off, total - body_off)) < 0)
            return rc; /* closed: the buffer is gone */
    }
    if (self->fd >= 0 && off) { /* off 0: nothing taken (and maybe no buffer yet) */
        memmove(self->in, self->in + off, self->in_len - off);
        self->in_len -= off;
    }
    return rc;
}

/* Reads what the socket has. 0, or LC_ERR_IO (closed). */
static int s_read(lc_mqtt_t *self)
{
    size_t start = self->in_len;
    for (;;) {
        uint8_t *grown =
            lc_grow(self->in, &self->in_cap, self->in_len + S_READ_CHUNK, S_READ_CHUNK);
        if (!grown)
            return s_fail(self, 0, "out of memory");
        self->in = grown;
        ssize_t n = s_recv(self, self->in + self->in_len, self->in_cap - self->in_len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return 0;
        if (n <= 0)
            return s_fail(self, 0, "connection closed by the broker%s%s", n < 0 ? ": " : "",
                          n < 0 ? strerror(errno) : "");
        self->in_len += (size_t)n;
        if (self->in_len - start >= 4 * S_READ_CHUNK)
            return 0; /* decode some before reading more */
    }
}

/* One step of the TLS handshake; CONNECT once it is done. */
static int s_tls_step(lc_mqtt_t *self)
{
    ERR_clear_error();
    int r = SSL_do_handshake(self->ssl);
    if (r == 1)
        return s_send_connect(self);
    int e = SSL_get_error(self->ssl, r);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
        self->tls_want = e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT;
        return 0;
    }
    long v = SSL_get_verify_result(self->ssl);
    char why[120];
    ERR_error_string_n(ERR_peek_last_error(), why, sizeof why);
    return s_fail(self, 0, "TLS handshake with %s failed: %s", self->host,
                  v != X509_V_OK ? X509_verify_cert_error_string(v) : why);
}

static int s_tcp_done(lc_mqtt_t *self)
{
    int err = 0;
    socklen_t l = sizeof err;
    if (getsockopt(self->fd, SOL_SOCKET, SO_ERROR, &err, &l) < 0)
        err = errno;
    if (err)
        return s_fail(self, 0, "connect: %s", strerror(err));
    if (!self->tls_ctx)
        return s_send_connect(self);
    /* The name to check: an IP address against the certificate's IP entries (and no SNI,
     * which takes names only), a host name against its DNS names. */
    uint8_t ip[16];
    int is_ip = inet_pton(AF_INET, self->host, ip) == 1 || inet_pton(AF_INET6, self->host, ip) == 1;
    if (!(self->ssl = SSL_new(self->tls_ctx)) || SSL_set_fd(self->ssl, self->fd) != 1 ||
        (is_ip ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(self->ssl), self->host) != 1
               : SSL_set_tlsext_host_name(self->ssl, self->host) != 1 ||
                     SSL_set1_host(self->ssl, self->host) != 1))
        return s_fail(self, 0, "TLS: cannot set up the connection");
    SSL_set_connect_state(self->ssl);
    self->phase = P_TLS;
    return s_tls_step(self);
}

/* Keep-alive and the handshake's deadline. */
static int s_timers(lc_mqtt_t *self)
{
    uint64_t now = lc_mono_us(), ka = (uint64_t)self->keep_alive_s * 1000000;
    if (self->phase != P_UP && now - self->opened_us > S_HANDSHAKE_US)
        return s_fail(self, 0, "no answer to the handshake within %llu s",
                      (unsigned long long)(S_HANDSHAKE_US / 1000000));
    if (!ka || self->phase <= P_TLS)
        return 0;
    if (self->ping_sent_us && now - self->ping_sent_us >= ka)
        return s_fail(self, LC_MQTT_RC_KEEP_ALIVE, "no PINGRESP within the keep-alive");
    if (!self->ping_sent_us && now - self->last_sent_us >= ka) {
        uint8_t b[2];
        if (s_queue(self, b, lc_mqtt_encode_pingreq(b, sizeof b)) < 0)
            return LC_ERR_NOMEM;
        self->ping_sent_us = now;
    }
    return 0;
}

int lc_mqtt_timeout_ms(const lc_mqtt_t *self)
{
    if (self->fd < 0)
        return -1;
    if (self->ssl && self->phase > P_TLS && !self->paused && SSL_pending(self->ssl) > 0)
        return 0; /* decrypted bytes wait in TLS's buffer: no poll would say so */
    uint64_t now = lc_mono_us(), ka = (uint64_t)self->keep_alive_s * 1000000, due = UINT64_MAX;
    if (self->phase != P_UP)
        due = self->opened_us + S_HANDSHAKE_US;
    if (ka && self->phase > P_TLS) {
        uint64_t k = self->ping_sent_us ? self->ping_sent_us + ka : self->last_sent_us + ka;
        due = k < due ? k : due;
    }
    if (due == UINT64_MAX)
        return -1;
    return due <= now ? 0 : (int)((due - now + 999) / 1000);
}

int lc_mqtt_service(lc_mqtt_t *self, short revents)
{
    if (self->fd < 0)
        return LC_ERR_UNAVAILABLE;
    int rc = 0;
    if (self->phase == P_TCP) {
        if (!(revents & (POLLOUT | POLLERR | POLLHUP)))
            return s_timers(self);
        if ((rc = s_tcp_done(self)) < 0)
            return rc;
    } else if (self->phase == P_TLS) {
        if (!(revents & (POLLIN | POLLOUT | POLLERR | POLLHUP)))
            return s_timers(self);
        if ((rc = s_tls_step(self)) < 0)
            return rc;
    } else if ((revents & (POLLIN | POLLERR | POLLHUP)) ||
               ((self->tls_cross & POLLOUT) && (revents & POLLOUT)) ||
               (self->ssl && !self->paused && SSL_pending(self->ssl) > 0)) {
        if ((rc = s_read(self)) < 0)
            return rc;
    }
    if ((rc = s_parse(self)) < 0 || (rc = s_timers(self)) < 0)
        return rc;
    return self->out_len ? s_flush(self) : 0;
}

int lc_mqtt_run(lc_mqtt_t *self, int timeout_ms)
{
    if (self->fd < 0)
        return LC_ERR_UNAVAILABLE;
    int t = lc_mqtt_timeout_ms(self);
    if (t >= 0 && (timeout_ms < 0 || t < timeout_ms))
        timeout_ms = t;
    struct pollfd p = {.fd = self->fd, .events = lc_mqtt_events(self)};
    int n = poll(&p, 1, timeout_ms);
    return lc_mqtt_service(self, n > 0 ? p.revents : 0);
}

int lc_mqtt_ack(lc_mqtt_t *self, uint32_t conn, uint16_t pid)
{
    uint8_t bit = (uint8_t)(1u << (pid & 7));
    if (self->fd < 0 || conn != self->conn || !(self->unacked[pid >> 3] & bit))
        return LC_ERR_NOTFOUND;
    self->unacked[pid >> 3] &= (uint8_t)~bit;
    self->n_unacked--;
    uint8_t b[5];
    return s_queue(self, b, lc_mqtt_encode_puback(b, sizeof b, pid, 0));
}

static uint16_t s_next_pid(lc_mqtt_t *self)
{
    while (self->by_pid[self->next_pid] || self->next_pid == 0)
        self->next_pid++;
    return self->next_pid++;
}

int lc_mqtt_publish(lc_mqtt_t *self, const lc_mqtt_publish_t *p)
{
    lc_mqtt_publish_t m = *p;
    m.dup = 0;
    if (m.qos > 1)
        return LC_ERR_INVALID;
    if (m.qos == 1 && self->n_queued >= self->o.max_queued)
        return LC_ERR_FULL;
    if (m.qos == 0 && self->phase != P_UP)
        return LC_ERR_UNAVAILABLE;
    m.pid = m.qos ? s_next_pid(self) : 0;
    size_t n = lc_mqtt_encode_publish(NULL, 0, &m);
    if (!n || (self->server_max_packet && n > self->server_max_packet))
        return LC_ERR_TOOBIG;
    if (m.qos == 0) {
        uint8_t *b = malloc(n);
        int rc = b ? s_queue(self, b, lc_mqtt_encode_publish(b, n, &m)) : LC_ERR_NOMEM;
        free(b);
        return rc;
    }
    s_out_t *o = calloc(1, sizeof *o + n);
    if (!o)
        return LC_ERR_NOMEM;
    o->pid = m.pid;
    o->len = lc_mqtt_encode_publish(o->pkt, n, &m);
    o->prev = self->tail;
    if (self->tail)
        self->tail->next = o;
    else
        self->head = o;
    self->tail = o;
    if (!self->next_unsent)
        self->next_unsent = o;
    self->by_pid[o->pid] = o;
    self->n_queued++;
    return self->fd >= 0 && self->phase >= P_SUBACK ? s_send_publishes(self) : 0;
}

void lc_mqtt_disconnect(lc_mqtt_t *self, int timeout_ms)
{
    if (self->fd < 0)
        return;
    if (self->phase > P_TLS) {
        uint8_t b[3];
        if (s_queue(self, b, lc_mqtt_encode_disconnect(b, sizeof b, 0)) == 0) {
            uint64_t end = lc_mono_us() + (uint64_t)timeout_ms * 1000;
            while (self->fd >= 0 && self->out_len && lc_mono_us() < end) {
                struct pollfd p = {.fd = self->fd, .events = POLLOUT};
                if (poll(&p, 1, (int)((end - lc_mono_us()) / 1000) + 1) > 0 && s_flush(self) < 0)
                    break;
            }
        }
    }
    s_set_error(self, "disconnected");
    s_close(self);
}

void lc_mqtt_drop(lc_mqtt_t *self)
{
    s_set_error(self, "dropped");
    s_close(self);
}
