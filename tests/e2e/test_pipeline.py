"""Walking pipeline, end to end: real gateway, crypto workers, store, PostgreSQL, HTTP, ZeroMQ.
Signed readings go in over HTTP; encrypted rows come out in PostgreSQL and open with the keys."""
import base64
import json
import os
import subprocess
import tempfile

from harness import Checks, Device, Stack, expect, http


def main():
    checks = Checks()
    with Stack(workers=2) as st:
        ids_file = os.path.join(st.dir, "accepted.ids")
        prefix = "load"

        def load_1000():
            res = st.sim("--devices", "50", "--count", "1000", "--rate", "0", "--concurrency", "8",
                         "--device-prefix", prefix, "--record-ids", ids_file)
            expect(res["accepted"] == "1000", f"sim accepted {res['accepted']} of 1000: {res}")
            expect(res["record_id_mismatch"] == "0", f"gateway answered wrong record ids: {res}")
            n = st.wait_rows(f"device_id LIKE '{prefix}-%'", 1000)
            expect(n == 1000, f"{n} rows for 1000 accepted readings")
            accepted = set(open(ids_file).read().split())
            stored = set(st.sql(f"SELECT encode(record_id, 'hex') FROM records WHERE device_id LIKE '{prefix}-%'").split())
            expect(accepted == stored, "stored record ids differ from the accepted ones")
            devices = st.sql(f"SELECT count(DISTINCT device_id) FROM records WHERE device_id LIKE '{prefix}-%'")
            expect(devices == "50", f"rows from {devices} devices, want 50")
            acked = st.metric("LCORE_GATEWAY_ADMIN_URL", "lcore_gateway_acked_total")
            expect(acked >= 1000, f"gateway counted {acked} acks")

        def both_workers():
            a = st.metric("LCORE_CRYPTO_ADMIN_URL", "lcore_crypto_readings_sealed_total")
            b = st.metric("LCORE_CRYPTO_2_ADMIN_URL", "lcore_crypto_readings_sealed_total")
            expect(a > 0 and b > 0, f"work split {a}/{b}: both workers must seal")
            expect(a + b >= 1000, f"workers sealed {a + b}")

        dev = Device(st, "probe-1")
        es = Device(st, "probe-k1", alg="ES256K")
        marker = "PLAINTEXT-MARKER-7f3a9c"
        state = {}

        def register():
            s, _, body = dev.register()
            expect(s == 201 and body["status"] == "registered", f"register: {s} {body}")
            s, _, body = dev.register()
            expect(s == 200 and body["status"] == "exists", f"re-register identical: {s} {body}")
            s, _, body = es.register()
            expect(s == 201, f"register ES256K: {s} {body}")
            other = Device(st, "probe-1-other")
            conflicting = json.loads(other.registration)
            conflicting["device_id"] = "probe-1"
            s, _, body = http("POST", st.admin_url + "/v1/devices", json.dumps(conflicting),
                              {"Authorization": "Bearer " + st.token, "Content-Type": "application/json"})
            expect(s == 409 and body["error"] == "conflict", f"conflicting registration: {s} {body}")
            s, _, body = http("POST", st.admin_url + "/v1/devices", dev.registration,
                              {"Authorization": "Bearer wrong", "Content-Type": "application/json"})
            expect(s == 401, f"bad operator token: {s} {body}")

        def decrypt_round_trip():
            payload = dev.reading(1, {"note": marker, "temp": 22.25})
            jws = dev.sign(payload)
            s, _, body = dev.post(jws)
            expect(s == 202 and body["status"] == "accepted", f"post: {s} {body}")
            rid = body["record_id"]
            state["rid"], state["jws"], state["payload"] = rid, jws, payload
            expect(st.wait_rows(f"record_id = '\\x{rid}'", 1) == 1, "record not stored")
            out = st.cli("decrypt", rid)
            expect(payload in out.stdout, f"decrypt did not give the reading back: {out.stdout}")
            expect("device_signature=valid" in out.stdout and "envelope_hash=ok" in out.stdout, out.stdout)
            s, _, rec = st.read("/v1/records/" + rid)
            expect(s == 200 and rec["status"] == "stored" and rec["device_id"] == "probe-1" and rec["seq"] == 1,
                   f"GET record: {s} {rec}")
            eh = st.sql(f"SELECT encode(envelope_hash, 'hex') FROM records WHERE record_id = '\\x{rid}'")
            expect(rec["envelope_hash"] == eh, "envelope_hash differs between API and database")

        def es256k_round_trip():
            payload = es.reading(1, {"k1": True})
            s, _, body = es.post(es.sign(payload))
            expect(s == 202, f"ES256K post: {s} {body}")
            expect(st.wait_rows(f"record_id = '\\x{body['record_id']}'", 1) == 1, "ES256K record not stored")
            out = st.cli("decrypt", body["record_id"])
            expect(payload in out.stdout and "device_signature=valid" in out.stdout, out.stdout)

        def no_plaintext_at_rest():
            rid = state["rid"]
            # The sealed bytes are the JWS; none of its parts, nor the reading itself, may appear.
            b64_payload = state["jws"].split(".")[1]
            for needle in (marker, b64_payload[:40], state["jws"][:40], state["payload"][:30]):
                hits = st.sql("SELECT count(*) FROM records WHERE position(convert_to("
                              f"'{needle}', 'UTF8') in ciphertext) > 0")
                expect(hits == "0", f"plaintext fragment {needle!r} found in a ciphertext")
            # Every row of the load: its ciphertext must not contain its own device id or seq JSON.
            leaks = st.sql("SELECT count(*) FROM records WHERE position(convert_to(device_id, 'UTF8') in ciphertext) > 0"
                           " OR position(convert_to('\"seq\"', 'UTF8') in ciphertext) > 0")
            expect(leaks == "0", f"{leaks} ciphertexts contain their plaintext")
            # The whole database, dumped: the marker is nowhere.
            dump = subprocess.run(["pg_dump", "--data-only", st.vars["LCORE_PG_DSN"]], stdout=subprocess.PIPE,
                                  check=True, timeout=60).stdout
            expect(marker.encode() not in dump and b64_payload[:40].encode() not in dump,
                   "plaintext found in pg_dump")
            expect(len(rid) == 64, "record id")

        def retry_same_id():
            s, _, body = dev.post(state["jws"])
            expect(s == 202 and body["record_id"] == state["rid"], f"retry: {s} {body}")
            same_seq = dev.sign(dev.reading(1, {"different": "data"}))  # same seq, new content
            s, _, body2 = dev.post(same_seq)
            expect(s == 409 and body2["error"] == "seq_conflict" and body2["record_id"] == state["rid"]
                   and body2["next_seq"] >= 2, f"same seq, other bytes: {s} {body2}")
            # Let any duplicate reach the store, then count: still one row.
            s, _, _ = dev.post(dev.sign(dev.reading(2)))
            st.wait_rows("device_id = 'probe-1' AND seq = 2", 1)
            n = st.sql("SELECT count(*) FROM records WHERE device_id = 'probe-1' AND seq = 1")
            expect(n == "1", f"{n} rows for a retried reading")
            out = st.cli("decrypt", state["rid"])
            expect(state["payload"] in out.stdout, "first write must win")

        def bad_signature():
            jws = dev.sign(dev.reading(100))
            h, p, sig = jws.split(".")
            raw = bytearray(base64.urlsafe_b64decode(sig + "=="))
            raw[5] ^= 1
            bad = ".".join([h, p, base64.urlsafe_b64encode(bytes(raw)).decode().rstrip("=")])
            s, _, body = dev.post(bad)
            expect(s == 401 and body["error"] == "bad_signature", f"bad signature: {s} {body}")
            # Signed by another device's key but claiming probe-1.
            forged = es.stack.cli("sign", "--key", es.key, "--kid", "probe-1", stdin=dev.reading(101)).stdout.strip()
            s, _, body = dev.post(forged)
            expect(s == 401, f"forged kid: {s} {body}")
            st.wait_rows("device_id = 'probe-1' AND seq = 2", 1)
            n = st.sql("SELECT count(*) FROM records WHERE device_id = 'probe-1' AND seq IN (100, 101)")
            expect(n == "0", "a badly signed reading was stored")

        def unknown_device():
            ghost = Device(st, "ghost-1")  # key made, never registered
            s, _, body = ghost.post(ghost.sign(ghost.reading(1)))
            expect(s == 403 and body["error"] == "unknown_device", f"unknown device: {s} {body}")

        def too_large():
            big = dev.sign(dev.reading(200, {"blob": "x" * (70 * 1024)}))
            s, _, body = dev.post(big)
            expect(s == 413 and body["error"] == "too_large", f"70 KiB: {s} {body}")

        def malformed():
            for bad in ("not-a-jws", "a.b", "a.b.c.d", "eyJhbGciOiJub25lIn0.e30.", "!!!.???.***"):
                s, _, body = dev.post(bad)
                expect(s == 400 and body["error"] == "malformed", f"{bad!r}: {s} {body}")
            # Well signed, but the payload is not a reading.
            s, _, body = dev.post(dev.sign('{"hello":"world"}'))
            expect(s == 400, f"payload not a reading: {s} {body}")
            s, _, body = dev.post(dev.sign(dev.reading(300, device_id="someone-else")))
            expect(s == 400, f"payload device_id differs from kid: {s} {body}")

        def wrong_content_type():
            s, _, body = dev.post(dev.sign(dev.reading(400)), content_type="application/json")
            expect(s == 415 and body["error"] == "unsupported_media_type", f"415: {s} {body}")

        def moved_ciphertext_fails():
            a = state["rid"]
            b = st.sql("SELECT encode(record_id, 'hex') FROM records WHERE device_id = 'probe-1' AND seq = 2")
            expect(len(b) == 64, "second record missing")
            st.sql("UPDATE records AS dst SET aes_nonce = src.aes_nonce, xchacha_nonce = src.xchacha_nonce,"
                   " ciphertext = src.ciphertext, envelope_hash = src.envelope_hash, key_version = src.key_version"
                   f" FROM records AS src WHERE src.record_id = '\\x{a}' AND dst.record_id = '\\x{b}'")
            out = st.cli("decrypt", b, check=False)
            expect(out.returncode != 0 and "authentication failed" in out.stderr,
                   f"moved ciphertext opened: rc={out.returncode} {out.stdout} {out.stderr}")
            expect(st.cli("decrypt", a).returncode == 0, "the original row must still open")

        def request_batch_mixed():
            good = [dev.sign(dev.reading(s)) for s in (500, 501, 502)]
            bad_sig = good[0][:-4] + ("AAAA" if not good[0].endswith("AAAA") else "BBBB")
            ghost = Device(st, "ghost-2")
            lines = [good[0], "garbage", good[1], bad_sig, ghost.sign(ghost.reading(1)), good[2]]
            s, _, body = http("POST", st.url + "/v1/data/batch", "\n".join(lines) + "\n",
                              {"Content-Type": "text/plain"})
            expect(s == 207, f"request batch: {s} {body}")
            codes = [r["status"] for r in body["results"]]
            expect(codes == [202, 400, 202, 401, 403, 202], f"per-line results {codes}")
            expect(body["accepted"] == 3 and body["rejected"] == 3, f"request batch totals {body}")
            n = st.wait_rows("device_id = 'probe-1' AND seq BETWEEN 500 AND 502", 3)
            expect(n == 3, f"{n} of the 3 good lines stored")
            n = st.sql("SELECT count(*) FROM records WHERE device_id = 'ghost-2'")
            expect(n == "0", "a bad line was stored")
            # Over the limit: refused whole, nothing of it accepted.
            over = dev.sign(dev.reading(510))
            s, _, body = http("POST", st.url + "/v1/data/batch", "\n".join([over] * 1001),
                              {"Content-Type": "text/plain"})
            expect(s == 413, f"1001-line request batch: {s} {body}")
            st.wait_rows("device_id = 'probe-1' AND seq BETWEEN 500 AND 502", 3)
            n = st.sql("SELECT count(*) FROM records WHERE device_id = 'probe-1' AND seq = 510")
            expect(n == "0", "a refused request batch was partly stored")

        def compat_endpoint():
            data = {"temp": 19.0}
            payload = dev.reading(600, data)
            body = json.dumps({"device_id": "probe-1", "jws": dev.sign(payload), "data": data})
            s, _, res = http("POST", st.url + "/device/data", body, {"Content-Type": "application/json"})
            expect(s == 202, f"compat: {s} {res}")
            lie = json.dumps({"device_id": "probe-1", "jws": dev.sign(dev.reading(601, data)), "data": {"temp": 99}})
            s, _, res = http("POST", st.url + "/device/data", lie, {"Content-Type": "application/json"})
            expect(s == 400, f"compat with unsigned data: {s} {res}")

        def health():
            for var in ("LCORE_GATEWAY_ADMIN_URL", "LCORE_CRYPTO_ADMIN_URL", "LCORE_STORE_ADMIN_URL"):
                s, _, _ = http("GET", st.vars[var] + "/readyz")
                expect(s == 200, f"{var} not ready")
            s, _, _ = http("GET", st.admin_url + "/healthz")
            expect(s == 200, "gateway /healthz")
            s, _, body = st.read("/v1/records/" + "00" * 32)
            expect(s == 404, f"unknown record: {s} {body}")
            s, _, body = st.read("/v1/records/zz")
            expect(s == 400, f"bad record id: {s} {body}")
            s, _, body = st.read("/v1/records/0x" + "00" * 31)  # 31 bytes: not an id
            expect(s == 400, f"a 31-byte record id: {s} {body}")
            s, _, body = st.read("/v1/records/0x" + "00" * 32)
            expect(s == 404, f"0x + 64 hex digits is a record id: {s} {body}")

        checks.run("1000 readings from 50 devices -> exactly 1000 rows", load_1000)
        checks.run("two crypto workers both receive work", both_workers)
        checks.run("device registration (201, 200 identical, 409 conflict, 401 token)", register)
        checks.run("decrypt round-trips and GET /v1/records shows it stored", decrypt_round_trip)
        checks.run("ES256K device end to end", es256k_round_trip)
        checks.run("no plaintext at rest (rows and pg_dump)", no_plaintext_at_rest)
        checks.run("retried reading -> same record_id, no new row; other bytes -> 409", retry_same_id)
        checks.run("bad signature -> 401, nothing stored", bad_signature)
        checks.run("unknown device -> 403", unknown_device)
        checks.run("70 KiB reading -> 413", too_large)
        checks.run("malformed JWS -> 400", malformed)
        checks.run("wrong content type -> 415", wrong_content_type)
        checks.run("ciphertext copied onto another row fails to open", moved_ciphertext_fails)
        checks.run("request batch with good and bad lines stores exactly the good ones", request_batch_mixed)
        checks.run("compat /device/data", compat_endpoint)
        checks.run("health, readiness and record lookups", health)

        def no_secrets_or_payloads_in_logs():
            logs = sorted(os.listdir(os.path.join(st.dir, "log")))
            for svc in ("gateway", "crypto", "store", "chain"):
                expect(any(n.startswith(svc) for n in logs), f"no {svc} log among {logs}")
            expect(st.log_hits({"event="}), "the log check finds nothing at all: it cannot work")
            secrets = st.secrets()
            # tokens, three ring keys, a CURVE secret per instance, role passwords, the chain key
            expect(len(secrets) >= 10, f"only {len(secrets)} secrets found in the state directory")
            jws = state["jws"]
            needles = secrets | {marker, jws.split(".")[1][:40], jws[:40], jws.split(".")[2][:40],
                                 state["payload"][:30]}
            hits = st.log_hits(needles)
            expect(not hits, f"secrets or payloads in the logs: {hits[:5]}")
        checks.run("no payload, token or key in any service's log", no_secrets_or_payloads_in_logs)
    checks.done()


if __name__ == "__main__":
    main()
