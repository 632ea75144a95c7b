"""Receipts end to end (docs/RECEIPTS.md): GET /v1/records/{id}/receipt on a real stack with a real
anvil; the receipt verifies with lcore-cli verify given only the RPC URL (no database, no lcore
service variables) and with OpenZeppelin's merkle-tree + ethers alone (verify_receipt.js); a
tampered copy fails both; malformed ids get 400, unknown ones 404, a stored record whose anchor is
not mined yet 409 not_anchored."""
import json
import os
import subprocess

from anchoring import wait_for
from chain import Rpc
from harness import BIN, Checks, Device, Stack, expect, http

HERE = os.path.dirname(os.path.abspath(__file__))
FIELDS = {"format", "record_id", "envelope_hash", "leaf", "proof", "root", "anchor_id", "chain_id",
          "contract", "tx_hash", "block"}


def flip(h):
    return h[:-1] + ("0" if h[-1] != "0" else "1")


def main():
    checks = Checks()
    extra = {"LCORE_CHAIN_CONFIRMATIONS": "1", "LCORE_CHAIN_ANCHOR_WINDOW_MS": "500",
             "LCORE_ANVIL_BLOCK_TIME": "1"}
    with Stack(workers=1, extra_env=extra) as st:
        rpc_url = st.vars["LCORE_CHAIN_RPC"]
        rpc = Rpc(rpc_url)
        dev = Device(st, "receipts-1")
        expect(dev.register()[0] == 201, "register")
        state = {}

        def receipt_url(rid):
            return "/v1/records/" + rid + "/receipt"

        def verifiers(receipt):
            """(lcore-cli verify, verify_receipt.js) on one receipt file: [(exit code, output)]."""
            path = os.path.join(st.dir, "receipt.json")
            with open(path, "w") as f:
                json.dump(receipt, f)
            # Nothing of the stack: no database DSN, no contract address, no lcore keys.
            env = {k: v for k, v in os.environ.items() if not k.startswith("LCORE_") or k == "LCORE_TOOLS_DIR"}
            runs = [[os.path.join(BIN, "lcore-cli"), "verify", "--receipt", path, "--rpc", rpc_url],
                    ["node", os.path.join(HERE, "verify_receipt.js"), path, "--rpc", rpc_url]]
            outs = []
            for argv in runs:
                out = subprocess.run(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     timeout=60)
                outs.append((out.returncode, out.stdout + out.stderr))
            return outs

        def anchored_receipt():
            signed = [dev.sign(dev.reading(seq)) for seq in range(1, 4)]  # posted together: one anchor
            for jws in signed:
                s, _, body = dev.post(jws)
                expect(s == 202, f"post {s} {body}")
                state.setdefault("rids", []).append(body["record_id"])
            got = {rid: wait_for("the receipt", lambda rid=rid: (lambda a: a[2] if a[0] == 200 else None)(
                st.read(receipt_url(rid))), timeout=40) for rid in state["rids"]}
            # The one with the longest proof, so that tampering with a proof element is tested.
            rid, rec = max(got.items(), key=lambda kv: len(kv[1]["proof"]))
            expect(rec["proof"], f"three readings posted together, each alone in its anchor: {got}")
            expect(set(rec) == FIELDS, f"receipt fields {sorted(rec)}")
            expect(rec["format"] == "lcore-receipt/1" and rec["record_id"] == "0x" + rid, f"receipt {rec}")
            expect(all(rec[k].startswith("0x") for k in ("record_id", "envelope_hash", "leaf", "root", "contract",
                                                         "tx_hash")), f"0x-hex {rec}")
            expect(rec["chain_id"] == int(rpc("eth_chainId"), 16), f"chain_id {rec['chain_id']}")
            expect(rec["contract"].lower() == st.vars["LCORE_CONTRACT_ADDRESS"].lower(), f"contract {rec}")
            expect(isinstance(rec["block"], int) and isinstance(rec["anchor_id"], int), f"numbers {rec}")
            s, _, full = st.read("/v1/records/" + rid)
            expect(s == 200 and full["leaf"] == rec["leaf"] and full["proof"] == rec["proof"]
                   and full["batch"]["root"] == rec["root"] and full["batch"]["tx_hash"] == rec["tx_hash"],
                   f"receipt disagrees with GET /v1/records: {full}")
            state["receipt"] = rec

        def both_verify():
            for code, out in verifiers(state["receipt"]):
                expect(code == 0 and out.startswith("VERIFIED"), f"verify: {code} {out}")

        def tampered_fail():
            rec = state["receipt"]
            forged = {"envelope_hash": dict(rec, envelope_hash=flip(rec["envelope_hash"])),
                      "leaf": dict(rec, leaf=flip(rec["leaf"])),
                      "root": dict(rec, root=flip(rec["root"])),
                      "record_id": dict(rec, record_id=flip(rec["record_id"])),
                      "tx_hash": dict(rec, tx_hash=flip(rec["tx_hash"])),
                      "chain_id": dict(rec, chain_id=rec["chain_id"] + 1)}
            forged["proof[0]"] = dict(rec, proof=[flip(rec["proof"][0])] + rec["proof"][1:])
            for what, receipt in forged.items():
                for code, out in verifiers(receipt):
                    expect(code == 1 and "NOT VERIFIED" in out, f"altered {what}: {code} {out}")

        def bad_ids():
            rid = state["rids"][0]
            for bad in (rid[:-1], rid + "0", "zz" + rid[2:], "0x" + rid[:-2], "-"):
                s, _, body = st.read(receipt_url(bad))
                expect(s == 400 and body.get("error") == "malformed", f"{bad}: {s} {body}")
            s, _, body = st.read(receipt_url("0x" + rid))
            expect(s == 200 and body["record_id"] == "0x" + rid, f"0x id: {s} {body}")
            s, _, body = st.read(receipt_url("ab" * 32))
            expect(s == 404 and body.get("error") == "not_found", f"unknown: {s} {body}")
            s, _, body = http("POST", st.url + receipt_url(rid), "")
            expect(s == 405, f"POST: {s} {body}")

        def not_anchored_409():
            rpc("evm_setIntervalMining", 0)
            try:
                s, _, body = dev.post(dev.sign(dev.reading(10)))
                expect(s == 202, f"post {s} {body}")
                rid = body["record_id"]
                wait_for("stored", lambda: st.read("/v1/records/" + rid)[2].get("status") == "stored",
                         timeout=20)
                s, _, body = st.read(receipt_url(rid))
                expect(s == 409 and body.get("error") == "not_anchored", f"not anchored: {s} {body}")
            finally:
                rpc("evm_setIntervalMining", 1)
            wait_for("anchored after mining resumed",
                     lambda: st.read(receipt_url(rid))[0] == 200, timeout=30)

        checks.run("an anchored record's receipt: exactly the documented fields, agreeing with GET /v1/records",
                   anchored_receipt)
        checks.run("the receipt verifies with lcore-cli (RPC only) and with OpenZeppelin merkle-tree + ethers",
                   both_verify)
        checks.run("a tampered receipt (envelope_hash, leaf, root, record_id, tx_hash, chain_id, proof) fails both",
                   tampered_fail)
        checks.run("malformed ids 400, unknown 404, POST 405", bad_ids)
        checks.run("a stored record whose anchor is not mined: 409 not_anchored, then 200", not_anchored_409)
    checks.done()


if __name__ == "__main__":
    main()
