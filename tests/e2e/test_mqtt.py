"""MQTT ingest through the stack's own broker (issue 16, DESIGN "MQTT ingest"), with the clients as
they are: a device key made with openssl, a reading signed with openssl (Ed25519, RFC 8037),
published with Debian's mosquitto_rr / mosquitto_pub as the device's provisioned broker user.
Registration provisions the device (the 201 answer's "mqtt" password, shown once); the reading is
stored and its result comes on lcore/v1/<id>/result, and on an MQTT 5 response topic with the
correlation data; the batch topic takes one reading a line; the broker refuses a wrong password and another device's topic; a bad signature
and an oversized message get their error result and nothing is stored; revoking the device kicks
its connection and refuses the next; lcore-sim --mode mqtt drives many devices at once."""
import base64
import json
import os
import subprocess
import tempfile
import time

from harness import BIN, Checks, Stack, expect, http


def b64u(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


class OpensslDevice:
    """An Ed25519 device whose key and signatures come from openssl alone."""

    def __init__(self, st, device_id):
        self.st, self.id = st, device_id
        self.key = os.path.join(st.dir, f"{device_id}.pem")
        subprocess.run(["openssl", "genpkey", "-algorithm", "ed25519", "-out", self.key], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        der = subprocess.run(["openssl", "pkey", "-in", self.key, "-pubout", "-outform", "DER"],
                             check=True, stdout=subprocess.PIPE).stdout
        self.public_hex = der[-32:].hex()  # SubjectPublicKeyInfo ends with the raw key
        self.mqtt = None

    def register(self):
        s, _, body = http("POST", self.st.admin_url + "/v1/devices",
                          json.dumps({"device_id": self.id, "alg": "EdDSA", "public_key": self.public_hex}),
                          {"Authorization": "Bearer " + self.st.token, "Content-Type": "application/json"})
        expect(s == 201, f"register {self.id}: {s} {body}")
        self.mqtt = body.get("mqtt")
        expect(self.mqtt and self.mqtt["username"] == self.id and len(self.mqtt["password"]) == 64,
               f"the registration answer's broker identity: {body}")
        return body

    def jws(self, seq, data=None):
        header = b64u(json.dumps({"alg": "EdDSA", "kid": self.id}, separators=(",", ":")).encode())
        payload = b64u(json.dumps({"device_id": self.id, "seq": seq, "ts": int(time.time() * 1000),
                                   "data": data if data is not None else {"t": seq}},
                                  separators=(",", ":")).encode())
        with tempfile.NamedTemporaryFile(dir=self.st.dir) as f:
            f.write(f"{header}.{payload}".encode())
            f.flush()
            sig = subprocess.run(["openssl", "pkeyutl", "-sign", "-rawin", "-inkey", self.key, "-in", f.name],
                                 check=True, stdout=subprocess.PIPE).stdout
        return f"{header}.{payload}.{b64u(sig)}"


def broker(st):
    url = st.vars["LCORE_MQTT_URL"]
    host, port = url[len("mqtt://"):].rsplit(":", 1)
    return host, port


def rr(st, dev, topic, message, response_topic, extra=(), password=None, timeout=15):
    """mosquitto_rr as the device (MQTT 5, QoS 1, client id = device id): publishes and waits for
    one message on response_topic. (exit code, stdout, stderr)."""
    host, port = broker(st)
    out = subprocess.run(["mosquitto_rr", "-V", "5", "-q", "1", "-h", host, "-p", port, "-i", dev.id,
                          "-u", dev.id, "-P", password or dev.mqtt["password"], "-t", topic,
                          "-e", response_topic, "-m", message, "-W", str(timeout)] + list(extra),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=timeout + 10)
    return out.returncode, out.stdout.strip(), out.stderr.strip()


def stored(st, dev, seq):
    return st.sql(f"SELECT count(*) FROM records WHERE device_id = '{dev.id}' AND seq = {seq}")


def main():
    checks = Checks()
    with Stack(workers=1) as st:
        a, b = OpensslDevice(st, "mq-a"), OpensslDevice(st, "mq-b")
        a.register()
        b.register()

        def accepted_and_result():
            rc, out, err = rr(st, a, "lcore/v1/mq-a/data", a.jws(1), "lcore/v1/mq-a/result")
            expect(rc == 0, f"mosquitto_rr: {rc} {err}")
            res = json.loads(out)
            expect(res["status"] == "accepted" and res["seq"] == 1 and len(res["record_id"]) == 64,
                   f"result: {res}")
            expect(st.wait_rows("device_id = 'mq-a' AND seq = 1", 1) == 1, "not stored")
        checks.run("an openssl-signed reading over MQTT is stored; its result on lcore/v1/<id>/result",
                   accepted_and_result)

        def response_topic():
            rc, out, err = rr(st, a, "lcore/v1/mq-a/data", a.jws(2), "lcore/v1/mq-a/response/r1",
                              ["-D", "publish", "correlation-data", "corr-42", "-F", "%D|%p"])
            expect(rc == 0, f"mosquitto_rr: {rc} {err}")
            corr, _, payload = out.partition("|")
            expect(corr == "corr-42" and json.loads(payload)["status"] == "accepted",
                   f"MQTT 5 response topic: {out!r}")
            expect(st.wait_rows("device_id = 'mq-a' AND seq = 2", 1) == 1, "not stored")
        checks.run("MQTT 5: the result also on the device's response topic, with its correlation data",
                   response_topic)

        def batch_topic():
            lines = "\n".join(a.jws(seq) for seq in (11, 12, 13))
            rc, out, err = rr(st, a, "lcore/v1/mq-a/batch", lines, "lcore/v1/mq-a/result")
            expect(rc == 0 and json.loads(out) == {**json.loads(out), "seq": 11, "status": "accepted"},
                   f"the batch's first result: {rc} {out} {err}")
            expect(st.wait_rows("device_id = 'mq-a' AND seq BETWEEN 11 AND 13", 3) == 3,
                   "the batch's three readings not stored")
        checks.run("the batch topic: three readings, one a line, all stored; the first line's result comes first",
                   batch_topic)

        def refused_by_the_broker():
            rc, _, err = rr(st, a, "lcore/v1/mq-a/data", a.jws(3), "lcore/v1/mq-a/result",
                            password="00" * 32, timeout=5)
            expect(rc != 0, f"a wrong password got in: {rc} {err}")
            host, port = broker(st)
            out = subprocess.run(["mosquitto_pub", "-V", "5", "-q", "1", "-h", host, "-p", port, "-i", "mq-a",
                                  "-u", "mq-a", "-P", a.mqtt["password"], "-t", "lcore/v1/mq-b/data",
                                  "-m", a.jws(4)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                 text=True, timeout=20)
            expect("not authorized" in out.stderr.lower(), f"another device's topic: {out.returncode} {out.stderr}")
            time.sleep(1)
            expect(stored(st, a, 3) == "0" and stored(st, a, 4) == "0" and stored(st, b, 4) == "0",
                   "a refused reading was stored")
        checks.run("the broker refuses a wrong password and another device's topic; nothing stored",
                   refused_by_the_broker)

        def refused_by_lcore():
            bad = a.jws(5)
            bad = bad[:-4] + ("AAAA" if not bad.endswith("AAAA") else "BBBB")
            rc, out, err = rr(st, a, "lcore/v1/mq-a/data", bad, "lcore/v1/mq-a/result")
            expect(rc == 0 and json.loads(out)["error"] == "bad_signature", f"bad signature: {rc} {out} {err}")
            big = a.jws(6, {"pad": "x" * 70000})
            rc, out, err = rr(st, a, "lcore/v1/mq-a/data", big, "lcore/v1/mq-a/result")
            expect(rc == 0 and json.loads(out)["error"] == "too_large", f"oversized: {rc} {out} {err}")
            rc, out, err = rr(st, a, "lcore/v1/mq-a/data", b.jws(7), "lcore/v1/mq-a/result")
            expect(rc == 0 and json.loads(out)["error"] == "malformed", f"another device's kid: {out} {err}")
            time.sleep(1)
            expect(stored(st, a, 5) == "0" and stored(st, a, 6) == "0" and stored(st, b, 7) == "0",
                   "a refused reading was stored")
        checks.run("a bad signature, an oversized message, another device's kid: error results, nothing stored",
                   refused_by_lcore)

        def revoked_is_kicked():
            host, port = broker(st)
            sub = subprocess.Popen(["mosquitto_sub", "-V", "5", "-h", host, "-p", port, "-i", "mq-b", "-u", "mq-b",
                                    "-P", b.mqtt["password"], "-t", "lcore/v1/mq-b/result"],
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            try:
                time.sleep(1)
                expect(sub.poll() is None, "mosquitto_sub did not stay connected")
                s, _, body = http("POST", st.admin_url + "/v1/devices/mq-b/revoke", None,
                                  {"Authorization": "Bearer " + st.token})
                expect(s == 200 and "warning" not in body, f"revoke: {s} {body}")
                sub.wait(timeout=5)
            finally:
                if sub.poll() is None:
                    sub.kill()
                    sub.wait()
                    raise AssertionError("the revoked device's connection is still open")
            rc, _, err = rr(st, b, "lcore/v1/mq-b/data", b.jws(8), "lcore/v1/mq-b/result", timeout=5)
            expect(rc != 0, f"a revoked device connected again: {rc} {err}")
        checks.run("revoking a device closes its broker connection and refuses the next", revoked_is_kicked)

        def sim_over_mqtt():
            out = subprocess.run([os.path.join(BIN, "lcore-sim"), "--url", st.url, "--admin-url", st.admin_url,
                                  "--admin-token", st.token, "--mode", "mqtt", "--mqtt-url", st.vars["LCORE_MQTT_URL"],
                                  "--devices", "10", "--count", "200", "--rate", "0", "--device-prefix", "mqsim",
                                  "--quiet"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=120)
            res = dict(line.partition("=")[::2] for line in out.stdout.splitlines() if "=" in line)
            expect(out.returncode == 0 and res.get("accepted") == "200", f"lcore-sim --mode mqtt: {res} {out.stderr[-500:]}")
            expect(st.wait_rows("device_id LIKE 'mqsim-%'", 200) == 200, "lcore-sim's readings not all stored")
        checks.run("lcore-sim --mode mqtt: 10 devices, 200 readings, every result accepted and stored",
                   sim_over_mqtt)

        def nothing_leaked():
            hits = st.log_hits([a.mqtt["password"], b.mqtt["password"]])
            expect(not hits, f"a device's broker password in a log: {hits}")
        checks.run("no device's broker password in any log", nothing_leaked)
    checks.done()


if __name__ == "__main__":
    main()
