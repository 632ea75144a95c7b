/* lc_service.h: the common first steps of every service's main(). lc_service_start:
 * configuration table and logging (lc_cfg_main), core dumps off (RLIMIT_CORE 0,
 * PR_SET_DUMPABLE 0), libsodium, and czmq (its SIGINT/SIGTERM handler sets zsys_interrupted,
 * which every main loop watches). lc_service_new: what every service then runs on, its metrics,
 * admin listener and CURVE context, owned by main() and destroyed last. */
#ifndef LC_SERVICE_H
#define LC_SERVICE_H

#include "lc_cfg.h"
#include "lc_curve.h"
#include "lc_http.h"
#include "lc_metrics.h"

/* Returns -1 when main() should go on, else the code main() should exit with: 0 after --help or
 * --version, 2 for an invalid configuration, 1 when a library failed to initialise. */
int lc_service_start(int argc, char **argv, const char *service, const char *summary, void *cfg,
                     const lc_cfg_opt_t *opts, size_t n);

/* A stop test for lc_pg_retry and lc_pg_connect_wait: 1 once a signal arrived, or once waited_ms
 * reached *(const unsigned *)max_wait_ms (NULL: no limit). */
int lc_service_give_up(void *max_wait_ms, unsigned waited_ms);

typedef struct lc_service lc_service_t;

/* Opens, in this order, a metrics registry, the admin listener on admin_bind (its /readyz says
 * 503 `not_ready` until the service says otherwise; NULL: "starting") and the CURVE context of
 * the service's ZeroMQ links. `service` ("gateway", "crypto", "store", "chain") names the admin
 * listener's metrics and the CURVE metrics. NULL on error (logged). */
lc_service_t *lc_service_new(const char *service, const char *admin_bind,
                             const lc_curve_cfg_t *curve, const char *not_ready);
/* Closes them in reverse; NULL-safe. Whatever uses them (sockets, counters) is gone by then. */
void lc_service_destroy(lc_service_t **self_p);

/* Borrowed, for as long as the service lives. */
lc_metrics_t *lc_service_metrics(const lc_service_t *self);
lc_admin_t *lc_service_admin(const lc_service_t *self);
lc_curve_t *lc_service_curve(const lc_service_t *self);

#endif
