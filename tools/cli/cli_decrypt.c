/* cli_decrypt.c: see cli_decrypt.h. */
#include "cli_decrypt.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lc_codec.h"
#include "lc_curve.h"
#include "lc_jws.h"
#include "lc_keyring.h"
#include "lc_query.h"
#include "lc_record.h"
#include "lc_seal.h"
#include "cli_store.h"

/* Opens s with the ring, checks hash and signature against the device d, prints. */
static int s_open_print(lc_sealer_t *sealer, const Lcore__V1__SealedRecord *s,
                        const Lcore__V1__Device *d, const char *record_hex)
{
    size_t ct_len = s->ciphertext.len;
    if (s->record_id.len != LC_RECORD_ID_LEN || s->aes_nonce.len != LC_AES_NONCE_LEN ||
        s->xchacha_nonce.len != LC_XCHACHA_NONCE_LEN ||
        s->envelope_hash.len != LC_ENVELOPE_HASH_LEN || ct_len <= LC_SEAL_OVERHEAD) {
        fprintf(stderr, "lcore-cli decrypt: malformed sealed record\n");
        return 1;
    }
    uint8_t eh[LC_ENVELOPE_HASH_LEN];
    lc_envelope_hash(eh, s->key_version, s->aes_nonce.data, s->xchacha_nonce.data,
                     s->ciphertext.data, ct_len);
    int hash_ok = memcmp(eh, s->envelope_hash.data, sizeof eh) == 0;
    uint8_t *plain = sodium_malloc(ct_len), *payload = sodium_malloc(ct_len + 1);
    int rc = plain && payload ? lc_open(sealer, plain, s->record_id.data, s->device_id,
                                        strlen(s->device_id), s->key_version, s->aes_nonce.data,
                                        s->xchacha_nonce.data, s->ciphertext.data, ct_len)
                              : LC_ERR_NOMEM;
    int ret = 1;
    if (rc < 0) {
        fprintf(stderr, "lcore-cli decrypt: record %s does not open: %s\n", record_hex,
                rc == LC_ERR_NOTFOUND ? "key version not in the key ring"
                                      : "authentication failed (tampered or moved ciphertext)");
        goto out;
    }
    /* The sealed plaintext is the device's JWS: check its signature again, then show it. */
    size_t plain_len = ct_len - LC_SEAL_OVERHEAD;
    lc_jws_t jws;
    int sig_ok =
        lc_jws_parse(&jws, (const char *)plain, plain_len, payload, plain_len + 1) == 0 &&
        lc_jws_verify(&jws, lc_alg_from_name(d->alg), d->public_key.data, d->public_key.len) == 0;
    printf("record_id=%s device_id=%s seq=%llu key_version=%u received_at_us=%llu "
           "envelope_hash=%s device_signature=%s\n",
           record_hex, s->device_id, (unsigned long long)s->seq, s->key_version,
           (unsigned long long)s->received_at_us, hash_ok ? "ok" : "MISMATCH",
           sig_ok ? "valid" : "INVALID");
    if (sig_ok)
        printf("%.*s\n", (int)jws.payload_len, (const char *)jws.payload);
    ret = hash_ok && sig_ok ? 0 : 1;
out:
    if (plain)
        sodium_free(plain);
    if (payload)
        sodium_free(payload);
    return ret;
}

/* Asks for the sealed record, then for its device. */
static int s_fetch_open(cli_store_t *store, lc_sealer_t *sealer, uint8_t rid[LC_RECORD_ID_LEN],
                        const char *record_hex)
{
    Lcore__V1__Query q = LCORE__V1__QUERY__INIT;
    q.body_case = LCORE__V1__QUERY__BODY_GET_SEALED;
    q.get_sealed.data = rid;
    q.get_sealed.len = LC_RECORD_ID_LEN;
    Lcore__V1__QueryReply *sr = cli_store_ask(store, &q, "no such record"), *dr = NULL;
    int ret = 1;
    if (!sr || !sr->sealed || !sr->sealed->device_id ||
        memcmp(sr->sealed->record_id.data, rid, LC_RECORD_ID_LEN) != 0)
        goto out;
    Lcore__V1__Query dq = LCORE__V1__QUERY__INIT;
    dq.body_case = LCORE__V1__QUERY__BODY_GET_DEVICE;
    dq.get_device = sr->sealed->device_id;
    if ((dr = cli_store_ask(store, &dq, "no such device")) && dr->device && dr->device->alg)
        ret = s_open_print(sealer, sr->sealed, dr->device, record_hex);
out:
    if (sr)
        lcore__v1__query_reply__free_unpacked(sr, NULL);
    if (dr)
        lcore__v1__query_reply__free_unpacked(dr, NULL);
    return ret;
}

int cli_decrypt(const char *record_hex)
{
    uint8_t rid[LC_RECORD_ID_LEN];
    if (!record_hex || lc_record_id_parse(rid, record_hex, strlen(record_hex)) != 0) {
        fprintf(stderr, "lcore-cli decrypt: RECORD_ID must be 64 hex digits\n");
        return 2;
    }
    int err = 0, ret = 1;
    lc_keyring_t *ring =
        lc_keyring_load(cli_env("LCORE_KEYRING", "lcore.keyring"), LC_KEYRING_SEAL, &err);
    lc_sealer_t *sealer = ring ? lc_sealer_new(ring, LC_AES_AUTO) : NULL;
    cli_store_t store;
    if (!sealer)
        fprintf(stderr, "lcore-cli decrypt: cannot load the key ring: %s\n", lc_strerror(err));
    else if (cli_store_open(&store, "decrypt") == 0)
        ret = s_fetch_open(&store, sealer, rid, record_hex);
    if (sealer)
        cli_store_close(&store);
    lc_sealer_destroy(&sealer);
    lc_keyring_destroy(&ring);
    return ret;
}
