"""Faults 1 and 7: a crypto worker killed mid-load; a poison reading that crashes every worker
(fault-injection build: LCORE_CRYPTO_CRASH_DEVICE) ends in dead_letters, sealed, while the rest
flows; once the cause is fixed, `lcore-cli dead-letters replay` stores every one of them."""
import signal
import threading
import time

from faults import FAULT_ENV, alive, Checks, expect, kill, kill_restart, pid_of, run_phase, Stack, stack_up


def main():
    checks = Checks()
    # Four deliveries, not FAULT_ENV's three: from the third on a suspect goes alone, and with
    # three only the last one does, so an innocent reading lost next to a poison one in its first
    # two deliveries has a single solo delivery, itself exposed to a poison reading still in its
    # first deliveries on the same worker. Four gives two solo deliveries (the default of five
    # gives three) while keeping the run short.
    with Stack(workers=2, extra_env=dict(FAULT_ENV, LCORE_GATEWAY_MAX_ATTEMPTS="4")) as stack:
        run_phase(stack, checks, "f1_crypto_kill", "kill -9 one of two crypto workers, restart after 2 s",
                  kill_restart("crypto-1", 2))

        # Fault 7: both workers crash on any reading of the poison device; a supervisor
        # restarts them, as systemd or docker would.
        poison = "poison7"
        crash_env = {"LCORE_CRYPTO_CRASH_DEVICE": f"{poison}-0"}
        for name in ("crypto-1", "crypto-2"):
            kill(stack, name, signal.SIGTERM)
        stack_up(stack, crash_env)
        stop = threading.Event()
        restarts = [0]

        def supervise():
            while not stop.is_set():
                dead = [n for n in ("crypto-1", "crypto-2") if not alive(pid_of(stack, n))]
                if dead:
                    try:
                        stack_up(stack, crash_env)
                        restarts[0] += len(dead)
                    except AssertionError:
                        pass
                stop.wait(0.2)
        sup = threading.Thread(target=supervise, daemon=True)
        sup.start()
        try:
            res = run_phase(stack, checks, "f7_poison", "a worker crashes on every reading of one device",
                            lambda s: time.time(), duration=25, fault_at=1,
                            side_loads=[(poison, ["--count", "6", "--rate", "1"])],
                            poison_prefix=poison)
        finally:
            stop.set()
            sup.join(timeout=30)

        def poison_dead_lettered():
            expect(res.get("poison_accepted") == 6, f"poison readings accepted: {res.get('poison_accepted')}")
            expect(res.get("poison_missing") == 0 and res.get("poison_dead_lettered") == 6,
                   f"poison readings in dead_letters: {res.get('poison_dead_lettered')}, missing {res.get('poison_missing')}")
            expect(res.get("poison_stored") == 0, "a poison reading was stored")
            expect(res.get("poison_dead_stage") == ["crypto"], f"stage {res.get('poison_dead_stage')}")
            expect(restarts[0] >= 3, f"workers crashed only {restarts[0]} times: the hook did not fire")
            dl = stack.metric("LCORE_GATEWAY_ADMIN_URL", "lcore_gateway_dead_letters_total")
            expect(dl == 6, f"lcore_gateway_dead_letters_total = {dl}")
        checks.run("f7: the poison device's readings are dead-lettered after max attempts", poison_dead_lettered)
        print(f"worker restarts during f7: {restarts[0]}", flush=True)

        # The cause fixed (workers without the crash), the dead letters are replayed: each was
        # kept sealed by the gateway, goes back to it, and is stored; nothing accepted is lost.
        for name in ("crypto-1", "crypto-2"):
            if alive(pid_of(stack, name)):
                kill(stack, name, signal.SIGTERM)
        stack_up(stack)
        poison_ids = set(x for x in stack.sql(
            f"SELECT encode(record_id, 'hex') FROM dead_letters WHERE device_id LIKE '{poison}-%'").splitlines() if x)
        listed = {}

        def listed_unresolved():
            out = stack.cli("dead-letters", "list").stdout.splitlines()
            for line in out:
                fields = dict(f.split("=", 1) for f in line.split() if "=" in f)
                listed[fields["record_id"]] = fields
            expect(poison_ids and poison_ids <= set(listed), f"list shows {len(listed)} of {len(poison_ids)}")
            expect(all(listed[i]["stage"] == "crypto" and listed[i]["resolved"] == "no" for i in poison_ids),
                   f"listed as {[listed[i] for i in poison_ids][:2]}")
            sealed = int(stack.sql("SELECT count(*) FROM dead_letters WHERE gateway_sealed IS NOT NULL"
                                   f" AND device_id LIKE '{poison}-%'"))
            expect(sealed == len(poison_ids), f"{sealed} of {len(poison_ids)} kept their reading sealed")
        checks.run("dead-letters list shows the poison readings, unresolved, each kept sealed", listed_unresolved)

        def replayed_and_stored():
            out = stack.cli("dead-letters", "replay").stdout
            expect(f"replayed_gateway={len(poison_ids)}" in out, f"replay: {out.strip()}")
            deadline = time.time() + 60
            stored = set()
            while time.time() < deadline and not poison_ids <= stored:
                stored = set(x for x in stack.sql(
                    f"SELECT encode(record_id, 'hex') FROM records WHERE device_id LIKE '{poison}-%'").splitlines() if x)
                time.sleep(0.5)
            expect(poison_ids <= stored, f"stored {len(stored & poison_ids)} of {len(poison_ids)} replayed readings")
            rid = sorted(poison_ids)[0]
            opened = stack.cli("decrypt", rid).stdout
            expect("device_signature=valid" in opened, f"decrypt of a replayed reading: {opened[:200]}")
            left = stack.cli("dead-letters", "list").stdout
            expect(not any(i in left for i in poison_ids), "still unresolved after the replay")
            again = stack.cli("dead-letters", "replay", rid).stdout
            expect("skipped=1" in again, f"replaying a resolved one: {again.strip()}")
            n = stack.metric("LCORE_GATEWAY_ADMIN_URL", "lcore_gateway_dead_letters_replayed_total")
            expect(n == len(poison_ids), f"lcore_gateway_dead_letters_replayed_total = {n}")
        checks.run("replay puts every dead-lettered reading back, stored once and decryptable", replayed_and_stored)
    checks.done()


if __name__ == "__main__":
    main()
