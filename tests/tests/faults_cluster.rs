//! Fault: a partition leader of a 3-node Kafka cluster dies (`kill -9`)
//! during a load, then a second node dies.
//!
//! The cluster (`deploy/local/services cluster-up`) keeps 3 replicas of the
//! webhook topic with `min.insync.replicas=2`, and the in-process ingress
//! writes to it with `acks=all`. On a single broker `acks=all` is trivially
//! met; here it means "on at least two nodes". Guarantees checked:
//! - not one webhook answered 200 is lost when the leader of partition 0 is
//!   killed mid-load: the topic, read back while that node is still dead,
//!   holds the exact body of every acknowledged webhook (and the sender,
//!   retrying like Meta does, gets every webhook acknowledged in the end);
//! - with two of the three nodes down, fewer replicas than
//!   `min.insync.replicas` can take a write: the ingress answers 503 and
//!   never 200.
//!
//! Every killed node is started again at the end, also when the test fails
//! ([`DownNodes`]). Without the cluster the test fails, naming it and the
//! command that starts it. CI: 600 webhooks over 20 s;
//! `INBOXFLOW_LONG_FAULTS=1`: 3,000 over 60 s.
//!
//! This binary kills cluster nodes, so it holds a single test.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::Context;
use inboxflow_tests::faults::cluster::{self, DownNodes};
use inboxflow_tests::faults::load::{Ledger, Load, Scale, start_sending};
use inboxflow_tests::faults::long;
use inboxflow_tests::faults::topic::TopicFigures;
use inboxflow_tests::ingress::{TestIngress, spawn_ingress_with};
use inboxflow_tests::{kafka, poll};

const WAIT: Duration = Duration::from_secs(120);
const WORKSPACES: usize = 12;

/// What the first kill did.
#[derive(Debug)]
struct Failover {
    ledger: Arc<Ledger>,
    node: i32,
    /// The partitions the killed node led.
    led: Vec<i32>,
    /// From the kill until every partition had a leader and an in-sync
    /// replica set without the killed node.
    duration: Duration,
    /// 503s answered from the kill until the load ended.
    refused_after_kill: u64,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killing_a_partition_leader_loses_no_acknowledged_webhook_and_without_min_isr_none_is_acknowledged()
-> anyhow::Result<()> {
    let started = Instant::now();
    let topics = cluster::create_topics(3).await?;
    let (bodies, seconds) = if long() { (3000, 60) } else { (600, 20) };
    let load = Arc::new(Load::generate(
        "cluster",
        Scale::spread_load(WORKSPACES, bodies, seconds),
    ));
    let app = spawn_ingress_with(&load.registry_toml, topics, |mut cfg| {
        cfg.kafka.brokers = cluster::bootstrap();
        cfg.ack_timeout = Duration::from_secs(2);
        cfg
    })
    .await?;
    let mut down = DownNodes::default();

    let failover = kill_the_leader_during_a_load(&app, &load, &mut down).await?;
    let records = read_back(&app.topics.routed).await?;
    let figures = TopicFigures::compare(&load, &failover.ledger, &records);
    let refused = send_with_two_nodes_down(&app, &mut down).await?;
    let restart = Instant::now();
    let killed = down.nodes().to_vec();
    down.start_all().await?;
    let restart = restart.elapsed();

    println!("{}", figures.line("cluster leader kill"));
    report(&failover, &refused, &killed, restart, started.elapsed());
    assert_eq!(
        figures.found, figures.acknowledged,
        "acknowledged webhooks missing from the topic"
    );
    assert_eq!(
        figures.acknowledged, figures.sent,
        "every webhook was acknowledged in the end"
    );
    assert_eq!(
        refused.ok.load(Ordering::SeqCst),
        0,
        "no 200 with two of three nodes down"
    );
    assert!(
        refused.unavailable.load(Ordering::SeqCst) > 0,
        "503s with two of three nodes down"
    );
    app.shutdown().await
}

/// Prints the failover's and the two-nodes-down phase's figures.
fn report(
    failover: &Failover,
    refused: &Ledger,
    killed: &[i32],
    restart: Duration,
    test: Duration,
) {
    println!(
        "[faults] cluster leader kill: node {} (leader of partitions {:?}) killed; failover \
         {:.1} s (kill to new leaders, node out of every ISR); {} 503s from the kill to the \
         end of the load; {}",
        failover.node,
        failover.led,
        failover.duration.as_secs_f64(),
        failover.refused_after_kill,
        failover.ledger.summary()
    );
    println!(
        "[faults] cluster two nodes down: {}; nodes {killed:?} started again in {:.1} s; \
         test {:.1} s",
        refused.summary(),
        restart.as_secs_f64(),
        test.as_secs_f64()
    );
}

/// Sends the load; once a fifth is acknowledged, kills the leader of
/// partition 0 and waits for the cluster to move its partitions; then waits
/// for the sender to finish (every webhook acknowledged or given up).
async fn kill_the_leader_during_a_load(
    app: &TestIngress,
    load: &Arc<Load>,
    down: &mut DownNodes,
) -> anyhow::Result<Failover> {
    let topic = &app.topics.routed;
    let (ledger, sender) = start_sending(app, load, WAIT);
    poll::until("a fifth of the load acknowledged", WAIT, || async {
        let acked = ledger.acknowledged_webhooks.load(Ordering::SeqCst);
        Ok((acked >= load.webhooks.len() as u64 / 5).then_some(()))
    })
    .await?;
    let before = cluster::partitions(topic).await?;
    let node = before
        .get(&0)
        .map(|p| p.leader)
        .filter(|&leader| leader > 0)
        .context("partition 0 of the webhook topic has no leader")?;
    let led = before
        .iter()
        .filter(|(_, p)| p.leader == node)
        .map(|(&id, _)| id)
        .collect();
    let refused_before = ledger.unavailable.load(Ordering::SeqCst);
    let killed_at = Instant::now();
    down.kill(node).await?;
    poll::until(
        "new leaders, and the killed node out of every in-sync replica set",
        WAIT,
        || async {
            let states = cluster::partitions(topic).await?;
            let moved = states
                .values()
                .all(|p| p.leader > 0 && p.leader != node && !p.isr.contains(&node));
            Ok(moved.then_some(()))
        },
    )
    .await?;
    let duration = killed_at.elapsed();
    sender.await?;
    let refused_after_kill = ledger.unavailable.load(Ordering::SeqCst) - refused_before;
    Ok(Failover {
        ledger,
        node,
        led,
        duration,
        refused_after_kill,
    })
}

/// Every record of `topic`, read from the live nodes.
async fn read_back(topic: &str) -> anyhow::Result<Vec<kafka::ReadRecord>> {
    let topic = topic.to_owned();
    tokio::task::spawn_blocking(move || {
        kafka::read_all_assigned(&cluster::bootstrap(), &topic, Duration::from_secs(60))
    })
    .await?
}

/// Kills the current leader of partition 0 (a second node), then sends a
/// small load, each webhook retried for 8 s; returns its ledger.
async fn send_with_two_nodes_down(
    app: &TestIngress,
    down: &mut DownNodes,
) -> anyhow::Result<Arc<Ledger>> {
    let states = cluster::partitions(&app.topics.routed).await?;
    let second = states
        .get(&0)
        .map(|p| p.leader)
        .filter(|leader| *leader > 0 && !down.nodes().contains(leader))
        .context("partition 0 has no live leader after the failover")?;
    down.kill(second).await?;
    let load = Arc::new(Load::generate(
        "cluster_isr",
        Scale::spread_load(WORKSPACES, 24, 2),
    ));
    let (ledger, sender) = start_sending(app, &load, Duration::from_secs(8));
    sender.await?;
    Ok(ledger)
}
