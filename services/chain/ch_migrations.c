/* ch_migrations.c: the relayer's tables and its role's grants. Never edit an applied migration:
 * add a new one. The grants are applied again by every `lcore-chain migrate`, so they are
 * edited in place (a new table gets its rows here in the same commit as its migration). The
 * baseline is new with issue 13 (each service owns its tables): see lc_migrate.c. */
#include "ch_migrations.h"

static const lc_migration_t s_migrations[] = {
    {1, "chain records, feed, anchors, transactions, head",
     /* The records the relayer learned of (from each store's StoredRecords), in the order it
      * learned of them: arrival. A record two stores both sent, or one sent twice, is one row. */
     "CREATE TABLE chain_records ("
     "  arrival       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
     "  record_id     bytea NOT NULL UNIQUE CHECK (length(record_id) = 32),"
     "  envelope_hash bytea NOT NULL CHECK (length(envelope_hash) = 32),"
     "  store_id      text NOT NULL,"
     "  position      bigint NOT NULL,"
     "  stored_at     timestamptz NOT NULL,"
     "  received_at   timestamptz NOT NULL"
     ");"
     /* How far the relayer has taken in each store's records. */
     "CREATE TABLE chain_feed ("
     "  store_id      text PRIMARY KEY,"
     "  position      bigint NOT NULL CHECK (position >= 0),"
     "  updated_at    timestamptz NOT NULL DEFAULT now()"
     ");"
     /* An anchor is a contiguous range of arrivals; its id is the on-chain batchId. A record is
      * a leaf of exactly one live anchor; superseded anchors (replaced at the same nonce by a
      * larger one, or never mined) keep their leaves for the audit trail. */
     "CREATE TABLE anchors ("
     "  id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
     "  root          bytea NOT NULL CHECK (length(root) = 32),"
     "  leaf_count    integer NOT NULL CHECK (leaf_count > 0),"
     "  first_arrival bigint NOT NULL,"
     "  last_arrival  bigint NOT NULL,"
     "  status        text NOT NULL DEFAULT 'pending' CHECK (status IN"
     "                ('pending', 'anchored', 'confirmed', 'finalized', 'superseded')),"
     "  created_at    timestamptz NOT NULL DEFAULT now(),"
     "  confirmed_at  timestamptz"
     ");"
     "CREATE TABLE anchor_leaves ("
     "  anchor_id     bigint NOT NULL REFERENCES anchors (id),"
     "  leaf_index    integer NOT NULL,"
     "  arrival       bigint NOT NULL REFERENCES chain_records (arrival),"
     "  leaf          bytea NOT NULL CHECK (length(leaf) = 32),"
     "  PRIMARY KEY (anchor_id, leaf_index)"
     ");"
     "CREATE INDEX anchor_leaves_arrival ON anchor_leaves (arrival);"
     /* One row per nonce used; attempts are the signed transactions sent for it. */
     "CREATE TABLE anchor_txs ("
     "  id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
     "  anchor_id     bigint NOT NULL REFERENCES anchors (id),"
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
     "CREATE UNIQUE INDEX anchor_txs_live_nonce ON anchor_txs (from_address, nonce)"
     "  WHERE state <> 'fatal_error';"
     "CREATE TABLE anchor_tx_attempts ("
     "  id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
     "  tx_id         bigint NOT NULL REFERENCES anchor_txs (id),"
     "  anchor_id     bigint NOT NULL REFERENCES anchors (id),"
     "  tip           numeric(78, 0) NOT NULL,"
     "  fee_cap       numeric(78, 0) NOT NULL,"
     "  hash          bytea NOT NULL UNIQUE CHECK (length(hash) = 32),"
     "  raw           bytea NOT NULL,"
     "  broadcast_at  timestamptz,"
     "  created_at    timestamptz NOT NULL DEFAULT now()"
     ");"
     "CREATE INDEX anchor_tx_attempts_tx ON anchor_tx_attempts (tx_id);"
     /* The relayer's latest view of the chain, so record lookups can say how deep an anchor
      * is. */
     "CREATE TABLE chain_head ("
     "  id            integer PRIMARY KEY CHECK (id = 1),"
     "  block         bigint NOT NULL,"
     "  updated_at    timestamptz NOT NULL DEFAULT now()"
     ");"},
    {2, "chain identity; anchors and transactions of a chain given up are abandoned",
     /* The chain the relayer anchors on: recorded at its first start, compared at every start
      * and while it runs. `lcore-chain adopt-chain` retires the row (retired_at) and records the
      * new chain's: exactly one current row. */
     "CREATE TABLE chain_identity ("
     "  id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
     "  chain_id      bigint NOT NULL,"
     "  genesis_hash  bytea NOT NULL CHECK (length(genesis_hash) = 32),"
     "  contract      bytea NOT NULL CHECK (length(contract) = 20),"
     "  code_hash     bytea NOT NULL CHECK (length(code_hash) = 32),"
     "  deploy_block  bigint,"
     "  deploy_block_hash bytea CHECK (length(deploy_block_hash) = 32),"
     "  recorded_at   timestamptz NOT NULL DEFAULT now(),"
     "  retired_at    timestamptz"
     ");"
     "CREATE UNIQUE INDEX chain_identity_current ON chain_identity ((true))"
     "  WHERE retired_at IS NULL;"
     /* Rows of a chain given up keep their history: abandoned, stamped with that chain's
      * identity (NULL: the current chain's). */
     "ALTER TABLE anchors ADD COLUMN chain_identity bigint REFERENCES chain_identity (id);"
     "ALTER TABLE anchor_txs ADD COLUMN chain_identity bigint REFERENCES chain_identity (id);"
     "ALTER TABLE anchors DROP CONSTRAINT anchors_status_check;"
     "ALTER TABLE anchors ADD CONSTRAINT anchors_status_check CHECK (status IN ('pending',"
     "  'anchored', 'confirmed', 'finalized', 'superseded', 'abandoned'));"
     "ALTER TABLE anchor_txs DROP CONSTRAINT anchor_txs_state_check;"
     "ALTER TABLE anchor_txs ADD CONSTRAINT anchor_txs_state_check CHECK (state IN ('unstarted',"
     "  'in_progress', 'unconfirmed', 'confirmed', 'finalized', 'fatal_error', 'abandoned'));"
     "DROP INDEX anchor_txs_live_nonce;"
     "CREATE UNIQUE INDEX anchor_txs_live_nonce ON anchor_txs (from_address, nonce)"
     "  WHERE state NOT IN ('fatal_error', 'abandoned');"},
    {3, "anchor transactions by anchor",
     /* get_anchors (a reader's page of records) joins each record's anchor to its mined
      * transaction: without this index that is a scan of anchor_txs per record. */
     "CREATE INDEX anchor_txs_anchor ON anchor_txs (anchor_id);"},
    {4, "one active relayer per chain and contract: the lease, and the fence on its writes",
     /* ch_lease.c: the relayer named holder is the active one until expires_at; epoch goes up
      * at each change of holder. */
     "CREATE TABLE relayer_lease ("
     "  chain_id      bigint NOT NULL,"
     "  contract      bytea NOT NULL CHECK (length(contract) = 20),"
     "  holder        text NOT NULL,"
     "  epoch         bigint NOT NULL CHECK (epoch > 0),"
     "  acquired_at   timestamptz NOT NULL DEFAULT clock_timestamp(),"
     "  expires_at    timestamptz NOT NULL,"
     "  PRIMARY KEY (chain_id, contract)"
     ");"
     /* Any write to what decides the transactions (anchors, their leaves, transactions and their
      * signed attempts) needs a live lease held by this session (the settings ch_lease makes),
      * and holds the lease row FOR SHARE until it commits: a takeover waits for it. */
     "CREATE FUNCTION relayer_lease_fence() RETURNS trigger LANGUAGE plpgsql AS $$"
     " BEGIN"
     "  PERFORM 1 FROM relayer_lease"
     "   WHERE holder = current_setting('lcore.lease_holder', true)"
     "   AND epoch::text = current_setting('lcore.lease_epoch', true)"
     "   AND expires_at > clock_timestamp() FOR SHARE;"
     "  IF NOT FOUND THEN"
     "   RAISE EXCEPTION 'relayer lease not held by this session (table %)', TG_TABLE_NAME"
     "    USING ERRCODE = 'LC409';"
     "  END IF;"
     "  RETURN NULL;"
     " END $$;"
     "CREATE TRIGGER anchors_fence BEFORE INSERT OR UPDATE OR DELETE ON anchors"
     "  FOR EACH STATEMENT EXECUTE FUNCTION relayer_lease_fence();"
     "CREATE TRIGGER anchor_leaves_fence BEFORE INSERT OR UPDATE OR DELETE ON anchor_leaves"
     "  FOR EACH STATEMENT EXECUTE FUNCTION relayer_lease_fence();"
     "CREATE TRIGGER anchor_txs_fence BEFORE INSERT OR UPDATE OR DELETE ON anchor_txs"
     "  FOR EACH STATEMENT EXECUTE FUNCTION relayer_lease_fence();"
     "CREATE TRIGGER anchor_tx_attempts_fence BEFORE INSERT OR UPDATE OR DELETE"
     "  ON anchor_tx_attempts FOR EACH STATEMENT EXECUTE FUNCTION relayer_lease_fence();"},
};

/* Exactly the statements services/chain/ch_db.c runs. Records and leaves are written once.
 * Identity columns need no sequence privilege for their default; the relayer reserves anchor
 * ids with nextval() itself (ch_db_reserve_anchor_id), hence USAGE on that one sequence. */
static const lc_grant_t s_grants[] = {
    {"SELECT, INSERT", "TABLE chain_records"},
    {"SELECT, INSERT, UPDATE", "TABLE chain_feed"},
    {"SELECT, INSERT, UPDATE", "TABLE anchors"},
    {"SELECT, INSERT", "TABLE anchor_leaves"},
    {"SELECT, INSERT, UPDATE", "TABLE anchor_txs"},
    {"SELECT, INSERT, UPDATE", "TABLE anchor_tx_attempts"},
    {"SELECT, INSERT, UPDATE", "TABLE chain_head"},
    {"SELECT, INSERT, UPDATE", "TABLE chain_identity"},
    {"SELECT, INSERT, UPDATE", "TABLE relayer_lease"},
    {"USAGE", "SEQUENCE anchors_id_seq"},
    {"SELECT", "TABLE chain_migrations"},
};

const lc_schema_t ch_migrations = {
    .service = "chain",
    .command = "lcore-chain migrate",
    .history = "chain_migrations",
    .lock_key = 0x6c6368616d67LL, /* "lchamg" */
    .migrations = s_migrations,
    .migrations_len = LC_ARRAY_LEN(s_migrations),
    .grants = s_grants,
    .grants_len = LC_ARRAY_LEN(s_grants),
};
