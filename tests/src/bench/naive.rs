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
use scylla::serialize::row::SerializeRow;
use scylla::statement::prepared::PreparedStatement;
use scylla::value::{CqlTimestamp, MaybeUnset};
use shared::ids;
use shared::webhook::{Direction, Event};
use uuid::Uuid;

use processor::decode::DecodedRecord;
use processor::pipeline::plan::{month_bucket, preview};
use processor::store::Store;

/// What the naive run did; `statements` are also its sequential round trips.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct NaiveStats {
    pub statements: u64,
    pub inserted: u64,
    pub duplicates: u64,
    pub contacts_created: u64,
    pub conversations_created: u64,
}

type ConversationRow = (
    Uuid,
    Option<String>,
    Option<CqlTimestamp>,
    Option<CqlTimestamp>,
    Option<String>,
    Option<i32>,
    Option<i32>,
    Option<i32>,
    Option<i64>,
);
type IndexRow = (
    String,
    Option<Uuid>,
    Option<i32>,
    Option<CqlTimestamp>,
    Option<i32>,
    Option<i64>,
    Option<i32>,
    Option<String>,
    Option<CqlTimestamp>,
    Option<CqlTimestamp>,
);

struct Exec<'a> {
    session: &'a Session,
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
}

/// Stores the inbound messages of `records`, one by one.
pub async fn run(
    store: &Store,
    workspace_id: &str,
    records: &[&DecodedRecord],
) -> anyhow::Result<NaiveStats> {
    let s = store.statements();
    let mut db = Exec {
        session: store.session(),
        stats: NaiveStats::default(),
    };
    let ws = workspace_id;
    for record in records {
        for event in &record.events {
            let Event::Message(m) = event else { continue };
            let Some(phone) = m.contact_phone.as_deref() else {
                continue;
            };
            let at = CqlTimestamp(m.timestamp * 1000);
            let name = m.contact_name.clone();
            // 1-2: the contact.
            let found = db.run(&s.contact_by_phone, (ws, phone)).await?;
            let contact_id = ids::contact_id(ws, phone);
            if found.into_rows_result()?.rows_num() == 0 {
                let name_value = name.clone().map_or(MaybeUnset::Unset, MaybeUnset::Set);
                let no_user = MaybeUnset::<String>::Unset;
                let values = (ws, phone, contact_id, name_value, at, no_user);
                db.run(&s.insert_contact, values).await?;
                db.stats.contacts_created += 1;
            }
            // 3-4: the conversation.
            let conversation_id = ids::conversation_id(ws, &m.phone_number_id, contact_id);
            let found = db.run(&s.conversation_by_id, (ws, conversation_id)).await?;
            let row = found
                .into_rows_result()?
                .maybe_first_row::<ConversationRow>()?;
            let (unread, count) = match &row {
                Some(r) => (r.5.unwrap_or(0), r.6.unwrap_or(0)),
                None => {
                    let values = (
                        &m.phone_number_id,
                        contact_id,
                        phone,
                        MaybeUnset::<String>::Unset,
                        MaybeUnset::<String>::Unset,
                        at,
                        ws,
                        conversation_id,
                    );
                    db.run(&s.create_conversation, values).await?;
                    db.stats.conversations_created += 1;
                    (0, 0)
                }
            };
            // 5: duplicate?
            let found = db.run(&s.index_by_message_id, (ws, &m.message_id)).await?;
            let index = found.into_rows_result()?.maybe_first_row::<IndexRow>()?;
            let source = (record.partition, record.offset);
            if index.is_some_and(|i| i.1.is_some() && i.4.zip(i.5) != Some(source)) {
                db.stats.duplicates += 1;
                continue;
            }
            // 6: the message, then its index row.
            let bucket = month_bucket(m.timestamp);
            let text = m.text.clone().map_or(MaybeUnset::Unset, MaybeUnset::Set);
            let payload = m
                .type_payload
                .clone()
                .map_or(MaybeUnset::Unset, MaybeUnset::Set);
            let direction = m.direction.as_str();
            let values = (
                ws,
                conversation_id,
                bucket,
                at,
                &m.message_id,
                direction,
                &m.message_type,
                text,
                payload,
                MaybeUnset::<&str>::Unset,
                MaybeUnset::<&str>::Unset,
                m.origin.as_str(),
                MaybeUnset::<&str>::Unset,
                MaybeUnset::<&str>::Unset,
                MaybeUnset::<CqlTimestamp>::Unset,
                MaybeUnset::<CqlTimestamp>::Unset,
            );
            db.run(&s.insert_message, values).await?;
            let values = (
                conversation_id,
                bucket,
                at,
                direction,
                record.partition,
                record.offset,
                ws,
                &m.message_id,
            );
            db.run(&s.index_message_location, values).await?;
            // 7: the conversation's counters and last message.
            let inbound = m.direction == Direction::Inbound;
            let values = (
                name.map_or(MaybeUnset::Unset, MaybeUnset::Set),
                MaybeUnset::Set(at),
                MaybeUnset::Set(m.message_id.clone()),
                MaybeUnset::Set(preview(m)),
                MaybeUnset::Set(direction),
                unread + i32::from(inbound),
                count + 1,
                record.partition,
                record.offset,
                MaybeUnset::<String>::Unset,
                MaybeUnset::<String>::Unset,
                MaybeUnset::<CqlTimestamp>::Unset,
                ws,
                conversation_id,
            );
            db.run(&s.update_conversation, values).await?;
            db.stats.inserted += 1;
        }
    }
    Ok(db.stats)
}
