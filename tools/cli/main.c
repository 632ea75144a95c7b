/* lcore-cli: operator tool. Key rings (keygen, rotate, keyring-split), operator token hashes
 * (token-hash), device keys (device-keygen, sign), reading a stored record back (decrypt,
 * verify) and the anchor contract's relayer (set-relayer, cli_relayer.c). Configuration by
 * LCORE_KEYRING (seal ring), LCORE_GATEWAY_KEYRING, LCORE_PG_DSN and the chain's variables. */
#include <getopt.h>
#include <jansson.h>
#include <libpq-fe.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <fcntl.h>
#include <unistd.h>

#include "lc_abi.h"
#include "cli_curve.h"
#include "cli_relayer.h"
#include "lc_ethrpc.h"
#include "lc_codec.h"
#include "lc_ethtx.h"
#include "lc_merkle.h"
#include "lc_pg.h"
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
static int s_record_id(uint8_t rid[LC_RECORD_ID_LEN], const char *cmd, const char *hex)
{
    size_t n = 0;
    if (!hex || lc_hex_decode(rid, LC_RECORD_ID_LEN, &n, hex, strlen(hex)) < 0 ||
        n != LC_RECORD_ID_LEN) {
        fprintf(stderr, "lcore-cli %s: RECORD_ID must be 64 hex digits\n", cmd);
        return -1;
    }
    return 0;
}

/* Recomputes a record's leaf from the stored row, checks its Merkle proof against the batch
 * root, and asks the anchor contract on chain (verify(root, proof, leaf): true only for a root
 * the contract holds). */
static int s_verify(const char *record_hex)
{
    uint8_t rid[LC_RECORD_ID_LEN];
    if (s_record_id(rid, "verify", record_hex) < 0)
        return 2;
    const char *contract_text = s_env("LCORE_CONTRACT_ADDRESS", "");
    uint8_t contract[20];
    if (lc_eth_address_parse(contract, contract_text, strlen(contract_text)) != 0) {
        fprintf(stderr, "lcore-cli verify: LCORE_CONTRACT_ADDRESS is not an address\n");
        return 2;
    }
    int ret = 1;
    PGconn *db = lc_pg_connect(s_env("LCORE_PG_DSN", "postgresql://lcore@127.0.0.1:5432/lcore"),
                               "lcore-cli");
    PGresult *r = NULL, *lr = NULL;
    lc_merkle_t *tree = NULL;
    uint8_t *leaves = NULL, *call = NULL, *out = NULL;
    lc_rpc_t *rpc = NULL;
    if (!db) {
        fprintf(stderr, "lcore-cli verify: cannot connect to PostgreSQL (LCORE_PG_DSN)\n");
        goto out;
    }
    const char *v[1] = {(const char *)rid};
    int l[1] = {sizeof rid}, f[1] = {1};
    r = PQexecParams(db,
                     "SELECT r.key_version, r.aes_nonce, r.xchacha_nonce, r.ciphertext,"
                     " r.envelope_hash, b.id, b.root, lf.leaf_index, lf.leaf, t.block_number,"
                     " t.mined_hash FROM records r"
                     " LEFT JOIN chain_batch_leaves lf ON lf.record_pk = r.id AND lf.batch_id IN"
                     " (SELECT id FROM chain_batches WHERE status IN ('anchored', 'confirmed',"
                     " 'finalized'))"
                     " LEFT JOIN chain_batches b ON b.id = lf.batch_id"
                     " LEFT JOIN chain_txs t ON t.batch_id = b.id AND t.block_number IS NOT NULL"
                     " AND t.state <> 'fatal_error' WHERE r.record_id = $1",
                     1, NULL, v, l, f, 1);
    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) < 1) {
        printf("NOT VERIFIED: no such record\n");
        goto out;
    }
    if (PQgetisnull(r, 0, 5)) {
        printf("NOT VERIFIED: record %s is stored but not anchored yet\n", record_hex);
        goto out;
    }
    uint32_t kv = (uint32_t)lc_pg_uint(r, 0, 0), index = (uint32_t)lc_pg_uint(r, 0, 7);
    uint64_t batch_id = lc_pg_uint(r, 0, 5), block = lc_pg_uint(r, 0, 9);
    if (PQgetlength(r, 0, 1) != LC_AES_NONCE_LEN || PQgetlength(r, 0, 2) != LC_XCHACHA_NONCE_LEN ||
        PQgetlength(r, 0, 6) != 32 || PQgetlength(r, 0, 8) != 32) {
        printf("NOT VERIFIED: malformed row\n");
        goto out;
    }
    /* The leaf from what is stored now, not from what was stored when it was anchored. */
    uint8_t eh[32], leaf[32], root[32];
    lc_envelope_hash(eh, kv, (const uint8_t *)PQgetvalue(r, 0, 1),
                     (const uint8_t *)PQgetvalue(r, 0, 2), (const uint8_t *)PQgetvalue(r, 0, 3),
                     (size_t)PQgetlength(r, 0, 3));
    lc_merkle_leaf(leaf, rid, eh);
    memcpy(root, PQgetvalue(r, 0, 6), 32);
    if (memcmp(leaf, PQgetvalue(r, 0, 8), 32) != 0) {
        printf("NOT VERIFIED: the stored record no longer matches its anchored leaf "
               "(row altered)\n");
        goto out;
    }
    char bid[24];
    snprintf(bid, sizeof bid, "%llu", (unsigned long long)batch_id);
    const char *v2[1] = {bid};
    lr = PQexecParams(db,
                      "SELECT leaf FROM chain_batch_leaves WHERE batch_id = $1 ORDER BY leaf_index",
                      1, NULL, v2, NULL, NULL, 1);
    int nl = PQresultStatus(lr) == PGRES_TUPLES_OK ? PQntuples(lr) : 0;
    if (nl <= (int)index || !(leaves = malloc((size_t)nl * 32)))
        goto out;
    for (int i = 0; i < nl; i++)
        memcpy(leaves + 32 * i, PQgetvalue(lr, i, 0), 32);
    int err = 0;
    uint8_t proof[LC_MERKLE_MAX_PROOF * 32], tree_root[32];
    size_t plen = 0;
    if (!(tree = lc_merkle_new(leaves, (size_t)nl, &err)) ||
        lc_merkle_proof(tree, proof, LC_MERKLE_MAX_PROOF, &plen, index) != 0)
        goto out;
    lc_merkle_root(tree, tree_root);
    if (memcmp(tree_root, root, 32) != 0 || lc_merkle_verify(root, leaf, proof, plen) != 0) {
        printf("NOT VERIFIED: the proof does not lead to the batch root\n");
        goto out;
    }
    size_t call_len = 0, out_len = 0;
    lc_jsonrpc_error_t rerr;
    lc_log_init("lcore-cli", LC_LOG_ERROR);
    const char *ca_file = s_env("LCORE_CA_FILE", "");
    if (!(rpc = lc_rpc_new(s_env("LCORE_CHAIN_RPC", "http://127.0.0.1:8545"), 10000, NULL)) ||
        (*ca_file && lc_rpc_set_ca_file(rpc, ca_file) < 0) ||
        !(call = lc_abi_verify(root, proof, plen, leaf, &call_len)))
        goto out;
    if (lc_ethrpc_call(rpc, contract, call, call_len, &out, &out_len, &rerr) != 0) {
        printf("NOT VERIFIED: the chain did not answer: %s\n", rerr.message);
        goto out;
    }
    bool on_chain = false;
    if (lc_abi_bool_decode(&on_chain, out, out_len) != 0 || !on_chain) {
        printf("NOT VERIFIED: the anchor contract does not confirm this leaf under the root of "
               "batch %llu\n",
               (unsigned long long)batch_id);
        goto out;
    }
    char root_hex[65];
    lc_hex_encode(root_hex, sizeof root_hex, root, 32);
    printf("VERIFIED record=%s batch=%llu root=0x%s block=%llu proof_length=%zu\n", record_hex,
           (unsigned long long)batch_id, root_hex, (unsigned long long)block, plen);
    ret = 0;
out:
    free(out);
    free(call);
    lc_rpc_destroy(&rpc);
    lc_merkle_destroy(&tree);
    free(leaves);
    PQclear(lr);
    PQclear(r);
    PQfinish(db);
    return ret;
}

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
          "  decrypt RECORD_ID           read the record from PostgreSQL (LCORE_PG_DSN), open\n"
          "                              both layers with the key ring, print the reading\n"
          "  curve-keygen --role ROLE --name NAME --out DIR [--trust-dir DIR]\n"
          "                              a service instance's CURVE key pair: DIR/NAME.cert\n"
          "                              (public) and DIR/NAME.cert_secret (0600); with\n"
          "                              --trust-dir, also installs the public one as\n"
          "                              TRUST/ROLE/NAME.cert (ROLE: gateway|crypto|store|chain)\n"
          "  verify RECORD_ID            recompute the record's leaf from its row, check the\n"
          "                              Merkle proof and ask the anchor contract on chain\n"
          "  set-relayer ADDRESS         make ADDRESS the anchor contract's relayer: a\n"
          "                              setRelayer transaction signed with the owner's key\n"
          "Environment: LCORE_KEYRING (seal ring, default lcore.keyring),\n"
          "             LCORE_GATEWAY_KEYRING (gateway ring, default lcore-gateway.keyring),\n"
          "             LCORE_PG_DSN (default postgresql://lcore@127.0.0.1:5432/lcore),\n"
          "             LCORE_CHAIN_RPC, LCORE_CONTRACT_ADDRESS (verify, set-relayer),\n"
          "             LCORE_CHAIN_OWNER_KEY_FILE, LCORE_CHAIN_ID (set-relayer),\n"
          "             LCORE_CA_FILE (verify: PEM CA certificates for an https RPC URL;\n"
          "             default the system's, verification is never off)\n",
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

static int s_decrypt(const char *record_hex)
{
    uint8_t rid[LC_RECORD_ID_LEN];
    if (s_record_id(rid, "decrypt", record_hex) < 0)
        return 2;
    int err = 0, ret = 1;
    lc_keyring_t *ring =
        lc_keyring_load(s_env("LCORE_KEYRING", "lcore.keyring"), LC_KEYRING_SEAL, &err);
    lc_sealer_t *sealer = ring ? lc_sealer_new(ring, LC_AES_AUTO) : NULL;
    PGconn *db = lc_pg_connect(s_env("LCORE_PG_DSN", "postgresql://lcore@127.0.0.1:5432/lcore"),
                               "lcore-cli");
    PGresult *r = NULL;
    uint8_t *plain = NULL;
    if (!sealer) {
        fprintf(stderr, "lcore-cli decrypt: cannot load the key ring: %s\n", lc_strerror(err));
        goto out;
    }
    if (!db) {
        fprintf(stderr, "lcore-cli decrypt: cannot connect to PostgreSQL (LCORE_PG_DSN)\n");
        goto out;
    }
    const char *v[1] = {(const char *)rid};
    int l[1] = {sizeof rid}, f[1] = {1};
    r = PQexecParams(db,
                     "SELECT r.device_id, r.seq, r.key_version, r.aes_nonce, r.xchacha_nonce,"
                     " r.ciphertext, r.envelope_hash, d.alg, d.public_key, r.stored_at::text"
                     " FROM records r JOIN devices d USING (device_id) WHERE r.record_id = $1",
                     1, NULL, v, l, f, 1);
    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1) {
        fprintf(stderr, "lcore-cli decrypt: %s\n",
                PQresultStatus(r) == PGRES_TUPLES_OK ? "no such record" : PQresultErrorMessage(r));
        goto out;
    }
    const char *device_id = PQgetvalue(r, 0, 0);
    uint64_t seq = lc_pg_uint(r, 0, 1);
    uint32_t kv = (uint32_t)lc_pg_uint(r, 0, 2);
    size_t ct_len = (size_t)PQgetlength(r, 0, 5);
    if (PQgetlength(r, 0, 3) != LC_AES_NONCE_LEN || PQgetlength(r, 0, 4) != LC_XCHACHA_NONCE_LEN ||
        ct_len <= LC_SEAL_OVERHEAD || !(plain = sodium_malloc(ct_len))) {
        fprintf(stderr, "lcore-cli decrypt: malformed row\n");
        goto out;
    }
    const uint8_t *ct = (const uint8_t *)PQgetvalue(r, 0, 5);
    uint8_t eh[LC_ENVELOPE_HASH_LEN];
    lc_envelope_hash(eh, kv, (const uint8_t *)PQgetvalue(r, 0, 3),
                     (const uint8_t *)PQgetvalue(r, 0, 4), ct, ct_len);
    int hash_ok = memcmp(eh, PQgetvalue(r, 0, 6), sizeof eh) == 0;
    int rc = lc_open(sealer, plain, rid, device_id, strlen(device_id), kv,
                     (const uint8_t *)PQgetvalue(r, 0, 3), (const uint8_t *)PQgetvalue(r, 0, 4), ct,
                     ct_len);
    if (rc < 0) {
        fprintf(stderr, "lcore-cli decrypt: record %s does not open: %s\n", record_hex,
                rc == LC_ERR_NOTFOUND ? "key version not in the key ring"
                                      : "authentication failed (tampered or moved ciphertext)");
        goto out;
    }
    size_t plain_len = ct_len - LC_SEAL_OVERHEAD;
    /* The sealed plaintext is the device's JWS: check its signature again, then show it. */
    uint8_t *payload = sodium_malloc(plain_len + 1);
    lc_jws_t jws;
    int sig_ok = 0;
    if (payload &&
        lc_jws_parse(&jws, (const char *)plain, plain_len, payload, plain_len + 1) == 0) {
        lc_alg_t alg = lc_alg_from_name(PQgetvalue(r, 0, 7));
        sig_ok = lc_jws_verify(&jws, alg, (const uint8_t *)PQgetvalue(r, 0, 8),
                               (size_t)PQgetlength(r, 0, 8)) == 0;
    }
    printf("record_id=%s device_id=%s seq=%llu key_version=%u stored_at=\"%s\" "
           "envelope_hash=%s device_signature=%s\n",
           record_hex, device_id, (unsigned long long)seq, kv, PQgetvalue(r, 0, 9),
           hash_ok ? "ok" : "MISMATCH", sig_ok ? "valid" : "INVALID");
    if (payload && sig_ok)
        printf("%.*s\n", (int)jws.payload_len, (const char *)jws.payload);
    if (payload)
        sodium_free(payload);
    ret = hash_ok && sig_ok ? 0 : 1;
out:
    if (plain)
        sodium_free(plain);
    PQclear(r);
    PQfinish(db);
    lc_sealer_destroy(&sealer);
    lc_keyring_destroy(&ring);
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
        return s_verify(argc > 2 ? argv[2] : NULL);
    if (strcmp(cmd, "decrypt") == 0)
        return s_decrypt(argc > 2 ? argv[2] : NULL);
    fprintf(stderr, "lcore-cli: unknown command '%s'\n", cmd);
    s_usage(stderr);
    return 2;
}
