"""The services' PostgreSQL layers against a real PostgreSQL: the unit suites test_st_db (the
store: positions, holes, records_after, store_positions, get_sealed, the store_id lock, a
reconnection, a spoiled write batch, dead letters), test_st_admin (the store's side of the
operator and reader APIs: devices, revocation also at write time, key rotation, tokens, the
audit log, record pages), test_ch_db (the relayer: its own tables only, the feed, anchors and
anchor info, one record or many) and test_ch_query (its query link: get_anchor, get_anchors)
need a scratch database (LCORE_TEST_PG_DSN) and skip
without one; here each gets a fresh database of the stack's private cluster, the relayer's with
none of the store's tables, so they always run."""
import os
import subprocess

from harness import BIN, Checks, Stack, expect


def run_suite(st, superuser, exe, db, create=True):
    if create:
        st.sql(f"CREATE DATABASE {db} OWNER lcore", dsn=superuser)
    dsn = st.vars["LCORE_PG_DSN"].rsplit("/", 1)[0] + "/" + db
    out = subprocess.run([os.path.join(BIN, "tests", exe)], env=dict(os.environ, LCORE_TEST_PG_DSN=dsn),
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=300)
    tail = "\n".join(out.stdout.splitlines()[-15:])
    expect(out.returncode == 0, f"{exe} exited {out.returncode}:\n{tail}")
    expect("SKIPPED" not in out.stdout and "PASSED" in out.stdout, f"{exe} did not run its tests:\n{tail}")


def main():
    checks = Checks()
    with Stack(workers=1) as st:
        pg = os.path.join(st.dir, "pg")
        superuser = (f"postgresql://postgres:{open(os.path.join(pg, 'superuser_password')).read().strip()}"
                     f"@127.0.0.1:{open(os.path.join(pg, 'port')).read().strip()}/postgres")
        checks.run("test_st_db: the store's layer on a scratch database",
                   lambda: run_suite(st, superuser, "test_st_db", "scratch_store"))
        checks.run("test_st_admin: the operator and reader APIs' data on the same database",
                   lambda: run_suite(st, superuser, "test_st_admin", "scratch_store", create=False))
        checks.run("test_ch_db: the relayer's layer on a database of its own",
                   lambda: run_suite(st, superuser, "test_ch_db", "scratch_chain"))
        checks.run("test_ch_query: get_anchor and get_anchors over the relayer's query link",
                   lambda: run_suite(st, superuser, "test_ch_query", "scratch_chain_query"))
    checks.done()


if __name__ == "__main__":
    main()
