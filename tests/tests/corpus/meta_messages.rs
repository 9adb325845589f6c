//! Expectations for Meta 01-14 and 39-43: Meta's docs examples of one inbound
//! message each (`SOURCES.md`, Meta table).

use inboxflow_tests::corpus::Delivery::Meta;

use crate::effects::Body::{Is, Null, Unchecked};
use crate::effects::Contact::User;
use crate::effects::Effect::*;
use crate::effects::{Expectation, message};
use crate::expectations::{DOCS_WAMID, SHEENA, STATUS_WAMID, inbound, row, sheena};

/// Meta 01-14 and 39-43: one inbound message each (docs examples).
pub fn meta_messages() -> Vec<Expectation> {
    let s = SHEENA;
    vec![
        sheena(
            "meta/01-text.json",
            inbound(DOCS_WAMID, "text", Is("Does it come in another color?"), s)
                .at(1_749_416_383)
                .named(Some("Sheena Nelson")),
        ),
        sheena(
            "meta/02-text-referred-product.json",
            inbound(
                "wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTA2NTUwRkNEMDdFQjJCRUU0NQA=",
                "text",
                Is("Is this still available?"),
                s,
            )
            .context(
                "reply_to",
                Some("wamid.HBgLMTY1MDM4Nzk0MzkVAgARGA9wcm9kdWN0X2lucXVpcnkA"),
            )
            .keys(&["referred_product"]),
        ),
        sheena(
            "meta/03-text-ctwa-referral.json",
            inbound(
                "wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQUQ0N0VFMDA2MTQ0RkJFNkNDNAA=",
                "text",
                Is("Can I get more info about this?"),
                s,
            )
            .keys(&["referral"]),
        ),
        sheena(
            "meta/04-image.json",
            inbound(DOCS_WAMID, "image", Is("Taj Mahal"), s).payload("1003383421387256"),
        ),
        sheena(
            "meta/05-video.json",
            inbound(DOCS_WAMID, "video", Is("Timelapse of growth"), s).payload("731675419373506"),
        ),
        sheena(
            "meta/06-audio-voice.json",
            inbound(DOCS_WAMID, "audio", Null, s).payload("1908647269898587"),
        ),
        sheena(
            "meta/07-document.json",
            inbound(DOCS_WAMID, "document", Is("my receipt"), s).payload("receipt.pdf"),
        ),
        sheena(
            "meta/08-sticker-animated.json",
            inbound(DOCS_WAMID, "sticker", Null, s).payload("1908647269898587"),
        ),
        sheena(
            "meta/09-location.json",
            inbound(
                STATUS_WAMID,
                "location",
                Is("Philz Coffee, 101 Forest Ave, Palo Alto, CA 94301"),
                s,
            ),
        ),
        sheena(
            "meta/10-contacts.json",
            inbound(DOCS_WAMID, "contacts", Unchecked, s)
                .payload("Barbara J. Johnson")
                .named(Some("Sheena Nelson")),
        ),
        sheena(
            "meta/11-button-template-quick-reply.json",
            inbound(STATUS_WAMID, "button", Is("Unsubscribe"), s).context(
                "reply_to",
                Some("wamid.HBgLMTQxMjU1NTA4MjkVAgASGBQzQUNCNjk5RDUwNUZGMUZEM0VBRAA="),
            ),
        ),
        sheena(
            "meta/12-order.json",
            inbound(STATUS_WAMID, "order", Is("Love these!"), s).payload("194836987003835"),
        ),
        row(
            "meta/13-system-user-changed-number.json",
            Meta,
            vec![
                inbound(
                    "wamid.HBgLMTk4MzU1NTE5NzQVAgASGAoxMTgyMDg2MjY3AA==",
                    "system",
                    Is("User Sheena Nelson changed from 16505551234 to 12195555358"),
                    s,
                )
                .context("new_wa_id", Some("12195555358"))
                .done(),
                SameContact {
                    phone: s,
                    other: "12195555358",
                },
                ContactCount(1),
                MessageCount(1),
            ],
        ),
        row(
            "meta/14-unsupported-edit.json",
            Meta,
            vec![
                inbound(STATUS_WAMID, "unsupported", Unchecked, s)
                    .errors()
                    .done(),
                MessageCount(1),
            ],
        ),
        sheena(
            "meta/39-interactive-button-reply.json",
            inbound(
                "wamid.HBgLMTY0NjcwNDM1OTUVAgASGBQzQThBREYwNzc2RDc2QjA1QTIwMgA=",
                "interactive",
                Is("Change"),
                s,
            )
            .context(
                "reply_to",
                Some("wamid.HBgLMTY0NjcwNDM1OTUVAgARGBJBM0Y4RUU0RUNFQkFDMjYzQUMA"),
            )
            .payload("change-button")
            .named(Some("Pablo Morales")),
        ),
        sheena(
            "meta/40-interactive-list-reply.json",
            inbound(
                "wamid.HBgLMTY0NjcwNDM1OTUVAgASGBQzQTZDMzFGRUFBQjlDMzIzMzlEQwA=",
                "interactive",
                Is("Priority Mail Express"),
                s,
            )
            .keys(&["reply_to"])
            .payload("priority_express"),
        ),
        sheena(
            "meta/41-location-request-reply.json",
            inbound(
                "wamid.HBgLMTY0NjcwNDM1OTUVAgASGBQzQTRCRDcwNzgzMTRDNTAwRTgwRQA=",
                "location",
                Is("Solomon R. Guggenheim Museum, 1071 5th Ave, New York, NY 10128"),
                s,
            )
            .keys(&["reply_to"]),
        ),
        sheena(
            "meta/42-button-auth-template-from-logical-id.json",
            inbound(
                "wamid.HBgLMTIxMTU1NTE0NTYVAgASGCBBQ0I3MjdCNUUzMTE0QjhFQkM4RkQ4MEU3QkE0MUNEMgA=",
                "button",
                Is("I didn't request a code"),
                "12345678",
            )
            .keys(&["reply_to"]),
        ),
        sheena(
            "meta/43-bsuid-text-empty-from.json",
            message(
                DOCS_WAMID,
                "inbound",
                "text",
                Is("Does it come in another color?"),
                User("user.93737..."),
            ),
        ),
    ]
}
