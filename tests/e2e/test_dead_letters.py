"""Dead letters of the store stage: a record PostgreSQL refuses on its last delivery is kept in
dead_letters as the worker sealed it (never plaintext), listed by `lcore-cli dead-letters list`,
and once the cause is fixed `lcore-cli dead-letters replay` writes it: every accepted reading is
stored. (The crypto stage, sealed by the gateway, is tests/faults/test_fault_workers.py's.)
The refusal is real: a CHECK constraint the operator added, refusing one device's rows.
A reading received after its device was revoked is refused by the store too (it got past the
gateway on its cached key): dead-lettered with reason "device revoked", counted in
lcore_store_records_revoked_total, and stored by a replay once the device is active again."""
from harness import Checks, Device, Stack, expect
import time

EXTRA = {"LCORE_GATEWAY_MAX_ATTEMPTS": "2", "LCORE_GATEWAY_REDELIVER_MS": "300",
         "LCORE_GATEWAY_REDELIVER_MAX_MS": "600"}


def main():
    checks = Checks()
    with Stack(workers=1, extra_env=EXTRA) as st:
        dev = Device(st, "refused-1")
        s, _, _ = dev.register()
        expect(s == 201, "register")
        st.sql("ALTER TABLE records ADD CONSTRAINT test_refuse CHECK (device_id <> 'refused-1') NOT VALID")
        ids = []

        def refused_then_dead_lettered():
            for seq in range(1, 6):
                s, _, body = dev.post(dev.sign(dev.reading(seq, {"n": seq})))
                expect(s == 202, f"seq {seq}: {s} {body}")
                ids.append(body["record_id"])
            deadline = time.time() + 60
            n = "0"
            while time.time() < deadline and n != "5":
                n = st.sql("SELECT count(*) FROM dead_letters WHERE device_id = 'refused-1'")
                time.sleep(0.3)
            expect(n == "5", f"{n} of 5 refused readings dead-lettered")
            row = st.sql("SELECT stage, reason LIKE '%23514%', key_version, length(ciphertext) > 32,"
                         " gateway_sealed IS NULL FROM dead_letters WHERE device_id = 'refused-1' LIMIT 1")
            expect(row == "store|t|1|t|t", f"dead letter kept as the worker sealed it: {row}")
            expect(st.sql("SELECT count(*) FROM records WHERE device_id = 'refused-1'") == "0", "stored anyway")
            listed = st.cli("dead-letters", "list").stdout
            expect(all(i in listed for i in ids) and listed.count("resolved=no") >= 5,
                   f"list: {listed[:300]}")
        checks.run("refused on the last attempt: dead-lettered with the sealed record, listed", refused_then_dead_lettered)

        def replay_after_fix():
            st.sql("ALTER TABLE records DROP CONSTRAINT test_refuse")
            out = st.cli("dead-letters", "replay").stdout
            expect("replayed_store=5" in out, f"replay: {out.strip()}")
            n = st.sql("SELECT count(*) FROM records WHERE device_id = 'refused-1'")
            expect(n == "5", f"{n} of 5 replayed records stored (the replay answers once written)")
            expect('"n":3' in st.cli("decrypt", ids[2]).stdout.replace(" ", ""), "decrypt a replayed record")
            expect(st.cli("dead-letters", "list").stdout.strip() == "", "unresolved after the replay")
            every = st.cli("dead-letters", "list", "--all").stdout
            expect(every.count("resolved=yes") == 5, f"list --all: {every[:300]}")
            again = st.cli("dead-letters", "replay", ids[0]).stdout
            expect("skipped=1" in again, f"replay of a resolved one: {again.strip()}")
            expect(st.sql("SELECT count(*) FROM records WHERE device_id = 'refused-1'") == "5", "a duplicate")
        checks.run("cause fixed: replay writes every one, decryptable, resolved", replay_after_fix)

        def revoked_at_write_time():
            rev = Device(st, "revoked-1")
            s, _, body = rev.register()
            expect(s == 201, f"register: {s} {body}")
            s, _, body = rev.post(rev.sign(rev.reading(1)))
            expect(s == 202, f"seq 1: {s} {body}")
            expect(st.wait_rows("device_id = 'revoked-1'", 1) == 1, "seq 1 not stored")
            # Revoked in the database (as set_device_status does, without its Change): the
            # gateway still holds the key it fetched for seq 1, so only the store can refuse.
            st.sql("UPDATE devices SET status = 'revoked', revoked_at = now()"
                   " WHERE device_id = 'revoked-1'")
            s, _, body = rev.post(rev.sign(rev.reading(2)))
            expect(s == 202, f"seq 2 after the revocation in SQL (the gateway's cached key): {s} {body}")
            deadline = time.time() + 30
            row = ""
            while time.time() < deadline and not row:
                row = st.sql("SELECT stage || '|' || reason FROM dead_letters"
                             " WHERE device_id = 'revoked-1' AND seq = 2")
                time.sleep(0.2)
            expect(row == "store|device revoked", f"dead letter of seq 2: {row!r}")
            expect(st.sql("SELECT count(*) FROM records WHERE device_id = 'revoked-1'") == "1",
                   "a reading received after the revocation was stored")
            n = st.metric("LCORE_STORE_ADMIN_URL", "lcore_store_records_revoked_total")
            expect(n == 1, f"lcore_store_records_revoked_total = {n}")
            st.sql("UPDATE devices SET status = 'active', revoked_at = NULL"
                   " WHERE device_id = 'revoked-1'")
            out = st.cli("dead-letters", "replay").stdout
            expect("replayed_store=1" in out, f"replay: {out.strip()}")
            expect(st.sql("SELECT count(*) FROM records WHERE device_id = 'revoked-1'") == "2",
                   "the replayed reading was not stored after the reactivation")
        checks.run("revoked: a reading received after it is dead-lettered, replayed once active",
                   revoked_at_write_time)

    checks.done()


if __name__ == "__main__":
    main()
