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

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use inboxflow_tests::loadgen::driver::{self, Accepted, DriveConfig, Pace, Until};
use inboxflow_tests::loadgen::payload::{GenConfig, Generator, Kind, Layout};
use inboxflow_tests::loadgen::stats::{self, ProcessorSamples, Watched};
use inboxflow_tests::loadgen::visibility::{self, Visibility, VisibilityConfig};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use report::{Cpu, Observed, Rss};

#[path = "loadgen/report.rs"]
mod report;

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
        return write_registry(&layout, path);
    }
    let gen_cfg = gen_config(&args);
    let generator = |k: usize| {
        let cfg = GenConfig {
            run_id: format!("{}w{k}", gen_cfg.run_id),
            ..gen_cfg.clone()
        };
        Generator::new(cfg, layout.clone(), args.seed.wrapping_add(k as u64))
    };
    let drive_cfg = drive_config(&args);

    let samplers = Samplers::start(&args);
    let watched = watched_with_self(&args.watch);
    let cpu_start = spawn_cpu_start(watched.clone(), args.warmup);
    let (tx, rx) = mpsc::unbounded_channel();
    let verifier = args.verify_cql.then(|| spawn_verifier(&args, &layout, rx));
    let accepted = verifier.is_some().then_some(tx);

    let run = driver::drive(&drive_cfg, generator, accepted).await?;
    let cpu_end = cpu_ticks_of(&watched);
    let (cpu_started, cpu_begin) = cpu_start.await?;
    let cpu = Cpu {
        secs: (run.finished - cpu_started).as_secs_f64(),
        watched,
        begin: cpu_begin,
        end: cpu_end,
    };
    let seen = match verifier {
        Some(v) => Some(v.await??),
        None => None,
    };
    let (rss, processor) = samplers.stop().await?;
    let observed = Observed {
        run,
        cpu,
        rss,
        processor,
        seen,
    };
    report::write(&args, &layout, &drive_cfg, &observed)
}

/// `--write-registry`: the registry TOML routing `layout`'s workspaces.
fn write_registry(layout: &Layout, path: &Path) -> anyhow::Result<()> {
    std::fs::write(path, layout.registry_toml())
        .with_context(|| format!("writing {}", path.display()))?;
    println!(
        "registry for {} workspaces written to {}",
        layout.workspaces,
        path.display()
    );
    Ok(())
}

/// What the generators make; each worker's gets its own run id from it.
fn gen_config(args: &Args) -> GenConfig {
    let run_id = args
        .run_id
        .clone()
        .unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string()[..8].to_owned());
    GenConfig {
        kind: args.kind,
        messages_per_webhook: args.messages_per_webhook.max(1),
        payload_bytes: args.payload_bytes,
        duplicate_rate: args.duplicate_rate,
        status_rate: args.status_rate,
        run_id,
        kapso_secret: args.kapso_secret.clone(),
        meta_secret: args.meta_secret.clone(),
    }
}

/// How the driver sends: where, how many at once, at what pace, for how long.
fn drive_config(args: &Args) -> DriveConfig {
    DriveConfig {
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
    }
}

/// The background samplers of RSS and of the processor's `/metrics`, which
/// run until [`Samplers::stop`].
struct Samplers {
    stop_tx: watch::Sender<bool>,
    rss: JoinHandle<Rss>,
    processor: Option<JoinHandle<ProcessorSamples>>,
}

impl Samplers {
    fn start(args: &Args) -> Self {
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
        Self {
            stop_tx,
            rss,
            processor,
        }
    }

    async fn stop(self) -> anyhow::Result<(Rss, Option<ProcessorSamples>)> {
        let _ = self.stop_tx.send(true);
        let rss = self.rss.await?;
        let processor = match self.processor {
            Some(p) => Some(p.await?),
            None => None,
        };
        Ok((rss, processor))
    }
}

/// The `--watch-pid` processes and loadgen itself, whose CPU time is reported.
fn watched_with_self(watch: &[Watched]) -> Vec<Watched> {
    let mut watched = watch.to_vec();
    watched.push(Watched {
        name: "loadgen".into(),
        pid: "self".into(),
    });
    watched
}

/// The CPU ticks of each of `watched`, `None` where `/proc` has none.
fn cpu_ticks_of(watched: &[Watched]) -> Vec<Option<u64>> {
    watched.iter().map(|w| stats::cpu_ticks(&w.pid)).collect()
}

/// When the warm-up ends: that instant and the CPU ticks of `watched` then.
fn spawn_cpu_start(
    watched: Vec<Watched>,
    warmup: Duration,
) -> JoinHandle<(Instant, Vec<Option<u64>>)> {
    tokio::spawn(async move {
        tokio::time::sleep(warmup).await;
        let ticks = cpu_ticks_of(&watched);
        (Instant::now(), ticks)
    })
}

/// `--verify-cql`: the watcher of every accepted message id's row.
fn spawn_verifier(
    args: &Args,
    layout: &Layout,
    rx: mpsc::UnboundedReceiver<Accepted>,
) -> JoinHandle<anyhow::Result<Visibility>> {
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
