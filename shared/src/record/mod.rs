//! The Kafka record contract between ingress and processor.
//!
//! A record's key is the workspace id and its value is the webhook body
//! exactly as received (so its signature can be verified again downstream).
//! Everything else travels in headers, named below and documented in
//! `schemas/kafka-record.schema.json`. Guarantee: a header name or meaning
//! never changes without bumping [`SCHEMA_VERSION`].
//!
//! # Layout
//! - this file: the header names, [`Source`] and the schema version;
//! - `headers`: [`RecordHeaders`], the only writer (`to_kafka`) and reader
//!   (`from_kafka`) of the headers, and [`DeadLetterOrigin`];
//! - `error`: [`HeaderError`], why headers break the contract;
//! - `trust`: [`Trust`], the signed-by header's meaning;
//! - `envelope`: [`EnvelopeKey`], the MAC that proves inboxflow wrote a record.

mod envelope;
mod error;
mod headers;
#[cfg(test)]
mod tests;
mod trust;

pub use envelope::{EnvelopeError, EnvelopeKey, MIN_KEY_BYTES as MIN_ENVELOPE_KEY_BYTES};
pub use error::HeaderError;
pub use headers::{DeadLetterOrigin, RecordHeaders, copy_verbatim, received_at_ms};
pub use trust::Trust;

/// Version of this contract, carried in [`SCHEMA_VERSION_HEADER`].
pub const SCHEMA_VERSION: &str = "1";

pub const SOURCE_HEADER: &str = "inboxflow-source";
pub const EVENT_HEADER: &str = "inboxflow-event";
/// HMAC-SHA256 (hex) of the record under the envelope key; see [`EnvelopeKey`].
pub const ENVELOPE_MAC_HEADER: &str = "inboxflow-envelope-mac";
pub const IDEMPOTENCY_KEY_HEADER: &str = "inboxflow-idempotency-key";
pub const WORKSPACE_HEADER: &str = "inboxflow-workspace-id";
/// Comma-separated business phone_number_ids of this workspace that the body
/// mentions. A Meta body spanning several workspaces is written once per
/// workspace; the processor handles only the entries of these numbers.
pub const PHONE_NUMBER_IDS_HEADER: &str = "inboxflow-phone-number-ids";
/// Comma-separated Meta business account ids (`entry[].id`) of this workspace
/// whose account-level changes the body carries; absent when there are none.
pub const BUSINESS_ACCOUNT_IDS_HEADER: &str = "inboxflow-business-account-ids";
/// Milliseconds since the Unix epoch at which the ingress received the body.
pub const RECEIVED_AT_HEADER: &str = "inboxflow-received-at-ms";
pub const CONTENT_TYPE_HEADER: &str = "content-type";
pub const SCHEMA_VERSION_HEADER: &str = "inboxflow-schema-version";

/// Which secret verified the body: `global` or `workspace:<id>`. Replay
/// routes a body only within the reach of the secret that signed it.
pub const SIGNED_BY_HEADER: &str = "inboxflow-signed-by";
/// On replayed records: `<topic>/<partition>/<offset>` of the copy replayed.
pub const REPLAYED_FROM_HEADER: &str = "inboxflow-replayed-from";

/// On unrouted and dead-lettered records: why the record is there.
pub const REASON_HEADER: &str = "inboxflow-reason";
/// On dead-lettered records written by the processor: where the record came from.
pub const DLQ_SOURCE_TOPIC_HEADER: &str = "inboxflow-dlq-source-topic";
pub const DLQ_SOURCE_PARTITION_HEADER: &str = "inboxflow-dlq-source-partition";
pub const DLQ_SOURCE_OFFSET_HEADER: &str = "inboxflow-dlq-source-offset";
/// On a dead-letter copy the topic refused as too large: `too_large`; the
/// copy has no value, and the source coordinates name the original.
pub const DLQ_VALUE_OMITTED_HEADER: &str = "inboxflow-dlq-value-omitted";

/// Who sent the webhook.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Source {
    Kapso,
    Meta,
}

impl Source {
    pub const ALL: &[Source] = &[Source::Kapso, Source::Meta];

    pub fn as_str(self) -> &'static str {
        match self {
            Source::Kapso => "kapso",
            Source::Meta => "meta",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "kapso" => Some(Source::Kapso),
            "meta" => Some(Source::Meta),
            _ => None,
        }
    }
}

/// The event header value used for Meta bodies, which name no event type.
pub const META_EVENT: &str = "whatsapp_business_account";

/// Current time in milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
