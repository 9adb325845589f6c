//! The pipeline's logical steps and the sequential waves that carry them.
//!
//! Steps are what the pipeline does, in the order the reference design did
//! it; a step's slot orders its writes within a record's write clock. Waves
//! are what the database sees: every request of a wave goes out at once,
//! for every workspace of the micro-batch, and a wave starts only once the
//! one before it has been answered. Three waves carry the eight steps:
//!
//! | wave | steps | sent |
//! |---|---|---|
//! | `lookups` | 1, 3 (each identity's own conversations), 5, inbox totals | always |
//! | `more_lookups` | 3 (conversations of contacts stored under another identity's id) | only when step 1 found such a contact |
//! | `writes` | 2, 4, 6, 7, 8 | when the batch writes anything |
//!
//! Step 7 (counters and watermarks) shares the write wave, so any subset of
//! that wave may have landed when a batch fails. A re-run of the same
//! records still ends in the same rows: a counter counts only records past
//! its watermark, so a landed update is not counted again, and a missing one
//! is computed again; a message whose row did not land is stored again (the
//! same record is never its own duplicate); a conversation row holding only
//! its update gets its identity columns again; and a conversation whose
//! stored last message is one of the batch's gets its recency-list entry
//! written again ([`super::inbox_rows::plan_moves`]). The one difference: the
//! recency list may keep the old entry of a moved conversation, which its
//! readers skip.
//!
//! A record the database refuses for good is dead-lettered
//! (`consumer::batch`) after the rest of its batch is stored again; if the
//! refusal came inside the write wave, the counters of that wave may already
//! count the refused record's messages.

/// The pipeline's steps, in order. Names are metric label values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Step {
    FindContacts,
    CreateContacts,
    FindConversations,
    CreateConversations,
    FindMessages,
    InsertMessages,
    UpdateConversations,
    ApplyChanges,
}

impl Step {
    pub const ALL: [Step; 8] = [
        Step::FindContacts,
        Step::CreateContacts,
        Step::FindConversations,
        Step::CreateConversations,
        Step::FindMessages,
        Step::InsertMessages,
        Step::UpdateConversations,
        Step::ApplyChanges,
    ];

    /// The step's slot in a record's write clock: a step's writes carry the
    /// plan's clock plus this, so a later step's write of the same cell in
    /// the same batch (a status after its message's insert) wins.
    pub fn slot(self) -> i64 {
        Step::ALL
            .iter()
            .position(|s| *s == self)
            .and_then(|i| i64::try_from(i).ok())
            .unwrap_or(0)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Step::FindContacts => "find_contacts",
            Step::CreateContacts => "create_contacts",
            Step::FindConversations => "find_conversations",
            Step::CreateConversations => "create_conversations",
            Step::FindMessages => "find_messages",
            Step::InsertMessages => "insert_messages",
            Step::UpdateConversations => "update_conversations",
            Step::ApplyChanges => "apply_changes",
        }
    }
}

/// The sequential waves of a micro-batch, in order. Names are metric label
/// values and fault-injection names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Wave {
    Lookups,
    MoreLookups,
    Writes,
}

impl Wave {
    pub const ALL: [Wave; 3] = [Wave::Lookups, Wave::MoreLookups, Wave::Writes];

    pub fn as_str(self) -> &'static str {
        match self {
            Wave::Lookups => "lookups",
            Wave::MoreLookups => "more_lookups",
            Wave::Writes => "writes",
        }
    }

    /// The wave named `name` ([`Wave::as_str`]).
    pub fn from_name(name: &str) -> Option<Wave> {
        Wave::ALL.into_iter().find(|w| w.as_str() == name)
    }

    /// The wave after this one.
    pub fn next(self) -> Option<Wave> {
        Wave::ALL.iter().skip_while(|w| **w != self).nth(1).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_follow_the_steps_and_waves_their_order() {
        let slots: Vec<i64> = Step::ALL.iter().map(|s| s.slot()).collect();
        assert_eq!(slots, (0..8).collect::<Vec<_>>());
        assert_eq!(Wave::Lookups.next(), Some(Wave::MoreLookups));
        assert_eq!(Wave::Writes.next(), None);
        for w in Wave::ALL {
            assert_eq!(Wave::from_name(w.as_str()), Some(w));
        }
    }
}
