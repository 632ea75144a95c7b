/* test_query.c: lib/lc_query, both ends, over loopback TCP with CURVE: a client gets the answer
 * to its own request; a peer whose role may not ask a body gets nothing and is counted; an
 * undecodable query is counted and dropped; a server that does not answer times the client out. */
#include <czmq.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "lc_curve.h"
#include "lc_query.h"
#include "lc_zmq.h"
#include "test_zmq.h"

typedef struct {
    char dir[64], trust[96], endpoint[128];
    lc_metrics_t *metrics;
    lc_curve_t *server_curve;
    lc_query_server_t srv;
    pthread_t thread;
    volatile int stop, ready;
    int answered;
} fx_t;

static void s_keygen(fx_t *fx, const char *role, const char *name)
{
    test_keygen(fx->dir, fx->trust, role, name);
}

static lc_curve_t *s_curve(fx_t *fx, const char *name)
{
    return test_curve(fx->dir, fx->trust, name, fx->metrics);
}

/* Gateways may ask for a device; only the relayer for the stores' positions. */
static unsigned s_roles(Lcore__V1__Query__BodyCase body)
{
    return body == LCORE__V1__QUERY__BODY_STORE_POSITIONS ? LC_ROLE_CHAIN : LC_ROLE_GATEWAY;
}

static void s_answer(void *ctx, const Lcore__V1__Query *q, Lcore__V1__QueryReply *reply)
{
    fx_t *fx = ctx;
    fx->answered++;
    reply->status = LCORE__V1__QUERY_REPLY__STATUS__OK;
    reply->message = q->body_case == LCORE__V1__QUERY__BODY_GET_DEVICE ? q->get_device : "";
    reply->message = strdup(reply->message);
}

static void s_clear(void *ctx, Lcore__V1__QueryReply *reply)
{
    (void)ctx;
    free(reply->message);
    reply->message = NULL;
}

static void *s_serve(void *arg)
{
    fx_t *fx = arg;
    lc_zmq_peers_t *peers = NULL;
    lc_zmq_opts_t o = {.name = "queries",
                       .type = ZMQ_ROUTER,
                       .endpoints = "tcp://127.0.0.1:*",
                       .bind = 1,
                       .roles = LC_ROLE_GATEWAY | LC_ROLE_CHAIN,
                       .hwm = 100,
                       .max_msg = LC_ZMQ_QUERY_MAX};
    zsock_t *router = lc_zmq_open(&o, fx->server_curve, &peers);
    char *ep = zsock_last_endpoint(router);
    snprintf(fx->endpoint, sizeof fx->endpoint, "%s#store", ep);
    zstr_free(&ep);
    fx->ready = 1;
    while (!fx->stop) {
        zmq_pollitem_t item = {zsock_resolve(router), 0, ZMQ_POLLIN, 0};
        if (zmq_poll(&item, 1, 20) > 0)
            lc_query_serve(router, &fx->srv, 10);
        lc_zmq_peers_update(peers);
    }
    lc_zmq_peers_destroy(&peers);
    zsock_destroy(&router);
    return NULL;
}

static int s_setup(void **state)
{
    fx_t *fx = calloc(1, sizeof *fx);
    snprintf(fx->dir, sizeof fx->dir, "/tmp/lc-query-XXXXXX");
    assert_non_null(mkdtemp(fx->dir));
    snprintf(fx->trust, sizeof fx->trust, "%s/trust", fx->dir);
    mkdir(fx->trust, 0755);
    fx->metrics = lc_metrics_new();
    s_keygen(fx, "store", "store");
    s_keygen(fx, "gateway", "gw");
    s_keygen(fx, "chain", "chain");
    fx->server_curve = s_curve(fx, "store");
    assert_non_null(fx->server_curve);
    fx->srv = (lc_query_server_t){.roles = s_roles,
                                  .answer = s_answer,
                                  .clear = s_clear,
                                  .ctx = fx,
                                  .curve = fx->server_curve};
    lc_query_server_count(&fx->srv, fx->metrics, "lcore_test");
    assert_int_equal(pthread_create(&fx->thread, NULL, s_serve, fx), 0);
    while (!fx->ready)
        zclock_sleep(5);
    *state = fx;
    return 0;
}

static int s_teardown(void **state)
{
    fx_t *fx = *state;
    fx->stop = 1;
    pthread_join(fx->thread, NULL);
    lc_curve_destroy(&fx->server_curve);
    lc_metrics_destroy(&fx->metrics);
    char cmd[100];
    snprintf(cmd, sizeof cmd, "rm -rf %s", fx->dir);
    assert_int_equal(system(cmd), 0);
    free(fx);
    return 0;
}

static Lcore__V1__QueryReply *s_ask(fx_t *fx, lc_curve_t *curve, Lcore__V1__Query *q, int *err)
{
    lc_query_client_t *c = lc_query_client_new(fx->endpoint, LC_ROLE_STORE, 1000, curve);
    assert_non_null(c);
    Lcore__V1__QueryReply *r = lc_query_call(c, q, err);
    lc_query_client_destroy(&c);
    return r;
}

static void test_answers_the_role_allowed(void **state)
{
    fx_t *fx = *state;
    lc_curve_t *gw = s_curve(fx, "gw");
    Lcore__V1__Query q = LCORE__V1__QUERY__INIT;
    q.body_case = LCORE__V1__QUERY__BODY_GET_DEVICE;
    q.get_device = "dev-7";
    int err = 0;
    for (int i = 0; i < 3; i++) {
        Lcore__V1__QueryReply *r = s_ask(fx, gw, &q, &err);
        assert_non_null(r);
        assert_int_equal(r->request_id, q.request_id); /* its own answer */
        assert_int_equal(r->version, 1);
        assert_string_equal(r->message, "dev-7");
        lcore__v1__query_reply__free_unpacked(r, NULL);
    }
    assert_int_equal(fx->answered, 3);
    lc_curve_destroy(&gw);
}

static void test_refuses_a_role_not_allowed(void **state)
{
    fx_t *fx = *state;
    lc_curve_t *chain = s_curve(fx, "chain"), *gw = s_curve(fx, "gw");
    Lcore__V1__Query q = LCORE__V1__QUERY__INIT;
    q.body_case = LCORE__V1__QUERY__BODY_GET_DEVICE; /* a gateway's question */
    q.get_device = "dev-7";
    int err = 0;
    assert_null(s_ask(fx, chain, &q, &err));
    assert_int_equal(err, LC_ERR_TIMEOUT);
    Lcore__V1__Query p = LCORE__V1__QUERY__INIT;
    p.body_case = LCORE__V1__QUERY__BODY_STORE_POSITIONS; /* the relayer's */
    p.store_positions = 1;
    assert_null(s_ask(fx, gw, &p, &err));
    Lcore__V1__QueryReply *r = s_ask(fx, chain, &p, &err);
    assert_non_null(r);
    lcore__v1__query_reply__free_unpacked(r, NULL);
    assert_int_equal(fx->answered, 1);
    char *text = lc_metrics_render(fx->metrics, NULL);
    assert_non_null(strstr(text, "lcore_test_unauthorized_messages_total{socket=\"queries\"} 2"));
    free(text);
    lc_curve_destroy(&chain);
    lc_curve_destroy(&gw);
}

static void test_drops_what_does_not_decode(void **state)
{
    fx_t *fx = *state;
    lc_curve_t *gw = s_curve(fx, "gw");
    lc_zmq_opts_t o = {.name = "queries",
                       .type = ZMQ_DEALER,
                       .endpoints = fx->endpoint,
                       .roles = LC_ROLE_STORE,
                       .hwm = 10,
                       .max_msg = LC_ZMQ_REPLY_MAX};
    zsock_t *d = lc_zmq_open(&o, gw, NULL);
    assert_non_null(d);
    zsock_set_sndtimeo(d, 1000);
    assert_int_equal(zstr_send(d, "\xff\xff\xff not a Query"), 0);
    zsock_set_rcvtimeo(d, 300);
    char *got = zstr_recv(d);
    assert_null(got); /* no answer */
    char *text = lc_metrics_render(fx->metrics, NULL);
    assert_non_null(strstr(text, "lcore_test_bad_messages_total{socket=\"queries\"} 1"));
    free(text);
    zsock_destroy(&d);
    lc_curve_destroy(&gw);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_answers_the_role_allowed, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_refuses_a_role_not_allowed, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_drops_what_does_not_decode, s_setup, s_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
