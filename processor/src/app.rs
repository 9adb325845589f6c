//! Wiring: builds a running processor from its configuration, in-process, so
//! `main` and the integration tests start it the same way.
//!
//! Start-up waits for the database (retrying with backoff, logging each
//! failure) instead of exiting, so processors may start before Cassandra or
//! ScyllaDB is ready.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use shared::backoff::Backoff;
use shared::metrics::{Readiness, admin_server};
use shared::shutdown::Shutdown;
use tokio::task::JoinHandle;
use tracing::{info, warn};

use crate::clocks::{Clocks, TopicProbe};
use crate::config::{CqlConfig, ProcessorConfig, RetryConfig};
use crate::consumer::{self, BatchProcessor};
use crate::dead_letter::DeadLetters;
use crate::metrics::Metrics;
use crate::store::{self, Store, StoreError};

/// Applies the schema (`processor migrate`), then carries the rows of any
/// table an earlier release used into the table that replaced it
/// ([`store::carry_predecessors`]); returns the statements applied.
pub async fn migrate(cfg: &CqlConfig, retry: &RetryConfig) -> anyhow::Result<usize> {
    let session = Box::pin(wait_for(retry, "the CQL database", || {
        store::open_session(cfg)
    }))
    .await?;
    let applied = store::migrate(&session, &cfg.keyspace, &cfg.replication)
        .await
        .context("applying schemas/cql/schema.cql")?;
    info!(keyspace = %cfg.keyspace, statements = applied, "schema applied");
    let carried = store::carry_predecessors(&session, &cfg.keyspace)
        .await
        .context("carrying the rows of replaced tables")?;
    for (table, rows) in &carried {
        info!(keyspace = %cfg.keyspace, table, rows, "rows of the replaced table carried");
    }
    Ok(applied)
}

/// `processor migrate --from-keyspace FROM`: applies the schema to the
/// configured keyspace, then copies the keyspace `FROM` (of the layout
/// before cross-workspace keys) into it ([`store::copy_keyspace`]).
pub async fn migrate_from(
    cfg: &CqlConfig,
    retry: &RetryConfig,
    from: &str,
) -> anyhow::Result<store::CopyReport> {
    anyhow::ensure!(
        crate::config::is_keyspace_name(from) && from != cfg.keyspace,
        "--from-keyspace must be a keyspace name other than cql.keyspace"
    );
    migrate(cfg, retry).await?;
    let session = store::open_session(cfg).await?;
    let report = store::copy_keyspace(&session, from, &cfg.keyspace)
        .await
        .with_context(|| format!("copying keyspace {from} into {}", cfg.keyspace))?;
    for (table, rows) in &report {
        info!(from, to = %cfg.keyspace, table, rows, "table copied");
    }
    Ok(report)
}

/// `processor clocks rebase`: moves the write clocks on after the webhook
/// topic changed (see [`crate::clocks::rebase`]); run with every processor stopped.
pub async fn rebase_clocks(
    cfg: &ProcessorConfig,
    force: bool,
) -> anyhow::Result<crate::clocks::RebaseReport> {
    let store = Store::connect(&cfg.cql).await?;
    let probe = TopicProbe::new(
        &cfg.kafka.brokers,
        &cfg.consumer.group_id,
        cfg.cql.request_timeout,
    )?;
    let report = crate::clocks::rebase(&store, &probe, &cfg.kafka.webhook_topic, force).await?;
    info!(topic = %report.topic, partitions = report.partitions, epoch = report.epoch, "write clocks rebased");
    Ok(report)
}

/// A running processor.
#[derive(Debug)]
pub struct RunningProcessor {
    pub admin_addr: Option<SocketAddr>,
    pub metrics: Metrics,
    shutdown: Shutdown,
    consumer: JoinHandle<anyhow::Result<u64>>,
    admin: Option<JoinHandle<()>>,
}

impl RunningProcessor {
    /// Connects to the database (waiting for it), joins the consumer group
    /// and starts consuming.
    pub async fn start(cfg: ProcessorConfig) -> anyhow::Result<Self> {
        Self::launch(cfg, |processor| processor).await
    }

    /// [`Self::start`], injecting `faults` (tests only, feature `fault-injection`).
    #[cfg(feature = "fault-injection")]
    pub async fn start_with_faults(
        cfg: ProcessorConfig,
        faults: crate::pipeline::faults::Faults,
    ) -> anyhow::Result<Self> {
        Self::launch(cfg, move |processor| BatchProcessor {
            faults,
            ..processor
        })
        .await
    }

    async fn launch(
        cfg: ProcessorConfig,
        configure: impl FnOnce(BatchProcessor) -> BatchProcessor,
    ) -> anyhow::Result<Self> {
        let metrics = Metrics::new().context("registering metrics")?;
        let readiness = Readiness::default();
        let shutdown = Shutdown::new();
        let (admin_addr, admin) = match cfg.admin_addr {
            Some(addr) => {
                let stop = shutdown.owned_wait();
                let (bound, server) =
                    admin_server(addr, metrics.registry.clone(), readiness.clone(), stop)
                        .with_context(|| format!("binding the admin server on {addr}"))?;
                info!(%bound, "admin server listening");
                (Some(bound), Some(tokio::spawn(server)))
            }
            None => (None, None),
        };
        // A keyspace of the old key layout is refused at once (not retried).
        let store = Box::pin(wait_for(&cfg.retry, "the CQL database", || async {
            match Store::connect(&cfg.cql).await {
                Err(err @ StoreError::OldLayout { .. }) => Ok(Err(err)),
                other => other.map(Ok),
            }
        }))
        .await??;
        let dead_letters = DeadLetters::new(
            &cfg.kafka.brokers,
            &cfg.kafka.dead_letter_topic,
            cfg.consumer.max_record_bytes,
        )?;
        let probe = TopicProbe::new(&cfg.kafka.brokers, "", cfg.cql.request_timeout)?;
        let clocks = Clocks::new(store.clone(), &cfg.kafka.webhook_topic, probe);
        // A changed topic is refused before joining the group (not retried).
        Box::pin(wait_for(
            &cfg.retry,
            "the webhook topic's layout",
            || async {
                match clocks.check_layout().await {
                    Err(err) if err.is_layout_change() => Ok(Err(err)),
                    other => other.map(Ok),
                }
            },
        ))
        .await??;
        let group = consumer::subscribe(&cfg, &metrics)?;
        readiness.set(true);
        info!(group = %cfg.consumer.group_id, topic = %cfg.kafka.webhook_topic, "consuming");
        let processor = configure(BatchProcessor {
            store,
            dead_letters,
            metrics: metrics.clone(),
            consumer: cfg.consumer.clone(),
            retry: cfg.retry.clone(),
            envelope_key: cfg.kafka.envelope_key.envelope_key(),
            clocks,
            #[cfg(feature = "fault-injection")]
            faults: crate::pipeline::faults::Faults::from_env(),
        });
        let consumer = tokio::spawn(consumer::run(
            group,
            processor,
            cfg.consumer.clone(),
            shutdown.subscribe(),
        ));
        Ok(Self {
            admin_addr,
            metrics,
            shutdown,
            consumer,
            admin,
        })
    }

    /// The stop signal: triggering it makes the consumer stop after its
    /// current batch; [`RunningProcessor::stop`] then waits for it.
    pub fn stop_signal(&self) -> Shutdown {
        self.shutdown.clone()
    }

    /// Asks the consumer to stop after its current batch and waits for it.
    pub async fn stop(self) -> anyhow::Result<u64> {
        self.shutdown.trigger();
        let result = self.consumer.await.context("consumer task panicked")?;
        if let Some(admin) = self.admin {
            let _ = admin.await;
        }
        result
    }

    /// Waits for the consumer to end by itself (for example after an injected crash).
    pub async fn join(self) -> anyhow::Result<u64> {
        let result = self.consumer.await.context("consumer task panicked")?;
        self.shutdown.trigger();
        if let Some(admin) = self.admin {
            let _ = admin.await;
        }
        result
    }

    /// Stops abruptly, as a crash would: no final batch, no commit.
    pub fn abort(self) {
        self.consumer.abort();
        if let Some(admin) = self.admin {
            admin.abort();
        }
    }
}

/// Retries `connect` with capped exponential backoff until it succeeds.
async fn wait_for<T, E, F, Fut>(
    retry: &RetryConfig,
    what: &str,
    mut connect: F,
) -> anyhow::Result<T>
where
    E: std::fmt::Display,
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, E>>,
{
    let mut backoff = Backoff::new(
        retry.initial_backoff,
        retry.max_backoff.max(Duration::from_millis(1)),
    );
    let mut attempts = 0u32;
    loop {
        match connect().await {
            Ok(v) => return Ok(v),
            Err(e) => {
                attempts += 1;
                let delay = backoff.next();
                warn!(cause = %e, attempts, backoff_ms = delay.as_millis() as u64, "waiting for {what}");
                tokio::time::sleep(delay).await;
            }
        }
    }
}
