"""scripts/stack as an operator uses it: `up` is idempotent and brings back a killed service,
`status` tells the truth, and `down` leaves nothing behind."""
import os
import signal
import subprocess
import time

from harness import STACK, Checks, Device, Stack, expect


def main():
    checks = Checks()
    with Stack(workers=2) as st:
        def run(cmd):
            return subprocess.run([STACK, cmd], env=st.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True, timeout=180)

        def pid_of(name):
            return int(open(os.path.join(st.dir, "run", name + ".pid")).read().split()[0])

        def status_all_ready():
            out = run("status")
            expect(out.returncode == 0, f"status exit {out.returncode}: {out.stdout}")
            for name in ("postgres", "store", "crypto-1", "crypto-2", "gateway"):
                line = [l for l in out.stdout.splitlines() if l.split()[:1] == [name]]
                expect(line and "running" in line[0] and "ready" in line[0], f"{name}: {line}")

        def up_is_idempotent():
            before = {n: pid_of(n) for n in ("store", "crypto-1", "crypto-2", "gateway")}
            out = run("up")
            expect(out.returncode == 0, out.stderr)
            again = dict(l.split("=", 1) for l in out.stdout.splitlines())
            expect(again == st.vars, "a second `up` printed different KEY=VALUE lines")
            after = {n: pid_of(n) for n in before}
            expect(before == after, f"`up` restarted running services: {before} -> {after}")

        def killed_service_comes_back():
            victims = {n: pid_of(n) for n in ("crypto-2", "gateway")}
            for pid in victims.values():
                os.kill(pid, signal.SIGKILL)
            time.sleep(0.5)
            out = run("status")
            expect(out.returncode == 3, f"status after kill -9 exit {out.returncode}: {out.stdout}")
            out = run("up")
            expect(out.returncode == 0, out.stderr)
            for n, old in victims.items():
                expect(pid_of(n) != old, f"{n} was not restarted")
            status_all_ready()
            dev = Device(st, "after-restart")
            s, _, body = dev.register()
            expect(s == 201, f"register after restart: {s} {body}")
            s, _, body = dev.post(dev.sign(dev.reading(1)))
            expect(s == 202, f"reading after restart: {s} {body}")
            expect(st.wait_rows("device_id = 'after-restart'", 1) == 1, "reading after restart not stored")

        def help_lists_variables():
            # Every service: --help lists its variables; an invalid value exits 2 with a one-line
            # reason naming the variable.
            bad_values = {"lcore-gateway": ("LCORE_GATEWAY_HTTP_BIND", "0.0.0.0:0"),
                          "lcore-crypto": ("LCORE_CRYPTO_HWM", "0"),
                          "lcore-store": ("LCORE_STORE_WRITE_BATCH_MAX", "0"),
                          "lcore-chain": ("LCORE_CHAIN_ADMIN_BIND", "127.0.0.1:70000")}
            for exe, (var, value) in bad_values.items():
                path = os.path.join(st.env["LCORE_BIN_DIR"], exe)
                out = subprocess.run([path, "--help"], stdout=subprocess.PIPE, text=True, timeout=10)
                expect(out.returncode == 0 and var in out.stdout and "default" in out.stdout, f"{exe} --help")
                bad = subprocess.run([path], env=dict(st.env, **{var: value}), stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, timeout=10)
                lines = [l for l in bad.stderr.splitlines() if l.strip()]
                expect(bad.returncode == 2 and len(lines) == 1 and var in lines[0],
                       f"{exe} with {var}={value}: exit {bad.returncode} {bad.stderr!r}")

        checks.run("status: every component running and ready", status_all_ready)
        checks.run("up again: same output, nothing restarted", up_is_idempotent)
        checks.run("kill -9 crypto-2 and gateway: status says so, up brings them back", killed_service_comes_back)
        checks.run("--help lists LCORE_* variables; an invalid value exits 2 with the reason", help_lists_variables)
    checks.done()


if __name__ == "__main__":
    main()
