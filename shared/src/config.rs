//! Layered configuration: built-in defaults, then an optional TOML file, then
//! environment variables, in that order of precedence (last wins).
//!
//! Environment variables use a prefix and `__` as the section separator:
//! `INBOXFLOW_KAFKA__BROKERS=host:9092` sets `kafka.brokers`. Values are read
//! as TOML scalars or arrays when they parse as such (`5`, `true`,
//! `["a","b"]`), otherwise as plain strings, so `INBOXFLOW_KAFKA__BROKERS`
//! needs no quoting.
//!
//! Guarantees: unknown keys in files are rejected by the structs that use
//! `deny_unknown_fields`; [`Secret`] never prints its value in `Debug` or
//! `Display`; each binary calls its own `validate()` before doing any work.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// The prefix of every environment variable that overrides configuration.
pub const ENV_PREFIX: &str = "INBOXFLOW_";

/// Why configuration could not be loaded or is invalid.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path} is not valid TOML: {source}")]
    Parse {
        path: PathBuf,
        source: toml::de::Error,
    },
    #[error("invalid configuration: {0}")]
    Shape(#[from] toml::de::Error),
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

/// Loads `T` from defaults, the optional TOML file and the process environment.
pub fn load<T: DeserializeOwned>(file: Option<&Path>) -> Result<T, ConfigError> {
    load_from(file, std::env::vars())
}

/// Like [`load`], with the environment given explicitly (for tests).
pub fn load_from<T: DeserializeOwned>(
    file: Option<&Path>,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<T, ConfigError> {
    let mut root = toml::Table::new();
    if let Some(path) = file {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        root = text
            .parse::<toml::Table>()
            .map_err(|source| ConfigError::Parse {
                path: path.to_owned(),
                source,
            })?;
    }
    let overrides: BTreeMap<String, String> = env
        .into_iter()
        .filter_map(|(k, v)| {
            k.strip_prefix(ENV_PREFIX)
                .map(|rest| (rest.to_ascii_lowercase(), v))
        })
        .filter(|(k, _)| k != "config")
        .collect();
    for (key, raw) in overrides {
        let path: Vec<&str> = key.split("__").collect();
        set_path(&mut root, &path, parse_env_value(&raw));
    }
    Ok(toml::Value::Table(root).try_into()?)
}

fn parse_env_value(raw: &str) -> toml::Value {
    let wrapped = format!("v = {raw}");
    match wrapped.parse::<toml::Table>() {
        Ok(mut t) => t
            .remove("v")
            .unwrap_or_else(|| toml::Value::String(raw.to_owned())),
        Err(_) => toml::Value::String(raw.to_owned()),
    }
}

fn set_path(table: &mut toml::Table, path: &[&str], value: toml::Value) {
    match path {
        [] => {}
        [last] => {
            table.insert((*last).to_owned(), value);
        }
        [head, rest @ ..] => {
            let entry = table
                .entry((*head).to_owned())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            if !entry.is_table() {
                *entry = toml::Value::Table(toml::Table::new());
            }
            if let toml::Value::Table(inner) = entry {
                set_path(inner, rest, value);
            }
        }
    }
}

/// A secret string: usable, never printed.
#[derive(Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }
    /// The secret's bytes, for HMAC keys and comparisons only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(\"[redacted]\")")
    }
}

/// Kafka connection and topic names, shared by ingress and processor.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct KafkaConfig {
    /// Bootstrap servers, comma separated.
    pub brokers: String,
    /// Topic of verified, routed webhooks (key = workspace id).
    pub webhook_topic: String,
    /// Topic of signed bodies that could not be parsed or processed.
    pub dead_letter_topic: String,
    /// Topic of payloads whose phone_number_id has no workspace.
    pub unrouted_topic: String,
}

impl Default for KafkaConfig {
    fn default() -> Self {
        Self {
            brokers: "127.0.0.1:9092".into(),
            webhook_topic: "inboxflow.webhooks".into(),
            dead_letter_topic: "inboxflow.webhooks.dlq".into(),
            unrouted_topic: "inboxflow.webhooks.unrouted".into(),
        }
    }
}

impl KafkaConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        require_non_empty("kafka.brokers", &self.brokers)?;
        require_non_empty("kafka.webhook_topic", &self.webhook_topic)?;
        require_non_empty("kafka.dead_letter_topic", &self.dead_letter_topic)?;
        require_non_empty("kafka.unrouted_topic", &self.unrouted_topic)
    }
}

/// Log output settings.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct TelemetryConfig {
    /// `json` (one object per line) or `pretty` (for humans).
    pub log_format: LogFormat,
    /// An `EnvFilter` directive, for example `info,inboxflow=debug`.
    /// `RUST_LOG` wins when set.
    pub log_level: String,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        Self {
            log_format: LogFormat::Pretty,
            log_level: "info".into(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Json,
    Pretty,
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
mod tests {
    use super::*;

    #[derive(Debug, Deserialize, Default)]
    #[serde(deny_unknown_fields, default)]
    struct Sample {
        kafka: KafkaConfig,
        limit: u64,
        secrets: Vec<Secret>,
    }

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn defaults_apply_when_nothing_is_set() {
        let cfg: Sample = load_from(None, env(&[])).expect("defaults load");
        assert_eq!(cfg.kafka.brokers, "127.0.0.1:9092");
        assert_eq!(cfg.limit, 0);
    }

    #[test]
    fn environment_overrides_file_and_parses_scalars_and_arrays() {
        let dir = std::env::temp_dir().join(format!("inboxflow-cfg-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let file = dir.join("c.toml");
        std::fs::write(&file, "limit = 3\n[kafka]\nbrokers = \"file:1\"\n").expect("write");
        let cfg: Sample = load_from(
            Some(&file),
            env(&[
                ("INBOXFLOW_KAFKA__BROKERS", "env:9092,env2:9092"),
                ("INBOXFLOW_SECRETS", r#"["a","b"]"#),
                ("UNRELATED", "x"),
            ]),
        )
        .expect("loads");
        assert_eq!(cfg.kafka.brokers, "env:9092,env2:9092");
        assert_eq!(cfg.limit, 3);
        assert_eq!(cfg.secrets, vec![Secret::new("a"), Secret::new("b")]);
    }

    #[test]
    fn unknown_keys_are_rejected_with_their_name() {
        let err = load_from::<Sample>(None, env(&[("INBOXFLOW_KAFKA__BROKRES", "x")]))
            .expect_err("typo must fail");
        assert!(err.to_string().contains("brokres"), "{err}");
    }

    #[test]
    fn secrets_are_redacted_in_debug() {
        let s = Secret::new("hunter2");
        assert!(!format!("{s:?}").contains("hunter2"));
        assert_eq!(s.expose(), "hunter2");
    }
}
