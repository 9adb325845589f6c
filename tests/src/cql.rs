//! CQL helpers on the real database (`CQL_NODES`, default 127.0.0.1:9042).

use std::sync::Arc;

use anyhow::Context;
use scylla::client::session::Session;
use scylla::client::session_builder::SessionBuilder;

use crate::START_SERVICES;

/// The contact points tests use.
pub fn nodes() -> String {
    std::env::var("CQL_NODES").unwrap_or_else(|_| "127.0.0.1:9042".into())
}

/// Connects, failing with a message that names the database and how to start it.
pub async fn session() -> anyhow::Result<Arc<Session>> {
    let mut builder = SessionBuilder::new();
    for node in nodes().split(',') {
        builder = builder.known_node(node.trim());
    }
    let session = Box::pin(builder.build()).await.map_err(|e| {
        anyhow::anyhow!(
            "the CQL database (Cassandra/ScyllaDB) is not reachable at {} ({e}). \
             Start it with `{START_SERVICES}`.",
            nodes()
        )
    })?;
    Ok(Arc::new(session))
}

/// Drops a keyspace (best effort, for test clean-up).
pub async fn drop_keyspace(session: &Session, keyspace: &str) -> anyhow::Result<()> {
    session
        .query_unpaged(format!("DROP KEYSPACE IF EXISTS {keyspace}"), &[])
        .await
        .with_context(|| format!("dropping keyspace {keyspace}"))?;
    Ok(())
}
