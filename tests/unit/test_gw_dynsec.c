/* test_gw_dynsec.c: devices' broker identities against a real broker. Starts Mosquitto (Debian's,
 * with its dynamic-security plugin) on a free loopback port in a temporary directory, its four
 * default ACL accesses set to deny, a gateway user whose role may only send dynamic-security
 * commands and read their answers (made with mosquitto_ctrl, as scripts/stack does), and a
 * "peer" user that may publish anywhere under lcore/ (standing in for the gateway's results).
 * Then, as a device would see it with mosquitto_pub / mosquitto_sub (MQTT 5):
 *   - a provisioned device publishes to its data and batch topics; publishing to another
 *     device's topic or to its own result topic is refused (PUBACK "Not authorized"), as is a
 *     wrong password or a client id other than its device_id; subscribing to another device's
 *     results, or to everyone's with '+', is refused; its own results and responses reach it;
 *   - provisioning again leaves the password alone (no new one) and repairs a missing role or
 *     client id; a leftover identity of a device the store calls new gets a new password (the
 *     old one stops working);
 *   - disabling kicks a connected mosquitto_sub at once and refuses its logins; enabling lets it
 *     back; an identity provisioned for a revoked device is created disabled;
 *   - without the broker, or with a gateway user that may not send commands, calls fail within
 *     their timeout and leave no identity behind; everything is counted.
 * Skipped, with a message, when Mosquitto is not installed (scripts/install-deps installs it). */
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <sodium.h>

#include "gw_dynsec.h"
#include "lc_log.h"

#define S_ADMIN_PW "test-admin-password-0123456789"
#define S_GW_USER "lcore-gw-test"
#define S_GW_PW "test-gateway-password-0123456789"
#define S_PEER_PW "test-peer-password-0123456789"

static struct {
    int skip;
    char dir[64], conf[128], log[128], gw_pw_file[128], plugin[256];
    const char *broker;
    int port;
    pid_t pid;
} s_env;

typedef struct {
    lc_metrics_t *metrics;
    gw_dynsec_t *dynsec;
} s_fixture_t;

/* Runs a shell command (stdout and stderr into out): its exit status, or -1. */
static int s_sh(char *out, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int s_sh(char *out, size_t cap, const char *fmt, ...)
{
    char cmd[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    strncat(cmd, " 2>&1", sizeof cmd - strlen(cmd) - 1);
    FILE *p = popen(cmd, "r");
    size_t n = 0;
    if (!p)
        return -1;
    while (out && n + 1 < cap && !feof(p)) {
        size_t got = fread(out + n, 1, cap - 1 - n, p);
        if (got == 0)
            break;
        n += got;
    }
    if (out)
        out[n] = '\0';
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* mosquitto_ctrl as the broker's admin: 0 or the failure (printed). */
static int s_ctrl(const char *args)
{
    char out[1024];
    int rc = s_sh(out, sizeof out, "mosquitto_ctrl -h 127.0.0.1 -p %d -u admin -P %s dynsec %s",
                  s_env.port, S_ADMIN_PW, args);
    if (rc != 0 || strstr(out, "Error") || strstr(out, "error"))
        fprintf(stderr, "mosquitto_ctrl %s: %s\n", args, out);
    return rc;
}

/* mosquitto_pub as a user with a client id, MQTT 5, QoS 1 (so that a refusal comes back in the
 * PUBACK): 1 when the broker took the message, 0 when it refused it or the login. */
static int s_pub_as(const char *user, const char *pw, const char *client_id, const char *topic,
                    int retain)
{
    char out[1024];
    int rc = s_sh(out, sizeof out,
                  "mosquitto_pub -h 127.0.0.1 -p %d -V mqttv5 -q 1 %s -u '%s' -P '%s' -i '%s' "
                  "-t '%s' -m reading",
                  s_env.port, retain ? "-r" : "", user, pw, client_id, topic);
    return rc == 0 && !strstr(out, "Not authorized") && !strstr(out, "failed");
}

/* The same with the client id a device must use: its username. */
static int s_pub(const char *user, const char *pw, const char *topic, int retain)
{
    return s_pub_as(user, pw, user, topic, retain);
}

/* mosquitto_sub as a user for one message (retained ones come at once): its output. */
static int s_sub(char *out, size_t cap, const char *user, const char *pw, const char *topic)
{
    return s_sh(out, cap,
                "mosquitto_sub -h 127.0.0.1 -p %d -V mqttv5 -u '%s' -P '%s' -i '%s' -t '%s' -C 1 "
                "-W 2 -v",
                s_env.port, user, pw, user, topic);
}

static int s_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) != 0)
        return -1;
    close(fd);
    return ntohs(a.sin_port);
}

static int s_listening(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int ok = fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof a) == 0;
    if (fd >= 0)
        close(fd);
    return ok;
}

static pid_t s_spawn(const char *out_path, char *const argv[])
{
    pid_t pid = fork();
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGTERM); /* a test killed (a timeout) takes its children along */
        int fd = open(out_path, O_WRONLY | O_CREAT | O_APPEND, 0600);
        dup2(fd, 1);
        dup2(fd, 2);
        execvp(argv[0], argv);
        _exit(127);
    }
    return pid;
}

/* Mosquitto and its plugin, or NULL: the test is skipped. */
static const char *s_find_broker(void)
{
    static const char *const brokers[] = {"/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto"};
    glob_t g;
    if (glob("/usr/lib/*/mosquitto_dynamic_security.so", 0, NULL, &g) == 0 ||
        glob("/usr/lib/mosquitto_dynamic_security.so", 0, NULL, &g) == 0 ||
        glob("/usr/local/lib/mosquitto_dynamic_security.so", 0, NULL, &g) == 0) {
        snprintf(s_env.plugin, sizeof s_env.plugin, "%s", g.gl_pathv[0]);
        globfree(&g);
    }
    char out[64];
    if (!s_env.plugin[0] || s_sh(out, sizeof out, "command -v mosquitto_ctrl") != 0 ||
        s_sh(out, sizeof out, "command -v mosquitto_pub") != 0)
        return NULL;
    for (size_t i = 0; i < sizeof brokers / sizeof brokers[0]; i++)
        if (access(brokers[i], X_OK) == 0)
            return brokers[i];
    return NULL;
}

static int s_write(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return -1;
    fputs(text, f);
    return fclose(f);
}

/* Every default ACL access denied. With the JSON command itself: mosquitto_ctrl 2.0.11's
 * setDefaultACLAccess answers success and changes nothing. Checked with getDefaultACLAccess. */
static int s_deny_by_default(void)
{
    char out[1024];
    s_sh(out, sizeof out,
         "mosquitto_pub -h 127.0.0.1 -p %d -u admin -P %s -t '$CONTROL/dynamic-security/v1' -m "
         "'{\"commands\":[{\"command\":\"setDefaultACLAccess\",\"acls\":["
         "{\"acltype\":\"publishClientSend\",\"allow\":false},"
         "{\"acltype\":\"publishClientReceive\",\"allow\":false},"
         "{\"acltype\":\"subscribe\",\"allow\":false},"
         "{\"acltype\":\"unsubscribe\",\"allow\":false}]}]}'",
         s_env.port, S_ADMIN_PW);
    for (int i = 0; i < 20; i++) {
        s_sh(out, sizeof out,
             "mosquitto_ctrl -h 127.0.0.1 -p %d -u admin -P %s dynsec getDefaultACLAccess",
             s_env.port, S_ADMIN_PW);
        const char *p = out;
        int denied = 0;
        while ((p = strstr(p, ": deny")))
            denied++, p++;
        if (denied == 4)
            return 0;
        usleep(50000);
    }
    return fprintf(stderr, "default ACL access not denied: %s\n", out), -1;
}

/* The gateway's role as scripts/stack gives it (send commands, read their answers), a peer
 * standing in for the gateway's results, and every default access denied. */
static int s_accounts(void)
{
    static const char *const cmds[] = {
        "createRole lcore-gateway",
        "addRoleACL lcore-gateway publishClientSend '$CONTROL/dynamic-security/#' allow",
        "addRoleACL lcore-gateway subscribeLiteral '$CONTROL/dynamic-security/v1/response' allow",
        "addRoleACL lcore-gateway publishClientReceive '$CONTROL/dynamic-security/v1/response' "
        "allow",
        "createClient " S_GW_USER " -p " S_GW_PW,
        "addClientRole " S_GW_USER " lcore-gateway",
        "createRole peer",
        "addRoleACL peer publishClientSend 'lcore/#' allow",
        "createClient peer -p " S_PEER_PW,
        "addClientRole peer peer",
    };
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++)
        if (s_ctrl(cmds[i]) != 0)
            return -1;
    return s_deny_by_default();
}

static int s_group_setup(void **state)
{
    (void)state;
    lc_log_init("test_gw_dynsec", LC_LOG_WARN);
    if (!(s_env.broker = s_find_broker())) {
        fprintf(stderr, "test_gw_dynsec: Mosquitto with its dynamic-security plugin, "
                        "mosquitto_ctrl and mosquitto_pub are not installed: skipped "
                        "(scripts/install-deps installs them)\n");
        s_env.skip = 1;
        return 0;
    }
    snprintf(s_env.dir, sizeof s_env.dir, "/tmp/lcore-test-dynsec-XXXXXX");
    if (!mkdtemp(s_env.dir) || (s_env.port = s_free_port()) < 0)
        return -1;
    char conf[1024], out[1024];
    snprintf(s_env.conf, sizeof s_env.conf, "%s/mosquitto.conf", s_env.dir);
    snprintf(s_env.log, sizeof s_env.log, "%s/broker.log", s_env.dir);
    snprintf(s_env.gw_pw_file, sizeof s_env.gw_pw_file, "%s/gateway.password", s_env.dir);
    if (s_sh(out, sizeof out, "mosquitto_ctrl dynsec init %s/dynsec.json admin %s", s_env.dir,
             S_ADMIN_PW) != 0)
        return fprintf(stderr, "dynsec init: %s\n", out), -1;
    /* Run as root, Mosquitto would become user "mosquitto", who cannot write here. */
    snprintf(conf, sizeof conf,
             "per_listener_settings false\nallow_anonymous false\npersistence false\n"
             "listener %d 127.0.0.1\nplugin %s\nplugin_opt_config_file %s/dynsec.json\n%s",
             s_env.port, s_env.plugin, s_env.dir, geteuid() == 0 ? "user root\n" : "");
    if (s_write(s_env.conf, conf) != 0 || s_write(s_env.gw_pw_file, S_GW_PW "\n") != 0)
        return -1;
    char *argv[] = {(char *)s_env.broker, "-c", s_env.conf, NULL};
    s_env.pid = s_spawn(s_env.log, argv);
    for (int i = 0; i < 100 && !s_listening(s_env.port); i++)
        usleep(50000);
    if (!s_listening(s_env.port))
        return fprintf(stderr, "mosquitto did not start: see %s\n", s_env.log), -1;
    return s_accounts();
}

static int s_group_teardown(void **state)
{
    (void)state;
    if (s_env.pid > 0) {
        kill(s_env.pid, SIGTERM);
        waitpid(s_env.pid, NULL, 0);
    }
    if (s_env.dir[0] && !s_env.skip)
        s_sh(NULL, 0, "rm -rf '%s'", s_env.dir);
    return 0;
}

static gw_dynsec_t *s_dynsec(lc_metrics_t *metrics, int port, const char *user, const char *pw_file,
                             int timeout_ms)
{
    char url[64];
    snprintf(url, sizeof url, "mqtt://127.0.0.1:%d", port);
    gw_dynsec_opts_t o = {.url = url,
                          .username = user,
                          .password_file = pw_file,
                          .client_id = "lcore-gw-test-dynsec",
                          .timeout_ms = timeout_ms,
                          .metrics = metrics};
    return gw_dynsec_new(&o);
}

static int s_setup(void **state)
{
    if (s_env.skip)
        return 0;
    s_fixture_t *f = calloc(1, sizeof *f);
    f->metrics = lc_metrics_new();
    f->dynsec = s_dynsec(f->metrics, s_env.port, S_GW_USER, s_env.gw_pw_file, 3000);
    *state = f;
    return f->dynsec ? 0 : -1;
}

static int s_teardown(void **state)
{
    s_fixture_t *f = *state;
    if (f) {
        gw_dynsec_destroy(&f->dynsec);
        lc_metrics_destroy(&f->metrics);
        free(f);
    }
    return 0;
}

/* The value of a counter line in the rendered metrics ("name{labels}"), or -1. */
static long s_metric(lc_metrics_t *m, const char *series)
{
    size_t len = 0;
    char *text = lc_metrics_render(m, &len);
    char line[256];
    snprintf(line, sizeof line, "\n%s", series); /* not the # HELP line */
    const char *at = text ? strstr(text, line) : NULL;
    long v = at ? strtol(at + strlen(line), NULL, 10) : -1;
    free(text);
    return v;
}

#define S_PROVISIONED(result)                                                                      \
    "lcore_gateway_broker_provisioning_total{action=\"provision\",result=\"" result "\"} "

static void s_provision(gw_dynsec_t *d, const char *device_id, unsigned flags,
                        char password[GW_DYNSEC_PASSWORD_LEN + 1])
{
    int created = 0;
    assert_int_equal(gw_dynsec_provision(d, device_id, flags, password, &created), 0);
    assert_int_equal(created, 1);
    assert_int_equal(strlen(password), GW_DYNSEC_PASSWORD_LEN);
    assert_int_equal(strspn(password, "0123456789abcdef"), GW_DYNSEC_PASSWORD_LEN);
}

static void test_device_reaches_only_its_own_topics(void **state)
{
    if (s_env.skip)
        skip();
    s_fixture_t *f = *state;
    char pw[GW_DYNSEC_PASSWORD_LEN + 1], out[2048];
    s_provision(f->dynsec, "dev-a", GW_DYNSEC_NEW, pw);
    assert_true(s_pub("dev-a", pw, "lcore/v1/dev-a/data", 0));
    assert_true(s_pub("dev-a", pw, "lcore/v1/dev-a/batch", 0));
    assert_false(s_pub("dev-a", pw, "lcore/v1/dev-b/data", 0));
    assert_false(s_pub("dev-a", pw, "lcore/v1/dev-a/result", 0));
    assert_false(s_pub("dev-a", pw, "lcore/v1/dev-a/data/x", 0));
    assert_false(s_pub("dev-a", "0123456789abcdef", "lcore/v1/dev-a/data", 0));
    assert_false(s_pub("dev-b", pw, "lcore/v1/dev-b/data", 0));
    /* Its client id is its device_id: another (a gateway's, to take its session over) is
     * refused, and so is none (the broker would make one up). */
    assert_false(s_pub_as("dev-a", pw, "lcore-gw-test-ingest", "lcore/v1/dev-a/data", 0));
    assert_int_equal(s_sh(out, sizeof out,
                          "mosquitto_pub -h 127.0.0.1 -p %d -V mqttv5 -q 1 -u dev-a -P '%s' "
                          "-t lcore/v1/dev-a/data -m reading",
                          s_env.port, pw),
                     135);
    /* Results waiting (retained) for dev-a and for another device. */
    assert_true(s_pub("peer", S_PEER_PW, "lcore/v1/dev-a/result", 1));
    assert_true(s_pub("peer", S_PEER_PW, "lcore/v1/dev-a/response/r1", 1));
    assert_true(s_pub("peer", S_PEER_PW, "lcore/v1/dev-b/result", 1));
    s_sub(out, sizeof out, "dev-a", pw, "lcore/v1/dev-a/result");
    assert_non_null(strstr(out, "lcore/v1/dev-a/result reading"));
    s_sub(out, sizeof out, "dev-a", pw, "lcore/v1/dev-a/response/#");
    assert_non_null(strstr(out, "lcore/v1/dev-a/response/r1 reading"));
    s_sub(out, sizeof out, "dev-a", pw, "lcore/v1/dev-b/result");
    assert_non_null(strstr(out, "denied"));
    assert_null(strstr(out, "reading"));
    s_sub(out, sizeof out, "dev-a", pw, "lcore/v1/+/result");
    assert_non_null(strstr(out, "denied"));
    assert_null(strstr(out, "reading"));
    /* Unsubscribing (denied by default here) shows in no client's output: the role itself. */
    s_sh(out, sizeof out,
         "mosquitto_ctrl -h 127.0.0.1 -p %d -u admin -P %s dynsec getRole lcore-device-dev-a",
         s_env.port, S_ADMIN_PW);
    int allowed = 0;
    for (const char *p = out; (p = strstr(p, ": allow : lcore/v1/dev-a/")); p++)
        allowed++;
    assert_int_equal(allowed, 8);
    assert_null(strstr(out, "deny"));
    assert_non_null(strstr(out, "unsubscribeLiteral   : allow : lcore/v1/dev-a/result "));
    assert_non_null(strstr(out, "unsubscribePattern   : allow : lcore/v1/dev-a/response/# "));
    assert_int_equal(s_metric(f->metrics, S_PROVISIONED("ok")), 1);
    sodium_memzero(pw, sizeof pw);
}

static void test_provisioning_again_keeps_or_resets_the_password(void **state)
{
    if (s_env.skip)
        skip();
    s_fixture_t *f = *state;
    char pw[GW_DYNSEC_PASSWORD_LEN + 1], again[GW_DYNSEC_PASSWORD_LEN + 1] = "x";
    int created = 1;
    s_provision(f->dynsec, "dev-b", GW_DYNSEC_NEW, pw);
    /* A registration answered 200 (exists): nothing new, the password stays. */
    assert_int_equal(gw_dynsec_provision(f->dynsec, "dev-b", 0, again, &created), 0);
    assert_int_equal(created, 0);
    assert_string_equal(again, "");
    assert_true(s_pub("dev-b", pw, "lcore/v1/dev-b/data", 0));
    assert_int_equal(s_metric(f->metrics, S_PROVISIONED("exists")), 1);
    /* The store says the device is new: the identity there is a leftover, its password reset. */
    s_provision(f->dynsec, "dev-b", GW_DYNSEC_NEW, again);
    assert_string_not_equal(again, pw);
    assert_false(s_pub("dev-b", pw, "lcore/v1/dev-b/data", 0));
    assert_true(s_pub("dev-b", again, "lcore/v1/dev-b/data", 0));
    /* An identity made by hand, without role or client id: registered again (200), it gets
     * both, and keeps its password. */
    assert_int_equal(s_ctrl("createClient dev-old -p old-password-0123456789"), 0);
    assert_false(s_pub("dev-old", "old-password-0123456789", "lcore/v1/dev-old/data", 0));
    assert_int_equal(gw_dynsec_provision(f->dynsec, "dev-old", 0, again, &created), 0);
    assert_int_equal(created, 0);
    assert_true(s_pub("dev-old", "old-password-0123456789", "lcore/v1/dev-old/data", 0));
    assert_false(
        s_pub_as("dev-old", "old-password-0123456789", "any-id", "lcore/v1/dev-old/data", 0));
}

/* The broker's log says the device is connected. */
static int s_connected(const char *device_id)
{
    char pattern[160], out[256];
    snprintf(pattern, sizeof pattern, "u'%s')", device_id);
    for (int i = 0; i < 60; i++) {
        if (s_sh(out, sizeof out, "grep -cF \"%s\" '%s'", pattern, s_env.log) == 0)
            return 1;
        usleep(50000);
    }
    return 0;
}

/* The process ended within ms: 1. */
static int s_exits_within(pid_t pid, int ms)
{
    for (int waited = 0; waited < ms; waited += 20) {
        if (waitpid(pid, NULL, WNOHANG) == pid)
            return 1;
        usleep(20000);
    }
    return 0;
}

static void test_disable_kicks_and_enable_lets_back(void **state)
{
    if (s_env.skip)
        skip();
    s_fixture_t *f = *state;
    char pw[GW_DYNSEC_PASSWORD_LEN + 1], out_path[160];
    s_provision(f->dynsec, "dev-c", GW_DYNSEC_NEW, pw);
    snprintf(out_path, sizeof out_path, "%s/sub-dev-c.out", s_env.dir);
    char port[16];
    snprintf(port, sizeof port, "%d", s_env.port);
    char *argv[] = {"mosquitto_sub",
                    "-h",
                    "127.0.0.1",
                    "-p",
                    port,
                    "-V",
                    "mqttv5",
                    "-u",
                    "dev-c",
                    "-P",
                    pw,
                    "-i",
                    "dev-c",
                    "-t",
                    "lcore/v1/dev-c/result",
                    NULL};
    pid_t sub = s_spawn(out_path, argv);
    assert_true(s_connected("dev-c"));
    assert_false(s_exits_within(sub, 200)); /* stays connected until told otherwise */
    assert_int_equal(gw_dynsec_disable(f->dynsec, "dev-c"), 0);
    int kicked = s_exits_within(sub, 3000);
    if (!kicked) {
        kill(sub, SIGKILL);
        waitpid(sub, NULL, 0);
    }
    assert_true(kicked);
    assert_false(s_pub("dev-c", pw, "lcore/v1/dev-c/data", 0));
    assert_int_equal(gw_dynsec_enable(f->dynsec, "dev-c"), 0);
    assert_true(s_pub("dev-c", pw, "lcore/v1/dev-c/data", 0));
    /* A device without a broker identity (registered before MQTT, say). */
    assert_int_equal(gw_dynsec_disable(f->dynsec, "dev-none"), LC_ERR_NOTFOUND);
    assert_int_equal(gw_dynsec_enable(f->dynsec, "dev-none"), LC_ERR_NOTFOUND);
    assert_int_equal(
        s_metric(f->metrics,
                 "lcore_gateway_broker_provisioning_total{action=\"disable\",result=\"ok\"} "),
        1);
    assert_int_equal(s_metric(f->metrics, "lcore_gateway_broker_provisioning_total{action="
                                          "\"enable\",result=\"not_found\"} "),
                     1);
    assert_int_equal(s_metric(f->metrics, "lcore_gateway_broker_control_connected "), 1);
}

static void test_revoked_device_is_created_disabled(void **state)
{
    if (s_env.skip)
        skip();
    s_fixture_t *f = *state;
    char pw[GW_DYNSEC_PASSWORD_LEN + 1], again[GW_DYNSEC_PASSWORD_LEN + 1];
    int created = 1;
    /* Registered again while revoked, with no identity yet: made, but it cannot log in. */
    s_provision(f->dynsec, "dev-r", GW_DYNSEC_REVOKED, pw);
    assert_false(s_pub("dev-r", pw, "lcore/v1/dev-r/data", 0));
    /* Registered again once reactivated (the enable was lost, say): enabled, password kept. */
    assert_int_equal(gw_dynsec_provision(f->dynsec, "dev-r", 0, again, &created), 0);
    assert_int_equal(created, 0);
    assert_true(s_pub("dev-r", pw, "lcore/v1/dev-r/data", 0));
    /* And revoked again (the disable was lost): disabled. */
    assert_int_equal(gw_dynsec_provision(f->dynsec, "dev-r", GW_DYNSEC_REVOKED, again, &created),
                     0);
    assert_false(s_pub("dev-r", pw, "lcore/v1/dev-r/data", 0));
    /* Ids that would be wildcards or levels in a topic never reach the broker, nor a gateway's
     * name. */
    assert_int_equal(gw_dynsec_provision(f->dynsec, "dev/+", 0, again, &created), LC_ERR_INVALID);
    assert_int_equal(
        gw_dynsec_provision(f->dynsec, "lcore-gw-test-dynsec", GW_DYNSEC_NEW, again, &created),
        LC_ERR_INVALID);
    assert_int_equal(gw_dynsec_disable(f->dynsec, "#"), LC_ERR_INVALID);
}

static double s_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void test_no_broker_fails_within_the_timeout(void **state)
{
    (void)state;
    if (s_env.skip)
        skip();
    lc_metrics_t *m = lc_metrics_new();
    gw_dynsec_t *d = s_dynsec(m, s_free_port(), S_GW_USER, s_env.gw_pw_file, 300);
    char pw[GW_DYNSEC_PASSWORD_LEN + 1];
    int created = 1;
    double t0 = s_now();
    assert_int_equal(gw_dynsec_provision(d, "dev-x", GW_DYNSEC_NEW, pw, &created),
                     LC_ERR_UNAVAILABLE);
    assert_true(s_now() - t0 < 1.5);
    assert_int_equal(created, 0);
    assert_string_equal(pw, "");
    assert_int_equal(s_metric(m, S_PROVISIONED("failed")), 1);
    assert_int_equal(s_metric(m, "lcore_gateway_broker_control_connected "), 0);
    t0 = s_now();
    gw_dynsec_destroy(&d);
    assert_true(s_now() - t0 < 2.5);
    lc_metrics_destroy(&m);
    /* A bad URL or an unreadable password is refused at start. */
    static const char *const bad[] = {"tcp://127.0.0.1:1", "http://h:1",     "mqtt://",
                                      "mqtt://h:",         "mqtt://h:0",     "mqtt://h:65536",
                                      "mqtt://h:1x",       "mqtt://u:p@h:1", "mqtt://h:1/x",
                                      "mqtt://::1:1",      "mqtt://[::1",    "mqtt://[::1]x"};
    static const char *const good[] = {"mqtt://localhost", "mqtts://127.0.0.1:1", "mqtt://[::1]:1",
                                       "mqtt://[::1]"};
    m = lc_metrics_new();
    gw_dynsec_opts_t o = {.username = S_GW_USER,
                          .password_file = s_env.gw_pw_file,
                          .client_id = "x",
                          .timeout_ms = 100,
                          .metrics = m,
                          .ca_file = "/etc/ssl/certs/ca-certificates.crt"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        o.url = bad[i];
        d = gw_dynsec_new(&o);
        if (d)
            fail_msg("%s taken", bad[i]);
    }
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        o.url = good[i];
        d = gw_dynsec_new(&o);
        if (!d)
            fail_msg("%s refused", good[i]);
        gw_dynsec_destroy(&d);
    }
    o.url = "mqtts://127.0.0.1:1"; /* TLS without a CA file */
    o.ca_file = NULL;
    assert_null(gw_dynsec_new(&o));
    o.url = "mqtt://127.0.0.1:1";
    o.password_file = "/nonexistent/lcore-test";
    assert_null(gw_dynsec_new(&o));
    lc_metrics_destroy(&m);
}

static void test_gateway_without_rights_leaves_nothing(void **state)
{
    (void)state;
    if (s_env.skip)
        skip();
    char pw_file[160], pw[GW_DYNSEC_PASSWORD_LEN + 1], out[1024];
    int created = 1;
    /* May read the answers but not send commands: its messages are dropped (QoS 0). */
    snprintf(pw_file, sizeof pw_file, "%s/weak.password", s_env.dir);
    assert_int_equal(s_write(pw_file, "weak-password-0123456789\n"), 0);
    assert_int_equal(s_ctrl("createRole weak"), 0);
    assert_int_equal(
        s_ctrl("addRoleACL weak subscribeLiteral '$CONTROL/dynamic-security/v1/response' allow"),
        0);
    assert_int_equal(s_ctrl("createClient lcore-gw-weak -p weak-password-0123456789"), 0);
    assert_int_equal(s_ctrl("addClientRole lcore-gw-weak weak"), 0);
    lc_metrics_t *m = lc_metrics_new();
    gw_dynsec_t *d = s_dynsec(m, s_env.port, "lcore-gw-weak", pw_file, 400);
    assert_int_equal(gw_dynsec_provision(d, "dev-w", GW_DYNSEC_NEW, pw, &created), LC_ERR_TIMEOUT);
    assert_int_equal(created, 0);
    assert_string_equal(pw, "");
    assert_int_equal(gw_dynsec_disable(d, "dev-w"), LC_ERR_TIMEOUT);
    gw_dynsec_destroy(&d);
    lc_metrics_destroy(&m);
    s_sh(out, sizeof out, "mosquitto_ctrl -h 127.0.0.1 -p %d -u admin -P %s dynsec getClient dev-w",
         s_env.port, S_ADMIN_PW);
    assert_non_null(strstr(out, "Client not found"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_device_reaches_only_its_own_topics, s_setup,
                                        s_teardown),
        cmocka_unit_test_setup_teardown(test_provisioning_again_keeps_or_resets_the_password,
                                        s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_disable_kicks_and_enable_lets_back, s_setup,
                                        s_teardown),
        cmocka_unit_test_setup_teardown(test_revoked_device_is_created_disabled, s_setup,
                                        s_teardown),
        cmocka_unit_test(test_no_broker_fails_within_the_timeout),
        cmocka_unit_test(test_gateway_without_rights_leaves_nothing),
    };
    return cmocka_run_group_tests(tests, s_group_setup, s_group_teardown);
}
