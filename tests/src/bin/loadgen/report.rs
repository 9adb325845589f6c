//! The end of a loadgen run: the summary lines it prints and the JSON report
//! `--json` writes.

use std::collections::BTreeMap;

use anyhow::Context;
use inboxflow_tests::loadgen::driver::{Drive, DriveConfig, Pace, Sample};
use inboxflow_tests::loadgen::payload::{Layout, Shape};
use inboxflow_tests::loadgen::stats::{self, ProcessorSamples, Summary, Watched, round};
use inboxflow_tests::loadgen::visibility::Visibility;
use serde_json::{Value, json};

use super::Args;

/// RSS samples in KiB, by watched process name.
pub(super) type Rss = BTreeMap<String, Vec<u64>>;

/// CPU ticks of the watched processes at the end of the warm-up and at the
/// end of sending, and the seconds between the two.
pub(super) struct Cpu {
    pub(super) watched: Vec<Watched>,
    pub(super) begin: Vec<Option<u64>>,
    pub(super) end: Vec<Option<u64>>,
    pub(super) secs: f64,
}

/// Everything the run recorded.
pub(super) struct Observed {
    pub(super) run: Drive,
    pub(super) cpu: Cpu,
    pub(super) rss: Rss,
    pub(super) processor: Option<ProcessorSamples>,
    pub(super) seen: Option<Visibility>,
}

/// HTTP outcomes of every request, warm-up included.
struct Http {
    ok: usize,
    client_err: usize,
    server_err: usize,
    errors: usize,
}

impl Http {
    fn of(samples: &[Sample]) -> Self {
        let count = |f: &dyn Fn(u16) -> bool| samples.iter().filter(|s| f(s.status)).count();
        Self {
            ok: count(&|s| (200..300).contains(&s)),
            client_err: count(&|s| (400..500).contains(&s)),
            server_err: count(&|s| s >= 500),
            errors: count(&|s| s == 0),
        }
    }
}

/// The requests sent after the warm-up.
struct Measured {
    webhooks: usize,
    /// Seconds from the end of the warm-up to the last send.
    window: f64,
    /// Messages plus statuses.
    items: usize,
    latency: Summary,
}

impl Measured {
    fn of(run: &Drive, args: &Args) -> Self {
        let measured: Vec<_> = run.measured(args.warmup).copied().collect();
        Self {
            webhooks: measured.len(),
            window: run.window(args.warmup).as_secs_f64().max(1e-9),
            items: measured.iter().map(|s| s.items).sum(),
            latency: Summary::of(measured.iter().map(|s| s.latency).collect()),
        }
    }
}

/// Prints the summary and, with `--json`, writes the report.
pub(super) fn write(
    args: &Args,
    layout: &Layout,
    drive_cfg: &DriveConfig,
    observed: &Observed,
) -> anyhow::Result<()> {
    let measured = Measured::of(&observed.run, args);
    let http = Http::of(&observed.run.samples);
    let mut report = report_json(args, layout, drive_cfg, observed, &measured, &http);
    print_summary(&args.label, &measured, &http, &report);
    if let Some(p) = &observed.processor {
        add_processor(&mut report, p);
    }
    if let Some(seen) = &observed.seen {
        add_e2e(&mut report, seen, &observed.run);
    }
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_vec_pretty(&report)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

/// CPU seconds, µs per measured webhook and cores used, per watched process.
fn cpu_json(cpu: &Cpu, webhooks: usize) -> serde_json::Map<String, Value> {
    let tck = stats::clock_ticks_per_second() as f64;
    cpu.watched
        .iter()
        .zip(cpu.begin.iter().zip(&cpu.end))
        .filter_map(|(w, (a, b))| {
            let secs = (b.as_ref()? - a.as_ref()?) as f64 / tck;
            let per = secs / webhooks.max(1) as f64 * 1e6;
            let share = secs / cpu.secs.max(1e-9);
            Some((
                w.name.clone(),
                json!({"cpu_s": round(secs, 3), "us_per_webhook": round(per, 1),
                "cores": round(share, 2)}),
            ))
        })
        .collect()
}

/// The report without the processor's and the end-to-end sections.
fn report_json(
    args: &Args,
    layout: &Layout,
    drive_cfg: &DriveConfig,
    observed: &Observed,
    m: &Measured,
    http: &Http,
) -> Value {
    let (run, rss) = (&observed.run, &observed.rss);
    let shape = |k: Shape| run.samples.iter().filter(|s| s.shape == k).count();
    let cpu = cpu_json(&observed.cpu, m.webhooks);
    let (window, items) = (m.window, m.items);
    json!({
        "label": args.label, "url": args.url, "kind": format!("{:?}", args.kind),
        "workspaces": layout.workspaces, "senders": layout.senders,
        "messages_per_webhook": args.messages_per_webhook, "payload_bytes": args.payload_bytes,
        "duplicate_rate": args.duplicate_rate, "status_rate": args.status_rate,
        "target": match drive_cfg.pace {
            Pace::Webhooks(r) => json!({"webhooks_per_s": r}),
            Pace::Messages(r) => json!({"messages_per_s": r}),
            Pace::Unlimited => json!({"concurrency": drive_cfg.concurrency}),
        },
        "concurrency": drive_cfg.concurrency, "warmup_s": args.warmup.as_secs_f64(),
        "sent": {"webhooks": run.samples.len(),
            "new_messages": run.samples.iter().map(|s| s.new_messages).sum::<usize>(),
            "statuses": run.samples.iter().map(|s| s.statuses).sum::<usize>(),
            "duplicates": run.samples.iter().filter(|s| s.duplicate).count(),
            "kapso": shape(Shape::Kapso), "kapso_batch": shape(Shape::KapsoBatch), "meta": shape(Shape::Meta)},
        "http": {"2xx": http.ok, "4xx": http.client_err, "5xx": http.server_err, "errors": http.errors},
        "window_s": round(window, 3),
        "webhooks_per_s": round(m.webhooks as f64 / window, 1),
        "items_per_s": round(items as f64 / window, 1),
        "latency": m.latency.to_json(),
        "late": run.late, "max_schedule_lag_ms": round(run.max_schedule_lag.as_secs_f64() * 1e3, 1),
        "cpu": cpu,
        "rss": rss.iter().map(|(k, v)| (k.clone(), stats::rss_json(v))).collect::<serde_json::Map<_, _>>(),
    })
}

/// The throughput, HTTP and CPU lines.
fn print_summary(label: &str, m: &Measured, http: &Http, report: &Value) {
    let (window, items) = (m.window, m.items);
    println!(
        "{}: {} webhooks in {:.1} s after warm-up: {:.0} webhooks/s, {:.0} messages+statuses/s",
        label,
        m.webhooks,
        window,
        m.webhooks as f64 / window,
        items as f64 / window
    );
    let Http {
        ok,
        client_err,
        server_err,
        errors,
    } = http;
    println!(
        "  http: {ok} 2xx, {client_err} 4xx, {server_err} 5xx, {errors} failed; latency {}",
        m.latency.line()
    );
    for (name, c) in &report["cpu"].as_object().cloned().unwrap_or_default() {
        println!(
            "  cpu {name}: {} µs per webhook ({} cores)",
            c["us_per_webhook"], c["cores"]
        );
    }
}

/// `--processor-metrics`: its consumer lag over the run and its metrics' growth.
fn add_processor(report: &mut Value, p: &ProcessorSamples) {
    let max = p.lag.iter().map(|(_, l)| *l).max();
    let last = p.lag.last().map(|(_, l)| *l);
    report["lag"] = json!({"max": max, "last": last,
        "series": p.lag.iter().map(|(t, l)| json!([round(*t, 1), l])).collect::<Vec<_>>()});
    report["processor"] = p.to_json();
    println!(
        "  processor consumer lag: max {max:?}, last {last:?}; {}",
        report["processor"]
    );
}

/// `--verify-cql`: the latency from the `200` to the row, and the drain.
fn add_e2e(report: &mut Value, seen: &Visibility, run: &Drive) {
    report["e2e"] = seen.to_json(run.finished);
    println!(
        "  end to end: {} visible, {} missing; 200 -> row {}",
        seen.latencies.len(),
        seen.missing,
        Summary::of(seen.latencies.clone()).line()
    );
    println!(
        "  {}",
        report["e2e"]["summary"].as_str().unwrap_or_default()
    );
}
