//! # inboxflow-tests: helpers for integration tests on real services
//!
//! Every test talks to a real Apache Kafka broker and a real CQL database
//! (Cassandra locally and in CI, ScyllaDB under docker-compose). Nothing is
//! mocked. Each test gets its own topics, consumer group and keyspace
//! ([`unique_name`]), so tests run in parallel without sharing state.
//!
//! When a service is missing, helpers fail with a message that names it and
//! the command that starts it; they never skip.
//!
//! ## Layout
//! - [`kafka`]: topic creation, producing and reading records with a deadline.
//! - [`cql`]: a session and a fresh keyspace with the schema applied.
//! - [`poll`]: [`poll::until`], the only way tests wait.
//! - [`ingress`]: the ingress application in-process on port 0, with fresh
//!   topics and a registry file, plus signed-request and body helpers.
//! - [`processor`]: an isolated processor environment and row read-back.
//! - [`pipeline`]: an in-process ingress writing into a processor environment's topics.
//! - [`webhooks`]: realistic webhook bodies and record headers.
//! - [`raw_http`]: raw HTTP/1.1 sockets, from a chosen loopback source address.
//! - [`prometheus`]: a real Prometheus on a free port, its query API and `promtool`.
//! - [`faults`]: the fault suite's load with its ledger of 200s, the 3-node
//!   Kafka cluster with its nodes killed and restarted, the topic and
//!   database check against it, processor OS processes, service outages.
//! - [`loadgen`]: the load generator behind `src/bin/loadgen.rs`.
//! - [`bench`]: the processor benchmarks behind `src/bin/processor-bench.rs`.
//! - [`corpus`]: the real-world corpus replay: one workspace and ingress per
//!   file, the drain, and a JSON snapshot of the tables for the check.

pub mod bench;
pub mod corpus;
pub mod cql;
pub mod faults;
pub mod ingress;
pub mod kafka;
pub mod loadgen;
pub mod pipeline;
pub mod poll;
pub mod processor;
pub mod prometheus;
pub mod raw_http;
pub mod webhooks;

/// The command that starts the local services, quoted in failure messages.
pub const START_SERVICES: &str = "deploy/local/services up";

/// A name unique to this test run: `prefix_<12 hex>`. Valid as a Kafka topic,
/// a consumer group and a CQL keyspace (lowercase, starts with a letter, <48 chars).
pub fn unique_name(prefix: &str) -> String {
    let id = uuid::Uuid::new_v4().simple().to_string();
    format!("{prefix}_{}", &id[..12])
}

/// Installs a test subscriber when `TEST_LOG` is set; silent otherwise.
pub fn init_test_logging() {
    if std::env::var_os("TEST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(
                std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()),
            ))
            .with_test_writer()
            .try_init();
    }
}
