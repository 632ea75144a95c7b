/* ch_proof_cache.c: see ch_proof_cache.h. A chained hash table on the anchor id (Fibonacci
 * hashing, grown to one bucket a tree) and a doubly linked list from the most to the least
 * recently used tree. */
#include "ch_proof_cache.h"

#include <stdlib.h>

typedef struct s_entry s_entry_t;
struct s_entry {
    int64_t anchor_id;
    lc_merkle_t *tree;
    size_t leaves;
    s_entry_t *next;          /* in its bucket */
    s_entry_t *newer, *older; /* in the recency list */
};

struct ch_proof_cache {
    size_t max_leaves, leaves, trees;
    s_entry_t **buckets;
    unsigned bits; /* 2^bits buckets */
    s_entry_t *newest, *oldest;
};

#define S_FIRST_BITS 6

static size_t s_bucket(int64_t anchor_id, unsigned bits)
{
    return (size_t)(((uint64_t)anchor_id * 0x9e3779b97f4a7c15ull) >> (64 - bits));
}

/* Where the link to anchor_id's entry is in its bucket (*link is NULL when it is not held). */
static s_entry_t **s_link(ch_proof_cache_t *self, int64_t anchor_id)
{
    s_entry_t **link = &self->buckets[s_bucket(anchor_id, self->bits)];
    while (*link && (*link)->anchor_id != anchor_id)
        link = &(*link)->next;
    return link;
}

static void s_unlist(ch_proof_cache_t *self, s_entry_t *e)
{
    *(e->newer ? &e->newer->older : &self->newest) = e->older;
    *(e->older ? &e->older->newer : &self->oldest) = e->newer;
    e->newer = e->older = NULL;
}

static void s_list_newest(ch_proof_cache_t *self, s_entry_t *e)
{
    e->older = self->newest;
    *(self->newest ? &self->newest->newer : &self->oldest) = e;
    self->newest = e;
}

static void s_remove(ch_proof_cache_t *self, s_entry_t **link)
{
    s_entry_t *e = *link;
    *link = e->next;
    s_unlist(self, e);
    self->leaves -= e->leaves;
    self->trees--;
    lc_merkle_destroy(&e->tree);
    free(e);
}

/* The least recently used trees go until at most limit leaves are held. */
static void s_evict_to(ch_proof_cache_t *self, size_t limit)
{
    while (self->leaves > limit && self->oldest)
        s_remove(self, s_link(self, self->oldest->anchor_id));
}

/* Twice the buckets; when that memory is not there, the chains just grow longer. */
static void s_grow(ch_proof_cache_t *self)
{
    unsigned bits = self->bits + 1;
    s_entry_t **buckets = calloc((size_t)1 << bits, sizeof *buckets);
    if (!buckets)
        return;
    for (size_t i = 0; i < (size_t)1 << self->bits; i++)
        for (s_entry_t *e = self->buckets[i], *next; e; e = next) {
            next = e->next;
            size_t b = s_bucket(e->anchor_id, bits);
            e->next = buckets[b];
            buckets[b] = e;
        }
    free(self->buckets);
    self->buckets = buckets;
    self->bits = bits;
}

ch_proof_cache_t *ch_proof_cache_new(size_t max_leaves)
{
    ch_proof_cache_t *self = calloc(1, sizeof *self);
    if (!self || !(self->buckets = calloc((size_t)1 << S_FIRST_BITS, sizeof *self->buckets))) {
        free(self);
        return NULL;
    }
    self->bits = S_FIRST_BITS;
    self->max_leaves = max_leaves;
    return self;
}

void ch_proof_cache_destroy(ch_proof_cache_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    ch_proof_cache_t *self = *self_p;
    s_evict_to(self, 0);
    free(self->buckets);
    free(self);
    *self_p = NULL;
}

void ch_proof_cache_set_max(ch_proof_cache_t *self, size_t max_leaves)
{
    self->max_leaves = max_leaves;
    s_evict_to(self, max_leaves);
}

const lc_merkle_t *ch_proof_cache_get(ch_proof_cache_t *self, int64_t anchor_id)
{
    s_entry_t *e = *s_link(self, anchor_id);
    if (!e)
        return NULL;
    s_unlist(self, e);
    s_list_newest(self, e);
    return e->tree;
}

void ch_proof_cache_put(ch_proof_cache_t *self, int64_t anchor_id, lc_merkle_t **tree)
{
    if (!*tree)
        return;
    ch_proof_cache_drop(self, anchor_id);
    size_t leaves = lc_merkle_leaf_count(*tree);
    s_entry_t *e = leaves <= self->max_leaves ? calloc(1, sizeof *e) : NULL;
    if (!e) {
        lc_merkle_destroy(tree);
        return;
    }
    s_evict_to(self, self->max_leaves - leaves);
    if (self->trees >= (size_t)1 << self->bits)
        s_grow(self);
    e->anchor_id = anchor_id;
    e->tree = *tree;
    e->leaves = leaves;
    *tree = NULL;
    s_entry_t **head = &self->buckets[s_bucket(anchor_id, self->bits)];
    e->next = *head;
    *head = e;
    s_list_newest(self, e);
    self->leaves += leaves;
    self->trees++;
}

void ch_proof_cache_drop(ch_proof_cache_t *self, int64_t anchor_id)
{
    s_entry_t **link = s_link(self, anchor_id);
    if (*link)
        s_remove(self, link);
}

size_t ch_proof_cache_leaves(const ch_proof_cache_t *self)
{
    return self->leaves;
}

size_t ch_proof_cache_trees(const ch_proof_cache_t *self)
{
    return self->trees;
}
