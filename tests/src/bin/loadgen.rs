//! loadgen: sends realistic signed WhatsApp webhooks (Kapso single and batch
//! events, Meta payloads) to an ingress and reports what happened.
//!
//! ```text
//! # 1. a registry that routes the generated numbers; start the ingress with it
//! loadgen --workspaces 8 --write-registry /tmp/registry.toml
//! # 2. 2 KB Kapso webhooks as fast as 64 connections allow, for 10 s
//! loadgen --url http://127.0.0.1:8080 --kind kapso --payload-bytes 2048 --duration 10s
//! # 3. a mix at 1,000 messages/s, waiting for every message to be stored
//! loadgen --url http://127.0.0.1:8080 --kind mix --message-rate 1000 --duration 20s \
//!     --verify-cql --keyspace inboxflow --processor-metrics http://127.0.0.1:9091/metrics
//! ```
//!
//! It prints a summary (sent, 2xx/4xx/5xx, latency p50/p95/p99/max, and with
//! `--verify-cql` the end-to-end latency and throughput) and with `--json`
//! writes it as JSON. Secrets default to the values `deploy/bench/run` uses.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use inboxflow_tests::loadgen::driver::{self, DriveConfig, Pace, Until};
use inboxflow_tests::loadgen::payload::{GenConfig, Generator, Kind, Layout, Shape};
use inboxflow_tests::loadgen::stats::{self, Summary, Watched, round};
use inboxflow_tests::loadgen::visibility::{self, VisibilityConfig};
use serde_json::{Value, json};
use tokio::sync::{mpsc, watch};

#[derive(Debug, Parser)]
#[command(about = "Signed Kapso/Meta webhooks against an inboxflow ingress")]
struct Args {
    /// Base URL of the ingress (or any server answering POST /webhooks/{kapso,meta}).
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    url: String,
    /// Number of workspaces (each with one business phone_number_id).
    #[arg(long, default_value_t = 4)]
    workspaces: usize,
    /// Customer phones per workspace.
    #[arg(long, default_value_t = 50)]
    senders: usize,
    /// Workspace ids are `<prefix>_wsNNN`.
    #[arg(long, default_value = "lg")]
    prefix: String,
    /// Write the registry TOML routing these workspaces to FILE, then exit.
    #[arg(long, value_name = "FILE")]
    write_registry: Option<PathBuf>,
    #[arg(long, value_enum, default_value_t = Kind::Kapso)]
    kind: Kind,
    /// Kapso batches and Meta payloads carry 1..=N messages (or statuses).
    #[arg(long, default_value_t = 1)]
    messages_per_webhook: usize,
    /// Pad message text with words until a body is about this many bytes.
    #[arg(long, default_value_t = 2048)]
    payload_bytes: usize,
    /// Share of webhooks that repeat an earlier one byte for byte (0..1).
    #[arg(long, default_value_t = 0.0)]
    duplicate_rate: f64,
    /// Share of new webhooks that carry delivery statuses, not messages (0..1).
    #[arg(long, default_value_t = 0.0)]
    status_rate: f64,
    /// Target webhooks per second (open loop). Without a rate: as fast as --concurrency allows.
    #[arg(long, conflicts_with = "message_rate")]
    rate: Option<f64>,
    /// Target messages (plus statuses) per second (open loop).
    #[arg(long)]
    message_rate: Option<f64>,
    /// Workers, each with one connection and one request in flight.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Runtime threads of loadgen itself (1: a single-threaded runtime, the
    /// cheapest on a small machine it shares with the server).
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// How long to send (`10s`, `500ms`, `2m`).
    #[arg(long, value_parser = parse_duration, default_value = "10s", conflicts_with = "count")]
    duration: Duration,
    /// How many webhooks to send, instead of a duration.
    #[arg(long)]
    count: Option<u64>,
    /// Requests sent during this first part of the run are not counted.
    #[arg(long, value_parser = parse_duration, default_value = "0s")]
    warmup: Duration,
    #[arg(
        long,
        env = "LOADGEN_KAPSO_SECRET",
        default_value = "bench-kapso-secret"
    )]
    kapso_secret: String,
    #[arg(long, env = "LOADGEN_META_SECRET", default_value = "bench-meta-secret")]
    meta_secret: String,
    /// Wait until every accepted message id is visible in message_index.
    #[arg(long)]
    verify_cql: bool,
    #[arg(long, env = "CQL_NODES", default_value = "127.0.0.1:9042")]
    cql_nodes: String,
    #[arg(long, default_value = "inboxflow")]
    keyspace: String,
    /// How long to keep waiting for rows after the last 200.
    #[arg(long, value_parser = parse_duration, default_value = "60s")]
    verify_timeout: Duration,
    #[arg(long, value_parser = parse_duration, default_value = "20ms")]
    poll_interval: Duration,
    /// The processor's /metrics URL: its consumer lag is sampled every second, and its
    /// batch and step metrics are compared between the start and the end of the run.
    #[arg(long)]
    processor_metrics: Option<String>,
    /// NAME=PID of a process whose CPU time (per webhook) and RSS to report; repeatable.
    #[arg(long = "watch-pid", value_parser = parse_watched)]
    watch: Vec<Watched>,
    /// Makes message ids unique; defaults to a random value.
    #[arg(long)]
    run_id: Option<String>,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// A name for this run in the JSON report.
    #[arg(long, default_value = "loadgen")]
    label: String,
    /// Write the report as JSON to FILE.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut runtime = if args.threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        b.worker_threads(args.threads);
        b
    };
    runtime.enable_all().build()?.block_on(run(args))
}

async fn run(args: Args) -> anyhow::Result<()> {
    let layout = Layout {
        prefix: args.prefix.clone(),
        workspaces: args.workspaces.max(1),
        senders: args.senders.max(1),
    };
    if let Some(path) = &args.write_registry {
        std::fs::write(path, layout.registry_toml())
            .with_context(|| format!("writing {}", path.display()))?;
        println!(
            "registry for {} workspaces written to {}",
            layout.workspaces,
            path.display()
        );
        return Ok(());
    }
    let run_id = args
        .run_id
        .clone()
        .unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string()[..8].to_owned());
    let gen_cfg = GenConfig {
        kind: args.kind,
        messages_per_webhook: args.messages_per_webhook.max(1),
        payload_bytes: args.payload_bytes,
        duplicate_rate: args.duplicate_rate,
        status_rate: args.status_rate,
        run_id,
        kapso_secret: args.kapso_secret.clone(),
        meta_secret: args.meta_secret.clone(),
    };
    let generator = |k: usize| {
        let cfg = GenConfig {
            run_id: format!("{}w{k}", gen_cfg.run_id),
            ..gen_cfg.clone()
        };
        Generator::new(cfg, layout.clone(), args.seed.wrapping_add(k as u64))
    };
    let drive_cfg = DriveConfig {
        base_url: args.url.trim_end_matches('/').to_owned(),
        concurrency: args.concurrency.max(1),
        pace: match (args.rate, args.message_rate) {
            (Some(r), _) => Pace::Webhooks(r),
            (None, Some(r)) => Pace::Messages(r),
            (None, None) => Pace::Unlimited,
        },
        until: args
            .count
            .map_or(Until::Elapsed(args.duration), Until::Count),
        warmup: args.warmup,
        request_timeout: Duration::from_secs(30),
    };

    let (stop_tx, stop_rx) = watch::channel(false);
    let rss = tokio::spawn(stats::sample_rss(
        args.watch.clone(),
        Duration::from_millis(250),
        stop_rx.clone(),
    ));
    let processor = args.processor_metrics.clone().map(|url| {
        tokio::spawn(stats::sample_processor(
            url,
            Duration::from_secs(1),
            stop_rx.clone(),
        ))
    });
    let mut watched = args.watch.clone();
    watched.push(Watched {
        name: "loadgen".into(),
        pid: "self".into(),
    });
    let cpu_start = {
        let (watched, warmup) = (watched.clone(), args.warmup);
        tokio::spawn(async move {
            tokio::time::sleep(warmup).await;
            let ticks: Vec<Option<u64>> =
                watched.iter().map(|w| stats::cpu_ticks(&w.pid)).collect();
            (Instant::now(), ticks)
        })
    };
    let (tx, rx) = mpsc::unbounded_channel();
    let verifier = args.verify_cql.then(|| {
        let cfg = VisibilityConfig {
            nodes: args.cql_nodes.clone(),
            keyspace: args.keyspace.clone(),
            poll_interval: args.poll_interval,
            timeout: args.verify_timeout,
        };
        let ids = (0..layout.workspaces)
            .map(|w| layout.workspace_id(w))
            .collect();
        tokio::spawn(visibility::watch(cfg, ids, rx))
    });
    let accepted = verifier.is_some().then_some(tx);

    let run = driver::drive(&drive_cfg, generator, accepted).await?;
    let cpu_end: Vec<Option<u64>> = watched.iter().map(|w| stats::cpu_ticks(&w.pid)).collect();
    let (cpu_started, cpu_begin) = cpu_start.await?;
    let cpu_secs = (run.finished - cpu_started).as_secs_f64();
    let seen = match verifier {
        Some(v) => Some(v.await??),
        None => None,
    };
    let _ = stop_tx.send(true);
    let rss = rss.await?;
    let processor = match processor {
        Some(p) => Some(p.await?),
        None => None,
    };

    // ---- the report ----
    let measured: Vec<_> = run.measured(args.warmup).copied().collect();
    let window = run.window(args.warmup).as_secs_f64().max(1e-9);
    let count = |f: &dyn Fn(u16) -> bool| run.samples.iter().filter(|s| f(s.status)).count();
    let (ok, client_err, server_err) = (
        count(&|s| (200..300).contains(&s)),
        count(&|s| (400..500).contains(&s)),
        count(&|s| s >= 500),
    );
    let errors = count(&|s| s == 0);
    let latency = Summary::of(measured.iter().map(|s| s.latency).collect());
    let items: usize = measured.iter().map(|s| s.items).sum();
    let shape = |k: Shape| run.samples.iter().filter(|s| s.shape == k).count();
    let tck = stats::clock_ticks_per_second() as f64;
    let cpu: serde_json::Map<String, Value> = watched
        .iter()
        .zip(cpu_begin.iter().zip(&cpu_end))
        .filter_map(|(w, (a, b))| {
            let secs = (b.as_ref()? - a.as_ref()?) as f64 / tck;
            let per = secs / measured.len().max(1) as f64 * 1e6;
            let share = secs / cpu_secs.max(1e-9);
            Some((
                w.name.clone(),
                json!({"cpu_s": round(secs, 3), "us_per_webhook": round(per, 1),
                "cores": round(share, 2)}),
            ))
        })
        .collect();
    let mut report = json!({
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
        "http": {"2xx": ok, "4xx": client_err, "5xx": server_err, "errors": errors},
        "window_s": round(window, 3),
        "webhooks_per_s": round(measured.len() as f64 / window, 1),
        "items_per_s": round(items as f64 / window, 1),
        "latency": latency.to_json(),
        "late": run.late, "max_schedule_lag_ms": round(run.max_schedule_lag.as_secs_f64() * 1e3, 1),
        "cpu": cpu,
        "rss": rss.iter().map(|(k, v)| (k.clone(), stats::rss_json(v))).collect::<serde_json::Map<_, _>>(),
    });
    println!(
        "{}: {} webhooks in {:.1} s after warm-up: {:.0} webhooks/s, {:.0} messages+statuses/s",
        args.label,
        measured.len(),
        window,
        measured.len() as f64 / window,
        items as f64 / window
    );
    println!(
        "  http: {ok} 2xx, {client_err} 4xx, {server_err} 5xx, {errors} failed; latency {}",
        latency.line()
    );
    for (name, c) in &report["cpu"].as_object().cloned().unwrap_or_default() {
        println!(
            "  cpu {name}: {} µs per webhook ({} cores)",
            c["us_per_webhook"], c["cores"]
        );
    }
    if let Some(p) = &processor {
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
    if let Some(seen) = seen {
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
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_vec_pretty(&report)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (number, unit) = match s.find(|c: char| c.is_ascii_alphabetic()) {
        Some(i) => (&s[..i], &s[i..]),
        None => (s, "s"),
    };
    let n: f64 = number
        .parse()
        .map_err(|_| format!("not a duration: {s:?}"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        _ => return Err(format!("unknown unit in {s:?} (use ms, s or m)")),
    };
    Duration::try_from_secs_f64(secs).map_err(|e| e.to_string())
}

fn parse_watched(s: &str) -> Result<Watched, String> {
    let (name, pid) = s.split_once('=').ok_or("expected NAME=PID")?;
    pid.parse::<u32>()
        .map_err(|_| format!("not a pid: {pid}"))?;
    Ok(Watched {
        name: name.to_owned(),
        pid: pid.to_owned(),
    })
}
