//! Spawning the ingress in-process, on port 0, against the real broker.
//!
//! [`spawn_ingress`] creates three fresh topics (routed, unrouted,
//! dead-letter), writes a registry file into a fresh temporary folder and
//! starts [`ingress::Application`] with a test configuration. The returned
//! [`TestIngress`] knows its URL, topics and secrets, signs requests, and
//! stops the application when dropped.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use ingress::{Application, IngressConfig};
use shared::config::{KafkaConfig, Secret};
use shared::signing::{kapso_signature, meta_signature};

use crate::kafka::{self, ReadRecord};

/// The global Kapso secret of test ingresses.
pub const KAPSO_SECRET: &str = "test-kapso-secret";
/// A second global Kapso secret, as during a rotation.
pub const KAPSO_SECRET_NEXT: &str = "test-kapso-secret-next";
/// The Meta app secret of test ingresses.
pub const META_SECRET: &str = "test-meta-app-secret";
/// The handshake token of test ingresses.
pub const VERIFY_TOKEN: &str = "test-verify-token";

/// Two workspaces; ws_acme has its own Kapso secret [`ACME_KAPSO_SECRET`].
pub const TEST_REGISTRY: &str = r#"
[[workspace]]
id = "ws_acme"
phone_number_ids = ["100000000000001"]
kapso_secrets = ["acme-own-kapso-secret"]

[[workspace]]
id = "ws_globex"
phone_number_ids = ["200000000000002", "200000000000003"]
"#;
/// ws_acme's own Kapso secret in [`TEST_REGISTRY`].
pub const ACME_KAPSO_SECRET: &str = "acme-own-kapso-secret";
/// ws_acme's phone number in [`TEST_REGISTRY`].
pub const ACME_PHONE: &str = "100000000000001";
/// ws_globex's phone numbers in [`TEST_REGISTRY`].
pub const GLOBEX_PHONES: [&str; 2] = ["200000000000002", "200000000000003"];

/// Topics unique to one test.
#[derive(Debug, Clone)]
pub struct TestTopics {
    pub routed: String,
    pub unrouted: String,
    pub dead_letter: String,
}

impl TestTopics {
    /// Creates three fresh single-partition topics on the real broker.
    pub async fn create() -> anyhow::Result<Self> {
        let topics = Self {
            routed: crate::unique_name("ingress_routed"),
            unrouted: crate::unique_name("ingress_unrouted"),
            dead_letter: crate::unique_name("ingress_dlq"),
        };
        kafka::create_topics(&[&topics.routed, &topics.unrouted, &topics.dead_letter], 1).await?;
        Ok(topics)
    }

    /// Like [`TestTopics::create`], with topics that accept records of up to
    /// `max_message_bytes` (the broker default is about 1 MiB).
    pub async fn create_for_large_records(max_message_bytes: usize) -> anyhow::Result<Self> {
        use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
        use rdkafka::client::DefaultClientContext;
        kafka::require_kafka()?;
        let topics = Self {
            routed: crate::unique_name("ingress_routed"),
            unrouted: crate::unique_name("ingress_unrouted"),
            dead_letter: crate::unique_name("ingress_dlq"),
        };
        let admin: AdminClient<DefaultClientContext> = rdkafka::ClientConfig::new()
            .set("bootstrap.servers", kafka::brokers())
            .create()?;
        let max = max_message_bytes.to_string();
        let new: Vec<NewTopic<'_>> = [&topics.routed, &topics.unrouted, &topics.dead_letter]
            .into_iter()
            .map(|name| {
                NewTopic::new(name, 1, TopicReplication::Fixed(1)).set("max.message.bytes", &max)
            })
            .collect();
        let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
        for result in admin.create_topics(&new, &options).await? {
            result.map_err(|(topic, code)| anyhow::anyhow!("creating topic {topic}: {code}"))?;
        }
        Ok(topics)
    }
}

/// A configuration for a test ingress: ports 0, short deadlines, test secrets.
pub fn test_config(brokers: &str, topics: &TestTopics, registry_path: &Path) -> IngressConfig {
    IngressConfig {
        listen_addr: "127.0.0.1:0".parse().expect("address"),
        admin_addr: "127.0.0.1:0".parse().expect("address"),
        kafka: KafkaConfig {
            brokers: brokers.to_owned(),
            webhook_topic: topics.routed.clone(),
            unrouted_topic: topics.unrouted.clone(),
            dead_letter_topic: topics.dead_letter.clone(),
            envelope_key: Secret::new(crate::webhooks::ENVELOPE_KEY),
        },
        registry_path: registry_path.to_owned(),
        registry_poll_interval: Duration::from_millis(200),
        kapso_secrets: vec![Secret::new(KAPSO_SECRET), Secret::new(KAPSO_SECRET_NEXT)],
        meta_app_secrets: vec![Secret::new(META_SECRET)],
        meta_verify_token: Secret::new(VERIFY_TOKEN),
        ack_timeout: Duration::from_secs(10),
        readiness_interval: Duration::from_millis(500),
        shutdown_timeout: Duration::from_secs(10),
        ..IngressConfig::default()
    }
}

/// A running test ingress. Dropping it stops the application.
#[derive(Debug)]
pub struct TestIngress {
    pub port: u16,
    pub admin_port: u16,
    pub topics: TestTopics,
    pub registry_path: PathBuf,
    pub client: reqwest::Client,
    dir: PathBuf,
    stop: shared::shutdown::Shutdown,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

/// Creates fresh topics and a registry file, then starts an ingress on the
/// real broker ([`kafka::brokers`]).
pub async fn spawn_ingress(registry_toml: &str) -> anyhow::Result<TestIngress> {
    let topics = TestTopics::create().await?;
    spawn_ingress_with(registry_toml, topics, |cfg| cfg).await
}

/// Like [`spawn_ingress`] with given topics and a hook to adjust the configuration.
pub async fn spawn_ingress_with(
    registry_toml: &str,
    topics: TestTopics,
    adjust: impl FnOnce(IngressConfig) -> IngressConfig,
) -> anyhow::Result<TestIngress> {
    crate::init_test_logging();
    let dir = std::env::temp_dir().join(crate::unique_name("ingress"));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let registry_path = dir.join("registry.toml");
    std::fs::write(&registry_path, registry_toml).context("writing the registry")?;
    let config = adjust(test_config(&kafka::brokers(), &topics, &registry_path));
    config.validate().context("test configuration")?;
    let app = Application::build(config)
        .await
        .context("building the ingress")?;
    let (port, admin_port, stop) = (app.port(), app.admin_port(), app.stop_signal());
    let task = tokio::spawn(app.run_until_stopped());
    Ok(TestIngress {
        port,
        admin_port,
        topics,
        registry_path,
        client: reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .context("building the HTTP client")?,
        dir,
        stop,
        task: Some(task),
    })
}

impl TestIngress {
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn admin_url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.admin_port)
    }

    /// GET `path` on the admin listener: its status code and body text.
    pub async fn admin_get(&self, path: &str) -> anyhow::Result<(u16, String)> {
        let res = self.client.get(self.admin_url(path)).send().await?;
        let status = res.status().as_u16();
        Ok((status, res.text().await?))
    }

    /// A Kapso POST to `path`, signed with `secret`, with an event header.
    pub fn kapso_request(&self, path: &str, body: &[u8], secret: &str) -> reqwest::RequestBuilder {
        self.kapso_request_with_signature(path, body, &kapso_signature(secret, body))
    }

    /// A Kapso POST to `path` with `signature` as the signature header.
    /// Add more headers with `.header()` (which appends, so do not repeat these).
    pub fn kapso_request_with_signature(
        &self,
        path: &str,
        body: &[u8],
        signature: &str,
    ) -> reqwest::RequestBuilder {
        self.client
            .post(self.url(path))
            .header("content-type", "application/json")
            .header("x-webhook-signature", signature)
            .header("x-webhook-event", "whatsapp.message.received")
            .body(body.to_vec())
    }

    /// Posts `body` to `/webhooks/kapso` signed with [`KAPSO_SECRET`].
    pub async fn post_kapso(&self, body: &[u8]) -> anyhow::Result<reqwest::Response> {
        Ok(self
            .kapso_request("/webhooks/kapso", body, KAPSO_SECRET)
            .send()
            .await?)
    }

    /// Posts `body` to `/webhooks/meta` signed with [`META_SECRET`].
    pub async fn post_meta(&self, body: &[u8]) -> anyhow::Result<reqwest::Response> {
        Ok(self
            .client
            .post(self.url("/webhooks/meta"))
            .header("content-type", "application/json")
            .header("x-hub-signature-256", meta_signature(META_SECRET, body))
            .body(body.to_vec())
            .send()
            .await?)
    }

    /// Replaces the registry file atomically (write a temporary file, rename).
    pub fn write_registry(&self, registry_toml: &str) -> anyhow::Result<()> {
        let tmp = self.dir.join("registry.toml.tmp");
        std::fs::write(&tmp, registry_toml).context("writing the new registry")?;
        std::fs::rename(&tmp, &self.registry_path).context("replacing the registry")?;
        Ok(())
    }

    /// Reads `count` records from `topic` (fails after 20 s).
    pub async fn read(&self, topic: &str, count: usize) -> anyhow::Result<Vec<ReadRecord>> {
        let topic = topic.to_owned();
        tokio::task::spawn_blocking(move || {
            kafka::read_records(&topic, count, Duration::from_secs(20))
        })
        .await?
    }

    /// Every record now in `topic`.
    pub async fn read_all(&self, topic: &str) -> anyhow::Result<Vec<ReadRecord>> {
        let topic = topic.to_owned();
        tokio::task::spawn_blocking(move || kafka::read_all(&topic, Duration::from_secs(20)))
            .await?
    }

    /// Starts a graceful stop without waiting for it.
    pub fn trigger_stop(&self) {
        self.stop.trigger();
    }

    /// Stops the application gracefully and waits for it to finish.
    pub async fn shutdown(mut self) -> anyhow::Result<()> {
        self.stop.trigger();
        match self.task.take() {
            Some(task) => tokio::time::timeout(Duration::from_secs(30), task)
                .await
                .context("the ingress did not stop within 30 s")??,
            None => Ok(()),
        }
    }
}

impl Drop for TestIngress {
    fn drop(&mut self) {
        self.stop.trigger();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A Kapso `whatsapp.message.received` body for `phone_number_id`.
pub fn kapso_message_body(phone_number_id: &str, text: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "message": {
            "id": format!("wamid.{}", uuid::Uuid::new_v4().simple()),
            "timestamp": "1730092800",
            "type": "text",
            "from": "15551234567",
            "text": {"body": text},
            "kapso": {"direction": "inbound", "status": "received", "origin": "cloud_api"}
        },
        "conversation": {
            "id": "conv_1",
            "phone_number": "+15551234567",
            "status": "active",
            "phone_number_id": phone_number_id
        },
        "is_new_conversation": false,
        "phone_number_id": phone_number_id
    }))
    .unwrap_or_default()
}

/// A Meta body with one change per phone_number_id, each with a text message
/// and a status update.
pub fn meta_body(phone_number_ids: &[&str]) -> Vec<u8> {
    let changes: Vec<serde_json::Value> = phone_number_ids
        .iter()
        .map(|id| {
            serde_json::json!({"field": "messages", "value": {
                "messaging_product": "whatsapp",
                "metadata": {"display_phone_number": "15550000000", "phone_number_id": id},
                "contacts": [{"profile": {"name": "Ana"}, "wa_id": "5511987654321"}],
                "messages": [{"from": "5511987654321", "id": format!("wamid.in.{id}"),
                              "timestamp": "1730092800", "type": "text", "text": {"body": "oi"}}],
                "statuses": [{"id": format!("wamid.out.{id}"), "status": "delivered",
                              "timestamp": "1730092801", "recipient_id": "5511987654321"}]
            }})
        })
        .collect();
    serde_json::to_vec(&serde_json::json!({
        "object": "whatsapp_business_account",
        "entry": [{"id": "waba-1", "changes": changes}]
    }))
    .unwrap_or_default()
}

/// Reads `/metrics` from the admin port.
pub async fn metrics_text(ingress: &TestIngress) -> anyhow::Result<String> {
    Ok(ingress
        .client
        .get(ingress.admin_url("/metrics"))
        .send()
        .await?
        .text()
        .await?)
}

/// The value of the sample line starting with `series` (name and labels), if present.
pub fn metric_value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
}
