//! Expectations for Meta 47-73: library fixtures (pywa, netflie,
//! whatsapp-api-js), with their placeholder ids kept as opaque handles.

use inboxflow_tests::corpus::Delivery::Meta;

use crate::effects::Body::{Is, Unchecked};
use crate::effects::Contact::{Phone, User};
use crate::effects::Effect::*;
use crate::effects::{Expectation, message};
use crate::expectations::{TEST_USER, ignored, inbound, row, status};

/// Meta 47-73: library fixtures (pywa, netflie, whatsapp-api-js).
pub fn meta_fixtures() -> Vec<Expectation> {
    let t = TEST_USER;
    let one = |file, m: crate::effects::Message| {
        row(file, Meta, vec![m.done(), MessageCount(1), UnreadTotal(1)])
    };
    let reactor = TEST_USER;
    vec![
        row(
            "meta/47-reaction.json",
            Meta,
            vec![
                Reaction {
                    target: "wamid.yzxyzx=",
                    reactor,
                    emoji: "😮",
                },
                MessageCount(0),
                UnreadTotal(0),
            ],
        ),
        row(
            "meta/48-reaction-removed-empty-emoji.json",
            Meta,
            vec![
                NoReaction {
                    target: "wamid.yzxyzx=",
                    reactor,
                },
                MessageCount(0),
            ],
        ),
        row(
            "meta/49-reaction-removed-no-emoji.json",
            Meta,
            vec![
                NoReaction {
                    target: "wamid.yzxyzx=",
                    reactor,
                },
                MessageCount(0),
            ],
        ),
        one(
            "meta/50-text-reply-context.json",
            inbound("wamid.xyzxyz", "text", Is("replied text"), t)
                .context("reply_to", Some("wamid.xyzxyz==")),
        ),
        one(
            "meta/51-text-forwarded.json",
            inbound("wamid.xyzxyz", "text", Is("forwarded text"), t)
                .context("forwarded", Some("true")),
        ),
        one(
            "meta/52-text-frequently-forwarded.json",
            inbound("wamid.xyzxyz", "text", Is("text forwarded many times"), t)
                .context("frequently_forwarded", Some("true")),
        ),
        one(
            "meta/53-interactive-nfm-reply-flow.json",
            inbound("wamid.wegrchytvwcggt==", "interactive", Unchecked, t)
                .keys(&["reply_to"])
                .payload("response_json"),
        ),
        row(
            "meta/54-interactive-missing-payload-with-errors.json",
            Meta,
            vec![
                inbound("wamid.wegrchytvwcggt=", "interactive", Unchecked, t)
                    .errors()
                    .done(),
                MessageCount(1),
            ],
        ),
        row(
            "meta/55-system-identity-changed.json",
            Meta,
            vec![
                inbound("wamid.xyzxyz", "system", Is("User identity changed"), t)
                    .keys(&["identity"])
                    .done(),
                MessageCount(1),
            ],
        ),
        status("meta/56-status-read.json", "wamid.xyzxyz", "read"),
        status("meta/57-status-played.json", "wamid.xyzxyz", "played"),
        ignored("meta/58-status-group-read.json", Meta, "group_status"),
        row(
            "meta/59-smb-message-echoes-text.json",
            Meta,
            vec![
                message(
                    "<WHATSAPP_MESSAGE_ID>",
                    "outbound",
                    "text",
                    Is("Test message"),
                    User("<BSUID>"),
                )
                .origin("business_app")
                .done(),
                MessageCount(1),
                UnreadTotal(0),
            ],
        ),
        ignored("meta/60-calls-connect.json", Meta, "calls"),
        ignored("meta/61-calls-status-ringing.json", Meta, "calls"),
        one(
            "meta/62-interactive-call-permission-reply.json",
            inbound("wamid.x", "interactive", Unchecked, t)
                .keys(&["reply_to"])
                .payload("call_permission_reply"),
        ),
        row(
            "meta/63-revoke.json",
            Meta,
            vec![
                Revoked {
                    id: "<ORIGINAL_WHATSAPP_MESSAGE_ID>",
                },
                MessageCount(0),
            ],
        ),
        row(
            "meta/64-edit.json",
            Meta,
            vec![
                Edited {
                    id: "wamid.HBgLMTQxMjU1NTA4MjkVAgASGBQzQUNCNjk5RDUwNUZGMUZEM0VBRAA=",
                    body: "Updated image caption",
                },
                MessageCount(0),
            ],
        ),
        row(
            "meta/65-button-from-user-id.json",
            Meta,
            vec![
                inbound("wamid.xsidjx", "button", Is("title"), t)
                    .named(Some("Test Name"))
                    .done(),
                MessageCount(1),
                UnreadTotal(1),
                ContactCount(1),
            ],
        ),
        row(
            "meta/66-request-welcome.json",
            Meta,
            vec![ConversationWith(Phone(t)), MessageCount(0)],
        ),
        row(
            "meta/67-unknown-type-131051.json",
            Meta,
            vec![
                message(
                    "wamid.ID",
                    "inbound",
                    "unknown",
                    Unchecked,
                    User("PHONE_NUMBER"),
                )
                .errors()
                .done(),
                MessageCount(1),
            ],
        ),
        one(
            "meta/68-bsuid-only-no-from.json",
            message(
                "wamid.ID",
                "inbound",
                "text",
                Is("MESSAGE_BODY"),
                User("BSUID_123"),
            ),
        ),
        one(
            "meta/69-contact-without-profile.json",
            message(
                "wamid.ID",
                "inbound",
                "text",
                Is("MESSAGE_BODY"),
                User("PHONE_NUMBER"),
            )
            .named(None),
        ),
        row(
            "meta/70-two-changes-one-entry.json",
            Meta,
            vec![
                message(
                    "wamid.ID",
                    "inbound",
                    "text",
                    Unchecked,
                    User("PHONE_NUMBER"),
                )
                .done(),
                MessageCount(1),
            ],
        ),
        one(
            "meta/71-button-numeric-timestamp-referral.json",
            inbound("wamid.ID", "button", Is("No"), "16315551234")
                .context("reply_to", Some("wamid.ID"))
                .context("forwarded", Some("true"))
                .context("frequently_forwarded", Some("true"))
                .keys(&["referred_product", "referral"])
                .at(1_669_233_778),
        ),
        row(
            "meta/72-v25-text-username-bsuid.json",
            Meta,
            vec![
                inbound(
                    "ABGGFlA5Fpa",
                    "text",
                    Is("this is a text message"),
                    "16315551181",
                )
                .named(Some("test user name"))
                .done(),
                MessageCount(1),
                UnreadTotal(1),
                ContactCount(1),
            ],
        ),
        status("meta/73-v25-status-sent-bsuid.json", "ABGGFlA5Fpa", "sent"),
    ]
}
