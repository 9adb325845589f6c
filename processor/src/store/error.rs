//! Database failures, and which of them a retry can cure.
//!
//! Guarantee: [`StoreError::is_permanent`] is `true` only for failures the
//! same request can never get past (an invalid request, a syntax error, a
//! value that cannot be serialised); the consumer then isolates and
//! dead-letters the records that cause it. Timeouts, unavailable or
//! overloaded nodes, broken connections, a schema the database lacks (a
//! missing migration: "unconfigured table", "undefined column", rows that do
//! not decode) and everything not known to be permanent count as transient,
//! so the consumer waits and commits nothing rather than dead-lettering
//! records that would succeed once the operator acts.

use scylla::errors::{DbError, ExecutionError, PrepareError, RequestAttemptError};

/// A database failure.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot connect to the CQL database at {nodes}: {source}")]
    Connect {
        nodes: String,
        source: Box<scylla::errors::NewSessionError>,
    },
    #[error("preparing `{statement}`: {source}")]
    Prepare {
        statement: String,
        source: Box<PrepareError>,
    },
    #[error("executing {what}: {source}")]
    Execute {
        what: &'static str,
        source: Box<ExecutionError>,
    },
    #[error("reading rows of {what}: {message}")]
    Rows { what: &'static str, message: String },
    #[error("the cluster did not agree on the schema version: {0}")]
    SchemaAgreement(Box<scylla::errors::SchemaAgreementError>),
    /// `processor migrate` found a table keyed as before cross-workspace
    /// lookups (`workspace_id` in its partition key); CQL cannot change a
    /// primary key in place.
    #[error(
        "table {keyspace}.{table} has the key layout of an earlier release (workspace_id in \
         its partition key); this release looks rows up across workspaces by their own key: \
         with every processor stopped, set cql.keyspace to a new keyspace, run \
         `processor migrate --from-keyspace {keyspace}`, then start the processors on the \
         new keyspace with the same consumer group"
    )]
    OldLayout {
        keyspace: String,
        table: &'static str,
    },
    /// Tests only (feature `fault-injection`): a crash after a wave.
    #[cfg(feature = "fault-injection")]
    #[error("injected failure after wave {0}")]
    Injected(&'static str),
    /// Tests only (feature `fault-injection`): a crash inside a wave, after
    /// `landed` of its writes.
    #[cfg(feature = "fault-injection")]
    #[error("injected failure in wave {wave} after {landed} of its writes")]
    InjectedWithin { wave: &'static str, landed: usize },
    /// Tests only (feature `fault-injection`): a transient failure, as an
    /// unavailable database gives; the consumer waits and retries.
    #[cfg(feature = "fault-injection")]
    #[error("injected database outage")]
    InjectedOutage,
    /// Tests only (feature `fault-injection`): a permanent refusal of the
    /// records holding a message id.
    #[cfg(feature = "fault-injection")]
    #[error("injected permanent refusal of message {0}")]
    InjectedPermanent(&'static str),
}

impl StoreError {
    /// Whether retrying the same request can never succeed.
    pub fn is_permanent(&self) -> bool {
        match self {
            StoreError::Execute { source, .. } => execution_is_permanent(source),
            StoreError::Prepare { source, .. } => prepare_is_permanent(source),
            #[cfg(feature = "fault-injection")]
            StoreError::InjectedPermanent(_) => true,
            #[cfg(feature = "fault-injection")]
            StoreError::Injected(_)
            | StoreError::InjectedWithin { .. }
            | StoreError::InjectedOutage => false,
            StoreError::Rows { .. }
            | StoreError::Connect { .. }
            | StoreError::SchemaAgreement(_) => false,
            StoreError::OldLayout { .. } => true,
        }
    }
}

fn execution_is_permanent(e: &ExecutionError) -> bool {
    match e {
        ExecutionError::BadQuery(_) => true,
        ExecutionError::LastAttemptError(attempt) => attempt_is_permanent(attempt),
        ExecutionError::PrepareError(p) => prepare_is_permanent(p),
        _ => false,
    }
}

fn prepare_is_permanent(e: &PrepareError) -> bool {
    match e {
        PrepareError::AllAttemptsFailed { first_attempt } => attempt_is_permanent(first_attempt),
        _ => false,
    }
}

/// An "invalid request" that names a table or column the keyspace lacks:
/// the schema is behind the code, which `processor migrate` mends.
fn schema_missing(message: &str) -> bool {
    let message = message.to_ascii_lowercase();
    [
        "unconfigured table",
        "undefined column",
        "keyspace",
        "does not exist",
    ]
    .iter()
    .any(|m| message.contains(m))
}

fn attempt_is_permanent(e: &RequestAttemptError) -> bool {
    match e {
        RequestAttemptError::SerializationError(_)
        | RequestAttemptError::CqlRequestSerialization(_) => true,
        RequestAttemptError::DbError(DbError::Invalid, message) => !schema_missing(message),
        RequestAttemptError::DbError(db, _) => {
            matches!(db, DbError::SyntaxError | DbError::FunctionFailure { .. })
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db(error: DbError) -> StoreError {
        StoreError::Execute {
            what: "test",
            source: Box::new(ExecutionError::LastAttemptError(
                RequestAttemptError::DbError(error, "message".into()),
            )),
        }
    }

    #[test]
    fn invalid_requests_are_permanent_and_timeouts_are_not() {
        assert!(db(DbError::Invalid).is_permanent());
        let missing = StoreError::Execute {
            what: "test",
            source: Box::new(ExecutionError::LastAttemptError(
                RequestAttemptError::DbError(
                    DbError::Invalid,
                    "unconfigured table reactions".into(),
                ),
            )),
        };
        assert!(!missing.is_permanent(), "a missing migration is waited out");
        assert!(db(DbError::SyntaxError).is_permanent());
        assert!(!db(DbError::Overloaded).is_permanent());
        assert!(!db(DbError::ServerError).is_permanent());
        let timeout = StoreError::Execute {
            what: "test",
            source: Box::new(ExecutionError::RequestTimeout(
                std::time::Duration::from_secs(1),
            )),
        };
        assert!(!timeout.is_permanent());
    }

    #[cfg(feature = "fault-injection")]
    #[test]
    fn an_injected_crash_is_transient_and_an_injected_refusal_permanent() {
        assert!(!StoreError::Injected("x").is_permanent());
        assert!(!StoreError::InjectedOutage.is_permanent());
        assert!(StoreError::InjectedPermanent("m").is_permanent());
    }
}
