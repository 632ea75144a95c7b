"""Trust boundary on the ZeroMQ links, tried as an attacker on the same network would: a plain
ZeroMQ peer (tests/tools/zpeer.c) with no keys, with a made-up key, with a wrong idea of the
server's key, or with a real key of a role not admitted on that link, against each of the five
endpoints of a running stack (the open link included), while readings flow. None of them completes a handshake, receives
anything or injects anything, and the refusal counters move. Positive controls with a key the
stack trusts show that the same peer does get through, so the refusals are not an accident.
Then: a frame over the socket's size limit is dropped and counted without the store's memory
growing, and a freshly keyed worker joins by dropping its certificate in the trust directory."""
import os
import signal
import subprocess
import time

from harness import BIN, Checks, Device, Stack, expect, metric_at, readyz

ZPEER = os.path.join(BIN, "lcore-zpeer")


def zpeer(*args, env=None, timeout=60):
    out = subprocess.run([ZPEER] + list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True, timeout=timeout, env=env)
    if out.returncode != 0:
        raise RuntimeError(f"lcore-zpeer {args}: rc {out.returncode}: {out.stderr}")
    return {k: int(v) for k, v in (kv.split("=") for kv in out.stdout.split())}


def main():
    checks = Checks()
    with Stack(workers=2) as st:
        trust = st.vars["LCORE_CURVE_TRUST_DIR"]
        off = st.offset
        ep = {"readings": f"tcp://127.0.0.1:{5551 + off}", "sealed": f"tcp://127.0.0.1:{5552 + off}",
              "events": f"tcp://127.0.0.1:{5553 + off}", "queries": f"tcp://127.0.0.1:{5554 + off}",
              "open": f"tcp://127.0.0.1:{5556 + off}"}
        # socket -> (zpeer type, extra args, binding service's admin variable, server role)
        links = {"readings": ("pull", [], "LCORE_GATEWAY_ADMIN_URL", "gateway"),
                 "sealed": ("push", ["--send-bytes", "200", "--count", "50"], "LCORE_STORE_ADMIN_URL", "store"),
                 "events": ("sub", [], "LCORE_STORE_ADMIN_URL", "store"),
                 "queries": ("dealer", ["--ping"], "LCORE_STORE_ADMIN_URL", "store"),
                 "open": ("router", [], "LCORE_GATEWAY_ADMIN_URL", "gateway")}
        server_cert = {"gateway": os.path.join(trust, "gateway", "gw-1.cert"),
                       "store": os.path.join(trust, "store", "store.cert")}
        curve_dir = os.path.join(st.dir, "curve")
        gw_secret = os.path.join(curve_dir, "gw-1", "gw-1.cert_secret")
        crypto_secret = os.path.join(curve_dir, "crypto-1", "crypto-1.cert_secret")

        dev = Device(st, "trust-1")
        s, _, body = dev.register()
        expect(s == 201, f"register: {s} {body}")
        # Readings flow the whole time, so a peer that could read them would get some.
        load = subprocess.Popen([os.path.join(BIN, "lcore-sim"), "--url", st.url, "--admin-token", st.token,
                                 "--quiet", "--devices", "5", "--count", "20000", "--rate", "400",
                                 "--device-prefix", "flow"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

        def refused_on(name, kind, args):
            ztype, extra, admin, role = links[name]
            before = st.metric(admin, f"lcore_{'gateway' if role == 'gateway' else 'store'}_auth_refused_total")
            bad0 = st.metric("LCORE_STORE_ADMIN_URL", "lcore_store_bad_messages_total")
            # One second: a refused handshake fails in milliseconds on loopback (libzmq does not
            # retry it), and readings flow at 400/s the whole time for a peer that got in.
            r = zpeer("--endpoint", ep[name], "--type", ztype, "--seconds", "1", *extra, *args)
            expect(r["handshakes_ok"] == 0, f"{kind} peer on {name}: handshake succeeded: {r}")
            expect(r["received"] == 0, f"{kind} peer on {name} received {r['received']} messages")
            expect(r["handshakes_failed"] >= 1, f"{kind} peer on {name}: no failed handshake seen: {r}")
            deadline = time.time() + 5
            after = before
            while time.time() < deadline and after <= before:
                time.sleep(0.2)
                after = st.metric(admin, f"lcore_{'gateway' if role == 'gateway' else 'store'}_auth_refused_total")
            expect(after > before, f"{kind} peer on {name}: auth_refused_total stayed at {before}")
            bad1 = st.metric("LCORE_STORE_ADMIN_URL", "lcore_store_bad_messages_total")
            expect(bad1 == bad0, f"{kind} peer on {name}: {bad1 - bad0} messages reached the store's decoders")

        for name in links:
            role = links[name][3]
            checks.run(f"{name}: a peer with no keys gets nothing and injects nothing",
                       lambda n=name: refused_on(n, "keyless", []))
            checks.run(f"{name}: a peer with an unknown key is refused",
                       lambda n=name, r=role: refused_on(n, "unknown-key", ["--random-key", "--server-cert", server_cert[r]]))
            checks.run(f"{name}: a peer with a wrong server key is refused",
                       lambda n=name: refused_on(n, "wrong-server-key", ["--random-key", "--random-server-key"]))
        # Real keys of the wrong role: a worker's key on the gateways' links, a gateway's on the
        # workers' links.
        checks.run("queries: a crypto worker's key is not admitted (only gateways ask the store)",
                   lambda: refused_on("queries", "crypto-role", ["--cert", crypto_secret, "--server-cert", server_cert["store"]]))
        checks.run("sealed: a gateway's key is not admitted (only workers write)",
                   lambda: refused_on("sealed", "gateway-role", ["--cert", gw_secret, "--server-cert", server_cert["store"]]))
        checks.run("readings: a gateway's key is not admitted (only workers take readings)",
                   lambda: refused_on("readings", "gateway-role", ["--cert", gw_secret, "--server-cert", server_cert["gateway"]]))
        checks.run("open: a gateway's key is not admitted (only workers open records)",
                   lambda: refused_on("open", "gateway-role", ["--cert", gw_secret, "--server-cert", server_cert["gateway"]]))

        def control_queries():
            r = zpeer("--endpoint", ep["queries"], "--type", "dealer", "--ping", "--seconds", "2",
                      "--cert", gw_secret, "--server-cert", server_cert["store"])
            expect(r["handshakes_ok"] >= 1 and r["received"] == 1, f"the gateway's own key got no answer: {r}")

        checks.run("control: the gateway's key does get an answer on queries", control_queries)

        def control_open():
            # The stack's two workers hold connections to the open socket (their handshakes,
            # with the gateway's server key from the trust directory, went through).
            deadline, n = time.time() + 10, 0
            while time.time() < deadline and n < 2:
                n = st.metric("LCORE_GATEWAY_ADMIN_URL", "lcore_gateway_open_workers_connected")
                time.sleep(0.2)
            expect(n == 2, f"{n} workers connected to the open socket, want 2")

        checks.run("control: the workers are connected on the open link", control_open)

        # A forged SealedRecord, well formed and sealed with the real key ring, for a future seq of
        # a registered device: without a worker key it never lands; with one (the control) it does.
        def forged_sealed():
            env = dict(os.environ, LCORE_KEYRING=st.vars["LCORE_KEYRING"])
            r = zpeer("--endpoint", ep["sealed"], "--type", "push", "--seconds", "2", "--forge-sealed", "trust-1",
                      "--seq", "777", env=env)
            expect(r["handshakes_ok"] == 0, f"keyless forger completed a handshake: {r}")
            r = zpeer("--endpoint", ep["sealed"], "--type", "push", "--seconds", "2", "--forge-sealed", "trust-1",
                      "--seq", "778", "--random-key", "--server-cert", server_cert["store"], env=env)
            expect(r["handshakes_ok"] == 0, f"forger with a made-up key completed a handshake: {r}")
            time.sleep(1)
            n = st.sql("SELECT count(*) FROM records WHERE device_id = 'trust-1' AND seq IN (777, 778)")
            expect(n == "0", f"{n} forged records stored")
            # Control: the same record from an admitted worker key is stored.
            r = zpeer("--endpoint", ep["sealed"], "--type", "push", "--seconds", "2", "--forge-sealed", "trust-1",
                      "--seq", "779", "--cert", crypto_secret, "--server-cert", server_cert["store"], env=env)
            expect(r["handshakes_ok"] >= 1, f"worker key refused: {r}")
            n = st.wait_rows("device_id = 'trust-1' AND seq = 779", 1, timeout=10)
            expect(n == 1, "the control record from an admitted worker key was not stored")

        checks.run("sealed: a forged record never lands without a worker key (control: it does with one)",
                   forged_sealed)

        # A freshly keyed peer admitted as a worker sends frames far over the sealed socket's limit.
        fresh = os.path.join(curve_dir, "crypto-x")
        st.cli("curve-keygen", "--role", "crypto", "--name", "crypto-x", "--out", fresh, "--trust-dir", trust)

        def oversized():
            rss0 = st.metric("LCORE_STORE_ADMIN_URL", "process_resident_memory_bytes")
            drops0 = st.metric("LCORE_STORE_ADMIN_URL", "lcore_store_peer_drops_total")
            rows0 = st.sql("SELECT count(*) FROM records WHERE device_id NOT LIKE 'flow%'")
            r = zpeer("--endpoint", ep["sealed"], "--type", "push", "--seconds", "4", "--send-bytes",
                      str(64 << 20), "--count", "3", "--cert", os.path.join(fresh, "crypto-x.cert_secret"),
                      "--server-cert", server_cert["store"])
            expect(r["handshakes_ok"] >= 1 and r["sent"] >= 1, f"oversized sender did not get through the handshake: {r}")
            deadline, drops = time.time() + 5, drops0
            while time.time() < deadline and drops <= drops0:
                time.sleep(0.2)
                drops = st.metric("LCORE_STORE_ADMIN_URL", "lcore_store_peer_drops_total")
            expect(drops > drops0, "no connection drop counted for the oversized frames")
            rss1 = st.metric("LCORE_STORE_ADMIN_URL", "process_resident_memory_bytes")
            expect(rss1 - rss0 < (16 << 20), f"store memory grew by {(rss1 - rss0) / 2**20:.1f} MiB for 64 MiB frames")
            rows1 = st.sql("SELECT count(*) FROM records WHERE device_id NOT LIKE 'flow%'")
            expect(rows1 == rows0, "rows appeared from the oversized frames")

        checks.run("sealed: frames over the size limit are dropped and counted, memory stays flat", oversized)

        # Scale-out: a new worker with its own fresh key, installed in the trust directory, takes
        # readings once the stack's two workers are gone; one whose key is not installed never does.
        def scale_out():
            name = "crypto-new"
            kdir = os.path.join(curve_dir, name)
            st.cli("curve-keygen", "--role", "crypto", "--name", name, "--out", kdir, "--trust-dir", trust)
            rogue = os.path.join(curve_dir, "rogue")
            st.cli("curve-keygen", "--role", "crypto", "--name", "rogue", "--out", rogue)  # not installed
            procs = []
            for wname, cert, port in ((name, os.path.join(kdir, name + ".cert_secret"), 9190 + off),
                                      ("rogue", os.path.join(rogue, "rogue.cert_secret"), 9191 + off)):
                env = dict(st.env, LCORE_KEYRING=st.vars["LCORE_KEYRING"], LCORE_CURVE_CERT=cert,
                           LCORE_CURVE_TRUST_DIR=trust, LCORE_CRYPTO_ADMIN_BIND=f"127.0.0.1:{port}",
                           LCORE_CRYPTO_READINGS_CONNECT=ep["readings"], LCORE_CRYPTO_SEALED_CONNECT=ep["sealed"])
                log = open(os.path.join(st.dir, "log", wname + ".log"), "a")
                procs.append(subprocess.Popen([os.path.join(BIN, "lcore-crypto")], env=env, stdout=log,
                                             stderr=subprocess.STDOUT))
            try:
                new_url, rogue_url = f"http://127.0.0.1:{9190 + off}", f"http://127.0.0.1:{9191 + off}"
                deadline, s = time.time() + 15, 0
                while time.time() < deadline and s != 200 and procs[0].poll() is None:
                    time.sleep(0.2)
                    s = readyz(new_url)[0]
                expect(s == 200, "the freshly keyed worker never became ready")
                for i in (1, 2):  # the stack's own workers leave
                    pid = int(open(os.path.join(st.dir, "run", f"crypto-{i}.pid")).read())
                    os.kill(pid, signal.SIGTERM)
                time.sleep(1)
                for seq in range(1, 21):
                    s, _, body = dev.post(dev.sign(dev.reading(seq)))
                    expect(s == 202, f"reading {seq}: {s} {body}")
                n = st.wait_rows("device_id = 'trust-1' AND seq BETWEEN 1 AND 20", 20, timeout=30)
                expect(n == 20, f"{n} of 20 readings stored through the new worker")
                sealed_new = metric_at(new_url, "lcore_crypto_readings_sealed_total")
                expect(sealed_new >= 20, f"the new worker sealed {sealed_new}")
                sealed_rogue = metric_at(rogue_url, "lcore_crypto_readings_sealed_total")
                expect(sealed_rogue == 0, f"a worker with an untrusted key sealed {sealed_rogue}")
                refused = metric_at(rogue_url, "lcore_crypto_auth_refused_total")
                expect(refused >= 1, "the untrusted worker saw no refusal")
                s = readyz(rogue_url)[0]
                expect(s == 503, f"the untrusted worker says ready ({s})")
            finally:
                for p in procs:
                    p.terminate()
                for p in procs:
                    try:
                        p.wait(timeout=10)
                    except subprocess.TimeoutExpired:
                        p.kill()

        checks.run("scale-out: a freshly keyed worker joins through the trust directory; an untrusted one cannot",
                   scale_out)
        load.terminate()
        load.wait(timeout=30)
    checks.done()


if __name__ == "__main__":
    main()
