//! The reference design's "before": every message on its own, each statement
//! awaited before the next, on the same schema and the processor's own
//! prepared statements (so only the shape of the work differs):
//!
//! 1. find the contact; 2. create it if missing;
//! 3. find the conversation; 4. create it if missing;
//! 5. check the message id in the index (duplicate?);
//! 6. insert the message, then its index row;
//! 7. update the conversation (counters, last message, watermark).
//!
//! Eight statements for a message from a new contact, six once contacts and
//! conversations exist. Every statement is a sequential round trip.

use scylla::client::session::Session;
use scylla::deserialize::row::DeserializeRow;
use scylla::serialize::row::SerializeRow;
use scylla::serialize::value::SerializeValue;
use scylla::statement::prepared::PreparedStatement;
use scylla::value::{CqlTimestamp, MaybeUnset};
use shared::ids;
use shared::webhook::{Direction, Event, MessageEvent};
use uuid::Uuid;

use processor::decode::DecodedRecord;
use processor::pipeline::message_index::{IndexEntry, IndexRow, LocationRow};
use processor::pipeline::plan::{month_bucket, preview};
use processor::store::rows::{
    ContactRow, ConversationRow, ConversationUpdateRow, CreateConversationRow, FoundContact,
    MessageRow, Watermark, maybe,
};
use processor::store::{Store, WorkspaceKey};

/// What the naive run did; `statements` are also its sequential round trips.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct NaiveStats {
    pub statements: u64,
    pub inserted: u64,
    pub duplicates: u64,
    pub contacts_created: u64,
    pub conversations_created: u64,
}

struct Exec<'a> {
    store: &'a Store,
    session: &'a Session,
    workspace_id: &'a str,
    stats: NaiveStats,
}

impl Exec<'_> {
    async fn run(
        &mut self,
        statement: &PreparedStatement,
        values: impl SerializeRow,
    ) -> anyhow::Result<scylla::response::query_result::QueryResult> {
        self.stats.statements += 1;
        Ok(self.session.execute_unpaged(statement, values).await?)
    }

    /// One single-key lookup (an `IN` of one key is one partition), keeping
    /// the row of this workspace (a message id may be stored by several).
    async fn find<K, R, Q>(
        &mut self,
        statement: &PreparedStatement,
        key: K,
    ) -> anyhow::Result<Option<R>>
    where
        K: SerializeValue,
        R: for<'f, 'm> DeserializeRow<'f, 'm> + WorkspaceKey<Q>,
    {
        let found = self.run(statement, (vec![key],)).await?;
        let rows = found.into_rows_result()?;
        let mut rows = rows.rows::<R>()?;
        Ok(rows
            .find(|r| {
                r.as_ref()
                    .is_ok_and(|r| r.workspace_id() == self.workspace_id)
            })
            .transpose()?)
    }
}

/// Stores the inbound messages of `records`, one by one.
pub async fn run(
    store: &Store,
    workspace_id: &str,
    records: &[&DecodedRecord],
) -> anyhow::Result<NaiveStats> {
    let mut db = Exec {
        store,
        session: store.session(),
        workspace_id,
        stats: NaiveStats::default(),
    };
    for record in records {
        for event in &record.events {
            let Event::Message(m) = event else { continue };
            let Some(phone) = m.contact_phone.as_deref() else {
                continue;
            };
            let source = Watermark {
                partition: record.partition,
                offset: record.offset,
            };
            store_message(&mut db, m, phone, source).await?;
        }
    }
    Ok(db.stats)
}

/// Steps 1 to 7 for one message.
async fn store_message(
    db: &mut Exec<'_>,
    m: &MessageEvent,
    phone: &str,
    source: Watermark,
) -> anyhow::Result<()> {
    let s = db.store.statements();
    let ws = db.workspace_id;
    let at = CqlTimestamp(m.timestamp * 1000);
    // 1-2: the contact.
    let contact_id = ids::contact_id(ws, phone);
    let found = db.find::<_, FoundContact, Uuid>(&s.contacts_by_identities, contact_id);
    if found.await?.is_none() {
        let row = ContactRow {
            identity_id: contact_id,
            workspace_id: ws.to_owned(),
            phone: phone.to_owned(),
            contact_id,
            name: m.contact_name.clone(),
            created_at: at,
            user_id: None,
        };
        db.run(&s.insert_contact, row).await?;
        db.stats.contacts_created += 1;
    }
    // 3-4: the conversation.
    let conversation_id = ids::conversation_id(ws, &m.phone_number_id, contact_id);
    let (unread, count) = conversation(db, m, phone, conversation_id, at).await?;
    // 5: duplicate?
    let index = db.find::<_, IndexRow, String>(&s.index_by_message_ids, &m.message_id);
    let index = index.await?;
    if index.is_some_and(|i| IndexEntry::from(i).stored_by_other(source)) {
        db.stats.duplicates += 1;
        return Ok(());
    }
    // 6: the message, then its index row.
    insert(db, m, conversation_id, source).await?;
    // 7: the conversation's counters and last message.
    let inbound = m.direction == Direction::Inbound;
    let row = ConversationUpdateRow {
        contact_name: maybe(m.contact_name.clone()),
        first_message_at: MaybeUnset::Unset,
        last_message_at: MaybeUnset::Set(at),
        last_message_id: MaybeUnset::Set(m.message_id.clone()),
        last_message_preview: MaybeUnset::Set(preview(m)),
        last_message_direction: MaybeUnset::Set(m.direction.as_str()),
        unread_count: unread + i32::from(inbound),
        message_count: count + 1,
        applied_partition: source.partition,
        applied_offset: source.offset,
        kapso_conversation_id: MaybeUnset::Unset,
        state: MaybeUnset::Unset,
        state_at: MaybeUnset::Unset,
        workspace_id: ws.to_owned(),
        conversation_id,
    };
    db.run(&s.update_conversation, row).await?;
    db.stats.inserted += 1;
    Ok(())
}

/// Steps 3-4: finds the conversation, creating it if missing; returns its
/// unread and message counts.
async fn conversation(
    db: &mut Exec<'_>,
    m: &MessageEvent,
    phone: &str,
    conversation_id: Uuid,
    at: CqlTimestamp,
) -> anyhow::Result<(i32, i32)> {
    let s = db.store.statements();
    let found = db.find::<_, ConversationRow, Uuid>(&s.conversations_by_ids, conversation_id);
    if let Some(r) = found.await? {
        return Ok((r.unread_count.unwrap_or(0), r.message_count.unwrap_or(0)));
    }
    let row = CreateConversationRow {
        phone_number_id: &m.phone_number_id,
        contact_id: MaybeUnset::Set(ids::contact_id(db.workspace_id, phone)),
        contact_phone: MaybeUnset::Set(phone),
        contact_user_id: MaybeUnset::Unset,
        group_id: MaybeUnset::Unset,
        created_at: at,
        workspace_id: db.workspace_id,
        conversation_id,
    };
    db.run(&s.create_conversation, row).await?;
    db.stats.conversations_created += 1;
    Ok((0, 0))
}

/// Step 6: the message row, then its index row.
async fn insert(
    db: &mut Exec<'_>,
    m: &MessageEvent,
    conversation_id: Uuid,
    source: Watermark,
) -> anyhow::Result<()> {
    let s = db.store.statements();
    let ws = db.workspace_id;
    let bucket = month_bucket(m.timestamp);
    let sent_at = CqlTimestamp(m.timestamp * 1000);
    let row = MessageRow {
        workspace_id: ws.to_owned(),
        conversation_id,
        bucket,
        sent_at,
        message_id: m.message_id.clone(),
        direction: m.direction.as_str(),
        message_type: m.message_type.clone(),
        body: maybe(m.text.clone()),
        type_payload: maybe(m.type_payload.clone()),
        status: MaybeUnset::Unset,
        sender: MaybeUnset::Unset,
        origin: m.origin.as_str(),
        context: MaybeUnset::Unset,
        errors: MaybeUnset::Unset,
        edited_at: MaybeUnset::Unset,
        revoked_at: MaybeUnset::Unset,
    };
    db.run(&s.insert_message, row).await?;
    let row = LocationRow {
        conversation_id,
        bucket,
        sent_at,
        direction: m.direction.as_str(),
        source_partition: source.partition,
        source_offset: source.offset,
        workspace_id: ws.to_owned(),
        message_id: m.message_id.clone(),
    };
    db.run(&s.index_message_location, row).await?;
    Ok(())
}
