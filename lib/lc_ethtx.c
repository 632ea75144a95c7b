/* lc_ethtx.c: EIP-1559 transaction encoding, signing, decoding and sender recovery.
 * libsecp256k1 signs with RFC 6979 nonces and always returns low-S signatures, which is what
 * Ethereum requires (EIP-2); recovery refuses high-S ones for the same reason. */
#include "lc_secp.h"
#include "lc_ethtx.h"

#include "lc_codec.h"
#include "lc_keccak.h"
#include "lc_log.h"
#include "lc_rlp.h"

#include <secp256k1.h>
#include <secp256k1_recovery.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#define S_PUBKEY_UNCOMPRESSED_LEN 65
#define S_SIGNED_FIELDS 12

/* n/2 for secp256k1, big-endian: the largest s a valid Ethereum signature may carry. */
static const uint8_t s_half_order[32] = {
    0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0x5d, 0x57, 0x6e, 0x73, 0x57, 0xa4, 0x50, 0x1d, 0xdf, 0xe9, 0x2f, 0x46, 0x68, 0x1b, 0x20, 0xa0};

/* The shared, read-only libsecp256k1 context (lc_secp: created once, libsodium initialised). */
static int s_crypto_ready(void)
{
    return lc_secp_context() ? 0 : LC_ERR_UNAVAILABLE;
}

/* ---- 256-bit integers ---- */

void lc_u256_from_u64(lc_u256_t *out, uint64_t v)
{
    memset(out->be, 0, sizeof out->be);
    for (int i = 0; i < 8; i++)
        out->be[LC_U256_LEN - 1 - i] = (uint8_t)(v >> (8 * i));
}

int lc_u256_to_u64(uint64_t *out, const lc_u256_t *v)
{
    for (size_t i = 0; i < LC_U256_LEN - 8; i++)
        if (v->be[i] != 0)
            return LC_ERR_TOOBIG;
    uint64_t r = 0;
    for (size_t i = LC_U256_LEN - 8; i < LC_U256_LEN; i++)
        r = (r << 8) | v->be[i];
    *out = r;
    return 0;
}

static int s_hex_nibble(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int lc_u256_parse(lc_u256_t *out, const char *text, size_t len)
{
    lc_u256_t v;
    memset(&v, 0, sizeof v);
    if (len > 2 && text[0] == '0' && (text[1] == 'x' || text[1] == 'X')) {
        text += 2;
        len -= 2;
        if (len > 2 * LC_U256_LEN) {
            /* Leading zeros may make a long spelling of a small number; refuse only real size. */
            for (; len > 2 * LC_U256_LEN; text++, len--)
                if (s_hex_nibble(text[0]) != 0)
                    return s_hex_nibble(text[0]) < 0 ? LC_ERR_INVALID : LC_ERR_TOOBIG;
        }
        for (size_t i = 0; i < len; i++) {
            int d = s_hex_nibble(text[len - 1 - i]);
            if (d < 0)
                return LC_ERR_INVALID;
            v.be[LC_U256_LEN - 1 - i / 2] |= (uint8_t)(d << (4 * (i % 2)));
        }
        *out = v;
        return 0;
    }
    if (len == 0)
        return LC_ERR_INVALID;
    for (size_t i = 0; i < len; i++) {
        if (text[i] < '0' || text[i] > '9')
            return LC_ERR_INVALID;
        unsigned carry = (unsigned)(text[i] - '0');
        for (int k = LC_U256_LEN - 1; k >= 0; k--) {
            unsigned t = v.be[k] * 10u + carry;
            v.be[k] = (uint8_t)t;
            carry = t >> 8;
        }
        if (carry != 0)
            return LC_ERR_TOOBIG;
    }
    *out = v;
    return 0;
}

int lc_u256_format_hex(char *out, size_t out_cap, const lc_u256_t *v)
{
    static const char digits[] = "0123456789abcdef";
    size_t first = 0; /* index of the first non-zero nibble, 64 if none */
    while (first < 2 * LC_U256_LEN && ((v->be[first / 2] >> (first % 2 ? 0 : 4)) & 0xf) == 0)
        first++;
    if (first == 2 * LC_U256_LEN)
        first = 2 * LC_U256_LEN - 1; /* zero is "0x0" */
    size_t n = 2 * LC_U256_LEN - first;
    if (out_cap < 2 + n + 1)
        return LC_ERR_TOOBIG;
    out[0] = '0';
    out[1] = 'x';
    for (size_t i = 0; i < n; i++) {
        size_t nib = first + i;
        out[2 + i] = digits[(v->be[nib / 2] >> (nib % 2 ? 0 : 4)) & 0xf];
    }
    out[2 + n] = '\0';
    return 0;
}

int lc_u256_cmp(const lc_u256_t *a, const lc_u256_t *b)
{
    return memcmp(a->be, b->be, LC_U256_LEN);
}

/* ---- encoding ---- */

static int s_check_tx(const lc_ethtx_t *tx)
{
    return (tx->data == NULL && tx->data_len > 0) ? LC_ERR_INVALID : 0;
}

/* 0x02 || rlp([nine fields (, y_parity, r, s)]) into b; sig NULL for the signing payload. */
static int s_encode(lc_rlp_buf_t *b, const lc_ethtx_t *tx, const lc_ethtx_sig_t *sig)
{
    const uint8_t type = LC_ETHTX_TYPE_EIP1559;
    lc_rlp_put_raw(b, &type, 1);
    size_t list = lc_rlp_list_begin(b);
    lc_rlp_put_uint(b, tx->chain_id);
    lc_rlp_put_uint(b, tx->nonce);
    lc_rlp_put_uint_be(b, tx->max_priority_fee_per_gas.be, LC_U256_LEN);
    lc_rlp_put_uint_be(b, tx->max_fee_per_gas.be, LC_U256_LEN);
    lc_rlp_put_uint(b, tx->gas_limit);
    lc_rlp_put_bytes(b, tx->has_to ? tx->to : NULL, tx->has_to ? LC_ETH_ADDR_LEN : 0);
    lc_rlp_put_uint_be(b, tx->value.be, LC_U256_LEN);
    lc_rlp_put_bytes(b, tx->data, tx->data_len);
    lc_rlp_list_end(b, lc_rlp_list_begin(b)); /* access list: always empty */
    if (sig != NULL) {
        lc_rlp_put_uint(b, sig->y_parity);
        lc_rlp_put_uint_be(b, sig->r, sizeof sig->r);
        lc_rlp_put_uint_be(b, sig->s, sizeof sig->s);
    }
    lc_rlp_list_end(b, list);
    return lc_rlp_buf_error(b);
}

int lc_ethtx_signing_hash(uint8_t out[LC_ETH_HASH_LEN], const lc_ethtx_t *tx)
{
    int rc = s_check_tx(tx);
    if (rc != 0)
        return rc;
    lc_rlp_buf_t b;
    lc_rlp_buf_init(&b);
    rc = s_encode(&b, tx, NULL);
    if (rc == 0)
        lc_keccak256(out, b.data, b.len);
    lc_rlp_buf_free(&b);
    return rc;
}

int lc_ethtx_encode_signed(uint8_t **raw, size_t *raw_len, const lc_ethtx_t *tx,
                           const lc_ethtx_sig_t *sig)
{
    *raw = NULL;
    *raw_len = 0;
    int rc = s_check_tx(tx);
    if (rc != 0)
        return rc;
    if (sig->y_parity > 1)
        return LC_ERR_INVALID;
    lc_rlp_buf_t b;
    lc_rlp_buf_init(&b);
    rc = s_encode(&b, tx, sig);
    if (rc == 0)
        *raw = lc_rlp_buf_take(&b, raw_len);
    lc_rlp_buf_free(&b);
    return rc;
}

void lc_ethtx_hash(uint8_t out[LC_ETH_HASH_LEN], const uint8_t *raw, size_t raw_len)
{
    lc_keccak256(out, raw, raw_len);
}

/* ---- decoding ---- */

static int s_item_u256(lc_u256_t *out, const lc_rlp_item_t *item)
{
    int rc = lc_rlp_item_uint_be(out->be, LC_U256_LEN, item);
    return rc == LC_ERR_TOOBIG ? LC_ERR_INVALID : rc;
}

static int s_item_u64(uint64_t *out, const lc_rlp_item_t *item)
{
    int rc = lc_rlp_item_uint(out, item);
    return rc == LC_ERR_TOOBIG ? LC_ERR_INVALID : rc;
}

int lc_ethtx_decode(lc_ethtx_t *tx, lc_ethtx_sig_t *sig, const uint8_t *raw, size_t raw_len)
{
    memset(tx, 0, sizeof *tx);
    memset(sig, 0, sizeof *sig);
    if (raw_len < 1 || raw[0] != LC_ETHTX_TYPE_EIP1559)
        return LC_ERR_INVALID;
    lc_rlp_item_t list;
    if (lc_rlp_decode(&list, raw + 1, raw_len - 1) != 0 || !list.is_list)
        return LC_ERR_INVALID;

    lc_rlp_item_t f[S_SIGNED_FIELDS];
    lc_rlp_iter_t it;
    lc_rlp_iter_init(&it, &list);
    for (size_t i = 0; i < S_SIGNED_FIELDS; i++)
        if (lc_rlp_iter_next(&it, &f[i]) != 0)
            return LC_ERR_INVALID;
    lc_rlp_item_t extra;
    if (lc_rlp_iter_next(&it, &extra) != LC_ERR_NOTFOUND)
        return LC_ERR_INVALID;

    lc_ethtx_t t;
    memset(&t, 0, sizeof t);
    uint64_t y_parity = 0;
    if (s_item_u64(&t.chain_id, &f[0]) != 0 || s_item_u64(&t.nonce, &f[1]) != 0 ||
        s_item_u256(&t.max_priority_fee_per_gas, &f[2]) != 0 ||
        s_item_u256(&t.max_fee_per_gas, &f[3]) != 0 || s_item_u64(&t.gas_limit, &f[4]) != 0 ||
        s_item_u256(&t.value, &f[6]) != 0 || s_item_u64(&y_parity, &f[9]) != 0 || y_parity > 1 ||
        lc_rlp_item_uint_be(sig->r, sizeof sig->r, &f[10]) != 0 ||
        lc_rlp_item_uint_be(sig->s, sizeof sig->s, &f[11]) != 0)
        goto invalid;
    if (f[5].is_list || (f[5].len != 0 && f[5].len != LC_ETH_ADDR_LEN))
        goto invalid;
    t.has_to = f[5].len == LC_ETH_ADDR_LEN;
    if (t.has_to)
        memcpy(t.to, f[5].payload, LC_ETH_ADDR_LEN);
    if (f[7].is_list)
        goto invalid;
    t.data = f[7].len ? f[7].payload : NULL;
    t.data_len = f[7].len;
    if (!f[8].is_list)
        goto invalid;
    if (f[8].len != 0) {
        memset(sig, 0, sizeof *sig);
        return LC_ERR_UNSUPPORTED;
    }
    sig->y_parity = (uint8_t)y_parity;
    *tx = t;
    return 0;
invalid:
    memset(sig, 0, sizeof *sig);
    return LC_ERR_INVALID;
}

/* ---- addresses and recovery ---- */

static int s_pubkey_address(uint8_t out[LC_ETH_ADDR_LEN], const secp256k1_pubkey *pk)
{
    uint8_t ser[S_PUBKEY_UNCOMPRESSED_LEN];
    size_t ser_len = sizeof ser;
    if (!secp256k1_ec_pubkey_serialize(lc_secp_context(), ser, &ser_len, pk,
                                       SECP256K1_EC_UNCOMPRESSED) ||
        ser_len != sizeof ser)
        return LC_ERR_INVALID;
    uint8_t h[LC_KECCAK256_LEN];
    lc_keccak256(h, ser + 1, sizeof ser - 1); /* X || Y, without the 0x04 tag */
    memcpy(out, h + LC_KECCAK256_LEN - LC_ETH_ADDR_LEN, LC_ETH_ADDR_LEN);
    return 0;
}

int lc_eth_address_from_secret(uint8_t out[LC_ETH_ADDR_LEN],
                               const uint8_t secret[LC_ETH_SECRET_LEN])
{
    int rc = s_crypto_ready();
    if (rc != 0)
        return rc;
    secp256k1_pubkey pk;
    if (!secp256k1_ec_seckey_verify(lc_secp_context(), secret) ||
        !secp256k1_ec_pubkey_create(lc_secp_context(), &pk, secret))
        return LC_ERR_INVALID;
    return s_pubkey_address(out, &pk);
}

int lc_ethtx_recover(uint8_t from[LC_ETH_ADDR_LEN], const uint8_t hash[LC_ETH_HASH_LEN],
                     const lc_ethtx_sig_t *sig)
{
    int rc = s_crypto_ready();
    if (rc != 0)
        return rc;
    if (sig->y_parity > 1 || memcmp(sig->s, s_half_order, sizeof s_half_order) > 0)
        return LC_ERR_SIGNATURE;
    uint8_t rs[64];
    memcpy(rs, sig->r, 32);
    memcpy(rs + 32, sig->s, 32);
    secp256k1_ecdsa_recoverable_signature rsig;
    secp256k1_pubkey pk;
    if (!secp256k1_ecdsa_recoverable_signature_parse_compact(lc_secp_context(), &rsig, rs,
                                                             sig->y_parity) ||
        !secp256k1_ecdsa_recover(lc_secp_context(), &pk, &rsig, hash))
        return LC_ERR_SIGNATURE;
    return s_pubkey_address(from, &pk) == 0 ? 0 : LC_ERR_SIGNATURE;
}

int lc_ethtx_sender(uint8_t from[LC_ETH_ADDR_LEN], const uint8_t *raw, size_t raw_len)
{
    lc_ethtx_t tx;
    lc_ethtx_sig_t sig;
    uint8_t hash[LC_ETH_HASH_LEN];
    int rc = lc_ethtx_decode(&tx, &sig, raw, raw_len);
    if (rc == 0)
        rc = lc_ethtx_signing_hash(hash, &tx);
    if (rc == 0)
        rc = lc_ethtx_recover(from, hash, &sig);
    return rc;
}

void lc_eth_address_format(char out[LC_ETH_ADDR_HEX_LEN + 1], const uint8_t addr[LC_ETH_ADDR_LEN])
{
    char hex[LC_HEX_LEN(LC_ETH_ADDR_LEN) + 1];
    (void)lc_hex_encode(hex, sizeof hex, addr, LC_ETH_ADDR_LEN); /* cannot fail: sized above */
    uint8_t h[LC_KECCAK256_LEN];
    lc_keccak256(h, (const uint8_t *)hex, LC_HEX_LEN(LC_ETH_ADDR_LEN));
    out[0] = '0';
    out[1] = 'x';
    for (size_t i = 0; i < LC_HEX_LEN(LC_ETH_ADDR_LEN); i++) {
        unsigned nibble = (h[i / 2] >> (i % 2 ? 0 : 4)) & 0xf;
        char c = hex[i];
        out[2 + i] = (c >= 'a' && c <= 'f' && nibble >= 8) ? (char)(c - 'a' + 'A') : c;
    }
    out[LC_ETH_ADDR_HEX_LEN] = '\0';
}

int lc_eth_address_parse(uint8_t out[LC_ETH_ADDR_LEN], const char *text, size_t len)
{
    if (len >= 2 && text[0] == '0' && text[1] == 'x') {
        text += 2;
        len -= 2;
    }
    if (len != LC_HEX_LEN(LC_ETH_ADDR_LEN))
        return LC_ERR_INVALID;
    uint8_t addr[LC_ETH_ADDR_LEN];
    size_t n = 0;
    if (lc_hex_decode(addr, sizeof addr, &n, text, len) != 0 || n != sizeof addr)
        return LC_ERR_INVALID;
    bool lower = false, upper = false;
    for (size_t i = 0; i < len; i++) {
        lower |= text[i] >= 'a' && text[i] <= 'f';
        upper |= text[i] >= 'A' && text[i] <= 'F';
    }
    if (lower && upper) {
        char want[LC_ETH_ADDR_HEX_LEN + 1];
        lc_eth_address_format(want, addr);
        if (memcmp(want + 2, text, len) != 0)
            return LC_ERR_INVALID;
    }
    memcpy(out, addr, sizeof addr);
    return 0;
}

/* ---- the signer ---- */

struct lc_ethtx_signer {
    uint8_t *secret; /* sodium_malloc'd, read-only after construction, wiped by sodium_free */
    uint8_t address[LC_ETH_ADDR_LEN];
};

lc_ethtx_signer_t *lc_ethtx_signer_new(const uint8_t secret[LC_ETH_SECRET_LEN], int *err)
{
    int rc = s_crypto_ready();
    lc_ethtx_signer_t *self = NULL;
    if (rc != 0)
        goto out;
    rc = LC_ERR_NOMEM;
    self = calloc(1, sizeof *self);
    if (self == NULL)
        goto out;
    self->secret = sodium_malloc(LC_ETH_SECRET_LEN);
    if (self->secret == NULL)
        goto out;
    memcpy(self->secret, secret, LC_ETH_SECRET_LEN);
    if (sodium_mprotect_readonly(self->secret) != 0)
        goto out;
    rc = lc_eth_address_from_secret(self->address, self->secret);
out:
    if (rc != 0)
        lc_ethtx_signer_destroy(&self);
    if (err != NULL)
        *err = rc;
    return self;
}

void lc_ethtx_signer_destroy(lc_ethtx_signer_t **self_p)
{
    if (self_p == NULL || *self_p == NULL)
        return;
    lc_ethtx_signer_t *self = *self_p;
    sodium_free(self->secret); /* NULL-safe; wipes even read-only memory */
    free(self);
    *self_p = NULL;
}

const uint8_t *lc_ethtx_signer_address(const lc_ethtx_signer_t *self)
{
    return self->address;
}

int lc_ethtx_signer_sign_hash(const lc_ethtx_signer_t *self, lc_ethtx_sig_t *sig,
                              const uint8_t hash[LC_ETH_HASH_LEN])
{
    secp256k1_ecdsa_recoverable_signature rsig;
    uint8_t rs[64];
    int recid = -1;
    /* NULL nonce function: RFC 6979, so the same transaction always gets the same signature. */
    if (!secp256k1_ecdsa_sign_recoverable(lc_secp_context(), &rsig, hash, self->secret, NULL, NULL))
        return LC_ERR_INVALID;
    secp256k1_ecdsa_recoverable_signature_serialize_compact(lc_secp_context(), rs, &recid, &rsig);
    if (recid < 0 || recid > 1) /* 2 and 3 need r >= n: probability ~2^-127 */
        return LC_ERR_INVALID;
    sig->y_parity = (uint8_t)recid;
    memcpy(sig->r, rs, 32);
    memcpy(sig->s, rs + 32, 32);
    return 0;
}

int lc_ethtx_signer_sign(const lc_ethtx_signer_t *self, uint8_t **raw, size_t *raw_len,
                         uint8_t tx_hash[LC_ETH_HASH_LEN], const lc_ethtx_t *tx)
{
    *raw = NULL;
    *raw_len = 0;
    uint8_t hash[LC_ETH_HASH_LEN];
    lc_ethtx_sig_t sig;
    int rc = lc_ethtx_signing_hash(hash, tx);
    if (rc == 0)
        rc = lc_ethtx_signer_sign_hash(self, &sig, hash);
    if (rc == 0)
        rc = lc_ethtx_encode_signed(raw, raw_len, tx, &sig);
    if (rc == 0 && tx_hash != NULL)
        lc_ethtx_hash(tx_hash, *raw, *raw_len);
    return rc;
}
