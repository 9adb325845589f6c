//! Pure contact resolution: which contact each message belongs to, given
//! the identities already stored (step 1) and those seen earlier in the batch.
//!
//! Guarantees:
//! - An identity already stored keeps its contact id; a payload naming a
//!   known identity and a new one links the new one to the same contact.
//!   Within a batch, payloads naming both are resolved first, so the order of
//!   the batch never matters. A user id wins over a phone when both are
//!   known for different contacts (phones change hands, business-scoped user
//!   ids do not). Two identities first seen apart, in different batches,
//!   stay two contacts: nothing links them until a payload names both, and
//!   stored contacts are never merged.
//! - A new contact's id is derived from its identity alone (UUIDv5 of the
//!   phone, else of the user id), so re-processing a batch resolves the same.
//! - `user_changed_number` links the new phone to the sender's contact.

use std::collections::{BTreeMap, HashMap};

use shared::ids;
use shared::webhook::ContactRef;
use uuid::Uuid;

/// Identities already stored, with their contact ids (step 1's result).
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Known {
    pub phones: HashMap<String, Uuid>,
    pub users: HashMap<String, Uuid>,
}

impl Known {
    /// Identities held.
    pub fn len(&self) -> usize {
        self.phones.len() + self.users.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A new identity row: a `contacts` row for a phone, a `contact_users` row
/// for a user id. `linked` is the other identity seen with it, if any.
#[derive(Debug, Clone, PartialEq)]
pub struct NewIdentity {
    pub contact_id: Uuid,
    pub linked: Option<String>,
    pub name: Option<String>,
    pub username: Option<String>,
    pub first_seen_ms: i64,
}

/// Resolves contacts in batch order, collecting the identities to create.
#[derive(Debug)]
pub struct Resolver<'k> {
    workspace_id: &'k str,
    known: &'k Known,
    pub new_phones: BTreeMap<String, NewIdentity>,
    pub new_users: BTreeMap<String, NewIdentity>,
}

impl<'k> Resolver<'k> {
    pub fn new(workspace_id: &'k str, known: &'k Known) -> Self {
        Resolver {
            workspace_id,
            known,
            new_phones: BTreeMap::new(),
            new_users: BTreeMap::new(),
        }
    }

    fn user_contact(&self, user: &str) -> Option<Uuid> {
        self.known
            .users
            .get(user)
            .or_else(|| self.new_users.get(user).map(|n| &n.contact_id))
            .copied()
    }

    fn phone_contact(&self, phone: &str) -> Option<Uuid> {
        self.known
            .phones
            .get(phone)
            .or_else(|| self.new_phones.get(phone).map(|n| &n.contact_id))
            .copied()
    }

    /// The contact of `contact`, or `None` when it names no identity.
    pub fn resolve(&mut self, contact: &ContactRef, at_ms: i64) -> Option<Uuid> {
        let (phone, user) = (contact.phone.as_deref(), contact.user_id.as_deref());
        let id = user
            .and_then(|u| self.user_contact(u))
            .or_else(|| phone.and_then(|p| self.phone_contact(p)))
            .or_else(|| phone.map(|p| ids::contact_id(self.workspace_id, p)))
            .or_else(|| user.map(|u| ids::user_contact_id(self.workspace_id, u)))?;
        if let Some(p) = phone.filter(|p| !self.known.phones.contains_key(*p)) {
            let row = new_row(&mut self.new_phones, p, id, at_ms, contact);
            row.linked = row.linked.take().or_else(|| user.map(str::to_owned));
        }
        if let Some(u) = user.filter(|u| !self.known.users.contains_key(*u)) {
            let row = new_row(&mut self.new_users, u, id, at_ms, contact);
            row.linked = row.linked.take().or_else(|| phone.map(str::to_owned));
        }
        Some(id)
    }

    /// Links `phone` (a customer's new number) to `contact_id`.
    pub fn link_phone(&mut self, phone: &str, contact_id: Uuid, at_ms: i64) {
        if self.phone_contact(phone).is_none() {
            new_row(
                &mut self.new_phones,
                phone,
                contact_id,
                at_ms,
                &ContactRef::default(),
            );
        }
    }
}

fn new_row<'a>(
    rows: &'a mut BTreeMap<String, NewIdentity>,
    key: &str,
    contact_id: Uuid,
    at_ms: i64,
    contact: &ContactRef,
) -> &'a mut NewIdentity {
    let row = rows.entry(key.to_owned()).or_insert_with(|| NewIdentity {
        contact_id,
        linked: None,
        name: None,
        username: None,
        first_seen_ms: at_ms,
    });
    row.first_seen_ms = row.first_seen_ms.min(at_ms);
    if row.name.is_none() {
        row.name.clone_from(&contact.name);
    }
    if row.username.is_none() {
        row.username.clone_from(&contact.username);
    }
    row
}

#[cfg(test)]
mod tests {
    use super::*;

    fn who(phone: Option<&str>, user: Option<&str>) -> ContactRef {
        ContactRef {
            phone: phone.map(str::to_owned),
            user_id: user.map(str::to_owned),
            ..ContactRef::default()
        }
    }

    #[test]
    fn a_phone_seen_with_a_user_id_and_the_user_id_alone_are_one_contact() {
        let known = Known::default();
        let mut r = Resolver::new("ws", &known);
        let both = r.resolve(&who(Some("1"), Some("US.1")), 10);
        let user_only = r.resolve(&who(None, Some("US.1")), 20);
        assert_eq!(both, user_only);
        assert_eq!(both, Some(ids::contact_id("ws", "1")));
        assert_eq!(r.new_users["US.1"].linked.as_deref(), Some("1"));
    }

    #[test]
    fn a_stored_phone_lends_its_contact_to_a_new_user_id() {
        let mut known = Known::default();
        let stored = Uuid::from_u128(7);
        known.phones.insert("1".into(), stored);
        let mut r = Resolver::new("ws", &known);
        assert_eq!(r.resolve(&who(Some("1"), Some("US.1")), 1), Some(stored));
        assert!(r.new_phones.is_empty());
        assert_eq!(r.new_users["US.1"].contact_id, stored);
        assert_eq!(r.resolve(&who(None, None), 1), None);
    }

    #[test]
    fn a_user_without_phone_gets_a_user_derived_contact() {
        let known = Known::default();
        let mut r = Resolver::new("ws", &known);
        let id = r.resolve(&who(None, Some("US.9")), 1);
        assert_eq!(id, Some(ids::user_contact_id("ws", "US.9")));
        r.link_phone("5", id.expect("resolved"), 2);
        assert_eq!(r.new_phones["5"].contact_id, id.expect("resolved"));
    }
}
