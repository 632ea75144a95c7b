"""The relayer's keys against a real anvil (no stack needed).

1. lcore-chain's list of public development keys is anvil's: eth_accounts returns exactly the
   ten addresses of the keys anvil prints, `lcore-chain address` derives the same address from
   each, and lcore-chain refuses every one of them (exit 2, one line naming the variable) unless
   LCORE_CHAIN_ID is 31337, while a fresh key is not refused.
2. The contract's owner is a key apart from the relayer's hot key: `lcore-chain deploy` with
   LCORE_CHAIN_OWNER_KEY_FILE deploys as the owner with the relayer key's address as relayer;
   the relayer anchors, nobody else does (NotRelayer); `lcore-cli set-relayer` signed by a
   non-owner is refused (NotOwner) and changes nothing; signed by the owner it moves the relayer:
   relayer() changes, the old relayer's anchor reverts NotRelayer, the new one's is mined."""
import os
import re
import subprocess
import tempfile

from chain import Anvil, RpcError, abi_words, calldata, selector
from harness import BIN, Checks, expect

KC_CHAIN_ID = "1205614515668104"


def run(exe, args, env, timeout=60):
    full = {k: v for k, v in os.environ.items() if not k.startswith("LCORE_")}
    full.update(env)
    return subprocess.run([os.path.join(BIN, exe)] + list(args), env=full, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, timeout=timeout)


def key_file(directory, name, hex_key):
    path = os.path.join(directory, name)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(hex_key + "\n")
    return path


def anvil_private_keys(log_path):
    """The private keys anvil printed at start, in account order."""
    with open(log_path) as f:
        text = f.read()
    section = text.split("Private Keys", 1)[1].split("Wallet", 1)[0]
    return [k.lower() for k in re.findall(r"\(\d+\)\s+0x([0-9a-fA-F]{64})", section)]


def main():
    checks = Checks()
    work = tempfile.mkdtemp(prefix="lcore-chain-keys-")
    with Anvil(chain_id=31337) as anvil:
        rpc = anvil.rpc
        accounts = [a.lower() for a in rpc.accounts()]
        keys = anvil_private_keys(anvil.log_path)
        state = {}

        def dev_keys_are_anvils():
            expect(len(accounts) == 10, f"eth_accounts returned {len(accounts)} accounts")
            expect(len(keys) == 10, f"anvil printed {len(keys)} private keys")
            for i, k in enumerate(keys):
                out = run("lcore-chain", ["address"], {"LCORE_CHAIN_KEY_FILE": key_file(work, "k", k)})
                expect(out.returncode == 0, f"address {i}: {out.stderr[-300:]}")
                expect(out.stdout.strip().lower() == accounts[i],
                       f"key {i} is {out.stdout.strip()}, eth_accounts[{i}] {accounts[i]}")

        def dev_keys_refused_off_anvil():
            for i, k in enumerate(keys):
                env = {"LCORE_CHAIN_KEY_FILE": key_file(work, "k", k), "LCORE_CHAIN_ID": KC_CHAIN_ID,
                       "LCORE_CHAIN_RPC": anvil.url, "LCORE_CONTRACT_ADDRESS": "0x" + "11" * 20,
                       "LCORE_CHAIN_ADMIN_PORT": "1"}
                for args in ([], ["deploy"]):
                    out = run("lcore-chain", args, env, timeout=20)
                    lines = [ln for ln in out.stderr.splitlines() if "development key" in ln]
                    expect(out.returncode == 2, f"key {i} {args}: exit {out.returncode}")
                    expect(len(lines) == 1 and "LCORE_CHAIN_KEY_FILE" in lines[0] and
                           "LCORE_CHAIN_ID=31337" in lines[0] and accounts[i] in lines[0].lower(),
                           f"key {i} {args}: {out.stderr[-400:]}")
                    expect(k not in out.stderr.lower(), "the key itself is in the message")
            # As the owner key too.
            env = {"LCORE_CHAIN_KEY_FILE": state["relayer_key"], "LCORE_CHAIN_ID": KC_CHAIN_ID,
                   "LCORE_CHAIN_OWNER_KEY_FILE": key_file(work, "k", keys[0]),
                   "LCORE_CHAIN_RPC": anvil.url}
            out = run("lcore-chain", ["deploy"], env, timeout=20)
            expect(out.returncode == 2 and "LCORE_CHAIN_OWNER_KEY_FILE holds a public anvil" in out.stderr,
                   f"owner dev key: exit {out.returncode} {out.stderr[-300:]}")

        def fresh_key_not_refused():
            # Its own key on the wrong chain: refused for the chain id mismatch, not as a dev key.
            env = {"LCORE_CHAIN_KEY_FILE": state["relayer_key"], "LCORE_CHAIN_ID": KC_CHAIN_ID,
                   "LCORE_CHAIN_RPC": anvil.url}
            out = run("lcore-chain", ["deploy"], env, timeout=30)
            expect(out.returncode == 1 and "development key" not in out.stderr and
                   f"RPC chain id 31337, LCORE_CHAIN_ID {KC_CHAIN_ID}" in out.stderr,
                   f"exit {out.returncode}: {out.stderr[-300:]}")

        # Fresh owner, relayer and next-relayer keys, funded on anvil; anchors are signed by
        # anvil itself for unlocked accounts, so the relayers are impersonated for the test.
        names = ("owner", "relayer", "next", "stranger")
        for name in names:
            path = os.path.join(work, name + ".key")
            out = run("lcore-chain", ["keygen"], {"LCORE_CHAIN_KEY_FILE": path})
            expect(out.returncode == 0, f"keygen {name}: {out.stderr[-300:]}")
            state[name + "_key"] = path
            state[name] = out.stdout.strip()
            rpc("anvil_setBalance", state[name], hex(10 ** 21))
            rpc("anvil_impersonateAccount", state[name])
        not_relayer = selector("NotRelayer(address)")
        not_owner = selector("NotOwner(address)")

        def read_address(fn):
            return "0x" + abi_words(rpc.call(state["contract"], calldata(fn)))[0][-20:].hex()

        def anchor(frm, n):
            data = calldata("anchor(uint64,bytes32,uint32)", n, bytes([n]) * 32, 1)
            try:
                rpc.call(state["contract"], data, frm=frm)
            except RpcError as e:
                return e.revert_data()
            rc = rpc.send(frm, state["contract"], data)
            return int(rc["status"], 16)

        def deploy_with_owner():
            env = {"LCORE_CHAIN_KEY_FILE": state["relayer_key"], "LCORE_CHAIN_ID": "31337",
                   "LCORE_CHAIN_OWNER_KEY_FILE": state["owner_key"], "LCORE_CHAIN_RPC": anvil.url}
            out = run("lcore-chain", ["deploy"], env)
            m = re.search(r"^LCORE_CONTRACT_ADDRESS=(0x[0-9a-fA-F]{40})$", out.stdout, re.M)
            expect(out.returncode == 0 and m, f"deploy: exit {out.returncode} {out.stderr[-400:]}")
            state["contract"] = m.group(1)
            expect(read_address("owner()") == state["owner"].lower(), "owner() is not the owner key")
            expect(read_address("relayer()") == state["relayer"].lower(),
                   "relayer() is not the relayer key")

        def only_relayer_anchors():
            expect(anchor(state["relayer"], 1) == 1, "the relayer's anchor was not mined")
            got = anchor(state["owner"], 2)
            expect(isinstance(got, bytes) and got[:4] == not_relayer, f"owner anchor: {got}")

        def set_relayer_by_non_owner_refused():
            env = {"LCORE_CHAIN_OWNER_KEY_FILE": state["relayer_key"], "LCORE_CHAIN_RPC": anvil.url,
                   "LCORE_CONTRACT_ADDRESS": state["contract"], "LCORE_CHAIN_ID": "31337"}
            out = run("lcore-cli", ["set-relayer", state["next"]], env)
            expect(out.returncode == 1 and "NotOwner" in out.stderr,
                   f"exit {out.returncode}: {out.stdout} {out.stderr[-300:]}")
            expect(read_address("relayer()") == state["relayer"].lower(), "relayer changed")
            try:  # the contract itself says so, too
                rpc.call(state["contract"], calldata("setRelayer(address)", state["next"]),
                         frm=state["stranger"])
                raise AssertionError("setRelayer by a stranger did not revert")
            except RpcError as e:
                expect((e.revert_data() or b"")[:4] == not_owner, f"revert {e}")

        def set_relayer_by_owner_moves_it():
            env = {"LCORE_CHAIN_OWNER_KEY_FILE": state["owner_key"], "LCORE_CHAIN_RPC": anvil.url,
                   "LCORE_CONTRACT_ADDRESS": state["contract"], "LCORE_CHAIN_ID": "31337"}
            out = run("lcore-cli", ["set-relayer", state["next"]], env)
            expect(out.returncode == 0, f"exit {out.returncode}: {out.stdout} {out.stderr[-300:]}")
            m = re.search(r"^tx (0x[0-9a-f]{64})$", out.stdout, re.M)
            expect(m, f"no tx hash printed: {out.stdout}")
            rc = rpc("eth_getTransactionReceipt", m.group(1))
            expect(rc and int(rc["status"], 16) == 1 and rc["from"].lower() == state["owner"].lower(),
                   f"receipt {rc}")
            expect(read_address("relayer()") == state["next"].lower(), "relayer() did not change")
            got = anchor(state["relayer"], 3)
            expect(isinstance(got, bytes) and got[:4] == not_relayer, f"old relayer anchor: {got}")
            expect(anchor(state["next"], 4) == 1, "the new relayer's anchor was not mined")

        checks.run("anvil's eth_accounts are the ten keys it prints (lcore-chain address)",
                   dev_keys_are_anvils)
        checks.run("lcore-chain refuses each anvil key (run, deploy, owner) off chain 31337",
                   dev_keys_refused_off_anvil)
        checks.run("a key of its own is not taken for a development key", fresh_key_not_refused)
        checks.run("deploy: owner key owns, relayer key relays", deploy_with_owner)
        if "contract" in state:
            checks.run("only the relayer anchors (NotRelayer for the owner)", only_relayer_anchors)
            checks.run("set-relayer signed by a non-owner: NotOwner, nothing changes",
                       set_relayer_by_non_owner_refused)
            checks.run("set-relayer by the owner: relayer() moves, old relayer NotRelayer",
                       set_relayer_by_owner_moves_it)
    for name in os.listdir(work):
        os.unlink(os.path.join(work, name))
    os.rmdir(work)
    checks.done()


if __name__ == "__main__":
    main()
