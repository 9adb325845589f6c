//! The lookup waves: what a micro-batch reads before it writes, across
//! every workspace of the batch, asking the database only for what the
//! owner cache ([`OwnerCache`]) does not answer.
//!
//! Guarantee: each workspace's [`Found`] holds every identity, conversation
//! (present, or known absent) and inbound total its plan needs, and its
//! message-index entries; each table is one cross-workspace lookup
//! ([`Store::lookup_across`]) per wave, so requests grow with the keys asked,
//! never with the number of workspaces; the inbound totals are one `IN` per
//! shard of `workspace_totals` the workspaces fall in (at most 64).
//! `from_cache` (feature `bench`) answers both waves from the cache alone,
//! or not at all.

use std::collections::{BTreeSet, HashMap};

use uuid::Uuid;

use super::cache::{Hits, OwnerCache};
use super::conversations::{self, ConversationState};
use super::identity::Known;
use super::message_index::IndexEntry;
use super::plan::Plan;
use super::{LookupKeys, contacts, inbox_rows, messages};
use crate::store::{DbStats, Store, StoreError};

/// What the lookups found for one workspace.
#[derive(Debug, Default)]
pub(super) struct Found {
    pub known: Known,
    pub conversations: HashMap<Uuid, ConversationState>,
    /// The conversations looked up (in the owner cache or the database), found or not.
    pub read: BTreeSet<Uuid>,
    pub index: HashMap<String, IndexEntry>,
    pub total: inbox_rows::WorkspaceTotal,
}

/// The first wave's keys, per workspace: those the cache answers, and
/// those to ask the database.
struct Asked<'a> {
    read: Vec<BTreeSet<Uuid>>,
    hits: Vec<Hits>,
    contacts: Vec<(&'a str, &'a Plan, Known)>,
    conversations: Vec<(&'a str, Vec<Uuid>)>,
    no_total: Vec<&'a str>,
}

impl<'a> Asked<'a> {
    fn new(ids: &[&'a str], plans: &'a [Plan], cache: Option<&OwnerCache>) -> Self {
        let read: Vec<BTreeSet<Uuid>> = ids
            .iter()
            .zip(plans)
            .map(|(ws, plan)| plan.likely_conversations(ws))
            .collect();
        let hits: Vec<Hits> = ids
            .iter()
            .zip(plans)
            .zip(&read)
            .map(|((ws, plan), keys)| cache.map(|c| c.hits(ws, plan, keys)).unwrap_or_default())
            .collect();
        let contacts = ids
            .iter()
            .zip(plans)
            .zip(&hits)
            .map(|((ws, plan), h)| (*ws, plan, h.known.clone()))
            .collect();
        let conversations = ids
            .iter()
            .zip(&read)
            .zip(&hits)
            .map(|((ws, keys), h)| {
                (
                    *ws,
                    keys.iter().filter(|k| !h.answers(k)).copied().collect(),
                )
            })
            .collect();
        let no_total = ids
            .iter()
            .zip(&hits)
            .filter(|(_, h)| h.total.is_none())
            .map(|(ws, _)| *ws)
            .collect();
        Asked {
            read,
            hits,
            contacts,
            conversations,
            no_total,
        }
    }

    /// Where the keys will be read.
    fn keys(&self) -> LookupKeys {
        let identities: usize = self
            .contacts
            .iter()
            .map(|(_, p, cached)| p.phones.len() + p.user_ids.len() - cached.len())
            .sum();
        let conversations: usize = self.conversations.iter().map(|(_, k)| k.len()).sum();
        LookupKeys {
            cache: self.hits.iter().map(Hits::len).sum::<usize>() as u64,
            database: (identities + conversations + self.no_total.len()) as u64,
        }
    }
}

/// The first wave: steps 1, 3 (each identity's own conversations) and 5,
/// and the inbound totals, each one cross-workspace lookup for every
/// workspace of the batch, of the keys `cache` does not hold.
pub(super) async fn look_up(
    store: &Store,
    (ids, plans): (&[&str], &[Plan]),
    cache: Option<&OwnerCache>,
    stats: &DbStats,
) -> Result<(Vec<Found>, LookupKeys), StoreError> {
    let asked = Asked::new(ids, plans, cache);
    let keys = asked.keys();
    let indexed: Vec<(&str, &Plan)> = ids.iter().copied().zip(plans).collect();
    let (known, conversations, index, totals) = futures::try_join!(
        contacts::find_existing(store, &asked.contacts, stats),
        conversations::find_existing(store, &asked.conversations, stats),
        messages::find_index(store, &indexed, stats),
        inbox_rows::find_totals(store, &asked.no_total, stats),
    )?;
    let mut totals: HashMap<&str, _> = asked.no_total.iter().copied().zip(totals).collect();
    let found = known
        .into_iter()
        .zip(conversations)
        .zip(asked.read.into_iter().zip(asked.hits))
        .zip(index.into_iter().zip(ids))
        .map(
            |(((known, mut conversations), (read, hits)), (index, ws))| {
                conversations.extend(hits.conversations);
                Found {
                    known,
                    conversations,
                    read,
                    index,
                    total: hits.total.or_else(|| totals.remove(ws)).unwrap_or_default(),
                }
            },
        )
        .collect();
    Ok((found, keys))
}

/// The second wave, sent only when needed: the conversations of contacts
/// step 1 found stored under another identity's id (not read in the
/// first) that `cache` does not hold, in one cross-workspace lookup. Adds
/// them to each workspace's `read`; returns where they were found.
pub(super) async fn look_up_the_rest(
    store: &Store,
    (ids, plans): (&[&str], &[Plan]),
    found: &mut [Found],
    cache: Option<&OwnerCache>,
    stats: &DbStats,
) -> Result<LookupKeys, StoreError> {
    let (keys, wanted) = rest_in_cache(ids, plans, found, cache);
    if keys.database == 0 {
        return Ok(keys);
    }
    let more = conversations::find_existing(store, &wanted, stats).await?;
    for (f, more) in found.iter_mut().zip(more) {
        f.conversations.extend(more);
    }
    Ok(keys)
}

/// The second wave's keys: adds what `cache` holds of them to each
/// workspace's `found` (and all of them to its `read`); returns where they
/// will be found, and per workspace those to ask the database.
fn rest_in_cache<'a>(
    ids: &[&'a str],
    plans: &[Plan],
    found: &mut [Found],
    cache: Option<&OwnerCache>,
) -> (LookupKeys, Vec<(&'a str, Vec<Uuid>)>) {
    let mut keys = LookupKeys::default();
    let mut wanted: Vec<(&str, Vec<Uuid>)> = Vec::with_capacity(ids.len());
    for ((ws, plan), f) in ids.iter().zip(plans).zip(found.iter_mut()) {
        let unread: BTreeSet<Uuid> = plan
            .conversations
            .keys()
            .filter(|id| !f.read.contains(*id))
            .copied()
            .collect();
        let hits = cache
            .map(|c| c.conversation_hits(ws, &unread))
            .unwrap_or_default();
        let missing: Vec<Uuid> = unread
            .iter()
            .filter(|id| !hits.answers(id))
            .copied()
            .collect();
        keys.cache += hits.len() as u64;
        keys.database += missing.len() as u64;
        f.read.extend(unread);
        f.conversations.extend(hits.conversations);
        wanted.push((*ws, missing));
    }
    (keys, wanted)
}

/// Both lookup waves answered by `cache` alone (feature `bench`, for
/// [`super::ceiling`]), for a batch none of whose message ids has a
/// message-index row (so no index entries): `None` when the cache misses a
/// key, which the pipeline would read. Each plan is placed
/// ([`Plan::place`]) on the way, as between the pipeline's two waves.
#[cfg(feature = "bench")]
pub(super) fn from_cache(
    ids: &[&str],
    plans: &mut [Plan],
    cache: &OwnerCache,
) -> Option<Vec<Found>> {
    let (read, hits) = {
        let asked = Asked::new(ids, plans, Some(cache));
        if asked.keys().database > 0 {
            return None;
        }
        (asked.read, asked.hits)
    };
    // With nothing asked of the database, every total is a cache hit.
    let mut found: Vec<Found> = read
        .into_iter()
        .zip(hits)
        .map(|(read, hits)| {
            Some(Found {
                total: hits.total?,
                known: hits.known,
                conversations: hits.conversations,
                read,
                index: HashMap::new(),
            })
        })
        .collect::<Option<_>>()?;
    for ((ws, plan), f) in ids.iter().zip(plans.iter_mut()).zip(&found) {
        plan.place(ws, &f.known);
    }
    let (keys, _) = rest_in_cache(ids, plans, &mut found, Some(cache));
    (keys.database == 0).then_some(found)
}
