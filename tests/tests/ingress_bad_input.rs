//! Hostile and odd input against the ingress, with the processor behind it
//! where the outcome is in the database: a signature of another body, a
//! replayed body, oversized headers, a 3 MB payload, JSON nested 10,000
//! levels deep, 1000 messages in one payload, invalid UTF-8, wrong types,
//! missing fields and unknown events. Never a 500, and after each case the
//! ingress still answers `/healthz`.
//! (ingress_reject.rs covers wrong secrets, truncated and malformed
//! signatures, bodies over 4 MiB, chunked and slow bodies, slow headers.)

use std::time::Duration;

use inboxflow_tests::faults::check::group_lag;
use inboxflow_tests::ingress::{
    KAPSO_SECRET, META_SECRET, TEST_REGISTRY, TestIngress, kapso_message_body, spawn_ingress,
};
use inboxflow_tests::pipeline::spawn_ingress_for;
use inboxflow_tests::poll;
use inboxflow_tests::processor::ProcessorEnv;
use inboxflow_tests::webhooks::{Inbound, meta_body};
use processor::app::RunningProcessor;
use processor::dead_letter::PoisonReason;
use processor::pipeline::faults::Faults;
use serde_json::json;
use shared::signing::{kapso_signature, meta_signature};

const WAIT: Duration = Duration::from_secs(120);
const WS: &str = "ws_bad_input";
const PHONE: &str = "400000000000001";

fn registry() -> String {
    format!("[[workspace]]\nid = \"{WS}\"\nphone_number_ids = [\"{PHONE}\"]\n")
}

/// A processor environment, a processor and an ingress writing into its topics.
async fn pipeline() -> anyhow::Result<(ProcessorEnv, RunningProcessor, TestIngress)> {
    let env = ProcessorEnv::new(1).await?;
    let running = env.start(Faults::default()).await?;
    let app = spawn_ingress_for(&env, &registry(), |cfg| cfg).await?;
    Ok((env, running, app))
}

async fn assert_alive(app: &TestIngress) -> anyhow::Result<()> {
    let health = app.client.get(app.url("/healthz")).send().await?;
    assert_eq!(health.status(), 200, "the ingress still answers /healthz");
    Ok(())
}

/// Waits until the processor has committed every record of its topic.
async fn drained(env: &ProcessorEnv) -> anyhow::Result<()> {
    let (group, topic) = (&env.cfg.consumer.group_id, &env.cfg.kafka.webhook_topic);
    poll::until("the processor to commit every record", WAIT, || async {
        Ok((group_lag(group, topic).await? == 0).then_some(()))
    })
    .await
}

fn messages(prefix: &str, count: usize, senders: usize, text_len: usize) -> Vec<Inbound> {
    (0..count)
        .map(|i| {
            let mut m = Inbound::new(
                format!("wamid.{prefix}.{i}"),
                format!("5511977{:06}", i % senders),
                1_700_000_000 + i as i64,
            );
            m.text = "x".repeat(text_len);
            m
        })
        .collect()
}

async fn post_kapso_event(app: &TestIngress, event: &str, body: &[u8]) -> anyhow::Result<u16> {
    let response = app
        .client
        .post(app.url("/webhooks/kapso"))
        .header("content-type", "application/json")
        .header("x-webhook-signature", kapso_signature(KAPSO_SECRET, body))
        .header("x-webhook-event", event)
        .body(body.to_vec())
        .send()
        .await?;
    Ok(response.status().as_u16())
}

#[tokio::test]
async fn a_signature_of_another_body_gets_401_and_writes_nothing() -> anyhow::Result<()> {
    let app = spawn_ingress(TEST_REGISTRY).await?;
    let signed = kapso_message_body("100000000000001", "signed");
    let mut sent = signed.clone();
    sent.push(b' ');
    let mut flipped = signed.clone();
    let last = flipped.len() - 2;
    flipped[last] ^= 0x01;

    for (case, body) in [("one byte appended", &sent), ("one bit flipped", &flipped)] {
        let kapso = app
            .kapso_request_with_signature(
                "/webhooks/kapso",
                body,
                &kapso_signature(KAPSO_SECRET, &signed),
            )
            .send()
            .await?;
        assert_eq!(kapso.status(), 401, "kapso: {case}");
        let meta = app
            .client
            .post(app.url("/webhooks/meta"))
            .header("x-hub-signature-256", meta_signature(META_SECRET, &signed))
            .body(body.clone())
            .send()
            .await?;
        assert_eq!(meta.status(), 401, "meta: {case}");
    }
    for topic in [
        &app.topics.routed,
        &app.topics.unrouted,
        &app.topics.dead_letter,
    ] {
        assert!(
            app.read_all(topic).await?.is_empty(),
            "nothing written to {topic}"
        );
    }
    assert_alive(&app).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_signed_body_sent_twice_is_accepted_twice_and_stored_once() -> anyhow::Result<()> {
    let (env, running, app) = pipeline().await?;
    let body = meta_body(PHONE, &messages("replayed", 3, 2, 5), &[]);

    assert_eq!(app.post_meta(&body).await?.status(), 200);
    assert_eq!(app.post_meta(&body).await?.status(), 200);

    let records = app.read(&app.topics.routed, 2).await?;
    assert_eq!(
        records[0].headers["inboxflow-idempotency-key"],
        records[1].headers["inboxflow-idempotency-key"],
        "a replay carries the same idempotency key"
    );
    drained(&env).await?;
    assert_eq!(env.message_count(WS).await?, 3);
    assert_eq!(env.unread_total(WS).await?, (3, 2));
    assert_eq!(running.metrics.duplicates_skipped.get(), 3);
    assert_alive(&app).await?;
    running.stop().await?;
    env.cleanup().await
}

#[tokio::test]
async fn oversized_request_heads_get_431_and_the_ingress_stays_up() -> anyhow::Result<()> {
    let app = spawn_ingress(TEST_REGISTRY).await?;
    let body = kapso_message_body("100000000000001", "padded");

    let one_huge = app
        .kapso_request("/webhooks/kapso", &body, KAPSO_SECRET)
        .header("x-padding", "a".repeat(100 * 1024))
        .send()
        .await?;
    assert!(
        [400, 431].contains(&one_huge.status().as_u16()),
        "a 100 KiB header: {}",
        one_huge.status()
    );
    let mut many = app.kapso_request("/webhooks/kapso", &body, KAPSO_SECRET);
    for i in 0..1000 {
        many = many.header(format!("x-h{i}"), "v");
    }
    let many = many.send().await?;
    assert!(
        [400, 431].contains(&many.status().as_u16()),
        "1000 headers: {}",
        many.status()
    );

    assert_alive(&app).await?;
    assert_eq!(app.post_kapso(&body).await?.status(), 200);
    let routed = app.read_all(&app.topics.routed).await?;
    assert_eq!(routed.len(), 1, "only the normal request was written");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_3_mb_meta_payload_is_accepted_and_stored() -> anyhow::Result<()> {
    let (env, running, app) = pipeline().await?;
    let body = meta_body(PHONE, &messages("big", 600, 20, 5000), &[]);
    assert!(
        (3_000_000..3_500_000).contains(&body.len()),
        "{} bytes",
        body.len()
    );

    assert_eq!(app.post_meta(&body).await?.status(), 200);

    let record = app.read(&app.topics.routed, 1).await?.remove(0);
    assert_eq!(record.value, body, "stored whole, byte for byte");
    poll::until("the 600 messages stored", WAIT, || async {
        Ok((env.message_count(WS).await? == 600).then_some(()))
    })
    .await?;
    assert_alive(&app).await?;
    running.stop().await?;
    env.cleanup().await
}

#[tokio::test]
async fn json_nested_10_000_levels_deep_is_dead_lettered_without_a_crash() -> anyhow::Result<()> {
    let app = spawn_ingress(TEST_REGISTRY).await?;
    let depth = 10_000;
    let arrays = format!("{}{}", "[".repeat(depth), "]".repeat(depth)).into_bytes();
    let objects = format!("{}1{}", r#"{"a":"#.repeat(depth), "}".repeat(depth)).into_bytes();
    let inside_envelope = format!(
        r#"{{"object":"whatsapp_business_account","entry":[{}{}]}}"#,
        "[".repeat(depth),
        "]".repeat(depth)
    )
    .into_bytes();

    for body in [&arrays, &objects, &inside_envelope] {
        assert_eq!(app.post_meta(body).await?.status(), 200);
        assert_eq!(app.post_kapso(body).await?.status(), 200);
        assert_alive(&app).await?;
    }

    let dead = app.read(&app.topics.dead_letter, 6).await?;
    assert!(
        dead.iter()
            .all(|r| r.headers["inboxflow-reason"].contains("recursion limit")),
        "{:?}",
        dead.iter()
            .map(|r| &r.headers["inboxflow-reason"])
            .collect::<Vec<_>>()
    );
    assert!(app.read_all(&app.topics.routed).await?.is_empty());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_meta_payload_of_1000_messages_is_stored_whole() -> anyhow::Result<()> {
    let (env, running, app) = pipeline().await?;
    let body = meta_body(PHONE, &messages("thousand", 1000, 50, 20), &[]);

    assert_eq!(app.post_meta(&body).await?.status(), 200);

    poll::until("the 1000 messages stored and counted", WAIT, || async {
        let stored = env.message_count(WS).await?;
        let unread = env.unread_total(WS).await?;
        Ok((stored == 1000 && unread == (1000, 50)).then_some(()))
    })
    .await?;
    // The rows can land before the batch that wrote them completes and counts.
    let inserted = poll::until("the 1000 inserts counted", WAIT, || async {
        let n = running.metrics.messages_inserted.get();
        Ok((n >= 1000).then_some(n))
    })
    .await?;
    assert_eq!(inserted, 1000);
    assert_alive(&app).await?;
    running.stop().await?;
    env.cleanup().await
}

#[tokio::test]
async fn an_invalid_utf8_body_is_dead_lettered_byte_for_byte() -> anyhow::Result<()> {
    let app = spawn_ingress(TEST_REGISTRY).await?;
    let body =
        b"{\"object\":\"whatsapp_business_account\",\"entry\":[\"\xff\xfe\xc0\x80\"]}".to_vec();

    assert_eq!(app.post_meta(&body).await?.status(), 200);
    assert_eq!(app.post_kapso(&body).await?.status(), 200);

    let dead = app.read(&app.topics.dead_letter, 2).await?;
    for record in &dead {
        assert_eq!(record.value, body);
        assert!(record.headers["inboxflow-reason"].contains("not valid JSON"));
    }
    assert_alive(&app).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_types_missing_fields_and_unknown_events_are_accepted_never_a_500()
-> anyhow::Result<()> {
    let (env, running, app) = pipeline().await?;
    let change = |value: serde_json::Value| {
        serde_json::to_vec(&json!({"object": "whatsapp_business_account",
            "entry": [{"id": "waba", "changes": [{"field": "messages", "value": value}]}]}))
    };
    let meta_routed = [
        // The routing number as a JSON number; one good message among
        // messages whose id, timestamp or type has the wrong type.
        change(
            json!({"metadata": {"phone_number_id": PHONE.parse::<u64>()?},
            "messages": [
                {"from": "5511900000001", "id": "wamid.types.ok", "timestamp": "1700000000",
                 "type": "text", "text": {"body": "fine"}},
                {"from": "5511900000001", "id": 123, "timestamp": "1700000001", "type": "text"},
                {"from": "5511900000001", "id": "wamid.types.ts", "timestamp": {"s": 1}, "type": "text"},
                {"from": 5511900000001u64, "id": "wamid.types.type", "timestamp": "1700000002", "type": 7},
            ]}),
        )?,
        // Missing fields: no id, no timestamp, no sender; statuses without id or status.
        change(json!({"metadata": {"phone_number_id": PHONE},
            "messages": [{"timestamp": "1700000003", "type": "text"},
                         {"from": "5511900000002", "id": "wamid.missing.ts", "type": "text"},
                         {"id": "wamid.missing.from", "timestamp": "1700000004", "type": "text"}],
            "statuses": [{"status": "read", "timestamp": "1700000005"}, {"id": "wamid.x"}]}))?,
        // An unknown message type.
        change(json!({"metadata": {"phone_number_id": PHONE},
            "messages": [{"from": "5511900000003", "id": "wamid.hologram",
                          "timestamp": "1700000006", "type": "hologram"}]}))?,
        // A change field we do not handle.
        serde_json::to_vec(
            &json!({"object": "whatsapp_business_account", "entry": [{"changes": [
            {"field": "account_update", "value": {"metadata": {"phone_number_id": PHONE}}}]}]}),
        )?,
    ];
    let meta_dead = [
        serde_json::to_vec(&json!({"object": "whatsapp_business_account", "entry": "none"}))?,
        serde_json::to_vec(&json!({"object": 42, "entry": []}))?,
        serde_json::to_vec(&json!({"object": "whatsapp_business_account",
            "entry": [{"changes": [{"field": "messages", "value": {"metadata": {"phone_number_id": [1]}}}]}]}))?,
    ];
    let kapso_unknown_event = kapso_message_body(PHONE, "from the future");
    let kapso_dead = serde_json::to_vec(&json!({"phone_number_id": {"id": PHONE}, "message": {}}))?;

    for body in meta_routed.iter().chain(&meta_dead) {
        assert_eq!(app.post_meta(body).await?.status(), 200);
        assert_alive(&app).await?;
    }
    assert_eq!(
        post_kapso_event(&app, "whatsapp.message.teleported", &kapso_unknown_event).await?,
        200
    );
    assert_eq!(
        post_kapso_event(&app, "whatsapp.message.received", &kapso_dead).await?,
        200
    );
    assert_alive(&app).await?;

    let routed = app.read(&app.topics.routed, 5).await?;
    assert_eq!(routed.len(), 5);
    let dead = app.read(&app.topics.dead_letter, 4).await?;
    assert_eq!(dead.len(), 4);
    drained(&env).await?;
    // Stored: the well-formed message; the one whose timestamp has the wrong
    // type (it takes the ingress receive time); and the Kapso message, whose
    // own `kapso.direction` says it was received, whatever the unsigned
    // header claims. The record holding a message with no sender at all is
    // dead-lettered whole by the processor (`unattributable_message`).
    let ids = env.message_ids(WS).await?;
    assert_eq!(ids.len(), 3, "{ids:?}");
    assert!(
        ids.iter().any(|i| i == "wamid.types.ok") && ids.iter().any(|i| i == "wamid.types.ts"),
        "{ids:?}"
    );
    let unattributable = running
        .metrics
        .dead_lettered
        .with_label_values(&["unattributable_message"])
        .get();
    assert_eq!(unattributable, 1, "the message without any sender");
    let skipped: u64 = [
        "malformed_message",
        "unknown_message_type",
        "malformed_status",
        "account_update",
        "other",
        "message_without_contact",
    ]
    .iter()
    .map(|kind| {
        running
            .metrics
            .events_skipped
            .with_label_values(&[*kind])
            .get()
    })
    .sum();
    assert!(
        skipped >= 4,
        "the odd events were counted and skipped: {skipped}"
    );
    let poison: u64 = PoisonReason::ALL
        .iter()
        .filter(|reason| **reason != PoisonReason::UnattributableMessage)
        .map(|reason| {
            running
                .metrics
                .dead_lettered
                .with_label_values(&[reason.as_str()])
                .get()
        })
        .sum();
    assert_eq!(poison, 0, "nothing routed was poison to the processor");
    running.stop().await?;
    env.cleanup().await
}
