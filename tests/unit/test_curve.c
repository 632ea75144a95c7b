/* test_curve.c: lib/lc_curve (key files, the trust directory, the ZAP handler) with real
 * ZeroMQ sockets over loopback TCP: an admitted key gets through, an unknown one, a key of a
 * role not allowed on the socket and a keyless peer do not; an insecure or mismatched secret
 * certificate is refused; a certificate installed while the server runs is admitted. */
#include <czmq.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>
#include <sodium.h>

#include "lc_curve.h"
#include "lc_log.h"
#include "lc_zmq.h"

typedef struct {
    char dir[256], trust[300];
    lc_metrics_t *metrics;
} fx_t;

static void s_path(char *out, size_t cap, const fx_t *fx, const char *name)
{
    snprintf(out, cap, "%s/%s/%s.cert_secret", fx->dir, name, name);
}

static void s_keygen(const fx_t *fx, const char *role, const char *name, int trusted)
{
    char out[400], pub[500], cmd[1200];
    snprintf(out, sizeof out, "%s/%s", fx->dir, name);
    mkdir(out, 0700);
    snprintf(pub, sizeof pub, "%s/%s.cert", out, name);
    assert_int_equal(lc_curve_keygen(pub, role, name), 0);
    if (trusted) {
        snprintf(cmd, sizeof cmd, "mkdir -p %s/%s && cp %s %s/%s/", fx->trust, role, pub, fx->trust,
                 role);
        assert_int_equal(system(cmd), 0);
    }
}

static int s_setup(void **state)
{
    fx_t *fx = calloc(1, sizeof *fx);
    snprintf(fx->dir, sizeof fx->dir, "/tmp/lc-curve-XXXXXX");
    assert_non_null(mkdtemp(fx->dir));
    snprintf(fx->trust, sizeof fx->trust, "%s/trust", fx->dir);
    mkdir(fx->trust, 0755);
    fx->metrics = lc_metrics_new();
    s_keygen(fx, "store", "store", 1);
    s_keygen(fx, "crypto", "w1", 1);
    s_keygen(fx, "gateway", "gw", 1);
    s_keygen(fx, "crypto", "rogue", 0);
    *state = fx;
    return 0;
}

static int s_teardown(void **state)
{
    fx_t *fx = *state;
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", fx->dir);
    assert_int_equal(system(cmd), 0);
    lc_metrics_destroy(&fx->metrics);
    free(fx);
    return 0;
}

static lc_curve_t *s_curve(const fx_t *fx, const char *name)
{
    lc_curve_cfg_t cfg = {.enabled = 1};
    s_path(cfg.cert, sizeof cfg.cert, fx, name);
    snprintf(cfg.trust_dir, sizeof cfg.trust_dir, "%s", fx->trust);
    return lc_curve_new(&cfg, "test", fx->metrics);
}

/* One message from a client keyed as `name` (NULL: no CURVE) to a PULL admitting workers:
 * 1 if it arrived within 1.5 s. */
static int s_delivered(const fx_t *fx, lc_curve_t *server, const char *name)
{
    lc_zmq_peers_t *peers = NULL;
    lc_zmq_opts_t so = {.name = "sealed",
                        .type = ZMQ_PULL,
                        .endpoints = "tcp://127.0.0.1:*",
                        .bind = 1,
                        .roles = LC_ROLE_CRYPTO,
                        .hwm = 10,
                        .max_msg = 4096};
    zsock_t *pull = lc_zmq_open(&so, server, &peers);
    assert_non_null(pull);
    char *ep = zsock_last_endpoint(pull); /* the caller's to free */
    lc_curve_t *client = name ? s_curve(fx, name) : NULL;
    zsock_t *push = zsock_new(ZMQ_PUSH);
    if (client) {
        char with_name[128];
        snprintf(with_name, sizeof with_name, "%s#store", ep);
        lc_zmq_opts_t co = {.name = "sealed",
                            .type = ZMQ_PUSH,
                            .endpoints = with_name,
                            .roles = LC_ROLE_STORE,
                            .hwm = 10,
                            .max_msg = 4096};
        zsock_destroy(&push);
        push = lc_zmq_open(&co, client, NULL);
        assert_non_null(push);
    } else {
        assert_int_equal(zsock_connect(push, "%s", ep), 0);
    }
    zsock_set_sndtimeo(push, 1500);
    zstr_send(push, "hello");
    zsock_set_rcvtimeo(pull, 1500);
    char *got = zstr_recv(pull);
    int ok = got && strcmp(got, "hello") == 0;
    zstr_free(&got);
    lc_zmq_peers_update(peers);
    zsock_set_linger(push, 0);
    zsock_destroy(&push);
    lc_curve_destroy(&client);
    lc_zmq_peers_destroy(&peers);
    zsock_destroy(&pull);
    zstr_free(&ep);
    return ok;
}

static void test_admits_only_the_roles_allowed(void **state)
{
    fx_t *fx = *state;
    lc_curve_t *server = s_curve(fx, "store");
    assert_non_null(server);
    assert_true(s_delivered(fx, server, "w1"));     /* a worker's key: admitted */
    assert_false(s_delivered(fx, server, "rogue")); /* not in the trust directory */
    assert_false(s_delivered(fx, server, "gw"));    /* trusted, but not a worker */
    assert_false(s_delivered(fx, server, NULL));    /* no CURVE at all */
    lc_curve_destroy(&server);
}

static void test_new_certificate_is_admitted_while_running(void **state)
{
    fx_t *fx = *state;
    lc_curve_t *server = s_curve(fx, "store");
    assert_non_null(server);
    s_keygen(fx, "crypto", "w2", 1); /* installed after the server read the directory */
    assert_true(s_delivered(fx, server, "w2"));
    /* Two more workers installed and connecting one right after the other (within the same
     * 100 ms): libzmq never retries a refused client, so each must be admitted at once. */
    s_keygen(fx, "crypto", "w3", 1);
    assert_true(s_delivered(fx, server, "w3"));
    s_keygen(fx, "crypto", "w4", 1);
    assert_true(s_delivered(fx, server, "w4"));
    lc_curve_destroy(&server);
}

static char *s_slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    static char buf[2][4096];
    static int which;
    char *b = buf[which++ % 2];
    size_t n = fread(b, 1, sizeof buf[0] - 1, f);
    b[n] = '\0';
    fclose(f);
    return b;
}

/* Replaces the 40-character public key of the certificate at path by the one of `from`. */
static void s_splice_public_key(const char *path, const char *from)
{
    char *dst = s_slurp(path), *src = s_slurp(from);
    char *d = strstr(dst, "public-key = \""), *k = strstr(src, "public-key = \"");
    assert_non_null(d);
    assert_non_null(k);
    memcpy(d + 14, k + 14, 40);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(dst, f);
    fclose(f);
    assert_int_equal(chmod(path, 0600), 0);
}

static void test_refuses_bad_certificates(void **state)
{
    fx_t *fx = *state;
    char path[400];
    s_path(path, sizeof path, fx, "w1");
    assert_int_equal(chmod(path, 0644), 0);
    assert_null(s_curve(fx, "w1")); /* readable by others */
    assert_int_equal(chmod(path, 0600), 0);
    lc_curve_t *ok = s_curve(fx, "w1"); /* the same file, private again: loads */
    assert_non_null(ok);
    lc_curve_destroy(&ok);
    /* A secret certificate whose public key is another's (gw's, spliced into w1's file). */
    char other[400];
    s_path(other, sizeof other, fx, "gw");
    s_splice_public_key(path, other);
    assert_null(s_curve(fx, "w1"));
    lc_curve_cfg_t missing = {.enabled = 1};
    assert_null(lc_curve_new(&missing, "test", fx->metrics));
    assert_int_equal(lc_curve_keygen(path, "crypto", "w1"), LC_ERR_CONFLICT);
}

static void test_roles_and_user_ids(void **state)
{
    (void)state;
    assert_int_equal(lc_role_from_name("crypto"), LC_ROLE_CRYPTO);
    assert_int_equal(lc_role_from_name("nobody"), 0);
    assert_string_equal(lc_role_name(LC_ROLE_CHAIN), "chain");
    assert_null(lc_role_name(LC_ROLE_CHAIN | LC_ROLE_STORE));
    assert_int_equal(lc_curve_user_role("gateway/gw-1"), LC_ROLE_GATEWAY);
    assert_int_equal(lc_curve_user_role("gateway"), 0);
    assert_int_equal(lc_curve_user_role(NULL), 0);
    assert_int_equal(lc_curve_user_role("averyveryverylongrolename/x"), 0);
}

int main(void)
{
    lc_log_init("test_curve", LC_LOG_ERROR);
    if (sodium_init() < 0)
        return 1;
    zsys_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_admits_only_the_roles_allowed, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_new_certificate_is_admitted_while_running, s_setup,
                                        s_teardown),
        cmocka_unit_test_setup_teardown(test_refuses_bad_certificates, s_setup, s_teardown),
        cmocka_unit_test(test_roles_and_user_ids),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    zsys_shutdown();
    return rc;
}
