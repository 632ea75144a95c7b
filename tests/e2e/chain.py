"""Chain helpers for the end-to-end tests (Python standard library only): a private anvil node
(scripts/anvil) on a free loopback port, a minimal JSON-RPC client, ABI encoding of the few types
lcore uses, Keccak-256, and OpenZeppelin-compatible sorted-pair Merkle trees.

Every anvil started here is stopped at exit (atexit, SIGTERM then SIGKILL), so none is left behind.
Transactions from anvil's unlocked default accounts (eth_sendTransaction) are for tests only: the
relayer under test signs its own."""
import atexit
import ctypes
import json
import os
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request

SRC = os.environ.get("LCORE_SOURCE_DIR", os.path.abspath(os.path.join(os.path.dirname(__file__), "../..")))
ANVIL = os.path.join(SRC, "scripts", "anvil")
ARTIFACT = os.path.join(SRC, "contracts", "LcoreAnchor.json")

# anvil's default accounts (mnemonic "test test test test test test test test test test test junk").
ANVIL_KEYS = [
    "ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80",
    "59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d",
    "5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a",
]

# --- Keccak-256 (the original Keccak padding 0x01, not SHA3-256's 0x06) -------------------------
_RC = [
    0x0000000000000001, 0x0000000000008082, 0x800000000000808A, 0x8000000080008000,
    0x000000000000808B, 0x0000000080000001, 0x8000000080008081, 0x8000000000008009,
    0x000000000000008A, 0x0000000000000088, 0x0000000080008009, 0x000000008000000A,
    0x000000008000808B, 0x800000000000008B, 0x8000000000008089, 0x8000000000008003,
    0x8000000000008002, 0x8000000000000080, 0x000000000000800A, 0x800000008000000A,
    0x8000000080008081, 0x8000000000008080, 0x0000000080000001, 0x8000000080008008,
]
_ROT = [[0, 36, 3, 41, 18], [1, 44, 10, 45, 2], [62, 6, 43, 15, 61], [28, 55, 25, 21, 56],
        [27, 20, 39, 8, 14]]  # _ROT[x][y]
_M64 = (1 << 64) - 1


def _rol(v, n):
    return ((v << n) | (v >> (64 - n))) & _M64 if n else v


def _keccak_f(a):
    """Keccak-f[1600] on a[x][y] lanes, in place."""
    for rc in _RC:
        c = [a[x][0] ^ a[x][1] ^ a[x][2] ^ a[x][3] ^ a[x][4] for x in range(5)]
        d = [c[(x - 1) % 5] ^ _rol(c[(x + 1) % 5], 1) for x in range(5)]
        for x in range(5):
            for y in range(5):
                a[x][y] ^= d[x]
        b = [[0] * 5 for _ in range(5)]
        for x in range(5):
            for y in range(5):
                b[y][(2 * x + 3 * y) % 5] = _rol(a[x][y], _ROT[x][y])
        for x in range(5):
            for y in range(5):
                a[x][y] = b[x][y] ^ ((~b[(x + 1) % 5][y]) & b[(x + 2) % 5][y])
        a[0][0] ^= rc


def keccak256(data):
    """Keccak-256 of bytes (Ethereum's hash)."""
    rate = 136
    msg = bytearray(data) + b"\x01"
    msg += b"\x00" * (-len(msg) % rate)
    msg[-1] |= 0x80
    a = [[0] * 5 for _ in range(5)]
    for off in range(0, len(msg), rate):
        for i in range(rate // 8):
            a[i % 5][i // 5] ^= int.from_bytes(msg[off + 8 * i:off + 8 * i + 8], "little")
        _keccak_f(a)
    return b"".join(a[i % 5][i // 5].to_bytes(8, "little") for i in range(4))


def selector(signature):
    """4-byte function/error selector of a canonical signature such as "anchor(uint64,bytes32,uint32)"."""
    return keccak256(signature.encode())[:4]


def topic(signature):
    """topic0 of an event signature, as 0x-hex."""
    return "0x" + keccak256(signature.encode()).hex()


# --- ABI encoding (static types, plus dynamic arrays of static types) --------------------------
def _word(typ, v):
    if typ == "bytes32":
        v = _b(v)
        if len(v) != 32:
            raise ValueError("bytes32 needs 32 bytes")
        return v
    if typ == "address":
        return bytes(12) + _b(v)
    if typ == "bool":
        return int(bool(v)).to_bytes(32, "big")
    if typ.startswith("uint"):
        return int(v).to_bytes(32, "big")
    if typ.startswith("int"):
        return int(v).to_bytes(32, "big", signed=True)
    raise ValueError(f"unsupported ABI type {typ}")


def abi_encode(types, values):
    """abi.encode(values) for static types and T[] of static T (e.g. bytes32[])."""
    head, tail = [], b""
    dyn_base = 32 * len(types)
    for typ, v in zip(types, values):
        if typ.endswith("[]"):
            head.append((dyn_base + len(tail)).to_bytes(32, "big"))
            tail += len(v).to_bytes(32, "big") + b"".join(_word(typ[:-2], x) for x in v)
        else:
            head.append(_word(typ, v))
    return b"".join(head) + tail


def calldata(signature, *values):
    """0x-hex calldata: selector(signature) + abi_encode(argument types, values)."""
    args = signature[signature.index("(") + 1:-1]
    types = [t for t in args.split(",") if t]
    return "0x" + (selector(signature) + abi_encode(types, values)).hex()


def abi_words(hexdata):
    """Splits 0x-hex return data into 32-byte words."""
    raw = _b(hexdata)
    return [raw[i:i + 32] for i in range(0, len(raw), 32)]


def _b(v):
    if isinstance(v, (bytes, bytearray)):
        return bytes(v)
    return bytes.fromhex(v[2:] if v.startswith("0x") else v)


def hx(b):
    return "0x" + bytes(b).hex()


# --- Merkle trees: sorted-pair keccak256, as OpenZeppelin MerkleProof / StandardMerkleTree -----
def hash_pair(a, b):
    return keccak256(a + b if a < b else b + a)


def record_leaf(record_id, envelope_hash):
    """DESIGN.md leaf: keccak256(keccak256(abi.encode(bytes32 record_id, bytes32 envelope_hash)))."""
    return keccak256(keccak256(abi_encode(["bytes32", "bytes32"], [record_id, envelope_hash])))


class MerkleTree:
    """The tree of @openzeppelin/merkle-tree (StandardMerkleTree/SimpleMerkleTree): leaves sorted
    (when sort=True) and laid in a complete binary tree array, last leaf first."""

    def __init__(self, leaves, sort=True):
        if not leaves:
            raise ValueError("empty tree")
        self.leaves = sorted(leaves) if sort else list(leaves)
        n = len(self.leaves)
        self.tree = [b""] * (2 * n - 1)
        for i, leaf in enumerate(self.leaves):
            self.tree[len(self.tree) - 1 - i] = leaf
        for i in range(len(self.tree) - 1 - n, -1, -1):
            self.tree[i] = hash_pair(self.tree[2 * i + 1], self.tree[2 * i + 2])

    @property
    def root(self):
        return self.tree[0]

    def proof(self, leaf):
        """Siblings from the leaf up (what MerkleProof.verify takes)."""
        i = len(self.tree) - 1 - self.leaves.index(leaf)
        out = []
        while i > 0:
            out.append(self.tree[i + 1 if i % 2 else i - 1])
            i = (i - 1) // 2
        return out


def process_proof(proof, leaf):
    h = leaf
    for p in proof:
        h = hash_pair(h, p)
    return h


# --- JSON-RPC ------------------------------------------------------------------------------------
class RpcError(Exception):
    def __init__(self, error):
        self.code = error.get("code")
        self.message = error.get("message", "")
        self.data = error.get("data")
        super().__init__(f"{self.code}: {self.message} (data={self.data})")

    def revert_data(self):
        """The revert data as bytes, when the error carries it (eth_call/eth_estimateGas)."""
        d = self.data
        if isinstance(d, dict):
            d = d.get("data")
        if isinstance(d, str) and d.startswith("0x"):
            return bytes.fromhex(d[2:])
        return None


class Rpc:
    def __init__(self, url):
        self.url = url
        self._id = 0

    def __call__(self, method, *params, timeout=30):
        self._id += 1
        body = json.dumps({"jsonrpc": "2.0", "id": self._id, "method": method, "params": list(params)}).encode()
        req = urllib.request.Request(self.url, data=body, headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=timeout) as r:
            resp = json.loads(r.read())
        if "error" in resp:
            raise RpcError(resp["error"])
        return resp["result"]

    # -- conveniences ------------------------------------------------------------------------
    def accounts(self):
        return self("eth_accounts")

    def send(self, frm, to, data, gas=None, value=0):
        """eth_sendTransaction from an unlocked account; returns the receipt once mined.
        With gas given, a reverting transaction is still mined (status 0) instead of failing the
        estimate."""
        tx = {"from": frm, "data": data, "value": hex(value)}
        if to:
            tx["to"] = to
        if gas is not None:
            tx["gas"] = hex(gas)
        return self.wait_receipt(self("eth_sendTransaction", tx))

    def wait_receipt(self, tx_hash, timeout=30):
        deadline = time.time() + timeout
        while time.time() < deadline:
            rc = self("eth_getTransactionReceipt", tx_hash)
            if rc:
                return rc
            time.sleep(0.05)
        raise TimeoutError(f"no receipt for {tx_hash} in {timeout}s")

    def call(self, to, data, frm=None, block="latest"):
        tx = {"to": to, "data": data}
        if frm:
            tx["from"] = frm
        return self("eth_call", tx, block)

    def deploy(self, frm, bytecode, ctor_types=(), ctor_args=()):
        """Deploys bytecode (+ constructor args); returns (address, receipt)."""
        data = bytecode + abi_encode(list(ctor_types), list(ctor_args)).hex()
        rc = self.send(frm, None, data)
        if int(rc["status"], 16) != 1 or not rc.get("contractAddress"):
            raise RuntimeError(f"deployment failed: {rc}")
        return rc["contractAddress"], rc


def load_artifact(path=ARTIFACT):
    with open(path) as f:
        return json.load(f)


# --- anvil ----------------------------------------------------------------------------------------
def _die_with_parent():
    """preexec_fn: the child gets SIGTERM when the test process dies, even by SIGKILL (a ctest
    timeout), so no anvil outlives its test. Linux prctl(PR_SET_PDEATHSIG)."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM, 0, 0, 0)  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Anvil:
    """A private anvil on 127.0.0.1. Use as a context manager, or start()/stop()."""

    def __init__(self, chain_id=31337, block_time=None, port=None, extra_args=()):
        self.chain_id, self.block_time, self.port = chain_id, block_time, port
        self.extra_args = list(extra_args)
        self.proc = None
        self.rpc = None
        self.url = None
        self.log_path = None
        self._log = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def start(self, timeout=30):
        atexit.register(self.stop)
        tail = ""
        for _ in range(5):
            port = self.port or free_port()
            if self._start_on(port, timeout):
                return self
            tail = self.log_tail()
            self.stop()
            if self.port:
                break
        raise RuntimeError(f"anvil did not start: {tail}")

    def _start_on(self, port, timeout):
        fd, self.log_path = tempfile.mkstemp(prefix="lcore-anvil-", suffix=".log")
        self._log = os.fdopen(fd, "w")
        args = [ANVIL, "--host", "127.0.0.1", "--port", str(port), "--chain-id", str(self.chain_id)]
        if self.block_time:
            args += ["--block-time", str(self.block_time)]
        self.proc = subprocess.Popen(args + self.extra_args, stdin=subprocess.DEVNULL, stdout=self._log,
                                     stderr=subprocess.STDOUT, start_new_session=True,
                                     preexec_fn=_die_with_parent)
        self.url = f"http://127.0.0.1:{port}"
        self.rpc = Rpc(self.url)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                return False  # e.g. the port was taken in between: try another
            try:
                if int(self.rpc("eth_chainId", timeout=2), 16) == self.chain_id:
                    self.port = port
                    return True
            except (OSError, urllib.error.URLError, RpcError, ValueError):
                pass
            time.sleep(0.1)
        return False

    def log_tail(self, n=20):
        try:
            with open(self.log_path) as f:
                return "".join(f.readlines()[-n:])
        except (OSError, TypeError):
            return ""

    def stop(self):
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.terminate()
                try:
                    self.proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait(timeout=5)
            self.proc = None
        if self._log is not None:
            self._log.close()
            self._log = None
        if self.log_path:
            try:
                os.unlink(self.log_path)
            except OSError:
                pass
            self.log_path = None
