//! Steps 1 and 2: find the batch's contact identities (phones and
//! business-scoped user ids) across every workspace at once, create the
//! missing ones.
//!
//! Guarantee: an identity row is written only with values derived from the
//! records and the identities found (UUIDv5 ids, first-seen message time), so
//! creating it twice writes the same row; a stored identity is never
//! rewritten, so its contact id never changes.

use scylla::SerializeRow;
use scylla::value::CqlTimestamp;
use shared::ids;
use uuid::Uuid;

use super::identity::{Known, NewIdentity};
use super::plan::Plan;
use crate::store::rows::{ContactRow, FoundContact, FoundContactUser};
use crate::store::{DbStats, RowWrite, Statements, Store, StoreError, Writes};

/// The identities of every workspace's plan that already exist, with
/// their contact ids: those in each workspace's `cached` as they are, the
/// others in one cross-workspace lookup per identity table, so the
/// requests grow with the identities, not with the workspaces.
pub async fn find_existing(
    store: &Store,
    batch: &[(&str, &Plan, Known)],
    stats: &DbStats,
) -> Result<Vec<Known>, StoreError> {
    let s = store.statements();
    let phones: Vec<(&str, Vec<Uuid>)> = batch
        .iter()
        .map(|(ws, plan, cached)| {
            let missing = plan
                .phones
                .iter()
                .filter(|p| !cached.phones.contains_key(*p));
            (*ws, missing.map(|p| ids::contact_id(ws, p)).collect())
        })
        .collect();
    let users: Vec<(&str, Vec<Uuid>)> = batch
        .iter()
        .map(|(ws, plan, cached)| {
            let missing = plan
                .user_ids
                .iter()
                .filter(|u| !cached.users.contains_key(*u));
            (*ws, missing.map(|u| ids::user_contact_id(ws, u)).collect())
        })
        .collect();
    let (phones, users) = futures::try_join!(
        store.lookup_across::<Uuid, FoundContact>(
            "contacts lookup",
            &s.contacts_by_identities,
            &phones,
            stats,
        ),
        store.lookup_across::<Uuid, FoundContactUser>(
            "contact users lookup",
            &s.contact_users_by_identities,
            &users,
            stats,
        ),
    )?;
    Ok(batch
        .iter()
        .zip(phones.into_iter().zip(users))
        .map(|((_, _, cached), (phones, users))| {
            let mut known = cached.clone();
            known
                .phones
                .extend(phones.into_iter().map(|r| (r.phone, r.contact_id)));
            known
                .users
                .extend(users.into_iter().map(|r| (r.user_id, r.contact_id)));
            known
        })
        .collect())
}

#[derive(Debug, SerializeRow)]
struct UserRow {
    identity_id: Uuid,
    workspace_id: String,
    user_id: String,
    contact_id: Uuid,
    phone: Option<String>,
    username: Option<String>,
    name: Option<String>,
    created_at: CqlTimestamp,
}

fn estimate(workspace_id: &str, key: &str, row: &NewIdentity) -> usize {
    let optional = [&row.linked, &row.name, &row.username];
    64 + workspace_id.len()
        + key.len()
        + optional
            .iter()
            .flat_map(|o| o.as_ref())
            .map(String::len)
            .sum::<usize>()
}

/// Adds to `writes` the identities `place` found missing; returns how many
/// contacts are new (a new identity of a contact in `known` only links it).
pub fn create_missing<'s>(
    writes: &mut Writes<'s>,
    s: &'s Statements,
    workspace_id: &str,
    (plan, known): (&Plan, &Known),
    at: i64,
) -> u64 {
    let ws = || workspace_id.to_owned();
    let phones: Vec<RowWrite<ContactRow>> = plan
        .new_phones
        .iter()
        .map(|(phone, row)| RowWrite {
            partition: format!("p:{phone}"),
            estimated_bytes: estimate(workspace_id, phone, row),
            values: ContactRow {
                identity_id: ids::contact_id(workspace_id, phone),
                workspace_id: ws(),
                phone: phone.clone(),
                contact_id: row.contact_id,
                name: row.name.clone(),
                created_at: CqlTimestamp(row.first_seen_ms),
                user_id: row.linked.clone(),
            },
        })
        .collect();
    let users: Vec<RowWrite<UserRow>> = plan
        .new_users
        .iter()
        .map(|(user_id, row)| RowWrite {
            partition: format!("u:{user_id}"),
            estimated_bytes: estimate(workspace_id, user_id, row),
            values: UserRow {
                identity_id: ids::user_contact_id(workspace_id, user_id),
                workspace_id: ws(),
                user_id: user_id.clone(),
                contact_id: row.contact_id,
                phone: row.linked.clone(),
                username: row.username.clone(),
                name: row.name.clone(),
                created_at: CqlTimestamp(row.first_seen_ms),
            },
        })
        .collect();
    let ws = workspace_id;
    writes.add(ws, "contact inserts", &s.insert_contact, phones, at);
    writes.add(
        ws,
        "contact user inserts",
        &s.insert_contact_user,
        users,
        at,
    );
    new_contacts(plan, known)
}

/// How many distinct contacts the plan's new identities create (an identity
/// of a contact in `known` only links it).
fn new_contacts(plan: &Plan, known: &Known) -> u64 {
    let mut new_contacts: Vec<Uuid> = plan
        .new_phones
        .values()
        .chain(plan.new_users.values())
        .map(|row| row.contact_id)
        .filter(|id| {
            !known
                .phones
                .values()
                .chain(known.users.values())
                .any(|k| k == id)
        })
        .collect();
    new_contacts.sort_unstable();
    new_contacts.dedup();
    new_contacts.len() as u64
}
