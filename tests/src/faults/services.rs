//! Stopping and starting the shared local Kafka and Cassandra, and the nodes
//! of the local Kafka cluster (`deploy/local/services`). A test binary that
//! uses these holds exactly one test: cargo runs test binaries one at a time,
//! so no other test sees the outage.

use std::path::PathBuf;
use std::process::Command;

/// Runs `deploy/local/services <action>` and fails with its output.
pub fn services(action: &str) -> anyhow::Result<()> {
    services_with(&[action]).map(drop)
}

/// Runs `deploy/local/services ARGS...`; returns its standard output, or
/// fails with all of its output.
pub fn services_with(args: &[&str]) -> anyhow::Result<String> {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../deploy/local/services");
    anyhow::ensure!(
        script.is_file(),
        "{} does not exist: this test needs the local services script",
        script.display()
    );
    let out = Command::new("bash").arg(&script).args(args).output()?;
    anyhow::ensure!(
        out.status.success(),
        "`deploy/local/services {}` failed: {}{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Runs `start` when dropped while armed: a failing test never leaves the
/// shared service stopped.
#[derive(Debug)]
pub struct RestartOnDrop {
    start: Option<&'static str>,
}

impl RestartOnDrop {
    /// Stops a service with `stop`, arming the guard with `start` first.
    pub fn stop(stop: &str, start: &'static str) -> anyhow::Result<Self> {
        let guard = Self { start: Some(start) };
        services(stop)?;
        Ok(guard)
    }

    /// Starts the service again now (and disarms the guard).
    pub fn start(mut self) -> anyhow::Result<()> {
        match self.start.take() {
            Some(start) => services(start),
            None => Ok(()),
        }
    }
}

impl Drop for RestartOnDrop {
    fn drop(&mut self) {
        if let Some(start) = self.start.take() {
            if let Err(err) = services(start) {
                eprintln!(
                    "could not run `deploy/local/services {start}` after a failed test: {err:#}"
                );
            }
        }
    }
}
