//! Benchmark input: a micro-batch of decoded records, built from realistic
//! Meta bodies (up to ten text messages of about 100 characters each, the
//! size `schemas/README.md` assumes), exactly as the consumer would hand
//! them to the pipeline. Decoding happens here, outside any timing.

use processor::decode::DecodedRecord;
use shared::record::Source;

use crate::webhooks::{Inbound, Status, meta_body};

/// The business number every benchmark body is addressed to.
pub const PHONE_NUMBER_ID: &str = "106540352242922";
/// All messages share one month bucket (2023-11).
const TIMESTAMP: i64 = 1_700_000_000;
const MESSAGES_PER_RECORD: usize = 10;
const TEXT: &str = "Hello! Is my order on its way? I paid yesterday and the tracking page \
                    still says pending. Thanks";

/// The senders a batch of `size` messages comes from: about five messages
/// each, at least three (the reference case is 10 messages from 3 senders).
pub fn senders_for(size: usize) -> usize {
    (size / 5).max(3)
}

/// The phone of sender `n`.
pub fn sender_phone(n: usize) -> String {
    format!("55119{n:08}")
}

/// The message id of message `n` of batch `batch`.
pub fn message_id(batch: &str, n: usize) -> String {
    format!("wamid.HBgM{batch}.{n:06}")
}

/// A micro-batch of `size` inbound messages from `senders` phones (message
/// `n` comes from sender `n % senders`), as records of up to ten messages
/// with offsets from `first_offset`. `statuses_for` adds one record of
/// `delivered` statuses for those message ids at the end.
pub fn batch(
    workspace_id: &str,
    batch_id: &str,
    size: usize,
    senders: usize,
    first_offset: i64,
    statuses_for: &[String],
) -> anyhow::Result<Vec<DecodedRecord>> {
    let messages: Vec<Inbound> = (0..size)
        .map(|n| {
            let mut m = Inbound::new(
                message_id(batch_id, n),
                sender_phone(n % senders.max(1)),
                TIMESTAMP + n as i64,
            );
            m.text = TEXT.to_owned();
            m
        })
        .collect();
    let mut bodies: Vec<Vec<u8>> = messages
        .chunks(MESSAGES_PER_RECORD)
        .map(|chunk| meta_body(PHONE_NUMBER_ID, chunk, &[]))
        .collect();
    if !statuses_for.is_empty() {
        let statuses: Vec<Status> = statuses_for
            .iter()
            .enumerate()
            .map(|(n, id)| Status {
                id: id.clone(),
                status: "delivered",
                timestamp: TIMESTAMP + 3600 + n as i64,
                recipient: sender_phone(n % senders.max(1)),
            })
            .collect();
        bodies.push(meta_body(PHONE_NUMBER_ID, &[], &statuses));
    }
    bodies
        .iter()
        .zip(first_offset..)
        .map(|(body, offset)| decoded(workspace_id, body, offset))
        .collect()
}

/// One record of one message from sender `sender` (message 0 of batch
/// `batch_id`), at `offset`.
pub fn one_message(
    workspace_id: &str,
    batch_id: &str,
    sender: usize,
    offset: i64,
) -> anyhow::Result<DecodedRecord> {
    let mut m = Inbound::new(message_id(batch_id, 0), sender_phone(sender), TIMESTAMP);
    m.text = TEXT.to_owned();
    decoded(workspace_id, &meta_body(PHONE_NUMBER_ID, &[m], &[]), offset)
}

fn decoded(workspace_id: &str, body: &[u8], offset: i64) -> anyhow::Result<DecodedRecord> {
    Ok(DecodedRecord {
        workspace_id: workspace_id.to_owned(),
        partition: 0,
        offset,
        clock: processor::clocks::unstamped(offset),
        received_at_ms: None,
        events: shared::webhook::normalize(Source::Meta, None, body, &[])?,
    })
}

/// The records as the pipeline takes them.
pub fn refs(records: &[DecodedRecord]) -> Vec<&DecodedRecord> {
    records.iter().collect()
}
