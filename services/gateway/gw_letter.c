/* gw_letter.c: dead letters sealed by the gateway. See gw_letter.h. */
#include "gw_letter.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#define S_AD_PREFIX "lcore/dead-letter/v1"
#define S_AD_LEN (sizeof S_AD_PREFIX - 1 + LC_RECORD_ID_LEN + 4)

/* The key of a ring version into guarded memory (sodium_free it), and the associated data. */
static uint8_t *s_key(const lc_keyring_t *ring, uint32_t version, const uint8_t *record_id,
                      uint8_t ad[S_AD_LEN], int *rc)
{
    const lc_keyring_entry_t *e = lc_keyring_get(ring, version);
    uint8_t *key = e ? sodium_malloc(crypto_aead_xchacha20poly1305_ietf_KEYBYTES) : NULL;
    *rc = !e ? LC_ERR_NOTFOUND : !key ? LC_ERR_NOMEM : 0;
    if (*rc == 0 && crypto_kdf_derive_from_key(key, crypto_aead_xchacha20poly1305_ietf_KEYBYTES, 1,
                                               "lcgwdlt1", e->gateway_master) != 0)
        *rc = LC_ERR_INVALID;
    if (*rc < 0) {
        sodium_free(key);
        return NULL;
    }
    memcpy(ad, S_AD_PREFIX, sizeof S_AD_PREFIX - 1);
    memcpy(ad + sizeof S_AD_PREFIX - 1, record_id, LC_RECORD_ID_LEN);
    for (int i = 0; i < 4; i++)
        ad[S_AD_LEN - 4 + i] = (uint8_t)(version >> (8 * i));
    return key;
}

int gw_letter_seal(const lc_keyring_t *ring, const uint8_t record_id[LC_RECORD_ID_LEN],
                   const uint8_t *data, size_t len, uint8_t **out, size_t *out_len,
                   uint32_t *version)
{
    const lc_keyring_entry_t *cur = lc_keyring_current(ring);
    if (!cur)
        return LC_ERR_NOTFOUND;
    uint8_t ad[S_AD_LEN];
    int rc;
    uint8_t *key = s_key(ring, cur->version, record_id, ad, &rc);
    uint8_t *buf = key ? malloc(len + GW_LETTER_OVERHEAD) : NULL;
    if (!buf) {
        sodium_free(key);
        return rc < 0 ? rc : LC_ERR_NOMEM;
    }
    randombytes_buf(buf, crypto_aead_xchacha20poly1305_ietf_NPUBBYTES);
    unsigned long long clen = 0;
    crypto_aead_xchacha20poly1305_ietf_encrypt(buf + crypto_aead_xchacha20poly1305_ietf_NPUBBYTES,
                                               &clen, data, len, ad, sizeof ad, NULL, buf, key);
    sodium_free(key);
    *out = buf;
    *out_len = crypto_aead_xchacha20poly1305_ietf_NPUBBYTES + (size_t)clen;
    *version = cur->version;
    return 0;
}

int gw_letter_reading(const lc_keyring_t *ring, const uint8_t *msg, size_t len,
                      Lcore__V1__Reading **out)
{
    *out = NULL;
    Lcore__V1__DeadLetter *dl = lcore__v1__dead_letter__unpack(NULL, len, msg);
    uint8_t *plain = NULL;
    size_t plen = 0;
    int rc = dl && dl->record_id.len == LC_RECORD_ID_LEN
                 ? gw_letter_open(ring, dl->gateway_key_version, dl->record_id.data,
                                  dl->gateway_sealed.data, dl->gateway_sealed.len, &plain, &plen)
                 : LC_ERR_INVALID;
    Lcore__V1__Reading *r = rc == 0 ? lcore__v1__reading__unpack(NULL, plen, plain) : NULL;
    if (rc == 0 && (!r || r->record_id.len != LC_RECORD_ID_LEN ||
                    memcmp(r->record_id.data, dl->record_id.data, LC_RECORD_ID_LEN) != 0))
        rc = LC_ERR_INVALID;
    if (rc == 0)
        *out = r;
    else
        gw_letter_reading_free(&r);
    if (plain)
        sodium_free(plain);
    if (dl)
        lcore__v1__dead_letter__free_unpacked(dl, NULL);
    return rc;
}

void gw_letter_reading_free(Lcore__V1__Reading **r)
{
    if (!r || !*r)
        return;
    sodium_memzero((*r)->jws.data, (*r)->jws.len);
    lcore__v1__reading__free_unpacked(*r, NULL);
    *r = NULL;
}

int gw_letter_open(const lc_keyring_t *ring, uint32_t version,
                   const uint8_t record_id[LC_RECORD_ID_LEN], const uint8_t *sealed, size_t len,
                   uint8_t **out, size_t *out_len)
{
    if (len < GW_LETTER_OVERHEAD)
        return LC_ERR_INVALID;
    uint8_t ad[S_AD_LEN];
    int rc;
    uint8_t *key = s_key(ring, version, record_id, ad, &rc);
    if (!key)
        return rc;
    size_t plen = len - GW_LETTER_OVERHEAD;
    uint8_t *buf = sodium_malloc(plen ? plen : 1);
    unsigned long long mlen = 0;
    rc = !buf ? LC_ERR_NOMEM
         : crypto_aead_xchacha20poly1305_ietf_decrypt(
               buf, &mlen, NULL, sealed + crypto_aead_xchacha20poly1305_ietf_NPUBBYTES,
               len - crypto_aead_xchacha20poly1305_ietf_NPUBBYTES, ad, sizeof ad, sealed, key) != 0
             ? LC_ERR_INVALID
             : 0;
    sodium_free(key);
    if (rc < 0) {
        sodium_free(buf);
        return rc;
    }
    *out = buf;
    *out_len = (size_t)mlen;
    return 0;
}
