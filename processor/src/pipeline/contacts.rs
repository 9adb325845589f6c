//! Steps 1 and 2: find the batch's contacts, create the missing ones.
//!
//! Guarantee: a contact row is written only with values derived from the
//! records (UUIDv5 id, first-seen message time), so creating it twice writes
//! the same row.

use std::collections::HashSet;

use scylla::value::{CqlTimestamp, MaybeUnset};
use uuid::Uuid;

use super::plan::Plan;
use crate::store::{DbStats, RowWrite, Store, StoreError, WriteSet};

/// Phones of the plan's contacts that already exist.
pub async fn find_existing(
    store: &Store,
    workspace_id: &str,
    plan: &Plan,
    stats: &DbStats,
) -> Result<HashSet<String>, StoreError> {
    let s = store.statements();
    let rows: Vec<(String, Uuid, Option<String>)> = store
        .lookup(
            "contacts lookup",
            &s.contacts_by_phones,
            &s.contact_by_phone,
            workspace_id,
            plan.contacts.keys().cloned().collect(),
            stats,
        )
        .await?;
    Ok(rows.into_iter().map(|(phone, _, _)| phone).collect())
}

type ContactRow = (String, String, Uuid, MaybeUnset<String>, CqlTimestamp);

/// Creates the contacts not in `existing`; returns how many.
pub async fn create_missing(
    store: &Store,
    workspace_id: &str,
    plan: &Plan,
    existing: &HashSet<String>,
    stats: &DbStats,
) -> Result<u64, StoreError> {
    let rows: Vec<RowWrite<ContactRow>> = plan
        .contacts
        .iter()
        .filter(|(phone, _)| !existing.contains(*phone))
        .map(|(phone, draft)| RowWrite {
            partition: phone.clone(),
            estimated_bytes: 64
                + workspace_id.len()
                + phone.len()
                + draft.name.as_ref().map_or(0, String::len),
            values: (
                workspace_id.to_owned(),
                phone.clone(),
                draft.contact_id,
                draft
                    .name
                    .clone()
                    .map_or(MaybeUnset::Unset, MaybeUnset::Set),
                CqlTimestamp(draft.first_seen_ms),
            ),
        })
        .collect();
    let created = rows.len() as u64;
    let statement = &store.statements().insert_contact;
    store
        .write(
            vec![WriteSet {
                what: "contact inserts",
                statement,
                rows,
            }],
            stats,
        )
        .await?;
    Ok(created)
}
