/* lcore-bench-ceilings: single-core ceilings of the pipeline's cryptography, measured on one
 * thread for --seconds each:
 *   - EdDSA and ES256K JWS verification as the gateway does it (lc_jws_parse + lc_jws_verify over
 *     a compact JWS of a ~200-byte reading, the public key in its registered raw form);
 *   - the dual seal of a 256-byte plaintext (lc_seal: AES-256-GCM then XChaCha20-Poly1305, with a
 *     real key ring made in a temporary directory), and which AES-GCM implementation ran;
 *   - for reference, the raw primitives: crypto_sign_verify_detached and secp256k1_ecdsa_verify.
 * Prints one JSON object on stdout; exit 0, or 1 with the reason on stderr. */
#include <getopt.h>
#include <secp256k1.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench_util.h"
#include "lc_keyring.h"
#include "lc_log.h"
#include "lc_secp.h"

#define PROG "lcore-bench-ceilings"
#define CHUNK 64 /* operations between clock reads */

/* One measured operation: returns 0 on success; any failure ends the benchmark. */
typedef int (*op_fn)(void *arg);

/* Runs op for `seconds` (after a short warm-up) and returns operations per second, or -1 when an
 * operation failed (a benchmark that stopped verifying would be measuring nothing). */
static double s_rate(op_fn op, void *arg, double seconds)
{
    for (int i = 0; i < CHUNK; i++)
        if (op(arg) != 0)
            return -1;
    uint64_t n = 0;
    double t0 = bench_now(), t;
    do {
        for (int i = 0; i < CHUNK; i++)
            if (op(arg) != 0)
                return -1;
        n += CHUNK;
        t = bench_now();
    } while (t - t0 < seconds);
    return (double)n / (t - t0);
}

typedef struct {
    const char *jws;
    size_t len;
    lc_alg_t alg;
    const uint8_t *pk;
    size_t pk_len;
} jws_case_t;

/* What the gateway does per reading before anything else: parse, then verify the signature over
 * the received bytes. */
static int s_jws_verify(void *arg)
{
    const jws_case_t *c = arg;
    uint8_t payload[BENCH_PAYLOAD_MAX];
    lc_jws_t j;
    int rc = lc_jws_parse(&j, c->jws, c->len, payload, sizeof payload);
    if (rc == 0)
        rc = lc_jws_verify(&j, c->alg, c->pk, c->pk_len);
    return rc;
}

typedef struct {
    uint8_t sig[64];
    const uint8_t *msg;
    size_t msg_len;
    const uint8_t *pk;
} ed_raw_t;

static int s_ed25519_raw(void *arg)
{
    const ed_raw_t *c = arg;
    return crypto_sign_verify_detached(c->sig, c->msg, c->msg_len, c->pk);
}

/* Public key and signature parsed once, the SHA-256 of the signing input computed once: only
 * the curve arithmetic is left. */
typedef struct {
    secp256k1_ecdsa_signature sig;
    secp256k1_pubkey pk;
    uint8_t hash[32];
} secp_raw_t;

static int s_secp256k1_raw(void *arg)
{
    const secp_raw_t *c = arg;
    return secp256k1_ecdsa_verify(lc_secp_context(), &c->sig, c->hash, &c->pk) == 1 ? 0 : -1;
}

typedef struct {
    lc_sealer_t *sealer;
    uint8_t record_id[LC_RECORD_ID_LEN];
    const char *device_id;
    const uint8_t *plaintext;
    size_t plaintext_len;
    uint8_t *ciphertext; /* plaintext_len + LC_SEAL_OVERHEAD bytes */
} seal_case_t;

static int s_seal(void *arg)
{
    seal_case_t *c = arg;
    lc_sealed_t out;
    return lc_seal(c->sealer, &out, c->ciphertext, c->record_id, c->device_id, strlen(c->device_id),
                   c->plaintext, c->plaintext_len);
}

static void s_usage(FILE *out)
{
    fprintf(out, "usage: " PROG " [--seconds S]\n"
                 "  Single-thread ceilings: EdDSA and ES256K JWS verify/s (parse + verify, as the\n"
                 "  gateway does), dual seal/s of 256 bytes and of the signed reading itself (the\n"
                 "  bytes a crypto worker seals; real key ring in a temp dir), raw Ed25519 and\n"
                 "  secp256k1 verify/s. One JSON object on stdout.\n"
                 "  --seconds S   time per measurement (default 2)\n");
}

/* A signed reading of a fresh device of `alg`, and its parsed form for the raw measurements. */
static int s_make_jws(bench_device_t *dev, lc_alg_t alg, const char *id, char **jws, lc_jws_t *j,
                      uint8_t *payload, size_t cap)
{
    if (bench_device_init(dev, id, alg) < 0 ||
        !(*jws = bench_sign_reading(dev, 1, BENCH_DATA_BYTES)))
        return -1;
    if (lc_jws_parse(j, *jws, strlen(*jws), payload, cap) < 0)
        return -1;
    return 0;
}

int main(int argc, char **argv)
{
    double seconds = 2;
    static const struct option longopts[] = {
        {"seconds", required_argument, NULL, 's'}, {"help", no_argument, NULL, 'h'}, {0}};
    int c;
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        if (c == 's') {
            if (bench_parse_double(PROG, "--seconds", optarg, 0.05, 600, &seconds) < 0)
                return 2;
        } else if (c == 'h') {
            s_usage(stdout);
            return 0;
        } else {
            s_usage(stderr);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, PROG ": unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    if (sodium_init() < 0 || !lc_secp_context()) {
        fprintf(stderr, PROG ": libsodium or libsecp256k1 failed to initialise\n");
        return 1;
    }
    lc_log_init("bench", LC_LOG_WARN);

    int exit_code = 1;
    char dir[] = "/tmp/lcore-bench-XXXXXX", ring_path[64] = "";
    int have_dir = 0;
    lc_keyring_t *ring = NULL;
    lc_sealer_t *sealer = NULL;
    bench_device_t ed, k1;
    memset(&ed, 0, sizeof ed);
    memset(&k1, 0, sizeof k1);
    char *ed_jws = NULL, *k1_jws = NULL;
    uint8_t ed_payload[BENCH_PAYLOAD_MAX], k1_payload[BENCH_PAYLOAD_MAX];
    lc_jws_t ed_j, k1_j;
    static uint8_t plain256[256], ct256[256 + LC_SEAL_OVERHEAD];
    static uint8_t ct_jws[BENCH_JWS_MAX + LC_SEAL_OVERHEAD];
    seal_case_t seal = {0}, seal_jws = {0};

    if (s_make_jws(&ed, LC_ALG_EDDSA, "bench-ed25519", &ed_jws, &ed_j, ed_payload,
                   sizeof ed_payload) < 0 ||
        s_make_jws(&k1, LC_ALG_ES256K, "bench-es256k", &k1_jws, &k1_j, k1_payload,
                   sizeof k1_payload) < 0) {
        fprintf(stderr, PROG ": could not make the signed readings\n");
        goto out;
    }
    if (!mkdtemp(dir)) {
        perror(PROG ": mkdtemp");
        goto out;
    }
    have_dir = 1;
    snprintf(ring_path, sizeof ring_path, "%s/keyring", dir);
    int err = 0;
    if (lc_keyring_create(ring_path, LC_KEYRING_SEAL) < 0 ||
        !(ring = lc_keyring_load(ring_path, LC_KEYRING_SEAL, &err)) ||
        !(sealer = lc_sealer_new(ring, LC_AES_AUTO))) {
        fprintf(stderr, PROG ": could not create and load a key ring in %s\n", dir);
        goto out;
    }

    jws_case_t ed_case = {ed_jws, strlen(ed_jws), LC_ALG_EDDSA, ed.pk, ed.pk_len};
    jws_case_t k1_case = {k1_jws, strlen(k1_jws), LC_ALG_ES256K, k1.pk, k1.pk_len};
    ed_raw_t ed_raw = {
        .msg = (const uint8_t *)ed_j.signing_input, .msg_len = ed_j.signing_input_len, .pk = ed.pk};
    memcpy(ed_raw.sig, ed_j.signature, sizeof ed_raw.sig);
    secp_raw_t k1_raw;
    crypto_hash_sha256(k1_raw.hash, (const uint8_t *)k1_j.signing_input, k1_j.signing_input_len);
    if (!secp256k1_ecdsa_signature_parse_compact(lc_secp_context(), &k1_raw.sig, k1_j.signature) ||
        !secp256k1_ec_pubkey_parse(lc_secp_context(), &k1_raw.pk, k1.pk, k1.pk_len)) {
        fprintf(stderr, PROG ": could not parse the secp256k1 signature or key\n");
        goto out;
    }
    seal.sealer = sealer;
    seal.device_id = "bench-ed25519";
    lc_record_id(seal.record_id, seal.device_id, strlen(seal.device_id), 1);
    randombytes_buf(plain256, sizeof plain256);
    seal.plaintext = plain256;
    seal.plaintext_len = sizeof plain256;
    seal.ciphertext = ct256;
    /* The same work as a worker's: the signed reading (JWS) of the pipeline's readings. */
    seal_jws = seal;
    seal_jws.plaintext = (const uint8_t *)ed_jws;
    seal_jws.plaintext_len = strlen(ed_jws);
    seal_jws.ciphertext = ct_jws;
    if (seal_jws.plaintext_len > BENCH_JWS_MAX) {
        fprintf(stderr, PROG ": the signed reading is larger than %d bytes\n", BENCH_JWS_MAX);
        goto out;
    }

    struct {
        const char *name;
        op_fn op;
        void *arg;
        double rate;
    } runs[] = {
        {"ed25519_jws_verify_per_s", s_jws_verify, &ed_case, 0},
        {"es256k_jws_verify_per_s", s_jws_verify, &k1_case, 0},
        {"dual_seal_256_per_s", s_seal, &seal, 0},
        {"dual_seal_jws_per_s", s_seal, &seal_jws, 0},
        {"ed25519_raw_verify_per_s", s_ed25519_raw, &ed_raw, 0},
        {"secp256k1_raw_verify_per_s", s_secp256k1_raw, &k1_raw, 0},
    };
    for (size_t i = 0; i < LC_ARRAY_LEN(runs); i++) {
        runs[i].rate = s_rate(runs[i].op, runs[i].arg, seconds);
        if (runs[i].rate < 0) {
            fprintf(stderr, PROG ": %s: an operation failed\n", runs[i].name);
            goto out;
        }
        fprintf(stderr, PROG ": %s=%.0f\n", runs[i].name, runs[i].rate);
    }
    printf("{");
    for (size_t i = 0; i < LC_ARRAY_LEN(runs); i++) {
        printf("\"%s\":%.0f,", runs[i].name, runs[i].rate);
        if (i == 2)
            printf("\"aes_impl\":\"%s\",", lc_sealer_aes_impl(sealer));
    }
    printf("\"ed25519_jws_bytes\":%zu,\"es256k_jws_bytes\":%zu,\"payload_bytes\":%zu,"
           "\"seconds_each\":%g}\n",
           strlen(ed_jws), strlen(k1_jws), ed_j.payload_len, seconds);
    fflush(stdout);
    exit_code = 0;
out:
    sodium_memzero(plain256, sizeof plain256);
    sodium_memzero(ct256, sizeof ct256);
    sodium_memzero(ct_jws, sizeof ct_jws);
    lc_sealer_destroy(&sealer);
    lc_keyring_destroy(&ring);
    if (ring_path[0])
        unlink(ring_path);
    if (have_dir)
        rmdir(dir);
    free(ed_jws);
    free(k1_jws);
    bench_device_wipe(&ed);
    bench_device_wipe(&k1);
    return exit_code;
}
