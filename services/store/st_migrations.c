/* st_migrations.c: the store's tables and its role's grants. Never edit an applied migration:
 * add a new one. The grants are applied again by every `lcore-store migrate`, so they are edited
 * in place (a new table gets its rows here in the same commit as its migration). The baseline
 * is new with issue 13 (each service owns its tables): see lc_migrate.c. */
#include "st_migrations.h"

static const lc_migration_t s_migrations[] = {
    {1, "devices, records, stores, dead letters",
     "CREATE TABLE devices ("
     "  device_id     text PRIMARY KEY CHECK (length(device_id) BETWEEN 1 AND 128),"
     "  alg           text NOT NULL CHECK (alg IN ('EdDSA', 'ES256K')),"
     "  public_key    bytea NOT NULL CHECK (length(public_key) IN (32, 33)),"
     "  did_document  jsonb,"
     "  status        text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'revoked')),"
     "  registered_at timestamptz NOT NULL DEFAULT now(),"
     "  revoked_at    timestamptz"
     ");"
     /* One row per reading. Only sealed bytes: the plaintext never reaches the database.
      * position numbers a store's commits (1, 2, ...; a redelivered duplicate leaves a hole), so
      * the relayer can follow each store's records without reading this table. */
     "CREATE TABLE records ("
     "  record_id     bytea PRIMARY KEY CHECK (length(record_id) = 32),"
     "  store_id      text NOT NULL,"
     "  position      bigint NOT NULL CHECK (position > 0),"
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
     "  UNIQUE (device_id, seq),"
     "  UNIQUE (store_id, position)"
     ");"
     /* Each store process's last committed position (LCORE_STORE_ID): moved in the same
      * transaction as the records it numbers, from the value the writer read. */
     "CREATE TABLE stores ("
     "  store_id      text PRIMARY KEY CHECK (length(store_id) BETWEEN 1 AND 64),"
     "  position      bigint NOT NULL DEFAULT 0 CHECK (position >= 0),"
     "  updated_at    timestamptz NOT NULL DEFAULT now()"
     ");"
     /* Readings given up on after their last delivery attempt: who, which reading and why, so
      * an operator can follow up. No payload and no ciphertext. No foreign key to devices: a
      * reading from an unknown device is one of the reasons a record is refused. */
     "CREATE TABLE dead_letters ("
     "  record_id     bytea PRIMARY KEY CHECK (length(record_id) = 32),"
     "  device_id     text NOT NULL,"
     "  seq           bigint NOT NULL CHECK (seq >= 0),"
     "  device_ts_ms  bigint NOT NULL,"
     "  received_at   timestamptz,"
     "  gateway_id    text NOT NULL,"
     "  stage         text NOT NULL CHECK (stage IN ('crypto', 'store')),"
     "  reason        text NOT NULL,"
     "  attempts      integer NOT NULL CHECK (attempts > 0),"
     "  created_at    timestamptz NOT NULL DEFAULT now()"
     ");"},
    {2, "reading hashes and seq conflicts",
     /* SHA-256 of the signed reading (the JWS bytes): the same (device_id, seq) sent again with
      * these bytes is a duplicate, with other bytes a conflict. Nullable only for rows written
      * before this migration; the store writes it on every row. */
     "ALTER TABLE records ADD COLUMN reading_hash bytea CHECK (length(reading_hash) = 32);"
     /* A reading accepted (202) whose (device_id, seq) was already stored with other bytes: not
      * a record (the first one stays), but kept, sealed as the workers sealed it, so nothing
      * accepted is lost. One row per distinct reading. */
     "CREATE TABLE seq_conflicts ("
     "  record_id     bytea NOT NULL CHECK (length(record_id) = 32),"
     "  reading_hash  bytea NOT NULL CHECK (length(reading_hash) = 32),"
     "  store_id      text NOT NULL,"
     "  device_id     text NOT NULL,"
     "  seq           bigint NOT NULL CHECK (seq >= 0),"
     "  device_ts_ms  bigint NOT NULL,"
     "  key_version   integer NOT NULL CHECK (key_version > 0),"
     "  aes_nonce     bytea NOT NULL CHECK (length(aes_nonce) = 12),"
     "  xchacha_nonce bytea NOT NULL CHECK (length(xchacha_nonce) = 24),"
     "  ciphertext    bytea NOT NULL,"
     "  envelope_hash bytea NOT NULL CHECK (length(envelope_hash) = 32),"
     "  gateway_id    text NOT NULL,"
     "  received_at   timestamptz NOT NULL,"
     "  detected_at   timestamptz NOT NULL DEFAULT now(),"
     "  PRIMARY KEY (record_id, reading_hash)"
     ");"},
    {3, "dead letters keep the sealed reading",
     /* A dead letter keeps its reading, never in plaintext, so `lcore-cli dead-letters replay`
      * can put it back through the pipeline: stage 'store' as the worker sealed it (the
      * record's columns), stage 'crypto' (never sealed by a worker) sealed by the gateway with
      * its dead-letter key (gateway_sealed; only that gateway's key ring opens it). Rows from
      * before this migration have neither (NOT VALID: the check holds for new rows). */
     "ALTER TABLE dead_letters"
     "  ADD COLUMN key_version integer CHECK (key_version > 0),"
     "  ADD COLUMN aes_nonce bytea CHECK (length(aes_nonce) = 12),"
     "  ADD COLUMN xchacha_nonce bytea CHECK (length(xchacha_nonce) = 24),"
     "  ADD COLUMN ciphertext bytea,"
     "  ADD COLUMN envelope_hash bytea CHECK (length(envelope_hash) = 32),"
     "  ADD COLUMN reading_hash bytea CHECK (length(reading_hash) = 32),"
     "  ADD COLUMN gateway_sealed bytea,"
     "  ADD COLUMN gateway_key_version integer CHECK (gateway_key_version > 0),"
     "  ADD CONSTRAINT dead_letters_keep_reading CHECK ("
     "    (stage = 'store' AND ciphertext IS NOT NULL AND key_version IS NOT NULL"
     "     AND aes_nonce IS NOT NULL AND xchacha_nonce IS NOT NULL"
     "     AND envelope_hash IS NOT NULL AND reading_hash IS NOT NULL)"
     "    OR (stage = 'crypto' AND gateway_sealed IS NOT NULL"
     "     AND gateway_key_version IS NOT NULL)) NOT VALID;"},
    {4, "received seq ranges per device (completeness)",
     /* Derived from records, for GET /v1/devices/{id}/status: the runs of seqs each device's
      * stored readings cover, written in the write batch's own statement (st_db.c) and merged
      * after it (st_seq_ranges.c). Rows may be adjacent or overlap for a while (two stores
      * writing one device): readers merge them; coverage only grows. last_received_at: the
      * latest received_at of the run's readings (a device's last_seen). Filled here from the
      * records already stored. */
     "CREATE TABLE device_seq_ranges ("
     "  device_id        text NOT NULL REFERENCES devices (device_id),"
     "  from_seq         bigint NOT NULL CHECK (from_seq >= 0),"
     "  to_seq           bigint NOT NULL CHECK (to_seq >= from_seq),"
     "  last_received_at timestamptz NOT NULL,"
     "  PRIMARY KEY (device_id, from_seq)"
     ");"
     "INSERT INTO device_seq_ranges (device_id, from_seq, to_seq, last_received_at)"
     " SELECT device_id, min(seq), max(seq), max(received_at) FROM"
     " (SELECT device_id, seq, received_at,"
     "  seq - row_number() OVER (PARTITION BY device_id ORDER BY seq) AS run FROM records) r"
     " GROUP BY device_id, run;"},
    {5, "device keys, tokens, audit log (operator API)",
     /* Every key a device has held, append-only (never updated: a rotation adds the next key, so
      * a record signed under an older key can still be checked). Key 1 is the registration's,
      * filled here for the devices already registered; the current key is the newest row, and
      * the one before it keeps verifying until the current row's prev_until. devices.alg and
      * devices.public_key stay the registration's key. */
     "CREATE TABLE device_keys ("
     "  device_id     text NOT NULL REFERENCES devices (device_id),"
     "  key_no        integer NOT NULL CHECK (key_no > 0),"
     "  alg           text NOT NULL CHECK (alg IN ('EdDSA', 'ES256K')),"
     "  public_key    bytea NOT NULL CHECK (length(public_key) IN (32, 33)),"
     "  since         timestamptz NOT NULL DEFAULT now(),"
     "  prev_until    timestamptz,"
     "  PRIMARY KEY (device_id, key_no)"
     ");"
     "INSERT INTO device_keys (device_id, key_no, alg, public_key, since)"
     " SELECT device_id, 1, alg, public_key, registered_at FROM devices;"
     /* Bearer tokens: only SHA-256 of a token is ever stored. devices NULL: every device. A
      * token is deleted by setting deleted_at (the row stays: the audit log names it). */
     "CREATE TABLE tokens ("
     "  id            text PRIMARY KEY CHECK (id ~ '^tok_[0-9a-f]{16}$'),"
     "  hash          bytea NOT NULL UNIQUE CHECK (length(hash) = 32),"
     "  scope         text NOT NULL CHECK (scope IN ('read', 'decrypt', 'operator')),"
     "  devices       text[] CHECK (cardinality(devices) BETWEEN 1 AND 1000),"
     "  expires_at    timestamptz,"
     "  created_at    timestamptz NOT NULL DEFAULT now(),"
     "  created_by    text NOT NULL,"
     "  deleted_at    timestamptz"
     ");"
     "CREATE INDEX tokens_live ON tokens (created_at) WHERE deleted_at IS NULL;"
     /* Operator actions and decrypts ("open"), append-only for the services' roles: written in
      * the same statement as the change it records. */
     "CREATE TABLE audit_log ("
     "  id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
     "  at            timestamptz NOT NULL DEFAULT now(),"
     "  token_id      text NOT NULL CHECK (length(token_id) BETWEEN 1 AND 64),"
     "  action        text NOT NULL CHECK (length(action) BETWEEN 1 AND 64),"
     "  target        text NOT NULL CHECK (length(target) BETWEEN 1 AND 128)"
     ");"},
};

/* Exactly the statements services/store/st_db.c and st_admin.c run: records and dead letters
 * are written once, never updated or deleted (so are seq conflicts, device keys and the audit
 * log); a device's status and revoked_at change (revoke, reactivate), nothing else of it; a
 * token is only ever marked deleted; a store's position moves (UPDATE on stores).
 * device_seq_ranges is derived (which seqs arrived, never a reading's data): its runs are merged
 * in place, so UPDATE and DELETE there change no record. audit_log's identity needs no grant on
 * its sequence. */
static const lc_grant_t s_grants[] = {
    {"SELECT, INSERT", "TABLE records"},
    {"SELECT, INSERT, UPDATE (status, revoked_at)", "TABLE devices"},
    {"SELECT, INSERT", "TABLE device_keys"},
    {"SELECT, INSERT, UPDATE (deleted_at)", "TABLE tokens"},
    {"SELECT, INSERT", "TABLE audit_log"},
    {"SELECT, INSERT", "TABLE dead_letters"},
    {"SELECT, INSERT, UPDATE", "TABLE stores"},
    {"SELECT, INSERT", "TABLE seq_conflicts"},
    {"SELECT", "TABLE store_migrations"},
    {"SELECT, INSERT, UPDATE, DELETE", "TABLE device_seq_ranges"},
};

const lc_schema_t st_migrations = {
    .service = "store",
    .command = "lcore-store migrate",
    .history = "store_migrations",
    .lock_key = 0x6c7374726d67LL, /* "lstrmg" */
    .migrations = s_migrations,
    .migrations_len = LC_ARRAY_LEN(s_migrations),
    .grants = s_grants,
    .grants_len = LC_ARRAY_LEN(s_grants),
};
