"""scripts/stack as an operator uses it: `up` is idempotent and brings back a killed service,
`status` tells the truth, and `down` leaves nothing behind. The stack runs two gateways
(LCORE_GATEWAYS=2), both fed by every worker, and `up` makes and keeps the reader token."""
import os
import signal
import stat
import subprocess
import time

from harness import STACK, Checks, Device, Stack, expect, http, metric_at

SERVICES = ("store", "crypto-1", "crypto-2", "gateway", "gateway-2")


def main():
    checks = Checks()
    with Stack(workers=2, extra_env={"LCORE_GATEWAYS": "2"}) as st:
        def run(cmd, **env):
            return subprocess.run([STACK, cmd], env=dict(st.env, **env), stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True, timeout=180)

        def running(pid):  # exists and is not a zombie (nobody may reap an orphan here)
            try:
                return open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0] != "Z"
            except OSError:
                return False

        def pid_of(name):
            return int(open(os.path.join(st.dir, "run", name + ".pid")).read().split()[0])

        def status_all_ready():
            out = run("status")
            expect(out.returncode == 0, f"status exit {out.returncode}: {out.stdout}")
            for name in ("postgres",) + SERVICES:
                line = [l for l in out.stdout.splitlines() if l.split()[:1] == [name]]
                expect(line and "running" in line[0] and "ready" in line[0], f"{name}: {line}")

        def two_gateways():
            # Every worker connects to both gateways' readings and open endpoints (the gauges
            # settle within a moment of start), and a device's readings sent to either are stored.
            gateways = (("gateway", st.url, st.admin_url),
                        ("gateway-2", st.vars["LCORE_GATEWAY_2_URL"], st.vars["LCORE_GATEWAY_2_ADMIN_URL"]))
            expect(st.vars["LCORE_GATEWAY_2_URL"] != st.url, "gateway-2 has the first gateway's URL")
            want = {(g, m): 2.0 for g, _, _ in gateways
                    for m in ("lcore_gateway_workers_connected", "lcore_gateway_open_workers_connected")}
            want.update({(w, "lcore_crypto_gateways_connected"): 2.0 for w in ("crypto-1", "crypto-2")})
            admin = {"gateway": st.admin_url, "gateway-2": st.vars["LCORE_GATEWAY_2_ADMIN_URL"],
                     "crypto-1": st.vars["LCORE_CRYPTO_ADMIN_URL"], "crypto-2": st.vars["LCORE_CRYPTO_2_ADMIN_URL"]}
            deadline, got = time.time() + 10, {}
            while time.time() < deadline:
                got = {k: metric_at(admin[k[0]], k[1]) for k in want}
                if got == want:
                    break
                time.sleep(0.2)
            expect(got == want, f"connections: {got}")
            dev = Device(st, "two-gateways")
            s, _, body = dev.register()
            expect(s == 201, f"register: {s} {body}")
            for seq, (name, url, _) in enumerate(gateways, 1):
                s, _, body = http("POST", url + "/v1/data", dev.sign(dev.reading(seq)),
                                  {"Content-Type": "application/jose"})
                expect(s == 202, f"reading {seq} to {name}: {s} {body}")
            expect(st.wait_rows("device_id = 'two-gateways'", 2) == 2, "the two gateways' readings not both stored")
            ids = os.listdir(os.path.join(st.dir, "data"))
            expect(sorted(ids) == ["gw-1", "gw-2"], f"one log directory per gateway: {ids}")

        def reader_token():
            tok = st.vars.get("LCORE_READER_TOKEN", "")
            path = os.path.join(st.dir, "reader_token")
            expect(len(tok) >= 32, "LCORE_READER_TOKEN not printed")
            expect(open(path).read().strip() == tok, "<state>/reader_token is not the token printed")
            expect(stat.S_IMODE(os.stat(path).st_mode) == 0o600, "<state>/reader_token is not 0600")
            dev = Device(st, "reader-token")
            s, _, body = dev.register()
            expect(s == 201, f"register: {s} {body}")
            for url in (st.url, st.vars["LCORE_GATEWAY_2_URL"]):  # tokens are the deployment's
                s, _, body = http("GET", f"{url}/v1/devices/reader-token/status",
                                  headers={"Authorization": "Bearer " + tok})
                expect(s == 200 and body.get("device_id") == "reader-token", f"status at {url}: {s} {body}")
            s, _, body = http("GET", st.url + "/v1/devices/reader-token/status",
                              headers={"Authorization": "Bearer " + "0" * 64})
            expect(s == 401, f"an unknown token: {s} {body}")

        def up_is_idempotent():
            before = {n: pid_of(n) for n in SERVICES}
            out = run("up")
            expect(out.returncode == 0, out.stderr)
            again = dict(l.split("=", 1) for l in out.stdout.splitlines())
            expect(again.get("LCORE_READER_TOKEN") == st.vars["LCORE_READER_TOKEN"],
                   "a second `up` printed another reader token")
            expect(again == st.vars, "a second `up` printed different KEY=VALUE lines")
            after = {n: pid_of(n) for n in before}
            expect(before == after, f"`up` restarted running services: {before} -> {after}")

        def deleted_reader_token_is_made_again():
            # The kept token no longer works (deleted here; a purged database does the same):
            # the next `up` makes a new one, which works.
            old = st.vars["LCORE_READER_TOKEN"]
            token_id = open(os.path.join(st.dir, "reader_token.id")).read().strip()
            s, _, body = http("DELETE", f"{st.admin_url}/v1/tokens/{token_id}",
                              headers={"Authorization": "Bearer " + st.token})
            expect(s == 200, f"DELETE /v1/tokens/{token_id}: {s} {body}")
            out = run("up")
            expect(out.returncode == 0, out.stderr)
            new = dict(l.split("=", 1) for l in out.stdout.splitlines()).get("LCORE_READER_TOKEN", "")
            expect(new and new != old, "`up` did not make a new reader token")
            expect(old not in out.stderr and new not in out.stderr, "`up` wrote a token to stderr")
            s, _, body = http("GET", st.url + "/v1/devices/reader-token/status",
                              headers={"Authorization": "Bearer " + new})
            expect(s == 200, f"the new reader token: {s} {body}")
            st.vars["LCORE_READER_TOKEN"] = new

        def killed_service_comes_back():
            victims = {n: pid_of(n) for n in ("crypto-2", "gateway")}
            for pid in victims.values():
                os.kill(pid, signal.SIGKILL)
            time.sleep(0.5)
            out = run("status")
            expect(out.returncode == 3, f"status after kill -9 exit {out.returncode}: {out.stdout}")
            out = run("up")
            expect(out.returncode == 0, out.stderr)
            for n, old in victims.items():
                expect(pid_of(n) != old, f"{n} was not restarted")
            status_all_ready()
            dev = Device(st, "after-restart")
            s, _, body = dev.register()
            expect(s == 201, f"register after restart: {s} {body}")
            s, _, body = dev.post(dev.sign(dev.reading(1)))
            expect(s == 202, f"reading after restart: {s} {body}")
            expect(st.wait_rows("device_id = 'after-restart'", 1) == 1, "reading after restart not stored")

        def help_lists_variables():
            # Every service: --help lists its variables; an invalid value exits 2 with a one-line
            # reason naming the variable.
            bad_values = {"lcore-gateway": ("LCORE_GATEWAY_HTTP_BIND", "0.0.0.0:0"),
                          "lcore-crypto": ("LCORE_CRYPTO_HWM", "0"),
                          "lcore-store": ("LCORE_STORE_WRITE_BATCH_MAX", "0"),
                          "lcore-chain": ("LCORE_CHAIN_ADMIN_BIND", "127.0.0.1:70000")}
            for exe, (var, value) in bad_values.items():
                path = os.path.join(st.env["LCORE_BIN_DIR"], exe)
                out = subprocess.run([path, "--help"], stdout=subprocess.PIPE, text=True, timeout=10)
                expect(out.returncode == 0 and var in out.stdout and "default" in out.stdout, f"{exe} --help")
                bad = subprocess.run([path], env=dict(st.env, **{var: value}), stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, timeout=10)
                lines = [l for l in bad.stderr.splitlines() if l.strip()]
                expect(bad.returncode == 2 and len(lines) == 1 and var in lines[0],
                       f"{exe} with {var}={value}: exit {bad.returncode} {bad.stderr!r}")

        def down_stops_everything():
            pids = {n: pid_of(n) for n in SERVICES}
            out = run("down", LCORE_STACK_PURGE="1")
            expect(out.returncode == 0, out.stderr)
            stops = [l.split()[2] for l in out.stderr.splitlines() if l.startswith("stack: stopping ")]
            expect(stops[:2] == ["gateway", "gateway-2"], f"gateways not stopped first: {stops}")
            alive = [n for n, pid in pids.items() if running(pid)]
            expect(not alive, f"still running after down: {alive}")
            out = run("status")
            expect(out.returncode == 3, f"status after down exit {out.returncode}")
            for name in ("gateway", "gateway-2"):
                line = [l for l in out.stdout.splitlines() if l.split()[:1] == [name]]
                expect(line and "stopped" in line[0], f"status after down, {name}: {line}")
            # The token lived in the purged database: its file goes with it.
            expect(not os.path.exists(os.path.join(st.dir, "reader_token")), "reader_token kept after purge")

        checks.run("status: every component running and ready", status_all_ready)
        checks.run("LCORE_GATEWAYS=2: every worker serves both gateways, both store readings", two_gateways)
        checks.run("LCORE_READER_TOKEN: kept 0600, a Bearer on either gateway", reader_token)
        checks.run("up again: same output (same reader token), nothing restarted", up_is_idempotent)
        checks.run("a reader token the gateway no longer knows: up makes a new one", deleted_reader_token_is_made_again)
        checks.run("kill -9 crypto-2 and gateway: status says so, up brings them back", killed_service_comes_back)
        checks.run("--help lists LCORE_* variables; an invalid value exits 2 with the reason", help_lists_variables)
        checks.run("down (purge) stops the gateways first, then everything; the reader token goes", down_stops_everything)
    checks.done()


if __name__ == "__main__":
    main()
