//! Processor configuration: the defaults of `deploy/config/processor.toml`
//! (embedded: the single source of defaults), then the TOML file named by
//! `--config` (or `INBOXFLOW_CONFIG`), then `INBOXFLOW_*` environment
//! variables (see [`shared::config`]). In the environment, the ingress's own
//! keys (those only `deploy/config/ingress.toml` holds, such as
//! `INBOXFLOW_KAPSO_SECRETS`) are ignored, so one environment serves both
//! binaries; every other unknown key is an error.
//! [`ProcessorConfig::validate`] runs before any work starts.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use shared::config::{
    ConfigError, KafkaConfig, Sources, TelemetryConfig, invalid, require_non_empty,
    require_positive_duration,
};

/// The defaults (`deploy/config/processor.toml`) and the ingress's, whose
/// own keys this binary ignores in the environment.
pub const SOURCES: Sources = Sources {
    defaults: include_str!("../../deploy/config/processor.toml"),
    sibling_defaults: include_str!("../../deploy/config/ingress.toml"),
    secret_keys: &[],
};

/// Everything the processor reads at start-up.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ProcessorConfig {
    pub kafka: KafkaConfig,
    pub consumer: ConsumerConfig,
    pub cql: CqlConfig,
    pub retry: RetryConfig,
    /// Address of the admin server (`/metrics`, `/healthz`, `/readyz`);
    /// port 0 picks a free port. `None` (embedded use only) serves nothing.
    pub admin_addr: Option<SocketAddr>,
    pub telemetry: TelemetryConfig,
}

impl Default for ProcessorConfig {
    /// The embedded defaults (`deploy/config/processor.toml`); a unit test
    /// checks that they load.
    fn default() -> Self {
        #[allow(clippy::expect_used)]
        shared::config::defaults(SOURCES.defaults).expect("deploy/config/processor.toml loads")
    }
}

/// How records are consumed and grouped into micro-batches.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ConsumerConfig {
    /// Consumer group id; processors sharing it share the topic's partitions.
    pub group_id: String,
    /// A micro-batch closes at this many records...
    pub max_records: usize,
    /// ...or this long after its first record, whichever comes first.
    #[serde(with = "humantime_serde")]
    pub max_wait: Duration,
    /// Where a new group starts reading: `earliest` or `latest`.
    pub auto_offset_reset: String,
    /// librdkafka session timeout; a processor silent for longer leaves the group.
    #[serde(with = "humantime_serde")]
    pub session_timeout: Duration,
    /// How often librdkafka commits the offsets of completed batches.
    #[serde(with = "humantime_serde")]
    pub commit_interval: Duration,
    /// How often librdkafka reports statistics, from which `consumer_lag` is set.
    #[serde(with = "humantime_serde")]
    pub lag_interval: Duration,
    /// Ignored: steps now run as one wave across every workspace of a batch
    /// (`cql.max_concurrent_requests` bounds the requests). Accepted so that
    /// configurations of earlier releases still load.
    #[serde(default, skip_serializing)]
    pub workspace_concurrency: Option<usize>,
    /// The largest record the dead-letter producer writes: at least the
    /// largest record the ingress writes (its `max_body_bytes` + 64 KiB).
    pub max_record_bytes: usize,
}

/// The CQL database (Cassandra or ScyllaDB).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CqlConfig {
    /// Contact points, comma separated `host:port`.
    pub nodes: String,
    pub keyspace: String,
    /// The keyspace's replication map, as CQL. Local default:
    /// `{'class': 'SimpleStrategy', 'replication_factor': 1}`. Production:
    /// `{'class': 'NetworkTopologyStrategy', 'dc1': 3}`.
    pub replication: String,
    /// Upper bound of the estimated payload of one unlogged batch. Cassandra
    /// fails multi-partition batches over 50 KiB by default.
    pub max_batch_bytes: usize,
    /// Upper bound of statements in one batch, and of keys in one `IN` list
    /// (ScyllaDB rejects more than 100 partition keys in one `IN` by default).
    pub max_batch_statements: usize,
    /// Database requests in flight at once, across every workspace of a batch.
    pub max_concurrent_requests: usize,
    /// Per-request timeout.
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
}

/// Backoff while the database is failing. Nothing is committed meanwhile.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RetryConfig {
    #[serde(with = "humantime_serde")]
    pub initial_backoff: Duration,
    #[serde(with = "humantime_serde")]
    pub max_backoff: Duration,
}

impl ProcessorConfig {
    /// Loads the defaults, the optional file and the environment.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        shared::config::load(&SOURCES, file)
    }

    /// Checks every setting and names the first bad one.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.kafka.validate()?;
        self.consumer.validate()?;
        self.cql.validate()?;
        require_positive_duration("retry.initial_backoff", self.retry.initial_backoff)?;
        if self.retry.max_backoff < self.retry.initial_backoff {
            return Err(invalid(
                "retry.max_backoff must be at least retry.initial_backoff",
            ));
        }
        Ok(())
    }
}

impl ConsumerConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        require_non_empty("consumer.group_id", &self.group_id)?;
        if self.max_records == 0 {
            return Err(invalid("consumer.max_records must be at least 1"));
        }
        require_positive_duration("consumer.max_wait", self.max_wait)?;
        let (lo, hi) = (Duration::from_millis(10), Duration::from_secs(3600));
        if !(lo..=hi).contains(&self.commit_interval) {
            return Err(invalid(
                "consumer.commit_interval must be between 10ms and 1h",
            ));
        }
        if !(lo..=hi).contains(&self.lag_interval) {
            return Err(invalid("consumer.lag_interval must be between 10ms and 1h"));
        }
        if !(1024..=1_000_000_000).contains(&self.max_record_bytes) {
            return Err(invalid(
                "consumer.max_record_bytes must be between 1024 and 1000000000",
            ));
        }
        if !matches!(self.auto_offset_reset.as_str(), "earliest" | "latest") {
            return Err(invalid(
                "consumer.auto_offset_reset must be `earliest` or `latest`",
            ));
        }
        Ok(())
    }
}

/// Whether `ks` is a keyspace name safe to put in CQL text: a letter, then
/// letters, digits and `_`, at most 48 characters.
pub fn is_keyspace_name(ks: &str) -> bool {
    ks.len() <= 48
        && ks.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && ks.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

impl CqlConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        require_non_empty("cql.nodes", &self.nodes)?;
        if !is_keyspace_name(&self.keyspace) {
            return Err(invalid(
                "cql.keyspace must start with a letter, hold only letters, digits and _, \
                 and be at most 48 characters",
            ));
        }
        let repl = self.replication.trim();
        if !(repl.starts_with('{') && repl.ends_with('}') && repl.contains("class")) {
            return Err(invalid(
                "cql.replication must be a CQL map naming a `class`",
            ));
        }
        if self.max_batch_statements == 0 || self.max_concurrent_requests == 0 {
            return Err(invalid(
                "cql.max_batch_statements and cql.max_concurrent_requests must be at least 1",
            ));
        }
        if self.max_batch_bytes < 1024 {
            return Err(invalid("cql.max_batch_bytes must be at least 1024"));
        }
        require_positive_duration("cql.request_timeout", self.request_timeout)?;
        Ok(())
    }
}

#[cfg(test)]
// figment::Jail closures return figment::Result, whose error is large.
#[allow(clippy::result_large_err)]
mod tests {
    use super::*;

    /// The defaults plus the one required key.
    fn valid() -> ProcessorConfig {
        let mut cfg = ProcessorConfig::default();
        cfg.kafka.envelope_key = shared::config::Secret::new("processor-test-envelope-key");
        cfg
    }

    #[test]
    fn defaults_are_valid_once_the_envelope_key_is_given() {
        valid().validate().expect("defaults validate");
        let err = ProcessorConfig::default().validate().expect_err("no key");
        assert!(err.to_string().contains("kafka.envelope_key"), "{err}");
    }

    #[test]
    fn the_ingress_keys_in_the_environment_are_ignored_but_typos_fail() {
        figment::Jail::expect_with(|jail| {
            jail.clear_env();
            jail.set_env("INBOXFLOW_KAPSO_SECRETS", r#"["k"]"#);
            jail.set_env("INBOXFLOW_META_VERIFY_TOKEN", "t");
            jail.set_env("INBOXFLOW_PRODUCER_OVERRIDES__ACKS", "1");
            jail.set_env("INBOXFLOW_RETRY__MAX_BACKOFF", "10s");
            jail.set_env(
                "INBOXFLOW_KAFKA__ENVELOPE_KEY",
                "processor-test-envelope-key",
            );
            let cfg = ProcessorConfig::load(None).expect("ingress keys are ignored");
            assert_eq!(cfg.retry.max_backoff, Duration::from_secs(10));
            assert_eq!(cfg.consumer.max_wait, Duration::from_millis(50));
            jail.set_env("INBOXFLOW_CQL__KEYSPAC", "x");
            let err = ProcessorConfig::load(None).expect_err("a typo still fails");
            assert!(err.to_string().contains("keyspac"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn a_keyspace_that_could_inject_cql_is_rejected() {
        let mut cfg = valid();
        cfg.cql.keyspace = "x; DROP KEYSPACE y".into();
        let err = cfg.validate().expect_err("must fail");
        assert!(err.to_string().contains("cql.keyspace"), "{err}");
    }

    #[test]
    fn a_commit_or_lag_interval_out_of_range_is_rejected_by_name() {
        let mut cfg = valid();
        cfg.consumer.commit_interval = Duration::ZERO;
        let err = cfg.validate().expect_err("zero").to_string();
        assert!(err.contains("consumer.commit_interval"), "{err}");
        let mut cfg = valid();
        cfg.consumer.lag_interval = Duration::from_secs(7200);
        let err = cfg.validate().expect_err("too long").to_string();
        assert!(err.contains("consumer.lag_interval"), "{err}");
    }

    #[test]
    fn zero_batch_size_is_rejected_by_name() {
        let mut cfg = valid();
        cfg.consumer.max_records = 0;
        assert!(
            cfg.validate()
                .expect_err("must fail")
                .to_string()
                .contains("max_records")
        );
    }
}
