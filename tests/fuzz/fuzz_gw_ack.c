/* fuzz_gw_ack.c: the gateway's ack handler's parse step (gw_relay_parse_ack: an Ack from the
 * store, whose record ids leave the relay's table). Every id handed on must be 32 readable
 * bytes; the ids handed on plus those skipped must be all the Ack's ids, record_ids first. */
#include "gw_relay.h"

#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_support.h"
#include "lcore.pb-c.h"

typedef struct {
    size_t ids, conflicts;
    uint8_t last[32];
} s_seen_t;

static void s_on_id(void *arg, const uint8_t record_id[32], int conflict)
{
    s_seen_t *s = arg;
    assert(conflict == 0 || conflict == 1);
    assert(conflict || s->conflicts == 0); /* record_ids before conflicts */
    memcpy(s->last, record_id, 32);
    if (conflict)
        s->conflicts++;
    else
        s->ids++;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *body = fz_copy(data, size);
    if (!body)
        return 0;
    s_seen_t seen = {0};
    int bad = gw_relay_parse_ack(body, size, s_on_id, &seen);
    Lcore__V1__Ack *ack = lcore__v1__ack__unpack(NULL, size, body);
    if (bad < 0) {
        assert(bad == -1 && seen.ids == 0 && seen.conflicts == 0);
        assert(!ack || ack->version != 1);
    } else {
        assert(ack && ack->version == 1);
        assert(seen.ids + seen.conflicts + (size_t)bad == ack->n_record_ids + ack->n_conflicts);
        assert(seen.ids <= ack->n_record_ids && seen.conflicts <= ack->n_conflicts);
    }
    if (ack)
        lcore__v1__ack__free_unpacked(ack, NULL);
    free(body);
    return 0;
}
