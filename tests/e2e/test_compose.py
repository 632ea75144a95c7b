"""docker-compose.yml and deploy/Dockerfile, checked the way CI can without a docker engine:
`docker-compose config -q` must accept the file, and what it resolves to must hold together with
the real executables: every environment variable set on an lcore service is one that service's
executable lists in `--help` (or is on the allow-list below), no secret value is in the file,
crypto scales (`--scale crypto=4`), every service has a /healthz healthcheck on its real admin
port, start order waits on health or on a one-shot's success, every endpoint names a compose
service and the port its peer binds. The Dockerfile's stages are checked against
scripts/install-deps and against the libraries the built executables link. The MQTT broker
(mosquitto, from the lcore image) publishes only its TLS device listener, keeps its store on a
named volume and runs the configuration lcore-init writes, which refuses anonymous clients.

Allow-list (variables not in any lcore `--help`):
  - lcore services whose executable talks to PostgreSQL (its --help lists LCORE_PG_DSN): libpq's
    own connection variables (LIBPQ_VARS, from the libpq manual "Environment Variables"), so
    PGPASSFILE can keep the password out of LCORE_PG_DSN. PGPASSWORD is refused everywhere.
  - postgres (the official image): its documented POSTGRES_* variables and PGDATA, but not
    POSTGRES_PASSWORD (the password comes from POSTGRES_PASSWORD_FILE).
  - init-db (the postgres image running deploy/compose/lcore-init-db): libpq's variables, but not
    PGPASSWORD.
  - grafana: GF_* (Grafana maps every GF_<SECTION>_<KEY> to its configuration), but not
    GF_SECURITY_ADMIN_PASSWORD (use GF_SECURITY_ADMIN_PASSWORD__FILE).
  - prometheus, anvil: nothing.
Python standard library only; YAML is read through docker-compose's own interpreter when the
compose tool cannot print JSON (Debian's docker-compose 1.29 cannot; `docker compose` v2 can)."""
import fnmatch
import json
import os
import re
import shutil
import subprocess
import sys

from harness import BIN, SRC, Checks, expect

COMPOSE_FILE = "docker-compose.yml"
DOCKERFILE = os.path.join(SRC, "deploy", "Dockerfile")
INIT_SCRIPT = os.path.join(SRC, "deploy", "compose", "lcore-init")

# Each lcore-image service and the executables whose `--help` says which variables it may set.
# The one-shots set up files for the services, so they read the same variables those do.
LCORE_SERVICES = {
    "gateway": ["lcore-gateway"],
    "crypto": ["lcore-crypto"],
    "store": ["lcore-store"],
    "chain": ["lcore-chain"],
    "init-secrets": ["lcore-cli", "lcore-gateway", "lcore-chain"],
    "init-contract": ["lcore-chain"],
    "migrate-db": ["lcore-store", "lcore-chain"],
    "tools": ["lcore-cli", "lcore-sim"],
    # The MQTT broker runs from the lcore image but is no lcore executable: no variables at all.
    "mosquitto": [],
}
LONG_RUNNING = ("gateway", "crypto", "store", "chain")
# Third-party images: the variables each may set (a predicate on the name).
POSTGRES_VARS = {"POSTGRES_USER", "POSTGRES_USER_FILE", "POSTGRES_DB", "POSTGRES_DB_FILE",
                 "POSTGRES_PASSWORD_FILE", "POSTGRES_INITDB_ARGS", "POSTGRES_INITDB_WALDIR",
                 "POSTGRES_HOST_AUTH_METHOD", "PGDATA"}
THIRD_PARTY = {
    "postgres": lambda v: v in POSTGRES_VARS,
    "init-db": lambda v: v in LIBPQ_VARS and v != "PGPASSWORD",
    "grafana": lambda v: v.startswith("GF_") and v != "GF_SECURITY_ADMIN_PASSWORD",
    "prometheus": lambda v: False,
    "anvil": lambda v: False,
}
LIBPQ_VARS = {"PGHOST", "PGHOSTADDR", "PGPORT", "PGDATABASE", "PGUSER", "PGPASSFILE", "PGSERVICE",
              "PGSERVICEFILE", "PGOPTIONS", "PGAPPNAME", "PGSSLMODE", "PGREQUIRESSL",
              "PGSSLCOMPRESSION", "PGSSLCERT", "PGSSLKEY", "PGSSLROOTCERT", "PGSSLCRL",
              "PGSSLCRLDIR", "PGSSLSNI", "PGREQUIREPEER", "PGSSLMINPROTOCOLVERSION",
              "PGSSLMAXPROTOCOLVERSION", "PGGSSENCMODE", "PGKRBSRVNAME", "PGGSSLIB",
              "PGCONNECT_TIMEOUT", "PGCLIENTENCODING", "PGTARGETSESSIONATTRS", "PGDATESTYLE",
              "PGTZ", "PGGEQO", "PGSYSCONFDIR", "PGLOCALEDIR"}
# Secrets go in files: these variables must never carry a value in the compose file.
SECRET_VARS = {"LCORE_ADMIN_TOKEN", "PGPASSWORD", "POSTGRES_PASSWORD", "GF_SECURITY_ADMIN_PASSWORD"}
# Variables naming a file or directory that must be on a volume mounted in that service.
PATH_VARS = re.compile(r"^(LCORE_KEYRING|LCORE_GATEWAY_KEYRING|PGPASSFILE|LCORE_GATEWAY_WAL_DIR|"
                       r"[A-Z0-9_]+_FILE)$")
# Secrets per service (DESIGN "Trust boundary"): each secrets volume and who may mount it. The
# one-shots set them up (init-secrets writes all; init-contract uses the relayer key); the
# operator's tools read the seal ring to decrypt. Any other volume named *secret* is refused.
SECRET_VOLUMES = {
    "gateway-secrets": {"gateway", "init-secrets"},
    "crypto-secrets": {"crypto", "init-secrets", "tools"},
    "store-secrets": {"store", "init-secrets"},
    "chain-secrets": {"chain", "init-secrets", "init-contract"},
    "operator-secrets": {"tools", "init-secrets", "migrate-db"},
    "secrets": {"init-secrets"},  # the single volume of stacks before the split
    "postgres-secret": {"postgres", "init-secrets", "init-db"},
    "grafana-secret": {"grafana", "init-secrets"},
    # The broker's configuration, dynamic-security file and TLS key; the broker writes it (its
    # plugin saves the clients the gateway provisions).
    "mqtt-secrets": {"mosquitto", "init-secrets"},
}
# Start order the stack needs (service -> what must be up first; transitively is enough).
REQUIRED_ORDER = [("postgres", "init-secrets"), ("store", "postgres"), ("store", "init-secrets"),
                  ("gateway", "store"), ("crypto", "store"), ("crypto", "init-secrets"),
                  ("init-contract", "anvil"), ("init-contract", "init-secrets"),
                  ("chain", "init-contract"), ("chain", "store"), ("grafana", "init-secrets"),
                  ("init-db", "postgres"), ("init-db", "init-secrets"), ("migrate-db", "init-db"),
                  ("store", "migrate-db"), ("chain", "migrate-db"), ("mosquitto", "init-secrets"),
                  ("gateway", "mosquitto")]
# The PostgreSQL role each lcore service connects as (the user in its LCORE_PG_DSN), and the one
# pgpass volume it may mount: no service is the superuser, each sees only its own password. The
# tools (lcore-cli, lcore-sim) reach no database: they talk to the services and the chain.
PG_ROLES = {"store": ("lcore_store", "store-secrets"), "chain": ("lcore_chain", "chain-secrets"),
            "migrate-db": ("lcore", "operator-secrets")}
CONDITIONS = ("service_healthy", "service_completed_successfully")
LCORE_INIT = open(os.path.join(SRC, "deploy", "compose", "lcore-init")).read()


def compose_command():
    """docker-compose (Debian's 1.29) or the `docker compose` v2 plugin, else None."""
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    if shutil.which("docker"):
        out = subprocess.run(["docker", "compose", "version"], stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
        if out.returncode == 0:
            return ["docker", "compose"]
    return None


def compose_env():
    # The operator's COMPOSE_* settings (other files, profiles, project) must not change what
    # is checked.
    return {k: v for k, v in os.environ.items() if not k.startswith("COMPOSE_")}


def run_compose(cmd, *args):
    return subprocess.run(cmd + ["-f", COMPOSE_FILE, "--profile", "tools"] + list(args), cwd=SRC,
                          env=compose_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True, timeout=120)


def yaml_to_json(text, cmd):
    """YAML -> JSON with PyYAML: this interpreter's, else docker-compose's own (Debian's
    docker-compose is a python3 script depending on python3-yaml)."""
    conv = "import json, sys, yaml; json.dump(yaml.safe_load(sys.stdin), sys.stdout)"
    interpreters = [sys.executable]
    path = shutil.which(cmd[0])
    if path:
        with open(path, "rb") as f:
            first = f.readline().decode(errors="replace")
        if first.startswith("#!") and "python" in first:
            interpreters.append(first[2:].split()[0])
    for py in interpreters:
        out = subprocess.run([py, "-c", conv], input=text, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, timeout=60)
        if out.returncode == 0:
            return json.loads(out.stdout)
    raise AssertionError("cannot read docker-compose's YAML output: no python3 with PyYAML "
                         f"(tried {interpreters}); install python3-yaml")


def load_config(cmd):
    out = run_compose(cmd, "config", "--format", "json")  # docker compose v2
    if out.returncode == 0 and out.stdout.lstrip().startswith("{"):
        return json.loads(out.stdout)
    out = run_compose(cmd, "config")  # docker-compose 1.29: YAML only
    expect(out.returncode == 0, f"config: {out.stderr.strip()}")
    return yaml_to_json(out.stdout, cmd)


def help_of(exe):
    """(names, defaults) of the LCORE_* variables an executable's --help lists."""
    path = os.path.join(BIN, exe)
    out = subprocess.run([path, "--help"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         text=True, timeout=10)
    expect(out.returncode == 0, f"{exe} --help exited {out.returncode}")
    names = set(re.findall(r"\bLCORE_[A-Z0-9_]+\b", out.stdout))
    defaults, current = {}, None
    for line in out.stdout.splitlines():
        m = re.match(r"^\s{2}(LCORE_[A-Z0-9_]+)\s", line)
        if m:
            current = m.group(1)
            continue
        m = re.match(r"^\s+default (.*?)(?:, (?:range|one of) .*)?$", line)
        if m and current:
            defaults[current] = m.group(1).strip("'")
            current = None
    expect(names, f"{exe} --help lists no LCORE_* variable")
    return names, defaults


def words(value):
    """A command or entrypoint as one string, with compose's $$ escape undone."""
    if value is None:
        return ""
    if isinstance(value, list):
        value = " ".join(str(v) for v in value)
    return str(value).replace("$$", "$")


def environment(svc):
    env = svc.get("environment") or {}
    if isinstance(env, list):  # KEY=VALUE list form
        env = dict(e.split("=", 1) if "=" in e else (e, None) for e in env)
    return {k: ("" if v is None else str(v)) for k, v in env.items()}


def command_assignments(svc):
    """Variables a service's command sets itself (sh -c 'VAR=... exec ...')."""
    return set(re.findall(r"\b([A-Z][A-Z0-9_]*)=", words(svc.get("entrypoint")) + " "
                          + words(svc.get("command"))))


def mounts(svc):
    """[(type, source, target, read_only)] from either the short or the long volume syntax."""
    res = []
    for v in svc.get("volumes") or []:
        if isinstance(v, dict):
            res.append((v.get("type", "volume"), v.get("source"), v["target"],
                        bool(v.get("read_only"))))
            continue
        parts = v.split(":")
        src, tgt = (parts[0], parts[1]) if len(parts) > 1 else (None, parts[0])
        mode = parts[2].split(",") if len(parts) > 2 else []
        kind = "bind" if src and src[0] in "/.~" else "volume"
        res.append((kind, src, tgt, "ro" in mode))
    return res


def mount_of(svc, path):
    """The mount holding path (the longest matching target), or None."""
    best = None
    for m in mounts(svc):
        tgt = m[2].rstrip("/")
        if path == tgt or path.startswith(tgt + "/"):
            if best is None or len(tgt) > len(best[2].rstrip("/")):
                best = m
    return best


def healthcheck_test(svc):
    hc = svc.get("healthcheck") or {}
    if hc.get("disable"):
        return None
    test = hc.get("test")
    if not test or test == ["NONE"]:
        return None
    return words(test)


def dockerfile_stages():
    """[(from_line, [instructions])] with continuation lines joined and comments dropped."""
    with open(DOCKERFILE) as f:
        lines = f.read().splitlines()
    instructions, cur = [], ""
    for line in lines:
        if not cur and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.lstrip().startswith("#"):
            continue
        if line.rstrip().endswith("\\"):
            cur += line.rstrip()[:-1] + " "
            continue
        instructions.append(" ".join((cur + line).split()))
        cur = ""
    stages = []
    for ins in instructions:
        if ins.upper().startswith("FROM "):
            stages.append((ins, []))
        elif stages:
            stages[-1][1].append(ins)
    return stages


def apt_packages(instrs):
    pkgs = set()
    for ins in instrs:
        if not ins.upper().startswith("RUN "):
            continue
        for seg in re.split(r"&&|;|\|\|", ins):
            m = re.search(r"apt-get\s+install\s+(.*)", seg)
            if m:
                pkgs |= {w for w in m.group(1).split() if not w.startswith("-")}
    return pkgs


def main():
    checks = Checks()
    cmd = compose_command()
    if cmd is None:
        print("FAIL docker-compose is not installed: run scripts/install-deps (Debian package "
              "docker-compose), or install the docker compose v2 plugin", flush=True)
        sys.exit(1)

    state = {}

    def config_valid():
        out = run_compose(cmd, "config", "-q")
        expect(out.returncode == 0, f"{' '.join(cmd)} config -q exited {out.returncode}: "
               f"{out.stderr.strip()}")
        state["cfg"] = load_config(cmd)
        state["svcs"] = state["cfg"].get("services") or {}

    checks.run(f"{' '.join(cmd)} config -q accepts {COMPOSE_FILE}", config_valid)
    if "svcs" not in state:
        checks.done()
    svcs = state["svcs"]
    helps = {}

    def known_vars(name):
        names, defaults = set(), {}
        for exe in LCORE_SERVICES[name]:
            if exe not in helps:
                helps[exe] = help_of(exe)
            names |= helps[exe][0]
            defaults.update(helps[exe][1])
        return names, defaults

    def services_present():
        want = {"postgres", "anvil", "init-secrets", "init-contract", "init-db", "migrate-db",
                "gateway", "crypto", "store", "chain", "prometheus", "grafana", "mosquitto"}
        missing = want - set(svcs)
        expect(not missing, f"services missing: {sorted(missing)}")
        unknown = set(svcs) - set(LCORE_SERVICES) - set(THIRD_PARTY)
        expect(not unknown, f"services this test does not know (add them to its tables): "
               f"{sorted(unknown)}")

    def env_vars_known():
        bad = []
        for name, svc in sorted(svcs.items()):
            set_here = set(environment(svc)) | command_assignments(svc)
            if name in LCORE_SERVICES:
                known, _ = known_vars(name)
                uses_pg = "LCORE_PG_DSN" in known
                for var in sorted(set_here):
                    if var in known or (uses_pg and var in LIBPQ_VARS and var != "PGPASSWORD"):
                        continue
                    bad.append(f"{name}: {var} (not in {'/'.join(LCORE_SERVICES[name])} --help)")
            elif name in THIRD_PARTY:
                bad += [f"{name}: {v} (not on the allow-list)" for v in sorted(set_here)
                        if not THIRD_PARTY[name](v)]
        expect(not bad, "unknown environment variables: " + "; ".join(bad))

    def no_secret_values():
        bad = []
        for name, svc in sorted(svcs.items()):
            env = environment(svc)
            for var in sorted((set(env) | command_assignments(svc)) & SECRET_VARS):
                bad.append(f"{name}: {var} is set (use its *_FILE variant / a file)")
            for var, val in sorted(env.items()):
                if re.search(r"://[^/@\s]*:[^/@\s]+@", val):
                    bad.append(f"{name}: {var} has a password in its URL")
                if re.search(r"(?<![0-9a-fA-F])(0x)?[0-9a-fA-F]{64}(?![0-9a-fA-F])", val):
                    bad.append(f"{name}: {var} holds what looks like a key")
            if re.search(r"(?<![0-9a-fA-F])[0-9a-fA-F]{64}(?![0-9a-fA-F])",
                         words(svc.get("command")) + words(svc.get("entrypoint"))):
                bad.append(f"{name}: its command holds what looks like a key")
        expect(not bad, "; ".join(bad))

    def files_on_volumes():
        bad = []
        for name, svc in sorted(svcs.items()):
            for var, val in sorted(environment(svc).items()):
                if not PATH_VARS.match(var):
                    continue
                m = mount_of(svc, val)
                if m is None or m[0] != "volume":
                    bad.append(f"{name}: {var}={val} is not on a named volume")
                elif (name in LONG_RUNNING or name in THIRD_PARTY) and var != "LCORE_GATEWAY_WAL_DIR" \
                        and not m[3]:
                    bad.append(f"{name}: {var}={val} is on a writable mount (secrets: read-only)")
        # What the third-party images and the relayer read is what lcore-init writes.
        with open(INIT_SCRIPT) as f:
            init = f.read()
        wanted = [environment(svcs["postgres"]).get("POSTGRES_PASSWORD_FILE", ""),
                  environment(svcs["grafana"]).get("GF_SECURITY_ADMIN_PASSWORD__FILE", "")]
        wanted += re.findall(r"cat\s+(/[^\s);&|]+)", words(svcs["chain"].get("command")))
        wanted += re.findall(r"-c\s+(/\S+)", words(svcs["mosquitto"].get("command")))
        for path in wanted:
            if not path or path not in init:
                bad.append(f"{path or 'a secret file'} is not a file deploy/compose/lcore-init writes")
        expect(not bad, "; ".join(bad))

    def pg_roles():
        bad = []
        superuser = environment(svcs["postgres"]).get("POSTGRES_USER", "postgres")
        for name in sorted(set(svcs) & set(LCORE_SERVICES)):
            env = environment(svcs[name])
            dsn = env.get("LCORE_PG_DSN")
            pgpass = {m[1] for m in mounts(svcs[name]) if m[1] and m[1] in {v for _, v in PG_ROLES.values()}}
            if name not in PG_ROLES:
                # tools: the operator's container mounts the operator's volume (the token and
                # the CURVE key of lcore-cli decrypt), which also holds the owner's pgpass for an
                # operator's psql; it sets no DSN itself.
                if dsn or (pgpass and name not in ("init-secrets", "init-contract", "tools")):
                    bad.append(f"{name}: talks to PostgreSQL but has no role in PG_ROLES")
                continue
            role, volume = PG_ROLES[name]
            m = re.match(r"^postgres(?:ql)?://([^:@/]+)@", dsn or "")
            user = m.group(1) if m else None
            if user == superuser or user != role:
                bad.append(f"{name}: connects as {user}, want {role} (superuser: {superuser})")
            source = mount_of(svcs[name], env.get("PGPASSFILE", "/nonexistent"))
            if not source or not (source[1] or "").endswith(volume) or not source[3]:
                bad.append(f"{name}: PGPASSFILE not on the read-only volume {volume}: {source}")
            others = {p for p in pgpass if not p.endswith(volume)}
            if others:
                bad.append(f"{name}: mounts other roles' pgpass volumes {sorted(others)}")
        expect(not bad, "; ".join(bad))

    def secrets_per_service():
        bad = []
        for name, svc in sorted(svcs.items()):
            for kind, src, tgt, ro in mounts(svc):
                vol = src if kind == "volume" and src in SECRET_VOLUMES else None
                if vol is None:
                    if kind == "volume" and src and "secret" in src:
                        bad.append(f"{name}: {src} is a secrets volume this test does not know")
                    continue
                if name not in SECRET_VOLUMES[vol]:
                    bad.append(f"{name} mounts {vol}, another service's secrets")
                elif name in LONG_RUNNING and not ro:
                    bad.append(f"{name} mounts its secrets {vol} writable")
        for vol, users in sorted(SECRET_VOLUMES.items()):
            owners = users - {"init-secrets", "init-contract", "tools"}
            for user in sorted(users & set(svcs)):
                if not any(src == vol for _, src, _, _ in mounts(svcs[user])):
                    if user in owners:
                        bad.append(f"{user} does not mount its own {vol}")
        # The gateway holds no raw operator token and no sealing key; workers no log key.
        genv = environment(svcs["gateway"])
        if "LCORE_ADMIN_TOKEN_FILE" in genv or "LCORE_ADMIN_TOKEN" in genv:
            bad.append("gateway: given the raw operator token (use LCORE_ADMIN_TOKEN_SHA256_FILE)")
        if "LCORE_ADMIN_TOKEN_SHA256_FILE" not in genv:
            bad.append("gateway: no LCORE_ADMIN_TOKEN_SHA256_FILE")
        for name in LONG_RUNNING:
            if name != "crypto" and "LCORE_KEYRING" in environment(svcs[name]):
                bad.append(f"{name}: given the seal key ring (LCORE_KEYRING)")
            if name != "gateway" and "LCORE_GATEWAY_KEYRING" in environment(svcs[name]):
                bad.append(f"{name}: given the gateway key ring")
        expect(not bad, "; ".join(bad))

    def crypto_scales():
        c = svcs["crypto"]
        expect("container_name" not in c, f"crypto has container_name {c.get('container_name')}")
        expect(not c.get("ports"), f"crypto publishes ports {c.get('ports')}")
        expect("hostname" not in c, "crypto has a fixed hostname")

    def healthchecks():
        bad = []
        for name in LONG_RUNNING:
            svc = svcs[name]
            test = healthcheck_test(svc)
            if not test:
                bad.append(f"{name}: no healthcheck")
                continue
            m = re.search(r"http://(?:127\.0\.0\.1|localhost):(\d+)/healthz\b", test)
            if not m:
                bad.append(f"{name}: healthcheck does not ask /healthz: {test}")
                continue
            _, defaults = known_vars(name)
            var = f"LCORE_{name.upper()}_ADMIN_BIND"
            bind = environment(svc).get(var) or defaults.get(var) or ""
            if m.group(1) != bind.rsplit(":", 1)[-1]:
                bad.append(f"{name}: healthcheck port {m.group(1)}, admin listener ({var}) {bind}")
            elif not bind.startswith("0.0.0.0:"):
                bad.append(f"{name}: {var}={bind}: Prometheus cannot reach it (bind 0.0.0.0)")
        for name in ("postgres", "anvil", "prometheus", "grafana", "mosquitto"):
            if not healthcheck_test(svcs[name]):
                bad.append(f"{name}: no healthcheck")
        expect(not bad, "; ".join(bad))

    def start_order():
        bad, deps = [], {}
        for name, svc in sorted(svcs.items()):
            d = svc.get("depends_on") or {}
            if isinstance(d, list):
                bad += [f"{name} -> {t}: no condition (list form)" for t in d]
                d = {}
            deps[name] = set(d)
            for target, spec in sorted(d.items()):
                cond = (spec or {}).get("condition")
                if target not in svcs:
                    bad.append(f"{name} -> {target}: no such service")
                elif cond not in CONDITIONS:
                    bad.append(f"{name} -> {target}: condition {cond} (want one of {CONDITIONS})")
                elif cond == "service_healthy" and not healthcheck_test(svcs[target]):
                    bad.append(f"{name} -> {target}: service_healthy but {target} has no healthcheck")
                elif cond == "service_completed_successfully" and \
                        svcs[target].get("restart", "no") not in ("no", None):
                    bad.append(f"{name} -> {target}: waits for completion of a restarting service")

        def reaches(a, b, seen=()):
            return b in deps.get(a, ()) or any(reaches(x, b, seen + (a,)) for x in deps.get(a, ())
                                               if x not in seen)

        bad += [f"{a} does not wait for {b}" for a, b in REQUIRED_ORDER if not reaches(a, b)]
        expect(not bad, "; ".join(bad))

    def endpoints():
        bad = []
        for name in sorted(set(svcs) & set(LCORE_SERVICES)):
            env = environment(svcs[name])
            for var, val in sorted(env.items()):
                for url in re.split(r"[,\s]+", val):
                    m = re.match(r"^(tcp|https?|mqtts?|postgres(?:ql)?)://(?:[^@/]*@)?([^:/]+):?(\d*)", url)
                    if not m:
                        continue
                    scheme, host, port = m.groups()
                    if var.endswith("_BIND"):
                        if host not in ("*", "0.0.0.0"):
                            bad.append(f"{name}: {var}={val} binds {host}, not every interface")
                        continue
                    if host not in svcs:
                        bad.append(f"{name}: {var}={val}: {host} is not a compose service")
                        continue
                    k = re.match(r"^LCORE_[A-Z]+_([A-Z]+)_CONNECT$", var)
                    if scheme == "tcp" and k and host in LCORE_SERVICES:
                        bind_var = f"LCORE_{host.upper()}_{k.group(1)}_BIND"
                        known, defaults = known_vars(host)
                        bind = environment(svcs[host]).get(bind_var) or defaults.get(bind_var, "")
                        if not bind.endswith(":" + port):
                            bad.append(f"{name}: {var}={val} but {host} binds {bind_var}={bind or '?'}")
        expect(not bad, "; ".join(bad))

    def listeners_and_tls():
        # DESIGN: the device listener always speaks TLS in compose, with the pair init-secrets
        # makes (lcore-init tls); the tools reach it over https, verified against that CA.
        gw, init, tools = (environment(svcs[n]) for n in ("gateway", "init-secrets", "tools"))
        bad = []
        for var in ("LCORE_GATEWAY_TLS_CERT", "LCORE_GATEWAY_TLS_KEY"):
            if not gw.get(var) or gw.get(var) != init.get(var):
                bad.append(f"{var}: gateway {gw.get(var)}, init-secrets {init.get(var)}")
        if not tools.get("LCORE_GATEWAY_URL", "").startswith("https://gateway:"):
            bad.append(f"tools: LCORE_GATEWAY_URL={tools.get('LCORE_GATEWAY_URL')} is not https")
        if tools.get("LCORE_CA_FILE") != gw.get("LCORE_GATEWAY_TLS_CERT"):
            bad.append(f"tools: LCORE_CA_FILE={tools.get('LCORE_CA_FILE')}, not the gateway's cert")
        if tools.get("LCORE_GATEWAY_ADMIN_URL") != "http://gateway:" + \
                gw.get("LCORE_GATEWAY_ADMIN_BIND", "").rsplit(":", 1)[-1]:
            bad.append(f"tools: LCORE_GATEWAY_ADMIN_URL={tools.get('LCORE_GATEWAY_ADMIN_URL')}")
        with open(os.path.join(SRC, "deploy", "prometheus", "prometheus.yml")) as f:
            prom = f.read()
        for name in LONG_RUNNING:
            port = environment(svcs[name]).get(f"LCORE_{name.upper()}_ADMIN_BIND", "").rsplit(":", 1)[-1]
            if f"{name}:{port}" not in prom and not re.search(rf'names: \["{name}"\][^-]*port: {port}\b', prom):
                bad.append(f"prometheus.yml does not scrape {name} on its admin port {port}")
        with open(os.path.join(SRC, "deploy", "compose", "lcore-init")) as f:
            expect("cmd_tls \"$TLS_CERT\" \"$TLS_KEY\"" in f.read(), "lcore-init secrets makes no certificate")
        expect(not bad, "; ".join(bad))

    def curve_always_on():
        bad = []
        for name in LONG_RUNNING:
            env = environment(svcs[name])
            if "LCORE_CURVE" in env:
                bad.append(f"{name}: sets LCORE_CURVE (CURVE cannot be switched off in compose)")
            if not env.get("LCORE_CURVE_TRUST_DIR"):
                bad.append(f"{name}: no LCORE_CURVE_TRUST_DIR")
            cert = env.get("LCORE_CURVE_CERT")
            if name == "crypto":
                if cert:
                    bad.append("crypto: a fixed LCORE_CURVE_CERT would give every worker one key")
            elif not cert or not mount_of(svcs[name], cert):
                bad.append(f"{name}: LCORE_CURVE_CERT {cert} is not on a mounted volume")
        # Only the workers may write the workers' trust directory; nobody else writes any.
        for name, svc in svcs.items():
            for kind, src, tgt, ro in mounts(svc):
                if src in ("curve-trust", "curve-trust-crypto") and not ro and name != "init-secrets" \
                        and not (name == "crypto" and src == "curve-trust-crypto"):
                    bad.append(f"{name} mounts {src} writable")
        expect(not bad, "; ".join(bad))

    def one_image():
        bad, images = [], set()
        for name in sorted(set(svcs) & set(LCORE_SERVICES)):
            svc = svcs[name]
            build = svc.get("build") or {}
            if not str(build.get("dockerfile", "")).endswith("deploy/Dockerfile"):
                bad.append(f"{name}: not built from deploy/Dockerfile")
            images.add(svc.get("image"))
            if name in LONG_RUNNING:
                exe = LCORE_SERVICES[name][0]
                cmd = words(svc.get("entrypoint")) + " " + words(svc.get("command"))
                # A worker starts through `lcore-init crypto`, which makes its CURVE key pair and
                # then execs the worker.
                if cmd.strip() == "lcore-init crypto" and f"exec {exe}" in LCORE_INIT:
                    continue
                if not re.search(rf"(^|[\s/]){exe}(\s|$)", cmd):
                    bad.append(f"{name}: does not run {exe}")
        expect(len(images) == 1, f"lcore services use several images: {images}")
        expect(not bad, "; ".join(bad))

    def dockerfile_stages_ok():
        stages = dockerfile_stages()
        expect(len(stages) >= 2, "deploy/Dockerfile is not multi-stage")
        build_from, build = stages[0]
        run_from, run = stages[-1]
        expect(re.match(r"FROM debian:bookworm\b(?!-)", build_from), f"build stage: {build_from}")
        expect(run_from.split()[1] == "debian:bookworm-slim", f"runtime stage: {run_from}")
        # Build stage: every build package of scripts/install-deps but the server/tool ones.
        with open(os.path.join(SRC, "scripts", "install-deps")) as f:
            m = re.search(r"DEBIAN_PACKAGES=\((.*?)\)", f.read(), re.S)
        deps = {w for w in re.sub(r"#.*", "", m.group(1)).split()}
        # libclang-rt-dev is libFuzzer's runtime: the fuzz tree (tests) only, never the image.
        wanted = {p for p in deps if p.endswith("-dev") or p in (
            "build-essential", "cmake", "pkg-config", "protobuf-c-compiler")} - {"libclang-rt-dev"}
        missing = wanted - apt_packages(build)
        expect(not missing, f"build stage lacks {sorted(missing)} (from scripts/install-deps)")
        cm = " ".join(i for i in build if "cmake" in i)
        for flag in ("-DCMAKE_BUILD_TYPE=Release", "-DLCORE_E2E=OFF", "-DLCORE_FAULT_HOOKS=OFF"):
            expect(flag in cm, f"build stage's cmake lacks {flag}")
        # Runtime stage: no toolchain, a non-root user, a /healthz healthcheck.
        rt = apt_packages(run)
        heavy = {p for p in rt if p.endswith("-dev") or p in ("postgresql", "nodejs", "npm",
                                                              "build-essential", "cmake")}
        expect(not heavy, f"runtime stage installs {sorted(heavy)}")
        users = [i.split()[1] for i in run if i.upper().startswith("USER ")]
        expect(users and users[-1] not in ("root", "0", "0:0"), f"runtime user: {users}")
        hc = [i for i in run if i.upper().startswith("HEALTHCHECK ")]
        expect(hc and "NONE" not in hc[-1].split(), "runtime stage has no HEALTHCHECK")
        with open(os.path.join(SRC, "deploy", "compose", "lcore-healthcheck")) as f:
            expect("/healthz" in f.read(), "lcore-healthcheck does not ask /healthz")

    def build_context():
        """What the build reads is not left out of the context by .dockerignore."""
        with open(os.path.join(SRC, ".dockerignore")) as f:
            patterns = [l.strip().strip("/") for l in f if l.strip() and not l.startswith("#")]
        expect(not any(p.startswith("!") for p in patterns), "this check ignores ! exceptions")
        with open(os.path.join(SRC, "CMakeLists.txt")) as f:
            cmake = f.read()
        with open(DOCKERFILE) as f:
            scripts = re.findall(r"deploy/compose/[\w.-]+", f.read())
        needed = ["CMakeLists.txt", "lib", "proto", "services", "tools", "contracts/LcoreAnchor.json",
                  "tests/CMakeLists.txt"] + re.findall(r"add_subdirectory\((\S+?)\)", cmake) + scripts

        def excluded(path):
            parts = path.split("/")
            for i in range(1, len(parts) + 1):
                for p in patterns:
                    if fnmatch.fnmatchcase("/".join(parts[:i]), p) or (
                            p.startswith("**/") and fnmatch.fnmatchcase(parts[i - 1], p[3:])):
                        return p
            return None

        bad = [f"{n} (by {excluded(n)})" for n in needed if excluded(n)]
        bad += [f"{n} (missing)" for n in needed if not os.path.exists(os.path.join(SRC, n))]
        expect(not bad, "the image build needs: " + "; ".join(bad))
        for junk in ("build", ".lcore", ".tools", ".git"):
            expect(excluded(junk), f".dockerignore keeps {junk}/ in the build context")

    def runtime_libraries():
        """The runtime packages exist in Debian and cover every library the executables link."""
        if not shutil.which("dpkg-query") or not shutil.which("apt-cache"):
            raise AssertionError("needs dpkg-query and apt-cache (Debian)")
        rt = sorted(apt_packages(dockerfile_stages()[-1][1]))
        out = subprocess.run(["apt-cache", "show", "--no-all-versions"] + rt,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=60)
        found = set(re.findall(r"^Package: (\S+)", out.stdout, re.M))
        expect(set(rt) <= found, f"not Debian packages here: {sorted(set(rt) - found)}")
        out = subprocess.run(["apt-cache", "depends", "--recurse", "--no-recommends",
                              "--no-suggests", "--no-conflicts", "--no-breaks", "--no-replaces",
                              "--no-enhances"] + rt, stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL, text=True, timeout=120)
        closure = {l.strip() for l in out.stdout.splitlines() if l and not l.startswith(" ")}
        closure |= set(rt)
        needed = set()
        for exe in ("lcore-gateway", "lcore-crypto", "lcore-store", "lcore-chain", "lcore-cli",
                    "lcore-sim"):
            dyn = subprocess.run(["readelf", "-d", os.path.join(BIN, exe)], stdout=subprocess.PIPE,
                                 text=True, timeout=30).stdout
            needed |= set(re.findall(r"\(NEEDED\).*\[(.+?)\]", dyn))
        bad = []
        for so in sorted(needed):
            out = subprocess.run(["dpkg-query", "-S", f"*/{so}"], stdout=subprocess.PIPE,
                                 stderr=subprocess.DEVNULL, text=True, timeout=30)
            owners = {l.split(":")[0] for l in out.stdout.splitlines() if l}
            if not owners:
                bad.append(f"{so}: no Debian package owns it")
            elif not owners & closure:
                bad.append(f"{so} (from {', '.join(sorted(owners))})")
        expect(not bad, "runtime stage lacks libraries: " + "; ".join(bad))

    def mqtt_broker():
        """The broker's configuration is what `lcore-init secrets` writes (printed here by
        `lcore-init mqtt-compose-conf`): no anonymous access, no debug logging, a TLS listener
        for devices (8883, the only port published) and one for the gateway (1883, on the compose
        network only), its files and store on the volumes the service mounts."""
        m, bad = svcs["mosquitto"], []
        out = subprocess.run(["sh", INIT_SCRIPT, "mqtt-compose-conf"], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, timeout=30)
        expect(out.returncode == 0, f"lcore-init mqtt-compose-conf: {out.stderr.strip()}")
        conf = [l.split(None, 1) for l in out.stdout.splitlines() if l.strip() and not l.startswith("#")]
        opts = {}
        for kv in conf:
            opts.setdefault(kv[0], []).append(kv[1] if len(kv) > 1 else "")
        for key, want in (("allow_anonymous", "false"), ("persistence", "true"),
                          ("per_listener_settings", "false")):
            if opts.get(key) != [want]:
                bad.append(f"mosquitto.conf: {key} {opts.get(key)}, want {want}")
        if set(opts.get("log_type", [])) & {"debug", "all", "subscribe", "unsubscribe"}:
            bad.append(f"mosquitto.conf logs {opts['log_type']}")
        listeners = {v.split()[0]: v for v in opts.get("listener", [])}
        if set(listeners) != {"1883", "8883"}:
            bad.append(f"listeners {sorted(listeners)}, want 1883 (gateway) and 8883 (devices, TLS)")
        # certfile/keyfile follow the listener they belong to: the last one, 8883.
        keys = [kv[0] for kv in conf]
        if "certfile" not in keys or keys.index("certfile") < max(i for i, k in enumerate(keys) if k == "listener"):
            bad.append("mosquitto.conf: certfile is not on the 8883 listener")
        published = set()
        for p in m.get("ports") or []:
            target = str(p.get("target")) if isinstance(p, dict) else str(p).split("/")[0].split(":")[-1]
            published.add(target)
        if published != {"8883"}:
            bad.append(f"mosquitto publishes {sorted(published)}, want only 8883 (TLS)")
        # Every file the broker reads or writes is on a volume it mounts; the store on mqtt-data,
        # the plugin's file (rewritten by the broker) on a writable mqtt-secrets.
        for key, volume, writable in (("persistence_location", "mqtt-data", True),
                                      ("plugin_opt_config_file", "mqtt-secrets", True),
                                      ("keyfile", "mqtt-secrets", False), ("certfile", "public", False)):
            path = (opts.get(key) or [""])[0]
            mnt = mount_of(m, path)
            if not mnt or mnt[0] != "volume" or mnt[1] != volume or (writable and mnt[3]):
                bad.append(f"{key} {path}: not on the {'writable ' if writable else ''}volume {volume}: {mnt}")
        if 'cmd_tls "$MQTT_TLS_CERT" "$MQTT_TLS_KEY" mosquitto' not in LCORE_INIT:
            bad.append("lcore-init makes no certificate for the broker (named mosquitto)")
        rt = apt_packages(dockerfile_stages()[-1][1])
        if not {"mosquitto", "mosquitto-clients"} <= rt:
            bad.append("the runtime image lacks mosquitto or mosquitto-clients")
        # Once the gateway takes readings from the broker: TLS to the published listener, the
        # broker's certificate as its CA (on the public volume), its own client and its password
        # file in its own secrets volume. Nothing else listens beyond the broker's loopback.
        genv = environment(svcs["gateway"])
        if "LCORE_GATEWAY_MQTT_URL" in genv:
            if genv["LCORE_GATEWAY_MQTT_URL"] != "mqtts://mosquitto:8883":
                bad.append(f"gateway: LCORE_GATEWAY_MQTT_URL={genv['LCORE_GATEWAY_MQTT_URL']}")
            ca = genv.get("LCORE_GATEWAY_MQTT_CA_FILE", "")
            if ca != "/run/lcore/public/mqtt-tls.crt" or (mount_of(svcs["gateway"], ca) or (0, ""))[1] != "public":
                bad.append(f"gateway: LCORE_GATEWAY_MQTT_CA_FILE={ca} is not the broker's certificate on public")
            if [l for l in opts.get("listener", []) if l.split()[0] == "1883" and l.split()[1:] != ["127.0.0.1"]]:
                bad.append(f"mosquitto.conf: 1883 listens beyond loopback: {opts.get('listener')}")
            if genv.get("LCORE_GATEWAY_MQTT_USERNAME") != "lcore-gw-" + genv.get("LCORE_GATEWAY_ID", ""):
                bad.append(f"gateway: LCORE_GATEWAY_MQTT_USERNAME={genv.get('LCORE_GATEWAY_MQTT_USERNAME')}")
            pw = genv.get("LCORE_GATEWAY_MQTT_PASSWORD_FILE", "")
            if pw not in LCORE_INIT or (mount_of(svcs["gateway"], pw) or (0, ""))[1] != "gateway-secrets":
                bad.append(f"gateway: LCORE_GATEWAY_MQTT_PASSWORD_FILE={pw} is not what lcore-init writes "
                           "into gateway-secrets")
        expect(not bad, "; ".join(bad))

    checks.run("every service of the stack is there, and only known ones", services_present)
    checks.run("environment: only variables the executables' --help lists (or the allow-list)",
               env_vars_known)
    checks.run("no secret value in the compose file (tokens, passwords, keys are files)",
               no_secret_values)
    checks.run("secret files on named volumes, read-only for the services; lcore-init writes them",
               files_on_volumes)
    checks.run("PostgreSQL: no lcore service as the superuser; each its own role and pgpass only",
               pg_roles)
    checks.run("secrets per service: no service mounts another's secrets volume", secrets_per_service)
    checks.run("crypto scales: no container_name, no host port", crypto_scales)
    checks.run("healthchecks: lcore services curl /healthz on their admin port; infra has one",
               healthchecks)
    checks.run("depends_on: health/completion conditions only, in the order the stack needs",
               start_order)
    checks.run("endpoints: services bind *, peers connect to compose services on the bound port",
               endpoints)
    checks.run("listeners: admin 0.0.0.0 for Prometheus; device listener TLS, tools over https",
               listeners_and_tls)
    checks.run("one lcore image from deploy/Dockerfile; each service runs its executable", one_image)
    checks.run("CURVE on every lcore service, never switched off; workers key themselves", curve_always_on)
    checks.run("MQTT broker: no anonymous access, TLS for devices (only 8883 published), files and "
               "store on its volumes", mqtt_broker)
    checks.run("deploy/Dockerfile: bookworm build + bookworm-slim runtime, non-root, HEALTHCHECK",
               dockerfile_stages_ok)
    checks.run(".dockerignore keeps out build trees and state, and nothing the build reads",
               build_context)
    checks.run("deploy/Dockerfile runtime packages exist and cover the executables' libraries",
               runtime_libraries)
    checks.done()


if __name__ == "__main__":
    main()
