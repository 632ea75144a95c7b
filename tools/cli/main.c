/* lcore-cli: operator tool. Key rings (keygen, rotate, keyring-split), operator token hashes
 * (token-hash), device keys (device-keygen, sign), reading a stored record back from a store
 * (decrypt, cli_decrypt.c), checking a receipt on chain (verify, cli_verify.c) and the anchor
 * contract's relayer (set-relayer, cli_relayer.c) and the operator verbs (device, token, audit:
 * the gateway's operator API, cli_admin.c). It reads no database: it talks to the services'
 * interfaces and the chain. Configuration by LCORE_* variables (--help). */
#include <getopt.h>
#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <fcntl.h>
#include <unistd.h>

#include "cli_admin.h"
#include "cli_curve.h"
#include "cli_decrypt.h"
#include "cli_letters.h"
#include "cli_relayer.h"
#include "cli_verify.h"
#include "lc_codec.h"
#include "lc_ethtx.h"
#include "lc_merkle.h"
#include "lc_jws.h"
#include "lc_keyring.h"
#include "lc_log.h"
#include "lc_record.h"
#include "lc_seal.h"
#include "lc_token.h"

static const char *s_env(const char *name, const char *def)
{
    const char *v = getenv(name);
    return v && *v ? v : def;
}

/* Parses a RECORD_ID argument (64 hex digits); says what is wrong on stderr. */
static void s_usage(FILE *out)
{
    fputs("Usage: lcore-cli COMMAND [options]\n"
          "  keygen [--kind seal|gateway]\n"
          "                              create a key ring with version 1: seal (default; the\n"
          "                              workers' sealing keys, LCORE_KEYRING) or gateway (the\n"
          "                              gateway's log keys, LCORE_GATEWAY_KEYRING)\n"
          "  rotate [--kind seal|gateway]\n"
          "                              add a new key version to that ring; new records (log\n"
          "                              entries) use it once the service restarts\n"
          "  keyring-split COMBINED SEAL_RING GATEWAY_RING\n"
          "                              split an old combined ring (aes, xchacha and gateway\n"
          "                              keys) into the two rings (new files, 0600, atomic)\n"
          "  token-hash                  read an operator token (>= 32 characters) on stdin,\n"
          "                              print its hex SHA-256 for LCORE_ADMIN_TOKEN_SHA256_FILE\n"
          "  device-keygen [--alg EdDSA|ES256K] --out FILE\n"
          "                              make a device key pair (FILE is 0600 JSON); prints\n"
          "                              the registration body for POST /v1/devices\n"
          "  sign --key FILE [--kid ID]  read a reading (JSON) on stdin, print its JWS\n"
          "  decrypt RECORD_ID           ask a store for the sealed record (its query link,\n"
          "                              as the operator: LCORE_CLI_CURVE_CERT), open both\n"
          "                              layers with the key ring here, print the reading\n"
          "  dead-letters list [--all]   readings given up on, oldest first: the unresolved\n"
          "                              ones (or all); the store keeps each one sealed\n"
          "  dead-letters replay [RECORD_ID...]\n"
          "                              once the cause is fixed, put those (default: every\n"
          "                              unresolved one) back through the pipeline\n"
          "  curve-keygen --role ROLE --name NAME --out DIR [--trust-dir DIR]\n"
          "                              a service instance's CURVE key pair: DIR/NAME.cert\n"
          "                              (public) and DIR/NAME.cert_secret (0600); with\n"
          "                              --trust-dir, also installs the public one as\n"
          "                              TRUST/ROLE/NAME.cert (ROLE: "
          "gateway|crypto|store|chain|operator)\n"
          "  verify --receipt FILE|- [--rpc URL] [--contract ADDR]\n"
          "                              check a record's receipt (GET /v1/records/{id}/receipt,\n"
          "                              or GET /v1/records/{id}) with only the chain: its leaf,\n"
          "                              its Merkle proof, the chain id, the anchor contract's\n"
          "                              verify(root, proof, leaf) and its transaction's\n"
          "                              Anchored event; no database (docs/RECEIPTS.md)\n"
          "  set-relayer ADDRESS         make ADDRESS the anchor contract's relayer: a\n"
          "                              setRelayer transaction signed with the owner's key\n",
          out);
    cli_admin_help(out);
    fputs("Environment: LCORE_KEYRING (seal ring, default lcore.keyring),\n"
          "             LCORE_GATEWAY_KEYRING (gateway ring, default lcore-gateway.keyring),\n"
          "             LCORE_STORE_QUERIES_CONNECT (decrypt, dead-letters: the stores'\n"
          "             query endpoints, default tcp://127.0.0.1:5554), LCORE_CLI_CURVE_CERT\n"
          "             (decrypt, dead-letters: the operator's secret CURVE certificate),\n"
          "             LCORE_CURVE_TRUST_DIR,\n"
          "             LCORE_CHAIN_RPC, LCORE_CONTRACT_ADDRESS (verify, set-relayer),\n"
          "             LCORE_CHAIN_OWNER_KEY_FILE, LCORE_CHAIN_ID (set-relayer),\n"
          "             LCORE_CA_FILE (verify, operator verbs: PEM CA certificates for an\n"
          "             https URL; default the system's, verification is never off),\n"
          "             LCORE_GATEWAY_ADMIN_URL (operator verbs, default\n"
          "             http://127.0.0.1:9101), LCORE_ADMIN_TOKEN_FILE or LCORE_ADMIN_TOKEN\n"
          "             (operator verbs: the operator token; never on the command line)\n",
          out);
}

/* Parses [--kind seal|gateway] and names the ring file of that kind. */
static int s_ring_kind(int argc, char **argv, const char *cmd, lc_keyring_kind_t *kind,
                       const char **path)
{
    static const struct option opts[] = {{"kind", required_argument, 0, 'k'}, {0, 0, 0, 0}};
    const char *name = "seal";
    for (int c; (c = getopt_long(argc, argv, "k:", opts, NULL)) != -1;) {
        if (c != 'k')
            return -1;
        name = optarg;
    }
    if (optind != argc || (strcmp(name, "seal") != 0 && strcmp(name, "gateway") != 0)) {
        fprintf(stderr, "lcore-cli %s: usage: %s [--kind seal|gateway]\n", cmd, cmd);
        return -1;
    }
    *kind = strcmp(name, "gateway") == 0 ? LC_KEYRING_GATEWAY : LC_KEYRING_SEAL;
    *path = *kind == LC_KEYRING_GATEWAY ? s_env("LCORE_GATEWAY_KEYRING", "lcore-gateway.keyring")
                                        : s_env("LCORE_KEYRING", "lcore.keyring");
    return 0;
}

static int s_keygen(int argc, char **argv)
{
    lc_keyring_kind_t kind;
    const char *path;
    if (s_ring_kind(argc, argv, "keygen", &kind, &path) < 0)
        return 2;
    int rc = lc_keyring_create(path, kind);
    if (rc < 0) {
        fprintf(stderr, "lcore-cli keygen: %s: %s\n", path,
                rc == LC_ERR_CONFLICT ? "exists already (use rotate)" : lc_strerror(rc));
        return 1;
    }
    printf("%s key ring created: %s (version 1)\n", lc_keyring_kind_name(kind), path);
    return 0;
}

static int s_rotate(int argc, char **argv)
{
    lc_keyring_kind_t kind;
    const char *path;
    if (s_ring_kind(argc, argv, "rotate", &kind, &path) < 0)
        return 2;
    uint32_t v = 0;
    int rc = lc_keyring_rotate(path, kind, &v);
    if (rc < 0) {
        fprintf(stderr, "lcore-cli rotate: %s: %s\n", path, lc_strerror(rc));
        return 1;
    }
    printf("%s key ring %s: version %u added (restart the %s to use it)\n",
           lc_keyring_kind_name(kind), path, v,
           kind == LC_KEYRING_GATEWAY ? "gateways" : "crypto workers");
    return 0;
}

static int s_keyring_split(int argc, char **argv)
{
    if (argc != 5) {
        fprintf(stderr, "lcore-cli keyring-split: usage: keyring-split COMBINED SEAL_RING "
                        "GATEWAY_RING\n");
        return 2;
    }
    int rc = lc_keyring_split(argv[2], argv[3], argv[4]);
    if (rc < 0) {
        fprintf(stderr, "lcore-cli keyring-split: %s\n",
                rc == LC_ERR_CONFLICT ? "an output file exists already (nothing written)"
                                      : lc_strerror(rc));
        return 1;
    }
    printf("seal ring %s (LCORE_KEYRING: crypto workers, decrypt), gateway ring %s "
           "(LCORE_GATEWAY_KEYRING); delete %s once both run on them\n",
           argv[3], argv[4], argv[2]);
    return 0;
}

/* Reads the token's first line on stdin and prints its hex SHA-256: the gateway's
 * LCORE_ADMIN_TOKEN_SHA256_FILE, so the gateway never holds the token. */
static int s_token_hash(void)
{
    char line[512];
    uint8_t hash[LC_TOKEN_HASH_LEN];
    char hex[LC_TOKEN_HASH_HEX_LEN + 1];
    int ret = 1;
    if (!fgets(line, sizeof line, stdin)) {
        fprintf(stderr, "lcore-cli token-hash: no token on stdin\n");
        goto out;
    }
    line[strcspn(line, "\r\n")] = '\0';
    if (lc_token_hash(hash, line, strlen(line)) != 0) {
        fprintf(stderr,
                "lcore-cli token-hash: a token needs at least %d characters (128 bits), "
                "no spaces: make one with `openssl rand -hex 32`\n",
                LC_TOKEN_MIN_LEN);
        goto out;
    }
    sodium_bin2hex(hex, sizeof hex, hash, sizeof hash);
    printf("%s\n", hex);
    ret = 0;
out:
    sodium_memzero(line, sizeof line);
    return ret;
}

static int s_device_keygen(int argc, char **argv)
{
    const char *alg_name = "EdDSA", *out = NULL, *device_id = NULL;
    static const struct option opts[] = {{"alg", required_argument, 0, 'a'},
                                         {"out", required_argument, 0, 'o'},
                                         {"device-id", required_argument, 0, 'd'},
                                         {0, 0, 0, 0}};
    for (int c; (c = getopt_long(argc, argv, "a:o:d:", opts, NULL)) != -1;) {
        if (c == 'a')
            alg_name = optarg;
        else if (c == 'o')
            out = optarg;
        else if (c == 'd')
            device_id = optarg;
        else
            return 2;
    }
    lc_alg_t alg = lc_alg_from_name(alg_name);
    if (alg == LC_ALG_NONE || !out) {
        fprintf(stderr, "lcore-cli device-keygen: --alg EdDSA|ES256K and --out FILE needed\n");
        return 2;
    }
    uint8_t sk[64], pk[65];
    size_t sk_len = 0, pk_len = 0;
    char sk_hex[129], pk_hex[131];
    int ret = 1;
    if (lc_keypair_generate(alg, sk, &sk_len, pk, &pk_len) < 0)
        goto out;
    lc_hex_encode(sk_hex, sizeof sk_hex, sk, sk_len);
    lc_hex_encode(pk_hex, sizeof pk_hex, pk, pk_len);
    int fd = open(out, O_WRONLY | O_CREAT | O_EXCL, 0600);
    if (fd < 0) {
        perror(out);
        goto out;
    }
    FILE *f = fdopen(fd, "w");
    fprintf(f, "{\"alg\":\"%s\",\"secret_key\":\"%s\",\"public_key\":\"%s\"}\n", lc_alg_name(alg),
            sk_hex, pk_hex);
    if (fclose(f) != 0) {
        perror(out);
        goto out;
    }
    printf("{\"device_id\":\"%s\",\"alg\":\"%s\",\"public_key\":\"%s\"}\n",
           device_id ? device_id : "<device_id>", lc_alg_name(alg), pk_hex);
    ret = 0;
out:
    sodium_memzero(sk, sizeof sk);
    sodium_memzero(sk_hex, sizeof sk_hex);
    return ret;
}

static int s_sign(int argc, char **argv)
{
    const char *key_path = NULL, *kid = NULL;
    static const struct option opts[] = {
        {"key", required_argument, 0, 'k'}, {"kid", required_argument, 0, 'i'}, {0, 0, 0, 0}};
    for (int c; (c = getopt_long(argc, argv, "k:i:", opts, NULL)) != -1;) {
        if (c == 'k')
            key_path = optarg;
        else if (c == 'i')
            kid = optarg;
        else
            return 2;
    }
    if (!key_path) {
        fprintf(stderr, "lcore-cli sign: --key FILE needed\n");
        return 2;
    }
    json_error_t jerr;
    json_t *key = json_load_file(key_path, 0, &jerr);
    const char *sk_hex = json_string_value(json_object_get(key, "secret_key"));
    lc_alg_t alg = lc_alg_from_name(json_string_value(json_object_get(key, "alg")) ?: "");
    uint8_t sk[64];
    size_t sk_len = 0;
    int ret = 1;
    char *payload = NULL;
    size_t len = 0, cap = 0;
    if (!sk_hex || alg == LC_ALG_NONE ||
        lc_hex_decode(sk, sizeof sk, &sk_len, sk_hex, strlen(sk_hex)) < 0) {
        fprintf(stderr, "lcore-cli sign: %s is not a device key file\n", key_path);
        goto out;
    }
    for (;;) {
        if (len + 4096 > cap && !(payload = realloc(payload, cap = cap * 2 + 4096)))
            goto out;
        size_t n = fread(payload + len, 1, cap - len, stdin);
        len += n;
        if (n == 0)
            break;
    }
    while (len && (payload[len - 1] == '\n' || payload[len - 1] == '\r'))
        len--;
    json_t *reading = json_loadb(payload ? payload : "", len, 0, &jerr);
    const char *did = json_string_value(json_object_get(reading, "device_id"));
    if (!kid)
        kid = did;
    char *jws = lc_jws_sign(alg, kid, (const uint8_t *)payload, len, sk, sk_len);
    json_decref(reading);
    if (!jws) {
        fprintf(stderr, "lcore-cli sign: signing failed\n");
        goto out;
    }
    printf("%s\n", jws);
    free(jws);
    ret = 0;
out:
    sodium_memzero(sk, sizeof sk);
    free(payload);
    json_decref(key);
    return ret;
}

int main(int argc, char **argv)
{
    lc_log_init("lcore-cli", LC_LOG_WARN);
    if (sodium_init() < 0)
        return 1;
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        s_usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "keygen") == 0)
        return s_keygen(argc - 1, argv + 1);
    if (strcmp(cmd, "rotate") == 0)
        return s_rotate(argc - 1, argv + 1);
    if (strcmp(cmd, "keyring-split") == 0)
        return s_keyring_split(argc, argv);
    if (strcmp(cmd, "token-hash") == 0)
        return s_token_hash();
    if (strcmp(cmd, "set-relayer") == 0)
        return cli_set_relayer(argc > 2 ? argv[2] : NULL);
    if (strcmp(cmd, "device-keygen") == 0)
        return s_device_keygen(argc - 1, argv + 1);
    if (strcmp(cmd, "sign") == 0)
        return s_sign(argc - 1, argv + 1);
    if (strcmp(cmd, "curve-keygen") == 0)
        return cli_curve_keygen(argc - 1, argv + 1);
    if (strcmp(cmd, "verify") == 0)
        return cli_verify(argc - 1, argv + 1);
    if (strcmp(cmd, "decrypt") == 0)
        return cli_decrypt(argc > 2 ? argv[2] : NULL);
    if (strcmp(cmd, "dead-letters") == 0)
        return cli_letters(argc - 1, argv + 1);
    if (strcmp(cmd, "device") == 0 || strcmp(cmd, "token") == 0 || strcmp(cmd, "audit") == 0)
        return cli_admin(argc - 1, argv + 1);
    fprintf(stderr, "lcore-cli: unknown command '%s'\n", cmd);
    s_usage(stderr);
    return 2;
}
