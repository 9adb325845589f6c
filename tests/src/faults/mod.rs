//! The fault suite's shared parts: a load sent through the real ingress with
//! a ledger of every webhook answered 200, the database checked against that
//! ledger, processors as separate OS processes (for `kill -9`), and the
//! local services stopped and started for outages.
//!
//! Every scenario ends with the same two checks ([`check::verify`]):
//! (a) each acknowledged message is in the database exactly once, and
//! nothing else is; (b) each conversation's unread count, message count and
//! last message equal what a clean run computes from the ledger.
//!
//! Sizes: [`long`] is true when `INBOXFLOW_LONG_FAULTS=1`; the scenarios
//! then run the same code with bigger numbers.
//!
//! ## Layout
//! - [`load`]: the generated webhooks, the concurrent sender with retries, the [`load::Ledger`].
//! - [`check`]: consumer-group lag, the database read-back and the [`check::Figures`].
//! - [`process`]: the processor binary, built if needed, run and killed.
//! - [`services`]: `deploy/local/services` actions and a restart-on-drop guard.
//! - [`cluster`]: the local 3-node Kafka cluster: topics with 3 replicas,
//!   partition leaders, nodes killed and started again on drop.
//! - [`topic`]: the webhook topic read back and compared with the ledger.

pub mod check;
pub mod cluster;
pub mod load;
pub mod process;
pub mod services;
pub mod topic;

/// Whether the long variants are asked for (`INBOXFLOW_LONG_FAULTS=1`).
pub fn long() -> bool {
    std::env::var("INBOXFLOW_LONG_FAULTS").is_ok_and(|v| v == "1")
}
