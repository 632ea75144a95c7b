/* test_mqtt_broker.c: lc_mqtt against a real Mosquitto 2 (started here on a free loopback port
 * with a throw-away configuration; anonymous access is allowed for this test only). What the
 * gateway's MQTT ingest rests on: a QoS 1 message that the client has not acknowledged is sent
 * again by the broker when the same client id comes back (persistent session, even after the
 * client vanished without DISCONNECT), and not once it has been acknowledged; the broker holds
 * back what is over our Receive Maximum until we acknowledge, and then loses nothing; MQTT 5
 * response topic and correlation data come through. Skipped when mosquitto is not installed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lc_mqtt.h"

#define MOSQUITTO "/usr/sbin/mosquitto"

typedef struct {
    pid_t pid;
    char port[16];
    char dir[64];
} s_broker_t;

/* What a client received. */
typedef struct {
    int n;
    uint32_t conn[16];
    uint16_t pid[16];
    uint8_t dup[16];
    char payload[16][64];
    char response_topic[64];
    char correlation[64];
} s_inbox_t;

static void s_on_message(void *arg, uint32_t conn, const lc_mqtt_publish_t *m)
{
    s_inbox_t *in = arg;
    if (in->n == 16)
        return;
    in->conn[in->n] = conn;
    in->pid[in->n] = m->pid;
    in->dup[in->n] = m->dup;
    snprintf(in->payload[in->n], 64, "%.*s", (int)m->payload_len, (const char *)m->payload);
    if (m->response_topic)
        snprintf(in->response_topic, 64, "%.*s", (int)m->response_topic_len, m->response_topic);
    if (m->correlation)
        snprintf(in->correlation, 64, "%.*s", (int)m->correlation_len,
                 (const char *)m->correlation);
    in->n++;
}

static int s_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t l = sizeof a;
    if (bind(fd, (struct sockaddr *)&a, sizeof a) < 0 ||
        getsockname(fd, (struct sockaddr *)&a, &l) < 0) {
        close(fd);
        return -1;
    }
    close(fd);
    return ntohs(a.sin_port);
}

static int s_setup(void **state)
{
    if (access(MOSQUITTO, X_OK) != 0)
        return 0; /* each test skips */
    static s_broker_t b;
    snprintf(b.dir, sizeof b.dir, "/tmp/lcore-mqtt-XXXXXX");
    assert_non_null(mkdtemp(b.dir));
    snprintf(b.port, sizeof b.port, "%d", s_free_port());
    char conf[128];
    snprintf(conf, sizeof conf, "%s/mosquitto.conf", b.dir);
    FILE *f = fopen(conf, "w");
    assert_non_null(f);
    fprintf(f,
            "listener %s 127.0.0.1\nallow_anonymous true\npersistence false\n"
            "max_queued_messages 100000\nlog_dest none\n",
            b.port);
    fclose(f);
    b.pid = fork();
    if (b.pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGTERM); /* a test killed (a timeout) takes its broker along */
        execl(MOSQUITTO, "mosquitto", "-c", conf, (char *)NULL);
        _exit(127);
    }
    *state = &b;
    for (int i = 0; i < 50; i++) { /* until it listens */
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in a = {.sin_family = AF_INET,
                                .sin_port = htons((uint16_t)atoi(b.port)),
                                .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        int ok = connect(fd, (struct sockaddr *)&a, sizeof a) == 0;
        close(fd);
        if (ok)
            return 0;
        usleep(100000);
    }
    return -1;
}

static int s_teardown(void **state)
{
    s_broker_t *b = *state;
    if (!b)
        return 0;
    kill(b->pid, SIGTERM);
    waitpid(b->pid, NULL, 0);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", b->dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* subscribe: the shared subscription's group (NULL: none). Each test has its own: Mosquitto
 * hands a group's messages in turn to every session in it, offline ones included. */
static lc_mqtt_t *s_client(const char *id, s_inbox_t *inbox, uint16_t receive_max,
                           const char *subscribe)
{
    static char filter[64];
    static const char *filters[] = {filter};
    if (subscribe)
        snprintf(filter, sizeof filter, "$share/%s/t/+/data", subscribe);
    lc_mqtt_opts_t o = {.client_id = id,
                        .keep_alive_s = 30,
                        .session_expiry_s = 300,
                        .receive_max = receive_max,
                        .max_packet = 1 << 20,
                        .filters = subscribe ? filters : NULL,
                        .n_filters = subscribe ? 1 : 0,
                        .on_message = s_on_message,
                        .arg = inbox};
    lc_mqtt_t *c = lc_mqtt_new(&o);
    assert_non_null(c);
    return c;
}

/* Connects and runs the client until it is subscribed. */
static void s_up(lc_mqtt_t *c, const s_broker_t *b)
{
    assert_int_equal(lc_mqtt_connect(c, "127.0.0.1", b->port), 0);
    for (int i = 0; i < 100 && lc_mqtt_state(c) != LC_MQTT_UP; i++)
        assert_int_equal(lc_mqtt_run(c, 50), 0);
    assert_int_equal(lc_mqtt_state(c), LC_MQTT_UP);
}

/* Runs the client until `until` messages came (or for ms when until < 0). */
static void s_pump(lc_mqtt_t *c, const s_inbox_t *in, int until, int ms)
{
    for (int t = 0; t < ms && (until < 0 || in->n < until); t += 20) {
        int rc = lc_mqtt_run(c, 20);
        if (rc != 0)
            fail_msg("connection lost: %s", lc_mqtt_error(c));
    }
}

static void s_publish(lc_mqtt_t *pub, const char *payload, const char *rt, const char *corr)
{
    lc_mqtt_publish_t p = {.qos = 1,
                           .topic = "t/dev1/data",
                           .topic_len = 11,
                           .payload = (const uint8_t *)payload,
                           .payload_len = strlen(payload),
                           .response_topic = rt,
                           .response_topic_len = rt ? strlen(rt) : 0,
                           .correlation = (const uint8_t *)corr,
                           .correlation_len = corr ? strlen(corr) : 0,
                           .payload_format = -1};
    assert_int_equal(lc_mqtt_publish(pub, &p), 0);
    for (int i = 0; i < 100 && lc_mqtt_queued(pub) > 0; i++) /* until the broker has it */
        assert_int_equal(lc_mqtt_run(pub, 20), 0);
    assert_int_equal(lc_mqtt_queued(pub), 0);
}

static void test_unacked_is_redelivered(void **state)
{
    s_broker_t *b = *state;
    if (!b)
        skip();
    s_inbox_t got = {0}, none = {0};
    lc_mqtt_t *gw = s_client("gw-redeliver", &got, 10, "redeliver");
    lc_mqtt_t *dev = s_client("dev-redeliver", &none, 10, NULL);
    s_up(gw, b);
    assert_int_equal(lc_mqtt_session_present(gw), 0);
    s_up(dev, b);
    s_publish(dev, "reading-1", "t/dev1/r", "c-42");
    s_pump(gw, &got, 1, 3000);
    assert_int_equal(got.n, 1);
    assert_string_equal(got.payload[0], "reading-1");
    assert_string_equal(got.response_topic, "t/dev1/r");
    assert_string_equal(got.correlation, "c-42");
    assert_int_equal(got.dup[0], 0);
    assert_int_equal(lc_mqtt_unacked(gw), 1);
    uint32_t first_conn = got.conn[0];

    /* The gateway dies before the reading is durable: no PUBACK, no DISCONNECT. */
    lc_mqtt_drop(gw);
    s_up(gw, b);
    assert_int_equal(lc_mqtt_session_present(gw), 1);
    s_pump(gw, &got, 2, 3000);
    assert_int_equal(got.n, 2);
    assert_string_equal(got.payload[1], "reading-1");
    assert_int_equal(got.dup[1], 1);
    /* An acknowledgement on the old connection's terms is refused; the new one's goes. */
    assert_int_equal(lc_mqtt_ack(gw, first_conn, got.pid[0]), LC_ERR_NOTFOUND);
    assert_int_equal(lc_mqtt_ack(gw, got.conn[1], got.pid[1]), 0);
    assert_int_equal(lc_mqtt_ack(gw, got.conn[1], got.pid[1]), LC_ERR_NOTFOUND);
    s_pump(gw, &got, -1, 200);

    /* Acknowledged: a clean disconnect and a reconnection bring nothing back. */
    lc_mqtt_disconnect(gw, 1000);
    s_up(gw, b);
    assert_int_equal(lc_mqtt_session_present(gw), 1);
    s_pump(gw, &got, 3, 700);
    assert_int_equal(got.n, 2);
    lc_mqtt_disconnect(gw, 1000);
    lc_mqtt_disconnect(dev, 1000);
    lc_mqtt_destroy(&gw);
    lc_mqtt_destroy(&dev);
}

static void test_receive_maximum_holds_back(void **state)
{
    s_broker_t *b = *state;
    if (!b)
        skip();
    s_inbox_t got = {0}, none = {0};
    lc_mqtt_t *gw = s_client("gw-window", &got, 2, "window");
    lc_mqtt_t *dev = s_client("dev-window", &none, 10, NULL);
    s_up(gw, b);
    s_up(dev, b);
    const char *msgs[] = {"m1", "m2", "m3", "m4", "m5"};
    for (int i = 0; i < 5; i++)
        s_publish(dev, msgs[i], NULL, NULL);
    s_pump(gw, &got, -1, 700);
    assert_int_equal(got.n, 2); /* our window */
    assert_int_equal(lc_mqtt_unacked(gw), 2);
    assert_int_equal(lc_mqtt_ack(gw, got.conn[0], got.pid[0]), 0);
    assert_int_equal(lc_mqtt_ack(gw, got.conn[1], got.pid[1]), 0);
    /* Mosquitto 2.0.11 then sends every queued message its PUBACK handling moves in by
     * position (db__message_delete_outgoing), which may go past our window: counted, taken. */
    s_pump(gw, &got, 5, 2000);
    assert_int_equal(got.n, 5);
    for (int i = 2; i < 5; i++)
        assert_int_equal(lc_mqtt_ack(gw, got.conn[i], got.pid[i]), 0);
    assert_int_equal(lc_mqtt_unacked(gw), 0);
    for (int i = 0; i < 5; i++)
        assert_string_equal(got.payload[i], msgs[i]); /* in order, none lost */
    s_pump(gw, &got, -1, 100);
    lc_mqtt_disconnect(gw, 1000);
    lc_mqtt_disconnect(dev, 1000);
    lc_mqtt_destroy(&gw);
    lc_mqtt_destroy(&dev);
}

static void test_nothing_listening(void **state)
{
    (void)state;
    s_inbox_t none = {0};
    lc_mqtt_t *c = s_client("nobody", &none, 10, "nobody");
    char port[16];
    snprintf(port, sizeof port, "%d", s_free_port());
    int rc = lc_mqtt_connect(c, "127.0.0.1", port);
    for (int i = 0; i < 100 && rc == 0; i++)
        rc = lc_mqtt_run(c, 50);
    assert_true(rc < 0);
    assert_int_equal(lc_mqtt_state(c), LC_MQTT_DOWN);
    assert_non_null(strstr(lc_mqtt_error(c), "refused"));
    lc_mqtt_destroy(&c);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_unacked_is_redelivered),
        cmocka_unit_test(test_receive_maximum_holds_back),
        cmocka_unit_test(test_nothing_listening),
    };
    return cmocka_run_group_tests(tests, s_setup, s_teardown);
}
