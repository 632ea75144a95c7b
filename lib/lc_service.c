/* lc_service.c: see lc_service.h. */
#include "lc_service.h"

#include <czmq.h>
#include <errno.h>
#include <sodium.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>

#include "lc_log.h"

/* No core files and no ptrace by other processes of the same user: a core or an attached
 * debugger would show keys and tokens held in memory. Logged once, with what failed. */
static void s_no_core_dumps(void)
{
    struct rlimit none = {0, 0};
    int rlimit_ok = setrlimit(RLIMIT_CORE, &none) == 0;
    int rlimit_errno = errno;
    int dumpable_ok = prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) == 0;
    if (rlimit_ok && dumpable_ok)
        lc_info("core_dumps_disabled", "rlimit_core=0 dumpable=0");
    else
        lc_warn("core_dumps_not_disabled", "rlimit_core=%s dumpable=%s errno=\"%s\"",
                rlimit_ok ? "0" : "failed", dumpable_ok ? "0" : "failed",
                strerror(rlimit_ok ? errno : rlimit_errno));
}

int lc_service_start(int argc, char **argv, const char *service, const char *summary, void *cfg,
                     const lc_cfg_opt_t *opts, size_t n)
{
    int rc = lc_cfg_main(argc, argv, service, summary, cfg, opts, n);
    if (rc)
        return rc > 0 ? 0 : 2;
    s_no_core_dumps();
    if (sodium_init() < 0) {
        lc_error("sodium_init_failed", NULL);
        return 1;
    }
    zsys_init();
    zsys_set_ipv6(0);
    return -1;
}
