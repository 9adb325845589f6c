//! The real-world corpus, end to end: every payload in
//! `shared/corpus/real-world` (Meta docs examples, library fixtures, Kapso's
//! docs) goes through a real ingress and a real processor, and lands in the
//! database as its `SOURCES.md` row says.
//!
//! Guarantees checked:
//! - every file is answered 200;
//! - every file has exactly one row in the hand-written table
//!   (`corpus/expectations.rs`), and every row names a file that exists;
//! - after the processor has committed everything, each file's workspace
//!   holds the effects of its row (messages, statuses, reactions, edits,
//!   conversation states, account events, counts);
//! - the events the processor counts as skipped, by kind, are exactly the
//!   table's `Ignored` rows;
//! - nothing is dead-lettered or unrouted (nothing in the corpus is poison).

// The table and its checks live in `corpus/`: `effects` (what a row may
// promise), `check` (how each promise is checked), `expectations` (helpers,
// Kapso rows) and the three Meta parts.
#[path = "corpus/check.rs"]
mod check;
#[path = "corpus/effects.rs"]
mod effects;
#[path = "corpus/expectations.rs"]
mod expectations;
#[path = "corpus/meta_events.rs"]
mod meta_events;
#[path = "corpus/meta_fixtures.rs"]
mod meta_fixtures;
#[path = "corpus/meta_messages.rs"]
mod meta_messages;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use anyhow::Context;
use inboxflow_tests::corpus::{self, Delivery, Snapshot};
use inboxflow_tests::processor::ProcessorEnv;
use processor::pipeline::faults::Faults;

use effects::{Effect, Expectation};

/// Files delivered at once (each through its own ingress).
const CONCURRENCY: usize = 8;
/// How long the processor may take to commit the whole corpus.
const DRAIN: Duration = Duration::from_secs(120);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_real_world_payload_lands_as_sources_md_says() -> anyhow::Result<()> {
    // Arrange
    let dir = corpus::corpus_dir();
    let table = expectations::expectations();
    assert_table_covers_corpus(&table, &corpus::json_files(&dir)?);
    let env = ProcessorEnv::new(3).await?;
    let running = env.start(Faults::default()).await?;
    let admin = running
        .admin_addr
        .context("the processor has no admin server")?;

    // Act
    let files: Vec<(&'static str, Delivery)> = table.iter().map(|e| (e.file, e.delivery)).collect();
    let answers = corpus::deliver_all(&env, &dir, &files, CONCURRENCY).await;
    let refused: Vec<String> = answers
        .iter()
        .filter(|a| a.status != 200)
        .map(|a| format!("{}: {} {}", a.file, a.status, a.body))
        .collect();
    let drained = corpus::drain(&env, DRAIN).await;

    // Assert
    let snap = Snapshot::read(&env.session, &env.cfg.cql.keyspace).await;
    let mut failures: Vec<String> = refused
        .iter()
        .map(|r| format!("not answered 200: {r}"))
        .collect();
    failures.extend(drained.err().map(|e| format!("not drained: {e:#}")));
    failures.extend(
        snap.unreadable
            .iter()
            .map(|t| format!("table unreadable: {t}")),
    );
    failures.extend(effect_failures(&table, &snap));
    failures.extend(skipped_mismatches(
        &table,
        &corpus::skipped_kinds(admin).await?,
    ));
    failures.extend(diverted(&env, &dir, &files).await?);
    running.stop().await?;
    if failures.is_empty() {
        env.cleanup().await?;
    }
    assert!(
        failures.is_empty(),
        "{} corpus expectation(s) not met (keyspace {} kept):\n{}",
        failures.len(),
        env.cfg.cql.keyspace,
        failures.join("\n")
    );
    Ok(())
}

/// Fails when a corpus file has no row, a row names no file, or a file has two rows.
fn assert_table_covers_corpus(table: &[Expectation], files: &[String]) {
    let listed: Vec<&str> = table.iter().map(|e| e.file).collect();
    let unique: BTreeSet<&str> = listed.iter().copied().collect();
    let present: BTreeSet<&str> = files.iter().map(String::as_str).collect();
    let twice: Vec<&str> = unique
        .iter()
        .copied()
        .filter(|f| listed.iter().filter(|l| *l == f).count() > 1)
        .collect();
    let unlisted: Vec<&str> = present.difference(&unique).copied().collect();
    let missing: Vec<&str> = unique.difference(&present).copied().collect();
    assert!(
        unlisted.is_empty() && missing.is_empty() && twice.is_empty(),
        "the expectation table must list each corpus file once: files without a row {unlisted:?}, \
         rows without a file {missing:?}, files listed twice {twice:?}"
    );
}

/// `file: effect: what was observed` for every effect that does not hold.
fn effect_failures(table: &[Expectation], snap: &Snapshot) -> Vec<String> {
    table
        .iter()
        .flat_map(|e| {
            let ws = corpus::workspace_of(e.file);
            e.effects
                .iter()
                .filter_map(|effect| effect.check(snap, &ws).err())
                .map(|why| format!("{} ({ws}): {why}", e.file))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Compares the processor's skipped-event counts with the table's `Ignored` rows.
fn skipped_mismatches(table: &[Expectation], observed: &BTreeMap<String, u64>) -> Vec<String> {
    let mut expected: BTreeMap<String, u64> = BTreeMap::new();
    let mut files: BTreeMap<String, Vec<&str>> = BTreeMap::new();
    for e in table {
        for effect in &e.effects {
            if let Effect::Ignored { kind } = effect {
                *expected.entry((*kind).to_owned()).or_default() += 1;
                files.entry((*kind).to_owned()).or_default().push(e.file);
            }
        }
    }
    let kinds: BTreeSet<&String> = expected.keys().chain(observed.keys()).collect();
    kinds
        .into_iter()
        .filter_map(|kind| {
            let (want, seen) = (expected.get(kind).copied().unwrap_or(0), observed.get(kind).copied().unwrap_or(0));
            (want != seen).then(|| {
                format!(
                    "events_skipped_total{{kind={kind:?}}}: expected {want} (files {:?}), observed {seen}",
                    files.get(kind).cloned().unwrap_or_default()
                )
            })
        })
        .collect()
}

/// Records on the dead-letter and unrouted topics (there must be none),
/// each named by the corpus file whose body it carries.
async fn diverted(
    env: &ProcessorEnv,
    dir: &std::path::Path,
    files: &[(&'static str, Delivery)],
) -> anyhow::Result<Vec<String>> {
    let mut bodies = BTreeMap::new();
    for (file, delivery) in files {
        let raw = std::fs::read(dir.join(file)).with_context(|| format!("reading {file}"))?;
        bodies.insert(corpus::body_for(&raw, *delivery)?, *file);
    }
    let mut out = Vec::new();
    for topic in [
        &env.cfg.kafka.dead_letter_topic,
        &env.cfg.kafka.unrouted_topic,
    ] {
        for record in corpus::records_in(topic).await? {
            let mut headers: Vec<String> = record
                .headers
                .iter()
                .filter(|(k, _)| !k.contains("signature"))
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            headers.sort();
            let file = bodies
                .get(&record.value)
                .copied()
                .unwrap_or("an unknown body");
            out.push(format!(
                "{file}: record on {topic} (key {:?}, {} bytes): {}",
                record.key,
                record.value.len(),
                headers.join(", ")
            ));
        }
    }
    Ok(out)
}

/// The copy in `tests/corpus/real-world` must be byte for byte the shared
/// corpus wherever the shared one is present, so the test never runs on a
/// stale copy. (A clone without `../shared` runs on the copy alone.)
#[test]
fn the_vendored_corpus_is_a_verbatim_copy_of_the_shared_one() -> anyhow::Result<()> {
    let (shared, vendored) = (corpus::shared_corpus_dir(), corpus::vendored_corpus_dir());
    let ours = corpus::json_files(&vendored)?;
    assert_eq!(ours.len(), 88, "tests/corpus/real-world holds the 88 files");
    if !shared.is_dir() {
        println!(
            "no {} here: checked the vendored copy alone",
            shared.display()
        );
        return Ok(());
    }
    let fix = "refresh it: cp -a ../shared/corpus/real-world tests/corpus/";
    assert_eq!(
        corpus::json_files(&shared)?,
        ours,
        "the file lists differ; {fix}"
    );
    for file in ours.iter().map(String::as_str).chain(["SOURCES.md"]) {
        let read = |dir: &std::path::Path| std::fs::read(dir.join(file));
        assert!(read(&shared)? == read(&vendored)?, "{file} differs; {fix}");
    }
    Ok(())
}
