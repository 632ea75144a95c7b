"""HTTP devices through HAProxy to two gateways (issue 18 item 1), with deploy/haproxy/haproxy.cfg
as it is, a real HAProxy (Debian's haproxy) and a native stack of two gateways: readings sent to
the balancer reach both gateways; kill -9 of one gateway under load costs the devices nothing
(what was in flight on it is retried on the other, what would go to it is sent elsewhere once its
/readyz check fails), and once it is started again (its log replays) every reading that got a
202 is stored exactly once. HAProxy is stopped when the test ends, failed or not."""
import os
import signal
import socket
import subprocess
import time

from anchoring import wait_for
from harness import BIN, STACK, Checks, Stack, expect, metric_at

SRC = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CFG = os.path.join(SRC, "deploy", "haproxy", "haproxy.cfg")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def hostport(url):
    return url.split("://", 1)[1].rstrip("/")


def port_of(url):
    return hostport(url).rsplit(":", 1)[1]


def main():
    checks = Checks()
    with Stack(workers=2, extra_env={"LCORE_GATEWAYS": "2", "LCORE_GATEWAY_DEVICE_RATE": "0"}) as st:
        lb = f"127.0.0.1:{free_port()}"
        env = dict(os.environ, LCORE_LB_BIND=lb,
                   LCORE_LB_GW1=hostport(st.vars["LCORE_GATEWAY_URL"]),
                   LCORE_LB_GW2=hostport(st.vars["LCORE_GATEWAY_2_URL"]),
                   LCORE_LB_GW1_ADMIN_PORT=port_of(st.vars["LCORE_GATEWAY_ADMIN_URL"]),
                   LCORE_LB_GW2_ADMIN_PORT=port_of(st.vars["LCORE_GATEWAY_2_ADMIN_URL"]))
        log = open(os.path.join(st.dir, "log", "haproxy.log"), "ab")
        haproxy = subprocess.Popen(["haproxy", "-db", "-f", CFG], env=env, stdout=log, stderr=log)
        admins = (st.vars["LCORE_GATEWAY_ADMIN_URL"], st.vars["LCORE_GATEWAY_2_ADMIN_URL"])

        def accepted():
            return [metric_at(a, "lcore_gateway_readings_accepted_total") for a in admins]

        def sim(prefix, rate, seconds):
            return st.sim("--url", f"http://{lb}", "--devices", "40", "--rate", str(rate),
                          "--duration", str(seconds), "--concurrency", "16", "--device-prefix", prefix)

        def stored(prefix):
            return int(st.sql(f"SELECT count(*) FROM records WHERE device_id LIKE '{prefix}%'"))

        def both_gateways_take_readings():
            wait_for("HAProxy to listen", lambda: subprocess.run(
                ["curl", "-s", "-o", "/dev/null", f"http://{lb}/"]).returncode == 0, timeout=10)
            before = accepted()
            out = sim("lb-a", 300, 4)
            expect(out["accepted"] == out["sent"], f"through HAProxy: {out}")
            after = accepted()
            got = [a - b for a, b in zip(after, before)]
            print(f"  accepted {out['accepted']}: gw-1 {got[0]:.0f}, gw-2 {got[1]:.0f}")
            expect(all(g > 0 for g in got), f"a gateway got no reading: {got}")
            wait_for("all stored", lambda: stored("lb-a") == int(out["accepted"]), timeout=30)

        def gateway_killed_under_load():
            with open(os.path.join(st.dir, "run", "gateway-2.pid")) as f:
                pid = int(f.read())
            ctx = {}
            load = subprocess.Popen(
                [os.path.join(BIN, "lcore-sim"), "--url", f"http://{lb}", "--admin-url", st.admin_url,
                 "--admin-token", st.token, "--quiet", "--devices", "40", "--rate", "300", "--duration",
                 "10", "--concurrency", "16", "--device-prefix", "lb-b"],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            time.sleep(3)
            os.kill(pid, signal.SIGKILL)
            out, err = load.communicate(timeout=120)
            expect(load.returncode == 0, f"lcore-sim: {err}")
            res = dict(line.partition("=")[::2] for line in out.splitlines())
            ctx.update(res)
            print("  sim:", {k: res.get(k) for k in ("sent", "accepted", "rejected", "backpressure", "errors", "retried", "unanswered")})
            print(f"  sent through HAProxy while gateway-2 was killed: {res.get('accepted')} accepted,"
                  f" {res.get('errors')} errors, p99 {res.get('p99_ms')} ms")
            failed = {k: res.get(k) for k in ("rejected", "backpressure", "errors", "unanswered")
                      if res.get(k) != "0"}
            expect(not failed and res["accepted"] == res["sent"],
                   f"devices saw failures: {failed}, {res['accepted']} accepted of {res['sent']} sent")
            # gateway-2's log holds what it accepted and had not handed on: it replays on start.
            up = subprocess.run([STACK, "up"], env=st.env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                text=True, timeout=120)
            expect(up.returncode == 0, f"stack up: {up.stderr[-1500:]}")
            want = int(res["accepted"])
            wait_for(f"{want} readings stored", lambda: stored("lb-b") >= want, timeout=60)
            time.sleep(2)  # a late duplicate would show now
            got = stored("lb-b")
            expect(got == want, f"{got} stored for {want} accepted")

        try:
            checks.run("readings through HAProxy reach both gateways", both_gateways_take_readings)
            checks.run("kill -9 of a gateway under load: no error for devices, every 202 stored once",
                       gateway_killed_under_load)
        finally:
            haproxy.terminate()
            try:
                haproxy.wait(timeout=10)
            except subprocess.TimeoutExpired:
                haproxy.kill()
                haproxy.wait(timeout=10)
    checks.done()


if __name__ == "__main__":
    main()
