"""The anchor contract (contracts/LcoreAnchor.sol) on a real anvil: the committed artifact rebuilds
byte for byte, its selectors are the ones the C relayer hardcodes, and anchor / anchors /
rootBatch / verify / submitData / access control behave as specified, checked over JSON-RPC;
anchor() of 1000 records costs at most 50 gas per record."""
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
    "anchors(bytes32)": "0xb01b6d53",
    "rootBatch(bytes32)": "0x45fbe1d5",
    "verify(bytes32,bytes32[],bytes32)": "0x0a02831c",
    "submitData(bytes32,bytes32)": "0x43aae943",
    "relayer()": "0x8406c079",
    "owner()": "0x8da5cb5b",
    "setRelayer(address)": "0x6548e9bc",
    "transferOwnership(address)": "0xf2fde38b",
}
EVENTS = {
    "Anchored(uint64,bytes32,uint32)": "0x1435ec9a26e23f62ab84d767929d3de26da5d513b160935557a4d8d2149af9fd",
    "DataSubmitted(bytes32,bytes32,address,uint256)":
        "0xec70c264faf58c174b16bb610917a7875c26cd28b61073a3f87375ffd03470f3",
}
ERRORS = {
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
        # The interface is exactly this: nothing left of the one keyed by anchor id.
        for sig in ("batches(uint64)", "isAnchored(uint64)", "verify(uint64,bytes32[],bytes32)",
                    "verifyRoot(bytes32,bytes32[],bytes32)"):
            expect(sig not in got, f"{sig} still in the artifact")
        expect("AlreadyAnchored(uint64)" not in art["errorSelectors"], "AlreadyAnchored still in the artifact")
        expect(len(got) == len(FUNCTIONS), f"functions {sorted(got)}")

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

    def anchor(anchor_id, root, count, frm=None):
        rc = rpc.send(frm or relayer, st["addr"], calldata("anchor(uint64,bytes32,uint32)", anchor_id, root, count))
        expect(int(rc["status"], 16) == 1, f"anchor({anchor_id}) failed: {rc}")
        return rc

    def verify(root, proof, leaf):
        out = call(calldata("verify(bytes32,bytes32[],bytes32)", root, proof, leaf))
        expect(out in (hx(word(0)), hx(word(1))), f"verify returned {out}")
        return int(out, 16) == 1

    def anchors(root):
        """anchors(root) as (batchId, count, blockNumber, timestamp)."""
        w = abi_words(call(calldata("anchors(bytes32)", root)))
        expect(len(w) == 4, f"anchors() returned {len(w)} words")
        return tuple(int.from_bytes(x, "big") for x in w)

    def root_batch(root):
        return int(call(calldata("rootBatch(bytes32)", root)), 16)

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
        anchor_id = 7
        expect(anchors(tree.root) == (0, 0, 0, 0) and root_batch(tree.root) == 0, "root known before anchor")
        rc = anchor(anchor_id, tree.root, len(leaves))
        gas = int(rc["gasUsed"], 16)
        print(f"anchor() gas used: {gas}", flush=True)
        block = rpc("eth_getBlockByNumber", rc["blockNumber"], False)
        ts = int(block["timestamp"], 16)
        expect(len(rc["logs"]) == 1, f"{len(rc['logs'])} logs")
        log = rc["logs"][0]
        expect(log["address"].lower() == st["addr"].lower(), "log from another address")
        want_topics = [EVENTS["Anchored(uint64,bytes32,uint32)"], hx(word(anchor_id)), hx(tree.root)]
        expect(log["topics"] == want_topics, f"Anchored topics {log['topics']} != {want_topics}")
        expect(log["data"] == hx(word(len(leaves))), f"Anchored data {log['data']}")
        got = anchors(tree.root)
        want = (anchor_id, len(leaves), int(rc["blockNumber"], 16), ts)
        expect(got == want, f"anchors() = {got}, want (batchId, count, block, timestamp) {want}")
        expect(root_batch(tree.root) == anchor_id + 1, "rootBatch = id + 1")
        expect(root_batch(rand32()) == 0, "rootBatch of unknown root")
        expect(anchors(rand32()) == (0, 0, 0, 0), "anchors() of an unknown root is all zero")
        # anchor id 0 and the largest usable id work too; and the values at the top of each
        # packed field come back whole
        zero_root = st["zero_root"] = rand32()
        anchor(0, zero_root, 1)
        expect(anchors(zero_root)[:2] == (0, 1) and root_batch(zero_root) == 1, "anchor id 0")
        top_root = rand32()
        rc = anchor(2**64 - 2, top_root, 2**32 - 1)
        expect(anchors(top_root)[:3] == (2**64 - 2, 2**32 - 1, int(rc["blockNumber"], 16)), "largest id and count")
        expect(root_batch(top_root) == 2**64 - 1, "rootBatch of the largest id")
        # 2^64 - 1 cannot be stored as id + 1: refused (checked arithmetic: Panic(0x11)), nothing
        # stored
        big = rand32()
        expect_revert(calldata("anchor(uint64,bytes32,uint32)", 2**64 - 1, big, 1), relayer,
                      selector("Panic(uint256)") + word(0x11), "anchor id 2^64 - 1")
        expect(anchors(big) == (0, 0, 0, 0), "a refused anchor stored something")

    def anchor_gas():
        # The target: <= 50 gas per record at 1000 records an anchor, i.e. one anchor() <= 50,000 gas
        # (receipt gasUsed, a fresh root: the one storage slot it writes is a fresh one).
        used = {}
        for i, n in enumerate((1, 1000)):
            root = MerkleTree([record_leaf(rand32(), rand32()) for _ in range(n)]).root
            used[n] = int(anchor(1000 + i, root, n)["gasUsed"], 16)
            print(f"anchor() of {n} records: {used[n]} gas = {used[n] / n:.1f} gas/record", flush=True)
        expect(used[1000] <= 50000, f"anchor() of 1000 records used {used[1000]} gas, want <= 50,000")
        # The cost is per anchor: only the call data's bytes differ with the count.
        expect(abs(used[1000] - used[1]) <= 100, f"gas by anchor size {used}")

    def anchor_access():
        root = rand32()
        data = calldata("anchor(uint64,bytes32,uint32)", 100, root, 3)
        expect_revert(data, other, error_data("NotRelayer(address)", ["address"], [other]), "anchor by account 2")
        expect_revert(data, owner, error_data("NotRelayer(address)", ["address"], [owner]), "anchor by the owner")
        expect(anchors(root) == (0, 0, 0, 0), "refused anchor stored something")

    def anchor_twice():
        root = st["tree"].root
        before = anchors(root)
        # The same root again, under its own anchor id or another one: refused, naming the id
        # that holds it.
        for anchor_id in (7, 101):
            expect_revert(calldata("anchor(uint64,bytes32,uint32)", anchor_id, root, 7), relayer,
                          error_data("RootAlreadyAnchored(bytes32,uint64)", ["bytes32", "uint64"], [root, 7]),
                          f"same root again as anchor {anchor_id}")
        expect_revert(calldata("anchor(uint64,bytes32,uint32)", 102, bytes(32), 3), relayer,
                      error_data("EmptyRoot()"), "zero root")
        expect_revert(calldata("anchor(uint64,bytes32,uint32)", 102, rand32(), 0), relayer,
                      error_data("EmptyBatch()"), "zero count")
        expect(anchors(root) == before, "anchor 7 changed by a refused anchor")
        # Anchor ids are not keys: another root under anchor id 7 is anchored, and both stay.
        again = rand32()
        rc = anchor(7, again, 2)
        expect(anchors(again)[:3] == (7, 2, int(rc["blockNumber"], 16)), "a second root under anchor id 7")
        expect(anchors(root) == before, "the first root of anchor 7 changed")

    def proofs():
        tree, leaves = st["tree"], st["leaves"]
        for leaf in leaves:
            expect(verify(tree.root, tree.proof(leaf), leaf), "verify(valid proof) is false")
        leaf, proof = leaves[3], tree.proof(leaves[3])
        bad_leaf = bytes([leaf[0] ^ 1]) + leaf[1:]
        expect(not verify(tree.root, proof, bad_leaf), "verify accepts a tampered leaf")
        bad_proof = list(proof)
        bad_proof[1] = bytes([bad_proof[1][0] ^ 0x80]) + bad_proof[1][1:]
        expect(not verify(tree.root, bad_proof, leaf), "verify accepts a tampered sibling")
        expect(not verify(tree.root, proof[:-1], leaf), "verify accepts a truncated proof")
        expect(not verify(st["zero_root"], proof, leaf), "verify against another anchor's root")
        # a consistent tree that was never anchored
        other_leaves = [record_leaf(rand32(), rand32()) for _ in range(4)]
        other_tree = MerkleTree(other_leaves)
        p = other_tree.proof(other_leaves[0])
        expect(process_proof(p, other_leaves[0]) == other_tree.root, "local proof")
        expect(not verify(other_tree.root, p, other_leaves[0]), "verify of a root never anchored")
        # one-leaf anchor: root = leaf, empty proof
        single = record_leaf(rand32(), rand32())
        expect(not verify(single, [], single), "one-leaf root before it is anchored")
        anchor(20, single, 1)
        expect(verify(single, [], single), "one-leaf anchor")
        expect(not verify(single, [], rand32()), "one-leaf anchor, other leaf")
        # the OpenZeppelin vector, anchored and checked by the contract
        anchor(21, bytes.fromhex(OZ_ROOT[2:]), 5)
        expect(verify(OZ_ROOT, OZ_PROOF_1, OZ_LEAF_1), "contract rejects the OpenZeppelin proof")

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
        checks.run("anchor() by the relayer stores the anchor under its root and emits Anchored", anchor_by_relayer)
        checks.run("anchor() of a fresh root with 1000 records uses <= 50,000 gas (50 gas/record)", anchor_gas)
        checks.run("anchor() by any other account reverts NotRelayer", anchor_access)
        checks.run("anchor() of a known root, zero root or count reverts; an anchor id may repeat", anchor_twice)
        checks.run("verify(root, proof, leaf): valid proofs true; tampered or unknown root false", proofs)
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
