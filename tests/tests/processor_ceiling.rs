//! The benchmarks' raw-write ceiling of the same rows, on the real CQL
//! database: `pipeline::ceiling::write_wave_only` writes exactly the rows the
//! pipeline writes for a batch its owner cache answers, in one wave and
//! with no read; with a cold cache it declines and sends nothing.

use inboxflow_tests::processor::ProcessorEnv;
use inboxflow_tests::webhooks::{Inbound, meta_body};
use processor::decode::DecodedRecord;
use processor::pipeline::{self, OwnerCache, WorkspaceRecords};
use processor::store::{DbStats, Store};
use shared::record::Source;

const WORKSPACES: usize = 12;

/// Round `round`'s records: two messages from a sender of each workspace,
/// one record per workspace (partition 0).
fn round_records(round: i64) -> anyhow::Result<Vec<DecodedRecord>> {
    (0..WORKSPACES)
        .map(|i| {
            let ws = format!("ws_ceil{i}");
            let phone = format!("55119000{:05}", i % 5);
            let messages: Vec<Inbound> = (0..2)
                .map(|k| {
                    Inbound::new(
                        format!("wamid.ceil{round}.{i}.{k}"),
                        &phone,
                        1_700_000_000 + round,
                    )
                })
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ceiling_writes_the_pipelines_rows_in_one_wave_without_reading() -> anyhow::Result<()> {
    let (by_pipeline, by_ceiling) = (ProcessorEnv::new(1).await?, ProcessorEnv::new(1).await?);
    let pipeline_store =
        Store::with_session(by_pipeline.session.clone(), &by_pipeline.cfg.cql).await?;
    let ceiling_store =
        Store::with_session(by_ceiling.session.clone(), &by_ceiling.cfg.cql).await?;
    let (mut pipeline_cache, mut ceiling_cache) = (OwnerCache::default(), OwnerCache::default());

    // Contacts and conversations stored, and cached, by the pipeline in both.
    let seed = round_records(0)?;
    let stats = DbStats::default();
    pipeline::run_batch_cached(&pipeline_store, &batch(&seed), &stats, &mut pipeline_cache).await?;
    pipeline::run_batch_cached(&ceiling_store, &batch(&seed), &stats, &mut ceiling_cache).await?;

    // A cold cache: the pipeline would read first, so the ceiling declines.
    let next = round_records(1)?;
    let cold = DbStats::default();
    let declined = pipeline::ceiling::write_wave_only(
        &ceiling_store,
        &batch(&next),
        &cold,
        &mut OwnerCache::default(),
    )
    .await?;
    assert_eq!((declined, cold.requests()), (None, 0));

    for round in 1..3 {
        let records = round_records(round)?;
        let piped_stats = DbStats::default();
        let piped = pipeline::run_batch_cached(
            &pipeline_store,
            &batch(&records),
            &piped_stats,
            &mut pipeline_cache,
        )
        .await?;
        assert_eq!(piped.round_trips, 2, "a lookup wave, then the write wave");
        let inserted: u64 = piped.workspaces.iter().map(|o| o.messages_inserted).sum();
        let stats = DbStats::default();
        let written = pipeline::ceiling::write_wave_only(
            &ceiling_store,
            &batch(&records),
            &stats,
            &mut ceiling_cache,
        )
        .await?;
        assert_eq!(written, Some(inserted), "round {round}");
        assert_eq!(inserted, 2 * WORKSPACES as u64);
        let (ceiling, piped) = (stats.requests(), piped_stats.requests());
        assert!(
            ceiling > 0 && ceiling < piped,
            "the write wave without the lookups: {ceiling} of the pipeline's {piped} requests"
        );
    }
    let (expected, got) = (by_pipeline.snapshot().await?, by_ceiling.snapshot().await?);
    assert_eq!(got.len(), expected.len());
    assert_eq!(got, expected, "the ceiling wrote the pipeline's rows");
    by_pipeline.cleanup().await?;
    by_ceiling.cleanup().await
}
