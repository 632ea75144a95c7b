/* lc_curve.h: CURVE security for every ZeroMQ link (RFC 26 CurveZMQ, RFC 27 ZAP).
 *
 * Each service instance has its own key pair: a secret certificate file (czmq zcert format,
 * mode 0600) named by LCORE_CURVE_CERT. A trust directory (LCORE_CURVE_TRUST_DIR) holds the
 * public certificates of the instances allowed to talk, one subdirectory per role:
 *   <trust>/gateway/<name>.cert, <trust>/crypto/<name>.cert, <trust>/store/..., <trust>/chain/...
 * A binding socket is a CURVE server; the ZAP handler of this module (one actor per process,
 * on czmq's context, started with the first server socket) accepts a client only if its public key
 * is in the directory of a role allowed on that socket (ZAP domain = socket name). A connecting
 * socket is a CURVE client that takes its server's public key from the server role's directory: the
 * only certificate there, or the one an endpoint names with a "#name" suffix (tcp://host:5551#gw-2
 * -> <trust>/gateway/gw-2.cert) when several servers of that role exist. The directory is re-read
 * when it changes (checked every second): adding a worker is dropping its public certificate in
 * <trust>/crypto/, removing one is deleting it (its open connections stay until they drop; restart
 * the binding service to cut them at once). Owned by each service's main(); lc_zmq_open (lc_zmq.h)
 * applies it to sockets. */
#ifndef LC_CURVE_H
#define LC_CURVE_H

#include <czmq.h>

#include "lc_cfg.h"
#include "lc_common.h"
#include "lc_metrics.h"

/* Roles, as bits: a server socket allows a set of them; a client names its server's one. */
typedef enum {
    LC_ROLE_GATEWAY = 1u << 0,
    LC_ROLE_CRYPTO = 1u << 1,
    LC_ROLE_STORE = 1u << 2,
    LC_ROLE_CHAIN = 1u << 3,
    LC_ROLE_OPERATOR = 1u << 4, /* lcore-cli: reads a sealed record back (decrypt) */
} lc_role_t;

#define LC_ROLE_COUNT 5

/* "gateway", "crypto", "store", "chain", "operator" for a single role bit; NULL otherwise. */
const char *lc_role_name(unsigned role);
/* The role bit for a name, or 0. */
unsigned lc_role_from_name(const char *name);

typedef struct lc_curve lc_curve_t;

/* Every service's configuration embeds this as its field `curve` and lists
 * LC_CURVE_CFG_ROWS(its config type) in its table. */
typedef struct {
    int enabled;
    char cert[512];
    char trust_dir[512];
} lc_curve_cfg_t;

#define LC_CURVE_CFG_ROWS(T)                                                                       \
    LC_CFG_B("LCORE_CURVE", T, curve.enabled, "1",                                                 \
             "CURVE authentication and encryption on every ZeroMQ link (0: plain, benchmarks "     \
             "only)"),                                                                             \
        LC_CFG_S("LCORE_CURVE_CERT", T, curve.cert, "",                                            \
                 "this instance's secret CURVE certificate (czmq zcert file, mode 0600; "          \
                 "lcore-cli curve-keygen)"),                                                       \
        LC_CFG_S("LCORE_CURVE_TRUST_DIR", T, curve.trust_dir, "",                                  \
                 "public CURVE certificates of the instances allowed to talk, one subdirectory "   \
                 "per role: gateway/ crypto/ store/ chain/ operator/ (re-read when it changes)")

/* Loads the key pair into guarded memory, reads the trust directory and starts the ZAP
 * handler. Refuses a secret certificate readable by group or other. NULL on error (logged). */
lc_curve_t *lc_curve_new(const lc_curve_cfg_t *cfg, const char *service, lc_metrics_t *metrics);
void lc_curve_destroy(lc_curve_t **self_p);

int lc_curve_enabled(const lc_curve_t *self);

/* Before binding: makes sock a CURVE server for the ZAP domain `name` that admits the public
 * keys of `roles` (LC_ROLE_* bits). Returns 0 or a negative error (logged). */
int lc_curve_server(lc_curve_t *self, zsock_t *sock, const char *name, unsigned roles) LC_WUR;

/* Before connecting to one endpoint: makes sock a CURVE client of a server of `role`, whose
 * certificate is `server_name` in that role's directory (NULL or "": the only one there).
 * Returns 0 or a negative error (logged). */
int lc_curve_client(lc_curve_t *self, zsock_t *sock, unsigned role, const char *server_name) LC_WUR;

/* Creates the counters of socket `name` (lcore_<service>_auth_refused_total and
 * _peer_drops_total, label socket) so that they are exported from the start. */
void lc_curve_socket(lc_curve_t *self, const char *name);

/* Counts a refused handshake on socket `name` (from the socket monitor) and logs it at most
 * once a minute per socket and reason. */
void lc_curve_count_refusal(lc_curve_t *self, const char *name, const char *reason);
/* Counts an authenticated connection on socket `name` that ended (from the socket monitor):
 * the peer went away, or libzmq closed it for a frame over the socket's ZMQ_MAXMSGSIZE. */
void lc_curve_count_drop(lc_curve_t *self, const char *name);

/* Writes a new key pair: `path` (public certificate) and `path`_secret (0600), czmq format,
 * with metadata role and name. Refuses to overwrite. Returns 0 or a negative error. */
int lc_curve_keygen(const char *path, const char *role, const char *name) LC_WUR;

/* The role of an authenticated peer from a received message's ZAP User-Id property
 * ("<role>/<name>": zmq_msg_gets(msg, "User-Id") or zframe_meta(frame, "User-Id")): the
 * LC_ROLE_* bit, or 0 when there is none (plain ZeroMQ, or not authenticated). */
unsigned lc_curve_user_role(const char *user_id);

/* 1 when a message whose User-Id is user_id may come from `role`: always with CURVE off. */
int lc_curve_from(const lc_curve_t *self, const char *user_id, unsigned role);

#endif
