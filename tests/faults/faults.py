"""Fault-injection harness: continuous load from lcore-sim (--retry, like devices) against the
real native stack, a fault in the middle, and the delivery contract checked afterwards against
PostgreSQL: every record_id that got a 202 is stored exactly once (or, for poison readings, in
dead_letters), no row exists that was not accepted, and the stored rate recovers.
Each phase writes its outcome row to $LCORE_FAULTS_OUT/<phase>.json (default <build>/faults);
tests/faults/report.py turns those into the table of docs/RELIABILITY.md."""
import json
import os
import resource
import signal
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "e2e"))
from harness import BIN, STACK, Checks, Device, Stack, expect, http  # noqa: E402,F401

OUT = os.environ.get("LCORE_FAULTS_OUT", os.path.join(BIN, "faults"))

# Aborting workers (fault 7) must not litter the disk with core files.
resource.setrlimit(resource.RLIMIT_CORE, (0, 0))

# Shorter than the default 5 s so a test's recovery does not wait on it; said in RELIABILITY.md.
FAULT_ENV = {"LCORE_GATEWAY_REDELIVER_MS": "1000", "LCORE_GATEWAY_REDELIVER_MAX_MS": "8000",
             "LCORE_GATEWAY_MAX_ATTEMPTS": "3"}


class Load:
    """lcore-sim in the background: paced, retrying, printing progress; record ids to a file."""

    def __init__(self, stack, prefix, rate, duration, devices=20, extra=()):
        self.prefix, self.rate, self.duration = prefix, rate, duration
        self.ids_path = os.path.join(stack.dir, f"{prefix}.ids")
        cmd = [os.path.join(BIN, "lcore-sim"), "--url", stack.url, "--admin-url", stack.admin_url, "--admin-token", stack.token,
               "--device-prefix", prefix, "--devices", str(devices), "--rate", str(rate),
               "--retry", "--retry-for", "120", "--progress", "--quiet",
               "--record-ids", self.ids_path] + list(extra)
        if duration:
            cmd += ["--duration", str(duration)]
        self.progress = []  # (wall time, {sent, accepted, ...})
        self.summary = {}
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.started = time.time()

    def _read(self):
        for line in self.proc.stdout:
            line = line.strip()
            if line.startswith("progress "):
                fields = dict(kv.split("=", 1) for kv in line.split()[1:])
                self.progress.append((time.time(), {k: float(v) for k, v in fields.items()}))
            elif "=" in line:
                k, _, v = line.partition("=")
                self.summary[k] = v

    def elapsed(self):
        return self.progress[-1][1]["t"] if self.progress else 0.0

    def wait_until(self, t):
        """Waits until the sim has been sending for t seconds."""
        deadline = time.time() + t + 60
        while self.elapsed() < t:
            if time.time() > deadline or self.proc.poll() is not None:
                raise AssertionError(f"lcore-sim stalled before t={t}s: {self.proc.stderr.read()}")
            time.sleep(0.1)

    def accepted_at(self, when):
        """Readings accepted by wall time `when` (from the progress lines)."""
        n = 0
        for ts, p in self.progress:
            if ts <= when:
                n = p["accepted"]
        return int(n)

    def wait(self, timeout=300):
        self.proc.wait(timeout=timeout)
        self._reader.join(timeout=10)
        err = self.proc.stderr.read()
        if self.proc.returncode != 0:
            raise AssertionError(f"lcore-sim exit {self.proc.returncode}: {err}")
        return self.summary

    def accepted_ids(self):
        with open(self.ids_path) as f:
            return [line.strip() for line in f if line.strip()]

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()


class Sampler:
    """Counts the phase's stored rows twice a second (skips samples while PostgreSQL is down)."""

    def __init__(self, stack, prefixes):
        self.stack, self.where = stack, " OR ".join(f"device_id LIKE '{p}-%'" for p in prefixes)
        self.samples = []
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _run(self):
        while not self._stop.is_set():
            try:
                n = int(self.stack.sql(f"SELECT count(*) FROM records WHERE {self.where}"))
                self.samples.append((time.time(), n))
            except Exception:  # noqa: BLE001 - PostgreSQL down is one of the faults
                pass
            self._stop.wait(0.5)

    def rows_at(self, when):
        n = None
        for ts, c in self.samples:
            if ts <= when:
                n = c
        return n

    def recovered_at(self, since, backlog, min_rate):
        """The first sample after `since` with at least `backlog` rows and, over the second
        before it, at least min_rate rows/s; None if there is none yet."""
        for i, (ts, n) in enumerate(self.samples):
            if ts < since or n < backlog:
                continue
            prev = [(t0, n0) for t0, n0 in self.samples[:i] if t0 <= ts - 0.9]
            if prev and (n - prev[-1][1]) / (ts - prev[-1][0]) >= min_rate:
                return ts
        return None

    def stop(self):
        self._stop.set()
        self._t.join(timeout=10)


def pid_of(stack, name):
    with open(os.path.join(stack.dir, "run", f"{name}.pid")) as f:
        return int(f.read().strip())


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][0] != "Z"
    except OSError:
        return False


def stack_up(stack, extra_env=None):
    env = dict(stack.env, **(extra_env or {}))
    out = subprocess.run([STACK, "up"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                         text=True, timeout=180)
    if out.returncode != 0:
        raise AssertionError(f"stack up failed: {out.stderr[-2000:]}")


def kill(stack, name, sig=signal.SIGKILL, wait=20):
    """Signals a component and waits until it is gone."""
    pid = pid_of(stack, name)
    os.kill(pid, sig)
    deadline = time.time() + wait
    while alive(pid) and time.time() < deadline:
        time.sleep(0.05)
    expect(not alive(pid), f"{name} (pid {pid}) still running {wait}s after signal {sig}")


def kill_restart(name, down_s):
    """A fault: kill -9 `name`, leave it down for down_s, restart it (returns when the restart
    was issued)."""
    def fault(stack):
        kill(stack, name)
        time.sleep(down_s)
        end = time.time()
        stack_up(stack)
        return end
    return fault


def pg_ctl(stack, *args):
    pg = os.path.join(stack.dir, "pg")
    data, owner, bindir = (open(os.path.join(pg, f)).read().strip() for f in ("data_dir", "owner", "bindir"))
    cmd = [os.path.join(bindir, "pg_ctl"), "-D", data] + list(args)
    if os.geteuid() == 0 and owner != "root":
        cmd = ["runuser", "-u", owner, "--"] + cmd
    subprocess.run(cmd, cwd="/", stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True, timeout=60)


def await_recovery(load, recovered_at, timeout):
    """recovered_at() polled every 0.25 s while the load runs, at most timeout seconds: the time
    it returns once not None (recovered), or None."""
    deadline = time.time() + timeout
    back = None
    while back is None and time.time() < deadline and load.proc.poll() is None:
        time.sleep(0.25)
        back = recovered_at()
    return back


def exit_codes(stack, name):
    """The codes of the component's 'event=exited' log lines, oldest first."""
    with open(os.path.join(stack.dir, "log", f"{name}.log")) as f:
        return [int(line.rsplit("code=", 1)[1].split()[0]) for line in f if "event=exited" in line]


def last_exit_code(stack, name):
    """The code in the component's last 'event=exited' log line (None if it has none)."""
    codes = exit_codes(stack, name)
    return codes[-1] if codes else None


def ids_where(stack, table, where):
    out = stack.sql(f"SELECT encode(record_id, 'hex') FROM {table} WHERE {where}")
    return [x for x in out.splitlines() if x]


def gateway_fsync_group(stack):
    """Mean readings per fdatasync of the gateway's log so far (this gateway process)."""
    s = stack.metric("LCORE_GATEWAY_ADMIN_URL", "lcore_gateway_wal_fsync_readings_sum")
    c = stack.metric("LCORE_GATEWAY_ADMIN_URL", "lcore_gateway_wal_fsync_readings_count")
    return s / c if c else 0.0


def write_result(name, result):
    """A phase's outcome row: $LCORE_FAULTS_OUT/<name>.json (report.py's input), and a RESULT line."""
    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, f"{name}.json"), "w") as f:
        json.dump(result, f, indent=1)
    print(f"RESULT {json.dumps(result)}", flush=True)


def run_phase(stack, checks, name, title, fault, rate=800, duration=20, fault_at=4,
              devices=20, side_loads=(), poison_prefix=None):
    """One fault under load. fault(stack) injects it and recovers, returning the wall time the
    fault ended: when the recovery action (restart, PostgreSQL start) was issued. side_loads: extra (prefix, sim args)
    runs started alongside (e.g. a poison device)."""
    prefix = name.replace("_", "")
    result = {"phase": name, "fault": title, "offered_per_s": rate, "duration_s": duration}
    load = Load(stack, prefix, rate, duration, devices)
    sides = [Load(stack, p, 1, 0, 1, args) for p, args in side_loads]
    sampler = Sampler(stack, [prefix])
    try:
        load.wait_until(fault_at)
        t_fault = time.time()
        fault_end = fault(stack)
        result["fault_s"] = round(fault_end - t_fault, 1)
        backlog = load.accepted_at(fault_end)

        # Recovery: every reading accepted before the fault ended is stored, and the stored rate
        # over one second is back to 80 % of the offered rate.
        back = await_recovery(load, lambda: sampler.recovered_at(fault_end, backlog, 0.8 * rate), 180)
        result["recovery_s"] = round(back - fault_end, 1) if back is not None else None

        summary = load.wait()
        for s in sides:
            s.wait()
        load_end = next((ts for ts, p in load.progress if p["t"] >= duration), load.started + duration)
        accepted = load.accepted_ids()
        poison = [i for s in sides for i in s.accepted_ids()]

        # Drain: everything accepted is stored (or dead-lettered).
        want = len(set(accepted))
        deadline = time.time() + 180
        while time.time() < deadline:
            if int(stack.sql(f"SELECT count(*) FROM records WHERE device_id LIKE '{prefix}-%'")) >= want:
                break
            time.sleep(0.5)
        if poison_prefix:
            while time.time() < deadline:
                dl = int(stack.sql(f"SELECT count(*) FROM dead_letters WHERE device_id LIKE '{poison_prefix}-%'"))
                if dl >= len(set(poison)):
                    break
                time.sleep(0.5)
        sampler.stop()

        stored = ids_where(stack, "records", f"device_id LIKE '{prefix}-%'")
        dead = ids_where(stack, "dead_letters", f"device_id LIKE '{prefix}-%'")
        a, r = set(accepted), set(stored)
        result.update({
            "accepted": len(a), "stored": len(stored), "dead_lettered": len(dead),
            # A reading of a healthy device dead-lettered is a reading lost.
            "lost": len(a - r), "unexpected": len(r - a),
            "duplicated": (len(stored) - len(r)) + len(r & set(dead)),
            "sim_retried": int(summary.get("retried", 0)),
            "sim_503": int(summary.get("backpressure_503", 0)),
            "sim_unanswered": int(summary.get("unanswered", 0)),
        })
        # Rate after recovery: stored rows over the last 4 s of the load, against the offer.
        r0, r1 = sampler.rows_at(load_end - 4), sampler.rows_at(load_end)
        result["stored_per_s_after"] = round((r1 - r0) / 4, 1) if r0 is not None and r1 is not None else None
        if poison_prefix:
            p_stored = ids_where(stack, "records", f"device_id LIKE '{poison_prefix}-%'")
            p_dead = stack.sql(f"SELECT encode(record_id, 'hex') || ' ' || stage FROM dead_letters "
                               f"WHERE device_id LIKE '{poison_prefix}-%'").splitlines()
            result.update({"poison_accepted": len(set(poison)), "poison_stored": len(p_stored),
                           "poison_dead_lettered": len(p_dead),
                           "poison_dead_stage": sorted({x.split()[1] for x in p_dead})})
            result["poison_missing"] = len(set(poison) - {x.split()[0] for x in p_dead})
        try:
            result["readings_per_fsync"] = round(gateway_fsync_group(stack), 2)
        except Exception:  # noqa: BLE001 - informational only
            result["readings_per_fsync"] = None
    finally:
        load.stop()
        for s in sides:
            s.stop()
        sampler.stop()
    write_result(name, result)

    def contract():
        expect(result["accepted"] > rate * duration * 0.5,
               f"too few readings accepted to mean anything: {result['accepted']}")
        expect(result["sim_unanswered"] == 0, f"{result['sim_unanswered']} readings never answered")
        expect(result["lost"] == 0, f"{result['lost']} accepted readings not stored")
        expect(result["unexpected"] == 0, f"{result['unexpected']} rows that were never accepted")
        expect(result["duplicated"] == 0, f"{result['duplicated']} duplicated")
        expect(result["recovery_s"] is not None, "the backlog was never stored")
        after = result["stored_per_s_after"]
        expect(after is not None and after >= 0.8 * rate,
               f"stored rate after recovery {after}/s < 80% of the offered {rate}/s")
    checks.run(f"{name}: every 202 stored exactly once, nothing else, rate back", contract)
    return result
