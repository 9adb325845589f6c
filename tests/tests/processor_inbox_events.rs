//! Reactions, edits, revokes and contact identities on real Kafka and a real
//! CQL database, in the orders real traffic delivers them: an amendment
//! before its message, a removal before the reaction it removes, a contact
//! first seen by phone and user id and then by user id alone.

use std::time::Duration;

use inboxflow_tests::poll;
use inboxflow_tests::processor::ProcessorEnv;
use processor::pipeline::faults::Faults;
use scylla::value::CqlTimestamp;
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(60);
const PN: &str = "pn-inbox";

/// A Meta body with one message object in a `messages` change.
fn body(message: Value) -> Vec<u8> {
    let value = json!({"messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550000000", "phone_number_id": PN},
        "contacts": [{"profile": {"name": "Ana"}, "wa_id": "15551230001", "user_id": "US.ana"}],
        "messages": [message]});
    serde_json::to_vec(&json!({"object": "whatsapp_business_account",
        "entry": [{"id": "waba-1", "changes": [{"field": "messages", "value": value}]}]}))
    .unwrap_or_default()
}

fn text(id: &str, ts: i64, body: &str) -> Value {
    json!({"from": "15551230001", "id": id, "timestamp": ts.to_string(), "type": "text",
        "text": {"body": body}})
}

fn reaction(id: &str, ts: i64, target: &str, emoji: Option<&str>) -> Value {
    let mut r = json!({"message_id": target});
    if let Some(e) = emoji {
        r["emoji"] = e.into();
    }
    json!({"from": "15551230001", "id": id, "timestamp": ts.to_string(), "type": "reaction",
        "reaction": r})
}

async fn send(env: &ProcessorEnv, ws: &str, message: Value) -> anyhow::Result<()> {
    env.produce_meta(ws, PN, &body(message)).await.map(|_| ())
}

/// One row of `cql` bound to `values`, if any.
async fn row<R>(
    env: &ProcessorEnv,
    cql: &str,
    values: impl scylla::serialize::row::SerializeRow,
) -> anyhow::Result<Option<R>>
where
    R: for<'f, 'm> scylla::deserialize::row::DeserializeRow<'f, 'm>,
{
    let cql = cql.replace("{ks}", &env.cfg.cql.keyspace);
    let result = env.session.query_unpaged(cql, values).await?;
    Ok(result.into_rows_result()?.maybe_first_row::<R>()?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edit_and_a_revoke_that_arrive_before_their_messages_still_apply() -> anyhow::Result<()>
{
    let env = ProcessorEnv::new(1).await?;
    let running = env.start(Faults::default()).await?;
    let ws = "ws_amend";
    let edit = json!({"from": "15551230001", "id": "wamid.e1", "timestamp": "1700000100",
        "type": "edit", "edit": {"original_message_id": "wamid.orig",
            "message": {"type": "text", "text": {"body": "edited"}}}});
    let revoke = json!({"from": "15551230001", "id": "wamid.r1", "timestamp": "1700000200",
        "type": "revoke", "revoke": {"original_message_id": "wamid.gone"}});
    send(&env, ws, edit).await?;
    send(&env, ws, revoke).await?;
    send(&env, ws, text("wamid.orig", 1_700_000_000, "original")).await?;
    send(&env, ws, text("wamid.gone", 1_700_000_001, "oops")).await?;

    let cql = "SELECT body, edited_at, revoked_at FROM {ks}.messages WHERE workspace_id = ? \
               AND message_id = ? ALLOW FILTERING";
    type Row = (Option<String>, Option<CqlTimestamp>, Option<CqlTimestamp>);
    // Step 6 stores a message before step 8 applies its amendment: wait for
    // the amendment's own column, not only the row.
    let edited: Row = poll::until("the edited message stored", WAIT, || async {
        let r: Option<Row> = row(&env, cql, (ws, "wamid.orig")).await?;
        Ok(r.filter(|r| r.1.is_some()))
    })
    .await?;
    let gone: Row = poll::until("the revoked message stored", WAIT, || async {
        let r: Option<Row> = row(&env, cql, (ws, "wamid.gone")).await?;
        Ok(r.filter(|r| r.2.is_some()))
    })
    .await?;
    assert_eq!(edited.0.as_deref(), Some("edited"));
    assert_eq!(edited.1.map(|t| t.0), Some(1_700_000_100_000));
    assert_eq!(gone.2.map(|t| t.0), Some(1_700_000_200_000));
    assert_eq!(
        gone.0.as_deref(),
        Some("oops"),
        "a revoke keeps the body for audit"
    );
    assert_eq!(
        env.message_count(ws).await?,
        2,
        "amendments are not messages"
    );
    running.stop().await?;
    env.cleanup().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reaction_and_its_removal_end_as_the_later_one_says_in_either_order() -> anyhow::Result<()>
{
    let env = ProcessorEnv::new(1).await?;
    let running = env.start(Faults::default()).await?;
    let ws = "ws_react";
    // Target A: the removal (t=200) arrives before the reaction (t=100).
    send(&env, ws, reaction("wamid.x1", 200, "wamid.A", None)).await?;
    send(&env, ws, reaction("wamid.x2", 100, "wamid.A", Some("👍"))).await?;
    // Target B: a removal (t=200), then a newer reaction (t=300).
    send(&env, ws, reaction("wamid.x3", 200, "wamid.B", Some(""))).await?;
    send(&env, ws, reaction("wamid.x4", 300, "wamid.B", Some("🎉"))).await?;

    let cql = "SELECT emoji FROM {ks}.reactions WHERE workspace_id = ? AND message_id = ? \
               AND reactor = ?";
    let b: (Option<String>,) = poll::until("the newer reaction on B", WAIT, || async {
        row(&env, cql, (ws, "wamid.B", "15551230001")).await
    })
    .await?;
    assert_eq!(b.0.as_deref(), Some("🎉"));
    // B is written by the last record, so A's writes are done by now.
    let a: Option<(Option<String>,)> = row(&env, cql, (ws, "wamid.A", "15551230001")).await?;
    assert_eq!(a, None, "the later removal wins over the earlier reaction");
    assert_eq!(
        env.message_count(ws).await?,
        0,
        "a reaction is not a message"
    );
    assert_eq!(env.unread_total(ws).await?, (0, 0), "nor an unread item");
    running.stop().await?;
    env.cleanup().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_contact_seen_by_phone_and_user_id_then_by_user_id_alone_is_one_conversation()
-> anyhow::Result<()> {
    let env = ProcessorEnv::new(1).await?;
    let running = env.start(Faults::default()).await?;
    let ws = "ws_bsuid";
    let mut first = text("wamid.p1", 1_700_000_000, "with phone");
    first["from_user_id"] = "US.ana".into();
    send(&env, ws, first).await?;
    let hidden = json!({"from": "", "from_user_id": "US.ana", "id": "wamid.p2",
        "timestamp": "1700000060", "type": "text", "text": {"body": "phone hidden"}});
    let value = json!({"messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550000000", "phone_number_id": PN},
        "contacts": [{"profile": {"name": "Ana", "username": "@ana"}, "wa_id": "", "user_id": "US.ana"}],
        "messages": [hidden]});
    let body = serde_json::to_vec(&json!({"object": "whatsapp_business_account",
        "entry": [{"id": "waba-1", "changes": [{"field": "messages", "value": value}]}]}))?;
    env.produce_meta(ws, PN, &body).await?;

    poll::until("both messages stored", WAIT, || async {
        Ok((env.message_count(ws).await? == 2).then_some(()))
    })
    .await?;
    let (unread, conversations) = poll::until("both counted", WAIT, || async {
        let (u, c) = env.unread_total(ws).await?;
        Ok((u == 2).then_some((u, c)))
    })
    .await?;
    assert_eq!((unread, conversations), (2, 1));
    // Polled: the identities go out in the same wave as the rows seen above.
    let (by_phone, by_user) = poll::until("both identities stored", WAIT, || async {
        let by_phone: Option<(uuid::Uuid,)> = row(
            &env,
            "SELECT contact_id FROM {ks}.contacts WHERE identity_id = ?",
            (shared::ids::contact_id(ws, "15551230001"),),
        )
        .await?;
        let by_user: Option<(uuid::Uuid,)> = row(
            &env,
            "SELECT contact_id FROM {ks}.contact_users WHERE identity_id = ?",
            (shared::ids::user_contact_id(ws, "US.ana"),),
        )
        .await?;
        Ok((by_phone.is_some() && by_user.is_some()).then_some((by_phone, by_user)))
    })
    .await?;
    assert_eq!(by_phone, by_user, "one contact behind both identities");
    running.stop().await?;
    env.cleanup().await
}
