//! Processor configuration: defaults, then the TOML file named by `--config`
//! (or `INBOXFLOW_CONFIG`), then `INBOXFLOW_*` environment variables.
//! [`ProcessorConfig::validate`] runs before any work starts.

use std::net::SocketAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use shared::config::{
    ConfigError, KafkaConfig, TelemetryConfig, require_non_empty, require_positive_duration,
};

/// Everything the processor reads at start-up.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
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
    fn default() -> Self {
        Self {
            kafka: KafkaConfig::default(),
            consumer: ConsumerConfig::default(),
            cql: CqlConfig::default(),
            retry: RetryConfig::default(),
            admin_addr: Some(SocketAddr::from(([0, 0, 0, 0], 9091))),
            telemetry: TelemetryConfig::default(),
        }
    }
}

/// How records are consumed and grouped into micro-batches.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
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
    /// Ignored: steps now run as one wave across every workspace of a batch
    /// (`cql.max_concurrent_requests` bounds the requests). Accepted so that
    /// configurations of earlier releases still load.
    #[serde(default, skip_serializing)]
    pub workspace_concurrency: Option<usize>,
    /// The largest record the dead-letter producer writes: at least the
    /// largest record the ingress writes (its `max_body_bytes` + 64 KiB).
    pub max_record_bytes: usize,
}

impl Default for ConsumerConfig {
    fn default() -> Self {
        Self {
            group_id: "inboxflow-processor".into(),
            max_records: 1000,
            max_wait: Duration::from_millis(50),
            auto_offset_reset: "earliest".into(),
            session_timeout: Duration::from_secs(10),
            workspace_concurrency: None,
            max_record_bytes: 4 * 1024 * 1024 + 64 * 1024,
        }
    }
}

/// The CQL database (Cassandra or ScyllaDB).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
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

impl Default for CqlConfig {
    fn default() -> Self {
        Self {
            nodes: "127.0.0.1:9042".into(),
            keyspace: "inboxflow".into(),
            replication: "{'class': 'SimpleStrategy', 'replication_factor': 1}".into(),
            max_batch_bytes: 32 * 1024,
            max_batch_statements: 100,
            max_concurrent_requests: 64,
            request_timeout: Duration::from_secs(5),
        }
    }
}

/// Backoff while the database is failing. Nothing is committed meanwhile.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetryConfig {
    #[serde(with = "humantime_serde")]
    pub initial_backoff: Duration,
    #[serde(with = "humantime_serde")]
    pub max_backoff: Duration,
}

impl Default for RetryConfig {
    fn default() -> Self {
        Self {
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(5),
        }
    }
}

impl ProcessorConfig {
    /// Checks every setting and names the first bad one.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.kafka.validate()?;
        require_non_empty("consumer.group_id", &self.consumer.group_id)?;
        if self.consumer.max_records == 0 {
            return Err(invalid("consumer.max_records must be at least 1"));
        }
        require_positive_duration("consumer.max_wait", self.consumer.max_wait)?;
        if !(1024..=1_000_000_000).contains(&self.consumer.max_record_bytes) {
            return Err(invalid(
                "consumer.max_record_bytes must be between 1024 and 1000000000",
            ));
        }
        if !matches!(
            self.consumer.auto_offset_reset.as_str(),
            "earliest" | "latest"
        ) {
            return Err(invalid(
                "consumer.auto_offset_reset must be `earliest` or `latest`",
            ));
        }
        require_non_empty("cql.nodes", &self.cql.nodes)?;
        let ks = &self.cql.keyspace;
        let valid_ks = ks.len() <= 48
            && ks.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
            && ks.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid_ks {
            return Err(invalid(
                "cql.keyspace must start with a letter, hold only letters, digits and _, \
                 and be at most 48 characters",
            ));
        }
        let repl = self.cql.replication.trim();
        if !(repl.starts_with('{') && repl.ends_with('}') && repl.contains("class")) {
            return Err(invalid(
                "cql.replication must be a CQL map naming a `class`",
            ));
        }
        if self.cql.max_batch_statements == 0 || self.cql.max_concurrent_requests == 0 {
            return Err(invalid(
                "cql.max_batch_statements and cql.max_concurrent_requests must be at least 1",
            ));
        }
        if self.cql.max_batch_bytes < 1024 {
            return Err(invalid("cql.max_batch_bytes must be at least 1024"));
        }
        require_positive_duration("cql.request_timeout", self.cql.request_timeout)?;
        require_positive_duration("retry.initial_backoff", self.retry.initial_backoff)?;
        if self.retry.max_backoff < self.retry.initial_backoff {
            return Err(invalid(
                "retry.max_backoff must be at least retry.initial_backoff",
            ));
        }
        Ok(())
    }
}

fn invalid(message: &str) -> ConfigError {
    ConfigError::Invalid(message.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        ProcessorConfig::default()
            .validate()
            .expect("defaults validate");
    }

    #[test]
    fn a_keyspace_that_could_inject_cql_is_rejected() {
        let mut cfg = ProcessorConfig::default();
        cfg.cql.keyspace = "x; DROP KEYSPACE y".into();
        let err = cfg.validate().expect_err("must fail");
        assert!(err.to_string().contains("cql.keyspace"), "{err}");
    }

    #[test]
    fn zero_batch_size_is_rejected_by_name() {
        let mut cfg = ProcessorConfig::default();
        cfg.consumer.max_records = 0;
        assert!(
            cfg.validate()
                .expect_err("must fail")
                .to_string()
                .contains("max_records")
        );
    }
}
