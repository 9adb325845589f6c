//! Signed webhooks as Kapso and Meta send them.
//!
//! - Kapso single event: one message, `X-Webhook-Signature` (bare hex HMAC),
//!   `X-Webhook-Event`, `X-Idempotency-Key`, `X-Webhook-Payload-Version: v2`.
//! - Kapso batch (message buffering): `{type, batch: true, data: [...],
//!   batch_info}` with `X-Webhook-Batch: true`, 1..=N messages of one sender.
//! - Meta: one change with 1..=N messages from the workspace's senders, or
//!   1..=N statuses, signed `X-Hub-Signature-256: sha256=<hex>`.
//!
//! Each workspace owns one business `phone_number_id` ([`Layout`]);
//! [`Layout::registry_toml`] is the registry the ingress must be started
//! with so that every body is routed. Message ids are unique per run id, so
//! runs never collide in the database; a duplicate is an earlier webhook
//! sent again byte for byte (a sender's retry), and carries no new id.

use std::collections::VecDeque;
use std::sync::Arc;

use bytes::Bytes;

pub use super::layout::{Layout, Rng};

mod bodies;

/// Which webhooks to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Kind {
    /// Kapso single events (one message each).
    Kapso,
    /// Kapso batch envelopes (`X-Webhook-Batch: true`).
    KapsoBatch,
    /// Meta Cloud API payloads.
    Meta,
    /// 50% Kapso single, 20% Kapso batch, 30% Meta.
    Mix,
}

/// How the generator shapes its webhooks.
#[derive(Debug, Clone)]
pub struct GenConfig {
    pub kind: Kind,
    /// Kapso batches and Meta payloads carry 1..=this many messages (or statuses).
    pub messages_per_webhook: usize,
    /// Text is padded with words until a body is about this large.
    pub payload_bytes: usize,
    /// Share of webhooks that are earlier ones sent again.
    pub duplicate_rate: f64,
    /// Share of (new) webhooks that carry delivery statuses instead of messages.
    pub status_rate: f64,
    /// Makes message ids unique to this run.
    pub run_id: String,
    pub kapso_secret: String,
    pub meta_secret: String,
}

/// Where Kapso webhooks are posted.
pub const KAPSO_PATH: &str = "/webhooks/kapso";
/// Where Meta webhooks are posted.
pub const META_PATH: &str = "/webhooks/meta";

/// What a webhook is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    Kapso,
    KapsoBatch,
    Meta,
}

/// One signed webhook, ready to send.
#[derive(Debug, Clone)]
pub struct Webhook {
    pub shape: Shape,
    pub path: &'static str,
    pub headers: Vec<(&'static str, String)>,
    pub body: Bytes,
    pub workspace: usize,
    /// Inbound message ids first sent by this webhook (empty for duplicates and statuses).
    pub new_message_ids: Vec<String>,
    /// Messages plus statuses carried (what a rate in messages/s counts).
    pub items: usize,
    pub statuses: usize,
    pub duplicate: bool,
}

const WORDS: &[&str] = &[
    "hello",
    "order",
    "delivery",
    "tomorrow",
    "please",
    "thanks",
    "invoice",
    "size",
    "color",
    "blue",
    "return",
    "address",
    "payment",
    "received",
    "tracking",
    "number",
    "store",
    "open",
    "price",
    "discount",
    "available",
    "question",
    "photo",
    "when",
    "arrive",
    "ok",
    "great",
];
const CORPUS_BYTES: usize = 64 * 1024;
const RECENT: usize = 1024;

/// Makes webhooks one after another (one generator per sending worker).
///
/// Bodies are written as JSON text directly (every value is ASCII without
/// quotes or backslashes, so nothing needs escaping): building them through
/// `serde_json::Value` cost more CPU than the server under test spends.
#[derive(Debug)]
pub struct Generator {
    cfg: GenConfig,
    layout: Layout,
    rng: Rng,
    seq: u64,
    recent: VecDeque<Arc<Webhook>>,
    /// Random words; fillers are slices of it.
    corpus: String,
}

impl Generator {
    pub fn new(cfg: GenConfig, layout: Layout, seed: u64) -> Self {
        let mut rng = Rng::new(seed);
        let mut corpus = String::with_capacity(CORPUS_BYTES + 16);
        while corpus.len() < CORPUS_BYTES {
            corpus.push_str(WORDS[rng.below(WORDS.len())]);
            corpus.push(' ');
        }
        Self {
            cfg,
            layout,
            rng,
            seq: 0,
            recent: VecDeque::with_capacity(RECENT),
            corpus,
        }
    }

    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// The next webhook: a new one, or (at `duplicate_rate`) an earlier one again.
    pub fn next_webhook(&mut self) -> Arc<Webhook> {
        if !self.recent.is_empty() && self.rng.chance(self.cfg.duplicate_rate) {
            let earlier = &self.recent[self.rng.below(self.recent.len())];
            return Arc::new(Webhook {
                new_message_ids: Vec::new(),
                duplicate: true,
                ..Webhook::clone(earlier)
            });
        }
        let shape = match self.cfg.kind {
            Kind::Kapso => Shape::Kapso,
            Kind::KapsoBatch => Shape::KapsoBatch,
            Kind::Meta => Shape::Meta,
            Kind::Mix => match self.rng.below(10) {
                0..=4 => Shape::Kapso,
                5 | 6 => Shape::KapsoBatch,
                _ => Shape::Meta,
            },
        };
        let statuses = self.rng.chance(self.cfg.status_rate);
        let n = match shape {
            Shape::Kapso => 1,
            _ => 1 + self.rng.below(self.cfg.messages_per_webhook.max(1)),
        };
        let w = self.rng.below(self.layout.workspaces);
        let hook = Arc::new(match shape {
            Shape::Meta => self.meta(w, n, statuses),
            _ => self.kapso(shape, w, n, statuses),
        });
        if self.recent.len() == RECENT {
            self.recent.pop_front();
        }
        self.recent.push_back(Arc::clone(&hook));
        hook
    }

    fn ids(&mut self, w: usize, n: usize, statuses: bool) -> Vec<String> {
        (0..n)
            .map(|_| {
                if statuses {
                    // Statuses refer to a small set of outbound ids, so they repeat.
                    let k = self.rng.below(256);
                    format!("wamid.HBgMout{}w{w}n{k:04}", self.cfg.run_id)
                } else {
                    self.seq += 1;
                    format!("wamid.HBgMin{}{:012}", self.cfg.run_id, self.seq)
                }
            })
            .collect()
    }

    /// `n` text bodies that make `build(texts)` about `payload_bytes` long.
    fn padded(&mut self, n: usize, build: impl Fn(&[&str]) -> String) -> Vec<u8> {
        let bare = build(&vec![""; n]);
        let deficit = self.cfg.payload_bytes.saturating_sub(bare.len());
        if deficit == 0 || n == 0 {
            return bare.into_bytes();
        }
        let len = (deficit / n).min(CORPUS_BYTES / 2);
        let starts: Vec<usize> = (0..n).map(|_| self.rng.below(CORPUS_BYTES / 2)).collect();
        let texts: Vec<&str> = starts.iter().map(|&s| &self.corpus[s..s + len]).collect();
        build(&texts).into_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::record::Source;
    use shared::webhook::{Event, normalize, routing_phone_number_ids};

    fn generator(kind: Kind, status_rate: f64) -> Generator {
        let cfg = GenConfig {
            kind,
            messages_per_webhook: 5,
            payload_bytes: 2048,
            duplicate_rate: 0.0,
            status_rate,
            run_id: "t1".into(),
            kapso_secret: "k".into(),
            meta_secret: "m".into(),
        };
        let layout = Layout {
            prefix: "lg".into(),
            workspaces: 3,
            senders: 10,
        };
        Generator::new(cfg, layout, 7)
    }

    #[test]
    fn every_shape_routes_to_its_workspace_and_normalises_to_its_messages() {
        for kind in [Kind::Kapso, Kind::KapsoBatch, Kind::Meta] {
            let mut g = generator(kind, 0.0);
            for _ in 0..20 {
                let h = g.next_webhook();
                let source = if h.shape == Shape::Meta {
                    Source::Meta
                } else {
                    Source::Kapso
                };
                let ids = routing_phone_number_ids(source, &h.body).expect("routable");
                assert_eq!(ids, vec![g.layout().phone_number_id(h.workspace)]);
                let event = h.headers.iter().find(|(k, _)| *k == "x-webhook-event");
                let events = normalize(source, event.map(|(_, v)| v.as_str()), &h.body, &[])
                    .expect("normalises");
                let messages: Vec<String> = events
                    .iter()
                    .filter_map(|e| match e {
                        Event::Message(m) => Some(m.message_id.clone()),
                        _ => None,
                    })
                    .collect();
                assert_eq!(messages, h.new_message_ids, "{kind:?}");
                // Padded up to about 2 KB; a batch of five Kapso items is larger unpadded.
                let len = h.body.len();
                assert!(
                    len >= 1900 && (len <= 2200 || kind == Kind::KapsoBatch),
                    "{kind:?}: {len}"
                );
            }
        }
    }

    #[test]
    fn status_webhooks_carry_statuses_and_no_new_messages() {
        for kind in [Kind::Kapso, Kind::KapsoBatch, Kind::Meta] {
            let mut g = generator(kind, 1.0);
            let h = g.next_webhook();
            assert!(h.new_message_ids.is_empty());
            let source = if h.shape == Shape::Meta {
                Source::Meta
            } else {
                Source::Kapso
            };
            let event = h.headers.iter().find(|(k, _)| *k == "x-webhook-event");
            let events = normalize(source, event.map(|(_, v)| v.as_str()), &h.body, &[])
                .expect("normalises");
            let statuses = events
                .iter()
                .filter(|e| matches!(e, Event::Status(_)))
                .count();
            assert_eq!(statuses, h.statuses, "{kind:?}");
        }
    }
}
