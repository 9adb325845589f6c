//! The ingress configuration: the defaults of `deploy/config/ingress.toml`
//! (embedded: the single source of defaults), then the TOML file named by
//! `--config` (or `INBOXFLOW_CONFIG`), then `INBOXFLOW_*` environment
//! variables (see [`shared::config`]). In the environment, the processor's
//! own keys (those only `deploy/config/processor.toml` holds, such as
//! `INBOXFLOW_CQL__*`) are ignored, so one environment serves both binaries.
//!
//! Guarantees: unknown keys are rejected (`deny_unknown_fields`); secrets are
//! [`Secret`]s (`secrecy`) and never appear in `Debug` output;
//! [`IngressConfig::validate`] refuses to start a process that could not
//! verify one of its sources or whose limits and deadlines are zero.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use shared::config::{
    ConfigError, KafkaConfig, Secret, Sources, TelemetryConfig, invalid, require_non_empty,
    require_positive_duration,
};

/// The defaults (`deploy/config/ingress.toml`) and the processor's, whose
/// own keys this binary ignores in the environment.
pub const SOURCES: Sources = Sources {
    defaults: include_str!("../../deploy/config/ingress.toml"),
    sibling_defaults: include_str!("../../deploy/config/processor.toml"),
    secret_keys: &["kapso_secrets", "meta_app_secrets", "meta_verify_token"],
};

/// Everything the ingress process needs to run.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IngressConfig {
    /// Address of the webhook listener. Port 0 picks a free port.
    pub listen_addr: SocketAddr,
    /// Address of the admin listener (`/metrics`, `/healthz`, `/readyz`).
    pub admin_addr: SocketAddr,
    /// Most admin connections served at once; further ones get a fast 503.
    pub admin_max_connections: usize,
    /// How long an admin client may take to send the request line and headers.
    #[serde(with = "humantime_serde")]
    pub admin_header_read_timeout: Duration,
    /// How long an idle admin connection stays open between requests (see
    /// `idle_timeout`).
    #[serde(with = "humantime_serde")]
    pub admin_idle_timeout: Duration,
    /// On shutdown: how long admin requests in flight may take to finish;
    /// then the remaining admin connections are closed.
    #[serde(with = "humantime_serde")]
    pub admin_shutdown_timeout: Duration,
    /// Brokers and topic names (routed, unrouted, dead-letter).
    pub kafka: KafkaConfig,
    /// Extra librdkafka producer properties, applied last (for tuning, e.g.
    /// `"queue.buffering.max.kbytes" = "65536"`). The durability settings
    /// `enable.idempotence` and `acks` cannot be overridden.
    pub producer_overrides: BTreeMap<String, String>,
    /// The workspace registry file (TOML, see `deploy/config/registry.toml`).
    /// Reloaded on SIGHUP and when the file changes.
    pub registry_path: PathBuf,
    /// How often the registry file is checked for changes.
    #[serde(with = "humantime_serde")]
    pub registry_poll_interval: Duration,
    /// Global Kapso webhook secrets. Several may be listed while rotating;
    /// any one of them verifies a delivery.
    pub kapso_secrets: Vec<Secret>,
    /// Meta app secrets (for `X-Hub-Signature-256`). Several may be listed
    /// while rotating.
    pub meta_app_secrets: Vec<Secret>,
    /// The token Meta echoes in the `GET /webhooks/meta` subscription handshake.
    pub meta_verify_token: Secret,
    /// Largest body accepted, in bytes; larger bodies get 413 and are never
    /// read in full.
    pub max_body_bytes: u64,
    /// How long Kafka may take to acknowledge every record of a request.
    /// Past it the request gets 503 with `Retry-After`.
    #[serde(with = "humantime_serde")]
    pub ack_timeout: Duration,
    /// The `Retry-After` value sent with 503 (rounded up to whole seconds).
    #[serde(with = "humantime_serde")]
    pub retry_after: Duration,
    /// How long a client may take to send a request body (slow-loris guard).
    #[serde(with = "humantime_serde")]
    pub body_read_timeout: Duration,
    /// How long a client may take to send the request line and headers.
    #[serde(with = "humantime_serde")]
    pub header_read_timeout: Duration,
    /// How long an idle keep-alive connection stays open between requests;
    /// advertised to clients as `Keep-Alive: timeout=N`, N one second under
    /// it. At least 2s.
    #[serde(with = "humantime_serde")]
    pub idle_timeout: Duration,
    /// Most connections served at once; further connections get a fast 503
    /// (`Retry-After`, `Connection: close`). Bounds memory to about
    /// `max_connections * max_body_bytes`.
    pub max_connections: usize,
    /// Most connections served at once to one client (source IP address);
    /// its further connections get the same fast 503. At most
    /// `max_connections`; behind a proxy every connection has the proxy's
    /// address, so set it to `max_connections` there.
    pub max_connections_per_client: usize,
    /// How often `/readyz` re-checks Kafka: the topics exist and accept the
    /// largest record, and the producer has no fatal error.
    #[serde(with = "humantime_serde")]
    pub readiness_interval: Duration,
    /// On shutdown: how long in-flight requests may take to finish, and then
    /// how long the producer may take to flush.
    #[serde(with = "humantime_serde")]
    pub shutdown_timeout: Duration,
    /// Log format and level.
    pub telemetry: TelemetryConfig,
}

impl Default for IngressConfig {
    /// The embedded defaults (`deploy/config/ingress.toml`); a unit test
    /// checks that they load.
    fn default() -> Self {
        #[allow(clippy::expect_used)]
        shared::config::defaults(SOURCES.defaults).expect("deploy/config/ingress.toml loads")
    }
}

/// Producer properties that carry the durability promise and may not be overridden.
const PINNED_PRODUCER_KEYS: &[&str] = &["enable.idempotence", "acks", "request.required.acks"];

impl IngressConfig {
    /// Loads defaults, the optional file and the environment.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        shared::config::load(&SOURCES, file)
    }

    /// Fails with a message naming the first invalid field.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.kafka.validate()?;
        require_non_empty("registry_path", &self.registry_path.to_string_lossy())?;
        require_secrets("kapso_secrets", &self.kapso_secrets)?;
        require_secrets("meta_app_secrets", &self.meta_app_secrets)?;
        require_non_empty("meta_verify_token", self.meta_verify_token.expose())?;
        if self.max_body_bytes == 0 {
            return Err(invalid("max_body_bytes must be greater than zero"));
        }
        self.validate_connection_limits()?;
        for (name, value) in [
            ("registry_poll_interval", self.registry_poll_interval),
            ("ack_timeout", self.ack_timeout),
            ("retry_after", self.retry_after),
            ("body_read_timeout", self.body_read_timeout),
            ("header_read_timeout", self.header_read_timeout),
            ("readiness_interval", self.readiness_interval),
            ("shutdown_timeout", self.shutdown_timeout),
            ("admin_header_read_timeout", self.admin_header_read_timeout),
            ("admin_shutdown_timeout", self.admin_shutdown_timeout),
        ] {
            require_positive_duration(name, value)?;
        }
        for (name, value) in [
            ("idle_timeout", self.idle_timeout),
            ("admin_idle_timeout", self.admin_idle_timeout),
        ] {
            if value < Duration::from_secs(2) {
                return Err(invalid(&format!(
                    "{name} must be at least 2s (clients are told one second less)"
                )));
            }
        }
        if self.ack_timeout > Duration::from_secs(300) {
            return Err(invalid("ack_timeout must be at most 5m"));
        }
        if let Some(key) = self
            .producer_overrides
            .keys()
            .find(|k| PINNED_PRODUCER_KEYS.contains(&k.as_str()))
        {
            return Err(invalid(&format!(
                "producer_overrides may not set {key}: durability settings are fixed"
            )));
        }
        if self.listen_addr == self.admin_addr && self.listen_addr.port() != 0 {
            return Err(invalid("listen_addr and admin_addr must differ"));
        }
        Ok(())
    }

    fn validate_connection_limits(&self) -> Result<(), ConfigError> {
        for (name, value) in [
            ("max_connections", self.max_connections),
            (
                "max_connections_per_client",
                self.max_connections_per_client,
            ),
            ("admin_max_connections", self.admin_max_connections),
        ] {
            if value == 0 {
                return Err(invalid(&format!("{name} must be greater than zero")));
            }
        }
        if self.max_connections_per_client > self.max_connections {
            return Err(invalid(
                "max_connections_per_client must be at most max_connections",
            ));
        }
        Ok(())
    }

    /// `Retry-After` in whole seconds, at least 1.
    pub fn retry_after_secs(&self) -> u64 {
        let secs = self.retry_after.as_secs() + u64::from(self.retry_after.subsec_nanos() > 0);
        secs.max(1)
    }
}

fn require_secrets(name: &str, secrets: &[Secret]) -> Result<(), ConfigError> {
    if secrets.is_empty() {
        return Err(invalid(&format!(
            "{name} must list at least one secret: without one, no delivery can be verified"
        )));
    }
    if secrets.iter().any(|s| s.expose().trim().is_empty()) {
        return Err(invalid(&format!("{name} must not contain blank secrets")));
    }
    Ok(())
}

#[cfg(test)]
// figment::Jail closures return figment::Result, whose error is large.
#[allow(clippy::result_large_err)]
mod tests {
    use super::*;

    fn valid() -> IngressConfig {
        let mut cfg = IngressConfig {
            kapso_secrets: vec![Secret::new("k")],
            meta_app_secrets: vec![Secret::new("m")],
            meta_verify_token: Secret::new("t"),
            ..IngressConfig::default()
        };
        cfg.kafka.envelope_key = Secret::new("ingress-test-envelope-key");
        cfg
    }

    #[test]
    fn the_embedded_defaults_load_and_validate_once_secrets_are_given() {
        let mut cfg: IngressConfig =
            shared::config::defaults(SOURCES.defaults).expect("defaults fit");
        assert_eq!(cfg.max_body_bytes, 4 * 1024 * 1024);
        let err = cfg.validate().expect_err("the envelope key is required");
        assert!(err.to_string().contains("kafka.envelope_key"), "{err}");
        cfg.kafka.envelope_key = Secret::new("ingress-test-envelope-key");
        let err = cfg.validate().expect_err("secrets are required");
        assert!(err.to_string().contains("kapso_secrets"), "{err}");
        valid().validate().expect("valid with secrets");
    }

    #[test]
    fn defaults_with_secrets_are_valid() {
        valid().validate().expect("valid");
        assert_eq!(valid().retry_after_secs(), 5);
    }

    #[test]
    fn a_source_without_secrets_is_refused_at_start_up() {
        let cfg = IngressConfig {
            meta_app_secrets: vec![],
            ..valid()
        };
        let err = cfg.validate().expect_err("must fail").to_string();
        assert!(err.contains("meta_app_secrets"), "{err}");
        let cfg = IngressConfig {
            kapso_secrets: vec![Secret::new(" ")],
            ..valid()
        };
        assert!(cfg.validate().is_err());
    }

    #[test]
    fn zero_limits_and_pinned_producer_settings_are_refused() {
        let cfg = IngressConfig {
            ack_timeout: Duration::ZERO,
            ..valid()
        };
        assert!(
            cfg.validate()
                .expect_err("zero")
                .to_string()
                .contains("ack_timeout")
        );
        let mut cfg = valid();
        cfg.producer_overrides.insert("acks".into(), "1".into());
        assert!(
            cfg.validate()
                .expect_err("pinned")
                .to_string()
                .contains("acks")
        );
    }

    #[test]
    fn connection_limits_must_be_positive_and_the_per_client_cap_within_the_global_one() {
        for cfg in [
            IngressConfig {
                max_connections_per_client: 0,
                ..valid()
            },
            IngressConfig {
                admin_max_connections: 0,
                ..valid()
            },
            IngressConfig {
                max_connections_per_client: valid().max_connections + 1,
                ..valid()
            },
        ] {
            let err = cfg.validate().expect_err("refused").to_string();
            assert!(err.contains("max_connections"), "{err}");
        }
        let cfg = IngressConfig {
            admin_shutdown_timeout: Duration::ZERO,
            ..valid()
        };
        let err = cfg.validate().expect_err("zero").to_string();
        assert!(err.contains("admin_shutdown_timeout"), "{err}");
    }

    #[test]
    fn durations_parse_from_human_strings_and_unknown_keys_fail() {
        figment::Jail::expect_with(|jail| {
            jail.clear_env();
            jail.set_env("INBOXFLOW_ACK_TIMEOUT", "2s");
            let cfg = IngressConfig::load(None).expect("loads");
            assert_eq!(cfg.ack_timeout, Duration::from_secs(2));
            jail.set_env("INBOXFLOW_ACK_TIMEOUTS", "2s");
            let err = IngressConfig::load(None).expect_err("typo");
            assert!(err.to_string().contains("ack_timeouts"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn the_processors_keys_in_the_environment_are_ignored_but_typos_fail() {
        figment::Jail::expect_with(|jail| {
            jail.clear_env();
            jail.set_env("INBOXFLOW_CQL__KEYSPACE", "other");
            jail.set_env("INBOXFLOW_RETRY__MAX_BACKOFF", "10s");
            jail.set_env("INBOXFLOW_CONSUMER__GROUP_ID", "g");
            jail.set_env("INBOXFLOW_KAFKA__BROKERS", "k:9092");
            let cfg = IngressConfig::load(None).expect("processor keys are ignored");
            assert_eq!(cfg.kafka.brokers, "k:9092");
            jail.set_env("INBOXFLOW_CQLL__KEYSPACE", "other");
            let err = IngressConfig::load(None).expect_err("a typo still fails");
            assert!(err.to_string().contains("cqll"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn secrets_stay_out_of_debug_output() {
        let text = format!("{:?}", valid());
        assert!(!text.contains("\"k\""), "{text}");
        assert!(!text.contains("ingress-test-envelope-key"), "{text}");
    }
}
