//! `processor migrate`: applies schemas/cql/schema.cql idempotently.
//!
//! Guarantee: running it any number of times leaves the same schema (every
//! statement is `IF NOT EXISTS`), and it returns only once the cluster agrees
//! on the schema version, so statements prepared right after it succeed.

use scylla::client::session::Session;

use super::StoreError;

const SCHEMA: &str = include_str!("../../../schemas/cql/schema.cql");

/// The schema's statements with the keyspace and replication filled in.
pub fn schema_statements(keyspace: &str, replication: &str) -> Vec<String> {
    let without_comments: String = SCHEMA
        .lines()
        .map(|line| line.split("--").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n");
    without_comments
        .split(';')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.replace("{keyspace}", keyspace)
                .replace("{replication}", replication)
        })
        .collect()
}

/// Applies the schema. The keyspace name must already be validated by config.
pub async fn migrate(
    session: &Session,
    keyspace: &str,
    replication: &str,
) -> Result<usize, StoreError> {
    let statements = schema_statements(keyspace, replication);
    for statement in &statements {
        session
            .query_unpaged(statement.as_str(), &[])
            .await
            .map_err(|source| StoreError::Execute {
                what: "schema statement",
                source: Box::new(source),
            })?;
    }
    if let Err(err) = session.await_schema_agreement().await {
        tracing::warn!(cause = %err, "schema agreement not reached; continuing");
    }
    Ok(statements.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_splits_into_keyspace_and_four_tables_with_placeholders_filled() {
        let stmts = schema_statements(
            "ks_x",
            "{'class': 'SimpleStrategy', 'replication_factor': 1}",
        );
        assert_eq!(stmts.len(), 5, "{stmts:#?}");
        assert!(stmts[0].starts_with("CREATE KEYSPACE IF NOT EXISTS ks_x"));
        assert!(
            stmts
                .iter()
                .all(|s| !s.contains('{') || s.contains("'class'"))
        );
        assert!(stmts.iter().skip(1).all(|s| s.contains("ks_x.")));
    }
}
