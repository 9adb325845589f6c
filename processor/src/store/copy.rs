//! `processor migrate --from-keyspace OLD`: carries a keyspace of the layout
//! before cross-workspace keys (lookup tables partitioned by
//! `(workspace_id, key)`) into the configured keyspace, freshly migrated.
//! `processor migrate` uses the same copy within one keyspace to carry a
//! table into the one that replaced it ([`carry_predecessors`]).
//!
//! Guarantees:
//! - the source keyspace (or table) is only read;
//! - every row of every table the two keyspaces share, or of the
//!   predecessor of a target table the source lacks ([`PREDECESSORS`]), is
//!   written to the target with the same values (null cells left unset,
//!   never written as tombstones), plus the columns the new key is made of:
//!   `identity_id` for `contacts` and `contact_users`, `shard` for
//!   `workspace_totals` ([`shared::ids`]);
//! - each row is written at one client timestamp, the latest write time of
//!   its cells in the source, so the write clocks keep ordering: a
//!   processor that goes on from the copied `partition_clocks` (same topic,
//!   same consumer group) writes later clocks, and wins as it would have;
//! - copying again writes the same rows at the same timestamps.

use std::collections::BTreeMap;

use futures::TryStreamExt;
use scylla::client::session::Session;
use serde_json::{Map, Value};
use shared::ids;

use super::{StoreError, query_text_rows};

/// Rows copied, by table.
pub type CopyReport = BTreeMap<String, u64>;

/// Writes in flight at once.
const CONCURRENCY: usize = 64;
/// Rows per page of the source's reads.
const PAGE: i32 = 1000;

/// Tables that replaced another, with the table they replaced (same
/// columns, a new key): `workspace_totals` is partitioned by shard where
/// `workspace_inbox` was partitioned by workspace.
pub const PREDECESSORS: [(&str, &str); 1] = [("workspace_totals", "workspace_inbox")];

/// Copies every table of `from` that `to` also has into `to`; a table `to`
/// has and `from` lacks is copied from its predecessor, if `from` has it.
pub async fn copy_keyspace(
    session: &Session,
    from: &str,
    to: &str,
) -> Result<CopyReport, StoreError> {
    let mut report = CopyReport::new();
    for table in tables(session, to).await? {
        let mut source = table.clone();
        let mut columns = columns(session, from, &table).await?;
        if let Some((_, predecessor)) = PREDECESSORS.iter().find(|(t, _)| *t == table)
            && columns.is_empty()
        {
            source = (*predecessor).to_owned();
            columns = self::columns(session, from, predecessor).await?;
        }
        if columns.is_empty() {
            continue;
        }
        let copied = copy_table(session, (from, to), (&source, &table), &columns).await?;
        report.insert(table, copied);
    }
    Ok(report)
}

/// `processor migrate`: copies the rows of each [`PREDECESSORS`] table the
/// keyspace still has into the table that replaced it. Copying again
/// changes nothing a processor wrote since: its writes carry later client
/// timestamps than the copied rows. Returns the rows carried, by target.
pub async fn carry_predecessors(
    session: &Session,
    keyspace: &str,
) -> Result<CopyReport, StoreError> {
    let mut report = CopyReport::new();
    for (table, predecessor) in PREDECESSORS {
        let columns = columns(session, keyspace, predecessor).await?;
        if columns.is_empty() {
            continue;
        }
        let tables = (predecessor, table);
        let copied = copy_table(session, (keyspace, keyspace), tables, &columns).await?;
        report.insert(table.to_owned(), copied);
    }
    Ok(report)
}

/// A column of a source table: its name and whether it has a write time
/// (key columns have none).
struct Column {
    name: String,
    timed: bool,
}

async fn copy_table(
    session: &Session,
    (from, to): (&str, &str),
    (source, table): (&str, &str),
    columns: &[Column],
) -> Result<u64, StoreError> {
    let read = select_json(from, source, columns);
    let mut statement = scylla::statement::Statement::new(read);
    statement.set_page_size(PAGE);
    let insert = format!("INSERT INTO {to}.{table} JSON ? DEFAULT UNSET USING TIMESTAMP ?");
    let mut insert = session
        .prepare(insert)
        .await
        .map_err(|source| StoreError::Prepare {
            statement: format!("INSERT INTO {to}.{table} JSON"),
            source: Box::new(source),
        })?;
    insert.set_is_idempotent(true);
    let pager = session
        .query_iter(statement, &[])
        .await
        .map_err(|e| copy_read_error(&e))?;
    let rows = pager
        .rows_stream::<(String,)>()
        .map_err(|e| copy_read_error(&e))?;
    let written = rows
        .map_err(|e| copy_read_error(&e))
        .map_ok(|(json,)| {
            let insert = &insert;
            async move {
                let (row, timestamp) = target_row(table, &json)?;
                session
                    .execute_unpaged(insert, (row, timestamp))
                    .await
                    .map_err(|e| failed("copy write", e))
            }
        })
        .try_buffer_unordered(CONCURRENCY)
        .try_fold(0u64, |n, _| async move { Ok(n + 1) })
        .await?;
    Ok(written)
}

/// `SELECT JSON` of every column and the write time of every timed one.
fn select_json(from: &str, table: &str, columns: &[Column]) -> String {
    let names = columns.iter().map(|c| c.name.clone());
    let times = columns
        .iter()
        .filter(|c| c.timed)
        .map(|c| format!("WRITETIME({0}) AS writetime_{0}", c.name));
    let selectors: Vec<String> = names.chain(times).collect();
    format!("SELECT JSON {} FROM {from}.{table}", selectors.join(", "))
}

/// The JSON row to insert (nulls and write times removed, the key columns
/// [`new_key`] derives added) and its timestamp: the latest write
/// time among its cells (1 for a row of keys alone).
fn target_row(table: &str, json: &str) -> Result<(String, i64), StoreError> {
    let bad = |message: String| StoreError::Rows {
        what: "copy read",
        message,
    };
    let Value::Object(source) = serde_json::from_str(json).map_err(|e| bad(e.to_string()))? else {
        return Err(bad(format!("a row of {table} is not a JSON object")));
    };
    let mut row = Map::new();
    let mut timestamp = 1i64;
    for (name, value) in source {
        match name.strip_prefix("writetime_") {
            Some(_) => timestamp = timestamp.max(value.as_i64().unwrap_or(1)),
            None if value.is_null() => {}
            None => {
                row.insert(name, value);
            }
        }
    }
    if let Some((column, value)) = new_key(table, &row) {
        row.insert(column.into(), value);
    }
    Ok((Value::Object(row).to_string(), timestamp))
}

/// The key column a row of `table` gains: `identity_id` for `contacts` and
/// `contact_users`, `shard` for `workspace_totals`.
fn new_key(table: &str, row: &Map<String, Value>) -> Option<(&'static str, Value)> {
    let text = |key: &str| row.get(key).and_then(Value::as_str);
    let workspace = text("workspace_id")?;
    let uuid = |id: uuid::Uuid| Value::String(id.to_string());
    match table {
        "contacts" => Some((
            "identity_id",
            uuid(ids::contact_id(workspace, text("phone")?)),
        )),
        "contact_users" => Some((
            "identity_id",
            uuid(ids::user_contact_id(workspace, text("user_id")?)),
        )),
        "workspace_totals" => Some(("shard", ids::workspace_shard(workspace).into())),
        _ => None,
    }
}

async fn tables(session: &Session, keyspace: &str) -> Result<Vec<String>, StoreError> {
    let rows: Vec<(String,)> = query_text_rows(
        session,
        "system_schema read",
        "SELECT table_name FROM system_schema.tables WHERE keyspace_name = ?",
        (keyspace,),
    )
    .await?;
    Ok(rows.into_iter().map(|(t,)| t).collect())
}

async fn columns(
    session: &Session,
    keyspace: &str,
    table: &str,
) -> Result<Vec<Column>, StoreError> {
    let rows: Vec<(String, String)> = query_text_rows(
        session,
        "system_schema read",
        "SELECT column_name, kind FROM system_schema.columns \
         WHERE keyspace_name = ? AND table_name = ?",
        (keyspace, table),
    )
    .await?;
    Ok(rows
        .into_iter()
        .map(|(name, kind)| Column {
            timed: kind == "regular" || kind == "static",
            name,
        })
        .collect())
}

fn failed(what: &'static str, source: scylla::errors::ExecutionError) -> StoreError {
    StoreError::Execute {
        what,
        source: Box::new(source),
    }
}

fn copy_read_error(e: &dyn std::fmt::Display) -> StoreError {
    StoreError::Rows {
        what: "copy read",
        message: e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_row_keeps_its_values_drops_nulls_and_takes_its_latest_write_time() {
        let json = r#"{"workspace_id": "ws", "phone": "5511", "contact_id": "00000000-0000-0000-0000-000000000001", "name": null, "writetime_contact_id": 17, "writetime_name": null, "writetime_user_id": 42}"#;
        let (row, timestamp) = target_row("contacts", json).expect("a row");
        let row: Value = serde_json::from_str(&row).expect("JSON");
        assert_eq!(timestamp, 42);
        assert_eq!(row["phone"], "5511");
        assert!(row.get("name").is_none(), "nulls are left unset: {row}");
        assert!(row.get("writetime_user_id").is_none());
        assert_eq!(
            row["identity_id"],
            ids::contact_id("ws", "5511").to_string(),
            "the new key"
        );
        let (row, timestamp) = target_row("reactions", r#"{"workspace_id": "ws"}"#).expect("a row");
        assert_eq!((row.as_str(), timestamp), (r#"{"workspace_id":"ws"}"#, 1));
        let (row, _) = target_row("workspace_totals", r#"{"workspace_id": "ws1"}"#).expect("a row");
        assert_eq!(
            row, r#"{"shard":37,"workspace_id":"ws1"}"#,
            "the shard is added"
        );
    }

    #[test]
    fn the_read_selects_every_column_and_the_write_time_of_the_timed_ones() {
        let columns = [
            Column {
                name: "workspace_id".into(),
                timed: false,
            },
            Column {
                name: "unread_count".into(),
                timed: true,
            },
        ];
        assert_eq!(
            select_json("old", "conversations", &columns),
            "SELECT JSON workspace_id, unread_count, WRITETIME(unread_count) AS \
             writetime_unread_count FROM old.conversations"
        );
    }
}
