//! Routing keys: first-seen order without duplicates, in linear time, and a
//! cap on how many distinct keys one body may name.

use serde_json::json;
use shared::record::Source;
use shared::webhook::{MAX_ROUTING_KEYS, ShapeError, routing_keys};

/// A Meta body with one change per id of `ids`.
fn meta_body(ids: impl Iterator<Item = String>) -> Vec<u8> {
    let changes: Vec<_> = ids
        .map(|id| {
            json!({
                "field": "messages",
                "value": {
                    "messaging_product": "whatsapp",
                    "metadata": {"display_phone_number": "15550000000", "phone_number_id": id}
                }
            })
        })
        .collect();
    serde_json::to_vec(&json!({
        "object": "whatsapp_business_account",
        "entry": [{"id": "waba-1", "changes": changes}]
    }))
    .expect("serializes")
}

#[test]
fn repeated_ids_are_kept_once_in_first_seen_order() {
    let ids = ["3", "1", "3", "2", "1"].iter().map(|s| (*s).to_owned());
    let many = std::iter::repeat_n("9".to_owned(), 100_000);
    let keys = routing_keys(Source::Meta, &meta_body(ids.chain(many))).expect("routable");
    assert_eq!(keys.phone_number_ids, ["3", "1", "2", "9"]);
}

#[test]
fn a_body_at_the_cap_is_routable_and_one_over_it_is_refused() {
    let at_cap = meta_body((0..MAX_ROUTING_KEYS).map(|i| format!("p{i}")));
    let keys = routing_keys(Source::Meta, &at_cap).expect("at the cap");
    assert_eq!(keys.phone_number_ids.len(), MAX_ROUTING_KEYS);

    let over = meta_body((0..=MAX_ROUTING_KEYS).map(|i| format!("p{i}")));
    assert_eq!(
        routing_keys(Source::Meta, &over),
        Err(ShapeError::TooManyRoutingKeys {
            limit: MAX_ROUTING_KEYS
        })
    );
}

#[test]
fn a_body_naming_a_hundred_thousand_numbers_is_refused() {
    // With the old quadratic dedup this alone took minutes; it is refused now.
    let huge = meta_body((0..100_000).map(|i| format!("p{i}")));
    assert!(matches!(
        routing_keys(Source::Meta, &huge),
        Err(ShapeError::TooManyRoutingKeys { .. })
    ));
}
