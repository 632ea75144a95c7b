/* lc_service.c: see lc_service.h. */
#include "lc_service.h"

#include <czmq.h>
#include <errno.h>
#include <signal.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <unistd.h>

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

#ifndef __SANITIZE_ADDRESS__
/* A service that dies on a signal says so in its log (one write(2), async-signal-safe), then
 * dies of it as before. Sanitizer builds keep their own reports instead. */
static void s_on_fatal(int sig)
{
    char line[] = "level=error event=fatal_signal signal=00\n";
    line[sizeof line - 4] = (char)('0' + sig / 10 % 10);
    line[sizeof line - 3] = (char)('0' + sig % 10);
    ssize_t w = write(STDERR_FILENO, line, sizeof line - 1);
    (void)w;
    signal(sig, SIG_DFL);
    raise(sig);
}
#endif

/* SIGPIPE ignored: a peer that closes its socket (libmosquitto writes with write(2), not
 * send(MSG_NOSIGNAL)) is an EPIPE to handle, not a silent death of the service. */
static void s_signals(void)
{
    signal(SIGPIPE, SIG_IGN);
#ifndef __SANITIZE_ADDRESS__
    static const int fatal[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT};
    struct sigaction sa = {.sa_handler = s_on_fatal, .sa_flags = SA_RESETHAND};
    sigemptyset(&sa.sa_mask);
    for (size_t i = 0; i < sizeof fatal / sizeof fatal[0]; i++)
        sigaction(fatal[i], &sa, NULL);
#endif
}

int lc_service_start(int argc, char **argv, const char *service, const char *summary, void *cfg,
                     const lc_cfg_opt_t *opts, size_t n)
{
    int rc = lc_cfg_main(argc, argv, service, summary, cfg, opts, n);
    if (rc)
        return rc > 0 ? 0 : 2;
    s_no_core_dumps();
    s_signals();
    if (sodium_init() < 0) {
        lc_error("sodium_init_failed", NULL);
        return 1;
    }
    zsys_init();
    zsys_set_ipv6(0);
    return -1;
}

struct lc_service {
    lc_metrics_t *metrics;
    lc_admin_t *admin;
    lc_curve_t *curve;
};

lc_service_t *lc_service_new(const char *service, const char *admin_bind,
                             const lc_curve_cfg_t *curve, const char *not_ready)
{
    lc_service_t *self = calloc(1, sizeof *self);
    if (!self || !(self->metrics = lc_metrics_new())) {
        lc_error("service_out_of_memory", "service=%s", service);
        goto fail;
    }
    if (!(self->admin = lc_admin_new(admin_bind, self->metrics, service)))
        goto fail;
    if (not_ready)
        lc_admin_set_ready(self->admin, 0, not_ready);
    if (!(self->curve = lc_curve_new(curve, service, self->metrics)))
        goto fail;
    return self;
fail:
    lc_service_destroy(&self);
    return NULL;
}

void lc_service_destroy(lc_service_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    lc_service_t *self = *self_p;
    lc_curve_destroy(&self->curve);
    lc_admin_destroy(&self->admin);
    lc_metrics_destroy(&self->metrics);
    free(self);
    *self_p = NULL;
}

lc_metrics_t *lc_service_metrics(const lc_service_t *self)
{
    return self->metrics;
}

lc_admin_t *lc_service_admin(const lc_service_t *self)
{
    return self->admin;
}

lc_curve_t *lc_service_curve(const lc_service_t *self)
{
    return self->curve;
}

int lc_service_give_up(void *max_wait_ms, unsigned waited_ms)
{
    return zsys_interrupted || (max_wait_ms && waited_ms >= *(const unsigned *)max_wait_ms);
}
