//! Builds the application from its configuration and runs it.
//!
//! [`Application::build`] binds both listeners (port 0 picks free ports, for
//! tests), loads the registry and creates the producer; it needs no running
//! broker. [`Application::run_until_stopped`] serves until the
//! [`StopSignal`] fires, then shuts down in order: stop accepting, finish
//! in-flight requests, flush the producer, stop the background tasks.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use shared::metrics::{Readiness, admin_server};
use tokio::net::TcpListener;

use crate::config::IngressConfig;
use crate::handlers::AppState;
use crate::lifecycle::StopSignal;
use crate::metrics::IngressMetrics;
use crate::producer::{KafkaWriter, Topics, create_producer};
use crate::registry::{Registry, RegistryHandle};
use crate::routes::{BodyLimits, routes};
use crate::server::{ServerOptions, serve};
use crate::{readiness, reload};

/// A built, not yet running, ingress.
#[derive(Debug)]
pub struct Application {
    config: IngressConfig,
    listener: TcpListener,
    local_addr: SocketAddr,
    admin_addr: SocketAddr,
    admin: tokio::task::JoinHandle<()>,
    state: Arc<AppState>,
    readiness: Readiness,
    stop: StopSignal,
}

impl Application {
    /// Binds the listeners and prepares everything; fails with context when
    /// a port is taken, the registry is invalid or the producer cannot be made.
    pub async fn build(config: IngressConfig) -> anyhow::Result<Self> {
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
        let prometheus = prometheus::Registry::new();
        let metrics = IngressMetrics::register(&prometheus).context("registering metrics")?;
        let producer = create_producer(&config).context("creating the Kafka producer")?;
        let topics = Topics {
            routed: config.kafka.webhook_topic.clone(),
            unrouted: config.kafka.unrouted_topic.clone(),
            dead_letter: config.kafka.dead_letter_topic.clone(),
        };
        let writer = KafkaWriter::new(producer, topics, config.ack_timeout, metrics.clone());
        let stop = StopSignal::new();
        let readiness = Readiness::default();

        let listener = TcpListener::bind(config.listen_addr)
            .await
            .with_context(|| format!("binding the webhook listener on {}", config.listen_addr))?;
        let local_addr = listener
            .local_addr()
            .context("reading the webhook listener address")?;
        let (admin_addr, admin_server) = admin_server(
            config.admin_addr,
            prometheus,
            readiness.clone(),
            stop.listener().into_stopped(),
        )
        .with_context(|| format!("binding the admin listener on {}", config.admin_addr))?;
        let admin = tokio::spawn(admin_server);

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
            admin_addr,
            admin,
            state,
            readiness,
            stop,
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
    pub fn stop_signal(&self) -> StopSignal {
        self.stop.clone()
    }

    /// Serves until the stop signal fires, then shuts down gracefully.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let Self {
            config,
            listener,
            local_addr,
            admin_addr,
            admin,
            state,
            readiness,
            stop,
        } = self;
        let writer = state.writer.clone();
        let probe = tokio::spawn(readiness::watch_kafka(
            writer.producer().clone(),
            writer.topics().clone(),
            readiness,
            config.readiness_interval,
            stop.listener(),
        ));
        let watcher = tokio::spawn(reload::watch_registry(
            config.registry_path.clone(),
            state.registry.clone(),
            config.registry_poll_interval,
            state.metrics.clone(),
            stop.listener(),
        ));
        let limits = BodyLimits {
            max_bytes: config.max_body_bytes,
            read_timeout: config.body_read_timeout,
        };
        let options = ServerOptions {
            header_read_timeout: config.header_read_timeout,
            max_connections: config.max_connections,
            drain_timeout: config.shutdown_timeout,
        };
        tracing::info!(%local_addr, %admin_addr, "ingress listening");
        let metrics = state.metrics.clone();
        serve(
            listener,
            routes(state, limits),
            options,
            metrics,
            stop.listener(),
        )
        .await;

        tracing::info!("flushing the Kafka producer");
        if let Err(err) = writer.flush(config.shutdown_timeout).await {
            tracing::error!(cause = %err, "producer flush did not complete; queued records may be lost");
        }
        stop.trigger();
        for (name, task) in [
            ("readiness", probe),
            ("registry watcher", watcher),
            ("admin server", admin),
        ] {
            if let Err(err) = task.await {
                tracing::warn!(task = name, cause = %err, "background task ended abnormally");
            }
        }
        tracing::info!("ingress stopped");
        Ok(())
    }
}
