"""docs/openapi.yaml against the gateway (issue 15 item 5; DESIGN "HTTP API").
a) The document is valid OpenAPI 3.1: Redocly CLI (npm @redocly/cli, pinned in
   contracts/package.json, installed by scripts/install-deps) lints it with docs/redocly.yaml
   (recommended-strict: every finding fails); every operation names its listener
   (x-lcore-listener), on that listener's server, with bearer security for readers and
   operators and none for devices and the health routes.
b) `lcore-gateway routes` (one "<listener> <METHOD> <path-template>" line per route served) and
   the document's operations are the same set, both ways.
c) A running gateway (one stack) serves every operation of the document on its listener: with no
   token and with a wrong one, the answer is neither the router's generic 404 nor 405, bearer
   operations answer 401, and every answer is one the document lists for the operation; the
   other listener answers the same method and path with the generic 404; a made-up path gets
   the generic 404 on both listeners."""
import json
import os
import re
import shutil
import subprocess
import tempfile

from harness import BIN, SRC, Checks, Stack, expect, http

SPEC = os.path.join(SRC, "docs", "openapi.yaml")
LINT_CONFIG = os.path.join(SRC, "docs", "redocly.yaml")
TOOLS = os.environ.get("LCORE_TOOLS_DIR") or os.path.join(SRC, ".tools")
REDOCLY = os.path.join(TOOLS, "node_modules", ".bin", "redocly")
# No usage report and no version check: the tests reach no network.
REDOCLY_ENV = dict(os.environ, REDOCLY_TELEMETRY="off", REDOCLY_SUPPRESS_UPDATE_NOTICE="true", NO_COLOR="1")

METHODS = ("get", "put", "post", "delete", "patch", "head", "options", "trace")
LISTENERS = ("device", "admin")
PORTS = {"device": "8080", "admin": "9101"}  # the servers' default ports in the document
# Syntactically valid path parameters that name nothing.
PARAMS = {"record_id": "00" * 32, "device_id": "no-such-device", "token_id": "tok_0000000000000000"}
WRONG_TOKEN = "lcore-openapi-test-wrong-token-0000000000000000"
MADE_UP = "/v1/no-such-route"
# The routers' answer to a path no route serves: gw_http's on either listener, lc_admin's built-in
# one for paths it does not route on to the gateway.
GENERIC_404 = {"error": "not_found"}
GENERIC_404_MESSAGES = ("no such endpoint", "no such admin endpoint")


def redocly(*args):
    if not os.access(REDOCLY, os.X_OK):
        raise AssertionError(f"{REDOCLY} missing: run scripts/install-deps (LCORE_TOOLS_DIR={TOOLS})")
    out = subprocess.run([REDOCLY] + list(args), env=REDOCLY_ENV, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True, timeout=120)
    # Keep what it says about the document, not its boxed notices about Node.js versions.
    text = "\n".join(l for l in out.stdout.splitlines() if l.strip() and not re.match(r"\s*[║╔╚]", l))
    return out.returncode, text


def load_spec(tmp):
    """The document as JSON (redocly bundle: the YAML read by the validator itself, no YAML parser
    needed here)."""
    path = os.path.join(tmp, "openapi.json")
    rc, text = redocly("bundle", "--config", LINT_CONFIG, SPEC, "-o", path)
    expect(rc == 0, f"redocly bundle failed ({rc}):\n{text}")
    with open(path) as f:
        return json.load(f)


def operations(spec):
    """[(listener, METHOD, path template, operation, path item)] of the document."""
    ops = []
    for path, item in spec["paths"].items():
        for method in METHODS:
            if method in item:
                op = item[method]
                ops.append((op.get("x-lcore-listener"), method.upper(), path, op, item))
    return ops


def is_bearer(op):
    return any("bearer" in req for req in op.get("security", []))


def fill(template):
    return re.sub(r"\{([^}]+)\}", lambda m: PARAMS[m.group(1)], template)


def matches(template, path):
    pattern = re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template))
    return re.fullmatch(pattern, path) is not None


def request_body(op):
    """(Content-Type, body) of a request the operation takes: a JSON object for JSON bodies, a
    line that is no JWS for JWS ones; (None, None) when it takes none."""
    content = op.get("requestBody", {}).get("content", {})
    if not content:
        return None, None
    media = next(iter(content))
    return media, b"{}" if media == "application/json" else b"not-a-jws"


def is_generic_404(status, body):
    return (status == 404 and isinstance(body, dict) and body.get("error") == GENERIC_404["error"]
            and body.get("message") in GENERIC_404_MESSAGES)


def not_served(status, body):
    return is_generic_404(status, body) or status == 405


def show(answer):
    status, body = answer
    text = json.dumps(body) if isinstance(body, (dict, list)) else repr(body)
    return f"{status} {text[:160]}"


def show_both(answers, bad):
    """The answers (without a token, with a wrong one) for which bad(status, body) holds, one
    line: both at once when they are the same."""
    shown = {auth: show(a) for auth, a in answers.items() if bad(*a)}
    if len(shown) == 2 and shown["none"] == shown["wrong"]:
        return f"{shown['none']} (no token and wrong token)"
    return "; ".join(f"{text} ({'no' if auth == 'none' else 'wrong'} token)" for auth, text in shown.items())


def main():
    checks = Checks()
    tmp = tempfile.mkdtemp(prefix="lcore-openapi-")
    state = {}

    # -- a) the document ------------------------------------------------------------------------
    def lint():
        rc, text = redocly("lint", "--config", LINT_CONFIG, "--format", "stylish", SPEC)
        expect(rc == 0, f"redocly lint found problems ({rc}):\n{text}")
        state["spec"] = load_spec(tmp)
        expect(state["spec"].get("openapi", "").startswith("3.1."), f"openapi {state['spec'].get('openapi')}")

    def listeners_servers_security():
        spec = state.get("spec")
        expect(spec is not None, "the document did not load (see above)")
        problems = []
        for listener, method, path, op, item in operations(spec):
            where = f"{method} {path}"
            if listener not in LISTENERS:
                problems.append(f"{where}: x-lcore-listener {listener!r}")
                continue
            servers = op.get("servers") or item.get("servers") or spec.get("servers", [])
            ports = {s["url"].rsplit(":", 1)[-1].rstrip("/") for s in servers}
            if ports != {PORTS[listener]}:
                problems.append(f"{where}: listener {listener}, servers {[s['url'] for s in servers]}")
            tags = set(op.get("tags", []))
            want_bearer = bool(tags & {"reader", "operator"})
            if "security" not in op or is_bearer(op) != want_bearer:
                problems.append(f"{where}: tags {sorted(tags)}, security {op.get('security')}")
            if (listener == "device" and "operator" in tags) or (listener == "admin" and tags & {"device", "reader"}):
                problems.append(f"{where}: tags {sorted(tags)} on the {listener} listener")
        expect(not problems, "\n  " + "\n  ".join(problems))

    checks.run("a) docs/openapi.yaml is valid OpenAPI 3.1 (redocly lint, recommended-strict)", lint)
    checks.run("a) every operation: x-lcore-listener, that listener's server, bearer for readers and operators",
               listeners_servers_security)
    spec = state.get("spec")
    if spec is None:
        shutil.rmtree(tmp, ignore_errors=True)
        checks.done()
    ops = operations(spec)
    documented = {(l, m, p) for l, m, p, _, _ in ops}

    # -- b) the routes the gateway says it serves -----------------------------------------------
    def routes_listed():
        env = {k: v for k, v in os.environ.items() if not k.startswith("LCORE_")}
        out = subprocess.run([os.path.join(BIN, "lcore-gateway"), "routes"], env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, timeout=30)
        expect(out.returncode == 0, f"lcore-gateway routes: exit {out.returncode}: {out.stderr.strip()[-400:]}")
        served, bad = set(), []
        for line in out.stdout.splitlines():
            parts = line.split()
            if len(parts) != 3 or parts[0] not in LISTENERS or not parts[2].startswith("/"):
                bad.append(line)
            else:
                served.add(tuple(parts))
        problems = [f"not '<listener> <METHOD> <path>': {l!r}" for l in bad]
        problems += [f"served, not in the document: {' '.join(r)}" for r in sorted(served - documented)]
        problems += [f"in the document, not served: {' '.join(r)}" for r in sorted(documented - served)]
        expect(served or bad, "lcore-gateway routes printed nothing")
        expect(not problems, "\n  " + "\n  ".join(problems))

    checks.run("b) lcore-gateway routes = the document's (listener, method, path), both ways", routes_listed)

    # -- c) a running gateway -------------------------------------------------------------------
    with Stack(workers=1) as st:
        base = {"device": st.url, "admin": st.admin_url}

        def ask(listener, method, template, op):
            """{auth: (status, body)} for the request without a token and with a wrong one."""
            media, body = request_body(op)
            if body is None and method in ("POST", "PUT", "PATCH"):
                body = b""  # Content-Length: 0
            answers = {}
            for auth in ("none", "wrong"):
                headers = {"Content-Type": media} if media else {}
                if auth == "wrong":
                    headers["Authorization"] = "Bearer " + WRONG_TOKEN
                s, _, b = http(method, base[listener] + fill(template), body, headers, cafile=st.ca_file)
                answers[auth] = (s, b)
            return answers

        own = {(l, m, p): ask(l, m, p, op) for l, m, p, op, _ in ops}
        other = {}
        for listener, method, path, op, _ in ops:
            there = "admin" if listener == "device" else "device"
            concrete = fill(path)
            if any(l == there and m == method and matches(p, concrete) for l, m, p in documented):
                continue  # the same method and path is a route of the other listener too
            other[(listener, method, path)] = (there, ask(there, method, path, op))
        by_key = {(l, m, p): op for l, m, p, op, _ in ops}

        def served():
            problems = [f"{l} {m} {p}: {show_both(answers, not_served)}"
                        for (l, m, p), answers in sorted(own.items())
                        if any(not_served(*a) for a in answers.values())]
            expect(not problems, "answered as if not served:\n  " + "\n  ".join(problems))

        def bearer_401():
            def bad(status, _):
                return status != 401
            problems = [f"{l} {m} {p}: {show_both(answers, bad)}"
                        for (l, m, p), answers in sorted(own.items()) if is_bearer(by_key[(l, m, p)])
                        and any(bad(*a) for a in answers.values())]
            expect(not problems, "want 401:\n  " + "\n  ".join(problems))

        def documented_answers():
            problems = []
            for (l, m, p), answers in sorted(own.items()):
                responses = by_key[(l, m, p)]["responses"]
                for auth, (s, b) in answers.items():
                    who = "no token" if auth == "none" else "wrong token"
                    if not_served(s, b):
                        continue  # reported by the check above
                    doc = responses.get(str(s)) or responses.get(f"{str(s)[0]}XX") or responses.get("default")
                    if doc is None:
                        problems.append(f"{l} {m} {p} ({who}): {show((s, b))}: status not documented")
                    elif s >= 400 and "application/json" in doc.get("content", {}) and not (
                            isinstance(b, dict) and isinstance(b.get("error"), str)
                            and isinstance(b.get("message"), str)):
                        problems.append(f"{l} {m} {p} ({who}): {show((s, b))}: not an Error object")
            expect(not problems, "\n  " + "\n  ".join(problems))

        def other_listener_404():
            def bad(status, body):
                return not is_generic_404(status, body)
            problems = [f"{l} {m} {p} on the {there} listener: {show_both(answers, bad)}"
                        for (l, m, p), (there, answers) in sorted(other.items())
                        if any(bad(*a) for a in answers.values())]
            expect(other, "no operation to try on the other listener")
            expect(not problems, "want the generic 404:\n  " + "\n  ".join(problems))

        def made_up_404():
            problems = []
            for listener in LISTENERS:
                s, _, b = http("GET", base[listener] + MADE_UP, cafile=st.ca_file)
                if not is_generic_404(s, b):
                    problems.append(f"GET {MADE_UP} on the {listener} listener: {show((s, b))}")
            expect(not problems, "\n  ".join(problems))

        checks.run("c) every operation is served on its listener (not the generic 404, not 405)", served)
        checks.run("c) bearer operations answer 401 without a token and with a wrong one", bearer_401)
        checks.run("c) every answer is one the document lists for the operation (errors as Error)",
                   documented_answers)
        checks.run("c) the other listener answers each operation with the generic 404", other_listener_404)
        checks.run(f"c) GET {MADE_UP} gets the generic 404 on both listeners", made_up_404)
    shutil.rmtree(tmp, ignore_errors=True)
    checks.done()


if __name__ == "__main__":
    main()
