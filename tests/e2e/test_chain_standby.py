"""One active relayer per chain and contract (issue 18 item 2), against a real anvil and
PostgreSQL: the stack's relayer holds the lease; a second lcore-chain started next to it with the
same chain, contract, key and database stands by (ready, lease gauge 0, sends nothing); kill -9
of the active one and the standby takes the lease over within LCORE_CHAIN_LEASE_TTL_MS plus its
one-second look (at the next epoch) and anchors what comes next, every record in exactly one
live anchor; the first relayer started again stands by in its turn, and takes over at once when
the active one stops (SIGTERM gives the lease up); a relayer paused (SIGSTOP) past its lease is
taken over and, woken, stops (exit 3) without a transaction of its own failing or an anchor
doubled. Every process the test starts is killed when it ends, failed or not."""
import os
import signal
import socket
import subprocess
import time

from anchoring import wait_all_anchored, wait_for
from harness import BIN, Checks, Device, Stack, expect, metric_at, readyz

TTL_MS = 5000
ENV = {"LCORE_CHAIN_CONFIRMATIONS": "1", "LCORE_CHAIN_ANCHOR_WINDOW_MS": "300",
       "LCORE_CHAIN_LEASE_TTL_MS": str(TTL_MS)}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def process_env(pid):
    with open(f"/proc/{pid}/environ", "rb") as f:
        pairs = [kv.split(b"=", 1) for kv in f.read().split(b"\0") if b"=" in kv]
    return {k.decode(): v.decode() for k, v in pairs}


def pid_of(st, name):
    with open(os.path.join(st.dir, "run", f"{name}.pid")) as f:
        return int(f.read())


def live_twice(st):
    """Records that are leaves of more than one live anchor (must be none)."""
    return st.sql("SELECT count(*) FROM (SELECT arrival FROM anchor_leaves l JOIN anchors b"
                  " ON b.id = l.anchor_id WHERE b.status NOT IN ('superseded', 'abandoned')"
                  " GROUP BY 1 HAVING count(*) > 1) x")


def main():
    checks = Checks()
    procs = []
    with Stack(workers=1, extra_env=ENV) as st:
        dev = Device(st, "standby-1")
        dev.register()
        ctx = {"seq": 0, "active": pid_of(st, "chain"), "active_admin": st.vars["LCORE_CHAIN_ADMIN_URL"]}
        base = process_env(ctx["active"])

        def start_relayer(name):
            """Another lcore-chain like the stack's, with its own admin and query ports."""
            admin_port = free_port()
            env = dict(base, LCORE_CHAIN_RELAYER_ID=name,
                       LCORE_CHAIN_ADMIN_BIND=f"127.0.0.1:{admin_port}",
                       LCORE_CHAIN_QUERIES_BIND=f"tcp://127.0.0.1:{free_port()}")
            log = open(os.path.join(st.dir, "log", f"{name}.log"), "ab")
            p = subprocess.Popen([os.path.join(BIN, "lcore-chain")], env=env, stdout=log, stderr=log)
            procs.append(p)
            admin = f"http://127.0.0.1:{admin_port}"
            wait_for(f"{name} /readyz 200", lambda: readyz(admin)[0] == 200, timeout=30)
            return p, admin

        def post(n):
            for _ in range(n):
                ctx["seq"] += 1
                code, _, body = dev.post(dev.sign(dev.reading(ctx["seq"])))
                expect(code == 202, f"post {ctx['seq']}: {code} {body}")

        def one_active_one_standby():
            expect(metric_at(ctx["active_admin"], "lcore_chain_lease_held") == 1,
                   "the stack's relayer does not hold the lease")
            p, admin = start_relayer("standby-a")
            ctx["standby"], ctx["standby_admin"] = p, admin
            time.sleep(1.5)  # a standby looks at the lease every second: let it look twice
            expect(metric_at(admin, "lcore_chain_lease_held") == 0, "the standby holds the lease")
            epoch = int(st.sql("SELECT epoch FROM relayer_lease"))
            holder = st.sql("SELECT holder FROM relayer_lease")
            expect(holder != "standby-a", f"lease holder {holder}")
            ctx["epoch"] = epoch
            post(10)
            wait_all_anchored(st.sql, st.sql, want=10, timeout=60)
            expect(metric_at(admin, "lcore_chain_transactions_sent_total") == 0,
                   "the standby sent transactions")

        def standby_takes_over_after_kill():
            os.kill(ctx["active"], signal.SIGKILL)
            t0 = time.time()
            wait_for("the standby to hold the lease",
                     lambda: metric_at(ctx["standby_admin"], "lcore_chain_lease_held") == 1,
                     timeout=(TTL_MS + 5000) / 1000)
            took = time.time() - t0
            print(f"  takeover {took:.1f} s after kill -9 (lease ttl {TTL_MS / 1000:.0f} s)")
            expect(took <= 10, f"takeover took {took:.1f} s")
            row = st.sql("SELECT holder || ' ' || epoch FROM relayer_lease")
            expect(row == f"standby-a {ctx['epoch'] + 1}", f"lease row after takeover: {row}")
            post(10)
            wait_all_anchored(st.sql, st.sql, want=20, timeout=90)
            expect(live_twice(st) == "0", "records in more than one live anchor")
            expect(metric_at(ctx["standby_admin"], "lcore_chain_transactions_sent_total") >= 1,
                   "the new active relayer sent nothing")

        def restarted_relayer_stands_by():
            p, admin = start_relayer("standby-b")
            ctx["b"], ctx["b_admin"] = p, admin
            time.sleep(1.5)
            expect(metric_at(admin, "lcore_chain_lease_held") == 0, "the restarted relayer took the lease")
            post(5)
            wait_all_anchored(st.sql, st.sql, want=25, timeout=60)
            expect(metric_at(admin, "lcore_chain_transactions_sent_total") == 0,
                   "the restarted relayer sent transactions")
            # SIGTERM gives the lease up: the other takes over at its next look, not at expiry.
            ctx["standby"].send_signal(signal.SIGTERM)
            ctx["standby"].wait(timeout=20)
            t0 = time.time()
            wait_for("standby-b to take the released lease",
                     lambda: metric_at(admin, "lcore_chain_lease_held") == 1, timeout=5)
            print(f"  takeover {time.time() - t0:.1f} s after SIGTERM (released)")
            post(5)
            wait_all_anchored(st.sql, st.sql, want=30, timeout=60)
            expect(live_twice(st) == "0", "records in more than one live anchor")

        def paused_relayer_wakes_fenced():
            # standby-b is active. Paused (SIGSTOP) past its lease, it is taken over; woken up,
            # it stops (exit 3) at its next look, and what it was doing could not be written.
            p, admin = start_relayer("standby-c")
            ctx["b"].send_signal(signal.SIGSTOP)
            t0 = time.time()
            wait_for("standby-c to take the lease of the paused relayer",
                     lambda: metric_at(admin, "lcore_chain_lease_held") == 1, timeout=12)
            print(f"  takeover {time.time() - t0:.1f} s after SIGSTOP")
            post(5)
            ctx["b"].send_signal(signal.SIGCONT)
            code = ctx["b"].wait(timeout=20)
            expect(code == 3, f"the woken relayer exited {code}, not 3")
            with open(os.path.join(st.dir, "log", "standby-b.log")) as f:
                expect("event=lease_taken_over" in f.read(), "the woken relayer did not say why it stopped")
            wait_all_anchored(st.sql, st.sql, want=35, timeout=60)
            expect(live_twice(st) == "0", "records in more than one live anchor")
            fatal = st.sql("SELECT count(*) FROM anchor_txs WHERE state = 'fatal_error'")
            expect(fatal == "0", f"{fatal} transactions failed (a nonce spent twice?)")

        try:
            checks.run("the stack's relayer is active, a second one stands by and sends nothing",
                       one_active_one_standby)
            checks.run("kill -9 of the active relayer: the standby takes over within 10 s and anchors",
                       standby_takes_over_after_kill)
            checks.run("a relayer started again stands by; SIGTERM hands the lease over at once",
                       restarted_relayer_stands_by)
            checks.run("a relayer paused past its lease is taken over, and stops when it wakes",
                       paused_relayer_wakes_fenced)
        finally:
            for p in procs:
                if p.poll() is None:
                    p.kill()
                    p.wait(timeout=10)
    checks.done()


if __name__ == "__main__":
    main()
