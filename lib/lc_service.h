/* lc_service.h: the common first step of every service's main(): configuration table and
 * logging (lc_cfg_main), core dumps off (RLIMIT_CORE 0, PR_SET_DUMPABLE 0), libsodium, and czmq
 * (its SIGINT/SIGTERM handler sets zsys_interrupted, which every main loop watches). */
#ifndef LC_SERVICE_H
#define LC_SERVICE_H

#include "lc_cfg.h"

/* Returns -1 when main() should go on, else the code main() should exit with: 0 after --help or
 * --version, 2 for an invalid configuration, 1 when a library failed to initialise. */
int lc_service_start(int argc, char **argv, const char *service, const char *summary, void *cfg,
                     const lc_cfg_opt_t *opts, size_t n);

#endif
