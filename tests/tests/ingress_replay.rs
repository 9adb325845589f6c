//! `ingress replay`: unrouted records re-injected into the webhook topic once
//! their number is registered, with their original headers; a second run
//! re-injects nothing; a number still unknown stops the run unless it is
//! skipped; a body signed with one workspace's own secret never lands in
//! another workspace; a record the ingress did not seal is never replayed,
//! and only the unrouted and dead-letter topics can be replayed.

use std::collections::HashMap;

use inboxflow_tests::ingress::{
    ACME_KAPSO_SECRET, TEST_REGISTRY, TestIngress, kapso_message_body, meta_body, spawn_ingress,
    test_config,
};
use inboxflow_tests::kafka::{self, ReadRecord};
use ingress::registry::Registry;
use ingress::replay::{REPLAYED_FROM_HEADER, ReplayOptions, ReplayReport, replay};
use shared::record::{self, RecordHeaders, SIGNED_BY_HEADER, Source, Trust};

const NEW_PHONE: &str = "300000000000007";
const OTHER_PHONE: &str = "300000000000008";
const STILL_UNKNOWN: &str = "399999999999999";

fn registry_with(phones: &[&str]) -> String {
    let list: Vec<String> = phones.iter().map(|p| format!("\"{p}\"")).collect();
    format!(
        "{TEST_REGISTRY}\n[[workspace]]\nid = \"ws_new\"\nphone_number_ids = [{}]\n",
        list.join(", ")
    )
}

async fn run_replay(
    app: &TestIngress,
    skip_unroutable: bool,
    max: Option<u64>,
) -> anyhow::Result<ReplayReport> {
    let config = test_config(&kafka::brokers(), &app.topics, &app.registry_path);
    let registry = Registry::load(&app.registry_path)?;
    let options = ReplayOptions {
        from_topic: app.topics.unrouted.clone(),
        max,
        skip_unroutable,
        accept_unsealed: false,
    };
    replay(&config, &registry, &options).await
}

async fn post_unrouted(app: &TestIngress, phone: &str) -> anyhow::Result<Vec<u8>> {
    let body = meta_body(&[phone]);
    assert_eq!(app.post_meta(&body).await?.status(), 200);
    Ok(body)
}

fn header<'r>(record: &'r ReadRecord, name: &str) -> &'r str {
    record.headers.get(name).map_or("<absent>", String::as_str)
}

#[tokio::test]
async fn a_registered_number_is_replayed_once_with_its_original_headers() -> anyhow::Result<()> {
    let app = spawn_ingress(TEST_REGISTRY).await?;
    let body = post_unrouted(&app, NEW_PHONE).await?;
    let original = app.read(&app.topics.unrouted, 1).await?.remove(0);
    app.write_registry(&registry_with(&[NEW_PHONE]))?;

    let first = run_replay(&app, false, None).await?;

    assert_eq!(
        (first.read, first.replayed, first.written, first.skipped),
        (1, 1, 1, 0)
    );
    assert!(first.complete(), "{first}");
    let routed = app.read(&app.topics.routed, 1).await?.remove(0);
    assert_eq!(routed.key.as_deref(), Some("ws_new"));
    assert_eq!(routed.value, body, "the body is replayed byte for byte");
    for kept in [
        record::SOURCE_HEADER,
        record::EVENT_HEADER,
        record::IDEMPOTENCY_KEY_HEADER,
        record::RECEIVED_AT_HEADER,
        record::CONTENT_TYPE_HEADER,
        record::SCHEMA_VERSION_HEADER,
        SIGNED_BY_HEADER,
    ] {
        assert_eq!(header(&routed, kept), header(&original, kept), "{kept}");
    }
    assert_eq!(header(&routed, record::WORKSPACE_HEADER), "ws_new");
    assert_eq!(header(&routed, record::PHONE_NUMBER_IDS_HEADER), NEW_PHONE);
    assert_eq!(
        header(&routed, REPLAYED_FROM_HEADER),
        format!("{}/0/{}", app.topics.unrouted, original.offset)
    );
    assert!(!routed.headers.contains_key(record::REASON_HEADER));

    let second = run_replay(&app, false, None).await?;
    assert_eq!((second.read, second.written), (0, 0), "{second}");
    let all = app.read_all(&app.topics.routed).await?;
    assert_eq!(all.len(), 1, "the second run re-injected nothing");
    Ok(())
}

#[tokio::test]
async fn a_number_still_unknown_stops_the_replay_unless_it_is_skipped() -> anyhow::Result<()> {
    let app = spawn_ingress(TEST_REGISTRY).await?;
    post_unrouted(&app, NEW_PHONE).await?;
    post_unrouted(&app, STILL_UNKNOWN).await?;
    post_unrouted(&app, OTHER_PHONE).await?;
    app.read(&app.topics.unrouted, 3).await?;
    app.write_registry(&registry_with(&[NEW_PHONE, OTHER_PHONE]))?;

    let stopped = run_replay(&app, false, None).await?;
    assert_eq!(
        (stopped.read, stopped.replayed, stopped.remaining),
        (1, 1, 2)
    );
    let stop = stopped
        .stopped_at
        .clone()
        .expect("stopped at the unknown number");
    assert_eq!(stop.offset, 1);
    assert_eq!(stop.reason, ingress::routing::REASON_UNKNOWN_PHONE);
    assert!(
        stopped.to_string().contains("--skip-unroutable"),
        "{stopped}"
    );

    let again = run_replay(&app, false, None).await?;
    assert_eq!(
        (again.read, again.stopped_at.map(|s| s.offset)),
        (0, Some(1))
    );

    let skipped = run_replay(&app, true, Some(1)).await?;
    assert_eq!((skipped.read, skipped.skipped, skipped.written), (1, 1, 0));
    assert_eq!(skipped.remaining, 1, "--max 1 leaves the last record");
    let rest = run_replay(&app, true, None).await?;
    assert_eq!((rest.read, rest.replayed, rest.remaining), (1, 1, 0));
    assert!(rest.complete(), "{rest}");

    let routed = app.read_all(&app.topics.routed).await?;
    let by_numbers: HashMap<&str, &str> = routed
        .iter()
        .map(|r| {
            (
                header(r, record::PHONE_NUMBER_IDS_HEADER),
                r.key.as_deref().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        by_numbers,
        HashMap::from([(NEW_PHONE, "ws_new"), (OTHER_PHONE, "ws_new")])
    );
    assert_eq!(run_replay(&app, true, None).await?.read, 0);
    Ok(())
}

#[tokio::test]
async fn a_body_signed_with_a_workspace_secret_is_never_replayed_into_another_workspace()
-> anyhow::Result<()> {
    let app = spawn_ingress(TEST_REGISTRY).await?;
    let body = kapso_message_body(NEW_PHONE, "signed by acme");
    let sent = app
        .kapso_request("/webhooks/kapso/ws_acme", &body, ACME_KAPSO_SECRET)
        .send()
        .await?;
    assert_eq!(sent.status(), 200);
    let unrouted = app.read(&app.topics.unrouted, 1).await?.remove(0);
    assert_eq!(header(&unrouted, SIGNED_BY_HEADER), "workspace:ws_acme");
    // The number now belongs to ws_new, which ws_acme's secret cannot write to.
    app.write_registry(&registry_with(&[NEW_PHONE]))?;

    let report = run_replay(&app, false, None).await?;

    let stop = report.stopped_at.expect("refused");
    assert_eq!(
        (stop.offset, stop.reason.as_str()),
        (0, ingress::routing::REASON_FOREIGN_PHONE)
    );
    assert!(app.read_all(&app.topics.routed).await?.is_empty());
    Ok(())
}

#[tokio::test]
async fn a_record_written_to_the_unrouted_topic_by_someone_else_is_not_replayed()
-> anyhow::Result<()> {
    let app = spawn_ingress(TEST_REGISTRY).await?;
    app.write_registry(&registry_with(&[NEW_PHONE]))?;
    // Whoever can write to the unrouted topic forges a record that claims a
    // global signature, without the ingress's envelope key.
    let forged = RecordHeaders {
        phone_number_ids: vec![NEW_PHONE.into()],
        signed_by: Some(Trust::Global),
        ..RecordHeaders::new(Source::Meta)
    };
    let producer = kafka::producer()?;
    let body = meta_body(&[NEW_PHONE]);
    let topic = &app.topics.unrouted;
    kafka::produce_headers(&producer, topic, NEW_PHONE, &body, forged.to_kafka()).await?;

    let report = run_replay(&app, false, None).await?;
    let stop = report.stopped_at.expect("stopped at the forged record");
    assert_eq!((stop.offset, report.written), (0, 0));
    assert!(stop.reason.contains("envelope MAC"), "{}", stop.reason);
    assert!(app.read_all(&app.topics.routed).await?.is_empty());

    let config = test_config(&kafka::brokers(), &app.topics, &app.registry_path);
    let registry = Registry::load(&app.registry_path)?;
    for from in [app.topics.routed.clone(), "some.other.topic".to_owned()] {
        let options = ReplayOptions {
            from_topic: from.clone(),
            max: None,
            skip_unroutable: true,
            accept_unsealed: true,
        };
        let err = replay(&config, &registry, &options)
            .await
            .expect_err("refused");
        assert!(
            err.to_string().contains("neither the unrouted"),
            "{from}: {err}"
        );
    }
    Ok(())
}
