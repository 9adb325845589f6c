//! Accepted deliveries: signed Kapso and Meta webhooks become Kafka records
//! with the right key, the contract headers and the exact raw bytes.

use inboxflow_tests::ingress::{
    ACME_KAPSO_SECRET, ACME_PHONE, GLOBEX_PHONES, KAPSO_SECRET, KAPSO_SECRET_NEXT, TEST_REGISTRY,
    TestTopics, VERIFY_TOKEN, kapso_message_body, meta_body, spawn_ingress, spawn_ingress_with,
};
use shared::record::{self, META_EVENT, SCHEMA_VERSION};
use shared::signing::kapso_signature;

#[tokio::test]
async fn a_signed_kapso_event_is_written_with_its_workspace_key_headers_and_raw_bytes()
-> anyhow::Result<()> {
    let app = spawn_ingress(TEST_REGISTRY).await?;
    let body = kapso_message_body(ACME_PHONE, "hello");
    let before = record::now_ms();

    let res = app
        .kapso_request("/webhooks/kapso", &body, KAPSO_SECRET)
        .header("x-idempotency-key", "delivery-123")
        .send()
        .await?;

    assert_eq!(res.status(), 200);
    let records = app.read(&app.topics.routed, 1).await?;
    let r = &records[0];
    assert_eq!(r.key.as_deref(), Some("ws_acme"));
    assert_eq!(r.value, body);
    let h = &r.headers;
    assert_eq!(h[record::SOURCE_HEADER], "kapso");
    assert_eq!(h[record::EVENT_HEADER], "whatsapp.message.received");
    assert_eq!(h[record::IDEMPOTENCY_KEY_HEADER], "delivery-123");
    assert_eq!(h[record::WORKSPACE_HEADER], "ws_acme");
    assert_eq!(h[record::PHONE_NUMBER_IDS_HEADER], ACME_PHONE);
    assert_eq!(h[record::CONTENT_TYPE_HEADER], "application/json");
    assert_eq!(h[record::SCHEMA_VERSION_HEADER], SCHEMA_VERSION);
    let received_at: i64 = h[record::RECEIVED_AT_HEADER].parse()?;
    assert!(
        (before..=record::now_ms()).contains(&received_at),
        "{received_at}"
    );
    assert!(!h.contains_key(record::REASON_HEADER));
    Ok(())
}

#[tokio::test]
async fn a_kapso_batch_envelope_is_one_record_named_by_its_body_type() -> anyhow::Result<()> {
    let app = spawn_ingress(TEST_REGISTRY).await?;
    let item = |text: &str| -> anyhow::Result<serde_json::Value> {
        Ok(serde_json::from_slice(&kapso_message_body(
            GLOBEX_PHONES[0],
            text,
        ))?)
    };
    let body = serde_json::to_vec(&serde_json::json!({
        "type": "whatsapp.message.received",
        "batch": true,
        "data": [item("first")?, item("second")?],
        "batch_info": {"size": 2, "window_ms": 5000}
    }))?;

    let res = app
        .client
        .post(app.url("/webhooks/kapso"))
        .header("x-webhook-signature", kapso_signature(KAPSO_SECRET, &body))
        .header("x-webhook-batch", "true")
        .header("x-idempotency-key", "batch-1")
        .body(body.clone())
        .send()
        .await?;

    assert_eq!(res.status(), 200);
    let records = app.read_all(&app.topics.routed).await?;
    assert_eq!(records.len(), 1, "one record per workspace, not per item");
    let r = &records[0];
    assert_eq!(r.key.as_deref(), Some("ws_globex"));
    assert_eq!(r.value, body);
    assert_eq!(r.headers[record::EVENT_HEADER], "whatsapp.message.received");
    assert_eq!(r.headers[record::IDEMPOTENCY_KEY_HEADER], "batch-1");
    assert_eq!(r.headers[record::PHONE_NUMBER_IDS_HEADER], GLOBEX_PHONES[0]);
    Ok(())
}

#[tokio::test]
async fn a_meta_payload_with_messages_and_statuses_is_keyed_by_its_workspace() -> anyhow::Result<()>
{
    let app = spawn_ingress(TEST_REGISTRY).await?;
    let body = meta_body(&[ACME_PHONE]);

    let res = app.post_meta(&body).await?;

    assert_eq!(res.status(), 200);
    let records = app.read(&app.topics.routed, 1).await?;
    let r = &records[0];
    assert_eq!(r.key.as_deref(), Some("ws_acme"));
    assert_eq!(r.value, body);
    assert_eq!(r.headers[record::SOURCE_HEADER], "meta");
    assert_eq!(r.headers[record::EVENT_HEADER], META_EVENT);
    assert_eq!(
        r.headers[record::IDEMPOTENCY_KEY_HEADER],
        ingress::handlers::body_digest(&body),
        "Meta sends no delivery id: the body digest makes replays recognisable"
    );
    assert_eq!(r.headers[record::PHONE_NUMBER_IDS_HEADER], ACME_PHONE);
    Ok(())
}

#[tokio::test]
async fn a_meta_payload_spanning_two_workspaces_is_written_once_per_workspace() -> anyhow::Result<()>
{
    let app = spawn_ingress(TEST_REGISTRY).await?;
    let body = meta_body(&[GLOBEX_PHONES[0], ACME_PHONE, GLOBEX_PHONES[1]]);

    let res = app.post_meta(&body).await?;

    assert_eq!(res.status(), 200);
    let mut records = app.read_all(&app.topics.routed).await?;
    records.sort_by(|a, b| a.key.cmp(&b.key));
    assert_eq!(records.len(), 2);
    assert_eq!(records[0].key.as_deref(), Some("ws_acme"));
    assert_eq!(
        records[0].headers[record::PHONE_NUMBER_IDS_HEADER],
        ACME_PHONE
    );
    assert_eq!(records[1].key.as_deref(), Some("ws_globex"));
    assert_eq!(
        records[1].headers[record::PHONE_NUMBER_IDS_HEADER],
        GLOBEX_PHONES.join(",")
    );
    for r in &records {
        assert_eq!(r.value, body, "each copy is the same raw body");
        assert_eq!(
            r.headers[record::WORKSPACE_HEADER],
            r.key.clone().unwrap_or_default()
        );
    }
    assert!(app.read_all(&app.topics.unrouted).await?.is_empty());
    Ok(())
}

#[tokio::test]
async fn uppercase_hex_signatures_and_either_rotated_secret_are_accepted() -> anyhow::Result<()> {
    let app = spawn_ingress(TEST_REGISTRY).await?;
    let upper = kapso_message_body(ACME_PHONE, "upper");
    let next = kapso_message_body(ACME_PHONE, "next secret");

    let upper_signature = kapso_signature(KAPSO_SECRET, &upper).to_uppercase();
    assert_ne!(upper_signature, kapso_signature(KAPSO_SECRET, &upper));

    let res_upper = app
        .kapso_request_with_signature("/webhooks/kapso", &upper, &upper_signature)
        .send()
        .await?;
    let res_next = app
        .kapso_request("/webhooks/kapso", &next, KAPSO_SECRET_NEXT)
        .send()
        .await?;

    assert_eq!(res_upper.status(), 200);
    assert_eq!(res_next.status(), 200);
    let values: Vec<Vec<u8>> = app
        .read(&app.topics.routed, 2)
        .await?
        .into_iter()
        .map(|r| r.value)
        .collect();
    assert!(values.contains(&upper) && values.contains(&next));
    Ok(())
}

#[tokio::test]
async fn a_body_with_emoji_escapes_and_crlf_verifies_and_is_stored_byte_identical()
-> anyhow::Result<()> {
    let app = spawn_ingress(TEST_REGISTRY).await?;
    let body = format!(
        "{{\r\n  \"phone_number_id\": \"{ACME_PHONE}\",\r\n  \"message\": {{\"id\": \"wamid.x\", \
         \"timestamp\": \"1730092800\", \"type\": \"text\", \"from\": \"15551234567\", \
         \"text\": {{\"body\": \"ol\u{e1} \u{1F600} user@example.com https:\\/\\/x.y\\/z \\u00e9\"}}}},\r\n  \
         \"conversation\": {{\"id\": \"c\", \"phone_number_id\": \"{ACME_PHONE}\"}}\r\n}}\r\n"
    )
    .into_bytes();

    let res = app.post_kapso(&body).await?;

    assert_eq!(res.status(), 200);
    let records = app.read(&app.topics.routed, 1).await?;
    assert_eq!(
        records[0].value, body,
        "not re-serialised: escapes, emoji and CRLF survive"
    );
    assert_eq!(records[0].key.as_deref(), Some("ws_acme"));
    Ok(())
}

#[tokio::test]
async fn a_workspace_route_accepts_that_workspaces_own_secret() -> anyhow::Result<()> {
    let app = spawn_ingress(TEST_REGISTRY).await?;
    let body = kapso_message_body(ACME_PHONE, "own secret");

    let own = app
        .kapso_request("/webhooks/kapso/ws_acme", &body, ACME_KAPSO_SECRET)
        .send()
        .await?;
    let global_route = app
        .kapso_request("/webhooks/kapso", &body, ACME_KAPSO_SECRET)
        .send()
        .await?;

    assert_eq!(own.status(), 200);
    assert_eq!(
        global_route.status(),
        401,
        "a workspace secret is not a global secret"
    );
    let records = app.read_all(&app.topics.routed).await?;
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].key.as_deref(), Some("ws_acme"));
    Ok(())
}

#[tokio::test]
async fn the_meta_handshake_echoes_the_challenge_only_for_the_right_token() -> anyhow::Result<()> {
    let app = spawn_ingress(TEST_REGISTRY).await?;
    let url = |token: &str| {
        app.url(&format!(
            "/webhooks/meta?hub.mode=subscribe&hub.verify_token={token}&hub.challenge=1158201444"
        ))
    };

    let right = app.client.get(url(VERIFY_TOKEN)).send().await?;
    let wrong = app.client.get(url("not-the-token")).send().await?;
    let no_query = app.client.get(app.url("/webhooks/meta")).send().await?;

    assert_eq!(right.status(), 200);
    assert!(
        right.headers()["content-type"]
            .to_str()?
            .starts_with("text/plain")
    );
    assert_eq!(right.text().await?, "1158201444");
    assert_eq!(wrong.status(), 403);
    assert_eq!(no_query.status(), 403);
    Ok(())
}

#[tokio::test]
async fn a_body_at_the_4_mib_limit_is_stored_whole() -> anyhow::Result<()> {
    let limit = usize::try_from(ingress::IngressConfig::default().max_body_bytes)?;
    let topics = TestTopics::create_for_large_records(limit + 64 * 1024).await?;
    let app = spawn_ingress_with(TEST_REGISTRY, topics, |cfg| cfg).await?;
    // Incompressible bytes (compression cannot hide a size problem), so not
    // JSON: the signed body is dead-lettered whole.
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let body: Vec<u8> = (0..limit)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state.to_le_bytes()[0]
        })
        .collect();

    let res = app.post_kapso(&body).await?;

    assert_eq!(res.status(), 200);
    let records = app.read(&app.topics.dead_letter, 1).await?;
    assert_eq!(records[0].value.len(), limit);
    assert!(records[0].value == body, "stored byte-identical");
    Ok(())
}

#[tokio::test]
async fn a_kapso_signature_with_a_sha256_prefix_is_accepted() -> anyhow::Result<()> {
    let app = spawn_ingress(TEST_REGISTRY).await?;
    let body = kapso_message_body(ACME_PHONE, "prefixed");
    let signature = format!("sha256={}", kapso_signature(KAPSO_SECRET, &body));
    let res = app
        .kapso_request_with_signature("/webhooks/kapso", &body, &signature)
        .send()
        .await?;
    assert_eq!(res.status(), 200);
    assert_eq!(app.read(&app.topics.routed, 1).await?[0].value, body);
    Ok(())
}

#[tokio::test]
async fn a_raw_meta_payload_on_the_kapso_route_is_stored_as_a_meta_record() -> anyhow::Result<()> {
    let app = spawn_ingress(TEST_REGISTRY).await?;
    // Kapso's "meta" webhook kind forwards Meta's payload as is.
    let body = meta_body(&[ACME_PHONE]);
    let res = app
        .kapso_request("/webhooks/kapso", &body, KAPSO_SECRET)
        .header("x-webhook-event", "whatsapp.message.received")
        .send()
        .await?;
    assert_eq!(res.status(), 200);
    let records = app.read(&app.topics.routed, 1).await?;
    assert_eq!(records[0].key.as_deref(), Some("ws_acme"));
    assert_eq!(records[0].headers[record::SOURCE_HEADER], "meta");
    assert_eq!(records[0].headers[record::EVENT_HEADER], META_EVENT);
    Ok(())
}
