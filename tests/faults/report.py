#!/usr/bin/env python3
"""The fault-test outcome table. Usage: report.py DIR [--update docs/RELIABILITY.md]
DIR holds the <phase>.json files the fault tests write (default build/faults). Prints the
markdown table; with --update, replaces the table between the markers in that file."""
import json
import os
import sys

BEGIN, END = "<!-- faults:begin -->", "<!-- faults:end -->"


def s_number(r):
    """The fault's number: phase "f10_mqtt_..." is 10."""
    return r["phase"][1:].split("_")[0]


def table(directory):
    rows = []
    for name in os.listdir(directory):
        if name.endswith(".json"):
            with open(os.path.join(directory, name)) as f:
                rows.append(json.load(f))
    rows.sort(key=lambda r: int(s_number(r)))
    out = ["| # | fault | offered/s | accepted (202) | stored | dead-lettered | lost | duplicated "
           "| rows never accepted | recovery | stored/s after | 503s seen |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        # A phase without a fault (no recovery_s at all) has nothing to recover from.
        rec = "–" if "recovery_s" not in r else f"{r['recovery_s']} s" if r["recovery_s"] is not None else "never"
        dead = str(r["dead_lettered"])
        if "poison_accepted" in r:
            dead += f" (+{r['poison_dead_lettered']}/{r['poison_accepted']} poison)"
        accepted = str(r["accepted"])
        if r.get("mqtt"):  # accepted results; and the readings the broker PUBACKed
            accepted += f" (PUBACKed {r['pubacked']})"
        out.append(f"| {s_number(r)} | {r['fault']} | {r['offered_per_s']} | {accepted} | "
                   f"{r['stored']} | {dead} | {r['lost']} | {r['duplicated']} | {r['unexpected']} | "
                   f"{rec} | {r['stored_per_s_after']} | {r['sim_503']} |")
    groups = [r["readings_per_fsync"] for r in rows if r.get("readings_per_fsync")]
    if groups:
        out.append("")
        out.append(f"Readings per fdatasync during these runs: {min(groups):.2f}–{max(groups):.2f} "
                   "(800 readings/s offered on 16 connections).")
    mqtt = [r for r in rows if r.get("mqtt")]
    if mqtt:
        shares = ", ".join(f"{s_number(r)}: {' / '.join(str(int(n)) for n in r['gateway_received'])}"
                           for r in mqtt)
        failed = ", ".join(f"{s_number(r)}: {r['sim_publish_failed']}" for r in mqtt)
        nosub = ", ".join(f"{s_number(r)}: {r.get('sim_puback_not_success', 0)}" for r in mqtt)
        out.append("")
        out.append(f"MQTT rows: {mqtt[0]['offered_per_s']} readings/s from 20 devices, two gateways; "
                   "accepted = results \"accepted\", PUBACKed = readings the broker acknowledged to "
                   "their device (`lcore-sim --puback-ids`), lost = either not stored. Messages each "
                   f"gateway received: {shares}. Readings a device could not publish (not "
                   f"connected, never acknowledged): {failed}. PUBACKs with reason code 16 (no "
                   f"matching subscribers: the message went nowhere): {nosub}.")
    return "\n".join(out) + "\n"


def main():
    args = sys.argv[1:]
    directory = args[0] if args and not args[0].startswith("--") else "build/faults"
    text = table(directory)
    if "--update" in args:
        path = args[args.index("--update") + 1]
        doc = open(path).read()
        a, b = doc.index(BEGIN) + len(BEGIN), doc.index(END)
        with open(path, "w") as f:
            f.write(doc[:a] + "\n" + text + doc[b:])
    sys.stdout.write(text)


if __name__ == "__main__":
    main()
