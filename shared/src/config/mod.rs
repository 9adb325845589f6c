//! Layered configuration through `figment`: the binary's commented defaults
//! TOML (`deploy/config/{ingress,processor}.toml`, embedded with
//! `include_str!`, the single source of defaults), then an optional TOML
//! file, then environment variables, in that order of precedence (last wins).
//!
//! Environment variables use the prefix [`ENV_PREFIX`] and `__` as the section
//! separator: `INBOXFLOW_KAFKA__BROKERS=host:9092` sets `kafka.brokers`. Values
//! are read as scalars or arrays when they parse as such (`5`, `true`,
//! `["a","b"]`), otherwise as plain strings. `INBOXFLOW_CONFIG` names the file
//! and is not a key.
//!
//! One environment (or `.env`) serves both binaries: in the environment each
//! binary ignores the top-level keys and sections that only the other
//! binary's defaults TOML holds (the ingress ignores `INBOXFLOW_CQL__*`, the
//! processor `INBOXFLOW_KAPSO_SECRETS`). Every other key is checked: a typo,
//! in the environment or in a file, is an error naming it. Keys both binaries
//! know (`kafka`, `telemetry`, `admin_addr`) are read by both.
//!
//! A binary's secret keys ([`Sources::secret_keys`]) are the exception: their
//! environment values are read verbatim as strings ([`SecretEnv`]), so an
//! all-digits secret stays the string it is.
//!
//! Guarantees: unknown keys are rejected by the structs, which use
//! `deny_unknown_fields`; [`Secret`] never prints its value in `Debug` and is
//! not `Serialize`; no [`ConfigError`] holds source text or a value found
//! (a file error names the file, line, column and key; see [`error`]); each
//! binary calls its own `validate()` before doing any work.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use figment::Figment;
use figment::providers::{Env, Format, Toml};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

pub mod error;
mod secret;

pub use error::{ConfigError, TomlError, safe_message};
pub use secret::{Secret, SecretEnv};

/// The prefix of every environment variable that overrides configuration.
pub const ENV_PREFIX: &str = "INBOXFLOW_";

/// Where a binary's configuration comes from, besides the file and the environment.
#[derive(Debug, Clone, Copy)]
pub struct Sources {
    /// This binary's defaults: every key, with its default (`include_str!`).
    pub defaults: &'static str,
    /// The other binary's defaults: the top-level keys only it holds are
    /// ignored in this binary's environment.
    pub sibling_defaults: &'static str,
    /// This binary's top-level secret keys, read verbatim from the
    /// environment ([`SecretEnv`]) and never shown in errors.
    pub secret_keys: &'static [&'static str],
}

impl Sources {
    /// The top-level keys of the sibling that this binary does not know.
    fn foreign_keys(&self) -> Result<BTreeSet<String>, ConfigError> {
        let own = top_level_keys(self.defaults)?;
        let sibling = top_level_keys(self.sibling_defaults)?;
        Ok(sibling.difference(&own).cloned().collect())
    }
}

fn top_level_keys(text: &str) -> Result<BTreeSet<String>, ConfigError> {
    Ok(parse_table(text)?.keys().cloned().collect())
}

/// Parses TOML text into a table; the error holds no text of the source.
pub fn parse_table(text: &str) -> Result<toml::Table, TomlError> {
    toml::from_str(text).map_err(|err| TomlError::new(&err, text))
}

/// Reads and parses a TOML file (syntax only), for the error's sake: the
/// error names the file, line and column, never the line's text.
fn check_file(path: &Path) -> Result<String, ConfigError> {
    if !path.is_file() {
        return Err(ConfigError::Missing(path.to_owned()));
    }
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    parse_table(&text).map_err(|err| err.in_file(path))?;
    Ok(text)
}

/// Loads `T` from the defaults, the optional TOML file and the process environment.
pub fn load<T: DeserializeOwned>(sources: &Sources, file: Option<&Path>) -> Result<T, ConfigError> {
    let mut figment = Figment::from(Toml::string(sources.defaults));
    if let Some(path) = file {
        check_file(path)?;
        figment = figment.merge(Toml::file_exact(path));
    }
    let foreign = sources.foreign_keys()?;
    let lists: BTreeSet<String> = parse_table(sources.defaults)?
        .into_iter()
        .filter(|(_, value)| value.is_array())
        .map(|(key, _)| key)
        .collect();
    let secrets = SecretEnv::new(ENV_PREFIX, sources.secret_keys, &lists);
    let plain = secrets.clone();
    let env = Env::prefixed(ENV_PREFIX)
        .ignore(&["config"])
        .split("__")
        .filter(move |key| {
            let section = key.as_str().split('.').next().unwrap_or_default();
            !foreign.contains(&section.to_ascii_lowercase())
                && !plain.holds(&key.as_str().to_ascii_lowercase())
        });
    Ok(figment.merge(env).merge(secrets).extract()?)
}

/// Parses a defaults TOML alone (no file, no environment).
pub fn defaults<T: DeserializeOwned>(text: &str) -> Result<T, ConfigError> {
    Ok(Figment::from(Toml::string(text)).extract()?)
}

/// Kafka connection and topic names, shared by ingress and processor.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaConfig {
    /// Bootstrap servers, comma separated.
    pub brokers: String,
    /// Topic of verified, routed webhooks (key = workspace id).
    pub webhook_topic: String,
    /// Topic of signed bodies that could not be parsed or processed.
    pub dead_letter_topic: String,
    /// Topic of payloads whose phone_number_id has no workspace.
    pub unrouted_topic: String,
    /// The key of the records' envelope MAC (`crate::record::EnvelopeKey`):
    /// the ingress seals every record with it, the processor and replay
    /// verify. Required, at least 16 bytes, the same for both binaries.
    #[serde(skip_serializing)]
    pub envelope_key: Secret,
}

impl KafkaConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.envelope_key.expose().len() < crate::record::MIN_ENVELOPE_KEY_BYTES {
            return Err(invalid(
                "kafka.envelope_key is required (at least 16 bytes, the same for ingress and processor; \
                 INBOXFLOW_KAFKA__ENVELOPE_KEY sets it for both)",
            ));
        }
        require_non_empty("kafka.brokers", &self.brokers)?;
        require_non_empty("kafka.webhook_topic", &self.webhook_topic)?;
        require_non_empty("kafka.dead_letter_topic", &self.dead_letter_topic)?;
        require_non_empty("kafka.unrouted_topic", &self.unrouted_topic)
    }
}

/// Log output settings.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TelemetryConfig {
    /// `json` (one object per line) or `pretty` (for humans).
    pub log_format: LogFormat,
    /// An `EnvFilter` directive, for example `info,inboxflow=debug`.
    /// `RUST_LOG` wins when set.
    pub log_level: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Json,
    Pretty,
}

/// A validation failure with its message.
pub fn invalid(message: &str) -> ConfigError {
    ConfigError::Invalid(message.to_owned())
}

/// Fails with a clear message when `value` is blank.
pub fn require_non_empty(name: &str, value: &str) -> Result<(), ConfigError> {
    if value.trim().is_empty() {
        return Err(ConfigError::Invalid(format!("{name} must not be empty")));
    }
    Ok(())
}

/// Fails with a clear message when `value` is zero.
pub fn require_positive_duration(name: &str, value: Duration) -> Result<(), ConfigError> {
    if value.is_zero() {
        return Err(ConfigError::Invalid(format!(
            "{name} must be greater than zero"
        )));
    }
    Ok(())
}

#[cfg(test)]
// figment::Jail closures return figment::Result, whose error is large.
#[allow(clippy::result_large_err)]
mod tests {
    use figment::Jail;

    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Sample {
        kafka: KafkaConfig,
        limit: u64,
        secrets: Vec<Secret>,
    }

    const SOURCES: Sources = Sources {
        defaults: "limit = 0\nsecrets = []\n[kafka]\nbrokers = \"127.0.0.1:9092\"\n\
                   webhook_topic = \"w\"\ndead_letter_topic = \"d\"\nunrouted_topic = \"u\"\n\
                   envelope_key = \"\"\n",
        sibling_defaults: "other = 1\n[kafka]\nbrokers = \"x\"\n[cql]\nnodes = \"n\"\n",
        secret_keys: &["secrets"],
    };

    fn jail(test: impl FnOnce(&mut Jail) -> Result<(), ConfigError>) {
        Jail::expect_with(|jail| {
            jail.clear_env();
            test(jail).map_err(|e| e.to_string().into())
        });
    }

    #[test]
    fn defaults_apply_when_nothing_is_set() {
        jail(|_| {
            let cfg: Sample = load(&SOURCES, None)?;
            assert_eq!(cfg.kafka.brokers, "127.0.0.1:9092");
            assert_eq!(cfg.limit, 0);
            Ok(())
        });
    }

    #[test]
    fn environment_overrides_file_and_parses_scalars_and_arrays() {
        jail(|jail| {
            jail.create_file("c.toml", "limit = 3\n[kafka]\nbrokers = \"file:1\"\n")
                .map_err(|e| ConfigError::Invalid(e.to_string()))?;
            jail.set_env("INBOXFLOW_KAFKA__BROKERS", "env:9092,env2:9092");
            jail.set_env("INBOXFLOW_SECRETS", r#"["a","b"]"#);
            jail.set_env("INBOXFLOW_CONFIG", "c.toml");
            jail.set_env("UNRELATED", "x");
            let cfg: Sample = load(&SOURCES, Some(Path::new("c.toml")))?;
            assert_eq!(cfg.kafka.brokers, "env:9092,env2:9092");
            assert_eq!(cfg.limit, 3);
            assert_eq!(cfg.secrets, vec![Secret::new("a"), Secret::new("b")]);
            Ok(())
        });
    }

    #[test]
    fn unknown_keys_are_rejected_with_their_name() {
        jail(|jail| {
            jail.set_env("INBOXFLOW_KAFKA__BROKRES", "x");
            let err = load::<Sample>(&SOURCES, None).expect_err("typo must fail");
            assert!(err.to_string().contains("brokres"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn the_siblings_own_keys_are_ignored_in_the_environment_only() {
        jail(|jail| {
            jail.set_env("INBOXFLOW_CQL__NODES", "db:9042");
            jail.set_env("INBOXFLOW_OTHER", "2");
            let cfg: Sample = load(&SOURCES, None)?;
            assert_eq!(cfg.limit, 0);
            jail.create_file("c.toml", "[cql]\nnodes = \"db:9042\"\n")
                .map_err(|e| ConfigError::Invalid(e.to_string()))?;
            let err = load::<Sample>(&SOURCES, Some(Path::new("c.toml"))).expect_err("file");
            assert!(err.to_string().contains("cql"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn a_missing_config_file_is_an_error() {
        jail(|_| {
            let err = load::<Sample>(&SOURCES, Some(Path::new("nope.toml"))).expect_err("missing");
            assert!(matches!(err, ConfigError::Missing(_)), "{err}");
            Ok(())
        });
    }

    #[test]
    fn an_all_digits_secret_in_the_environment_is_a_string_kept_as_written() {
        jail(|jail| {
            jail.set_env("INBOXFLOW_SECRETS", "0123456789");
            let cfg: Sample = load(&SOURCES, None)?;
            assert_eq!(cfg.secrets, vec![Secret::new("0123456789")]);
            jail.set_env("INBOXFLOW_SECRETS", "[007, \"8\"]");
            let cfg: Sample = load(&SOURCES, None)?;
            assert_eq!(cfg.secrets, vec![Secret::new("007"), Secret::new("8")]);
            Ok(())
        });
    }

    #[test]
    fn file_errors_name_the_place_and_never_the_text() {
        jail(|jail| {
            jail.create_file("c.toml", "limit = 1\nsecrets = [\"hunter2\"\n")
                .map_err(|e| ConfigError::Invalid(e.to_string()))?;
            let err = load::<Sample>(&SOURCES, Some(Path::new("c.toml"))).expect_err("bad");
            let shown = format!("{err} {err:?}");
            assert!(!shown.contains("hunter2"), "{shown}");
            assert!(shown.contains("c.toml: line 2, column"), "{shown}");
            jail.create_file("d.toml", "secrets = \"hunter2\"\nlimit = \"hunter3\"\n")
                .map_err(|e| ConfigError::Invalid(e.to_string()))?;
            let err = load::<Sample>(&SOURCES, Some(Path::new("d.toml"))).expect_err("shape");
            let shown = format!("{err} {err:?}");
            assert!(!shown.contains("hunter"), "{shown}");
            assert!(shown.contains("d.toml"), "{shown}");
            Ok(())
        });
    }

    #[test]
    fn secrets_are_redacted_in_debug() {
        let s = Secret::new("hunter2");
        assert!(!format!("{s:?}").contains("hunter2"));
        assert_eq!(s.expose(), "hunter2");
    }
}
