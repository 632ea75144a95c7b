"""MQTT ingest (issue 16 items 2, 3 and 6), end to end: a real Mosquitto 2 started here (no
anonymous access: a password file made with mosquitto_passwd and an ACL file, the gateway reading
the devices' data and batch topics through its shared subscription, a device writing only its own
topics), the stack's gateway subscribed to it (LCORE_GATEWAY_MQTT_URL), readings signed by
lcore-cli and published with mosquitto_pub as the device. Checks: a reading is stored and its
result arrives on lcore/v1/<device>/result and, with the MQTT 5 correlation data, on the response
topic the device named; a bad signature and a kid other than the topic's device get their errors
and store nothing; a batch of 3 lines stores 3 and gives 3 results in line order; the gateway is
ready and says it is connected, not ready while the broker is down, ready again (and ingesting)
once it is back."""
import getpass
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time

from harness import Checks, Device, Stack, expect, metric_at, readyz

MOSQUITTO = "/usr/sbin/mosquitto"
GW_USER = "lcore-gw-gw-1"
DEV = "mq-1"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Broker:
    """A private Mosquitto on a loopback port: users and passwords, an ACL file."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="lcore-mqtt-e2e-")
        self.port = free_port()
        self.proc = None
        self.passwords = {GW_USER: os.urandom(16).hex(), DEV: os.urandom(16).hex()}
        pw = os.path.join(self.dir, "passwd")
        for i, (user, password) in enumerate(self.passwords.items()):
            subprocess.run(["mosquitto_passwd", "-b"] + (["-c"] if i == 0 else []) + [pw, user, password],
                           check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=10)
        # The gateway's rights name the plain topics: with Mosquitto 2.0.11 that is what its
        # $share/lcore/... subscription needs.
        acl = (f"user {GW_USER}\ntopic read lcore/v1/+/data\ntopic read lcore/v1/+/batch\n"
               "topic write lcore/v1/+/result\ntopic write lcore/v1/+/response/#\n\n"
               f"user {DEV}\ntopic write lcore/v1/{DEV}/data\ntopic write lcore/v1/{DEV}/batch\n"
               f"topic read lcore/v1/{DEV}/result\ntopic read lcore/v1/{DEV}/response/#\n")
        with open(os.path.join(self.dir, "acl"), "w") as f:
            f.write(acl)
        # `user`: as root, Mosquitto would drop to the mosquitto user, who cannot read these files.
        with open(os.path.join(self.dir, "mosquitto.conf"), "w") as f:
            f.write(f"listener {self.port} 127.0.0.1\nallow_anonymous false\npassword_file {pw}\n"
                    f"acl_file {os.path.join(self.dir, 'acl')}\npersistence false\n"
                    f"user {getpass.getuser()}\nlog_dest file {os.path.join(self.dir, 'mosquitto.log')}\n")
        self.gw_password_file = os.path.join(self.dir, "gateway.password")
        with open(self.gw_password_file, "w") as f:
            f.write(self.passwords[GW_USER] + "\n")
        os.chmod(self.gw_password_file, 0o600)

    @property
    def url(self):
        return f"mqtt://127.0.0.1:{self.port}"

    def start(self):
        self.proc = subprocess.Popen([MOSQUITTO, "-c", os.path.join(self.dir, "mosquitto.conf")],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(50):
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.1)
        raise RuntimeError("mosquitto does not listen")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self.proc = None

    def close(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def _auth(self):
        return ["-V", "mqttv5", "-h", "127.0.0.1", "-p", str(self.port), "-u", DEV, "-P", self.passwords[DEV]]

    def subscribe(self, topics, count):
        """mosquitto_sub as the device, started now; .results() waits for `count` messages."""
        args = ["mosquitto_sub"] + self._auth() + ["-q", "1", "-C", str(count), "-W", "10", "-F", "%t|%D|%p"]
        for t in topics:
            args += ["-t", t]
        proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(0.5)  # subscribed before anything is published

        class Sub:
            @staticmethod
            def results():
                out, _ = proc.communicate(timeout=15)
                rows = []
                for line in out.splitlines():
                    topic, corr, payload = line.split("|", 2)
                    rows.append((topic, corr, json.loads(payload)))
                return rows
        return Sub

    def publish(self, topic, payload, *extra):
        subprocess.run(["mosquitto_pub"] + self._auth() + ["-q", "1", "-t", topic, "-s"] + list(extra),
                       input=payload, text=True, check=True, timeout=10,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def main():
    if not shutil.which("mosquitto_pub") or not os.access(MOSQUITTO, os.X_OK):
        print("SKIP mosquitto or mosquitto-clients not installed")
        return
    checks = Checks()
    broker = Broker()
    try:
        broker.start()
        extra = {"LCORE_GATEWAY_MQTT_URL": broker.url, "LCORE_GATEWAY_MQTT_USERNAME": GW_USER,
                 "LCORE_GATEWAY_MQTT_PASSWORD_FILE": broker.gw_password_file}
        with Stack(workers=1, extra_env=extra) as st:
            run(checks, st, broker)
    finally:
        broker.close()
    checks.done()


def run(checks, st, broker):
    dev, other = Device(st, DEV), Device(st, "mq-2")
    expect(dev.register()[0] == 201 and other.register()[0] == 201, "registration")
    data, batch, result = f"lcore/v1/{DEV}/data", f"lcore/v1/{DEV}/batch", f"lcore/v1/{DEV}/result"

    def stored(seq_where):
        return int(st.sql(f"SELECT count(*) FROM records WHERE device_id = '{DEV}' AND {seq_where}"))

    def connected_and_ready():
        expect(readyz(st.admin_url)[0] == 200, f"readyz: {readyz(st.admin_url)}")
        expect(metric_at(st.admin_url, "lcore_gateway_mqtt_connected") == 1, "not connected")

    def accepted_with_response_topic():
        sub = broker.subscribe([result, f"lcore/v1/{DEV}/response/x"], 2)
        broker.publish(data, dev.sign(dev.reading(1)), "-D", "publish", "response-topic",
                       f"lcore/v1/{DEV}/response/x", "-D", "publish", "correlation-data", "abc")
        rows = sub.results()
        expect(len(rows) == 2, f"results: {rows}")
        by_topic = {t: (c, r) for t, c, r in rows}
        c, r = by_topic.get(result, ("", {}))
        expect(r.get("status") == "accepted" and r.get("seq") == 1 and len(r.get("record_id", "")) == 64,
               f"result: {r}")
        c2, r2 = by_topic.get(f"lcore/v1/{DEV}/response/x", ("", {}))
        expect(c2 == "abc" and r2 == r, f"response topic: {c2!r} {r2}")
        expect(st.wait_rows(f"device_id = '{DEV}' AND seq = 1", 1, timeout=20) == 1, "seq 1 not stored")

    def bad_signature():
        jws = dev.sign(dev.reading(2))
        head, payload, sig = jws.split(".")
        sig = ("A" if sig[0] != "A" else "B") + sig[1:]
        sub = broker.subscribe([result], 1)
        broker.publish(data, ".".join((head, payload, sig)))
        rows = sub.results()
        expect(len(rows) == 1 and rows[0][2].get("error") == "bad_signature" and rows[0][2].get("seq") == 2,
               f"results: {rows}")

    def kid_of_another_device():
        sub = broker.subscribe([result], 1)
        broker.publish(data, other.sign(other.reading(3)))  # kid mq-2 on mq-1's topic
        rows = sub.results()
        expect(len(rows) == 1 and rows[0][2].get("error") == "malformed", f"results: {rows}")

    def batch_of_three():
        lines = "\n".join(dev.sign(dev.reading(s)) for s in (10, 11, 12)) + "\n"
        sub = broker.subscribe([result], 3)
        broker.publish(batch, lines)
        rows = sub.results()
        expect([r.get("seq") for _, _, r in rows] == [10, 11, 12] and
               all(r.get("status") == "accepted" for _, _, r in rows), f"results: {rows}")
        expect(st.wait_rows(f"device_id = '{DEV}' AND seq BETWEEN 10 AND 12", 3, timeout=20) == 3,
               "batch not stored")

    def nothing_refused_stored():
        time.sleep(1)
        expect(stored("seq IN (2, 3)") == 0, "a refused reading was stored")
        n = int(st.sql("SELECT count(*) FROM records WHERE device_id = 'mq-2'"))
        expect(n == 0, f"{n} records of mq-2")
        expect(metric_at(st.admin_url, "lcore_gateway_mqtt_refused_total") >= 2, "refusals not counted")
        expect(metric_at(st.admin_url, "lcore_gateway_mqtt_acked_total") >= 4, "acks not counted")

    def broker_down_then_back():
        broker.stop()
        deadline = time.time() + 5
        while time.time() < deadline and readyz(st.admin_url)[0] == 200:
            time.sleep(0.2)
        code, body = readyz(st.admin_url)
        expect(code != 200 and "broker not connected" in body, f"broker down: readyz {code} {body}")
        broker.start()
        deadline = time.time() + 12
        while time.time() < deadline and readyz(st.admin_url)[0] != 200:
            time.sleep(0.2)
        expect(readyz(st.admin_url)[0] == 200, f"broker back: readyz {readyz(st.admin_url)}")
        expect(metric_at(st.admin_url, "lcore_gateway_mqtt_reconnects_total") >= 1, "no reconnect counted")
        sub = broker.subscribe([result], 1)  # subscribed again: readings flow
        broker.publish(data, dev.sign(dev.reading(20)))
        rows = sub.results()
        expect(len(rows) == 1 and rows[0][2].get("status") == "accepted", f"results: {rows}")

    checks.run("connected to the broker: lcore_gateway_mqtt_connected 1, /readyz ready", connected_and_ready)
    checks.run("a reading is stored; its result comes on .../result and on the response topic with "
               "its correlation data", accepted_with_response_topic)
    checks.run("a bad signature gets bad_signature", bad_signature)
    checks.run("a kid other than the topic's device gets malformed", kid_of_another_device)
    checks.run("a batch of 3 lines stores 3, 3 results in line order", batch_of_three)
    checks.run("nothing refused is stored; refusals and acks counted", nothing_refused_stored)
    checks.run("broker killed: not ready (broker not connected); back: ready and ingesting",
               broker_down_then_back)


if __name__ == "__main__":
    main()
