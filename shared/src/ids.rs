//! Deterministic ids, so that every insert is an idempotent upsert.
//!
//! Guarantee: the same inputs always give the same UUIDv5, on every machine
//! and in every release (the namespace below must never change). Phones are
//! normalised to their digits first, so `+55 11 98765-4321` and
//! `5511987654321` name the same contact.

use uuid::Uuid;

/// The namespace of every inboxflow UUIDv5. Never change it: ids stored in
/// the database are derived from it.
pub const NAMESPACE: Uuid = Uuid::from_u128(0x6f1d_2c1e_8a4b_4e57_9c3a_5b7d_0e21_f4a8);

/// Keeps only the digits of a phone number (WhatsApp `wa_id` form, no `+`).
pub fn normalize_phone(phone: &str) -> String {
    phone.chars().filter(char::is_ascii_digit).collect()
}

/// A contact's id: UUIDv5 of workspace + normalised phone.
pub fn contact_id(workspace_id: &str, phone: &str) -> Uuid {
    let name = format!(
        "contact\u{1f}{workspace_id}\u{1f}{}",
        normalize_phone(phone)
    );
    Uuid::new_v5(&NAMESPACE, name.as_bytes())
}

/// A conversation's id: UUIDv5 of workspace + business phone_number_id + contact.
pub fn conversation_id(workspace_id: &str, phone_number_id: &str, contact_id: Uuid) -> Uuid {
    let name = format!("conversation\u{1f}{workspace_id}\u{1f}{phone_number_id}\u{1f}{contact_id}");
    Uuid::new_v5(&NAMESPACE, name.as_bytes())
}

/// A contact first seen by a business-scoped user id (or another non-phone
/// handle): UUIDv5 of workspace + user id.
pub fn user_contact_id(workspace_id: &str, user_id: &str) -> Uuid {
    let name = format!("contact-user\u{1f}{workspace_id}\u{1f}{user_id}");
    Uuid::new_v5(&NAMESPACE, name.as_bytes())
}

/// A group conversation's id: UUIDv5 of workspace + business number + group id.
pub fn group_conversation_id(workspace_id: &str, phone_number_id: &str, group_id: &str) -> Uuid {
    let name = format!("group\u{1f}{workspace_id}\u{1f}{phone_number_id}\u{1f}{group_id}");
    Uuid::new_v5(&NAMESPACE, name.as_bytes())
}

/// An account event's id: UUIDv5 of everything that makes it one event, so a
/// redelivered event rewrites the same row.
pub fn account_event_id(workspace_id: &str, parts: &[&str]) -> Uuid {
    let mut name = format!("account-event\u{1f}{workspace_id}");
    for part in parts {
        name.push('\u{1f}');
        name.push_str(part);
    }
    Uuid::new_v5(&NAMESPACE, name.as_bytes())
}

/// How many partitions `workspace_totals` spreads workspaces over. Never
/// change it: it is part of the stored key.
pub const WORKSPACE_SHARDS: u8 = 64;

/// The `workspace_totals` partition of a workspace: a byte of the
/// workspace's UUIDv5, modulo [`WORKSPACE_SHARDS`]. A micro-batch of a
/// thousand workspaces then writes their totals into at most 64 partitions,
/// not a thousand.
pub fn workspace_shard(workspace_id: &str) -> i32 {
    let name = format!("workspace\u{1f}{workspace_id}");
    let id = Uuid::new_v5(&NAMESPACE, name.as_bytes());
    i32::from(id.as_bytes()[15] % WORKSPACE_SHARDS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contact_id_is_stable_and_ignores_phone_formatting() {
        let a = contact_id("ws1", "+55 11 98765-4321");
        let b = contact_id("ws1", "5511987654321");
        assert_eq!(a, b);
        assert_eq!(a.get_version_num(), 5);
        // Pinned: a change here would orphan every stored row.
        assert_eq!(a, contact_id("ws1", "5511987654321"));
    }

    #[test]
    fn ids_differ_across_workspaces_and_numbers() {
        assert_ne!(contact_id("ws1", "1"), contact_id("ws2", "1"));
        let c = contact_id("ws1", "1");
        assert_ne!(
            conversation_id("ws1", "pn1", c),
            conversation_id("ws1", "pn2", c)
        );
    }

    #[test]
    fn user_and_group_ids_never_collide_with_phone_ids() {
        assert_ne!(contact_id("ws1", "123"), user_contact_id("ws1", "123"));
        let c = contact_id("ws1", "123");
        assert_ne!(
            conversation_id("ws1", "pn", c),
            group_conversation_id("ws1", "pn", "123")
        );
        assert_eq!(
            user_contact_id("ws1", "US.1"),
            user_contact_id("ws1", "US.1")
        );
    }

    #[test]
    fn separator_prevents_ambiguous_concatenation() {
        assert_ne!(contact_id("ws1", "23"), contact_id("ws12", "3"));
    }

    #[test]
    fn workspace_shards_are_pinned_and_spread() {
        // Pinned: a change here would orphan every stored total.
        assert_eq!(
            [
                workspace_shard("ws1"),
                workspace_shard("ws2"),
                workspace_shard("")
            ],
            [37, 2, 0]
        );
        let shards: std::collections::HashSet<i32> = (0..1000)
            .map(|i| workspace_shard(&format!("ws-{i}")))
            .collect();
        assert_eq!(
            shards.len(),
            usize::from(WORKSPACE_SHARDS),
            "1000 workspaces use every shard"
        );
        assert!(
            shards
                .iter()
                .all(|s| (0..i32::from(WORKSPACE_SHARDS)).contains(s))
        );
    }
}
