"""Faults 4 and 5: the gateway killed mid-load (its log replays); SIGTERM on every service in
turn during load (each exits 0, is restarted, nothing is lost)."""
import os
import signal
import time

from faults import FAULT_ENV, Checks, expect, kill, kill_restart, last_exit_code, run_phase, Stack, stack_up

SERVICES = ("gateway", "crypto-1", "crypto-2", "store", "chain")


def main():
    checks = Checks()
    with Stack(workers=2, extra_env=FAULT_ENV) as stack:
        run_phase(stack, checks, "f4_gateway_kill", "kill -9 the gateway, restart after 2 s (log replay)",
                  kill_restart("gateway", 2))
        replayed = stack.metric("LCORE_GATEWAY_ADMIN_URL", "lcore_gateway_wal_replayed_readings_total")
        checks.run("f4: the restarted gateway replayed its log",
                   lambda: expect(replayed > 0, "nothing replayed"))

        codes, tails = {}, {}

        def sigterm_each(s):
            for name in SERVICES:
                kill(s, name, signal.SIGTERM, wait=30)
                codes[name] = last_exit_code(s, name)
                if codes[name] != 0:  # what it said last (a fatal_signal line, if it died of one)
                    with open(os.path.join(s.dir, "log", f"{name}.log")) as f:
                        tails[name] = f.readlines()[-8:]
                end = time.time()
                stack_up(s)
                time.sleep(1)
            return end
        run_phase(stack, checks, "f5_sigterm_all", "SIGTERM each service in turn, restart each",
                  sigterm_each, duration=40, fault_at=3)
        checks.run("f5: every service exits 0 on SIGTERM",
                   lambda: expect(all(c == 0 for c in codes.values()), f"exit codes {codes}; last lines {tails}"))
    checks.done()


if __name__ == "__main__":
    main()
