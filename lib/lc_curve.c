/* lc_curve.c: see lc_curve.h. */
#include "lc_curve.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "lc_log.h"

#define S_ZAP_ENDPOINT "inproc://zeromq.zap.01"
#define S_KEY_LEN 32
#define S_Z85_LEN 40
#define S_CERT_MAX 8192      /* a certificate file is a few hundred bytes */
#define S_LOG_EVERY_MS 60000 /* one refusal line per peer address (or socket) per minute */
#define S_LOGGED_MAX 128
#define S_SOCKETS_MAX 16

static const char *const s_role_names[LC_ROLE_COUNT] = {"gateway", "crypto", "store", "chain",
                                                        "operator"};

typedef struct {
    uint8_t key[S_KEY_LEN];
    unsigned role;
    char name[64];
} s_peer_t;

/* One socket name (ZAP domain for servers): its admitted roles and its counters. */
typedef struct {
    char name[32];
    unsigned roles;
    lc_counter_t *refused, *dropped;
    uint64_t logged_ms;
} s_socket_t;

typedef struct {
    char what[80]; /* peer address, or socket + reason */
    uint64_t at_ms;
} s_logged_t;

struct lc_curve {
    int enabled;
    uint8_t *secret; /* sodium_malloc, read-only once loaded */
    uint8_t public_key[S_KEY_LEN];
    char *trust_dir;
    char service[32];
    lc_metrics_t *metrics;
    pthread_mutex_t lock; /* guards peers, sockets, logged */
    s_peer_t *peers;
    size_t n_peers;
    struct timespec dir_mtime[LC_ROLE_COUNT + 1];
    s_socket_t sockets[S_SOCKETS_MAX];
    size_t n_sockets;
    s_logged_t logged[S_LOGGED_MAX];
    zactor_t *zap;
    atomic_int zap_ok;
};

const char *lc_role_name(unsigned role)
{
    for (int i = 0; i < LC_ROLE_COUNT; i++)
        if (role == 1u << i)
            return s_role_names[i];
    return NULL;
}

unsigned lc_role_from_name(const char *name)
{
    for (int i = 0; i < LC_ROLE_COUNT; i++)
        if (name && strcmp(name, s_role_names[i]) == 0)
            return 1u << i;
    return 0;
}

/* Reads `field` ("public-key" or "secret-key") of a zcert file into out (32 bytes). The file
 * text is read into guarded memory and wiped: a secret certificate holds the key in Z85. */
static int s_read_key(const char *path, const char *field, uint8_t out[S_KEY_LEN],
                      int must_be_private)
{
    int rc = LC_ERR_IO;
    char *text = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return errno == ENOENT ? LC_ERR_NOTFOUND : LC_ERR_IO;
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size <= 0 || st.st_size > S_CERT_MAX)
        goto out;
    if (must_be_private && (st.st_mode & 077)) {
        lc_error("curve_cert_insecure", "path=%s mode=%04o (want 0600)", path,
                 (unsigned)(st.st_mode & 07777));
        rc = LC_ERR_INVALID;
        goto out;
    }
    if (!(text = sodium_malloc((size_t)st.st_size + 1))) {
        rc = LC_ERR_NOMEM;
        goto out;
    }
    ssize_t n = read(fd, text, (size_t)st.st_size);
    if (n != st.st_size)
        goto out;
    text[n] = '\0';
    rc = LC_ERR_INVALID;
    /* ZPL: `    public-key = "<40 Z85 characters>"` under `curve`. */
    size_t flen = strlen(field);
    for (char *p = strstr(text, field); p; p = strstr(p + 1, field)) {
        if (p != text && p[-1] != ' ' && p[-1] != '\t' && p[-1] != '\n')
            continue;
        char *q = p + flen;
        while (*q == ' ' || *q == '\t')
            q++;
        if (*q++ != '=')
            continue;
        while (*q == ' ' || *q == '\t')
            q++;
        if (*q++ != '"' || strlen(q) < S_Z85_LEN + 1 || q[S_Z85_LEN] != '"')
            continue;
        char z85[S_Z85_LEN + 1];
        memcpy(z85, q, S_Z85_LEN);
        z85[S_Z85_LEN] = '\0';
        rc = zmq_z85_decode(out, z85) ? 0 : LC_ERR_INVALID;
        sodium_memzero(z85, sizeof z85);
        break;
    }
out:
    if (text) {
        sodium_memzero(text, (size_t)st.st_size + 1);
        sodium_free(text);
    }
    close(fd);
    return rc;
}

static int s_is_cert_name(const char *name)
{
    size_t n = strlen(name);
    return name[0] != '.' && n > 5 && strcmp(name + n - 5, ".cert") == 0;
}

/* Reads every <trust>/<role>/<name>.cert. Returns the new table (caller frees) or NULL with
 * *n = 0 on error; an empty or missing role directory is not an error. */
static s_peer_t *s_load_peers(const char *trust_dir, size_t *n_out)
{
    size_t n = 0, cap = 16;
    s_peer_t *peers = calloc(cap, sizeof *peers);
    if (!peers)
        return NULL;
    for (int r = 0; r < LC_ROLE_COUNT; r++) {
        char dir[1024];
        snprintf(dir, sizeof dir, "%s/%s", trust_dir, s_role_names[r]);
        DIR *d = opendir(dir);
        if (!d)
            continue;
        for (struct dirent *e; (e = readdir(d));) {
            if (!s_is_cert_name(e->d_name))
                continue;
            if (n == cap) {
                s_peer_t *bigger = realloc(peers, 2 * cap * sizeof *peers);
                if (!bigger)
                    break;
                peers = bigger;
                cap *= 2;
            }
            char path[1400];
            snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
            s_peer_t *p = &peers[n];
            memset(p, 0, sizeof *p); /* compared whole with memcmp on the next read */
            if (s_read_key(path, "public-key", p->key, 0) != 0) {
                lc_warn("curve_cert_unreadable", "path=%s", path);
                continue;
            }
            p->role = 1u << r;
            snprintf(p->name, sizeof p->name, "%.*s", (int)(strlen(e->d_name) - 5), e->d_name);
            n++;
        }
        closedir(d);
    }
    *n_out = n;
    return peers;
}

/* Re-reads the trust directory if it or a role directory changed. */
static void s_reload(lc_curve_t *self, int force)
{
    struct timespec mt[LC_ROLE_COUNT + 1] = {{0}};
    struct stat st;
    if (stat(self->trust_dir, &st) == 0)
        mt[0] = st.st_mtim;
    for (int r = 0; r < LC_ROLE_COUNT; r++) {
        char dir[1024];
        snprintf(dir, sizeof dir, "%s/%s", self->trust_dir, s_role_names[r]);
        if (stat(dir, &st) == 0)
            mt[r + 1] = st.st_mtim;
    }
    /* Directory times are as coarse as the kernel's clock tick: a change in the same tick as the
     * last read keeps the time, so a directory changed in the last seconds is read again. */
    time_t now = time(NULL);
    int recent = 0;
    for (int i = 0; i <= LC_ROLE_COUNT; i++)
        recent |= mt[i].tv_sec + 2 >= now;
    if (!force && !recent && memcmp(mt, self->dir_mtime, sizeof mt) == 0)
        return;
    size_t n = 0;
    s_peer_t *peers = s_load_peers(self->trust_dir, &n);
    if (!peers)
        return; /* out of memory: keep the old table */
    unsigned counts[LC_ROLE_COUNT] = {0};
    for (size_t i = 0; i < n; i++)
        for (int r = 0; r < LC_ROLE_COUNT; r++)
            counts[r] += peers[i].role == 1u << r;
    pthread_mutex_lock(&self->lock);
    int same =
        self->peers && n == self->n_peers && memcmp(peers, self->peers, n * sizeof *peers) == 0;
    free(self->peers);
    self->peers = peers;
    self->n_peers = n;
    memcpy(self->dir_mtime, mt, sizeof mt);
    pthread_mutex_unlock(&self->lock);
    if (!same)
        lc_info("curve_trust_loaded", "dir=%s gateway=%u crypto=%u store=%u chain=%u operator=%u",
                self->trust_dir, counts[0], counts[1], counts[2], counts[3], counts[4]);
}

/* 1 if `what` was not logged within the last minute (and records it now). Under lock. */
static int s_should_log(lc_curve_t *self, const char *what)
{
    uint64_t now = lc_now_ms();
    s_logged_t *oldest = &self->logged[0];
    for (size_t i = 0; i < S_LOGGED_MAX; i++) {
        s_logged_t *l = &self->logged[i];
        if (strcmp(l->what, what) == 0) {
            if (now - l->at_ms < S_LOG_EVERY_MS)
                return 0;
            l->at_ms = now;
            return 1;
        }
        if (l->at_ms < oldest->at_ms)
            oldest = l;
    }
    snprintf(oldest->what, sizeof oldest->what, "%s", what);
    oldest->at_ms = now;
    return 1;
}

/* The socket entry called name; created (client sockets) when absent. Under lock. */
static s_socket_t *s_socket(lc_curve_t *self, const char *name)
{
    for (size_t i = 0; i < self->n_sockets; i++)
        if (strcmp(self->sockets[i].name, name) == 0)
            return &self->sockets[i];
    if (self->n_sockets == S_SOCKETS_MAX)
        return NULL;
    s_socket_t *s = &self->sockets[self->n_sockets++];
    snprintf(s->name, sizeof s->name, "%s", name);
    char metric[96], label[64];
    snprintf(label, sizeof label, "socket=\"%s\"", name);
    snprintf(metric, sizeof metric, "lcore_%s_auth_refused_total", self->service);
    s->refused = lc_metrics_counter(self->metrics, metric,
                                    "ZeroMQ handshakes refused (no CURVE, wrong server key, or a "
                                    "client key not admitted on the socket), by socket",
                                    label);
    snprintf(metric, sizeof metric, "lcore_%s_peer_drops_total", self->service);
    s->dropped = lc_metrics_counter(
        self->metrics, metric,
        "Authenticated ZeroMQ connections that ended (peer gone, or closed by us for a frame over "
        "the socket's size limit), by socket",
        label);
    return s;
}

/* The admitted peer with this key on socket `domain`, copied into *out: 1, or 0. */
static int s_lookup(lc_curve_t *self, const char *domain, const uint8_t *key, s_peer_t *out)
{
    int found = 0;
    pthread_mutex_lock(&self->lock);
    unsigned roles = 0;
    for (size_t i = 0; i < self->n_sockets; i++)
        if (domain && strcmp(self->sockets[i].name, domain) == 0)
            roles = self->sockets[i].roles;
    for (size_t i = 0; i < self->n_peers && !found; i++)
        if (sodium_memcmp(self->peers[i].key, key, S_KEY_LEN) == 0 &&
            (self->peers[i].role & roles)) {
            *out = self->peers[i];
            found = 1;
        }
    pthread_mutex_unlock(&self->lock);
    return found;
}

/* ZAP (RFC 27): [version][request id][domain][address][identity][mechanism][key] ->
 * [version][request id][status][text][user id][metadata]. */
static void s_zap_answer(lc_curve_t *self, zsock_t *handler)
{
    zmsg_t *req = zmsg_recv(handler);
    if (!req)
        return;
    char *version = zmsg_popstr(req), *request_id = zmsg_popstr(req), *domain = zmsg_popstr(req),
         *address = zmsg_popstr(req), *identity = zmsg_popstr(req), *mechanism = zmsg_popstr(req);
    zframe_t *key = zmsg_pop(req);
    const char *status = "400", *text = "unknown key";
    char user[96] = "";
    if (!version || strcmp(version, "1.0") != 0 || !mechanism || strcmp(mechanism, "CURVE") != 0 ||
        !key || zframe_size(key) != S_KEY_LEN) {
        text = "malformed ZAP request";
        goto reply;
    }
    /* A key not known yet may have been installed a moment ago (a worker writes its certificate,
     * then connects): look at the directory again before refusing, every time, since libzmq
     * does not retry a client that was refused. It is read again only if it changed (or changed
     * within the last seconds): unknown keys from an attacker cost a few stat(2) calls each. */
    s_peer_t peer;
    int found = s_lookup(self, domain, zframe_data(key), &peer);
    if (!found) {
        s_reload(self, 0);
        found = s_lookup(self, domain, zframe_data(key), &peer);
    }
    if (found) {
        status = "200";
        text = "OK";
        snprintf(user, sizeof user, "%s/%s", lc_role_name(peer.role), peer.name);
    } else {
        char what[80], z85[S_Z85_LEN + 1];
        snprintf(what, sizeof what, "%s %s", domain ? domain : "-", address ? address : "-");
        pthread_mutex_lock(&self->lock);
        int log = s_should_log(self, what);
        pthread_mutex_unlock(&self->lock);
        if (log && zmq_z85_encode(z85, zframe_data(key), S_KEY_LEN))
            lc_warn("auth_refused", "socket=%s peer=%s reason=key_not_admitted client_key=%s",
                    domain ? domain : "-", address ? address : "-", z85);
    }
reply:
    zsock_send(handler, "ssssss", "1.0", request_id ? request_id : "", status, text, user, "");
    zframe_destroy(&key);
    char *strs[] = {version, request_id, domain, address, identity, mechanism};
    for (size_t i = 0; i < LC_ARRAY_LEN(strs); i++)
        zstr_free(&strs[i]);
    zmsg_destroy(&req);
}

static void s_zap_actor(zsock_t *pipe, void *arg)
{
    lc_curve_t *self = arg;
    zsock_t *handler = zsock_new(ZMQ_REP);
    if (!handler || zsock_bind(handler, S_ZAP_ENDPOINT) != 0) {
        lc_error("zap_bind_failed", "endpoint=%s", S_ZAP_ENDPOINT);
        zsock_destroy(&handler);
        zsock_signal(pipe, 0);
        return;
    }
    atomic_store(&self->zap_ok, 1);
    zsock_signal(pipe, 0);
    zpoller_t *poller = zpoller_new(pipe, handler, NULL);
    uint64_t next_check = lc_mono_us() + 1000000u;
    while (poller) {
        void *which = zpoller_wait(poller, 1000);
        if (which == pipe) {
            char *cmd = zstr_recv(pipe);
            int term = !cmd || strcmp(cmd, "$TERM") == 0;
            zstr_free(&cmd);
            if (term)
                break;
        } else if (which == handler) {
            s_zap_answer(self, handler);
        } else if (zpoller_terminated(poller)) {
            break;
        }
        if (lc_mono_us() >= next_check) {
            s_reload(self, 0);
            next_check = lc_mono_us() + 1000000u;
        }
    }
    zpoller_destroy(&poller);
    zsock_destroy(&handler);
}

lc_curve_t *lc_curve_new(const lc_curve_cfg_t *cfg, const char *service, lc_metrics_t *metrics)
{
    lc_curve_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    pthread_mutex_init(&self->lock, NULL);
    self->enabled = cfg->enabled;
    self->metrics = metrics;
    snprintf(self->service, sizeof self->service, "%s", service);
    if (!self->enabled) {
        lc_warn("curve_disabled", "note=\"ZeroMQ links are unauthenticated and unencrypted: "
                                  "benchmarks only\"");
        return self;
    }
    int rc = 0;
    if (!cfg->cert[0] || !cfg->trust_dir[0]) {
        lc_error("curve_config_missing", "need=\"LCORE_CURVE_CERT and LCORE_CURVE_TRUST_DIR\"");
        goto fail;
    }
    if (!(self->secret = sodium_malloc(S_KEY_LEN)) || !(self->trust_dir = strdup(cfg->trust_dir)))
        goto fail;
    if ((rc = s_read_key(cfg->cert, "secret-key", self->secret, 1)) != 0 ||
        (rc = s_read_key(cfg->cert, "public-key", self->public_key, 1)) != 0) {
        lc_error("curve_cert_load_failed", "path=%s err=\"%s\"", cfg->cert, lc_strerror(rc));
        goto fail;
    }
    /* The public key must be the secret key's: a mismatched file would fail every handshake. */
    uint8_t derived[S_KEY_LEN];
    crypto_scalarmult_base(derived, self->secret);
    if (sodium_memcmp(derived, self->public_key, S_KEY_LEN) != 0) {
        lc_error("curve_cert_mismatch", "path=%s", cfg->cert);
        goto fail;
    }
    sodium_mprotect_readonly(self->secret);
    s_reload(self, 1);
    char z85[S_Z85_LEN + 1];
    if (zmq_z85_encode(z85, self->public_key, S_KEY_LEN))
        lc_info("curve_ready", "cert=%s public_key=%s trust_dir=%s", cfg->cert, z85,
                cfg->trust_dir);
    return self;
fail:
    lc_curve_destroy(&self);
    return NULL;
}

void lc_curve_destroy(lc_curve_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    lc_curve_t *self = *self_p;
    zactor_destroy(&self->zap);
    if (self->secret)
        sodium_free(self->secret); /* wipes */
    free(self->peers);
    free(self->trust_dir);
    pthread_mutex_destroy(&self->lock);
    free(self);
    *self_p = NULL;
}

int lc_curve_enabled(const lc_curve_t *self)
{
    return self && self->enabled;
}

/* Sets this instance's key pair on sock (libzmq copies the keys into the socket). */
static void s_set_keys(lc_curve_t *self, zsock_t *sock)
{
    void *h = zsock_resolve(sock);
    zmq_setsockopt(h, ZMQ_CURVE_SECRETKEY, self->secret, S_KEY_LEN);
    zmq_setsockopt(h, ZMQ_CURVE_PUBLICKEY, self->public_key, S_KEY_LEN);
}

int lc_curve_server(lc_curve_t *self, zsock_t *sock, const char *name, unsigned roles)
{
    pthread_mutex_lock(&self->lock);
    s_socket_t *s = s_socket(self, name);
    if (s)
        s->roles |= roles;
    pthread_mutex_unlock(&self->lock);
    if (!s)
        return LC_ERR_FULL;
    if (!self->enabled)
        return 0;
    /* The ZAP handler starts with the first server socket: a process that only connects (a
     * worker, the relayer) has none. One per process: it binds libzmq's ZAP endpoint. */
    if (!self->zap && (!(self->zap = zactor_new(s_zap_actor, self)) || !atomic_load(&self->zap_ok)))
        return LC_ERR_UNAVAILABLE;
    s_set_keys(self, sock);
    zsock_set_curve_server(sock, 1);
    zsock_set_zap_domain(sock, name);
    /* Without a ZAP handler libzmq would admit every client: refuse instead. */
    zsock_set_zap_enforce_domain(sock, 1);
    return 0;
}

int lc_curve_client(lc_curve_t *self, zsock_t *sock, unsigned role, const char *server_name)
{
    if (!self->enabled)
        return 0;
    const char *role_name = lc_role_name(role);
    if (!role_name)
        return LC_ERR_INVALID;
    uint8_t server_key[S_KEY_LEN];
    int found = 0;
    if (server_name && *server_name) {
        char path[1400];
        snprintf(path, sizeof path, "%s/%s/%s.cert", self->trust_dir, role_name, server_name);
        found = s_read_key(path, "public-key", server_key, 0) == 0;
        if (!found)
            lc_error("curve_server_cert_missing", "path=%s", path);
    } else {
        pthread_mutex_lock(&self->lock);
        int n = 0;
        for (size_t i = 0; i < self->n_peers; i++)
            if (self->peers[i].role == role && n++ == 0)
                memcpy(server_key, self->peers[i].key, S_KEY_LEN);
        pthread_mutex_unlock(&self->lock);
        found = n == 1;
        if (n == 0)
            lc_error("curve_server_cert_missing",
                     "dir=%s/%s hint=\"no %s certificate: install "
                     "the server's public certificate there\"",
                     self->trust_dir, role_name, role_name);
        else if (n > 1)
            lc_error("curve_server_cert_ambiguous",
                     "dir=%s/%s certificates=%d hint=\"name the server's certificate in the "
                     "endpoint: tcp://host:port#name\"",
                     self->trust_dir, role_name, n);
    }
    if (!found)
        return LC_ERR_NOTFOUND;
    s_set_keys(self, sock);
    zmq_setsockopt(zsock_resolve(sock), ZMQ_CURVE_SERVERKEY, server_key, S_KEY_LEN);
    return 0;
}

void lc_curve_socket(lc_curve_t *self, const char *name)
{
    pthread_mutex_lock(&self->lock);
    s_socket(self, name);
    pthread_mutex_unlock(&self->lock);
}

void lc_curve_count_refusal(lc_curve_t *self, const char *name, const char *reason)
{
    pthread_mutex_lock(&self->lock);
    s_socket_t *s = s_socket(self, name);
    char what[80];
    snprintf(what, sizeof what, "%s %s", name, reason);
    int log = s && s_should_log(self, what);
    pthread_mutex_unlock(&self->lock);
    if (!s)
        return;
    lc_counter_inc(s->refused);
    if (log)
        lc_warn("auth_refused",
                "socket=%s reason=%s note=\"peer address not reported by libzmq "
                "for this kind of failure\"",
                name, reason);
}

void lc_curve_count_drop(lc_curve_t *self, const char *name)
{
    pthread_mutex_lock(&self->lock);
    s_socket_t *s = s_socket(self, name);
    pthread_mutex_unlock(&self->lock);
    if (s)
        lc_counter_inc(s->dropped);
}

int lc_curve_keygen(const char *path, const char *role, const char *name)
{
    char secret_path[1400];
    snprintf(secret_path, sizeof secret_path, "%s_secret", path);
    if (access(path, F_OK) == 0 || access(secret_path, F_OK) == 0)
        return LC_ERR_CONFLICT;
    zcert_t *cert = zcert_new();
    if (!cert)
        return LC_ERR_NOMEM;
    zcert_set_meta(cert, "role", "%s", role);
    zcert_set_meta(cert, "name", "%s", name);
    mode_t old = umask(077);
    int rc = zcert_save(cert, path) == 0 ? 0 : LC_ERR_IO;
    umask(old);
    if (rc == 0 && (chmod(secret_path, 0600) != 0 || chmod(path, 0644) != 0))
        rc = LC_ERR_IO;
    /* czmq keeps the secret key in ordinary memory and does not wipe it on destroy. */
    sodium_memzero((void *)zcert_secret_key(cert), S_KEY_LEN);
    sodium_memzero((void *)zcert_secret_txt(cert), S_Z85_LEN);
    zcert_destroy(&cert);
    return rc;
}

unsigned lc_curve_user_role(const char *user_id)
{
    const char *slash = user_id ? strchr(user_id, '/') : NULL;
    char role[16];
    if (!slash || (size_t)(slash - user_id) >= sizeof role)
        return 0;
    memcpy(role, user_id, (size_t)(slash - user_id));
    role[slash - user_id] = '\0';
    return lc_role_from_name(role);
}

int lc_curve_from(const lc_curve_t *self, const char *user_id, unsigned role)
{
    return !lc_curve_enabled(self) || (lc_curve_user_role(user_id) & role) != 0;
}
