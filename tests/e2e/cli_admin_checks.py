"""lcore-cli's operator verbs (issue 15 item 1) against a running stack: device list, show,
revoke, reactivate and rotate, token create, list and delete, audit; their --json documents, and
their error paths (an unknown device exits 1 naming not_found, no operator token exits 2 with a
clear line, a refused token exits 1, a gateway that does not answer exits 3).

Not a test by itself: the issue-15 e2e test calls run(stack, checks) with its harness.Stack and
harness.Checks. `python3 tests/e2e/cli_admin_checks.py` runs the checks alone on a stack of
their own."""
import json
import os
import socket
import time

from harness import Checks, Device, Stack, expect, http

DEVICE, OTHER = "cli-admin-1", "cli-admin-2"


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rows(stdout):
    """A table's rows (heading left out), each a list of its cells."""
    return [line.split() for line in stdout.splitlines()[1:]]


def _detail(stdout):
    """`key value` lines as a dict."""
    return dict(line.split(None, 1) for line in stdout.splitlines() if " " in line)


def _wait(fn, want, timeout=3.0):
    """fn() until it returns want (the gateways apply a change within 1 s); its last value."""
    deadline = time.time() + timeout
    got = fn()
    while got != want and time.time() < deadline:
        time.sleep(0.1)
        got = fn()
    return got


def run(stack, checks):
    env = {"LCORE_GATEWAY_ADMIN_URL": stack.admin_url, "LCORE_ADMIN_TOKEN": stack.token,
           "LCORE_ADMIN_TOKEN_FILE": None, "LCORE_CA_FILE": stack.ca_file}

    def cli(*args, **more):
        return stack.cli(*args, check=False, env=dict(env, **more))

    def ok(*args, **more):
        out = cli(*args, **more)
        expect(out.returncode == 0, f"lcore-cli {' '.join(args)}: exit {out.returncode}: {out.stderr}")
        return out

    def as_json(*args):
        return json.loads(ok(*args, "--json").stdout)

    dev, other = Device(stack, DEVICE), Device(stack, OTHER)
    for d in (dev, other):
        s, _, body = d.register()
        expect(s in (200, 201), f"register {d.id}: {s} {body}")
    first_key = json.loads(dev.registration)["public_key"]
    state = {}

    def device_list():
        rows = {r[0]: r for r in _rows(ok("device", "list", "--all").stdout)}
        expect(DEVICE in rows and OTHER in rows, f"both devices listed: {sorted(rows)}")
        expect(rows[DEVICE][1] == "active", f"{DEVICE} active: {rows[DEVICE]}")
        one = ok("device", "list", "--limit", "1")
        expect(len(_rows(one.stdout)) == 1 and "--after" in one.stderr, f"one page: {one.stdout} {one.stderr}")
        doc = as_json("device", "list", "--limit", "1", "--all")
        ids = [d["device_id"] for d in doc["devices"]]
        expect(DEVICE in ids and OTHER in ids and doc["next"] is None, f"--all --json: {doc}")
        page = as_json("device", "list", "--limit", "1")
        expect(len(page["devices"]) == 1 and isinstance(page["next"], str), f"one page's JSON: {page}")

    def device_show():
        shown = _detail(ok("device", "show", DEVICE).stdout)
        expect(shown.get("device_id") == DEVICE and shown.get("status") == "active"
               and shown.get("key_no") == "1" and shown.get("public_key") == first_key, f"{shown}")
        doc = as_json("device", "show", DEVICE)
        s, _, api = http("GET", f"{stack.admin_url}/v1/devices/{DEVICE}",
                         headers={"Authorization": "Bearer " + stack.token})
        expect(s == 200 and doc == api, f"--json is the API's document: {doc} != {api}")

    def device_revoke():
        shown = _detail(ok("device", "revoke", DEVICE).stdout)
        expect(shown.get("status") == "revoked" and shown.get("revoked_at") != "-", f"revoke: {shown}")
        shown = _detail(ok("device", "show", DEVICE).stdout)
        expect(shown.get("status") == "revoked", f"show after revoke: {shown}")
        jws = dev.sign(dev.reading(1))
        got = _wait(lambda: dev.post(jws)[0], 403)
        expect(got == 403, f"a revoked device's reading: {got}")

    def device_reactivate():
        doc = json.loads(ok("device", "reactivate", DEVICE, "--json").stdout)
        expect(doc["status"] == "active" and doc["revoked_at"] is None, f"reactivate: {doc}")
        expect(_detail(ok("device", "show", DEVICE).stdout).get("status") == "active", "show after reactivate")
        jws = dev.sign(dev.reading(2))
        got = _wait(lambda: dev.post(jws)[0], 202)
        expect(got == 202, f"a reactivated device's reading: {got}")

    def device_rotate():
        new = Device(stack, DEVICE + "-next")  # only its key pair
        new_key = json.loads(new.registration)["public_key"]
        shown = _detail(ok("device", "rotate", DEVICE, "--alg", "EdDSA", "--public-key", new_key,
                           "--overlap-s", "60").stdout)
        expect(shown.get("key_no") == "2" and shown.get("public_key") == new_key, f"rotate: {shown}")
        doc = as_json("device", "show", DEVICE)
        prev = doc["previous_key"]
        expect(doc["key_no"] == 2 and prev and prev["public_key"] == first_key and prev["alg"] == "EdDSA",
               f"previous_key after rotate: {doc}")
        again = cli("device", "rotate", DEVICE, "--alg", "EdDSA", "--public-key", new_key)
        expect(again.returncode == 1 and "(HTTP 409" in again.stderr, f"the same key again: {again.returncode} {again.stderr}")

    def token_create():
        out = ok("token", "create", "--scope", "read", "--device", DEVICE, "--expires-in-s", "3600")
        lines = out.stdout.splitlines()
        token, shown = lines[-1].strip(), _detail("\n".join(lines[:-1]))
        expect(shown.get("scope") == "read" and shown.get("devices") == DEVICE
               and shown.get("id", "").startswith("tok_"), f"token create: {out.stdout}")
        expect("only" in out.stderr and token not in out.stderr, f"the shown-once warning: {out.stderr}")
        state.update(token=token, token_id=shown["id"])

        def status(device_id):
            return http("GET", f"{stack.url}/v1/devices/{device_id}/status",
                        headers={"Authorization": "Bearer " + token}, cafile=stack.ca_file)[0]
        expect(_wait(lambda: status(DEVICE), 200) == 200, "the token reads its device's status")
        expect(status(OTHER) == 403, "the token reads no other device")
        doc = as_json("token", "create", "--scope", "decrypt")
        expect(doc["scope"] == "decrypt" and doc["id"].startswith("tok_") and len(doc["token"]) >= 16,
               f"token create --json: {doc}")
        state["json_token_id"] = doc["id"]

    def token_list():
        out = ok("token", "list")
        rows = {r[0]: r for r in _rows(out.stdout)}
        expect(state["token_id"] in rows and rows[state["token_id"]][1] == "read", f"token list: {out.stdout}")
        expect(state["token"] not in out.stdout, "token list shows no token value")
        raw = ok("token", "list", "--json").stdout
        mine = [t for t in json.loads(raw)["tokens"] if t["id"] == state["token_id"]]
        expect(len(mine) == 1 and "token" not in mine[0] and mine[0]["devices"] == [DEVICE]
               and mine[0]["created_by"] == "admin", f"token list --json: {mine}")
        expect(state["token"] not in raw, "token list --json shows no token value")

    def token_delete():
        doc = as_json("token", "delete", state["token_id"])
        expect(doc == {"id": state["token_id"], "status": "deleted"}, f"token delete: {doc}")
        expect(state["token_id"] not in ok("token", "list").stdout, "a deleted token is not listed")
        ok("token", "delete", state["json_token_id"])
        gone = cli("token", "delete", state["token_id"])
        expect(gone.returncode == 1 and "not_found" in gone.stderr, f"delete twice: {gone.stderr}")
        got = _wait(lambda: http("GET", f"{stack.url}/v1/devices/{DEVICE}/status",
                                 headers={"Authorization": "Bearer " + state["token"]},
                                 cafile=stack.ca_file)[0], 401)
        expect(got == 401, f"a deleted token is refused: {got}")

    def audit():
        entries = as_json("audit", "--all", "--limit", "2")["entries"]
        seen = {(e["action"], e["target"]) for e in entries if e["token_id"] == "admin"}
        for want in [("device.revoke", DEVICE), ("device.reactivate", DEVICE), ("device.rotate", DEVICE),
                     ("token.create", state["token_id"]), ("token.delete", state["token_id"])]:
            expect(want in seen, f"audit has {want} by admin: {sorted(seen)}")
        ids = [e["id"] for e in entries]
        expect(len(ids) == len(set(ids)), "--all pages do not repeat entries")
        rows = _rows(ok("audit", "--all").stdout)
        expect(any(r[2:5] == ["admin", "device.revoke", DEVICE] for r in rows), f"audit table: {rows[-8:]}")

    def errors():
        out = cli("device", "show", "cli-admin-nobody")
        expect(out.returncode == 1 and "not_found" in out.stderr, f"unknown device: {out.returncode} {out.stderr}")
        out = cli("device", "list", LCORE_ADMIN_TOKEN=None)
        expect(out.returncode == 2 and "no operator token" in out.stderr and not out.stdout,
               f"no token: {out.returncode} {out.stderr}")
        out = cli("device", "list", LCORE_ADMIN_TOKEN="0" * 64)
        expect(out.returncode == 1 and "401" in out.stderr, f"a wrong token: {out.returncode} {out.stderr}")
        out = cli("device", "list", LCORE_GATEWAY_ADMIN_URL=f"http://127.0.0.1:{_free_port()}")
        expect(out.returncode == 3 and "cannot reach" in out.stderr, f"unreachable: {out.returncode} {out.stderr}")
        out = cli("device", "show", "../tokens")
        expect(out.returncode == 2, f"a device id that is not one: {out.returncode} {out.stderr}")

    def token_file():
        path = os.path.join(stack.dir, "cli-admin-token")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(stack.token + "\n")
        ok("device", "show", DEVICE, LCORE_ADMIN_TOKEN=None, LCORE_ADMIN_TOKEN_FILE=path)
        both = cli("device", "show", DEVICE, LCORE_ADMIN_TOKEN_FILE=path)
        expect(both.returncode == 2 and "only one" in both.stderr, f"both token variables: {both.stderr}")

    for name, fn in [("cli device list", device_list), ("cli device show", device_show),
                     ("cli device revoke", device_revoke), ("cli device reactivate", device_reactivate),
                     ("cli device rotate", device_rotate), ("cli token create", token_create),
                     ("cli token list", token_list), ("cli token delete", token_delete),
                     ("cli audit", audit), ("cli error paths", errors),
                     ("cli LCORE_ADMIN_TOKEN_FILE", token_file)]:
        checks.run(name, fn)


def main():
    checks = Checks()
    with Stack(workers=1) as st:
        run(st, checks)
    checks.done()


if __name__ == "__main__":
    main()
