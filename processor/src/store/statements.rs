//! Every CQL statement the processor runs, prepared once per session.
//!
//! Each is an idempotent upsert or a read, marked idempotent so the driver's
//! retry policy may resend it. `UPDATE` is used where a write must touch only
//! some columns (so a re-run never clobbers columns another step owns).

use std::time::Duration;

use scylla::client::session::Session;
use scylla::statement::prepared::PreparedStatement;

use super::StoreError;

/// The prepared statements, named after what they do.
#[derive(Debug)]
pub struct Statements {
    pub contacts_by_phones: PreparedStatement,
    pub contact_by_phone: PreparedStatement,
    pub insert_contact: PreparedStatement,
    pub contact_users_by_ids: PreparedStatement,
    pub contact_user_by_id: PreparedStatement,
    pub insert_contact_user: PreparedStatement,
    pub conversations_by_ids: PreparedStatement,
    pub conversation_by_id: PreparedStatement,
    pub create_conversation: PreparedStatement,
    pub update_conversation: PreparedStatement,
    pub index_by_message_ids: PreparedStatement,
    pub index_by_message_id: PreparedStatement,
    pub insert_message: PreparedStatement,
    pub index_message_location: PreparedStatement,
    pub index_message_status: PreparedStatement,
    pub message_status: PreparedStatement,
    pub index_edit: PreparedStatement,
    pub index_revoke: PreparedStatement,
    pub message_edit: PreparedStatement,
    pub message_revoke: PreparedStatement,
    pub reaction_set: PreparedStatement,
    pub reaction_delete: PreparedStatement,
    pub insert_account_event: PreparedStatement,
}

const CONTACT_COLUMNS: &str = "phone, contact_id";
const CONTACT_USER_COLUMNS: &str = "user_id, contact_id";
/// The primary key of a `messages` row, as a WHERE clause.
const MESSAGE_KEY: &str = "workspace_id = ? AND conversation_id = ? AND bucket = ? \
     AND sent_at = ? AND message_id = ?";
const CONVERSATION_COLUMNS: &str = "conversation_id, contact_name, state_at, last_message_at, \
     last_message_id, unread_count, message_count, applied_partition, applied_offset";
const INDEX_COLUMNS: &str = "message_id, conversation_id, bucket, sent_at, source_partition, \
     source_offset, status_rank, edit_body, edited_at, revoked_at";

impl Statements {
    pub async fn prepare(
        session: &Session,
        ks: &str,
        timeout: Duration,
    ) -> Result<Self, StoreError> {
        let p = |cql: String| prepare(session, cql, timeout);
        Ok(Self {
            contacts_by_phones: p(format!(
                "SELECT {CONTACT_COLUMNS} FROM {ks}.contacts WHERE workspace_id = ? AND phone IN ?"
            ))
            .await?,
            contact_by_phone: p(format!(
                "SELECT {CONTACT_COLUMNS} FROM {ks}.contacts WHERE workspace_id = ? AND phone = ?"
            ))
            .await?,
            insert_contact: p(format!(
                "INSERT INTO {ks}.contacts (workspace_id, phone, contact_id, name, created_at, \
                 user_id) VALUES (?, ?, ?, ?, ?, ?)"
            ))
            .await?,
            contact_users_by_ids: p(format!(
                "SELECT {CONTACT_USER_COLUMNS} FROM {ks}.contact_users \
                 WHERE workspace_id = ? AND user_id IN ?"
            ))
            .await?,
            contact_user_by_id: p(format!(
                "SELECT {CONTACT_USER_COLUMNS} FROM {ks}.contact_users \
                 WHERE workspace_id = ? AND user_id = ?"
            ))
            .await?,
            insert_contact_user: p(format!(
                "INSERT INTO {ks}.contact_users (workspace_id, user_id, contact_id, phone, \
                 username, name, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)"
            ))
            .await?,
            conversations_by_ids: p(format!(
                "SELECT {CONVERSATION_COLUMNS} FROM {ks}.conversations \
                 WHERE workspace_id = ? AND conversation_id IN ?"
            ))
            .await?,
            conversation_by_id: p(format!(
                "SELECT {CONVERSATION_COLUMNS} FROM {ks}.conversations \
                 WHERE workspace_id = ? AND conversation_id = ?"
            ))
            .await?,
            create_conversation: p(format!(
                "UPDATE {ks}.conversations SET phone_number_id = ?, contact_id = ?, \
                 contact_phone = ?, contact_user_id = ?, group_id = ?, created_at = ? \
                 WHERE workspace_id = ? AND conversation_id = ?"
            ))
            .await?,
            update_conversation: p(format!(
                "UPDATE {ks}.conversations SET contact_name = ?, last_message_at = ?, \
                 last_message_id = ?, last_message_preview = ?, last_message_direction = ?, \
                 unread_count = ?, message_count = ?, applied_partition = ?, applied_offset = ?, \
                 kapso_conversation_id = ?, state = ?, state_at = ? \
                 WHERE workspace_id = ? AND conversation_id = ?"
            ))
            .await?,
            index_by_message_ids: p(format!(
                "SELECT {INDEX_COLUMNS} FROM {ks}.message_index \
                 WHERE workspace_id = ? AND message_id IN ?"
            ))
            .await?,
            index_by_message_id: p(format!(
                "SELECT {INDEX_COLUMNS} FROM {ks}.message_index \
                 WHERE workspace_id = ? AND message_id = ?"
            ))
            .await?,
            insert_message: p(format!(
                "INSERT INTO {ks}.messages (workspace_id, conversation_id, bucket, sent_at, \
                 message_id, direction, message_type, body, type_payload, status, sender, \
                 origin, context, errors, edited_at, revoked_at) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            ))
            .await?,
            index_message_location: p(format!(
                "UPDATE {ks}.message_index SET conversation_id = ?, bucket = ?, sent_at = ?, \
                 direction = ?, source_partition = ?, source_offset = ? \
                 WHERE workspace_id = ? AND message_id = ?"
            ))
            .await?,
            index_message_status: p(format!(
                "UPDATE {ks}.message_index SET status = ?, status_rank = ?, status_at = ?, \
                 errors = ? WHERE workspace_id = ? AND message_id = ?"
            ))
            .await?,
            message_status: p(format!(
                "UPDATE {ks}.messages SET status = ? WHERE {MESSAGE_KEY}"
            ))
            .await?,
            index_edit: p(format!(
                "UPDATE {ks}.message_index SET edit_body = ?, edited_at = ? \
                 WHERE workspace_id = ? AND message_id = ?"
            ))
            .await?,
            index_revoke: p(format!(
                "UPDATE {ks}.message_index SET revoked_at = ? \
                 WHERE workspace_id = ? AND message_id = ?"
            ))
            .await?,
            message_edit: p(format!(
                "UPDATE {ks}.messages SET body = ?, edited_at = ? WHERE {MESSAGE_KEY}"
            ))
            .await?,
            message_revoke: p(format!(
                "UPDATE {ks}.messages SET revoked_at = ? WHERE {MESSAGE_KEY}"
            ))
            .await?,
            reaction_set: p(format!(
                "UPDATE {ks}.reactions USING TIMESTAMP ? SET emoji = ?, reacted_at = ? \
                 WHERE workspace_id = ? AND message_id = ? AND reactor = ?"
            ))
            .await?,
            reaction_delete: p(format!(
                "DELETE FROM {ks}.reactions USING TIMESTAMP ? \
                 WHERE workspace_id = ? AND message_id = ? AND reactor = ?"
            ))
            .await?,
            insert_account_event: p(format!(
                "INSERT INTO {ks}.account_events (workspace_id, bucket, occurred_at, event_id, \
                 source, account_id, field, value) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
            ))
            .await?,
        })
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
