/* test_seal.c: lc_seal known-answer vectors, round trips, tamper detection and nonce handling.
 *
 * Vectors:
 *   - AES-256-GCM: McGrew & Viega, "The Galois/Counter Mode of Operation", test cases 13-16
 *     (the AES-256 cases; 16 has a partial final block and 20 bytes of AAD), run through the
 *     sealer's own stage-1 code for both implementations (lc_seal_aesgcm_kat).
 *   - XChaCha20-Poly1305: draft-irtf-cfrg-xchacha-03, appendix A.3.1, through libsodium.
 *   - The whole construction: a sealed record computed independently in Python (pyca/cryptography
 *     AESGCM and ChaCha20Poly1305 with HChaCha20 written out, hashlib BLAKE2b/SHA-256) from the
 *     fixed ring below; lc_open must open it and lc_envelope_hash must reproduce its hash. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sodium.h>

#include "lc_keyring.h"
#include "lc_seal.h"

/* Test-only entry in lc_seal.c: one AES-256-GCM operation through the sealer's stage-1 code. */
extern int lc_seal_aesgcm_kat(lc_sealer_t *self, int encrypt, uint8_t *out, uint8_t tag[16],
                              const uint8_t key[32], const uint8_t nonce[12], const uint8_t *ad,
                              size_t ad_len, const uint8_t *in, size_t len);

/* ---- fixture --------------------------------------------------------------------------------- */

/* v=7 is the golden version (keys 00..1f, 20..3f, 40..5f); v=6 is an older one. Lines are out of
 * order on purpose: the ring sorts them. */
static const char s_ring_text[] =
    "# test ring\n"
    "v=7 created=1700000000"
    " aes=000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
    " xchacha=202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f\n"
    "\n"
    "v=6 created=1690000000"
    " aes=606162636465666768696a6b6c6d6e6f707172737475767778797a7b7c7d7e7f"
    " xchacha=808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f\n";

typedef struct {
    char dir[64];
    char ring_path[128];
    lc_keyring_t *ring;
    lc_sealer_t *portable;
    lc_sealer_t *aesni; /* NULL when the CPU lacks AES-NI */
} s_fixture_t;

static int s_setup(void **state)
{
    s_fixture_t *f = calloc(1, sizeof *f);
    if (!f)
        return -1;
    snprintf(f->dir, sizeof f->dir, "/tmp/lc_test_seal.XXXXXX");
    if (!mkdtemp(f->dir))
        return -1;
    snprintf(f->ring_path, sizeof f->ring_path, "%s/ring", f->dir);
    int fd = open(f->ring_path, O_WRONLY | O_CREAT | O_EXCL, 0600);
    if (fd < 0)
        return -1;
    ssize_t w = write(fd, s_ring_text, sizeof s_ring_text - 1);
    close(fd);
    if (w != (ssize_t)(sizeof s_ring_text - 1))
        return -1;
    int err = 0;
    f->ring = lc_keyring_load(f->ring_path, LC_KEYRING_SEAL, &err);
    if (!f->ring)
        return -1;
    f->portable = lc_sealer_new(f->ring, LC_AES_PORTABLE);
    if (!f->portable)
        return -1;
    if (crypto_aead_aes256gcm_is_available()) {
        f->aesni = lc_sealer_new(f->ring, LC_AES_AESNI);
        if (!f->aesni)
            return -1;
    }
    *state = f;
    return 0;
}

static int s_teardown(void **state)
{
    s_fixture_t *f = *state;
    lc_sealer_destroy(&f->portable);
    lc_sealer_destroy(&f->aesni);
    lc_keyring_destroy(&f->ring);
    unlink(f->ring_path);
    rmdir(f->dir);
    free(f);
    return 0;
}

/* The sealers under test: portable always, AES-NI when present. */
static size_t s_sealers(s_fixture_t *f, lc_sealer_t *out[2])
{
    size_t n = 0;
    out[n++] = f->portable;
    if (f->aesni)
        out[n++] = f->aesni;
    return n;
}

static size_t s_unhex(uint8_t *out, size_t cap, const char *hex)
{
    size_t len = 0;
    const char *end = NULL;
    assert_int_equal(sodium_hex2bin(out, cap, hex, strlen(hex), NULL, &len, &end), 0);
    assert_ptr_equal(end, hex + strlen(hex));
    return len;
}

static const uint8_t s_record_id[32] = {1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11,
                                        12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22,
                                        23, 24, 25, 26, 27, 28, 29, 30, 31, 32};
static const char s_device[] = "sensor-0042";
#define S_DEVICE_LEN (sizeof s_device - 1)

/* ---- known-answer tests ---------------------------------------------------------------------- */

typedef struct {
    const char *name, *key, *iv, *aad, *pt, *ct, *tag;
} s_gcm_kat_t;

#define S_K0 "0000000000000000000000000000000000000000000000000000000000000000"
#define S_KF "feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308"
#define S_P60                                                                                      \
    "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72"                             \
    "1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39"
#define S_C60                                                                                      \
    "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa"                             \
    "8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662"

static const s_gcm_kat_t s_gcm_kats[] = {
    {"tc13", S_K0, "000000000000000000000000", "", "", "", "530f8afbc74536b9a963b4f1c4cb738b"},
    {"tc14", S_K0, "000000000000000000000000", "", "00000000000000000000000000000000",
     "cea7403d4d606b6e074ec5d3baf39d18", "d0d1c8a799996bf0265b98b5d48ab919"},
    {"tc15", S_KF, "cafebabefacedbaddecaf888", "", S_P60 "1aafd255", S_C60 "898015ad",
     "b094dac5d93471bdec1a502270e3cc6c"},
    {"tc16", S_KF, "cafebabefacedbaddecaf888", "feedfacedeadbeeffeedfacedeadbeefabaddad2", S_P60,
     S_C60, "76fc6ece0f4e1768cddf8853bb2d551b"},
};

static void s_check_gcm_kats(lc_sealer_t *sealer)
{
    for (size_t i = 0; i < LC_ARRAY_LEN(s_gcm_kats); i++) {
        const s_gcm_kat_t *v = &s_gcm_kats[i];
        uint8_t key[32], iv[12], aad[64], pt[64], ct[64], tag[16], out[64], got_tag[16];
        assert_int_equal(s_unhex(key, sizeof key, v->key), 32);
        assert_int_equal(s_unhex(iv, sizeof iv, v->iv), 12);
        size_t aad_len = s_unhex(aad, sizeof aad, v->aad);
        size_t pt_len = s_unhex(pt, sizeof pt, v->pt);
        assert_int_equal(s_unhex(ct, sizeof ct, v->ct), pt_len);
        assert_int_equal(s_unhex(tag, sizeof tag, v->tag), 16);

        memset(out, 0, sizeof out);
        assert_int_equal(
            lc_seal_aesgcm_kat(sealer, 1, out, got_tag, key, iv, aad, aad_len, pt, pt_len), 0);
        assert_memory_equal(out, ct, pt_len);
        assert_memory_equal(got_tag, tag, 16);

        memset(out, 0, sizeof out);
        assert_int_equal(lc_seal_aesgcm_kat(sealer, 0, out, tag, key, iv, aad, aad_len, ct, pt_len),
                         0);
        assert_memory_equal(out, pt, pt_len);

        /* A wrong tag fails and leaves no plaintext behind. */
        tag[15] ^= 0x01;
        memset(out, 0xAA, sizeof out);
        assert_int_equal(lc_seal_aesgcm_kat(sealer, 0, out, tag, key, iv, aad, aad_len, ct, pt_len),
                         LC_ERR_SIGNATURE);
        for (size_t j = 0; j < pt_len; j++)
            assert_int_equal(out[j], 0);
    }
}

static void test_aesgcm_kat_portable(void **state)
{
    s_fixture_t *f = *state;
    assert_string_equal(lc_sealer_aes_impl(f->portable), "bearssl-ct64");
    s_check_gcm_kats(f->portable);
}

static void test_aesgcm_kat_aesni(void **state)
{
    s_fixture_t *f = *state;
    if (!f->aesni)
        skip();
    assert_string_equal(lc_sealer_aes_impl(f->aesni), "aesni");
    s_check_gcm_kats(f->aesni);
}

static void test_xchacha_kat(void **state)
{
    (void)state;
    static const char pt[] = "Ladies and Gentlemen of the class of '99: If I could offer you only "
                             "one tip for the future, sunscreen would be it.";
    uint8_t key[32], nonce[24], ad[12], expect[sizeof pt - 1 + 16], got[sizeof pt - 1 + 16];
    uint8_t back[sizeof pt - 1];
    unsigned long long got_len = 0, back_len = 0;
    s_unhex(key, sizeof key, "808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f");
    s_unhex(nonce, sizeof nonce, "404142434445464748494a4b4c4d4e4f5051525354555657");
    s_unhex(ad, sizeof ad, "50515253c0c1c2c3c4c5c6c7");
    assert_int_equal(s_unhex(expect, sizeof expect,
                             "bd6d179d3e83d43b9576579493c0e939572a1700252bfaccbed2902c21396cbb"
                             "731c7f1b0b4aa6440bf3a82f4eda7e39ae64c6708c54c216cb96b72e1213b452"
                             "2f8c9ba40db5d945b11b69b982c1bb9e3f3fac2bc369488f76b2383565d3fff9"
                             "21f9664c97637da9768812f615c68b13b52e"
                             "c0875924c1c7987947deafd8780acf49"),
                     sizeof expect);
    assert_int_equal(crypto_aead_xchacha20poly1305_ietf_encrypt(got, &got_len, (const uint8_t *)pt,
                                                                sizeof pt - 1, ad, sizeof ad, NULL,
                                                                nonce, key),
                     0);
    assert_int_equal(got_len, sizeof expect);
    assert_memory_equal(got, expect, sizeof expect);
    assert_int_equal(crypto_aead_xchacha20poly1305_ietf_decrypt(
                         back, &back_len, NULL, expect, sizeof expect, ad, sizeof ad, nonce, key),
                     0);
    assert_int_equal(back_len, sizeof pt - 1);
    assert_memory_equal(back, pt, sizeof pt - 1);
}

/* The golden record (Python, see top of file): ring v=7, record_id a0..bf, device sensor-0042. */
static const char s_golden_pt[] = "{\"t\":21.5,\"h\":40}";
static const char s_golden_ct[] = "c1f36bfae85f98efd100fada47c70c27135ab1a7b612aff7fc4773f60c4b31e0"
                                  "8aea44df1787eb75d409e3e6f6b3c38154";
static const char s_golden_env[] =
    "5bec0062242ecd678a2e2de935076cd1d0520cd6aae4108062fb46cb8e64e8ae";

typedef struct {
    uint8_t record_id[32], aes_nonce[12], xchacha_nonce[24], ct[64], env[32];
    size_t ct_len;
} s_golden_t;

static void s_golden(s_golden_t *g)
{
    for (int i = 0; i < 32; i++)
        g->record_id[i] = (uint8_t)(0xa0 + i);
    for (int i = 0; i < 12; i++)
        g->aes_nonce[i] = (uint8_t)(0xc0 + i);
    for (int i = 0; i < 24; i++)
        g->xchacha_nonce[i] = (uint8_t)(0xd0 + i);
    g->ct_len = s_unhex(g->ct, sizeof g->ct, s_golden_ct);
    assert_int_equal(g->ct_len, sizeof s_golden_pt - 1 + LC_SEAL_OVERHEAD);
    s_unhex(g->env, sizeof g->env, s_golden_env);
}

static void test_golden_record(void **state)
{
    s_fixture_t *f = *state;
    s_golden_t g;
    s_golden(&g);
    uint8_t env[32];
    lc_envelope_hash(env, 7, g.aes_nonce, g.xchacha_nonce, g.ct, g.ct_len);
    assert_memory_equal(env, g.env, 32);

    lc_sealer_t *sealers[2];
    for (size_t i = 0, n = s_sealers(f, sealers); i < n; i++) {
        uint8_t pt[sizeof s_golden_pt];
        memset(pt, 0, sizeof pt);
        assert_int_equal(lc_open(sealers[i], pt, g.record_id, s_device, S_DEVICE_LEN, 7,
                                 g.aes_nonce, g.xchacha_nonce, g.ct, g.ct_len),
                         0);
        assert_memory_equal(pt, s_golden_pt, sizeof s_golden_pt - 1);
    }
}

/* Stage 2 intact but stage 1 broken (re-sealed stage 2 over a modified ct1): stage 1 must catch
 * it on its own, and the plaintext buffer must come back zeroed. */
static void test_stage1_checked_after_stage2(void **state)
{
    s_fixture_t *f = *state;
    s_golden_t g;
    s_golden(&g);
    uint8_t master[32], k2[32], ad[44], inner[64];
    for (int i = 0; i < 32; i++)
        master[i] = (uint8_t)(0x20 + i);
    assert_int_equal(crypto_kdf_derive_from_key(k2, sizeof k2, 7, "lcseal02", master), 0);
    memcpy(ad, "lcore/v1", 8);
    memcpy(ad + 8, g.record_id, 32);
    ad[40] = 0, ad[41] = 0, ad[42] = 0, ad[43] = 7;
    size_t inner_len = g.ct_len - 16;
    assert_int_equal(
        crypto_aead_xchacha20poly1305_ietf_decrypt_detached(
            inner, NULL, g.ct, inner_len, g.ct + inner_len, ad, sizeof ad, g.xchacha_nonce, k2),
        0);
    inner[0] ^= 0x80; /* one bit of ct1 */
    crypto_aead_xchacha20poly1305_ietf_encrypt_detached(
        g.ct, g.ct + inner_len, NULL, inner, inner_len, ad, sizeof ad, NULL, g.xchacha_nonce, k2);
    lc_sealer_t *sealers[2];
    for (size_t i = 0, n = s_sealers(f, sealers); i < n; i++) {
        uint8_t pt[sizeof s_golden_pt - 1];
        memset(pt, 0xAA, sizeof pt);
        assert_int_equal(lc_open(sealers[i], pt, g.record_id, s_device, S_DEVICE_LEN, 7,
                                 g.aes_nonce, g.xchacha_nonce, g.ct, g.ct_len),
                         LC_ERR_SIGNATURE);
        for (size_t j = 0; j < sizeof pt; j++)
            assert_int_equal(pt[j], 0);
    }
}

/* ---- round trips ------------------------------------------------------------------------------
 */

static void s_roundtrip(lc_sealer_t *sealer, lc_sealer_t *opener, size_t len)
{
    uint8_t *pt = malloc(len + 1), *ct = malloc(len + LC_SEAL_OVERHEAD), *back = malloc(len + 1);
    assert_non_null(pt);
    assert_non_null(ct);
    assert_non_null(back);
    for (size_t i = 0; i < len; i++)
        pt[i] = (uint8_t)(i * 31 + 7);
    lc_sealed_t s;
    assert_int_equal(lc_seal(sealer, &s, ct, s_record_id, s_device, S_DEVICE_LEN, pt, len), 0);
    assert_int_equal(s.key_version, 7);
    assert_int_equal(s.ciphertext_len, len + LC_SEAL_OVERHEAD);
    if (len >= 16)
        assert_memory_not_equal(ct, pt, 16);
    uint8_t env[32];
    lc_envelope_hash(env, s.key_version, s.aes_nonce, s.xchacha_nonce, ct, s.ciphertext_len);
    assert_memory_equal(env, s.envelope_hash, 32);
    assert_int_equal(lc_open(opener, back, s_record_id, s_device, S_DEVICE_LEN, s.key_version,
                             s.aes_nonce, s.xchacha_nonce, ct, s.ciphertext_len),
                     0);
    if (len > 0)
        assert_memory_equal(back, pt, len);
    free(pt);
    free(ct);
    free(back);
}

static const size_t s_sizes[] = {0, 1, 15, 16, 17, 63, 256, 1000, 5000, 70000};

static void test_roundtrip_same_impl(void **state)
{
    s_fixture_t *f = *state;
    lc_sealer_t *sealers[2];
    for (size_t i = 0, n = s_sealers(f, sealers); i < n; i++) {
        for (size_t j = 0; j < LC_ARRAY_LEN(s_sizes); j++)
            s_roundtrip(sealers[i], sealers[i], s_sizes[j]);
    }
}

static void test_roundtrip_cross_impl(void **state)
{
    s_fixture_t *f = *state;
    if (!f->aesni)
        skip();
    for (size_t j = 0; j < LC_ARRAY_LEN(s_sizes); j++) {
        s_roundtrip(f->aesni, f->portable, s_sizes[j]);
        s_roundtrip(f->portable, f->aesni, s_sizes[j]);
    }
}

/* ---- tampering ------------------------------------------------------------------------------- */

#define S_PT_LEN 256

typedef struct {
    uint8_t pt[S_PT_LEN], ct[S_PT_LEN + LC_SEAL_OVERHEAD], out[S_PT_LEN];
    lc_sealed_t s;
} s_sealed_buf_t;

static void s_seal_one(lc_sealer_t *sealer, s_sealed_buf_t *b)
{
    for (size_t i = 0; i < S_PT_LEN; i++)
        b->pt[i] = (uint8_t)i;
    assert_int_equal(
        lc_seal(sealer, &b->s, b->ct, s_record_id, s_device, S_DEVICE_LEN, b->pt, S_PT_LEN), 0);
}

/* Opens with the given fields and checks the result; on failure the output must be all zero. */
static void s_expect_open(lc_sealer_t *opener, int want, const uint8_t record_id[32],
                          const char *device, uint32_t version, const uint8_t aes_nonce[12],
                          const uint8_t xchacha_nonce[24], const uint8_t *ct, size_t ct_len)
{
    uint8_t out[S_PT_LEN];
    memset(out, 0xAA, sizeof out);
    assert_int_equal(lc_open(opener, out, record_id, device, strlen(device), version, aes_nonce,
                             xchacha_nonce, ct, ct_len),
                     want);
    if (want != 0) {
        for (size_t i = 0; i < ct_len - LC_SEAL_OVERHEAD; i++)
            assert_int_equal(out[i], 0);
    }
}

static void test_tamper(void **state)
{
    s_fixture_t *f = *state;
    lc_sealer_t *sealers[2];
    size_t n = s_sealers(f, sealers);
    for (size_t i = 0; i < n; i++) {
        for (size_t k = 0; k < n; k++) {
            lc_sealer_t *opener = sealers[k];
            s_sealed_buf_t b;
            s_seal_one(sealers[i], &b);
            const size_t len = b.s.ciphertext_len;
            s_expect_open(opener, 0, s_record_id, s_device, 7, b.s.aes_nonce, b.s.xchacha_nonce,
                          b.ct, len);

            /* A bit flipped anywhere in the ciphertext: ct1 region, tag1 region, tag2. */
            const size_t spots[] = {
                0, 100, S_PT_LEN - 1, S_PT_LEN, S_PT_LEN + 15, S_PT_LEN + 16, len - 1};
            for (size_t s = 0; s < LC_ARRAY_LEN(spots); s++) {
                b.ct[spots[s]] ^= 0x04;
                s_expect_open(opener, LC_ERR_SIGNATURE, s_record_id, s_device, 7, b.s.aes_nonce,
                              b.s.xchacha_nonce, b.ct, len);
                b.ct[spots[s]] ^= 0x04;
            }
            /* Truncated by a byte. */
            s_expect_open(opener, LC_ERR_SIGNATURE, s_record_id, s_device, 7, b.s.aes_nonce,
                          b.s.xchacha_nonce, b.ct, len - 1);
            /* A bit of either nonce. */
            uint8_t an[12], xn[24];
            memcpy(an, b.s.aes_nonce, 12);
            an[11] ^= 0x01;
            s_expect_open(opener, LC_ERR_SIGNATURE, s_record_id, s_device, 7, an, b.s.xchacha_nonce,
                          b.ct, len);
            memcpy(xn, b.s.xchacha_nonce, 24);
            xn[0] ^= 0x80;
            s_expect_open(opener, LC_ERR_SIGNATURE, s_record_id, s_device, 7, b.s.aes_nonce, xn,
                          b.ct, len);
            /* The ciphertext copied onto another row. */
            uint8_t other_id[32];
            memcpy(other_id, s_record_id, 32);
            other_id[31] ^= 0x01;
            s_expect_open(opener, LC_ERR_SIGNATURE, other_id, s_device, 7, b.s.aes_nonce,
                          b.s.xchacha_nonce, b.ct, len);
            /* Another device (only stage 1 depends on it). */
            s_expect_open(opener, LC_ERR_SIGNATURE, s_record_id, "sensor-0043", 7, b.s.aes_nonce,
                          b.s.xchacha_nonce, b.ct, len);
            /* Another key version present in the ring, and one that is not. */
            s_expect_open(opener, LC_ERR_SIGNATURE, s_record_id, s_device, 6, b.s.aes_nonce,
                          b.s.xchacha_nonce, b.ct, len);
            s_expect_open(opener, LC_ERR_NOTFOUND, s_record_id, s_device, 8, b.s.aes_nonce,
                          b.s.xchacha_nonce, b.ct, len);
            /* Everything restored: still opens. */
            s_expect_open(opener, 0, s_record_id, s_device, 7, b.s.aes_nonce, b.s.xchacha_nonce,
                          b.ct, len);
        }
    }
}

static void test_bad_input(void **state)
{
    s_fixture_t *f = *state;
    uint8_t pt[8] = {0}, ct[8 + LC_SEAL_OVERHEAD], nonce[24] = {0};
    lc_sealed_t s;
    assert_null(lc_sealer_new(NULL, LC_AES_AUTO));
    assert_null(lc_sealer_new(f->ring, (lc_aes_impl_t)9));
    assert_int_equal(lc_seal(f->portable, &s, ct, s_record_id, "", 0, pt, sizeof pt),
                     LC_ERR_INVALID);
    assert_int_equal(lc_seal(f->portable, &s, ct, s_record_id, s_device, S_DEVICE_LEN, NULL, 8),
                     LC_ERR_INVALID);
    /* Shorter than the two tags: cannot authenticate. */
    assert_int_equal(lc_open(f->portable, pt, s_record_id, s_device, S_DEVICE_LEN, 7, nonce, nonce,
                             ct, LC_SEAL_OVERHEAD - 1),
                     LC_ERR_SIGNATURE);
    /* An empty record (just the tags) of random bytes does not open. */
    randombytes_buf(ct, sizeof ct);
    assert_int_equal(lc_open(f->portable, pt, s_record_id, s_device, S_DEVICE_LEN, 7, nonce, nonce,
                             ct, LC_SEAL_OVERHEAD),
                     LC_ERR_SIGNATURE);
    lc_sealer_destroy(NULL);
    lc_sealer_t *none = NULL;
    lc_sealer_destroy(&none);
}

static void test_impl_selection(void **state)
{
    s_fixture_t *f = *state;
    lc_sealer_t *s = lc_sealer_new(f->ring, LC_AES_AUTO);
    assert_non_null(s);
    assert_string_equal(lc_sealer_aes_impl(s),
                        crypto_aead_aes256gcm_is_available() ? "aesni" : "bearssl-ct64");
    lc_sealer_destroy(&s);
    assert_null(s);
    s = lc_sealer_new(f->ring, LC_AES_AESNI);
    if (crypto_aead_aes256gcm_is_available()) {
        assert_non_null(s);
        assert_string_equal(lc_sealer_aes_impl(s), "aesni");
    } else {
        assert_null(s);
    }
    lc_sealer_destroy(&s);
}

/* ---- envelope hash and nonces ------------------------------------------------------------------
 */

static void test_envelope_hash_covers_every_byte(void **state)
{
    (void)state;
    uint8_t an[12], xn[24], ct[40], base[32], h[32];
    randombytes_buf(an, sizeof an);
    randombytes_buf(xn, sizeof xn);
    randombytes_buf(ct, sizeof ct);
    lc_envelope_hash(base, 5, an, xn, ct, sizeof ct);
    for (int bit = 0; bit < 32; bit++) {
        lc_envelope_hash(h, 5u ^ (1u << bit), an, xn, ct, sizeof ct);
        assert_memory_not_equal(h, base, 32);
    }
    for (size_t i = 0; i < sizeof an; i++) {
        an[i] ^= 1;
        lc_envelope_hash(h, 5, an, xn, ct, sizeof ct);
        assert_memory_not_equal(h, base, 32);
        an[i] ^= 1;
    }
    for (size_t i = 0; i < sizeof xn; i++) {
        xn[i] ^= 1;
        lc_envelope_hash(h, 5, an, xn, ct, sizeof ct);
        assert_memory_not_equal(h, base, 32);
        xn[i] ^= 1;
    }
    for (size_t i = 0; i < sizeof ct; i++) {
        ct[i] ^= 1;
        lc_envelope_hash(h, 5, an, xn, ct, sizeof ct);
        assert_memory_not_equal(h, base, 32);
        ct[i] ^= 1;
    }
    lc_envelope_hash(h, 5, an, xn, ct, sizeof ct - 1); /* length is covered too */
    assert_memory_not_equal(h, base, 32);
    lc_envelope_hash(h, 5, an, xn, ct, sizeof ct);
    assert_memory_equal(h, base, 32);
}

static void test_same_plaintext_differs(void **state)
{
    s_fixture_t *f = *state;
    lc_sealer_t *sealers[2];
    for (size_t i = 0, n = s_sealers(f, sealers); i < n; i++) {
        s_sealed_buf_t a, b;
        s_seal_one(sealers[i], &a);
        s_seal_one(sealers[i], &b);
        assert_memory_not_equal(a.s.aes_nonce, b.s.aes_nonce, 12);
        assert_memory_not_equal(a.s.xchacha_nonce, b.s.xchacha_nonce, 24);
        assert_memory_not_equal(a.ct, b.ct, sizeof a.ct);
        assert_memory_not_equal(a.s.envelope_hash, b.s.envelope_hash, 32);
    }
}

static int s_cmp36(const void *a, const void *b)
{
    return memcmp(a, b, 36);
}

/* Enough records to run through the pool several times: every nonce pair is distinct. */
static void test_nonces_unique_across_refills(void **state)
{
    s_fixture_t *f = *state;
    enum { N = 1000 };
    uint8_t(*seen)[36] = malloc(N * 36);
    assert_non_null(seen);
    uint8_t pt[4] = {1, 2, 3, 4}, ct[4 + LC_SEAL_OVERHEAD];
    for (size_t i = 0; i < N; i++) {
        lc_sealed_t s;
        assert_int_equal(
            lc_seal(f->portable, &s, ct, s_record_id, s_device, S_DEVICE_LEN, pt, sizeof pt), 0);
        memcpy(seen[i], s.aes_nonce, 12);
        memcpy(seen[i] + 12, s.xchacha_nonce, 24);
    }
    qsort(seen, N, 36, s_cmp36);
    for (size_t i = 1; i < N; i++) {
        assert_memory_not_equal(seen[i - 1], seen[i], 12);
        assert_memory_not_equal(seen[i - 1] + 12, seen[i] + 12, 24);
    }
    free(seen);
}

/* A process forked after the pool was filled must not hand out its parent's next nonces. */
static void test_fork_does_not_repeat_nonces(void **state)
{
    s_fixture_t *f = *state;
    uint8_t pt[4] = {0}, ct[4 + LC_SEAL_OVERHEAD];
    lc_sealed_t s;
    assert_int_equal(
        lc_seal(f->portable, &s, ct, s_record_id, s_device, S_DEVICE_LEN, pt, sizeof pt), 0);
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(fds[0]);
        lc_sealed_t cs;
        int rc = lc_seal(f->portable, &cs, ct, s_record_id, s_device, S_DEVICE_LEN, pt, sizeof pt);
        ssize_t w = write(fds[1], &cs, sizeof cs);
        _exit(rc == 0 && w == (ssize_t)sizeof cs ? 0 : 1);
    }
    close(fds[1]);
    lc_sealed_t child;
    ssize_t r = read(fds[0], &child, sizeof child);
    close(fds[0]);
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    assert_int_equal(r, sizeof child);
    assert_int_equal(
        lc_seal(f->portable, &s, ct, s_record_id, s_device, S_DEVICE_LEN, pt, sizeof pt), 0);
    assert_memory_not_equal(child.aes_nonce, s.aes_nonce, 12);
    assert_memory_not_equal(child.xchacha_nonce, s.xchacha_nonce, 24);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_aesgcm_kat_portable),
        cmocka_unit_test(test_aesgcm_kat_aesni),
        cmocka_unit_test(test_xchacha_kat),
        cmocka_unit_test(test_golden_record),
        cmocka_unit_test(test_stage1_checked_after_stage2),
        cmocka_unit_test(test_roundtrip_same_impl),
        cmocka_unit_test(test_roundtrip_cross_impl),
        cmocka_unit_test(test_tamper),
        cmocka_unit_test(test_bad_input),
        cmocka_unit_test(test_impl_selection),
        cmocka_unit_test(test_envelope_hash_covers_every_byte),
        cmocka_unit_test(test_same_plaintext_differs),
        cmocka_unit_test(test_nonces_unique_across_refills),
        cmocka_unit_test(test_fork_does_not_repeat_nonces),
    };
    return cmocka_run_group_tests(tests, s_setup, s_teardown);
}
