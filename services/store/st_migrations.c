/* st_migrations.c: schema history. Never edit an applied migration: add a new one. */
#include "st_migrations.h"

const st_migration_t st_migrations[] = {
    {1, "devices and records",
     "CREATE TABLE devices ("
     "  device_id     text PRIMARY KEY CHECK (length(device_id) BETWEEN 1 AND 128),"
     "  alg           text NOT NULL CHECK (alg IN ('EdDSA', 'ES256K')),"
     "  public_key    bytea NOT NULL CHECK (length(public_key) IN (32, 33)),"
     "  did_document  jsonb,"
     "  status        text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'revoked')),"
     "  registered_at timestamptz NOT NULL DEFAULT now(),"
     "  revoked_at    timestamptz"
     ");"
     /* One row per reading. Only sealed bytes: the plaintext never reaches the database. */
     "CREATE TABLE records ("
     "  id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
     "  record_id     bytea NOT NULL UNIQUE CHECK (length(record_id) = 32),"
     "  device_id     text NOT NULL REFERENCES devices (device_id),"
     "  seq           bigint NOT NULL CHECK (seq >= 0),"
     "  device_ts_ms  bigint NOT NULL,"
     "  key_version   integer NOT NULL CHECK (key_version > 0),"
     "  aes_nonce     bytea NOT NULL CHECK (length(aes_nonce) = 12),"
     "  xchacha_nonce bytea NOT NULL CHECK (length(xchacha_nonce) = 24),"
     "  ciphertext    bytea NOT NULL,"
     "  envelope_hash bytea NOT NULL CHECK (length(envelope_hash) = 32),"
     "  received_at   timestamptz NOT NULL,"
     "  stored_at     timestamptz NOT NULL DEFAULT now(),"
     "  UNIQUE (device_id, seq)"
     ");"},
};
const size_t st_migrations_len = sizeof st_migrations / sizeof st_migrations[0];
