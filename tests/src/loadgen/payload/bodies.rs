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
        let conversation = format!(
            r#"{{"id":"conv_{pnid}_{phone}","phone_number":"+{phone}","status":"active","phone_number_id":"{pnid}","kapso":{{"contact_name":"Contact {phone}"}}}}"#
        );
        let item = |out: &mut String, id: &str, text: &str| {
            let message = if statuses {
                format!(
                    r#"{{"id":"{id}","timestamp":"{now}","type":"text","to":"{phone}","text":{{"body":"{text}"}},"kapso":{{"direction":"outbound","status":"{status}","processing_status":"completed","origin":"cloud_api","has_media":false,"statuses":[{{"id":"{id}","status":"sent","timestamp":"{}","recipient_id":"{phone}"}},{{"id":"{id}","status":"{status}","timestamp":"{now}","recipient_id":"{phone}"}}]}}}}"#,
                    now - 2
                )
            } else {
                format!(
                    r#"{{"id":"{id}","timestamp":"{now}","type":"text","from":"{phone}","text":{{"body":"{text}"}},"kapso":{{"direction":"inbound","status":"received","processing_status":"pending","origin":"cloud_api","has_media":false,"phone_number":"+{phone}","phone_number_id":"{pnid}"}}}}"#
                )
            };
            let _ = write!(
                out,
                r#"{{"message":{message},"conversation":{conversation},"is_new_conversation":false,"phone_number_id":"{pnid}"}}"#
            );
        };
        let batch = shape == Shape::KapsoBatch;
        let capacity = self.cfg.payload_bytes + 1024;
        let body = self.padded(n, |texts| {
            let mut out = String::with_capacity(capacity);
            if batch {
                let _ = write!(out, r#"{{"type":"{event}","batch":true,"data":["#);
            }
            for (i, (id, text)) in ids.iter().zip(texts).enumerate() {
                if i > 0 {
                    out.push(',');
                }
                item(&mut out, id, text);
            }
            if batch {
                let _ = write!(
                    out,
                    r#"],"batch_info":{{"size":{n},"window_ms":5000,"first_sequence":{first_sequence},"last_sequence":{},"conversation_id":"conv_{pnid}_{phone}"}}}}"#,
                    first_sequence + n as u64 - 1
                );
            }
            out
        });
        let mut headers = vec![
            ("content-type", "application/json".to_owned()),
            (
                "x-webhook-signature",
                kapso_signature(&self.cfg.kapso_secret, &body),
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
        Webhook {
            shape,
            path: KAPSO_PATH,
            headers,
            body: Bytes::from(body),
            workspace: w,
            new_message_ids: if statuses { Vec::new() } else { ids },
            items: n,
            statuses: if statuses { n } else { 0 },
            duplicate: false,
        }
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
        const TAIL: &str = "}}]}]}";
        let body = if statuses {
            let mut out = head.clone() + r#""statuses":["#;
            for (i, (id, phone)) in ids.iter().zip(&phones).enumerate() {
                let status = ["sent", "delivered", "read"][i % 3];
                let _ = write!(
                    out,
                    r#"{}{{"id":"{id}","status":"{status}","timestamp":"{now}","recipient_id":"{phone}","pricing":{{"billable":true,"pricing_model":"PMP","category":"utility"}}}}"#,
                    if i > 0 { "," } else { "" }
                );
            }
            (out + "]" + TAIL).into_bytes()
        } else {
            let mut contacts = String::new();
            let mut listed: Vec<&str> = Vec::with_capacity(n);
            for p in &phones {
                if !listed.contains(&p.as_str()) {
                    let comma = if listed.is_empty() { "" } else { "," };
                    let _ = write!(
                        contacts,
                        r#"{comma}{{"profile":{{"name":"Contact {p}"}},"wa_id":"{p}"}}"#
                    );
                    listed.push(p);
                }
            }
            let capacity = self.cfg.payload_bytes + 1024;
            self.padded(n, |texts| {
                let mut out = String::with_capacity(capacity);
                let _ = write!(out, r#"{head}"contacts":[{contacts}],"messages":["#);
                for (i, ((id, p), text)) in ids.iter().zip(&phones).zip(texts).enumerate() {
                    let _ = write!(
                        out,
                        r#"{}{{"from":"{p}","id":"{id}","timestamp":"{now}","type":"text","text":{{"body":"{text}"}}}}"#,
                        if i > 0 { "," } else { "" }
                    );
                }
                out + "]" + TAIL
            })
        };
        Webhook {
            shape: Shape::Meta,
            path: META_PATH,
            headers: vec![
                ("content-type", "application/json".to_owned()),
                (
                    "x-hub-signature-256",
                    meta_signature(&self.cfg.meta_secret, &body),
                ),
            ],
            body: Bytes::from(body),
            workspace: w,
            new_message_ids: if statuses { Vec::new() } else { ids },
            items: n,
            statuses: if statuses { n } else { 0 },
            duplicate: false,
        }
    }
}

fn now_secs() -> i64 {
    shared::record::now_ms() / 1000
}
