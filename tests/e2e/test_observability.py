"""Observability, end to end: the Prometheus config, alert rules and Grafana dashboards in deploy/
against the real native stack under load.

Static: promtool check config / check rules / test rules; the dashboards are valid Grafana JSON
whose every selector is filtered by $instance. Live (two crypto workers, lcore-sim at 600
readings/s): `promtool check metrics` is clean for every service; docs/METRICS.md lists exactly
what the services export (names, types, labels), and its "Renamed in this release" list names
old metrics no longer exported, each with an exported new name; every metric, label and label value used by the
dashboards and the alert rules is exported; a real Prometheus server (Debian's `prometheus`)
scraping the stack with the alert rules sees the ingest rate and latency quantiles non-zero, every
dashboard query answers, every rule evaluates without error and no alert fires; stopping a
worker makes LcoreServiceDown pending for exactly that instance."""
import ctypes
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request

from harness import BIN, SRC, Checks, Stack, expect

PROM_DIR = os.path.join(SRC, "deploy", "prometheus")
DASH_DIR = os.path.join(SRC, "deploy", "grafana", "dashboards")
PROM_CONFIG = os.path.join(PROM_DIR, "prometheus.yml")
ALERTS = os.path.join(PROM_DIR, "alerts.yml")
ALERTS_TEST = os.path.join(PROM_DIR, "alerts_test.yml")
METRICS_DOC = os.path.join(SRC, "docs", "METRICS.md")

SERVICES = {  # stack variable -> (documented section, Prometheus job)
    "LCORE_GATEWAY_ADMIN_URL": ("gateway", "lcore-gateway"),
    "LCORE_CRYPTO_ADMIN_URL": ("crypto", "lcore-crypto"),
    "LCORE_CRYPTO_2_ADMIN_URL": ("crypto", "lcore-crypto"),
    "LCORE_STORE_ADMIN_URL": ("store", "lcore-store"),
    "LCORE_CHAIN_ADMIN_URL": ("chain", "lcore-chain"),
}
JOBS = ("lcore-gateway", "lcore-crypto", "lcore-store", "lcore-chain")
HIST_SUFFIXES = ("_bucket", "_sum", "_count")
METRIC_RE = re.compile(r"\blcore_[a-z0-9_]+")
PROCESS_SECTION = "every service"
SELECTOR_RE = re.compile(r"\b(lcore_[a-z0-9_]+|up)\b(\s*\{([^}]*)\})?")
MATCHER_RE = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"')
LABEL_RE = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')
LOAD_RATE, LOAD_SECONDS = 600, 30


def tool(name):
    path = shutil.which(name) or f"/usr/bin/{name}"
    return path if os.access(path, os.X_OK) else None


PROMTOOL, PROMETHEUS = tool("promtool"), tool("prometheus")


def run(cmd, stdin=None, timeout=60):
    out = subprocess.run(cmd, input=stdin, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         text=True, timeout=timeout)
    if out.returncode != 0:
        raise AssertionError(f"{' '.join(os.path.basename(c) for c in cmd[:3])} exit {out.returncode}:\n"
                             + out.stdout.strip())
    return out.stdout


# -- exposition format and docs --------------------------------------------------------------
def parse_exposition(text):
    """{family: {"type": t, "labels": {name: {values}}}} from Prometheus text format."""
    fams = {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, typ = line.split(None, 3)
            fams[name] = {"type": typ.strip(), "labels": {}}
        elif line and not line.startswith("#"):
            m = re.match(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s", line)
            if not m:
                raise AssertionError(f"unparsable sample line: {line!r}")
            fam = family_of(m.group(1), fams)
            if fam is None:
                raise AssertionError(f"sample {m.group(1)} without a # TYPE line")
            for k, v in LABEL_RE.findall(m.group(3) or ""):
                if k != "le":
                    fams[fam]["labels"].setdefault(k, set()).add(v)
    return fams


def family_of(name, fams):
    """The exported family a series name belongs to (histogram _bucket/_sum/_count), or None."""
    if name in fams:
        return name
    for suf in HIST_SUFFIXES:
        base = name[: -len(suf)]
        if name.endswith(suf) and fams.get(base, {}).get("type") in ("histogram", "summary"):
            return base
    return None


def parse_doc():
    """{name: (section, type, {labels})} from the tables of docs/METRICS.md, and its full text."""
    text = open(METRICS_DOC).read()
    doc, section = {}, None
    for line in text.splitlines():
        if line.startswith("## "):
            section = line[3:].strip()
        m = re.match(r"\|\s*`((?:lcore|process)_[a-z0-9_]+)`\s*\|\s*([a-z]+)\s*\|\s*([^|]*)\|", line)
        if m:
            labels = {x.strip() for x in m.group(3).split(",")} - {"–", "-", ""}
            doc[m.group(1)] = (section, m.group(2), labels)
    return doc, text


RENAMED_SECTION = "Renamed in this release"
RENAMED_RE = re.compile(r"^- `(lcore_[a-z0-9_]+)` → `(lcore_[a-z0-9_]+)`")


def parse_renamed(text):
    """{old: new} from the list under "## Renamed in this release" in docs/METRICS.md."""
    renamed, section = {}, None
    for line in text.splitlines():
        if line.startswith("## "):
            section = line[3:].strip()
        m = RENAMED_RE.match(line)
        if m and section == RENAMED_SECTION:
            renamed[m.group(1)] = m.group(2)
    return renamed


# -- dashboards and rules ----------------------------------------------------------------------
def dashboards():
    out = {}
    for f in sorted(os.listdir(DASH_DIR)):
        if f.endswith(".json"):
            with open(os.path.join(DASH_DIR, f)) as fh:
                out[f] = json.load(fh)
    return out


def panels_of(dash):
    for p in dash.get("panels", []):
        yield p
        for q in p.get("panels", []) or []:  # collapsed rows keep their panels inside
            yield q


def dashboard_exprs(dash):
    """(panel title, expr) of every target."""
    return [(p.get("title", "?"), t["expr"]) for p in panels_of(dash) for t in p.get("targets", []) if "expr" in t]


def rule_exprs():
    """(alert name, expr) of every rule, read without a YAML parser: `- alert: X` then an `expr:`
    either inline or as a folded block (promtool has already validated the file)."""
    lines = open(ALERTS).read().splitlines()
    rules, name, i = [], None, 0
    while i < len(lines):
        line = lines[i]
        m = re.match(r"\s*- (?:alert|record): (\S+)", line)
        if m:
            name = m.group(1)
        m = re.match(r"(\s*)expr:\s*(.*)$", line)
        if m:
            ind, rest = len(m.group(1)), m.group(2).strip()
            if rest in (">-", ">", "|", "|-"):
                body = []
                i += 1
                while i < len(lines) and (not lines[i].strip() or len(lines[i]) - len(lines[i].lstrip()) > ind):
                    body.append(lines[i].strip())
                    i += 1
                rules.append((name, " ".join(body)))
                continue
            rules.append((name, rest.strip("'\"")))
        i += 1
    return rules


def check_names(text, fams, where, missing):
    """Every lcore_* name in text is an exported series name; records misses under where."""
    for n in sorted(set(METRIC_RE.findall(text))):
        if family_of(n, fams) is None:
            missing.setdefault(where, set()).add(n)


def check_selectors(expr, fams, where, problems):
    """Label names and literal values in selectors exist on the exported metric."""
    for m in SELECTOR_RE.finditer(expr):
        fam = family_of(m.group(1), fams)
        if fam is None or not m.group(3):
            continue
        for lname, op, val in MATCHER_RE.findall(m.group(3)):
            if lname in ("instance", "job", "le", "__name__"):
                continue
            exported = fams[fam]["labels"].get(lname)
            if exported is None:
                problems.append(f"{where}: {fam} has no label {lname}")
                continue
            if op in ("=", "!="):
                vals = [val]
            elif re.fullmatch(r"[A-Za-z0-9_]+(\|[A-Za-z0-9_]+)*", val):
                vals = val.split("|")
            else:
                vals = []  # a real regex (e.g. 5..): not a list of values
            for v in vals:
                if v not in exported:
                    problems.append(f"{where}: {fam}{{{lname}=\"{v}\"}} never exported "
                                    f"(values: {', '.join(sorted(exported))})")


# -- processes ---------------------------------------------------------------------------------
def _die_with_parent():
    """Child pre-exec: SIGTERM when this test process dies, whatever kills it."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def free_port():
    """A free port below the ephemeral range (32768-60999) and above the stack's ports."""
    for _ in range(200):
        port = random.randrange(26000, 32700)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
                return port
            except OSError:
                continue
    raise RuntimeError("no free port for Prometheus")


class Load:
    """lcore-sim in the background (paced); stopped by stop()."""

    def __init__(self, st):
        cmd = [os.path.join(BIN, "lcore-sim"), "--url", st.url, "--admin-url", st.admin_url, "--admin-token", st.token, "--quiet",
               "--device-prefix", "obs", "--devices", "20", "--concurrency", "8",
               "--rate", str(LOAD_RATE), "--duration", str(LOAD_SECONDS)]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     preexec_fn=_die_with_parent)
        self.out = ""
        self.started = time.time()
        self._t = threading.Thread(target=self._read, daemon=True)
        self._t.start()

    def _read(self):
        self.out = self.proc.stdout.read()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._t.join(5)


class Prometheus:
    """The real Prometheus server scraping the native stack, with the repo's alert rules."""

    def __init__(self, st, jobs):
        self.dir = tempfile.mkdtemp(prefix="lcore-prom-")
        targets = {job: [] for job in jobs}
        for var, (_, job) in SERVICES.items():
            targets[job].append(urllib.parse.urlparse(st.vars[var]).netloc)
        config = {"global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
                  "rule_files": [ALERTS],
                  "scrape_configs": [{"job_name": job, "static_configs": [{"targets": targets[job]}]}
                                     for job in jobs]}
        self.config = os.path.join(self.dir, "prometheus.yml")
        with open(self.config, "w") as f:
            json.dump(config, f, indent=1)  # JSON is YAML
        run([PROMTOOL, "check", "config", self.config])
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = open(os.path.join(self.dir, "prometheus.log"), "w")
        self.proc = subprocess.Popen(
            [PROMETHEUS, f"--config.file={self.config}", f"--storage.tsdb.path={self.dir}/data",
             f"--web.listen-address=127.0.0.1:{self.port}", "--storage.tsdb.retention.time=1h",
             "--log.level=warn"],
            stdout=self.log, stderr=subprocess.STDOUT, preexec_fn=_die_with_parent)
        deadline = time.time() + 30
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"prometheus exited {self.proc.returncode}: {self.log_tail()}")
            try:
                if urllib.request.urlopen(self.url + "/-/ready", timeout=2).status == 200:
                    break
            except OSError:
                pass
            if time.time() > deadline:
                raise RuntimeError(f"prometheus not ready: {self.log_tail()}")
            time.sleep(0.2)

    def log_tail(self):
        self.log.flush()
        with open(os.path.join(self.dir, "prometheus.log")) as f:
            return "".join(f.readlines()[-20:])

    def api(self, path, **params):
        url = self.url + "/api/v1/" + path + ("?" + urllib.parse.urlencode(params) if params else "")
        body = json.loads(urllib.request.urlopen(url, timeout=10).read())
        if body.get("status") != "success":
            raise AssertionError(f"{path}: {body}")
        return body["data"]

    def query(self, expr):
        """Instant query: [(labels, float value)]."""
        data = self.api("query", query=expr)
        expect(data["resultType"] == "vector", f"{expr}: result type {data['resultType']}")
        return [(r["metric"], float(r["value"][1])) for r in data["result"]]

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def _raise(e):
    raise e


def wait_for(what, fn, timeout):
    """Polls fn() until it returns a true value; raises with its last answer."""
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        last = fn()
        if last and last[0]:
            return last
        time.sleep(0.5)
    raise AssertionError(f"{what}: {last[1] if last else 'no answer'}")


def main():
    checks = Checks()
    if not PROMTOOL or not PROMETHEUS:
        print("FAIL prometheus/promtool not installed (Debian package `prometheus`): run scripts/install-deps",
              flush=True)
        sys.exit(1)
    dashes = dashboards()

    # -- static ---------------------------------------------------------------------------------
    def check_config():
        run([PROMTOOL, "check", "config", PROM_CONFIG])
        jobs = re.findall(r"job_name:\s*(\S+)", open(PROM_CONFIG).read())
        expect(set(JOBS) <= set(jobs), f"prometheus.yml jobs {jobs}, want {JOBS}")
        expect(re.search(r"dns_sd_configs:\s*\n\s*- names: \[\"crypto\"\]", open(PROM_CONFIG).read()),
               "lcore-crypto must be discovered through DNS (every scaled worker)")

    def check_rules():
        out = run([PROMTOOL, "check", "rules", ALERTS])
        expect("SUCCESS" in out, out)
        text = open(ALERTS).read()
        rules = rule_exprs()
        expect(len(rules) == text.count("- alert: ") + text.count("- record: "), "rules without expr")
        for name, expr in rules:
            expect(expr, f"{name}: no expr found")
        for alert in ("LcoreServiceDown", "LcoreIngestLagHigh", "LcoreErrorRatioHigh", "LcoreLogNearBound",
                      "LcoreRelayerStuck", "LcoreStoreDatabaseDown", "LcoreDeadLetters", "LcoreWalletBalanceLow"):
            expect(f"alert: {alert}\n" in text, f"alert {alert} missing")
        n_alerts = text.count("- alert: ")
        expect(text.count("severity: ") == n_alerts, "every alert needs a severity label")
        expect(text.count("summary: ") == n_alerts and text.count("description: ") == n_alerts,
               "every alert needs summary and description annotations")

    def test_rules():
        out = run([PROMTOOL, "test", "rules", ALERTS_TEST], timeout=120)
        expect("SUCCESS" in out, out)

    def check_dashboards():
        expect({"lcore-overview.json", "lcore-services.json"} <= set(dashes), f"dashboards: {sorted(dashes)}")
        problems = []
        for f, d in dashes.items():
            uid = d.get("uid")
            expect(uid and d.get("title") and isinstance(d.get("schemaVersion"), int), f"{f}: uid/title/schemaVersion")
            inst = [v for v in d.get("templating", {}).get("list", []) if v.get("name") == "instance"]
            expect(inst and inst[0].get("multi") and inst[0].get("includeAll")
                   and inst[0].get("definition") == 'label_values(up{job=~"lcore-.*"}, instance)',
                   f"{f}: needs a multi-value $instance variable (label_values(up{{job=~\"lcore-.*\"}}, instance))")
            ids = [p.get("id") for p in panels_of(d)]
            expect(len(ids) == len(set(ids)) and None not in ids, f"{f}: panel ids must be unique")
            n = 0
            for p in panels_of(d):
                if p.get("type") == "row":
                    continue
                expect(p.get("type") in ("timeseries", "stat", "gauge", "bargauge", "table", "text"),
                       f"{f}: panel {p.get('title')}: type {p.get('type')}")
                expect(p.get("datasource") == {"type": "prometheus", "uid": "prometheus"},
                       f"{f}: panel {p.get('title')}: datasource {p.get('datasource')}")
                g = p.get("gridPos", {})
                expect(all(k in g for k in "hwxy") and g["x"] + g["w"] <= 24, f"{f}: {p.get('title')}: gridPos {g}")
                refs = [t.get("refId") for t in p.get("targets", [])]
                expect(refs and len(refs) == len(set(refs)), f"{f}: {p.get('title')}: targets/refIds {refs}")
            for title, expr in dashboard_exprs(d):
                n += 1
                for m in SELECTOR_RE.finditer(expr):
                    if 'instance=~"$instance"' not in (m.group(3) or ""):
                        problems.append(f"{f} / {title}: {m.group(1)} not filtered by instance=~\"$instance\"")
            expect(n >= 10, f"{f}: only {n} queries")
        expect(not problems, "\n  " + "\n  ".join(problems))

    checks.run("promtool check config deploy/prometheus/prometheus.yml", check_config)
    checks.run("promtool check rules deploy/prometheus/alerts.yml", check_rules)
    checks.run("promtool test rules deploy/prometheus/alerts_test.yml", test_rules)
    checks.run("dashboards: valid Grafana JSON, $instance in every selector", check_dashboards)

    # -- live -----------------------------------------------------------------------------------
    with Stack(workers=2) as st:
        prom = load = None
        try:
            prom = Prometheus(st, JOBS)
            load = Load(st)
            time.sleep(4)  # some traffic in every histogram before scraping
            bodies, fams = {}, {}

            def scrape():
                for var in SERVICES:
                    bodies[var] = urllib.request.urlopen(st.vars[var] + "/metrics", timeout=10).read().decode()
                    for name, fam in parse_exposition(bodies[var]).items():
                        have = fams.setdefault(name, {"type": fam["type"], "labels": {}, "vars": set()})
                        expect(have["type"] == fam["type"], f"{name}: type {fam['type']} and {have['type']}")
                        have["vars"].add(var)
                        for k, v in fam["labels"].items():
                            have["labels"].setdefault(k, set()).update(v)

            def promtool_metrics():
                bad = []
                for var, body in bodies.items():
                    out = subprocess.run([PROMTOOL, "check", "metrics"], input=body, text=True,
                                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=30)
                    if out.returncode != 0 or out.stdout.strip():
                        bad.append(f"{var}: {out.stdout.strip()}")
                expect(not bad, "\n  " + "\n  ".join(bad))

            def doc_matches():
                doc, text = parse_doc()
                problems = []
                for name, fam in sorted(fams.items()):
                    if name not in doc:
                        problems.append(f"{name} exported but not in docs/METRICS.md")
                        continue
                    section, typ, labels = doc[name]
                    if typ != fam["type"]:
                        problems.append(f"{name}: documented {typ}, exported {fam['type']}")
                    if labels != set(fam["labels"]):
                        problems.append(f"{name}: documented labels {sorted(labels)}, exported {sorted(fam['labels'])}")
                    for var in fam["vars"]:
                        # The process collector's metrics are the same in every service.
                        if (PROCESS_SECTION if name.startswith("process_") else SERVICES[var][0]) != section:
                            problems.append(f"{name}: documented under {section}, exported by {var}")
                for name in sorted(doc):
                    if name not in fams:
                        problems.append(f"{name} documented but not exported")
                # A renamed metric: the old name is gone, the new one exported.
                renamed = parse_renamed(text)
                for old, new in sorted(renamed.items()):
                    if family_of(old, fams) is not None:
                        problems.append(f"{old} is listed as renamed to {new} but still exported")
                    if new not in fams:
                        problems.append(f"{old} is listed as renamed to {new}, which no service exports")
                for name in sorted(set(METRIC_RE.findall(text))):
                    if family_of(name, fams) is None and name not in doc and name not in renamed:
                        problems.append(f"docs/METRICS.md mentions {name}, which no service exports")
                expect(not problems, "\n  " + "\n  ".join(problems))

            def used_metrics_exported():
                missing, problems, used = {}, [], set()
                for f, d in dashes.items():
                    for title, expr in dashboard_exprs(d):
                        check_names(expr, fams, f"deploy/grafana/dashboards/{f}", missing)
                        check_selectors(expr, fams, f"{f} / {title}", problems)
                        used |= {family_of(n, fams) for n in METRIC_RE.findall(expr)}
                    for v in d.get("templating", {}).get("list", []):
                        check_names(json.dumps(v), fams, f"deploy/grafana/dashboards/{f} (variables)", missing)
                for path in (ALERTS, ALERTS_TEST):
                    text = open(path).read()
                    rel = os.path.relpath(path, SRC)
                    check_names(text, fams, rel, missing)
                    check_selectors(text, fams, rel, problems)
                    used |= {family_of(n, fams) for n in METRIC_RE.findall(text)}
                for where, names in sorted(missing.items()):
                    problems.append(f"{where} uses metrics no service exports: {', '.join(sorted(names))}")
                unused = sorted(set(fams) - used)
                if unused:
                    print(f"  note: exported but on no dashboard or alert: {', '.join(unused)}", flush=True)
                expect(not problems, "\n  " + "\n  ".join(problems))

            checks.run("scrape /metrics of gateway, 2 crypto workers, store, chain", scrape)
            checks.run("promtool check metrics: clean for every service", promtool_metrics)
            checks.run("docs/METRICS.md lists exactly the exported metrics (type, labels, service)", doc_matches)
            checks.run("dashboards and alert rules use only exported metrics, labels and values",
                       used_metrics_exported)

            def targets_up():
                def probe():
                    act = prom.api("targets")["activeTargets"]
                    down = [f"{t['labels']['job']} {t['scrapeUrl']}: {t['health']} {t.get('lastError', '')}"
                            for t in act if t["health"] != "up"]
                    return (len(act) == len(SERVICES) and not down, f"{len(act)} targets, not up: {down}")
                wait_for("targets up", probe, 20)

            def live_rates():
                queries = {
                    "ingest rate": "sum(rate(lcore_gateway_readings_accepted_total[10s]))",
                    "stored rate": "sum(rate(lcore_store_records_stored_total[10s]))",
                    "gateway request p99": "histogram_quantile(0.99, sum by (le) "
                                           "(rate(lcore_gateway_request_duration_seconds_bucket[10s])))",
                    "store ingest lag p99": "histogram_quantile(0.99, sum by (le) "
                                            "(rate(lcore_store_ingest_lag_seconds_bucket[10s])))",
                }

                def probe():
                    vals = {}
                    for k, q in queries.items():
                        r = prom.query(q)
                        vals[k] = r[0][1] if r else None
                    ok = all(v is not None and v == v and 0 < v < float("inf") for v in vals.values())
                    # The 10 s window must be inside the load: a good part of the offered rate.
                    return ok and vals["ingest rate"] > LOAD_RATE * 0.5, vals
                vals = wait_for(f"non-zero rates and quantiles, ingest rate near {LOAD_RATE}/s", probe, 30)[1]
                print("  " + ", ".join(f"{k}={v:.4g}" for k, v in vals.items()), flush=True)
                sealed = prom.query('sum by (instance) '
                                    '(rate(lcore_crypto_readings_sealed_total{job="lcore-crypto"}[10s]))')
                expect(len(sealed) == 2 and all(v > 0 for _, v in sealed),
                       f"both workers side by side, both sealing: {sealed}")

            def dashboard_queries():
                empty, errors, n = [], [], 0
                for f, d in dashes.items():
                    for title, expr in dashboard_exprs(d):
                        q = expr.replace("$__rate_interval", "10s").replace("$instance", ".*")
                        n += 1
                        try:
                            if not prom.query(q):
                                empty.append(f"{f} / {title}: {expr}")
                        except Exception as e:  # noqa: BLE001 - report every query
                            errors.append(f"{f} / {title}: {expr}: {e}")
                expect(not errors, "queries fail:\n  " + "\n  ".join(errors))
                expect(not empty, "queries answer nothing:\n  " + "\n  ".join(empty))
                print(f"  {n} dashboard queries answered", flush=True)

            def rules_healthy():
                def probe():
                    bad, n = [], 0
                    for g in prom.api("rules")["groups"]:
                        for r in g["rules"]:
                            n += 1
                            if r.get("health") != "ok":
                                bad.append(f"{g['name']}/{r['name']}: {r.get('health')} {r.get('lastError', '')}")
                    return (n > 0 and not bad, f"{n} rules, not ok: {bad}")
                msg = wait_for("every rule evaluated without error", probe, 15)[1]
                expect(len(prom.api("rules")["groups"]) >= 3, "rule groups missing")
                print("  " + msg.split(",")[0] + " evaluated ok", flush=True)

            def no_alerts():
                alerts = prom.api("alerts")["alerts"]
                active = [f"{a['labels']['alertname']} ({a['state']}) {a['labels']}" for a in alerts]
                expect(not active, "alerts under normal load:\n  " + "\n  ".join(active))

            checks.run("prometheus: every target up", targets_up)
            checks.run("prometheus under load: ingest rate, request p99, ingest lag p99 > 0; workers side by side",
                       live_rates)
            checks.run("prometheus: every dashboard query answers with data", dashboard_queries)
            checks.run("prometheus: every alert rule evaluates without error", rules_healthy)
            # Let the rules see most of the load (rate windows, `for` durations) before judging.
            time.sleep(max(0.0, load.started + LOAD_SECONDS - 10 - time.time()))
            checks.run("prometheus: no alert pending or firing under normal load", no_alerts)
            load.stop()

            def worker_down_alert():
                pid = int(open(os.path.join(st.dir, "run", "crypto-2.pid")).read())
                os.kill(pid, signal.SIGTERM)
                inst = urllib.parse.urlparse(st.vars["LCORE_CRYPTO_2_ADMIN_URL"]).netloc

                def probe():
                    alerts = [a for a in prom.api("alerts")["alerts"]
                              if a["labels"]["alertname"] == "LcoreServiceDown"]
                    want = [a for a in alerts if a["labels"].get("instance") == inst
                            and a["labels"].get("job") == "lcore-crypto" and a["state"] == "pending"]
                    return (want and len(alerts) == 1, alerts)
                wait_for("LcoreServiceDown pending for the stopped worker", probe, 20)

            checks.run("prometheus: stopping a crypto worker makes LcoreServiceDown pending for it",
                       worker_down_alert)
        except Exception as e:  # noqa: BLE001 - setup failures are failures too
            checks.run("live stack and prometheus", lambda: _raise(e))
        finally:
            if load:
                load.stop()
            if prom:
                prom.stop()
    checks.done()


if __name__ == "__main__":
    main()
