"""End-to-end harness: starts the real native stack (scripts/stack) in a private temp dir with
its own ports, and gives tests real HTTP, psql and CLI access. Python standard library only.
Every stack is stopped and purged on exit, and the harness checks nothing was left running."""
import atexit
import fcntl
import json
import os
import random
import re
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

SRC = os.environ.get("LCORE_SOURCE_DIR", os.path.abspath(os.path.join(os.path.dirname(__file__), "../..")))
BIN = os.environ.get("LCORE_BIN_DIR", os.path.join(SRC, "build"))
STACK = os.path.join(SRC, "scripts", "stack")
LCORE_INIT = os.path.join(SRC, "deploy", "compose", "lcore-init")


def make_tls_cert(directory):
    """A self-signed certificate and key for the gateway, made the way docker-compose's
    init-secrets makes them (lcore-init tls). Returns (cert, key) paths; the cert is the CA file."""
    cert, key = os.path.join(directory, "gateway-tls.crt"), os.path.join(directory, "gateway-tls.key")
    subprocess.run(["sh", LCORE_INIT, "tls", cert, key], check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.PIPE, timeout=60)
    return cert, key


def stack_ports(workers=2, stores=1, gateways=1):
    """Every port scripts/stack listens on at offset 0: instance i > 1 of a gateway, worker or
    store on its first one's ports + 10*(i-1)."""
    ports = [15432, 8545, 9104, 5555, 1883, 8883]  # PostgreSQL, anvil, the relayer (admin, queries), MQTT (plain, TLS)
    for i in range(gateways):
        ports += [p + 10 * i for p in (8080, 9101, 5551, 5556)]  # device, admin, readings, open
    ports += [9102 + 10 * i for i in range(workers)]  # admin
    for i in range(stores):
        ports += [p + 10 * i for p in (9103, 5552, 5553, 5554)]  # admin, sealed, events, queries
    return ports


def _ports_free(offset, ports):
    for base in ports:
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind(("127.0.0.1", base + offset))
            except OSError:
                return False
    return True


# The e2e tests run two at a time: a port free when one stack looks can be taken by another
# stack's next service a moment later, or be free only while that service restarts. So each
# stack reserves its ports here, under a lock, for as long as it lives; a reservation whose
# process is gone is dropped.
RESERVATIONS = os.path.join(tempfile.gettempdir(), "lcore-e2e-ports")


def _reserve_offset(ports):
    """An offset whose ports are free and reserved by no live stack; returns it with the path
    of its reservation (removed by Stack.down)."""
    os.makedirs(RESERVATIONS, exist_ok=True)
    with open(os.path.join(RESERVATIONS, "lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        taken = set()
        for name in os.listdir(RESERVATIONS):
            path = os.path.join(RESERVATIONS, name)
            if not name.endswith(".ports"):
                continue
            if not os.path.exists(f"/proc/{name.split('.')[0]}"):
                os.unlink(path)
                continue
            with open(path) as f:
                taken.update(int(p) for p in f.read().split())
        for _ in range(200):
            off = random.randrange(10, 90) * 100 + random.randrange(0, 10)
            mine = {p + off for p in ports}
            if not mine & taken and _ports_free(off, ports):
                path = os.path.join(RESERVATIONS, f"{os.getpid()}.{off}.ports")
                with open(path, "w") as f:
                    f.write(" ".join(str(p) for p in sorted(mine)))
                return off, path
    raise RuntimeError("no free port range")


class Stack:
    """A running native stack. Use as a context manager."""

    def __init__(self, workers=2, extra_env=None, tls=False):
        self.dir = tempfile.mkdtemp(prefix="lcore-e2e-")
        os.chmod(self.dir, 0o755)
        # Every port this stack will listen on, extra instances included, must be free: offsets
        # are 100*k + 0..9, so another stack's port (an extra gateway's +10, a store's 5553 at an
        # offset 1 lower, ...) can be any one of this stack's.
        extra = extra_env or {}
        ports = stack_ports(workers, int(extra.get("LCORE_STORES", 1)), int(extra.get("LCORE_GATEWAYS", 1)))
        self.offset, self._reservation = _reserve_offset(ports)
        self.env = dict(os.environ)
        for k in list(self.env):
            if k.startswith("LCORE_") and k not in ("LCORE_BIN_DIR", "LCORE_SOURCE_DIR"):
                del self.env[k]
        self.env.update({"LCORE_STACK_DIR": self.dir, "LCORE_BIN_DIR": BIN,
                         "LCORE_STACK_PORT_OFFSET": str(self.offset),
                         "LCORE_CRYPTO_WORKERS": str(workers)})
        self.env.update(extra_env or {})
        self.ca_file = None  # tls=True: the gateway's self-signed certificate, to verify it with
        if tls:
            cert, key = make_tls_cert(self.dir)
            self.env.update({"LCORE_GATEWAY_TLS_CERT": cert, "LCORE_GATEWAY_TLS_KEY": key})
            self.ca_file = cert
        self.vars = {}
        self._up = False

    def __enter__(self):
        atexit.register(self.down)
        out = subprocess.run([STACK, "up"], env=self.env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, timeout=180)
        if out.returncode != 0:
            sys.stderr.write(out.stderr)
            self.down()
            raise RuntimeError("stack up failed")
        self._up = True
        for line in out.stdout.splitlines():
            k, _, v = line.partition("=")
            self.vars[k] = v
        return self

    def __exit__(self, *exc):
        self.down()

    def down(self):
        if self.dir is None:
            return
        keep = os.environ.get("LCORE_E2E_KEEP_LOGS")
        if keep:  # a directory: each stack's logs are copied there before the purge
            shutil.copytree(os.path.join(self.dir, "log"),
                            os.path.join(keep, os.path.basename(sys.argv[0]).replace(".py", "")
                                         + "-" + str(self.offset)), dirs_exist_ok=True)
        env = dict(self.env, LCORE_STACK_PURGE="1")
        subprocess.run([STACK, "down"], env=env, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, timeout=120)
        left = subprocess.run(["pgrep", "-f", self.dir], stdout=subprocess.PIPE, text=True).stdout.split()
        if left:
            subprocess.run(["kill", "-9"] + left)
            raise AssertionError(f"processes left behind after stack down: {left}")
        shutil.rmtree(self.dir, ignore_errors=True)
        self.dir = None
        if os.path.exists(self._reservation):
            os.unlink(self._reservation)

    # -- access -----------------------------------------------------------------------------
    @property
    def url(self):
        return self.vars["LCORE_GATEWAY_URL"]

    @property
    def admin_url(self):
        """The gateway's admin listener: /metrics, /healthz, /readyz and the operator API."""
        return self.vars["LCORE_GATEWAY_ADMIN_URL"]

    @property
    def token(self):
        return self.vars["LCORE_ADMIN_TOKEN"]

    @property
    def reader_token(self):
        """LCORE_READER_TOKEN: scopes read and decrypt, every device."""
        return self.vars["LCORE_READER_TOKEN"]

    def read(self, path, method="GET", token=None):
        """A reader's request on the device listener, with the reader token (token "": none). Like
        a well-behaved client it waits out a 429 (the token's request rate,
        LCORE_GATEWAY_TOKEN_RATE) for Retry-After and asks again, up to 30 times."""
        tok = self.reader_token if token is None else token
        for _ in range(30):
            s, h, body = http(method, self.url + path, None,
                              {"Authorization": "Bearer " + tok} if tok else {}, cafile=self.ca_file)
            if s != 429:
                break
            time.sleep(float(h.get("Retry-After", 1)))
        return s, h, body

    def secrets(self):
        """Every secret the stack's state directory holds, as it could be printed: the operator
        and reader tokens, key ring keys (hex), CURVE secret keys (Z85), PostgreSQL passwords, the
        relayer's key, device secret keys and the MQTT broker's passwords (<state>/mqtt/*.password).
        A test greps the logs for each."""
        found = {v for k, v in self.vars.items() if k.endswith("_TOKEN") and v}
        for root, _, files in os.walk(self.dir):
            if os.path.basename(root) == "log":
                continue
            for name in files:
                path = os.path.join(root, name)
                try:
                    text = open(path, errors="replace").read(1 << 20)
                except OSError:
                    continue
                if name.endswith(".keyring") or name == "keyring":
                    found.update(re.findall(r"(?:aes|xchacha|gateway)=([0-9a-f]{64})", text))
                elif name.endswith(".cert_secret"):
                    found.update(re.findall(r'secret-key\s*=\s*"([^"]{40})"', text))
                elif "pgpass" in name or name.endswith(".pgpass"):
                    found.update(line.rsplit(":", 1)[1] for line in text.splitlines() if line.count(":") >= 4)
                elif name.endswith(".key") and text.lstrip().startswith("{"):
                    found.update(re.findall(r'"secret_key"\s*:\s*"([0-9a-f]{64,128})"', text))
                elif name.endswith(".password") and os.path.basename(root) == "mqtt":
                    found.add(text.strip())
                elif name == "chain.key":
                    found.update(re.findall(r"(?:0x)?([0-9a-fA-F]{64})", text))
        return {x for x in found if len(x) >= 16}

    def log_hits(self, needles):
        """(file, needle) for every needle found in the log of any lcore service or of
        PostgreSQL (also under a case change for hex, which a log could print either way)."""
        hits = []
        logdir = os.path.join(self.dir, "log")
        for name in sorted(os.listdir(logdir)):
            if name.startswith("anvil"):
                continue  # anvil prints its well-known development keys; not an lcore service
            text = open(os.path.join(logdir, name), errors="replace").read()
            low = text.lower()
            for n in needles:
                if n in text or (re.fullmatch(r"[0-9a-fA-F]+", n) and n.lower() in low):
                    hits.append((name, n[:12] + "..."))
        return hits

    def sql(self, query, dsn=None):
        """psql as the owner role (LCORE_PG_DSN, or dsn): the rows, '|'-separated, one a line."""
        out = subprocess.run(["psql", dsn or self.vars["LCORE_PG_DSN"], "-X", "-At", "-v", "ON_ERROR_STOP=1", "-c", query],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=60)
        if out.returncode != 0:
            raise RuntimeError(f"psql: {out.stderr}")
        return out.stdout.strip()

    def cli(self, *args, stdin=None, check=True, env=None):
        """lcore-cli with the stack's key ring and operator CURVE identity; env: more variables
        for this run (the operator verbs' LCORE_GATEWAY_ADMIN_URL, say), None unsets one."""
        run_env = dict(self.env, **{k: self.vars[k] for k in ("LCORE_KEYRING", "LCORE_CLI_CURVE_CERT",
                                                              "LCORE_CURVE_TRUST_DIR", "LCORE_STORE_QUERIES_CONNECT")
                                    if k in self.vars})
        for k, v in (env or {}).items():
            if v is None:
                run_env.pop(k, None)
            else:
                run_env[k] = v
        out = subprocess.run([os.path.join(BIN, "lcore-cli")] + list(args), input=stdin, env=run_env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=60)
        if check and out.returncode != 0:
            raise RuntimeError(f"lcore-cli {args[0]}: {out.stderr}")
        return out

    def sim(self, *args):
        ca = ["--cacert", self.ca_file] if self.ca_file else []
        out = subprocess.run([os.path.join(BIN, "lcore-sim"), "--url", self.url, "--admin-url", self.admin_url,
                              "--admin-token", self.token, "--quiet"] + ca + list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True, timeout=300)
        if out.returncode != 0:
            raise RuntimeError(f"lcore-sim failed: {out.stderr}\n{out.stdout}")
        res = {}
        for line in out.stdout.splitlines():
            k, _, v = line.partition("=")
            res[k] = v
        return res

    def metric(self, admin_var, name):
        """Sum of all series of one metric from a service's /metrics."""
        return metric_at(self.vars[admin_var], name)

    def wait_rows(self, where, want, timeout=30):
        deadline = time.time() + timeout
        n = -1
        while time.time() < deadline:
            n = int(self.sql(f"SELECT count(*) FROM records WHERE {where}"))
            if n >= want:
                break
            time.sleep(0.2)
        return n


def metric_at(admin_url, name):
    """Sum of all series of one metric from the /metrics of the admin listener at admin_url."""
    body = urllib.request.urlopen(admin_url + "/metrics", timeout=10).read().decode()
    total = 0.0
    found = False
    for line in body.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            total += float(line.rsplit(" ", 1)[1])
            found = True
    if not found:
        raise AssertionError(f"{name} not exported by {admin_url}")
    return total


def readyz(admin_url):
    """(status, body) of admin_url/readyz; status 0 while nothing listens there."""
    try:
        with urllib.request.urlopen(admin_url + "/readyz", timeout=2) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except OSError as e:
        return 0, str(e)


def http(method, url, body=None, headers=None, timeout=30, cafile=None):
    """Returns (status, headers, parsed JSON or raw text). https URLs are verified against cafile
    (default: the system's CA certificates)."""
    data = body.encode() if isinstance(body, str) else body
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    ctx = ssl.create_default_context(cafile=cafile) if url.startswith("https:") else None
    try:
        with urllib.request.urlopen(req, timeout=timeout, context=ctx) as r:
            status, hdrs, raw = r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        status, hdrs, raw = e.code, dict(e.headers), e.read()
    try:
        return status, hdrs, json.loads(raw)
    except ValueError:
        return status, hdrs, raw.decode(errors="replace")


class Device:
    """A device with a key pair made by lcore-cli, registered through the gateway."""

    def __init__(self, stack, device_id, alg="EdDSA"):
        self.stack, self.id, self.alg = stack, device_id, alg
        self.key = os.path.join(stack.dir, f"{device_id}.key")
        out = stack.cli("device-keygen", "--alg", alg, "--out", self.key, "--device-id", device_id)
        self.registration = out.stdout.strip()

    def register(self):
        return http("POST", self.stack.admin_url + "/v1/devices", self.registration,
                    {"Authorization": "Bearer " + self.stack.token, "Content-Type": "application/json"})

    def reading(self, seq, data=None, device_id=None):
        payload = json.dumps({"device_id": device_id or self.id, "seq": seq, "ts": int(time.time() * 1000),
                              "data": data if data is not None else {"temp": 21.5}}, separators=(",", ":"))
        return payload

    def sign(self, payload):
        return self.stack.cli("sign", "--key", self.key, "--kid", self.id, stdin=payload).stdout.strip()

    def post(self, jws, content_type="application/jose"):
        return http("POST", self.stack.url + "/v1/data", jws, {"Content-Type": content_type},
                    cafile=self.stack.ca_file)


class Checks:
    """Named checks; every failure is reported, the exit code says whether all passed."""

    def __init__(self):
        self.failed = []
        self.passed = 0

    def run(self, name, fn):
        t0 = time.time()
        try:
            fn()
            self.passed += 1
            print(f"PASS {name} ({time.time() - t0:.1f}s)", flush=True)
        except Exception as e:  # noqa: BLE001 - report every kind of failure
            self.failed.append(name)
            print(f"FAIL {name}: {type(e).__name__}: {e}", flush=True)

    def done(self):
        print(f"{self.passed} passed, {len(self.failed)} failed", flush=True)
        sys.exit(1 if self.failed else 0)


def expect(cond, msg):
    if not cond:
        raise AssertionError(msg)
