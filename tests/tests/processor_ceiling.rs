//! The benchmarks' raw-write ceiling of the same rows, on the real CQL
//! database: `pipeline::ceiling::write_wave_only` writes exactly the rows the
//! pipeline writes for a batch its owner cache answers (every table, the
//! recency list and the inbox list as read), in one wave and with no read;
//! when the cache misses a key (a cold cache, or one new sender) it
//! declines and sends nothing.

use inboxflow_tests::processor::ProcessorEnv;
use inboxflow_tests::webhooks::{Inbound, meta_body};
use processor::decode::DecodedRecord;
use processor::pipeline::{self, OwnerCache, WorkspaceRecords};
use processor::store::{DbStats, Store};
use shared::record::Source;

const WORKSPACES: usize = 12;
const T0: i64 = 1_700_000_000;

fn workspace(i: usize) -> String {
    format!("ws_ceil{i}")
}

/// Round `round`'s records: two messages from a sender of each workspace,
/// one record per workspace (partition 0); with `newcomer`, the first
/// workspace's sender is one it has not heard from before.
fn round_records(round: i64, newcomer: bool) -> anyhow::Result<Vec<DecodedRecord>> {
    (0..WORKSPACES)
        .map(|i| {
            let ws = workspace(i);
            let phone = match (i, newcomer) {
                (0, true) => "5511977700000".to_owned(),
                _ => format!("55119000{:05}", i % 5),
            };
            let messages: Vec<Inbound> = (0..2)
                .map(|k| Inbound::new(format!("wamid.ceil{round}.{i}.{k}"), &phone, T0 + round))
                .collect();
            let offset = round * WORKSPACES as i64 + i as i64;
            Ok(DecodedRecord {
                workspace_id: ws.clone(),
                partition: 0,
                offset,
                clock: processor::clocks::unstamped(offset),
                received_at_ms: None,
                events: shared::webhook::normalize(
                    Source::Meta,
                    None,
                    &meta_body(&format!("pn-{ws}"), &messages, &[]),
                    &[],
                )?,
            })
        })
        .collect()
}

fn batch(records: &[DecodedRecord]) -> Vec<WorkspaceRecords<'_>> {
    records
        .iter()
        .map(|r| (r.workspace_id.as_str(), vec![r]))
        .collect()
}

/// The ceiling over `records` with `cache`: what it inserted (`None`:
/// declined) and what it sent.
async fn ceiling(
    store: &Store,
    records: &[DecodedRecord],
    cache: &mut OwnerCache,
) -> anyhow::Result<(Option<u64>, DbStats)> {
    let stats = DbStats::default();
    let written = pipeline::ceiling::write_wave_only(store, &batch(records), &stats, cache).await?;
    Ok((written, stats))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ceiling_writes_the_pipelines_rows_in_one_wave_without_reading() -> anyhow::Result<()> {
    let (by_pipeline, by_ceiling) = (ProcessorEnv::new(1).await?, ProcessorEnv::new(1).await?);
    let pipeline_store =
        Store::with_session(by_pipeline.session.clone(), &by_pipeline.cfg.cql).await?;
    let ceiling_store =
        Store::with_session(by_ceiling.session.clone(), &by_ceiling.cfg.cql).await?;
    let (mut pipeline_cache, mut ceiling_cache) = (OwnerCache::default(), OwnerCache::default());

    // Contacts and conversations stored, and cached, by the pipeline in both.
    let seed = round_records(0, false)?;
    let stats = DbStats::default();
    pipeline::run_batch_cached(&pipeline_store, &batch(&seed), &stats, &mut pipeline_cache).await?;
    pipeline::run_batch_cached(&ceiling_store, &batch(&seed), &stats, &mut ceiling_cache).await?;

    // The pipeline would read first, so the ceiling declines: a cold
    // cache, and a warm one that has not seen one of the senders.
    let (declined, sent) = ceiling(
        &ceiling_store,
        &round_records(1, false)?,
        &mut OwnerCache::default(),
    )
    .await?;
    assert_eq!((declined, sent.requests()), (None, 0), "a cold cache");
    let newcomer = round_records(1, true)?;
    let (declined, sent) = ceiling(&ceiling_store, &newcomer, &mut ceiling_cache).await?;
    assert_eq!(
        (declined, sent.requests()),
        (None, 0),
        "one sender not cached"
    );

    for round in 1..3 {
        let records = round_records(round, false)?;
        let piped_stats = DbStats::default();
        let piped = pipeline::run_batch_cached(
            &pipeline_store,
            &batch(&records),
            &piped_stats,
            &mut pipeline_cache,
        )
        .await?;
        assert_eq!(piped.round_trips, 2, "a lookup wave, then the write wave");
        assert_eq!(
            piped.lookup_keys.database, 0,
            "the pipeline's cache answered too"
        );
        let inserted: u64 = piped.workspaces.iter().map(|o| o.messages_inserted).sum();
        let (written, stats) = ceiling(&ceiling_store, &records, &mut ceiling_cache).await?;
        assert_eq!(written, Some(inserted), "round {round}");
        assert_eq!(inserted, 2 * WORKSPACES as u64);
        assert_eq!(stats.round_trips(), 1, "one wave");
        let (sent, piped) = (stats.requests(), piped_stats.requests());
        assert!(
            sent > 0 && sent < piped,
            "the write wave without the index lookup: {sent} of the pipeline's {piped} requests"
        );
    }
    let names: Vec<String> = (0..WORKSPACES).map(workspace).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let now_ms = (T0 + 86_400) * 1000;
    let expected = by_pipeline.all_rows(&names, now_ms).await?;
    let got = by_ceiling.all_rows(&names, now_ms).await?;
    assert_eq!(got.len(), expected.len());
    assert_eq!(got, expected, "the ceiling wrote the pipeline's rows");
    by_pipeline.cleanup().await?;
    by_ceiling.cleanup().await
}
