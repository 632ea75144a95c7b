/* lc_zmq.c: see lc_zmq.h. */
#include "lc_zmq.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lc_log.h"

int lc_zmq_send_pb(void *socket, const char *topic, const ProtobufCMessage *msg, int flags)
{
    void *handle = zsock_resolve(socket);
    if (topic && zmq_send(handle, topic, strlen(topic), ZMQ_SNDMORE | flags) < 0)
        return errno == EAGAIN ? LC_ERR_TIMEOUT : LC_ERR_IO;
    size_t len = protobuf_c_message_get_packed_size(msg);
    zmq_msg_t m;
    if (zmq_msg_init_size(&m, len) != 0)
        return LC_ERR_NOMEM;
    protobuf_c_message_pack(msg, zmq_msg_data(&m));
    if (zmq_msg_send(&m, handle, flags) < 0) {
        int e = errno;
        zmq_msg_close(&m);
        return e == EAGAIN ? LC_ERR_TIMEOUT : LC_ERR_IO;
    }
    return 0;
}

void lc_zmq_tune(zsock_t *sock, int hwm, int linger_ms)
{
    zsock_set_sndhwm(sock, hwm);
    zsock_set_rcvhwm(sock, hwm);
    zsock_set_linger(sock, linger_ms);
}

zsock_t *lc_zmq_socket(int type, const char *endpoints, int bind, int hwm, int linger_ms)
{
    return lc_zmq_socket_watched(type, endpoints, bind, hwm, linger_ms, NULL);
}

zsock_t *lc_zmq_socket_watched(int type, const char *endpoints, int bind, int hwm, int linger_ms,
                               lc_zmq_peers_t **peers)
{
    zsock_t *sock = zsock_new(type);
    if (!sock) {
        lc_error("zmq_socket_failed", "type=%d", type);
        return NULL;
    }
    lc_zmq_tune(sock, hwm, linger_ms);
    if (!bind)
        zsock_set_immediate(sock, 1);
    /* The monitor goes on before the first connection so that no event is missed. */
    if (peers && !(*peers = lc_zmq_peers_new(sock))) {
        zsock_destroy(&sock);
        return NULL;
    }
    if (zsock_attach(sock, endpoints, bind != 0) != 0) {
        lc_error("zmq_attach_failed", "endpoints=%s bind=%d err=\"%s\"", endpoints, bind,
                 zmq_strerror(zmq_errno()));
        if (peers)
            lc_zmq_peers_destroy(peers);
        zsock_destroy(&sock);
        return NULL;
    }
    return sock;
}

struct lc_zmq_peers {
    void *watched;
    zsock_t *pair;
    int count;
};

lc_zmq_peers_t *lc_zmq_peers_new(zsock_t *sock)
{
    static atomic_uint next;
    lc_zmq_peers_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    char ep[64];
    snprintf(ep, sizeof ep, "inproc://lc-peers-%u", atomic_fetch_add(&next, 1));
    self->watched = zsock_resolve(sock);
    if (zmq_socket_monitor(self->watched, ep,
                           ZMQ_EVENT_CONNECTED | ZMQ_EVENT_ACCEPTED | ZMQ_EVENT_DISCONNECTED) !=
            0 ||
        !(self->pair = zsock_new(ZMQ_PAIR)) || zsock_connect(self->pair, "%s", ep) != 0) {
        lc_error("zmq_monitor_failed", "err=\"%s\"", zmq_strerror(zmq_errno()));
        lc_zmq_peers_destroy(&self);
        return NULL;
    }
    return self;
}

void lc_zmq_peers_destroy(lc_zmq_peers_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    lc_zmq_peers_t *self = *self_p;
    if (self->watched)
        zmq_socket_monitor(self->watched, NULL, 0);
    zsock_destroy(&self->pair);
    free(self);
    *self_p = NULL;
}

int lc_zmq_peers_update(lc_zmq_peers_t *self)
{
    void *h = zsock_resolve(self->pair);
    for (;;) {
        /* An event is two frames: u16 event + u32 value, then the endpoint. */
        zmq_msg_t ev;
        zmq_msg_init(&ev);
        if (zmq_msg_recv(&ev, h, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&ev);
            break;
        }
        uint16_t event = 0;
        if (zmq_msg_size(&ev) >= 2)
            memcpy(&event, zmq_msg_data(&ev), sizeof event);
        int more = zmq_msg_more(&ev);
        zmq_msg_close(&ev);
        while (more) {
            zmq_msg_t part;
            zmq_msg_init(&part);
            if (zmq_msg_recv(&part, h, 0) < 0) {
                zmq_msg_close(&part);
                break;
            }
            more = zmq_msg_more(&part);
            zmq_msg_close(&part);
        }
        if (event == ZMQ_EVENT_CONNECTED || event == ZMQ_EVENT_ACCEPTED)
            self->count++;
        else if (event == ZMQ_EVENT_DISCONNECTED && self->count > 0)
            self->count--;
    }
    return self->count;
}
