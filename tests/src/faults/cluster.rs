//! The local 3-node Kafka cluster (`deploy/local/services cluster-up`): its
//! bootstrap list, a check that all three brokers are alive, topics with
//! replication factor 3 and `min.insync.replicas=2`, partition leaders from
//! metadata, and [`DownNodes`], which kills nodes with `kill -9` and starts
//! every one of them again when dropped, so that a failing test never leaves
//! the cluster short of a node.
//!
//! The cluster is not the shared single broker: tests using it touch only
//! their own topics and the cluster's nodes.

use std::collections::BTreeMap;
use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};

use super::services::{services_blocking, services_with};
use crate::ingress::TestTopics;

/// The command that starts the cluster, quoted in failure messages.
pub const START_CLUSTER: &str = "deploy/local/services cluster-up";
/// The node ids of the cluster (`kafka-c1` .. `kafka-c3`).
pub const NODES: [i32; 3] = [1, 2, 3];
/// Replicas of every test topic; `min.insync.replicas` is one fewer.
pub const REPLICATION: i32 = 3;

/// Why the cluster cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error(
        "the 3-node Kafka cluster is not reachable at {bootstrap} ({cause}). \
         Start it with `{START_CLUSTER}`."
    )]
    Unreachable { bootstrap: String, cause: String },
    #[error(
        "the 3-node Kafka cluster at {bootstrap} has brokers {alive:?} alive, not 1, 2 and 3. \
         Start it with `{START_CLUSTER}`."
    )]
    BrokersMissing { bootstrap: String, alive: Vec<i32> },
}

/// The cluster's bootstrap list (`KAFKA_CLUSTER_BROKERS`, default the
/// `services` ports 127.0.0.1:19092-19094).
pub fn bootstrap() -> String {
    std::env::var("KAFKA_CLUSTER_BROKERS")
        .unwrap_or_else(|_| "127.0.0.1:19092,127.0.0.1:19093,127.0.0.1:19094".into())
}

fn client() -> Result<BaseConsumer, ClusterError> {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap())
        .create()
        .map_err(|e| ClusterError::Unreachable {
            bootstrap: bootstrap(),
            cause: e.to_string(),
        })
}

/// The broker ids the cluster's metadata lists as alive.
pub fn alive_brokers() -> Result<Vec<i32>, ClusterError> {
    let md = client()?
        .fetch_metadata(None, Duration::from_secs(5))
        .map_err(|e| ClusterError::Unreachable {
            bootstrap: bootstrap(),
            cause: e.to_string(),
        })?;
    let mut alive: Vec<i32> = md.brokers().iter().map(|b| b.id()).collect();
    alive.sort_unstable();
    Ok(alive)
}

/// Fails, naming the cluster and [`START_CLUSTER`], unless all three brokers are alive.
pub fn require_cluster() -> Result<(), ClusterError> {
    let alive = alive_brokers()?;
    if alive != NODES {
        return Err(ClusterError::BrokersMissing {
            bootstrap: bootstrap(),
            alive,
        });
    }
    Ok(())
}

/// One partition as the metadata shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionState {
    /// The leader's node id; -1 when the partition has none.
    pub leader: i32,
    pub isr: Vec<i32>,
}

/// Partition → leader and in-sync replicas of `topic`, from the cluster's metadata.
pub async fn partitions(topic: &str) -> anyhow::Result<BTreeMap<i32, PartitionState>> {
    let topic = topic.to_owned();
    tokio::task::spawn_blocking(move || partitions_blocking(&topic)).await?
}

fn partitions_blocking(topic: &str) -> anyhow::Result<BTreeMap<i32, PartitionState>> {
    let md = client()?.fetch_metadata(Some(topic), Duration::from_secs(5))?;
    Ok(md
        .topics()
        .iter()
        .flat_map(|t| t.partitions())
        .map(|p| {
            let state = PartitionState {
                leader: p.leader(),
                isr: p.isr().to_vec(),
            };
            (p.id(), state)
        })
        .collect())
}

/// Creates three fresh topics (routed with `partitions` partitions, the others
/// with one) with [`REPLICATION`] replicas and `min.insync.replicas=2`, and
/// waits until every partition has a leader and all three replicas in sync.
pub async fn create_topics(partitions_of_routed: i32) -> anyhow::Result<TestTopics> {
    require_cluster()?;
    let topics = TestTopics {
        routed: crate::unique_name("cluster_routed"),
        unrouted: crate::unique_name("cluster_unrouted"),
        dead_letter: crate::unique_name("cluster_dlq"),
    };
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap())
        .create()?;
    let min_isr = (REPLICATION - 1).to_string();
    let new: Vec<NewTopic<'_>> = [
        (&topics.routed, partitions_of_routed),
        (&topics.unrouted, 1),
        (&topics.dead_letter, 1),
    ]
    .into_iter()
    .map(|(name, n)| {
        NewTopic::new(name, n, TopicReplication::Fixed(REPLICATION))
            .set("min.insync.replicas", &min_isr)
            .set("max.message.bytes", "5242880")
    })
    .collect();
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    for result in admin.create_topics(&new, &options).await? {
        result.map_err(|(topic, code)| anyhow::anyhow!("creating topic {topic}: {code}"))?;
    }
    for topic in [&topics.routed, &topics.unrouted, &topics.dead_letter] {
        crate::poll::until(
            "every partition of a new topic to have a leader and 3 in-sync replicas",
            Duration::from_secs(30),
            || async {
                let states = partitions(topic).await?;
                let ready = !states.is_empty()
                    && states
                        .values()
                        .all(|s| s.leader > 0 && s.isr.len() == REPLICATION as usize);
                Ok(ready.then_some(()))
            },
        )
        .await?;
    }
    Ok(topics)
}

/// Nodes this test has killed. Dropping it starts every one of them again
/// (`services cluster-broker-start N`, which waits until the node is ready).
#[derive(Debug, Default)]
pub struct DownNodes {
    nodes: Vec<i32>,
}

impl DownNodes {
    /// `kill -9` node `node` (`services cluster-broker-kill N`); recorded
    /// first, so that even a kill that fails half-way is undone.
    pub async fn kill(&mut self, node: i32) -> anyhow::Result<()> {
        self.nodes.push(node);
        services_with(&["cluster-broker-kill", &node.to_string()]).await?;
        Ok(())
    }

    /// The nodes killed so far, in order.
    pub fn nodes(&self) -> &[i32] {
        &self.nodes
    }

    /// Starts every killed node again, in the order they were killed, and
    /// waits until each is ready.
    pub async fn start_all(&mut self) -> anyhow::Result<()> {
        while let Some(&node) = self.nodes.first() {
            services_with(&["cluster-broker-start", &node.to_string()]).await?;
            self.nodes.remove(0);
        }
        Ok(())
    }

    /// [`Self::start_all`] for `Drop`, blocking.
    fn start_all_blocking(&mut self) -> anyhow::Result<()> {
        while let Some(&node) = self.nodes.first() {
            services_blocking(&["cluster-broker-start", &node.to_string()])?;
            self.nodes.remove(0);
        }
        Ok(())
    }
}

impl Drop for DownNodes {
    fn drop(&mut self) {
        if let Err(err) = self.start_all_blocking() {
            eprintln!(
                "could not start the killed cluster node(s) {:?} again: {err:#}; \
                 run `{START_CLUSTER}`",
                self.nodes
            );
        }
    }
}
