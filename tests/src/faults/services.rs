//! Stopping and starting the shared local Kafka and Cassandra, and the nodes
//! of the local Kafka cluster (`deploy/local/services`). A test binary that
//! uses these holds exactly one test: cargo runs test binaries one at a time,
//! so no other test sees the outage.

use std::path::PathBuf;
use std::process::Output;

/// The `deploy/local/services` script, or an error naming it.
fn script() -> anyhow::Result<PathBuf> {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../deploy/local/services");
    anyhow::ensure!(
        script.is_file(),
        "{} does not exist: this test needs the local services script",
        script.display()
    );
    Ok(script)
}

fn checked(args: &[&str], out: Output) -> anyhow::Result<String> {
    anyhow::ensure!(
        out.status.success(),
        "`deploy/local/services {}` failed: {}{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Runs `deploy/local/services <action>` and fails with its output.
pub async fn services(action: &str) -> anyhow::Result<()> {
    services_with(&[action]).await.map(drop)
}

/// Runs `deploy/local/services ARGS...`; returns its standard output, or
/// fails with all of its output. Asynchronous, so that the seconds a service
/// takes to stop or start never block the test's runtime (and the
/// in-process ingress or processor that shares it).
pub async fn services_with(args: &[&str]) -> anyhow::Result<String> {
    let out = tokio::process::Command::new("bash")
        .arg(script()?)
        .args(args)
        .output()
        .await?;
    checked(args, out)
}

/// [`services_with`] for `Drop` paths only, where nothing else must run.
pub fn services_blocking(args: &[&str]) -> anyhow::Result<String> {
    let out = std::process::Command::new("bash")
        .arg(script()?)
        .args(args)
        .output()?;
    checked(args, out)
}

/// Runs `start` when dropped while armed: a failing test never leaves the
/// shared service stopped.
#[derive(Debug)]
pub struct RestartOnDrop {
    start: Option<&'static str>,
}

impl RestartOnDrop {
    /// Stops a service with `stop`, arming the guard with `start` first.
    pub async fn stop(stop: &str, start: &'static str) -> anyhow::Result<Self> {
        let guard = Self { start: Some(start) };
        services(stop).await?;
        Ok(guard)
    }

    /// Starts the service again now (and disarms the guard).
    pub async fn start(mut self) -> anyhow::Result<()> {
        match self.start.take() {
            Some(start) => services(start).await,
            None => Ok(()),
        }
    }
}

impl Drop for RestartOnDrop {
    fn drop(&mut self) {
        if let Some(start) = self.start.take()
            && let Err(err) = services_blocking(&[start])
        {
            eprintln!("could not run `deploy/local/services {start}` after a failed test: {err:#}");
        }
    }
}
