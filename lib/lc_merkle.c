/* lc_merkle.c: OpenZeppelin StandardMerkleTree layout (see lc_merkle.h). The whole tree is
 * kept (2n - 1 nodes) so that every proof is a walk up the array with no hashing. */
#include "lc_merkle.h"

#include "lc_keccak.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

typedef uint8_t s_node_t[LC_MERKLE_HASH_LEN];

struct lc_merkle {
    size_t n;           /* leaves */
    s_node_t *nodes;    /* 2n - 1 */
    size_t *tree_index; /* n: node of the caller's leaf i */
};

/* A leaf and its position in the caller's array, for sorting. */
typedef struct {
    s_node_t hash;
    size_t index;
} s_sorted_leaf_t;

void lc_merkle_leaf(uint8_t out[LC_MERKLE_HASH_LEN], const uint8_t record_id[32],
                    const uint8_t envelope_hash[32])
{
    uint8_t inner[LC_KECCAK256_LEN];
    lc_keccak256_t ctx;
    lc_keccak256_init(&ctx);
    lc_keccak256_update(&ctx, record_id, 32);
    lc_keccak256_update(&ctx, envelope_hash, 32);
    lc_keccak256_final(&ctx, inner);
    /* Hashing twice keeps a 64-byte leaf preimage from passing for an inner node's. */
    lc_keccak256(out, inner, sizeof inner);
}

void lc_merkle_hash_pair(uint8_t out[LC_MERKLE_HASH_LEN], const uint8_t a[LC_MERKLE_HASH_LEN],
                         const uint8_t b[LC_MERKLE_HASH_LEN])
{
    bool a_first = memcmp(a, b, LC_MERKLE_HASH_LEN) <= 0;
    lc_keccak256_t ctx;
    lc_keccak256_init(&ctx);
    lc_keccak256_update(&ctx, a_first ? a : b, LC_MERKLE_HASH_LEN);
    lc_keccak256_update(&ctx, a_first ? b : a, LC_MERKLE_HASH_LEN);
    lc_keccak256_final(&ctx, out);
}

/* Ascending by hash; equal hashes keep the caller's order, as JavaScript's stable sort does. */
static int s_cmp_leaf(const void *x, const void *y)
{
    const s_sorted_leaf_t *a = x, *b = y;
    int c = memcmp(a->hash, b->hash, LC_MERKLE_HASH_LEN);
    if (c != 0)
        return c;
    return (a->index > b->index) - (a->index < b->index);
}

lc_merkle_t *lc_merkle_new(const uint8_t *leaves, size_t n, int *err)
{
    int rc = LC_ERR_INVALID;
    lc_merkle_t *self = NULL;
    s_sorted_leaf_t *sorted = NULL;
    if (n == 0 || leaves == NULL)
        goto out;
    rc = LC_ERR_TOOBIG;
    if (n > SIZE_MAX / 2 / sizeof(s_node_t) || n > SIZE_MAX / sizeof(s_sorted_leaf_t))
        goto out;
    rc = LC_ERR_NOMEM;
    size_t count = 2 * n - 1;
    self = calloc(1, sizeof *self);
    sorted = malloc(n * sizeof *sorted);
    if (self == NULL || sorted == NULL)
        goto out;
    self->n = n;
    self->nodes = malloc(count * sizeof *self->nodes);
    self->tree_index = malloc(n * sizeof *self->tree_index);
    if (self->nodes == NULL || self->tree_index == NULL)
        goto out;

    for (size_t i = 0; i < n; i++) {
        memcpy(sorted[i].hash, leaves + i * LC_MERKLE_HASH_LEN, LC_MERKLE_HASH_LEN);
        sorted[i].index = i;
    }
    qsort(sorted, n, sizeof *sorted, s_cmp_leaf);
    for (size_t k = 0; k < n; k++) {
        size_t at = count - 1 - k;
        memcpy(self->nodes[at], sorted[k].hash, LC_MERKLE_HASH_LEN);
        self->tree_index[sorted[k].index] = at;
    }
    for (size_t i = count - n; i-- > 0;)
        lc_merkle_hash_pair(self->nodes[i], self->nodes[2 * i + 1], self->nodes[2 * i + 2]);
    rc = 0;
out:
    free(sorted);
    if (rc != 0)
        lc_merkle_destroy(&self);
    if (err != NULL)
        *err = rc;
    return self;
}

void lc_merkle_destroy(lc_merkle_t **self_p)
{
    if (self_p == NULL || *self_p == NULL)
        return;
    lc_merkle_t *self = *self_p;
    free(self->nodes);
    free(self->tree_index);
    free(self);
    *self_p = NULL;
}

void lc_merkle_root(const lc_merkle_t *self, uint8_t out[LC_MERKLE_HASH_LEN])
{
    memcpy(out, self->nodes[0], LC_MERKLE_HASH_LEN);
}

size_t lc_merkle_leaf_count(const lc_merkle_t *self)
{
    return self->n;
}

size_t lc_merkle_node_count(const lc_merkle_t *self)
{
    return 2 * self->n - 1;
}

const uint8_t *lc_merkle_node(const lc_merkle_t *self, size_t i)
{
    return i < 2 * self->n - 1 ? self->nodes[i] : NULL;
}

size_t lc_merkle_tree_index(const lc_merkle_t *self, size_t index)
{
    return index < self->n ? self->tree_index[index] : SIZE_MAX;
}

int lc_merkle_proof(const lc_merkle_t *self, uint8_t *proof, size_t proof_cap, size_t *proof_len,
                    size_t index)
{
    *proof_len = 0;
    if (index >= self->n)
        return LC_ERR_NOTFOUND;
    size_t len = 0;
    for (size_t i = self->tree_index[index]; i > 0; i = (i - 1) / 2)
        len++;
    if (len > proof_cap)
        return LC_ERR_TOOBIG;
    size_t k = 0;
    for (size_t i = self->tree_index[index]; i > 0; i = (i - 1) / 2) {
        size_t sibling = (i % 2 == 1) ? i + 1 : i - 1; /* odd: a left child */
        memcpy(proof + k * LC_MERKLE_HASH_LEN, self->nodes[sibling], LC_MERKLE_HASH_LEN);
        k++;
    }
    *proof_len = len;
    return 0;
}

int lc_merkle_verify(const uint8_t root[LC_MERKLE_HASH_LEN], const uint8_t leaf[LC_MERKLE_HASH_LEN],
                     const uint8_t *proof, size_t n)
{
    uint8_t computed[LC_MERKLE_HASH_LEN];
    memcpy(computed, leaf, sizeof computed);
    for (size_t i = 0; i < n; i++)
        lc_merkle_hash_pair(computed, computed, proof + i * LC_MERKLE_HASH_LEN);
    return memcmp(computed, root, sizeof computed) == 0 ? 0 : LC_ERR_SIGNATURE;
}
