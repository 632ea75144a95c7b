/* gw_acks.c: see gw_acks.h. */
#include "gw_acks.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lc_log.h"
#include "lc_zmq.h"
#include "lcore.pb-c.h"

typedef struct {
    gw_acks_opts_t opts;
    zsock_t *sub;
} s_args_t;

static void s_actor(zsock_t *pipe, void *arg)
{
    s_args_t *args = arg;
    gw_acks_opts_t opts_copy = args->opts;
    const gw_acks_opts_t *opts = &opts_copy;
    zsock_t *sub = args->sub;
    free(args);
    lc_counter_t *acked = lc_metrics_counter(opts->metrics, "lcore_gateway_acked_total",
                                             "Records the store acknowledged as committed", NULL);
    lc_counter_t *bad =
        lc_metrics_counter(opts->metrics, "lcore_gateway_bad_messages_total",
                           "Undecodable or unknown-version messages dropped", "socket=\"events\"");
    zsock_signal(pipe, 0);
    zpoller_t *poller = zpoller_new(pipe, sub, NULL);
    while (poller) {
        void *which = zpoller_wait(poller, -1);
        if (which == pipe) {
            char *cmd = zstr_recv(pipe);
            int term = !cmd || strcmp(cmd, "$TERM") == 0;
            zstr_free(&cmd);
            if (term)
                break;
            continue;
        }
        if (which != sub) {
            if (zpoller_terminated(poller))
                break;
            continue;
        }
        zmsg_t *msg = zmsg_recv(sub);
        if (!msg)
            continue;
        zframe_t *body = zmsg_size(msg) == 2 ? zmsg_last(msg) : NULL;
        Lcore__V1__Ack *ack =
            body ? lcore__v1__ack__unpack(NULL, zframe_size(body), zframe_data(body)) : NULL;
        if (!ack || ack->version != 1)
            lc_counter_inc(bad);
        else
            lc_counter_add(acked, ack->n_record_ids);
        if (ack)
            lcore__v1__ack__free_unpacked(ack, NULL);
        zmsg_destroy(&msg);
    }
    zpoller_destroy(&poller);
    zsock_destroy(&sub);
}

zactor_t *gw_acks_new(const gw_acks_opts_t *opts)
{
    s_args_t *args = calloc(1, sizeof *args);
    if (!args)
        return NULL;
    args->opts = *opts;
    /* The socket is made here so a bad endpoint fails start-up instead of the actor. */
    args->sub = lc_zmq_socket(ZMQ_SUB, opts->events_connect, 0, 100000, 0);
    if (!args->sub) {
        free(args);
        return NULL;
    }
    char topic[96];
    snprintf(topic, sizeof topic, "ack/%s/", opts->gateway_id);
    zsock_set_subscribe(args->sub, topic);
    return zactor_new(s_actor, args);
}
