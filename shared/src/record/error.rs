//! [`HeaderError`]: why a record's headers do not follow the contract.

/// Why [`RecordHeaders::from_kafka`](super::RecordHeaders::from_kafka)
/// refused a record's headers. Each variant names the header at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    #[error("missing {0} header")]
    Missing(&'static str),
    #[error("{0} header is not UTF-8")]
    NotUtf8(&'static str),
    #[error("unsupported {header} {0:?}", header = super::SCHEMA_VERSION_HEADER)]
    UnsupportedSchemaVersion(String),
    #[error("unknown {header} {0:?}", header = super::SOURCE_HEADER)]
    UnknownSource(String),
    #[error("{header} header is not a number: {value:?}")]
    BadNumber { header: &'static str, value: String },
    #[error("malformed {header} header: {value:?}")]
    Malformed { header: &'static str, value: String },
}

impl HeaderError {
    /// The name of the header at fault.
    pub fn header(&self) -> &'static str {
        match self {
            HeaderError::Missing(h) | HeaderError::NotUtf8(h) => h,
            HeaderError::UnsupportedSchemaVersion(_) => super::SCHEMA_VERSION_HEADER,
            HeaderError::UnknownSource(_) => super::SOURCE_HEADER,
            HeaderError::BadNumber { header, .. } | HeaderError::Malformed { header, .. } => header,
        }
    }
}
