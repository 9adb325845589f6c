//! Routing: unknown numbers go to the unrouted topic, unparseable bodies to
//! the dead-letter topic (both still answered 200), and a workspace's own
//! secret cannot write into another workspace.

use inboxflow_tests::ingress::{
    ACME_KAPSO_SECRET, ACME_PHONE, GLOBEX_PHONES, KAPSO_SECRET, TEST_REGISTRY, kapso_message_body,
    meta_body, spawn_ingress,
};
use shared::record;
use shared::signing::kapso_signature;

const UNKNOWN_PHONE: &str = "999000000000009";

#[tokio::test]
async fn an_unknown_phone_number_goes_to_the_unrouted_topic_with_a_reason() -> anyhow::Result<()> {
    let app = spawn_ingress(TEST_REGISTRY).await?;
    let body = kapso_message_body(UNKNOWN_PHONE, "who am I");

    let res = app.post_kapso(&body).await?;

    assert_eq!(res.status(), 200);
    let records = app.read(&app.topics.unrouted, 1).await?;
    let r = &records[0];
    assert_eq!(r.key.as_deref(), Some(UNKNOWN_PHONE));
    assert_eq!(r.value, body);
    assert_eq!(r.headers[record::REASON_HEADER], "unknown phone_number_id");
    assert_eq!(r.headers[record::PHONE_NUMBER_IDS_HEADER], UNKNOWN_PHONE);
    assert_eq!(r.headers[record::SOURCE_HEADER], "kapso");
    assert!(!r.headers.contains_key(record::WORKSPACE_HEADER));
    assert!(app.read_all(&app.topics.routed).await?.is_empty());
    Ok(())
}

#[tokio::test]
async fn a_meta_payload_with_known_and_unknown_numbers_writes_routed_and_unrouted_copies()
-> anyhow::Result<()> {
    let app = spawn_ingress(TEST_REGISTRY).await?;
    let body = meta_body(&[UNKNOWN_PHONE, ACME_PHONE]);

    let res = app.post_meta(&body).await?;

    assert_eq!(res.status(), 200);
    let routed = app.read_all(&app.topics.routed).await?;
    assert_eq!(routed.len(), 1);
    assert_eq!(routed[0].key.as_deref(), Some("ws_acme"));
    assert_eq!(
        routed[0].headers[record::PHONE_NUMBER_IDS_HEADER],
        ACME_PHONE
    );
    let unrouted = app.read_all(&app.topics.unrouted).await?;
    assert_eq!(unrouted.len(), 1);
    assert_eq!(unrouted[0].key.as_deref(), Some(UNKNOWN_PHONE));
    assert_eq!(
        unrouted[0].headers[record::PHONE_NUMBER_IDS_HEADER],
        UNKNOWN_PHONE
    );
    assert_eq!(unrouted[0].value, body);
    Ok(())
}

#[tokio::test]
async fn a_validly_signed_body_that_is_not_json_is_dead_lettered_and_answered_200()
-> anyhow::Result<()> {
    let app = spawn_ingress(TEST_REGISTRY).await?;
    let body = b"this is not json {".to_vec();

    let res = app.post_kapso(&body).await?;

    assert_eq!(res.status(), 200);
    let records = app.read(&app.topics.dead_letter, 1).await?;
    let r = &records[0];
    assert_eq!(r.key.as_deref(), Some("unparsed"));
    assert_eq!(r.value, body);
    assert!(
        r.headers[record::REASON_HEADER].contains("not valid JSON"),
        "{:?}",
        r.headers
    );
    assert_eq!(r.headers[record::SOURCE_HEADER], "kapso");
    assert!(app.read_all(&app.topics.routed).await?.is_empty());
    Ok(())
}

#[tokio::test]
async fn a_signed_json_body_of_the_wrong_shape_is_dead_lettered() -> anyhow::Result<()> {
    let app = spawn_ingress(TEST_REGISTRY).await?;
    let body = br#"{"object":"page","entry":"not a list"}"#.to_vec();

    let res = app.post_meta(&body).await?;

    assert_eq!(res.status(), 200);
    let records = app.read(&app.topics.dead_letter, 1).await?;
    assert_eq!(records[0].value, body);
    assert_eq!(records[0].headers[record::SOURCE_HEADER], "meta");
    assert!(!records[0].headers[record::REASON_HEADER].is_empty());
    Ok(())
}

#[tokio::test]
async fn a_workspace_secret_cannot_route_into_another_workspace() -> anyhow::Result<()> {
    let app = spawn_ingress(TEST_REGISTRY).await?;
    let body = kapso_message_body(GLOBEX_PHONES[0], "not yours");

    let own = app
        .kapso_request("/webhooks/kapso/ws_acme", &body, ACME_KAPSO_SECRET)
        .send()
        .await?;
    let global = app
        .client
        .post(app.url("/webhooks/kapso/ws_acme"))
        .header("x-webhook-signature", kapso_signature(KAPSO_SECRET, &body))
        .body(body.clone())
        .send()
        .await?;

    assert_eq!(own.status(), 200);
    assert_eq!(global.status(), 200);
    let unrouted = app.read_all(&app.topics.unrouted).await?;
    assert_eq!(
        unrouted.len(),
        1,
        "only the workspace-signed copy is unrouted"
    );
    assert_eq!(unrouted[0].key.as_deref(), Some(GLOBEX_PHONES[0]));
    assert!(unrouted[0].headers[record::REASON_HEADER].contains("another workspace"));
    let routed = app.read_all(&app.topics.routed).await?;
    assert_eq!(routed.len(), 1, "only the globally signed copy is routed");
    assert_eq!(routed[0].key.as_deref(), Some("ws_globex"));
    Ok(())
}
