"""Chain relayer under faults, against a real anvil: fees rising while an anchor is pending, the
relayer's nonce taken by another sender, a reorg of mined anchors, the first RPC endpoint down,
and every endpoint down. After each, every stored record ends in a confirmed batch."""
import os
import signal
import socket
import subprocess
import threading
import time

from chain import Anvil, Rpc, abi_words, calldata
from harness import STACK, Checks, Device, Stack, expect, http

GWEI = 10**9
DEV_KEY = "ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
RELAYER = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"


class Proxy:
    """A TCP forwarder in front of an RPC endpoint, so the test can take the endpoint away."""

    def __init__(self, target_port):
        self.target = target_port
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.sock.listen(64)
        self.open = True
        self.conns = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _pipe(self, a, b):
        try:
            while True:
                d = a.recv(65536)
                if not d:
                    break
                b.sendall(d)
        except OSError:
            pass
        for s in (a, b):
            try:
                s.close()
            except OSError:
                pass

    def _accept(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            if not self.open:
                c.close()
                continue
            try:
                u = socket.create_connection(("127.0.0.1", self.target))
            except OSError:
                c.close()
                continue
            self.conns += [c, u]
            threading.Thread(target=self._pipe, args=(c, u), daemon=True).start()
            threading.Thread(target=self._pipe, args=(u, c), daemon=True).start()

    def down(self):
        self.open = False
        for s in self.conns:
            try:
                s.shutdown(socket.SHUT_RDWR)
                s.close()
            except OSError:
                pass
        self.conns = []

    def up(self):
        self.open = True


def all_confirmed(st, timeout=90):
    deadline = time.time() + timeout
    left = "?"
    while time.time() < deadline:
        left = st.sql("SELECT count(*) FROM records r WHERE NOT EXISTS (SELECT 1 FROM chain_batch_leaves l"
                      " JOIN chain_batches b ON b.id = l.batch_id WHERE l.record_pk = r.id"
                      " AND b.status IN ('confirmed', 'finalized'))")
        if left == "0":
            return
        time.sleep(0.5)
    raise AssertionError(f"{left} records not in a confirmed batch after {timeout}s")


def post_readings(st, dev, seqs):
    for s in seqs:
        code, _, body = dev.post(dev.sign(dev.reading(s)))
        expect(code == 202, f"post {s}: {code} {body}")
    st.wait_rows(f"device_id = '{dev.id}'", len(seqs))


def wait_for(what, fn, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = fn()
        if v:
            return v
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def proofs_verify(st, contract, rpc, device_id):
    for rid in st.sql(f"SELECT encode(record_id, 'hex') FROM records WHERE device_id = '{device_id}'").split():
        s, _, rec = http("GET", st.url + "/v1/records/" + rid)
        expect(s == 200 and rec["leaf"], f"{rid}: {rec}")
        data = calldata("verify(uint64,bytes32[],bytes32)", rec["batch"]["id"], rec["proof"], rec["leaf"])
        expect(abi_words(rpc.call(contract, data))[0][-1] == 1, f"{rid}: proof refused on chain")


def main():
    checks = Checks()
    with Anvil(chain_id=31337, block_time=1) as anvil:
        proxy = Proxy(anvil.port)
        dead = socket.socket()
        dead.bind(("127.0.0.1", 0))
        dead_port = dead.getsockname()[1]
        dead.close()  # nothing listens there: the first endpoint is down from the start
        key = os.path.join(os.environ.get("TMPDIR", "/tmp"), f"lcore-relayer-{os.getpid()}.key")
        with open(key, "w") as f:
            f.write(DEV_KEY + "\n")
        os.chmod(key, 0o600)
        extra = {"LCORE_CHAIN_RPC": f"http://127.0.0.1:{dead_port},http://127.0.0.1:{proxy.port}",
                 "LCORE_CHAIN_ID": "31337", "LCORE_CHAIN_KEY_FILE": key,
                 "LCORE_CHAIN_CONFIRMATIONS": "2", "LCORE_CHAIN_BATCH_WINDOW_MS": "300",
                 "LCORE_CHAIN_BUMP_AFTER_MS": "2000", "LCORE_CHAIN_MAX_INFLIGHT": "1"}
        rpc = Rpc(f"http://127.0.0.1:{anvil.port}")
        try:
            with Stack(workers=1, extra_env=extra) as st:
                contract = st.vars["LCORE_CONTRACT_ADDRESS"]
                dev = Device(st, "faulty")
                expect(dev.register()[0] == 201, "register")
                seq = iter(range(1, 10**6))

                def first_endpoint_down():
                    post_readings(st, dev, [next(seq) for _ in range(20)])
                    all_confirmed(st)
                    failovers = st.metric("LCORE_CHAIN_ADMIN_URL", "lcore_chain_rpc_failovers_total")
                    expect(failovers > 0, f"no failover counted ({failovers}) with the first endpoint down")

                def all_endpoints_down():
                    proxy.down()
                    post_readings(st, dev, [next(seq) for _ in range(20)])
                    wait_for("relayer not ready", lambda: http("GET", st.vars["LCORE_CHAIN_ADMIN_URL"] + "/readyz")[0] == 503,
                             timeout=30)
                    time.sleep(2)
                    proxy.up()
                    all_confirmed(st)
                    proofs_verify(st, contract, rpc, dev.id)

                def fee_rise_bumped():
                    rpc("evm_setIntervalMining", 0)
                    try:
                        post_readings(st, dev, [next(seq) for _ in range(5)])
                        tx = wait_for("a pending anchor", lambda: st.sql(
                            "SELECT id FROM chain_txs WHERE state IN ('in_progress', 'unconfirmed')"
                            " AND block_number IS NULL ORDER BY id DESC LIMIT 1"))
                        first_batch = st.sql(f"SELECT batch_id FROM chain_txs WHERE id = {tx}")
                        # More records arrive while it is stuck: the replacement should carry them.
                        post_readings(st, dev, [next(seq) for _ in range(5)])
                        # Blocks keep coming, but at a base fee the anchor's cap cannot pay.
                        def bumped():
                            rpc("anvil_setNextBlockBaseFeePerGas", hex(3 * GWEI))
                            rpc("evm_mine")
                            n = st.sql(f"SELECT count(*) FROM chain_tx_attempts WHERE tx_id = {tx}")
                            return int(n) >= 2
                        wait_for("a fee bump", bumped, timeout=60)
                        caps = [int(x) for x in st.sql(f"SELECT fee_cap FROM chain_tx_attempts WHERE tx_id = {tx}"
                                                       " ORDER BY id").split()]
                        expect(caps[-1] >= caps[0] * 110 // 100 and caps[-1] >= 3 * GWEI,
                               f"fee caps {caps}: want a >= 10 % bump that pays 3 gwei")
                        batch = st.sql(f"SELECT batch_id FROM chain_txs WHERE id = {tx}")
                        expect(batch != first_batch, "the replacement did not anchor a newer batch")
                        sizes = st.sql(f"SELECT (SELECT leaf_count FROM chain_batches WHERE id = {first_batch}) || ' '"
                                       f" || (SELECT leaf_count FROM chain_batches WHERE id = {batch})").split()
                        expect(int(sizes[1]) > int(sizes[0]), f"replacement batch not larger: {sizes}")
                        wait_for("the bumped anchor mined", lambda: (rpc("anvil_setNextBlockBaseFeePerGas",
                                 hex(3 * GWEI)), rpc("evm_mine"), st.sql(
                                 f"SELECT block_number FROM chain_txs WHERE id = {tx}"))[2])
                    finally:
                        rpc("evm_setIntervalMining", 1)
                    all_confirmed(st)

                def nonce_taken():
                    rpc("evm_setIntervalMining", 0)
                    try:
                        post_readings(st, dev, [next(seq) for _ in range(5)])
                        row = wait_for("a pending anchor", lambda: st.sql(
                            "SELECT id || ' ' || nonce FROM chain_txs WHERE state IN ('in_progress', 'unconfirmed')"
                            " AND block_number IS NULL ORDER BY id DESC LIMIT 1"))
                        tx, nonce = (int(x) for x in row.split())
                        # Someone else with the relayer's key, same nonce, higher fees.
                        rpc("eth_sendTransaction", {"from": RELAYER, "to": RELAYER, "value": "0x0",
                                                    "nonce": hex(nonce), "maxFeePerGas": hex(200 * GWEI),
                                                    "maxPriorityFeePerGas": hex(50 * GWEI), "gas": hex(21000)})
                        rpc("evm_mine")
                    finally:
                        rpc("evm_setIntervalMining", 1)
                    all_confirmed(st)
                    why = st.sql(f"SELECT state || ':' || coalesce(error, '') FROM chain_txs WHERE id = {tx}")
                    expect(why == "fatal_error:nonce used by another transaction", f"tx {tx}: {why}")
                    proofs_verify(st, contract, rpc, dev.id)

                def reorg_reanchored():
                    post_readings(st, dev, [next(seq) for _ in range(5)])
                    tx = wait_for("a mined anchor", lambda: st.sql(
                        "SELECT id FROM chain_txs WHERE block_number IS NOT NULL AND state <> 'fatal_error'"
                        " ORDER BY id DESC LIMIT 1"))
                    block = int(st.sql(f"SELECT block_number FROM chain_txs WHERE id = {tx}"))
                    head = int(rpc("eth_blockNumber"), 16)
                    rpc("anvil_reorg", head - block + 1, [])
                    wait_for("the reorg noticed", lambda: "lcore_chain_reorgs_total 0" not in
                             http("GET", st.vars["LCORE_CHAIN_ADMIN_URL"] + "/metrics")[2], timeout=30)
                    all_confirmed(st)
                    new_block = int(st.sql(f"SELECT block_number FROM chain_txs WHERE id = {tx}"))
                    canon = rpc("eth_getBlockByNumber", hex(new_block), False)["hash"]
                    stored = "0x" + st.sql(f"SELECT encode(block_hash, 'hex') FROM chain_txs WHERE id = {tx}")
                    expect(canon == stored, "the re-anchored batch does not point at the canonical block")
                    proofs_verify(st, contract, rpc, dev.id)

                def orbit_market_mode():
                    # Restart the relayer in market mode (Arbitrum Orbit): resubmit, do not outbid.
                    pid = int(open(os.path.join(st.dir, "run", "chain.pid")).read())
                    os.kill(pid, signal.SIGTERM)
                    wait_for("relayer stopped", lambda: not os.path.exists(f"/proc/{pid}") or
                             open(f"/proc/{pid}/stat").read().split(") ")[1][0] == "Z", timeout=15)
                    st.env["LCORE_CHAIN_FEE_MODE"] = "market"
                    up = subprocess.run([STACK, "up"], env=st.env, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.PIPE, text=True, timeout=120)
                    expect(up.returncode == 0, up.stderr)
                    rpc("evm_setIntervalMining", 0)
                    try:
                        post_readings(st, dev, [next(seq) for _ in range(3)])
                        tx = wait_for("a pending anchor", lambda: st.sql(
                            "SELECT id FROM chain_txs WHERE state IN ('in_progress', 'unconfirmed')"
                            " AND block_number IS NULL ORDER BY id DESC LIMIT 1"))
                        sent0 = st.metric("LCORE_CHAIN_ADMIN_URL", "lcore_chain_transactions_sent_total")
                        time.sleep(5)  # 2.5 x LCORE_CHAIN_BUMP_AFTER_MS, no block, fees unchanged
                        n = st.sql(f"SELECT count(*) FROM chain_tx_attempts WHERE tx_id = {tx}")
                        sent = st.metric("LCORE_CHAIN_ADMIN_URL", "lcore_chain_transactions_sent_total")
                        expect(n == "1" and sent > sent0, f"market mode outbid or did not resend: "
                               f"attempts={n} sent {sent0}->{sent}")
                        def repriced():
                            rpc("anvil_setNextBlockBaseFeePerGas", hex(3 * GWEI))
                            rpc("evm_mine")
                            return int(st.sql(f"SELECT count(*) FROM chain_tx_attempts WHERE tx_id = {tx}")) >= 2
                        wait_for("a market-price resubmission once the base fee rose", repriced)
                        cap = int(st.sql(f"SELECT fee_cap FROM chain_tx_attempts WHERE tx_id = {tx}"
                                         " ORDER BY id DESC LIMIT 1"))
                        expect(cap >= 2 * 3 * GWEI, f"resubmitted below market: fee cap {cap}")
                    finally:
                        rpc("evm_setIntervalMining", 1)
                    all_confirmed(st)

                checks.run("first RPC endpoint down: the second is used", first_endpoint_down)
                checks.run("all RPC endpoints down: relayer not ready, then resumes", all_endpoints_down)
                checks.run("base fee raised while an anchor is pending: bumped >= 10 %, replaced by a larger batch,"
                           " mined", fee_rise_bumped)
                checks.run("nonce taken by another sender: batch re-sent and confirmed", nonce_taken)
                checks.run("reorg of a mined anchor: back to unconfirmed, confirmed again", reorg_reanchored)
                checks.run("Orbit market mode: resent unchanged at market, repriced when the base fee rises",
                           orbit_market_mode)
        finally:
            os.unlink(key)
    checks.done()


if __name__ == "__main__":
    main()
