#!/usr/bin/env python3
"""Figures of `make bench-proxy` (run by dataplane/bench/run.sh).

`case`: one run -> one JSON line: latency percentiles, achieved req/s, CPU
seconds and memory of the proxy pair. Fixed-rate runs come from
`weft-echo load` (its JSON summary: latency from each request's due time);
max-throughput runs from h2load (percentiles computed from its per-request
log, --log-file: start µs, status, µs to the end of the response).

`table`: all cases side by side, latency added over the direct (no proxy)
case of the same protocol and load, req/s per CPU-second of the proxy
pair, and the goals next to the figures, with the floor (a pair of plain
TCP relays) beside the latency goals. Never fails on figures.
"""

import argparse
import json
import math
import re
import sys

PCTS = (50, 90, 99, 99.9)


def percentile(sorted_values, p):
    """Nearest-rank percentile of an ascending list (empty -> nan)."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(p / 100.0 * len(sorted_values)))
    return sorted_values[rank - 1]


def parse_h2load(text):
    """req/s and request counts from h2load's summary."""
    out = {"h2load_rps": math.nan, "done": 0, "succeeded": 0, "failed": 0, "errored": 0}
    m = re.search(r"finished in [\d.]+\w*, ([\d.]+) req/s", text)
    if m:
        out["h2load_rps"] = float(m.group(1))
    m = re.search(
        r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored",
        text,
    )
    if m:
        out.update(
            done=int(m.group(3)),
            succeeded=int(m.group(4)),
            failed=int(m.group(5)),
            errored=int(m.group(6)),
        )
    m = re.search(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", text)
    out["non_2xx"] = sum(int(x) for x in m.groups()[1:]) if m else 0
    return out


def load_case(args):
    """A fixed-rate case measured by `weft-echo load`."""
    with open(args.load_summary, encoding="utf-8") as f:
        lines = [line for line in f if line.startswith("{")]
    summary = json.loads(lines[-1]) if lines else None
    if summary is None:
        summary = {"requests": 0, "errors": 0, "rps": 0.0, "latency_ms": {}, "send_lag_ms": {}}
    lat = summary["latency_ms"]
    return {
        "requests": summary["requests"],
        "errors": summary["errors"],
        "rps": summary["rps"],
        "h2load_rps": math.nan,
        "lat_ms": {str(p): lat.get(f"p{p}", math.nan) for p in PCTS},
        "send_lag_p99_ms": summary["send_lag_ms"].get("p99", math.nan),
    }


def h2load_case(args):
    """A max-throughput case measured by h2load."""
    lat_us = []
    bad = 0
    first = last = None
    with open(args.log, encoding="utf-8") as f:
        for line in f:
            cols = line.split("\t")
            if len(cols) < 3:
                continue
            start, status, dur = int(cols[0]), int(cols[1]), int(cols[2])
            if status == 0:
                # In flight when the warm-up ended: h2load logs it with
                # status 0 and counts it as succeeded in its summary (a
                # failed request shows there as failed).
                continue
            if not 200 <= status < 300:
                bad += 1
                continue
            lat_us.append(dur)
            end = start + dur
            first = start if first is None else min(first, start)
            last = end if last is None else max(last, end)
    lat_us.sort()
    with open(args.h2load_out, encoding="utf-8") as f:
        summary = parse_h2load(f.read())
    span_s = (last - first) / 1e6 if first is not None and last > first else args.duration
    rps = len(lat_us) / span_s if span_s > 0 else 0.0
    return {
        "requests": len(lat_us),
        # Failed streams and non-2xx answers, from the log or (if more,
        # e.g. streams cut at the end of the run) h2load's summary.
        "errors": max(bad, summary["failed"] + summary["non_2xx"]),
        "rps": rps,
        "h2load_rps": summary["h2load_rps"],
        "lat_ms": {str(p): percentile(lat_us, p) / 1000.0 for p in PCTS},
    }


def case(args):
    rec = {"kind": "case", "target": args.target, "proto": args.proto, "load": args.load}
    rec.update(load_case(args) if args.load_summary else h2load_case(args))
    rec.update(
        cpu_s=(args.user_ticks + args.sys_ticks) / args.clk_tck,
        user_s=args.user_ticks / args.clk_tck,
        sys_s=args.sys_ticks / args.clk_tck,
        rss_kb=args.rss_kb,
        hwm_kb=args.hwm_kb,
    )
    if args.target == "direct":
        rec.update(cpu_s=None, user_s=None, sys_s=None)
    print(json.dumps(rec))


def fmt(v, spec):
    if v is None or (isinstance(v, float) and math.isnan(v)):
        width = re.match(r"[<>^]?\+?(\d*)", spec).group(1)
        return format("-", ">" + width)
    return format(v, spec)


def cpu_split(c):
    """User and kernel CPU time per request of a case's proxy pair."""
    per_req = 1e6 / c["requests"]
    return f"{c['user_s'] * per_req:.1f} us user + {c['sys_s'] * per_req:.1f} us kernel"


def verdict(ok):
    return "met" if ok else "NOT met"


def table(args):
    idle = {}
    cases = []
    with open(args.results, encoding="utf-8") as f:
        for line in f:
            rec = json.loads(line)
            if rec["kind"] == "idle":
                idle[rec["target"]] = rec
            else:
                cases.append(rec)
    by = {(c["proto"], c["load"], c["target"]): c for c in cases}

    head = (
        f"{'proto':<6}{'load':>7} {'target':<12}{'req/s':>9}"
        f"{'p50':>8}{'p90':>8}{'p99':>8}{'p99.9':>8}"
        f"{'+p50':>8}{'+p90':>8}{'+p99':>8}{'+p99.9':>8}"
        f"{'req/cpu-s':>11}{'RSS MB':>8}{'HWM MB':>8}{'err':>6}"
    )
    print()
    print(
        f"weft-proxy pair vs nginx pair vs relay pair (floor) vs direct — {args.duration}s per case, "
        f"{args.workers} worker threads (weft) / worker processes (nginx) per proxy"
    )
    print("latency in ms (p = percentile, +p = added over direct at the same protocol and load);")
    print("req/cpu-s = requests per CPU-second used by the two proxies together (utime+stime);")
    print("RSS = VmRSS of both proxies mid-run, HWM = their VmHWM (peak) after it (nginx: masters + workers)")
    print(head)
    print("-" * len(head))
    order = {"direct": 0, "relay": 1, "weft": 2, "nginx": 3}
    loads = []
    for c in cases:
        if c["load"] not in loads:
            loads.append(c["load"])
    for proto in ("h1", "h2"):
        for load in loads:
            base = by.get((proto, load, "direct"))
            rows = sorted(
                (c for c in cases if c["proto"] == proto and c["load"] == load),
                key=lambda c: order.get(c["target"], 9),
            )
            for c in rows:
                lat = c["lat_ms"]
                added = [
                    None if c["target"] == "direct" or base is None else lat[str(p)] - base["lat_ms"][str(p)]
                    for p in PCTS
                ]
                per_core = c["requests"] / c["cpu_s"] if c.get("cpu_s") else None
                name = {"weft": "weft mTLS", "nginx": "nginx h1", "relay": "relay floor"}.get(
                    c["target"], c["target"]
                )
                print(
                    f"{('HTTP/1.1' if proto == 'h1' else 'HTTP/2'):<6}{load:>7} {name:<12}{c['rps']:>9.0f}"
                    + "".join(fmt(lat[str(p)], ">8.3f") for p in PCTS)
                    + "".join(fmt(a, ">+8.3f") for a in added)
                    + fmt(per_core, ">11.0f")
                    + (fmt(c["rss_kb"] / 1024, ">8.1f") if c["target"] != "direct" else f"{'-':>8}")
                    + (fmt(c["hwm_kb"] / 1024, ">8.1f") if c["target"] != "direct" else f"{'-':>8}")
                    + f"{c['errors']:>6}"
                )
        print()

    print("Goals (reported, never enforced):")
    for proto in ("h1", "h2"):
        w, d = by.get((proto, "1000", "weft")), by.get((proto, "1000", "direct"))
        if w and d:
            a50 = w["lat_ms"]["50"] - d["lat_ms"]["50"]
            a99 = w["lat_ms"]["99"] - d["lat_ms"]["99"]
            print(
                f"  {proto} @1000 req/s: p50 added {a50:+.3f} ms (goal <= 0.1: {verdict(a50 <= 0.1)}), "
                f"p99 added {a99:+.3f} ms (goal <= 0.5: {verdict(a99 <= 0.5)})"
            )
            floor = by.get((proto, "1000", "relay"))
            if floor:
                f50 = floor["lat_ms"]["50"] - d["lat_ms"]["50"]
                f99 = floor["lat_ms"]["99"] - d["lat_ms"]["99"]
                print(
                    f"    floor on this machine (plain TCP relay pair, same run): p50 added {f50:+.3f} ms, "
                    f"p99 added {f99:+.3f} ms; weft above the floor: p50 {a50 - f50:+.3f}, p99 {a99 - f99:+.3f}"
                )
    wi = idle.get("weft")
    if wi:
        mb = wi["max_proc_kb"] / 1024
        print(
            f"  idle RSS per weft-proxy: {wi['procs']} kB, largest {mb:.1f} MB "
            f"(goal <= 10 MB: {verdict(mb <= 10)}; bootstrap {wi.get('bootstrap', 'json')})"
        )
    wj = idle.get("weft-json")
    if wj:
        print(
            f"  (one more weft-proxy with the same configuration as a JSON bootstrap, idle: "
            f"{wj['rss_kb'] / 1024:.1f} MB: the freed heap of JSON decoding stays resident)"
        )
    ni = idle.get("nginx")
    if ni:
        print(f"  (nginx pair idle: {ni['rss_kb'] / 1024:.1f} MB over {ni['procs']})")
    for proto in ("h1", "h2"):
        w, n = by.get((proto, "max", "weft")), by.get((proto, "max", "nginx"))
        if w and n and w.get("cpu_s") and n.get("cpu_s"):
            wp, np_ = w["requests"] / w["cpu_s"], n["requests"] / n["cpu_s"]
            print(
                f"  {proto} max: {wp:.0f} req/cpu-s weft (mTLS) vs {np_:.0f} nginx (plaintext): "
                f"x{wp / np_:.2f} (goal ahead of nginx: {verdict(wp > np_)})"
            )
            print(
                f"    CPU per request, both proxies: weft {cpu_split(w)}; nginx {cpu_split(n)}"
            )
    late = [c for c in cases if c.get("send_lag_p99_ms", 0) > 1.0]
    for c in late:
        print(
            f"  note: {c['proto']} {c['load']} {c['target']}: the load generator sent late "
            f"(p99 {c['send_lag_p99_ms']:.2f} ms after due); the figures include that wait"
        )
    errors = sum(c["errors"] for c in cases)
    if errors:
        print(f"  note: {errors} failed or non-2xx requests in total (column err)")


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("case")
    c.add_argument("--target", required=True)
    c.add_argument("--proto", required=True)
    c.add_argument("--load", required=True)
    c.add_argument("--load-summary", help="weft-echo load's JSON output (fixed-rate cases)")
    c.add_argument("--log", help="h2load --log-file (max cases)")
    c.add_argument("--h2load-out", help="h2load's output (max cases)")
    c.add_argument("--user-ticks", type=int, required=True, help="utime of the proxies")
    c.add_argument("--sys-ticks", type=int, required=True, help="stime of the proxies")
    c.add_argument("--clk-tck", type=int, required=True)
    c.add_argument("--duration", type=float, required=True)
    c.add_argument("--rss-kb", type=int, required=True)
    c.add_argument("--hwm-kb", type=int, required=True)
    t = sub.add_parser("table")
    t.add_argument("--results", required=True)
    t.add_argument("--workers", required=True)
    t.add_argument("--duration", required=True)
    args = ap.parse_args()
    if args.cmd == "case":
        case(args)
    else:
        table(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
