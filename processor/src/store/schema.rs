//! `processor migrate`: applies schemas/cql/schema.cql idempotently.
//!
//! It first refuses, with [`StoreError::OldLayout`] and before changing
//! anything, a keyspace whose lookup tables are keyed as in releases before
//! cross-workspace lookups ([`LOOKUP_TABLES`]): `IF NOT EXISTS` would keep
//! their old primary key, which the processor's lookups cannot query.
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
    statements_of(SCHEMA, keyspace, replication)
}

/// The statements of a schema text in the form of schemas/cql/schema.cql.
pub fn statements_of(schema: &str, keyspace: &str, replication: &str) -> Vec<String> {
    let without_comments: String = schema
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
    check_layout(session, keyspace).await?;
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

/// The tables the pipeline looks up across workspaces: partitioned by their
/// own key, with `workspace_id` clustering.
pub const LOOKUP_TABLES: [&str; 4] = [
    "contacts",
    "contact_users",
    "conversations",
    "message_index",
];

/// Fails with [`StoreError::OldLayout`] when a lookup table exists with
/// `workspace_id` in its partition key.
pub(super) async fn check_layout(session: &Session, keyspace: &str) -> Result<(), StoreError> {
    for table in LOOKUP_TABLES {
        if column_kind(session, keyspace, table, "workspace_id")
            .await?
            .as_deref()
            == Some("partition_key")
        {
            return Err(StoreError::OldLayout {
                keyspace: keyspace.to_owned(),
                table,
            });
        }
    }
    Ok(())
}

async fn has_column(
    session: &Session,
    keyspace: &str,
    table: &str,
    column: &str,
) -> Result<bool, StoreError> {
    Ok(column_kind(session, keyspace, table, column)
        .await?
        .is_some())
}

/// The kind (`partition_key`, `clustering`, `regular`, `static`) of a
/// column, if the table has it.
async fn column_kind(
    session: &Session,
    keyspace: &str,
    table: &str,
    column: &str,
) -> Result<Option<String>, StoreError> {
    let kinds: Vec<(String,)> = super::query_text_rows(
        session,
        "system_schema.columns read",
        "SELECT kind FROM system_schema.columns \
         WHERE keyspace_name = ? AND table_name = ? AND column_name = ?",
        (keyspace, table, column),
    )
    .await?;
    Ok(kinds.into_iter().next().map(|(kind,)| kind))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_splits_into_keyspace_and_twelve_tables_and_reads_column_upgrades() {
        let stmts = schema_statements(
            "ks_x",
            "{'class': 'SimpleStrategy', 'replication_factor': 1}",
        );
        let creates = stmts
            .iter()
            .filter(|s| s.starts_with("CREATE TABLE"))
            .count();
        assert_eq!(creates, 12, "{stmts:#?}");
        assert!(!stmts.iter().any(|s| s.starts_with("ALTER")), "{stmts:#?}");
        assert_eq!(
            added_column("ALTER TABLE ks.messages ADD context text"),
            Some(("messages", "context"))
        );
        assert_eq!(added_column("CREATE TABLE ks.t (a int)"), None);
        assert!(stmts[0].starts_with("CREATE KEYSPACE IF NOT EXISTS ks_x"));
        assert!(
            stmts
                .iter()
                .all(|s| !s.contains('{') || s.contains("'class'"))
        );
        assert!(stmts.iter().skip(1).all(|s| s.contains("ks_x.")));
    }
}
