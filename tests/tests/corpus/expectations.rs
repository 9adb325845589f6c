//! The expectation table: one row per corpus file, written by hand from the
//! "a correct inbox pipeline should" column of `SOURCES.md` and the lead's
//! decisions on its open choices (issue 11). Nothing here is computed from
//! the code under test.

use inboxflow_tests::corpus::Delivery::{self, Kapso, KapsoBatch, KapsoFragment, Meta};

use crate::effects::Body::Is;
use crate::effects::Contact::Phone;
use crate::effects::Effect::{self, *};
use crate::effects::{Expectation, message};

pub const SHEENA: &str = "16505551234";
pub const TEST_USER: &str = "972987654321";
const KAPSO_CONTACT: &str = "15551234567";
/// The wamid of Meta's status examples 16, 17 and 44.
pub const STATUS_WAMID: &str = "wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQUFERjg0NDEzNDdFODU3MUMxMAA=";
/// The wamid most of Meta's docs examples reuse for one inbound message.
pub const DOCS_WAMID: &str = "wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0RgA=";

/// A row of the table.
pub fn row(file: &'static str, delivery: Delivery, effects: Vec<Effect>) -> Expectation {
    Expectation {
        file,
        delivery,
        effects,
    }
}

/// One inbound message from Sheena Nelson, the only row in its workspace.
pub fn sheena(file: &'static str, m: crate::effects::Message) -> Expectation {
    row(
        file,
        Meta,
        vec![m.done(), MessageCount(1), UnreadTotal(1), ContactCount(1)],
    )
}

/// An inbound message from the customer with phone `from`.
pub fn inbound(
    id: &'static str,
    kind: &'static str,
    body: crate::effects::Body,
    from: &'static str,
) -> crate::effects::Message {
    message(id, "inbound", kind, body, Phone(from))
}

/// A status for a message this workspace never stored.
pub fn status(file: &'static str, id: &'static str, s: &'static str) -> Expectation {
    row(file, Meta, vec![Status { id, status: s }, MessageCount(0)])
}

/// An account-level Meta field, recorded as an account event and nothing else.
pub fn account(file: &'static str, field: &'static str) -> Expectation {
    row(file, Meta, vec![AccountEvent { field }, NothingStored])
}

/// Accepted, counted as skipped with `kind`, and nothing stored.
pub fn ignored(file: &'static str, delivery: Delivery, kind: &'static str) -> Expectation {
    row(file, delivery, vec![Ignored { kind }, NothingStored])
}

/// Every row, Meta first, in file order.
pub fn expectations() -> Vec<Expectation> {
    let mut table = crate::meta_messages::meta_messages();
    table.extend(crate::meta_events::meta_events());
    table.extend(crate::meta_fixtures::meta_fixtures());
    table.extend(kapso());
    table
}

/// Kapso v2 webhooks (payloads of Kapso's own docs).
fn kapso() -> Vec<Expectation> {
    let c = KAPSO_CONTACT;
    let received = "whatsapp.message.received";
    let kapso_conversation = |file, event, state| {
        row(
            file,
            Kapso(event),
            vec![
                ConversationState {
                    kapso_id: "conv_789",
                    state,
                },
                MessageCount(0),
            ],
        )
    };
    let project = |file, event| {
        row(
            file,
            Kapso(event),
            vec![AccountEvent { field: event }, NothingStored],
        )
    };
    vec![
        row(
            "kapso/01-message-received.json",
            Kapso(received),
            vec![
                inbound("wamid.123", "text", Is("Hello"), c)
                    .kapso("conv_123")
                    .named(Some("John Doe"))
                    .at(1_730_092_800)
                    .done(),
                MessageCount(1),
                UnreadTotal(1),
            ],
        ),
        row(
            "kapso/02-message-sent.json",
            Kapso("whatsapp.message.sent"),
            vec![
                message("wamid.456", "outbound", "text", Is("On my way"), Phone(c))
                    .kapso("conv_123")
                    .done(),
                Status {
                    id: "wamid.456",
                    status: "sent",
                },
                MessageCount(1),
                UnreadTotal(0),
            ],
        ),
        row(
            "kapso/03-message-delivered.json",
            Kapso("whatsapp.message.delivered"),
            vec![Status {
                id: "wamid.456",
                status: "delivered",
            }],
        ),
        row(
            "kapso/04-message-failed.json",
            Kapso("whatsapp.message.failed"),
            vec![
                Status {
                    id: "wamid.789",
                    status: "failed",
                },
                StatusErrors { id: "wamid.789" },
            ],
        ),
        kapso_conversation(
            "kapso/05-conversation-created.json",
            "whatsapp.conversation.created",
            "active",
        ),
        kapso_conversation(
            "kapso/06-conversation-ended.json",
            "whatsapp.conversation.ended",
            "ended",
        ),
        kapso_conversation(
            "kapso/07-conversation-inactive.json",
            "whatsapp.conversation.inactive",
            "inactive",
        ),
        row(
            "kapso/08-batch-message-received.json",
            KapsoBatch(received),
            vec![
                inbound("wamid.111", "text", Is("First in batch"), c)
                    .kapso("conv_123")
                    .done(),
                inbound("wamid.112", "text", Is("Second in batch"), c)
                    .kapso("conv_123")
                    .done(),
                MessageCount(2),
                UnreadTotal(2),
            ],
        ),
        project(
            "kapso/09-project-phone-number-created.json",
            "whatsapp.phone_number.created",
        ),
        project(
            "kapso/10-project-workflow-handoff.json",
            "workflow.execution.handoff",
        ),
        project(
            "kapso/11-project-workflow-failed.json",
            "workflow.execution.failed",
        ),
        row(
            "kapso/12-fragment-media-image.json",
            KapsoFragment(received),
            vec![
                inbound("wamid.789", "image", Is("Photo description"), c)
                    .kapso("conv_frag")
                    .done(),
                MessageCount(1),
            ],
        ),
        row(
            "kapso/13-fragment-audio-transcript.json",
            KapsoFragment(received),
            vec![
                inbound(
                    "wamid.790",
                    "audio",
                    Is("Hello, I need help with my order"),
                    c,
                )
                .kapso("conv_frag")
                .done(),
                MessageCount(1),
            ],
        ),
        row(
            "kapso/14-message-sent-older-no-statuses.json",
            Kapso("whatsapp.message.sent"),
            vec![
                message("wamid.456", "outbound", "text", Is("On my way"), Phone(c))
                    .kapso("conv_123")
                    .done(),
                Status {
                    id: "wamid.456",
                    status: "sent",
                },
                MessageCount(1),
            ],
        ),
        row(
            "kapso/15-message-failed-older-no-statuses.json",
            Kapso("whatsapp.message.failed"),
            vec![Status {
                id: "wamid.789",
                status: "failed",
            }],
        ),
    ]
}
