//! Every CQL statement the processor runs, prepared once per session.
//!
//! Each is an idempotent upsert or a read, marked idempotent so the driver's
//! retry policy may resend it (the two `IF NOT EXISTS` inserts of
//! [`crate::clocks`] are idempotent too: a resend finds the row and changes
//! nothing). Writes carry client timestamps ([`super::Store::write`]). `UPDATE` is used where a write must touch only
//! some columns (so a re-run never clobbers columns another step owns).

use std::time::Duration;

use scylla::client::session::Session;
use scylla::statement::prepared::PreparedStatement;

use super::StoreError;

/// Declares [`Statements`] and its `prepare` from one list of
/// `name = text;` entries, so a statement is named and written once. `$q`
/// names the [`Cql`] builder the texts use.
macro_rules! statements {
    ($q:ident; $( $(#[$doc:meta])* $name:ident = $cql:expr; )*) => {
        /// The prepared statements, named after what they do.
        #[derive(Debug)]
        pub struct Statements {
            $( $(#[$doc])* pub $name: PreparedStatement, )*
        }

        impl Statements {
            /// Prepares every statement against keyspace `ks`, in order; the
            /// first failure is returned.
            pub async fn prepare(
                session: &Session,
                ks: &str,
                timeout: Duration,
            ) -> Result<Self, StoreError> {
                let $q = Cql(ks);
                Ok(Self {
                    $( $name: prepare(session, $cql, timeout).await?, )*
                })
            }
        }
    };
}

const CONTACT_COLUMNS: &str = "identity_id, phone, contact_id";
const CONTACT_USER_COLUMNS: &str = "identity_id, user_id, contact_id";
const CONVERSATION_COLUMNS: &str = "conversation_id, phone_number_id, contact_name, state_at, \
     first_message_at, last_message_at, \
     last_message_id, unread_count, message_count, applied_partition, applied_offset";
const INDEX_COLUMNS: &str = "message_id, conversation_id, bucket, sent_at, source_partition, \
     source_offset, status_rank, edit_body, edited_at, revoked_at";
/// The primary key of a `messages` row, as a WHERE clause.
const MESSAGE_KEY: &str = "workspace_id = ? AND conversation_id = ? AND bucket = ? \
     AND sent_at = ? AND message_id = ?";
/// The primary key of a `message_index` row.
const INDEX_KEY: &str = "workspace_id = ? AND message_id = ?";
/// The primary key of a `conversations` row.
const CONVERSATION_KEY: &str = "workspace_id = ? AND conversation_id = ?";
/// The primary key of a `conversation_activity` row.
const ACTIVITY_KEY: &str = "workspace_id = ? AND bucket = ? AND slot = ? AND conversation_id = ?";
/// The primary key of a `partition_clocks` row.
const CLOCK_KEY: &str = "topic = ? AND partition = ?";
/// The primary key of a `reactions` row.
const REACTION_KEY: &str = "workspace_id = ? AND message_id = ? AND reactor = ?";

statements! { q;
    contacts_by_identities = q.select_across(CONTACT_COLUMNS, "contacts", "identity_id");
    insert_contact = q.insert("contacts", "identity_id, workspace_id, phone, contact_id, name, created_at, \
        user_id");
    contact_users_by_identities = q.select_across(CONTACT_USER_COLUMNS, "contact_users",
        "identity_id");
    insert_contact_user = q.insert("contact_users", "identity_id, workspace_id, user_id, contact_id, phone, \
        username, name, created_at");
    conversations_by_ids = q.select_across(CONVERSATION_COLUMNS, "conversations",
        "conversation_id");
    create_conversation = q.update("conversations", "phone_number_id = ?, contact_id = ?, \
        contact_phone = ?, contact_user_id = ?, group_id = ?, created_at = ?", CONVERSATION_KEY);
    update_conversation = q.update("conversations", "contact_name = ?, first_message_at = ?, \
        last_message_at = ?, \
        last_message_id = ?, last_message_preview = ?, last_message_direction = ?, \
        unread_count = ?, message_count = ?, applied_partition = ?, applied_offset = ?, \
        kapso_conversation_id = ?, state = ?, state_at = ?", CONVERSATION_KEY);
    index_by_message_ids = q.select_across(INDEX_COLUMNS, "message_index", "message_id");
    insert_message = q.insert("messages", "workspace_id, conversation_id, bucket, sent_at, \
        message_id, direction, message_type, body, type_payload, status, sender, origin, \
        context, errors, edited_at, revoked_at");
    index_message_location = q.update("message_index", "conversation_id = ?, bucket = ?, \
        sent_at = ?, direction = ?, source_partition = ?, source_offset = ?", INDEX_KEY);
    index_message_status = q.update("message_index", "status = ?, status_rank = ?, \
        status_at = ?, errors = ?", INDEX_KEY);
    message_status = q.update("messages", "status = ?", MESSAGE_KEY);
    index_edit = q.update("message_index", "edit_body = ?, edited_at = ?", INDEX_KEY);
    index_revoke = q.update("message_index", "revoked_at = ?", INDEX_KEY);
    message_edit = q.update("messages", "body = ?, edited_at = ?", MESSAGE_KEY);
    message_revoke = q.update("messages", "revoked_at = ?", MESSAGE_KEY);
    reaction_set = q.update("reactions USING TIMESTAMP ?", "emoji = ?, reacted_at = ?",
        REACTION_KEY);
    reaction_delete = q.delete("reactions USING TIMESTAMP ?", REACTION_KEY);
    workspace_totals_by_ids = q.select_one("workspace_id, inbound_total, applied_partition, \
        applied_offset", "workspace_totals", "shard = ? AND workspace_id IN ?");
    update_workspace_total = q.update("workspace_totals", "inbound_total = ?, \
        applied_partition = ?, applied_offset = ?", "shard = ? AND workspace_id = ?");
    activity_set = q.insert("conversation_activity", "workspace_id, bucket, slot, \
        conversation_id, last_message_at");
    activity_delete = q.delete("conversation_activity", ACTIVITY_KEY);
    insert_account_event = q.insert("account_events", "workspace_id, bucket, occurred_at, \
        event_id, source, account_id, field, value");
    layout_by_topic = q.select_one("partitions, epoch, WRITETIME(partitions) AS written_at",
        "topic_layouts", "topic = ?");
    insert_layout = format!("{} IF NOT EXISTS",
        q.insert("topic_layouts", "topic, partitions"));
    set_layout = q.update("topic_layouts", "partitions = ?, epoch = ?", "topic = ?");
    clock_by_partition = q.select_one("base_us, last_offset", "partition_clocks",
        CLOCK_KEY);
    clocks_by_topic = q.select_one("partition, base_us, last_offset, \
        WRITETIME(base_us) AS written_at", "partition_clocks",
        "topic = ?");
    insert_clock = format!("{} IF NOT EXISTS",
        q.insert("partition_clocks", "topic, partition, base_us"));
    clock_progress = q.update("partition_clocks", "last_offset = ?", CLOCK_KEY);
    set_clock = q.update("partition_clocks", "base_us = ?, last_offset = ?", CLOCK_KEY);
    delete_clock = q.delete("partition_clocks", CLOCK_KEY);
}

/// Statement texts of one keyspace, by shape.
struct Cql<'a>(&'a str);

impl Cql<'_> {
    /// `SELECT workspace_id, columns` of the rows, of any workspace, whose
    /// partition key `key` is in a list (the table clusters by workspace).
    fn select_across(&self, columns: &str, table: &str, key: &str) -> String {
        let ks = self.0;
        format!("SELECT workspace_id, {columns} FROM {ks}.{table} WHERE {key} IN ?")
    }

    /// `SELECT columns` of the rows matching `key`.
    fn select_one(&self, columns: &str, table: &str, key: &str) -> String {
        let ks = self.0;
        format!("SELECT {columns} FROM {ks}.{table} WHERE {key}")
    }

    /// `INSERT` of every column named, all bound.
    fn insert(&self, table: &str, columns: &str) -> String {
        let ks = self.0;
        let marks = vec!["?"; columns.split(',').count()].join(", ");
        format!("INSERT INTO {ks}.{table} ({columns}) VALUES ({marks})")
    }

    /// `UPDATE ... SET assignments` of one row by its primary key.
    fn update(&self, table: &str, assignments: &str, key: &str) -> String {
        let ks = self.0;
        format!("UPDATE {ks}.{table} SET {assignments} WHERE {key}")
    }

    /// `DELETE` of one row by its primary key.
    fn delete(&self, table: &str, key: &str) -> String {
        let ks = self.0;
        format!("DELETE FROM {ks}.{table} WHERE {key}")
    }
}

async fn prepare(
    session: &Session,
    cql: String,
    timeout: Duration,
) -> Result<PreparedStatement, StoreError> {
    let mut statement =
        session
            .prepare(cql.as_str())
            .await
            .map_err(|source| StoreError::Prepare {
                statement: cql.clone(),
                source: Box::new(source),
            })?;
    statement.set_is_idempotent(true);
    statement.set_request_timeout(Some(timeout));
    Ok(statement)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_bind_every_column_in_the_order_named() {
        let q = Cql("ks");
        assert_eq!(
            q.insert("t", "a, b, c"),
            "INSERT INTO ks.t (a, b, c) VALUES (?, ?, ?)"
        );
        assert_eq!(
            q.update("reactions USING TIMESTAMP ?", "emoji = ?", REACTION_KEY),
            "UPDATE ks.reactions USING TIMESTAMP ? SET emoji = ? \
             WHERE workspace_id = ? AND message_id = ? AND reactor = ?"
        );
        assert_eq!(
            q.select_across("a, b", "t", "k"),
            "SELECT workspace_id, a, b FROM ks.t WHERE k IN ?"
        );
        assert_eq!(
            q.delete("t", INDEX_KEY),
            "DELETE FROM ks.t WHERE workspace_id = ? AND message_id = ?"
        );
    }
}
