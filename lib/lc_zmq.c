/* lc_zmq.c: see lc_zmq.h. */
#include "lc_zmq.h"

#include <errno.h>
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
    zsock_t *sock = zsock_new(type);
    if (!sock) {
        lc_error("zmq_socket_failed", "type=%d", type);
        return NULL;
    }
    lc_zmq_tune(sock, hwm, linger_ms);
    if (!bind)
        zsock_set_immediate(sock, 1);
    if (zsock_attach(sock, endpoints, bind != 0) != 0) {
        lc_error("zmq_attach_failed", "endpoints=%s bind=%d err=\"%s\"", endpoints, bind,
                 zmq_strerror(zmq_errno()));
        zsock_destroy(&sock);
        return NULL;
    }
    return sock;
}
