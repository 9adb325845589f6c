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
//!   the unrouted topic, one record per reason, keyed by them.

use std::sync::Arc;

use shared::record::Trust;
use shared::webhook::{RoutingKeys, ShapeError};

use crate::metrics::TopicKind;
use crate::registry::Registry;

/// Key of dead-lettered records (their body has no usable routing data).
pub const DEAD_LETTER_KEY: &str = "unparsed";
/// Key of unrouted records of a body that names no phone number at all.
pub const NO_PHONE_KEY: &str = "none";

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
}

impl Diversion {
    pub const ALL: &[Diversion] = &[
        Diversion::UnknownPhoneNumberId,
        Diversion::ForeignPhoneNumberId,
        Diversion::NoPhoneNumberId,
        Diversion::UnknownBusinessAccountId,
        Diversion::NotJson,
        Diversion::UnexpectedShape,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Diversion::UnknownPhoneNumberId => "unknown_phone_number_id",
            Diversion::ForeignPhoneNumberId => "foreign_phone_number_id",
            Diversion::NoPhoneNumberId => "no_phone_number_id",
            Diversion::UnknownBusinessAccountId => "unknown_business_account_id",
            Diversion::NotJson => "not_json",
            Diversion::UnexpectedShape => "unexpected_shape",
        }
    }

    /// The dead-letter reason of a body the parser refused.
    pub fn of_shape_error(err: &ShapeError) -> Self {
        match err {
            ShapeError::NotJson(_) => Diversion::NotJson,
            ShapeError::UnexpectedShape { .. } => Diversion::UnexpectedShape,
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
                let record = match records.iter_mut().position(|r| r.key == **owner) {
                    Some(i) => &mut records[i],
                    None => {
                        records.push(routed(Arc::clone(owner)));
                        records.last_mut().expect("just pushed")
                    }
                };
                match is_account {
                    false => record.phone_number_ids.push(id),
                    true => record.business_account_ids.push(id),
                }
            }
        }
    }
    for (ids, reason) in [
        (unknown, UNKNOWN_PHONE),
        (foreign, FOREIGN_PHONE),
        (unknown_accounts, UNKNOWN_ACCOUNT),
    ] {
        if !ids.is_empty() {
            records.push(unrouted(ids.join(","), ids, reason));
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
    PlannedRecord {
        kind: TopicKind::DeadLetter,
        key: DEAD_LETTER_KEY.to_owned(),
        workspace_id: None,
        phone_number_ids: Vec::new(),
        business_account_ids: Vec::new(),
        reason_kind: Some(Diversion::of_shape_error(err)),
        reason: Some(err.to_string()),
    }
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
mod tests {
    use super::*;

    fn registry() -> Registry {
        Registry::parse(
            "[[workspace]]\nid = \"ws_a\"\nphone_number_ids = [\"1\", \"2\"]\n\
             [[workspace]]\nid = \"ws_b\"\nphone_number_ids = [\"3\"]\n",
        )
        .expect("valid")
    }

    fn ids(list: &[&str]) -> Result<RoutingKeys, ShapeError> {
        Ok(RoutingKeys {
            phone_number_ids: list.iter().map(|s| (*s).to_owned()).collect(),
            business_account_ids: Vec::new(),
        })
    }

    fn summary(records: &[PlannedRecord]) -> Vec<(TopicKind, String, Vec<String>)> {
        records
            .iter()
            .map(|r| (r.kind, r.key.clone(), r.phone_number_ids.clone()))
            .collect()
    }

    #[test]
    fn a_known_number_is_routed_to_its_workspace() {
        let records = plan(ids(&["1"]), &registry(), &Trust::Global);
        assert_eq!(
            summary(&records),
            [(TopicKind::Routed, "ws_a".into(), vec!["1".into()])]
        );
        assert_eq!(records[0].workspace_id.as_deref(), Some("ws_a"));
        assert_eq!(records[0].reason, None);
    }

    #[test]
    fn a_body_spanning_workspaces_gets_one_record_per_workspace() {
        let records = plan(ids(&["1", "3", "2"]), &registry(), &Trust::Global);
        assert_eq!(
            summary(&records),
            [
                (
                    TopicKind::Routed,
                    "ws_a".into(),
                    vec!["1".into(), "2".into()]
                ),
                (TopicKind::Routed, "ws_b".into(), vec!["3".into()]),
            ]
        );
    }

    #[test]
    fn unknown_numbers_share_one_unrouted_record_beside_the_routed_ones() {
        let records = plan(ids(&["9", "1", "8"]), &registry(), &Trust::Global);
        assert_eq!(
            summary(&records),
            [
                (TopicKind::Routed, "ws_a".into(), vec!["1".into()]),
                (
                    TopicKind::Unrouted,
                    "9,8".into(),
                    vec!["9".into(), "8".into()]
                ),
            ]
        );
        assert_eq!(records[1].reason.as_deref(), Some(REASON_UNKNOWN_PHONE));
        assert_eq!(
            records[1].reason_kind.map(Diversion::as_str),
            Some("unknown_phone_number_id")
        );
        assert_eq!(records[1].workspace_id, None);
    }

    #[test]
    fn a_workspace_secret_cannot_route_into_another_workspace() {
        let trust = Trust::Workspace(Arc::from("ws_a"));
        let records = plan(ids(&["1", "3"]), &registry(), &trust);
        assert_eq!(
            summary(&records),
            [
                (TopicKind::Routed, "ws_a".into(), vec!["1".into()]),
                (TopicKind::Unrouted, "3".into(), vec!["3".into()]),
            ]
        );
        assert_eq!(records[1].reason.as_deref(), Some(REASON_FOREIGN_PHONE));
    }

    #[test]
    fn an_unparseable_body_is_dead_lettered_with_its_reason() {
        let parsed = Err(ShapeError::NotJson("expected value".into()));
        let records = plan(parsed, &registry(), &Trust::Global);
        assert_eq!(
            summary(&records),
            [(TopicKind::DeadLetter, DEAD_LETTER_KEY.into(), vec![])]
        );
        assert!(
            records[0]
                .reason
                .as_deref()
                .is_some_and(|r| r.contains("not valid JSON"))
        );
        assert_eq!(
            records[0].reason_kind.map(Diversion::as_str),
            Some("not_json")
        );
    }

    #[test]
    fn an_account_level_change_is_routed_by_its_business_account() {
        let registry =
            Registry::parse("[[workspace]]\nid = \"ws_a\"\nbusiness_account_ids = [\"waba1\"]\n")
                .expect("valid");
        let keys = |accounts: &[&str]| {
            Ok(RoutingKeys {
                phone_number_ids: Vec::new(),
                business_account_ids: accounts.iter().map(|s| (*s).to_owned()).collect(),
            })
        };
        let records = plan(keys(&["waba1"]), &registry, &Trust::Global);
        assert_eq!(records.len(), 1);
        assert_eq!(records[0].kind, TopicKind::Routed);
        assert_eq!(records[0].business_account_ids, ["waba1"]);
        let records = plan(keys(&["waba9"]), &registry, &Trust::Global);
        assert_eq!(records[0].kind, TopicKind::Unrouted);
        assert_eq!(
            records[0].reason_kind.map(Diversion::as_str),
            Some("unknown_business_account_id")
        );
    }

    #[test]
    fn a_project_event_signed_by_a_workspace_secret_goes_to_that_workspace() {
        let trust = Trust::Workspace(Arc::from("ws_b"));
        let records = plan(ids(&[]), &registry(), &trust);
        assert_eq!(
            summary(&records),
            [(TopicKind::Routed, "ws_b".into(), vec![])]
        );
    }

    #[test]
    fn a_body_naming_no_number_is_unrouted_not_dropped() {
        let records = plan(ids(&[]), &registry(), &Trust::Global);
        assert_eq!(
            summary(&records),
            [(TopicKind::Unrouted, NO_PHONE_KEY.into(), vec![])]
        );
        assert_eq!(records[0].reason.as_deref(), Some(REASON_NO_PHONE));
    }
}
