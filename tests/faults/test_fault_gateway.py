"""Faults 4 and 5: the gateway killed mid-load (its log replays); SIGTERM on every service in
turn during load (each exits 0, is restarted, nothing is lost); SIGTERM while a logged reading
is on its way to wait for the log (fault-injection hook LCORE_GATEWAY_HOLD_LOGGED_MS)."""
import os
import signal
import threading
import time

from faults import (FAULT_ENV, Checks, Device, exit_codes, expect, kill, kill_restart, last_exit_code, run_phase,
                    Stack, stack_up)

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
        checks.run("f5: SIGTERM while a logged reading is about to wait: answered 202, exit 0, stored",
                   lambda: sigterm_holding(stack))
    checks.done()


def sigterm_holding(stack):
    """libmicrohttpd aborts if it is stopped with a suspended connection: a reading logged just
    before SIGTERM must not suspend after the gateway's last look. The hook holds it on its
    thread for 1.5 s after the log took it; SIGTERM comes 0.5 s in."""
    dev = Device(stack, "f5hold-0")
    status, _, body = dev.register()
    expect(status == 201, f"register: {status} {body}")
    jws = dev.sign(dev.reading(1))
    kill(stack, "gateway", signal.SIGTERM, wait=30)
    stack_up(stack, {"LCORE_GATEWAY_HOLD_LOGGED_MS": "1500"})
    before = len(exit_codes(stack, "gateway"))
    answer = {}
    t = threading.Thread(target=lambda: answer.update(r=dev.post(jws)))
    t.start()
    time.sleep(0.5)
    kill(stack, "gateway", signal.SIGTERM, wait=30)
    t.join(10)
    codes = exit_codes(stack, "gateway")[before:]
    with open(os.path.join(stack.dir, "log", "gateway.log")) as f:
        tail = f.readlines()[-4:]
    expect(codes == [0], f"gateway exits {codes}; last lines {tail}")
    status, _, body = answer.get("r", (None, None, None))
    expect(status == 202, f"the held reading got {status} {body}")
    stack_up(stack)
    rid = body["record_id"]
    expect(stack.wait_rows(f"record_id = '\\x{rid}'", 1) == 1, "the held reading was not stored")


if __name__ == "__main__":
    main()
