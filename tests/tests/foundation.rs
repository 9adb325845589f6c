//! The foundation on real services: a record through Kafka, and the schema
//! migrated into a fresh keyspace with a contact written and read back, and
//! a readiness probe that answers the same every time.

use std::time::Duration;

use inboxflow_tests::faults::services::services_with;
use inboxflow_tests::{cql, kafka, unique_name};
use processor::config::ProcessorConfig;
use shared::record;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_produced_to_kafka_is_consumed_with_key_value_and_headers() -> anyhow::Result<()> {
    let topic = unique_name("roundtrip");
    kafka::create_topics(&[&topic], 1).await?;
    let producer = kafka::producer()?;
    kafka::produce(
        &producer,
        &topic,
        "ws_1",
        b"{\"hello\":\"kafka\"}",
        &[(record::SOURCE_HEADER, "kapso")],
    )
    .await?;

    let records = kafka::read_records(&topic, 1, Duration::from_secs(30))?;
    assert_eq!(records[0].key.as_deref(), Some("ws_1"));
    assert_eq!(records[0].value, b"{\"hello\":\"kafka\"}");
    assert_eq!(records[0].headers[record::SOURCE_HEADER], "kapso");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_is_idempotent_and_a_contact_can_be_written_and_read_back() -> anyhow::Result<()> {
    let mut cfg = ProcessorConfig::default();
    cfg.cql.nodes = cql::nodes();
    cfg.cql.keyspace = unique_name("foundation");
    let first = processor::app::migrate(&cfg.cql, &cfg.retry).await?;
    let second = processor::app::migrate(&cfg.cql, &cfg.retry).await?;
    assert_eq!(first, second);

    let session = cql::session().await?;
    let ks = &cfg.cql.keyspace;
    let id = shared::ids::contact_id("ws_1", "+55 11 98765-4321");
    session
        .query_unpaged(
            format!("INSERT INTO {ks}.contacts (identity_id, workspace_id, phone, contact_id, name) VALUES (?, ?, ?, ?, ?)"),
            (id, "ws_1", "5511987654321", id, "Ana"),
        )
        .await?;
    let row = session
        .query_unpaged(
            format!("SELECT contact_id, name FROM {ks}.contacts WHERE identity_id = ?"),
            (id,),
        )
        .await?
        .into_rows_result()?
        .single_row::<(uuid::Uuid, String)>()?;
    assert_eq!(row, (id, "Ana".to_string()));
    cql::drop_keyspace(&session, ks).await
}

/// A keyspace of an earlier release (lookup tables keyed by workspace) is
/// refused before anything is changed: `IF NOT EXISTS` would keep the old
/// primary key, which the cross-workspace lookups cannot query. The
/// processor's store refuses it as well (a permanent error, not a wait).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_refuses_a_keyspace_whose_lookup_tables_are_keyed_by_workspace()
-> anyhow::Result<()> {
    let mut cfg = ProcessorConfig::default();
    cfg.cql.nodes = cql::nodes();
    cfg.cql.keyspace = unique_name("old_layout");
    let ks = cfg.cql.keyspace.clone();
    let session = cql::session().await?;
    session
        .query_unpaged(
            format!(
                "CREATE KEYSPACE {ks} WITH replication = \
                 {{'class': 'SimpleStrategy', 'replication_factor': 1}}"
            ),
            &[],
        )
        .await?;
    session
        .query_unpaged(
            format!(
                "CREATE TABLE {ks}.message_index (workspace_id text, message_id text, \
                 status text, PRIMARY KEY ((workspace_id, message_id)))"
            ),
            &[],
        )
        .await?;

    let refused = processor::app::migrate(&cfg.cql, &cfg.retry).await;

    let err = format!("{:#}", refused.expect_err("an old layout must be refused"));
    assert!(err.contains(&format!("{ks}.message_index")), "{err}");
    assert!(err.contains("new keyspace"), "{err}");
    let tables = session
        .query_unpaged(
            "SELECT table_name FROM system_schema.tables WHERE keyspace_name = ?",
            (ks.as_str(),),
        )
        .await?
        .into_rows_result()?
        .rows_num();
    assert_eq!(tables, 1, "nothing was created before the refusal");
    let store = processor::store::Store::with_session(session.clone(), &cfg.cql).await;
    assert!(
        matches!(
            store,
            Err(processor::store::StoreError::OldLayout {
                table: "message_index",
                ..
            })
        ),
        "a processor refuses it too, rather than waiting for a migration: {store:?}"
    );
    cql::drop_keyspace(&session, &ks).await
}

/// `services status` answers the same every time while both services run
/// (its Cassandra probe once failed at random: `cqlsh | grep -q` under
/// pipefail, which failed a CI run after clippy).
#[tokio::test]
async fn the_services_readiness_probe_is_stable_while_both_run() -> anyhow::Result<()> {
    for attempt in 0..20 {
        let status = services_with(&["status"]).await;
        assert!(status.is_ok(), "attempt {attempt}: {status:?}");
    }
    Ok(())
}
