"""The 429 path (issue 14 item 8), end to end: a device over its reading rate gets 429
rate_limited with Retry-After, nothing of what was refused is stored, and lcore-sim --retry,
honouring Retry-After as a device would, gets every reading accepted and stored exactly once."""
import time

from harness import Checks, Device, Stack, expect, http


def main():
    checks = Checks()
    extra = {"LCORE_GATEWAY_DEVICE_RATE": "5", "LCORE_GATEWAY_DEVICE_BURST": "5"}
    with Stack(workers=1, extra_env=extra) as st:
        def over_the_rate():
            dev = Device(st, "rl-1")
            expect(dev.register()[0] == 201, "register")
            jws = [dev.sign(dev.reading(s)) for s in range(1, 21)]  # signed first: sent in a burst
            answers = []
            for j in jws:
                code, headers, body = http("POST", st.url + "/v1/data", j, {"Content-Type": "application/jose"})
                answers.append((code, headers, body))
            accepted = sum(1 for c, _, _ in answers if c == 202)
            limited = [(h, b) for c, h, b in answers if c == 429]
            expect(accepted >= 5 and limited and accepted + len(limited) == 20,
                   f"answers: {[c for c, _, _ in answers]}")
            for h, b in limited:
                retry = {k.lower(): v for k, v in h.items()}.get("retry-after", "")
                expect(retry.isdigit() and int(retry) >= 1, f"429 without a Retry-After in seconds: {h}")
                expect(b.get("error") == "rate_limited", f"429 body: {b}")
            time.sleep(2)
            n = int(st.sql("SELECT count(*) FROM records WHERE device_id = 'rl-1'"))
            expect(n == accepted, f"{n} records stored for {accepted} readings accepted")

        def sim_honours_retry_after():
            res = st.sim("--devices", "2", "--count", "60", "--rate", "0", "--concurrency", "4", "--retry",
                         "--device-prefix", "rl-sim")
            expect(res.get("accepted") == "60", f"sim: {res}")
            expect(int(res.get("backpressure_429", "0")) > 0, f"the sim never met a 429: {res}")
            st.wait_rows("device_id LIKE 'rl-sim-%'", 60, timeout=60)
            n = st.sql("SELECT count(*), count(DISTINCT (device_id, seq)) FROM records WHERE device_id LIKE 'rl-sim-%'")
            expect(n == "60|60", f"(records, distinct) = {n}")

        checks.run("a device over its rate gets 429 rate_limited with Retry-After; nothing refused is stored",
                   over_the_rate)
        checks.run("lcore-sim --retry honours Retry-After: all 60 readings accepted and stored once",
                   sim_honours_retry_after)
    checks.done()


if __name__ == "__main__":
    main()
