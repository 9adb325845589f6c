//! [`RecordHeaders`]: the one writer ([`RecordHeaders::to_kafka`]) and the
//! one reader ([`RecordHeaders::from_kafka`]) of a record's headers.
//!
//! Guarantees:
//! - `from_kafka(to_kafka(h)) == h` for every `h` whose ids hold no comma
//!   or surrounding blank (ids never do);
//! - `from_kafka` checks the schema version first and the source second, so
//!   a record of another contract version is always refused as such;
//! - only the schema version and the source are required: every reader
//!   (processor, replay) treats the other headers as optional;
//! - the comma-split and comma-join of id lists live here and nowhere else.

use rdkafka::message::{Header, Headers, Message, OwnedHeaders};

use super::{
    BUSINESS_ACCOUNT_IDS_HEADER, CONTENT_TYPE_HEADER, DLQ_SOURCE_OFFSET_HEADER,
    DLQ_SOURCE_PARTITION_HEADER, DLQ_SOURCE_TOPIC_HEADER, DLQ_VALUE_OMITTED_HEADER,
    ENVELOPE_MAC_HEADER, EVENT_HEADER, HeaderError, IDEMPOTENCY_KEY_HEADER,
    PHONE_NUMBER_IDS_HEADER, REASON_HEADER, RECEIVED_AT_HEADER, REPLAYED_FROM_HEADER,
    SCHEMA_VERSION, SCHEMA_VERSION_HEADER, SIGNED_BY_HEADER, SOURCE_HEADER, Source, Trust,
    WORKSPACE_HEADER,
};

/// The value of [`DLQ_VALUE_OMITTED_HEADER`] (the only one).
const VALUE_OMITTED_TOO_LARGE: &str = "too_large";

/// Every header of a record of this contract version, typed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordHeaders {
    pub source: Source,
    /// Kapso event name, or [`super::META_EVENT`].
    pub event: Option<String>,
    pub idempotency_key: Option<String>,
    /// When the ingress received the body, ms since the Unix epoch.
    pub received_at_ms: Option<i64>,
    pub content_type: Option<String>,
    /// The business phone_number_ids the record is about (always written,
    /// empty when none).
    pub phone_number_ids: Vec<String>,
    /// The Meta business account ids the record is about (written only when
    /// not empty).
    pub business_account_ids: Vec<String>,
    /// Which secret verified the body; absent on old Meta records.
    pub signed_by: Option<Trust>,
    /// The workspace a routed record belongs to.
    pub workspace_id: Option<String>,
    /// Why an unrouted or dead-lettered record is where it is.
    pub reason: Option<String>,
    /// On replayed copies: `<topic>/<partition>/<offset>` of the copy replayed.
    pub replayed_from: Option<String>,
    /// On the processor's dead letters: where the poison record came from.
    pub dead_letter: Option<DeadLetterOrigin>,
    /// The envelope MAC (see [`super::EnvelopeKey`]); written last.
    pub envelope_mac: Option<String>,
}

/// Where a dead-lettered record came from, and whether its value was dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetterOrigin {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    /// The topic refused the copy as too large, so it carries no value.
    pub value_omitted: bool,
}

impl RecordHeaders {
    /// Headers naming only the source; every optional header absent.
    pub fn new(source: Source) -> Self {
        Self {
            source,
            event: None,
            idempotency_key: None,
            received_at_ms: None,
            content_type: None,
            phone_number_ids: Vec::new(),
            business_account_ids: Vec::new(),
            signed_by: None,
            workspace_id: None,
            reason: None,
            replayed_from: None,
            dead_letter: None,
            envelope_mac: None,
        }
    }

    /// The Kafka headers, in the order the ingress has always written them.
    pub fn to_kafka(&self) -> OwnedHeaders {
        let mut out = Writer(OwnedHeaders::new_with_capacity(12));
        out.put(SOURCE_HEADER, self.source.as_str());
        out.opt(EVENT_HEADER, self.event.as_deref());
        out.opt(IDEMPOTENCY_KEY_HEADER, self.idempotency_key.as_deref());
        let received_at = self.received_at_ms.map(|ms| ms.to_string());
        out.opt(RECEIVED_AT_HEADER, received_at.as_deref());
        out.opt(CONTENT_TYPE_HEADER, self.content_type.as_deref());
        out.put(SCHEMA_VERSION_HEADER, SCHEMA_VERSION);
        out.put(PHONE_NUMBER_IDS_HEADER, &join_ids(&self.phone_number_ids));
        let signed_by = self.signed_by.as_ref().map(Trust::header_value);
        out.opt(SIGNED_BY_HEADER, signed_by.as_deref());
        if !self.business_account_ids.is_empty() {
            out.put(
                BUSINESS_ACCOUNT_IDS_HEADER,
                &join_ids(&self.business_account_ids),
            );
        }
        out.opt(WORKSPACE_HEADER, self.workspace_id.as_deref());
        out.opt(REASON_HEADER, self.reason.as_deref());
        out.opt(REPLAYED_FROM_HEADER, self.replayed_from.as_deref());
        if let Some(origin) = &self.dead_letter {
            origin.write(&mut out);
        }
        out.opt(ENVELOPE_MAC_HEADER, self.envelope_mac.as_deref());
        out.0
    }

    /// Reads the headers of a record; see the module doc for what is required.
    pub fn from_kafka(headers: &impl Headers) -> Result<Self, HeaderError> {
        match text(headers, SCHEMA_VERSION_HEADER)? {
            Some(SCHEMA_VERSION) => {}
            Some(other) => return Err(HeaderError::UnsupportedSchemaVersion(other.to_owned())),
            None => return Err(HeaderError::Missing(SCHEMA_VERSION_HEADER)),
        }
        let source = text(headers, SOURCE_HEADER)?.ok_or(HeaderError::Missing(SOURCE_HEADER))?;
        let source =
            Source::parse(source).ok_or_else(|| HeaderError::UnknownSource(source.to_owned()))?;
        let owned = |name| text(headers, name).map(|v| v.map(str::to_owned));
        Ok(Self {
            source,
            event: owned(EVENT_HEADER)?,
            idempotency_key: owned(IDEMPOTENCY_KEY_HEADER)?,
            received_at_ms: received_at_ms(headers)?,
            content_type: owned(CONTENT_TYPE_HEADER)?,
            phone_number_ids: ids(headers, PHONE_NUMBER_IDS_HEADER)?,
            business_account_ids: ids(headers, BUSINESS_ACCOUNT_IDS_HEADER)?,
            signed_by: signed_by(headers)?,
            workspace_id: owned(WORKSPACE_HEADER)?,
            reason: owned(REASON_HEADER)?,
            replayed_from: owned(REPLAYED_FROM_HEADER)?,
            dead_letter: DeadLetterOrigin::read(headers)?,
            envelope_mac: owned(ENVELOPE_MAC_HEADER)?,
        })
    }

    /// [`RecordHeaders::from_kafka`] of a message; one without headers lacks
    /// the schema version.
    pub fn from_message(message: &impl Message) -> Result<Self, HeaderError> {
        match message.headers() {
            Some(headers) => Self::from_kafka(headers),
            None => Err(HeaderError::Missing(SCHEMA_VERSION_HEADER)),
        }
    }
}

impl DeadLetterOrigin {
    /// `headers` (a verbatim copy of the poison record's) plus the reason
    /// and this origin: the headers of a dead-letter copy.
    pub fn append_to(&self, headers: OwnedHeaders, reason: &str) -> OwnedHeaders {
        let mut out = Writer(headers);
        out.put(REASON_HEADER, reason);
        self.write(&mut out);
        out.0
    }

    fn write(&self, out: &mut Writer) {
        out.put(DLQ_SOURCE_TOPIC_HEADER, &self.topic);
        out.put(DLQ_SOURCE_PARTITION_HEADER, &self.partition.to_string());
        out.put(DLQ_SOURCE_OFFSET_HEADER, &self.offset.to_string());
        if self.value_omitted {
            out.put(DLQ_VALUE_OMITTED_HEADER, VALUE_OMITTED_TOO_LARGE);
        }
    }

    /// Present when the source topic header is; then partition and offset
    /// are required.
    fn read(headers: &impl Headers) -> Result<Option<Self>, HeaderError> {
        let Some(topic) = text(headers, DLQ_SOURCE_TOPIC_HEADER)? else {
            return Ok(None);
        };
        let value_omitted = match text(headers, DLQ_VALUE_OMITTED_HEADER)? {
            None => false,
            Some(VALUE_OMITTED_TOO_LARGE) => true,
            Some(other) => return Err(malformed(DLQ_VALUE_OMITTED_HEADER, other)),
        };
        Ok(Some(Self {
            topic: topic.to_owned(),
            partition: required_number(headers, DLQ_SOURCE_PARTITION_HEADER)?,
            offset: required_number(headers, DLQ_SOURCE_OFFSET_HEADER)?,
            value_omitted,
        }))
    }
}

/// The received-at header alone (for readers that need nothing else).
pub fn received_at_ms(headers: &impl Headers) -> Result<Option<i64>, HeaderError> {
    number(headers, RECEIVED_AT_HEADER)
}

/// A verbatim copy of `headers`, valid or not (what a dead letter keeps).
pub fn copy_verbatim(headers: Option<&impl Headers>) -> OwnedHeaders {
    let mut out = OwnedHeaders::new();
    for h in headers.into_iter().flat_map(|hs| hs.iter()) {
        out = out.insert(Header {
            key: h.key,
            value: h.value,
        });
    }
    out
}

/// Builds headers with UTF-8 values.
struct Writer(OwnedHeaders);

impl Writer {
    fn put(&mut self, key: &str, value: &str) {
        let headers = std::mem::replace(&mut self.0, OwnedHeaders::new());
        self.0 = headers.insert(Header {
            key,
            value: Some(value),
        });
    }

    fn opt(&mut self, key: &str, value: Option<&str>) {
        if let Some(value) = value {
            self.put(key, value);
        }
    }
}

/// The first header named `name` as text; a null value counts as absent.
fn text<'h>(headers: &'h impl Headers, name: &'static str) -> Result<Option<&'h str>, HeaderError> {
    let Some(value) = headers.iter().find(|h| h.key == name).and_then(|h| h.value) else {
        return Ok(None);
    };
    std::str::from_utf8(value)
        .map(Some)
        .map_err(|_| HeaderError::NotUtf8(name))
}

fn number<T: std::str::FromStr>(
    headers: &impl Headers,
    name: &'static str,
) -> Result<Option<T>, HeaderError> {
    text(headers, name)?
        .map(|v| {
            v.parse().map_err(|_| HeaderError::BadNumber {
                header: name,
                value: v.to_owned(),
            })
        })
        .transpose()
}

fn required_number<T: std::str::FromStr>(
    headers: &impl Headers,
    name: &'static str,
) -> Result<T, HeaderError> {
    number(headers, name)?.ok_or(HeaderError::Missing(name))
}

fn ids(headers: &impl Headers, name: &'static str) -> Result<Vec<String>, HeaderError> {
    Ok(text(headers, name)?.map(split_ids).unwrap_or_default())
}

fn signed_by(headers: &impl Headers) -> Result<Option<Trust>, HeaderError> {
    text(headers, SIGNED_BY_HEADER)?
        .map(|v| Trust::from_header_value(v).ok_or_else(|| malformed(SIGNED_BY_HEADER, v)))
        .transpose()
}

fn malformed(header: &'static str, value: &str) -> HeaderError {
    HeaderError::Malformed {
        header,
        value: value.to_owned(),
    }
}

/// `a, b,,c` -> `[a, b, c]`: blanks trimmed, empty items dropped.
fn split_ids(value: &str) -> Vec<String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

fn join_ids(ids: &[String]) -> String {
    ids.join(",")
}
