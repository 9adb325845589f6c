//! Builds the application from its configuration and runs it.
//!
//! [`Application::build`] binds both listeners (port 0 picks free ports, for
//! tests), loads the registry and creates the producer; it needs no running
//! broker. [`Application::run_until_stopped`] serves both listeners with the
//! same connection loop ([`crate::server::serve`]), each with its own limits,
//! until the [`Shutdown`] fires, then shuts down in order: stop accepting,
//! finish in-flight requests (webhooks within `shutdown_timeout`, admin
//! within `admin_shutdown_timeout`; connections still open then are closed),
//! flush the producer, stop the background tasks. Every step has a
//! deadline, so no client can hold up the stop. A fatal producer error fires
//! the same signal (see [`crate::readiness`]) and makes `run_until_stopped`
//! return an error.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use shared::metrics::Readiness;
use shared::shutdown::Shutdown;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::config::IngressConfig;
use crate::handlers::AppState;
use crate::keepalive::KeepAlive;
use crate::metrics::{IngressMetrics, ListenerLabel};
use crate::producer::{
    KafkaWriter, Topics, connection_config, create_producer, largest_record_bytes,
};
use crate::readiness::Probe;
use crate::registry::{Registry, RegistryHandle};
use crate::routes::{BodyLimits, admin_routes, routes};
use crate::server::{ServerOptions, serve};
use crate::topic_limits::Admin;
use crate::{readiness, reload};

/// A built, not yet running, ingress.
#[derive(Debug)]
pub struct Application {
    config: IngressConfig,
    listener: TcpListener,
    local_addr: SocketAddr,
    admin_listener: TcpListener,
    admin_addr: SocketAddr,
    prometheus: prometheus::Registry,
    state: Arc<AppState>,
    kafka_admin: Arc<Admin>,
    readiness: Readiness,
    stop: Shutdown,
    admin_stop: Shutdown,
}

/// Background tasks awaited on shutdown, each with the name used in logs.
type Tasks = Vec<(&'static str, JoinHandle<()>)>;

impl Application {
    /// Binds the listeners and prepares everything; fails with context when
    /// a port is taken, the registry is invalid or the producer cannot be made.
    pub async fn build(config: IngressConfig) -> anyhow::Result<Self> {
        let registry = load_registry(&config)?;
        let prometheus = prometheus::Registry::new();
        let metrics = IngressMetrics::register(&prometheus).context("registering metrics")?;
        let writer = make_writer(&config, &metrics)?;
        let kafka_admin: Admin = connection_config(&config)
            .create()
            .context("creating the Kafka admin client")?;
        let stop = Shutdown::new();
        let admin_stop = Shutdown::new();
        let readiness = Readiness::default();

        let listener = TcpListener::bind(config.listen_addr)
            .await
            .with_context(|| format!("binding the webhook listener on {}", config.listen_addr))?;
        let local_addr = listener
            .local_addr()
            .context("reading the webhook listener address")?;
        let admin_listener = TcpListener::bind(config.admin_addr)
            .await
            .with_context(|| format!("binding the admin listener on {}", config.admin_addr))?;
        let admin_addr = admin_listener
            .local_addr()
            .context("reading the admin listener address")?;

        let state = Arc::new(AppState {
            registry: RegistryHandle::new(registry),
            writer,
            metrics,
            kapso_secrets: config.kapso_secrets.clone(),
            meta_app_secrets: config.meta_app_secrets.clone(),
            meta_verify_token: config.meta_verify_token.clone(),
            retry_after_secs: config.retry_after_secs(),
        });
        Ok(Self {
            config,
            listener,
            local_addr,
            admin_listener,
            admin_addr,
            prometheus,
            state,
            kafka_admin: Arc::new(kafka_admin),
            readiness,
            stop,
            admin_stop,
        })
    }

    /// The bound webhook port.
    pub fn port(&self) -> u16 {
        self.local_addr.port()
    }

    /// The bound admin port (`/metrics`, `/healthz`, `/readyz`).
    pub fn admin_port(&self) -> u16 {
        self.admin_addr.port()
    }

    /// Fires to stop the application (keep a clone before running it).
    pub fn stop_signal(&self) -> Shutdown {
        self.stop.clone()
    }

    /// Serves until the stop signal fires, then shuts down gracefully.
    /// Returns an error when the stop came from a fatal producer error, so
    /// that the process exits non-zero.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let mut tasks = self.spawn_watchers();
        tracing::info!(local_addr = %self.local_addr, admin_addr = %self.admin_addr, "ingress listening");
        let Self {
            config,
            listener,
            admin_listener,
            prometheus,
            state,
            readiness,
            stop,
            admin_stop,
            ..
        } = self;
        // The admin listener stops last, so /healthz answers during the shutdown.
        let admin = serve_admin(
            admin_listener,
            prometheus,
            readiness.clone(),
            &state,
            &config,
            &admin_stop,
        );
        tasks.push(("admin server", admin));
        let writer = state.writer.clone();
        serve_webhooks(listener, state, &config, stop.clone()).await;

        tracing::info!("flushing the Kafka producer");
        if let Err(err) = writer.flush(config.shutdown_timeout).await {
            tracing::error!(cause = %err, "producer flush did not complete; queued records may be lost");
        }
        stop.trigger();
        admin_stop.trigger();
        join_all(tasks).await;
        if let Some(why) = readiness.unhealthy() {
            anyhow::bail!("the ingress stopped because {why}");
        }
        tracing::info!("ingress stopped");
        Ok(())
    }

    /// Starts the readiness probe and the registry watcher.
    fn spawn_watchers(&self) -> Tasks {
        let (config, state) = (&self.config, &self.state);
        let writer = &state.writer;
        let probe = Probe {
            producer: writer.producer().clone(),
            admin: Arc::clone(&self.kafka_admin),
            topics: writer.topics().clone(),
            largest_record: largest_record_bytes(config),
            timeout: config.readiness_interval.min(Duration::from_secs(5)),
        };
        let probe = tokio::spawn(readiness::watch_kafka(
            probe,
            self.readiness.clone(),
            config.readiness_interval,
            self.stop.clone(),
        ));
        let watcher = tokio::spawn(reload::watch_registry(
            config.registry_path.clone(),
            state.registry.clone(),
            config.registry_poll_interval,
            state.metrics.clone(),
            self.stop.clone(),
        ));
        vec![("readiness", probe), ("registry watcher", watcher)]
    }
}

fn load_registry(config: &IngressConfig) -> anyhow::Result<Registry> {
    let registry = Registry::load(&config.registry_path).with_context(|| {
        format!(
            "loading the workspace registry {}",
            config.registry_path.display()
        )
    })?;
    tracing::info!(
        workspaces = registry.workspace_count(),
        phone_numbers = registry.phone_number_count(),
        "workspace registry loaded"
    );
    Ok(registry)
}

fn make_writer(config: &IngressConfig, metrics: &IngressMetrics) -> anyhow::Result<KafkaWriter> {
    let producer = create_producer(config).context("creating the Kafka producer")?;
    let topics = Topics {
        routed: config.kafka.webhook_topic.clone(),
        unrouted: config.kafka.unrouted_topic.clone(),
        dead_letter: config.kafka.dead_letter_topic.clone(),
    };
    Ok(KafkaWriter::new(
        producer,
        config.kafka.envelope_key.envelope_key(),
        topics,
        config.ack_timeout,
        metrics.clone(),
    ))
}

/// Serves the webhook routes until `stop` fires and in-flight requests drain.
async fn serve_webhooks(
    listener: TcpListener,
    state: Arc<AppState>,
    config: &IngressConfig,
    stop: Shutdown,
) {
    let limits = BodyLimits {
        max_bytes: config.max_body_bytes,
        read_timeout: config.body_read_timeout,
    };
    let options = ServerOptions {
        listener: ListenerLabel::Webhooks,
        keep_alive: KeepAlive {
            header_read_timeout: config.header_read_timeout,
            idle_timeout: config.idle_timeout,
        },
        max_connections: config.max_connections,
        max_connections_per_client: config.max_connections_per_client,
        drain_timeout: config.shutdown_timeout,
        retry_after_secs: config.retry_after_secs(),
    };
    let metrics = state.metrics.clone();
    serve(listener, routes(state, limits), options, metrics, stop).await;
}

/// Starts the admin listener (`/metrics`, `/healthz`, `/readyz`); the task
/// ends by `admin_shutdown_timeout` after `stop` fires.
fn serve_admin(
    listener: TcpListener,
    prometheus: prometheus::Registry,
    readiness: Readiness,
    state: &AppState,
    config: &IngressConfig,
    stop: &Shutdown,
) -> JoinHandle<()> {
    let options = ServerOptions {
        listener: ListenerLabel::Admin,
        keep_alive: KeepAlive {
            header_read_timeout: config.admin_header_read_timeout,
            idle_timeout: config.admin_idle_timeout,
        },
        max_connections: config.admin_max_connections,
        // Scrapers and probes are few and trusted: the cap is the only limit.
        max_connections_per_client: config.admin_max_connections,
        drain_timeout: config.admin_shutdown_timeout,
        retry_after_secs: config.retry_after_secs(),
    };
    let filter = admin_routes(prometheus, readiness);
    let metrics = state.metrics.clone();
    tokio::spawn(serve(listener, filter, options, metrics, stop.clone()))
}

async fn join_all(tasks: Tasks) {
    for (name, task) in tasks {
        if let Err(err) = task.await {
            tracing::warn!(task = name, cause = %err, "background task ended abnormally");
        }
    }
}
