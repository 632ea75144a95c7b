/* bench_util.c: see bench_util.h. */
#include "bench_util.h"

#include <errno.h>
#include <math.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lc_codec.h"

int bench_parse_u64(const char *prog, const char *opt, const char *text, uint64_t min, uint64_t max,
                    uint64_t *out)
{
    char *end = NULL;
    errno = 0;
    unsigned long long v = text && *text != '-' ? strtoull(text, &end, 10) : 0;
    if (!text || !*text || *text == '-' || errno || *end || v < min || v > max) {
        fprintf(stderr, "%s: %s must be an integer in %llu..%llu, not '%s'\n", prog, opt,
                (unsigned long long)min, (unsigned long long)max, text ? text : "");
        return -1;
    }
    *out = v;
    return 0;
}

int bench_parse_double(const char *prog, const char *opt, const char *text, double min, double max,
                       double *out)
{
    char *end = NULL;
    errno = 0;
    double v = text ? strtod(text, &end) : NAN;
    if (!text || !*text || errno || *end || !(v >= min && v <= max)) {
        fprintf(stderr, "%s: %s must be a number in %g..%g, not '%s'\n", prog, opt, min, max,
                text ? text : "");
        return -1;
    }
    *out = v;
    return 0;
}

double bench_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int s_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

double bench_percentile(double *v, size_t n, double p)
{
    if (n == 0)
        return 0;
    qsort(v, n, sizeof *v, s_cmp_double);
    size_t rank = (size_t)ceil(p * (double)n);
    return v[rank ? rank - 1 : 0];
}

void bench_run_id(char out[9])
{
    uint8_t raw[4];
    randombytes_buf(raw, sizeof raw);
    if (lc_hex_encode(out, 9, raw, sizeof raw) < 0)
        snprintf(out, 9, "00000000");
}

int bench_device_init(bench_device_t *d, const char *id, lc_alg_t alg)
{
    memset(d, 0, sizeof *d);
    if (!lc_device_id_valid(id, strlen(id)))
        return LC_ERR_INVALID;
    snprintf(d->id, sizeof d->id, "%s", id);
    d->alg = alg;
    return lc_keypair_generate(alg, d->sk, &d->sk_len, d->pk, &d->pk_len);
}

void bench_device_wipe(bench_device_t *d)
{
    sodium_memzero(d->sk, sizeof d->sk);
}

void bench_register_query(Lcore__V1__Query *q, Lcore__V1__Device *d_msg, const bench_device_t *d)
{
    *d_msg = (Lcore__V1__Device)LCORE__V1__DEVICE__INIT;
    d_msg->device_id = (char *)d->id;
    d_msg->alg = (char *)lc_alg_name(d->alg);
    d_msg->public_key.data = (uint8_t *)d->pk;
    d_msg->public_key.len = d->pk_len;
    *q = (Lcore__V1__Query)LCORE__V1__QUERY__INIT;
    q->version = 1;
    q->request_id = 1;
    q->body_case = LCORE__V1__QUERY__BODY_REGISTER_DEVICE;
    q->register_device = d_msg;
}

int bench_payload(char *out, size_t cap, const char *device_id, uint64_t seq, uint64_t ts_ms,
                  size_t data_bytes)
{
    int n = snprintf(out, cap,
                     "{\"device_id\":\"%s\",\"seq\":%llu,\"ts\":%llu,\"data\":{\"temp\":%.1f,"
                     "\"hum\":%u,\"pad\":\"",
                     device_id, (unsigned long long)seq, (unsigned long long)ts_ms,
                     15.0 + (double)(seq % 150) / 10.0, (unsigned)(30 + seq % 40));
    if (n < 0 || (size_t)n >= cap)
        return -1;
    /* The "data" object so far is everything after "data": — pad it to about data_bytes. */
    const char *data = strstr(out, "\"data\":") + 7;
    size_t have = (size_t)(out + n - data) + 2; /* with the closing "} */
    size_t pad = data_bytes > have ? data_bytes - have : 0;
    if ((size_t)n + pad + 3 >= cap)
        return -1;
    memset(out + n, 'x', pad);
    n += (int)pad;
    memcpy(out + n, "\"}}", 4);
    return n + 3;
}

char *bench_sign_reading(const bench_device_t *d, uint64_t seq, size_t data_bytes)
{
    char payload[BENCH_PAYLOAD_MAX];
    int n = bench_payload(payload, sizeof payload, d->id, seq, lc_now_ms(), data_bytes);
    if (n < 0)
        return NULL;
    return lc_jws_sign(d->alg, d->id, (const uint8_t *)payload, (size_t)n, d->sk, d->sk_len);
}

int bench_sealed_make(bench_sealed_t *out, lc_sealer_t *sealer, const bench_device_t *d,
                      uint64_t seq, const char *gateway_id, size_t data_bytes)
{
    memset(out, 0, sizeof *out);
    char *jws = bench_sign_reading(d, seq, data_bytes);
    if (!jws)
        return LC_ERR_SIGNATURE;
    size_t len = strlen(jws);
    int rc = LC_ERR_NOMEM;
    if (!(out->ciphertext = malloc(len + LC_SEAL_OVERHEAD)))
        goto out;
    lc_record_id(out->record_id, d->id, strlen(d->id), seq);
    uint64_t now_us = lc_now_us();
    rc = lc_seal(sealer, &out->sealed, out->ciphertext, out->record_id, d->id, strlen(d->id),
                 (const uint8_t *)jws, len);
    if (rc < 0)
        goto out;
    out->plaintext_len = len;
    lc_reading_hash(out->reading_hash, (const uint8_t *)jws, len);
    Lcore__V1__SealedRecord *m = &out->msg;
    lcore__v1__sealed_record__init(m);
    m->version = 1;
    m->record_id.data = out->record_id;
    m->record_id.len = sizeof out->record_id;
    m->device_id = (char *)d->id;
    m->seq = seq;
    m->device_ts_ms = now_us / 1000;
    m->received_at_us = now_us;
    m->sealed_at_us = lc_now_us();
    m->key_version = out->sealed.key_version;
    m->aes_nonce.data = out->sealed.aes_nonce;
    m->aes_nonce.len = sizeof out->sealed.aes_nonce;
    m->xchacha_nonce.data = out->sealed.xchacha_nonce;
    m->xchacha_nonce.len = sizeof out->sealed.xchacha_nonce;
    m->ciphertext.data = out->ciphertext;
    m->ciphertext.len = out->sealed.ciphertext_len;
    m->envelope_hash.data = out->sealed.envelope_hash;
    m->envelope_hash.len = sizeof out->sealed.envelope_hash;
    m->gateway_id = (char *)gateway_id;
    m->reading_hash.data = out->reading_hash;
    m->reading_hash.len = sizeof out->reading_hash;
    m->attempt = 1;
    m->max_attempts = 5;
out:
    /* The plaintext reading is wiped like the worker wipes it. */
    sodium_memzero(jws, len);
    free(jws);
    if (rc < 0) {
        free(out->ciphertext);
        out->ciphertext = NULL;
    }
    return rc;
}

void bench_sealed_clear(bench_sealed_t *s)
{
    free(s->ciphertext);
    memset(s, 0, sizeof *s);
}

typedef struct {
    lc_curve_cfg_t curve;
} s_curve_cfg_t;

lc_curve_t *bench_curve(const char *prog, lc_metrics_t *metrics)
{
    static const lc_cfg_opt_t opts[] = {LC_CURVE_CFG_ROWS(s_curve_cfg_t)};
    static s_curve_cfg_t cfg;
    char err[256];
    if (lc_cfg_load(&cfg, opts, LC_ARRAY_LEN(opts), err, sizeof err) != 0) {
        fprintf(stderr, "%s: %s\n", prog, err);
        return NULL;
    }
    lc_curve_t *curve = lc_curve_new(&cfg.curve, "bench", metrics);
    if (!curve)
        fprintf(stderr, "%s: CURVE set-up failed (LCORE_CURVE_CERT, LCORE_CURVE_TRUST_DIR)\n",
                prog);
    return curve;
}
