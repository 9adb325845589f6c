//! Numbers: latency percentiles, CPU time and resident memory of processes
//! (from `/proc`, Linux only), and the processor's consumer lag.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::watch;

/// Percentiles of a set of durations (nearest rank).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Summary {
    pub count: usize,
    pub p50: Duration,
    pub p95: Duration,
    pub p99: Duration,
    pub max: Duration,
    pub mean: Duration,
}

impl Summary {
    pub fn of(mut values: Vec<Duration>) -> Self {
        if values.is_empty() {
            return Self::default();
        }
        values.sort_unstable();
        let n = values.len();
        let rank = |q: f64| values[((q * n as f64).ceil() as usize).clamp(1, n) - 1];
        let total: Duration = values.iter().sum();
        Self {
            count: n,
            p50: rank(0.50),
            p95: rank(0.95),
            p99: rank(0.99),
            max: values[n - 1],
            mean: total / u32::try_from(n).unwrap_or(u32::MAX),
        }
    }

    /// Milliseconds, for reports.
    pub fn to_json(&self) -> Value {
        let ms = |d: Duration| (d.as_secs_f64() * 1e5).round() / 100.0;
        json!({"count": self.count, "p50_ms": ms(self.p50), "p95_ms": ms(self.p95),
            "p99_ms": ms(self.p99), "max_ms": ms(self.max), "mean_ms": ms(self.mean)})
    }

    pub fn line(&self) -> String {
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        format!(
            "p50 {:.2} ms  p95 {:.2} ms  p99 {:.2} ms  max {:.2} ms  (n = {})",
            ms(self.p50),
            ms(self.p95),
            ms(self.p99),
            ms(self.max),
            self.count
        )
    }
}

/// `x` rounded to `digits` decimals, for reports.
pub fn round(x: f64, digits: i32) -> f64 {
    let f = 10f64.powi(digits);
    (x * f).round() / f
}

/// Clock ticks per second of `/proc/<pid>/stat` times (`getconf CLK_TCK`, usually 100).
pub fn clock_ticks_per_second() -> u64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100)
}

/// User plus system CPU time of a process so far, in clock ticks.
/// `pid` may be `"self"`.
pub fn cpu_ticks(pid: &str) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) start at field 3.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// Resident set size of a process, in KiB (`VmRSS`).
pub fn rss_kib(pid: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

/// A process whose CPU and memory a run watches.
#[derive(Debug, Clone)]
pub struct Watched {
    pub name: String,
    pub pid: String,
}

/// Samples the RSS of `watched` every `every` until `stop` turns true.
/// Returns, per name, the samples in KiB.
pub async fn sample_rss(
    watched: Vec<Watched>,
    every: Duration,
    mut stop: watch::Receiver<bool>,
) -> BTreeMap<String, Vec<u64>> {
    let mut out: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    loop {
        for w in &watched {
            if let Some(kib) = rss_kib(&w.pid) {
                out.entry(w.name.clone()).or_default().push(kib);
            }
        }
        tokio::select! {
            _ = stop.wait_for(|s| *s) => return out,
            () = tokio::time::sleep(every) => {}
        }
    }
}

/// Median and maximum of RSS samples, in MiB.
pub fn rss_json(samples: &[u64]) -> Value {
    let mut s = samples.to_vec();
    s.sort_unstable();
    let mib = |k: u64| (k as f64 / 1024.0 * 10.0).round() / 10.0;
    match s.len() {
        0 => Value::Null,
        n => json!({"samples": n, "median_mib": mib(s[n / 2]), "max_mib": mib(s[n - 1]),
            "first_mib": mib(samples[0]), "last_mib": mib(samples[n - 1])}),
    }
}

/// Sum of `inboxflow_processor_consumer_lag` over partitions, from `/metrics` text.
pub fn consumer_lag(metrics: &str) -> Option<i64> {
    let values: Vec<i64> = metrics
        .lines()
        .filter(|l| l.starts_with("inboxflow_processor_consumer_lag"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .map(|v| v as i64)
        .collect();
    (!values.is_empty()).then(|| values.iter().sum())
}

/// The value of one series (`name` or `name{labels}`, exactly as exposed).
pub fn series(metrics: &str, name: &str) -> Option<f64> {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

/// What the processor's `/metrics` showed during a run.
#[derive(Debug, Default)]
pub struct ProcessorSamples {
    /// (seconds since start, summed consumer lag).
    pub lag: Vec<(f64, i64)>,
    pub first: Option<String>,
    pub last: Option<String>,
}

impl ProcessorSamples {
    /// How much a counter (or a histogram's `_sum`/`_count`) grew during the run.
    pub fn delta(&self, name: &str) -> Option<f64> {
        Some(series(self.last.as_deref()?, name)? - series(self.first.as_deref()?, name)?)
    }

    /// Mean of a histogram over the run (`delta(_sum) / delta(_count)`), if it moved.
    pub fn mean(&self, name: &str, labels: &str) -> Option<f64> {
        let sum = self.delta(&format!("{name}_sum{labels}"))?;
        let count = self.delta(&format!("{name}_count{labels}"))?;
        (count > 0.0).then(|| sum / count)
    }

    /// Micro-batches during the run and their mean size, duration and waves.
    pub fn to_json(&self) -> Value {
        const P: &str = "inboxflow_processor";
        let ms = |v: Option<f64>| v.map(|s| (s * 1e5).round() / 100.0);
        let waves: serde_json::Map<String, Value> = ["lookups", "more_lookups", "writes"]
            .into_iter()
            .map(|wave| {
                let labels = format!("{{wave=\"{wave}\"}}");
                (
                    wave.to_owned(),
                    json!(ms(self.mean(&format!("{P}_wave_duration_seconds"), &labels))),
                )
            })
            .collect();
        json!({
            "batches": self.delta(&format!("{P}_batches_total")),
            "records_per_batch": self.mean(&format!("{P}_batch_records"), ""),
            "batch_ms": ms(self.mean(&format!("{P}_batch_duration_seconds"), "")),
            "receipt_to_commit_ms": ms(self.mean(&format!("{P}_end_to_end_latency_seconds"), "")),
            "wave_ms": waves,
            "db_requests_per_batch": self.mean(&format!("{P}_db_requests_per_batch"), ""),
            "round_trips_per_batch": self.mean(&format!("{P}_db_round_trips_per_batch"), ""),
        })
    }
}

/// Scrapes the processor's `url` every `every` until `stop`.
pub async fn sample_processor(
    url: String,
    every: Duration,
    mut stop: watch::Receiver<bool>,
) -> ProcessorSamples {
    let client = reqwest::Client::new();
    let started = std::time::Instant::now();
    let mut out = ProcessorSamples::default();
    loop {
        let stopping = *stop.borrow();
        if let Ok(response) = client.get(&url).send().await
            && let Ok(text) = response.text().await
        {
            if let Some(lag) = consumer_lag(&text) {
                out.lag.push((started.elapsed().as_secs_f64(), lag));
            }
            if out.first.is_none() {
                out.first = Some(text.clone());
            }
            out.last = Some(text);
        }
        if stopping {
            return out;
        }
        tokio::select! {
            _ = stop.wait_for(|s| *s) => {}
            () = tokio::time::sleep(every) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let values: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        let s = Summary::of(values);
        assert_eq!(s.p50, Duration::from_millis(50));
        assert_eq!(s.p99, Duration::from_millis(99));
        assert_eq!(s.max, Duration::from_millis(100));
        assert_eq!(Summary::of(Vec::new()).count, 0);
    }

    #[test]
    fn lag_is_summed_over_partitions() {
        let text = "# HELP x\ninboxflow_processor_consumer_lag{partition=\"0\"} 3\n\
                    inboxflow_processor_consumer_lag{partition=\"1\"} 4\nother 9\n";
        assert_eq!(consumer_lag(text), Some(7));
        assert_eq!(consumer_lag("other 1\n"), None);
        assert_eq!(series(text, "other"), Some(9.0));
        assert_eq!(
            series(text, "inboxflow_processor_consumer_lag{partition=\"1\"}"),
            Some(4.0)
        );
    }

    #[test]
    fn this_process_has_cpu_time_and_memory() {
        assert!(cpu_ticks("self").is_some());
        assert!(rss_kib("self").is_some_and(|k| k > 0));
    }
}
