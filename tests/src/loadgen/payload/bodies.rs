//! The bodies and headers of each shape, written as JSON text directly:
//! every value is ASCII without quotes or backslashes, so nothing needs
//! escaping, and building them through `serde_json::Value` cost more CPU
//! than the server under test spends on them.

use std::fmt::Write as _;

use bytes::Bytes;
use shared::signing::{kapso_signature, meta_signature};

use super::{Generator, KAPSO_PATH, META_PATH, Shape, Webhook};

impl Generator {
    pub(super) fn kapso(&mut self, shape: Shape, w: usize, n: usize, statuses: bool) -> Webhook {
        let pnid = self.layout.phone_number_id(w);
        let phone = self
            .layout
            .sender_phone(self.rng.below(self.layout.senders));
        let now = now_secs();
        let status = if self.rng.below(2) == 0 {
            "delivered"
        } else {
            "read"
        };
        let event = if statuses {
            format!("whatsapp.message.{status}")
        } else {
            "whatsapp.message.received".to_owned()
        };
        let ids = self.ids(w, n, statuses);
        let first_sequence = self.seq.saturating_sub(n as u64 - 1);
        let item = KapsoItem {
            conversation: kapso_conversation(&pnid, &phone),
            pnid: &pnid,
            phone: &phone,
            now,
            status: statuses.then_some(status),
        };
        let batch = (shape == Shape::KapsoBatch).then_some(KapsoBatch {
            event: &event,
            n,
            first_sequence,
        });
        let body = self.kapso_body(&item, batch.as_ref(), &ids);
        let is_batch = batch.is_some();
        let headers = self.kapso_headers(&body, event, is_batch);
        fresh(shape, KAPSO_PATH, headers, body, w, ids, statuses)
    }

    /// `ids` as Kapso items, one after another, in a batch envelope when
    /// given, padded to about `payload_bytes`.
    fn kapso_body(
        &mut self,
        item: &KapsoItem,
        batch: Option<&KapsoBatch>,
        ids: &[String],
    ) -> Vec<u8> {
        let capacity = self.cfg.payload_bytes + 1024;
        self.padded(ids.len(), |texts| {
            let mut out = String::with_capacity(capacity);
            if let Some(batch) = batch {
                batch.open(&mut out);
            }
            for (i, (id, text)) in ids.iter().zip(texts).enumerate() {
                if i > 0 {
                    out.push(',');
                }
                item.write(&mut out, id, text);
            }
            if let Some(batch) = batch {
                batch.close(&mut out, item);
            }
            out
        })
    }

    /// Kapso's headers: the signature of `body`, the event, a random
    /// idempotency key, and the batch flag on batches.
    fn kapso_headers(
        &mut self,
        body: &[u8],
        event: String,
        batch: bool,
    ) -> Vec<(&'static str, String)> {
        let mut headers = vec![
            ("content-type", "application/json".to_owned()),
            (
                "x-webhook-signature",
                kapso_signature(&self.cfg.kapso_secret, body),
            ),
            ("x-webhook-event", event),
            (
                "x-idempotency-key",
                format!("{:016x}{:016x}", self.rng.next_u64(), self.rng.next_u64()),
            ),
            ("x-webhook-payload-version", "v2".to_owned()),
        ];
        if batch {
            headers.push(("x-webhook-batch", "true".to_owned()));
        }
        headers
    }

    pub(super) fn meta(&mut self, w: usize, n: usize, statuses: bool) -> Webhook {
        let pnid = self.layout.phone_number_id(w);
        let now = now_secs();
        let phones: Vec<String> = (0..n)
            .map(|_| {
                self.layout
                    .sender_phone(self.rng.below(self.layout.senders))
            })
            .collect();
        let ids = self.ids(w, n, statuses);
        let head = format!(
            r#"{{"object":"whatsapp_business_account","entry":[{{"id":"102290129340398","changes":[{{"field":"messages","value":{{"messaging_product":"whatsapp","metadata":{{"display_phone_number":"15550783881","phone_number_id":"{pnid}"}},"#
        );
        let body = if statuses {
            meta_statuses(&head, &ids, &phones, now)
        } else {
            self.meta_messages(&head, &ids, &phones, now)
        };
        let headers = vec![
            ("content-type", "application/json".to_owned()),
            (
                "x-hub-signature-256",
                meta_signature(&self.cfg.meta_secret, &body),
            ),
        ];
        fresh(Shape::Meta, META_PATH, headers, body, w, ids, statuses)
    }

    /// A Meta body with the contacts and one message per id (sent by the
    /// phone at the same place), padded to about `payload_bytes`.
    fn meta_messages(
        &mut self,
        head: &str,
        ids: &[String],
        phones: &[String],
        now: i64,
    ) -> Vec<u8> {
        let contacts = meta_contacts(phones);
        let capacity = self.cfg.payload_bytes + 1024;
        self.padded(ids.len(), |texts| {
            let mut out = String::with_capacity(capacity);
            let _ = write!(out, r#"{head}"contacts":[{contacts}],"messages":["#);
            for (i, ((id, p), text)) in ids.iter().zip(phones).zip(texts).enumerate() {
                let _ = write!(
                    out,
                    r#"{}{{"from":"{p}","id":"{id}","timestamp":"{now}","type":"text","text":{{"body":"{text}"}}}}"#,
                    if i > 0 { "," } else { "" }
                );
            }
            out + "]" + META_TAIL
        })
    }
}

/// What closes the Meta body that [`Generator::meta`]'s head opens.
const META_TAIL: &str = "}}]}]}";

/// A Meta body with one status per id (sent, delivered, read in turn), for
/// the phone at the same place.
fn meta_statuses(head: &str, ids: &[String], phones: &[String], now: i64) -> Vec<u8> {
    let mut out = head.to_owned() + r#""statuses":["#;
    for (i, (id, phone)) in ids.iter().zip(phones).enumerate() {
        let status = ["sent", "delivered", "read"][i % 3];
        let _ = write!(
            out,
            r#"{}{{"id":"{id}","status":"{status}","timestamp":"{now}","recipient_id":"{phone}","pricing":{{"billable":true,"pricing_model":"PMP","category":"utility"}}}}"#,
            if i > 0 { "," } else { "" }
        );
    }
    (out + "]" + META_TAIL).into_bytes()
}

/// The `contacts` of a Meta body: each phone once, in order of first use.
fn meta_contacts(phones: &[String]) -> String {
    let mut contacts = String::new();
    let mut listed: Vec<&str> = Vec::with_capacity(phones.len());
    for p in phones {
        if !listed.contains(&p.as_str()) {
            let comma = if listed.is_empty() { "" } else { "," };
            let _ = write!(
                contacts,
                r#"{comma}{{"profile":{{"name":"Contact {p}"}},"wa_id":"{p}"}}"#
            );
            listed.push(p);
        }
    }
    contacts
}

/// The Kapso conversation of `phone` with the business number `pnid`.
fn kapso_conversation(pnid: &str, phone: &str) -> String {
    format!(
        r#"{{"id":"conv_{pnid}_{phone}","phone_number":"+{phone}","status":"active","phone_number_id":"{pnid}","kapso":{{"contact_name":"Contact {phone}"}}}}"#
    )
}

/// What every item of one Kapso webhook shares: one conversation, one time,
/// and for status updates, the status.
struct KapsoItem<'a> {
    pnid: &'a str,
    phone: &'a str,
    now: i64,
    /// `Some(status)`: outbound messages with their statuses; `None`: inbound messages.
    status: Option<&'a str>,
    conversation: String,
}

impl KapsoItem<'_> {
    /// Appends the item of message `id` with body `text`.
    fn write(&self, out: &mut String, id: &str, text: &str) {
        let message = match self.status {
            Some(status) => self.outbound(id, text, status),
            None => self.inbound(id, text),
        };
        let Self {
            pnid, conversation, ..
        } = self;
        let _ = write!(
            out,
            r#"{{"message":{message},"conversation":{conversation},"is_new_conversation":false,"phone_number_id":"{pnid}"}}"#
        );
    }

    /// A message to the customer, sent and then `status`.
    fn outbound(&self, id: &str, text: &str, status: &str) -> String {
        let Self { phone, now, .. } = self;
        format!(
            r#"{{"id":"{id}","timestamp":"{now}","type":"text","to":"{phone}","text":{{"body":"{text}"}},"kapso":{{"direction":"outbound","status":"{status}","processing_status":"completed","origin":"cloud_api","has_media":false,"statuses":[{{"id":"{id}","status":"sent","timestamp":"{}","recipient_id":"{phone}"}},{{"id":"{id}","status":"{status}","timestamp":"{now}","recipient_id":"{phone}"}}]}}}}"#,
            now - 2
        )
    }

    /// A message from the customer.
    fn inbound(&self, id: &str, text: &str) -> String {
        let Self {
            pnid, phone, now, ..
        } = self;
        format!(
            r#"{{"id":"{id}","timestamp":"{now}","type":"text","from":"{phone}","text":{{"body":"{text}"}},"kapso":{{"direction":"inbound","status":"received","processing_status":"pending","origin":"cloud_api","has_media":false,"phone_number":"+{phone}","phone_number_id":"{pnid}"}}}}"#
        )
    }
}

/// The envelope of a Kapso batch of `n` items.
struct KapsoBatch<'a> {
    event: &'a str,
    n: usize,
    first_sequence: u64,
}

impl KapsoBatch<'_> {
    fn open(&self, out: &mut String) {
        let event = self.event;
        let _ = write!(out, r#"{{"type":"{event}","batch":true,"data":["#);
    }

    fn close(&self, out: &mut String, item: &KapsoItem) {
        let Self {
            n, first_sequence, ..
        } = *self;
        let KapsoItem { pnid, phone, .. } = item;
        let _ = write!(
            out,
            r#"],"batch_info":{{"size":{n},"window_ms":5000,"first_sequence":{first_sequence},"last_sequence":{},"conversation_id":"conv_{pnid}_{phone}"}}}}"#,
            first_sequence + n as u64 - 1
        );
    }
}

/// A webhook first sent now: it carries `ids`, as new messages or, with
/// `statuses`, as the statuses of outbound ones.
fn fresh(
    shape: Shape,
    path: &'static str,
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
    workspace: usize,
    ids: Vec<String>,
    statuses: bool,
) -> Webhook {
    let n = ids.len();
    Webhook {
        shape,
        path,
        headers,
        body: Bytes::from(body),
        workspace,
        new_message_ids: if statuses { Vec::new() } else { ids },
        items: n,
        statuses: if statuses { n } else { 0 },
        duplicate: false,
    }
}

fn now_secs() -> i64 {
    shared::record::now_ms() / 1000
}
