/* st_migrations.c: schema history and the service roles' grants. Never edit an applied
 * migration: add a new one. The grants are applied again by every `lcore-store migrate`, so they
 * are edited in place (a new table gets its rows here in the same commit as its migration). */
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
    {2, "chain anchoring",
     /* A batch is a contiguous range of records (insertion order); its id is the on-chain
      * batchId. A record is a leaf of exactly one live batch; superseded batches (replaced at
      * the same nonce by a larger one, or never mined) keep their leaves for the audit trail. */
     "CREATE TABLE chain_batches ("
     "  id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
     "  root          bytea NOT NULL CHECK (length(root) = 32),"
     "  leaf_count    integer NOT NULL CHECK (leaf_count > 0),"
     "  first_record  bigint NOT NULL,"
     "  last_record   bigint NOT NULL,"
     "  status        text NOT NULL DEFAULT 'pending' CHECK (status IN"
     "                ('pending', 'anchored', 'confirmed', 'finalized', 'superseded')),"
     "  created_at    timestamptz NOT NULL DEFAULT now(),"
     "  confirmed_at  timestamptz"
     ");"
     "CREATE TABLE chain_batch_leaves ("
     "  batch_id      bigint NOT NULL REFERENCES chain_batches (id),"
     "  leaf_index    integer NOT NULL,"
     "  record_pk     bigint NOT NULL REFERENCES records (id),"
     "  leaf          bytea NOT NULL CHECK (length(leaf) = 32),"
     "  PRIMARY KEY (batch_id, leaf_index)"
     ");"
     "CREATE INDEX chain_batch_leaves_record ON chain_batch_leaves (record_pk);"
     /* One row per nonce used; attempts are the signed transactions sent for it. */
     "CREATE TABLE chain_txs ("
     "  id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
     "  batch_id      bigint NOT NULL REFERENCES chain_batches (id),"
     "  from_address  bytea NOT NULL CHECK (length(from_address) = 20),"
     "  nonce         bigint NOT NULL CHECK (nonce >= 0),"
     "  state         text NOT NULL CHECK (state IN ('unstarted', 'in_progress', 'unconfirmed',"
     "                'confirmed', 'finalized', 'fatal_error')),"
     "  gas_limit     bigint NOT NULL,"
     "  mined_hash    bytea,"
     "  block_number  bigint,"
     "  block_hash    bytea,"
     "  gas_used      bigint,"
     "  effective_gas_price numeric(78, 0),"
     "  error         text,"
     "  created_at    timestamptz NOT NULL DEFAULT now(),"
     "  updated_at    timestamptz NOT NULL DEFAULT now()"
     ");"
     "CREATE UNIQUE INDEX chain_txs_live_nonce ON chain_txs (from_address, nonce)"
     "  WHERE state <> 'fatal_error';"
     "CREATE TABLE chain_tx_attempts ("
     "  id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
     "  tx_id         bigint NOT NULL REFERENCES chain_txs (id),"
     "  batch_id      bigint NOT NULL REFERENCES chain_batches (id),"
     "  tip           numeric(78, 0) NOT NULL,"
     "  fee_cap       numeric(78, 0) NOT NULL,"
     "  hash          bytea NOT NULL UNIQUE CHECK (length(hash) = 32),"
     "  raw           bytea NOT NULL,"
     "  broadcast_at  timestamptz,"
     "  created_at    timestamptz NOT NULL DEFAULT now()"
     ");"
     "CREATE INDEX chain_tx_attempts_tx ON chain_tx_attempts (tx_id);"},
    {3, "chain head",
     /* The relayer's latest view of the chain, so record lookups can say how deep a batch is. */
     "CREATE TABLE chain_head ("
     "  id          integer PRIMARY KEY CHECK (id = 1),"
     "  block       bigint NOT NULL,"
     "  updated_at  timestamptz NOT NULL DEFAULT now()"
     ");"},
    {4, "dead letters",
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
};
const size_t st_migrations_len = sizeof st_migrations / sizeof st_migrations[0];

/* Exactly the statements each service runs (services/store/st_db.c, services/chain/ch_db.c).
 * Identity columns need no sequence privilege for their default; the relayer reserves batch ids
 * with nextval() itself (ch_db_reserve_batch_id), hence USAGE on that one sequence. */
const st_grant_t st_grants[] = {
    /* lcore-store: records and devices are written once, never updated or deleted. */
    {ST_ROLE_STORE, "SELECT, INSERT", "TABLE records"},
    {ST_ROLE_STORE, "SELECT, INSERT", "TABLE devices"},
    {ST_ROLE_STORE, "SELECT, INSERT", "TABLE dead_letters"},
    {ST_ROLE_STORE, "SELECT", "TABLE schema_migrations"},
    /* Record status (st_db.c s_add_anchor) still joins the relayer's tables. */
    {ST_ROLE_STORE, "SELECT", "TABLE chain_batches"},
    {ST_ROLE_STORE, "SELECT", "TABLE chain_batch_leaves"},
    {ST_ROLE_STORE, "SELECT", "TABLE chain_txs"},
    {ST_ROLE_STORE, "SELECT", "TABLE chain_head"},
    /* lcore-chain: its own tables; leaves are written once. Reads records to batch them (until
     * stored events carry what it needs). */
    {ST_ROLE_CHAIN, "SELECT, INSERT, UPDATE", "TABLE chain_batches"},
    {ST_ROLE_CHAIN, "SELECT, INSERT", "TABLE chain_batch_leaves"},
    {ST_ROLE_CHAIN, "SELECT, INSERT, UPDATE", "TABLE chain_txs"},
    {ST_ROLE_CHAIN, "SELECT, INSERT, UPDATE", "TABLE chain_tx_attempts"},
    {ST_ROLE_CHAIN, "SELECT, INSERT, UPDATE", "TABLE chain_head"},
    {ST_ROLE_CHAIN, "USAGE", "SEQUENCE chain_batches_id_seq"},
    {ST_ROLE_CHAIN, "SELECT", "TABLE records"},
};
const size_t st_grants_len = sizeof st_grants / sizeof st_grants[0];
