#!/usr/bin/env python3
"""Markdown table from bench/fleet/fleet.py's JSON lines (--out FILE): one row per run.

  python3 bench/fleet/table.py results.jsonl

Ratios: "× ping" divides the run's s/host by the ping run's at the same N and forks; "stock ÷ this"
divides the stock run's s/host (same N, forks and mode) by this run's, i.e. how many times
faster than the stock modules. "kvmtune/host" is the binary's own wall and CPU (user + sys) time per host
(all its processes in that run: plan, and apply when there were changes).
"""
import json
import sys


def main(path):
    rows = [json.loads(l) for l in open(path) if l.strip()]
    ping = {(r["n"], r["forks"]): r for r in rows if r["side"] == "ping"}
    stock = {(r["n"], r["forks"], r["mode"]): r for r in rows if r["side"] == "stock"}
    print("| hosts | forks | side | mode | wall s | s/host | above ping s/host | × ping | stock ÷ this | kvmtune/host wall s (median / p95 / max) | kvmtune/host CPU s (median / max) | changed / failed | load before → after |")
    print("|---:|---:|---|---|---:|---:|---:|---:|---:|---|---|---|---|")
    for r in rows:
        p = ping.get((r["n"], r["forks"]))
        s = stock.get((r["n"], r["forks"], r["mode"]))
        xp = "%.2f" % (r["s_per_host"] / p["s_per_host"]) if p else "—"
        xs = "%.1f×" % (s["s_per_host"] / r["s_per_host"]) if s and r["side"] == "kvmtune" else "—"
        k = r.get("kvmtune")
        kt = "%.3f / %.3f / %.3f" % (k["wall_median"], k["wall_p95"], k["wall_max"]) if k and k["hosts"] else "—"
        kc = "%.3f / %.3f" % (k["cpu_median"], k["cpu_max"]) if k and k["hosts"] else "—"
        above = "%.3f" % (r["s_per_host"] - p["s_per_host"]) if p and r["side"] != "ping" else "—"
        bad = " (state: %d problems)" % len(r["state_problems"]) if r.get("state_problems") else ""
        print("| %d | %d | %s | %s | %.1f | %.3f | %s | %s | %s | %s | %s | %d / %d%s | %.1f → %.1f |" % (
            r["hosts"], r["forks"], r["side"], "—" if r["side"] == "ping" else r["mode"], r["wall_s"],
            r["s_per_host"], above, xp, xs, kt, kc,
            r["changed_hosts"], r["n_failed"], bad, r["load_before"], r["load_after"]))


if __name__ == "__main__":
    main(sys.argv[1])
