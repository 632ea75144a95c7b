"""The chain under the relayer changes (issue 14 item 7), against a real anvil and PostgreSQL.

First a `scripts/stack down` / `up` cycle keeps the chain (anvil --state): same genesis, same
contract, not redeployed, and the relayer keeps anchoring. Then the native stack's anvil is replaced by a fresh one (new genesis) and the anchor contract is
deployed again at the same address (same key, nonce 0), as a stack that lost its chain state
did: with anchors already finalized on the old chain (LCORE_CHAIN_FINALITY small), the trigger
that left the relayer replacing transactions forever. Now the relayer
  1. goes not ready, /readyz says why, lcore_chain_identity_mismatch is 1, one log line, and
     sends nothing to the new chain while records keep arriving;
  2. after `lcore-chain adopt-chain`, anchors every record again on the new chain, the old
     anchors kept (abandoned, stamped with the old identity), and GET /v1/records/{id} answers
     with the new chain's anchor, whose proof the new contract verifies;
  3. with no block mined for longer than LCORE_CHAIN_STALL_MS while an anchor waits, is not
     ready and says it is stalled; ready again once blocks come."""
import os
import signal
import subprocess
import time
from urllib.parse import urlparse

from anchoring import anchored_ids, proof_verifies, wait_all_anchored, wait_for
from chain import Anvil, Rpc
from harness import BIN, STACK, Checks, Device, Stack, expect, http, metric_at, readyz

STALL_MS = 4000
ENV = {"LCORE_CHAIN_FINALITY": "3", "LCORE_CHAIN_CONFIRMATIONS": "1",
       "LCORE_CHAIN_ANCHOR_WINDOW_MS": "300", "LCORE_CHAIN_ANCHOR_MAX": "4",
       "LCORE_CHAIN_STALL_MS": str(STALL_MS)}


def post(st, dev, seqs):
    for s in seqs:
        code, _, body = dev.post(dev.sign(dev.reading(s)))
        expect(code == 202, f"post {s}: {code} {body}")


def pid_alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except OSError:
        return False


def chain_env(st, rpc_url):
    state = st.dir
    with open(os.path.join(state, "pg", "chain_dsn")) as f:
        dsn = f.read().strip()
    return dict(st.env, LCORE_PG_DSN=dsn, LCORE_CHAIN_RPC=rpc_url, LCORE_CHAIN_ID="31337",
                LCORE_CHAIN_KEY_FILE=os.path.join(state, "chain.key"),
                LCORE_CONTRACT_ADDRESS=st.vars["LCORE_CONTRACT_ADDRESS"])


def lcore_chain(env, *args):
    return subprocess.run([os.path.join(BIN, "lcore-chain")] + list(args), env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, timeout=120)


def reset_chain(st):
    """Stops the stack's anvil, starts a fresh one (no state) on its port, deploys the contract
    again as the stack does; returns the new Anvil."""
    with open(os.path.join(st.dir, "run", "anvil.pid")) as f:
        pid = int(f.read())
    os.kill(pid, signal.SIGTERM)
    wait_for("the old anvil to exit", lambda: not pid_alive(pid), timeout=30)
    port = urlparse(st.vars["LCORE_CHAIN_RPC"]).port
    anvil = Anvil(port=port, block_time=1).start()
    out = lcore_chain(chain_env(st, anvil.url), "deploy")
    expect(out.returncode == 0, f"deploy: {out.stderr}")
    addr = out.stdout.strip().split("=", 1)[1]
    expect(addr.lower() == st.vars["LCORE_CONTRACT_ADDRESS"].lower(),
           f"redeployed at {addr}, not at the same address {st.vars['LCORE_CONTRACT_ADDRESS']}")
    return anvil


def main():
    checks = Checks()
    with Stack(extra_env=ENV) as st:
        chain_admin = st.vars["LCORE_CHAIN_ADMIN_URL"]
        relayer = lcore_chain(chain_env(st, st.vars["LCORE_CHAIN_RPC"]), "address").stdout.strip()
        dev = Device(st, "chain-id-1")
        expect(dev.register()[0] == 201, "register")
        ctx = {}

        def finalized():
            post(st, dev, range(1, 9))
            wait_all_anchored(st.sql, st.sql, statuses=("finalized",), want=8, timeout=90)
            ctx["old"] = anchored_ids(st.sql, ("finalized",))

        def down_up_keeps_the_chain():
            rpc = Rpc(st.vars["LCORE_CHAIN_RPC"])
            genesis = rpc("eth_getBlockByNumber", "0x0", False)["hash"]
            head = int(rpc("eth_blockNumber"), 16)
            for cmd in ("down", "up"):
                out = subprocess.run([STACK, cmd], env=st.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True, timeout=180)
                expect(out.returncode == 0, f"stack {cmd}: {out.stderr[-2000:]}")
            expect("contract deployed" not in out.stderr, "the contract was deployed again")
            expect(f"LCORE_CONTRACT_ADDRESS={st.vars['LCORE_CONTRACT_ADDRESS']}" in out.stdout, "another contract")
            expect(rpc("eth_getBlockByNumber", "0x0", False)["hash"] == genesis, "another genesis after up")
            expect(int(rpc("eth_blockNumber"), 16) >= head, "the chain went back across down/up")
            post(st, dev, range(9, 11))
            wait_all_anchored(st.sql, st.sql, want=10, timeout=60)
            expect(readyz(chain_admin)[0] == 200, "the relayer is not ready after down/up")
            expect(st.sql("SELECT count(*) FROM chain_identity") == "1", "the chain identity changed")

        def mismatch_is_loud_and_sends_nothing():
            rpc = ctx["anvil"].rpc
            s, body = wait_for("/readyz to say the chain changed",
                               lambda: (lambda r: r if r[0] == 503 and "identity" in r[1] else None)(readyz(chain_admin)))
            expect("genesis" in body and "adopt-chain" in body, f"/readyz does not say why: {body}")
            expect(metric_at(chain_admin, "lcore_chain_identity_mismatch") == 1, "mismatch gauge not 1")
            sent = metric_at(chain_admin, "lcore_chain_transactions_sent_total")
            # Records keep arriving (and are taken in) while the relayer waits for the operator.
            post(st, dev, range(11, 14))
            wait_for("the new records taken in", lambda: st.sql(
                "SELECT count(*) FROM chain_records") == "13", timeout=60)
            expect(readyz(chain_admin)[0] == 503, "ready again without adopt-chain")
            expect(metric_at(chain_admin, "lcore_chain_transactions_sent_total") == sent,
                   "the relayer sent transactions while the chain did not match")
            nonce = int(rpc("eth_getTransactionCount", relayer, "pending"), 16)
            expect(nonce == 1, f"the relayer's nonce on the new chain is {nonce}, not 1 (the deployment)")

        def adopt_reanchors_everything():
            rpc, contract = ctx["anvil"].rpc, st.vars["LCORE_CONTRACT_ADDRESS"]
            out = lcore_chain(chain_env(st, ctx["anvil"].url), "adopt-chain")
            expect(out.returncode == 0 and "abandoned" in out.stdout, f"adopt-chain: {out.stdout} {out.stderr}")
            stored = wait_all_anchored(st.sql, st.sql, want=13, timeout=90)
            expect(ctx["old"] <= stored, "records of the old chain missing")
            wait_for("/readyz 200", lambda: readyz(chain_admin)[0] == 200, timeout=30)
            expect(metric_at(chain_admin, "lcore_chain_identity_mismatch") == 0, "mismatch gauge not 0")
            twice = st.sql("SELECT count(*) FROM (SELECT arrival FROM anchor_leaves l JOIN anchors b"
                           " ON b.id = l.anchor_id WHERE b.status NOT IN ('superseded', 'abandoned')"
                           " GROUP BY 1 HAVING count(*) > 1) x")
            expect(twice == "0", f"{twice} records in more than one live anchor")
            kept = st.sql("SELECT count(*) FROM anchors WHERE status = 'abandoned' AND chain_identity ="
                          " (SELECT id FROM chain_identity WHERE retired_at IS NOT NULL)")
            expect(int(kept) >= 2, f"the old chain's anchors were not kept as abandoned ({kept})")
            for rid in stored:
                s, _, rec = st.read("/v1/records/" + rid)
                expect(s == 200 and rec["status"] in ("confirmed", "finalized"), f"{rid}: {s} {rec}")
                receipt = rpc("eth_getTransactionReceipt", rec["batch"]["tx_hash"])
                expect(receipt and int(receipt["status"], 16) == 1,
                       f"{rid}: its anchor transaction is not on the new chain")
                expect(proof_verifies(rpc, contract, rec), f"{rid}: the new contract refuses its proof")
            with open(os.path.join(st.dir, "log", "chain.log")) as f:
                lines = [ln for ln in f if "chain_identity_mismatch" in ln]
            expect(len(lines) == 1, f"{len(lines)} chain_identity_mismatch lines, want 1 (rate-limited)")

        def stall_is_not_ready():
            rpc = ctx["anvil"].rpc
            rpc("evm_setIntervalMining", 0)  # nothing is mined any more: the next anchor waits
            try:
                post(st, dev, [14])
                s, body = wait_for("/readyz to say stalled", lambda: (lambda r: r if r[0] == 503 else None)(
                    readyz(chain_admin)), timeout=STALL_MS / 1000 + 30)
                expect("stalled" in body, f"/readyz does not say stalled: {body}")
                last = metric_at(chain_admin, "lcore_chain_last_progress_timestamp_seconds")
                expect(time.time() - last >= STALL_MS / 1000, f"last progress {time.time() - last:.1f}s ago")
                expect(metric_at(chain_admin, "lcore_chain_pending_transactions") >= 1, "no pending anchor")
            finally:
                rpc("evm_setIntervalMining", 1)
            wait_all_anchored(st.sql, st.sql, want=14, timeout=60)
            wait_for("/readyz 200 after blocks come", lambda: readyz(chain_admin)[0] == 200, timeout=30)

        def reset():
            ctx["anvil"] = reset_chain(st)

        checks.run("anchors finalized", finalized)
        checks.run("stack down/up keeps the chain and the contract", down_up_keeps_the_chain)
        checks.run("the chain is reset and the contract redeployed at its address", reset)
        checks.run("the relayer stops loudly and sends nothing", mismatch_is_loud_and_sends_nothing)
        checks.run("adopt-chain re-anchors every record on the new chain", adopt_reanchors_everything)
        checks.run("a relayer that cannot progress is not ready", stall_is_not_ready)
        if "anvil" in ctx:
            ctx["anvil"].stop()
    checks.done()


if __name__ == "__main__":
    main()
