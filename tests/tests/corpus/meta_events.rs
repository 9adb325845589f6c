//! Expectations for Meta 15-38 and 44-46: errors only, statuses of messages
//! the workspace never stored, history sync, and fields that are not messages.

use inboxflow_tests::corpus::Delivery::Meta;

use crate::effects::Body::{Is, Unchecked};
use crate::effects::Contact::{Group, Phone};
use crate::effects::Effect::*;
use crate::effects::{Expectation, message};
use crate::expectations::{SHEENA, STATUS_WAMID, account, ignored, row, status};

/// Meta 15-38 and 44-46: errors, statuses, history, and fields that are not messages.
pub fn meta_events() -> Vec<Expectation> {
    let history = |id, direction, kind, body, with| {
        message(id, direction, kind, body, Phone(with))
            .origin("history")
            .done()
    };
    vec![
        ignored("meta/15-errors-only.json", Meta, "messages_without_items"),
        status("meta/16-status-sent-pricing.json", STATUS_WAMID, "sent"),
        status(
            "meta/17-status-sent-v24-no-pricing.json",
            STATUS_WAMID,
            "sent",
        ),
        row(
            "meta/18-status-failed-131049.json",
            Meta,
            vec![
                Status {
                    id: "wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBI0QUQ2MjA4NEYyRkExNjMyREUA",
                    status: "failed",
                },
                StatusErrors {
                    id: "wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBI0QUQ2MjA4NEYyRkExNjMyREUA",
                },
                MessageCount(0),
            ],
        ),
        status(
            "meta/19-status-delivered-cbp.json",
            "wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBI3MTE5MjVBOTE3MDk5QUVFM0YA",
            "delivered",
        ),
        row(
            "meta/20-history-sync.json",
            Meta,
            vec![
                history(
                    "wamid.HBgLMTY0NjcwNDM1OTUVAgARGBIyNDlBOEI5QUQ4NDc0N0FCNjMA",
                    "outbound",
                    "text",
                    Is("Here's the info you requested! https://www.meta.com/quest/quest-3/"),
                    SHEENA,
                ),
                history(
                    "wamid.QyNUEHBgLMTY0NjcwNDM1OTUVAgARGBI1Rj3NEYxMzAzMzQ5MkEA",
                    "outbound",
                    "media_placeholder",
                    Unchecked,
                    SHEENA,
                ),
                history(
                    "wamid.N0FCNjMAHBgLMTY0NjcwNDM1OTUVAgARGBIyNDlBOEI5QUQ4NDc0",
                    "inbound",
                    "text",
                    Is("Thanks!"),
                    SHEENA,
                ),
                history(
                    "wamid.BIyNDlBOEI5N0FCNjMAHBgLMTY0NjcwNDM1OTUVAgARGQUQ4NDc0",
                    "outbound",
                    "text",
                    Is(
                        "Thanks for your order! As a thank you, use code THANKS30 to get 30% of your next order.",
                    ),
                    "12125557890",
                ),
                MessageCount(4),
                UnreadTotal(0),
            ],
        ),
        row(
            "meta/21-history-media.json",
            Meta,
            vec![
                history(
                    "wamid.QyNUEHBgLMTY0NjcwNDM1OTUVAgARGBI1Rj3NEYxMzAzMzQ5MkEA",
                    "inbound",
                    "image",
                    Is("Black Prince echeveria"),
                    SHEENA,
                ),
                MessageCount(1),
                UnreadTotal(0),
            ],
        ),
        ignored(
            "meta/22-smb-app-state-sync.json",
            Meta,
            "smb_app_state_sync",
        ),
        ignored("meta/23-user-preferences.json", Meta, "user_preferences"),
        account("meta/24-account-update-deleted.json", "account_update"),
        account("meta/25-account-update-violation.json", "account_update"),
        account("meta/26-account-alerts.json", "account_alerts"),
        account(
            "meta/27-account-review-update.json",
            "account_review_update",
        ),
        account(
            "meta/28-business-capability-update.json",
            "business_capability_update",
        ),
        account(
            "meta/29-message-template-status-update.json",
            "message_template_status_update",
        ),
        account(
            "meta/30-message-template-quality-update.json",
            "message_template_status_update",
        ),
        account(
            "meta/31-message-template-components-update.json",
            "message_template_components_update",
        ),
        account(
            "meta/32-template-category-update.json",
            "template_category_update",
        ),
        account(
            "meta/33-phone-number-quality-update.json",
            "phone_number_quality_update",
        ),
        account(
            "meta/34-phone-number-name-update.json",
            "phone_number_name_update",
        ),
        account("meta/35-security.json", "security"),
        account("meta/36-partner-solutions.json", "partner_solutions"),
        account(
            "meta/37-payment-configuration-update.json",
            "payment_configuration_update",
        ),
        account("meta/38-flows-status-change.json", "flows"),
        status(
            "meta/44-bsuid-status-empty-recipient.json",
            STATUS_WAMID,
            "delivered",
        ),
        row(
            "meta/45-group-message-syntax.json",
            Meta,
            vec![
                message(
                    "<WHATSAPP_MESSAGE_ID>",
                    "inbound",
                    "text",
                    Is("<MESSAGE_BODY>"),
                    Group("<GROUP_ID>"),
                )
                .sender()
                .done(),
                MessageCount(1),
            ],
        ),
        ignored(
            "meta/46-group-status-update-suspend.json",
            Meta,
            "group_status_update",
        ),
    ]
}
