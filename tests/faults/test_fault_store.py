"""Faults 2, 3 and 6: the store killed for 5 s; PostgreSQL stopped (immediate) for 10 s; the
gateway's log bound reached while PostgreSQL is down (503 + Retry-After, nothing accepted lost)."""
import signal
import time

from faults import FAULT_ENV, Checks, Device, expect, kill, kill_restart, pg_ctl, run_phase, Stack, stack_up


def stop_pg(seconds):
    def fault(stack):
        pg_ctl(stack, "-m", "immediate", "-w", "stop")
        time.sleep(seconds)
        end = time.time()
        stack_up(stack)  # starts the cluster again; the services reconnect on their own
        return end
    return fault


def main():
    checks = Checks()
    with Stack(workers=2, extra_env=FAULT_ENV) as stack:
        run_phase(stack, checks, "f2_store_kill", "kill -9 the store, restart after 5 s", kill_restart("store", 5))
        run_phase(stack, checks, "f3_postgres_down", "PostgreSQL stopped (-m immediate) for 10 s",
                  stop_pg(10), duration=30)

        # Fault 6: a small log bound, then PostgreSQL down long enough to reach it.
        bound = {"LCORE_GATEWAY_WAL_MAX_READINGS": "3000"}
        kill(stack, "gateway", signal.SIGTERM)
        stack_up(stack, bound)
        probe = {}
        dev = Device(stack, "probe6-0")
        expect(dev.register()[0] in (200, 201), "probe device registration failed")
        seq = [1]

        def post():
            seq[0] += 1
            return dev.post(dev.sign(dev.reading(seq[0])))
        expect(post()[0] == 202, "probe reading refused before the fault")  # caches its key

        def full_log(s):
            pg_ctl(s, "-m", "immediate", "-w", "stop")
            deadline = time.time() + 30
            while time.time() < deadline and "status" not in probe:
                st, hdrs, body = post()
                if st == 503 and isinstance(body, dict) and "bound" in body.get("message", ""):
                    probe.update(status=st, retry_after=hdrs.get("Retry-After"), error=body.get("error"))
                time.sleep(0.2)
            probe["log_full"] = _log_full(s)
            time.sleep(3)  # devices keep hitting the bound for a while
            end = time.time()
            stack_up(s, bound)
            return end
        res = run_phase(stack, checks, "f6_log_bound", "log bound (3000 readings) reached while PostgreSQL is down",
                        full_log, duration=25)

        def backpressure():
            expect(probe.get("status") == 503, f"no 503 for a full log: {probe}")
            expect(probe.get("error") == "overloaded", f"error code {probe.get('error')}")
            expect(probe.get("retry_after", "").isdigit(), f"Retry-After missing: {probe}")
            expect(probe["log_full"] > 0, "no reading was counted as refused for a full log")
            expect(res["sim_503"] > 0, "the devices never saw a 503")
        checks.run("f6: past the bound readings get 503 (counted as log_full)", backpressure)
    checks.done()


def _log_full(stack):
    import urllib.request
    body = urllib.request.urlopen(stack.vars["LCORE_GATEWAY_ADMIN_URL"] + "/metrics", timeout=10).read().decode()
    for line in body.splitlines():
        if line.startswith('lcore_gateway_readings_rejected_total{reason="log_full"}'):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


if __name__ == "__main__":
    main()
