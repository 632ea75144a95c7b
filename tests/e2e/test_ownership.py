"""Each service owns its data (issue 13), end to end on the real stack:
1. two store processes write at once (the workers push to both): every record is anchored
   exactly once, and the relayer learned each one from the stores' messages, not their tables;
2. the relayer starts on an empty database of its own, after `lcore-chain migrate` alone, while
   readings flow: it catches up with everything the store wrote before and goes on with what it
   writes after, each record anchored once, proofs accepted by the contract."""
import os
import subprocess
import threading
import time

from anchoring import anchored_ids, proof_verifies, stored_ids, twice, wait_all_anchored
from chain import Rpc
from harness import BIN, Checks, Stack, expect, http, metric_at


def sample(ids, n):
    return sorted(ids)[:: max(1, len(ids) // n)][:n]


def check_records_api(st, rpc, ids, n=12):
    """GET /v1/records/{id} shows the chain's part and the contract accepts its proof."""
    for rid in sample(ids, n):
        s, _, rec = st.read("/v1/records/" + rid)
        expect(s == 200 and rec["status"] in ("anchored", "confirmed", "finalized"), f"{rid}: {s} {rec}")
        expect(proof_verifies(rpc, st.vars["LCORE_CONTRACT_ADDRESS"], rec), f"{rid}: proof refused on chain")


def two_stores(checks):
    extra = {"LCORE_STORES": "2", "LCORE_CHAIN_CONFIRMATIONS": "1", "LCORE_CHAIN_ANCHOR_WINDOW_MS": "500",
             "LCORE_STORE_WRITE_BATCH_WAIT_MS": "20"}
    with Stack(workers=2, extra_env=extra) as st:
        rpc = Rpc(st.vars["LCORE_CHAIN_RPC"])
        state = {}

        def both_write():
            res = st.sim("--devices", "20", "--count", "1200", "--rate", "0", "--concurrency", "8",
                         "--device-prefix", "two")
            expect(res.get("accepted") == "1200", f"sim: {res}")
            deadline = time.time() + 60
            while time.time() < deadline and len(stored_ids(st.sql)) < 1200:
                time.sleep(0.3)
            per_store = dict(line.split("|") for line in
                             st.sql("SELECT store_id, count(*) FROM records GROUP BY 1").split())
            expect(set(per_store) == {"store", "store-2"} and all(int(v) > 0 for v in per_store.values()),
                   f"records per store: {per_store}")
            expect(sum(int(v) for v in per_store.values()) == 1200, f"records per store: {per_store}")
            # Positions: each store's own numbering, 1.. its position, without two alike.
            for sid in per_store:
                top = st.sql(f"SELECT position FROM stores WHERE store_id = '{sid}'")
                mx, n, distinct = st.sql(f"SELECT max(position), count(*), count(DISTINCT position) FROM records"
                                         f" WHERE store_id = '{sid}'").split("|")
                expect(mx == top and n == distinct, f"{sid}: stores.position {top}, records max {mx} {n}/{distinct}")
            state["ids"] = stored_ids(st.sql)

        def anchored_once():
            ids = wait_all_anchored(st.sql, st.sql, want=1200, timeout=120)
            expect(not twice(st.sql), f"records in two live anchors: {twice(st.sql)[:5]}")
            n = int(st.sql("SELECT count(*) FROM chain_records"))
            expect(n == len(ids), f"the relayer holds {n} records, the stores {len(ids)}")
            feed = dict(line.split("|") for line in st.sql("SELECT store_id, position FROM chain_feed").split())
            stores = dict(line.split("|") for line in st.sql("SELECT store_id, position FROM stores").split())
            expect(feed == stores, f"relayer feed positions {feed} != stores' {stores}")
            # Leaves on chain: every Anchored event's leaf count adds up to the records, once.
            on_chain = int(st.sql("SELECT coalesce(sum(leaf_count), 0) FROM anchors"
                                  " WHERE status IN ('anchored', 'confirmed', 'finalized')"))
            expect(on_chain == len(ids), f"{on_chain} leaves anchored for {len(ids)} records")
            got = metric_at(st.vars["LCORE_CHAIN_ADMIN_URL"], "lcore_chain_feed_records_total")
            expect(got >= len(ids), f"lcore_chain_feed_records_total {got} < {len(ids)}")
            check_records_api(st, rpc, ids)

        checks.run("two stores write at once: both write, each numbers its own records", both_write)
        checks.run("two stores: every record anchored exactly once, from the stores' messages", anchored_once)


def fresh_chain(checks):
    extra = {"LCORE_CHAIN_CONFIRMATIONS": "1", "LCORE_CHAIN_ANCHOR_WINDOW_MS": "500"}
    with Stack(workers=2, extra_env=extra) as st:
        rpc = Rpc(st.vars["LCORE_CHAIN_RPC"])
        pg = os.path.join(st.dir, "pg")
        port = open(os.path.join(pg, "port")).read().strip()
        superuser = (f"postgresql://postgres:{open(os.path.join(pg, 'superuser_password')).read().strip()}"
                     f"@127.0.0.1:{port}/postgres")
        owner_dsn = st.vars["LCORE_PG_DSN"].rsplit("/", 1)[0] + "/lcore_chain_only"
        chain_dsn = open(os.path.join(pg, "chain_dsn")).read().strip().rsplit("/", 1)[0] + "/lcore_chain_only"
        sent = {"n": 0, "err": None}

        def flow():
            # One device simulator for the whole scene: 10 s at 40 readings/s, across the
            # relayer's stop, its new database and its catching up.
            try:
                res = st.sim("--devices", "5", "--duration", "10", "--rate", "40", "--concurrency", "2",
                             "--device-prefix", "flow")
                sent["n"] = int(res.get("accepted", "0"))
            except Exception as e:  # noqa: BLE001 - reported by the check below
                sent["err"] = e

        def catches_up():
            # The relayer stops; readings keep flowing; it comes back on a database of its own
            # where only `lcore-chain migrate` ran.
            old_pid = int(open(os.path.join(st.dir, "run", "chain.pid")).read())
            env = dict(e.split("=", 1) for e in open(f"/proc/{old_pid}/environ").read().split("\0") if "=" in e)
            t = threading.Thread(target=flow, daemon=True)
            t.start()
            time.sleep(1.5)
            os.kill(old_pid, 15)
            while os.path.exists(f"/proc/{old_pid}") and open(f"/proc/{old_pid}/stat").read().split(") ")[1][0] != "Z":
                time.sleep(0.1)
            st.sql("CREATE DATABASE lcore_chain_only OWNER lcore", dsn=superuser)
            st.sql("GRANT CONNECT ON DATABASE lcore_chain_only TO lcore_chain", dsn=superuser)
            mig = subprocess.run([os.path.join(BIN, "lcore-chain"), "migrate"], env=dict(env, LCORE_PG_DSN=owner_dsn),
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=60)
            expect(mig.returncode == 0, f"lcore-chain migrate: {mig.stderr}")
            tables = st.sql("SELECT string_agg(tablename, ',' ORDER BY tablename) FROM pg_tables"
                            " WHERE schemaname = 'public'", dsn=owner_dsn)
            expect("records" not in tables.split(","), f"the chain's database has the store's tables: {tables}")
            before = len(stored_ids(st.sql))
            expect(before > 0, "no records before the relayer came back")
            log = open(os.path.join(st.dir, "log", "chain.log"), "a")
            proc = subprocess.Popen([os.path.join(BIN, "lcore-chain")], env=dict(env, LCORE_PG_DSN=chain_dsn),
                                    stdout=log, stderr=log, stdin=subprocess.DEVNULL)
            # scripts/stack down stops it like the one it started.
            open(os.path.join(st.dir, "run", "chain.pid"), "w").write(f"{proc.pid}\n")
            t.join(timeout=120)
            expect(sent["err"] is None, f"readings stopped flowing: {sent['err']}")
            expect(sent["n"] > before, f"{sent['n']} readings accepted, {before} before the relayer came back")
            expect(proc.poll() is None, "the relayer exited")
            chain_sql = lambda q: st.sql(q, dsn=owner_dsn)  # noqa: E731
            ids = wait_all_anchored(st.sql, chain_sql, want=sent["n"], timeout=120)
            expect(not twice(chain_sql), "records in two live anchors")
            expect(len(anchored_ids(chain_sql)) == len(ids), "anchored more records than stored")
            caught_up = metric_at(st.vars["LCORE_CHAIN_ADMIN_URL"], 'lcore_chain_feed_records_total{source="catch_up"}')
            expect(caught_up >= before, f"caught up {caught_up} records by query, {before} were stored before")
            check_records_api(st, rpc, ids)

        checks.run("the relayer starts on an empty database of its own while readings flow, and catches up",
                   catches_up)


def main():
    checks = Checks()
    two_stores(checks)
    fresh_chain(checks)
    checks.done()


if __name__ == "__main__":
    main()
