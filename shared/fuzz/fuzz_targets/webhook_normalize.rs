//! Arbitrary bytes through the webhook model: `routing_phone_number_ids` and
//! `normalize` for both senders must never panic, whatever the body.
//!
//! Input layout: the first byte picks the Kapso event type (one of
//! [`EVENTS`], or none); the rest is the body. The numbers routing finds are
//! fed back as the `only` filter, as the processor does with a record's
//! `inboxflow-phone-number-ids` header.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shared::record::Source;
use shared::webhook::{Event, normalize, routing_phone_number_ids};

const EVENTS: &[&str] = &[
    "whatsapp.message.received",
    "whatsapp.message.sent",
    "whatsapp.message.delivered",
    "whatsapp.message.read",
    "whatsapp.message.failed",
    "whatsapp.conversation.created",
    "whatsapp.conversation.ended",
    "whatsapp.conversation.inactive",
    "whatsapp.phone_number.created",
    "other.event",
];

fuzz_target!(|data: &[u8]| {
    let Some((selector, body)) = data.split_first() else {
        return;
    };
    let event = EVENTS
        .get(usize::from(*selector) % (EVENTS.len() + 1))
        .copied();
    for source in [Source::Kapso, Source::Meta] {
        let routed = routing_phone_number_ids(source, body);
        if let Ok(ids) = &routed {
            // Routing returns each number once, and never a blank one.
            for (i, id) in ids.iter().enumerate() {
                assert!(!id.trim().is_empty(), "blank phone_number_id");
                assert!(!ids[..i].contains(id), "phone_number_id listed twice");
            }
        }
        let all = normalize(source, event, body, &[]);
        let only = routed.unwrap_or_default();
        let filtered = normalize(source, event, body, &only);
        // Filtering by the body's own numbers never turns success into failure.
        assert_eq!(all.is_ok(), filtered.is_ok());
        for events in [all, filtered].into_iter().flatten() {
            for e in events {
                if let Event::Message(m) = &e {
                    assert!(!m.message_id.is_empty(), "message without id");
                    assert!(m.timestamp > 0, "message without a valid timestamp");
                }
            }
        }
    }
});
