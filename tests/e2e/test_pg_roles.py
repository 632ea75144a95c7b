"""PostgreSQL least privilege, end to end on the native stack: lcore-store and lcore-chain connect
as their own roles (lcore_store, lcore_chain; DSNs in the stack's pg/ state dir), which may do what
their service does and nothing else: no DELETE or UPDATE of records, no COPY TO PROGRAM, no CREATE,
no superuser; the chain's role cannot read the store's device and dead-letter tables. The owner DSN
that `scripts/stack up` prints still works for operators, `lcore-store migrate` is idempotent, and
a store started on a database nobody migrated stays not ready (saying why) until it is migrated."""
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

        def readings_stored_and_anchored():
            s, _, body = dev.register()
            expect(s == 201, f"register: {s} {body}")
            for seq in range(3):
                s, _, body = dev.post(dev.sign(dev.reading(seq)))
                expect(s == 202, f"reading {seq}: {s} {body}")
            expect(st.wait_rows("device_id = 'roles-1'", 3) == 3, "3 readings not stored")
            # The relayer, as lcore_chain, batches them: its grants are enough to do its work.
            deadline = time.time() + 60
            while time.time() < deadline:
                n = st.sql("SELECT count(*) FROM chain_batch_leaves l JOIN records r ON"
                           " r.id = l.record_pk WHERE r.device_id = 'roles-1'")
                if n == "3":
                    return
                time.sleep(0.5)
            raise AssertionError(f"{n} of 3 records batched by the relayer")

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
            # What lcore-store runs, in a transaction rolled back: no sequence privilege is needed
            # for the identity column.
            rid = "'\\x" + "ab" * 32 + "'"
            out = ok(store, "BEGIN;"
                     "INSERT INTO devices (device_id, alg, public_key) VALUES"
                     " ('roles-probe', 'EdDSA', '\\x" + "11" * 32 + "');"
                     "INSERT INTO records (record_id, device_id, seq, device_ts_ms, key_version,"
                     " aes_nonce, xchacha_nonce, ciphertext, envelope_hash, received_at) VALUES"
                     f" ({rid}, 'roles-probe', 0, 0, 1, '\\x{'00' * 12}', '\\x{'00' * 24}',"
                     f" '\\x00', '\\x{'00' * 32}', now()) RETURNING id > 0;"
                     "INSERT INTO dead_letters (record_id, device_id, seq, device_ts_ms, gateway_id,"
                     f" stage, reason, attempts) VALUES ('\\x{'cd' * 32}', 'roles-probe', 1, 0,"
                     " 'gw', 'store', 'probe', 1);"
                     "SELECT count(*) FROM records r JOIN devices d USING (device_id)"
                     " WHERE d.device_id = 'roles-probe';"
                     "SELECT count(*) FROM chain_batch_leaves l JOIN chain_batches b"
                     " ON b.id = l.batch_id;"
                     "ROLLBACK;")
            expect(out.split() == ["t", "1", "3"], f"store role's inserts and reads: {out!r}")
            refused(store, "UPDATE devices SET status = 'revoked'")
            refused(store, "DELETE FROM dead_letters")
            refused(store, "SELECT * FROM chain_tx_attempts")
            refused(store, "INSERT INTO chain_head (id, block) VALUES (1, 1)")

        def chain_role_sees_only_its_tables():
            refused(chain, "SELECT * FROM devices")
            refused(chain, "SELECT * FROM dead_letters")
            refused(chain, "INSERT INTO devices (device_id, alg, public_key) VALUES"
                           " ('x', 'EdDSA', '\\x" + "11" * 32 + "')")
            refused(chain, "UPDATE chain_batch_leaves SET leaf = leaf")
            refused(chain, "DELETE FROM chain_batches")
            n = ok(chain, "SELECT count(*) FROM chain_batches")
            expect(int(n) >= 1, f"the relayer sees {n} batches")

        def owner_dsn_works_for_operators():
            who = st.sql("SELECT current_user, (SELECT count(*) FROM records WHERE device_id ="
                         " 'roles-1'), has_table_privilege('records', 'DELETE')")
            expect(who == "lcore|3|t", f"owner DSN: (role, records, may delete) = {who}")
            rid = st.sql("SELECT encode(record_id, 'hex') FROM records WHERE device_id ="
                         " 'roles-1' ORDER BY seq LIMIT 1")
            out = st.cli("decrypt", rid)
            expect("roles-1" in out.stdout, f"lcore-cli decrypt with the owner DSN: {out.stdout}")

        def migrate_is_idempotent():
            env = dict(st.env, LCORE_PG_DSN=owner)
            out = subprocess.run([os.path.join(BIN, "lcore-store"), "migrate"], env=env,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                 timeout=60)
            expect(out.returncode == 0, f"migrate again exited {out.returncode}: {out.stderr}")
            lines = out.stdout.splitlines()
            expect("schema at version 4 (nothing to apply)" in lines and
                   "grants applied to lcore_store (store)" in lines and
                   "grants applied to lcore_chain (chain)" in lines, f"migrate said: {lines}")
            expect(not any(l.startswith("warning") for l in lines), f"warnings: {lines}")
            expect(":" + open(os.path.join(pg, "password")).read().strip() + "@" not in
                   out.stderr, "migrate logged the owner's password")

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
                    mig = subprocess.run([os.path.join(BIN, "lcore-store"), "migrate"],
                                         env=dict(st.env, LCORE_PG_DSN=o_dsn), stdout=subprocess.PIPE,
                                         stderr=subprocess.PIPE, text=True, timeout=60)
                    expect(mig.returncode == 0 and "applied migration 4: dead letters" in mig.stdout,
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

        checks.run("readings are stored and batched by the relayer", readings_stored_and_anchored)
        checks.run("store and chain connect as lcore_store and lcore_chain",
                   services_connect_as_their_roles)
        checks.run("no service role is superuser, creates roles or databases, owns tables",
                   no_service_role_is_powerful)
        checks.run("no service role can DELETE, UPDATE or TRUNCATE records",
                   records_cannot_be_deleted_or_updated)
        checks.run("no service role can COPY TO PROGRAM, CREATE or DROP", no_program_no_ddl)
        checks.run("the store's role inserts and reads what the store needs, nothing more",
                   store_role_does_its_work_only)
        checks.run("the chain's role cannot read devices or dead letters",
                   chain_role_sees_only_its_tables)
        checks.run("the owner DSN printed by the stack works for operators",
                   owner_dsn_works_for_operators)
        checks.run("lcore-store migrate is idempotent", migrate_is_idempotent)
        checks.run("a store on an unmigrated database is not ready until it is migrated",
                   unmigrated_database_keeps_store_not_ready)
    checks.done()


def password_free(text, pg):
    for name in ("password", "store_password", "chain_password", "superuser_password"):
        if open(os.path.join(pg, name)).read().strip() in text:
            return False
    return True


if __name__ == "__main__":
    main()
