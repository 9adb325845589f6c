//! bench-env: creates and removes what one benchmark run uses on the local
//! services (without a JVM start per call, as `deploy/local/services` needs).
//!
//! ```text
//! bench-env create-topics NAME:PARTITIONS...   # waits until they exist
//! bench-env delete-topics NAME...
//! bench-env drop-keyspace NAME...
//! bench-env consumer-overhead TOPIC [--rounds N] [--json FILE]
//! ```
//! Brokers from `KAFKA_BROKERS`, CQL nodes from `CQL_NODES` (local defaults).

use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Parser, Subcommand};
use inboxflow_tests::{cql, kafka};
use rdkafka::admin::{AdminClient, AdminOptions};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

#[derive(Debug, Parser)]
#[command(about = "Topics and keyspaces for a benchmark run")]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create topics given as NAME:PARTITIONS (existing ones are kept).
    CreateTopics { topics: Vec<String> },
    /// Delete topics (missing ones are ignored).
    DeleteTopics { topics: Vec<String> },
    /// Drop keyspaces (missing ones are ignored).
    DropKeyspace { keyspaces: Vec<String> },
    /// Time what the processor's consumer does after every micro-batch:
    /// `fetch_watermarks` for each partition of TOPIC, then a synchronous
    /// commit of all of them (a fresh group; medians of ROUNDS, one every 200 ms).
    ConsumerOverhead {
        topic: String,
        #[arg(long, default_value_t = 20)]
        rounds: usize,
        /// Write {partitions, fetch_watermarks_ms, commit_sync_ms} as JSON to FILE.
        #[arg(long)]
        json: Option<std::path::PathBuf>,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Args::parse().command {
        Command::CreateTopics { topics } => {
            for spec in topics {
                let (name, partitions) = spec.split_once(':').unwrap_or((spec.as_str(), "1"));
                let partitions: i32 = partitions
                    .parse()
                    .with_context(|| format!("partitions of {spec}"))?;
                kafka::create_topics(&[name], partitions).await?;
            }
        }
        Command::DeleteTopics { topics } => {
            kafka::require_kafka()?;
            let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
                .set("bootstrap.servers", kafka::brokers())
                .create()?;
            let names: Vec<&str> = topics.iter().map(String::as_str).collect();
            let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
            for result in admin.delete_topics(&names, &options).await? {
                if let Err((topic, code)) = result {
                    eprintln!("bench-env: deleting topic {topic}: {code}");
                }
            }
        }
        Command::ConsumerOverhead {
            topic,
            rounds,
            json,
        } => {
            let (partitions, watermarks, commits) =
                tokio::task::spawn_blocking(move || consumer_overhead(&topic, rounds)).await??;
            let median = |mut v: Vec<f64>| {
                v.sort_by(f64::total_cmp);
                v.get(v.len() / 2).copied().unwrap_or_default()
            };
            let out = serde_json::json!({"partitions": partitions,
                "fetch_watermarks_ms": median(watermarks), "commit_sync_ms": median(commits)});
            println!("{out}");
            if let Some(path) = json {
                std::fs::write(&path, out.to_string())
                    .with_context(|| format!("writing {}", path.display()))?;
            }
        }
        Command::DropKeyspace { keyspaces } => {
            let session = cql::session().await?;
            for ks in keyspaces {
                cql::drop_keyspace(&session, &ks).await?;
            }
        }
    }
    Ok(())
}

/// (partitions, ms of one round of `fetch_watermarks` over all partitions,
/// ms of one synchronous commit of all partitions), per round.
fn consumer_overhead(topic: &str, rounds: usize) -> anyhow::Result<(usize, Vec<f64>, Vec<f64>)> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", kafka::brokers())
        .set("group.id", inboxflow_tests::unique_name("overhead"))
        .set("enable.auto.commit", "false")
        .create()?;
    let timeout = Duration::from_secs(5);
    let metadata = consumer.fetch_metadata(Some(topic), timeout)?;
    let ids: Vec<i32> = metadata
        .topics()
        .iter()
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    let mut tpl = TopicPartitionList::new();
    for id in &ids {
        tpl.add_partition_offset(topic, *id, Offset::Offset(0))?;
    }
    consumer.assign(&tpl)?;
    let (mut watermarks, mut commits) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        let started = Instant::now();
        for id in &ids {
            consumer.fetch_watermarks(topic, *id, timeout)?;
        }
        watermarks.push(started.elapsed().as_secs_f64() * 1e3);
        let started = Instant::now();
        consumer.commit(&tpl, CommitMode::Sync)?;
        commits.push(started.elapsed().as_secs_f64() * 1e3);
        std::thread::sleep(Duration::from_millis(200));
    }
    Ok((ids.len(), watermarks, commits))
}
