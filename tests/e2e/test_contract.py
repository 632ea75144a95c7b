"""The anchor contract (contracts/LcoreAnchor.sol) on a real anvil: the committed artifact rebuilds
byte for byte, its selectors are the ones the C relayer hardcodes, and anchor / verify /
verifyRoot / submitData / access control behave as specified, checked over JSON-RPC."""
import hashlib
import os
import subprocess
import tempfile

from chain import (SRC, Anvil, MerkleTree, RpcError, abi_encode, abi_words, calldata, hx,
                   keccak256, load_artifact, process_proof, record_leaf, selector, topic)
from harness import Checks, expect

KC_CHAIN_ID = 1205614515668104  # KC-Chain's id: the test node uses it, so big ids are exercised

# What the C relayer hardcodes: these must never change silently.
FUNCTIONS = {
    "anchor(uint64,bytes32,uint32)": "0xa149a214",
    "batches(uint64)": "0x8232e389",
    "isAnchored(uint64)": "0xff50fc88",
    "rootBatch(bytes32)": "0x45fbe1d5",
    "verify(uint64,bytes32[],bytes32)": "0x2b70778a",
    "verifyRoot(bytes32,bytes32[],bytes32)": "0x62dfcd75",
    "submitData(bytes32,bytes32)": "0x43aae943",
    "relayer()": "0x8406c079",
    "owner()": "0x8da5cb5b",
    "setRelayer(address)": "0x6548e9bc",
    "transferOwnership(address)": "0xf2fde38b",
}
EVENTS = {
    "Anchored(uint64,bytes32,uint32,uint64)": "0x8793074368be91a525adc9674ce5d276344daf66db6422e0d1f8a368470c941c",
    "DataSubmitted(bytes32,bytes32,address,uint256)":
        "0xec70c264faf58c174b16bb610917a7875c26cd28b61073a3f87375ffd03470f3",
}
ERRORS = {
    "AlreadyAnchored(uint64)": "0xc1d04bb3",
    "RootAlreadyAnchored(bytes32,uint64)": "0x040a0202",
    "NotRelayer(address)": "0x366b2e5a",
    "NotOwner(address)": "0x245aecd3",
    "EmptyRoot()": "0x53ce4ece",
    "EmptyBatch()": "0xc2e5347d",
}

# A vector made with @openzeppelin/merkle-tree 1.0.8:
#   StandardMerkleTree.of([[sha256("record-i"), sha256("envelope-i")] for i in 0..4], ["bytes32","bytes32"])
OZ_ROOT = "0x4dc018ed7f761b8445fc0ce9f0911a6b473d93efce9c2449a1ad1e1384101fc4"
OZ_LEAF_1 = "0xa5a89eb211ccf18897c2848b2a48af8706ee0915ec80c8d5191614b4c9d77450"
OZ_PROOF_1 = ["0x74a9ffa87ee7e7b98bf8f6fd1baa8747edeb9893927c09969b9512822c3189c0",
              "0xed100338e097f198800aecf375d320ee21327e29dd9c88fc7935cbf159ce8154",
              "0xa62b3bc1abd1c36918e0287c603749bde0f3b72e11e7df856d9638cb79f9da1a"]


def oz_values():
    return [(hashlib.sha256(b"record-%d" % i).digest(), hashlib.sha256(b"envelope-%d" % i).digest())
            for i in range(5)]


def rand32():
    return os.urandom(32)


def word(v):
    return v.to_bytes(32, "big") if isinstance(v, int) else bytes(12) + bytes.fromhex(v[2:])


def error_data(signature, types=(), values=()):
    return selector(signature) + abi_encode(list(types), list(values))


def main():
    checks = Checks()
    art = load_artifact()

    # -- offline ----------------------------------------------------------------------------
    def keccak_vectors():
        expect(keccak256(b"").hex() == "c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470",
               "keccak256('')")
        expect(keccak256(b"abc").hex() == "4e03657aea45a94fc7d47ba826c8d667c0d1e6e33a64a036ec44f58fa12d6c45",
               "keccak256('abc')")
        expect(selector("transfer(address,uint256)").hex() == "a9059cbb", "ERC-20 transfer selector")

    def artifact_reproducible():
        with tempfile.TemporaryDirectory(prefix="lcore-contract-") as out:
            res = subprocess.run(["node", os.path.join(SRC, "contracts", "build.js"), "--out", out],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=120)
            expect(res.returncode == 0, f"contracts/build.js failed: {res.stderr}")
            for name in ("LcoreAnchor.json", "selectors.txt"):
                with open(os.path.join(out, name), "rb") as f:
                    rebuilt = f.read()
                with open(os.path.join(SRC, "contracts", name), "rb") as f:
                    committed = f.read()
                expect(rebuilt == committed, f"contracts/{name} differs from a rebuild: run node contracts/build.js")
        expect(art["compiler"].startswith("0.8.37+"), f"compiler {art['compiler']}")
        expect(art["evmVersion"] == "paris", f"evmVersion {art['evmVersion']}")
        expect(art["bytecode"].startswith("0x60") and art["deployedBytecode"].startswith("0x60"), "bytecode")

    def selectors_pinned():
        got = art["methodIdentifiers"]
        for sig, sel in FUNCTIONS.items():
            expect(got.get(sig) == sel, f"{sig}: artifact {got.get(sig)}, relayer expects {sel}")
            expect(hx(selector(sig)) == sel, f"{sig}: keccak gives {hx(selector(sig))}")
        for sig, t in EVENTS.items():
            expect(art["eventTopics"].get(sig) == t and topic(sig) == t, f"event {sig}")
        for sig, sel in ERRORS.items():
            expect(art["errorSelectors"].get(sig) == sel and hx(selector(sig)) == sel, f"error {sig}")
        with open(os.path.join(SRC, "contracts", "selectors.txt")) as f:
            text = f.read()
        for sig, sel in list(FUNCTIONS.items()) + list(EVENTS.items()) + list(ERRORS.items()):
            expect(f"{sel} {sig}\n" in text, f"selectors.txt lacks {sel} {sig}")

    def oz_vector():
        leaves = [record_leaf(r, e) for r, e in oz_values()]
        tree = MerkleTree(leaves)
        expect(hx(tree.root) == OZ_ROOT, f"root {hx(tree.root)} != OpenZeppelin's {OZ_ROOT}")
        expect(hx(leaves[1]) == OZ_LEAF_1, "leaf formula differs from StandardMerkleTree.leafHash")
        expect([hx(p) for p in tree.proof(leaves[1])] == OZ_PROOF_1, "proof differs from OpenZeppelin's")
        for leaf in leaves:
            expect(process_proof(tree.proof(leaf), leaf) == tree.root, "a proof does not verify")

    checks.run("keccak256 known answers (pure Python)", keccak_vectors)
    checks.run("committed artifact rebuilds byte for byte", artifact_reproducible)
    checks.run("selectors, event topics and error selectors as the relayer hardcodes them", selectors_pinned)
    checks.run("Merkle tree and leaf match @openzeppelin/merkle-tree", oz_vector)

    # -- on a real anvil ---------------------------------------------------------------------
    node = Anvil(chain_id=KC_CHAIN_ID)
    node.start()
    rpc = node.rpc
    owner, relayer, other = rpc.accounts()[:3]
    st = {}

    def call(data, frm=None):
        return rpc.call(st["addr"], data, frm)

    def expect_revert(data, frm, want, what):
        """eth_call must revert with exactly `want`; a mined transaction must fail (status 0) and
        change nothing."""
        try:
            rpc.call(st["addr"], data, frm)
        except RpcError as e:
            got = e.revert_data()
            expect(got == want, f"{what}: revert data {hx(got) if got else e} != {hx(want)}")
        else:
            raise AssertionError(f"{what}: eth_call did not revert")
        rc = rpc.send(frm, st["addr"], data, gas=300000)
        expect(int(rc["status"], 16) == 0, f"{what}: mined transaction succeeded")
        expect(not rc["logs"], f"{what}: a reverted transaction logged {rc['logs']}")

    def anchor(batch_id, root, count, frm=None):
        rc = rpc.send(frm or relayer, st["addr"], calldata("anchor(uint64,bytes32,uint32)", batch_id, root, count))
        expect(int(rc["status"], 16) == 1, f"anchor({batch_id}) failed: {rc}")
        return rc

    def verify(batch_id, proof, leaf):
        out = call(calldata("verify(uint64,bytes32[],bytes32)", batch_id, proof, leaf))
        return int(out, 16) == 1

    def verify_root(root, proof, leaf):
        out = call(calldata("verifyRoot(bytes32,bytes32[],bytes32)", root, proof, leaf))
        return int(out, 16) == 1

    def web3_sha3():
        for data in (b"", b"abc", os.urandom(300)):
            got = rpc("web3_sha3", hx(data))
            expect(got == hx(keccak256(data)), f"web3_sha3 {got} != local keccak256")
        expect(int(rpc("eth_chainId"), 16) == KC_CHAIN_ID, "chain id")

    def deploy():
        st["addr"], rc = rpc.deploy(owner, art["bytecode"], ["address"], [relayer])
        print(f"deployed at {st['addr']}, gas {int(rc['gasUsed'], 16)}", flush=True)
        code = rpc("eth_getCode", st["addr"], "latest")
        expect(code == art["deployedBytecode"], "on-chain code differs from the artifact's deployedBytecode")
        expect(call(calldata("owner()")) == hx(word(owner.lower())), "owner is the deployer")
        expect(call(calldata("relayer()")) == hx(word(relayer.lower())), "relayer is account 1")
        try:
            rpc.deploy(owner, art["bytecode"], ["address"], ["0x" + "00" * 20])
        except (RpcError, RuntimeError):
            pass
        else:
            raise AssertionError("deployment with relayer 0 succeeded")

    def anchor_by_relayer():
        leaves = [record_leaf(rand32(), rand32()) for _ in range(7)]
        tree = MerkleTree(leaves)
        st["tree"], st["leaves"] = tree, leaves
        batch_id = 7
        expect(int(call(calldata("isAnchored(uint64)", batch_id)), 16) == 0, "isAnchored before anchor")
        rc = anchor(batch_id, tree.root, len(leaves))
        gas = int(rc["gasUsed"], 16)
        st["gas"] = gas
        print(f"anchor() gas used: {gas}", flush=True)
        expect(gas < 100000, f"anchor() used {gas} gas, want well under 100k")
        block = rpc("eth_getBlockByNumber", rc["blockNumber"], False)
        ts = int(block["timestamp"], 16)
        expect(len(rc["logs"]) == 1, f"{len(rc['logs'])} logs")
        log = rc["logs"][0]
        expect(log["address"].lower() == st["addr"].lower(), "log from another address")
        want_topics = [EVENTS["Anchored(uint64,bytes32,uint32,uint64)"], hx(word(batch_id)), hx(tree.root)]
        expect(log["topics"] == want_topics, f"Anchored topics {log['topics']} != {want_topics}")
        expect(log["data"] == hx(word(len(leaves)) + word(ts)), f"Anchored data {log['data']}")
        w = abi_words(call(calldata("batches(uint64)", batch_id)))
        expect(w[0] == tree.root, "batches().root")
        expect(int.from_bytes(w[1], "big") == len(leaves), "batches().count")
        expect(int.from_bytes(w[2], "big") == int(rc["blockNumber"], 16), "batches().blockNumber")
        expect(int.from_bytes(w[3], "big") == ts, "batches().timestamp")
        expect(int(call(calldata("isAnchored(uint64)", batch_id)), 16) == 1, "isAnchored after anchor")
        expect(int(call(calldata("rootBatch(bytes32)", tree.root)), 16) == batch_id + 1, "rootBatch = id + 1")
        expect(int(call(calldata("rootBatch(bytes32)", rand32())), 16) == 0, "rootBatch of unknown root")
        w = abi_words(call(calldata("batches(uint64)", 8)))
        expect(all(x == bytes(32) for x in w), "batches() of an unknown id is all zero")
        # batch id 0 and the largest usable id work too
        anchor(0, rand32(), 1)
        anchor(2**64 - 2, rand32(), 2**32 - 1)

    def anchor_access():
        data = calldata("anchor(uint64,bytes32,uint32)", 100, rand32(), 3)
        expect_revert(data, other, error_data("NotRelayer(address)", ["address"], [other]), "anchor by account 2")
        expect_revert(data, owner, error_data("NotRelayer(address)", ["address"], [owner]), "anchor by the owner")
        expect(int(call(calldata("isAnchored(uint64)", 100)), 16) == 0, "refused anchor stored something")

    def anchor_twice():
        data = calldata("anchor(uint64,bytes32,uint32)", 7, rand32(), 3)
        expect_revert(data, relayer, error_data("AlreadyAnchored(uint64)", ["uint64"], [7]), "same batch id again")
        data = calldata("anchor(uint64,bytes32,uint32)", 101, st["tree"].root, 7)
        expect_revert(data, relayer, error_data("RootAlreadyAnchored(bytes32,uint64)", ["bytes32", "uint64"],
                                                [st["tree"].root, 7]), "same root, new batch id")
        expect_revert(calldata("anchor(uint64,bytes32,uint32)", 102, bytes(32), 3), relayer,
                      error_data("EmptyRoot()"), "zero root")
        expect_revert(calldata("anchor(uint64,bytes32,uint32)", 102, rand32(), 0), relayer,
                      error_data("EmptyBatch()"), "zero count")
        w = abi_words(call(calldata("batches(uint64)", 7)))
        expect(w[0] == st["tree"].root, "batch 7 changed by a refused anchor")

    def proofs():
        tree, leaves = st["tree"], st["leaves"]
        for leaf in leaves:
            proof = tree.proof(leaf)
            expect(verify(7, proof, leaf), "verify(valid proof) is false")
            expect(verify_root(tree.root, proof, leaf), "verifyRoot(valid proof) is false")
        leaf, proof = leaves[3], tree.proof(leaves[3])
        bad_leaf = bytes([leaf[0] ^ 1]) + leaf[1:]
        expect(not verify(7, proof, bad_leaf), "verify accepts a tampered leaf")
        expect(not verify_root(tree.root, proof, bad_leaf), "verifyRoot accepts a tampered leaf")
        bad_proof = list(proof)
        bad_proof[1] = bytes([bad_proof[1][0] ^ 0x80]) + bad_proof[1][1:]
        expect(not verify(7, bad_proof, leaf), "verify accepts a tampered sibling")
        expect(not verify_root(tree.root, bad_proof, leaf), "verifyRoot accepts a tampered sibling")
        expect(not verify(7, proof[:-1], leaf), "verify accepts a truncated proof")
        expect(not verify(8, proof, leaf), "verify against a batch never anchored")
        expect(not verify(0, proof, leaf), "verify against another batch's root")
        # a consistent tree that was never anchored
        other_leaves = [record_leaf(rand32(), rand32()) for _ in range(4)]
        other_tree = MerkleTree(other_leaves)
        p = other_tree.proof(other_leaves[0])
        expect(process_proof(p, other_leaves[0]) == other_tree.root, "local proof")
        expect(not verify_root(other_tree.root, p, other_leaves[0]), "verifyRoot of an unknown root")
        # one-leaf batch: root = leaf, empty proof
        single = record_leaf(rand32(), rand32())
        anchor(20, single, 1)
        expect(verify(20, [], single) and verify_root(single, [], single), "one-leaf batch")
        expect(not verify(20, [], rand32()), "one-leaf batch, other leaf")
        # the OpenZeppelin vector, anchored and checked by the contract
        anchor(21, bytes.fromhex(OZ_ROOT[2:]), 5)
        expect(verify(21, OZ_PROOF_1, OZ_LEAF_1), "contract rejects the OpenZeppelin proof")
        expect(verify_root(OZ_ROOT, OZ_PROOF_1, OZ_LEAF_1), "verifyRoot rejects the OpenZeppelin proof")

    def submit_data():
        data_hash, device_hash = rand32(), rand32()
        rc = rpc.send(relayer, st["addr"], calldata("submitData(bytes32,bytes32)", data_hash, device_hash))
        expect(int(rc["status"], 16) == 1, "submitData failed")
        print(f"submitData() gas used: {int(rc['gasUsed'], 16)}", flush=True)
        ts = int(rpc("eth_getBlockByNumber", rc["blockNumber"], False)["timestamp"], 16)
        log = rc["logs"][0]
        want = [EVENTS["DataSubmitted(bytes32,bytes32,address,uint256)"], hx(data_hash), hx(device_hash),
                hx(word(relayer.lower()))]
        expect(log["topics"] == want, f"DataSubmitted topics {log['topics']}")
        expect(log["data"] == hx(word(ts)), "DataSubmitted timestamp")
        expect_revert(calldata("submitData(bytes32,bytes32)", data_hash, device_hash), other,
                      error_data("NotRelayer(address)", ["address"], [other]), "submitData by account 2")

    def relayer_rotation():
        expect_revert(calldata("setRelayer(address)", other), other,
                      error_data("NotOwner(address)", ["address"], [other]), "setRelayer by account 2")
        expect_revert(calldata("setRelayer(address)", other), relayer,
                      error_data("NotOwner(address)", ["address"], [relayer]), "setRelayer by the relayer")
        rc = rpc.send(owner, st["addr"], calldata("setRelayer(address)", other))
        expect(int(rc["status"], 16) == 1, "setRelayer by the owner failed")
        expect(call(calldata("relayer()")) == hx(word(other.lower())), "relayer not changed")
        data = calldata("anchor(uint64,bytes32,uint32)", 30, rand32(), 1)
        expect_revert(data, relayer, error_data("NotRelayer(address)", ["address"], [relayer]), "old relayer")
        anchor(30, rand32(), 1, frm=other)
        rc = rpc.send(owner, st["addr"], calldata("setRelayer(address)", relayer))
        expect(int(rc["status"], 16) == 1, "setRelayer back failed")

    try:
        checks.run("anvil answers web3_sha3 like the local Keccak", web3_sha3)
        checks.run("deploy the committed bytecode (relayer = account 1)", deploy)
        checks.run("anchor() by the relayer stores the batch and emits Anchored", anchor_by_relayer)
        checks.run("anchor() by any other account reverts NotRelayer", anchor_access)
        checks.run("anchor() of a known batch id or root, zero root or count reverts", anchor_twice)
        checks.run("verify/verifyRoot: valid proofs true; tampered or unknown false", proofs)
        checks.run("submitData() emits DataSubmitted (per-record mode)", submit_data)
        checks.run("only the owner rotates the relayer", relayer_rotation)
    finally:
        proc = node.proc
        node.stop()

    def anvil_stopped():
        expect(proc.poll() is not None, "anvil still running after stop")

    checks.run("anvil stopped", anvil_stopped)
    checks.done()


if __name__ == "__main__":
    main()
