/* fuzz_gw_payload.c: the gateway's checks of what a device signed (gw_ingest_payload_invalid:
 * the verified JWS payload must be a JSON object with device_id = the kid, seq, ts and data).
 * Input: byte 0 picks the kid (bit 0) and whether a /device/data body's "data" is compared
 * (bit 1: {"t":21.5}); the rest is the payload. What passes is parsed again here and must hold
 * what the check promised. */
#include "gw_ingest.h"

#include <assert.h>
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_support.h"

static json_t *s_compat;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    s_compat = json_pack("{s:f}", "t", 21.5);
    return s_compat ? 0 : -1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    const char *kid = data[0] & 1 ? "dev:A.b_c-9" : "sensor-01";
    const json_t *compat = data[0] & 2 ? s_compat : NULL;
    uint8_t *payload = fz_copy(data + 1, size - 1);
    if (!payload)
        return 0;
    uint64_t seq = 0, ts = 0;
    const char *why = gw_ingest_payload_invalid(payload, size - 1, kid, compat, &seq, &ts);
    if (!why) {
        json_t *r = json_loadb((const char *)payload, size - 1, JSON_REJECT_DUPLICATES, NULL);
        assert(json_is_object(r));
        assert(strcmp(json_string_value(json_object_get(r, "device_id")), kid) == 0);
        assert((uint64_t)json_integer_value(json_object_get(r, "seq")) == seq && seq <= INT64_MAX);
        assert((uint64_t)json_integer_value(json_object_get(r, "ts")) == ts && ts <= INT64_MAX);
        assert(!compat || json_equal((json_t *)compat, json_object_get(r, "data")));
        json_decref(r);
    } else {
        assert(*why);
    }
    free(payload);
    return 0;
}
