"""GET /v1/devices/{device_id}/status, the completeness report (issue 15 item 3): seqs sent with
holes leave exact gaps, a late reading closes its gap, a redelivered one changes nothing, and
lcore_store_devices_with_gaps counts the device while it has one. Unknown device 404, malformed
id 400; neither changes anything."""
import time

from harness import Checks, Device, Stack, expect, http


def main():
    checks = Checks()
    with Stack(workers=1) as st:
        dev = Device(st, "status-1")
        s, _, _ = dev.register()
        expect(s == 201, "register")

        def status():
            return st.read("/v1/devices/status-1/status")

        signed = {}

        def send(*seqs):
            for seq in seqs:  # a seq sent again is the same bytes: a redelivery
                signed.setdefault(seq, dev.sign(dev.reading(seq, {"v": seq})))
                s, _, body = dev.post(signed[seq])
                expect(s == 202, f"seq {seq}: {s} {body}")

        def gaps_gauge():
            return st.metric("LCORE_STORE_ADMIN_URL", "lcore_store_devices_with_gaps")

        def wait_report(want, timeout=30):
            """The report once its last_seq, contiguous_through and gaps are want's."""
            deadline = time.time() + timeout
            body = None
            while time.time() < deadline:
                s, _, body = status()
                expect(s == 200, f"status: {s} {body}")
                got = (body["last_seq"], body["contiguous_through"], body["gaps"])
                if got == want:
                    return body
                time.sleep(0.2)
            raise AssertionError(f"report {body}, want (last_seq, contiguous_through, gaps) {want}")

        def wait_gauge(want, timeout=15):
            deadline = time.time() + timeout
            while time.time() < deadline and gaps_gauge() != want:
                time.sleep(0.2)
            expect(gaps_gauge() == want, f"lcore_store_devices_with_gaps = {gaps_gauge()}, want {want}")

        def before_any_reading():
            s, _, body = status()
            expect(s == 200 and body == {"device_id": "status-1", "status": "active", "last_seq": None,
                                         "contiguous_through": None, "gaps": [], "gaps_capped": False,
                                         "last_seen": None}, f"no reading yet: {s} {body}")
            wait_gauge(0)
        checks.run("a registered device without readings: no seqs, no gaps", before_any_reading)

        def holes():
            send(1, 2, 3, 5, 6, 9)
            body = wait_report((9, 3, [[4, 4], [7, 8]]))
            expect(body["gaps_capped"] is False and body["status"] == "active", f"{body}")
            expect(body["last_seen"].endswith("Z") and body["last_seen"][:2] == "20", f"last_seen {body}")
            wait_gauge(1)
        checks.run("seqs 1,2,3,5,6,9: gaps [[4,4],[7,8]], contiguous_through 3, last_seq 9; gauge 1", holes)

        def late_and_redelivered():
            send(4)
            wait_report((9, 6, [[7, 8]]))
            send(4, 9)  # the same bytes again: duplicates
            time.sleep(1)
            wait_report((9, 6, [[7, 8]]))
            expect(st.sql("SELECT count(*) FROM records WHERE device_id = 'status-1'") == "7", "records")
        checks.run("4 arrives late: gap [[7,8]], contiguous_through 6; duplicates change nothing",
                   late_and_redelivered)

        def filled():
            send(8, 7)
            wait_report((9, 9, []))
            wait_gauge(0)
        checks.run("7 and 8 arrive: no gaps, contiguous_through 9; gauge 0", filled)

        def bad_input():
            ranges = st.sql("SELECT count(*) FROM device_seq_ranges")
            s, _, body = st.read("/v1/devices/nobody/status")
            expect(s == 404 and body["error"] == "not_found", f"unknown device: {s} {body}")
            for bad in ("bad%20id", "x" * 129, "bad%21id"):
                s, _, body = st.read(f"/v1/devices/{bad}/status")
                expect(s == 400 and body["error"] == "malformed", f"device id {bad!r}: {s} {body}")
            for no_route in ("a/b", ""):  # not one path segment: no such route
                s, _, body = st.read(f"/v1/devices/{no_route}/status")
                expect(s == 404 and body["error"] == "not_found", f"path {no_route!r}: {s} {body}")
            s, _, body = http("POST", f"{st.url}/v1/devices/status-1/status", body="{}")
            expect(s == 405, f"POST: {s} {body}")
            s, _, body = http("GET", f"{st.admin_url}/v1/devices/status-1/status")
            expect(s == 404, f"on the admin listener: {s} {body}")
            expect(st.sql("SELECT count(*) FROM device_seq_ranges") == ranges, "ranges changed")
        checks.run("unknown device 404, malformed ids 400, POST 405, not on the admin listener",
                   bad_input)
    checks.done()


if __name__ == "__main__":
    main()
