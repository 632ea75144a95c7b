/* gw_acks.h: the ack listener, an actor that owns a SUB socket on the store's events and counts
 * the records the store has committed for this gateway (topic "ack/<gateway_id>/"). The durable
 * log (a later issue) will release its entries here. */
#ifndef GW_ACKS_H
#define GW_ACKS_H

#include <czmq.h>

#include "lc_metrics.h"

typedef struct {
    const char *events_connect;
    const char *gateway_id;
    lc_metrics_t *metrics;
} gw_acks_opts_t;

/* Starts the actor; NULL on error. Destroy with zactor_destroy (sends $TERM, waits). */
zactor_t *gw_acks_new(const gw_acks_opts_t *opts);

#endif
