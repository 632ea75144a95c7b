"""PostgreSQL least privilege, end to end on the native stack: lcore-store and lcore-chain connect
as their own roles (lcore_store, lcore_chain; DSNs in the stack's pg/ state dir), which may do what
their service does and nothing else: no DELETE or UPDATE of records, no COPY TO PROGRAM, no CREATE,
no superuser. The operator API's tables: the store's role may change a device's status and
revoked_at only (never its key: device_keys is append-only), mark a token deleted only, and only
append to audit_log. Each service owns its tables (docs/ARCHITECTURE.md "Database roles"): the store's
role cannot touch the chain's tables and the chain's role cannot read the store's (records
included). The store numbers its records' positions 1..n. The owner DSN that `scripts/stack up`
prints still works for operators, both migrates are idempotent, and a store or a relayer started
on a database nobody migrated stays not ready (saying why) until its own migrate ran: the relayer
needs none of the store's tables."""
import os
import re
import subprocess
import time

from chain import free_port
from harness import BIN, Checks, Device, Stack, expect, readyz


def psql(dsn, sql):
    """(exit code, stdout, stderr) of psql running sql (statements on stdin, stop at the first
    error)."""
    out = subprocess.run(["psql", dsn, "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1"], input=sql,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=60)
    return out.returncode, out.stdout.strip(), out.stderr.strip()


def ok(dsn, sql):
    rc, out, err = psql(dsn, sql)
    expect(rc == 0, f"{sql!r} failed: {err}")
    return out


def refused(dsn, sql, why=r"permission denied|must be superuser"):
    rc, out, err = psql(dsn, sql)
    expect(rc != 0, f"{sql!r} was allowed (output {out!r})")
    expect(re.search(why, err), f"{sql!r} failed, but not for lack of privilege: {err}")


def main():
    checks = Checks()
    with Stack(workers=1) as st:
        pg = os.path.join(st.dir, "pg")
        owner = st.vars["LCORE_PG_DSN"]
        roles = {"lcore_store": open(os.path.join(pg, "store_dsn")).read().strip(),
                 "lcore_chain": open(os.path.join(pg, "chain_dsn")).read().strip()}
        store, chain = roles["lcore_store"], roles["lcore_chain"]
        dev = Device(st, "roles-1")

        def readings_stored_with_positions():
            s, _, body = dev.register()
            expect(s == 201, f"register: {s} {body}")
            for seq in range(3):
                s, _, body = dev.post(dev.sign(dev.reading(seq)))
                expect(s == 202, f"reading {seq}: {s} {body}")
            expect(st.wait_rows("device_id = 'roles-1'", 3) == 3, "3 readings not stored")
            # Written by lcore_store under its store_id, numbered 1..n with the position in
            # `stores` moved along (no redelivery here, so no hole).
            got = st.sql("SELECT r.store_id, count(*), min(r.position), max(r.position),"
                         " s.position FROM records r JOIN stores s USING (store_id)"
                         " GROUP BY r.store_id, s.position")
            expect(got == "store|3|1|3|3", f"(store_id, records, min, max, stores.position) = {got}")

        def services_connect_as_their_roles():
            got = st.sql("SELECT DISTINCT application_name || '=' || usename FROM pg_stat_activity"
                         " WHERE application_name IN ('lcore-store', 'lcore-chain') ORDER BY 1")
            expect(got.split() == ["lcore-chain=lcore_chain", "lcore-store=lcore_store"],
                   f"service connections (application=role): {got.split()}")

        def no_service_role_is_powerful():
            for role, dsn in roles.items():
                who = ok(dsn, "SELECT current_user, rolsuper, rolcreaterole, rolcreatedb,"
                              " rolbypassrls FROM pg_roles WHERE rolname = current_user")
                expect(who == f"{role}|f|f|f|f", f"{role}: (name, super, createrole, createdb,"
                       f" bypassrls) = {who}")
                owns = ok(dsn, "SELECT count(*) FROM pg_class WHERE relowner ="
                               " (SELECT oid FROM pg_roles WHERE rolname = current_user)")
                expect(owns == "0", f"{role} owns {owns} relations")
                member = ok(dsn, "SELECT pg_has_role(current_user, 'lcore', 'USAGE')")
                expect(member == "f", f"{role} has the owner's privileges")

        def records_cannot_be_deleted_or_updated():
            for dsn in roles.values():
                refused(dsn, "DELETE FROM records")
                refused(dsn, "UPDATE records SET seq = seq")
                refused(dsn, "TRUNCATE records")
            n = st.sql("SELECT count(*) FROM records WHERE device_id = 'roles-1'")
            expect(n == "3", f"{n} records left of 3")

        def no_program_no_ddl():
            for dsn in roles.values():
                refused(dsn, "COPY (SELECT 1) TO PROGRAM 'true'")
                refused(dsn, "CREATE TABLE pgroles_probe (x int)")
                refused(dsn, "CREATE TEMP TABLE pgroles_probe (x int)")
                refused(dsn, "DROP TABLE dead_letters", r"must be owner|permission denied")
            public = st.sql("SELECT has_schema_privilege('public', 'public', 'CREATE')")
            expect(public == "f", "PUBLIC may CREATE in schema public")

        def store_role_does_its_work_only():
            # What lcore-store runs, in a transaction rolled back.
            rid = "'\\x" + "ab" * 32 + "'"
            out = ok(store, "BEGIN;"
                     "INSERT INTO devices (device_id, alg, public_key) VALUES"
                     " ('roles-probe', 'EdDSA', '\\x" + "11" * 32 + "');"
                     "INSERT INTO stores (store_id) VALUES ('roles-probe');"
                     "UPDATE stores SET position = 1 WHERE store_id = 'roles-probe';"
                     "INSERT INTO records (record_id, store_id, position, device_id, seq,"
                     " device_ts_ms, key_version, aes_nonce, xchacha_nonce, ciphertext,"
                     " envelope_hash, received_at, reading_hash) VALUES"
                     f" ({rid}, 'roles-probe', 1, 'roles-probe', 0, 0, 1, '\\x{'00' * 12}',"
                     f" '\\x{'00' * 24}', '\\x00', '\\x{'00' * 32}', now(), '\\x{'00' * 32}')"
                     " RETURNING position;"
                     "INSERT INTO dead_letters (record_id, device_id, seq, device_ts_ms, gateway_id,"
                     " stage, reason, attempts, gateway_sealed, gateway_key_version) VALUES"
                     f" ('\\x{'cd' * 32}', 'roles-probe', 1, 0, 'gw', 'crypto', 'probe', 1,"
                     f" '\\x{'ee' * 40}', 1);"
                     "INSERT INTO seq_conflicts (record_id, reading_hash, store_id, device_id, seq,"
                     " device_ts_ms, key_version, aes_nonce, xchacha_nonce, ciphertext,"
                     f" envelope_hash, gateway_id, received_at) VALUES ({rid}, '\\x{'01' * 32}',"
                     f" 'roles-probe', 'roles-probe', 0, 0, 1, '\\x{'00' * 12}', '\\x{'00' * 24}',"
                     f" '\\x00', '\\x{'00' * 32}', 'gw', now());"
                     # The derived seq ranges: inserted, merged in place (UPDATE, DELETE).
                     "INSERT INTO device_seq_ranges (device_id, from_seq, to_seq,"
                     " last_received_at) VALUES ('roles-probe', 0, 0, now()),"
                     " ('roles-probe', 1, 1, now());"
                     "UPDATE device_seq_ranges SET to_seq = 1 WHERE from_seq = 0"
                     " AND device_id = 'roles-probe';"
                     "DELETE FROM device_seq_ranges WHERE from_seq = 1"
                     " AND device_id = 'roles-probe';"
                     # The operator API (st_admin.c): a device's key, its status, a token, the
                     # audit log.
                     "INSERT INTO device_keys (device_id, key_no, alg, public_key) VALUES"
                     " ('roles-probe', 1, 'EdDSA', '\\x" + "11" * 32 + "');"
                     "UPDATE devices SET status = 'revoked', revoked_at = now()"
                     " WHERE device_id = 'roles-probe';"
                     "INSERT INTO tokens (id, hash, scope, devices, created_by) VALUES"
                     " ('tok_00000000000000aa', '\\x" + "22" * 32 + "', 'read', '{roles-probe}',"
                     " 'admin');"
                     "UPDATE tokens SET deleted_at = now() WHERE id = 'tok_00000000000000aa';"
                     "INSERT INTO audit_log (token_id, action, target) VALUES"
                     " ('admin', 'device.revoke', 'roles-probe');"
                     "SELECT count(*) FROM records r JOIN devices d USING (device_id)"
                     " WHERE d.device_id = 'roles-probe';"
                     "SELECT max(version) FROM store_migrations;"
                     "SELECT count(*) FROM audit_log a JOIN tokens t ON t.created_by = a.token_id"
                     " WHERE t.deleted_at IS NOT NULL AND a.target = 'roles-probe';"
                     "ROLLBACK;")
            expect(out.split() == ["1", "1", "5", "1"], f"store role's inserts and reads: {out!r}")
            # A device's key is never overwritten (a rotation appends to device_keys), nor its
            # registration; a token's hash, scope or devices never change; the audit log only
            # grows.
            for column in ("public_key", "alg", "device_id", "registered_at", "did_document"):
                refused(store, f"UPDATE devices SET {column} = {column}")
            refused(store, "DELETE FROM devices")
            refused(store, "UPDATE device_keys SET public_key = public_key")
            refused(store, "DELETE FROM device_keys")
            for column in ("hash", "scope", "devices", "expires_at", "id", "created_by"):
                refused(store, f"UPDATE tokens SET {column} = {column}")
            refused(store, "DELETE FROM tokens")
            refused(store, "UPDATE audit_log SET action = action")
            refused(store, "DELETE FROM audit_log")
            refused(store, "TRUNCATE audit_log")
            refused(store, "TRUNCATE tokens")
            refused(store, "DELETE FROM dead_letters")
            refused(store, "UPDATE dead_letters SET reason = 'x'")
            refused(store, "DELETE FROM seq_conflicts")
            refused(store, "DELETE FROM stores")
            for table in ("chain_records", "chain_feed", "anchors", "anchor_leaves", "anchor_txs",
                          "anchor_tx_attempts", "chain_head", "chain_identity", "chain_migrations"):
                refused(store, f"SELECT * FROM {table}")
            refused(store, "INSERT INTO chain_head (id, block) VALUES (1, 1)")

        def chain_role_does_its_work_only():
            # What lcore-chain runs (ch_db.c), in a transaction rolled back: take in a record,
            # move a feed position, reserve an anchor id, anchor it, send and mine a transaction.
            h = lambda b: "'\\x" + b * 32 + "'"
            out = ok(chain, "BEGIN;"
                     # The anchor tables take writes from the relayer lease's holder only.
                     "INSERT INTO relayer_lease (chain_id, contract, holder, epoch, expires_at)"
                     " VALUES (424242, '\\x" + "02" * 20 + "', 'probe', 1,"
                     " now() + interval '1 minute');"
                     "SET LOCAL lcore.lease_holder = 'probe'; SET LOCAL lcore.lease_epoch = '1';"
                     "INSERT INTO chain_records (record_id, envelope_hash, store_id, position,"
                     f" stored_at, received_at) VALUES ({h('ab')}, {h('cd')}, 'probe', 1, now(),"
                     " now());"
                     "INSERT INTO chain_feed (store_id, position) VALUES ('probe', 1);"
                     "UPDATE chain_feed SET position = 2 WHERE store_id = 'probe';"
                     "SELECT nextval(pg_get_serial_sequence('anchors', 'id')) > 0;"
                     "WITH a AS (INSERT INTO anchors (root, leaf_count, first_arrival, last_arrival)"
                     " SELECT " + h('ee') + ", 1, arrival, arrival FROM chain_records WHERE"
                     " store_id = 'probe' RETURNING id, first_arrival),"
                     " l AS (INSERT INTO anchor_leaves (anchor_id, leaf_index, arrival, leaf)"
                     " SELECT id, 0, first_arrival, " + h('ff') + " FROM a RETURNING anchor_id),"
                     " t AS (INSERT INTO anchor_txs (anchor_id, from_address, nonce, state,"
                     " gas_limit) SELECT anchor_id, '\\x" + "01" * 20 + "', 987654, 'in_progress',"
                     " 1 FROM l RETURNING id, anchor_id)"
                     " INSERT INTO anchor_tx_attempts (tx_id, anchor_id, tip, fee_cap, hash, raw)"
                     " SELECT id, anchor_id, 1, 2, " + h('99') + ", '\\x00' FROM t;"
                     "UPDATE anchor_tx_attempts SET broadcast_at = now() WHERE fee_cap = 2;"
                     "UPDATE anchor_txs SET state = 'unconfirmed' WHERE nonce = 987654;"
                     "UPDATE anchors SET status = 'anchored' WHERE root = " + h('ee') + ";"
                     "INSERT INTO chain_head (id, block) VALUES (1, 1) ON CONFLICT (id) DO UPDATE"
                     " SET block = chain_head.block;"
                     "SELECT count(*) FROM anchor_leaves l JOIN chain_records c USING (arrival)"
                     " WHERE c.store_id = 'probe';"
                     "SELECT max(version) FROM chain_migrations;"
                     "ROLLBACK;")
            expect(out.split() == ["t", "1", "4"], f"chain role's inserts and reads: {out!r}")
            refused(chain, "UPDATE anchors SET status = status WHERE false",
                    "relayer lease not held by this session")
            refused(chain, "UPDATE chain_records SET position = position")
            refused(chain, "UPDATE anchor_leaves SET leaf = leaf")
            refused(chain, "DELETE FROM anchors")
            refused(chain, "DELETE FROM chain_records")

        def chain_role_sees_none_of_the_stores_tables():
            for table in ("records", "devices", "dead_letters", "seq_conflicts", "stores",
                          "store_migrations", "device_seq_ranges", "device_keys", "tokens",
                          "audit_log"):
                refused(chain, f"SELECT * FROM {table}")
            refused(chain, "INSERT INTO devices (device_id, alg, public_key) VALUES"
                           " ('x', 'EdDSA', '\\x" + "11" * 32 + "')")

        def owner_dsn_works_for_operators():
            who = st.sql("SELECT current_user, (SELECT count(*) FROM records WHERE device_id ="
                         " 'roles-1'), has_table_privilege('records', 'DELETE')")
            expect(who == "lcore|3|t", f"owner DSN: (role, records, may delete) = {who}")
            rid = st.sql("SELECT encode(record_id, 'hex') FROM records WHERE device_id ="
                         " 'roles-1' ORDER BY seq LIMIT 1")
            out = st.cli("decrypt", rid)
            expect("roles-1" in out.stdout, f"lcore-cli decrypt with the owner DSN: {out.stdout}")

        def migrates_are_idempotent():
            for svc, role, version in (("store", "lcore_store", 5), ("chain", "lcore_chain", 4)):
                out = migrate(svc, owner)
                expect(out.returncode == 0, f"lcore-{svc} migrate again exited {out.returncode}:"
                       f" {out.stderr}")
                lines = out.stdout.splitlines()
                expect(lines == [f"schema at version {version} (nothing to apply)",
                                 f"grants applied to {role} ({svc})"],
                       f"lcore-{svc} migrate said: {lines}")
                expect(":" + open(os.path.join(pg, "password")).read().strip() + "@" not in
                       out.stderr, f"lcore-{svc} migrate logged the owner's password")

        def unmigrated_database_keeps_store_not_ready():
            su = (f"postgresql://postgres:{open(os.path.join(pg, 'superuser_password')).read().strip()}"
                  f"@127.0.0.1:{open(os.path.join(pg, 'port')).read().strip()}/postgres")
            ok(su, "CREATE DATABASE lcore_empty OWNER lcore")
            try:
                s_dsn, o_dsn = (d.rsplit("/", 1)[0] + "/lcore_empty" for d in (store, owner))
                admin = free_port()
                env = dict(st.env, LCORE_PG_DSN=s_dsn, LCORE_STORE_ADMIN_BIND=f"127.0.0.1:{admin}",
                           LCORE_CURVE_CERT=os.path.join(st.dir, "curve", "store", "store.cert_secret"),
                           LCORE_CURVE_TRUST_DIR=st.vars["LCORE_CURVE_TRUST_DIR"],
                           LCORE_STORE_SEALED_BIND=f"tcp://127.0.0.1:{free_port()}",
                           LCORE_STORE_EVENTS_BIND=f"tcp://127.0.0.1:{free_port()}",
                           LCORE_STORE_QUERIES_BIND=f"tcp://127.0.0.1:{free_port()}")
                log = os.path.join(st.dir, "empty-store.log")
                with open(log, "w") as f:
                    p = subprocess.Popen([os.path.join(BIN, "lcore-store")], env=env, stdout=f, stderr=f)
                try:
                    time.sleep(4)  # several retries
                    code, body = readyz(f"http://127.0.0.1:{admin}")
                    expect(p.poll() is None, "the store exited on an unmigrated database")
                    expect(code == 503 and "not migrated" in body, f"/readyz {code} {body!r}")
                    text = open(log).read()
                    expect(text.count("waiting_for_schema") == 1,
                           f"waiting_for_schema logged {text.count('waiting_for_schema')} times")
                    mig = migrate("store", o_dsn)
                    expect(mig.returncode == 0 and "applied migration 1: devices, records, stores,"
                           " dead letters" in mig.stdout,
                           f"migrate: {mig.returncode} {mig.stdout} {mig.stderr}")
                    deadline = time.time() + 15
                    while readyz(f"http://127.0.0.1:{admin}")[0] != 200 and time.time() < deadline:
                        time.sleep(0.2)
                    code, body = readyz(f"http://127.0.0.1:{admin}")
                    expect(code == 200, f"/readyz after migrate: {code} {body!r}")
                    text = open(log).read()
                    expect(password_free(text, pg), "the store logged a password")
                finally:
                    p.terminate()
                    p.wait(timeout=15)
            finally:
                ok(su, "DROP DATABASE lcore_empty WITH (FORCE)")

        def chain_starts_on_its_own_database():
            """A relayer on a database nobody migrated is not ready; `lcore-chain migrate` alone
            (no store tables) makes it ready."""
            su = (f"postgresql://postgres:{open(os.path.join(pg, 'superuser_password')).read().strip()}"
                  f"@127.0.0.1:{open(os.path.join(pg, 'port')).read().strip()}/postgres")
            ok(su, "CREATE DATABASE lcore_chain_only OWNER lcore")
            try:
                c_dsn, o_dsn = (d.rsplit("/", 1)[0] + "/lcore_chain_only" for d in (chain, owner))
                # A key of its own (nothing to send: no records), so it never meets the stack's
                # relayer's transactions.
                key = os.path.join(st.dir, "chain-only.key")
                env = dict(st.env, LCORE_CHAIN_KEY_FILE=key, LCORE_CHAIN_ID="31337")
                gen = subprocess.run([os.path.join(BIN, "lcore-chain"), "keygen"], env=env,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     timeout=30)
                expect(gen.returncode == 0, f"keygen: {gen.stderr}")
                admin = f"http://127.0.0.1:{free_port()}"
                env.update(LCORE_PG_DSN=c_dsn, LCORE_CHAIN_ADMIN_BIND=admin[len("http://"):],
                           LCORE_CHAIN_RPC=st.vars["LCORE_CHAIN_RPC"],
                           LCORE_CONTRACT_ADDRESS=st.vars["LCORE_CONTRACT_ADDRESS"],
                           LCORE_CURVE_CERT=os.path.join(st.dir, "curve", "chain", "chain.cert_secret"),
                           LCORE_CURVE_TRUST_DIR=st.vars["LCORE_CURVE_TRUST_DIR"],
                           LCORE_CHAIN_EVENTS_CONNECT=f"tcp://127.0.0.1:{free_port()}")
                log = os.path.join(st.dir, "chain-only.log")
                with open(log, "w") as f:
                    p = subprocess.Popen([os.path.join(BIN, "lcore-chain")], env=env, stdout=f,
                                         stderr=f)
                try:
                    time.sleep(3)  # several retries
                    code, body = readyz(admin)
                    expect(p.poll() is None, "the relayer exited on an unmigrated database")
                    expect(code == 503, f"/readyz before migrate: {code} {body!r}")
                    expect("lcore-chain migrate" in open(log).read(), "the relayer did not say"
                           " what to run")
                    mig = migrate("chain", o_dsn)
                    expect(mig.returncode == 0 and "grants applied to lcore_chain (chain)" in
                           mig.stdout, f"migrate: {mig.returncode} {mig.stdout} {mig.stderr}")
                    deadline = time.time() + 20
                    while readyz(admin)[0] != 200 and time.time() < deadline:
                        time.sleep(0.2)
                    code, body = readyz(admin)
                    expect(code == 200, f"/readyz after lcore-chain migrate: {code} {body!r}")
                    tables = ok(o_dsn, "SELECT string_agg(tablename, ',' ORDER BY tablename) FROM"
                                       " pg_tables WHERE schemaname = 'public'")
                    expect(tables == "anchor_leaves,anchor_tx_attempts,anchor_txs,anchors,"
                           "chain_feed,chain_head,chain_identity,chain_migrations,chain_records,"
                           "relayer_lease",
                           f"tables after lcore-chain migrate alone: {tables}")
                    expect(password_free(open(log).read(), pg), "the relayer logged a password")
                finally:
                    p.terminate()
                    p.wait(timeout=15)
            finally:
                ok(su, "DROP DATABASE lcore_chain_only WITH (FORCE)")

        checks.run("readings are stored, numbered 1..n under the store's store_id",
                   readings_stored_with_positions)
        checks.run("store and chain connect as lcore_store and lcore_chain",
                   services_connect_as_their_roles)
        checks.run("no service role is superuser, creates roles or databases, owns tables",
                   no_service_role_is_powerful)
        checks.run("no service role can DELETE, UPDATE or TRUNCATE records",
                   records_cannot_be_deleted_or_updated)
        checks.run("no service role can COPY TO PROGRAM, CREATE or DROP", no_program_no_ddl)
        checks.run("the store's role inserts and reads what the store needs, nothing more",
                   store_role_does_its_work_only)
        checks.run("the chain's role does what the relayer needs, nothing more",
                   chain_role_does_its_work_only)
        checks.run("the chain's role cannot read records, devices, stores or dead letters",
                   chain_role_sees_none_of_the_stores_tables)
        checks.run("the owner DSN printed by the stack works for operators",
                   owner_dsn_works_for_operators)
        checks.run("lcore-store migrate and lcore-chain migrate are idempotent",
                   migrates_are_idempotent)
        checks.run("a store on an unmigrated database is not ready until it is migrated",
                   unmigrated_database_keeps_store_not_ready)
        checks.run("a relayer needs only its own tables: not ready until lcore-chain migrate",
                   chain_starts_on_its_own_database)
    checks.done()


def migrate(svc, owner_dsn):
    """`lcore-<svc> migrate` with the owner's DSN: the CompletedProcess."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LCORE_")}
    env["LCORE_PG_DSN"] = owner_dsn
    return subprocess.run([os.path.join(BIN, f"lcore-{svc}"), "migrate"], env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=60)


def password_free(text, pg):
    for name in ("password", "store_password", "chain_password", "superuser_password"):
        if open(os.path.join(pg, name)).read().strip() in text:
            return False
    return True


if __name__ == "__main__":
    main()
