//! Unit tests of the routing plan.

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

fn registry_of(workspaces: usize) -> Registry {
    let mut toml = String::new();
    for w in 0..workspaces {
        toml.push_str(&format!(
            "[[workspace]]\nid = \"ws_{w}\"\nphone_number_ids = [\"p{w}\"]\n"
        ));
    }
    Registry::parse(&toml).expect("valid")
}

#[test]
fn a_body_for_more_workspaces_than_the_cap_is_dead_lettered_once() {
    let registry = registry_of(MAX_WORKSPACES_PER_BODY + 1);
    let at_cap: Vec<String> = (0..MAX_WORKSPACES_PER_BODY)
        .map(|w| format!("p{w}"))
        .collect();
    let over: Vec<String> = (0..=MAX_WORKSPACES_PER_BODY)
        .map(|w| format!("p{w}"))
        .collect();
    let keys = |ids: &[String]| {
        Ok(RoutingKeys {
            phone_number_ids: ids.to_vec(),
            business_account_ids: Vec::new(),
        })
    };
    let routed = plan(keys(&at_cap), &registry, &Trust::Global);
    assert_eq!(routed.len(), MAX_WORKSPACES_PER_BODY);
    assert!(routed.iter().all(|r| r.kind == TopicKind::Routed));
    let records = plan(keys(&over), &registry, &Trust::Global);
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].kind, TopicKind::DeadLetter);
    assert_eq!(records[0].reason_kind, Some(Diversion::TooManyWorkspaces));
}

#[test]
fn many_unknown_numbers_get_a_hashed_key_of_bounded_length() {
    let unknown: Vec<String> = (0..100).map(|i| format!("55119{i:08}")).collect();
    let refs: Vec<&str> = unknown.iter().map(String::as_str).collect();
    let records = plan(ids(&refs), &registry(), &Trust::Global);
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].kind, TopicKind::Unrouted);
    assert!(records[0].key.starts_with("sha256:"), "{}", records[0].key);
    assert_eq!(records[0].key.len(), "sha256:".len() + 64);
    assert_eq!(records[0].phone_number_ids, unknown, "the ids are all kept");
    let few = plan(ids(&["7", "8"]), &registry(), &Trust::Global);
    assert_eq!(few[0].key, "7,8", "a short key is kept as is");
}

#[test]
fn every_diversion_has_a_distinct_snake_case_name() {
    let names: std::collections::HashSet<&str> =
        Diversion::ALL.iter().map(|d| d.as_str()).collect();
    assert_eq!(names.len(), Diversion::ALL.len());
    assert!(
        names
            .iter()
            .all(|n| n.chars().all(|c| c.is_ascii_lowercase() || c == '_'))
    );
}
