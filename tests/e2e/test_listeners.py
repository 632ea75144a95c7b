"""Listeners and TLS (DESIGN "HTTP API", "Trust boundary"), end to end with the real executables.
The device listener serves devices and readers only; /metrics, /healthz, /readyz and the operator
API are on the admin listener, which binds 127.0.0.1 by default. With a certificate made the way
docker-compose's init-secrets makes it (deploy/compose/lcore-init tls), the device listener speaks
TLS: lcore-sim registers and sends over https with the CA file; plain http and a client without
the CA get nothing through."""
import os
import socket
import ssl
import subprocess
import urllib.error
import urllib.request

from harness import BIN, Checks, Device, Stack, expect, http

ADMIN_PATHS = ("/metrics", "/healthz", "/readyz")


def listening(port):
    """The local addresses of the TCP sockets listening on port (ss -ltn)."""
    out = subprocess.run(["ss", "-Hltn", f"sport = :{port}"], stdout=subprocess.PIPE, text=True,
                         check=True, timeout=10).stdout
    return sorted(line.split()[3].rsplit(":", 1)[0] for line in out.splitlines() if line.strip())


def free_ports(n):
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def port_of(url):
    return int(url.rsplit(":", 1)[1].split("/")[0])


def split_listeners(st, checks, cafile=None):
    dev = Device(st, "split-1")

    def device_port_serves_no_admin():
        for path in ADMIN_PATHS:
            s, _, body = http("GET", st.url + path, cafile=cafile)
            expect(s == 404, f"GET {path} on the device listener: {s} {body}")
        s, _, body = http("POST", st.url + "/v1/devices", dev.registration,
                          {"Authorization": "Bearer " + st.token, "Content-Type": "application/json"},
                          cafile=cafile)
        expect(s == 404, f"POST /v1/devices on the device listener: {s} {body}")
        expect(st.sql("SELECT count(*) FROM devices WHERE device_id = 'split-1'") == "0",
               "a registration through the device listener reached the store")

    def admin_port_serves_admin():
        s, _, body = http("GET", st.admin_url + "/healthz")
        expect(s == 200, f"/healthz on the admin listener: {s} {body}")
        s, _, body = http("GET", st.admin_url + "/readyz")
        expect(s == 200, f"/readyz on the admin listener: {s} {body}")
        s, _, body = http("GET", st.admin_url + "/metrics")
        expect(s == 200 and "lcore_gateway_requests_total" in body, f"/metrics: {s}")
        s, _, body = http("POST", st.admin_url + "/v1/devices", dev.registration,
                          {"Authorization": "Bearer wrong", "Content-Type": "application/json"})
        expect(s == 401, f"operator API, wrong token: {s} {body}")
        s, _, body = dev.register()
        expect(s == 201 and body["status"] == "registered", f"operator API: {s} {body}")
        s, _, body = dev.register()
        expect(s == 200 and body["status"] == "exists", f"operator API, identical: {s} {body}")
        s, _, body = http("GET", st.admin_url + "/v1/records/" + "00" * 32)
        expect(s == 404, f"reader route on the admin listener: {s} {body}")
        s, _, body = dev.post(dev.sign(dev.reading(1)))
        expect(s == 202, f"reading from the registered device: {s} {body}")
        routes = urllib.request.urlopen(st.admin_url + "/metrics", timeout=10).read().decode()
        expect('lcore_gateway_requests_total{route="devices"} 3' in routes,
               "the operator requests are counted under route=devices")

    def admin_on_loopback():
        for var in ("LCORE_GATEWAY_ADMIN_URL", "LCORE_CRYPTO_ADMIN_URL", "LCORE_STORE_ADMIN_URL",
                    "LCORE_CHAIN_ADMIN_URL"):
            addrs = listening(port_of(st.vars[var]))
            expect(addrs == ["127.0.0.1"], f"{var}: listening on {addrs}, want only 127.0.0.1")

    checks.run("device listener: /metrics, /healthz, /readyz, POST /v1/devices -> 404",
               device_port_serves_no_admin)
    checks.run("admin listener: health, metrics and the operator API (same answers)",
               admin_port_serves_admin)
    checks.run("admin listeners bind 127.0.0.1 by default (ss -ltn)", admin_on_loopback)


def tls(st, checks):
    def sim_over_https():
        expect(st.url.startswith("https://"), f"LCORE_GATEWAY_URL is {st.url}")
        res = st.sim("--devices", "3", "--count", "30", "--rate", "0", "--device-prefix", "tls")
        expect(res["accepted"] == "30", f"lcore-sim over https accepted {res.get('accepted')}: {res}")
        expect(st.wait_rows("device_id LIKE 'tls-%'", 30) == 30, "readings sent over https not stored")

    def plain_http_fails():
        plain = "http://" + st.url[len("https://"):]
        try:
            s, _, body = http("GET", plain + "/v1/records/" + "00" * 32, timeout=10)
        except Exception:  # noqa: BLE001 - no HTTP answer of any kind is the point
            return
        raise AssertionError(f"plain http to the TLS listener answered {s} {body}")

    def client_without_ca_refuses():
        try:
            http("GET", st.url + "/v1/records/" + "00" * 32, timeout=10)
            raise AssertionError("a client without the CA file got through")
        except urllib.error.URLError as e:
            expect(isinstance(e.reason, ssl.SSLCertVerificationError), f"refused, but why: {e}")
        out = subprocess.run([os.path.join(BIN, "lcore-sim"), "--url", st.url, "--no-register",
                              "--devices", "1", "--count", "1", "--quiet"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=60)
        expect(out.returncode == 1 and "accepted=0" in out.stdout,
               f"lcore-sim without --cacert: exit {out.returncode} {out.stdout[-200:]}")
        s, _, _ = st.read("/v1/records/" + "00" * 32)
        expect(s == 404, f"with the CA file: {s}")

    checks.run("lcore-sim registers and sends signed readings over https (--cacert)", sim_over_https)
    checks.run("plain http to the TLS device listener gets no answer", plain_http_fails)
    checks.run("a client without the CA refuses the certificate", client_without_ca_refuses)


def refusals(checks):
    gw = os.path.join(BIN, "lcore-gateway")

    def start_errors():
        d = os.environ.get("TMPDIR", "/tmp")
        for env, want in (({"LCORE_GATEWAY_TLS_CERT": "/nonexistent.pem"}, "LCORE_GATEWAY_TLS_KEY"),
                          ({"LCORE_GATEWAY_ADMIN_BIND": "localhost:9101"}, "LCORE_GATEWAY_ADMIN_BIND"),
                          ({"LCORE_STORE_ADMIN_BIND": "[::1]:0"}, "LCORE_STORE_ADMIN_BIND")):
            exe = os.path.join(BIN, "lcore-store" if "STORE" in want else "lcore-gateway")
            out = subprocess.run([exe], env=dict(PATH=os.environ["PATH"], TMPDIR=d, **env),
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=10)
            # The last line says why (the TLS pair is checked after the configuration log line).
            lines = [l for l in out.stderr.splitlines() if l.strip() and "level=info" not in l]
            expect(out.returncode == 2 and len(lines) == 1 and want in lines[0],
                   f"{env}: exit {out.returncode}, {lines}")

    def bad_certificate():
        port, admin_port, readings_port = free_ports(3)
        d = subprocess.run(["mktemp", "-d"], stdout=subprocess.PIPE, text=True).stdout.strip()
        try:
            garbage = os.path.join(d, "not.pem")
            with open(garbage, "w") as f:
                f.write("not a certificate\n")
            env = dict(PATH=os.environ["PATH"], LCORE_GATEWAY_TLS_CERT=garbage, LCORE_GATEWAY_TLS_KEY=garbage,
                       LCORE_GATEWAY_HTTP_BIND=f"127.0.0.1:{port}", LCORE_GATEWAY_ADMIN_BIND=f"127.0.0.1:{admin_port}",
                       LCORE_GATEWAY_KEYRING=os.path.join(d, "keyring"), LCORE_GATEWAY_WAL_DIR=os.path.join(d, "wal"),
                       LCORE_GATEWAY_READINGS_BIND=f"tcp://127.0.0.1:{readings_port}",
                       LCORE_CURVE_CERT=os.path.join(d, "curve", "gw.cert_secret"),
                       LCORE_CURVE_TRUST_DIR=os.path.join(d, "trust"))
            subprocess.run([os.path.join(BIN, "lcore-cli"), "keygen", "--kind", "gateway"], env=env, check=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=30)
            for role, name in (("gateway", "gw"), ("store", "store")):
                subprocess.run([os.path.join(BIN, "lcore-cli"), "curve-keygen", "--role", role, "--name", name,
                                "--out", os.path.join(d, "curve"), "--trust-dir", os.path.join(d, "trust")],
                               env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               timeout=30)
            out = subprocess.run([gw], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                 timeout=30)
            expect(out.returncode == 1 and "event=tls_listen_failed" in out.stderr,
                   f"gateway with a bad certificate: exit {out.returncode} {out.stderr[-600:]}")
        finally:
            subprocess.run(["rm", "-rf", d])

    checks.run("invalid listener settings exit 2 naming the variable", start_errors)
    checks.run("a certificate that does not load stops the gateway (exit 1, tls_listen_failed)",
               bad_certificate)


def main():
    checks = Checks()
    refusals(checks)
    with Stack(workers=1) as st:
        split_listeners(st, checks)
    with Stack(workers=1, tls=True) as st:
        split_listeners(st, checks, cafile=st.ca_file)
        tls(st, checks)
    checks.done()


if __name__ == "__main__":
    main()
