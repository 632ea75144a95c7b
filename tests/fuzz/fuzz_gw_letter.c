/* fuzz_gw_letter.c: a replayed dead letter as the gateway takes it from the store's events topic
 * (gw_letter_reading: a packed DeadLetter, its reading sealed with the gateway's dead-letter key).
 * What opens must be a Reading of the dead letter's own record, and must seal and open again to
 * the same bytes; nothing else may open. Ring: fuzz_support.h's fixed gateway ring. */
#include "gw_letter.h"

#include <assert.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_support.h"

static lc_keyring_t *s_ring;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    if (sodium_init() < 0)
        abort();
    s_ring = fz_ring(FZ_GATEWAY_RING, LC_KEYRING_GATEWAY);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *msg = fz_copy(data, size);
    if (!msg)
        return 0;
    Lcore__V1__Reading *r = NULL;
    int rc = gw_letter_reading(s_ring, msg, size, &r);
    assert((rc == 0) == (r != NULL));
    if (rc == 0) {
        Lcore__V1__DeadLetter *dl = lcore__v1__dead_letter__unpack(NULL, size, msg);
        assert(dl && dl->record_id.len == 32 && r->record_id.len == 32);
        assert(memcmp(dl->record_id.data, r->record_id.data, 32) == 0);
        /* Round trip: sealed again under the current key, it opens to the same Reading bytes. */
        size_t len = lcore__v1__reading__get_packed_size(r), slen = 0, plen = 0;
        uint8_t *packed = malloc(len ? len : 1), *sealed = NULL, *plain = NULL;
        uint32_t version = 0;
        assert(packed);
        lcore__v1__reading__pack(r, packed);
        assert(gw_letter_seal(s_ring, dl->record_id.data, packed, len, &sealed, &slen, &version) ==
               0);
        assert(gw_letter_open(s_ring, version, dl->record_id.data, sealed, slen, &plain, &plen) ==
               0);
        assert(plen == len && memcmp(plain, packed, len) == 0);
        sodium_free(plain);
        free(sealed);
        free(packed);
        lcore__v1__dead_letter__free_unpacked(dl, NULL);
    }
    gw_letter_reading_free(&r);
    free(msg);
    return 0;
}
