"""(device_id, seq) conflicts (DESIGN "HTTP API": the same bytes again get the same answer, other
bytes under an accepted (device_id, seq) get 409 seq_conflict and change nothing), wherever they
are found: at the gateway for a reading still in its log, at the gateway through the store for a
stored seq below the device's next_seq, and at the store when the gateway could not check (the
store did not answer, or another gateway took the first reading: the reading got its 202; the
store keeps it aside, sealed, in seq_conflicts). A device that lost its
counter recovers by going on from the 409's next_seq."""
import os
import signal
import sys
import time

from harness import Checks, Device, Stack, expect

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "faults"))
from faults import alive, kill, pid_of, stack_up  # noqa: E402


def main():
    checks = Checks()
    with Stack(workers=1) as st:
        dev = Device(st, "seq-1")
        s, _, _ = dev.register()
        expect(s == 201, "register")
        first = dev.sign(dev.reading(1, {"v": "first"}))
        state = {}

        def store_decides():
            s, _, body = dev.post(first)
            expect(s == 202, f"seq 1: {s} {body}")
            state["rid"] = body["record_id"]
            st.wait_rows("device_id = 'seq-1' AND seq = 1", 1)
            # The store does not answer the gateway's check (stopped): the reading is accepted
            # all the same (202 means on the gateway's disk), and the store decides once back.
            store = pid_of(st, "store")
            os.kill(store, signal.SIGSTOP)
            try:
                s, _, body = dev.post(dev.sign(dev.reading(1, {"v": "second"})))
            finally:
                os.kill(store, signal.SIGCONT)
            expect(s == 202, f"seq 1 again, other bytes, the store not answering: {s} {body}")
            unanswered = st.metric("LCORE_GATEWAY_ADMIN_URL", "lcore_gateway_seq_check_unanswered_total")
            expect(unanswered >= 1, f"lcore_gateway_seq_check_unanswered_total = {unanswered}")
            deadline = time.time() + 30
            while time.time() < deadline and st.sql("SELECT count(*) FROM seq_conflicts") != "1":
                time.sleep(0.2)
            expect(st.sql("SELECT count(*) FROM seq_conflicts WHERE device_id = 'seq-1' AND seq = 1"
                          " AND length(ciphertext) > 0") == "1", "the conflicting reading is not kept")
            expect(st.sql("SELECT count(*) FROM records WHERE device_id = 'seq-1'") == "1", "a second row")
            out = st.cli("decrypt", state["rid"]).stdout
            expect('"first"' in out, f"the first reading must stay: {out[:200]}")
            n = st.metric("LCORE_STORE_ADMIN_URL", "lcore_store_seq_conflicts_total")
            expect(n == 1, f"lcore_store_seq_conflicts_total = {n}")
            deadline = time.time() + 20
            while time.time() < deadline and st.metric(
                    "LCORE_GATEWAY_ADMIN_URL", 'lcore_gateway_seq_conflicts_total{where="store"}') < 1:
                time.sleep(0.2)
            n = st.metric("LCORE_GATEWAY_ADMIN_URL", 'lcore_gateway_seq_conflicts_total{where="store"}')
            expect(n == 1, f"the gateway was told: {n}")
            # Once the store answers, the gateway finds it itself: 409.
            s, _, body = dev.post(dev.sign(dev.reading(1, {"v": "third"})))
            expect(s == 409 and body["error"] == "seq_conflict" and body["next_seq"] == 2,
                   f"seq 1, other bytes, the store answering: {s} {body}")
        checks.run("a conflict the gateway could not check: 202, kept aside sealed by the store, counted, "
                   "the first stays; then 409 at the gateway",
                   store_decides)

        def in_the_log():
            # No worker: readings stay in the gateway's log, unacknowledged.
            kill(st, "crypto-1", signal.SIGTERM)
            a = dev.sign(dev.reading(2, {"v": "a"}))
            s, _, body = dev.post(a)
            expect(s == 202, f"seq 2: {s} {body}")
            s, _, body = dev.post(dev.sign(dev.reading(2, {"v": "b"})))
            expect(s == 409 and body["error"] == "seq_conflict" and len(body["record_id"]) == 64,
                   f"seq 2, other bytes, still in the log: {s} {body}")
            s, _, body = dev.post(a)
            expect(s == 202, f"seq 2, the same bytes again: {s} {body}")
            n = st.metric("LCORE_GATEWAY_ADMIN_URL", 'lcore_gateway_seq_conflicts_total{where="gateway"}')
            expect(n == 2, f"lcore_gateway_seq_conflicts_total{{where=gateway}} = {n}")
            stack_up(st)
            st.wait_rows("device_id = 'seq-1' AND seq = 2", 1)
            rid2 = st.sql("SELECT encode(record_id, 'hex') FROM records WHERE device_id = 'seq-1' AND seq = 2")
            expect('"a"' in st.cli("decrypt", rid2).stdout, "seq 2 holds the reading that got 202 first")
        checks.run("a conflict with a reading in the gateway's log: 409; the same bytes: 202", in_the_log)

        def lost_counter_recovers():
            for seq in (3, 4, 5):
                s, _, _ = dev.post(dev.sign(dev.reading(seq)))
                expect(s == 202, f"seq {seq}")
            st.wait_rows("device_id = 'seq-1' AND seq = 5", 1)
            # The gateway restarts (its cache goes): the device's next lookup brings next_seq 6.
            kill(st, "gateway", signal.SIGTERM)
            stack_up(st)
            # The device rebooted and counts from 0 again: seq 3 with new bytes.
            s, _, body = dev.post(dev.sign(dev.reading(3, {"after": "reboot"})))
            expect(s == 409 and body["error"] == "seq_conflict" and body["next_seq"] == 6,
                   f"stored seq, other bytes: {s} {body}")
            s, _, body = dev.post(dev.sign(dev.reading(body["next_seq"], {"after": "reboot"})))
            expect(s == 202, f"from next_seq on: {s} {body}")
            st.wait_rows("device_id = 'seq-1' AND seq = 6", 1)
            expect(st.sql("SELECT count(*) FROM seq_conflicts") == "1", "the 409 kept nothing aside")
        checks.run("a device that lost its counter: 409 with next_seq, then accepted from there",
                   lost_counter_recovers)
        for name in ("crypto-1", "gateway"):
            expect(alive(pid_of(st, name)), f"{name} not running at the end")
    checks.done()


if __name__ == "__main__":
    main()
