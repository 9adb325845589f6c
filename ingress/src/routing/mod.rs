//! Turns a verified body into the records to write: which topic, which key,
//! which phone numbers. Pure logic, no I/O.
//!
//! Guarantees, for every verified body:
//! - at least one record is planned, so nothing verified is dropped;
//! - a body we cannot parse goes to the dead-letter topic (key
//!   [`DEAD_LETTER_KEY`]);
//! - each workspace whose numbers (or Meta business accounts) the body
//!   mentions gets exactly one routed record (key = workspace id) listing
//!   them;
//! - a body that names neither, verified by a workspace's own Kapso secret
//!   (a Kapso project event on `/webhooks/kapso/{workspace}`), is routed to
//!   that workspace;
//! - numbers and accounts without a workspace (or, for a delivery signed
//!   with one workspace's own Kapso secret, those of another workspace) go to
//!   the unrouted topic, one record per reason, keyed by them (a key over
//!   [`MAX_KEY_BYTES`] is replaced by its SHA-256);
//! - the work is linear in the body's routing keys, and bounded: a body
//!   naming more than [`shared::webhook::MAX_ROUTING_KEYS`] of them, or
//!   numbers of more than [`MAX_WORKSPACES_PER_BODY`] workspaces, is
//!   dead-lettered whole, as one record.

use std::collections::HashMap;
use std::sync::Arc;

use sha2::{Digest, Sha256};
use shared::record::Trust;
use shared::webhook::{RoutingKeys, ShapeError};

use crate::metrics::TopicKind;
use crate::registry::Registry;

/// Key of dead-lettered records (their body has no usable routing data).
pub const DEAD_LETTER_KEY: &str = "unparsed";
/// Key of unrouted records of a body that names no phone number at all.
pub const NO_PHONE_KEY: &str = "none";
/// Longest key written as is; a longer one (the joined ids of many unknown
/// numbers) is replaced by `sha256:` and the hex digest of it.
pub const MAX_KEY_BYTES: usize = 256;
/// Most workspaces one body may be routed to. Each routed record carries the
/// whole body (librdkafka copies it per record), so this bounds the copies;
/// a body over it is dead-lettered whole, once.
pub const MAX_WORKSPACES_PER_BODY: usize = 16;

pub const REASON_UNKNOWN_PHONE: &str = "unknown phone_number_id";
pub const REASON_FOREIGN_PHONE: &str =
    "phone_number_id belongs to another workspace than the signing secret";
pub const REASON_NO_PHONE: &str = "no phone_number_id in body";
pub const REASON_UNKNOWN_ACCOUNT: &str = "unknown business account id";

/// Why a record is diverted from the routed topic: its `reason_kind`, a
/// fixed name that is safe in logs and labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Diversion {
    /// Unrouted: a phone_number_id no workspace owns.
    UnknownPhoneNumberId,
    /// Unrouted: a number of another workspace than the signing secret's.
    ForeignPhoneNumberId,
    /// Unrouted: the body names no number (and no workspace secret signed it).
    NoPhoneNumberId,
    /// Unrouted: a Meta business account no workspace owns.
    UnknownBusinessAccountId,
    /// Dead letter: the body is not JSON.
    NotJson,
    /// Dead letter: JSON, but not a webhook shape we know.
    UnexpectedShape,
    /// Dead letter: more distinct numbers and accounts than
    /// [`shared::webhook::MAX_ROUTING_KEYS`].
    TooManyRoutingKeys,
    /// Dead letter: the body's numbers belong to more than
    /// [`MAX_WORKSPACES_PER_BODY`] workspaces.
    TooManyWorkspaces,
}

impl Diversion {
    pub const ALL: &[Diversion] = &[
        Diversion::UnknownPhoneNumberId,
        Diversion::ForeignPhoneNumberId,
        Diversion::NoPhoneNumberId,
        Diversion::UnknownBusinessAccountId,
        Diversion::NotJson,
        Diversion::UnexpectedShape,
        Diversion::TooManyRoutingKeys,
        Diversion::TooManyWorkspaces,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Diversion::UnknownPhoneNumberId => "unknown_phone_number_id",
            Diversion::ForeignPhoneNumberId => "foreign_phone_number_id",
            Diversion::NoPhoneNumberId => "no_phone_number_id",
            Diversion::UnknownBusinessAccountId => "unknown_business_account_id",
            Diversion::NotJson => "not_json",
            Diversion::UnexpectedShape => "unexpected_shape",
            Diversion::TooManyRoutingKeys => "too_many_routing_keys",
            Diversion::TooManyWorkspaces => "too_many_workspaces",
        }
    }

    /// The dead-letter reason of a body the parser refused.
    pub fn of_shape_error(err: &ShapeError) -> Self {
        match err {
            ShapeError::NotJson(_) => Diversion::NotJson,
            ShapeError::UnexpectedShape { .. } => Diversion::UnexpectedShape,
            ShapeError::TooManyRoutingKeys { .. } => Diversion::TooManyRoutingKeys,
        }
    }
}

/// One record to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedRecord {
    pub kind: TopicKind,
    pub key: String,
    /// Set on routed records only.
    pub workspace_id: Option<Arc<str>>,
    /// The body's phone_number_ids this record is about (empty on dead letters).
    pub phone_number_ids: Vec<String>,
    /// The body's Meta business account ids this record is about.
    pub business_account_ids: Vec<String>,
    /// Why the record is unrouted or dead-lettered (the reason header).
    pub reason: Option<String>,
    /// The same, as a fixed name that is safe in logs and labels.
    pub reason_kind: Option<Diversion>,
}

/// Plans the records for a body, given what the parser found in it.
pub fn plan(
    parsed: Result<RoutingKeys, ShapeError>,
    registry: &Registry,
    trust: &Trust,
) -> Vec<PlannedRecord> {
    let keys = match parsed {
        Ok(keys) => keys,
        Err(err) => return vec![dead_letter(&err)],
    };
    if keys.is_empty() {
        return vec![match trust {
            Trust::Workspace(ws) => routed(Arc::clone(ws)),
            Trust::Global => unrouted(NO_PHONE_KEY.to_owned(), Vec::new(), NO_PHONE),
        }];
    }
    let mut records: Vec<PlannedRecord> = Vec::new();
    let mut index: HashMap<Arc<str>, usize> = HashMap::new();
    let mut unknown = Vec::new();
    let mut foreign = Vec::new();
    let mut unknown_accounts = Vec::new();
    let phones = keys.phone_number_ids.into_iter().map(|id| (id, false));
    let accounts = keys.business_account_ids.into_iter().map(|id| (id, true));
    for (id, is_account) in phones.chain(accounts) {
        let owner = match is_account {
            false => registry.workspace_of(&id),
            true => registry.workspace_of_account(&id),
        };
        match (owner, trust) {
            (None, _) if is_account => unknown_accounts.push(id),
            (None, _) => unknown.push(id),
            (Some(owner), Trust::Workspace(signer)) if owner != signer => foreign.push(id),
            (Some(owner), _) => {
                let at = *index.entry(Arc::clone(owner)).or_insert_with(|| {
                    records.push(routed(Arc::clone(owner)));
                    records.len() - 1
                });
                let record = &mut records[at];
                match is_account {
                    false => record.phone_number_ids.push(id),
                    true => record.business_account_ids.push(id),
                }
            }
        }
    }
    if index.len() > MAX_WORKSPACES_PER_BODY {
        return vec![too_many_workspaces()];
    }
    for (ids, reason) in [
        (unknown, UNKNOWN_PHONE),
        (foreign, FOREIGN_PHONE),
        (unknown_accounts, UNKNOWN_ACCOUNT),
    ] {
        if !ids.is_empty() {
            records.push(unrouted(bounded_key(ids.join(",")), ids, reason));
        }
    }
    records
}

fn routed(ws: Arc<str>) -> PlannedRecord {
    PlannedRecord {
        kind: TopicKind::Routed,
        key: ws.to_string(),
        workspace_id: Some(ws),
        phone_number_ids: Vec::new(),
        business_account_ids: Vec::new(),
        reason: None,
        reason_kind: None,
    }
}

fn dead_letter(err: &ShapeError) -> PlannedRecord {
    diverted_whole(Diversion::of_shape_error(err), err.to_string())
}

fn too_many_workspaces() -> PlannedRecord {
    let reason = format!("body names numbers of more than {MAX_WORKSPACES_PER_BODY} workspaces");
    diverted_whole(Diversion::TooManyWorkspaces, reason)
}

/// The one dead-letter record of a body that is diverted whole.
fn diverted_whole(kind: Diversion, reason: String) -> PlannedRecord {
    PlannedRecord {
        kind: TopicKind::DeadLetter,
        key: DEAD_LETTER_KEY.to_owned(),
        workspace_id: None,
        phone_number_ids: Vec::new(),
        business_account_ids: Vec::new(),
        reason_kind: Some(kind),
        reason: Some(reason),
    }
}

/// `key` itself when short, else `sha256:<hex digest>` of it.
fn bounded_key(key: String) -> String {
    if key.len() <= MAX_KEY_BYTES {
        return key;
    }
    format!("sha256:{}", hex::encode(Sha256::digest(key.as_bytes())))
}

/// (fixed name, header text) of each unrouted reason.
const UNKNOWN_PHONE: (Diversion, &str) = (Diversion::UnknownPhoneNumberId, REASON_UNKNOWN_PHONE);
const FOREIGN_PHONE: (Diversion, &str) = (Diversion::ForeignPhoneNumberId, REASON_FOREIGN_PHONE);
const NO_PHONE: (Diversion, &str) = (Diversion::NoPhoneNumberId, REASON_NO_PHONE);
const UNKNOWN_ACCOUNT: (Diversion, &str) =
    (Diversion::UnknownBusinessAccountId, REASON_UNKNOWN_ACCOUNT);

fn unrouted(key: String, numbers: Vec<String>, (kind, text): (Diversion, &str)) -> PlannedRecord {
    PlannedRecord {
        kind: TopicKind::Unrouted,
        key,
        workspace_id: None,
        phone_number_ids: numbers,
        business_account_ids: Vec::new(),
        reason: Some(text.to_owned()),
        reason_kind: Some(kind),
    }
}

#[cfg(test)]
mod tests;
