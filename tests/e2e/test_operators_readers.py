"""Operators and readers (issue 15, DESIGN "HTTP API") on a real stack with two gateways: device
list and show; revocation pushed to both gateways within 1 s, and checked again by the store (a
reading accepted before the revocation lands, one a gateway accepted after it without knowing is
dead-lettered, replayable after reactivation); key rotation with an overlap; reader tokens
(scopes, device lists, expiry, deletion seen at once on both gateways); opening a record
through the crypto tier; the audit log of every operator action and every open; a device's
records paged exactly once while it writes; "accepted" while a reading is in flight; bad input on
every new route is a clear 4xx and changes nothing; a token over its rate gets 429; and lcore-cli's device, token and audit verbs
(cli_admin_checks)."""
import json
import os
import signal
import sys
import threading
import time

import cli_admin_checks
from harness import Checks, Device, Stack, expect, http

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "faults"))
from faults import pid_of  # noqa: E402


def wait_for(what, cond, timeout=30, step=0.05):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if cond():
            return
        time.sleep(step)
    raise AssertionError(f"timed out waiting for {what}")


class Api:
    """The two listeners of both gateways, with an operator and a reader token."""

    def __init__(self, st):
        self.st = st
        self.gateways = [(st.url, st.admin_url),
                         (st.vars["LCORE_GATEWAY_2_URL"], st.vars["LCORE_GATEWAY_2_ADMIN_URL"])]
        self.reader = st.vars["LCORE_READER_TOKEN"]

    def op(self, method, path, body=None, token=None, gw=0):
        hdr = {"Authorization": "Bearer " + (token or self.st.token)}
        if body is not None:
            hdr["Content-Type"] = "application/json"
            body = body if isinstance(body, str) else json.dumps(body)
        return http(method, self.gateways[gw][1] + path, body, hdr)

    def read(self, path, token=None, method="GET", gw=0):
        tok = self.reader if token is None else token
        hdr = {"Authorization": "Bearer " + tok} if tok else {}
        return http(method, self.gateways[gw][0] + path, None, hdr)

    def post(self, jws, gw=0):
        return http("POST", self.gateways[gw][0] + "/v1/data", jws,
                    {"Content-Type": "application/jose"})

    def token(self, scope, devices=None, expires_in_s=None):
        body = {"scope": scope}
        if devices is not None:
            body["devices"] = devices
        if expires_in_s is not None:
            body["expires_in_s"] = expires_in_s
        s, _, t = self.op("POST", "/v1/tokens", body)
        expect(s == 201 and t["token"].startswith("lct_") and t["scope"] == scope, f"token: {s} {t}")
        return t

    def audit(self):
        entries, after = [], ""
        while True:
            s, _, page = self.op("GET", "/v1/audit?limit=50" + (f"&after={after}" if after else ""))
            expect(s == 200, f"audit: {s} {page}")
            entries += page["entries"]
            if not page["next"]:
                return entries
            after = page["next"]


class Signer:
    """Readings of one device, signed with the key file `key` (lcore-cli sign)."""

    def __init__(self, st, dev, key=None):
        self.st, self.dev, self.key = st, dev, key or dev.key

    def jws(self, seq, data=None):
        payload = self.dev.reading(seq, data if data is not None else {"seq": seq})
        return self.st.cli("sign", "--key", self.key, "--kid", self.dev.id, stdin=payload).stdout.strip()


def first_403(api, signer, gw, seq0, timeout=5.0):
    """Posts fresh readings to gateway gw until one gets 403: the seconds it took."""
    t0, seq = time.time(), seq0
    while time.time() - t0 < timeout:
        s, _, body = api.post(signer.jws(seq), gw)
        if s == 403:
            expect(body["error"] == "unknown_device", f"403 {body}")
            return time.time() - t0
        expect(s == 202, f"gateway {gw + 1}: {s} {body}")
        seq += 1
    raise AssertionError(f"gateway {gw + 1} still accepts {timeout}s after the revocation")


def main():
    checks = Checks()
    limits = {"LCORE_GATEWAY_TOKEN_RATE": "20", "LCORE_GATEWAY_TOKEN_BURST": "40"}
    with Stack(workers=1, extra_env=dict(limits, LCORE_GATEWAYS="2")) as st:
        api = Api(st)
        devs = {}
        for name in ("op-a", "op-b", "op-c"):
            devs[name] = Device(st, name)
            s, _, body = devs[name].register()
            expect(s == 201, f"register {name}: {s} {body}")
        a, b, c = (Signer(st, devs[n]) for n in ("op-a", "op-b", "op-c"))
        state = {"seq": 100}

        def next_seq():
            state["seq"] += 1
            return state["seq"]

        def devices_listed():
            seen, after = [], ""
            while True:
                s, _, page = api.op("GET", "/v1/devices?limit=1" + (f"&after={after}" if after else ""))
                expect(s == 200 and len(page["devices"]) <= 1, f"list: {s} {page}")
                seen += [d["device_id"] for d in page["devices"]]
                if not page["next"]:
                    break
                after = page["next"]
            expect(seen == ["op-a", "op-b", "op-c"], f"pages of one: {seen}")
            s, _, d = api.op("GET", "/v1/devices/op-a")
            expect(s == 200 and d["status"] == "active" and d["alg"] == "EdDSA" and d["key_no"] == 1
                   and d["previous_key"] is None and d["revoked_at"] is None
                   and d["registered_at"].endswith("Z"), f"show: {d}")
            s, _, d = api.op("GET", "/v1/devices/op-a", token=api.reader)
            expect(s == 403 and d["error"] == "forbidden", f"a reader token on the operator API: {s} {d}")
            s, _, d = http("GET", st.admin_url + "/v1/devices")
            expect(s == 401 and d["error"] == "unauthorized", f"no token: {s} {d}")
        checks.run("devices listed a page of one at a time, each once; shown; operator scope only",
                   devices_listed)

        def revocation_pushed():
            for gw in (0, 1):  # both gateways hold op-a's key
                s, _, body = api.post(a.jws(next_seq()), gw)
                expect(s == 202, f"gateway {gw + 1} before: {s} {body}")
            t0 = time.time()
            s, _, d = api.op("POST", "/v1/devices/op-a/revoke")
            expect(s == 200 and d["status"] == "revoked" and d["revoked_at"], f"revoke: {s} {d}")
            took = [first_403(api, a, gw, next_seq() * 100) for gw in (0, 1)]
            expect(time.time() - t0 < 3 and all(t < 1.0 for t in took), f"403 after {took} s")
            s, _, d = api.op("POST", "/v1/devices/op-a/reactivate", gw=1)
            expect(s == 200 and d["status"] == "active" and d["revoked_at"] is None, f"reactivate: {d}")
            for gw in (0, 1):
                t0 = time.time()
                wait_for(f"gateway {gw + 1} accepts again",
                         lambda: api.post(a.jws(next_seq()), gw)[0] == 202, timeout=1.0, step=0.02)
            print(f"  403 on gateways 1 and 2 after {took[0]:.3f} s and {took[1]:.3f} s", flush=True)
        checks.run("revoke: 403 on both gateways within 1 s; reactivate: accepted again within 1 s",
                   revocation_pushed)

        def store_checks_again():
            worker = pid_of(st, "crypto-1")
            os.kill(worker, signal.SIGSTOP)  # readings wait in the gateway's log, in flight
            try:
                s, _, body = api.post(b.jws(1))
                expect(s == 202, f"before: {s} {body}")
                rid_before = body["record_id"]
                s, _, rec = api.read("/v1/records/" + rid_before)
                expect(s == 200 and rec["status"] == "accepted", f"in flight: {s} {rec}")
                s, _, rec = api.read("/v1/records/" + rid_before + "/receipt")
                expect(s == 409 and rec["error"] == "not_stored", f"receipt in flight: {s} {rec}")
                # Revoked behind the gateways' backs (no Change): they still hold the key and
                # accept; the store refuses what was received after revoked_at.
                st.sql("UPDATE devices SET status = 'revoked', revoked_at = now() WHERE device_id = 'op-b'")
                s, _, body = api.post(b.jws(2))
                expect(s == 202, f"after, gateway not told: {s} {body}")
                rid_after = body["record_id"]
            finally:
                os.kill(worker, signal.SIGCONT)
            st.wait_rows("device_id = 'op-b' AND seq = 1", 1)
            wait_for("the later reading dead-lettered",
                     lambda: st.sql(f"SELECT count(*) FROM dead_letters WHERE record_id = '\\x{rid_after}'"
                                    " AND reason LIKE '%revoked%'") == "1")
            expect(st.sql("SELECT count(*) FROM records WHERE device_id = 'op-b' AND seq = 2") == "0",
                   "a reading received after the revocation was stored")
            s, _, _ = api.op("POST", "/v1/devices/op-b/reactivate")
            expect(s == 200, "reactivate op-b")
            st.cli("dead-letters", "replay")
            st.wait_rows("device_id = 'op-b' AND seq = 2", 1)
        checks.run("the store checks again: received before the revocation lands, after it is "
                   "dead-lettered (replayable once reactivated); 'accepted' while in flight",
                   store_checks_again)

        def rotation():
            new_key = os.path.join(st.dir, "op-c-2.key")
            reg = json.loads(st.cli("device-keygen", "--alg", "ES256K", "--out", new_key,
                                    "--device-id", "op-c").stdout)
            new = Signer(st, devs["op-c"], new_key)
            s, _, body = api.post(new.jws(next_seq()))
            expect(s == 401, f"the new key before the rotation: {s} {body}")
            s, _, d = api.op("POST", "/v1/devices/op-c/keys",
                             {"alg": "ES256K", "public_key": reg["public_key"], "overlap_s": 3})
            expect(s == 200 and d["key_no"] == 2 and d["alg"] == "ES256K"
                   and d["previous_key"]["alg"] == "EdDSA", f"rotate: {s} {d}")
            s, _, d = api.op("POST", "/v1/devices/op-c/keys",
                             {"alg": "ES256K", "public_key": reg["public_key"], "overlap_s": 3})
            expect(s == 409, f"the same key again: {s} {d}")
            for gw in (0, 1):
                for signer, name in ((c, "old"), (new, "new")):
                    s, _, body = api.post(signer.jws(next_seq()), gw)
                    expect(s == 202, f"gateway {gw + 1}, {name} key during the overlap: {s} {body}")
            time.sleep(3.2)
            for gw in (0, 1):
                s, _, body = api.post(c.jws(next_seq()), gw)
                expect(s == 401, f"gateway {gw + 1}, old key after the overlap: {s} {body}")
                s, _, body = api.post(new.jws(next_seq()), gw)
                expect(s == 202, f"gateway {gw + 1}, new key after the overlap: {s} {body}")
        checks.run("rotation: both keys verify during the overlap, only the new one after; same key 409",
                   rotation)

        def tokens():
            only_a = api.token("read", devices=["op-a"])
            s, _, body = api.read("/v1/devices/op-a/status", only_a["token"])
            expect(s == 200, f"read token, its device: {s} {body}")
            for path in ("/v1/devices/op-b/status", "/v1/devices/op-b/records"):
                s, _, body = api.read(path, only_a["token"])
                expect(s == 403 and body["error"] == "forbidden", f"{path} with a token for op-a: {s} {body}")
            rid_b = st.sql("SELECT encode(record_id, 'hex') FROM records WHERE device_id = 'op-b' LIMIT 1")
            s, _, body = api.read("/v1/records/" + rid_b, only_a["token"])
            expect(s == 403, f"op-b's record with a token for op-a: {s} {body}")
            rid_a = st.sql("SELECT encode(record_id, 'hex') FROM records WHERE device_id = 'op-a' LIMIT 1")
            s, _, body = api.read(f"/v1/records/{rid_a}/open", only_a["token"], method="POST")
            expect(s == 403 and body["error"] == "forbidden", f"open with scope read: {s} {body}")
            s, _, listed = api.op("GET", "/v1/tokens")
            mine = [t for t in listed["tokens"] if t["id"] == only_a["id"]]
            expect(s == 200 and len(mine) == 1 and "token" not in mine[0] and mine[0]["devices"] == ["op-a"],
                   f"listed: {mine}")
            expect(only_a["token"] not in json.dumps(listed), "the token is shown again")
            expect(st.sql(f"SELECT count(*) FROM tokens WHERE id = '{only_a['id']}'"
                          f" AND hash = sha256('{only_a['token']}'::bytea)") == "1", "not stored hashed")
            expect(st.sql(f"SELECT count(*) FROM tokens WHERE encode(hash, 'escape') LIKE '%{only_a['token'][4:20]}%'")
                   == "0", "the token in the database")
            s, _, body = api.op("DELETE", "/v1/tokens/" + only_a["id"])
            expect(s == 200 and body["status"] == "deleted", f"delete: {s} {body}")
            for gw in (0, 1):
                s, _, body = api.read("/v1/devices/op-a/status", only_a["token"], gw=gw)
                expect(s == 401, f"deleted token on gateway {gw + 1}: {s} {body}")
            short = api.token("read", expires_in_s=1)
            expect(short["expires_at"], f"expires_at: {short}")
            s, _, _ = api.read("/v1/devices/op-a/status", short["token"])
            expect(s == 200, f"before it expires: {s}")
            time.sleep(1.3)
            s, _, body = api.read("/v1/devices/op-a/status", short["token"])
            expect(s == 401, f"expired: {s} {body}")
            s, _, body = api.read("/v1/devices/op-a/status", "")
            expect(s == 401, f"no token: {s} {body}")
            s, _, body = api.read("/v1/devices/op-a/status", st.token)
            expect(s == 403, f"the operator token is no reader token: {s} {body}")
        checks.run("tokens: device lists, scope read cannot open, stored hashed and shown once, "
                   "deleted and expired get 401 on both gateways", tokens)

        def open_record():
            payload = devs["op-b"].reading(7, {"secret": "open-me-7"})
            jws = st.cli("sign", "--key", devs["op-b"].key, "--kid", "op-b", stdin=payload).stdout.strip()
            s, _, body = api.post(jws)
            expect(s == 202, f"post: {s} {body}")
            rid = body["record_id"]
            st.wait_rows("device_id = 'op-b' AND seq = 7", 1)
            before = len([e for e in api.audit() if e["action"] == "open"])
            s, _, body = api.read(f"/v1/records/{rid}/open", method="POST", gw=1)
            expect(s == 200 and body["jws"] == jws and body["payload"]["data"] == {"secret": "open-me-7"}
                   and body["verified"] is True and body["device_id"] == "op-b" and body["seq"] == 7,
                   f"open: {s} {body}")
            opens = [e for e in api.audit() if e["action"] == "open"]
            expect(len(opens) == before + 1 and opens[-1]["target"] == rid and opens[-1]["token_id"],
                   f"audit of the open: {opens[-3:]}")
            expect(not st.log_hits(["open-me-7"]), "the plaintext is in a log")
        checks.run("open (scope decrypt, through a crypto worker): the signed reading, verified, audited",
                   open_record)

        def audited():
            actions = {(e["action"], e["target"]) for e in api.audit()}
            for want in (("device.revoke", "op-a"), ("device.reactivate", "op-a"),
                         ("device.reactivate", "op-b"), ("device.rotate", "op-c"),
                         ("device.register", "op-a")):
                expect(want in actions, f"{want} not in the audit log")
            expect(any(a == "token.create" for a, _ in actions) and any(a == "token.delete" for a, _ in actions),
                   "token actions not audited")
            entries = api.audit()
            expect([e["id"] for e in entries] == sorted(e["id"] for e in entries), "audit order")
            expect(all(e["token_id"] == "admin" for e in entries if e["action"].startswith(("device.", "token."))),
                   "operator actions by another token id")
        checks.run("the audit log holds every operator action and every open, oldest first", audited)

        def paging_under_writes():
            dev = Device(st, "op-page")
            s, _, _ = dev.register()
            expect(s == 201, "register op-page")
            n = 120
            jws = [st.cli("sign", "--key", dev.key, "--kid", dev.id,
                          stdin=dev.reading(seq, {"i": seq})).stdout.strip() for seq in range(1, n + 1)]
            errors = []

            def writer():
                for j in jws:
                    s, _, body = api.post(j)
                    if s != 202:
                        errors.append((s, body))
                    time.sleep(0.01)
            pager = api.token("read", devices=["op-page"])["token"]  # its own rate bucket
            t = threading.Thread(target=writer)
            t.start()
            seen, after, from_seq = [], "", 0
            deadline = time.time() + 60
            while time.time() < deadline:
                q = f"/v1/devices/op-page/records?limit=7&from_seq={from_seq}" + (f"&after={after}" if after else "")
                s, _, page = api.read(q, pager)
                expect(s == 200 and len(page["records"]) <= 7, f"page: {s} {page}")
                seen += [r["seq"] for r in page["records"]]
                if page["next"]:
                    after = page["next"]
                    continue
                after = ""
                if seen:
                    from_seq = seen[-1] + 1
                if not t.is_alive() and len(seen) >= n:
                    break
                time.sleep(0.05)
            t.join()
            expect(not errors, f"posts: {errors[:3]}")
            expect(seen == list(range(1, n + 1)), f"every record once, in seq order: {seen}")
            s, _, page = api.read("/v1/devices/op-page/records?limit=1000", pager)
            expect(s == 200 and [r["seq"] for r in page["records"]] == list(range(1, n + 1))
                   and page["next"] is None, "one page of all")
            r0 = page["records"][0]
            expect(set(r0) >= {"record_id", "device_id", "seq", "status", "stored_at", "envelope_hash",
                               "leaf", "proof", "batch"}, f"a listed record: {r0}")
        checks.run("a device's records paged while it writes: each exactly once, in seq order",
                   paging_under_writes)

        def rate_limited():
            hot, calm = api.token("read")["token"], api.token("read")["token"]
            answers = [api.read("/v1/devices/op-a/status", hot) for _ in range(70)]
            limited = [(s, h, b) for s, h, b in answers if s == 429]
            expect(len(limited) >= 10 and all(s in (200, 429) for s, _, _ in answers),
                   f"70 quick requests at 20/s (burst 40): {len(limited)} got 429")
            _, hdrs, body = limited[0]
            expect(body["error"] == "rate_limited" and int(hdrs.get("Retry-After", 0)) >= 1,
                   f"429: {hdrs} {body}")
            s, _, _ = api.read("/v1/devices/op-a/status", calm)
            expect(s == 200, f"another token is not limited by the first: {s}")
            time.sleep(1.2)
            s, _, _ = api.read("/v1/devices/op-a/status", hot)
            expect(s == 200, f"the limited token a second later: {s}")
            s, _, _ = api.op("GET", "/v1/devices?limit=1")
            expect(s == 200, "the configured operator token is never limited")
        checks.run("a token over its rate (LCORE_GATEWAY_TOKEN_RATE) gets 429 + Retry-After; "
                   "other tokens do not", rate_limited)

        def bad_input():
            audit_n = len(api.audit())
            state_sql = ("SELECT string_agg(d.device_id || d.status || (SELECT count(*) FROM device_keys k"
                         " WHERE k.device_id = d.device_id), ',' ORDER BY d.device_id) FROM devices d")
            devices = st.sql(state_sql)
            tokens_n = st.sql("SELECT count(*) FROM tokens")
            cases = [
                (api.read, ("/v1/devices/op-a/records?after=notacursor",), 400),
                (api.read, ("/v1/devices/op-a/records?limit=1001",), 400),
                (api.read, ("/v1/devices/op-a/records?limit=0",), 400),
                (api.read, ("/v1/devices/op-a/records?limit=x",), 400),
                (api.read, ("/v1/devices/op-a/records?from_seq=9&to_seq=3",), 400),
                (api.read, ("/v1/devices/op-a/records?from_seq=-1",), 400),
                (api.read, ("/v1/devices/nobody/records",), 404),
                (api.read, ("/v1/devices/" + "x" * 129 + "/records",), 400),
                (api.read, ("/v1/records/zz",), 400),
                (api.read, ("/v1/records/" + "00" * 32,), 404),
                (api.read, ("/v1/records/" + "00" * 32 + "/open", None, "POST"), 404),
                (api.read, ("/v1/records/abc/open", None, "POST"), 400),
                (api.op, ("GET", "/v1/devices?after=@@"), 400),
                (api.op, ("GET", "/v1/devices?limit=100000"), 400),
                (api.op, ("GET", "/v1/devices/nobody"), 404),
                (api.op, ("POST", "/v1/devices/nobody/revoke"), 404),
                (api.op, ("POST", "/v1/devices/bad%20id/revoke"), 400),
                (api.op, ("POST", "/v1/devices/op-a/keys", {"alg": "EdDSA", "public_key": "00"}), 400),
                (api.op, ("POST", "/v1/devices/op-a/keys", {"alg": "RS256", "public_key": "00"}), 400),
                (api.op, ("POST", "/v1/devices/op-a/keys", "{not json"), 400),
                (api.op, ("POST", "/v1/tokens", {"scope": "root"}), 400),
                (api.op, ("POST", "/v1/tokens", {"scope": "read", "devices": []}), 400),
                (api.op, ("POST", "/v1/tokens", {"scope": "read", "devices": ["a b"]}), 400),
                (api.op, ("POST", "/v1/tokens", {"scope": "read", "expires_in_s": -5}), 400),
                (api.op, ("DELETE", "/v1/tokens/tok_0000000000000000"), 404),
                (api.op, ("DELETE", "/v1/tokens/nope"), 400),
                (api.op, ("GET", "/v1/audit?after=xyz"), 400),
                (api.op, ("GET", "/v1/audit?limit=-1"), 400),
            ]
            for fn, args, want in cases:
                s, _, body = fn(*args)
                expect(s == want and isinstance(body, dict) and body.get("error") and body.get("message"),
                       f"{fn.__name__}{args}: {s} {body}, want {want}")
            expect(len(api.audit()) == audit_n, "bad input was audited as an action")
            expect(st.sql(state_sql) == devices, "devices or their keys changed")
            expect(st.sql("SELECT count(*) FROM tokens") == tokens_n, "tokens changed")
        checks.run("bad cursors, limits, ranges, ids, keys, scopes: a clear 4xx, nothing changed", bad_input)
        cli_admin_checks.run(st, checks)  # lcore-cli device|token|audit, on the same stack
    checks.done()


if __name__ == "__main__":
    main()
