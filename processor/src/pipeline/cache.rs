//! The owner's cache: the rows that only the pipeline writes and that its
//! lookups read (contact identities, conversation states, inbound totals),
//! as this processor last wrote them, so that a micro-batch in steady state
//! reads only the message index (duplicates can come from any earlier
//! record, so that lookup is never skipped).
//!
//! Guarantees:
//! - **An entry is what the database holds**, for as long as this process
//!   is the only writer of its workspace. Entries are taken from the very
//!   values a batch wrote (or read), and only once its whole write wave has
//!   been answered ([`OwnerCache::remember`]). All of a workspace's records
//!   are on one Kafka partition, so its owner is its only writer.
//! - **Emptied whenever that may not hold**: by the consumer before the
//!   first batch after a rebalance (another processor may have written
//!   since), and after every failed batch (some of its writes may have
//!   landed, some not). A processor evicted without knowing it yet may use
//!   its cache until its next poll; its writes carry older write clocks and
//!   lose to its successor's ([`crate::clocks`]), as they would had it read.
//! - **Bounded**: once it holds more than [`OwnerCache::CAPACITY`] entries it
//!   starts again from empty; a miss only costs the lookup it would have
//!   cost without the cache.
//! - A contact identity's contact id never changes once stored (see
//!   [`super::contacts`]), so identities are cached as found.

use std::collections::{BTreeSet, HashMap, HashSet};

use uuid::Uuid;

use super::conversations::{ConversationState, ConversationUpdate};
use super::identity::Known;
use super::inbox_rows::WorkspaceTotal;
use super::plan::Plan;
use crate::store::rows::Applied;

/// What one workspace's rows hold after a batch, to remember.
#[derive(Debug, Default)]
pub(super) struct After {
    pub known: Known,
    pub conversations: Vec<(Uuid, ConversationState)>,
    /// Conversations read and found absent, and not created by the batch.
    pub absent: Vec<Uuid>,
    pub total: WorkspaceTotal,
}

impl After {
    /// The rows of `plan`'s workspace once its writes have landed: `known`
    /// and `found` as read (`read`: the conversation keys looked up, found
    /// or not), with the new identities, the conversations and their
    /// `updates`, and the workspace's `total`.
    pub fn of(
        plan: &Plan,
        (known, found, read): (&Known, &HashMap<Uuid, ConversationState>, &BTreeSet<Uuid>),
        updates: &[ConversationUpdate],
        total: WorkspaceTotal,
    ) -> Self {
        let mut known = known.clone();
        let new = |rows: &std::collections::BTreeMap<String, _>| {
            rows.iter()
                .map(|(k, n): (&String, &super::identity::NewIdentity)| (k.clone(), n.contact_id))
                .collect::<Vec<_>>()
        };
        known.phones.extend(new(&plan.new_phones));
        known.users.extend(new(&plan.new_users));
        // Step 4 wrote every conversation of the plan not yet created.
        let mut conversations: HashMap<Uuid, ConversationState> = plan
            .conversations
            .keys()
            .map(|id| {
                let base = found.get(id).cloned().unwrap_or_default();
                let created = ConversationState {
                    created: true,
                    ..base
                };
                (*id, created)
            })
            .collect();
        for u in updates {
            let base = conversations
                .remove(&u.conversation_id)
                .or_else(|| found.get(&u.conversation_id).cloned())
                .unwrap_or_default();
            conversations.insert(u.conversation_id, updated(base, u));
        }
        let absent = read
            .iter()
            .filter(|id| !found.contains_key(*id) && !conversations.contains_key(*id))
            .copied()
            .collect();
        After {
            known,
            conversations: conversations.into_iter().collect(),
            absent,
            total,
        }
    }
}

/// `base` with `u` written over it, as the row reads back: a field `u`
/// leaves unset keeps its stored value.
pub(super) fn updated(base: ConversationState, u: &ConversationUpdate) -> ConversationState {
    let (last_at, last_id) = match &u.last_message {
        Some((at, id, ..)) => (Some(*at), Some(id.clone())),
        None => (base.last_message_at_ms, base.last_message_id),
    };
    ConversationState {
        created: base.created,
        state_at_ms: u.state.as_ref().map(|(_, at)| *at).or(base.state_at_ms),
        first_message_at_ms: u.first_message_at.or(base.first_message_at_ms),
        last_message_at_ms: last_at,
        last_message_id: last_id,
        unread_count: u.unread_count,
        message_count: u.message_count,
        applied: Applied::from_column(Some(u.applied.1)),
    }
}

#[derive(Debug, Default)]
struct Workspace {
    known: Known,
    conversations: HashMap<Uuid, ConversationState>,
    /// Conversation ids known not to exist (a likely id of an identity whose
    /// contact is stored under another identity's id, say).
    absent: HashSet<Uuid>,
    total: Option<WorkspaceTotal>,
}

impl Workspace {
    fn len(&self) -> usize {
        self.known.len() + self.conversations.len() + self.absent.len()
    }
}

/// The cache of one consumer (see the module's guarantees).
#[derive(Debug, Default)]
pub struct OwnerCache {
    workspaces: HashMap<String, Workspace>,
    entries: usize,
    /// The consumer's rebalance count the entries belong to.
    rebalances: u64,
}

/// What the cache holds of one workspace's lookups.
#[derive(Debug, Default)]
pub(super) struct Hits {
    pub known: Known,
    pub conversations: HashMap<Uuid, ConversationState>,
    /// Conversations wanted that are known not to exist.
    pub absent: BTreeSet<Uuid>,
    pub total: Option<WorkspaceTotal>,
}

impl Hits {
    /// Keys answered (identities, conversations present or absent, the total).
    pub fn len(&self) -> usize {
        self.known.len()
            + self.conversations.len()
            + self.absent.len()
            + usize::from(self.total.is_some())
    }

    /// Whether the cache answers for conversation `id`.
    pub fn answers(&self, id: &Uuid) -> bool {
        self.conversations.contains_key(id) || self.absent.contains(id)
    }
}

impl OwnerCache {
    /// Entries (identities, conversations present or absent) before the
    /// cache starts again.
    pub const CAPACITY: usize = 100_000;

    /// Empties the cache unless its entries belong to `rebalances` (the
    /// consumer's count of rebalances), and records that count.
    pub fn follow(&mut self, rebalances: u64) {
        if rebalances != self.rebalances {
            self.clear();
            self.rebalances = rebalances;
        }
    }

    pub fn clear(&mut self) {
        self.workspaces.clear();
        self.entries = 0;
    }

    /// Identities and conversations (present or absent) held.
    pub fn len(&self) -> usize {
        self.entries
    }

    pub fn is_empty(&self) -> bool {
        self.entries == 0
    }

    /// What the cache holds of `plan`'s identities, of the conversations
    /// `wanted` (present or absent), and of `ws`'s total.
    pub(super) fn hits(&self, ws: &str, plan: &Plan, wanted: &BTreeSet<Uuid>) -> Hits {
        let Some(w) = self.workspaces.get(ws) else {
            return Hits::default();
        };
        let pick = |map: &HashMap<String, Uuid>, keys: &BTreeSet<String>| {
            keys.iter()
                .filter_map(|k| map.get(k).map(|id| (k.clone(), *id)))
                .collect()
        };
        Hits {
            known: Known {
                phones: pick(&w.known.phones, &plan.phones),
                users: pick(&w.known.users, &plan.user_ids),
            },
            total: w.total,
            ..self.conversation_hits(ws, wanted)
        }
    }

    /// What the cache holds of the conversations `wanted` (present or absent).
    pub(super) fn conversation_hits(&self, ws: &str, wanted: &BTreeSet<Uuid>) -> Hits {
        let Some(w) = self.workspaces.get(ws) else {
            return Hits::default();
        };
        Hits {
            conversations: wanted
                .iter()
                .filter_map(|id| w.conversations.get(id).map(|c| (*id, c.clone())))
                .collect(),
            absent: wanted
                .iter()
                .filter(|id| w.absent.contains(*id))
                .copied()
                .collect(),
            ..Hits::default()
        }
    }

    /// Remembers what `ws`'s rows hold after a batch whose writes all landed.
    pub(super) fn remember(&mut self, ws: &str, after: After) {
        if self.entries > Self::CAPACITY {
            self.clear();
        }
        let w = self.workspaces.entry(ws.to_owned()).or_default();
        let before = w.len();
        w.known.phones.extend(after.known.phones);
        w.known.users.extend(after.known.users);
        for (id, state) in after.conversations {
            w.absent.remove(&id);
            w.conversations.insert(id, state);
        }
        w.absent.extend(after.absent);
        w.total = Some(after.total);
        self.entries = (self.entries + w.len()).saturating_sub(before);
    }
}
