/* test_zmq.h: for the unit tests that run real ZeroMQ links (test_query, test_gw_open,
 * test_ch_query): CURVE key pairs and a free loopback port. Header-only: every
 * tests/unit/test_*.c is an executable of its own. A test directory holds each instance's key
 * pair in <dir>/<name>/ and the public certificates it trusts in <trust>/<role>/, as
 * scripts/stack lays them out. */
#ifndef TEST_ZMQ_H
#define TEST_ZMQ_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "lc_curve.h"

/* A key pair for instance `name` of `role`, trusted (its public certificate in <trust>/<role>/). */
static inline void test_keygen(const char *dir, const char *trust, const char *role,
                               const char *name)
{
    char out[200], cmd[600];
    snprintf(out, sizeof out, "%s/%s", dir, name);
    mkdir(out, 0700);
    snprintf(cmd, sizeof cmd, "%s/%s.cert", out, name);
    assert_int_equal(lc_curve_keygen(cmd, role, name), 0);
    snprintf(cmd, sizeof cmd, "mkdir -p %s/%s && cp %s/%s.cert %s/%s/", trust, role, out, name,
             trust, role);
    assert_int_equal(system(cmd), 0);
}

/* Instance `name`'s CURVE, counting into m as service "test" (lcore_test_*). */
static inline lc_curve_t *test_curve(const char *dir, const char *trust, const char *name,
                                     lc_metrics_t *m)
{
    lc_curve_cfg_t cfg = {.enabled = 1};
    snprintf(cfg.cert, sizeof cfg.cert, "%s/%s/%s.cert_secret", dir, name, name);
    snprintf(cfg.trust_dir, sizeof cfg.trust_dir, "%s", trust);
    return lc_curve_new(&cfg, "test", m);
}

/* "tcp://127.0.0.1:<port>" with a port the kernel just had free, for a service that binds
 * what its configuration says (another process may take it meanwhile: bind, and try again). */
static inline void test_free_endpoint(char *out, size_t cap)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    close(fd);
    snprintf(out, cap, "tcp://127.0.0.1:%u", ntohs(a.sin_port));
}

#endif
