//! The processor as a separate OS process, so that a test can `kill -9`,
//! stop (SIGSTOP) and continue it.
//!
//! [`processor_binary`] (and [`ingress_binary`]) finds `processor` next to the test executable
//! (`target/<profile>/processor`) and runs `cargo build -p
//! inboxflow-processor --bin processor --features fault-injection` first (the
//! feature the tests crate enables anyway, so the faults of
//! `processor::pipeline::faults` can be asked for through the environment): a no-op when the binary is up
//! to date, and the only way to be sure it is (`cargo test` does not rebuild
//! another package's binaries). When cargo cannot be run at all, an existing
//! binary is used as it is; when the build fails, the test fails with its output.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::OnceLock;

use anyhow::{Context, bail};
use processor::config::ProcessorConfig;
use tokio::process::{Child, Command};

/// The processor binary, built (or confirmed up to date) once per test binary.
pub fn processor_binary() -> anyhow::Result<PathBuf> {
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            build("inboxflow-processor", "processor", &["fault-injection"])
                .map_err(|e| format!("{e:#}"))
        })
        .clone()
        .map_err(anyhow::Error::msg)
}

/// The ingress binary, built (or confirmed up to date) once per test binary.
pub fn ingress_binary() -> anyhow::Result<PathBuf> {
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    BUILT
        .get_or_init(|| build("inboxflow-ingress", "ingress", &[]).map_err(|e| format!("{e:#}")))
        .clone()
        .map_err(anyhow::Error::msg)
}

fn build(package: &str, name: &str, features: &[&str]) -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("locating the test executable")?;
    // target/<profile>/deps/<test>-<hash>
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .context("the test executable is not in target/<profile>/deps")?;
    let target_dir = profile_dir
        .parent()
        .context("the profile folder has no parent")?;
    let binary = profile_dir.join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = std::process::Command::new(&cargo);
    command
        .current_dir(&root)
        .args(["build", "--locked", "-p", package, "--bin", name])
        .env("CARGO_TARGET_DIR", target_dir);
    if !features.is_empty() {
        command.args(["--features", &features.join(",")]);
    }
    if profile_dir.file_name().is_some_and(|n| n == "release") {
        command.arg("--release");
    }
    match command.output() {
        Ok(out) if out.status.success() => {}
        Ok(out) => bail!(
            "`cargo build -p {package}` failed ({}):\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(err) if binary.is_file() => {
            eprintln!(
                "cannot run cargo ({err}); using the existing {}",
                binary.display()
            );
        }
        Err(err) => bail!(
            "{} is missing and cargo could not be run to build it: {err}",
            binary.display()
        ),
    }
    anyhow::ensure!(
        binary.is_file(),
        "{} is missing after cargo build",
        binary.display()
    );
    Ok(binary)
}

/// A `processor run` child process configured like `cfg`, logging to a file.
#[derive(Debug)]
pub struct ProcessorProcess {
    child: Child,
    pub log: PathBuf,
}

impl ProcessorProcess {
    /// Starts `processor run` with `cfg` given as `INBOXFLOW_*` variables.
    pub fn spawn(cfg: &ProcessorConfig, log: PathBuf) -> anyhow::Result<Self> {
        Self::spawn_with(cfg, log, &[])
    }

    /// [`Self::spawn`], with extra environment variables (e.g. a fault of
    /// `processor::pipeline::faults`, which the tests' binary is built with).
    pub fn spawn_with(
        cfg: &ProcessorConfig,
        log: PathBuf,
        extra_env: &[(&str, &str)],
    ) -> anyhow::Result<Self> {
        let binary = processor_binary()?;
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .with_context(|| format!("opening {}", log.display()))?;
        let err = out.try_clone()?;
        let ms = |d: std::time::Duration| format!("{}ms", d.as_millis());
        let mut command = Command::new(&binary);
        // Nothing of the test's own INBOXFLOW_* environment (a config file,
        // INBOXFLOW_LONG_FAULTS, which the processor would refuse as an
        // unknown key): only the settings below.
        for (key, _) in std::env::vars_os() {
            if key
                .to_string_lossy()
                .starts_with(shared::config::ENV_PREFIX)
            {
                command.env_remove(key);
            }
        }
        command.envs(extra_env.iter().copied());
        let child = command
            .arg("run")
            .env("INBOXFLOW_KAFKA__BROKERS", &cfg.kafka.brokers)
            .env("INBOXFLOW_KAFKA__WEBHOOK_TOPIC", &cfg.kafka.webhook_topic)
            .env(
                "INBOXFLOW_KAFKA__DEAD_LETTER_TOPIC",
                &cfg.kafka.dead_letter_topic,
            )
            .env("INBOXFLOW_KAFKA__UNROUTED_TOPIC", &cfg.kafka.unrouted_topic)
            .env(
                "INBOXFLOW_KAFKA__ENVELOPE_KEY",
                cfg.kafka.envelope_key.expose(),
            )
            .env("INBOXFLOW_CONSUMER__GROUP_ID", &cfg.consumer.group_id)
            .env(
                "INBOXFLOW_CONSUMER__MAX_RECORDS",
                cfg.consumer.max_records.to_string(),
            )
            .env(
                "INBOXFLOW_CONSUMER__SESSION_TIMEOUT",
                ms(cfg.consumer.session_timeout),
            )
            .env("INBOXFLOW_CQL__NODES", &cfg.cql.nodes)
            .env("INBOXFLOW_CQL__KEYSPACE", &cfg.cql.keyspace)
            .env("INBOXFLOW_RETRY__MAX_BACKOFF", ms(cfg.retry.max_backoff))
            // Port 0: several processors run side by side.
            .env("INBOXFLOW_ADMIN_ADDR", "127.0.0.1:0")
            .env("INBOXFLOW_TELEMETRY__LOG_FORMAT", "json")
            .env("INBOXFLOW_TELEMETRY__LOG_LEVEL", "warn")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        Ok(Self { child, log })
    }

    /// `kill -9`, and waits for the process to be gone.
    pub async fn kill(mut self) -> anyhow::Result<()> {
        self.child.start_kill().context("sending SIGKILL")?;
        self.child.wait().await.context("reaping the processor")?;
        Ok(())
    }

    /// Sends `signal` (a `kill` name such as `STOP` or `CONT`).
    pub async fn signal(&self, signal: &str) -> anyhow::Result<()> {
        let pid = self.child.id().context("the processor has exited")?;
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(pid.to_string())
            .status()
            .await
            .context("running kill")?;
        anyhow::ensure!(status.success(), "kill -{signal} {pid} failed: {status}");
        Ok(())
    }

    /// Whether the process is stopped (state `T` in `/proc/<pid>/stat`).
    pub fn is_stopped(&self) -> anyhow::Result<bool> {
        let pid = self.child.id().context("the processor has exited")?;
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
        // "pid (comm) state ...": the state follows the last ')'.
        let state = stat.rsplit(')').next().unwrap_or("").trim_start();
        Ok(state.starts_with('T'))
    }

    /// Fails if the process has exited by itself (it should run until killed).
    pub fn ensure_running(&mut self) -> anyhow::Result<()> {
        if let Some(status) = self.child.try_wait()? {
            bail!(
                "the processor exited by itself ({status}); see {}",
                self.log.display()
            );
        }
        Ok(())
    }
}
