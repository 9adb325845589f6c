//! Which accepted connections are served, and how the others are refused.
//!
//! Guarantees: at most `max_total` connections hold an [`Admitted`] slot at
//! once, and at most `max_per_client` of them come from one client (source
//! IP address; an IPv4-mapped IPv6 address counts as its IPv4 address); a
//! slot is released when its [`Admitted`] is dropped, however the connection
//! ended. A refused connection is answered a minimal `503` with
//! `Retry-After` and `Connection: close` as soon as its request head has
//! arrived (after [`REFUSAL_HEAD_WAIT`] if it sends none), and closed: at most
//! [`MAX_REFUSALS_IN_FLIGHT`] refusals run at once, each for at most
//! [`REFUSAL_DEADLINE`]; past that many, the answer is written only if the
//! socket takes it at once, and the connection is closed straight away. So
//! a refusal never waits in the listen backlog and never costs unbounded work.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;

use crate::metrics::ConnectionRejection;

/// Refusals being written and closed at once, across a listener.
pub const MAX_REFUSALS_IN_FLIGHT: usize = 64;
/// How long a refusal waits for the client's request head before answering
/// (a client that sent nothing yet may not expect a response).
pub const REFUSAL_HEAD_WAIT: Duration = Duration::from_secs(1);
/// How long one refusal may take in all: read the request head, write the
/// answer, then wait for the client to close (so that closing does not reset
/// a request it already sent).
pub const REFUSAL_DEADLINE: Duration = Duration::from_secs(2);
/// Most bytes of an unread request read and discarded while refusing.
const REFUSAL_DRAIN_BYTES: usize = 64 * 1024;

#[derive(Debug, Default)]
struct Counts {
    total: usize,
    per_client: HashMap<IpAddr, usize>,
}

/// The connection slots of one listener, in total and per client.
#[derive(Debug, Clone)]
pub struct Admission {
    counts: Arc<Mutex<Counts>>,
    max_total: usize,
    max_per_client: usize,
}

/// A served connection's slot; dropping it frees the slot.
#[derive(Debug)]
pub struct Admitted {
    counts: Arc<Mutex<Counts>>,
    client: IpAddr,
}

fn lock(counts: &Mutex<Counts>) -> MutexGuard<'_, Counts> {
    // The counts are updated in single steps that cannot panic halfway.
    counts.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Admission {
    pub fn new(max_total: usize, max_per_client: usize) -> Self {
        Self {
            counts: Arc::default(),
            max_total,
            max_per_client: max_per_client.min(max_total),
        }
    }

    /// A slot for a connection from `client`, or why there is none.
    pub fn admit(&self, client: IpAddr) -> Result<Admitted, ConnectionRejection> {
        let client = client.to_canonical();
        let mut counts = lock(&self.counts);
        if counts.total >= self.max_total {
            return Err(ConnectionRejection::ServerFull);
        }
        let held = counts.per_client.entry(client).or_default();
        if *held >= self.max_per_client {
            return Err(ConnectionRejection::ClientFull);
        }
        *held += 1;
        counts.total += 1;
        Ok(Admitted {
            counts: Arc::clone(&self.counts),
            client,
        })
    }

    /// Connections holding a slot now.
    pub fn served(&self) -> usize {
        lock(&self.counts).total
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        let mut counts = lock(&self.counts);
        counts.total = counts.total.saturating_sub(1);
        if let Some(held) = counts.per_client.get_mut(&self.client) {
            *held = held.saturating_sub(1);
            if *held == 0 {
                counts.per_client.remove(&self.client);
            }
        }
    }
}

/// Answers refused connections a fast 503, with bounded work.
#[derive(Debug, Clone)]
pub struct Refusals {
    in_flight: Arc<Semaphore>,
    answer: Bytes,
}

impl Refusals {
    pub fn new(retry_after_secs: u64) -> Self {
        let body = r#"{"error":"too many connections"}"#;
        let answer = format!(
            "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n\
             retry-after: {retry_after_secs}\r\nconnection: close\r\n\
             content-length: {}\r\n\r\n{body}",
            body.len()
        );
        Self {
            in_flight: Arc::new(Semaphore::new(MAX_REFUSALS_IN_FLIGHT)),
            answer: Bytes::from(answer),
        }
    }

    /// Answers `stream` with the 503 and closes it, without blocking the caller.
    pub fn refuse(&self, stream: TcpStream) {
        let Ok(permit) = Arc::clone(&self.in_flight).try_acquire_owned() else {
            // Too many refusals already: a fresh socket's send buffer is
            // empty, so this usually still delivers the whole answer.
            let _ = stream.try_write(&self.answer);
            return;
        };
        let answer = self.answer.clone();
        tokio::spawn(async move {
            let _ = tokio::time::timeout(REFUSAL_DEADLINE, answer_and_close(stream, &answer)).await;
            drop(permit);
        });
    }
}

/// Waits (up to [`REFUSAL_HEAD_WAIT`]) for the client's request head, so
/// that the answer comes after a request, as HTTP clients expect; then
/// writes `answer`, ends the write side, and reads (and discards) until the
/// client closes, so that the close does not reset the connection before the
/// client has read the answer.
async fn answer_and_close(mut stream: TcpStream, answer: &[u8]) -> std::io::Result<()> {
    let mut buf = [0u8; 4096];
    let mut head = Vec::new();
    let read_head = async {
        while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < REFUSAL_DRAIN_BYTES {
            match stream.read(&mut buf).await? {
                0 => break,
                n => head.extend_from_slice(&buf[..n]),
            }
        }
        std::io::Result::Ok(())
    };
    // An idle client gets the answer once the wait is over.
    let _ = tokio::time::timeout(REFUSAL_HEAD_WAIT, read_head).await;
    stream.write_all(answer).await?;
    stream.shutdown().await?;
    let mut drained = head.len();
    while drained < REFUSAL_DRAIN_BYTES {
        match stream.read(&mut buf).await? {
            0 => break,
            n => drained += n,
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 1));
    const B: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 2));

    #[test]
    fn a_client_gets_at_most_its_cap_and_others_the_rest() {
        let admission = Admission::new(3, 2);
        let a1 = admission.admit(A).expect("a1");
        let _a2 = admission.admit(A).expect("a2");
        assert_eq!(
            admission.admit(A).expect_err("a3"),
            ConnectionRejection::ClientFull
        );
        let _b1 = admission.admit(B).expect("b1");
        assert_eq!(
            admission.admit(B).expect_err("full"),
            ConnectionRejection::ServerFull
        );
        drop(a1);
        assert_eq!(admission.served(), 2);
        let _a3 = admission.admit(A).expect("a slot freed");
    }

    #[test]
    fn an_ipv4_mapped_address_counts_as_its_ipv4_client() {
        let admission = Admission::new(10, 1);
        let _v4 = admission.admit(A).expect("v4");
        let mapped: IpAddr = "::ffff:10.0.0.1".parse().expect("address");
        assert_eq!(
            admission.admit(mapped).expect_err("same client"),
            ConnectionRejection::ClientFull
        );
    }

    #[test]
    fn released_slots_leave_no_per_client_entry_behind() {
        let admission = Admission::new(10, 5);
        let slots: Vec<Admitted> = (0..5).map(|_| admission.admit(A).expect("slot")).collect();
        drop(slots);
        assert_eq!(admission.served(), 0);
        assert!(lock(&admission.counts).per_client.is_empty());
    }
}
