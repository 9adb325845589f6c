//! A real Prometheus for tests: the `prometheus` binary on a free loopback
//! port, scraping given targets every second, with its storage in a fresh
//! temporary folder; plus its HTTP query API and `promtool`.
//!
//! Both binaries come from Debian's `prometheus` package (`.ci/run` installs
//! it); `PROMETHEUS_BIN` and `PROMTOOL_BIN` point elsewhere. When one is
//! missing, helpers fail with its name and the install command; they never skip.

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, bail, ensure};
use serde_json::Value;

use crate::poll;

/// How to install both binaries, quoted in failure messages.
pub const INSTALL: &str = "apt-get install prometheus";

/// The repository root (for deploy/ files).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from(".."))
}

/// The path of `name` (`prometheus` or `promtool`), or an error naming it and
/// how to install it.
pub fn binary(name: &str) -> anyhow::Result<PathBuf> {
    let override_var = format!("{}_BIN", name.to_ascii_uppercase());
    if let Some(path) = std::env::var_os(&override_var).map(PathBuf::from) {
        ensure!(
            path.is_file(),
            "{override_var}={} is not a file; unset it to use `{name}` from `{INSTALL}`",
            path.display()
        );
        return Ok(path);
    }
    let search = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&search)
        .chain([PathBuf::from("/usr/bin")])
        .map(|dir| dir.join(name))
        .find(|path| path.is_file())
        .with_context(|| {
            format!(
                "`{name}` is not installed (not on PATH, not in /usr/bin): install it with \
                 `{INSTALL}` (Debian's package has both prometheus and promtool), \
                 or set {override_var}"
            )
        })
}

/// Runs `promtool ARGS` in the repository root; its output, or an error with it.
pub fn promtool(args: &[&str]) -> anyhow::Result<String> {
    let bin = binary("promtool")?;
    let out = std::process::Command::new(&bin)
        .args(args)
        .current_dir(repo_root())
        .output()
        .with_context(|| format!("running {}", bin.display()))?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if !out.status.success() {
        bail!(
            "`promtool {}` failed ({}):\n{text}",
            args.join(" "),
            out.status
        );
    }
    Ok(text)
}

/// A scrape target: Prometheus job name and `host:port` of a `/metrics` server.
#[derive(Debug, Clone)]
pub struct Target {
    pub job: &'static str,
    pub address: String,
}

/// The answer to an instant query.
#[derive(Debug, Clone)]
pub struct QueryResult {
    /// `(labels, value)` per series; a scalar is one sample without labels.
    pub samples: Vec<(serde_json::Map<String, Value>, f64)>,
}

impl QueryResult {
    /// At least one sample with a finite value (`NaN`, as from
    /// `histogram_quantile` without observations, shows nothing on a panel).
    pub fn has_data(&self) -> bool {
        self.samples.iter().any(|(_, v)| v.is_finite())
    }
}

/// A rule as loaded by Prometheus (`/api/v1/rules`).
#[derive(Debug, Clone)]
pub struct LoadedRule {
    pub name: String,
    pub query: String,
    pub health: String,
    pub last_error: String,
}

/// A running Prometheus; killed, and its folder removed, when dropped.
#[derive(Debug)]
pub struct TestPrometheus {
    pub url: String,
    client: reqwest::Client,
    dir: PathBuf,
    log: PathBuf,
    child: tokio::process::Child,
}

impl TestPrometheus {
    /// Starts Prometheus scraping `targets` every second and evaluating
    /// `rule_files` every second; returns once `/-/ready` answers.
    pub async fn start(targets: &[Target], rule_files: &[PathBuf]) -> anyhow::Result<Self> {
        let bin = binary("prometheus")?;
        let dir = std::env::temp_dir().join(crate::unique_name("prometheus"));
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        std::fs::write(dir.join("prometheus.yml"), config(targets, rule_files))
            .context("writing prometheus.yml")?;
        // A free port can be taken between our probe and Prometheus' bind: retry.
        let mut last = None;
        for _ in 0..3 {
            match Self::launch(&bin, &dir).await {
                Ok(p) => return Ok(p),
                Err(e) => last = Some(e),
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
        Err(last.unwrap_or_else(|| anyhow::anyhow!("prometheus did not start")))
    }

    async fn launch(bin: &Path, dir: &Path) -> anyhow::Result<Self> {
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let log = dir.join(format!("prometheus-{port}.log"));
        let log_file = std::fs::File::create(&log).context("creating the log file")?;
        let child = tokio::process::Command::new(bin)
            .arg(format!(
                "--config.file={}",
                dir.join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join(format!("data-{port}")).display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(log_file)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let url = format!("http://127.0.0.1:{port}");
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()?;
        let child = std::sync::Mutex::new(child);
        let ready = poll::until("Prometheus /-/ready", Duration::from_secs(30), || async {
            let exited = child
                .lock()
                .map_err(|_| anyhow::anyhow!("poisoned lock"))?
                .try_wait()?;
            if let Some(status) = exited {
                bail!("prometheus exited ({status})");
            }
            let res = client.get(format!("{url}/-/ready")).send().await;
            Ok(res.ok().filter(|r| r.status().is_success()).map(|_| ()))
        })
        .await;
        let mut child = child
            .into_inner()
            .map_err(|_| anyhow::anyhow!("poisoned lock"))?;
        if let Err(e) = ready {
            // Killed here: `Self` would also remove the folder, still needed for a retry.
            let _ = child.start_kill();
            return Err(e.context(format!("prometheus log:\n{}", tail(&log))));
        }
        Ok(Self {
            url,
            client,
            dir: dir.to_owned(),
            log,
            child,
        })
    }

    /// The last lines of Prometheus' log, for failure messages.
    pub fn log_tail(&self) -> String {
        tail(&self.log)
    }

    /// Runs an instant query. `Err` when Prometheus refuses it (a parse or
    /// evaluation error, with Prometheus' message).
    pub async fn query(&self, expr: &str) -> anyhow::Result<QueryResult> {
        let body: Value = self
            .client
            .get(format!("{}/api/v1/query", self.url))
            .query(&[("query", expr)])
            .send()
            .await
            .context("querying Prometheus")?
            .json()
            .await
            .context("reading the query response")?;
        if body["status"] != "success" {
            bail!("{}: {}", body["errorType"], body["error"]);
        }
        let data = &body["data"];
        let samples = match data["resultType"].as_str() {
            Some("vector") => data["result"]
                .as_array()
                .map(|series| {
                    series
                        .iter()
                        .map(|s| {
                            let labels = s["metric"].as_object().cloned().unwrap_or_default();
                            (labels, sample_value(&s["value"]))
                        })
                        .collect()
                })
                .unwrap_or_default(),
            Some("scalar") => vec![(serde_json::Map::new(), sample_value(&data["result"]))],
            other => bail!("unexpected result type {other:?} for an instant query"),
        };
        Ok(QueryResult { samples })
    }

    /// Every alerting and recording rule Prometheus has loaded.
    pub async fn rules(&self) -> anyhow::Result<Vec<LoadedRule>> {
        let body: Value = self
            .client
            .get(format!("{}/api/v1/rules", self.url))
            .send()
            .await?
            .json()
            .await?;
        let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
        let groups = body["data"]["groups"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        Ok(groups
            .iter()
            .flat_map(|g| g["rules"].as_array().cloned().unwrap_or_default())
            .map(|r| LoadedRule {
                name: text(&r["name"]),
                query: text(&r["query"]),
                health: text(&r["health"]),
                last_error: text(&r["lastError"]),
            })
            .collect())
    }

    /// Waits until every target has been scraped successfully (`up == 1`).
    pub async fn wait_for_targets(&self, count: usize, timeout: Duration) -> anyhow::Result<()> {
        poll::until(&format!("{count} targets up"), timeout, || async {
            let up = self.query("up == 1").await?;
            Ok((up.samples.len() >= count).then_some(()))
        })
        .await
        .map_err(|e| e.context(format!("prometheus log:\n{}", self.log_tail())))
    }
}

impl Drop for TestPrometheus {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The last 20 lines of a log file.
fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

/// `[timestamp, "value"]` to a number (`"NaN"`, `"+Inf"` included).
fn sample_value(pair: &Value) -> f64 {
    pair[1]
        .as_str()
        .and_then(|v| v.parse().ok())
        .unwrap_or(f64::NAN)
}

/// The generated configuration; strings are written as JSON, which is YAML.
fn config(targets: &[Target], rule_files: &[PathBuf]) -> String {
    let quote = |s: &str| serde_json::to_string(s).unwrap_or_default();
    let mut out = String::from(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n",
    );
    out.push_str("rule_files:\n");
    for file in rule_files {
        out.push_str(&format!("  - {}\n", quote(&file.to_string_lossy())));
    }
    let mut jobs: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for t in targets {
        jobs.entry(t.job).or_default().push(quote(&t.address));
    }
    out.push_str("scrape_configs:\n");
    for (job, addresses) in jobs {
        out.push_str(&format!(
            "  - job_name: {}\n    static_configs:\n      - targets: [{}]\n",
            quote(job),
            addresses.join(", ")
        ));
    }
    out
}
