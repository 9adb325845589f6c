//! The record envelope MAC: an HMAC-SHA256, under a key only inboxflow's
//! own services hold, over a record's key, value and the headers the ingress
//! wrote. It lets the processor and replay tell records the ingress (or
//! replay) wrote from records someone else wrote to the topic.
//!
//! Guarantees:
//! - the MAC covers the record key, the value and every header
//!   [`RecordHeaders::to_kafka`] writes except the reason and the
//!   dead-letter origin (which a dead-letter copy adds later, so a copy
//!   still verifies) and the MAC itself;
//! - the input is unambiguous: every field is length-prefixed, so no two
//!   different records share an input;
//! - verification is constant-time (`hmac`'s `verify_slice`) and its error
//!   never contains the key, the expected MAC or the record's content.

use hmac::{Hmac, Mac};
use rdkafka::message::Headers;
use sha2::Sha256;

use super::RecordHeaders;
use crate::config::Secret;

type HmacSha256 = Hmac<Sha256>;

/// Shortest accepted envelope key, in bytes.
pub const MIN_KEY_BYTES: usize = 16;

/// Why a record's envelope does not verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    #[error("record has no envelope MAC (inboxflow-envelope-mac)")]
    Missing,
    #[error("record's envelope MAC is not hex of the right length")]
    Malformed,
    #[error("record's envelope MAC does not match: not written by inboxflow, or altered")]
    Mismatch,
}

impl EnvelopeError {
    pub const ALL: &[EnvelopeError] = &[Self::Missing, Self::Malformed, Self::Mismatch];

    /// A fixed name, safe in logs and labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Missing => "missing",
            Self::Malformed => "malformed",
            Self::Mismatch => "mismatch",
        }
    }
}

/// The key records are sealed and verified with.
#[derive(Clone)]
pub struct EnvelopeKey(Secret);

impl std::fmt::Debug for EnvelopeKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EnvelopeKey([redacted])")
    }
}

impl EnvelopeKey {
    pub fn new(secret: Secret) -> Self {
        Self(secret)
    }

    /// The hex MAC of a record with this key, value and headers.
    pub fn seal(&self, key: Option<&[u8]>, headers: &RecordHeaders, value: &[u8]) -> String {
        hex::encode(self.mac(key, headers, value).finalize().into_bytes())
    }

    /// `headers` with their MAC set, for a record with this key and value.
    pub fn sealed(
        &self,
        key: Option<&[u8]>,
        mut headers: RecordHeaders,
        value: &[u8],
    ) -> RecordHeaders {
        headers.envelope_mac = Some(self.seal(key, &headers, value));
        headers
    }

    /// Checks the MAC `headers` carry against the record's key and value.
    pub fn verify(
        &self,
        key: Option<&[u8]>,
        headers: &RecordHeaders,
        value: &[u8],
    ) -> Result<(), EnvelopeError> {
        let claimed = headers
            .envelope_mac
            .as_deref()
            .ok_or(EnvelopeError::Missing)?;
        let claimed = hex::decode(claimed).map_err(|_| EnvelopeError::Malformed)?;
        if claimed.len() != 32 {
            return Err(EnvelopeError::Malformed);
        }
        self.mac(key, headers, value)
            .verify_slice(&claimed)
            .map_err(|_| EnvelopeError::Mismatch)
    }

    fn mac(&self, key: Option<&[u8]>, headers: &RecordHeaders, value: &[u8]) -> HmacSha256 {
        #[allow(clippy::expect_used)]
        let mut mac = HmacSha256::new_from_slice(self.0.expose().as_bytes())
            .expect("HMAC accepts keys of any length");
        let mut field = |bytes: &[u8]| {
            mac.update(&(bytes.len() as u64).to_be_bytes());
            mac.update(bytes);
        };
        field(b"inboxflow-envelope-v1");
        match key {
            Some(key) => {
                field(b"key");
                field(key);
            }
            None => field(b"no-key"),
        }
        field(value);
        let covered = RecordHeaders {
            reason: None,
            dead_letter: None,
            envelope_mac: None,
            ..headers.clone()
        }
        .to_kafka();
        for h in covered.iter() {
            field(h.key.as_bytes());
            field(h.value.unwrap_or_default());
        }
        mac
    }
}
