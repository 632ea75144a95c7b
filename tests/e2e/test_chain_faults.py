"""Chain relayer under faults, against a real anvil: fees rising while an anchor is pending, the
relayer's nonce taken by another sender, a reorg of mined anchors, the first RPC endpoint down,
and every endpoint down; receipts that lag behind the account's nonce, a database that lost track
of a mined anchor (the contract already holds an anchor the database calls pending), and an anchor id
another sender used for a root of its own. After each, every stored record ends in exactly one
confirmed anchor, and what the contract holds agrees with the database."""
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
import json
import os
import signal
import socket
import subprocess
import threading
import time
import urllib.request

from anchoring import wait_for
from chain import Anvil, Rpc, abi_words, calldata, topic
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


class RpcProxy:
    """A JSON-RPC forwarder in front of anvil that can answer eth_getTransactionReceipt with null,
    as a node does that counts a block's nonces before it serves the block's receipts (anvil, for
    an instant) or a load-balanced endpoint whose receipts come from a node some blocks behind."""

    def __init__(self, target_port):
        target = f"http://127.0.0.1:{target_port}"
        proxy = self
        self.hide_receipts = False
        self.hidden = 0

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as the relayer's libcurl expects

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                req = json.loads(body)
                if proxy.hide_receipts and req.get("method") == "eth_getTransactionReceipt":
                    proxy.hidden += 1
                    out = json.dumps({"jsonrpc": "2.0", "id": req.get("id"), "result": None}).encode()
                else:
                    r = urllib.request.Request(target, data=body, headers={"Content-Type": "application/json"})
                    with urllib.request.urlopen(r, timeout=30) as resp:
                        out = resp.read()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def all_confirmed(st, timeout=90):
    deadline = time.time() + timeout
    left = "?"
    while time.time() < deadline:
        left = st.sql("SELECT count(*) FROM records r WHERE NOT EXISTS (SELECT 1 FROM chain_records c"
                      " JOIN anchor_leaves l ON l.arrival = c.arrival"
                      " JOIN anchors b ON b.id = l.anchor_id WHERE c.record_id = r.record_id"
                      " AND b.status IN ('confirmed', 'finalized'))")
        if left == "0":
            return
        time.sleep(0.5)
    raise AssertionError(f"{left} records not in a confirmed anchor after {timeout}s")


def post_readings(st, dev, seqs):
    for s in seqs:
        code, _, body = dev.post(dev.sign(dev.reading(s)))
        expect(code == 202, f"post {s}: {code} {body}")
    st.wait_rows(f"device_id = '{dev.id}'", len(seqs))


ANCHORED = topic("Anchored(uint64,bytes32,uint32)")


def anchored_on_chain(rpc, contract):
    """{anchor id: [root hex, ...]} from every Anchored event of the contract."""
    out = {}
    for log in rpc("eth_getLogs", {"address": contract, "topics": [ANCHORED], "fromBlock": "0x0",
                                   "toBlock": "latest"}):
        out.setdefault(int(log["topics"][1], 16), []).append(log["topics"][2][2:])
    return out


def exactly_once(st, rpc, contract, foreign_roots=()):
    """Every record is a leaf of exactly one live anchor, and that anchor is confirmed; every
    Anchored event (but the test's own, foreign_roots) is a live anchor of the database with the
    same root, the contract holds that root under that anchor id, and the relayer sent no anchor
    id or record twice on chain."""
    twice = st.sql("SELECT count(*) FROM (SELECT l.arrival FROM anchor_leaves l JOIN anchors b"
                   " ON b.id = l.anchor_id WHERE b.status <> 'superseded' GROUP BY 1 HAVING count(*) > 1) x")
    expect(twice == "0", f"{twice} records are in more than one live anchor")
    all_confirmed(st, timeout=30)
    db = {int(i): (r, status) for i, r, status in
          (line.split("|") for line in st.sql("SELECT id, encode(root, 'hex'), status FROM anchors").split())}
    for anchor_id, roots in anchored_on_chain(rpc, contract).items():
        ours = [r for r in roots if r not in foreign_roots]
        expect(len(ours) <= 1, f"anchor {anchor_id} anchored {len(ours)} times by the relayer")
        if not ours:
            continue
        expect(anchor_id in db and db[anchor_id][0] == ours[0],
               f"anchor {anchor_id} anchored on chain with a root the database does not have for it")
        expect(db[anchor_id][1] in ("anchored", "confirmed", "finalized"),
               f"anchor {anchor_id} anchored on chain but {db[anchor_id][1]} in the database")
        held = abi_words(rpc.call(contract, calldata("anchors(bytes32)", "0x" + ours[0])))
        expect(int.from_bytes(held[0], "big") == anchor_id and int.from_bytes(held[1], "big") > 0,
               f"anchor {anchor_id}: the contract does not hold its root under its id")
    # A record anchored twice on chain would sit in two anchors, both on chain: so no superseded anchor
    # may have its root held by the contract.
    for anchor_id, (root, status) in db.items():
        if status == "superseded":
            plus1 = int(rpc.call(contract, calldata("rootBatch(bytes32)", "0x" + root)), 16)
            expect(plus1 == 0 or (db.get(plus1 - 1, ("", ""))[0] == root and db[plus1 - 1][1] != "superseded"),
                   f"superseded anchor {anchor_id}'s root is anchored as anchor {plus1 - 1}")


def stop_relayer(st, kill=signal.SIGTERM):
    pid = int(open(os.path.join(st.dir, "run", "chain.pid")).read())
    os.kill(pid, kill)
    wait_for("relayer stopped", lambda: not os.path.exists(f"/proc/{pid}") or
             open(f"/proc/{pid}/stat").read().split(") ")[1][0] == "Z", timeout=15)


def start_relayer(st):
    """scripts/stack up: starts the relayer again and waits until it is ready. The contract is
    named: with a list of endpoints in LCORE_CHAIN_RPC, `up` cannot check the recorded one (it
    asks the first endpoint only, here a dead one) and would deploy a new contract."""
    st.env["LCORE_CONTRACT_ADDRESS"] = st.vars["LCORE_CONTRACT_ADDRESS"]
    up = subprocess.run([STACK, "up"], env=st.env, stdout=subprocess.DEVNULL,
                        stderr=subprocess.PIPE, text=True, timeout=120)
    expect(up.returncode == 0, up.stderr)


def proofs_verify(st, contract, rpc, device_id):
    for rid in st.sql(f"SELECT encode(record_id, 'hex') FROM records WHERE device_id = '{device_id}'").split():
        s, _, rec = st.read("/v1/records/" + rid)
        expect(s == 200 and rec["leaf"], f"{rid}: {rec}")
        data = calldata("verify(bytes32,bytes32[],bytes32)", rec["batch"]["root"], rec["proof"], rec["leaf"])
        expect(abi_words(rpc.call(contract, data))[0][-1] == 1, f"{rid}: proof refused on chain")


def as_operator(st, sql):
    """sql as an operator repairing the relayer's tables while it is stopped: the anchor tables
    take writes from the relayer lease's holder only, so the lease is taken for the transaction
    (at the next epoch) and given back expired, for the relayer to take at once."""
    st.sql("BEGIN; UPDATE relayer_lease SET holder = 'operator', epoch = epoch + 1,"
           " expires_at = now() + interval '1 minute';"
           " SELECT set_config('lcore.lease_holder', 'operator', true),"
           " set_config('lcore.lease_epoch', (SELECT epoch::text FROM relayer_lease), true);"
           f" {sql}; UPDATE relayer_lease SET expires_at = now(); COMMIT;")


def main():
    checks = Checks()
    with Anvil(chain_id=31337, block_time=1) as anvil:
        rpc_proxy = RpcProxy(anvil.port)
        proxy = Proxy(rpc_proxy.port)
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
                 "LCORE_CHAIN_CONFIRMATIONS": "2", "LCORE_CHAIN_ANCHOR_WINDOW_MS": "300",
                 "LCORE_CHAIN_BUMP_AFTER_MS": "2000", "LCORE_CHAIN_MAX_INFLIGHT": "1"}
        rpc = Rpc(f"http://127.0.0.1:{anvil.port}")
        try:
            with Stack(workers=1, extra_env=extra) as st:
                contract = st.vars["LCORE_CONTRACT_ADDRESS"]
                dev = Device(st, "faulty")
                expect(dev.register()[0] == 201, "register")
                seq = iter(range(1, 10**6))
                foreign_roots = set()  # anchored by the test itself, not by the relayer

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
                            "SELECT id FROM anchor_txs WHERE state IN ('in_progress', 'unconfirmed')"
                            " AND block_number IS NULL ORDER BY id DESC LIMIT 1"))
                        first_anchor = st.sql(f"SELECT anchor_id FROM anchor_txs WHERE id = {tx}")
                        # More records arrive while it is stuck: the replacement should carry them.
                        post_readings(st, dev, [next(seq) for _ in range(5)])
                        # Blocks keep coming, but at a base fee the anchor's cap cannot pay.
                        def bumped():
                            rpc("anvil_setNextBlockBaseFeePerGas", hex(3 * GWEI))
                            rpc("evm_mine")
                            n = st.sql(f"SELECT count(*) FROM anchor_tx_attempts WHERE tx_id = {tx}")
                            return int(n) >= 2
                        wait_for("a fee bump", bumped, timeout=60)
                        caps = [int(x) for x in st.sql(f"SELECT fee_cap FROM anchor_tx_attempts WHERE tx_id = {tx}"
                                                       " ORDER BY id").split()]
                        expect(caps[-1] >= caps[0] * 110 // 100 and caps[-1] >= 3 * GWEI,
                               f"fee caps {caps}: want a >= 10 % bump that pays 3 gwei")
                        anchor = st.sql(f"SELECT anchor_id FROM anchor_txs WHERE id = {tx}")
                        expect(anchor != first_anchor, "the replacement did not send a newer anchor")
                        sizes = st.sql(f"SELECT (SELECT leaf_count FROM anchors WHERE id = {first_anchor}) || ' '"
                                       f" || (SELECT leaf_count FROM anchors WHERE id = {anchor})").split()
                        expect(int(sizes[1]) > int(sizes[0]), f"replacement anchor not larger: {sizes}")
                        wait_for("the bumped anchor mined", lambda: (rpc("anvil_setNextBlockBaseFeePerGas",
                                 hex(3 * GWEI)), rpc("evm_mine"), st.sql(
                                 f"SELECT block_number FROM anchor_txs WHERE id = {tx}"))[2])
                    finally:
                        rpc("evm_setIntervalMining", 1)
                    all_confirmed(st)

                def nonce_taken():
                    rpc("evm_setIntervalMining", 0)
                    try:
                        post_readings(st, dev, [next(seq) for _ in range(5)])
                        row = wait_for("a pending anchor", lambda: st.sql(
                            "SELECT id || ' ' || nonce FROM anchor_txs WHERE state IN ('in_progress', 'unconfirmed')"
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
                    why = st.sql(f"SELECT state || ':' || coalesce(error, '') FROM anchor_txs WHERE id = {tx}")
                    expect(why == "fatal_error:nonce used by another transaction", f"tx {tx}: {why}")
                    proofs_verify(st, contract, rpc, dev.id)

                def reorg_reanchored():
                    post_readings(st, dev, [next(seq) for _ in range(5)])
                    tx = wait_for("a mined anchor", lambda: st.sql(
                        "SELECT id FROM anchor_txs WHERE block_number IS NOT NULL AND state <> 'fatal_error'"
                        " ORDER BY id DESC LIMIT 1"))
                    block = int(st.sql(f"SELECT block_number FROM anchor_txs WHERE id = {tx}"))
                    head = int(rpc("eth_blockNumber"), 16)
                    rpc("anvil_reorg", head - block + 1, [])
                    wait_for("the reorg noticed", lambda: "lcore_chain_reorgs_total 0" not in
                             http("GET", st.vars["LCORE_CHAIN_ADMIN_URL"] + "/metrics")[2], timeout=30)
                    all_confirmed(st)
                    new_block = int(st.sql(f"SELECT block_number FROM anchor_txs WHERE id = {tx}"))
                    canon = rpc("eth_getBlockByNumber", hex(new_block), False)["hash"]
                    stored = "0x" + st.sql(f"SELECT encode(block_hash, 'hex') FROM anchor_txs WHERE id = {tx}")
                    expect(canon == stored, "the anchor sent again does not point at the canonical block")
                    proofs_verify(st, contract, rpc, dev.id)

                def receipts_lag_nonce():
                    # The node counts the anchor's nonce as used but serves no receipt for it yet.
                    # Taken for a nonce stolen by another sender, the anchor would be sent again and
                    # refused by the contract forever (RootAlreadyAnchored), its records never
                    # confirmed.
                    stolen0 = st.metric("LCORE_CHAIN_ADMIN_URL", "lcore_chain_nonce_conflicts_total")
                    rpc_proxy.hide_receipts = True
                    try:
                        seqs = [next(seq) for _ in range(5)]
                        post_readings(st, dev, seqs)
                        tx = wait_for("an anchor for the new records", lambda: st.sql(
                            "SELECT t.id FROM anchor_txs t JOIN anchor_leaves l ON l.anchor_id = t.anchor_id"
                            " JOIN chain_records c ON c.arrival = l.arrival"
                            f" JOIN records r ON r.record_id = c.record_id WHERE r.device_id = '{dev.id}'"
                            f" AND r.seq = {seqs[-1]} ORDER BY t.id DESC LIMIT 1"))
                        hashes = st.sql(f"SELECT encode(hash, 'hex') FROM anchor_tx_attempts WHERE tx_id = {tx}").split()
                        block = wait_for("the anchor mined", lambda: next(
                            (int(r["blockNumber"], 16) for r in (rpc("eth_getTransactionReceipt", "0x" + h)
                                                                 for h in hashes) if r), None))
                        # Blocks go by with the receipt still hidden: more than the relayer needs to
                        # call the nonce taken (the confirmation depth).
                        wait_for("6 more blocks", lambda: int(rpc("eth_blockNumber"), 16) >= block + 6, timeout=30)
                        expect(rpc_proxy.hidden > 0, "the relayer never asked for a receipt")
                    finally:
                        rpc_proxy.hide_receipts = False
                    all_confirmed(st)
                    state = st.sql(f"SELECT state || ' ' || coalesce(block_number, 0) FROM anchor_txs WHERE id = {tx}")
                    expect(state.split()[0] in ("confirmed", "finalized") and int(state.split()[1]) == block,
                           f"tx {tx}: {state}, mined in block {block}")
                    stolen = st.metric("LCORE_CHAIN_ADMIN_URL", "lcore_chain_nonce_conflicts_total")
                    expect(stolen == stolen0, f"nonce conflicts {stolen0} -> {stolen}: our own anchor taken for theft")
                    exactly_once(st, rpc, contract)

                def lost_mined_anchor(forget):
                    # The state the relayer was found stuck in: an anchor on chain while the
                    # database calls it pending, with no live transaction (forget="fatal": its
                    # transaction given up on; forget="rows": no trace of it, as after restoring an
                    # older backup). The relayer, restarted, reconciles from the chain: the mined
                    # transaction is tracked to confirmation, the anchor is not sent again.
                    post_readings(st, dev, [next(seq) for _ in range(5)])
                    all_confirmed(st)
                    row = st.sql("SELECT t.id || ' ' || t.anchor_id || ' ' || t.block_number || ' '"
                                 " || encode(t.mined_hash, 'hex') FROM anchor_txs t WHERE t.block_number"
                                 " IS NOT NULL AND t.state <> 'fatal_error' ORDER BY t.id DESC LIMIT 1")
                    tx, anchor, block, mined = row.split()
                    stop_relayer(st, signal.SIGKILL)
                    if forget == "fatal":
                        as_operator(st, f"UPDATE anchor_txs SET state = 'fatal_error', error = 'nonce used"
                                    f" by another transaction', mined_hash = NULL, block_number = NULL,"
                                    f" block_hash = NULL, gas_used = NULL, effective_gas_price = NULL"
                                    f" WHERE id = {tx}")
                    else:
                        as_operator(st, f"DELETE FROM anchor_tx_attempts WHERE tx_id = {tx};"
                                    f" DELETE FROM anchor_txs WHERE id = {tx}")
                    as_operator(st, f"UPDATE anchors SET status = 'pending', confirmed_at = NULL WHERE id = {anchor}")
                    start_relayer(st)
                    post_readings(st, dev, [next(seq) for _ in range(5)])  # and work goes on
                    all_confirmed(st)
                    state = st.sql(f"SELECT t.state || ' ' || t.block_number || ' ' || encode(t.mined_hash, 'hex')"
                                   f" FROM anchor_txs t WHERE t.anchor_id = {anchor} AND t.state <> 'fatal_error'")
                    expect(state.split()[1:] == [block, mined] and state.split()[0] in ("confirmed", "finalized"),
                           f"anchor {anchor}: tx {state!r}, want the one mined in block {block} (0x{mined})")
                    reconciled = st.metric("LCORE_CHAIN_ADMIN_URL", "lcore_chain_anchors_reconciled_total")
                    expect(reconciled >= 1, "lcore_chain_anchors_reconciled_total of the restarted relayer is 0")
                    exactly_once(st, rpc, contract)
                    proofs_verify(st, contract, rpc, dev.id)

                def anchor_id_taken():
                    # Another sender with our key and contract (should not happen) anchors a root of
                    # its own under the next anchor id. The contract keys anchors by root, not by
                    # anchor id: the relayer's anchor with that id still gets its own root on chain, its
                    # records confirm and verify, and that is no conflict.
                    all_confirmed(st)
                    conflicts0 = st.metric("LCORE_CHAIN_ADMIN_URL", "lcore_chain_anchor_conflicts_total")
                    nxt = int(st.sql("SELECT last_value + 1 FROM anchors_id_seq"))
                    foreign = os.urandom(32).hex()
                    foreign_roots.add(foreign)
                    rc = rpc.send(RELAYER, contract, calldata("anchor(uint64,bytes32,uint32)", nxt, "0x" + foreign, 1))
                    expect(int(rc["status"], 16) == 1, f"anchor() under anchor id {nxt} from the test failed")
                    post_readings(st, dev, [next(seq) for _ in range(5)])
                    all_confirmed(st)
                    status, root = st.sql(f"SELECT status || ' ' || encode(root, 'hex') FROM anchors"
                                          f" WHERE id = {nxt}").split()
                    expect(status in ("confirmed", "finalized"), f"anchor {nxt} is {status!r}, want confirmed")
                    roots = anchored_on_chain(rpc, contract).get(nxt, [])
                    expect(sorted(roots) == sorted([foreign, root]),
                           f"anchor id {nxt} on chain: {roots}, want the test's root and the relayer's")
                    conflicts = st.metric("LCORE_CHAIN_ADMIN_URL", "lcore_chain_anchor_conflicts_total")
                    expect(conflicts == conflicts0, f"lcore_chain_anchor_conflicts_total {conflicts0} -> {conflicts}")
                    exactly_once(st, rpc, contract, foreign_roots={foreign})
                    proofs_verify(st, contract, rpc, dev.id)

                def orbit_market_mode():
                    # Restart the relayer in market mode (Arbitrum Orbit): resubmit, do not outbid.
                    stop_relayer(st)
                    st.env["LCORE_CHAIN_FEE_MODE"] = "market"
                    start_relayer(st)
                    rpc("evm_setIntervalMining", 0)
                    try:
                        post_readings(st, dev, [next(seq) for _ in range(3)])
                        tx = wait_for("a pending anchor", lambda: st.sql(
                            "SELECT id FROM anchor_txs WHERE state IN ('in_progress', 'unconfirmed')"
                            " AND block_number IS NULL ORDER BY id DESC LIMIT 1"))
                        sent0 = st.metric("LCORE_CHAIN_ADMIN_URL", "lcore_chain_transactions_sent_total")
                        time.sleep(5)  # 2.5 x LCORE_CHAIN_BUMP_AFTER_MS, no block, fees unchanged
                        n = st.sql(f"SELECT count(*) FROM anchor_tx_attempts WHERE tx_id = {tx}")
                        sent = st.metric("LCORE_CHAIN_ADMIN_URL", "lcore_chain_transactions_sent_total")
                        expect(n == "1" and sent > sent0, f"market mode outbid or did not resend: "
                               f"attempts={n} sent {sent0}->{sent}")
                        def repriced():
                            rpc("anvil_setNextBlockBaseFeePerGas", hex(3 * GWEI))
                            rpc("evm_mine")
                            return int(st.sql(f"SELECT count(*) FROM anchor_tx_attempts WHERE tx_id = {tx}")) >= 2
                        wait_for("a market-price resubmission once the base fee rose", repriced)
                        cap = int(st.sql(f"SELECT fee_cap FROM anchor_tx_attempts WHERE tx_id = {tx}"
                                         " ORDER BY id DESC LIMIT 1"))
                        expect(cap >= 2 * 3 * GWEI, f"resubmitted below market: fee cap {cap}")
                    finally:
                        rpc("evm_setIntervalMining", 1)
                    all_confirmed(st)

                checks.run("first RPC endpoint down: the second is used", first_endpoint_down)
                checks.run("all RPC endpoints down: relayer not ready, then resumes", all_endpoints_down)
                checks.run("base fee raised while an anchor is pending: bumped >= 10 %, replaced by a larger anchor,"
                           " mined", fee_rise_bumped)
                checks.run("nonce taken by another sender: anchor re-sent and confirmed", nonce_taken)
                checks.run("reorg of a mined anchor: back to unconfirmed, confirmed again", reorg_reanchored)
                checks.run("receipts lagging behind the nonce: the mined anchor is not taken for a stolen"
                           " nonce, and is confirmed", receipts_lag_nonce)
                checks.run("anchor on chain, pending in the database, its transaction given up on:"
                           " reconciled after a restart, not anchored twice", lambda: lost_mined_anchor("fatal"))
                checks.run("anchor on chain by a transaction the database never saw: adopted, not"
                           " anchored twice", lambda: lost_mined_anchor("rows"))
                checks.run("anchor id used on chain for another root: the relayer's anchor holds its own root"
                           " under it, no conflict", anchor_id_taken)
                checks.run("Orbit market mode: resent unchanged at market, repriced when the base fee rises",
                           orbit_market_mode)
                checks.run("every record in exactly one confirmed anchor, the contract agrees with the database",
                           lambda: exactly_once(st, rpc, contract, foreign_roots=foreign_roots))
        finally:
            os.unlink(key)
            rpc_proxy.close()
    checks.done()


if __name__ == "__main__":
    main()
