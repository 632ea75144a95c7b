/* lc_seal.c: the dual encryption of a reading. See lc_seal.h for the construction.
 *
 * A sealer is single-threaded: it owns a nonce pool, a stage-2 key cache and scratch memory that
 * are used without locks, so each worker process (or thread) creates its own. The key ring is
 * borrowed and must outlive the sealer; it is immutable once loaded, so sharing it is fine.
 *
 * Secrets: the per-record device key, the expanded AES state (libsodium or BearSSL) and the
 * cached stage-2 keys live in one sodium_malloc'd region; the device key and AES state are wiped
 * after every record, the cache on destroy. lc_open's intermediate ct1 || tag1 lives in a
 * sodium_malloc'd scratch buffer that grows to the largest record seen (no allocation per record)
 * and is wiped after each use. lc_seal writes ct1 || tag1 into the caller's ciphertext buffer and
 * encrypts stage 2 over it in place, so it needs no scratch. In both calls the plaintext and
 * ciphertext buffers must not overlap.
 *
 * Nonces: 36 bytes a record (12 AES + 24 XChaCha) are taken from a 4 KiB pool refilled with
 * randombytes_buf. The pool page is MADV_WIPEONFORK, so a child forked after the pool was filled
 * sees an empty pool and refills instead of repeating its parent's nonces; without that madvise
 * (old kernels) the pool remembers the pid that filled it and checks it on every take. */
#include "lc_seal.h"

#include "lc_log.h"
#include "lc_record.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <bearssl.h>
#include <nettle/sha2.h>
#include <sodium.h>

#define S_TAG_LEN 16
#define S_AD_PREFIX "lcore/v1"
#define S_AD_PREFIX_LEN 8
#define S_AD_LEN (S_AD_PREFIX_LEN + LC_RECORD_ID_LEN + 4)
#define S_NONCES_LEN (LC_AES_NONCE_LEN + LC_XCHACHA_NONCE_LEN)
#define S_POOL_SIZE 4096
#define S_KEY_SLOTS 8
#define S_SCRATCH_MIN 4096
#define S_DEVICE_PERSONAL "lcore-dev-aes-v1"
#define S_STAGE2_CTX "lcseal02"

/* Largest plaintext both AEADs accept once stage 2 also carries the 16-byte stage-1 tag. */
#define S_MIN(a, b) ((a) < (b) ? (a) : (b))
#define S_MAX_PLAINTEXT                                                                            \
    S_MIN((uint64_t)crypto_aead_aes256gcm_MESSAGEBYTES_MAX,                                        \
          (uint64_t)crypto_aead_xchacha20poly1305_ietf_MESSAGEBYTES_MAX - S_TAG_LEN)

typedef struct {
    uint32_t version;
    uint32_t used;
    uint8_t key[crypto_aead_xchacha20poly1305_ietf_KEYBYTES];
} s_key_slot_t;

/* Every secret the sealer touches, in one guarded region. */
typedef struct {
    crypto_aead_aes256gcm_state aesni; /* CRYPTO_ALIGN(16); region size is a multiple of 64 */
    br_aes_ct64_ctr_keys br_aes;
    br_gcm_context br_gcm;
    uint8_t device_key[crypto_aead_aes256gcm_KEYBYTES];
    s_key_slot_t slots[S_KEY_SLOTS];
} s_secrets_t;

/* One page: a header and the random bytes nonces are cut from. */
typedef struct {
    uint32_t filled; /* 0: refill before use (a fresh page, or a child after fork) */
    uint32_t pos;
    pid_t pid; /* who filled it; only checked when the page is not wipe-on-fork */
    uint8_t bytes[S_POOL_SIZE - 16];
} s_pool_t;

struct lc_sealer {
    const lc_keyring_t *ring; /* borrowed */
    bool aesni;
    s_secrets_t *secrets;
    size_t secrets_size;
    uint8_t *scratch; /* sodium_malloc'd, for lc_open's ct1 || tag1 */
    size_t scratch_cap;
    s_pool_t *pool; /* mmap'd */
    size_t pool_map_len;
    bool pool_wipes_on_fork;
    unsigned next_slot;
};

/* ---- helpers -------------------------------------------------------------------------------- */

static void s_store_be32(uint8_t out[4], uint32_t v)
{
    out[0] = (uint8_t)(v >> 24);
    out[1] = (uint8_t)(v >> 16);
    out[2] = (uint8_t)(v >> 8);
    out[3] = (uint8_t)v;
}

static void s_build_ad(uint8_t ad[S_AD_LEN], const uint8_t record_id[LC_RECORD_ID_LEN],
                       uint32_t key_version)
{
    memcpy(ad, S_AD_PREFIX, S_AD_PREFIX_LEN);
    memcpy(ad + S_AD_PREFIX_LEN, record_id, LC_RECORD_ID_LEN);
    s_store_be32(ad + S_AD_PREFIX_LEN + LC_RECORD_ID_LEN, key_version);
}

static bool s_device_id_ok(const char *device_id, size_t device_id_len)
{
    return device_id && device_id_len > 0 && device_id_len <= LC_DEVICE_ID_MAX;
}

static void s_take_nonces(lc_sealer_t *self, uint8_t aes_nonce[LC_AES_NONCE_LEN],
                          uint8_t xchacha_nonce[LC_XCHACHA_NONCE_LEN])
{
    s_pool_t *pool = self->pool;
    if (!self->pool_wipes_on_fork && pool->filled && pool->pid != getpid())
        pool->filled = 0;
    if (!pool->filled || sizeof pool->bytes - pool->pos < S_NONCES_LEN) {
        randombytes_buf(pool->bytes, sizeof pool->bytes);
        pool->pos = 0;
        pool->pid = self->pool_wipes_on_fork ? 0 : getpid();
        pool->filled = 1;
    }
    memcpy(aes_nonce, pool->bytes + pool->pos, LC_AES_NONCE_LEN);
    memcpy(xchacha_nonce, pool->bytes + pool->pos + LC_AES_NONCE_LEN, LC_XCHACHA_NONCE_LEN);
    pool->pos += S_NONCES_LEN;
}

/* The stage-2 key of a version, from the cache or derived into a slot (round robin). */
static const uint8_t *s_stage2_key(lc_sealer_t *self, const lc_keyring_entry_t *entry)
{
    s_key_slot_t *slots = self->secrets->slots;
    for (unsigned i = 0; i < S_KEY_SLOTS; i++) {
        if (slots[i].used && slots[i].version == entry->version)
            return slots[i].key;
    }
    s_key_slot_t *slot = &slots[self->next_slot];
    self->next_slot = (self->next_slot + 1) % S_KEY_SLOTS;
    if (crypto_kdf_derive_from_key(slot->key, sizeof slot->key, entry->version, S_STAGE2_CTX,
                                   entry->xchacha_master) != 0) {
        sodium_memzero(slot, sizeof *slot);
        return NULL;
    }
    slot->version = entry->version;
    slot->used = 1;
    return slot->key;
}

/* BLAKE2b-256(key = aes_master, msg = device_id, salt = 0, personal = "lcore-dev-aes-v1"). */
static int s_device_key(uint8_t out[crypto_aead_aes256gcm_KEYBYTES],
                        const lc_keyring_entry_t *entry, const char *device_id,
                        size_t device_id_len)
{
    static const uint8_t zero_salt[crypto_generichash_blake2b_SALTBYTES];
    return crypto_generichash_blake2b_salt_personal(
        out, crypto_aead_aes256gcm_KEYBYTES, (const uint8_t *)device_id, device_id_len,
        entry->aes_master, LC_MASTER_KEY_LEN, zero_salt, (const uint8_t *)S_DEVICE_PERSONAL);
}

static void s_wipe_aes(lc_sealer_t *self)
{
    s_secrets_t *s = self->secrets;
    if (self->aesni) {
        sodium_memzero(&s->aesni, sizeof s->aesni);
    } else {
        sodium_memzero(&s->br_aes, sizeof s->br_aes);
        sodium_memzero(&s->br_gcm, sizeof s->br_gcm);
    }
}

/* BearSSL: constant-time AES (ct64) in CTR mode and constant-time GHASH (ctmul64). */
static br_gcm_context *s_br_gcm_start(s_secrets_t *s, const uint8_t key[32],
                                      const uint8_t nonce[LC_AES_NONCE_LEN], const uint8_t *ad,
                                      size_t ad_len)
{
    br_aes_ct64_ctr_init(&s->br_aes, key, 32);
    br_gcm_init(&s->br_gcm, &s->br_aes.vtable, br_ghash_ctmul64);
    br_gcm_reset(&s->br_gcm, nonce, LC_AES_NONCE_LEN);
    br_gcm_aad_inject(&s->br_gcm, ad, ad_len);
    br_gcm_flip(&s->br_gcm);
    return &s->br_gcm;
}

/* Stage 1 (and the KAT hook): AES-256-GCM of in into out (out may equal in), tag detached. */
static void s_aes_encrypt(lc_sealer_t *self, uint8_t *out, uint8_t tag[S_TAG_LEN],
                          const uint8_t key[32], const uint8_t nonce[LC_AES_NONCE_LEN],
                          const uint8_t *ad, size_t ad_len, const uint8_t *in, size_t len)
{
    s_secrets_t *s = self->secrets;
    if (self->aesni) {
        crypto_aead_aes256gcm_beforenm(&s->aesni, key);
        crypto_aead_aes256gcm_encrypt_detached_afternm(out, tag, NULL, in, len, ad, ad_len, NULL,
                                                       nonce, &s->aesni);
    } else {
        if (len > 0 && out != in)
            memmove(out, in, len);
        br_gcm_context *gcm = s_br_gcm_start(s, key, nonce, ad, ad_len);
        br_gcm_run(gcm, 1, out, len);
        br_gcm_get_tag(gcm, tag);
    }
    s_wipe_aes(self);
}

/* Verifies and decrypts; on failure out is zeroed and LC_ERR_SIGNATURE returned. */
static int s_aes_decrypt(lc_sealer_t *self, uint8_t *out, const uint8_t key[32],
                         const uint8_t nonce[LC_AES_NONCE_LEN], const uint8_t *ad, size_t ad_len,
                         const uint8_t *in, size_t len, const uint8_t tag[S_TAG_LEN])
{
    s_secrets_t *s = self->secrets;
    bool ok;
    if (self->aesni) {
        crypto_aead_aes256gcm_beforenm(&s->aesni, key);
        ok = crypto_aead_aes256gcm_decrypt_detached_afternm(out, NULL, in, len, tag, ad, ad_len,
                                                            nonce, &s->aesni) == 0;
    } else {
        if (len > 0 && out != in)
            memmove(out, in, len);
        br_gcm_context *gcm = s_br_gcm_start(s, key, nonce, ad, ad_len);
        br_gcm_run(gcm, 0, out, len);
        ok = br_gcm_check_tag(gcm, tag) == 1;
    }
    s_wipe_aes(self);
    if (!ok) {
        if (len > 0)
            sodium_memzero(out, len);
        return LC_ERR_SIGNATURE;
    }
    return 0;
}

/* Test-only entry (declared by the unit test, not in the header): runs one AES-256-GCM operation
 * through the sealer's own stage-1 code so both implementations can be checked against published
 * vectors. encrypt: in -> out and tag out; decrypt: in -> out, tag checked. */
int lc_seal_aesgcm_kat(lc_sealer_t *self, int encrypt, uint8_t *out, uint8_t tag[16],
                       const uint8_t key[32], const uint8_t nonce[12], const uint8_t *ad,
                       size_t ad_len, const uint8_t *in, size_t len);
int lc_seal_aesgcm_kat(lc_sealer_t *self, int encrypt, uint8_t *out, uint8_t tag[16],
                       const uint8_t key[32], const uint8_t nonce[12], const uint8_t *ad,
                       size_t ad_len, const uint8_t *in, size_t len)
{
    if (!self || !tag || !key || !nonce || (len > 0 && (!in || !out)) || (ad_len > 0 && !ad))
        return LC_ERR_INVALID;
    if (encrypt) {
        s_aes_encrypt(self, out, tag, key, nonce, ad, ad_len, in, len);
        return 0;
    }
    return s_aes_decrypt(self, out, key, nonce, ad, ad_len, in, len, tag);
}

static int s_scratch_reserve(lc_sealer_t *self, size_t need)
{
    if (need <= self->scratch_cap)
        return 0;
    size_t cap = (need + S_SCRATCH_MIN - 1) / S_SCRATCH_MIN * S_SCRATCH_MIN;
    if (cap < need)
        return LC_ERR_TOOBIG;
    uint8_t *scratch = sodium_malloc(cap);
    if (!scratch)
        return LC_ERR_NOMEM;
    sodium_free(self->scratch); /* wipes */
    self->scratch = scratch;
    self->scratch_cap = cap;
    return 0;
}

/* ---- public ---------------------------------------------------------------------------------- */

lc_sealer_t *lc_sealer_new(const lc_keyring_t *ring, lc_aes_impl_t impl)
{
    lc_sealer_t *self = NULL;
    if (!ring || (impl != LC_AES_AUTO && impl != LC_AES_AESNI && impl != LC_AES_PORTABLE))
        return NULL;
    if (sodium_init() < 0) {
        lc_error("sodium_init_failed", NULL);
        return NULL;
    }
    bool have_aesni = crypto_aead_aes256gcm_is_available() != 0;
    if (impl == LC_AES_AESNI && !have_aesni) {
        lc_error("sealer_aesni_unavailable", "hint=\"use the portable implementation\"");
        return NULL;
    }
    self = calloc(1, sizeof *self);
    if (!self)
        goto fail;
    self->ring = ring;
    self->aesni = impl == LC_AES_PORTABLE ? false : have_aesni;

    /* A multiple of 64 keeps sodium_malloc's (end-aligned) region aligned for the AES state. */
    self->secrets_size = (sizeof(s_secrets_t) + 63) / 64 * 64;
    self->secrets = sodium_malloc(self->secrets_size);
    if (!self->secrets)
        goto fail;
    sodium_memzero(self->secrets, self->secrets_size);

    if (s_scratch_reserve(self, S_SCRATCH_MIN) != 0)
        goto fail;

    long page = sysconf(_SC_PAGESIZE);
    size_t page_size = page > 0 ? (size_t)page : 4096;
    self->pool_map_len = (sizeof(s_pool_t) + page_size - 1) / page_size * page_size;
    void *map =
        mmap(NULL, self->pool_map_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (map == MAP_FAILED)
        goto fail;
    self->pool = map;
#ifdef MADV_WIPEONFORK
    self->pool_wipes_on_fork = madvise(map, self->pool_map_len, MADV_WIPEONFORK) == 0;
#endif
    return self;
fail:
    lc_error("sealer_new_failed", "reason=out_of_memory");
    lc_sealer_destroy(&self);
    return NULL;
}

void lc_sealer_destroy(lc_sealer_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    lc_sealer_t *self = *self_p;
    if (self->secrets) {
        sodium_memzero(self->secrets, self->secrets_size);
        sodium_free(self->secrets);
    }
    if (self->scratch) {
        sodium_memzero(self->scratch, self->scratch_cap);
        sodium_free(self->scratch);
    }
    if (self->pool) {
        sodium_memzero(self->pool, sizeof *self->pool); /* unused nonces are future nonces */
        munmap(self->pool, self->pool_map_len);
    }
    free(self);
    *self_p = NULL;
}

const char *lc_sealer_aes_impl(const lc_sealer_t *self)
{
    if (!self)
        return "none";
    return self->aesni ? "aesni" : "bearssl-ct64";
}

int lc_seal(lc_sealer_t *self, lc_sealed_t *out, uint8_t *ciphertext, const uint8_t record_id[32],
            const char *device_id, size_t device_id_len, const uint8_t *plaintext,
            size_t plaintext_len)
{
    if (!self || !out || !ciphertext || !record_id || (plaintext_len > 0 && !plaintext) ||
        !s_device_id_ok(device_id, device_id_len))
        return LC_ERR_INVALID;
    if (plaintext_len > S_MAX_PLAINTEXT)
        return LC_ERR_TOOBIG;
    const lc_keyring_entry_t *entry = lc_keyring_current(self->ring);
    if (!entry)
        return LC_ERR_NOTFOUND;
    const uint8_t *stage2_key = s_stage2_key(self, entry);
    uint8_t *device_key = self->secrets->device_key;
    if (!stage2_key || s_device_key(device_key, entry, device_id, device_id_len) != 0) {
        sodium_memzero(device_key, crypto_aead_aes256gcm_KEYBYTES);
        return LC_ERR_INVALID; /* unreachable with valid lengths */
    }

    const size_t n = plaintext_len;
    uint8_t ad[S_AD_LEN];
    uint8_t aes_nonce[LC_AES_NONCE_LEN];
    uint8_t xchacha_nonce[LC_XCHACHA_NONCE_LEN];
    s_build_ad(ad, record_id, entry->version);
    s_take_nonces(self, aes_nonce, xchacha_nonce);

    /* ciphertext = XChaCha(ct1 || tag1) || tag2, built in place in the caller's buffer. */
    s_aes_encrypt(self, ciphertext, ciphertext + n, device_key, aes_nonce, ad, sizeof ad, plaintext,
                  n);
    sodium_memzero(device_key, crypto_aead_aes256gcm_KEYBYTES);
    crypto_aead_xchacha20poly1305_ietf_encrypt_detached(ciphertext, ciphertext + n + S_TAG_LEN,
                                                        NULL, ciphertext, n + S_TAG_LEN, ad,
                                                        sizeof ad, NULL, xchacha_nonce, stage2_key);

    out->key_version = entry->version;
    memcpy(out->aes_nonce, aes_nonce, sizeof aes_nonce);
    memcpy(out->xchacha_nonce, xchacha_nonce, sizeof xchacha_nonce);
    out->ciphertext_len = n + LC_SEAL_OVERHEAD;
    lc_envelope_hash(out->envelope_hash, entry->version, aes_nonce, xchacha_nonce, ciphertext,
                     out->ciphertext_len);
    return 0;
}

int lc_open(lc_sealer_t *self, uint8_t *plaintext, const uint8_t record_id[32],
            const char *device_id, size_t device_id_len, uint32_t key_version,
            const uint8_t aes_nonce[LC_AES_NONCE_LEN],
            const uint8_t xchacha_nonce[LC_XCHACHA_NONCE_LEN], const uint8_t *ciphertext,
            size_t ciphertext_len)
{
    if (!self || !record_id || !aes_nonce || !xchacha_nonce || !ciphertext ||
        !s_device_id_ok(device_id, device_id_len))
        return LC_ERR_INVALID;
    /* Too short to carry two tags, or longer than anything lc_seal produces: cannot verify. */
    if (ciphertext_len < LC_SEAL_OVERHEAD || ciphertext_len - LC_SEAL_OVERHEAD > S_MAX_PLAINTEXT)
        return LC_ERR_SIGNATURE;
    const size_t n = ciphertext_len - LC_SEAL_OVERHEAD;
    if (n > 0 && !plaintext)
        return LC_ERR_INVALID;

    int rc;
    uint8_t *device_key = self->secrets->device_key;
    uint8_t ad[S_AD_LEN];
    const lc_keyring_entry_t *entry = lc_keyring_get(self->ring, key_version);
    if (!entry) {
        rc = LC_ERR_NOTFOUND;
        goto out;
    }
    rc = s_scratch_reserve(self, n + S_TAG_LEN);
    if (rc != 0)
        goto out;
    const uint8_t *stage2_key = s_stage2_key(self, entry);
    if (!stage2_key) {
        rc = LC_ERR_SIGNATURE;
        goto out;
    }
    s_build_ad(ad, record_id, key_version);

    /* Stage 2 first: ct2 -> ct1 || tag1 in scratch. */
    if (crypto_aead_xchacha20poly1305_ietf_decrypt_detached(
            self->scratch, NULL, ciphertext, n + S_TAG_LEN, ciphertext + n + S_TAG_LEN, ad,
            sizeof ad, xchacha_nonce, stage2_key) != 0) {
        rc = LC_ERR_SIGNATURE;
        goto out;
    }
    if (s_device_key(device_key, entry, device_id, device_id_len) != 0) {
        rc = LC_ERR_SIGNATURE;
        goto out;
    }
    rc = s_aes_decrypt(self, plaintext, device_key, aes_nonce, ad, sizeof ad, self->scratch, n,
                       self->scratch + n);
out:
    sodium_memzero(device_key, crypto_aead_aes256gcm_KEYBYTES);
    if (self->scratch)
        sodium_memzero(self->scratch,
                       n + S_TAG_LEN <= self->scratch_cap ? n + S_TAG_LEN : self->scratch_cap);
    if (rc != 0 && n > 0)
        sodium_memzero(plaintext, n);
    return rc;
}

void lc_envelope_hash(uint8_t out[LC_ENVELOPE_HASH_LEN], uint32_t key_version,
                      const uint8_t aes_nonce[LC_AES_NONCE_LEN],
                      const uint8_t xchacha_nonce[LC_XCHACHA_NONCE_LEN], const uint8_t *ciphertext,
                      size_t ciphertext_len)
{
    uint8_t head[1 + 4 + LC_AES_NONCE_LEN + LC_XCHACHA_NONCE_LEN];
    struct sha256_ctx st;
    head[0] = 0x01;
    s_store_be32(head + 1, key_version);
    memcpy(head + 5, aes_nonce, LC_AES_NONCE_LEN);
    memcpy(head + 5 + LC_AES_NONCE_LEN, xchacha_nonce, LC_XCHACHA_NONCE_LEN);
    sha256_init(&st);
    sha256_update(&st, sizeof head, head);
    if (ciphertext_len > 0)
        sha256_update(&st, ciphertext_len, ciphertext);
    sha256_digest(&st, LC_ENVELOPE_HASH_LEN, out);
}
