#!/usr/bin/env python3
"""Turns the raw JSON of one deploy/bench/run into RESULTS.md and chart.png.

Usage: report.py OUT_DIR            reads OUT_DIR/raw/*, writes OUT_DIR/RESULTS.md and chart.png
       report.py --sustained FILE   exit 0 if that end-to-end step kept up (used by run)
Needs matplotlib (run installs it into bench-results/.venv) for the chart only.
"""

import datetime
import glob
import json
import os
import statistics
import sys

CONNS = (64, 256)
WAVES = ("lookups", "more_lookups", "writes")


def target_rate(r):
    return r["target"].get("messages_per_s")


def trend(r):
    """e2e p50 over the first and the last three seconds of a step (ms), if it lasted 6 s."""
    series = (r.get("e2e") or {}).get("p50_p99_ms_by_second") or []
    if len(series) < 6:
        return None
    return (statistics.median(s[1] for s in series[:3]), statistics.median(s[1] for s in series[-3:]))


def is_sustained(r):
    """Kept up: >= 95% of the rate sent, every request 2xx, every row visible, fewer than one
    second of input not yet visible when sending stopped, all visible within 2 s, and the
    latency not climbing (p50 of the last 3 s at most 1.25 x that of the first 3 s + 100 ms)."""
    e, rate, t = r.get("e2e", {}), target_rate(r), trend(r)
    return (r["items_per_s"] >= 0.95 * rate and r["http"]["2xx"] == r["sent"]["webhooks"]
            and e.get("missing", 1) == 0 and e.get("backlog_at_send_end", 1e12) <= rate
            and e.get("drain_after_last_200_s", 99) <= 2.0
            and (t is None or t[1] <= 1.25 * t[0] + 100))


if sys.argv[1] == "--sustained":
    sys.exit(0 if is_sustained(json.load(open(sys.argv[2]))) else 1)

OUT = sys.argv[1]
RAW = os.path.join(OUT, "raw")


def load(name):
    path = os.path.join(RAW, name)
    return json.load(open(path)) if os.path.exists(path) else None


def load_all(pattern):
    return [json.load(open(p)) for p in sorted(glob.glob(os.path.join(RAW, pattern)))]


def fmt(x, digits=0):
    return "n/a" if x is None else f"{x:,.{digits}f}"


def met(ok):
    return "**met**" if ok else "**missed**"


def med(runs, f):
    vals = [f(r) for r in runs if r is not None]
    return statistics.median(vals) if vals else None


def prom(path):
    """Sample values of a Prometheus text file, by series name with labels."""
    out = {}
    if os.path.exists(path):
        for line in open(path):
            if line.strip() and not line.startswith("#"):
                name, _, value = line.rstrip().rpartition(" ")
                try:
                    out[name] = float(value)
                except ValueError:
                    pass
    return out


def ingress_split():
    """Mean request and Kafka-produce time over the 2,000/s run, from the ingress's histograms."""
    a, b = prom(f"{RAW}/ingress-metrics-before.txt"), prom(f"{RAW}/ingress-metrics-after.txt")
    req = 'inboxflow_ingress_request_duration_seconds_{}{{route="kapso"{}}}'
    pro = "inboxflow_ingress_kafka_produce_duration_seconds_{}{}"

    def d(k):
        return b.get(k, 0) - a.get(k, 0)

    n_req, n_pro = d(req.format("count", "")), d(pro.format("count", ""))
    if not (n_req and n_pro):
        return None
    return {"request_ms": d(req.format("sum", "")) / n_req * 1e3,
            "produce_ms": d(pro.format("sum", "")) / n_pro * 1e3,
            "request_over_25ms": 1 - d(req.format("bucket", ',le="0.025"')) / n_req,
            "produce_over_25ms": 1 - d(pro.format("bucket", '{le="0.025"}')) / n_pro}


def batch_gaps():
    """Time between the end of one micro-batch and the start of the next, from the log."""
    path = f"{RAW}/processor-batches.jsonl"
    if not os.path.exists(path):
        return None
    rows = []
    for line in open(path):
        if '"micro-batch stored"' in line:
            r = json.loads(line)
            t = datetime.datetime.fromisoformat(r["timestamp"].replace("Z", "+00:00")).timestamp()
            rows.append((t, r["duration_ms"], r["records"]))
    gaps = sorted((b[0] - b[1] / 1000 - a[0]) * 1000 for a, b in zip(rows, rows[1:]))
    if len(gaps) < 5:
        return None
    return {"n": len(rows), "median": statistics.median(gaps), "p90": gaps[int(len(gaps) * 0.9)],
            "duration": statistics.median(r[1] for r in rows),
            "records": statistics.median(r[2] for r in rows)}


def drain_runs():
    """The drain runs (run's drain stage), by workspaces: drain-W.json, the processor's
    `micro-batch stored` log lines and its /metrics at the end; [] if absent."""
    runs = []
    for path in glob.glob(os.path.join(RAW, "drain-*.json")):
        w = os.path.basename(path)[len("drain-"):-len(".json")]
        if not w.isdigit():
            continue
        d = json.load(open(path))
        d["batches"] = []
        batches = f"{RAW}/drain-{w}-batches.jsonl"
        if os.path.exists(batches):
            for line in open(batches):
                if '"micro-batch stored"' in line:
                    r = json.loads(line)
                    d["batches"].append(r.get("fields", r))
        d["metrics"] = prom(f"{RAW}/drain-{w}-metrics.txt")
        d["load"] = load(f"drain-{w}-load.json") or {}
        runs.append(d)
    return sorted(runs, key=lambda d: d["workspaces"])


def drain_rates(d):
    """Messages per second of wall time and of batch time (sum of batch durations)."""
    ms = sum(b["duration_ms"] for b in d["batches"])
    return (d["stored"] / d["drain_s"] if d["drain_s"] else None,
            sum(b["messages"] for b in d["batches"]) / ms * 1e3 if ms else None)


machine = load("machine.json") or {}
proc = load("processor.json") or {}
ten = proc.get("tenants") or []
single = {r["batch"]: r["cross"]["msgs_per_s"] for r in ten if r["workspaces"] == 1}
bare = {c: load_all(f"ingress-max-bare-c{c}-*.json") for c in CONNS}
ing = {c: load_all(f"ingress-max-ingress-c{c}-*.json") for c in CONNS}
rate = {c: (med(bare[c], lambda r: r["webhooks_per_s"]), med(ing[c], lambda r: r["webhooks_per_s"]))
        for c in CONNS}
r2k = {s: load(f"ingress-rate2000-{s}.json") for s in ("bare", "ingress")}
steps = [s for s in [load("e2e-1000.json")] + [load(f"e2e-step-{r}.json")
                                               for r in (2000, 4000, 8000)] if s]
overhead = load("consumer-overhead.json")
drains = drain_runs()
cmp = {row["batch"]: row for row in proc.get("compare", [])}
rt_rows = proc.get("statements", [])

md = []
w = md.append
w("# inboxflow benchmark results\n")
w(f"Run {machine.get('date', '?')} with `deploy/bench/run` on {machine.get('cpus', '?')} CPUs "
  f"({machine.get('cpu_model', '?')}), {machine.get('mem_gib', '?')} GiB, Linux "
  f"{machine.get('kernel', '?')}; load average before the run "
  f"{' '.join(machine.get('loadavg_before', []))}. Kafka ({machine.get('kafka', '?')}), Cassandra "
  f"{machine.get('cassandra', '?')}, the binaries under test and the load generator all share "
  "these cores, and other builds and tests may run too: compare ratios measured side by side, "
  "not absolute figures. Release builds; every figure is from this one run.\n")
states = [open(os.path.join(RAW, f)).read() for f in ("services-start.txt", "services-end.txt")
          if os.path.exists(os.path.join(RAW, f))]
if len(states) == 2 and states[0].splitlines()[:2] != states[1].splitlines()[:2]:
    w("**Note:** Kafka or Cassandra was restarted during the run (by other tests on this "
      "machine); figures after a restart include a cold JVM.\n")
if os.path.exists(f"{RAW}/service-waits.txt"):
    w("**Note:** the suite had to wait for Kafka/Cassandra to come back: " +
      "; ".join(open(f"{RAW}/service-waits.txt").read().split("\n")).strip("; ") + ".\n")

# ---- targets ----
best_c = max(CONNS, key=lambda c: rate[c][1] or 0)
c1000 = cmp.get(1000)
rt_by_state = {}
for row in rt_rows:
    rt_by_state.setdefault(row["state"], []).append(row["round_trips"])
rt_max = max((row["round_trips"] for row in rt_rows), default=None)
rt_const = bool(rt_by_state) and all(len(set(v)) == 1 for v in rt_by_state.values())
rss = {}
for r in steps + ing[CONNS[0]]:
    for name, v in (r.get("rss") or {}).items():
        key = "ingress" if name == "server" else name
        if v and key in ("ingress", "processor"):
            rss[key] = max(rss.get(key, 0), v["max_mib"])
sustained = [target_rate(s) for s in steps if is_sustained(s)]
w("## Targets\n")
w("| target | measured | |")
w("|---|---|---|")
if rate[best_c][1]:
    w(f"| ingress ≥ 10,000 webhooks/s (2 KB Kapso) | " + "; ".join(
        f"{fmt(rate[c][1])}/s with {c} connections (bare warp {fmt(rate[c][0])})" for c in CONNS
        if rate[c][1]) + f" | {met(rate[best_c][1] >= 10000)} |")
if r2k["ingress"]:
    p99 = r2k["ingress"]["latency"]["p99_ms"]
    w(f"| ingress p99 < 20 ms at 2,000/s | {p99:.1f} ms at {fmt(r2k['ingress']['webhooks_per_s'])}"
      f"/s | {met(p99 < 20)} |")
if c1000:
    w(f"| pipeline ≥ 10× naive at batch 1000 | {c1000['pipeline_vs_naive']:.1f}× | "
      f"{met(c1000['pipeline_vs_naive'] >= 10)} |")
    shares = ", ".join(f"{cmp[b]['pipeline_vs_raw'] * 100:.0f}% at {b}" for b in sorted(cmp))
    hit = [str(b) for b in sorted(cmp) if cmp[b]["pipeline_vs_raw"] >= 0.5]
    miss = [str(b) for b in sorted(cmp) if cmp[b]["pipeline_vs_raw"] < 0.5]
    verdict = "; ".join(([f"**met** at {', '.join(hit)}"] if hit else []) +
                        ([f"**missed** at {', '.join(miss)}"] if miss else []))
    w(f"| pipeline ≥ 50% of the raw-write ceiling | {shares} | {verdict} |")
if rt_rows:
    steady_max = max(rt_by_state.get("steady", [rt_max]))
    w(f"| sequential waves per batch constant, ≤ 4 in steady state, ≤ 5 with new contacts | "
      + ", ".join(f"{k}: {max(v)}" for k, v in rt_by_state.items())
      + f"; the same at 10 and 10,000 messages in each state: {'yes' if rt_const else 'no'} | "
      f"{met(rt_const and steady_max <= 4 and rt_max <= 5)} |")
if steps and "e2e" in steps[0]:
    p99 = steps[0]["e2e"]["latency"]["p99_ms"]
    w(f"| end-to-end p99 < 500 ms at 1,000 msgs/s | {p99:.0f} ms (p50 "
      f"{steps[0]['e2e']['latency']['p50_ms']:.0f} ms) | {met(p99 < 500)} |")
if ten:
    big = [r for r in ten if r["batch"] == 1000 and r["workspaces"] >= 170]
    if big and single.get(1000):
        worst = min(big, key=lambda r: r["cross"]["msgs_per_s"])
        ratio = worst["cross"]["msgs_per_s"] / single[1000]
        w(f"| multi-tenant ≥ 0.7× single-tenant (batch 1000, ≥ 170 workspaces) | " +
            ", ".join(f"{r['cross']['msgs_per_s'] / single[1000]:.2f}× with {fmt(r['workspaces'])} "
                      f"workspaces" for r in big) + f" | {met(ratio >= 0.7)} |")
    def wss(n):
        return f"{fmt(n)} workspace{'' if n == 1 else 's'}"

    low_raw = min(ten, key=lambda r: r["cross_vs_raw"])
    raw_note = (f"; of the message and index rows alone, lowest {low_raw['cross_vs_raw'] * 100:.0f}% "
                f"(batch {fmt(low_raw['batch'])}, {wss(low_raw['workspaces'])})")
    if all("cross_vs_ceiling" in r for r in ten):
        low = min(ten, key=lambda r: r["cross_vs_ceiling"])
        w(f"| pipeline ≥ 50% of the raw-write ceiling of the same rows at every batch size and "
          f"shape | lowest {low['cross_vs_ceiling'] * 100:.0f}% (batch {fmt(low['batch'])}, "
          f"{wss(low['workspaces'])}){raw_note} | {met(low['cross_vs_ceiling'] >= 0.5)} |")
    else:
        w(f"| pipeline ≥ 50% of the raw ceiling at every batch size and shape | lowest "
          f"{low_raw['cross_vs_raw'] * 100:.0f}% (batch {fmt(low_raw['batch'])}, "
          f"{wss(low_raw['workspaces'])}) | {met(low_raw['cross_vs_raw'] >= 0.5)} |")
    trips = sorted({r["cross_round_trips"] for r in ten})
    w(f"| sequential waves flat from 1 to 1000 workspaces | {', '.join(map(str, trips))} | "
        f"{met(len(trips) == 1)} |")
for name in ("ingress", "processor"):
    if name in rss:
        w(f"| RSS < 150 MB ({name}) | {rss[name]:.0f} MiB at most | "
          f"{met(rss[name] * 1.048576 < 150)} |")
w("")

# ---- ingress ----
if any(bare[c] and ing[c] for c in CONNS):
    w("## Ingress: the HTTP ceiling against the real ingress\n")
    w("2 KB signed Kapso webhooks (`X-Webhook-Signature`, 8 workspaces), loadgen closed loop: "
      "each connection sends its next webhook when the previous one is answered; 1 s warm-up "
      "not counted; rounds alternate bare-http / ingress. CPU is each process's user+system "
      "time (`/proc/<pid>/stat`) divided by the webhooks answered; the ingress's figure "
      "includes librdkafka's threads, the Kafka broker's is its JVM's.\n")
    w("| connections | round | bare-http webhooks/s | p50 / p99 | CPU µs/webhook | ingress "
      "webhooks/s | p50 / p99 | CPU µs/webhook | Kafka µs/webhook | ingress / bare | cores: "
      "ingress + Kafka + loadgen |")
    w("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for c in CONNS:
        for i, (b, g) in enumerate(zip(bare[c], ing[c]), 1):
            cores = " + ".join(f"{g['cpu'][k]['cores']:.2f}" for k in ("server", "kafka", "loadgen")
                               if k in g["cpu"])
            w(f"| {c} | {i} | {fmt(b['webhooks_per_s'])} | {b['latency']['p50_ms']:.1f} / "
              f"{b['latency']['p99_ms']:.1f} ms | {b['cpu']['server']['us_per_webhook']:.0f} | "
              f"{fmt(g['webhooks_per_s'])} | {g['latency']['p50_ms']:.1f} / "
              f"{g['latency']['p99_ms']:.1f} ms | {g['cpu']['server']['us_per_webhook']:.0f} | "
              f"{fmt(g['cpu'].get('kafka', {}).get('us_per_webhook'))} | "
              f"{g['webhooks_per_s'] / b['webhooks_per_s']:.2f} | {cores} |")
        bc = med(bare[c], lambda r: r["cpu"]["server"]["us_per_webhook"])
        ic = med(ing[c], lambda r: r["cpu"]["server"]["us_per_webhook"])
        kc = med(ing[c], lambda r: r["cpu"].get("kafka", {}).get("us_per_webhook", 0))
        w(f"| **{c}** | **median** | **{fmt(rate[c][0])}** | | **{fmt(bc)}** | **{fmt(rate[c][1])}** "
          f"| | **{fmt(ic)}** | **{fmt(kc)}** | **{rate[c][1] / rate[c][0]:.2f}** | |")
    errs = sum(r["http"]["4xx"] + r["http"]["5xx"] + r["http"]["errors"]
               for c in CONNS for r in bare[c] + ing[c])
    w(f"\nNon-2xx answers or failed requests over all rounds: {errs}. With 64 connections the "
      "ingress is latency-bound (each connection waits for a Kafka acknowledgement, see below); "
      "with 256 it is CPU-bound, sharing two cores with the broker and the load generator.\n")
if r2k["ingress"] and r2k["bare"]:
    w("Both at a steady 2,000 webhooks/s (open loop, 256 connections, latency from send to the "
      "end of the response):\n")
    w("| server | achieved/s | p50 | p95 | p99 | max | CPU µs/webhook | server cores |")
    w("|---|---:|---:|---:|---:|---:|---:|---:|")
    for s in ("bare", "ingress"):
        r = r2k[s]
        lat = r["latency"]
        w(f"| {s} | {fmt(r['webhooks_per_s'])} | {lat['p50_ms']:.1f} ms | {lat['p95_ms']:.1f} ms | "
          f"{lat['p99_ms']:.1f} ms | {lat['max_ms']:.1f} ms | "
          f"{r['cpu']['server']['us_per_webhook']:.0f} | {r['cpu']['server']['cores']:.2f} |")
    split = ingress_split()
    if split:
        w(f"\nThe ingress's own histograms over that run: a request spent {split['request_ms']:.1f} "
          f"ms on average inside the server, {split['produce_ms']:.1f} ms "
          f"({split['produce_ms'] / split['request_ms']:.0%}) of it waiting for Kafka to "
          f"acknowledge the record (`linger.ms = 5`, then the `acks=all` round trip); "
          f"{split['produce_over_25ms']:.1%} of the acknowledgements took over 25 ms.")
    w("")

# ---- processor ----
if cmp:
    w("## Processor: the batched pipeline against naive and the raw-write ceiling\n")
    w("`processor::pipeline::run_batch_cached` on the real database, as `processor run` runs it; "
      "one workspace; about five "
      "messages per sender; Meta records of up to ten ~100-character text messages; steady "
      "state (contacts and conversations exist and the owner cache holds them, message ids "
      "new); each approach in its own "
      "workspace with the same records; median round; the approaches run in rotating order "
      "within each round. *Naive* = the reference design's per-message sequence on the same "
      "prepared statements; *raw* = only the message and index inserts of step 6, batched and "
      "bounded like the pipeline's.\n")
    w("| batch | senders | rounds | pipeline msgs/s | naive msgs/s | raw ceiling msgs/s | "
      "pipeline / naive | pipeline / raw | statements (pipeline / naive / raw) |")
    w("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for b in sorted(cmp):
        r = cmp[b]
        w(f"| {b} | {r['senders']} | {r['rounds']} | {fmt(r['pipeline']['msgs_per_s'])} "
          f"({r['pipeline']['ms']:.1f} ms) | {fmt(r['naive']['msgs_per_s'])} ({r['naive']['ms']:.0f} "
          f"ms) | {fmt(r['raw']['msgs_per_s'])} ({r['raw']['ms']:.1f} ms) | "
          f"{r['pipeline_vs_naive']:.1f}× | {r['pipeline_vs_raw'] * 100:.0f}% | "
          f"{r['pipeline']['statements']} / {r['naive']['statements']} / {r['raw']['statements']} |")
    w("\nWhere the pipeline's time goes (median per sequential wave, ms; `more_lookups` is sent "
      "only for contacts stored under another identity's id, so it is 0 here):\n")
    w("| batch | " + " | ".join(WAVES) + " | raw ceiling |")
    w("|---:|" + "---:|" * (len(WAVES) + 1))
    for b in sorted(cmp):
        sm = cmp[b].get("pipeline_wave_ms", {})
        w(f"| {b} | " + " | ".join(f"{sm.get(st, 0):.1f}" for st in WAVES) +
          f" | {cmp[b]['raw']['ms']:.1f} |")
    if all("raw_per_partition" in cmp[b] for b in cmp):
        w("\nThe same raw writes as single-partition batches (what Cassandra's \"unlogged batch "
          "covering N partitions\" warning recommends), and the database's CPU per message "
          "(Cassandra's user+system time during each approach's rounds ÷ messages; 10 ms clock "
          "ticks, so rough at batch 10; other load on the database counts too):\n")
        w("| batch | raw, multi-partition batches (the pipeline's) | raw, one partition per batch "
          "| requests (multi / single) | DB CPU µs/msg: pipeline | naive | raw | raw, 1 partition |")
        w("|---:|---:|---:|---:|---:|---:|---:|---:|")
        for b in sorted(cmp):
            r, pp = cmp[b], cmp[b]["raw_per_partition"]
            w(f"| {b} | {fmt(r['raw']['msgs_per_s'])} msgs/s | {fmt(pp['msgs_per_s'])} msgs/s | "
              f"{r['raw']['statements']} / {pp['statements']} | " +
              " | ".join(fmt(r[k].get("db_cpu_us_per_msg")) for k in
                         ("pipeline", "naive", "raw", "raw_per_partition")) + " |")
    w("")
if rt_rows:
    w("## Statements and sequential round trips per micro-batch\n")
    w("`processor::store::DbStats` of one `run_batch_cached` call for one workspace (about five "
      "messages per sender); *steady* runs with the owner cache as the batch before left it, "
      "*after a rebalance* with it emptied. "
      "The naive design sends one statement at a time, so its statements are its round trips.\n")
    w("| messages | senders | state | statements | round trips | batch time | naive statements |")
    w("|---:|---:|---|---:|---:|---:|---:|")
    for r in rt_rows:
        naive = "n/a" if r["naive_statements"] is None else fmt(r["naive_statements"])
        label = r["state"] + (f" ({r['statuses']})" if r["statuses"] else "")
        w(f"| {fmt(r['messages'])} | {fmt(r['senders'])} | {label} | {r['statements']} | "
          f"{r['round_trips']} | {r['batch_ms']:.1f} ms | {naive} |")
    ref = {r["state"]: r for r in rt_rows if r["messages"] == 10}
    if "first time" in ref and "steady" in ref:
        f_, s_ = ref["first time"], ref["steady"]
        w(f"\nThe reference example, 10 messages from 3 senders (reference design: ~70 → ~8 "
          f"queries): **{f_['statements']} statements in {f_['round_trips']} sequential round "
          f"trips** the first time (3 contacts and 3 conversations created), **{s_['statements']} "
          f"in {s_['round_trips']}** in steady state" +
          (f" ({ref['after a rebalance']['statements']} in "
           f"{ref['after a rebalance']['round_trips']} right after a rebalance)"
           if "after a rebalance" in ref else "") +
          f"; the naive sequence on this schema needs "
          f"{f_['naive_statements']} and {s_['naive_statements']}.\n")
if proc.get("lookup"):
    w("`IN` lookups against concurrent single-partition lookups (contacts, 15 rounds, median):\n")
    w("| keys | IN | concurrent | concurrent / IN |")
    w("|---:|---:|---:|---:|")
    for r in proc["lookup"]:
        w(f"| {r['keys']} | {r['in_ms']:.2f} ms | {r['concurrent_ms']:.2f} ms | {r['ratio']:.2f} |")
    w("")

# ---- multi-tenant ----
if ten:
    w("## Multi-tenant micro-batches\n")
    w("`processor-bench tenants`: batches of one-message records drawn from 1 workspace and from "
      "10%, 20% and 100% distinct workspaces, every record from its own sender (so every shape "
      "writes as many conversations as messages, and only the number of workspaces changes), "
      "steady state, median round, msgs/s. `cross` is the processor's pipeline as `processor run` "
      "runs it (every wave and every lookup across the batch's workspaces, owner cache warm); "
      "`uncached` the same with the cache empty, as right after a rebalance; `per ws` runs it "
      "per workspace, 16 at a time (the shape before issue 13); `naive` one message at a time; "
      "`raw` only the message and index writes of every workspace, in one wave; `ceiling` the "
      "raw-write ceiling of the same rows: every row `cross` writes (messages, index, "
      "conversations, recency entries, inbound totals), batched as it batches them, in its one "
      "write wave with no lookup before it.\n")
    w("| batch | workspaces | cross | uncached | per ws | naive | raw (message + index) | "
      "ceiling (same rows) | cross / per ws | cross / raw | cross / ceiling | uncached / raw | "
      "cross / 1 workspace | round trips |")
    w("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in ten:
        vs1 = r["cross"]["msgs_per_s"] / single[r["batch"]] if single.get(r["batch"]) else None
        unc, ceil = r.get("uncached_vs_raw"), r.get("cross_vs_ceiling")
        w(f"| {fmt(r['batch'])} | {fmt(r['workspaces'])} | " +
          " | ".join(fmt(r.get(k, {}).get("msgs_per_s"))
                     for k in ("cross", "uncached", "per_ws", "naive", "raw", "ceiling")) +
          f" | {r['cross_vs_per_ws']:.2f}× | {r['cross_vs_raw'] * 100:.0f}% | "
          f"{'n/a' if ceil is None else f'{ceil * 100:.0f}%'} | "
          f"{'n/a' if unc is None else f'{unc * 100:.0f}%'} | "
          f"{'n/a' if vs1 is None else f'{vs1:.2f}×'} | {r['cross_round_trips']} |")
    if all("cross_wave_ms" in r for r in ten):
        w("\nWhere the cross-workspace pipeline's time goes (median ms per wave, and its requests). "
          "*Writes / batch* is the write wave's median over the batch's: the pipeline's share of "
          "the ceiling set by writing its own rows (all of them, not only messages and index) in "
          "one wave with no lookup before it.\n")
        w("| batch | workspaces | requests | lookups | more lookups | writes | batch | writes / batch |")
        w("|---:|---:|---:|---:|---:|---:|---:|---:|")
        for r in ten:
            wm = r["cross_wave_ms"]
            w(f"| {fmt(r['batch'])} | {fmt(r['workspaces'])} | {fmt(r['cross_requests'])} | " +
              " | ".join(f"{wm.get(k, 0):.1f}" for k in WAVES) +
              f" | {r['cross']['ms']:.1f} | {wm.get('writes', 0) / r['cross']['ms'] * 100:.0f}% |")
    w("")

# ---- end to end ----
if steps:
    s0 = steps[0]
    w("## End to end: ingress and processor as processes\n")
    w(f"Release `ingress` and `processor run` on fresh topics (6 partitions) and keyspace; "
      f"loadgen sends a mix ({s0['workspaces']} workspaces × {s0['senders']} senders; 50% Kapso "
      f"single events, 20% Kapso batches, 30% Meta payloads, 1..5 messages each, ~2 KB bodies, "
      f"{s0['status_rate']:.0%} status webhooks, {s0['duplicate_rate']:.0%} exact duplicates) at "
      "a target rate of messages+statuses per second, and polls `message_index` for every "
      "accepted message id: latency runs from the ingress's 200 to the poll that saw the row "
      "(polls every 20 ms, so it errs high by up to ~25 ms). A step is *sustained* when ≥ 95% "
      "of the rate was sent, every request got 2xx, every row appeared, less than one second "
      "of input was still invisible when sending stopped, the rest appeared within 2 s, and "
      "the median latency of the last 3 s was at most 1.25 × that of the first 3 s + 100 ms "
      "(the lag is not growing).\n")
    w("| target msgs/s | duration | sent msgs/s | webhooks/s | HTTP p99 | e2e p50 | e2e p95 | "
      "e2e p99 | e2e max | p50 first → last 3 s | not visible at end | drained after | max lag "
      "(records) | sustained |")
    w("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---|")
    for r in steps:
        e, lat, t = r["e2e"], r["e2e"]["latency"], trend(r)
        w(f"| {fmt(target_rate(r))} | {r['window_s']:.0f} s | {fmt(r['items_per_s'])} | "
          f"{fmt(r['webhooks_per_s'])} | {r['latency']['p99_ms']:.1f} ms | {lat['p50_ms']:.0f} ms | "
          f"{lat['p95_ms']:.0f} ms | {lat['p99_ms']:.0f} ms | {lat['max_ms']:.0f} ms | "
          f"{f'{t[0]:.0f} → {t[1]:.0f} ms' if t else 'n/a'} | {fmt(e['backlog_at_send_end'])} | "
          f"{e['drain_after_last_200_s']:.2f} s | {fmt((r.get('lag') or {}).get('max'))} | "
          f"{'yes' if is_sustained(r) else '**no**'} |")
    best = max(sustained) if sustained else None
    w(f"\nHighest rate sustained: **{fmt(best)} messages/s**" +
      (" (the next step was not)." if best and best < max(target_rate(s) for s in steps) else
       " (the highest step tried)." if best else ".") + "\n")
    w("Inside the processor during each step (its `/metrics` at the start and the end of the "
      "step): micro-batches, mean records per batch, mean batch duration, mean receipt-to-commit "
      "latency, and the mean of each sequential wave of a batch:\n")
    cols = WAVES
    w("| target msgs/s | batches | records/batch | batch | receipt → commit | " +
      " | ".join(c.replace("_", " ") for c in cols) + " |")
    w("|---:|---:|---:|---:|---:|" + "---:|" * len(cols))
    for r in steps:
        pr = r.get("processor") or {}
        st = pr.get("wave_ms") or {}
        w(f"| {fmt(target_rate(r))} | {fmt(pr.get('batches'))} | "
          f"{fmt(pr.get('records_per_batch'), 1)} | {fmt(pr.get('batch_ms'), 1)} ms | "
          f"{fmt(pr.get('receipt_to_commit_ms'))} ms | " +
          " | ".join(f"{fmt(st.get(c), 1)} ms" if st.get(c) is not None else "none sent"
                     for c in cols) + " |")
    gaps = batch_gaps()
    if gaps:
        w(f"\nBetween two micro-batches (`processor.log`: end of one to start of the next, "
          f"{gaps['n']} batches over all steps) the consumer spent a median {gaps['median']:.0f} "
          f"ms (p90 {gaps['p90']:.0f} ms), nearly all of it the collection window "
          "(`consumer.max_wait`, 50 ms, while a batch fills): offsets are stored locally and "
          "committed by librdkafka in the background, and lag comes from its statistics. "
          f"Batches took a median {gaps['duration']:.0f} ms for {gaps['records']:.0f} records." +
          (f" What the consumer no longer does between batches, timed on the same broker during "
           f"the 1,000/s step: `fetch_watermarks` over the {overhead['partitions']} partitions "
           f"{overhead['fetch_watermarks_ms']:.1f} ms, a synchronous commit "
           f"{overhead['commit_sync_ms']:.1f} ms (medians)." if overhead else ""))
    w("\nCPU during the steps (cores, of the machine's "
      f"{machine.get('cpus', '?')}): " + "; ".join(
          f"{fmt(target_rate(r))}/s: " + ", ".join(
              f"{k} {v['cores']:.2f}" for k, v in sorted(r["cpu"].items())) for r in steps) + ".\n")

# ---- drain ----
if drains:
    lg = drains[0]["load"]
    w(f"## Drain: {' against '.join(str(d['workspaces']) for d in drains)} workspaces\n")
    w(f"{fmt(drains[0]['sent'])} one-message Kapso webhooks ({fmt(lg.get('payload_bytes'))}-byte "
      f"bodies, {fmt(lg.get('senders'))} senders per workspace) sent through the ingress into a "
      "fresh 6-partition topic while no processor ran, then drained by one fresh `processor run` "
      "with `consumer.max_records = 1000`; one topic set, keyspace and consumer group per row. "
      "Steady state: a warm-up through the same processor first stored the contact and "
      "conversation of (very likely) every workspace and sender. Wall time runs from the "
      "processor's start (start-up and group join included) until its "
      "`messages_inserted_total` counted every accepted message; batch time is the sum of the "
      "`micro-batch stored` durations (decode to commit) in its log; medians over its batches.\n")
    w("| workspaces | webhooks drained | wall drain time | msgs/s (wall) | batches | "
      "records/batch | workspaces/batch | msgs/s (batch time) | statements/batch | "
      "round trips/batch | max round trips |")
    w("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for d in drains:
        bs, (wall, busy) = d["batches"], drain_rates(d)

        def bmed(key):
            return statistics.median(b[key] for b in bs) if bs else None

        short = d["stored"] < d.get("accepted", d["sent"])
        w(f"| {fmt(d['workspaces'])} | {fmt(d['stored'])}" +
          (f" of {fmt(d.get('accepted', d['sent']))}, incomplete" if short else "") +
          f" | {d['drain_s']:.2f} s | {fmt(wall)} | {len(bs)} | {fmt(bmed('records'))} | "
          f"{fmt(bmed('workspaces'))} | {fmt(busy)} | {fmt(bmed('statements'))} | "
          f"{fmt(bmed('round_trips'))} | {fmt(max((b['round_trips'] for b in bs), default=None))} |")
    if len(drains) > 1:
        a, b = drains[0], drains[-1]
        (aw, ab), (bw, bb) = drain_rates(a), drain_rates(b)
        w(f"\n{b['workspaces']} workspaces / {a['workspaces']} workspaces: "
          f"{f'{bb / ab:.2f}' if ab and bb else 'n/a'} of the msgs/s of batch time, "
          f"{f'{bw / aw:.2f}' if aw and bw else 'n/a'} of the msgs/s of wall time.")
    w("\nCreated during the drain (0 and 0 in steady state), contacts / conversations: " +
      "; ".join(f"{d['workspaces']} workspaces: "
                f"{fmt(d['metrics'].get('inboxflow_processor_contacts_created_total'))} / "
                f"{fmt(d['metrics'].get('inboxflow_processor_conversations_created_total'))}"
                for d in drains) + ".\n")

# ---- memory ----
if steps or ing[CONNS[-1]]:
    w("## Memory (VmRSS, sampled every 250 ms)\n")
    w("| phase | process | median | max |")
    w("|---|---|---:|---:|")
    for r in ing[CONNS[-1]][:1] + steps:
        for name, v in sorted((r.get("rss") or {}).items()):
            if v:
                label = "ingress" if name == "server" else name
                w(f"| {r['label']} | {label} | {v['median_mib']:.1f} MiB | {v['max_mib']:.1f} MiB |")
    w("")

open(os.path.join(OUT, "RESULTS.md"), "w").write("\n".join(md) + "\n")

# ---- chart ----
import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

fig, ax = plt.subplots(2, 2, figsize=(13, 9))
fig.suptitle(f"inboxflow benchmarks ({machine.get('cpus', '?')} CPUs shared with Kafka and "
             f"Cassandra; {machine.get('date', '')})")
a = ax[0][0]
for k, (name, runs, color) in enumerate([("bare warp", bare, "#999999"),
                                         ("ingress", ing, "#1f77b4")]):
    xs = [i + (k - 0.5) * 0.38 for i in range(len(CONNS))]
    vals = [med(runs[c], lambda r: r["webhooks_per_s"]) or 0 for c in CONNS]
    a.bar(xs, vals, 0.38, label=name, color=color)
    for x, c, v in zip(xs, CONNS, vals):
        cpu = med(runs[c], lambda r: r["cpu"]["server"]["us_per_webhook"])
        if v:
            a.text(x, v * 0.5, f"{v:,.0f}/s\n{cpu:.0f} µs\nCPU/req", ha="center", color="white",
                   fontsize=8)
a.axhline(10000, color="red", linestyle="--", linewidth=1, label="target 10,000/s")
a.set_xticks(range(len(CONNS)), [f"{c} connections" for c in CONNS])
a.legend(loc="upper right", fontsize=8)
a.set_ylim(0, a.get_ylim()[1] * 1.15)
a.set_title("Ingress: 2 KB Kapso webhooks/s (median of rounds)")
a.set_ylabel("webhooks/s")

a = ax[0][1]
if cmp:
    sizes = sorted(cmp)
    series = [("naive", "#d62728", "naive per message"), ("pipeline", "#1f77b4", "pipeline"),
              ("raw", "#2ca02c", "raw-write ceiling"),
              ("raw_per_partition", "#98df8a", "raw, 1 partition per batch")]
    for k, (name, color, label) in enumerate(series):
        xs = [i + (k - 1.5) * 0.2 for i in range(len(sizes))]
        a.bar(xs, [cmp[b].get(name, {}).get("msgs_per_s", 0) for b in sizes], 0.2,
              label=label, color=color)
    a.set_xticks(range(len(sizes)), [f"batch {b}" for b in sizes])
    a.set_yscale("log")
    a.legend(fontsize=8)
a.set_title("Processor: messages/s by micro-batch size (steady state, median)")
a.set_ylabel("messages/s (log)")

a = ax[1][0]
if rt_rows:
    for state, style in [("first time", "o-"), ("steady", "s-"), ("steady + statuses", "^-")]:
        rows = [r for r in rt_rows if r["state"] == state]
        a.plot([r["messages"] for r in rows], [r["statements"] for r in rows], style,
               label=f"statements, {state}")
        a.plot([r["messages"] for r in rows], [r["round_trips"] for r in rows], style[0] + ":",
               alpha=0.5, label=f"round trips, {state}")
    rows = [r for r in rt_rows if r["state"] == "steady" and r["naive_statements"]]
    a.plot([r["messages"] for r in rows], [r["naive_statements"] for r in rows], "x--",
           color="#d62728", label="naive statements (= round trips)")
    a.set_xscale("log")
    a.set_yscale("log")
    a.legend(fontsize=7)
a.set_title("Statements and sequential round trips per micro-batch")
a.set_xlabel("messages in the micro-batch")

a = ax[1][1]
if steps:
    xs = [f"{target_rate(r):,.0f}" for r in steps]
    for key, style in [("p50_ms", "o-"), ("p95_ms", "s-"), ("p99_ms", "^-")]:
        a.plot(xs, [r["e2e"]["latency"][key] for r in steps], style, label=key.replace("_ms", ""))
    a.axhline(500, color="red", linestyle="--", linewidth=1, label="p99 target 500 ms")
    for i, r in enumerate(steps):
        a.annotate(f"sent {r['items_per_s']:,.0f}/s" + ("" if is_sustained(r) else
                                                        "\nNOT sustained"),
                   (i, r["e2e"]["latency"]["p99_ms"]), textcoords="offset points", xytext=(0, 8),
                   ha="center", fontsize=8)
    a.set_yscale("log")
    a.legend(fontsize=8, loc="lower right")
a.set_title("End to end: 200 → row visible, by offered rate")
a.set_xlabel("offered messages/s")
a.set_ylabel("latency (ms, log)")
fig.tight_layout()
fig.savefig(os.path.join(OUT, "chart.png"), dpi=110)
print(open(os.path.join(OUT, "RESULTS.md")).read())
