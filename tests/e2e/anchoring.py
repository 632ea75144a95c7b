"""What the tests check about anchoring, over the two services' own tables: the store's
`records` (a store_sql callable) and the relayer's chain_records / anchor_leaves / anchors (a
chain_sql callable; the same database in the default stack, another one where a test gives the
relayer its own). Record ids are compared as hex strings."""
import time

from chain import abi_words, calldata

LIVE = ("pending", "anchored", "confirmed", "finalized")


def stored_ids(store_sql):
    return set(store_sql("SELECT encode(record_id, 'hex') FROM records").split())


def anchored_ids(chain_sql, statuses=("anchored", "confirmed", "finalized")):
    """Records that are a leaf of an anchor in one of `statuses`."""
    wanted = ", ".join(f"'{s}'" for s in statuses)
    return set(chain_sql("SELECT encode(c.record_id, 'hex') FROM chain_records c"
                         " JOIN anchor_leaves l ON l.arrival = c.arrival"
                         f" JOIN anchors a ON a.id = l.anchor_id WHERE a.status IN ({wanted})").split())


def twice(chain_sql):
    """Records that are a leaf of more than one live (not superseded) anchor."""
    return chain_sql("SELECT encode(c.record_id, 'hex') FROM chain_records c"
                     " JOIN anchor_leaves l ON l.arrival = c.arrival JOIN anchors a ON a.id = l.anchor_id"
                     " WHERE a.status <> 'superseded' GROUP BY 1 HAVING count(*) > 1").split()


def wait_all_anchored(store_sql, chain_sql, statuses=("confirmed", "finalized"), want=0, timeout=120):
    """Waits until every stored record (at least `want` of them) is a leaf of an anchor in
    `statuses`; returns the stored ids."""
    deadline = time.time() + timeout
    left = stored = None
    while time.time() < deadline:
        stored = stored_ids(store_sql)
        left = stored - anchored_ids(chain_sql, statuses)
        if not left and len(stored) >= want:
            return stored
        time.sleep(0.5)
    raise AssertionError(f"{len(left or ())} of {len(stored or ())} stored records (want {want}) "
                         f"not {'/'.join(statuses)} after {timeout}s")


def proof_verifies(rpc, contract, rec):
    """The contract's verify(root, proof, leaf) accepts a GET /v1/records answer."""
    data = calldata("verify(bytes32,bytes32[],bytes32)", rec["batch"]["root"], rec["proof"], rec["leaf"])
    return abi_words(rpc.call(contract, data))[0][-1] == 1


def wait_for(what, fn, timeout=60):
    """Polls fn every 0.2 s until it returns something true (returned); AssertionError after
    timeout seconds."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = fn()
        if v:
            return v
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")
