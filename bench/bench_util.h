/* bench_util.h: what the bench executables share: command-line number parsing, a monotonic
 * clock, percentiles, bench devices with their own key pairs, readings signed the way lcore-sim
 * signs them, and SealedRecords sealed for real with lc_seal. Nothing here skips a signature or
 * an encryption: a benchmark measures the work the pipeline does. Called by bench/ only. */
#ifndef BENCH_UTIL_H
#define BENCH_UTIL_H

#include <stddef.h>
#include <stdint.h>

#include "lc_curve.h"
#include "lc_jws.h"
#include "lc_record.h"
#include "lc_seal.h"
#include "lcore.pb-c.h"

/* Size of the "data" object of a bench reading: with device_id, seq and ts the signed payload
 * is about 200 bytes, the JWS about 400 (lcore-sim --payload-bytes 136 makes the same). */
#define BENCH_DATA_BYTES 136
#define BENCH_PAYLOAD_MAX 4096
#define BENCH_JWS_MAX 8192 /* largest signed reading the ceilings seal */

/* Parses an unsigned integer / a number in [min, max]; 0 or -1 (reason on stderr, prefixed by
 * prog and the option name). */
int bench_parse_u64(const char *prog, const char *opt, const char *text, uint64_t min, uint64_t max,
                    uint64_t *out);
int bench_parse_double(const char *prog, const char *opt, const char *text, double min, double max,
                       double *out);

/* Monotonic clock in seconds. */
double bench_now(void);

/* The p-quantile (0..1) of v[0..n), nearest rank; sorts v. 0 when n is 0. */
double bench_percentile(double *v, size_t n, double p);

/* 8 random hex digits (NUL-terminated), to keep the ids of one run apart from any other's. */
void bench_run_id(char out[9]);

/* A feeder's CURVE context, from the services' own variables LCORE_CURVE, LCORE_CURVE_CERT and
 * LCORE_CURVE_TRUST_DIR: a feeder stands in for a gateway, a worker or a store, and the stack
 * must trust its certificate in that role. NULL on error (said on stderr). */
lc_curve_t *bench_curve(const char *prog, lc_metrics_t *metrics);

/* A simulated device: id and key pair. The secret key stays in this struct (stack or static
 * storage of main) and is wiped by bench_device_wipe. */
typedef struct {
    char id[LC_DEVICE_ID_MAX + 1];
    lc_alg_t alg;
    uint8_t sk[LC_ED25519_SK_LEN];
    size_t sk_len;
    uint8_t pk[LC_SECP256K1_PK_LEN];
    size_t pk_len;
} bench_device_t;

int bench_device_init(bench_device_t *d, const char *id, lc_alg_t alg) LC_WUR;
void bench_device_wipe(bench_device_t *d);

/* The register_device Query a gateway sends the store for d (request id 1); d_msg holds the
 * Device it points to, and both borrow d's strings and key. */
void bench_register_query(Lcore__V1__Query *q, Lcore__V1__Device *d_msg, const bench_device_t *d);

/* The signed payload of one reading, as lcore-sim builds it:
 * {"device_id":..,"seq":..,"ts":..,"data":{"temp":..,"hum":..,"pad":"xx.."}}, "data" about
 * data_bytes long. Returns its length, or -1 if cap is too small. */
int bench_payload(char *out, size_t cap, const char *device_id, uint64_t seq, uint64_t ts_ms,
                  size_t data_bytes);

/* The compact JWS of reading seq of device d (kid = device id). malloc'd (caller frees) or
 * NULL. */
char *bench_sign_reading(const bench_device_t *d, uint64_t seq, size_t data_bytes);

/* One SealedRecord sealed for real: the plaintext is a freshly signed reading, sealed under
 * the ring's newest key for its own record_id, so it opens with lcore-cli decrypt and verifies
 * against the device's key. The message's pointers borrow from this struct and from d (device
 * id) and gateway_id, which must outlive it. */
typedef struct {
    Lcore__V1__SealedRecord msg;
    uint8_t record_id[LC_RECORD_ID_LEN];
    lc_sealed_t sealed;
    uint8_t *ciphertext; /* malloc'd */
    size_t plaintext_len;
    uint8_t reading_hash[LC_READING_HASH_LEN];
} bench_sealed_t;

int bench_sealed_make(bench_sealed_t *out, lc_sealer_t *sealer, const bench_device_t *d,
                      uint64_t seq, const char *gateway_id, size_t data_bytes) LC_WUR;
void bench_sealed_clear(bench_sealed_t *s);

#endif
