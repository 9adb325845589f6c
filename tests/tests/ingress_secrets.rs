//! No secret reaches a log line or an error message: a registry with a typo
//! next to a workspace secret (at start-up and on reload), a config file with
//! a typo next to a secret, and all-digits secrets in the environment (valid
//! string secrets). Each check greps the error's `Display` and `Debug`, the
//! captured logs, and the real binary's stderr.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use inboxflow_tests::faults::process::ingress_binary;
use inboxflow_tests::ingress::{TEST_REGISTRY, TestTopics, spawn_ingress, test_config};
use inboxflow_tests::{kafka, poll, unique_name};

const REGISTRY_SECRET: &str = "ws-secret-typo-7731";
const FILE_SECRET: &str = "file-token-typo-4417";
const DIGIT_SECRETS: [&str; 3] = ["5550001234", "0042", "987654321"];

/// A registry whose last line misses its closing bracket, right after a secret.
fn bad_registry() -> String {
    format!("[[workspace]]\nid = \"ws_typo\"\nkapso_secrets = [\"{REGISTRY_SECRET}\"\n")
}

/// Everything the tracing subscriber of this test binary wrote.
fn logs() -> Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&buffer);
        let _ = tracing_subscriber::fmt()
            .with_writer(move || Capture(Arc::clone(&sink)))
            .with_ansi(false)
            .try_init();
        buffer
    })
    .clone()
}

struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().map_or(Ok(buf.len()), |mut b| {
            b.extend_from_slice(buf);
            Ok(buf.len())
        })
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn captured() -> String {
    String::from_utf8_lossy(&logs().lock().map(|b| b.clone()).unwrap_or_default()).into_owned()
}

fn assert_hidden(text: &str, secrets: &[&str]) {
    for secret in secrets {
        assert!(!text.contains(secret), "secret {secret} shown in:\n{text}");
    }
}

fn temp_dir() -> anyhow::Result<PathBuf> {
    let dir = std::env::temp_dir().join(unique_name("secrets"));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

#[tokio::test]
async fn a_registry_typo_at_start_up_names_the_line_but_not_the_secret() -> anyhow::Result<()> {
    let _ = logs();
    let dir = temp_dir()?;
    let registry = dir.join("registry.toml");
    std::fs::write(&registry, bad_registry())?;
    let topics = TestTopics {
        routed: unique_name("unused"),
        unrouted: unique_name("unused"),
        dead_letter: unique_name("unused"),
    };

    let err = ingress::Application::build(test_config(&kafka::brokers(), &topics, &registry))
        .await
        .expect_err("a bad registry stops start-up");

    let shown = format!("{err:#} {err:?}");
    assert!(shown.contains("line 3"), "{shown}");
    assert_hidden(&shown, &[REGISTRY_SECRET]);
    assert_hidden(&captured(), &[REGISTRY_SECRET]);
    Ok(())
}

#[tokio::test]
async fn a_registry_typo_on_reload_is_logged_without_the_secret() -> anyhow::Result<()> {
    let _ = logs();
    let app = spawn_ingress(TEST_REGISTRY).await?;

    // Rewritten (one more leading space each time) until a reload fails: the
    // watcher may take its first look at the file after the first write.
    let writes = std::cell::Cell::new(0);
    let logged = poll::until(
        "the failed reload to be logged",
        Duration::from_secs(15),
        || async {
            if captured().contains("registry reload failed") {
                return Ok(Some(()));
            }
            writes.set(writes.get() + 1);
            app.write_registry(&format!("{}{}", " ".repeat(writes.get()), bad_registry()))?;
            Ok(None)
        },
    )
    .await;
    anyhow::ensure!(
        logged.is_ok(),
        "no failed reload in the logs:\n{}",
        captured()
    );
    let logs = captured();
    assert!(logs.contains("line 3"), "{logs}");
    assert_hidden(&logs, &[REGISTRY_SECRET]);
    Ok(())
}

#[test]
fn a_config_file_typo_names_the_line_but_not_the_secret() -> anyhow::Result<()> {
    let dir = temp_dir()?;
    let file = dir.join("ingress.toml");
    std::fs::write(
        &file,
        format!("meta_verify_token = \"{FILE_SECRET}\nmax_body_bytes = 1\n"),
    )?;

    let err = ingress::IngressConfig::load(Some(&file)).expect_err("bad TOML");

    let shown = format!("{err} {err:?}");
    assert!(shown.contains("line 1"), "{shown}");
    assert_hidden(&shown, &[FILE_SECRET]);
    Ok(())
}

/// Runs the real binary with all-digits secrets in the environment and
/// returns its exit success and stderr.
fn run_binary(config: &Path) -> anyhow::Result<(bool, String)> {
    let out = std::process::Command::new(ingress_binary()?)
        .arg("--config")
        .arg(config)
        .env_remove("INBOXFLOW_CONFIG")
        .env("INBOXFLOW_KAPSO_SECRETS", DIGIT_SECRETS[0])
        .env(
            "INBOXFLOW_META_APP_SECRETS",
            format!("[\"{}\"]", DIGIT_SECRETS[1]),
        )
        .env("INBOXFLOW_META_VERIFY_TOKEN", DIGIT_SECRETS[2])
        .env("INBOXFLOW_KAFKA__ENVELOPE_KEY", "binary-test-envelope-key")
        .env("INBOXFLOW_TELEMETRY__LOG_FORMAT", "json")
        .output()?;
    Ok((
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

#[test]
fn the_binary_reads_digit_secrets_as_strings_and_prints_no_secret() -> anyhow::Result<()> {
    let dir = temp_dir()?;
    let registry = dir.join("registry.toml");
    std::fs::write(&registry, bad_registry())?;
    let config = dir.join("ingress.toml");
    std::fs::write(
        &config,
        format!(
            "listen_addr = \"127.0.0.1:0\"\nadmin_addr = \"127.0.0.1:0\"\nregistry_path = {:?}\n",
            registry.display().to_string()
        ),
    )?;

    let (ok, stderr) = run_binary(&config)?;

    assert!(!ok, "a bad registry must stop the binary");
    assert!(
        stderr.contains("registry") && stderr.contains("line 3"),
        "the configuration loaded, the registry failed:\n{stderr}"
    );
    assert_hidden(&stderr, &DIGIT_SECRETS);
    assert_hidden(&stderr, &[REGISTRY_SECRET]);

    std::fs::write(&config, format!("meta_verify_token = \"{FILE_SECRET}\n"))?;
    let (ok, stderr) = run_binary(&config)?;
    assert!(!ok && stderr.contains("line 1"), "{stderr}");
    assert_hidden(&stderr, &[FILE_SECRET]);
    assert_hidden(&stderr, &DIGIT_SECRETS);
    Ok(())
}
