/* fuzz_protobuf.c: the protobuf-c decoders of the messages the services take from ZeroMQ peers
 * (proto/lcore.proto: Reading, SealedRecord, Query, QueryReply, StoredRecords). Every input is
 * unpacked as each of them; what unpacks must pack to the size it announces, and is freed
 * (LeakSanitizer checks the free). Unpacking the packed bytes again is not asserted: protobuf-c
 * keeps an unknown field it then refuses once re-packed (found here: 80 00 26, a tag of field
 * number 0), a property of libprotobuf-c, not of lib/. */
#include "lcore.pb-c.h"

#include <assert.h>
#include <stdint.h>
#include <stdlib.h>

static void s_repack(const ProtobufCMessage *msg)
{
    size_t len = protobuf_c_message_get_packed_size(msg);
    uint8_t *buf = malloc(len ? len : 1);
    if (!buf)
        return;
    assert(protobuf_c_message_pack(msg, buf) == len);
    ProtobufCMessage *again = protobuf_c_message_unpack(msg->descriptor, NULL, len, buf);
    if (again)
        protobuf_c_message_free_unpacked(again, NULL);
    free(buf);
}

/* Unpack as one message type with its generated functions, check, free. */
#define S_UNPACK(type, fn)                                                                         \
    do {                                                                                           \
        type *m = fn##__unpack(NULL, size, in);                                                    \
        if (m) {                                                                                   \
            s_repack(&m->base);                                                                    \
            fn##__free_unpacked(m, NULL);                                                          \
        }                                                                                          \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *in = malloc(size ? size : 1); /* exact size: reads past the end are seen */
    if (!in)
        return 0;
    for (size_t i = 0; i < size; i++)
        in[i] = data[i];
    S_UNPACK(Lcore__V1__Reading, lcore__v1__reading);
    S_UNPACK(Lcore__V1__SealedRecord, lcore__v1__sealed_record);
    S_UNPACK(Lcore__V1__Query, lcore__v1__query);
    S_UNPACK(Lcore__V1__QueryReply, lcore__v1__query_reply);
    S_UNPACK(Lcore__V1__StoredRecords, lcore__v1__stored_records);
    free(in);
    return 0;
}
