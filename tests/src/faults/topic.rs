//! The webhook topic read back and compared with the ledger: every webhook
//! answered 200 must be in the topic, byte for byte. Used where the question
//! is Kafka's durability alone (no processor, no database).

use std::collections::{HashMap, HashSet};

use super::load::{Ledger, Load};
use crate::kafka::ReadRecord;

/// What the topic holds compared with what the ingress acknowledged, in webhooks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TopicFigures {
    /// Webhooks the sender tried to deliver.
    pub sent: u64,
    /// Webhooks answered 200.
    pub acknowledged: u64,
    /// Acknowledged webhooks whose exact body is in the topic.
    pub found: u64,
    /// Webhooks in the topic that were never answered 200 (a 503 or a
    /// timeout whose record was written anyway; the sender retried them).
    pub unacknowledged_in_topic: u64,
    /// Records beyond the first with the same body (retries of such webhooks).
    pub duplicate_records: u64,
}

impl TopicFigures {
    /// Compares the records of the webhook topic with `ledger`'s 200s for `load`.
    pub fn compare(load: &Load, ledger: &Ledger, records: &[ReadRecord]) -> Self {
        let acked: HashSet<String> = ledger
            .acknowledged()
            .into_iter()
            .map(|m| m.message_id)
            .collect();
        let mut copies: HashMap<&[u8], u64> = HashMap::new();
        for record in records {
            *copies.entry(record.value.as_slice()).or_default() += 1;
        }
        let mut figures = Self {
            sent: load.webhooks.len() as u64,
            duplicate_records: copies.values().map(|n| n - 1).sum(),
            ..Self::default()
        };
        for webhook in &load.webhooks {
            let is_acked = webhook
                .messages
                .first()
                .is_some_and(|m| acked.contains(&m.message_id));
            let in_topic = copies.contains_key(webhook.body.as_slice());
            match (is_acked, in_topic) {
                (true, true) => {
                    figures.acknowledged += 1;
                    figures.found += 1;
                }
                (true, false) => figures.acknowledged += 1,
                (false, true) => figures.unacknowledged_in_topic += 1,
                (false, false) => {}
            }
        }
        figures
    }

    /// The line the scenario prints.
    pub fn line(&self, scenario: &str) -> String {
        format!(
            "[faults] {scenario}: webhooks sent {}, acknowledged {}, found in the topic {}, \
             in the topic without a 200 {}, duplicate records {}",
            self.sent,
            self.acknowledged,
            self.found,
            self.unacknowledged_in_topic,
            self.duplicate_records
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::faults::load::Scale;

    fn record(value: &[u8]) -> ReadRecord {
        ReadRecord {
            topic: "t".into(),
            partition: 0,
            offset: 0,
            key: None,
            value: value.to_vec(),
            headers: HashMap::new(),
        }
    }

    #[test]
    fn a_topic_without_acknowledged_bodies_counts_them_missing() {
        let load = Load::generate("topic", Scale::spread_load(2, 4, 1));
        let ledger = Ledger::default();
        let records = [
            record(&load.webhooks[1].body),
            record(&load.webhooks[1].body),
        ];
        let figures = TopicFigures::compare(&load, &ledger, &records);
        assert_eq!(figures.sent, 4);
        assert_eq!((figures.acknowledged, figures.found), (0, 0));
        assert_eq!(figures.unacknowledged_in_topic, 1);
        assert_eq!(figures.duplicate_records, 1);
    }

    #[test]
    fn an_acknowledged_body_is_found_only_when_its_exact_bytes_are_in_the_topic() {
        let load = Load::generate("topic", Scale::spread_load(2, 3, 1));
        let ledger = Ledger::default();
        ledger.acknowledge(&load.webhooks[0]);
        ledger.acknowledge(&load.webhooks[2]);
        let mut changed = load.webhooks[2].body.clone();
        changed.push(b' ');
        let records = [record(&load.webhooks[0].body), record(&changed)];
        let figures = TopicFigures::compare(&load, &ledger, &records);
        assert_eq!(
            (figures.sent, figures.acknowledged, figures.found),
            (3, 2, 1)
        );
        assert_eq!(figures.unacknowledged_in_topic, 0);
    }
}
