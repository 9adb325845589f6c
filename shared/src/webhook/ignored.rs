//! [`IgnoredKind`]: why a valid event is not stored, as a name from one
//! closed list.
//!
//! Guarantee: an `IgnoredKind` can only hold a name of [`IgnoredKind::ALL`],
//! so it is always safe as a metric label (bounded cardinality) and a log
//! field. Names that come from a payload (a Meta change field, a Kapso event
//! type) are looked up in their own list and become [`IgnoredKind::OTHER`]
//! when absent: no payload can add a name.

/// A fixed, low-cardinality name for an event the processor does not store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IgnoredKind(&'static str);

/// Declares the kinds once: each constant, `ALL`, and the lists payload
/// names are looked up in.
macro_rules! kinds {
    (
        internal: [$($i:ident = $is:literal,)*]
        meta_fields: [$($m:ident = $ms:literal,)*]
        kapso_events: [$($k:ident = $ks:literal,)*]
    ) => {
        impl IgnoredKind {
            $(pub const $i: Self = Self($is);)*
            $(pub const $m: Self = Self($ms);)*
            $(pub const $k: Self = Self($ks);)*
            /// Every kind, once.
            pub const ALL: &'static [Self] = &[$(Self::$i,)* $(Self::$m,)* $(Self::$k,)*];
            /// Meta change fields reported by name.
            const META_FIELDS: &'static [Self] = &[$(Self::$m,)*];
            /// Kapso events we receive but do not store as messages.
            const KAPSO_EVENTS: &'static [Self] = &[$(Self::$k,)*];
        }
    };
}

kinds! {
    internal: [
        CONVERSATION_WITHOUT_CONTACT = "conversation_without_contact",
        GROUP_STATUS = "group_status",
        MALFORMED_CHANGE = "malformed_change",
        MALFORMED_CONVERSATION = "malformed_conversation",
        MALFORMED_ITEM = "malformed_item",
        MALFORMED_MESSAGE = "malformed_message",
        MALFORMED_REACTION = "malformed_reaction",
        MALFORMED_STATUS = "malformed_status",
        MESSAGE_WITHOUT_CONTACT = "message_without_contact",
        MESSAGES_WITHOUT_ITEMS = "messages_without_items",
        MISSING_EVENT_TYPE = "missing_event_type",
        STATUS = "status",
        UNKNOWN_MESSAGE_TYPE = "unknown_message_type",
        OTHER = "other",
    ]
    meta_fields: [
        ACCOUNT_ALERTS = "account_alerts",
        ACCOUNT_REVIEW_UPDATE = "account_review_update",
        ACCOUNT_SETTINGS_UPDATE = "account_settings_update",
        ACCOUNT_UPDATE = "account_update",
        AUTOMATIC_EVENTS = "automatic_events",
        BUSINESS_CAPABILITY_UPDATE = "business_capability_update",
        BUSINESS_STATUS_UPDATE = "business_status_update",
        CALLS = "calls",
        FLOWS = "flows",
        GROUP_LIFECYCLE_UPDATE = "group_lifecycle_update",
        GROUP_PARTICIPANTS_UPDATE = "group_participants_update",
        GROUP_SETTINGS_UPDATE = "group_settings_update",
        GROUP_STATUS_UPDATE = "group_status_update",
        HISTORY = "history",
        MESSAGE_ECHOES = "message_echoes",
        MESSAGE_TEMPLATE_COMPONENTS_UPDATE = "message_template_components_update",
        MESSAGE_TEMPLATE_QUALITY_UPDATE = "message_template_quality_update",
        MESSAGE_TEMPLATE_STATUS_UPDATE = "message_template_status_update",
        MESSAGING_HANDOVERS = "messaging_handovers",
        PARTNER_SOLUTIONS = "partner_solutions",
        PAYMENT_CONFIGURATION_UPDATE = "payment_configuration_update",
        PHONE_NUMBER_NAME_UPDATE = "phone_number_name_update",
        PHONE_NUMBER_QUALITY_UPDATE = "phone_number_quality_update",
        SECURITY = "security",
        SMB_APP_STATE_SYNC = "smb_app_state_sync",
        SMB_MESSAGE_ECHOES = "smb_message_echoes",
        TEMPLATE_CATEGORY_UPDATE = "template_category_update",
        TRACKING_EVENTS = "tracking_events",
        USER_PREFERENCES = "user_preferences",
    ]
    kapso_events: [
        WHATSAPP_PHONE_NUMBER_CREATED = "whatsapp.phone_number.created",
        WHATSAPP_PHONE_NUMBER_DELETED = "whatsapp.phone_number.deleted",
        WHATSAPP_CONFIG_CREATED = "whatsapp.config.created",
        WHATSAPP_CONFIG_DELETED = "whatsapp.config.deleted",
        WORKFLOW_EXECUTION_HANDOFF = "workflow.execution.handoff",
        WORKFLOW_EXECUTION_FAILED = "workflow.execution.failed",
        PROJECT_EVENT = "project.event",
    ]
}

impl IgnoredKind {
    pub fn as_str(self) -> &'static str {
        self.0
    }

    /// The kind of an ignored Meta change `field` (`OTHER` when not listed).
    pub fn meta_field(field: &str) -> Self {
        Self::find(Self::META_FIELDS, field)
    }

    /// The kind of a Kapso event type we do not store as a message
    /// (`OTHER` when not listed).
    pub fn kapso_event(event_type: &str) -> Self {
        Self::find(Self::KAPSO_EVENTS, event_type)
    }

    fn find(list: &[Self], name: &str) -> Self {
        list.iter()
            .copied()
            .find(|k| k.0 == name)
            .unwrap_or(Self::OTHER)
    }
}

impl std::fmt::Display for IgnoredKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_label_safe_and_payload_names_stay_in_their_list() {
        let names: std::collections::BTreeSet<&str> =
            IgnoredKind::ALL.iter().map(|k| k.as_str()).collect();
        assert_eq!(names.len(), IgnoredKind::ALL.len(), "no name twice");
        assert!(names.iter().all(|n| {
            n.chars()
                .all(|c| c.is_ascii_lowercase() || c == '_' || c == '.')
        }));
        assert_eq!(IgnoredKind::meta_field("calls"), IgnoredKind::CALLS);
        assert_eq!(
            IgnoredKind::meta_field("whatsapp.config.created"),
            IgnoredKind::OTHER
        );
        assert_eq!(IgnoredKind::kapso_event("calls"), IgnoredKind::OTHER);
        assert_eq!(
            IgnoredKind::kapso_event(&"x".repeat(10_000)),
            IgnoredKind::OTHER
        );
    }
}
