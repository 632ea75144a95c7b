/* lc_service.c: see lc_service.h. */
#include "lc_service.h"

#include <czmq.h>
#include <sodium.h>

#include "lc_log.h"

int lc_service_start(int argc, char **argv, const char *service, const char *summary, void *cfg,
                     const lc_cfg_opt_t *opts, size_t n)
{
    int rc = lc_cfg_main(argc, argv, service, summary, cfg, opts, n);
    if (rc)
        return rc > 0 ? 0 : 2;
    if (sodium_init() < 0) {
        lc_error("sodium_init_failed", NULL);
        return 1;
    }
    zsys_init();
    zsys_set_ipv6(0);
    return -1;
}
