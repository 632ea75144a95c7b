/* lc_record.h: the record identity shared by gateway, store and tools. */
#ifndef LC_RECORD_H
#define LC_RECORD_H

#include "lc_common.h"

#define LC_RECORD_ID_LEN 32
#define LC_DEVICE_ID_MAX 128
#define LC_STORE_ID_MAX 64
#define LC_READING_HASH_LEN 32

/* record_id = SHA-256("lcore/record" || device_id || seq as 8 bytes big-endian). The fixed-width
 * seq at the end keeps the encoding unambiguous for any device_id length. */
void lc_record_id(uint8_t out[LC_RECORD_ID_LEN], const char *device_id, size_t device_id_len,
                  uint64_t seq);

/* reading_hash = SHA-256 of the signed reading exactly as received (the JWS compact bytes): what
 * tells the same reading sent again (a duplicate) from other bytes under the same (device_id,
 * seq) (a conflict). It reveals nothing a reader could not get from the record: guessing the
 * bytes needs the device's signature over them. */
void lc_reading_hash(uint8_t out[LC_READING_HASH_LEN], const uint8_t *jws, size_t len);

/* A record_id as text: exactly 64 hex digits (either case), with or without "0x". Returns 0 with
 * out filled, or LC_ERR_INVALID (any other length, a bad digit): never a shorter id. */
int lc_record_id_parse(uint8_t out[LC_RECORD_ID_LEN], const char *text, size_t len);

/* A device id is 1..128 bytes of [A-Za-z0-9._:-]. Returns 1 if valid. */
int lc_device_id_valid(const char *device_id, size_t len);

/* A store id (the name a store numbers its records under; a topic segment "stored/<id>/") is
 * 1..64 bytes of the same alphabet. Returns 1 if valid. */
int lc_store_id_valid(const char *store_id, size_t len);

#endif
