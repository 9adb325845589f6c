//! Turns a verified body into the records to write: which topic, which key,
//! which phone numbers. Pure logic, no I/O.
//!
//! Guarantees, for every verified body:
//! - at least one record is planned, so nothing verified is dropped;
//! - a body we cannot parse goes to the dead-letter topic (key
//!   [`DEAD_LETTER_KEY`]);
//! - each workspace whose numbers the body mentions gets exactly one routed
//!   record (key = workspace id) listing its numbers;
//! - numbers without a workspace (or, for a delivery signed with one
//!   workspace's own Kapso secret, numbers of another workspace) go to the
//!   unrouted topic, one record per reason, keyed by those numbers.

use std::sync::Arc;

use shared::webhook::ShapeError;

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

pub use shared::record::SIGNED_BY_HEADER;

/// Which secrets verified a delivery, which bounds where it may be routed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trust {
    /// A global secret (Kapso or Meta): any workspace.
    Global,
    /// This workspace's own Kapso secret: this workspace only.
    Workspace(Arc<str>),
}

impl Trust {
    /// `global`, or `workspace:<id>`: the [`SIGNED_BY_HEADER`] value.
    pub fn header_value(&self) -> String {
        match self {
            Trust::Global => "global".to_owned(),
            Trust::Workspace(ws) => format!("workspace:{ws}"),
        }
    }

    /// The inverse of [`Trust::header_value`]; `None` for anything else.
    pub fn from_header_value(value: &str) -> Option<Self> {
        match value.strip_prefix("workspace:") {
            Some(ws) if !ws.is_empty() => Some(Trust::Workspace(Arc::from(ws))),
            Some(_) => None,
            None => (value == "global").then_some(Trust::Global),
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
    /// Why the record is unrouted or dead-lettered (the reason header).
    pub reason: Option<String>,
    /// The same, as a fixed name that is safe in logs and labels.
    pub reason_kind: Option<&'static str>,
}

/// Plans the records for a body, given what the parser found in it.
pub fn plan(
    parsed: Result<Vec<String>, ShapeError>,
    registry: &Registry,
    trust: &Trust,
) -> Vec<PlannedRecord> {
    let ids = match parsed {
        Ok(ids) => ids,
        Err(err) => {
            return vec![PlannedRecord {
                kind: TopicKind::DeadLetter,
                key: DEAD_LETTER_KEY.to_owned(),
                workspace_id: None,
                phone_number_ids: Vec::new(),
                reason_kind: Some(match err {
                    ShapeError::NotJson(_) => "not_json",
                    ShapeError::UnexpectedShape { .. } => "unexpected_shape",
                }),
                reason: Some(err.to_string()),
            }];
        }
    };
    if ids.is_empty() {
        return vec![unrouted(NO_PHONE_KEY.to_owned(), Vec::new(), NO_PHONE)];
    }
    let mut routed: Vec<(Arc<str>, Vec<String>)> = Vec::new();
    let mut unknown = Vec::new();
    let mut foreign = Vec::new();
    for id in ids {
        match (registry.workspace_of(&id), trust) {
            (None, _) => unknown.push(id),
            (Some(owner), Trust::Workspace(signer)) if owner != signer => foreign.push(id),
            (Some(owner), _) => match routed.iter_mut().find(|(ws, _)| ws == owner) {
                Some((_, numbers)) => numbers.push(id),
                None => routed.push((Arc::clone(owner), vec![id])),
            },
        }
    }
    let mut records: Vec<PlannedRecord> = routed
        .into_iter()
        .map(|(ws, numbers)| PlannedRecord {
            kind: TopicKind::Routed,
            key: ws.to_string(),
            workspace_id: Some(ws),
            phone_number_ids: numbers,
            reason: None,
            reason_kind: None,
        })
        .collect();
    for (numbers, reason) in [(unknown, UNKNOWN_PHONE), (foreign, FOREIGN_PHONE)] {
        if !numbers.is_empty() {
            records.push(unrouted(numbers.join(","), numbers, reason));
        }
    }
    records
}

/// (fixed name, header text) of each unrouted reason.
const UNKNOWN_PHONE: (&str, &str) = ("unknown_phone_number_id", REASON_UNKNOWN_PHONE);
const FOREIGN_PHONE: (&str, &str) = ("foreign_phone_number_id", REASON_FOREIGN_PHONE);
const NO_PHONE: (&str, &str) = ("no_phone_number_id", REASON_NO_PHONE);

fn unrouted(
    key: String,
    numbers: Vec<String>,
    (kind, text): (&'static str, &str),
) -> PlannedRecord {
    PlannedRecord {
        kind: TopicKind::Unrouted,
        key,
        workspace_id: None,
        phone_number_ids: numbers,
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

    fn ids(list: &[&str]) -> Result<Vec<String>, ShapeError> {
        Ok(list.iter().map(|s| (*s).to_owned()).collect())
    }

    fn summary(records: &[PlannedRecord]) -> Vec<(TopicKind, String, Vec<String>)> {
        records
            .iter()
            .map(|r| (r.kind, r.key.clone(), r.phone_number_ids.clone()))
            .collect()
    }

    #[test]
    fn trust_round_trips_through_its_header_value() {
        for trust in [Trust::Global, Trust::Workspace(Arc::from("ws_a"))] {
            assert_eq!(Trust::from_header_value(&trust.header_value()), Some(trust));
        }
        for bad in ["", "workspace:", "Global", "other"] {
            assert_eq!(Trust::from_header_value(bad), None, "{bad}");
        }
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
        assert_eq!(records[1].reason_kind, Some("unknown_phone_number_id"));
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
        assert_eq!(records[0].reason_kind, Some("not_json"));
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
