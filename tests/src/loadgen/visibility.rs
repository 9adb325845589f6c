//! End-to-end visibility: from the ingress's `200` to the message's row.
//!
//! Every accepted message id waits in its workspace's queue, oldest first.
//! Each poll asks `message_index` (by `(workspace_id, message_id)`, `IN`
//! lists of at most 100 keys) about the oldest id of each workspace; when it
//! is visible, the next 2, 4, 8 ... are asked in the same poll, until an
//! answer is incomplete. Rows of one workspace become visible in Kafka
//! offset order (one workspace, one partition, batches in order), which is
//! close to the order of the `200`s, so each id is read about once when it
//! is visible plus one probe per workspace and poll: the watcher adds about
//! one key read per message to the database, not one per message and poll.
//! Once a second, a workspace whose oldest id is over a second old gets a
//! full sweep of its oldest 100 ids, so one late or lost id cannot hide the
//! others.
//!
//! A message counts as visible when its index row has a `conversation_id`
//! (written by step 6 together with the message row; a status that arrived
//! first leaves a row without one). Its latency is measured to the arrival
//! of the answer that showed it, so it errs high by up to one poll interval
//! plus one query.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use scylla::client::session::Session;
use scylla::statement::prepared::PreparedStatement;
use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TryRecvError;

use serde_json::{Value, json};

use super::driver::Accepted;
use super::stats::{Summary, round};

/// Where and how often to look.
#[derive(Debug, Clone)]
pub struct VisibilityConfig {
    pub nodes: String,
    pub keyspace: String,
    pub poll_interval: Duration,
    /// How long to keep waiting after the last `200`.
    pub timeout: Duration,
}

/// What the watcher saw.
#[derive(Debug, Default)]
pub struct Visibility {
    /// From the `200` to the row, one per visible message.
    pub latencies: Vec<Duration>,
    /// Latencies by the time of the `200`, relative to the first one (seconds).
    pub timeline: Vec<(f64, Duration)>,
    /// Ids still invisible when the timeout passed.
    pub missing: usize,
    /// Ids not yet visible when sending ended.
    pub backlog_at_send_end: usize,
    pub first_accepted: Option<Instant>,
    pub sending_ended: Option<Instant>,
    pub last_visible: Option<Instant>,
    pub queries: u64,
    pub keys_read: u64,
}

type Queue = VecDeque<(String, Instant)>;

/// Watches until every id sent on `accepted` is visible, or `cfg.timeout`
/// after the channel closes (all senders gone: sending ended).
pub async fn watch(
    cfg: VisibilityConfig,
    workspace_ids: Vec<String>,
    mut accepted: mpsc::UnboundedReceiver<Accepted>,
) -> anyhow::Result<Visibility> {
    let (session, statement) = connect(&cfg).await?;
    let mut queues: Vec<Queue> = vec![VecDeque::new(); workspace_ids.len()];
    let mut last_sweep = vec![Instant::now(); workspace_ids.len()];
    let mut seen = Visibility::default();
    loop {
        seen.take_accepted(&mut accepted, &mut queues);
        let pending: usize = queues.iter().map(VecDeque::len).sum();
        if let Some(ended) = seen.sending_ended {
            if pending == 0 {
                break;
            }
            if ended.elapsed() > cfg.timeout {
                seen.missing = pending;
                break;
            }
        }
        let polls = queues
            .iter_mut()
            .zip(last_sweep.iter_mut())
            .zip(&workspace_ids)
            .map(|((q, sweep), ws)| poll_workspace(&session, &statement, ws, q, sweep));
        for result in futures::future::join_all(polls).await {
            let (found, queries, keys) = result?;
            seen.queries += queries;
            seen.keys_read += keys;
            seen.record(found);
        }
        tokio::time::sleep(cfg.poll_interval).await;
    }
    Ok(seen)
}

/// The CQL session and the prepared `message_index` query.
async fn connect(cfg: &VisibilityConfig) -> anyhow::Result<(Arc<Session>, PreparedStatement)> {
    let builder = processor::store::session_builder(&cfg.nodes);
    // Boxed: the driver's connect future is large (clippy::large_futures).
    let session: Arc<Session> = Arc::new(
        Box::pin(builder.build())
            .await
            .context("connecting to CQL")?,
    );
    let statement = session
        .prepare(format!(
            "SELECT message_id, conversation_id FROM {}.message_index \
             WHERE workspace_id = ? AND message_id IN ?",
            cfg.keyspace
        ))
        .await
        .context("preparing the visibility query")?;
    Ok((session, statement))
}

/// Polls one workspace's queue; returns (accepted at, seen at) of the ids
/// found visible, and the queries and keys it took.
async fn poll_workspace(
    session: &Session,
    statement: &PreparedStatement,
    workspace_id: &str,
    queue: &mut Queue,
    last_sweep: &mut Instant,
) -> anyhow::Result<(Vec<(Instant, Instant)>, u64, u64)> {
    const MAX_KEYS: usize = 100;
    const STUCK: Duration = Duration::from_secs(1);
    let (mut found, mut queries, mut keys) = (Vec::new(), 0u64, 0u64);
    let mut probe = 1;
    while let Some((_, oldest)) = queue.front() {
        let take = if oldest.elapsed() > STUCK && last_sweep.elapsed() > STUCK {
            *last_sweep = Instant::now();
            queue.len().min(MAX_KEYS)
        } else {
            probe.min(queue.len())
        };
        let ids: Vec<&str> = queue.iter().take(take).map(|(id, _)| id.as_str()).collect();
        let result = session
            .execute_unpaged(statement, (workspace_id, ids))
            .await
            .context("querying message_index")?;
        let seen_at = Instant::now();
        queries += 1;
        keys += take as u64;
        let visible: HashSet<String> = result
            .into_rows_result()?
            .rows::<(String, Option<uuid::Uuid>)>()?
            .filter_map(|row| row.ok())
            .filter(|(_, conversation)| conversation.is_some())
            .map(|(id, _)| id)
            .collect();
        let mut kept = Vec::new();
        for (id, at) in queue.drain(..take) {
            if visible.contains(&id) {
                found.push((at, seen_at));
            } else {
                kept.push((id, at));
            }
        }
        let complete = kept.is_empty();
        for item in kept.into_iter().rev() {
            queue.push_front(item);
        }
        if !complete {
            break;
        }
        probe = (take * 2).min(MAX_KEYS);
    }
    Ok((found, queries, keys))
}

impl Visibility {
    /// Queues every id accepted so far in its workspace's queue; when the
    /// channel has closed, notes the end of sending and the backlog then.
    fn take_accepted(
        &mut self,
        accepted: &mut mpsc::UnboundedReceiver<Accepted>,
        queues: &mut [Queue],
    ) {
        loop {
            match accepted.try_recv() {
                Ok(a) => {
                    self.first_accepted.get_or_insert(a.at);
                    let q = &mut queues[a.workspace];
                    q.extend(a.message_ids.into_iter().map(|id| (id, a.at)));
                }
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    if self.sending_ended.is_none() {
                        self.sending_ended = Some(Instant::now());
                        self.backlog_at_send_end = queues.iter().map(VecDeque::len).sum();
                    }
                    break;
                }
            }
        }
    }

    /// Records the ids found visible: (accepted at, seen at) each.
    fn record(&mut self, found: Vec<(Instant, Instant)>) {
        for (at, visible_at) in found {
            self.latencies.push(visible_at - at);
            let since = at - *self.first_accepted.get_or_insert(at);
            self.timeline.push((since.as_secs_f64(), visible_at - at));
            self.last_visible = Some(self.last_visible.map_or(visible_at, |l| l.max(visible_at)));
        }
    }

    /// The report: latency percentiles, throughput, backlog, drain time (from
    /// `finished`, the last 200), and p50/p99 per second of the run.
    pub fn to_json(&self, finished: Instant) -> Value {
        let span = match (self.first_accepted, self.last_visible) {
            (Some(a), Some(b)) => (b - a).as_secs_f64(),
            _ => 0.0,
        };
        let throughput = self.latencies.len() as f64 / span.max(1e-9);
        let drain = self
            .last_visible
            .map_or(0.0, |v| v.saturating_duration_since(finished).as_secs_f64());
        // Latency over time, per second of the run: a growing lag shows here.
        let mut by_second: BTreeMap<u64, Vec<Duration>> = BTreeMap::new();
        for (t, d) in &self.timeline {
            by_second.entry(*t as u64).or_default().push(*d);
        }
        let ms = |d: Duration| round(d.as_secs_f64() * 1e3, 1);
        let series: Vec<Value> = by_second
            .into_iter()
            .map(|(s, v)| {
                let m = Summary::of(v);
                json!([s, ms(m.p50), ms(m.p99)])
            })
            .collect();
        json!({
            "visible": self.latencies.len(), "missing": self.missing,
            "latency": Summary::of(self.latencies.clone()).to_json(),
            "throughput_msgs_per_s": round(throughput, 1),
            "backlog_at_send_end": self.backlog_at_send_end,
            "drain_after_last_200_s": round(drain, 3),
            "poll_queries": self.queries, "poll_keys_read": self.keys_read,
            "p50_p99_ms_by_second": series,
            "summary": format!("{throughput:.0} messages/s stored end to end; {} not yet visible \
                when sending ended, all visible {drain:.2} s after the last 200; {} polls \
                reading {} keys", self.backlog_at_send_end, self.queries, self.keys_read),
        })
    }
}
