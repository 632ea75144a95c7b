/* sim_log.c: the log limit. See sim_log.h. */
#include "sim_log.h"

#include "lc_log.h"

int sim_log_may(sim_log_limit_t *limit, const char *what)
{
    if (limit->logged > SIM_LOG_MAX)
        return 0;
    if (limit->logged++ < SIM_LOG_MAX)
        return 1;
    lc_warn("log_limit", "reason=\"further %s are only counted\"", what);
    return 0;
}
