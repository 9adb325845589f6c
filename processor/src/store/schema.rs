//! `processor migrate`: applies schemas/cql/schema.cql idempotently.
//!
//! Guarantee: running it any number of times leaves the same schema (every
//! statement is `IF NOT EXISTS`, and a column is added only when its table
//! lacks it), and it returns `Ok` only once the cluster agrees on the schema
//! version, so statements prepared right after it succeed; when agreement is
//! not reached it fails with [`StoreError::SchemaAgreement`].

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
/// `ALTER TABLE … ADD` statements run only for columns the table lacks.
pub async fn migrate(
    session: &Session,
    keyspace: &str,
    replication: &str,
) -> Result<usize, StoreError> {
    let statements = schema_statements(keyspace, replication);
    let mut applied = 0;
    for statement in &statements {
        if let Some((table, column)) = added_column(statement) {
            session.await_schema_agreement().await.map_err(agreement)?;
            if has_column(session, keyspace, table, column).await? {
                continue;
            }
        }
        session
            .query_unpaged(statement.as_str(), &[])
            .await
            .map_err(|source| StoreError::Execute {
                what: "schema statement",
                source: Box::new(source),
            })?;
        applied += 1;
    }
    session.await_schema_agreement().await.map_err(agreement)?;
    Ok(applied)
}

fn agreement(source: scylla::errors::SchemaAgreementError) -> StoreError {
    StoreError::SchemaAgreement(Box::new(source))
}

/// `(table, column)` of an `ALTER TABLE ks.table ADD column type` statement.
fn added_column(statement: &str) -> Option<(&str, &str)> {
    let rest = statement.strip_prefix("ALTER TABLE ")?;
    let mut words = rest.split_whitespace();
    let table = words.next()?.rsplit('.').next()?;
    (words.next()? == "ADD").then_some(())?;
    Some((table, words.next()?))
}

async fn has_column(
    session: &Session,
    keyspace: &str,
    table: &str,
    column: &str,
) -> Result<bool, StoreError> {
    let read = |source| StoreError::Execute {
        what: "system_schema.columns read",
        source: Box::new(source),
    };
    let result = session
        .query_unpaged(
            "SELECT column_name FROM system_schema.columns \
             WHERE keyspace_name = ? AND table_name = ? AND column_name = ?",
            (keyspace, table, column),
        )
        .await
        .map_err(read)?;
    let rows = result.into_rows_result().map_err(|e| StoreError::Rows {
        what: "system_schema.columns read",
        message: e.to_string(),
    })?;
    Ok(rows.rows_num() > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_splits_into_keyspace_twelve_tables_and_column_upgrades() {
        let stmts = schema_statements(
            "ks_x",
            "{'class': 'SimpleStrategy', 'replication_factor': 1}",
        );
        let creates = stmts
            .iter()
            .filter(|s| s.starts_with("CREATE TABLE"))
            .count();
        assert_eq!(creates, 12, "{stmts:#?}");
        let adds: Vec<_> = stmts.iter().filter_map(|s| added_column(s)).collect();
        assert!(adds.contains(&("messages", "context")), "{adds:?}");
        assert!(
            adds.contains(&("conversations", "first_message_at")),
            "{adds:?}"
        );
        assert!(stmts[0].starts_with("CREATE KEYSPACE IF NOT EXISTS ks_x"));
        assert!(
            stmts
                .iter()
                .all(|s| !s.contains('{') || s.contains("'class'"))
        );
        assert!(stmts.iter().skip(1).all(|s| s.contains("ks_x.")));
    }
}
