//! A load of Meta webhooks sent through the real ingress, with a ledger of
//! every webhook answered 200.
//!
//! The sender behaves like Meta: a webhook not answered 200 (503, timeout,
//! connection refused) is sent again, with backoff, until it is acknowledged
//! or its deadline passes. Only a 200 puts a webhook's messages in the
//! ledger, so the ledger is exactly what the ingress promised to keep.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use futures::StreamExt;
use shared::backoff::Backoff;
use shared::signing::meta_signature;

use crate::ingress::{META_SECRET, TestIngress};
use crate::webhooks::{Inbound, meta_body};

/// The shape of a load.
#[derive(Debug, Clone, Copy)]
pub struct Scale {
    pub workspaces: usize,
    pub contacts_per_workspace: usize,
    pub bodies: usize,
    pub messages_per_body: usize,
    /// Requests in flight at once.
    pub concurrency: usize,
    /// Spread the bodies evenly over this long (`None`: as fast as possible).
    pub spread: Option<Duration>,
}

impl Scale {
    /// The fault suite's load: `bodies` webhooks of 5 messages over
    /// `workspaces` × 8 contacts, 16 in flight, spread over `seconds`.
    pub fn spread_load(workspaces: usize, bodies: usize, seconds: u64) -> Self {
        Scale {
            workspaces,
            contacts_per_workspace: 8,
            bodies,
            messages_per_body: 5,
            concurrency: 16,
            spread: Some(Duration::from_secs(seconds)),
        }
    }

    pub fn messages(&self) -> usize {
        self.bodies * self.messages_per_body
    }
}

/// One generated message, as the ledger keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentMessage {
    pub workspace_id: String,
    pub phone_number_id: String,
    pub contact_phone: String,
    pub message_id: String,
    /// Seconds since the epoch.
    pub timestamp: i64,
}

/// One webhook of the load.
#[derive(Debug, Clone)]
pub struct Webhook {
    pub body: Vec<u8>,
    pub messages: Vec<SentMessage>,
}

/// The webhooks of a load and the registry that routes them.
#[derive(Debug, Clone)]
pub struct Load {
    pub scale: Scale,
    pub webhooks: Vec<Webhook>,
    pub registry_toml: String,
}

fn workspace(w: usize) -> String {
    format!("ws_fault_{w:03}")
}

fn phone_number_id(w: usize) -> String {
    format!("3000{w:06}")
}

impl Load {
    /// Generates the load: body `i` goes to workspace `i % workspaces`, each
    /// message to one of that workspace's contacts, with increasing timestamps.
    /// `tag` makes message ids unique to the test.
    pub fn generate(tag: &str, scale: Scale) -> Self {
        let mut webhooks = Vec::with_capacity(scale.bodies);
        for i in 0..scale.bodies {
            let w = i % scale.workspaces;
            let pn = phone_number_id(w);
            let messages: Vec<SentMessage> = (0..scale.messages_per_body)
                .map(|j| {
                    let n = i * scale.messages_per_body + j;
                    let contact = (n / scale.workspaces) % scale.contacts_per_workspace;
                    SentMessage {
                        workspace_id: workspace(w),
                        phone_number_id: pn.clone(),
                        contact_phone: format!("5511{w:03}{contact:05}"),
                        message_id: format!("wamid.{tag}.{i}.{j}"),
                        timestamp: 1_700_000_000 + n as i64,
                    }
                })
                .collect();
            let inbound: Vec<Inbound> = messages
                .iter()
                .map(|m| Inbound::new(&m.message_id, &m.contact_phone, m.timestamp))
                .collect();
            webhooks.push(Webhook {
                body: meta_body(&pn, &inbound, &[]),
                messages,
            });
        }
        let registry_toml = (0..scale.workspaces)
            .map(|w| {
                format!(
                    "[[workspace]]\nid = \"{}\"\nphone_number_ids = [\"{}\"]\n",
                    workspace(w),
                    phone_number_id(w)
                )
            })
            .collect();
        Self {
            scale,
            webhooks,
            registry_toml,
        }
    }

    /// Every workspace id of the load.
    pub fn workspaces(&self) -> Vec<String> {
        (0..self.scale.workspaces).map(workspace).collect()
    }
}

/// Every message of every webhook answered 200, and the sender's counters.
#[derive(Debug, Default)]
pub struct Ledger {
    acknowledged: Mutex<Vec<SentMessage>>,
    pub sent_messages: AtomicU64,
    pub requests: AtomicU64,
    pub ok: AtomicU64,
    pub unavailable: AtomicU64,
    pub other_status: AtomicU64,
    pub transport_errors: AtomicU64,
    pub given_up: AtomicU64,
    /// Webhooks acknowledged so far (for tests deciding when to strike).
    pub acknowledged_webhooks: AtomicU64,
    /// When each request that got a 200 was sent.
    ok_sent_at: Mutex<Vec<Instant>>,
}

impl Ledger {
    pub(crate) fn acknowledge(&self, webhook: &Webhook) {
        self.acknowledged
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend(webhook.messages.iter().cloned());
        self.acknowledged_webhooks.fetch_add(1, Ordering::SeqCst);
    }

    /// Requests answered 200 that were sent within `[from, to]`.
    pub fn ok_sent_between(&self, from: Instant, to: Instant) -> usize {
        self.ok_sent_at
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .filter(|at| (from..=to).contains(*at))
            .count()
    }

    /// The acknowledged messages so far.
    pub fn acknowledged(&self) -> Vec<SentMessage> {
        self.acknowledged
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Requests answered with anything but 200 (or not answered).
    pub fn refused(&self) -> u64 {
        self.unavailable.load(Ordering::SeqCst)
            + self.other_status.load(Ordering::SeqCst)
            + self.transport_errors.load(Ordering::SeqCst)
    }

    /// One line for the test output.
    pub fn summary(&self) -> String {
        let get = |c: &AtomicU64| c.load(Ordering::SeqCst);
        format!(
            "requests {}, 200 {}, 503 {}, other status {}, transport errors {}, given up {}",
            get(&self.requests),
            get(&self.ok),
            get(&self.unavailable),
            get(&self.other_status),
            get(&self.transport_errors),
            get(&self.given_up)
        )
    }
}

/// The expected state of one conversation after a clean run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpectedConversation {
    pub unread: i32,
    pub messages: i32,
    /// (sent_at ms, message id) of the newest message.
    pub last: (i64, String),
}

/// (workspace, phone_number_id, contact phone) → what a clean run stores:
/// unread = distinct inbound messages, last = max (timestamp, id).
pub fn expected_conversations(
    acknowledged: &[SentMessage],
) -> BTreeMap<(String, String, String), ExpectedConversation> {
    let mut seen = HashSet::new();
    let mut out: BTreeMap<(String, String, String), ExpectedConversation> = BTreeMap::new();
    for m in acknowledged {
        if !seen.insert((m.workspace_id.clone(), m.message_id.clone())) {
            continue;
        }
        let key = (
            m.workspace_id.clone(),
            m.phone_number_id.clone(),
            m.contact_phone.clone(),
        );
        let last = (m.timestamp * 1000, m.message_id.clone());
        let entry = out.entry(key).or_insert_with(|| ExpectedConversation {
            unread: 0,
            messages: 0,
            last: last.clone(),
        });
        entry.unread += 1;
        entry.messages += 1;
        if last > entry.last {
            entry.last = last;
        }
    }
    out
}

/// Where and how to send.
#[derive(Debug, Clone)]
pub struct Target {
    /// `http://127.0.0.1:<port>/webhooks/meta`
    pub url: String,
    pub client: reqwest::Client,
    /// How long one webhook may keep being retried.
    pub deadline: Duration,
}

/// Starts sending `load` to `ingress`'s Meta route in the background (each
/// webhook retried for up to `deadline`); the ledger fills as answers come.
pub fn start_sending(
    ingress: &TestIngress,
    load: &Arc<Load>,
    deadline: Duration,
) -> (Arc<Ledger>, tokio::task::JoinHandle<()>) {
    let ledger = Arc::new(Ledger::default());
    let target = Target {
        url: ingress.url("/webhooks/meta"),
        client: ingress.client.clone(),
        deadline,
    };
    let sender = tokio::spawn(send_all(target, Arc::clone(load), Arc::clone(&ledger)));
    (ledger, sender)
}

/// Sends every webhook (concurrently, paced by `scale.spread`), retrying
/// until 200 or the deadline; returns when all are acknowledged or given up.
pub async fn send_all(target: Target, load: Arc<Load>, ledger: Arc<Ledger>) {
    let started = Instant::now();
    let interval = load
        .scale
        .spread
        .map(|spread| spread / u32::try_from(load.webhooks.len().max(1)).unwrap_or(u32::MAX));
    futures::stream::iter(0..load.webhooks.len())
        .for_each_concurrent(load.scale.concurrency, |i| {
            let (target, load, ledger) = (&target, &load, &ledger);
            async move {
                if let Some(interval) = interval {
                    // Pacing, not synchronisation: webhook i leaves at its slot.
                    let slot = started + interval * u32::try_from(i).unwrap_or(u32::MAX);
                    tokio::time::sleep_until(slot.into()).await;
                }
                send_one(target, &load.webhooks[i], ledger).await;
            }
        })
        .await;
}

/// How long one request may take before the sender retries it.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

async fn send_one(target: &Target, webhook: &Webhook, ledger: &Ledger) {
    ledger
        .sent_messages
        .fetch_add(webhook.messages.len() as u64, Ordering::SeqCst);
    let signature = meta_signature(META_SECRET, &webhook.body);
    let deadline = Instant::now() + target.deadline;
    let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
    loop {
        ledger.requests.fetch_add(1, Ordering::SeqCst);
        let sent_at = Instant::now();
        let sent = target
            .client
            .post(&target.url)
            .header("content-type", "application/json")
            .header("x-hub-signature-256", &signature)
            .body(webhook.body.clone())
            // A sender gives up on a silent request and retries, as Meta does.
            .timeout(REQUEST_TIMEOUT)
            .send()
            .await;
        match sent.map(|r| r.status().as_u16()) {
            Ok(200) => {
                ledger.ok.fetch_add(1, Ordering::SeqCst);
                ledger
                    .ok_sent_at
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(sent_at);
                ledger.acknowledge(webhook);
                return;
            }
            Ok(503) => ledger.unavailable.fetch_add(1, Ordering::SeqCst),
            Ok(_) => ledger.other_status.fetch_add(1, Ordering::SeqCst),
            Err(_) => ledger.transport_errors.fetch_add(1, Ordering::SeqCst),
        };
        let delay = backoff.next();
        if Instant::now() + delay > deadline {
            ledger.given_up.fetch_add(1, Ordering::SeqCst);
            return;
        }
        // The sender's retry policy (as Meta's), not a wait for a condition.
        tokio::time::sleep(delay).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sent(ws: &str, contact: &str, id: &str, ts: i64) -> SentMessage {
        SentMessage {
            workspace_id: ws.into(),
            phone_number_id: "pn".into(),
            contact_phone: contact.into(),
            message_id: id.into(),
            timestamp: ts,
        }
    }

    #[test]
    fn a_clean_run_counts_each_message_once_and_keeps_the_newest() {
        let ledger = [
            sent("w", "1", "b", 20),
            sent("w", "1", "a", 20),
            sent("w", "1", "a", 20),
            sent("w", "1", "c", 10),
            sent("w", "2", "d", 5),
        ];
        let expected = expected_conversations(&ledger);
        let first = &expected[&("w".into(), "pn".into(), "1".into())];
        assert_eq!((first.unread, first.messages), (3, 3));
        assert_eq!(first.last, (20_000, "b".into()));
        assert_eq!(expected.len(), 2);
    }

    #[test]
    fn the_generated_load_spreads_messages_over_workspaces_and_contacts() {
        let scale = Scale {
            workspaces: 3,
            contacts_per_workspace: 2,
            bodies: 6,
            messages_per_body: 4,
            concurrency: 1,
            spread: None,
        };
        let load = Load::generate("t", scale);
        assert_eq!(load.webhooks.len(), 6);
        let all: Vec<SentMessage> = load
            .webhooks
            .iter()
            .flat_map(|w| w.messages.clone())
            .collect();
        assert_eq!(all.len(), scale.messages());
        assert_eq!(expected_conversations(&all).len(), 6);
        assert!(load.registry_toml.contains("ws_fault_002"));
    }
}
