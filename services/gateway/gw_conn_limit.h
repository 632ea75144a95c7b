/* gw_conn_limit.h: connections per client address on the device listener, counted across all
 * HTTP threads (libmicrohttpd's own per-IP limit counts per thread of its pool). Addresses are
 * counted in a fixed table under a keyed hash (two addresses whose hashes collide share a
 * count: stricter, never looser). Called from libmicrohttpd's accept policy and connection
 * notifications (gw_http.c). */
#ifndef GW_CONN_LIMIT_H
#define GW_CONN_LIMIT_H

#include <sys/socket.h>

#include "lc_metrics.h"

typedef struct gw_conn_limit gw_conn_limit_t;

/* per_ip 0: no limit. */
gw_conn_limit_t *gw_conn_limit_new(unsigned per_ip, lc_metrics_t *metrics);
void gw_conn_limit_destroy(gw_conn_limit_t **self_p);

/* A connection from sa is accepted: 0 (counted), or -1 (counted as refused) when its address
 * holds per_ip connections already. */
int gw_conn_limit_enter(gw_conn_limit_t *self, const struct sockaddr *sa);
/* A connection that entered is closed. */
void gw_conn_limit_leave(gw_conn_limit_t *self, const struct sockaddr *sa);

#endif
