"""scripts/stack as an operator uses it: `up` is idempotent and brings back a killed service,
`status` tells the truth, and `down` leaves nothing behind. The stack runs two gateways
(LCORE_GATEWAYS=2), both fed by every worker, and `up` makes and keeps the reader token. Its
private MQTT broker refuses anonymous clients, lets each gateway in with its own password file
(and nowhere its role does not reach) and the admin list the clients."""
import os
import signal
import stat
import subprocess
import tempfile
import time

from harness import STACK, Checks, Device, Stack, expect, http, metric_at

SERVICES = ("store", "crypto-1", "crypto-2", "mosquitto", "gateway", "gateway-2")


def mqtt_client(tool, port, user, password_file, *args, timeout=15):
    """mosquitto_sub/_rr as USER: the password goes through the tool's options file
    ($XDG_CONFIG_HOME/<tool>, in a private folder), never on its command line."""
    with tempfile.TemporaryDirectory() as xdg:
        if password_file:
            with open(os.open(os.path.join(xdg, tool), os.O_WRONLY | os.O_CREAT, 0o600), "w") as f:
                f.write("-P " + open(password_file).read().strip() + "\n")
        cmd = [tool, "-h", "127.0.0.1", "-p", str(port)] + (["-u", user] if user else []) + list(args)
        return subprocess.run(cmd, env=dict(os.environ, XDG_CONFIG_HOME=xdg), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, timeout=timeout)


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
            victims = {n: pid_of(n) for n in ("crypto-2", "mosquitto", "gateway")}
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

        def mqtt_broker():
            url = st.vars.get("LCORE_MQTT_URL", "")
            expect(url == f"mqtt://127.0.0.1:{1883 + st.offset}", f"LCORE_MQTT_URL={url!r}")
            port = int(url.rsplit(":", 1)[1])
            mqtt = os.path.join(st.dir, "mqtt")
            admin_pw = st.vars.get("LCORE_MQTT_ADMIN_PASSWORD_FILE", "")
            expect(st.vars.get("LCORE_MQTT_ADMIN_USERNAME") == "lcore-admin" and
                   admin_pw == os.path.join(mqtt, "admin.password"), "admin username / password file")
            for name in ("admin.password", "gw-1.password", "gw-2.password", "dynamic-security.json"):
                mode = stat.S_IMODE(os.stat(os.path.join(mqtt, name)).st_mode)
                expect(mode == 0o600, f"<state>/mqtt/{name} is {oct(mode)}, not 0600")
            conf = open(os.path.join(mqtt, "mosquitto.conf")).read().splitlines()
            for line in ("allow_anonymous false", "persistence true", f"listener {port} 127.0.0.1",
                         "persistence_location " + os.path.join(mqtt, "data")):
                expect(line in conf, f"mosquitto.conf lacks {line!r}")
            expect(not [l for l in conf if l.startswith("log_type") and l.split()[1] in ("debug", "all")],
                   "mosquitto.conf logs debug (packets)")
            # The gateways' listener: TLS with the stack's certificate; both gateways' ingest and
            # provisioning connections are on it, verified; plain MQTT gets nowhere there.
            tls_url, ca = st.vars.get("LCORE_MQTT_TLS_URL", ""), st.vars.get("LCORE_MQTT_CA_FILE", "")
            tls_port = 8883 + st.offset
            expect(tls_url == f"mqtts://127.0.0.1:{tls_port}" and ca == os.path.join(mqtt, "tls.crt"),
                   f"LCORE_MQTT_TLS_URL={tls_url!r} LCORE_MQTT_CA_FILE={ca!r}")
            expect(f"listener {tls_port} 127.0.0.1" in conf, "mosquitto.conf lacks the TLS listener")
            for gw in ("gateway", "gateway-2"):
                log = open(os.path.join(st.dir, "log", gw + ".log")).read()
                for event in ("mqtt_started", "broker_control_started"):
                    line = [l for l in log.splitlines() if f"event={event} " in l][-1:]
                    expect(line and f":{tls_port}" in line[0].replace(" port=", ":") and "tls=on" in line[0],
                           f"{gw}: {event} not over TLS to {tls_port}: {line}")
                expect("event=mqtt_connected" in log, f"{gw}: never connected to the broker over TLS")
            out = mqtt_client("mosquitto_sub", tls_port, "lcore-admin", admin_pw, "--cafile", ca,
                              "-t", "$SYS/broker/version", "-C", "1", "-W", "5")
            expect(out.returncode == 0 and "mosquitto" in out.stdout,
                   f"the admin over TLS, verified: exit {out.returncode} {out.stderr!r}")
            out = mqtt_client("mosquitto_sub", tls_port, "lcore-admin", admin_pw, "-t", "#", "-W", "2")
            expect(out.returncode != 0, f"plain MQTT to the TLS listener: exit {out.returncode}")
            # Anonymous: refused at CONNECT (CONNACK 5, "not authorised"); a wrong password too.
            out = mqtt_client("mosquitto_sub", port, None, None, "-t", "#", "-W", "2")
            expect(out.returncode == 5 and "not authorised" in out.stderr,
                   f"anonymous client: exit {out.returncode} {out.stderr!r}")
            bad = os.path.join(st.dir, "wrong.password")
            with open(bad, "w") as f:
                f.write("0" * 48)
            out = mqtt_client("mosquitto_sub", port, "lcore-gw-gw-1", bad, "-t", "#", "-W", "2")
            expect(out.returncode == 5, f"a wrong password: exit {out.returncode} {out.stderr!r}")
            # Each gateway: in with its own password; its shared subscription granted (exit 27:
            # waited the -W second for a message), the result topics it only publishes to denied.
            for gw in ("gw-1", "gw-2"):
                pw = os.path.join(mqtt, gw + ".password")
                out = mqtt_client("mosquitto_sub", port, "lcore-gw-" + gw, pw,
                                  "-t", "$share/lcore/lcore/v1/+/data", "-t", "$share/lcore/lcore/v1/+/batch",
                                  "-W", "1")
                expect(out.returncode == 27, f"lcore-gw-{gw}: exit {out.returncode} {out.stderr!r}")
                out = mqtt_client("mosquitto_sub", port, "lcore-gw-" + gw, pw,
                                  "-t", "lcore/v1/+/result", "-W", "1")
                expect("denied" in out.stderr, f"lcore-gw-{gw} may read results: {out.returncode} {out.stderr!r}")
            # The gateway provisions devices: its role may send the plugin's $CONTROL commands
            # and read the answer.
            out = mqtt_client("mosquitto_rr", port, "lcore-gw-gw-1", os.path.join(mqtt, "gw-1.password"),
                              "-t", "$CONTROL/dynamic-security/v1", "-e", "$CONTROL/dynamic-security/v1/response",
                              "-m", '{"commands":[{"command":"listClients"}]}', "-W", "5")
            expect(out.returncode == 0 and "lcore-gw-gw-2" in out.stdout,
                   f"the gateway's $CONTROL command: exit {out.returncode} {out.stdout!r} {out.stderr!r}")
            # The admin (password on mosquitto_ctrl's stdin) lists the clients.
            with open(admin_pw) as pw_in:
                out = subprocess.run(["mosquitto_ctrl", "-h", "127.0.0.1", "-p", str(port), "-u", "lcore-admin",
                                      "dynsec", "listClients"], stdin=pw_in, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, timeout=15)
            clients = out.stdout.split()
            expect("lcore-gw-gw-1" in clients and "lcore-gw-gw-2" in clients and "lcore-admin" in clients,
                   f"listClients: {out.stdout!r} {out.stderr!r}")
            # No password in any log (the broker's included).
            passwords = [open(os.path.join(mqtt, n)).read().strip()
                         for n in ("admin.password", "gw-1.password", "gw-2.password")]
            expect(not st.log_hits(passwords), f"a broker password in a log: {st.log_hits(passwords)}")
            store, deadline = os.path.join(mqtt, "data", "mosquitto.db"), time.time() + 5
            while not os.path.exists(store) and time.time() < deadline:
                time.sleep(0.2)
            expect(os.path.exists(store), "no broker store in <state>/mqtt/data (autosave: every ~2 s)")

        def down_stops_everything():
            pids = {n: pid_of(n) for n in SERVICES}
            out = run("down", LCORE_STACK_PURGE="1")
            expect(out.returncode == 0, out.stderr)
            stops = [l.split()[2] for l in out.stderr.splitlines() if l.startswith("stack: stopping ")]
            expect(stops[:3] == ["gateway", "gateway-2", "mosquitto"],
                   f"gateways not stopped first, then the broker: {stops}")
            alive = [n for n, pid in pids.items() if running(pid)]
            expect(not alive, f"still running after down: {alive}")
            out = run("status")
            expect(out.returncode == 3, f"status after down exit {out.returncode}")
            for name in ("gateway", "gateway-2"):
                line = [l for l in out.stdout.splitlines() if l.split()[:1] == [name]]
                expect(line and "stopped" in line[0], f"status after down, {name}: {line}")
            # The token lived in the purged database: its file goes with it; so do the broker's
            # store and its clients (the devices' credentials mirror the purged registry).
            expect(not os.path.exists(os.path.join(st.dir, "reader_token")), "reader_token kept after purge")
            expect(not os.path.exists(os.path.join(st.dir, "mqtt")), "<state>/mqtt kept after purge")

        checks.run("status: every component running and ready", status_all_ready)
        checks.run("LCORE_GATEWAYS=2: every worker serves both gateways, both store readings", two_gateways)
        checks.run("LCORE_READER_TOKEN: kept 0600, a Bearer on either gateway", reader_token)
        checks.run("up again: same output (same reader token), nothing restarted", up_is_idempotent)
        checks.run("a reader token the gateway no longer knows: up makes a new one", deleted_reader_token_is_made_again)
        checks.run("MQTT broker: no anonymous access; each gateway in with its password, as its role allows; "
                   "the admin lists the clients", mqtt_broker)
        checks.run("kill -9 crypto-2, mosquitto and gateway: status says so, up brings them back",
                   killed_service_comes_back)
        checks.run("--help lists LCORE_* variables; an invalid value exits 2 with the reason", help_lists_variables)
        checks.run("down (purge) stops the gateways first, then the broker, then everything; the reader "
                   "token and the broker's files go", down_stops_everything)
    checks.done()


if __name__ == "__main__":
    main()
