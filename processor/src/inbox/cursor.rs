//! Page cursors: the position of the last row a page returned, as an opaque
//! `:`-separated string a client hands back unchanged.
//!
//! Guarantee: [`ListCursor::parse`] and [`HistoryCursor::parse`] accept
//! exactly what `encode` wrote and refuse anything else with a
//! [`CursorError`], so a mangled cursor never walks from a wrong place.

use uuid::Uuid;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a valid {0} cursor")]
pub struct CursorError(pub &'static str);

/// After this conversation of the recency list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListCursor {
    pub bucket: i32,
    pub slot_ms: i64,
    pub last_message_at_ms: i64,
    pub conversation_id: Uuid,
}

impl ListCursor {
    pub fn encode(&self) -> String {
        format!(
            "{}:{}:{}:{}",
            self.bucket, self.slot_ms, self.last_message_at_ms, self.conversation_id
        )
    }

    pub fn parse(text: &str) -> Result<Self, CursorError> {
        let bad = || CursorError("list");
        let mut parts = text.splitn(4, ':');
        let mut next = || parts.next().ok_or_else(bad);
        let bucket = next()?.parse().map_err(|_| bad())?;
        let slot_ms = next()?.parse().map_err(|_| bad())?;
        let last_message_at_ms = next()?.parse().map_err(|_| bad())?;
        let conversation_id = Uuid::parse_str(next()?).map_err(|_| bad())?;
        Ok(Self {
            bucket,
            slot_ms,
            last_message_at_ms,
            conversation_id,
        })
    }
}

/// After this message of a conversation's history, which ends at `oldest_bucket`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryCursor {
    pub bucket: i32,
    pub oldest_bucket: i32,
    pub sent_at_ms: i64,
    /// Last: a WhatsApp message id may itself contain `:`.
    pub message_id: String,
}

impl HistoryCursor {
    pub fn encode(&self) -> String {
        format!(
            "{}:{}:{}:{}",
            self.bucket, self.oldest_bucket, self.sent_at_ms, self.message_id
        )
    }

    pub fn parse(text: &str) -> Result<Self, CursorError> {
        let bad = || CursorError("history");
        let mut parts = text.splitn(4, ':');
        let mut next = || parts.next().ok_or_else(bad);
        let bucket = next()?.parse().map_err(|_| bad())?;
        let oldest_bucket = next()?.parse().map_err(|_| bad())?;
        let sent_at_ms = next()?.parse().map_err(|_| bad())?;
        let message_id = next()?.to_owned();
        if message_id.is_empty() || oldest_bucket > bucket {
            return Err(bad());
        }
        Ok(Self {
            bucket,
            oldest_bucket,
            sent_at_ms,
            message_id,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_refuse_garbage() {
        let list = ListCursor {
            bucket: 202_612,
            slot_ms: 1_764_547_200_000,
            last_message_at_ms: 1_764_547_201_234,
            conversation_id: Uuid::from_u128(42),
        };
        assert_eq!(ListCursor::parse(&list.encode()), Ok(list));
        let history = HistoryCursor {
            bucket: 202_612,
            oldest_bucket: 202_601,
            sent_at_ms: -5,
            message_id: "wamid.a:b".into(),
        };
        assert_eq!(HistoryCursor::parse(&history.encode()), Ok(history));
        for bad in ["", "1:2:3", "x:2:3:4", "1:2:3:not-a-uuid"] {
            assert!(ListCursor::parse(bad).is_err(), "{bad}");
        }
        for bad in ["", "1:2:3:", "202601:202612:0:m"] {
            assert!(HistoryCursor::parse(bad).is_err(), "{bad}");
        }
    }
}
