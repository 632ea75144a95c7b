"""Hostile HTTP clients (issue 14 items 2 and 3), end to end against the real gateway, store
and PostgreSQL. Hundreds of slow connections from ten addresses send request batch headers with
a large Content-Length and then trickle junk lines: the gateway's resident memory stays under
the bound of docs/SECURITY.md (its base, libmicrohttpd's pool per connection, the body budget)
although the attackers push several times that through their sockets, the requests past the
body budget get 503 overloaded with Retry-After, and a well-behaved device still gets every
reading accepted (202). Connections past the per-address limit are closed unanswered. A flood of
distinct unknown device ids from one address costs the store no more lookups than that
address's allowance (the rest get 429 rate_limited), and leaves a real device's rate bucket as
it was."""
import base64
import errno
import json
import os
import select
import socket
import time

from harness import Checks, Device, Stack, expect, http

PER_IP = 24
BUDGET = 4 << 20
MHD_POOL = 32 << 10          # GW_HTTP_CONNECTION_MEMORY
CONN_OVERHEAD = 8 << 10      # libmicrohttpd's connection struct, socket, request state
SLACK = 8 << 20              # allocator arenas of the HTTP threads, metrics, log buffers
ATTACK_IPS = [f"127.0.0.{i}" for i in range(2, 12)]
LOOKUPS_BURST = 20

EXTRA = {"LCORE_GATEWAY_MAX_CONNECTIONS_PER_IP": str(PER_IP),
         "LCORE_GATEWAY_MAX_CONNECTIONS": "1024",
         "LCORE_GATEWAY_BODY_BUDGET_BYTES": str(BUDGET),
         "LCORE_GATEWAY_UNKNOWN_LOOKUPS_PER_IP": "1",
         "LCORE_GATEWAY_UNKNOWN_LOOKUPS_BURST": str(LOOKUPS_BURST),
         "LCORE_GATEWAY_DEVICE_RATE": "1", "LCORE_GATEWAY_DEVICE_BURST": "20"}


def rss(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def gateway_pid(st):
    with open(os.path.join(st.dir, "run", "gateway.pid")) as f:
        return int(f.read().strip())


def host_port(url):
    hp = url.split("//", 1)[1].rstrip("/")
    host, _, port = hp.rpartition(":")
    return host, int(port)


def open_from(src, addr):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind((src, 0))
    s.settimeout(5)
    s.connect(addr)
    return s


def answer_of(s, timeout=0.0):
    """The status line and headers the gateway sent on s, b'' when it closed it unanswered,
    None when nothing came (yet)."""
    s.settimeout(timeout) if timeout else s.setblocking(False)
    try:
        data = s.recv(65536)
    except (BlockingIOError, socket.timeout):
        return None
    except OSError:
        return b""
    return data


class Attacker:
    """One slow client: request batch headers with a large Content-Length, then junk lines."""
    LINE = b"x" * 1023 + b"\n"

    def __init__(self, src, addr):
        self.s = open_from(src, addr)
        self.s.sendall(b"POST /v1/data/batch HTTP/1.1\r\nHost: gw\r\nContent-Type: text/plain\r\n"
                       b"Content-Length: 16000000\r\n\r\n")
        self.s.setblocking(False)
        self.sent, self.answer, self.closed = 0, None, False

    def trickle(self, n_lines):
        if self.closed:
            return
        if self.answer is None:
            a = answer_of(self.s)
            if a is not None:
                self.answer, self.closed = a, True
                return
        try:
            self.sent += self.s.send(self.LINE * n_lines)
        except BlockingIOError:
            pass
        except OSError as e:
            if e.errno in (errno.EPIPE, errno.ECONNRESET):
                self.closed = True
                self.answer = answer_of(self.s) or b""


def s_taken(attackers):
    """Body bytes the gateway has read: a request batch answered 413 (over 1000 lines, or
    past the request batch limit) was read to its end: its 16,000,000 bytes."""
    return sum(16000000 for a in attackers if a.answer and a.answer.startswith(b"HTTP/1.1 413"))


def main():
    checks = Checks()
    with Stack(workers=1, extra_env=EXTRA) as st:
        addr = host_port(st.url)
        pid = gateway_pid(st)
        good = Device(st, "hostile-good")
        expect(good.register()[0] == 201, "register")
        jws = [good.sign(good.reading(s)) for s in range(1, 16)]

        def slow_bodies_bounded():
            for j in jws[:3]:  # warm: the accept path has run before the base is taken
                expect(good.post(j)[0] == 202, "warm-up reading")
            base = rss(pid)
            attackers = [Attacker(ip, addr) for ip in ATTACK_IPS for _ in range(PER_IP)]
            n_conns = len(attackers)
            bound = base + n_conns * (MHD_POOL + CONN_OVERHEAD) + BUDGET + SLACK
            peak, answers = base, []
            t0, i, next_post = time.time(), 3, 0.0
            while time.time() - t0 < 40:
                for a in attackers:
                    a.trickle(32)
                peak = max(peak, rss(pid))
                now = time.time() - t0
                if i < len(jws) and now >= next_post:  # a reading every half second
                    answers.append(good.post(jws[i])[0])
                    i, next_post = i + 1, now + 0.5
                if i >= len(jws) and now >= 8 and s_taken(attackers) > 4 * (bound - base):
                    break
                time.sleep(0.01)
            taken = s_taken(attackers)
            sent = sum(a.sent for a in attackers)
            refused = [a.answer for a in attackers if a.answer]
            for a in attackers:
                a.s.close()
            print(f"  base={base >> 20} MiB peak={peak >> 20} MiB bound={bound >> 20} MiB "
                  f"connections={n_conns} sent={sent >> 20} MiB read={int(taken) >> 20} MiB "
                  f"refused={len(refused)} seconds={time.time() - t0:.1f}", flush=True)
            expect(peak <= bound, f"gateway RSS {peak} over the bound {bound}")
            expect(taken > 4 * (bound - base),
                   f"the gateway read only {taken} bytes of the attack: proves nothing")
            expect(answers and all(c == 202 for c in answers), f"the good device got {answers}")
            over = [r for r in refused if r.startswith(b"HTTP/1.1 503")]
            expect(over, f"no request was refused past the body budget: {refused[:3]}")
            for r in over:
                expect(b"retry-after:" in r.lower() and b'"overloaded"' in r, f"503 answer: {r[:300]}")
            expect(st.metric("LCORE_GATEWAY_ADMIN_URL", "lcore_gateway_body_budget_refused_total") > 0,
                   "body budget refusals not counted")

        def per_ip_limit():
            # Connections that send nothing: the gateway keeps those it accepted (idle timeout
            # 30 s) and closes at once those past the limit.
            socks = [open_from("127.0.0.40", addr) for _ in range(PER_IP + 6)]
            closed, deadline = set(), time.time() + 3
            while time.time() < deadline and len(closed) < 6:
                ready, _, _ = select.select([s for s in socks if s not in closed], [], [], 0.2)
                closed.update(s for s in ready if answer_of(s) == b"")
            time.sleep(0.5)  # a seventh close would come now: none may
            ready, _, _ = select.select([s for s in socks if s not in closed], [], [], 0)
            closed.update(s for s in ready if answer_of(s) == b"")
            for s in socks:
                s.close()
            expect(len(closed) == 6, f"{len(closed)} of {PER_IP + 6} connections from one address "
                   f"closed at once (limit {PER_IP})")

        def unknown_kid_flood():
            rl = Device(st, "hostile-rl")
            expect(rl.register()[0] == 201, "register")
            rl_jws = [rl.sign(rl.reading(s)) for s in range(1, 46)]
            codes = [rl.post(j)[0] for j in rl_jws[:21]]  # burst 20 at 1/s: the 21st is over
            t21 = time.time()
            expect(codes[:20] == [202] * 20 and codes[20] == 429, f"rate bucket: {codes}")
            lookups0 = st.metric("LCORE_GATEWAY_ADMIN_URL", "lcore_gateway_device_store_lookups_total")
            store_q0 = st.metric("LCORE_STORE_ADMIN_URL", "lcore_store_queries_total")
            # Unsigned junk is refused before any lookup, so the flood is well-formed JWS with
            # a garbage signature and a fresh kid each time, as an attacker would send.
            def b64(b):
                return base64.urlsafe_b64encode(b).rstrip(b"=").decode()
            body = "\n".join(
                f"{b64(json.dumps({'alg': 'EdDSA', 'kid': f'ghost-{k}'}).encode())}."
                f"{b64(b'{}')}.{b64(bytes(64))}" for k in range(300))
            code, _, res = http("POST", st.url + "/v1/data/batch", body, {"Content-Type": "text/plain"})
            expect(code == 207, f"flood answer {code}: {res}")
            errs = [r.get("error") for r in res["results"]]
            expect(errs.count("unknown_device") <= LOOKUPS_BURST + 2 and errs.count("rate_limited") >= 270,
                   f"flood results: {errs.count('unknown_device')} unknown, {errs.count('rate_limited')} limited")
            lookups = st.metric("LCORE_GATEWAY_ADMIN_URL", "lcore_gateway_device_store_lookups_total") - lookups0
            store_q = st.metric("LCORE_STORE_ADMIN_URL", "lcore_store_queries_total") - store_q0
            expect(lookups <= LOOKUPS_BURST + 2, f"{lookups} store lookups for the flood")
            # The store also answers the readiness pings (one a second).
            expect(store_q <= LOOKUPS_BURST + 2 + 10, f"the store answered {store_q} queries")
            # At 1/s the bucket holds at most the seconds since the 21st reading, never the
            # burst of 20 again: readings until the first 429 are few.
            elapsed = time.time() - t21
            n = 0
            for j in rl_jws[21:]:
                if rl.post(j)[0] != 202:
                    break
                n += 1
            expect(n <= elapsed + 1 and n < 20,
                   f"{n} readings accepted {elapsed:.1f}s after the bucket was empty: reset by the flood")

        checks.run("hundreds of slow connections: gateway RSS under the bound, 503 past the body "
                   "budget, a good device still gets 202s", slow_bodies_bounded)
        checks.run("connections past the per-address limit are closed unanswered", per_ip_limit)
        checks.run("a flood of unknown kids: no store lookups past the per-address allowance, no "
                   "reset of a real device's rate bucket", unknown_kid_flood)
    checks.done()


if __name__ == "__main__":
    main()
